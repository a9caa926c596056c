//! Running commands: always under a time limit (`bottle-run-limited`), with their output
//! captured.

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Out {
    /// Trimmed stdout as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_owned()
    }

    /// Stdout and stderr, for error messages.
    pub fn both(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

/// A short form of a command, for messages.
pub fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    let line = format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "));
    let line = line.replace('\n', " ");
    if line.chars().count() > 200 {
        format!("{}...", line.chars().take(200).collect::<String>())
    } else {
        line
    }
}

/// Runs `cmd` with `input` on its stdin (or none). It is killed after `limit`, which is an
/// error; otherwise its output is returned whatever its status.
pub fn run(cmd: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> anyhow::Result<Out> {
    let out = bottle_run_limited::run(cmd, input, limit)
        .map_err(|e| anyhow::anyhow!("{}: {e}", describe(cmd)))?;
    Ok(Out {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Runs `cmd`; an error unless it succeeds. Returns its trimmed stdout.
pub fn ok(cmd: &mut Command, limit: Duration) -> anyhow::Result<String> {
    ok_input(cmd, None, limit)
}

/// [`ok`] with `input` on stdin.
pub fn ok_input(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    limit: Duration,
) -> anyhow::Result<String> {
    let out = run(cmd, input, limit)?;
    succeeded(cmd, &out)?;
    Ok(out.text())
}

/// Runs `cmd` and returns how long it took, wall clock, from the host; an error unless it
/// succeeds.
pub fn timed(cmd: &mut Command, limit: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = run(cmd, None, limit)?;
    let took = start.elapsed().as_secs_f64();
    succeeded(cmd, &out)?;
    Ok(took)
}

/// An error naming `cmd`, its status and its output unless it succeeded.
fn succeeded(cmd: &Command, out: &Out) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            describe(cmd),
            out.status,
            out.both().trim()
        );
    }
    Ok(())
}

/// `docker ARGS...`.
pub fn docker<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// Runs `script` with `sh -c` in `container` (as the container's user) and returns how long
/// the script took, measured inside the container with `date +%s%N`, so the cost of
/// `docker exec` itself is not counted. The script runs in a subshell (so `exit` ends only
/// it) and its output goes to stderr. An error
/// unless the script exits 0.
pub fn exec_timed(container: &str, script: &str, limit: Duration) -> anyhow::Result<f64> {
    let wrapped = format!(
        "t0=$(date +%s%N)\n(\n{script}\n) 1>&2\nrc=$?\nt1=$(date +%s%N)\necho \"bench-time $rc $((t1 - t0))\"\n"
    );
    let out = run(
        &mut docker(["exec", container, "sh", "-c", &wrapped]),
        None,
        limit,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("bench-time "))
        .with_context(|| {
            format!(
                "no timing from `{script}` in {container} ({}):\n{}",
                out.status,
                out.both().trim()
            )
        })?;
    let mut parts = line.split_whitespace().skip(1);
    let rc: i32 = parts
        .next()
        .unwrap_or("")
        .parse()
        .context("bad exit code")?;
    let nanos: u64 = parts.next().unwrap_or("").parse().context("bad duration")?;
    if rc != 0 {
        bail!(
            "`{script}` failed in {container} (exit {rc}):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(nanos as f64 / 1e9)
}

/// Runs `script` with `sh -c` in `container`, `input` on its stdin; an error unless it
/// succeeds. Returns trimmed stdout.
pub fn exec_ok(
    container: &str,
    script: &str,
    input: Option<Vec<u8>>,
    limit: Duration,
) -> anyhow::Result<String> {
    let mut args = vec!["exec"];
    if input.is_some() {
        args.push("-i");
    }
    args.extend([container, "sh", "-c", script]);
    ok_input(&mut docker(args), input, limit)
}

/// Polls `check` every 200 ms until it succeeds or `limit` has passed.
pub fn poll<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "{what}: not ready within {} s; last try: {e:#}",
                    limit.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}
