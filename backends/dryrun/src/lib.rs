//! bottle's dry-run backend: prints what a bottle command would do as a POSIX sh script for
//! the docker CLI (backend `dry-run`) or the podman CLI (backend `dry-run-podman`), and
//! changes nothing.
//!
//! The printed `up` script is meant to be *honest*: run against an engine, it creates the same
//! bottle the docker (or podman) backend creates through the engine API, from the same
//! [`Plan`]. The printers are pure functions ([`render_up`], [`render_down`],
//! [`render_cleanup`], [`render_ps`], [`render_exec`], [`render_stop`], [`render_start`])
//! that the [`Backend`] methods of [`DryRun`] call and write to a sink, so tests can
//! snapshot them directly.
//!
//! # Design decisions
//!
//! - **Quoting.** Every word of every command goes through `bottle_core::quote::sh` (the
//!   `shlex` crate), constants included; nothing from the plan is pasted raw. The only raw
//!   text is shell syntax of our own and comments, where plan values are escaped onto one line
//!   (`str::escape_debug`) so a newline in, say, a bottle name cannot end the comment. A value
//!   the CLI cannot carry (a NUL byte, an env or label key holding `=`, a container name the
//!   engine would refuse) is a [`RenderError`], never a best effort.
//! - **Order of the `up` script.** Header and `set -eu`; one check per image (nothing is pulled
//!   or built: `create` gets `--pull never`, as an API create never pulls); a check for GNU
//!   tar when there are files; the leftover probe (every network and container name of the
//!   plan; any found stops the script, naming `bottle cleanup <slug>`); then the staging of
//!   *all* files, so a missing host file stops the script before anything exists; then the
//!   networks; then, per container in plan order: `create`, the file archives (`cp`),
//!   `network connect` for each later network, `start`.
//! - **Failure.** `set -e` stops at the first failing step. An `EXIT` trap removes the
//!   staging directory and, when the script fails after it began creating, removes what it
//!   created (containers, then networks, by name: the leftover probe proved none existed
//!   before), as the engine backends do, unless [`UpOptions::keep_on_failure`] is set
//!   ([`render_up_with`]). `HUP`, `INT` and `TERM` exit through the same trap.
//! - **Entrypoint.** The plan's entrypoint is a list (`ENTRYPOINT` exec form). docker's
//!   `--entrypoint` takes one string, the program; a longer entrypoint is printed as
//!   `--entrypoint FIRST` with the remaining elements placed before the command's arguments
//!   after the image. The process's argv is the same (the engine execs entrypoint ++ cmd),
//!   though `docker inspect` shows the split. podman's `--entrypoint` parses a value that is a
//!   JSON array as the whole list (and would misread a lone program that looks like one), so
//!   for podman the entrypoint is always printed as a JSON array and is exact. An *empty*
//!   entrypoint list is refused: the APIs read it as "the image's", the CLIs as "none".
//! - **Files.** Each file is written into a staging directory made with `mktemp -d` (mode
//!   0700), under `files/<container>/<path>`. Text that ends in a newline comes from a quoted
//!   heredoc (`<<'BOTTLE_EOF'`, no expansion) whose delimiter is chosen not to occur anywhere
//!   in the text (`BOTTLE_EOF_1`, `_2`, ... otherwise). A heredoc always ends in a newline, so
//!   text that does not is written with `printf '%s' 'QUOTED'` instead (exact bytes: single
//!   quotes keep newlines and everything else), and empty text with `: >file`. A host file
//!   (an identity key) is copied with `cp` from its host path when the script runs: its bytes
//!   are secret and never appear in the output. Then each file is `chmod`ed to its mode.
//! - **Ownership.** Files reach the container as tar archives, one per distinct `uid:gid`,
//!   made with GNU tar `--numeric-owner --owner=:UID --group=:GID --no-recursion` (the `:ID`
//!   form is numeric without a name lookup; only files are listed, no directories, so parent
//!   directories of the image are left alone), and fed to `docker cp - NAME:/`. Without `-a`,
//!   docker keeps the archive's numeric owners and modes. podman's `cp` chowns everything to
//!   the container's user unless given `--archive=false`, which it therefore gets. Each
//!   archive is written to the staging directory and fed with `<` rather than piped: POSIX sh
//!   has no `pipefail`, and a failing `tar` in a pipe would go unnoticed.
//! - **Hardening flags.** `--cap-drop`/`--cap-add` each, `--security-opt no-new-privileges`
//!   (same for both CLIs), `--pids-limit N`, `--memory BYTES` (a plain number is bytes for
//!   both CLIs; omitted when the plan's limit is not positive, meaning no limit). Extra hosts
//!   are `--add-host host:ip` with IPv6 unbracketed: both CLIs split at the first `:`, and
//!   older docker releases refuse the bracketed form.
//! - **docker vs podman.** The syntax is the same except: the program; `--entrypoint` (above);
//!   `cp --archive=false`; `rm -f --time 0` (docker's `rm -f` kills at once, podman's first
//!   waits ten seconds for a stop); existence checks (`podman image|container|network exists`
//!   instead of `docker ... inspect`); `--format` templates (`.Label "k"` for docker,
//!   `index .Labels "k"` for podman's `ps` and `index .Network.Labels "k"` for its
//!   `network ls`). The printed scripts were replayed once by hand against Docker 20.10 and
//!   rootful Podman 4.3: owners, modes, entrypoints, extra hosts, labels, limits, the leftover
//!   probe, the rollback and `down` behaved as described here.
//! - **down, cleanup, ps, exec.** `down` and `cleanup` find resources by label
//!   (`bottle.managed`, with `bottle.project=<project>` and `bottle.slug=<slug>` when the
//!   scope names them; a filter cannot select a missing label, so resources of a bottle older
//!   than projects are reached by `cleanup --all` only; `cleanup` without `--all` goes bottle
//!   by bottle and skips each with a live container) with `ps -aq` and
//!   `network ls -q`, captured in a variable first (so a failing listing stops the script)
//!   and removed with `xargs -r ... rm -f` / `network rm`: idempotent. `ps` prints its listing
//!   commands and returns no bottles; `exec` prints `exec [-it] bottle-<project>-<slug>-agent CMD...`
//!   and returns 0; `cleanup` returns nothing removed.
//! - **stop, start.** `stop` lists the running containers by label (`ps -q`) and stops
//!   them with `xargs -r ... stop`: idempotent. `start` prints one `start NAME` per container
//!   of the plan, in plan order (the order `up` starts them in); `start` of a running
//!   container changes nothing, and a missing one stops the script. The printed `up` does
//!   not resume a stopped bottle as the engine backends' `up` does: its leftover probe
//!   stops it, and the printed `start` is the way. Unlike the engine backends' `start`, the printed one
//!   does not point the agent's host entries at its sidecars' new addresses: on podman,
//!   which re-addresses a container that starts again, the agent may then not reach its
//!   gate until `down` and `up` (a known gap).
#![deny(missing_docs)]

mod render;

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bottle_core::backend::{
    Backend, BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions,
};
use bottle_core::plan::Plan;

pub use render::{
    render_cleanup, render_down, render_exec, render_ps, render_start, render_stop, render_up,
    render_up_with, RenderError,
};

/// The CLI syntax the scripts are printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cli {
    /// The `docker` CLI.
    Docker,
    /// The `podman` CLI.
    Podman,
}

impl Cli {
    /// Both syntaxes.
    pub const ALL: [Cli; 2] = [Cli::Docker, Cli::Podman];

    /// The program the scripts call.
    pub fn program(self) -> &'static str {
        match self {
            Cli::Docker => "docker",
            Cli::Podman => "podman",
        }
    }

    /// The name of the dry-run backend printing this syntax: `dry-run` or `dry-run-podman`.
    pub fn backend_name(self) -> &'static str {
        match self {
            Cli::Docker => "dry-run",
            Cli::Podman => "dry-run-podman",
        }
    }

    /// The syntax of the dry-run backend called `name`, if it is one.
    pub fn from_backend_name(name: &str) -> Option<Cli> {
        Cli::ALL.into_iter().find(|c| c.backend_name() == name)
    }
}

/// Where a [`DryRun`] writes its scripts.
pub type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// The dry-run backend: prints scripts, changes nothing.
pub struct DryRun {
    cli: Cli,
    sink: Sink,
}

impl fmt::Debug for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DryRun").field("cli", &self.cli).finish()
    }
}

impl DryRun {
    /// A dry run printing `cli` syntax to `out`.
    pub fn new(cli: Cli, out: impl Write + Send + 'static) -> DryRun {
        DryRun::with_sink(cli, Arc::new(Mutex::new(Box::new(out))))
    }

    /// A dry run printing to a sink shared with others.
    pub fn with_sink(cli: Cli, sink: Sink) -> DryRun {
        DryRun { cli, sink }
    }

    /// A dry run printing to standard output.
    pub fn stdout(cli: Cli) -> DryRun {
        DryRun::new(cli, io::stdout())
    }

    /// A dry run printing into a buffer, and the buffer.
    pub fn capture(cli: Cli) -> (DryRun, Capture) {
        let capture = Capture::default();
        (DryRun::new(cli, capture.clone()), capture)
    }

    /// The syntax it prints.
    pub fn cli(&self) -> Cli {
        self.cli
    }

    fn print(&self, rendered: Result<String, RenderError>) -> Result<(), BackendError> {
        let text = rendered.map_err(|e| {
            BackendError::Other(format!(
                "{}: cannot print this as a {} script: {e}",
                self.name(),
                self.cli.program()
            ))
        })?;
        let mut out = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| {
                BackendError::Other(format!("{}: cannot write the script: {e}", self.name()))
            })
    }
}

#[async_trait]
impl Backend for DryRun {
    fn name(&self) -> &str {
        self.cli.backend_name()
    }

    async fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
        self.print(render_up_with(plan, self.cli, opts))
    }

    async fn down(&self, scope: &Scope) -> Result<(), BackendError> {
        self.print(render_down(scope, self.cli))
    }

    async fn stop(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        self.print(render_stop(scope, self.cli))?;
        Ok(Vec::new())
    }

    async fn start(&self, plan: &Plan) -> Result<Vec<String>, BackendError> {
        self.print(render_start(plan, self.cli))?;
        Ok(Vec::new())
    }

    async fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        self.print(render_ps(scope, self.cli))?;
        Ok(Vec::new())
    }

    async fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        self.print(render_cleanup(scope, self.cli))?;
        Ok(Vec::new())
    }

    async fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError> {
        self.print(render_exec(request, self.cli))?;
        Ok(0)
    }
}

/// An in-memory sink for [`DryRun`], cheap to clone: every clone shares the buffer.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far (lossy UTF-8; the scripts are UTF-8).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    /// Everything written so far, emptying the buffer.
    pub fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.lock());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
