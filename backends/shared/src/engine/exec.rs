//! `exec`: a command in a container, attached to our terminal or standard streams, or
//! captured.

use std::io::Write;
use std::time::Duration;

use bottle_core::backend::{BackendError, ExecOptions, ExecRequest};
use bottle_core::plan::{resource_name, ContainerRole};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{Engine, ExecChunk};
use crate::term::{self, ExecOutput, RawMode};

/// Runs `command` in the running container `container` (any container, not only an
/// agent) with no standard input, and collects its output and exit code.
pub async fn exec_output<E: Engine>(
    e: &E,
    container: &str,
    command: &[String],
) -> Result<ExecOutput, BackendError> {
    exec_output_with(e, container, command, &ExecOptions::default()).await
}

/// [`exec_output`] as `options` say (user, working directory, environment).
pub(super) async fn exec_output_with<E: Engine>(
    e: &E,
    container: &str,
    command: &[String],
    options: &ExecOptions,
) -> Result<ExecOutput, BackendError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = run(
        e,
        container,
        command,
        options,
        false,
        None,
        |chunk| match chunk {
            ExecChunk::Stderr(b) => stderr.extend_from_slice(&b),
            ExecChunk::Stdout(b) => stdout.extend_from_slice(&b),
        },
    )
    .await?;
    Ok(ExecOutput {
        code,
        stdout,
        stderr,
    })
}

/// [`Backend::exec`](bottle_core::backend::Backend::exec): the agent's command on our
/// standard streams; returns its exit code.
pub async fn exec<E: Engine>(e: &E, req: &ExecRequest) -> Result<i32, BackendError> {
    let name = resource_name(&req.project, &req.slug, ContainerRole::AGENT);
    let not_running = || BackendError::NotRunning {
        slug: req.slug.clone(),
        role: ContainerRole::AGENT.to_owned(),
    };
    match e.container_running(&name).await {
        Ok(true) => {}
        Ok(false) => return Err(not_running()),
        Err(err) if err.is_not_found() => return Err(not_running()),
        Err(err) => return Err(err.at(format!("inspect container {name}"))),
    }

    // Raw mode only when our stdin really is a terminal; restored on drop, whatever happens.
    let _raw = if req.tty { RawMode::enter() } else { None };
    let stdin = term::spawn_stdin_reader();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let (command, options) = (&req.command, &req.options);
    run(
        e,
        &name,
        command,
        options,
        req.tty,
        Some(stdin),
        move |chunk| {
            // A closed stdout or stderr must not abort the command: ignore write errors.
            match chunk {
                ExecChunk::Stderr(b) => {
                    let _ = err.write_all(&b);
                    let _ = err.flush();
                }
                ExecChunk::Stdout(b) => {
                    let _ = out.write_all(&b);
                    let _ = out.flush();
                }
            }
        },
    )
    .await
}

/// Runs `command` in `container`, feeding it `stdin` (until `None`) and handing its output
/// to `sink`; returns its exit code.
async fn run<E: Engine>(
    e: &E,
    container: &str,
    command: &[String],
    options: &ExecOptions,
    tty: bool,
    stdin: Option<mpsc::Receiver<Option<Bytes>>>,
    mut sink: impl FnMut(ExecChunk) + Send,
) -> Result<i32, BackendError> {
    let action = || format!("run {:?} in container {container}", command.join(" "));
    let size = term::terminal_size().filter(|_| tty);
    let attached = e
        .start_exec(container, command, options, tty, stdin.is_some(), size)
        .await
        .map_err(|err| err.at(action()))?
        .ok_or_else(|| {
            BackendError::Other(format!("{}: {} started it detached", action(), e.who()))
        })?;
    let mut output = attached.output;
    let exec_id = attached.id;

    let pump = stdin.map(|mut rx| {
        let mut input = attached.input;
        tokio::spawn(async move {
            while let Some(Some(chunk)) = rx.recv().await {
                if input.write_all(&chunk).await.is_err() {
                    return;
                }
                let _ = input.flush().await;
            }
            // End of our input: half-close so the command sees end of file.
            let _ = input.shutdown().await;
        })
    });
    let resizer = if tty {
        Some(spawn_resizer(e.clone(), exec_id.clone()))
    } else {
        None
    };

    let mut failure = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(chunk) => sink(chunk),
            Err(err) => {
                failure = Some(err.at(action()));
                break;
            }
        }
    }
    if let Some(p) = pump {
        p.abort();
    }
    if let Some(r) = resizer {
        r.abort();
    }
    if let Some(f) = failure {
        return Err(f);
    }

    // The stream ends when the process does; the engine may take a moment to record it.
    for _ in 0..100 {
        let state = e
            .inspect_exec(&exec_id)
            .await
            .map_err(|err| err.at(action()))?;
        if state.running != Some(true) {
            if let Some(code) = state.exit_code {
                return Ok(code as i32);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BackendError::Other(format!(
        "{}: {} reported no exit code",
        action(),
        e.who()
    )))
}

/// Keeps the exec's terminal size equal to ours: now, and on every SIGWINCH.
fn spawn_resizer<E: Engine>(e: E, exec_id: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let resize = || async {
            if let Some((rows, cols)) = term::terminal_size() {
                // Right after start the process may not exist yet: retry briefly.
                for _ in 0..10 {
                    if e.resize_exec(&exec_id, rows, cols).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        resize().await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            resize().await;
        }
    })
}
