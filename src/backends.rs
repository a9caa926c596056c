//! The one table of backends the binary knows, and opening one by name.
//!
//! Built-in backends are listed in [`BUILTIN`]. Plugin backends (dynamic libraries loaded
//! at run time) will join the same lookup: [`open`] is the only place that turns a name
//! into a `Backend`, so an unknown name always gets the same error listing every choice.

use std::future::Future;
use std::pin::Pin;

use bottle_core::backend::{Backend, BackendError};

/// What opening a backend may need from the manifest and the user's config.
#[derive(Debug, Clone, Default)]
pub struct OpenSettings {
    /// The podman socket named in `[settings] podman_socket` or the user's config.
    pub podman_socket: Option<String>,
}

type Opener =
    fn(OpenSettings) -> Pin<Box<dyn Future<Output = Result<Box<dyn Backend>, BackendError>>>>;

/// A built-in backend: its name, what it is, how to open it.
pub struct Entry {
    /// The name `--backend` takes.
    pub name: &'static str,
    /// One line for `--help` and errors.
    pub about: &'static str,
    open: Opener,
}

/// Every built-in backend, in the order they are listed to users.
pub const BUILTIN: &[Entry] = &[
    Entry {
        name: "docker",
        about: "the Docker engine, through its API (DOCKER_HOST or /var/run/docker.sock)",
        open: |_| {
            Box::pin(async {
                let docker = bottle_backend_docker::Docker::connect().await?;
                Ok(Box::new(docker) as Box<dyn Backend>)
            })
        },
    },
    Entry {
        name: "podman",
        about: "Podman, rootful or rootless, through its libpod API (CONTAINER_HOST, podman_socket, or the user's or root's socket)",
        open: |settings| {
            Box::pin(async move {
                let podman =
                    bottle_backend_podman::Podman::connect(settings.podman_socket.as_deref())
                        .await?;
                Ok(Box::new(podman) as Box<dyn Backend>)
            })
        },
    },
    Entry {
        name: "dry-run",
        about: "print the docker commands `up` would run; change nothing",
        open: |_| Box::pin(async { Ok(dry_run(bottle_backend_dryrun::Cli::Docker)) }),
    },
    Entry {
        name: "dry-run-podman",
        about: "print the podman commands `up` would run; change nothing",
        open: |_| Box::pin(async { Ok(dry_run(bottle_backend_dryrun::Cli::Podman)) }),
    },
];

fn dry_run(cli: bottle_backend_dryrun::Cli) -> Box<dyn Backend> {
    Box::new(bottle_backend_dryrun::DryRun::stdout(cli))
}

/// No backend has the asked name.
#[derive(Debug, thiserror::Error)]
#[error(
    "no backend named '{name}' ({source_}); known backends: {}{}",
    known(),
    described()
)]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
    /// Where the name came from.
    pub source_: String,
}

/// The known names, for errors and help.
pub fn known() -> String {
    BUILTIN
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn described() -> String {
    BUILTIN
        .iter()
        .map(|e| format!("\n  {:<16} {}", e.name, e.about))
        .collect()
}

/// Finds a backend by name.
pub fn find(name: &str) -> Option<&'static Entry> {
    BUILTIN.iter().find(|e| e.name == name)
}

/// Opens a backend found by [`find`].
pub async fn open(entry: &Entry, settings: OpenSettings) -> Result<Box<dyn Backend>, BackendError> {
    (entry.open)(settings).await
}
