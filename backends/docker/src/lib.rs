//! bottle's docker backend: applies a [`Plan`] to a Docker engine through the engine's
//! HTTP API, with [bollard]. It never runs the `docker` CLI.
//!
//! ```no_run
//! # async fn demo(plan: &bottle_core::plan::Plan) -> Result<(), bottle_core::backend::BackendError> {
//! use bottle_core::backend::{Backend, UpOptions};
//! let docker = bottle_backend_docker::Docker::connect().await?; // as the docker CLI chooses
//! docker.up(plan, &UpOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # Design decisions
//!
//! - **API, not CLI.** Every step is one engine API call whose error carries the engine's
//!   own message ([`BackendError::Engine`]). Nothing depends on a `docker` binary.
//! - **Version negotiation.** bollard speaks a newer API than Docker 20.10 (API 1.41)
//!   understands. [`Docker::connect`] pings the engine, then negotiates the version (the
//!   lower of bollard's and the engine's), so the same binary talks to old and new engines.
//!   `unix://`, `tcp://` and `http://` addresses work (bollard's default features).
//! - **The docker CLI's engine.** [`Docker::connect`] picks the engine as the `docker`
//!   command does ([`context`]): `DOCKER_HOST`, else the context `DOCKER_CONTEXT` or
//!   `docker context use` named, else the default socket. So `bottle` and the `docker`
//!   lines of the dry-run script reach the same engine. bollard reads no contexts itself.
//! - **Leftovers first.** `up` probes every name the plan would create *before* it builds
//!   an image or creates anything, and fails with [`BackendError::Leftovers`] (which names
//!   `bottle cleanup`). A crashed earlier run can therefore never be half-adopted.
//! - **Images are checked before anything is created.** A missing image that bottle does
//!   not build fails `up` with nothing created and a hint to build or pull it; a built-in
//!   one ([`BuiltinImage`]) is built when missing or stale.
//!   Build contexts are embedded in the binary (by the shared crate
//!   `bottle-backend-shared`, which the podman backend uses too); see [`images`].
//! - **Rollback by identity.** `up` records the id of every network and container it
//!   created and, on failure, force-removes exactly those (unless
//!   [`UpOptions::keep_on_failure`]), then says so in the error. It never removes by name,
//!   so a resource another `up` created in a race is left alone. Independent steps run
//!   concurrently, but every in-flight step is awaited before rolling back (nothing is
//!   cancelled mid-request), so no created resource is missed.
//! - **Concurrency.** Networks are created at once; containers are created, filled and
//!   connected concurrently, and started strictly in plan order (sidecars first, the agent
//!   last), so the agent never runs before its gate has started.
//! - **Files by tar.** Each container's files travel as one tar archive, uploaded to `/`
//!   before start, holding only regular-file entries with each file's exact mode and numeric
//!   uid/gid (GNU long names where needed). The engine keeps the archive's ownership (bottle
//!   does not ask it to chown) and creates missing parent directories itself (root-owned,
//!   0755); existing directories keep their owner and mode.
//! - **Hardening as planned.** `cap_drop`, `cap_add`, `no-new-privileges`, `pids_limit`
//!   and `memory` go to the engine exactly as the plan says; nothing is added.
//! - **Everything by label.** `down`, `ps` and `cleanup` find resources by the
//!   `bottle.managed` and `bottle.slug` labels (containers first, then networks), so they
//!   work for any plan, past or present, and are idempotent. Images are not removed.
//! - **Docker 20.10 networks.** The 1.41 API lets two networks share a name unless the
//!   client asks otherwise, and bollard's request type cannot ask. After creating a network
//!   `up` therefore checks that its name is unique and fails (rolling back its own network)
//!   when a concurrent run made a twin.
//! - **exec.** `exec` runs in `bottle-<slug>-agent` and returns the command's exit code
//!   (read from the engine once the output ends). With `tty`, our terminal is put in raw
//!   mode (restored on every exit path) and the exec's size follows ours (SIGWINCH).
//!   Standard input is read on a plain thread, not tokio's blocking pool, so a pending read
//!   never holds up the runtime's shutdown; its end half-closes the exec's stdin.
//!
//! - **Shared with podman.** Everything above that is not an API call is written once in
//!   `bottle-backend-shared`: the orchestration of `up` (probe, images, concurrency,
//!   rollback), `down`/`ps`/`cleanup`, image ensure/build/import and `exec` run over the
//!   [`Engine`] primitives this crate implements (module `engine`: one bollard call each,
//!   plus the twin-network check); so do the files archive, the image contexts and their
//!   digest, the base rootfs, label filters and the words of every error. Both backends
//!   therefore behave alike, and this crate holds only what talks to docker.
//!
//! # Errors
//!
//! An engine that cannot be reached (no socket, stopped daemon, refused TCP port) is
//! [`BackendError::Unavailable`], naming the address and saying how to start the engine or
//! point `DOCKER_HOST` elsewhere. Every other engine refusal is [`BackendError::Engine`]
//! with the step bottle was taking (e.g. `start container bottle-demo-agent`) and the
//! engine's message.
//!
//! # Progress
//!
//! Image builds and base-image creation print their output line by line to standard error;
//! [`Docker::with_progress`] sends them elsewhere.
//!
//! # Images and exec as a library
//!
//! Image ensure/build/import are functions of `bottle_backend_shared::engine` taking any
//! [`Engine`], e.g. `engine::ensure_image(&docker, &spec, false)`;
//! [`Docker::exec_output`] runs a command and captures its output.
//!
//! [`Plan`]: bottle_core::plan::Plan
//! [`UpOptions::keep_on_failure`]: bottle_core::backend::UpOptions::keep_on_failure
//! [`BuiltinImage`]: bottle_core::plan::BuiltinImage

#![deny(missing_docs)]

pub mod context;
mod engine;
pub mod images;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bottle_backend_shared::engine as shared;
use bottle_core::backend::BackendError;

pub use bollard;
pub use bottle_backend_shared::engine::{Engine, ProgressFn};
pub use bottle_backend_shared::term::ExecOutput;
pub use images::{BuildOptions, BuildSpec, ContextFile, ImageStatus, RootfsSource};

/// The engine address used when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long [`Docker::connect`] waits for the engine to answer its ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The docker backend: a connected engine client.
#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    host: String,
    settings: shared::Settings,
}

impl fmt::Debug for Docker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Docker")
            .field("host", &self.host)
            .field("api_version", &self.client.client_version().to_string())
            .finish()
    }
}

impl Docker {
    /// Connects to the engine the docker CLI would use ([`context::resolve`]): `DOCKER_HOST`
    /// (`unix://PATH`, `tcp://HOST:PORT` or `http://HOST:PORT`), else the docker context
    /// named by `DOCKER_CONTEXT` or the CLI configuration's `currentContext`, else
    /// [`DEFAULT_HOST`]; pings it and negotiates the API version.
    ///
    /// A missing socket, a stopped engine, an unsupported address or a context that cannot
    /// be read is [`BackendError::Unavailable`], naming the address (and the context) and
    /// how to fix it.
    pub async fn connect() -> Result<Docker, BackendError> {
        let endpoint = context::resolve(&|name| std::env::var(name).ok())?;
        match Docker::connect_to(&endpoint.host).await {
            Err(BackendError::Unavailable { message, hint }) if endpoint.origin != context::Origin::DockerHost && endpoint.origin != context::Origin::Default => {
                Err(BackendError::Unavailable {
                    message: format!("{message} (the address of {})", endpoint.origin.describe()),
                    hint: format!("{hint}; or choose another engine with DOCKER_CONTEXT, `docker context use`, or DOCKER_HOST"),
                })
            }
            other => other,
        }
    }

    /// Connects to the engine at `host` (same forms as `DOCKER_HOST`), ignoring the
    /// environment; pings it and negotiates the API version.
    pub async fn connect_to(host: &str) -> Result<Docker, BackendError> {
        let unavailable = |what: String| BackendError::Unavailable {
            message: format!("cannot reach the docker engine at {host}: {what}"),
            hint: unavailable_hint(host),
        };
        let client = bollard::Docker::connect_with_host(host).map_err(|e| match e {
            bollard::errors::Error::UnsupportedURISchemeError { .. } => BackendError::Unavailable {
                message: format!("unsupported docker engine address '{host}'"),
                hint: "set DOCKER_HOST to unix:///PATH/docker.sock or tcp://HOST:PORT".to_owned(),
            },
            other => unavailable(error_text(&other)),
        })?;
        let handshake = async {
            client.ping().await?;
            client.negotiate_version().await
        };
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unavailable(error_text(&e))),
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
        Ok(Docker {
            client,
            host: host.to_owned(),
            settings: shared::Settings::default(),
        })
    }

    /// Sends progress lines (build output, base image creation) to `progress` instead of
    /// standard error.
    pub fn with_progress(mut self, progress: impl Fn(&str) + Send + Sync + 'static) -> Docker {
        self.settings.progress = Arc::new(progress);
        self
    }

    /// Sets how `up` builds the built-in images it needs (base image, gitleaks binary,
    /// forced rebuild). Default: [`BuildOptions::default`].
    pub fn with_build_options(mut self, build: BuildOptions) -> Docker {
        self.settings.build = build;
        self
    }

    /// The engine address this backend talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version negotiated with the engine, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.client.client_version().to_string()
    }

    /// The underlying bollard client, for callers (and tests) that need an API call this
    /// crate does not wrap.
    pub fn client(&self) -> &bollard::Docker {
        &self.client
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

fn unavailable_hint(host: &str) -> String {
    let start = "start the engine (`systemctl start docker`, or run `dockerd` as root)";
    let from_env = std::env::var("DOCKER_HOST").ok().as_deref() == Some(host);
    let target = if from_env {
        format!("or fix DOCKER_HOST (now '{host}') to point at a running engine")
    } else {
        "or set DOCKER_HOST to a running engine (e.g. unix:///run/docker.sock or tcp://HOST:2375)"
            .to_owned()
    };
    let access = if host.starts_with("unix://") {
        "; if the socket exists, check that you may open it (root, or a member of the docker group)"
    } else {
        "; check that the engine listens on that address"
    };
    format!("{start}, {target}{access}")
}

/// The engine's own words for an error: the message of an HTTP error response, or the
/// error's text otherwise (connection failures and the like).
pub(crate) fn error_text(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error;
    match e {
        Error::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        Error::DockerStreamError { error } => error.trim().to_owned(),
        other => shared::text_with_sources(other),
    }
}

/// Whether an engine error is "no such ...".
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

bottle_backend_shared::impl_backend!(Docker, "docker");
