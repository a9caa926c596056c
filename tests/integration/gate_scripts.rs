//! The gate's script set, run for real without containers.
//!
//! Each test renders the scripts under a temporary root with [`GitGate::on_host`], writes the gate's
//! files where the plan says (as a backend would copy them), serves the bare mirrors with
//! the real `git daemon` on a loopback port, and uses a real upstream: a bare repository
//! served by the real `sshd` (Debian's openssh-server) on another loopback port, started by
//! the test with its own config, host key and authorized key. Pushes are scanned by the
//! real push scanner, `bottle-gate-scan` (from the target directory, or
//! `BOTTLE_SIDECAR_DIR`), with the real gitleaks and the gate's config made from it, laid
//! down under the gate's root where the gate image has them. Nothing here leaves 127.0.0.1.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bottle_core::gate::GitGate;
use bottle_core::manifest::{self, Env};
use bottle_core::planner;

use crate::support::{free_port, ok, run, text, wait_for_port};

/// An AWS access key id of the shape gitleaks' `aws-access-token` rule looks for.
const AWS_KEY: &str = "AKIAQYLPMN5HHHFPZAM2";

struct Options {
    pin_host_key: bool,
    default_branch: &'static str,
    /// Replaces the upstream URL written in the manifest (for the quoting test).
    url: Option<String>,
    /// More keys for the git entry (the scan's limits and accepted findings).
    git_keys: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_host_key: true,
            default_branch: "main",
            url: None,
            git_keys: String::new(),
        }
    }
}

/// A host-level gate with its upstream; processes are killed on drop.
struct Rig {
    dir: tempfile::TempDir,
    upstream: PathBuf,
    gate_root: PathBuf,
    gate_port: u16,
    sshd: Option<Child>,
    gate: Option<Child>,
}

fn user() -> String {
    String::from_utf8(ok(Command::new("id").arg("-un")).into_bytes())
        .unwrap()
        .trim()
        .to_owned()
}

impl Rig {
    fn start(opts: Options) -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("bottle-gate-test")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["ssh", "home", "work"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        let mut rig = Rig {
            upstream: d.join("upstream/app.git"),
            gate_root: d.join("gate"),
            gate_port: free_port(),
            dir,
            sshd: None,
            gate: None,
        };

        // The upstream: a bare repository with one commit on the default branch.
        ok(rig
            .git()
            .args(["init", "--quiet", "--bare", "-b", opts.default_branch])
            .arg(&rig.upstream));
        let seed = d.join("work/seed");
        ok(rig
            .git()
            .arg("clone")
            .arg("--quiet")
            .arg(&rig.upstream)
            .arg(&seed));
        fs::write(seed.join("README.md"), "hello from upstream\n").unwrap();
        rig.commit(&seed, "initial commit");
        ok(rig
            .git()
            .arg("-C")
            .arg(&seed)
            .args(["push", "--quiet", "origin", "HEAD"]));

        // sshd on a loopback port, with its own host key and the gate's key authorized.
        for key in ["host_key", "client_key"] {
            ok(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(d.join("ssh").join(key)));
        }
        fs::copy(d.join("ssh/client_key.pub"), d.join("ssh/authorized_keys")).unwrap();
        let ssh_port = free_port();
        fs::write(
            d.join("ssh/sshd_config"),
            format!(
                "Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nStrictModes no\nUsePAM no\nAllowUsers {user}\n\
                 PermitRootLogin prohibit-password\n",
                hk = d.join("ssh/host_key").display(),
                ak = d.join("ssh/authorized_keys").display(),
                pid = d.join("ssh/sshd.pid").display(),
                user = user(),
            ),
        )
        .unwrap();
        let _ = fs::create_dir_all("/run/sshd");
        rig.sshd = Some(
            Command::new("/usr/sbin/sshd")
                .process_group(0)
                .args(["-D", "-e", "-f"])
                .arg(d.join("ssh/sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(d.join("ssh/sshd.log")).unwrap())
                .spawn()
                .expect("start sshd"),
        );
        wait_for_port(ssh_port, "sshd");

        // The manifest, validated and planned exactly as `bottle up` would.
        let url = opts.url.clone().unwrap_or_else(|| {
            format!(
                "ssh://{}@127.0.0.1:{ssh_port}{}",
                user(),
                rig.upstream.display()
            )
        });
        let host_key = fs::read_to_string(d.join("ssh/host_key.pub")).unwrap();
        let pin = if opts.pin_host_key {
            format!("known_host_key = {:?}\n", host_key.trim())
        } else {
            String::new()
        };
        let manifest_text = format!(
            "[bottles.host]\nimage = \"none\"\n\n[[bottles.host.git]]\nname = \"app\"\n\
             upstream = {url:?}\nidentity_file = {key:?}\n{pin}{keys}\n",
            key = d.join("ssh/client_key").display().to_string(),
            keys = opts.git_keys,
        );
        let manifest_path = d.join("bottle.toml");
        fs::write(&manifest_path, &manifest_text).unwrap();
        let manifest = manifest::parse(&manifest_path, &manifest_text, &Env::current())
            .unwrap_or_else(|e| panic!("{e}"));
        let gate = GitGate::on_host(&rig.gate_root).unwrap();
        let plan = planner::plan_with(
            manifest.select(None).unwrap(),
            &bottle_core::project::Project::new("proj").unwrap(),
            &[&gate],
        )
        .unwrap();

        // Lay the gate's files down as a backend copies them into its container.
        let spec = plan.container(bottle_core::gate::NAME).expect("a gate");
        for file in &spec.files {
            let path = Path::new(&file.path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file.bytes()).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(file.mode)).unwrap();
        }
        install_scanner(gate.layout());
        let entrypoint = spec.entrypoint.as_ref().unwrap();
        rig.gate = Some(
            rig.env(Command::new(&entrypoint[0]).process_group(0))
                .args(&entrypoint[1..])
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={}", rig.gate_port))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(d.join("gate.log")).unwrap())
                .spawn()
                .expect("start the gate's entrypoint"),
        );
        wait_for_port(rig.gate_port, "the gate's git daemon");
        rig
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with a clean, test-owned git environment.
    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("HOME", self.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "bottle test")
            .env("GIT_AUTHOR_EMAIL", "test@bottle.invalid")
            .env("GIT_COMMITTER_NAME", "bottle test")
            .env("GIT_COMMITTER_EMAIL", "test@bottle.invalid")
            .env("GIT_TERMINAL_PROMPT", "0")
    }

    fn git(&self) -> Command {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd
    }

    fn gate_url(&self) -> String {
        format!("git://127.0.0.1:{}/app.git", self.gate_port)
    }

    fn commit(&self, repo: &Path, message: &str) {
        ok(self.git().arg("-C").arg(repo).args(["add", "-A"]));
        ok(self
            .git()
            .arg("-C")
            .arg(repo)
            .args(["commit", "--quiet", "-m", message]));
    }

    /// Clones through the gate into `work/<name>`.
    fn clone(&self, name: &str) -> PathBuf {
        let dest = self.path(&format!("work/{name}"));
        ok(self
            .git()
            .args(["clone", "--quiet", &self.gate_url()])
            .arg(&dest));
        dest
    }

    fn rev(&self, repo: &Path, rev: &str) -> String {
        ok(self.git().arg("-C").arg(repo).args(["rev-parse", rev]))
            .trim()
            .to_owned()
    }

    fn upstream_rev(&self, rev: &str) -> String {
        self.rev(&self.upstream, rev)
    }

    /// The gate's own value of a ref, read from its bare repository (not through the daemon,
    /// whose access hook would refresh it first).
    fn gate_rev(&self, rev: &str) -> Option<String> {
        let out = run(self
            .git()
            .arg("-C")
            .arg(self.gate_root.join("git/app.git"))
            .args(["rev-parse", "--verify", "--quiet", rev]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Commits straight to the upstream, bypassing the gate.
    fn commit_upstream(&self, file: &str, contents: &str) -> String {
        let seed = self.path("work/seed");
        ok(self.git().arg("-C").arg(&seed).args(["pull", "--quiet"]));
        fs::write(seed.join(file), contents).unwrap();
        self.commit(&seed, &format!("upstream change to {file}"));
        ok(self
            .git()
            .arg("-C")
            .arg(&seed)
            .args(["push", "--quiet", "origin", "HEAD"]));
        self.rev(&seed, "HEAD")
    }

    fn stop_upstream(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for child in [self.gate.as_mut(), self.sshd.as_mut()]
            .into_iter()
            .flatten()
        {
            // Each runs in its own process group: `git daemon` runs `git-daemon` as a child
            // (and that forks per connection), so the whole group goes, not just the wrapper.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(self.path("gate.log")).unwrap_or_default();
            eprintln!("---- gate log ----\n{log}");
            let log = fs::read_to_string(self.path("ssh/sshd.log")).unwrap_or_default();
            eprintln!("---- sshd log ----\n{log}");
        }
    }
}

/// The push scanner to test: `$BOTTLE_SIDECAR_DIR/bottle-gate-scan` when set, else the
/// newest build of it in this cargo target directory. Missing, it fails the test loudly:
/// the gate refuses every push without it, so no push test could pass.
fn scanner_binary() -> PathBuf {
    const HOW: &str =
        "build it first: scripts/build-sidecars.sh (and set BOTTLE_SIDECAR_DIR to the \
                       directory it prints), or cargo build -p bottle-gate-scan";
    if let Some(dir) = std::env::var_os("BOTTLE_SIDECAR_DIR").filter(|d| !d.is_empty()) {
        let path = PathBuf::from(dir).join("bottle-gate-scan");
        assert!(path.is_file(), "{} is missing; {HOW}", path.display());
        return path;
    }
    // This test runs as target/<profile>/deps/integration-<hash>.
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(|| exe.parent().unwrap().parent().unwrap().parent().unwrap())
        .to_path_buf();
    ["x86_64-unknown-linux-gnu/release", "release", "debug"]
        .iter()
        .map(|sub| target.join(sub).join("bottle-gate-scan"))
        .filter(|p| p.is_file())
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("bottle-gate-scan is not in {}; {HOW}", target.display()))
}

/// Lays down what the gate image holds for the scan: `bottle-gate-scan`, gitleaks, and the
/// gate's gitleaks config, made from that gitleaks as the image build makes it.
fn install_scanner(layout: &bottle_core::gate::GateLayout) {
    let gitleaks =
        fs::canonicalize(ok(Command::new("sh").args(["-c", "command -v gitleaks"])).trim())
            .expect("gitleaks on PATH");
    for (path, target) in [
        (layout.scanner(), scanner_binary()),
        (layout.gitleaks(), gitleaks),
    ] {
        fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
    }
    let config = layout.gitleaks_config();
    fs::create_dir_all(Path::new(&config).parent().unwrap()).unwrap();
    let made = ok(Command::new(layout.scanner()).args([
        "make-config",
        "--gitleaks",
        &layout.gitleaks(),
        "--out",
        &config,
    ]));
    assert!(
        made.starts_with("7bf47bab"),
        "not the pinned config: {made}"
    );
}

/// The gate's audit records so far (its audit log, which the entrypoint copies to the
/// container's output), as JSON values.
fn gate_audit(rig: &Rig) -> Vec<serde_json::Value> {
    let path = rig.gate_root.join("var/lib/bottle-gate/audit.jsonl");
    fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn require_tools() -> bool {
    for tool in ["/usr/sbin/sshd", "ssh-keygen", "git", "gitleaks"] {
        if !crate::support::have(tool) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{tool} is not installed; .ci/run should have installed it");
            }
            eprintln!(
                "\n!!!! SKIPPED: {tool} is not installed; run scripts/install-deps.sh !!!!\n"
            );
            return false;
        }
    }
    true
}

#[test]
fn clone_fetch_and_clean_push_go_through_the_gate() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());

    // A clone gets the upstream's state, on its default branch.
    let work = rig.clone("agent");
    assert_eq!(rig.rev(&work, "HEAD"), rig.upstream_rev("refs/heads/main"));
    assert_eq!(
        fs::read_to_string(work.join("README.md")).unwrap(),
        "hello from upstream\n"
    );

    // A new upstream commit is seen by the next fetch.
    let new = rig.commit_upstream("NEWS", "news\n");
    ok(rig.git().arg("-C").arg(&work).args(["fetch", "--quiet"]));
    assert_eq!(rig.rev(&work, "origin/main"), new);

    // A clean push arrives upstream, and the gate's ref follows.
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["merge", "--quiet", "--ff-only", "origin/main"]));
    fs::write(work.join("feature.txt"), "work by the agent\n").unwrap();
    rig.commit(&work, "agent work");
    let pushed = rig.rev(&work, "HEAD");
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["push", "--quiet", "origin", "main"]));
    assert_eq!(rig.upstream_rev("refs/heads/main"), pushed);
    assert_eq!(
        rig.gate_rev("refs/heads/main").as_deref(),
        Some(pushed.as_str())
    );

    // A new branch is forwarded too.
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/topic"]));
    assert_eq!(rig.upstream_rev("refs/heads/topic"), pushed);
    let forwarded = gate_audit(&rig)
        .into_iter()
        .filter(|r| r["decision"] == "allow" && r["reason"] == "push-forwarded")
        .count();
    assert_eq!(
        forwarded, 2,
        "each forwarded push is a line of the audit log"
    );
}

/// Pushes `contents` in `file` on a new commit of main and asserts the gate refuses it,
/// showing gitleaks' finding, with neither the upstream nor the gate moving.
fn assert_secret_push_rejected(rig: &Rig, work: &Path, file: &str, contents: &str, rule: &str) {
    let upstream_before = rig.upstream_rev("refs/heads/main");
    let gate_before = rig.gate_rev("refs/heads/main");
    fs::write(work.join(file), contents).unwrap();
    rig.commit(work, &format!("add {file}"));
    let out = run(rig
        .git()
        .arg("-C")
        .arg(work)
        .args(["push", "origin", "main"]));
    let said = text(&out);
    assert!(
        !out.status.success(),
        "a push holding a secret succeeded:\n{said}"
    );
    assert!(
        said.contains(rule),
        "gitleaks' finding ({rule}) not shown:\n{said}"
    );
    assert!(
        said.contains(file),
        "the finding does not name {file}:\n{said}"
    );
    assert!(
        said.contains("push refused: gitleaks found"),
        "no gate verdict:\n{said}"
    );
    assert_eq!(
        rig.upstream_rev("refs/heads/main"),
        upstream_before,
        "upstream moved"
    );
    assert_eq!(
        rig.gate_rev("refs/heads/main"),
        gate_before,
        "the gate's ref moved"
    );
    // Drop the rejected commit for the next case.
    ok(rig
        .git()
        .arg("-C")
        .arg(work)
        .args(["reset", "--quiet", "--hard", "HEAD~1"]));
}

#[test]
fn pushes_holding_secrets_are_rejected_with_the_finding() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");

    assert_secret_push_rejected(
        &rig,
        &work,
        "config.env",
        &format!("AWS_ACCESS_KEY_ID={AWS_KEY}\n"),
        "aws-access-token",
    );

    let key = rig.path("ssh/leaked_key");
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let private = fs::read_to_string(&key).unwrap();
    assert_secret_push_rejected(&rig, &work, "deploy_key", &private, "private-key");

    // Each refusal is a line of the gate's audit log, naming the rule, never the secret.
    let audit = gate_audit(&rig);
    let denied: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|r| r["decision"] == "deny" && r["reason"] == "secret-found")
        .collect();
    assert_eq!(denied.len(), 2, "{audit:#?}");
    assert_eq!(denied[0]["source"], "gate");
    assert_eq!(denied[0]["bottle"], "host");
    assert_eq!(denied[0]["rule"], "aws-access-token");
    assert_eq!(denied[1]["rule"], "private-key");
    let all = serde_json::to_string(&audit).unwrap();
    assert!(!all.contains(AWS_KEY), "the secret is in the audit log");
    let key_line = private.lines().nth(2).unwrap();
    assert!(!all.contains(key_line), "the key is in the audit log");

    // Two refs, one clean and one holding a secret: nothing is forwarded.
    let upstream_before = rig.upstream_rev("refs/heads/main");
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["checkout", "--quiet", "-b", "clean"]));
    fs::write(work.join("clean.txt"), "nothing secret\n").unwrap();
    rig.commit(&work, "clean work");
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["checkout", "--quiet", "-b", "dirty", "main"]));
    fs::write(work.join("aws.txt"), format!("key = {AWS_KEY}\n")).unwrap();
    rig.commit(&work, "dirty work");
    let out = run(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["push", "origin", "clean", "dirty"]));
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(rig.upstream_rev("refs/heads/main"), upstream_before);
    for branch in ["clean", "dirty"] {
        let probe = run(rig.git().arg("-C").arg(&rig.upstream).args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ]));
        assert!(
            !probe.status.success(),
            "branch {branch} reached the upstream"
        );
        assert_eq!(rig.gate_rev(&format!("refs/heads/{branch}")), None);
    }
}

#[test]
fn a_new_branch_is_scanned_only_for_commits_the_gate_lacks() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    // A secret already in the upstream's history (put there by someone else, long ago).
    rig.commit_upstream("legacy.env", &format!("OLD_KEY={AWS_KEY}\n"));
    let work = rig.clone("agent");
    // A new branch on top of that history with one clean commit: only that commit is new
    // to the gate, so only it is scanned, and the push goes through.
    ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["checkout", "--quiet", "-b", "feature"]));
    fs::write(work.join("feature.txt"), "clean\n").unwrap();
    rig.commit(&work, "clean feature");
    let out = run(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["push", "origin", "feature"]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        rig.upstream_rev("refs/heads/feature"),
        rig.rev(&work, "HEAD")
    );
}

#[test]
fn fetch_fails_closed_when_the_upstream_is_down() {
    if !require_tools() {
        return;
    }
    let mut rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    rig.stop_upstream();
    let out = run(rig.git().arg("-C").arg(&work).args(["fetch", "origin"]));
    let said = text(&out);
    assert!(
        !out.status.success(),
        "fetch succeeded with the upstream down:\n{said}"
    );
    assert!(said.contains("unreachable"), "no reason given:\n{said}");
    // The cause itself, not git's boilerplate.
    assert!(
        said.contains("Connection refused"),
        "the cause is missing:\n{said}"
    );
    let out = run(rig
        .git()
        .args(["clone", &rig.gate_url()])
        .arg(rig.path("work/second")));
    assert!(
        !out.status.success(),
        "clone succeeded with the upstream down"
    );
    let audit = gate_audit(&rig);
    assert!(
        audit
            .iter()
            .any(|r| r["reason"] == "upstream-unreachable" && r["method"] == "fetch"),
        "the refused fetch is not in the gate's audit log: {audit:#?}"
    );
}

#[test]
fn the_upstream_default_branch_is_the_clone_branch() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options {
        default_branch: "trunk",
        ..Options::default()
    });
    // The upstream also has a `master`: git's own default branch name, which the gate's
    // fresh mirror starts with, must not win over the upstream's real default.
    let seed = rig.path("work/seed");
    ok(rig.git().arg("-C").arg(&seed).args([
        "push",
        "--quiet",
        "origin",
        "HEAD:refs/heads/master",
    ]));
    let work = rig.clone("agent");
    let branch = ok(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["symbolic-ref", "--short", "HEAD"]));
    assert_eq!(branch.trim(), "trunk");
}

#[test]
fn without_a_pinned_host_key_the_gate_refuses_and_says_what_to_add() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options {
        pin_host_key: false,
        ..Options::default()
    });
    let out = run(rig
        .git()
        .args(["clone", &rig.gate_url()])
        .arg(rig.path("work/agent")));
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("known_host_key"), "{said}");

    // A push into the gate's (empty) mirror is refused by the pre-receive hook too, even
    // if the access hook were bypassed.
    let repo = rig.path("work/local");
    ok(rig.git().args(["init", "--quiet", "-b", "main"]).arg(&repo));
    fs::write(repo.join("a"), "a\n").unwrap();
    rig.commit(&repo, "a");
    let out = run(rig
        .git()
        .arg("-C")
        .arg(&repo)
        .arg("push")
        .arg(rig.gate_root.join("git/app.git"))
        .arg("main"));
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("known_host_key"), "{said}");
}

#[test]
fn upstream_urls_with_shell_syntax_are_quoted_and_nothing_runs() {
    if !require_tools() {
        return;
    }
    let marker = std::env::temp_dir().join(format!("bottle-pwned-{}", std::process::id()));
    let _ = fs::remove_file(&marker);
    // No spaces: validation refuses URLs holding whitespace, so a payload uses ${IFS}.
    let m = format!("touch${{IFS}}{}", marker.display());
    for url in [
        format!("ssh://git@127.0.0.1:1/x/$({m}).git"),
        format!("ssh://git@127.0.0.1:1/x/`{m}`.git"),
        format!("ssh://git@127.0.0.1:1/x/it's';{m};'.git"),
        format!("git@127.0.0.1:x/\"$({m})\".git"),
    ] {
        let rig = Rig::start(Options {
            url: Some(url.clone()),
            ..Options::default()
        });
        // The entrypoint ran (the daemon listens): the URL reached git config intact.
        let stored = ok(rig
            .git()
            .arg("-C")
            .arg(rig.gate_root.join("git/app.git"))
            .args(["config", "remote.origin.url"]));
        assert_eq!(stored.trim_end_matches('\n'), url);
        // Fetching makes the access hook use it; it fails (no such upstream), harmlessly.
        let out = run(rig.git().args(["ls-remote", &rig.gate_url()]));
        assert!(!out.status.success());
        assert!(!marker.exists(), "{url} ran a command");
    }
}

// ---------------------------------------------------------------------------------------
// The push scan (issue 13): every object a push brings, whatever `gitleaks git` missed.

/// Another AWS key id, holding "FALSE": the default gitleaks config's unanchored stopword
/// regex, `(?i)^true|false|null$`, would drop it.
const AWS_KEY_WITH_FALSE: &str = "AKIAZFALSEQ2R3T4Y5U6";

impl Rig {
    /// Every ref of the upstream and of the gate's mirror, to show neither moved.
    fn refs(&self) -> (String, String) {
        let list = |repo: &Path| ok(self.git().arg("-C").arg(repo).arg("for-each-ref"));
        (
            list(&self.upstream),
            list(&self.gate_root.join("git/app.git")),
        )
    }

    fn push(&self, work: &Path, refspecs: &[&str]) -> (bool, String) {
        let out = run(self
            .git()
            .arg("-C")
            .arg(work)
            .args(["push", "origin"])
            .args(refspecs));
        (out.status.success(), text(&out))
    }

    /// Pushes `refspecs` and asserts the gate refuses them, saying each of `says`, with no
    /// ref of the upstream or of the gate moved. Returns what the pusher saw.
    fn refused(&self, work: &Path, refspecs: &[&str], says: &[&str]) -> String {
        let before = self.refs();
        let (pushed, said) = self.push(work, refspecs);
        assert!(!pushed, "the push of {refspecs:?} went through:\n{said}");
        for words in says {
            assert!(said.contains(words), "{words:?} not said:\n{said}");
        }
        assert!(said.contains("nothing was forwarded upstream"), "{said}");
        assert_eq!(self.refs(), before, "a ref moved:\n{said}");
        said
    }

    /// Pushes `refspecs` and asserts they arrived upstream as the pusher has them.
    fn accepted(&self, work: &Path, refspecs: &[&str]) {
        let (pushed, said) = self.push(work, refspecs);
        assert!(
            pushed,
            "the clean push of {refspecs:?} was refused:\n{said}"
        );
        assert!(
            said.contains("no secrets found"),
            "no scan verdict:\n{said}"
        );
        for spec in refspecs {
            let (src, dst) = spec.split_once(':').unwrap_or((spec, spec));
            let dst = if dst.starts_with("refs/") {
                dst.to_owned()
            } else {
                format!("refs/heads/{dst}")
            };
            assert_eq!(self.upstream_rev(&dst), self.rev(work, src), "{dst}");
        }
    }

    fn write(&self, work: &Path, file: &str, bytes: &[u8]) {
        let path = work.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn git_in(&self, work: &Path, args: &[&str]) -> String {
        ok(self.git().arg("-C").arg(work).args(args))
            .trim()
            .to_owned()
    }

    /// Drops local commits: back to what the gate has.
    fn reset(&self, work: &Path) {
        self.git_in(work, &["fetch", "--quiet", "origin"]);
        self.git_in(work, &["reset", "--quiet", "--hard", "origin/main"]);
    }
}

/// A merge of two conflicting branches in `work` whose resolution, alone, is `resolution`
/// (`git log -p` shows no diff for a merge, so `gitleaks git` never saw it).
fn conflicting_merge(rig: &Rig, work: &Path, file: &str, resolution: &str) {
    rig.write(work, file, b"mode = base\n");
    rig.commit(work, "base");
    rig.accepted(work, &["main"]);
    rig.git_in(
        work,
        &["checkout", "--quiet", "-b", &format!("side-{file}")],
    );
    rig.write(work, file, b"mode = side\n");
    rig.commit(work, "side");
    rig.git_in(work, &["checkout", "--quiet", "main"]);
    rig.write(work, file, b"mode = main\n");
    rig.commit(work, "main");
    let merge = run(rig.git().arg("-C").arg(work).args([
        "merge",
        "--quiet",
        "--no-commit",
        &format!("side-{file}"),
    ]));
    assert!(!merge.status.success(), "no conflict: {}", text(&merge));
    rig.write(work, file, resolution.as_bytes());
    rig.commit(work, "merge side");
}

#[test]
fn a_secret_only_in_a_merge_resolution_is_refused_and_a_clean_merge_goes_through() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    conflicting_merge(&rig, &work, "app.cfg", &format!("key = {AWS_KEY}\n"));
    let merge = rig.rev(&work, "HEAD");
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "\"app.cfg\"", &merge[..12]],
    );
    rig.reset(&work);
    conflicting_merge(&rig, &work, "other.cfg", "mode = both\n");
    rig.accepted(&work, &["main"]);
}

#[test]
fn secrets_in_commit_and_tag_messages_are_refused_and_clean_ones_go_through() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");

    let message = format!("deploy\n\nthe key is {AWS_KEY}\n");
    rig.git_in(
        &work,
        &["commit", "--quiet", "--allow-empty", "-m", &message],
    );
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "the message of commit"],
    );
    rig.git_in(
        &work,
        &[
            "commit",
            "--quiet",
            "--amend",
            "--allow-empty",
            "-m",
            "deploy\n\nthe key is in the vault\n",
        ],
    );
    rig.accepted(&work, &["main"]);

    let message = format!("release\n\nkey {AWS_KEY}\n");
    rig.git_in(&work, &["tag", "-a", "v1", "-m", &message]);
    rig.refused(
        &work,
        &["refs/tags/v1"],
        &["aws-access-token", "the message of tag \"v1\""],
    );
    rig.git_in(&work, &["tag", "-a", "-f", "v1", "-m", "release 1"]);
    rig.accepted(&work, &["refs/tags/v1"]);
}

#[test]
fn a_ref_pointing_straight_at_a_blob_is_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    rig.write(&work, "loose", format!("key = {AWS_KEY}\n").as_bytes());
    let blob = rig.git_in(&work, &["hash-object", "-w", "loose"]);
    rig.refused(
        &work,
        &[&format!("{blob}:refs/tags/blob")],
        &["aws-access-token", "pointed at directly by refs/tags/blob"],
    );
    rig.write(&work, "loose", b"nothing to see\n");
    let blob = rig.git_in(&work, &["hash-object", "-w", "loose"]);
    rig.accepted(&work, &[&format!("{blob}:refs/tags/blob")]);
}

/// A tree holding one file, `name`, of `content`, written into `work`'s object store only
/// (no commit reaches it): its id.
fn tree_of(rig: &Rig, work: &Path, name: &str, content: &str) -> String {
    rig.write(work, "loose", content.as_bytes());
    let blob = rig.git_in(work, &["hash-object", "-w", "loose"]);
    let tree = piped(
        rig.git().arg("-C").arg(work).arg("mktree"),
        format!("100644 blob {blob}\t{name}\n").as_bytes(),
    );
    String::from_utf8(tree).unwrap().trim().to_owned()
}

#[test]
fn a_ref_pointing_straight_at_a_tree_is_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    let tree = tree_of(&rig, &work, "keys.txt", &format!("key = {AWS_KEY}\n"));
    rig.refused(
        &work,
        &[&format!("{tree}:refs/tags/tree")],
        &["aws-access-token", "\"keys.txt\"", "refs/tags/tree"],
    );
    let tree = tree_of(&rig, &work, "keys.txt", "nothing to see\n");
    rig.accepted(&work, &[&format!("{tree}:refs/tags/tree")]);
}

#[test]
fn a_note_holding_a_secret_is_refused_and_a_clean_note_goes_through() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    // A note on a commit the gate already has: the push brings only the notes commit, its
    // tree and the note's blob (named, in that tree, by the annotated commit's id).
    let annotated = rig.rev(&work, "HEAD");
    rig.git_in(
        &work,
        &["notes", "add", "-m", &format!("deployed with {AWS_KEY}")],
    );
    rig.refused(
        &work,
        &["refs/notes/commits"],
        &[
            "aws-access-token",
            &format!("\"{annotated}\""),
            "on refs/notes/commits",
        ],
    );
    // The refused note's commit stays the parent of any later note: start the ref afresh.
    rig.git_in(&work, &["update-ref", "-d", "refs/notes/commits"]);
    rig.git_in(&work, &["notes", "add", "-m", "deployed on Tuesday"]);
    rig.accepted(&work, &["refs/notes/commits"]);
}

#[test]
fn allowlisted_paths_and_findings_holding_false_are_refused() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");

    // gitleaks' default config skips node_modules/ (and lock files, vendor/, ...) entirely.
    for file in ["node_modules/pkg/config.js", "package-lock.json"] {
        rig.write(
            &work,
            file,
            format!("const key = \"{AWS_KEY}\";\n").as_bytes(),
        );
        rig.commit(&work, &format!("add {file}"));
        rig.refused(&work, &["main"], &["aws-access-token", file]);
        rig.reset(&work);
    }
    rig.write(&work, "node_modules/pkg/index.js", b"module.exports = 1;\n");
    rig.commit(&work, "a dependency");
    rig.accepted(&work, &["main"]);

    rig.write(
        &work,
        "ids.txt",
        format!("id = {AWS_KEY_WITH_FALSE}\n").as_bytes(),
    );
    rig.commit(&work, "ids");
    rig.refused(&work, &["main"], &["aws-access-token", "ids.txt"]);
    rig.reset(&work);
    // The stopwords the regex meant stay: a value that is just "false" is no secret.
    rig.write(&work, "ids.txt", b"password = \"false\"\n");
    rig.commit(&work, "ids");
    rig.accepted(&work, &["main"]);
}

/// A pure rename brings no new blob: when the gate already has the blob (it came from
/// the upstream), renaming it sends nothing new to scan, and nothing new leaves; that case
/// goes through, by design. The case that matters is a file the gate never saw, added and
/// renamed in commits pushed together: the tip holds it only under its new name, and the
/// log scan showed the rename as an empty diff. Its blob is a new object, scanned once, and
/// named at the path it came in with.
#[test]
fn a_renamed_file_is_scanned_when_its_blob_is_new() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    rig.commit_upstream("legacy.env", &format!("OLD_KEY={AWS_KEY}\n"));
    let work = rig.clone("agent");
    let add_and_rename = |content: String| {
        rig.write(&work, "a.env", content.as_bytes());
        rig.commit(&work, "add a.env");
        rig.git_in(&work, &["mv", "a.env", "b.env"]);
        rig.commit(&work, "rename a.env to b.env");
    };

    add_and_rename(format!("NEW_KEY={AWS_KEY_WITH_FALSE}\n"));
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "\"a.env\"", "also at 1 more path"],
    );
    rig.reset(&work);
    add_and_rename("NEW_KEY=in the vault\n".to_owned());
    rig.accepted(&work, &["main"]);

    // The secret already upstream, renamed on a new branch: a new tree and commit, no
    // new blob.
    rig.git_in(&work, &["checkout", "--quiet", "-b", "moved"]);
    rig.git_in(&work, &["mv", "legacy.env", "old.env"]);
    rig.commit(&work, "rename legacy.env");
    rig.accepted(&work, &["moved"]);
}

/// A private key whose BEGIN and END lines went through before (a placeholder, too short
/// to match) and whose body comes in a later commit: `git log -p -U0` shows that commit's
/// added lines alone, which match nothing.
#[test]
fn a_secret_split_across_hunks_is_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    let body: String = (0..4)
        .map(|i| format!("MIIEpAIBAAKCAQEA{i}q3Rk9vXb2Lm8Wn5Tz7Yc1Hd4Fg6Jp0Ks\n"))
        .collect();
    let begin = "-----BEGIN RSA PRIVATE KEY-----\n";
    // Without its END line, the same body is no key: the clean twin.
    for (file, end, refused) in [
        ("id_rsa", "-----END RSA PRIVATE KEY-----\n", true),
        ("id_draft", "\n", false),
    ] {
        rig.write(&work, file, format!("{begin}x\n{end}").as_bytes());
        rig.commit(&work, "placeholder");
        rig.accepted(&work, &["main"]);
        rig.write(&work, file, format!("{begin}{body}{end}").as_bytes());
        rig.commit(&work, "the key");
        if refused {
            rig.refused(&work, &["main"], &["private-key", &format!("\"{file}\"")]);
            rig.reset(&work);
        } else {
            rig.accepted(&work, &["main"]);
        }
    }
}

/// Runs `cmd` with `input` on its stdin (written by another thread, so that a large output
/// cannot block it) and returns its stdout; fails the test unless it succeeds.
fn piped(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input)
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed with {}", out.status);
    out.stdout
}

/// `content` gzipped by `gzip -n` (no name, no time: the same bytes every run).
fn gzip_of(content: &[u8]) -> Vec<u8> {
    piped(Command::new("gzip").args(["-n", "-c", "-9"]), content)
}

/// A zip archive of one deflated member, made with nothing but `gzip` (whose output is a
/// deflate stream between a 10-byte header, with `-n`, and its CRC-32 and size).
fn zip_of(name: &str, content: &[u8]) -> Vec<u8> {
    let gz = gzip_of(content);
    let deflated = &gz[10..gz.len() - 8];
    let crc = &gz[gz.len() - 8..gz.len() - 4];
    let (csize, usize_) = (deflated.len() as u32, content.len() as u32);
    let n = name.len() as u16;
    let mut local = Vec::new();
    local.extend(0x0403_4b50u32.to_le_bytes());
    local.extend([20, 0, 0, 0, 8, 0, 0, 0, 0, 0]); // version, flags, deflate, time, date
    local.extend(crc);
    local.extend(csize.to_le_bytes());
    local.extend(usize_.to_le_bytes());
    local.extend(n.to_le_bytes());
    local.extend([0, 0]);
    local.extend(name.as_bytes());
    local.extend(deflated);
    let mut central = Vec::new();
    central.extend(0x0201_4b50u32.to_le_bytes());
    central.extend([20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
    central.extend(crc);
    central.extend(csize.to_le_bytes());
    central.extend(usize_.to_le_bytes());
    central.extend(n.to_le_bytes());
    central.extend([0; 12]); // extra, comment, disk, attributes
    central.extend(0u32.to_le_bytes()); // the local header's offset
    central.extend(name.as_bytes());
    let mut zip = local.clone();
    zip.extend(&central);
    zip.extend(0x0605_4b50u32.to_le_bytes());
    zip.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    zip.extend((central.len() as u32).to_le_bytes());
    zip.extend((local.len() as u32).to_le_bytes());
    zip.extend([0, 0]);
    zip
}

#[test]
fn binary_files_and_zip_members_are_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    let binary = |inner: &str| {
        let mut b = b"\x7fELF\x02\x01\x01\0\0\0\0\0".to_vec();
        b.extend(b"\0\x01\x02\x03\n");
        b.extend(inner.as_bytes());
        b.extend(b"\n\0\0\xff\xfe\0");
        b
    };
    rig.write(&work, "bin/tool", &binary(&format!("key={AWS_KEY}")));
    rig.commit(&work, "a tool");
    rig.refused(&work, &["main"], &["aws-access-token", "bin/tool"]);
    rig.reset(&work);
    rig.write(&work, "bin/tool", &binary("nothing"));
    rig.commit(&work, "a tool");
    rig.accepted(&work, &["main"]);

    // Named so that only its content says it is a zip; deflated, so the key is not in
    // its bytes as they are.
    let zip = zip_of(
        "conf/keys.txt",
        format!("aws_key = {AWS_KEY}\n").repeat(3).as_bytes(),
    );
    assert!(!String::from_utf8_lossy(&zip).contains(AWS_KEY));
    rig.write(&work, "assets/data.bin", &zip);
    rig.commit(&work, "assets");
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "assets/data.bin!conf/keys.txt"],
    );
    rig.reset(&work);
    rig.write(
        &work,
        "assets/data.bin",
        &zip_of("conf/keys.txt", b"none\n"),
    );
    rig.commit(&work, "assets");
    rig.accepted(&work, &["main"]);
}

/// `text` in UTF-16LE, after a byte order mark or not.
fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xff, 0xfe] } else { Vec::new() };
    out.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

#[test]
fn utf16_text_is_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    // gitleaks alone takes UTF-16 for binary (a NUL every other byte) and skips it.
    for bom in [true, false] {
        let bytes = utf16le(&format!("[keys]\r\naws_key = {AWS_KEY}\r\n"), bom);
        assert!(!String::from_utf8_lossy(&bytes).contains(AWS_KEY));
        rig.write(&work, "keys.reg", &bytes);
        rig.commit(&work, "registry keys");
        rig.refused(
            &work,
            &["main"],
            &["aws-access-token", "\"keys.reg\"", "UTF-16"],
        );
        rig.reset(&work);
    }
    rig.write(
        &work,
        "keys.reg",
        &utf16le("[keys]\r\nnone = here\r\n", true),
    );
    rig.commit(&work, "registry keys");
    rig.accepted(&work, &["main"]);
}

#[test]
fn gzipped_content_is_scanned() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    let gz = gzip_of(format!("aws_key = {AWS_KEY}\n").repeat(3).as_bytes());
    assert!(!String::from_utf8_lossy(&gz).contains(AWS_KEY));
    rig.write(&work, "logs/run.log.gz", &gz);
    rig.commit(&work, "logs");
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "logs/run.log.gz!(gunzipped)"],
    );
    rig.reset(&work);
    rig.write(&work, "logs/run.log.gz", &gzip_of(b"started\n"));
    rig.commit(&work, "logs");
    rig.accepted(&work, &["main"]);
}

#[test]
fn a_push_over_a_limit_is_refused_naming_the_key_that_raises_it() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options {
        git_keys: "max_push_mb = 1\n".to_owned(),
        ..Options::default()
    });
    let work = rig.clone("agent");
    // 3 MiB of text: a small pack, but more new content than the entry's 1 MiB.
    let text_file: String = (0..300_000).map(|i| format!("line {i:07}\n")).collect();
    rig.write(&work, "big.txt", text_file.as_bytes());
    rig.commit(&work, "big");
    rig.refused(
        &work,
        &["main"],
        &["over the gate's limit of 1 MiB", "max_push_mb = "],
    );
    rig.reset(&work);

    // A pack larger than receive.maxInputSize (the limit and a quarter, and 1 MiB) is
    // refused by git itself while it reads it, before it is stored. git's own message
    // ("pack exceeds maximum allowed size") rarely reaches the pusher: receive-pack stops
    // while the client still sends, so the client mostly sees the connection reset.
    let mut noise = vec![0u8; 3 << 20];
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut noise)
        .unwrap();
    rig.write(&work, "noise.bin", &noise);
    rig.commit(&work, "noise");
    let before = rig.refs();
    let (pushed, said) = rig.push(&work, &["main"]);
    assert!(!pushed, "{said}");
    assert!(
        said.contains("maximum allowed size") || said.contains("hung up"),
        "{said}"
    );
    assert_eq!(rig.refs(), before);
    let limit = ok(rig
        .git()
        .arg("-C")
        .arg(rig.gate_root.join("git/app.git"))
        .args(["config", "receive.maxInputSize"]));
    assert_eq!(
        limit.trim(),
        ((1u64 << 20) + (1 << 18) + (1 << 20)).to_string()
    );
}

/// Starts a gate whose git entry sets `keys`, pushes one commit adding `file` of `bytes`
/// to it, and asserts the push is refused saying each of `says`, no ref moved.
fn refused_over_a_limit(keys: &str, file: &str, bytes: &[u8], says: &[&str]) {
    let rig = Rig::start(Options {
        git_keys: keys.to_owned(),
        ..Options::default()
    });
    let work = rig.clone("agent");
    rig.write(&work, file, bytes);
    rig.commit(&work, &format!("add {file}"));
    rig.refused(&work, &["main"], says);
}

#[test]
fn a_push_decoding_to_more_than_max_scan_mb_is_refused() {
    if !require_tools() {
        return;
    }
    // 4 MiB once gunzipped, a few KiB as pushed: well within max_push_mb, so only the
    // scan's own bound (the decompression-bomb guard) can refuse it.
    let bomb = gzip_of(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 64 << 10);
    refused_over_a_limit(
        "max_push_mb = 1\nmax_scan_mb = 1\n",
        "zeros.gz",
        &bomb,
        &[
            "more than the gate's limit of 1 MiB to scan",
            "max_scan_mb = 2",
        ],
    );
}

#[test]
fn a_scan_running_past_scan_timeout_s_is_refused() {
    if !require_tools() {
        return;
    }
    // About 12 MB of assignments that gitleaks' generic rule has to weigh one by one (and
    // rejects: their values are not random): many seconds of gitleaks on any machine,
    // killed at the 1 s bound (the least the manifest allows).
    let line =
        "api_key = \"aaaaaaaaaaaaaaaaaaaa\" password=\"bbbbbbbbbbbbbbbb\" token: cccccccccccc\n";
    refused_over_a_limit(
        "scan_timeout_s = 1\n",
        "settings.txt",
        line.repeat(150_000).as_bytes(),
        &[
            "took longer than the gate's limit of 1 s",
            "scan_timeout_s = 2",
        ],
    );
}

#[test]
fn findings_accepted_in_the_manifest_go_through_and_no_others() {
    if !require_tools() {
        return;
    }
    // The fingerprint the gate prints for a key on line 1 of a file: its blob and rule.
    let accepted = format!("token = {AWS_KEY}\n");
    let blob = String::from_utf8(piped(
        Command::new("git").args(["hash-object", "--stdin"]),
        accepted.as_bytes(),
    ))
    .unwrap();
    let fingerprint = format!("{}:aws-access-token:1", blob.trim());
    // A path regex with shell and TOML syntax in it reaches the scan intact.
    let rig = Rig::start(Options {
        git_keys: format!(
            "accept_fingerprints = [{fingerprint:?}]\n{}\n",
            r#"accept_paths = ["^it's-\\$\\(x\\)/"]"#
        ),
        ..Options::default()
    });
    let work = rig.clone("agent");

    rig.write(&work, "fixtures/token.txt", accepted.as_bytes());
    rig.commit(&work, "a test fixture");
    rig.accepted(&work, &["main"]);

    // The same key in another file (another blob) is still refused.
    rig.write(
        &work,
        "fixtures/other.txt",
        format!("# other\ntoken = {AWS_KEY}\n").as_bytes(),
    );
    rig.commit(&work, "another");
    rig.refused(
        &work,
        &["main"],
        &["aws-access-token", "fixtures/other.txt"],
    );
    rig.reset(&work);

    // Under the accepted path: goes through.
    rig.write(
        &work,
        "it's-$(x)/key.txt",
        format!("k = {AWS_KEY_WITH_FALSE}\n").as_bytes(),
    );
    rig.commit(&work, "accepted path");
    rig.accepted(&work, &["main"]);
}

/// Two forwards that both pass their leases race for the upstream's ref lock; the loser's
/// upstream says "cannot lock ref ...: is at X but expected Y". Made deterministic here by
/// an upstream pre-receive hook that moves the branch once, after the lease was checked and
/// before receive-pack locks it. The gate says what happened (another push got there
/// first, not a fault) and what to do; nothing moves on the gate, and the upstream keeps
/// the other push.
#[test]
fn a_push_losing_the_upstream_ref_lock_is_explained() {
    if !require_tools() {
        return;
    }
    let rig = Rig::start(Options::default());
    let work = rig.clone("agent");
    let gate_before = rig.gate_rev("refs/heads/main");
    let hook = rig.upstream.join("hooks/pre-receive");
    fs::write(
        &hook,
        "#!/bin/sh\n\
         # Once: another push lands on main between the lease check and the lock.\n\
         [ -e racer-done ] && exit 0\n\
         : >racer-done\n\
         unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         c=$(git commit-tree -p refs/heads/main -m racer 'refs/heads/main^{tree}') &&\n\
         git update-ref refs/heads/main \"$c\" && echo \"$c\" >racer-commit\n",
    )
    .unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(work.join("mine.txt"), "mine\n").unwrap();
    rig.commit(&work, "mine");
    let out = run(rig
        .git()
        .arg("-C")
        .arg(&work)
        .args(["push", "origin", "main"]));
    let said = text(&out);
    assert!(
        !out.status.success(),
        "the push that lost the lock succeeded:\n{said}"
    );
    for want in [
        "but expected",
        "another push reached the upstream of",
        "not a fault",
        "fetch, rebase and push again",
    ] {
        assert!(
            said.contains(want),
            "the refusal does not say {want:?}:\n{said}"
        );
    }
    let racer = fs::read_to_string(rig.upstream.join("racer-commit")).expect("the racer ran");
    assert_eq!(rig.upstream_rev("refs/heads/main"), racer.trim());
    assert_eq!(rig.gate_rev("refs/heads/main"), gate_before);
}
