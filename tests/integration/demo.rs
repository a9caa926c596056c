//! `bottle demo`, the README's main command, run for real on the Docker engine, and refused
//! on backends that run no engine.

use std::process::Command;

use crate::support::{run, text};

#[test]
fn the_demo_shows_clone_clean_push_and_blocked_secret_then_cleans_up() {
    if !run(Command::new("docker").arg("info")).status.success() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no Docker engine on CI");
        }
        eprintln!("\n!!!! SKIPPED: no Docker engine !!!!\n");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_bottle"))
        .arg("demo")
        .env_remove("BOTTLE_BACKEND")
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache")));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for expected in [
        "[5/10] In the agent: git clone",
        "initial commit",
        "upstream$ ",
        "Add a feature",
        "push refused: gitleaks found 1 secret",
        "aws-access-token (",
        "pre-receive hook declined",
        "blocked: gitleaks found the key",
        "MODEL_BASE_URL=http://bottle-demo-demo-cred:8080/model",
        "Hello from the model stand-in.",
        "the agent's environment does not hold it",
        "CONNECT tunnel failed, response 403",
        "proxy  DENY   paste.example.test:443  not-allowed",
        "Tearing down",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in:\n{said}");
    }
    let left =
        run(Command::new("docker").args(["ps", "-aq", "--filter", "label=bottle.slug=demo"]));
    assert!(
        left.stdout.is_empty(),
        "containers left behind: {}",
        text(&left)
    );
    // The demo keeps its keys in its own directory, under XDG_CACHE_HOME.
    assert!(home.path().join("cache/bottle/demo/gate_key").exists());
}

#[test]
fn doctor_reports_this_host_healthy_for_docker() {
    if !run(Command::new("docker").arg("info")).status.success() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no Docker engine on CI");
        }
        eprintln!("\n!!!! SKIPPED: no Docker engine !!!!\n");
        return;
    }
    let out = run(Command::new(env!("CARGO_BIN_EXE_bottle"))
        .args(["--backend", "docker", "doctor"])
        .env_remove("BOTTLE_BACKEND"));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok       docker engine"), "{said}");
    assert!(said.contains("healthy: everything"), "{said}");
}

#[test]
fn the_demo_refuses_a_backend_that_runs_no_engine() {
    for (args, name) in [
        (&["--dry-run", "demo"][..], "dry-run"),
        (
            &["--backend", "dry-run-podman", "demo"][..],
            "dry-run-podman",
        ),
    ] {
        let out = run(Command::new(env!("CARGO_BIN_EXE_bottle"))
            .args(args)
            .env_remove("BOTTLE_BACKEND"));
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(
            said.contains(&format!("not on '{name}'")) && said.contains("--backend podman"),
            "{said}"
        );
    }
}
