//! `bottle`: the command-line front end. Parses arguments, finds the manifest and the
//! backend, plans, and hands the plan to the backend. Exit codes: 0 success, 1 a runtime
//! failure, 2 a usage or manifest error; `exec` exits with its command's code.

mod backends;
mod cli;
mod config;
mod demo;
mod doctor;
mod logs;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bottle_core::backend::{Backend, ExecRequest, UpOptions};
use bottle_core::manifest::{self, LoadError, Manifest, MANIFEST_FILE};
use bottle_core::planner::{self, PlanError};
use clap::Parser;

use cli::{Cli, Command, ImageCommand, InitAgent};

/// An error that exits with code 2: the user's input is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    } else {
        1
    }
}

/// The manifest's path: `--manifest`, else `./bottle.toml`.
fn manifest_path(cli: &Cli) -> PathBuf {
    cli.manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(MANIFEST_FILE))
}

/// Loads the manifest; required by commands that plan.
fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    Ok(manifest::load(path)?)
}

/// Loads the manifest if there is one: `down`, `ps`, `cleanup` and `exec` work without
/// it when given a bottle name.
fn try_manifest(cli: &Cli) -> anyhow::Result<Option<Manifest>> {
    let path = manifest_path(cli);
    if cli.manifest.is_none() && !path.exists() {
        return Ok(None);
    }
    load_manifest(&path).map(Some)
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

/// The bottle a command acts on: the named one (these commands find resources by label, so
/// a bottle of another project's manifest is fine), or the one the manifest implies.
fn bottle_name(manifest: Option<&Manifest>, name: Option<&str>) -> anyhow::Result<String> {
    match (manifest, name) {
        (_, Some(name)) => Ok(name.to_owned()),
        (Some(m), None) => Ok(m.select(None)?.name.clone()),
        (None, None) => Err(UsageError(format!(
            "no bottle named and no {MANIFEST_FILE} here\n  hint: name the bottle, or pass --manifest PATH"
        ))
        .into()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Init { force, agent } => {
            init(&manifest_path(&cli), *force, *agent).map(|_| ExitCode::SUCCESS)
        }
        Command::Render { bottle, out } => {
            let manifest = load_manifest(&manifest_path(&cli))?;
            let bottle = manifest.select(bottle.as_deref())?;
            render(bottle, out).map(|_| ExitCode::SUCCESS)
        }
        Command::Up {
            bottle,
            keep_on_failure,
        } => {
            let manifest = load_manifest(&manifest_path(&cli))?;
            let bottle = manifest.select(bottle.as_deref())?;
            let plan = planner::plan(bottle)?;
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
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            logs::save_before_down(backend.as_ref(), &slug).await;
            backend.down(&slug).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            bottle,
            denied,
            json,
            follow,
            since,
        } => {
            let manifest = try_manifest(&cli)?;
            let slug = bottle_name(manifest.as_ref(), bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let filter = logs::Filter {
                denied: *denied,
                since: *since,
            };
            logs::run(backend.as_ref(), &slug, &filter, *json, *follow).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ps { bottle, json } => {
            let manifest = try_manifest(&cli)?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let found = backend.ps(bottle.as_deref()).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if backend.name().starts_with("dry-run") {
                // The dry-run printed the command it would run.
            } else if found.is_empty() {
                println!("no bottles");
            } else {
                println!(
                    "{:<20} {:<10} {:<10} {:<32} STATE",
                    "BOTTLE", "KIND", "ROLE", "NAME"
                );
                for b in &found {
                    for r in &b.resources {
                        let role = r.role.clone().unwrap_or_default();
                        println!(
                            "{:<20} {:<10} {:<10} {:<32} {}",
                            b.slug, r.kind, role, r.name, r.state
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cleanup { bottle } => {
            let manifest = try_manifest(&cli)?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let removed = backend.cleanup(bottle.as_deref()).await?;
            if !backend.name().starts_with("dry-run") {
                for r in &removed {
                    println!("removed {} {}", r.kind, r.name);
                }
                if removed.is_empty() {
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
            let (name, _) = backend_name_and_source(&cli, manifest.as_ref())?;
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
                    println!("backend {other}: nothing to check (it runs no engine)");
                    return Ok(ExitCode::SUCCESS);
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
        Command::Plugins { json } => {
            let (text, healthy) = backends::report(&backends::load_plugins(&cli.plugins), *json);
            print!("{text}");
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Image(ImageCommand::Build { images, force }) => {
            let manifest = try_manifest(&cli)?;
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
            let slug = bottle_name(manifest.as_ref(), args.bottle.as_deref())?;
            let backend = open_backend(&cli, manifest.as_ref()).await?;
            let tty = args.tty.wanted();
            let command = if args.command.is_empty() {
                vec!["sh".to_owned()]
            } else {
                args.command.clone()
            };
            let code = backend.exec(&ExecRequest { slug, command, tty }).await?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Run(args) => {
            let manifest = load_manifest(&manifest_path(&cli))?;
            let bottle = manifest.select(args.bottle.as_deref())?;
            let plan = planner::plan(bottle)?;
            let backend = open_backend(&cli, Some(&manifest)).await?;
            run::run(backend.as_ref(), &plan, args).await
        }
    }
}

/// `bottle init`: writes the commented example manifest, or the one running `agent`.
fn init(path: &Path, force: bool, agent: Option<InitAgent>) -> anyhow::Result<()> {
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
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}: {next}", path.display());
    Ok(())
}

/// The name `init` gives a bottle: the manifest's directory's, made a valid bottle name
/// (lowercase letters, digits and single `-`, at most 40), else `agent`. Resources are
/// named after the bottle, so two projects' bottles keep apart.
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
/// their modes. Files read from the host (identity keys) are never written.
fn render(bottle: &manifest::Bottle, out: &Path) -> anyhow::Result<()> {
    use bottle_core::plan::FileSource;
    use std::os::unix::fs::PermissionsExt;

    let plan = bottle_core::planner::plan(bottle)?;
    let mut written = 0;
    for container in &plan.containers {
        for file in &container.files {
            let FileSource::Text { text } = &file.source else {
                continue;
            };
            let path = out
                .join(container.role.as_str())
                .join(file.path.trim_start_matches('/'));
            let dir = path.parent().expect("a file path has a parent");
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
            println!("{}", path.display());
            written += 1;
        }
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
