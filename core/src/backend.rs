//! The interface every backend implements, and the values that cross it.
//!
//! A backend applies a [`Plan`] to a container engine (or prints it, or hands it to a
//! plugin). Backends are picked by name at run time from one table in the binary; this
//! trait is all the binary knows of them.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::images::ImageRecipe;
use crate::plan::{Plan, ResourceKind};

/// Options of `bottle up`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// Keep what a failed `up` created, for debugging, instead of removing it.
    pub keep_on_failure: bool,
}

/// A command to run in a bottle's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The bottle's slug.
    pub slug: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Attach a terminal (stdin and stdout are terminals).
    pub tty: bool,
    /// Who runs it, where, with what more in its environment (`exec -u/-w/-e`).
    pub options: ExecOptions,
}

/// The options of `bottle exec` beyond the command: all empty means the container's own
/// user, working directory and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The user (name or uid, optionally `:group`), instead of the container's.
    pub user: Option<String>,
    /// The working directory (absolute), instead of the container's.
    pub workdir: Option<String>,
    /// Variables added to the container's environment, in order (a later one wins).
    pub env: Vec<(String, String)>,
}

impl ExecOptions {
    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.workdir.is_none() && self.env.is_empty()
    }

    /// The environment as `KEY=VALUE` strings, the engines' form.
    pub fn env_pairs(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// One resource found by label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Container or network.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// Its `bottle.role` label (`agent`, `gate`, `internal`, ...), when it has one.
    pub role: Option<String>,
    /// The engine's state for a container (`running`, `exited`, ...); empty for networks.
    pub state: String,
    /// How many times the engine restarted a container by its restart policy, when the
    /// backend knows (`None` for networks, and where the engine does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

/// A bottle as found on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleStatus {
    /// The bottle's slug.
    pub slug: String,
    /// Its containers and networks.
    pub resources: Vec<Resource>,
}

/// One container of a bottle as `bottle status` shows it: what [`Resource`] says of it, and
/// what the engine's inspection adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Its name.
    pub name: String,
    /// Its `bottle.role` label (`agent`, `gate`, ...), when it has one.
    pub role: Option<String>,
    /// The engine's state (`running`, `exited`, `created`, ...).
    pub state: String,
    /// Its health check's verdict (`healthy`, `starting`, ...), when it has a check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// When it last started (RFC 3339, as the engine says it); `None`: never started, or the
    /// backend does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// How many times the engine restarted it by its restart policy, when the backend knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

/// One chunk of a container's own output (`bottle logs --container`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    /// From its standard output.
    Stdout(Vec<u8>),
    /// From its standard error.
    Stderr(Vec<u8>),
}

/// What one container of a bottle wrote as audit lines (its standard output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStream {
    /// The container's name.
    pub container: String,
    /// The source its records carry (its `bottle.audit` label).
    pub source: String,
    /// Its standard output so far: one JSON record per line, and possibly other lines,
    /// which readers skip.
    pub bytes: Vec<u8>,
}

/// A backend failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Resources with this bottle's names already exist; nothing was created.
    #[error("bottle '{slug}' has leftovers from an earlier run: {}\n  hint: remove them with `bottle cleanup {slug}` (or `bottle down {slug}` if it is running), then run `bottle up` again", list(found))]
    Leftovers {
        /// The bottle's slug.
        slug: String,
        /// What was found.
        found: Vec<(ResourceKind, String)>,
    },
    /// The engine refused a step; `message` is the engine's own words.
    #[error("{action}: {message}")]
    Engine {
        /// What bottle was doing, e.g. "create container bottle-demo-gate".
        action: String,
        /// The engine's message.
        message: String,
    },
    /// The engine cannot be reached.
    #[error("{message}\n  hint: {hint}")]
    Unavailable {
        /// What failed.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The bottle has no container of the asked role.
    #[error(
        "bottle '{slug}' has no running {role} container\n  hint: start it with `bottle up {slug}`"
    )]
    NotRunning {
        /// The bottle's slug.
        slug: String,
        /// The role looked for.
        role: String,
    },
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// The refusal of a backend that cannot do `what` (stop, start, read a container's
    /// output): names the backend and the ones that can.
    pub fn unsupported(backend: &str, what: &str) -> BackendError {
        BackendError::Other(format!(
            "the {backend} backend cannot {what}\n  hint: use --backend docker or podman"
        ))
    }
}

fn list(found: &[(ResourceKind, String)]) -> String {
    found
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How an image bottle builds stands on an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    /// Present, built from the current inputs.
    Fresh,
    /// Present, built from other inputs: `bottle image build` rebuilds it (`up` would too).
    Stale,
    /// Present; whether it is current cannot be told (its build inputs are not found).
    Present,
    /// Not on the engine.
    Missing,
}

/// A way of running bottles: an engine, a printer, or a plugin.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The name it is chosen by.
    fn name(&self) -> &str;

    /// Creates and starts everything in `plan`. On failure removes what it created, unless
    /// `opts.keep_on_failure`.
    async fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError>;

    /// Stops and removes the bottle's containers and networks. Succeeds when there is
    /// nothing to remove.
    async fn down(&self, slug: &str) -> Result<(), BackendError>;

    /// Lists bottles (all, or the one with `slug`) and their resources, by label.
    async fn ps(&self, slug: Option<&str>) -> Result<Vec<BottleStatus>, BackendError>;

    /// Removes every labelled leftover (of every bottle, or of `slug`); returns what it
    /// removed.
    async fn cleanup(&self, slug: Option<&str>) -> Result<Vec<Resource>, BackendError>;

    /// Runs a command in the bottle's agent; returns its exit code.
    async fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError>;

    /// Stops the bottle's running containers, keeping them, their networks and their state
    /// (the gate's mirror, the audit log); returns the containers it stopped. Backends that
    /// run no engine refuse.
    async fn stop(&self, slug: &str) -> Result<Vec<Resource>, BackendError> {
        let _ = slug;
        Err(BackendError::unsupported(self.name(), "stop a bottle"))
    }

    /// Starts the stopped containers of the bottle of `plan`, which must all exist, in the
    /// plan's order (sidecars before the agent, as `up` does); returns the names it started
    /// (none: it was running). Backends that run no engine refuse.
    async fn start(&self, plan: &Plan) -> Result<Vec<String>, BackendError> {
        let _ = plan;
        Err(BackendError::unsupported(self.name(), "start a bottle"))
    }

    /// The bottle's containers with what the engine says of each (state, health, when it
    /// started, restarts). Default: what [`Backend::ps`] says, without health or start time.
    async fn status(&self, slug: &str) -> Result<Vec<ContainerStatus>, BackendError> {
        let found = self.ps(Some(slug)).await?;
        Ok(found
            .into_iter()
            .filter(|b| b.slug == slug)
            .flat_map(|b| b.resources)
            .filter(|r| r.kind == ResourceKind::Container)
            .map(|r| ContainerStatus {
                name: r.name,
                role: r.role,
                state: r.state,
                health: None,
                started_at: None,
                restarts: r.restarts,
            })
            .collect())
    }

    /// Everything the bottle's container of role `role` wrote on its standard output and
    /// error, in order (its engine's logs; not the audit log). Backends that keep no logs
    /// refuse.
    async fn container_output(
        &self,
        slug: &str,
        role: &str,
    ) -> Result<Vec<OutputChunk>, BackendError> {
        let _ = (slug, role);
        Err(BackendError::unsupported(
            self.name(),
            "read a container's output",
        ))
    }

    /// The audit lines of the bottle's containers that write them (label `bottle.audit`),
    /// running or stopped. Backends that keep no logs refuse.
    async fn audit_logs(&self, slug: &str) -> Result<Vec<AuditStream>, BackendError> {
        let _ = slug;
        Err(BackendError::Other(format!(
            "the {} backend cannot read a bottle's logs\n  hint: use --backend docker or podman",
            self.name()
        )))
    }

    /// The command image `image` runs when given none (its entrypoint, then its command):
    /// what `bottle run` runs in the agent when the user names no command. Backends that
    /// read no images refuse.
    async fn image_command(&self, image: &str) -> Result<Vec<String>, BackendError> {
        Err(BackendError::Other(format!(
            "the {} backend cannot read the command of image {image}\n  hint: name the command after `--`, e.g. `bottle run -- claude`",
            self.name()
        )))
    }

    /// Whether each of bottle's built-in images (`which`) is on the engine and built from
    /// the current inputs: `(tag, state)`. Backends that run no engine refuse.
    async fn image_states(
        &self,
        which: &[&'static ImageRecipe],
    ) -> Result<Vec<(&'static str, ImageState)>, BackendError> {
        let _ = which;
        Err(BackendError::Other(format!(
            "the {} backend holds no images",
            self.name()
        )))
    }

    /// Builds bottle's built-in images (`which`), each only when it is missing or its
    /// inputs changed, or always with `force`. Backends that run no engine refuse.
    async fn build_images(
        &self,
        which: &[&'static ImageRecipe],
        force: bool,
    ) -> Result<(), BackendError> {
        let _ = (which, force);
        Err(BackendError::Other(format!(
            "the {} backend does not build images\n  hint: use --backend docker",
            self.name()
        )))
    }
}

impl fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Backend({})", self.name())
    }
}
