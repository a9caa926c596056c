//! Real repositories, a real bare "gate" with a pre-receive hook that runs the scanner, and
//! real `git push`es into it (so git's quarantine environment is the real one).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A secret gitleaks' `aws-access-token` rule catches, made at run time so that this file
/// holds none.
pub fn secret() -> String {
    format!("AKIA{}", "ZQ3T4R5Y6U7I2O3P")
}

/// Another one, holding "FALSE" (which the default config's broken regex drops).
pub fn secret_with_false() -> String {
    format!("AKIA{}", "ZFALSEQ2R3T4Y5U6")
}

pub fn gitleaks() -> PathBuf {
    for p in ["/usr/local/bin/gitleaks", "/usr/bin/gitleaks"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("gitleaks 8.30.1 is missing: run scripts/install-deps.sh");
}

/// The gate's config, made once per test binary from the real gitleaks.
pub fn gate_config() -> PathBuf {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("bottle-gate-scan-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("gate-gitleaks.toml");
            bottle_gate_scan::config::make_config(&gitleaks(), &out).unwrap();
            out
        })
        .clone()
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub gate: PathBuf,
    pub work: PathBuf,
}

pub fn git_in(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.parent().unwrap())
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    cmd
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Fixture {
    /// A gate (bare, with the scanning hook and `extra` scanner arguments) and a work repo
    /// with one clean commit on main, already pushed.
    pub fn new(extra: &[&str]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let gate = tmp.path().join("gate.git");
        let work = tmp.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let f = Fixture { tmp, gate, work };
        check(
            git_in(f.tmp.path())
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&f.gate)
                .output()
                .unwrap(),
            "init gate",
        );
        f.set_hook(extra);
        f.git(&["init", "-q", "-b", "main"]);
        f.write("README.md", b"hello\n");
        f.commit("initial");
        f.push_ok(&["main"]);
        f
    }

    pub fn set_hook(&self, extra: &[&str]) {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut args = vec![
            quote(env!("CARGO_BIN_EXE_bottle-gate-scan")),
            "--config".into(),
            quote(gate_config().to_str().unwrap()),
            "--report".into(),
            quote(self.report_path().to_str().unwrap()),
        ];
        if !extra.contains(&"--gitleaks") {
            args.extend(["--gitleaks".into(), quote(gitleaks().to_str().unwrap())]);
        }
        args.extend(extra.iter().map(|a| quote(a)));
        let hook = self.gate.join("hooks/pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\nexec {}\n", args.join(" "))).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn report_path(&self) -> PathBuf {
        self.tmp.path().join("report.json")
    }

    pub fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.report_path()).unwrap()).unwrap()
    }

    pub fn git(&self, args: &[&str]) -> String {
        check(
            git_in(&self.work).args(args).output().unwrap(),
            &format!("git {args:?}"),
        )
    }

    pub fn gate_git(&self, args: &[&str]) -> String {
        check(
            git_in(&self.gate).args(args).output().unwrap(),
            &format!("gate git {args:?}"),
        )
    }

    pub fn write(&self, path: &str, bytes: &[u8]) {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Every ref of the gate, as `git for-each-ref` prints them.
    pub fn gate_refs(&self) -> String {
        self.gate_git(&["for-each-ref"])
    }

    /// Pushes `refspecs` with `env` added; returns whether it went through, and stderr.
    pub fn push_env(&self, refspecs: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let mut cmd = git_in(&self.work);
        cmd.arg("push")
            .arg("--porcelain")
            .arg(&self.gate)
            .args(refspecs);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn push(&self, refspecs: &[&str]) -> (bool, String) {
        self.push_env(refspecs, &[])
    }

    /// Pushes and expects the gate to take it.
    pub fn push_ok(&self, refspecs: &[&str]) -> String {
        let before = self.gate_refs();
        let (ok, err) = self.push(refspecs);
        assert!(ok, "push {refspecs:?} was refused:\n{err}");
        assert_ne!(before, self.gate_refs(), "push {refspecs:?} moved no ref");
        err
    }

    /// Pushes and expects a refusal that leaves every ref of the gate where it was.
    pub fn push_refused(&self, refspecs: &[&str]) -> String {
        self.push_refused_env(refspecs, &[])
    }

    pub fn push_refused_env(&self, refspecs: &[&str], env: &[(&str, &str)]) -> String {
        let before = self.gate_refs();
        let (ok, err) = self.push_env(refspecs, env);
        assert!(!ok, "push {refspecs:?} went through:\n{err}");
        assert!(err.contains("push refused"), "no refusal message:\n{err}");
        assert_eq!(before, self.gate_refs(), "a refused push moved a ref");
        assert!(!err.contains(&secret()), "the secret was printed:\n{err}");
        assert!(
            !err.contains(&secret_with_false()),
            "the secret was printed:\n{err}"
        );
        err
    }
}
