//! Once per engine: is it there (and its user, for a rootless engine), are the images there
//! and fresh; and how the harness runs that engine's commands ([`Runner`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::commands::{ci, run, run_limited, show};
use crate::e2e::Engine;

/// The images a scenario needs.
const IMAGES: [&str; 5] = [
    "bottle-gate:latest",
    "bottle-proxy:latest",
    "bottle-agent:latest",
    "bottle-upstream-fixture:latest",
    "bottle-web-fixture:latest",
];

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
pub(super) struct Runner {
    pub(super) user: Option<User>,
    /// The bottle binary, at a path its user can execute.
    pub(super) bottle: PathBuf,
}

/// The rootless engine's user.
#[derive(Debug)]
pub(super) struct User {
    pub(super) name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    pub(super) runtime_dir: PathBuf,
}

impl Runner {
    /// `program` as the engine's user; with `home` as HOME (else the user's own) and `env`.
    pub(super) fn command(
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
    pub(super) fn cli(&self, engine: &Engine) -> Command {
        self.command(engine.cli, None, &[])
    }

    /// `bottle` run in `dir`, as the engine's user, with HOME=`dir` and a config directory
    /// there: nothing of the user's own configuration applies.
    pub(super) fn bottle(&self, dir: &Path) -> Command {
        self.bottle_env(dir, &[])
    }

    /// [`Runner::bottle`] with more environment variables (a route's key).
    pub(super) fn bottle_env(&self, dir: &Path, extra: &[(&str, String)]) -> Command {
        if self.user.is_none() {
            let mut cmd = crate::cli::bottle_clean(dir);
            cmd.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
            return cmd;
        }
        let config = dir.join("config-home");
        let passed: Vec<(&str, OsString)> = USER_PASSED_ENV
            .iter()
            .filter_map(|name| Some((*name, std::env::var_os(name)?)))
            .collect();
        let mut env = vec![("XDG_CONFIG_HOME", config.as_os_str())];
        env.extend(passed.iter().map(|(n, v)| (*n, v.as_os_str())));
        env.extend(extra.iter().map(|(n, v)| (*n, OsStr::new(v.as_str()))));
        let mut cmd = self.command(&self.bottle, Some(dir), &env);
        cmd.current_dir(dir);
        cmd
    }

    /// `bottle` run in `dir` as the engine's user with the user's own HOME and configuration,
    /// as the user would type it; for root, the same as [`Runner::bottle`].
    pub(super) fn bottle_at_home(&self, dir: &Path) -> Command {
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
    pub(super) fn sh(&self, dir: &Path, script: &Path) -> Command {
        let home = if self.user.is_some() { None } else { Some(dir) };
        let mut cmd = self.command("sh", home, &[]);
        cmd.arg(script).current_dir(dir);
        cmd
    }

    /// Gives the directory `dir` (made by the test) and the files in it to the engine's user,
    /// the directory with mode 0700.
    pub(super) fn hand_over(&self, dir: &Path) {
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
    pub(super) fn who(&self) -> String {
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
    pub(super) fn user_may(&self, op: &str, path: &Path) -> bool {
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
    // The static sidecar programs go next to it, where a copied bottle finds them for its
    // image builds (and `doctor` checks them).
    let sidecars = std::env::var_os("BOTTLE_SIDECAR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release")
        });
    for entry in std::fs::read_dir(&sidecars).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let program = entry.path();
        let is_program = name.starts_with("bottle-")
            && !name.contains('.')
            && entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_program {
            let to = dir.join(&name);
            std::fs::copy(&program, &to)
                .and_then(|_| mode(&to))
                .map_err(|e| format!("copy {} to {}: {e}", program.display(), to.display()))?;
        }
    }
    Ok(copy)
}

/// The engine's runner when the scenario can run; else `None` after a loud SKIP (or fails
/// under `CI=true`).
pub(super) fn can_run(engine: &'static Engine) -> Option<&'static Runner> {
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
