//! The harness: one bottle with its upstream fixture, driven through `bottle` and the engine
//! CLI, removed on drop.
//!
//! - [`commands`]: running commands under a time limit, and reading what they said;
//! - [`runner`]: once per engine, whether it can run scenarios, and how to run its commands
//!   (as the rootless engine's user, for that one);
//! - [`slots`]: how many bottles may exist at once;
//! - [`fixture`]: the upstream fixture, started through the engine's API;
//! - here: [`Harness`], one scenario's bottle.

mod commands;
mod fixture;
mod runner;
mod slots;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use commands::keep;
pub use commands::{expect_ok, poll, run, run_limited, said, show, try_run_limited, COMMAND_LIMIT};
use runner::{can_run, Runner};
use slots::Permit;

use super::Engine;
use bottle_core::plan::resource_name;

/// How long the fixture and the gate get to become ready.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How long the gate gets to serve the upstream. Longer than [`READY_LIMIT`]: on rootful
/// Podman 4.3 (netavark, aardvark-dns 1.4) a container joining the egress network after the
/// others (a web fixture) sometimes leaves the gate's name lookups of the upstream
/// unanswered for 30 to 50 s (seen: `getent hosts` timing out while a connection to the
/// upstream's address succeeds), so the gate rightly refuses fetches meanwhile.
const GATE_READY_LIMIT: Duration = Duration::from_secs(90);
/// The repository the fixture serves and the manifest declares.
pub const REPO: &str = "app";
/// The project of every scenario's bottle (its slug is unique).
pub const PROJECT: &str = "e2e";

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
    /// More of the bottle's manifest, given its slug (e.g. its `[bottles.SLUG.egress]`).
    /// The test CA's certificate is `ca.pem` beside the manifest.
    pub manifest_extra: Option<fn(&str) -> String>,
    /// The agent's image.
    pub image: &'static str,
    /// Environment variables every `bottle` command of the scenario gets (a route's key).
    pub bottle_env: Vec<(&'static str, String)>,
}

impl Options {
    pub fn new(short: &'static str) -> Options {
        Options {
            short,
            default_branch: "main",
            extra_branches: &[],
            pin_host_key: true,
            via: Via::Up,
            manifest_extra: None,
            image: "bottle-agent:latest",
            bottle_env: Vec::new(),
        }
    }
}

/// One scenario's bottle: its directory, keys and manifest, its containers; removed on drop.
pub struct Harness {
    pub engine: &'static Engine,
    runner: &'static Runner,
    pub opts: Options,
    /// The bottle's project: [`PROJECT`], set in the manifest's `[settings]`.
    pub project: String,
    pub slug: String,
    /// The upstream URL as written in the manifest and used in the agent.
    pub url: String,
    /// The gate's identity key (private), on the host.
    pub identity_file: PathBuf,
    /// The scenario's own CA, which signs its web fixtures' certificates.
    ca: TestCa,
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
        let project = PROJECT.to_owned();
        let url = format!(
            "ssh://git@{}/srv/git/{REPO}.git",
            resource_name(&project, &slug, bottle_backend_shared::fixture::ROLE)
        );
        let identity_file = d.join("gate_key");
        let pin = if opts.pin_host_key {
            let public = std::fs::read_to_string(d.join("host_key.pub")).expect("host_key.pub");
            let type_and_key: Vec<&str> = public.split_whitespace().take(2).collect();
            format!("known_host_key = {:?}\n", type_and_key.join(" "))
        } else {
            String::new()
        };
        let ca = TestCa::new();
        std::fs::write(d.join("ca.pem"), &ca.pem).expect("write ca.pem");
        let manifest = format!(
            "[settings]\nproject = {project:?}\n\n[bottles.{slug}]\nimage = {image:?}\ncommand = [\"sleep\", \"infinity\"]\n\n\
             [[bottles.{slug}.git]]\nname = \"{REPO}\"\nupstream = {url:?}\nidentity_file = {key:?}\n{pin}",
            key = identity_file.display().to_string(),
            image = opts.image,
        );
        let manifest = match opts.manifest_extra {
            Some(extra) => format!("{manifest}\n{}", extra(&slug)),
            None => manifest,
        };
        std::fs::write(d.join("bottle.toml"), manifest).expect("write bottle.toml");
        runner.hand_over(d);
        Some(Harness {
            engine,
            runner,
            opts,
            project,
            slug,
            url,
            identity_file,
            ca,
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

    /// A directory `NAME` in the scenario's directory holding `manifest` as its
    /// `bottle.toml`, handed to the engine's user: another project (by default a project is
    /// its manifest's directory name).
    pub fn project_dir(&self, name: &str, manifest: &str) -> PathBuf {
        let dir = self.dir().join(name);
        std::fs::create_dir_all(&dir).expect("create a project directory");
        std::fs::write(dir.join("bottle.toml"), manifest).expect("write bottle.toml");
        self.runner.hand_over(&dir);
        dir
    }

    /// `bottle --backend <engine>` run in `dir` with a clean environment, as the engine's
    /// user.
    pub fn bottle_in(&self, dir: &Path) -> Command {
        let mut cmd = self.runner.bottle(dir);
        cmd.args(["--backend", self.engine.backend]);
        cmd
    }

    /// The scenario's directory (keys, manifest).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir kept until drop").path()
    }

    /// Adds `line` to bottle.toml just before the first `before` (a key of the bottle's
    /// table or of its git entry), for a setting [`Options`] has no field for.
    pub fn add_to_manifest(&self, before: &str, line: &str) {
        let manifest = self.dir().join("bottle.toml");
        let text = std::fs::read_to_string(&manifest).expect("bottle.toml");
        assert!(
            text.contains(before),
            "bottle.toml has no {before:?}:\n{text}"
        );
        let text = text.replacen(before, &format!("{line}\n{before}"), 1);
        std::fs::write(&manifest, text).expect("write bottle.toml");
    }

    /// `bottle --backend <engine>` run in the scenario's directory, with a clean env, as the
    /// engine's user.
    pub fn bottle(&self) -> Command {
        let mut cmd = self.runner.bottle_env(self.dir(), &self.opts.bottle_env);
        cmd.args(["--backend", self.engine.backend]);
        cmd
    }

    /// `bottle --backend <engine's dry-run>`, as [`Harness::bottle`] otherwise.
    pub fn dry_run(&self) -> Command {
        let mut cmd = self.runner.bottle_env(self.dir(), &self.opts.bottle_env);
        cmd.args(["--backend", self.engine.dry_run]);
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

    /// The name of the bottle's resource with this role (`bottle-<project>-<slug>-<role>`).
    pub fn name(&self, role: &str) -> String {
        resource_name(&self.project, &self.slug, role)
    }

    /// `container`'s address on `network`, as the engine reports it; never empty.
    pub fn address(&self, container: &str, network: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        let ip = self.engine_ok(&["inspect", "--format", &format, container]);
        assert!(!ip.is_empty(), "{container} has no address on {network}");
        ip
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

    /// Runs `sh -c script` in the agent, failing the test when it runs longer than `limit`.
    pub fn agent_sh_limited(&self, script: &str, limit: Duration) -> Output {
        run_limited(&mut self.agent_cmd(script), None, limit)
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
        let spec =
            bottle_backend_shared::fixture::upstream(&bottle_backend_shared::fixture::Upstream {
                project: &self.project,
                slug: &self.slug,
                repos: &[REPO],
                default_branch: self.opts.default_branch,
                host_key: &host_key,
                authorized_keys: &authorized,
            });
        // Marked before running: even a half-started fixture is removed on drop.
        self.fixture_started.store(true, Ordering::SeqCst);
        if let Err(e) = fixture::run_container(self.engine, self.runner, &spec) {
            panic!("the upstream fixture did not start: {e}");
        }
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
            poll(GATE_READY_LIMIT, "the gate serving the upstream", || {
                let out = self.agent_sh(&script);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(show(&out))
                }
            });
        }
    }

    /// Starts one web fixture per name on the bottle's egress network (container and host
    /// name alike, e.g. `web.<slug>.test`), all serving one certificate for every name,
    /// signed by a CA of this scenario's own; writes that CA into the agent as
    /// `/tmp/ca.pem` and returns it (PEM). `bottle down` removes them (they carry the
    /// bottle's labels).
    pub fn start_webs(&self, names: &[String]) -> String {
        self.start_webs_scripted(names, None)
    }

    /// [`Harness::start_webs`], the Messages stand-in of each scripted with `script` (JSON
    /// lines, see `bottle-web-fixture`).
    pub fn start_webs_scripted(&self, names: &[String], script: Option<&str>) -> String {
        let key = rcgen::KeyPair::generate().expect("a server key");
        let leaf = rcgen::CertificateParams::new(names.to_vec())
            .expect("server parameters")
            .signed_by(&key, &self.ca.cert, &self.ca.key)
            .expect("the server certificate");
        let (cert_pem, key_pem) = (leaf.pem(), key.serialize_pem());
        for name in names {
            let spec = bottle_backend_shared::fixture::web(&bottle_backend_shared::fixture::Web {
                project: &self.project,
                slug: &self.slug,
                name,
                cert_pem: &cert_pem,
                key_pem: &key_pem,
                script,
            });
            if let Err(e) = fixture::run_container(self.engine, self.runner, &spec) {
                panic!("the web fixture {name} did not start: {e}");
            }
        }
        let ca_pem = self.ca.pem.clone();
        let out = self.agent_sh_input("cat > /tmp/ca.pem", ca_pem.as_bytes());
        expect_ok(out, "write the test CA into the agent");
        for name in names {
            poll(READY_LIMIT, "the web fixture", || {
                let out = self.engine(&["logs", name]);
                if said(&out).contains("on https://") {
                    Ok(())
                } else {
                    Err(show(&out))
                }
            });
        }
        ca_pem
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

/// A scenario's own certificate authority (made when the scenario is prepared, so a
/// manifest can name its certificate as a route's `ca_file`).
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bottle e2e test CA");
        let cert = params.self_signed(&key).expect("the CA certificate");
        let pem = cert.pem();
        TestCa { cert, key, pem }
    }
}
