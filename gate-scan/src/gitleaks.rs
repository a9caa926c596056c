//! One `gitleaks dir` run over the scan directory, trusted only when everything it says
//! adds up.
//!
//! gitleaks 8.30.1 can exit 0 when part of a scan failed, and exits 1 both for findings and
//! for a fatal error. So a run counts only when: it exited 0 with "no leaks found" and an
//! empty report, or 1 with "leaks found: N" and N findings in the report; its log has no
//! line but the INF lines of a scan and that one WRN; and the bytes it says it scanned are
//! exactly the bytes written (a file it skipped would show there). Anything else is a scan
//! failure, and the push is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

/// What can go wrong with gitleaks.
#[derive(Debug, thiserror::Error)]
pub enum GitleaksError {
    /// It could not be started.
    #[error("cannot run gitleaks {path}: {source}")]
    Spawn {
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It ran past the time allowed and was killed.
    #[error("gitleaks ran past the time allowed")]
    Timeout,
    /// Its run does not add up: see the module docs.
    #[error("gitleaks failed or said something unexpected: {0}")]
    Failed(String),
    /// Its files could not be read.
    #[error("i/o around gitleaks: {0}")]
    Io(#[from] std::io::Error),
}

/// One finding as gitleaks' JSON report has it (with `--redact`, `Secret` and `Match` hold
/// no secret).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawFinding {
    /// The rule's id.
    #[serde(rename = "RuleID")]
    pub rule_id: String,
    /// The rule's description.
    #[serde(default)]
    pub description: String,
    /// 1-based line of the file where the finding starts.
    pub start_line: usize,
    /// The file, relative to the scan directory.
    pub file: String,
}

/// A gitleaks run started before its directory is filled: see [`start`].
pub struct Running {
    child: std::process::Child,
    gate: PathBuf,
    report: PathBuf,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts gitleaks over `dir` (its cwd, so no `.gitleaksignore` but the one written there,
/// and none is) with the config at `config` and an empty environment (no `GITLEAKS_CONFIG*`),
/// held back until [`Running::finish`].
///
/// gitleaks spends about half a second compiling its rules before it looks at a file. So
/// that this overlaps with reading the push, it starts first and waits at a gate of ours:
/// `--gitleaks-ignore-path` names a FIFO, which gitleaks (8.30.1, `cmd.Detector`) opens and
/// reads to its end after loading its config and before walking `dir`. `finish` opens the
/// FIFO's other end and closes it (an empty ignore list) once `dir` is complete. Should
/// gitleaks ever walk earlier, the byte count in its log would not match and the push
/// would be refused.
pub fn start(
    gitleaks: &Path,
    config: &Path,
    dir: &Path,
    work: &Path,
) -> Result<Running, GitleaksError> {
    let report = work.join("gitleaks-report.json");
    let log = work.join("gitleaks.log");
    let stdout = work.join("gitleaks.out");
    let gate = work.join("gitleaks-start.fifo");
    let c_gate = std::ffi::CString::new(gate.as_os_str().as_encoded_bytes())
        .map_err(|e| GitleaksError::Io(std::io::Error::other(e)))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c_gate.as_ptr(), 0o600) } != 0 {
        return Err(GitleaksError::Io(std::io::Error::last_os_error()));
    }
    let child = Command::new(gitleaks)
        .current_dir(dir)
        .env_clear()
        .args(["dir", "--no-banner", "--no-color", "--redact"])
        .args(["--ignore-gitleaks-allow", "--max-archive-depth", "0"])
        .args([
            "--max-target-megabytes",
            "0",
            "--log-level",
            "info",
            "--exit-code",
            "1",
        ])
        .arg("--config")
        .arg(config)
        .arg("--gitleaks-ignore-path")
        .arg(&gate)
        .args(["--report-format", "json", "--report-path"])
        .arg(&report)
        .arg(".")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .map_err(|source| GitleaksError::Spawn {
            path: gitleaks.to_owned(),
            source,
        })?;
    Ok(Running {
        child,
        gate,
        report,
        log,
    })
}

impl Running {
    /// Lets gitleaks scan the directory, now complete with `written` bytes, waits for it
    /// (at most `timeout`), and checks that its run adds up. Returns the findings.
    pub fn finish(
        mut self,
        written: u64,
        timeout: Duration,
    ) -> Result<Vec<RawFinding>, GitleaksError> {
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = std::time::Instant::now() + timeout;
        // Opening a FIFO to write without blocking fails until its reader has it open.
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.gate)
            {
                Ok(f) => {
                    drop(f);
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    if self.child.try_wait()?.is_some() {
                        break; // it ended early: its log says why
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(GitleaksError::Timeout);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(GitleaksError::Io(e)),
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let status = match self.child.wait_timeout(left)? {
            Some(status) => status,
            None => return Err(GitleaksError::Timeout),
        };
        check(status, &self.log, &self.report, written)
    }
}

fn check(
    status: std::process::ExitStatus,
    log: &Path,
    report: &Path,
    written: u64,
) -> Result<Vec<RawFinding>, GitleaksError> {
    // Before its flags are read, gitleaks logs in colour: escape sequences are dropped so
    // that lines can be read (and printed).
    let log: String = std::fs::read_to_string(log)
        .unwrap_or_default()
        .split('\x1b')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or("", |(_, rest)| rest)
            }
        })
        .collect();
    let fail = |why: String| GitleaksError::Failed(format!("{why}; its log:\n{}", log.trim()));

    let mut scanned = None;
    let mut leaks = None;
    let mut clean = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        // "7:45AM INF message": a time, a level, a message.
        let mut words = line.splitn(3, ' ');
        let (_time, level, msg) = (words.next(), words.next(), words.next().unwrap_or(""));
        match level {
            Some("INF") => {
                if let Some(rest) = msg.strip_prefix("scanned ~") {
                    scanned = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok());
                } else if msg == "no leaks found" {
                    clean = true;
                }
            }
            Some("WRN") if msg.starts_with("leaks found: ") => {
                leaks = msg["leaks found: ".len()..].trim().parse::<usize>().ok();
            }
            _ => return Err(fail(format!("unexpected log line {line:?}"))),
        }
    }
    if scanned != Some(written) {
        return Err(fail(format!(
            "it scanned {scanned:?} bytes of the {written} written: something was skipped"
        )));
    }
    let findings: Vec<RawFinding> = match std::fs::read(report) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("its report is not what 8.30.1 writes: {e}")))?,
        Err(e) => return Err(fail(format!("no report ({e})"))),
    };
    match (status.code(), clean, leaks) {
        (Some(0), true, None) if findings.is_empty() => Ok(findings),
        (Some(1), false, Some(n)) if n == findings.len() && n > 0 => Ok(findings),
        _ => Err(fail(format!(
            "exit status {status}, {} findings in its report",
            findings.len()
        ))),
    }
}
