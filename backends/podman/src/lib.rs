//! bottle's podman backend: applies a [`Plan`] to Podman, rootful or rootless, through the
//! libpod REST API (the [podman-api] crate, plus three direct calls, see below). It never
//! runs the `podman` CLI.
//!
//! ```no_run
//! # async fn demo(plan: &bottle_core::plan::Plan) -> Result<(), bottle_core::backend::BackendError> {
//! use bottle_core::backend::{Backend, UpOptions};
//! // CONTAINER_HOST, else the setting (None here), else the default socket for who we are.
//! let podman = bottle_backend_podman::Podman::connect(None).await?;
//! podman.up(plan, &UpOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # Design decisions
//!
//! - **Same plans, same behaviour as docker.** `up` probes for leftovers before anything
//!   else, checks (and builds) images before creating anything, creates networks at once,
//!   creates, fills and connects containers concurrently and starts them in plan order, and
//!   on failure removes exactly what it created, by id (unless
//!   [`UpOptions::keep_on_failure`]). `down`, `ps` and `cleanup` work by label alone. This
//!   is not written twice: the orchestration of `up`, `down`/`ps`/`cleanup`, images and
//!   `exec` lives in `bottle-backend-shared`, over the [`Engine`] primitives this crate
//!   implements (module `engine`: one libpod call each, plus podman's own quirks: the
//!   network-create retry, the SpecGenerator, create warnings), as do the files archive,
//!   image contexts and their digest, the base rootfs, label filters, `ps` grouping and the
//!   words of every error. Only the API calls differ.
//! - **Socket discovery.** [`Podman::connect`] takes `CONTAINER_HOST`, else the caller's
//!   setting, else `$XDG_RUNTIME_DIR/podman/podman.sock` for an ordinary user or
//!   `/run/podman/podman.sock` for root (see [`socket`]). A missing socket is
//!   [`BackendError::Unavailable`] saying how to start one (`podman system service` or the
//!   systemd `podman.socket` unit), not a connection error. An explicit choice that does not
//!   work is an error, never a silent fall-through to another engine.
//! - **Rootless without root help.** Nothing here needs root at run time: no reaper
//!   container, no socket mounted into a container, leftovers found by labels only. The
//!   base image is imported through the API from a rootfs tarball prepared once
//!   (`scripts/setup-podman.sh --rootfs`; see `bottle_backend_shared::base`), so a
//!   rootless user's own image store gets it without debootstrap.
//! - **podman-api where it is right, three direct calls where it is not** (module `raw`,
//!   hyper over the same socket): container *create*, because podman-api's builder
//!   misspells `no_new_privileges` (podman silently ignores the key, and the container
//!   would run without no-new-privileges); image *import*, streamed from the file instead of
//!   buffered whole; image *build*, from the in-memory context with the build's own error
//!   lines. Everything else (ping, info, networks, container inspect/list/start/delete,
//!   archive upload, connect/disconnect, exec, image inspect/remove) is podman-api.
//! - **Files keep their owner.** The archive goes to the Docker-compatible archive endpoint
//!   (podman-api's `copy_to`), which keeps each entry's uid/gid. libpod's own archive
//!   endpoint would chown every file, and every parent directory it creates, to the
//!   container's user (checked on podman 4.3): a `0400` key of uid 10001 in a container
//!   running as 1000 would become 1000's.
//! - **Hardening as planned.** `cap_drop`, `cap_add`, `no_new_privileges`, the pids limit,
//!   memory with swap = memory, and the init (podman's `catatonit`) go to the SpecGenerator
//!   exactly as the plan says. Rootless podman on cgroups v1 cannot enforce the pids and
//!   memory limits (podman ignores them there): `up` says so on the progress sink, and
//!   [`Podman::limits_enforced`] tells callers (e.g. `bottle doctor`).
//! - **`down` never removes foreign containers.** A network removal that fails because
//!   containers bottle did not create are attached (a debugging shell, a test's upstream)
//!   force-disconnects them and tries again; podman's own `force` would remove them.
//!
//! # Errors
//!
//! No socket, a refused connection or an unusable address is [`BackendError::Unavailable`]
//! naming the address, where it came from, and how to start a service. Every other refusal
//! is [`BackendError::Engine`] with the step bottle was taking and podman's message.
//!
//! # Progress
//!
//! Image builds, imports and base-rootfs creation print line by line to standard error;
//! [`Podman::with_progress`] sends them elsewhere.
//!
//! [`Plan`]: bottle_core::plan::Plan
//! [`UpOptions::keep_on_failure`]: bottle_core::backend::UpOptions::keep_on_failure
//! [`BuiltinImage`]: bottle_core::plan::BuiltinImage

#![deny(missing_docs)]

mod engine;
pub mod images;
mod raw;
pub mod socket;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bottle_backend_shared::engine as shared;
use bottle_core::backend::BackendError;

pub use bottle_backend_shared::engine::{Engine, ProgressFn};
pub use bottle_backend_shared::images::{
    BuildOptions, BuildSpec, ContextFile, ImageStatus, RootfsSource,
};
pub use bottle_backend_shared::term::ExecOutput;
pub use podman_api;
pub use socket::{Address, Source};

/// How long [`Podman::connect`] waits for the service to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The podman backend: a client of one podman API service.
#[derive(Clone)]
pub struct Podman {
    api: podman_api::Podman,
    raw: raw::Raw,
    address: Address,
    source: Source,
    version: String,
    rootless: bool,
    cgroup_version: String,
    settings: shared::Settings,
}

impl fmt::Debug for Podman {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Podman")
            .field("address", &self.address.to_string())
            .field("source", &self.source)
            .field("api_version", &self.version)
            .field("rootless", &self.rootless)
            .field("cgroup_version", &self.cgroup_version)
            .finish()
    }
}

impl Podman {
    /// Connects to the podman API service found by [`socket::discover`]: `CONTAINER_HOST`,
    /// else `setting` (the manifest's or config file's podman socket: `unix:///PATH`, a
    /// bare `/PATH`, or `tcp://HOST:PORT`), else `$XDG_RUNTIME_DIR/podman/podman.sock` for
    /// an ordinary user, `/run/podman/podman.sock` for root. Pings it and settles the API
    /// version.
    ///
    /// No socket there, a refused connection or an unusable address is
    /// [`BackendError::Unavailable`], saying how to start a service.
    pub async fn connect(setting: Option<&str>) -> Result<Podman, BackendError> {
        let env = |k: &str| std::env::var(k).ok();
        let choice = socket::discover(&env, setting, uid());
        Podman::connect_choice(choice).await
    }

    /// Connects to the service at `address` (same forms as the setting), ignoring the
    /// environment.
    pub async fn connect_to(address: &str) -> Result<Podman, BackendError> {
        Podman::connect_choice(socket::Choice {
            address: socket::parse(address),
            given: address.to_owned(),
            source: Source::Setting,
        })
        .await
    }

    async fn connect_choice(choice: socket::Choice) -> Result<Podman, BackendError> {
        let uid = uid();
        let source = choice.source;
        let address = match choice.address {
            Ok(a) => a,
            Err(why) => {
                return Err(BackendError::Unavailable {
                    message: format!(
                        "cannot use the podman address '{}' ({source}): {why}",
                        choice.given
                    ),
                    hint: socket::start_hint(None, uid),
                })
            }
        };
        let hint = match &address {
            Address::Unix(path) => socket::start_hint(Some(path), uid),
            Address::Tcp(_) => {
                "check that a podman API service listens there (`podman system service --time=0 tcp://HOST:PORT`), or set CONTAINER_HOST to a running one".to_owned()
            }
        };
        let unavailable = |what: String| BackendError::Unavailable {
            message: format!("cannot reach podman at {address} ({source}): {what}"),
            hint: hint.clone(),
        };
        if let Address::Unix(path) = &address {
            if !path.exists() {
                return Err(BackendError::Unavailable {
                    message: format!("no podman API socket at {} ({source})", path.display()),
                    hint,
                });
            }
        }
        let client = |version: podman_api::ApiVersion| match &address {
            Address::Unix(path) => Ok(podman_api::Podman::unix_versioned(path, version)),
            Address::Tcp(host) => podman_api::Podman::tcp_versioned(host, version),
        };
        let api =
            client(podman_api::LATEST_API_VERSION).map_err(|e| unavailable(error_text(&e)))?;
        let ping = match tokio::time::timeout(CONNECT_TIMEOUT, api.ping()).await {
            Ok(Ok(ping)) => ping,
            Ok(Err(e)) => return Err(unavailable(error_text(&e))),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
        let server: podman_api::ApiVersion = ping.libpod_api_version.parse().map_err(|_| {
            unavailable(format!(
                "the service's libpod API version '{}' is not a version",
                ping.libpod_api_version
            ))
        })?;
        if server.major() < 4 {
            return Err(BackendError::Other(format!(
                "podman at {address} speaks libpod API {}; bottle needs podman 4.0 or newer\n  hint: upgrade podman (Debian 12 ships 4.3)",
                ping.libpod_api_version
            )));
        }
        // The lower of podman-api's version and the service's.
        let version = if server < podman_api::LATEST_API_VERSION {
            server
        } else {
            podman_api::LATEST_API_VERSION
        };
        let api = client(version).map_err(|e| unavailable(error_text(&e)))?;
        let raw = raw::Raw::new(address.clone(), &version.to_string());
        // Read untyped: only two fields are needed, and they must not depend on how well
        // podman-api's models match this podman version.
        let info = raw
            .json(hyper::Method::GET, "/libpod/info", None)
            .await
            .map_err(|e| raw_err("read podman's host information", &e))?;
        let rootless = info["host"]["security"]["rootless"]
            .as_bool()
            .unwrap_or(uid != 0);
        let cgroup_version = info["host"]["cgroupVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Podman {
            raw,
            api,
            address,
            source,
            version: version.to_string(),
            rootless,
            cgroup_version,
            settings: shared::Settings::default(),
        })
    }

    /// Sends progress lines (build output, imports, base rootfs creation) to `progress`
    /// instead of standard error.
    pub fn with_progress(mut self, progress: impl Fn(&str) + Send + Sync + 'static) -> Podman {
        self.settings.progress = Arc::new(progress);
        self
    }

    /// Sets how `up` builds the built-in images it needs (base image, gitleaks binary,
    /// forced rebuild). Default: [`BuildOptions::default`].
    pub fn with_build_options(mut self, build: BuildOptions) -> Podman {
        self.settings.build = build;
        self
    }

    /// The service's address, e.g. `unix:///run/podman/podman.sock`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Where the address came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The libpod API version in use (the lower of the service's and podman-api's), e.g.
    /// `4.3.1`.
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// Whether the service runs rootless (as an ordinary user, in a user namespace).
    pub fn rootless(&self) -> bool {
        self.rootless
    }

    /// The host's cgroups version as podman reports it (`v1` or `v2`).
    pub fn cgroup_version(&self) -> &str {
        &self.cgroup_version
    }

    /// Whether podman enforces the plan's pids and memory limits here: not when rootless
    /// on cgroups v1, where podman ignores resource limits.
    pub fn limits_enforced(&self) -> bool {
        !(self.rootless && self.cgroup_version == "v1")
    }

    /// The underlying podman-api client, for callers (and tests) that need an API call this
    /// crate does not wrap.
    pub fn client(&self) -> &podman_api::Podman {
        &self.api
    }

    /// Runs `command` in the running container `container` (any container, not only an
    /// agent) with no standard input, and collects its output and exit code.
    pub async fn exec_output(
        &self,
        container: &str,
        command: &[String],
    ) -> Result<ExecOutput, BackendError> {
        shared::exec_output(self, container, command).await
    }
}

fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Podman's own words for an error: the message of an error response (without podman-api's
/// repetition of the cause), or the error's text with its sources.
pub(crate) fn error_text(e: &podman_api::Error) -> String {
    use podman_api::Error;
    match e {
        Error::Fault { message, .. } => dedupe_cause(message.trim()),
        other => shared::text_with_sources(other),
    }
}

/// podman-api words a fault as `MESSAGE: CAUSE`, and podman's message usually ends with
/// the cause already: drop the repetition.
fn dedupe_cause(message: &str) -> String {
    match message.rsplit_once(": ") {
        Some((head, cause)) if head.ends_with(cause) => head.to_owned(),
        Some((head, "")) => head.to_owned(),
        _ => message.to_owned(),
    }
}

/// Whether a podman-api error is "no such ...".
pub(crate) fn is_not_found(e: &podman_api::Error) -> bool {
    matches!(e, podman_api::Error::Fault { code, .. } if code.as_u16() == 404)
}

/// Wraps a raw call's error as [`BackendError::Engine`] for `action`.
pub(crate) fn raw_err(action: impl Into<String>, e: &raw::RawError) -> BackendError {
    BackendError::Engine {
        action: action.into(),
        message: e.text(),
    }
}

bottle_backend_shared::impl_backend!(Podman, "podman");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_not_repeated() {
        assert_eq!(
            dedupe_cause(
                "no container with name or ID \"x\" found: no such container: no such container"
            ),
            "no container with name or ID \"x\" found: no such container"
        );
        assert_eq!(dedupe_cause("network in use: "), "network in use");
        assert_eq!(dedupe_cause("plain"), "plain");
    }
}
