//! The gate's script set, run for real without containers.
//!
//! Each test renders the scripts under a temporary root with [`GitGate::on_host`], writes the gate's
//! files where the plan says (as a backend would copy them), serves the bare mirrors with
//! the real `git daemon` on a loopback port, and uses a real upstream: a bare repository
//! served by the real `sshd` (Debian's openssh-server) on another loopback port, started by
//! the test with its own config, host key and authorized key. Pushes are scanned by the
//! real gitleaks. Nothing here leaves 127.0.0.1.

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_host_key: true,
            default_branch: "main",
            url: None,
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
             upstream = {url:?}\nidentity_file = {key:?}\n{pin}",
            key = d.join("ssh/client_key").display().to_string(),
        );
        let manifest_path = d.join("bottle.toml");
        fs::write(&manifest_path, &manifest_text).unwrap();
        let manifest = manifest::parse(&manifest_path, &manifest_text, &Env::current())
            .unwrap_or_else(|e| panic!("{e}"));
        let gate = GitGate::on_host(&rig.gate_root).unwrap();
        let plan = planner::plan_with(manifest.select(None).unwrap(), &[&gate]).unwrap();

        // Lay the gate's files down as a backend copies them into its container.
        let spec = plan.container(bottle_core::gate::NAME).expect("a gate");
        for file in &spec.files {
            let path = Path::new(&file.path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file.bytes()).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(file.mode)).unwrap();
        }
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
        said.contains("rejected: gitleaks"),
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
