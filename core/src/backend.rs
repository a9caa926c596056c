//! The interface every backend implements, and the values that cross it.
//!
//! A backend applies a [`Plan`] to a container engine (or prints it, or hands it to a
//! plugin). Backends are picked by name at run time from one table in the binary; this
//! trait is all the binary knows of them.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::images::ImageRecipe;
use crate::plan::{ContainerRole, Plan, ResourceKind, LABEL_MANAGED, LABEL_PROJECT, LABEL_SLUG};

/// Options of `bottle up`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// Keep what a failed `up` created, for debugging, instead of removing it.
    pub keep_on_failure: bool,
}

/// Which resources `ps`, `down`, `cleanup` and `logs` act on, by label.
///
/// A resource is in scope when it carries [`LABEL_MANAGED`], its [`LABEL_SLUG`] is
/// [`Scope::bottle`] (when set), and its [`LABEL_PROJECT`] is [`Scope::project`] (when set)
/// or it has no project label at all and [`Scope::unlabelled`] is set: resources made by a
/// bottle older than projects belong to no project, so only `ps`, `--all` and a bottle's
/// own name reach them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Only this project's resources; `None`: every project's (`cleanup --all`).
    pub project: Option<String>,
    /// Only this bottle's; `None`: every bottle's.
    pub bottle: Option<String>,
    /// Also resources without a [`LABEL_PROJECT`] label.
    #[serde(default)]
    pub unlabelled: bool,
    /// `cleanup` only: leave alone every bottle with a container that runs (or restarts, or
    /// is paused), removing only stopped bottles and orphaned resources.
    #[serde(default)]
    pub stopped_only: bool,
    /// `cleanup` without a bottle name only (with [`Scope::stopped_only`]): also leave alone
    /// every complete stopped bottle, one with an agent container and no container that
    /// never started: what `bottle stop` leaves and `bottle start` resumes. Nothing on an
    /// engine tells a bottle stopped on purpose from one stopped otherwise (a reboot), so
    /// plain `cleanup` removes only what cannot be resumed: failed `up`s and orphans.
    #[serde(default)]
    pub keep_complete: bool,
}

impl Scope {
    /// One bottle of a project, and the same-named bottle of no project (`down`, `logs`,
    /// `cleanup NAME`).
    pub fn bottle(project: &str, bottle: &str) -> Scope {
        Scope {
            project: Some(project.to_owned()),
            bottle: Some(bottle.to_owned()),
            unlabelled: true,
            stopped_only: false,
            keep_complete: false,
        }
    }

    /// Whether a resource with these labels is in scope (`get` reads one label).
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        if get(LABEL_MANAGED).is_none() {
            return false;
        }
        if let Some(b) = &self.bottle {
            if get(LABEL_SLUG) != Some(b.as_str()) {
                return false;
            }
        }
        match (&self.project, get(LABEL_PROJECT)) {
            (None, _) => true,
            (Some(p), Some(q)) => p == q,
            (Some(_), None) => self.unlabelled,
        }
    }

    /// How commands name it to the user: `bottle 'demo' of project 'web'`, `project 'web'`,
    /// `every project`.
    pub fn describe(&self) -> String {
        match (&self.project, &self.bottle) {
            (Some(p), Some(b)) => format!("bottle '{b}' of project '{p}'"),
            (Some(p), None) => format!("project '{p}'"),
            (None, Some(b)) => format!("bottle '{b}' of every project"),
            (None, None) => "every project".to_owned(),
        }
    }
}

/// Whether an engine's container state is a live one: `cleanup` without `--all` leaves a
/// bottle with such a container alone.
pub fn is_live_state(state: &str) -> bool {
    matches!(state, "running" | "restarting" | "paused")
}

/// Whether an engine's container state is one of a container never started (what a failed
/// `up --keep-on-failure` leaves): docker's `created`, podman's `created`, `configured` or
/// `initialized`.
pub fn is_never_started_state(state: &str) -> bool {
    matches!(state, "created" | "configured" | "initialized")
}

/// Whether a bottle's resources are a complete stopped bottle, which plain `cleanup` keeps
/// (see [`Scope::keep_complete`]): nothing live, an agent container, and every container
/// started once.
pub fn is_complete_stopped<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> bool {
    let containers: Vec<&Resource> = resources
        .into_iter()
        .filter(|r| r.kind == ResourceKind::Container)
        .collect();
    containers
        .iter()
        .any(|r| r.role.as_deref() == Some(ContainerRole::AGENT))
        && containers
            .iter()
            .all(|r| !is_live_state(&r.state) && !is_never_started_state(&r.state))
}

/// A command to run in a bottle's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The bottle's project.
    pub project: String,
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
    /// The project it belongs to (its `bottle.project` label); `None` for resources made
    /// by a bottle older than projects.
    #[serde(default)]
    pub project: Option<String>,
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

    /// Stops and removes the containers and networks in `scope` (one bottle: see
    /// [`Scope::bottle`]). Succeeds when there is nothing to remove.
    async fn down(&self, scope: &Scope) -> Result<(), BackendError>;

    /// Lists the bottles in `scope` and their resources, by label.
    async fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError>;

    /// Removes the labelled resources in `scope` (with [`Scope::stopped_only`], only those
    /// of bottles with nothing live); returns what it removed.
    async fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError>;

    /// Runs a command in the bottle's agent; returns its exit code.
    async fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError>;

    /// Stops the bottle's running containers, keeping them, their networks and their state
    /// (the gate's mirror, the audit log); returns the containers it stopped. Backends that
    /// run no engine refuse.
    async fn stop(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        let _ = scope;
        Err(BackendError::unsupported(self.name(), "stop a bottle"))
    }

    /// Starts the stopped containers of the bottle of `plan`, which must all exist, in the
    /// plan's order (sidecars before the agent, as `up` does); returns the names it started
    /// (none: it was running). Backends that run no engine refuse.
    async fn start(&self, plan: &Plan) -> Result<Vec<String>, BackendError> {
        let _ = plan;
        Err(BackendError::unsupported(self.name(), "start a bottle"))
    }

    /// The containers of the bottle of `scope` with what the engine says of each (state,
    /// health, when it started, restarts). Default: what [`Backend::ps`] says, without
    /// health or start time.
    async fn status(&self, scope: &Scope) -> Result<Vec<ContainerStatus>, BackendError> {
        let found = self.ps(scope).await?;
        Ok(found
            .into_iter()
            .filter(|b| Some(&b.slug) == scope.bottle.as_ref())
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
        scope: &Scope,
        role: &str,
    ) -> Result<Vec<OutputChunk>, BackendError> {
        let _ = (scope, role);
        Err(BackendError::unsupported(
            self.name(),
            "read a container's output",
        ))
    }

    /// The audit lines of the bottle's containers that write them (label `bottle.audit`),
    /// running or stopped. Backends that keep no logs refuse.
    async fn audit_logs(&self, scope: &Scope) -> Result<Vec<AuditStream>, BackendError> {
        let _ = scope;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn matches(scope: &Scope, l: &BTreeMap<String, String>) -> bool {
        scope.matches(|k| l.get(k).map(String::as_str))
    }

    #[test]
    fn scopes_select_by_project_bottle_and_missing_labels() {
        let ours = labels(&[
            (LABEL_MANAGED, "3"),
            (LABEL_PROJECT, "web"),
            (LABEL_SLUG, "demo"),
        ]);
        let theirs = labels(&[
            (LABEL_MANAGED, "3"),
            (LABEL_PROJECT, "api"),
            (LABEL_SLUG, "demo"),
        ]);
        let legacy = labels(&[(LABEL_MANAGED, "3"), (LABEL_SLUG, "demo")]);
        let foreign = labels(&[(LABEL_PROJECT, "web"), (LABEL_SLUG, "demo")]);

        let one = Scope::bottle("web", "demo");
        assert!(matches(&one, &ours));
        assert!(
            !matches(&one, &theirs),
            "another project's bottle of one name"
        );
        assert!(matches(&one, &legacy), "by name, one made before projects");
        assert!(
            !matches(&one, &foreign),
            "not bottle's without bottle.managed"
        );
        assert!(!matches(&Scope::bottle("web", "other"), &ours));

        let project = Scope {
            project: Some("web".to_owned()),
            stopped_only: true,
            ..Scope::default()
        };
        assert!(matches(&project, &ours));
        assert!(!matches(&project, &theirs));
        assert!(
            !matches(&project, &legacy),
            "a project's cleanup leaves others' old ones"
        );

        let all = Scope {
            unlabelled: true,
            ..Scope::default()
        };
        for l in [&ours, &theirs, &legacy] {
            assert!(matches(&all, l));
        }
        assert!(!matches(&all, &foreign));
    }

    #[test]
    fn a_complete_stopped_bottle_has_an_agent_and_every_container_started_once() {
        let c = |role: &str, state: &str| Resource {
            kind: ResourceKind::Container,
            name: format!("bottle-p-b-{role}"),
            role: Some(role.to_owned()),
            state: state.to_owned(),
            restarts: None,
        };
        let net = Resource {
            kind: ResourceKind::Network,
            name: "bottle-p-b-internal".to_owned(),
            role: Some("internal".to_owned()),
            state: String::new(),
            restarts: None,
        };
        // What `bottle stop` leaves.
        let stopped = [c("gate", "exited"), c("agent", "exited"), net.clone()];
        assert!(is_complete_stopped(&stopped));
        // Something runs: not stopped.
        assert!(!is_complete_stopped(&[
            c("gate", "running"),
            c("agent", "exited")
        ]));
        // No agent (an orphan, or an `up` that failed before the agent): incomplete.
        assert!(!is_complete_stopped(&[c("gate", "exited"), net.clone()]));
        assert!(!is_complete_stopped(&[net]));
        // A container never started (a failed `up --keep-on-failure`): incomplete.
        assert!(!is_complete_stopped(&[
            c("gate", "exited"),
            c("agent", "created")
        ]));
    }

    #[test]
    fn live_states_are_running_restarting_and_paused() {
        for s in ["running", "restarting", "paused"] {
            assert!(is_live_state(s), "{s}");
        }
        for s in ["exited", "created", "dead", ""] {
            assert!(!is_live_state(s), "{s}");
        }
    }
}
