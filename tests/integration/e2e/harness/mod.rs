//! The harness: one bottle with its upstream fixture, driven through `bottle` and the engine
//! CLI, removed on drop.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Engine;

/// How long any single command may take before the test fails.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(180);
/// How long the fixture and the gate get to become ready.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// The images a scenario needs.
const IMAGES: [&str; 3] = [
    "bottle-gate:latest",
    "bottle-agent:latest",
    "bottle-upstream-fixture:latest",
];
/// The repository the fixture serves and the manifest declares.
pub const REPO: &str = "app";

// ---------------------------------------------------------------------------------------
// Running commands, always under a time limit.

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

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn keep() -> bool {
    std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1")
}

// ---------------------------------------------------------------------------------------
// Once per engine: is it there (and its user, for a rootless engine), are the images there
// and fresh.

/// The default unprivileged user of the rootless engine (`BOTTLE_E2E_ROOTLESS_USER`).
const DEFAULT_ROOTLESS_USER: &str = "bottle-rl";
/// PATH for commands run as the rootless engine's user.
const USER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Variables of the test's environment passed on to `bottle` run as the rootless user.
const USER_PASSED_ENV: [&str; 2] = ["BOTTLE_ROOTFS_DIR", "RUST_BACKTRACE"];

/// How the harness runs one engine's commands: as the test process itself, or, for a rootless
/// engine, as the engine's unprivileged user through `runuser` (with a clean environment:
/// that user's HOME, XDG_RUNTIME_DIR and a standard PATH).
#[derive(Debug)]
struct Runner {
    user: Option<User>,
    /// The bottle binary, at a path its user can execute.
    bottle: PathBuf,
}

/// The rootless engine's user.
#[derive(Debug)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    runtime_dir: PathBuf,
}

impl Runner {
    /// `program` as the engine's user; with `home` as HOME (else the user's own) and `env`.
    fn command(
        &self,
        program: impl AsRef<OsStr>,
        home: Option<&Path>,
        env: &[(&str, &OsStr)],
    ) -> Command {
        let Some(user) = &self.user else {
            let mut cmd = Command::new(program);
            if let Some(home) = home {
                cmd.env("HOME", home);
            }
            cmd.envs(env.iter().copied());
            return cmd;
        };
        let var = |name: &str, value: &OsStr| {
            let mut v = OsString::from(format!("{name}="));
            v.push(value);
            v
        };
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &user.name, "--", "env", "-i"]);
        cmd.arg(var("HOME", home.unwrap_or(&user.home).as_os_str()));
        cmd.arg(var("XDG_RUNTIME_DIR", user.runtime_dir.as_os_str()));
        cmd.arg(var("PATH", OsStr::new(USER_PATH)));
        cmd.arg(var("USER", OsStr::new(&user.name)));
        cmd.arg(var("LOGNAME", OsStr::new(&user.name)));
        for (name, value) in env {
            cmd.arg(var(name, value));
        }
        cmd.arg(program);
        cmd
    }

    /// The engine's CLI, as the engine's user with the user's own HOME (podman finds the
    /// user's store through it).
    fn cli(&self, engine: &Engine) -> Command {
        self.command(engine.cli, None, &[])
    }

    /// `bottle` run in `dir`, as the engine's user, with HOME=`dir` and a config directory
    /// there: nothing of the user's own configuration applies.
    fn bottle(&self, dir: &Path) -> Command {
        if self.user.is_none() {
            return crate::cli::bottle(dir);
        }
        let config = dir.join("config-home");
        let passed: Vec<(&str, OsString)> = USER_PASSED_ENV
            .iter()
            .filter_map(|name| Some((*name, std::env::var_os(name)?)))
            .collect();
        let mut env = vec![("XDG_CONFIG_HOME", config.as_os_str())];
        env.extend(passed.iter().map(|(n, v)| (*n, v.as_os_str())));
        let mut cmd = self.command(&self.bottle, Some(dir), &env);
        cmd.current_dir(dir);
        cmd
    }

    /// `bottle` run in `dir` as the engine's user with the user's own HOME and configuration,
    /// as the user would type it; for root, the same as [`Runner::bottle`].
    fn bottle_at_home(&self, dir: &Path) -> Command {
        if self.user.is_none() {
            return self.bottle(dir);
        }
        let passed: Vec<(&str, OsString)> = USER_PASSED_ENV
            .iter()
            .filter_map(|name| Some((*name, std::env::var_os(name)?)))
            .collect();
        let env: Vec<(&str, &OsStr)> = passed.iter().map(|(n, v)| (*n, v.as_os_str())).collect();
        let mut cmd = self.command(&self.bottle, None, &env);
        cmd.current_dir(dir);
        cmd
    }

    /// `sh SCRIPT` run in `dir` as the engine's user: the engine's CLI in the script sees the
    /// same store as [`Runner::cli`] (HOME is `dir` when the test runs it itself, as before).
    fn sh(&self, dir: &Path, script: &Path) -> Command {
        let home = if self.user.is_some() { None } else { Some(dir) };
        let mut cmd = self.command("sh", home, &[]);
        cmd.arg(script).current_dir(dir);
        cmd
    }

    /// Gives the directory `dir` (made by the test) and the files in it to the engine's user,
    /// the directory with mode 0700.
    fn hand_over(&self, dir: &Path) {
        let Some(user) = &self.user else {
            return;
        };
        let give = |path: &Path| {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), user.name));
        };
        give(dir);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod 0700 {}: {e}", dir.display()));
        for entry in std::fs::read_dir(dir).expect("read the scenario's directory") {
            give(&entry.expect("a directory entry").path());
        }
    }

    /// How to act as the engine's user, for messages: empty when that is the test's own.
    fn who(&self) -> String {
        match &self.user {
            Some(u) => format!(
                " (as {name}: runuser -u {name} -- env HOME={home} XDG_RUNTIME_DIR={run} ...)",
                name = u.name,
                home = u.home.display(),
                run = u.runtime_dir.display()
            ),
            None => String::new(),
        }
    }

    /// Whether the engine's user may `test -OP path` (`-x`, `-w`, ...).
    fn user_may(&self, op: &str, path: &Path) -> bool {
        let mut cmd = self.command("test", None, &[]);
        cmd.arg(op).arg(path);
        run_limited(&mut cmd, None, Duration::from_secs(20))
            .status
            .success()
    }
}

fn preflight(engine: &'static Engine) -> Result<&'static Runner, String> {
    type Cell = OnceLock<Result<&'static Runner, String>>;
    static CELLS: Mutex<Vec<(&'static str, &'static Cell)>> = Mutex::new(Vec::new());
    let cell: &'static Cell = {
        let mut cells = CELLS.lock().unwrap_or_else(|p| p.into_inner());
        match cells.iter().find(|(name, _)| *name == engine.name) {
            Some((_, cell)) => cell,
            None => {
                let cell: &'static Cell = Box::leak(Box::default());
                cells.push((engine.name, cell));
                cell
            }
        }
    };
    // Concurrent scenarios of one engine wait for one check (and one build); other engines'
    // scenarios go on meanwhile.
    cell.get_or_init(|| {
        let started = Instant::now();
        let result = check_engine(engine).map(|r| &*Box::leak(Box::new(r)));
        eprintln!(
            "e2e {}: engine check and image build took {:.1} s{}",
            engine.name,
            started.elapsed().as_secs_f64(),
            if result.is_ok() { "" } else { " (failed)" }
        );
        result
    })
    .clone()
}

fn check_engine(engine: &Engine) -> Result<Runner, String> {
    if !crate::support::have(engine.cli) {
        return Err(format!("the {} CLI is not installed", engine.cli));
    }
    for tool in ["ssh-keygen", "sh", "tar"] {
        if !crate::support::have(tool) {
            return Err(format!("{tool} is not installed on the host"));
        }
    }
    let runner = if engine.rootless {
        rootless_runner()?
    } else {
        Runner {
            user: None,
            bottle: PathBuf::from(env!("CARGO_BIN_EXE_bottle")),
        }
    };
    let info = run_limited(
        runner.cli(engine).arg("info"),
        None,
        Duration::from_secs(60),
    );
    if !info.status.success() {
        return Err(format!(
            "`{} info`{} failed, the engine is unreachable: {}",
            engine.cli,
            runner
                .user
                .as_ref()
                .map(|u| format!(" as {}", u.name))
                .unwrap_or_default(),
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let missing: Vec<&str> = IMAGES
        .iter()
        .copied()
        .filter(|image| {
            !run(runner.cli(engine).args(["image", "inspect", image]))
                .status
                .success()
        })
        .collect();
    if !missing.is_empty() {
        let who = runner.who();
        return Err(format!(
            "images missing on {}: {}; build them with `bottle --backend {} image build`{who}",
            engine.name,
            missing.join(", "),
            engine.backend
        ));
    }
    // Rebuild what is stale, once per engine (each has its own image store), before any
    // scenario's `up` would (concurrently).
    let dir = tempfile::Builder::new()
        .prefix("bottle-e2e-build-")
        .tempdir()
        .expect("temp dir");
    runner.hand_over(dir.path());
    if runner.user.is_some() && !runner.user_may("-w", dir.path()) {
        return Err(format!(
            "the rootless user cannot write to {} (is every directory above it world-traversable? \
             set TMPDIR to one that is)",
            dir.path().display()
        ));
    }
    let build = run(runner.bottle(dir.path()).args([
        "--backend",
        engine.backend,
        "image",
        "build",
        "gate",
        "agent",
        "upstream",
    ]));
    assert!(
        build.status.success(),
        "`bottle image build` on {} failed although the images exist: stale images cannot be rebuilt\n{}",
        engine.name,
        show(&build)
    );
    Ok(runner)
}

/// The runner of the rootless engine: its user (`BOTTLE_E2E_ROOTLESS_USER`), which must exist
/// and have a runtime directory, and a bottle binary it can execute. An `Err` (the user or
/// `runuser` missing, the test not running as root) counts as the engine being unreachable.
fn rootless_runner() -> Result<Runner, String> {
    let name = std::env::var("BOTTLE_E2E_ROOTLESS_USER")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_ROOTLESS_USER.to_owned());
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "BOTTLE_E2E_ROOTLESS_USER={name:?} is not a user name"
        ));
    }
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell who runs the tests (/proc/self): {e}"))?;
    if me != 0 {
        return Err(format!(
            "the rootless engine's scenarios run as user {name} through runuser, which needs the \
             tests to run as root (they run as uid {me})"
        ));
    }
    if !crate::support::have("runuser") {
        return Err("runuser is not installed on the host".to_owned());
    }
    let entry = run(Command::new("getent").args(["passwd", &name]));
    let fields: Vec<String> = String::from_utf8_lossy(&entry.stdout)
        .trim()
        .split(':')
        .map(str::to_owned)
        .collect();
    if !entry.status.success() || fields.len() < 7 {
        return Err(format!(
            "the rootless user {name} does not exist; make it with \
             `sudo scripts/setup-podman.sh --rootless {name}` (or set BOTTLE_E2E_ROOTLESS_USER)"
        ));
    }
    let number = |i: usize, what: &str| {
        fields[i]
            .parse::<u32>()
            .map_err(|_| format!("getent passwd {name}: no {what} in {:?}", fields.join(":")))
    };
    let (uid, gid) = (number(2, "uid")?, number(3, "gid")?);
    let runtime_dir = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::metadata(&runtime_dir) {
        Ok(m) if m.is_dir() && m.uid() == uid => {}
        _ => {
            return Err(format!(
                "{name} has no runtime directory {} (owned by {name}); make it with \
                 `sudo scripts/setup-podman.sh --rootless {name}`",
                runtime_dir.display()
            ))
        }
    }
    let mut runner = Runner {
        user: Some(User {
            name,
            uid,
            gid,
            home: PathBuf::from(&fields[5]),
            runtime_dir,
        }),
        bottle: PathBuf::from(env!("CARGO_BIN_EXE_bottle")),
    };
    if !runner.user_may("-x", &runner.bottle) {
        runner.bottle = executable_copy(&runner.bottle)?;
        if !runner.user_may("-x", &runner.bottle) {
            return Err(format!(
                "the rootless user cannot execute {} (a copy of the bottle binary)",
                runner.bottle.display()
            ));
        }
    }
    Ok(runner)
}

/// A copy of `binary` (a hard link when possible) that every user can execute, in a directory
/// of the temp dir named after this process. Directories left by earlier runs (their process
/// gone) are removed first.
fn executable_copy(binary: &Path) -> Result<PathBuf, String> {
    let prefix = "bottle-e2e-bin-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.split('-').next()) else {
            continue;
        };
        let ours = entry.metadata().map(|m| m.uid() == 0).unwrap_or(false);
        if ours && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| format!("temp dir for the bottle binary: {e}"))?
        .keep();
    let copy = dir.join("bottle");
    let mode = |path: &Path| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    // A hard link shares the binary's mode: only when that already lets others run it.
    let open_to_all = std::fs::metadata(binary)
        .map(|m| m.mode() & 0o005 == 0o005)
        .unwrap_or(false);
    let linked = open_to_all && std::fs::hard_link(binary, &copy).is_ok();
    let made = if linked {
        Ok(())
    } else {
        std::fs::copy(binary, &copy).and_then(|_| mode(&copy))
    }
    .and_then(|()| mode(&dir));
    made.map_err(|e| format!("copy {} to {}: {e}", binary.display(), copy.display()))?;
    Ok(copy)
}

/// The engine's runner when the scenario can run; else `None` after a loud SKIP (or fails
/// under `CI=true`).
fn can_run(engine: &'static Engine) -> Option<&'static Runner> {
    match preflight(engine) {
        Ok(runner) => Some(runner),
        Err(why) => {
            let test = std::thread::current()
                .name()
                .unwrap_or("e2e scenario")
                .to_owned();
            if ci() {
                panic!("CI=true, but {test} cannot run: {why}");
            }
            eprintln!("\n!!!! SKIPPED {test} !!!!\n     {why}\n");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// At most BOTTLE_E2E_JOBS bottles at once, and at most `Engine::max_bottles` of one engine.

/// Bottles in use: in all, and per engine (by name).
#[derive(Default)]
struct Slots {
    used: usize,
    per_engine: Vec<(&'static str, usize)>,
}

impl Slots {
    fn engine(&mut self, name: &'static str) -> &mut usize {
        let at = match self.per_engine.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                self.per_engine.push((name, 0));
                self.per_engine.len() - 1
            }
        };
        &mut self.per_engine[at].1
    }
}

static SLOTS: (Mutex<Slots>, Condvar) = (
    Mutex::new(Slots {
        used: 0,
        per_engine: Vec::new(),
    }),
    Condvar::new(),
);

fn max_jobs() -> usize {
    std::env::var("BOTTLE_E2E_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// One of the slots; released on drop.
struct Permit {
    engine: &'static str,
}

impl Permit {
    fn acquire(engine: &'static Engine) -> Permit {
        let (lock, cvar) = &SLOTS;
        let mut slots = lock.lock().unwrap_or_else(|p| p.into_inner());
        while slots.used >= max_jobs() || *slots.engine(engine.name) >= engine.max_bottles {
            slots = cvar.wait(slots).unwrap_or_else(|p| p.into_inner());
        }
        slots.used += 1;
        *slots.engine(engine.name) += 1;
        Permit {
            engine: engine.name,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (lock, cvar) = &SLOTS;
        let mut slots = lock.lock().unwrap_or_else(|p| p.into_inner());
        slots.used -= 1;
        *slots.engine(self.engine) -= 1;
        // Every waiter: the one a slot fits may not be the first in line.
        cvar.notify_all();
    }
}

// ---------------------------------------------------------------------------------------
// The harness.

/// How the bottle is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `bottle --backend <engine> up`.
    Up,
    /// The script `bottle --backend <dry-run> up` prints, run with `sh`.
    DryRunScript,
}

/// What a scenario's bottle and upstream look like.
#[derive(Debug, Clone)]
pub struct Options {
    /// Part of the slug naming the scenario (short: slugs are at most 40 characters).
    pub short: &'static str,
    /// The upstream's default branch (`FIXTURE_DEFAULT_BRANCH`).
    pub default_branch: &'static str,
    /// Branches created upstream (at the default branch's commit) before the gate's first
    /// fetch.
    pub extra_branches: &'static [&'static str],
    /// Whether the manifest pins the fixture's host key (`known_host_key`).
    pub pin_host_key: bool,
    /// How the bottle is brought up.
    pub via: Via,
}

impl Options {
    pub fn new(short: &'static str) -> Options {
        Options {
            short,
            default_branch: "main",
            extra_branches: &[],
            pin_host_key: true,
            via: Via::Up,
        }
    }
}

/// One scenario's bottle: its directory, keys and manifest, its containers; removed on drop.
pub struct Harness {
    pub engine: &'static Engine,
    runner: &'static Runner,
    pub opts: Options,
    pub slug: String,
    /// The upstream URL as written in the manifest and used in the agent.
    pub url: String,
    /// The gate's identity key (private), on the host.
    pub identity_file: PathBuf,
    dir: Option<tempfile::TempDir>,
    fixture_started: AtomicBool,
    // Last: released only after the drop handler removed the bottle.
    _permit: Permit,
}

impl Harness {
    /// A harness whose bottle is up, its fixture ready and its gate serving; `None` (after
    /// a SKIP message) when the engine cannot run scenarios.
    pub fn start(engine: &'static Engine, opts: Options) -> Option<Harness> {
        let h = Harness::prepare(engine, opts)?;
        h.bring_up();
        Some(h)
    }

    /// A harness with its directory, keys and manifest, and nothing on the engine yet.
    pub fn prepare(engine: &'static Engine, opts: Options) -> Option<Harness> {
        let runner = can_run(engine)?;
        let permit = Permit::acquire(engine);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let slug = format!(
            "e2e-{}-{}-{}-{:04x}",
            engine.tag,
            opts.short,
            std::process::id(),
            (nanos >> 8) & 0xffff
        );
        assert!(
            slug.len() <= 40
                && slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "bad slug {slug}: the scenario's short name is too long or not lowercase"
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("bottle-{slug}-"))
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for (file, comment) in [
            ("gate_key", "bottle-e2e-gate"),
            ("host_key", "bottle-e2e-host"),
        ] {
            expect_ok(
                run(Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(d.join(file))),
                "ssh-keygen",
            );
        }
        let url = format!("ssh://git@bottle-{slug}-upstream/srv/git/{REPO}.git");
        let identity_file = d.join("gate_key");
        let pin = if opts.pin_host_key {
            let public = std::fs::read_to_string(d.join("host_key.pub")).expect("host_key.pub");
            let type_and_key: Vec<&str> = public.split_whitespace().take(2).collect();
            format!("known_host_key = {:?}\n", type_and_key.join(" "))
        } else {
            String::new()
        };
        let manifest = format!(
            "[bottles.{slug}]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n\n\
             [[bottles.{slug}.git]]\nname = \"{REPO}\"\nupstream = {url:?}\nidentity_file = {key:?}\n{pin}",
            key = identity_file.display().to_string(),
        );
        std::fs::write(d.join("bottle.toml"), manifest).expect("write bottle.toml");
        runner.hand_over(d);
        Some(Harness {
            engine,
            runner,
            opts,
            slug,
            url,
            identity_file,
            dir: Some(dir),
            fixture_started: AtomicBool::new(false),
            _permit: permit,
        })
    }

    /// Brings the bottle up (as [`Options::via`] says), starts the fixture and waits until
    /// the gate serves the upstream.
    pub fn bring_up(&self) {
        match self.opts.via {
            Via::Up => {
                expect_ok(run(self.bottle().arg("up").arg(&self.slug)), "bottle up");
            }
            Via::DryRunScript => self.up_with_dry_run_script(),
        }
        self.start_fixture();
        self.wait_ready();
    }

    fn up_with_dry_run_script(&self) {
        let mut cmd = self.runner.bottle(self.dir());
        cmd.args(["--backend", self.engine.dry_run, "up", &self.slug]);
        let script = expect_ok(run(&mut cmd), "bottle --backend dry-run up");
        let key = std::fs::read_to_string(&self.identity_file).expect("identity file");
        for line in key.lines().filter(|l| l.len() > 40) {
            assert!(
                !script.contains(line),
                "the dry-run script holds the identity key's bytes"
            );
        }
        let path = self.dir().join("up.sh");
        std::fs::write(&path, &script).expect("write up.sh");
        expect_ok(
            run(&mut self.runner.sh(self.dir(), &path)),
            "sh up.sh (the script bottle --dry-run up printed)",
        );
    }

    /// The scenario's directory (keys, manifest).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir kept until drop").path()
    }

    /// `bottle --backend <engine>` run in the scenario's directory, with a clean env, as the
    /// engine's user.
    pub fn bottle(&self) -> Command {
        let mut cmd = self.runner.bottle(self.dir());
        cmd.args(["--backend", self.engine.backend]);
        cmd
    }

    /// `bottle --backend <engine>` as the engine's user types it: in the scenario's
    /// directory, with the user's own HOME and configuration (for `doctor`, which checks them).
    pub fn bottle_at_home(&self) -> Command {
        let mut cmd = self.runner.bottle_at_home(self.dir());
        cmd.args(["--backend", self.engine.backend]);
        cmd
    }

    /// The engine's CLI, as the engine's user.
    pub fn cli(&self) -> Command {
        self.runner.cli(self.engine)
    }

    /// Runs the engine CLI with `args`.
    pub fn engine(&self, args: &[&str]) -> Output {
        run(self.cli().args(args))
    }

    /// Runs the engine CLI with `args`, failing the test unless it succeeds; trimmed stdout.
    pub fn engine_ok(&self, args: &[&str]) -> String {
        expect_ok(
            self.engine(args),
            &format!("{} {}", self.engine.cli, args.join(" ")),
        )
    }

    /// `bottle-<slug>-<role>`.
    pub fn name(&self, role: &str) -> String {
        format!("bottle-{}-{role}", self.slug)
    }

    pub fn gate(&self) -> String {
        self.name("gate")
    }

    pub fn agent(&self) -> String {
        self.name("agent")
    }

    pub fn fixture(&self) -> String {
        self.name("upstream")
    }

    /// Runs `sh -c script` in the agent with `bottle exec`.
    pub fn agent_sh(&self, script: &str) -> Output {
        run(&mut self.agent_cmd(script))
    }

    /// Runs `sh -c script` in the agent with `input` on its stdin.
    pub fn agent_sh_input(&self, script: &str, input: &[u8]) -> Output {
        run_limited(&mut self.agent_cmd(script), Some(input), COMMAND_LIMIT)
    }

    /// Runs `sh -c script` in the agent, failing the test unless it succeeds; trimmed stdout.
    pub fn agent_ok(&self, script: &str) -> String {
        expect_ok(self.agent_sh(script), &format!("in the agent: {script}"))
    }

    fn agent_cmd(&self, script: &str) -> Command {
        let mut cmd = self.bottle();
        cmd.args(["exec", &self.slug, "-T", "--", "sh", "-c", script]);
        cmd
    }

    /// `git --git-dir=/srv/git/app.git ARGS` in the fixture, as its user git.
    pub fn upstream_git(&self, args: &[&str]) -> Output {
        let dir = format!("--git-dir=/srv/git/{REPO}.git");
        let fixture = self.fixture();
        let mut all = vec!["exec", "-u", "git", &fixture, "git", &dir];
        all.extend_from_slice(args);
        self.engine(&all)
    }

    /// The upstream's value of `reference`, `None` when it does not exist there.
    pub fn upstream_ref(&self, reference: &str) -> Option<String> {
        let out = self.upstream_git(&["rev-parse", "--verify", "--quiet", reference]);
        self.read_ref(out, "the upstream", reference)
    }

    /// The gate's own value of `reference`, read from its bare repository directly (through
    /// git daemon the access hook would refresh it first); `None` when it does not exist.
    pub fn gate_ref(&self, reference: &str) -> Option<String> {
        let repo = format!("/git/{REPO}.git");
        let out = self.engine(&[
            "exec",
            &self.gate(),
            "git",
            "-C",
            &repo,
            "rev-parse",
            "--verify",
            "--quiet",
            reference,
        ]);
        self.read_ref(out, "the gate", reference)
    }

    fn read_ref(&self, out: Output, whose: &str, reference: &str) -> Option<String> {
        match out.status.code() {
            Some(0) => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
            Some(1) if out.stdout.is_empty() && out.stderr.is_empty() => None,
            _ => panic!("cannot read {reference} in {whose}\n{}", show(&out)),
        }
    }

    /// Starts the upstream fixture on the bottle's egress network, labelled with the
    /// bottle's slug (so `bottle down` removes it too).
    pub fn start_fixture(&self) {
        let d = self.dir();
        let host_key = std::fs::read_to_string(d.join("host_key")).expect("host_key");
        let authorized = std::fs::read_to_string(d.join("gate_key.pub")).expect("gate_key.pub");
        let fixture = self.fixture();
        let egress = self.name("egress");
        let slug_label = format!("bottle.slug={}", self.slug);
        let branch = format!("FIXTURE_DEFAULT_BRANCH={}", self.opts.default_branch);
        let repos = format!("FIXTURE_REPOS={REPO}");
        let host_key = format!("FIXTURE_HOST_KEY={host_key}");
        let authorized = format!("FIXTURE_AUTHORIZED_KEYS={authorized}");
        let mut args = vec![
            "run",
            "-d",
            "--pull",
            "never",
            "--name",
            &fixture,
            "--network",
            &egress,
        ];
        args.extend([
            "--label",
            &slug_label,
            "--label",
            "bottle.managed=2",
            "-e",
            &repos,
            "-e",
            &branch,
            "-e",
            &host_key,
            "-e",
            &authorized,
            "bottle-upstream-fixture:latest",
        ]);
        // Marked before running: even a half-started fixture is removed on drop.
        self.fixture_started.store(true, Ordering::SeqCst);
        self.engine_ok(&args);
    }

    /// Waits (bounded) until the fixture serves its repository over ssh and, when the host
    /// key is pinned, until the gate can reach it (a `git ls-remote` from the agent).
    pub fn wait_ready(&self) {
        let fixture = self.fixture();
        let head = format!("/srv/git/{REPO}.git/HEAD");
        poll(READY_LIMIT, "the upstream fixture", || {
            let running = self.engine(&["inspect", "-f", "{{.State.Running}}", &fixture]);
            if said(&running).trim() != "true" {
                return Err(format!(
                    "{fixture} is not running\n{}",
                    show(&self.engine(&["logs", &fixture]))
                ));
            }
            let repo = self.engine(&["exec", "-u", "git", &fixture, "test", "-e", &head]);
            let logs = said(&self.engine(&["logs", &fixture]));
            if repo.status.success() && logs.contains("Server listening on") {
                Ok(())
            } else {
                Err(format!(
                    "no {head} or sshd not listening yet; logs:\n{logs}"
                ))
            }
        });
        for branch in self.opts.extra_branches {
            let start = format!("refs/heads/{}", self.opts.default_branch);
            expect_ok(
                self.upstream_git(&["branch", branch, &start]),
                "create a branch upstream",
            );
        }
        if self.opts.pin_host_key {
            let script = format!("git ls-remote {}", self.url);
            poll(READY_LIMIT, "the gate serving the upstream", || {
                let out = self.agent_sh(&script);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(show(&out))
                }
            });
        }
    }

    /// Stops the fixture (the upstream goes away; its name no longer resolves).
    pub fn stop_fixture(&self) {
        self.engine_ok(&["stop", "-t", "5", &self.fixture()]);
    }

    /// The end of a container's log, for a failing test's report (never panics).
    fn logs(&self, container: &str) -> String {
        let mut cmd = self.cli();
        cmd.args(["logs", "--tail", "80", container]);
        match try_run_limited(&mut cmd, None, Duration::from_secs(20)) {
            Ok(out) => said(&out),
            Err(e) => e,
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let fixture = self.fixture();
        let started = self.fixture_started.load(Ordering::SeqCst);
        if std::thread::panicking() {
            for container in [self.gate(), fixture.clone()] {
                eprintln!(
                    "---- {container} log (last 80 lines) ----\n{}",
                    self.logs(&container)
                );
            }
        }
        if keep() {
            let dir = self.dir.take().map(|d| d.keep()).unwrap_or_default();
            eprintln!(
                "BOTTLE_TEST_KEEP=1: kept bottle '{slug}' (containers {gate}, {agent}{fx}; networks \
                 {internal}, {egress}) and its directory {dir}\n  remove them{who} with: {cli} rm -f {fixture}; \
                 bottle --backend {backend} down {slug}; bottle --backend {backend} cleanup {slug}; rm -rf {dir}",
                slug = self.slug,
                gate = self.gate(),
                agent = self.agent(),
                fx = if started { format!(", {fixture}") } else { String::new() },
                internal = self.name("internal"),
                egress = self.name("egress"),
                dir = dir.display(),
                cli = self.engine.cli,
                backend = self.engine.backend,
                who = self.runner.who(),
            );
            return;
        }
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        if started {
            let mut rm = self.cli();
            rm.args(["rm", "-f", &fixture]);
            steps.push((format!("{} rm -f {fixture}", self.engine.cli), rm));
        }
        for step in ["down", "cleanup"] {
            let mut cmd = self.bottle();
            cmd.args([step, &self.slug]);
            steps.push((format!("bottle {step} {}", self.slug), cmd));
        }
        for (what, mut cmd) in steps {
            match try_run_limited(&mut cmd, None, Duration::from_secs(120)) {
                Ok(out) if out.status.success() => {}
                // Already gone (`bottle down` removes the labelled fixture too).
                Ok(out) if said(&out).to_lowercase().contains("no such container") => {}
                Ok(out) => problems.push(format!("{what}: {}", said(&out))),
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
        if !problems.is_empty() {
            eprintln!(
                "warning: removing test bottle '{}' failed:\n{}",
                self.slug,
                problems.join("\n")
            );
        }
    }
}
