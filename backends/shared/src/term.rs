//! The terminal side of `exec`, the same for every engine: raw mode, the window size, a
//! standard-input reader that never blocks the runtime, and what a captured command left.

use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;

use bytes::Bytes;
use tokio::sync::mpsc;

/// What a command run to completion printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code.
    pub code: i32,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

/// Reads our standard input on a plain thread (a tokio blocking read could not be cancelled
/// and would hold up the runtime's shutdown); `None` marks its end.
pub fn spawn_stdin_reader() -> mpsc::Receiver<Option<Bytes>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx
                        .blocking_send(Some(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Our terminal's size as (rows, columns), when standard output is a terminal.
pub fn terminal_size() -> Option<(u16, u16)> {
    let stdout = std::io::stdout();
    let ws = rustix::termios::tcgetwinsize(stdout.as_fd()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Our terminal in raw mode; the previous settings come back on drop.
pub struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Puts standard input in raw mode when it is a terminal (`None` otherwise).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw)
            .ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = rustix::termios::tcsetattr(
            stdin.as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
