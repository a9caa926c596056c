//! bottle's plugin ABI: how a backend compiled as a dynamic library (a `cdylib`) is found,
//! checked and called by the `bottle` binary at run time.
//!
//! A plugin author writes a type implementing the synchronous [`PluginBackend`] trait and
//! one line, [`export_backend!`]; the host (the `bottle` binary, feature `host`) loads the
//! library with [`host::load`] and gets a value implementing
//! [`bottle_core::backend::Backend`], so a plugin is just one more name in bottle's table of
//! backends.
//!
//! ```ignore
//! use bottle_plugin::{export_backend, PluginBackend};
//! use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
//! use bottle_core::plan::Plan;
//!
//! struct Hello;
//!
//! impl PluginBackend for Hello {
//!     const NAME: &'static str = "hello";
//!     const ABOUT: &'static str = "prints the bottle it is asked to start";
//!     fn open() -> Result<Self, BackendError> { Ok(Hello) }
//!     fn up(&self, plan: &Plan, _: &UpOptions) -> Result<(), BackendError> {
//!         println!("up {}", plan.slug);
//!         Ok(())
//!     }
//!     fn down(&self, _: &Scope) -> Result<(), BackendError> { Ok(()) }
//!     fn ps(&self, _: &Scope) -> Result<Vec<BottleStatus>, BackendError> { Ok(vec![]) }
//!     fn cleanup(&self, _: &Scope) -> Result<Vec<Resource>, BackendError> { Ok(vec![]) }
//!     fn exec(&self, _: &ExecRequest) -> Result<i32, BackendError> { Ok(0) }
//! }
//!
//! export_backend!(Hello);
//! ```
//!
//! # The ABI
//!
//! Rust has no stable ABI: a trait object, a `Vec`, a `String` or a future laid out by one
//! compiler (or one set of crate versions) cannot be trusted by a library built by another,
//! and async futures additionally depend on the executor they were made for. So nothing of
//! the sort crosses the boundary. The library exports exactly two symbols, both plain data:
//!
//! | symbol | type | read |
//! |---|---|---|
//! | [`ABI_VERSION_SYMBOL`] `BOTTLE_PLUGIN_ABI_VERSION` | `u32` | first, before anything else is touched |
//! | [`TABLE_SYMBOL`] `BOTTLE_PLUGIN_TABLE_V1` | [`PluginTable`] (`#[repr(C)]`) | only when the version is [`ABI_VERSION`] |
//!
//! The version is a static rather than a function so that checking it runs no code of the
//! plugin; its name and type are frozen forever, whatever later versions change. The table's
//! symbol carries the version in its name, so a library of another version cannot be misread
//! as this one even if the check were skipped.
//!
//! The table holds `extern "C"` function pointers (each nullable, checked by the host):
//! [`CallFn`]s `info`, `up`, `down`, `ps`, `cleanup`, `exec`, and [`FreeFn`] `free`. Every
//! call takes its request as bytes and gives its answer as bytes, and returns a status:
//!
//! - request: `input`/`input_len`, JSON of a [`wire`] request type (for `up`, core's
//!   [`Plan`](bottle_core::plan::Plan) with the options). The bytes belong to the host and are
//!   only borrowed for the duration of the call.
//! - answer: the plugin fills `*output` with a [`Buffer`] it allocated: JSON of the result on
//!   [`STATUS_OK`], of a [`wire::WireError`] on [`STATUS_ERROR`], of the panic message (a
//!   string) on [`STATUS_PANIC`].
//! - ownership: the host copies the answer out and hands the buffer back, unchanged, to the
//!   plugin's `free`, exactly once. Memory is always freed by the allocator that allocated it.
//!
//! # Panics
//!
//! Unwinding out of an `extern "C"` function aborts the process, so every exported function
//! runs the plugin's code under [`std::panic::catch_unwind`] and turns a panic into
//! [`STATUS_PANIC`]; the host reports it as an error naming the plugin, and bottle carries
//! on. A panic payload whose own `Drop` panics is leaked rather than dropped. This only works
//! when the plugin is built with `panic = "unwind"` (the default): with `panic = "abort"` a
//! panic kills the process before anything can catch it, so [`export_backend!`] refuses to
//! compile under `panic = "abort"`. (The host's own panic strategy does not matter: a cdylib
//! carries its own copy of the standard library and its own panic runtime.)
//!
//! # Why a synchronous trait
//!
//! Core's [`Backend`](bottle_core::backend::Backend) is async, but a future cannot cross the
//! boundary, and the host's tokio runtime is invisible to the plugin (a cdylib has its own
//! copy of tokio's statics, so `tokio::spawn` inside a plugin would find no runtime). The
//! plugin therefore implements the synchronous [`PluginBackend`]; the host calls it on a
//! blocking thread ([`tokio::task::spawn_blocking`]), so a plugin may block freely: run
//! `kubectl`, wait on a socket, or drive its own runtime with `block_on` if it wants async.
//!
//! # What a plugin is not
//!
//! A plugin runs inside the `bottle` process, with bottle's rights: it can read every file
//! bottle can (identity keys included, which it receives in the plan anyway), run programs,
//! and talk to the container engine. Loading a library also runs its initialisers before any
//! check. It is not a sandbox: only install plugins you would run as programs.
#![deny(missing_docs)]

mod export;
#[cfg(feature = "host")]
pub mod host;
pub mod wire;

pub use export::PluginBackend;

#[doc(hidden)]
pub mod __private {
    //! Used by [`crate::export_backend!`]; not part of the API.
    pub use crate::export::{call_free, call_info, call_op, Instance};
}

/// The version of this ABI. Bumped whenever the table, a request, an answer or the rules
/// above change in a way an older host or plugin would misread. 2: `down`, `ps` and
/// `cleanup` take a [`wire::ScopeRequest`] (project and bottle) instead of a slug, and
/// `exec` names the project; a plugin of version 1 would act on every project's bottles.
pub const ABI_VERSION: u32 = 2;

/// The symbol of the ABI version: a `static u32`. Its name and type never change.
pub const ABI_VERSION_SYMBOL: &str = "BOTTLE_PLUGIN_ABI_VERSION";

/// The symbol of the function table for [`ABI_VERSION`] 1: a `static` [`PluginTable`].
pub const TABLE_SYMBOL: &str = "BOTTLE_PLUGIN_TABLE_V1";

/// The call succeeded; the output holds the JSON of its result.
pub const STATUS_OK: i32 = 0;
/// The backend returned an error; the output holds the JSON of a [`wire::WireError`].
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the output holds the panic message as a JSON string.
pub const STATUS_PANIC: i32 = 2;

/// Bytes allocated by the plugin and handed to the host, which gives them back to the
/// plugin's `free`. An empty buffer has a null `ptr`.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    /// Start of the bytes; null when empty.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocated capacity, needed to free it; only the plugin reads it.
    pub cap: usize,
}

impl Buffer {
    /// An empty buffer, as the host passes it to be filled.
    pub const fn empty() -> Buffer {
        Buffer {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Gives up a vector's allocation; [`Buffer::into_vec`] takes it back.
    pub fn from_vec(bytes: Vec<u8>) -> Buffer {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Buffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// Takes back an allocation made by [`Buffer::from_vec`].
    ///
    /// # Safety
    ///
    /// `self` must come from [`Buffer::from_vec`] in the same library (the same allocator)
    /// and not have been taken back before, or have a null `ptr`.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: by the caller's promise, the parts come from a Vec of this allocator.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }
}

/// One call into the plugin: reads `input_len` bytes at `input` (JSON of the request),
/// writes the answer into `*output`, returns a `STATUS_*` code.
pub type CallFn =
    unsafe extern "C" fn(input: *const u8, input_len: usize, output: *mut Buffer) -> i32;

/// Frees a [`Buffer`] the plugin allocated.
pub type FreeFn = unsafe extern "C" fn(buffer: Buffer);

/// The functions a plugin exports, under [`TABLE_SYMBOL`]. Every entry is nullable so that a
/// hand-written table with a hole is an error the host reports, not a jump to address 0.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// Must equal [`ABI_VERSION`] (checked again after the version symbol).
    pub abi_version: u32,
    /// Describes the plugin: request `{}`, answer [`wire::PluginInfo`].
    pub info: Option<CallFn>,
    /// `Backend::up`: request [`wire::UpRequest`], answer `null`.
    pub up: Option<CallFn>,
    /// `Backend::down`: request [`wire::ScopeRequest`], answer `null`.
    pub down: Option<CallFn>,
    /// `Backend::ps`: request [`wire::ScopeRequest`], answer a list of
    /// [`BottleStatus`](bottle_core::backend::BottleStatus).
    pub ps: Option<CallFn>,
    /// `Backend::cleanup`: request [`wire::ScopeRequest`], answer a list of
    /// [`Resource`](bottle_core::backend::Resource).
    pub cleanup: Option<CallFn>,
    /// `Backend::exec`: request [`wire::ExecWire`], answer the exit code.
    pub exec: Option<CallFn>,
    /// Frees every [`Buffer`] the functions above wrote.
    pub free: Option<FreeFn>,
}

/// Exports a [`PluginBackend`] as a bottle plugin: the ABI version and the function table.
///
/// Use it once, at the root of a crate built with `crate-type = ["cdylib"]`:
/// `bottle_plugin::export_backend!(MyBackend);`. The backend is opened
/// ([`PluginBackend::open`]) on the first call that needs it and kept for the life of the
/// process; a failed open is retried on the next call.
#[macro_export]
macro_rules! export_backend {
    ($backend:ty) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "a bottle plugin must be built with panic = \"unwind\" (the default): with \
             panic = \"abort\" a panic in the plugin would kill bottle instead of coming \
             back as an error"
        );

        #[doc(hidden)]
        mod __bottle_plugin_export {
            #[allow(unused_imports)]
            use super::*;

            static INSTANCE: $crate::__private::Instance<$backend> =
                $crate::__private::Instance::new();

            unsafe extern "C" fn info(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_info::<$backend>(
                        env!("CARGO_PKG_VERSION"),
                        input,
                        input_len,
                        output,
                    )
                }
            }

            unsafe extern "C" fn up(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_op(
                        "up",
                        input,
                        input_len,
                        output,
                        |req: $crate::wire::UpRequest| {
                            INSTANCE.get()?.up(&req.plan, &req.options())
                        },
                    )
                }
            }

            unsafe extern "C" fn down(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_op(
                        "down",
                        input,
                        input_len,
                        output,
                        |req: $crate::wire::ScopeRequest| INSTANCE.get()?.down(&req),
                    )
                }
            }

            unsafe extern "C" fn ps(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_op(
                        "ps",
                        input,
                        input_len,
                        output,
                        |req: $crate::wire::ScopeRequest| INSTANCE.get()?.ps(&req),
                    )
                }
            }

            unsafe extern "C" fn cleanup(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_op(
                        "cleanup",
                        input,
                        input_len,
                        output,
                        |req: $crate::wire::ScopeRequest| INSTANCE.get()?.cleanup(&req),
                    )
                }
            }

            unsafe extern "C" fn exec(
                input: *const u8,
                input_len: usize,
                output: *mut $crate::Buffer,
            ) -> i32 {
                // SAFETY: the host upholds the CallFn contract.
                unsafe {
                    $crate::__private::call_op(
                        "exec",
                        input,
                        input_len,
                        output,
                        |req: $crate::wire::ExecWire| INSTANCE.get()?.exec(&req.into_request()),
                    )
                }
            }

            unsafe extern "C" fn free(buffer: $crate::Buffer) {
                // SAFETY: the host hands back buffers this library made, once each.
                unsafe { $crate::__private::call_free(buffer) }
            }

            /// The ABI version, read by the host before anything else.
            #[unsafe(no_mangle)]
            pub static BOTTLE_PLUGIN_ABI_VERSION: u32 = $crate::ABI_VERSION;

            /// The function table of ABI version 1.
            #[unsafe(no_mangle)]
            pub static BOTTLE_PLUGIN_TABLE_V1: $crate::PluginTable = $crate::PluginTable {
                abi_version: $crate::ABI_VERSION,
                info: Some(info),
                up: Some(up),
                down: Some(down),
                ps: Some(ps),
                cleanup: Some(cleanup),
                exec: Some(exec),
                free: Some(free),
            };
        }
    };
}
