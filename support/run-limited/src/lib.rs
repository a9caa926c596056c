//! Runs a command under a time limit, with its standard output and error captured.
//!
//! bottle's end-to-end tests and its benchmark drive real engines, git and ssh through
//! child processes; none of those may hang a run. [`run`] is the one way both do it:
//!
//! - the wait is [`wait_timeout`]'s (no polling loop of our own); past the limit the
//!   command is killed and reaped, and what it printed so far comes with the error;
//! - stdin, stdout and stderr are each served by a thread of their own, so a command that
//!   fills one pipe while we write another cannot deadlock;
//! - a process the command left behind (a daemon it started) may keep its pipes open after
//!   it exits: its output is then awaited only briefly (one deadline for both pipes), never
//!   until that process ends, and what it printed by then is kept.
//!
//! Errors carry no command line: callers name the command in their own words (the tests
//! shorten `runuser` wrappers, the benchmark truncates long lines).

#![deny(missing_docs)]

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// How long the output of a finished command is awaited (a process it left behind may hold
/// its pipes open).
const DRAIN: Duration = Duration::from_secs(10);
/// The same after a command was killed.
const DRAIN_KILLED: Duration = Duration::from_secs(2);

/// Why [`run`] has no output to return.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command could not be started.
    #[error("cannot start it: {0}")]
    Spawn(#[source] std::io::Error),
    /// Waiting for the command failed.
    #[error("cannot wait for it: {0}")]
    Wait(#[source] std::io::Error),
    /// The command ran past its limit and was killed.
    #[error(
        "did not finish within {} s and was killed\nstdout:\n{}\nstderr:\n{}",
        limit.as_secs(),
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    )]
    TimedOut {
        /// The limit it ran past.
        limit: Duration,
        /// What it printed on stdout until then.
        stdout: Vec<u8>,
        /// What it printed on stderr until then.
        stderr: Vec<u8>,
    },
}

/// Runs `cmd` with `input` on its stdin (none: stdin is `/dev/null`), killing it after
/// `limit`. Returns its output whatever its exit status.
pub fn run(cmd: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> Result<Output, Error> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(Error::Spawn)?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropping the handle at the end of the thread closes the command's stdin.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let stdout = Collector::start(child.stdout.take());
    let stderr = Collector::start(child.stderr.take());
    let take = |drain| {
        let until = Instant::now() + drain;
        (stdout.take(until), stderr.take(until))
    };
    match child.wait_timeout(limit) {
        Ok(Some(status)) => {
            let (stdout, stderr) = take(DRAIN);
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        }
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = take(DRAIN_KILLED);
            Err(Error::TimedOut {
                limit,
                stdout,
                stderr,
            })
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error::Wait(e))
        }
    }
}

/// Reads a pipe on a thread of its own, keeping what arrived so far.
struct Collector {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Collector {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            let into = Arc::clone(&bytes);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => into
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(());
            });
        }
        Collector { bytes, done }
    }

    /// Everything read once the pipe closed, or what arrived by `until` if it stays open.
    fn take(&self, until: Instant) -> Vec<u8> {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn output_and_status_whatever_the_status() {
        let out = run(
            &mut sh("echo out; echo err >&2; exit 3"),
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn input_reaches_stdin_and_large_output_does_not_deadlock() {
        // More than a pipe buffer each way, at once.
        let input = vec![b'x'; 1 << 20];
        let out = run(
            &mut sh("cat; head -c 300000 /dev/zero >&2"),
            Some(input.clone()),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, input);
        assert_eq!(out.stderr.len(), 300_000);
    }

    #[test]
    fn past_the_limit_it_is_killed_with_what_it_printed() {
        let start = Instant::now();
        let err = run(
            &mut sh("echo started; exec sleep 30"),
            None,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let Error::TimedOut { stdout, .. } = &err else {
            panic!("want TimedOut, got {err:?}");
        };
        assert_eq!(stdout, b"started\n");
        assert!(
            err.to_string()
                .starts_with("did not finish within 0 s and was killed"),
            "{err}"
        );
    }

    #[test]
    fn a_leftover_process_holding_the_pipes_does_not_hold_the_caller() {
        // The shell exits at once; its background child keeps stdout open for 30 s.
        let start = Instant::now();
        let out = run(
            &mut sh("(sleep 30 &) ; echo done"),
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(out.status.success());
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(
            &mut Command::new("/no/such/program"),
            None,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Spawn(_)), "{err:?}");
    }
}
