//! `bottle run`: up (unless up already), a command in the agent, down.
//!
//! compose's `run --rm` rule: `run` takes down only what it brought up. A bottle that was
//! up before (its agent running) stays up; `--keep` leaves one `run` brought up. Taking down
//! is `bottle down`'s: the audit log is saved first.
//!
//! Signals: from the start, SIGINT, SIGTERM and SIGHUP no longer kill bottle; they end the
//! command's wait instead, and the bottle is taken down (as above) before bottle exits with
//! 128 + the signal's number. One that comes during `up` is acted on once `up` is done
//! (or has rolled back): cutting `up` short could leave half-made containers. With a
//! terminal, Ctrl-C is a key the command reads (Claude Code uses it), not a signal to bottle.

use std::process::ExitCode;

use anyhow::Context;
use bottle_core::backend::{Backend, ExecRequest, Scope, UpOptions};
use bottle_core::plan::{ContainerRole, Plan, ResourceKind};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::RunArgs;
use crate::logs;

/// A signal that ends `run`: its name and number.
type Caught = (&'static str, u8);

/// The signals that end `run`, listened to from creation on.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind| signal(kind).context("cannot listen for signals");
        Ok(Signals {
            int: on(SignalKind::interrupt())?,
            term: on(SignalKind::terminate())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> Caught {
        tokio::select! {
            _ = self.int.recv() => ("SIGINT", 2),
            _ = self.term.recv() => ("SIGTERM", 15),
            _ = self.hup.recv() => ("SIGHUP", 1),
        }
    }
}

/// How the command's part ended.
enum Ended {
    /// The command exited with this code.
    Exited(i32),
    /// A signal ended the wait.
    Signalled(Caught),
}

/// Runs `bottle run` for the bottle of `plan` on `backend`.
pub async fn run(backend: &dyn Backend, plan: &Plan, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let slug = plan.slug.as_str();
    let mut signals = Signals::listen()?;
    let was_up = agent_running(backend, plan).await?;
    if !was_up {
        let opts = UpOptions {
            keep_on_failure: args.keep_on_failure,
        };
        let up = backend.up(plan, &opts);
        tokio::pin!(up);
        let mut caught = None;
        let result = loop {
            tokio::select! {
                result = &mut up => break result,
                signal = signals.recv(), if caught.is_none() => {
                    eprintln!("bottle: {} received: '{slug}' is taken down as soon as `up` is done", signal.0);
                    caught = Some(signal);
                }
            }
        };
        result?;
        if let Some(signal) = caught {
            finish(backend, plan, args.keep, Ok(Ended::Signalled(signal))).await?;
            return Ok(ExitCode::from(128 + signal.1));
        }
    }

    let ended = command(backend, plan, args, &mut signals).await;
    if was_up {
        return code(ended);
    }
    finish(backend, plan, args.keep, ended).await
}

/// Runs the command (the user's, else the agent image's) in the agent, until it exits or a
/// signal comes.
async fn command(
    backend: &dyn Backend,
    plan: &Plan,
    args: &RunArgs,
    signals: &mut Signals,
) -> anyhow::Result<Ended> {
    let command = if args.command.is_empty() {
        let agent = plan
            .containers
            .iter()
            .find(|c| c.role.is_agent())
            .context("the plan has no agent")?;
        backend.image_command(&agent.image.name).await?
    } else {
        args.command.clone()
    };
    let request = ExecRequest {
        project: plan.project.clone(),
        slug: plan.slug.clone(),
        command,
        tty: args.tty.wanted(),
        options: args.options.to_options(),
    };
    tokio::select! {
        code = backend.exec(&request) => Ok(Ended::Exited(code?)),
        signal = signals.recv() => Ok(Ended::Signalled(signal)),
    }
}

/// Takes the bottle down (its audit log saved first) unless `keep`, then answers with
/// the command's exit code, or the first error.
async fn finish(
    backend: &dyn Backend,
    plan: &Plan,
    keep: bool,
    ended: anyhow::Result<Ended>,
) -> anyhow::Result<ExitCode> {
    let slug = plan.slug.as_str();
    if let Ok(Ended::Signalled(signal)) = &ended {
        eprintln!(
            "bottle: {} received: {}",
            signal.0,
            if keep {
                format!("leaving '{slug}' up (--keep)")
            } else {
                format!("taking '{slug}' down")
            }
        );
    }
    if keep {
        eprintln!("bottle: '{slug}' stays up; `bottle down {slug}` removes it");
        return code(ended);
    }
    logs::save_before_down(backend, &plan.project, slug).await;
    let down = backend
        .down(&Scope::bottle(&plan.project, slug))
        .await
        .with_context(|| format!("the command ended, but taking '{slug}' down failed"));
    match (ended, down) {
        (ended, Ok(())) => code(ended),
        (Ok(_), Err(down)) => Err(down),
        (Err(ended), Err(down)) => {
            eprintln!("error: {down:#}");
            Err(ended)
        }
    }
}

/// The exit code `run` exits with: the command's, or 128 + a signal's number.
fn code(ended: anyhow::Result<Ended>) -> anyhow::Result<ExitCode> {
    Ok(match ended? {
        Ended::Exited(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Ended::Signalled((_, number)) => ExitCode::from(128 + number),
    })
}

/// Whether the bottle's agent container runs now.
async fn agent_running(backend: &dyn Backend, plan: &Plan) -> anyhow::Result<bool> {
    let scope = Scope {
        project: Some(plan.project.clone()),
        bottle: Some(plan.slug.clone()),
        ..Scope::default()
    };
    let found = backend.ps(&scope).await?;
    Ok(found.iter().any(|b| {
        b.resources.iter().any(|r| {
            r.kind == ResourceKind::Container
                && r.role.as_deref() == Some(ContainerRole::AGENT)
                && r.state == "running"
        })
    }))
}
