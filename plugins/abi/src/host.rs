//! The host side (feature `host`): finding plugin libraries, loading and checking them, and
//! wrapping each as a [`Backend`].
//!
//! # Loading, step by step
//!
//! [`load`] never crashes on a bad library; each failure is a [`LoadError`] naming the file:
//!
//! 1. The path is made absolute (a bare `libx.so` would otherwise make the dynamic loader
//!    search the system's library path) and must exist.
//! 2. `dlopen` with `RTLD_NOW | RTLD_LOCAL`: every undefined symbol is resolved now, so a
//!    library missing one fails here with the loader's message instead of aborting bottle
//!    at the first call; `RTLD_LOCAL` keeps its symbols from leaking into later libraries.
//!    (Loading runs the library's initialisers: see the crate docs on rights.)
//! 3. The version symbol ([`crate::ABI_VERSION_SYMBOL`]) is read, and compared with
//!    [`crate::ABI_VERSION`], before anything else of the library is touched.
//! 4. The table symbol ([`crate::TABLE_SYMBOL`]) is resolved; its own version and every
//!    entry are checked (no null function).
//! 5. `info` is called: the plugin names its backend and the plan format it reads, which
//!    must be this bottle's [`PLAN_FORMAT`].
//!
//! A loaded library is never unloaded: unloading Rust code that may have registered
//! thread-local destructors or spawned threads is unsound, and a process of bottle is short.
//!
//! # Calls
//!
//! Every [`Backend`] method of [`LoadedBackend`] serialises its request to JSON, moves the
//! blocking FFI call to tokio's blocking pool ([`tokio::task::spawn_blocking`]) so the async
//! runtime's workers never wait on plugin code, copies the answer out, returns the buffer to
//! the plugin's `free`, and turns the status into a result. A panic in the plugin arrives as
//! a [`BackendError::Other`] naming the plugin and the operation.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bottle_core::backend::{
    Backend, BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions,
};
use bottle_core::plan::{Plan, PLAN_FORMAT};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{ExecWire, PluginInfo, UpRequest, WireError};
use crate::{
    Buffer, CallFn, FreeFn, PluginTable, ABI_VERSION, ABI_VERSION_SYMBOL, STATUS_ERROR, STATUS_OK,
    STATUS_PANIC, TABLE_SYMBOL,
};

/// The environment variable listing plugin files and directories, separated by `:`.
pub const PATH_ENV: &str = "BOTTLE_PLUGIN_PATH";

/// A plugin library could not be used. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The path does not exist (or cannot be read).
    #[error("plugin {}: {message}\n  hint: check the path given to --plugin or in BOTTLE_PLUGIN_PATH", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
        /// What the file system said.
        message: String,
    },
    /// The dynamic loader refused the file.
    #[error("plugin {}: cannot load it: {message}\n  hint: a plugin is a shared library built for this machine (a Rust crate with crate-type = [\"cdylib\"], e.g. target/debug/libNAME.so)", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The library has no ABI version symbol: it is not a bottle plugin.
    #[error("plugin {}: not a bottle plugin: it exports no symbol {ABI_VERSION_SYMBOL}\n  hint: a plugin crate calls bottle_plugin::export_backend!(...) once", path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The library speaks another version of the ABI.
    #[error("plugin {}: built for plugin ABI version {found}, but this bottle speaks version {ABI_VERSION}\n  hint: rebuild the plugin against the bottle-plugin crate of this bottle ({})", path.display(), env!("CARGO_PKG_VERSION"))]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The version it exports.
        found: u32,
    },
    /// The library has the right version but lacks the table.
    #[error("plugin {}: exports ABI version {ABI_VERSION} but no symbol {symbol}\n  hint: export the plugin with bottle_plugin::export_backend!(...) rather than by hand", path.display())]
    MissingSymbol {
        /// The file.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The table is malformed.
    #[error("plugin {}: its function table is invalid: {problem}", path.display())]
    BadTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The plugin could not describe itself (an error or a panic in `info`).
    #[error("plugin {}: cannot describe itself: {message}", path.display())]
    Info {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The plugin reads another plan format.
    #[error("plugin {} (backend '{name}'): reads plan format {found}, but this bottle writes format {PLAN_FORMAT}\n  hint: rebuild the plugin against this bottle's bottle-core", path.display())]
    PlanFormat {
        /// The file.
        path: PathBuf,
        /// The backend it names.
        name: String,
        /// The format it reads.
        found: u32,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotFound { path, .. }
            | LoadError::Open { path, .. }
            | LoadError::NotAPlugin { path }
            | LoadError::AbiMismatch { path, .. }
            | LoadError::MissingSymbol { path, .. }
            | LoadError::BadTable { path, .. }
            | LoadError::Info { path, .. }
            | LoadError::PlanFormat { path, .. } => path,
        }
    }

    /// The ABI version the file exports, when it got that far.
    pub fn abi_version(&self) -> Option<u32> {
        match self {
            LoadError::AbiMismatch { found, .. } => Some(*found),
            LoadError::MissingSymbol { .. }
            | LoadError::BadTable { .. }
            | LoadError::Info { .. }
            | LoadError::PlanFormat { .. } => Some(ABI_VERSION),
            _ => None,
        }
    }
}

/// Where a plugin was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// `--plugin PATH`.
    Flag,
    /// [`PATH_ENV`].
    EnvPath,
    /// The user's plugin directory, [`data_dir`].
    DataDir,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--plugin",
            Origin::EnvPath => PATH_ENV,
            Origin::DataDir => "plugin dir",
        })
    }
}

/// A library to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The file, absolute.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
}

/// What [`discover`] found: libraries to load, and paths that could not even be looked at.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Libraries to load, each file once, in order of precedence: `--plugin`, then
    /// [`PATH_ENV`], then the plugin directory; within a directory by file name.
    pub candidates: Vec<Candidate>,
    /// Paths named explicitly that do not exist or cannot be listed.
    pub problems: Vec<(Origin, LoadError)>,
    /// Every place looked in, for `bottle plugins`.
    pub searched: Vec<(Origin, PathBuf)>,
}

/// The user's plugin directory: `$XDG_DATA_HOME/bottle/plugins`, or
/// `~/.local/share/bottle/plugins` when `XDG_DATA_HOME` is unset, empty or relative.
pub fn data_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        })?;
    Some(base.join("bottle").join("plugins"))
}

/// Lists the libraries to load from `--plugin` paths (`flags`), [`PATH_ENV`]'s value
/// (`env_path`) and the plugin directory (`data_dir`). A path naming a file is taken
/// whatever its name; a directory contributes its `*.so` files. A missing plugin directory
/// is fine; a missing explicit path is a problem. The same file found twice (by any path)
/// is listed once, where it was found first.
pub fn discover(flags: &[PathBuf], env_path: Option<&OsStr>, data_dir: Option<&Path>) -> Discovery {
    let mut found = Discovery::default();
    let mut seen = std::collections::HashSet::new();
    let env_entries: Vec<PathBuf> = env_path
        .map(|v| {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let explicit = flags
        .iter()
        .map(|p| (Origin::Flag, p.clone()))
        .chain(env_entries.into_iter().map(|p| (Origin::EnvPath, p)));
    for (origin, path) in explicit {
        let path = absolute(&path);
        found.searched.push((origin, path.clone()));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => list_dir(&mut found, &mut seen, origin, &path),
            Ok(_) => add(&mut found, &mut seen, origin, path),
            Err(e) => found.problems.push((
                origin,
                LoadError::NotFound {
                    path,
                    message: e.to_string(),
                },
            )),
        }
    }
    if let Some(dir) = data_dir {
        found.searched.push((Origin::DataDir, dir.to_owned()));
        if dir.is_dir() {
            list_dir(&mut found, &mut seen, Origin::DataDir, dir);
        }
    }
    found
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn add(
    found: &mut Discovery,
    seen: &mut std::collections::HashSet<PathBuf>,
    origin: Origin,
    path: PathBuf,
) {
    let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    if seen.insert(key) {
        found.candidates.push(Candidate { path, origin });
    }
}

fn list_dir(
    found: &mut Discovery,
    seen: &mut std::collections::HashSet<PathBuf>,
    origin: Origin,
    dir: &Path,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.problems.push((
                origin,
                LoadError::NotFound {
                    path: dir.to_owned(),
                    message: format!("cannot list the directory: {e}"),
                },
            ));
            return;
        }
    };
    let mut libs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension() == Some(OsStr::new("so")) && p.is_file())
        .collect();
    libs.sort();
    for lib in libs {
        add(found, seen, origin, lib);
    }
}

/// The table of a loaded plugin, every entry checked.
#[derive(Clone, Copy)]
struct Table {
    info: CallFn,
    up: CallFn,
    down: CallFn,
    ps: CallFn,
    cleanup: CallFn,
    exec: CallFn,
    free: FreeFn,
}

impl Table {
    fn check(raw: &PluginTable) -> Result<Table, String> {
        if raw.abi_version != ABI_VERSION {
            return Err(format!(
                "the table says ABI version {}, the version symbol {ABI_VERSION}",
                raw.abi_version
            ));
        }
        let missing: Vec<&str> = [
            ("info", raw.info.is_none()),
            ("up", raw.up.is_none()),
            ("down", raw.down.is_none()),
            ("ps", raw.ps.is_none()),
            ("cleanup", raw.cleanup.is_none()),
            ("exec", raw.exec.is_none()),
            ("free", raw.free.is_none()),
        ]
        .into_iter()
        .filter(|(_, null)| *null)
        .map(|(name, _)| name)
        .collect();
        match (
            raw.info,
            raw.up,
            raw.down,
            raw.ps,
            raw.cleanup,
            raw.exec,
            raw.free,
        ) {
            (Some(info), Some(up), Some(down), Some(ps), Some(cleanup), Some(exec), Some(free)) => {
                Ok(Table {
                    info,
                    up,
                    down,
                    ps,
                    cleanup,
                    exec,
                    free,
                })
            }
            _ => Err(format!("null entries: {}", missing.join(", "))),
        }
    }

    /// One blocking call: the answer's status and bytes, the buffer returned to the plugin.
    fn invoke(&self, f: CallFn, input: &[u8]) -> (i32, Vec<u8>) {
        let mut out = Buffer::empty();
        // SAFETY: `f` comes from a checked table of a library that is never unloaded; the
        // input is valid for the call; `out` is a valid, writable Buffer.
        let status = unsafe { f(input.as_ptr(), input.len(), &mut out) };
        let bytes = if out.ptr.is_null() || out.len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin wrote a buffer of `len` initialised bytes it owns until freed.
            unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
        };
        // SAFETY: handing back, once and unchanged, what the plugin gave.
        unsafe { (self.free)(out) };
        (status, bytes)
    }
}

/// The answer of one call, before it is read.
enum Answer {
    Ok(Vec<u8>),
    Error(WireError),
    Panic(String),
    Garbled(String),
}

fn answer(status: i32, bytes: Vec<u8>) -> Answer {
    match status {
        STATUS_OK => Answer::Ok(bytes),
        STATUS_ERROR => match serde_json::from_slice::<WireError>(&bytes) {
            Ok(e) => Answer::Error(e),
            Err(e) => Answer::Garbled(format!("an error bottle cannot read ({e})")),
        },
        STATUS_PANIC => Answer::Panic(
            serde_json::from_slice::<String>(&bytes)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned()),
        ),
        other => Answer::Garbled(format!("unknown status {other}")),
    }
}

/// A loaded, checked plugin.
#[derive(Clone)]
pub struct Plugin {
    path: PathBuf,
    info: PluginInfo,
    table: Table,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Loads and checks the plugin library at `path` (see the module docs for the steps).
pub fn load(path: &Path) -> Result<Plugin, LoadError> {
    let path = absolute(path);
    if let Err(e) = std::fs::metadata(&path) {
        return Err(LoadError::NotFound {
            path,
            message: e.to_string(),
        });
    }
    let library = open(&path).map_err(|message| LoadError::Open {
        path: path.clone(),
        message,
    })?;
    // Never unloaded (see the module docs).
    let library: &'static libloading::Library = Box::leak(Box::new(library));

    // SAFETY: the symbol is a `static u32` by the ABI's frozen contract; it is only read.
    let version = unsafe {
        let symbol = library
            .get::<*const u32>(symbol_name(ABI_VERSION_SYMBOL).as_bytes())
            .map_err(|_| LoadError::NotAPlugin { path: path.clone() })?;
        let address: *const u32 = *symbol;
        if address.is_null() {
            return Err(LoadError::NotAPlugin { path });
        }
        address.read_unaligned()
    };
    if version != ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            path,
            found: version,
        });
    }

    // SAFETY: the library exports ABI version 1, whose table symbol is a `static
    // PluginTable`; the library is never unloaded, so the reference lives as long as needed.
    let raw: &'static PluginTable = unsafe {
        let symbol = library
            .get::<*const PluginTable>(symbol_name(TABLE_SYMBOL).as_bytes())
            .map_err(|_| LoadError::MissingSymbol {
                path: path.clone(),
                symbol: TABLE_SYMBOL,
            })?;
        let address: *const PluginTable = *symbol;
        match address.as_ref() {
            Some(table) => table,
            None => {
                return Err(LoadError::MissingSymbol {
                    path,
                    symbol: TABLE_SYMBOL,
                })
            }
        }
    };
    let table = Table::check(raw).map_err(|problem| LoadError::BadTable {
        path: path.clone(),
        problem,
    })?;

    let (status, bytes) = table.invoke(table.info, b"{}");
    let info: PluginInfo = match answer(status, bytes) {
        Answer::Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LoadError::Info {
            path: path.clone(),
            message: format!("its answer is not a plugin description: {e}"),
        })?,
        Answer::Error(e) => {
            return Err(LoadError::Info {
                path,
                message: BackendError::from(e).to_string(),
            })
        }
        Answer::Panic(message) => {
            return Err(LoadError::Info {
                path,
                message: format!("it panicked: {message}"),
            })
        }
        Answer::Garbled(what) => {
            return Err(LoadError::Info {
                path,
                message: format!("it answered with {what}"),
            })
        }
    };
    if info.plan_format != PLAN_FORMAT {
        return Err(LoadError::PlanFormat {
            path,
            name: info.name,
            found: info.plan_format,
        });
    }
    if info.name.is_empty() {
        return Err(LoadError::Info {
            path,
            message: "it names no backend".to_owned(),
        });
    }
    Ok(Plugin { path, info, table })
}

fn symbol_name(name: &str) -> String {
    format!("{name}\0")
}

#[cfg(unix)]
fn open(path: &Path) -> Result<libloading::Library, String> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its initialisers; that is what loading a plugin means,
    // and the docs say a plugin runs with bottle's rights.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
        .map(Into::into)
        .map_err(|e| e.to_string())
}

#[cfg(not(unix))]
fn open(path: &Path) -> Result<libloading::Library, String> {
    // SAFETY: as above.
    unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())
}

impl Plugin {
    /// The library's path, absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The plugin as a backend.
    pub fn backend(&self) -> LoadedBackend {
        LoadedBackend {
            plugin: self.clone(),
        }
    }
}

/// A plugin as a [`Backend`]: each method is one call through the table, on a blocking
/// thread.
#[derive(Debug, Clone)]
pub struct LoadedBackend {
    plugin: Plugin,
}

#[derive(Clone, Copy)]
enum Op {
    Up,
    Down,
    Ps,
    Cleanup,
    Exec,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Up => "up",
            Op::Down => "down",
            Op::Ps => "ps",
            Op::Cleanup => "cleanup",
            Op::Exec => "exec",
        }
    }
}

impl LoadedBackend {
    /// Calls `op` with `request`, blocking (use from a blocking thread).
    fn call_blocking<Resp: DeserializeOwned>(
        &self,
        op: Op,
        input: &[u8],
    ) -> Result<Resp, BackendError> {
        let t = &self.plugin.table;
        let f = match op {
            Op::Up => t.up,
            Op::Down => t.down,
            Op::Ps => t.ps,
            Op::Cleanup => t.cleanup,
            Op::Exec => t.exec,
        };
        let (status, bytes) = t.invoke(f, input);
        let who = format!(
            "plugin backend '{}' ({})",
            self.plugin.info.name,
            self.plugin.path.display()
        );
        match answer(status, bytes) {
            Answer::Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BackendError::Other(format!(
                    "{who}: its answer to {} is not what bottle expects: {e}",
                    op.name()
                ))
            }),
            Answer::Error(e) => Err(e.into()),
            Answer::Panic(message) => Err(BackendError::Other(format!(
                "{who} panicked during {}: {message}\n  hint: this is a bug in the plugin; bottle itself is unharmed",
                op.name()
            ))),
            Answer::Garbled(what) => Err(BackendError::Other(format!(
                "{who} answered {} with {what}",
                op.name()
            ))),
        }
    }

    async fn call<Req, Resp>(&self, op: Op, request: &Req) -> Result<Resp, BackendError>
    where
        Req: Serialize,
        Resp: DeserializeOwned + Send + 'static,
    {
        let input = serde_json::to_vec(request).map_err(|e| {
            BackendError::Other(format!("cannot write the {} request: {e}", op.name()))
        })?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.call_blocking(op, &input))
            .await
            .map_err(|e| {
                BackendError::Other(format!(
                    "the call of plugin backend '{}' did not finish: {e}",
                    self.plugin.info.name
                ))
            })?
    }

    /// The plugin behind the backend.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }
}

#[async_trait]
impl Backend for LoadedBackend {
    fn name(&self) -> &str {
        &self.plugin.info.name
    }

    async fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
        self.call(Op::Up, &UpRequest::new(plan, opts)).await
    }

    async fn down(&self, scope: &Scope) -> Result<(), BackendError> {
        self.call(Op::Down, scope).await
    }

    async fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        self.call(Op::Ps, scope).await
    }

    async fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        self.call(Op::Cleanup, scope).await
    }

    async fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError> {
        // The wire carries no exec options: refuse them rather than drop them unseen.
        if !request.options.is_empty() {
            return Err(BackendError::Other(format!(
                "the {} backend (a plugin) cannot run a command as another user, in another directory or with more environment\n  hint: drop -u, -w and -e, e.g. run `env K=V sh -c 'cd DIR && CMD'` instead",
                self.name()
            )));
        }
        self.call(Op::Exec, &ExecWire::from(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_orders_dedups_and_reports_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let envdir = dir.path().join("env");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&envdir).unwrap();
        for f in ["b.so", "a.so", "notes.txt"] {
            std::fs::write(data.join(f), b"").unwrap();
        }
        std::fs::write(envdir.join("e.so"), b"").unwrap();
        let flag = data.join("b.so");
        let missing = dir.path().join("nope.so");
        let env = std::env::join_paths([envdir.clone(), missing.clone(), PathBuf::new()]).unwrap();

        let found = discover(std::slice::from_ref(&flag), Some(&env), Some(&data));
        let got: Vec<(Origin, PathBuf)> = found
            .candidates
            .iter()
            .map(|c| (c.origin, c.path.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Origin::Flag, flag),
                (Origin::EnvPath, envdir.join("e.so")),
                (Origin::DataDir, data.join("a.so")),
            ]
        );
        assert_eq!(found.problems.len(), 1);
        assert_eq!(found.problems[0].1.path(), missing);
        assert!(found.problems[0].1.to_string().contains("nope.so"));
    }

    #[test]
    fn a_missing_plugin_dir_is_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let found = discover(&[], None, Some(&dir.path().join("absent")));
        assert!(found.candidates.is_empty() && found.problems.is_empty());
    }

    #[test]
    fn a_file_that_is_no_library_is_a_load_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libjunk.so");
        std::fs::write(&path, b"not an ELF file").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("libjunk.so"), "{err}");
    }
}
