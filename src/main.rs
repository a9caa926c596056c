//! `bottle`: the command-line front end. Parses arguments, finds the manifest and the
//! backend, plans, and hands the plan to the backend. Exit codes: 0 success, 1 a runtime
//! failure, 2 a usage or manifest error (clap's own usage errors exit 2 too); `exec` and
//! `run` exit with their command's code, and `exec` exits 125 when the agent is not running
//! (podman's and `docker run`'s code for "the engine's side failed, the command did not
//! run"; 1 would be taken for the command's own failure).

mod backends;
mod cli;
mod config;
mod demo;
mod doctor;
mod logs;
mod resolved;
mod run;
mod status;
mod test_hooks;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bottle_core::backend::{Backend, BackendError, ExecRequest, Scope, UpOptions};
use bottle_core::manifest::{self, LoadError, Manifest, MANIFEST_FILE};
use bottle_core::planner::{self, PlanError};
use bottle_core::project::{InvalidProject, Project};
use clap::Parser;

use cli::{Cli, Command, ImageCommand, InitAgent};

/// An error that exits with code 2: the user's input is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `exec` found no running agent: exits [`NOT_RUNNING_CODE`], so that a script tells it
/// from the command's own failure (its message says the command did not run).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotRunning(String);

/// The exit code of `exec` on a bottle whose agent is not running.
const NOT_RUNNING_CODE: u8 = 125;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.apply {
        // Plugins learn of --apply from the environment (the plugin ABI passes no
        // options). Set here, before the runtime starts any thread.
        std::env::set_var("BOTTLE_APPLY", "1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| {
        e.is::<UsageError>()
            || e.is::<bottle_core::diag::ManifestError>()
            || e.is::<LoadError>()
            || e.is::<manifest::SelectError>()
            || e.is::<backends::UnknownBackend>()
            || e.is::<backends::PluginProblem>()
            || matches!(e.downcast_ref::<PlanError>(), Some(PlanError::Invalid(_)))
    });
    if usage {
        2
    } else if err.chain().any(|e| e.is::<NotRunning>()) {
        NOT_RUNNING_CODE
    } else {
        1
    }
}

/// The manifest named by `-f`, `--manifest` or `BOTTLE_MANIFEST` (an empty value is no
/// value), if any.
fn named_manifest(cli: &Cli) -> Option<PathBuf> {
    cli.manifest_short
        .clone()
        .or_else(|| cli.manifest.clone())
        .or_else(|| {
            std::env::var_os("BOTTLE_MANIFEST")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
}

/// The manifest's path: the named one, else the first `bottle.toml` in the current
/// directory or a parent (as a relative path, `../bottle.toml`, so messages stay short and
/// the manifest's relative paths resolve against its own directory). `None`: none found.
fn manifest_path(cli: &Cli) -> Option<PathBuf> {
    if let Some(named) = named_manifest(cli) {
        return Some(named);
    }
    discover(&std::env::current_dir().ok()?)
}

/// The first `bottle.toml` in `dir` or one of its parents, relative to `dir`.
fn discover(dir: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for ancestor in dir.ancestors() {
        if ancestor.join(MANIFEST_FILE).is_file() {
            return Some(relative.join(MANIFEST_FILE));
        }
        relative.push("..");
    }
    None
}

/// Loads the manifest; required by commands that plan.
fn load_manifest(cli: &Cli) -> anyhow::Result<Manifest> {
    let Some(path) = manifest_path(cli) else {
        let here = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|_| ".".to_owned());
        return Err(UsageError(format!(
            "no {MANIFEST_FILE} in {here} or any directory above it\n  hint: create one with `bottle init`, or name one with -f PATH (or BOTTLE_MANIFEST)"
        ))
        .into());
    };
    Ok(manifest::load(&path)?)
}

/// Loads the manifest if there is one: `down`, `ps`, `cleanup` and `exec` work without
/// it when given a bottle name. A manifest named but missing is an error.
fn try_manifest(cli: &Cli) -> anyhow::Result<Option<Manifest>> {
    match manifest_path(cli) {
        None => Ok(None),
        Some(path) => Ok(Some(manifest::load(&path)?)),
    }
}

/// The path `init` writes: the named manifest, else `./bottle.toml` (never a parent's).
fn init_path(cli: &Cli) -> PathBuf {
    named_manifest(cli).unwrap_or_else(|| PathBuf::from(MANIFEST_FILE))
}

/// When the backend is a dry run (`--dry-run`, or a dry-run backend named anywhere): its
/// name and where that came from.
fn dry_run(cli: &Cli, manifest: Option<&Manifest>) -> anyhow::Result<Option<(String, String)>> {
    let (name, source) = backend_name_and_source(cli, manifest)?;
    let source = if cli.dry_run {
        "from --dry-run".to_owned()
    } else {
        source.to_string()
    };
    Ok(bottle_backend_dryrun::Cli::from_backend_name(&name)
        .is_some()
        .then_some((name, source)))
}

/// The error of a command the dry run does not do.
fn refused_by_dry_run(what: &str, (name, source): (String, String), hint: &str) -> anyhow::Error {
    UsageError(format!(
        "{what}: the {name} backend ({source}) changes nothing and reads nothing from an engine\n  hint: {hint}"
    ))
    .into()
}

/// The backend's name and where it came from, by the documented precedence.
fn backend_name_and_source(
    cli: &Cli,
    manifest: Option<&Manifest>,
) -> anyhow::Result<(String, config::Source)> {
    let flag = if cli.dry_run {
        Some("dry-run")
    } else {
        cli.backend.as_deref()
    };
    let env = std::env::var("BOTTLE_BACKEND").ok();
    let from_manifest = manifest
        .and_then(|m| m.settings.backend.as_ref())
        .map(|b| (b.value.as_str(), b.location.to_string()));
    let user_path = config::user_config_path();
    let user = match &user_path {
        Some(p) => config::load_user_config(p)?,
        None => config::UserConfig::default(),
    };
    let from_user = user.backend.as_deref().zip(user_path.clone());
    Ok(config::resolve(
        flag,
        env.as_deref(),
        from_manifest,
        from_user,
    ))
}

/// Settings a backend may need: the manifest's win over the user's config.
fn open_settings(manifest: Option<&Manifest>) -> anyhow::Result<backends::OpenSettings> {
    let user = match config::user_config_path() {
        Some(p) => config::load_user_config(&p)?,
        None => config::UserConfig::default(),
    };
    Ok(backends::OpenSettings {
        podman_socket: manifest
            .and_then(|m| m.settings.podman_socket.clone())
            .or(user.podman_socket),
    })
}

async fn open_backend(cli: &Cli, manifest: Option<&Manifest>) -> anyhow::Result<Box<dyn Backend>> {
    let (name, source) = backend_name_and_source(cli, manifest)?;
    backends::open_named(
        &name,
        &source.to_string(),
        &cli.plugins,
        open_settings(manifest)?,
    )
    .await
}

/// The project commands act in, by the documented precedence: `-p/--project-name`, else
/// `BOTTLE_PROJECT` (an empty value is no value), else the manifest's `[settings] project`,
/// else the manifest's directory name normalised as Compose does (the current directory's
/// when there is no manifest). A name given explicitly is checked, never rewritten.
fn project(cli: &Cli, manifest: Option<&Manifest>) -> anyhow::Result<Project> {
    let invalid = |e: InvalidProject, from: &str, hint: &str| -> anyhow::Error {
        UsageError(format!("{e} ({from})\n  hint: {hint}")).into()
    };
    if let Some(name) = &cli.project_name {
        return Project::new(name).map_err(|e| invalid(e, "from --project-name", "e.g. -p my-app"));
    }
    if let Some(name) = std::env::var("BOTTLE_PROJECT")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Project::new(&name).map_err(|e| {
            invalid(
                e,
                "from BOTTLE_PROJECT",
                "set BOTTLE_PROJECT to e.g. my-app, or unset it",
            )
        });
    }
    if let Some(p) = manifest.and_then(|m| m.settings.project.as_ref()) {
        return Ok(p.value.clone());
    }
    let dir = match manifest {
        Some(m) => m
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned(),
        None => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("cannot resolve the directory {}", dir.display()))?;
    Project::from_dir(&dir).map_err(|e| {
        invalid(
            e,
            &format!("the name of {}, the default project", dir.display()),
            "name the project with -p NAME, BOTTLE_PROJECT or `project = \"NAME\"` under [settings]",
        )
    })
}

/// The bottle a command acts on: the named one (these commands find resources by label, so
/// a bottle of another project's manifest is fine), or the one the manifest implies.
fn bottle_name(manifest: Option<&Manifest>, name: Option<&str>) -> anyhow::Result<String> {
    match (manifest, name) {
        (_, Some(name)) => Ok(name.to_owned()),
        (Some(m), None) => Ok(m.select(None)?.name.clone()),
        (None, None) => Err(UsageError(format!(
            "no bottle named and no {MANIFEST_FILE} here or above\n  hint: name the bottle, or pass -f PATH"
        ))
        .into()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Init { force, agent } => {
            // The manifest may not exist yet, or be the one replaced: not read for this.
            let dry = dry_run(&cli, None)?.is_some();
            init(&init_path(&cli), *force, *agent, dry).map(|_| ExitCode::SUCCESS)
        }
        Command::Render { bottle, out } => {
            let manifest = load_manifest(&cli)?;
            let dry = dry_run(&cli, Some(&manifest))?.is_some();
            let project = project(&cli, Some(&manifest))?;
            let bottle = manifest.select(bottle.as_deref())?;
            render(bottle, &project, out, dry).map(|_| ExitCode::SUCCESS)
        }
        Command::Config { bottle, format } => {
            let manifest = load_manifest(&cli)?;
            print!(
                "{}",
                resolved::render(&manifest, bottle.as_deref(), format.json())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { bottle } => {
            let manifest = load_manifest(&cli)?;
            let project = project(&cli, Some(&manifest))?;
            validate::run(&manifest, &project, bottle.as_deref()).map(|_| ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "bottle", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            bottle,
            keep_on_failure,
        } => {
            let manifest = load_manifest(&cli)?;
            let project = project(&cli, Some(&manifest))?;
            let bottle = manifest.select(bottle.as_deref())?;
            let mut plan = planner::plan(bottle, &project)?;
            test_hooks::apply(&mut plan)?;
            let backend = open_backend(&cli, Some(&manifest)).await?;
            backend
                .up(
                    &plan,
                    &UpOptions {
                        keep_on_failure: *keep_on_failure,
                    },
                )
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { bottle } => {
            let manifest = try_manifest(&cli)?;
            let project = project(&cli, manifest.as_ref())?;
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            logs::save_before_down(backend.as_ref(), project.as_str(), &slug).await;
            backend
                .down(&Scope::bottle(project.as_str(), &slug))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop { bottle } => {
            let manifest = try_manifest(&cli)?;
            let project = project(&cli, manifest.as_ref())?;
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let stopped = backend
                .stop(&Scope::bottle(project.as_str(), &slug))
                .await?;
            if !backend.name().starts_with("dry-run") {
                if stopped.is_empty() {
                    println!("bottle {slug}: nothing was running");
                }
                for r in &stopped {
                    println!("stopped {} {}", r.kind, r.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { bottle } => {
            let manifest = load_manifest(&cli)?;
            let bottle = manifest.select(bottle.as_deref())?;
            let project = project(&cli, Some(&manifest))?;
            let plan = planner::plan(bottle, &project)?;
            let backend = open_backend(&cli, Some(&manifest)).await?;
            let started = backend.start(&plan).await?;
            if !backend.name().starts_with("dry-run") {
                if started.is_empty() {
                    println!("bottle {}: running already", plan.slug);
                }
                for name in &started {
                    println!("started container {name}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { bottle, format } => {
            let manifest = try_manifest(&cli)?;
            if let Some(dry) = dry_run(&cli, manifest.as_ref())? {
                return Err(refused_by_dry_run(
                    "status has nothing to show in a dry run",
                    dry,
                    "drop --dry-run: `bottle status` only reads from the engine",
                ));
            }
            let project = project(&cli, manifest.as_ref())?;
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            // With the manifest's bottle: its containers (to name missing ones) and mirrors.
            let known = manifest
                .as_ref()
                .and_then(|m| m.bottles.get(&slug))
                .map(|b| -> anyhow::Result<_> {
                    let repos = b.git.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
                    Ok((planner::plan(b, &project)?, repos))
                })
                .transpose()?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let (plan, repos) = match &known {
                Some((plan, repos)) => (Some(plan), repos.as_slice()),
                None => (None, &[][..]),
            };
            let found =
                status::gather(backend.as_ref(), project.as_str(), &slug, plan, repos).await?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", status::human(&found, std::time::SystemTime::now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            bottle,
            container,
            denied,
            format,
            follow,
            since,
        } => {
            let manifest = try_manifest(&cli)?;
            if let Some(dry) = dry_run(&cli, manifest.as_ref())? {
                return Err(refused_by_dry_run(
                    "logs has nothing to show in a dry run",
                    dry,
                    "drop --dry-run: `bottle logs` only reads (the engine's logs, or the log `down` saved)",
                ));
            }
            let project = project(&cli, manifest.as_ref())?;
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            if let Some(role) = container {
                logs::container_output(backend.as_ref(), project.as_str(), &slug, role).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let filter = logs::Filter {
                denied: *denied,
                since: *since,
            };
            logs::run(
                backend.as_ref(),
                project.as_str(),
                &slug,
                &filter,
                format.json(),
                *follow,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ps {
            bottle,
            all,
            format,
        } => {
            let manifest = try_manifest(&cli)?;
            if format.json() {
                if let Some(dry) = dry_run(&cli, manifest.as_ref())? {
                    return Err(refused_by_dry_run(
                        "ps --format json has no bottles to list in a dry run",
                        dry,
                        "drop --format json to print the commands ps would run, or drop --dry-run",
                    ));
                }
            }
            let scope = Scope {
                project: if *all {
                    None
                } else {
                    Some(project(&cli, manifest.as_ref())?.to_string())
                },
                bottle: bottle.clone(),
                // Resources of a bottle older than projects belong to none: shown everywhere,
                // so that they are found.
                unlabelled: true,
                stopped_only: false,
                keep_complete: false,
            };
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let found = backend.ps(&scope).await?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if backend.name().starts_with("dry-run") {
                // The dry-run printed the command it would run.
            } else if found.is_empty() {
                println!("no bottles");
            } else {
                println!(
                    "{:<16} {:<16} {:<10} {:<10} {:<40} STATE",
                    "PROJECT", "BOTTLE", "KIND", "ROLE", "NAME"
                );
                for b in &found {
                    for r in &b.resources {
                        let role = r.role.clone().unwrap_or_default();
                        // A container its engine restarted says so after its state.
                        let restarts = match r.restarts {
                            Some(1) => " (restarted once)".to_owned(),
                            Some(n) if n > 1 => format!(" (restarted {n} times)"),
                            _ => String::new(),
                        };
                        println!(
                            "{:<16} {:<16} {:<10} {:<10} {:<40} {}{restarts}",
                            b.project.as_deref().unwrap_or("-"),
                            b.slug,
                            r.kind,
                            role,
                            r.name,
                            r.state
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cleanup { bottle, all, yes } => {
            let manifest = try_manifest(&cli)?;
            let scope = if *all {
                Scope {
                    unlabelled: true,
                    ..Scope::default()
                }
            } else {
                let project = project(&cli, manifest.as_ref())?;
                Scope {
                    project: Some(project.to_string()),
                    bottle: bottle.clone(),
                    // By name, also the same-named bottle made before projects.
                    unlabelled: bottle.is_some(),
                    stopped_only: true,
                    // Unnamed, a stopped bottle that `start` can resume is kept: no engine
                    // tells one stopped on purpose (`bottle stop`) from one stopped by a
                    // reboot, and removing it would lose the gate's mirrors and the log.
                    keep_complete: bottle.is_none(),
                }
            };
            let dry = dry_run(&cli, manifest.as_ref())?.is_some();
            let ask = *all && !*yes && !dry;
            if ask && !std::io::stdin().is_terminal() {
                // Refused before the engine is even asked: nothing could be confirmed.
                return Err(UsageError(
                    "cleanup --all removes every bottle's containers and networks on the engine (every project's, running ones included), and there is no terminal to ask for confirmation\n  hint: pass --yes to remove them, or run `bottle cleanup` to remove only this project's stopped bottles".to_owned(),
                )
                .into());
            }
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            if ask {
                let found = backend.ps(&scope).await?;
                if found.is_empty() {
                    println!("nothing to clean up");
                    return Ok(ExitCode::SUCCESS);
                }
                confirm_cleanup_all(&found)?;
            }
            // What stays: bottles with something running (cleanup leaves them to `down`) and,
            // unnamed, complete stopped ones (`start` resumes them).
            let (live, kept): (Vec<_>, Vec<_>) = if scope.stopped_only && !dry {
                backend
                    .ps(&Scope {
                        stopped_only: false,
                        keep_complete: false,
                        ..scope.clone()
                    })
                    .await?
                    .into_iter()
                    .filter(|b| {
                        b.resources
                            .iter()
                            .any(|r| bottle_core::backend::is_live_state(&r.state))
                            || (scope.keep_complete
                                && bottle_core::backend::is_complete_stopped(&b.resources))
                    })
                    .partition(|b| {
                        b.resources
                            .iter()
                            .any(|r| bottle_core::backend::is_live_state(&r.state))
                    })
            } else {
                (Vec::new(), Vec::new())
            };
            let removed = backend.cleanup(&scope).await?;
            if !dry {
                for r in &removed {
                    println!("removed {} {}", r.kind, r.name);
                }
                for b in &live {
                    println!(
                        "left running: bottle '{}' (`bottle down {}` takes it down)",
                        b.slug, b.slug
                    );
                }
                for b in &kept {
                    println!(
                        "kept stopped: bottle '{0}' (`bottle start {0}` resumes it; `bottle cleanup {0}` or `bottle down {0}` removes it)",
                        b.slug
                    );
                }
                if removed.is_empty() && live.is_empty() && kept.is_empty() {
                    println!("nothing to clean up");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { keep } => {
            // The demo brings its own manifest: the backend comes from the flag, the
            // environment or the user's config, never from a bottle.toml here.
            let (name, source) = backend_name_and_source(&cli, None)?;
            match name.as_str() {
                "docker" => {
                    let docker = bottle_backend_docker::Docker::connect()
                        .await?
                        .with_progress(demo::progress);
                    let about = format!("docker, {} (API {})", docker.host(), docker.api_version());
                    demo::run(docker, &about, *keep).await?;
                }
                "podman" => {
                    let socket = open_settings(None)?.podman_socket;
                    let podman = bottle_backend_podman::Podman::connect(socket.as_deref())
                        .await?
                        .with_progress(demo::progress);
                    let about = format!(
                        "podman{}, {} (API {})",
                        if podman.rootless() { " (rootless)" } else { "" },
                        podman.address(),
                        podman.api_version()
                    );
                    demo::run(podman, &about, *keep).await?;
                }
                other => {
                    return Err(UsageError(format!(
                        "the demo runs on an engine backend (docker or podman), not on '{other}' ({source})\n  hint: --backend docker or --backend podman"
                    ))
                    .into())
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => {
            let manifest = try_manifest(&cli)?;
            let (name, source) = backend_name_and_source(&cli, manifest.as_ref())?;
            let mut checks = Vec::new();
            match name.as_str() {
                "docker" => {
                    checks.extend(doctor::docker().await);
                    checks.extend(doctor::build_tools());
                }
                "podman" => {
                    checks.extend(doctor::podman_host());
                    let settings = open_settings(manifest.as_ref())?;
                    checks.extend(doctor::podman_service(settings.podman_socket.as_deref()).await);
                    checks.extend(doctor::build_tools());
                }
                other => {
                    // Known (built in, or a plugin that loads) or an error naming the known.
                    backends::open_named(
                        other,
                        &source.to_string(),
                        &cli.plugins,
                        open_settings(manifest.as_ref())?,
                    )
                    .await?;
                    if manifest
                        .as_ref()
                        .is_none_or(|m| doctor::identity_files(m).is_empty())
                    {
                        println!("backend {other}: nothing to check (it runs no engine)");
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            if let Some(m) = &manifest {
                checks.extend(doctor::identity_files(m));
            }
            // Images only on an engine that answered (else that is the problem to fix first).
            let engine = matches!(name.as_str(), "docker" | "podman");
            if engine
                && !checks.iter().any(|c| {
                    (c.name.ends_with("engine") || c.name == "podman service")
                        && matches!(c.status, doctor::Status::Missing { .. })
                })
            {
                if let Ok(backend) = open_backend(&cli, manifest.as_ref()).await {
                    checks.extend(doctor::images(backend.as_ref(), manifest.as_ref()).await);
                }
            }
            let healthy = doctor::report(&format!("bottle doctor: backend {name}"), &checks);
            println!(
                "{}",
                if healthy {
                    "healthy: everything this backend needs is in place"
                } else {
                    "not healthy: run the fixes above, then `bottle doctor` again"
                }
            );
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Plugins { format } => {
            let (text, healthy) =
                backends::report(&backends::load_plugins(&cli.plugins), format.json());
            print!("{text}");
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Image(ImageCommand::Build { images, force }) => {
            let manifest = try_manifest(&cli)?;
            if let Some(dry) = dry_run(&cli, manifest.as_ref())? {
                return Err(refused_by_dry_run(
                    "image build is not done in a dry run",
                    dry,
                    "drop --dry-run to build; `bottle doctor` checks what building needs",
                ));
            }
            let which: Vec<&'static bottle_core::images::ImageRecipe> = bottle_core::images::ALL
                .iter()
                .copied()
                .filter(|r| images.is_empty() || images.iter().any(|n| n == r.name))
                .collect();
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            backend.build_images(&which, *force).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec(args) => {
            let manifest = try_manifest(&cli)?;
            let project = project(&cli, manifest.as_ref())?;
            let slug = bottle_name(manifest.as_ref(), args.bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let tty = args.tty.wanted();
            let command = if args.command.is_empty() {
                vec!["sh".to_owned()]
            } else {
                args.command.clone()
            };
            let request = ExecRequest {
                project: project.to_string(),
                slug,
                command,
                tty,
                options: args.options.to_options(),
            };
            match backend.exec(&request).await {
                Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
                Err(BackendError::NotRunning { slug, role }) => {
                    let mut message = format!(
                        "bottle '{slug}' has no running {role} container, so the command did not run\n  hint: start it with `bottle up {slug}` (which also starts a stopped bottle), then run the command again"
                    );
                    // `bottle exec ls`: the name may have been meant as the command.
                    let in_manifest = manifest
                        .as_ref()
                        .is_some_and(|m| m.bottles.contains_key(&slug));
                    if args.bottle.is_some() && args.command.is_empty() && !in_manifest {
                        message.push_str(&format!(
                            "\n  hint: if '{slug}' is the command, put it after `--`: bottle exec -- {slug}"
                        ));
                    }
                    Err(NotRunning(message).into())
                }
                Err(err) => Err(err.into()),
            }
        }
        Command::Run(args) => {
            let manifest = load_manifest(&cli)?;
            let project = project(&cli, Some(&manifest))?;
            let bottle = manifest.select(args.bottle.as_deref())?;
            let plan = planner::plan(bottle, &project)?;
            let backend = open_backend(&cli, Some(&manifest)).await?;
            run::run(backend.as_ref(), &plan, args).await
        }
    }
}

/// Asks on the terminal before `cleanup --all` removes `found` (every project's, running
/// ones included).
fn confirm_cleanup_all(found: &[bottle_core::backend::BottleStatus]) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let resources: usize = found.iter().map(|b| b.resources.len()).sum();
    let projects: std::collections::BTreeSet<&str> = found
        .iter()
        .map(|b| b.project.as_deref().unwrap_or("-"))
        .collect();
    let what = format!(
        "{resources} containers and networks of {} bottles in {} projects ({}), running ones included",
        found.len(),
        projects.len(),
        projects.iter().copied().collect::<Vec<_>>().join(", ")
    );
    eprint!("bottle: remove {what}? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(UsageError("cleanup --all: not confirmed; nothing removed".to_owned()).into())
    }
}

/// `bottle init`: writes the commented example manifest, or the one running `agent`. In a
/// dry run (`dry`), prints it instead, and says where it would have gone.
fn init(path: &Path, force: bool, agent: Option<InitAgent>, dry: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        return Err(UsageError(format!(
            "{} already exists; not overwriting it\n  hint: pass --force to replace it",
            path.display()
        ))
        .into());
    }
    let (text, next) = match agent {
        None => (
            include_str!("bottle.example.toml").to_owned(),
            "edit the upstream, identity_file and known_host_key, then run `bottle --dry-run up demo`".to_owned(),
        ),
        Some(InitAgent::ClaudeCode) => {
            let name = init_bottle_name(path);
            let text = bottle_core::template::render(
                "bottle.claude.toml",
                include_str!("bottle.claude.toml"),
                &[("NAME", &name)],
            )?;
            (
                text,
                format!("bottle '{name}' runs Claude Code: export ANTHROPIC_API_KEY, then run `bottle run -- claude --dangerously-skip-permissions`"),
            )
        }
    };
    if dry {
        print!("{text}");
        eprintln!(
            "bottle: dry run: would {} {} with the manifest above; nothing written",
            if path.exists() { "overwrite" } else { "write" },
            path.display()
        );
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}: {next}", path.display());
    Ok(())
}

/// The name `init` gives a bottle: the manifest's directory's, made a valid bottle name
/// (lowercase letters, digits and single `-`, at most 40), else `agent`: a name that says
/// where it came from in `ps`. (The project, also the directory's name by default, is what
/// keeps two directories' bottles apart.)
fn init_bottle_name(manifest: &Path) -> String {
    let dir = manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    bottle_name_from(&raw)
}

/// `raw` as a bottle name: runs of anything but ASCII letters and digits become one `-`,
/// trimmed at both ends and cut to 40 characters; `agent` when nothing is left.
fn bottle_name_from(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(40);
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        "agent".to_owned()
    } else {
        name.to_owned()
    }
}

/// `bottle render`: writes the text files every container of the bottle gets (the gate's
/// scripts, the agent's git config, a sidecar's config) under `out/<role>/<path>`, with
/// their modes, and prints each path. Files read from the host (identity keys) are never
/// written. In a dry run (`dry`) prints the paths and writes nothing.
fn render(
    bottle: &manifest::Bottle,
    project: &Project,
    out: &Path,
    dry: bool,
) -> anyhow::Result<()> {
    use bottle_core::plan::FileSource;
    use std::os::unix::fs::PermissionsExt;

    let plan = bottle_core::planner::plan(bottle, project)?;
    let mut written = 0;
    for container in &plan.containers {
        for file in &container.files {
            let FileSource::Text { text } = &file.source else {
                continue;
            };
            let path = out
                .join(container.role.as_str())
                .join(file.path.trim_start_matches('/'));
            written += 1;
            if dry {
                println!("{}", path.display());
                continue;
            }
            let Some(dir) = path.parent() else {
                continue;
            };
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            println!("{}", path.display());
        }
    }
    if dry && written > 0 {
        eprintln!(
            "bottle: dry run: would write the {written} files above; nothing written (drop --dry-run to read them)"
        );
    }
    if written == 0 {
        return Err(UsageError(format!(
            "bottle '{}' has no sidecar, so there is nothing to render\n  hint: add a [[bottles.{}.git]] entry",
            bottle.name, bottle.name
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bottle_name_from;

    #[test]
    fn init_names_bottles_after_their_directory() {
        assert_eq!(bottle_name_from("my_app"), "my-app");
        assert_eq!(bottle_name_from("--Web  Site.v2--"), "web-site-v2");
        assert_eq!(bottle_name_from("ünï"), "n");
        assert_eq!(bottle_name_from("..."), "agent");
        assert_eq!(bottle_name_from(""), "agent");
        let long = bottle_name_from(&"ab-".repeat(30));
        assert!(long.len() <= 40 && !long.ends_with('-'), "{long}");
    }
}
