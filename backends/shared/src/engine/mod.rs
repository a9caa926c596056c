//! The engine primitives, and the orchestration written once over them.
//!
//! An engine backend implements [`Engine`]: a thin translation of one small step (create a
//! network, copy a tar into a container, inspect an image, start an exec, ...) into its
//! API. Everything that decides *what* to do and *in which order* is here, once, generic
//! over that trait:
//!
//! - [`up`](up()): the leftover probe, the images, networks at once, containers created,
//!   filled and connected concurrently and started in plan order, rollback by id or
//!   keep-on-failure, the error notes.
//! - [`run_container`]: one container outside any plan (the upstream fixture), created,
//!   filled, connected and started as `up` does it.
//! - [`down`], [`ps`], [`cleanup`]: resources found by label, containers removed before
//!   networks, foreign containers disconnected rather than removed.
//! - [`ensure_image`], [`build_image`], [`ensure_builtin`], [`build_images`],
//!   [`ensure_base_image`], [`make_base_image`], [`import_rootfs`]: images fresh or stale
//!   by the digest of their inputs, the base image imported from a rootfs.
//! - [`exec`](exec()) and [`exec_output`]: a command in a container, on our terminal
//!   (raw mode, window size, standard input) or captured.
//!
//! # Design decisions
//!
//! - **Primitives in, words out.** A primitive returns an [`EngineError`]: the engine's own
//!   message and whether it meant "no such ...". The orchestration adds what bottle was
//!   doing ([`EngineError::at`]: `create container bottle-x-agent: ...`), so both backends
//!   word every step alike, and "gone already" is judged by one rule.
//! - **`async-trait`, not native `async fn` in traits.** The workspace's MSRV (1.88) has
//!   native async trait methods, but their futures cannot be required to be `Send` without
//!   naming every method's return type; the orchestration runs inside
//!   [`Backend`](bottle_core::backend::Backend)'s boxed `Send` futures, as the rest of the
//!   workspace does with `async-trait`.
//! - **Engine quirks stay in the engine.** Docker 20.10's twin networks are checked by the
//!   docker backend's [`Engine::check_network`]; podman's retry of a network create that
//!   races a disappearing bridge, its SpecGenerator and its create warnings live in its
//!   [`Engine::create_network`] and [`Engine::create_container`]. What differs in the
//!   *words* (the missing-image hint, who "reported no exit code") comes from
//!   [`Engine::missing_image`] and [`Engine::who`].
//! - **Identity.** A primitive that creates returns the engine's id, and rollback removes
//!   by that id only. For `down` and `cleanup` the key of a listed resource is what the
//!   engine's removal and disconnect take ([`Listed::id`]).

mod exec;
mod images;
mod lifecycle;
mod manage;
mod up;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;

use async_trait::async_trait;
use bottle_core::backend::{BackendError, ExecOptions};
use bottle_core::plan::{ContainerSpec, NetworkSpec, Plan, ResourceKind};
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::images::{BuildOptions, BuildSpec};

pub use exec::{exec, exec_output};
pub use images::{
    build_image, build_images, ensure_base_image, ensure_image, ensure_plan_images, ensure_recipe,
    image_command, image_exists, image_inputs, image_states, import_rootfs, make_base_image,
};
pub use lifecycle::{container_output, start, status, stop};
pub use manage::{audit_logs, cleanup, down, ps};
pub use up::{run_container, up};

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;
#[doc(hidden)]
pub use bottle_core as __core;

/// Implements [`Backend`](bottle_core::backend::Backend) for an [`Engine`], named `$name`,
/// by the functions of this module: `impl_backend!(Docker, "docker");`.
///
/// The orphan rule keeps that `impl` in each backend's crate (both the trait and a blanket
/// `impl<E: Engine>` would be foreign there); this keeps it one line.
#[macro_export]
macro_rules! impl_backend {
    ($ty:ty, $name:literal) => {
        #[$crate::engine::__async_trait]
        impl $crate::engine::__core::backend::Backend for $ty {
            fn name(&self) -> &str {
                $name
            }

            async fn up(
                &self,
                plan: &$crate::engine::__core::plan::Plan,
                opts: &$crate::engine::__core::backend::UpOptions,
            ) -> Result<(), $crate::engine::__core::backend::BackendError> {
                $crate::engine::up(self, plan, opts).await
            }

            async fn down(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<(), $crate::engine::__core::backend::BackendError> {
                $crate::engine::down(self, scope).await
            }

            async fn ps(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<
                Vec<$crate::engine::__core::backend::BottleStatus>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::ps(self, scope).await
            }

            async fn cleanup(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<
                Vec<$crate::engine::__core::backend::Resource>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::cleanup(self, scope).await
            }

            async fn exec(
                &self,
                request: &$crate::engine::__core::backend::ExecRequest,
            ) -> Result<i32, $crate::engine::__core::backend::BackendError> {
                $crate::engine::exec(self, request).await
            }

            async fn stop(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<
                Vec<$crate::engine::__core::backend::Resource>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::stop(self, scope).await
            }

            async fn start(
                &self,
                plan: &$crate::engine::__core::plan::Plan,
            ) -> Result<Vec<String>, $crate::engine::__core::backend::BackendError> {
                $crate::engine::start(self, plan).await
            }

            async fn status(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<
                Vec<$crate::engine::__core::backend::ContainerStatus>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::status(self, scope).await
            }

            async fn container_output(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
                role: &str,
            ) -> Result<
                Vec<$crate::engine::__core::backend::OutputChunk>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::container_output(self, scope, role).await
            }

            async fn audit_logs(
                &self,
                scope: &$crate::engine::__core::backend::Scope,
            ) -> Result<
                Vec<$crate::engine::__core::backend::AuditStream>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::audit_logs(self, scope).await
            }

            async fn image_command(
                &self,
                image: &str,
            ) -> Result<Vec<String>, $crate::engine::__core::backend::BackendError> {
                $crate::engine::image_command(self, image).await
            }

            async fn image_states(
                &self,
                which: &[&'static $crate::engine::__core::images::ImageRecipe],
            ) -> Result<
                Vec<(&'static str, $crate::engine::__core::backend::ImageState)>,
                $crate::engine::__core::backend::BackendError,
            > {
                $crate::engine::image_states(self, which).await
            }

            async fn build_images(
                &self,
                which: &[&'static $crate::engine::__core::images::ImageRecipe],
                force: bool,
            ) -> Result<(), $crate::engine::__core::backend::BackendError> {
                $crate::engine::build_images(self, which, force).await
            }
        }
    };
}

/// An error's text followed by each of its sources' that it does not already contain:
/// what a client library's error says when the engine sent no message of its own
/// (connection failures and the like).
pub fn text_with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Receives progress lines (image builds, imports, base rootfs creation) meant for the
/// user.
pub type ProgressFn = dyn Fn(&str) + Send + Sync;

/// What a backend's client carries besides its connection, the same for every engine:
/// where progress lines go and how `up` builds the built-in images.
#[derive(Clone)]
pub struct Settings {
    /// Where progress lines go (default: standard error).
    pub progress: std::sync::Arc<ProgressFn>,
    /// How `up` builds the built-in images it needs (default: [`BuildOptions::default`]).
    pub build: BuildOptions,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            progress: std::sync::Arc::new(|line: &str| eprintln!("{line}")),
            build: BuildOptions::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("build", &self.build)
            .finish_non_exhaustive()
    }
}

/// An engine's refusal of one step: its own message, and whether it meant "no such ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    message: String,
    not_found: bool,
}

impl EngineError {
    /// A refusal in the engine's words; `not_found`: the engine said "no such ...".
    pub fn of(not_found: bool, message: impl Into<String>) -> EngineError {
        EngineError {
            message: message.into(),
            not_found,
        }
    }

    /// A refusal in the engine's words.
    pub fn new(message: impl Into<String>) -> EngineError {
        EngineError {
            message: message.into(),
            not_found: false,
        }
    }

    /// "No such container/network/image/exec", in the engine's words.
    pub fn not_found(message: impl Into<String>) -> EngineError {
        EngineError {
            message: message.into(),
            not_found: true,
        }
    }

    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.not_found
    }

    /// The engine's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// [`BackendError::Engine`]: bottle was doing `action` and the engine said this.
    pub fn at(self, action: impl Into<String>) -> BackendError {
        BackendError::Engine {
            action: action.into(),
            message: self.message,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A container or network as an engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    /// What the engine's removal (and, for a network, its disconnect and the list of its
    /// containers) takes to address exactly this resource.
    pub id: String,
    /// Its name (without docker's leading `/`).
    pub name: String,
    /// Its labels.
    pub labels: Option<HashMap<String, String>>,
    /// A container's state (`running`, `exited`, ...); empty for a network.
    pub state: String,
}

/// What bottle reads of a container's life from its inspection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// How many times the engine restarted it by its restart policy.
    pub restarts: u64,
    /// When it last started (RFC 3339); `None` when it never did (the engines' zero time).
    pub started_at: Option<String>,
    /// Its health check's status, when it has a check.
    pub health: Option<String>,
}

impl ContainerInfo {
    /// `started_at` as engines write it, `None` for their zero time (`0001-01-01...`) or
    /// nothing.
    pub fn started(at: Option<String>) -> Option<String> {
        at.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01"))
    }
}

/// What bottle reads of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The engine's image id.
    pub id: Option<String>,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its entrypoint (`None`: none set).
    pub entrypoint: Option<Vec<String>>,
    /// Its command (`None`: none set).
    pub cmd: Option<Vec<String>>,
}

/// A root filesystem tarball on its way to an engine's import.
#[derive(Debug)]
pub enum ImportBody {
    /// In memory.
    Bytes(Vec<u8>),
    /// An open file, to stream (never read into memory whole).
    File(tokio::fs::File),
}

/// One event of an image build's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildEvent<'a> {
    /// Output text (one or more lines).
    Output(&'a str),
    /// The build failed with this message; the stream may go on.
    Error(&'a str),
}

/// Output of an exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    /// Standard output (or a terminal's output).
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
}

/// The stream of an attached exec's output.
pub type ExecStream = BoxStream<'static, Result<ExecChunk, EngineError>>;

/// The writer of an attached exec's standard input; shutting it down half-closes it.
pub type ExecInput = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// An exec started and attached.
pub struct Attached {
    /// The exec's id, to resize and inspect it.
    pub id: String,
    /// Its output, until it ends.
    pub output: ExecStream,
    /// Its standard input.
    pub input: ExecInput,
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached").field("id", &self.id).finish()
    }
}

/// What an exec's inspection says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecState {
    /// Whether it still runs (`None`: not said).
    pub running: Option<bool>,
    /// Its exit code, once recorded.
    pub exit_code: Option<i64>,
}

/// The primitives of a container engine: each one API call (or a few, where the engine
/// needs them for one step), translated from plan data, answering in the engine's words.
///
/// Implementations never decide order, concurrency, rollback or wording: the functions of
/// this module do. "No such ..." is reported as [`EngineError::not_found`], never mapped to
/// success, so that the orchestration judges it.
#[async_trait]
pub trait Engine: Clone + Send + Sync + 'static {
    /// The client's [`Settings`].
    fn settings(&self) -> &Settings;

    /// Hands a progress line (build output, imports) to the user.
    fn progress(&self, line: &str) {
        (self.settings().progress)(line)
    }

    /// How `up` builds the built-in images it needs.
    fn build_options(&self) -> &BuildOptions {
        &self.settings().build
    }

    /// Who answered, in messages such as "... reported no exit code": `the engine`,
    /// `podman`.
    fn who(&self) -> &'static str;

    /// The error text for image `image` of container `container` that does not exist and
    /// that bottle does not build: where it was looked for and how to get it.
    fn missing_image(&self, image: &str, container: &str) -> String;

    /// Warnings `up` prints about `plan` once its images are there (default: none).
    fn warnings(&self, _plan: &Plan) -> Vec<String> {
        Vec::new()
    }

    /// Whether a container or network named `name` exists.
    async fn exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError>;

    /// Creates network `n`; returns its id.
    async fn create_network(&self, n: &NetworkSpec) -> Result<String, EngineError>;

    /// Checks network `n`, just created as `id` (and already recorded for rollback).
    /// Default: nothing to check.
    async fn check_network(&self, _n: &NetworkSpec, _id: &str) -> Result<(), BackendError> {
        Ok(())
    }

    /// Removes a network (no force: the engine refuses while containers are attached).
    async fn remove_network(&self, id: &str) -> Result<(), EngineError>;

    /// The ids of the containers attached to network `id`.
    async fn network_containers(&self, id: &str) -> Result<Vec<String>, EngineError>;

    /// Force-disconnects container `container` from network `network`.
    async fn disconnect(&self, network: &str, container: &str) -> Result<(), EngineError>;

    /// Creates container `c` on its network, exactly as planned; returns its id.
    async fn create_container(&self, c: &ContainerSpec) -> Result<String, EngineError>;

    /// Extracts the tar archive `tar` into directory `dir` (absolute) of container `id`,
    /// keeping each entry's owner and mode. `dir` is `/`, or a volume's path in a container
    /// whose root filesystem is read-only (engines extract into such a container only
    /// inside a volume: [`ContainerSpec::copy_dir`]).
    async fn copy_in(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError>;

    /// Connects container `id` to network `network`.
    async fn connect(&self, id: &str, network: &str) -> Result<(), EngineError>;

    /// Starts container `id`.
    async fn start_container(&self, id: &str) -> Result<(), EngineError>;

    /// Stops container `id` (the engine's stop: its stop signal, then a kill after the
    /// engine's default grace period), keeping it.
    async fn stop_container(&self, id: &str) -> Result<(), EngineError>;

    /// The address container `id` has on network `network` (it runs), `None` when it has
    /// none there.
    async fn address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, EngineError>;

    /// Force-removes container `id` with its anonymous volumes.
    async fn remove_container(&self, id: &str) -> Result<(), EngineError>;

    /// Every container (running or not) carrying the labels of
    /// [`resources::label_filters`](crate::resources::label_filters)`(slug)`.
    async fn list_containers(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError>;

    /// Every network carrying those labels.
    async fn list_networks(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError>;

    /// Whether container `name` runs.
    async fn container_running(&self, name: &str) -> Result<bool, EngineError>;

    /// What container `id`'s inspection says of its life: restarts by its restart policy
    /// (`RestartCount`), when it last started, its health.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, EngineError>;

    /// Everything container `name` has written on its standard output so far (its
    /// standard error left out): where sidecars write their audit lines.
    async fn stdout_log(&self, name: &str) -> Result<Vec<u8>, EngineError>;

    /// Everything container `name` has written so far, standard output and error, in order.
    async fn output_log(&self, name: &str) -> Result<Vec<ExecChunk>, EngineError>;

    /// Image `name`, or `None` when there is none.
    async fn inspect_image(&self, name: &str) -> Result<Option<ImageInfo>, EngineError>;

    /// Removes image `id` (no force: the engine refuses while a container uses it).
    async fn remove_image(&self, id: &str) -> Result<(), EngineError>;

    /// Builds `tar` (the context of `spec`) as `spec.tag` with `spec.build_args` and
    /// `labels`, handing the output to `event` as it comes.
    async fn build(
        &self,
        spec: &BuildSpec,
        labels: &BTreeMap<String, String>,
        tar: Vec<u8>,
        event: &mut (dyn for<'a> FnMut(BuildEvent<'a>) + Send),
    ) -> Result<(), EngineError>;

    /// Imports a root filesystem tarball as image `image`, applying Dockerfile `changes`.
    async fn import(
        &self,
        body: ImportBody,
        image: &str,
        changes: &[String],
    ) -> Result<(), EngineError>;

    /// Creates and starts an exec of `command` in `container`, attached to its output (and
    /// its standard input with `stdin`), as `options` say (user, working directory, more
    /// environment); `size` is the terminal's (rows, columns) for an engine that takes it
    /// at start. `None`: the engine started it detached.
    async fn start_exec(
        &self,
        container: &str,
        command: &[String],
        options: &ExecOptions,
        tty: bool,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Option<Attached>, EngineError>;

    /// Inspects exec `id`.
    async fn inspect_exec(&self, id: &str) -> Result<ExecState, EngineError>;

    /// Resizes exec `id`'s terminal.
    async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError>;
}
