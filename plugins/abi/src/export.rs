//! The plugin side: the trait a plugin implements and the glue [`crate::export_backend!`]
//! expands to.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
use bottle_core::plan::{Plan, PLAN_FORMAT};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{PluginInfo, WireError};
use crate::{Buffer, ABI_VERSION, STATUS_ERROR, STATUS_OK, STATUS_PANIC};

/// A backend implemented in a plugin: core's [`Backend`](bottle_core::backend::Backend),
/// made synchronous (see the crate docs for why). The host calls these methods on a
/// blocking thread, possibly several at once from different threads.
pub trait PluginBackend: Send + Sync + Sized + 'static {
    /// The name `--backend` takes. It must not be a built-in backend's name, nor another
    /// plugin's: the host refuses both.
    const NAME: &'static str;

    /// One line for `bottle plugins` and error messages.
    const ABOUT: &'static str;

    /// Makes the backend: called on the first operation, then kept for the life of the
    /// process. An error is returned to that operation, and the next one tries again.
    fn open() -> Result<Self, BackendError>;

    /// Creates and starts everything in `plan`; see
    /// [`Backend::up`](bottle_core::backend::Backend::up).
    fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError>;

    /// Stops and removes the bottle; succeeds when there is nothing to remove.
    fn down(&self, scope: &Scope) -> Result<(), BackendError>;

    /// Lists the bottles in `scope` and their resources.
    fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError>;

    /// Removes labelled leftovers; returns what it removed.
    fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError>;

    /// Runs a command in the bottle's agent; returns its exit code. The plugin shares the
    /// process's standard input, output and error.
    fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError>;
}

/// The plugin's one backend value, opened lazily.
#[derive(Debug)]
pub struct Instance<T>(Mutex<Option<Arc<T>>>);

impl<T: PluginBackend> Instance<T> {
    /// An instance not opened yet.
    #[allow(clippy::new_without_default)] // used in a static initialiser
    pub const fn new() -> Instance<T> {
        Instance(Mutex::new(None))
    }

    /// The backend, opened on first use. A panic in `open` leaves the instance unopened.
    pub fn get(&self) -> Result<Arc<T>, BackendError> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(backend) = slot.as_ref() {
            return Ok(Arc::clone(backend));
        }
        let backend = Arc::new(T::open()?);
        *slot = Some(Arc::clone(&backend));
        Ok(backend)
    }
}

/// Writes the answer of `info`; `version` is the plugin crate's version.
///
/// # Safety
///
/// As [`call_op`].
pub unsafe fn call_info<T: PluginBackend>(
    version: &str,
    input: *const u8,
    input_len: usize,
    output: *mut Buffer,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        call_op("info", input, input_len, output, |_: serde_json::Value| {
            Ok(PluginInfo {
                name: T::NAME.to_owned(),
                about: T::ABOUT.to_owned(),
                version: version.to_owned(),
                plan_format: PLAN_FORMAT,
                abi_version: ABI_VERSION,
            })
        })
    }
}

/// Runs one operation for the host: reads the JSON request, calls `op` under
/// `catch_unwind`, writes the JSON answer into `*output`, and returns its status. Never
/// unwinds.
///
/// # Safety
///
/// `input` must point at `input_len` readable bytes (or `input_len` be 0), and `output` at a
/// writable [`Buffer`] (or be null, which is refused).
pub unsafe fn call_op<Req, Resp, F>(
    what: &str,
    input: *const u8,
    input_len: usize,
    output: *mut Buffer,
    op: F,
) -> i32
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Result<Resp, BackendError>,
{
    if output.is_null() {
        return STATUS_ERROR;
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let bytes: &[u8] = if input_len == 0 || input.is_null() {
            b"null"
        } else {
            // SAFETY: the caller promises `input_len` readable bytes at `input`.
            unsafe { std::slice::from_raw_parts(input, input_len) }
        };
        let request: Req = serde_json::from_slice(bytes).map_err(|e| {
            WireError::other(format!(
                "the plugin could not read the {what} request: {e} (is it built against another bottle-plugin?)"
            ))
        })?;
        let answer = op(request).map_err(WireError::from)?;
        serde_json::to_vec(&answer).map_err(|e| {
            WireError::other(format!("the plugin could not write its {what} answer: {e}"))
        })
    }));
    let (status, bytes) = match outcome {
        Ok(Ok(bytes)) => (STATUS_OK, bytes),
        Ok(Err(error)) => (STATUS_ERROR, to_json(&error)),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // A payload whose Drop panics must not unwind out of here: leak it instead.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            (STATUS_PANIC, to_json(&message))
        }
    };
    // SAFETY: checked non-null above; the caller promises it is writable.
    unsafe { output.write(Buffer::from_vec(bytes)) };
    status
}

/// Frees a buffer this library allocated. Never unwinds.
///
/// # Safety
///
/// `buffer` must come from [`call_op`] of this library, and be freed once.
pub unsafe fn call_free(buffer: Buffer) {
    // SAFETY: forwarded from the caller.
    let freed = catch_unwind(AssertUnwindSafe(|| drop(unsafe { buffer.into_vec() })));
    if let Err(payload) = freed {
        std::mem::forget(payload);
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"\"unserialisable answer\"".to_vec())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
