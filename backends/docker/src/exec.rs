//! `exec`: a command in the agent, attached to our terminal or standard streams.

use std::io::Write;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptions;
use bottle_backend_shared::term::{self, RawMode};
use bottle_core::backend::{BackendError, ExecRequest};
use bottle_core::plan::{resource_name, Role};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

pub use bottle_backend_shared::term::ExecOutput;

use crate::{engine_err, is_not_found, Docker};

impl Docker {
    /// Runs `command` in the running container `container` (any container, not only an
    /// agent) with no standard input, and collects its output and exit code.
    pub async fn exec_output(
        &self,
        container: &str,
        command: &[String],
    ) -> Result<ExecOutput, BackendError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = run(self, container, command, false, None, |out| match out {
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message)
            }
            LogOutput::StdIn { .. } => {}
        })
        .await?;
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }
}

/// [`bottle_core::backend::Backend::exec`]: the agent's command on our standard streams.
pub(crate) async fn exec_stdio(d: &Docker, req: &ExecRequest) -> Result<i32, BackendError> {
    let name = resource_name(&req.slug, Role::Agent);
    let not_running = || BackendError::NotRunning {
        slug: req.slug.clone(),
        role: Role::Agent,
    };
    match d.client.inspect_container(&name, None).await {
        Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {}
        Ok(_) => return Err(not_running()),
        Err(e) if is_not_found(&e) => return Err(not_running()),
        Err(e) => return Err(engine_err(format!("inspect container {name}"), &e)),
    }

    // Raw mode only when our stdin really is a terminal; restored on drop, whatever happens.
    let _raw = if req.tty { RawMode::enter() } else { None };
    let stdin = term::spawn_stdin_reader();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run(d, &name, &req.command, req.tty, Some(stdin), move |o| {
        // A closed stdout or stderr must not abort the command: ignore write errors.
        match o {
            LogOutput::StdErr { message } => {
                let _ = err.write_all(&message);
                let _ = err.flush();
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let _ = out.write_all(&message);
                let _ = out.flush();
            }
            LogOutput::StdIn { .. } => {}
        }
    })
    .await
}

/// Runs `command` in `container`, feeding it `stdin` (until `None`) and handing its output
/// to `sink`; returns its exit code.
async fn run(
    d: &Docker,
    container: &str,
    command: &[String],
    tty: bool,
    stdin: Option<mpsc::Receiver<Option<Bytes>>>,
    mut sink: impl FnMut(LogOutput),
) -> Result<i32, BackendError> {
    let action = || format!("run {:?} in container {container}", command.join(" "));
    let exec = d
        .client
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(tty),
                cmd: Some(command.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| engine_err(action(), &e))?;
    let started = d
        .client
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: false,
                tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| engine_err(action(), &e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(BackendError::Other(format!(
            "{}: the engine started it detached",
            action()
        )));
    };

    let pump = stdin.map(|mut rx| {
        let mut input = input;
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
        Some(spawn_resizer(d.clone(), exec.id.clone()))
    } else {
        None
    };

    let mut failure = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(o) => sink(o),
            Err(e) => {
                failure = Some(engine_err(action(), &e));
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
        let info = d
            .client
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| engine_err(action(), &e))?;
        if info.running != Some(true) {
            if let Some(code) = info.exit_code {
                return Ok(code as i32);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BackendError::Other(format!(
        "{}: the engine reported no exit code",
        action()
    )))
}

/// Keeps the exec's terminal size equal to ours: now, and on every SIGWINCH.
fn spawn_resizer(d: Docker, exec_id: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let resize = |d: &Docker, id: &str| {
            let size = term::terminal_size();
            let d = d.clone();
            let id = id.to_owned();
            async move {
                if let Some((rows, cols)) = size {
                    // Right after start the process may not exist yet: retry briefly.
                    for _ in 0..10 {
                        let options = ResizeExecOptions {
                            h: i32::from(rows),
                            w: i32::from(cols),
                        };
                        if d.client.resize_exec(&id, options).await.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        };
        resize(&d, &exec_id).await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            resize(&d, &exec_id).await;
        }
    })
}
