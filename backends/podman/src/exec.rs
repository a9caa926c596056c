//! `exec`: a command in the agent, attached to our terminal or standard streams.

use std::io::Write;
use std::time::Duration;

use bottle_backend_shared::term::{self, ExecOutput, RawMode};
use bottle_core::backend::{BackendError, ExecRequest};
use bottle_core::plan::{resource_name, Role};
use bytes::Bytes;
use futures_util::{AsyncWriteExt, StreamExt};
use podman_api::conn::TtyChunk;
use podman_api::opts::{ExecCreateOpts, ExecStartOpts};
use tokio::sync::mpsc;

use crate::{engine_err, is_not_found, Podman};

impl Podman {
    /// Runs `command` in the running container `container` (any container, not only an
    /// agent) with no standard input, and collects its output and exit code.
    pub async fn exec_output(
        &self,
        container: &str,
        command: &[String],
    ) -> Result<ExecOutput, BackendError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = run(self, container, command, false, None, |chunk| match chunk {
            TtyChunk::StdErr(b) => stderr.extend_from_slice(&b),
            TtyChunk::StdOut(b) => stdout.extend_from_slice(&b),
            TtyChunk::StdIn(_) => {}
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
pub(crate) async fn exec_stdio(p: &Podman, req: &ExecRequest) -> Result<i32, BackendError> {
    let name = resource_name(&req.slug, Role::Agent);
    let not_running = || BackendError::NotRunning {
        slug: req.slug.clone(),
        role: Role::Agent,
    };
    match p.api.containers().get(name.as_str()).inspect().await {
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
    run(p, &name, &req.command, req.tty, Some(stdin), move |chunk| {
        // A closed stdout or stderr must not abort the command: ignore write errors.
        match chunk {
            TtyChunk::StdErr(b) => {
                let _ = err.write_all(&b);
                let _ = err.flush();
            }
            TtyChunk::StdOut(b) => {
                let _ = out.write_all(&b);
                let _ = out.flush();
            }
            TtyChunk::StdIn(_) => {}
        }
    })
    .await
}

/// Runs `command` in `container`, feeding it `stdin` (until `None`) and handing its output
/// to `sink`; returns its exit code.
async fn run(
    p: &Podman,
    container: &str,
    command: &[String],
    tty: bool,
    stdin: Option<mpsc::Receiver<Option<Bytes>>>,
    mut sink: impl FnMut(TtyChunk),
) -> Result<i32, BackendError> {
    let action = || format!("run {:?} in container {container}", command.join(" "));
    let exec = p
        .api
        .containers()
        .get(container)
        .create_exec(
            &ExecCreateOpts::builder()
                .command(command)
                .attach_stdin(stdin.is_some())
                .attach_stdout(true)
                .attach_stderr(true)
                .tty(tty)
                .build(),
        )
        .await
        .map_err(|e| engine_err(action(), &e))?;
    let mut start = ExecStartOpts::builder().tty(tty);
    if let Some((rows, cols)) = term::terminal_size().filter(|_| tty) {
        start = start.height(usize::from(rows)).width(usize::from(cols));
    }
    let start = start.build();
    let attached = exec
        .start(&start)
        .await
        .map_err(|e| engine_err(action(), &e))?
        .ok_or_else(|| BackendError::Other(format!("{}: podman started it detached", action())))?;
    let (mut output, mut input) = attached.split();

    let pump = stdin.map(|mut rx| {
        tokio::spawn(async move {
            while let Some(Some(chunk)) = rx.recv().await {
                if input.write_all(&chunk).await.is_err() {
                    return;
                }
                let _ = input.flush().await;
            }
            // End of our input: half-close so the command sees end of file.
            let _ = input.close().await;
        })
    });
    let resizer = if tty {
        Some(spawn_resizer(p.clone(), exec.id().to_string()))
    } else {
        None
    };

    let mut failure = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(chunk) => sink(chunk),
            Err(e) => {
                failure = Some(BackendError::Engine {
                    action: action(),
                    message: e.to_string(),
                });
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

    // The stream ends when the process does; podman may take a moment to record it.
    let handle = p.api.execs().get(exec.id().clone());
    for _ in 0..100 {
        let info = handle
            .inspect()
            .await
            .map_err(|e| engine_err(action(), &e))?;
        let running = info.get("Running").and_then(|r| r.as_bool());
        if running != Some(true) {
            if let Some(code) = info.get("ExitCode").and_then(|c| c.as_i64()) {
                return Ok(code as i32);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BackendError::Other(format!(
        "{}: podman reported no exit code",
        action()
    )))
}

/// Keeps the exec's terminal size equal to ours: now, and on every SIGWINCH.
fn spawn_resizer(p: Podman, exec_id: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let resize = |p: &Podman, id: &str| {
            let size = term::terminal_size();
            let handle = p.api.execs().get(id);
            async move {
                if let Some((rows, cols)) = size {
                    // Right after start the process may not exist yet: retry briefly.
                    for _ in 0..10 {
                        if handle
                            .resize(usize::from(cols), usize::from(rows))
                            .await
                            .is_ok()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        };
        resize(&p, &exec_id).await;
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            resize(&p, &exec_id).await;
        }
    })
}
