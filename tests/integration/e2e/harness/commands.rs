//! Running commands, always under a time limit, and reading what they said.

use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any single command may take before the test fails.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Runs `cmd` with `input` on its stdin (or none), failing the test when it runs longer
/// than `limit`. Returns its output whatever its status. With `BOTTLE_E2E_TRACE=1`, prints
/// each command with when it started (since the first command) and how long it took.
pub fn run_limited(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    static FIRST: OnceLock<Instant> = OnceLock::new();
    let first = *FIRST.get_or_init(Instant::now);
    let started = Instant::now();
    let out = run_limited_untraced(cmd, input, limit);
    if std::env::var("BOTTLE_E2E_TRACE").as_deref() == Ok("1") {
        let line: String = describe(cmd).chars().take(160).collect();
        eprintln!(
            "[e2e +{:.1}s {:.2}s] {} -> {}",
            (started - first).as_secs_f64(),
            started.elapsed().as_secs_f64(),
            line.replace('\n', " "),
            out.status
        );
    }
    out
}

/// `cmd` as a line for traces: `runuser -u USER -- env -i VAR=... PROGRAM ARGS` is shortened
/// to `[USER] PROGRAM ARGS`.
fn describe(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    if program == "runuser" && args.len() > 5 && args[2..5] == ["--", "env", "-i"] {
        let rest: Vec<_> = args[5..]
            .iter()
            .skip_while(|a| a.contains('='))
            .map(|a| a.as_ref())
            .collect();
        return format!("[{}] {}", args[1], rest.join(" "));
    }
    format!("{program} {}", args.join(" "))
}

fn run_limited_untraced(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    try_run_limited(cmd, input, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_limited`], but returns an error instead of failing the test: for drop
/// handlers, which must not panic while a failing test unwinds.
pub fn try_run_limited(
    cmd: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
) -> Result<Output, String> {
    bottle_run_limited::run(cmd, input.map(<[u8]>::to_vec), limit)
        .map_err(|e| format!("{}: {e}", describe(cmd)))
}

/// Runs `cmd` under [`COMMAND_LIMIT`].
pub fn run(cmd: &mut Command) -> Output {
    run_limited(cmd, None, COMMAND_LIMIT)
}

/// A command's status, stdout and stderr, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stdout and stderr together, for assertions on messages.
pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails the test unless `out` succeeded; returns its trimmed stdout.
pub fn expect_ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `check` every 200 ms until it returns `Ok` or `limit` has passed; then fails the
/// test with the last error.
pub fn poll<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!(
                    "{what}: not ready within {} s; last try:\n{e}",
                    limit.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub(super) fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

pub(super) fn keep() -> bool {
    std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1")
}
