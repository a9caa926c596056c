//! The upstream fixture, started as the demo and the bench start it: the one spec of
//! `bottle_backend_shared::fixture`, applied by `engine::run_container` through the
//! engine's API.
//!
//! The rest of the harness drives engines through their CLI (as the rootless engine's user,
//! through `runuser`). The API needs no such detour: the test runs as root, which may open
//! the rootless user's socket (`/run/user/UID/podman/podman.sock`) as the podman engine
//! tests do, and what it creates there lands in that user's store. So the fixture is not
//! rendered into CLI arguments a second time.

use bottle_backend_docker::Docker;
use bottle_backend_podman::Podman;
use bottle_backend_shared::engine;
use bottle_core::backend::BackendError;
use bottle_core::plan::ContainerSpec;

use super::commands::COMMAND_LIMIT;
use super::runner::Runner;
use crate::e2e::Engine;

/// Creates and starts `spec` on `engine` (the store `runner`'s commands see).
pub(super) fn run_container(
    engine: &Engine,
    runner: &Runner,
    spec: &ContainerSpec,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start an async runtime: {e}"))?;
    let apply = async {
        match (engine.backend, &runner.user) {
            ("docker", _) => engine::run_container(&Docker::connect().await?, spec).await,
            ("podman", None) => engine::run_container(&Podman::connect(None).await?, spec).await,
            ("podman", Some(user)) => {
                let socket = user.runtime_dir.join("podman/podman.sock");
                let address = format!("unix://{}", socket.display());
                engine::run_container(&Podman::connect_to(&address).await?, spec).await
            }
            (other, _) => Err(BackendError::Other(format!(
                "the harness cannot reach the engine of backend {other}"
            ))),
        }
        .map(|_| ())
    };
    runtime
        .block_on(async { tokio::time::timeout(COMMAND_LIMIT, apply).await })
        .map_err(|_| {
            format!(
                "starting {} took more than {} s",
                spec.name,
                COMMAND_LIMIT.as_secs()
            )
        })?
        .map_err(|e| format!("starting {}{}: {e}", spec.name, runner.who()))
}
