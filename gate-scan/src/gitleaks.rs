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

/// Runs gitleaks over `dir` (cwd, so no `.gitleaksignore` but the one written there, and
/// none is) with the config at `config`, an empty environment (no `GITLEAKS_CONFIG*`), and
/// checks that its run adds up to `written` bytes. Returns the findings.
pub fn run(
    gitleaks: &Path,
    config: &Path,
    dir: &Path,
    work: &Path,
    written: u64,
    timeout: Duration,
) -> Result<Vec<RawFinding>, GitleaksError> {
    let report = work.join("gitleaks-report.json");
    let log = work.join("gitleaks.log");
    let stdout = work.join("gitleaks.out");
    let mut child = Command::new(gitleaks)
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
        .arg(dir)
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
    let status = match child.wait_timeout(timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GitleaksError::Timeout);
        }
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
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
    let findings: Vec<RawFinding> = match std::fs::read(&report) {
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
