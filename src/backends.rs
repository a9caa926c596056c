//! The one table of backends the binary knows, and opening one by name.
//!
//! Built-in backends are listed in [`BUILTIN`]. Plugin backends (dynamic libraries loaded
//! at run time, see `bottle_plugin`) join the same lookup: [`open_named`] is the only place
//! that turns a name into a `Backend`, so an unknown name always gets the same error listing
//! every choice, plugins included.
//!
//! Plugins come from `--plugin PATH` (repeatable), `BOTTLE_PLUGIN_PATH` and
//! `$XDG_DATA_HOME/bottle/plugins/` ([`load_plugins`]). They are loaded only when needed: when
//! the asked name is not a built-in one, when `--plugin` is given, and by `bottle plugins`.
//! So a broken library in the plugin directory never stands in the way of `--backend docker`.
//! A plugin claiming a built-in name, or a name another plugin claims, is refused (both
//! claimants, for a shared name), as is any library that fails to load; a failure of a
//! library named by `--plugin` is an error, one found by searching a warning (unless its
//! name was the one asked for).

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bottle_core::backend::{Backend, BackendError};
use bottle_plugin::host::{self, LoadError, Origin, Plugin};

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
    "no backend named '{name}' ({source_}); known backends: {}{}{}",
    self.names(),
    self.described(),
    self.failures()
)]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
    /// Where the name came from.
    pub source_: String,
    /// Plugin backends that were loaded: name, about, library.
    pub plugins: Vec<(String, String, PathBuf)>,
    /// Plugin libraries that failed, one message each.
    pub failed: Vec<String>,
}

impl UnknownBackend {
    fn names(&self) -> String {
        BUILTIN
            .iter()
            .map(|e| e.name)
            .chain(self.plugins.iter().map(|(n, _, _)| n.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn described(&self) -> String {
        let mut out: String = BUILTIN
            .iter()
            .map(|e| format!("\n  {:<16} {}", e.name, e.about))
            .collect();
        for (name, about, path) in &self.plugins {
            let _ = write!(out, "\n  {name:<16} {about} (plugin {})", path.display());
        }
        out
    }

    fn failures(&self) -> String {
        if self.failed.is_empty() {
            return String::new();
        }
        let mut out = String::from("\n  plugins that could not be used:");
        for f in &self.failed {
            let _ = write!(out, "\n    {}", f.replace('\n', "\n    "));
        }
        out
    }
}

/// Finds a backend by name.
pub fn find(name: &str) -> Option<&'static Entry> {
    BUILTIN.iter().find(|e| e.name == name)
}

/// Opens a backend found by [`find`].
pub async fn open(entry: &Entry, settings: OpenSettings) -> Result<Box<dyn Backend>, BackendError> {
    (entry.open)(settings).await
}

/// A plugin library that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginProblem {
    /// It failed to load or is not a valid plugin.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// It claims the name of a built-in backend.
    #[error("plugin {} (found by {origin}): claims the name '{name}' of a built-in backend, so it is not used\n  hint: give the plugin's backend a name of its own", path.display())]
    BuiltinName {
        /// The library.
        path: PathBuf,
        /// Where it was found.
        origin: Origin,
        /// The name it claims.
        name: String,
    },
    /// Two libraries claim the same name; neither is used.
    #[error("plugin {} (found by {origin}): claims the backend name '{name}', which plugin {} also claims, so neither is used\n  hint: remove one of the two libraries (or drop it from --plugin / BOTTLE_PLUGIN_PATH)", path.display(), other.display())]
    Duplicate {
        /// The library.
        path: PathBuf,
        /// Where it was found.
        origin: Origin,
        /// The name both claim.
        name: String,
        /// The other library.
        other: PathBuf,
    },
}

impl PluginProblem {
    /// The library the problem is about.
    pub fn path(&self) -> &Path {
        match self {
            PluginProblem::Load(e) => e.path(),
            PluginProblem::BuiltinName { path, .. } | PluginProblem::Duplicate { path, .. } => path,
        }
    }

    /// The backend name the library claims, when it got that far.
    pub fn claimed_name(&self) -> Option<&str> {
        match self {
            PluginProblem::Load(_) => None,
            PluginProblem::BuiltinName { name, .. } | PluginProblem::Duplicate { name, .. } => {
                Some(name)
            }
        }
    }
}

/// A plugin library that loaded and whose name is its own.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it was found.
    pub origin: Origin,
    /// The plugin.
    pub plugin: Plugin,
}

/// A plugin library that cannot be used, and why.
#[derive(Debug, Clone)]
pub struct Failed {
    /// Where it was found.
    pub origin: Origin,
    /// The ABI version it exports, when that could be read.
    pub abi_version: Option<u32>,
    /// Why it is not used.
    pub problem: PluginProblem,
}

/// Every plugin library found for this run.
#[derive(Debug, Default)]
pub struct Plugins {
    /// Usable plugins, in order of precedence.
    pub loaded: Vec<Loaded>,
    /// Libraries that cannot be used.
    pub failed: Vec<Failed>,
    /// Where bottle looked.
    pub searched: Vec<(Origin, PathBuf)>,
}

/// Finds and loads every plugin: `--plugin` paths (`flags`), `BOTTLE_PLUGIN_PATH`, and the
/// plugin directory; refuses names that are built-in or claimed twice.
pub fn load_plugins(flags: &[PathBuf]) -> Plugins {
    let env = std::env::var_os(host::PATH_ENV);
    let found = host::discover(flags, env.as_deref(), host::data_dir().as_deref());
    let mut plugins = Plugins {
        searched: found.searched,
        ..Plugins::default()
    };
    for (origin, error) in found.problems {
        plugins.failed.push(Failed {
            origin,
            abi_version: None,
            problem: error.into(),
        });
    }
    let mut candidates = Vec::new();
    for c in found.candidates {
        match host::load(&c.path) {
            Ok(plugin) => candidates.push(Loaded {
                origin: c.origin,
                plugin,
            }),
            Err(error) => plugins.failed.push(Failed {
                origin: c.origin,
                abi_version: error.abi_version(),
                problem: error.into(),
            }),
        }
    }
    for (i, c) in candidates.iter().enumerate() {
        let name = c.plugin.name();
        let path = c.plugin.path().to_owned();
        let abi_version = Some(c.plugin.info().abi_version);
        if find(name).is_some() {
            plugins.failed.push(Failed {
                origin: c.origin,
                abi_version,
                problem: PluginProblem::BuiltinName {
                    path,
                    origin: c.origin,
                    name: name.to_owned(),
                },
            });
        } else if let Some(other) = candidates
            .iter()
            .enumerate()
            .find(|(j, o)| *j != i && o.plugin.name() == name)
        {
            plugins.failed.push(Failed {
                origin: c.origin,
                abi_version,
                problem: PluginProblem::Duplicate {
                    path,
                    origin: c.origin,
                    name: name.to_owned(),
                    other: other.1.plugin.path().to_owned(),
                },
            });
        } else {
            plugins.loaded.push(c.clone());
        }
    }
    plugins
}

/// Opens the backend called `name` (which came from `source`): a built-in one, or a
/// plugin's. `flags` are the `--plugin` paths.
pub async fn open_named(
    name: &str,
    source: &str,
    flags: &[PathBuf],
    settings: OpenSettings,
) -> anyhow::Result<Box<dyn Backend>> {
    let builtin = find(name);
    if let (Some(entry), true) = (builtin, flags.is_empty()) {
        return Ok(open(entry, settings).await?);
    }
    let plugins = load_plugins(flags);
    // A library the user named with --plugin must work; the asked name must not be shared.
    let fatal = plugins.failed.iter().find(|f| {
        f.origin == Origin::Flag
            || matches!(&f.problem, PluginProblem::Duplicate { name: n, .. } if n == name)
    });
    if let Some(f) = fatal {
        return Err(f.problem.clone().into());
    }
    for f in &plugins.failed {
        eprintln!("warning: {}", f.problem);
    }
    if let Some(entry) = builtin {
        return Ok(open(entry, settings).await?);
    }
    if let Some(p) = plugins.loaded.iter().find(|p| p.plugin.name() == name) {
        return Ok(Box::new(p.plugin.backend()));
    }
    Err(UnknownBackend {
        name: name.to_owned(),
        source_: source.to_owned(),
        plugins: plugins
            .loaded
            .iter()
            .map(|p| {
                (
                    p.plugin.name().to_owned(),
                    p.plugin.info().about.clone(),
                    p.plugin.path().to_owned(),
                )
            })
            .collect(),
        failed: plugins
            .failed
            .iter()
            .map(|f| f.problem.to_string())
            .collect(),
    }
    .into())
}

/// `bottle plugins`: what was found, as a table or JSON; `false` when a library failed.
pub fn report(plugins: &Plugins, json: bool) -> (String, bool) {
    let healthy = plugins.failed.is_empty();
    if json {
        let searched: Vec<serde_json::Value> = plugins
            .searched
            .iter()
            .map(|(o, p)| serde_json::json!({"from": o.to_string(), "path": p, "exists": p.exists()}))
            .collect();
        let mut list: Vec<serde_json::Value> = plugins
            .loaded
            .iter()
            .map(|p| {
                let info = p.plugin.info();
                serde_json::json!({
                    "path": p.plugin.path(),
                    "from": p.origin.to_string(),
                    "ok": true,
                    "backend": info.name,
                    "about": info.about,
                    "version": info.version,
                    "abi_version": info.abi_version,
                    "plan_format": info.plan_format,
                })
            })
            .collect();
        list.extend(plugins.failed.iter().map(|f| {
            serde_json::json!({
                "path": f.problem.path(),
                "from": f.origin.to_string(),
                "ok": false,
                "backend": f.problem.claimed_name(),
                "abi_version": f.abi_version,
                "error": f.problem.to_string(),
            })
        }));
        let doc = serde_json::json!({"searched": searched, "plugins": list});
        return (
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
            healthy,
        );
    }
    let mut out = String::from("searched:\n");
    for (origin, path) in &plugins.searched {
        let state = if path.exists() { "" } else { " (absent)" };
        let _ = writeln!(
            out,
            "  {:<20} {}{state}",
            origin.to_string(),
            path.display()
        );
    }
    if plugins.loaded.is_empty() && plugins.failed.is_empty() {
        out.push_str("no plugins found\n");
        return (out, healthy);
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:<5} {:<8} {:<20} PATH",
        "BACKEND", "ABI", "VERSION", "FROM"
    );
    for p in &plugins.loaded {
        let info = p.plugin.info();
        let _ = writeln!(
            out,
            "{:<16} {:<5} {:<8} {:<20} {}\n  {}",
            info.name,
            info.abi_version,
            info.version,
            p.origin.to_string(),
            p.plugin.path().display(),
            info.about
        );
    }
    for f in &plugins.failed {
        let _ = writeln!(
            out,
            "{:<16} {:<5} {:<8} {:<20} {}\n  error: {}",
            f.problem.claimed_name().unwrap_or("-"),
            f.abi_version.map_or("-".to_owned(), |v| v.to_string()),
            "-",
            f.origin.to_string(),
            f.problem.path().display(),
            f.problem.to_string().replace('\n', "\n  ")
        );
    }
    (out, healthy)
}
