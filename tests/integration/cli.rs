//! The binary's commands, backend resolution, exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{ok, run, text};

/// `bottle` with a clean environment: no BOTTLE_BACKEND, no BOTTLE_PROJECT (the manifest's
/// or the directory's project applies), a config home of our own.
pub fn bottle_clean(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottle"));
    cmd.current_dir(dir)
        .env_remove("BOTTLE_BACKEND")
        .env_remove("BOTTLE_MANIFEST")
        .env_remove("BOTTLE_PROJECT")
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .env("HOME", dir);
    cmd
}

/// [`bottle_clean`] in project `cli` (BOTTLE_PROJECT), so that names do not depend on the
/// temporary directory's random name.
pub fn bottle(dir: &Path) -> Command {
    let mut cmd = bottle_clean(dir);
    cmd.env("BOTTLE_PROJECT", "cli");
    cmd
}

/// A directory with the example manifest, its host key pinned as its comment says (the
/// line ssh-keyscan prints), its identity key at ~/.ssh/bottle_app (HOME is the directory
/// itself) and nothing else.
pub fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(bottle(dir.path()).arg("init"));
    let manifest = dir.path().join("bottle.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let placeholder =
        "# known_host_key = \"[git.example.com]:2222 ssh-ed25519 AAAA...PASTE-THE-KEY-HERE\"";
    assert!(text.contains(placeholder), "{text}");
    let pinned = "known_host_key = \"[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"";
    std::fs::write(&manifest, text.replace(placeholder, pinned)).unwrap();
    std::fs::create_dir_all(dir.path().join(".ssh")).unwrap();
    bottle_test_keys::write_identity_key(&dir.path().join(".ssh/bottle_app"));
    dir
}

fn code(cmd: &mut Command) -> (i32, String) {
    let out = run(cmd);
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(bottle(dir.path()).arg("--help"));
    assert!(
        out.contains("Examples:") && out.contains("bottle --dry-run up demo"),
        "{out}"
    );
    for sub in [
        "up", "down", "ps", "cleanup", "exec", "run", "render", "init",
    ] {
        assert!(
            out.contains(&format!("\n  {sub}")),
            "{sub} missing from help:\n{out}"
        );
    }
}

#[test]
fn init_writes_a_valid_manifest_once() {
    let dir = project();
    let (c, out) = code(bottle(dir.path()).arg("init"));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("already exists") && out.contains("--force"),
        "{out}"
    );
    ok(bottle(dir.path()).args(["init", "--force"]));
    // The example is a valid manifest whose bottle plans.
    ok(bottle(dir.path()).args(["--dry-run", "up", "demo"]));
}

#[test]
fn unknown_backends_list_the_known_ones_and_the_source() {
    let dir = project();
    let (c, out) = code(bottle(dir.path()).args(["--backend", "nope", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("no backend named 'nope' (from --backend)"),
        "{out}"
    );
    assert!(
        out.contains("known backends: ") && out.contains("dry-run"),
        "{out}"
    );

    let (c, out) = code(bottle(dir.path()).env("BOTTLE_BACKEND", "envy").arg("up"));
    assert_eq!(c, 2);
    assert!(out.contains("'envy' (from BOTTLE_BACKEND)"), "{out}");

    let manifest = std::fs::read_to_string(dir.path().join("bottle.toml")).unwrap();
    std::fs::write(
        dir.path().join("bottle.toml"),
        manifest.replace("# backend = \"docker\"", "backend = \"fromfile\""),
    )
    .unwrap();
    let (c, out) = code(bottle(dir.path()).arg("up"));
    assert_eq!(c, 2);
    assert!(
        out.contains("'fromfile' (from [settings] backend at bottle.toml:"),
        "{out}"
    );
    // The flag beats the manifest.
    ok(bottle(dir.path()).args(["--backend", "dry-run", "up"]));
}

#[test]
fn the_user_config_file_is_read_last() {
    let dir = project();
    let conf = dir.path().join("config-home/bottle");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("config.toml"), "backend = \"dry-run-podman\"\n").unwrap();
    let out = ok(bottle(dir.path()).arg("up"));
    assert!(out.contains("podman network create"), "{out}");
    let out = ok(bottle(dir.path())
        .env("BOTTLE_BACKEND", "dry-run")
        .arg("up"));
    assert!(out.contains("docker network create"), "{out}");
}

#[test]
fn manifest_errors_exit_2_with_a_place() {
    let dir = project();
    std::fs::write(
        dir.path().join("bottle.toml"),
        "[bottles.demo]\nimage = \"i\"\n[[bottles.demo.git]]\nname = \"a b\"\nupstream = \"https://x/y\"\nidentity_file = \"k\"\n",
    )
    .unwrap();
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("bottle.toml:4:8: bottles.demo.git[0].name"),
        "{out}"
    );
    assert!(
        out.contains("bottle.toml:5:12: bottles.demo.git[0].upstream"),
        "{out}"
    );

    let (c, out) = code(bottle(dir.path()).args(["--manifest", "missing.toml", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("cannot read manifest missing.toml") && out.contains("bottle init"),
        "{out}"
    );
}

#[test]
fn a_missing_identity_file_is_an_error_at_plan_time() {
    let dir = project();
    std::fs::remove_file(dir.path().join(".ssh/bottle_app")).unwrap();
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "up", "demo"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("bottles.demo.git[0].identity_file: cannot read identity file"),
        "{out}"
    );
}

#[test]
fn unknown_bottles_are_listed() {
    let dir = project();
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "up", "nope"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("no bottle named 'nope'; the manifest has: demo"),
        "{out}"
    );
}

#[test]
fn render_writes_scripts_that_pass_shellcheck() {
    let dir = project();
    let out_dir: PathBuf = dir.path().join("rendered");
    let out = ok(bottle(dir.path())
        .args(["render", "demo", "--out"])
        .arg(&out_dir));
    assert!(out.contains("entrypoint"), "{out}");
    for script in [
        "gate/etc/bottle-gate/entrypoint",
        "gate/etc/bottle-gate/hooks/pre-receive",
        "gate/etc/bottle-gate/access-hook",
    ] {
        let path = out_dir.join(script);
        ok(Command::new("sh").arg("-n").arg(&path));
        if crate::support::have("shellcheck") {
            ok(Command::new("shellcheck").args(["-s", "sh"]).arg(&path));
        } else if std::env::var("CI").as_deref() == Ok("true") {
            panic!("shellcheck is not installed on CI");
        }
    }
    let gitconfig = std::fs::read_to_string(out_dir.join("agent/etc/gitconfig")).unwrap();
    assert!(gitconfig.contains("insteadOf"), "{gitconfig}");
    // The key is never rendered: every file written is a text file the plan renders.
    let listed: Vec<&str> = out.lines().collect();
    // The gate's three scripts and known_hosts, the proxy's config, the agent's git config.
    assert_eq!(listed.len(), 6, "{out}");
    assert!(out_dir.join("proxy/etc/bottle-proxy/egress.json").is_file());
    for path in listed {
        let bytes = std::fs::read(path).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&bottle_test_keys::identity_key().mark));
    }
}

#[test]
fn dry_run_up_prints_a_script_sh_accepts_without_the_key() {
    let dir = project();
    let script = ok(bottle(dir.path()).args(["--backend", "dry-run", "up", "demo"]));
    let path = dir.path().join("up.sh");
    std::fs::write(&path, &script).unwrap();
    ok(Command::new("sh").arg("-n").arg(&path));
    assert!(
        !script.contains(&bottle_test_keys::identity_key().mark),
        "the key was printed"
    );
    assert!(script.contains(&dir.path().join(".ssh/bottle_app").display().to_string()));
    let stable = script.replace(&dir.path().display().to_string(), "[HOME]");
    insta::assert_snapshot!("dry_run_up_demo", stable);
}

#[test]
fn doctor_names_what_is_missing_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let (c, out) = code(
        bottle(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["--backend", "docker", "doctor"]),
    );
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("MISSING  docker engine"), "{out}");
    assert!(out.contains("/nonexistent/docker.sock"), "{out}");
    assert!(out.contains("fix: systemctl start docker"), "{out}");
    assert!(out.contains("not healthy"), "{out}");

    // A backend that runs no engine has nothing to check.
    let out = ok(bottle(dir.path()).args(["--dry-run", "doctor"]));
    assert!(out.contains("nothing to check"), "{out}");
}

#[test]
fn init_agent_claude_code_writes_its_manifest_once() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("My_Project");
    std::fs::create_dir(&dir).unwrap();
    let out = ok(bottle(&dir).args(["init", "--agent", "claude-code"]));
    assert!(
        out.contains("bottle 'my-project' runs Claude Code"),
        "{out}"
    );
    let manifest = std::fs::read_to_string(dir.join("bottle.toml")).unwrap();
    // Named after the directory, so two projects' bottles keep apart.
    assert!(manifest.contains("\n[bottles.my-project]\n"), "{manifest}");
    assert!(!manifest.contains("@NAME@"), "{manifest}");
    assert!(manifest.contains("image = \"bottle-claude:latest\""));
    assert!(manifest.contains("[[bottles.my-project.cred_proxy.routes]]"));
    assert!(manifest.contains("secret_env = \"ANTHROPIC_API_KEY\""));
    assert!(manifest.contains("agent_env = \"ANTHROPIC_BASE_URL\""));
    assert!(manifest.contains("[bottles.my-project.egress]\nallow = []"));
    assert!(manifest.contains("# [[bottles.my-project.git]]"));
    for quiet in [
        "DISABLE_TELEMETRY = \"1\"",
        "DISABLE_ERROR_REPORTING = \"1\"",
        "DISABLE_AUTOUPDATER = \"1\"",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = \"1\"",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL = \"1\"",
    ] {
        assert!(manifest.contains(quiet), "{quiet}");
    }
    // The real key never goes to the agent: only a placeholder the sidecar replaces.
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("ANTHROPIC_API_KEY")),
        "{manifest}"
    );
    assert!(manifest.contains("ANTHROPIC_AUTH_TOKEN = \"bottle-cred-route\""));

    // Not over an existing file, unless forced.
    std::fs::write(dir.join("bottle.toml"), "mine\n").unwrap();
    let (c, out) = code(bottle(&dir).args(["init", "--agent", "claude-code"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("already exists") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("bottle.toml")).unwrap(),
        "mine\n"
    );
    ok(bottle(&dir).args(["init", "--agent", "claude-code", "--force"]));
    assert_eq!(
        std::fs::read_to_string(dir.join("bottle.toml")).unwrap(),
        manifest
    );

    // It plans as written: with the key in the environment the dry-run reads it from
    // there when its script runs (never printing it); without it, a clear error.
    let script = ok(bottle(&dir)
        .env("ANTHROPIC_API_KEY", "sk-ant-cli-test-1234")
        .args(["--dry-run", "up", "my-project"]));
    assert!(!script.contains("sk-ant-cli-test-1234"));
    assert!(script.contains("\"${ANTHROPIC_API_KEY:?"), "{script}");
    assert!(
        script.contains("ANTHROPIC_BASE_URL=http://bottle-cli-my-project-cred:8080/anthropic"),
        "{script}"
    );
    let (c, out) =
        code(
            bottle(&dir)
                .env_remove("ANTHROPIC_API_KEY")
                .args(["--dry-run", "up", "my-project"]),
        );
    assert_ne!(c, 0, "{out}");
    assert!(
        out.contains("cred_proxy.routes[0].secret_env")
            && out.contains("export ANTHROPIC_API_KEY="),
        "{out}"
    );
}

#[test]
fn init_refuses_an_unknown_agent_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (c, out) = code(bottle(dir.path()).args(["init", "--agent", "codex"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("invalid value 'codex' for '--agent <AGENT>'")
            && out.contains("[possible values: claude-code]"),
        "{out}"
    );
    assert!(!dir.path().join("bottle.toml").exists());
}

/// A project whose one bottle, `runner`, has no sidecar but the egress proxy.
fn run_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bottle.toml"),
        "[bottles.runner]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n",
    )
    .unwrap();
    dir
}

/// Where each of the dry-run's scripts starts in `out`, in order: `ps`, `up`, `exec`, `down`.
fn scripts(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.strip_prefix("# bottle "))
        .filter_map(|l| l.split(':').next())
        .collect()
}

#[test]
fn run_ups_runs_and_takes_down_what_it_brought_up() {
    let dir = run_project();
    let out = ok(bottle(dir.path()).args(["--dry-run", "run", "--", "sh", "-c", "exit 3"]));
    // Is it up? (the dry-run cannot know: no), up, the command, down.
    assert_eq!(scripts(&out), ["ps", "up", "exec", "down"], "{out}");
    assert!(
        out.contains("docker exec bottle-cli-runner-agent sh -c 'exit 3'"),
        "{out}"
    );

    // --keep leaves it up, and says how to take it down.
    let got = run(bottle(dir.path()).args(["--dry-run", "run", "--keep", "runner", "--", "true"]));
    assert!(got.status.success(), "{}", text(&got));
    let out = String::from_utf8_lossy(&got.stdout);
    assert_eq!(scripts(&out), ["ps", "up", "exec"], "{out}");
    assert!(
        String::from_utf8_lossy(&got.stderr).contains("`bottle down runner` removes it"),
        "{}",
        text(&got)
    );
}

#[test]
fn run_without_a_command_on_a_backend_that_reads_no_images_still_takes_down() {
    let dir = run_project();
    let got = run(bottle(dir.path()).args(["--dry-run", "run"]));
    assert_eq!(got.status.code(), Some(1), "{}", text(&got));
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        err.contains("cannot read the command of image bottle-agent:latest")
            && err.contains("after `--`"),
        "{err}"
    );
    // What run brought up, it takes down, also when the command could not start.
    let out = String::from_utf8_lossy(&got.stdout);
    assert_eq!(scripts(&out), ["ps", "up", "down"], "{out}");
}

#[test]
fn run_needs_a_manifest_and_a_known_bottle() {
    let dir = tempfile::tempdir().unwrap();
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "run", "--", "true"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("bottle init"), "{out}");
    let dir = run_project();
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "run", "nope", "--", "true"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("no bottle named 'nope'"), "{out}");
}

/// stdout and stderr apart, and the exit code.
fn outputs(cmd: &mut Command) -> (i32, String, String) {
    let out = run(cmd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_is_stable_and_documents_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // The width clap wraps at, whatever the caller's COLUMNS (max_term_width caps it too).
    let help = ok(bottle(dir.path()).env("COLUMNS", "100").arg("--help"));
    assert!(help.contains("Exit codes:"), "{help}");
    insta::assert_snapshot!("help", help);
    let exec = ok(bottle(dir.path())
        .env("COLUMNS", "100")
        .args(["exec", "--help"]));
    insta::assert_snapshot!("help_exec", exec);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ok(bottle(dir.path()).args(["completions", shell]));
        for word in ["exec", "render", "completions", "manifest", "dry-run"] {
            assert!(out.contains(word), "{shell}: {word} missing:\n{out}");
        }
    }
    let (c, out) = code(bottle(dir.path()).args(["completions", "tcsh"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{out}"
    );
    // Also under --dry-run: printing completions changes nothing.
    ok(bottle(dir.path()).args(["--dry-run", "completions", "bash"]));
}

#[test]
fn the_manifest_comes_from_f_then_bottle_manifest_then_the_nearest_parent() {
    let dir = project();
    let other = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("bottle.toml");
    // Elsewhere, with the project's home (where its key is).
    let elsewhere = |home: &Path| {
        let mut cmd = bottle(other.path());
        cmd.env("HOME", home);
        cmd
    };

    // -f, before the command.
    let out = ok(elsewhere(dir.path())
        .arg("-f")
        .arg(&manifest)
        .args(["--dry-run", "up"]));
    assert!(out.contains("docker network create"), "{out}");
    // --manifest anywhere; -f and --manifest together are refused.
    ok(elsewhere(dir.path())
        .args(["--dry-run", "up", "--manifest"])
        .arg(&manifest));
    let (c, out) = code(
        elsewhere(dir.path())
            .arg("-f")
            .arg(&manifest)
            .arg("--manifest")
            .arg(&manifest)
            .args(["--dry-run", "up"]),
    );
    assert_eq!(c, 2, "{out}");

    // BOTTLE_MANIFEST, and -f before it.
    ok(elsewhere(dir.path())
        .env("BOTTLE_MANIFEST", &manifest)
        .args(["--dry-run", "up"]));
    let (c, out) = code(
        elsewhere(dir.path())
            .env("BOTTLE_MANIFEST", other.path().join("missing.toml"))
            .args(["--dry-run", "up"]),
    );
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("cannot read manifest") && out.contains("missing.toml"),
        "{out}"
    );
    ok(elsewhere(dir.path())
        .env("BOTTLE_MANIFEST", other.path().join("missing.toml"))
        .arg("-f")
        .arg(&manifest)
        .args(["--dry-run", "up"]));

    // Found from a subdirectory; its relative paths stay relative to its own directory.
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    bottle_test_keys::write_identity_key(&dir.path().join("keys/id"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("identity_file = \"~/.ssh/bottle_app\""),
        "{text}"
    );
    std::fs::write(
        &manifest,
        text.replace(
            "identity_file = \"~/.ssh/bottle_app\"",
            "identity_file = \"keys/id\"",
        ),
    )
    .unwrap();
    let deep = dir.path().join("src/app");
    std::fs::create_dir_all(&deep).unwrap();
    let out = ok(bottle(&deep).args(["--dry-run", "up"]));
    assert!(out.contains("../../keys/id"), "{out}");
    // A problem in it is placed at its path from here.
    std::fs::write(&manifest, "[bottles.demo]\nimage = 3\n").unwrap();
    let (c, out) = code(bottle(&deep).args(["--dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("../../bottle.toml:2:"), "{out}");

    // None anywhere: a clear error for commands that need one.
    let (c, out) = code(elsewhere(dir.path()).args(["--dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("no bottle.toml in") && out.contains("or any directory above it"),
        "{out}"
    );
    // `init` writes here, not over a parent's.
    ok(bottle(&deep).args(["--dry-run", "init"]));
    ok(bottle(&deep).arg("init"));
    assert!(deep.join("bottle.toml").is_file());
}

#[test]
fn logs_keeps_f_for_follow() {
    let dir = project();
    // Parsed as --follow (not as -f PATH): the dry-run refusal is what answers.
    let (c, out, err) = outputs(bottle(dir.path()).args(["--dry-run", "logs", "-f"]));
    assert_eq!(c, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("logs has nothing to show in a dry run"),
        "{err}"
    );
}

#[test]
fn format_json_is_accepted_wherever_json_is() {
    let dir = tempfile::tempdir().unwrap();
    let a = ok(bottle(dir.path()).args(["plugins", "--json"]));
    let b = ok(bottle(dir.path()).args(["plugins", "--format", "json"]));
    assert_eq!(a, b);
    serde_json::from_str::<serde_json::Value>(&a).unwrap();
    let table = ok(bottle(dir.path()).args(["plugins", "--format", "table"]));
    assert_ne!(table, a);
    for args in [
        ["ps", "--json", "--format", "table"],
        ["logs", "--json", "--format", "json"],
    ] {
        let (c, out) = code(bottle(dir.path()).args(args));
        assert_eq!(c, 2, "{out}");
        assert!(out.contains("cannot be used with"), "{out}");
    }
    let (c, out) = code(bottle(dir.path()).args(["ps", "--format", "yaml"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("[possible values: table, json]"), "{out}");
}

#[test]
fn dry_run_changes_nothing_and_prints_one_thing() {
    let dir = project();
    let before = std::fs::read_to_string(dir.path().join("bottle.toml")).unwrap();

    // init: the manifest on stdout, nothing written; the same refusal as for real.
    let empty = tempfile::tempdir().unwrap();
    let (c, out, err) = outputs(bottle(empty.path()).args(["--dry-run", "init"]));
    assert_eq!(c, 0, "{err}");
    assert_eq!(out, include_str!("../../src/bottle.example.toml"));
    assert!(
        err.contains("would write bottle.toml") && err.contains("nothing written"),
        "{err}"
    );
    assert!(!empty.path().join("bottle.toml").exists());
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "init"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("already exists"), "{out}");
    let (c, _, err) = outputs(bottle(dir.path()).args([
        "--dry-run",
        "init",
        "--force",
        "--agent",
        "claude-code",
    ]));
    assert_eq!(c, 0, "{err}");
    assert!(err.contains("would overwrite bottle.toml"), "{err}");
    // A dry-run backend named elsewhere is a dry run too.
    let (c, _, err) = outputs(
        bottle(dir.path())
            .env("BOTTLE_BACKEND", "dry-run-podman")
            .args(["init", "--force"]),
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bottle.toml")).unwrap(),
        before
    );

    // render: the paths it would write, no directory made.
    let out_dir = dir.path().join("rendered");
    let (c, out, err) = outputs(
        bottle(dir.path())
            .args(["--dry-run", "render", "--out"])
            .arg(&out_dir),
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(
        out.contains("rendered/gate/etc/bottle-gate/entrypoint"),
        "{out}"
    );
    assert!(err.contains("would write the 6 files above"), "{err}");
    assert!(!out_dir.exists());

    // ps: the listing script, or with JSON asked for, a refusal and an empty stdout.
    let out = ok(bottle(dir.path()).args(["--dry-run", "ps"]));
    assert!(out.contains("docker ps -a"), "{out}");
    for format in [["--json", ""], ["--format", "json"]] {
        let args: Vec<&str> = ["--dry-run", "ps"]
            .into_iter()
            .chain(format.into_iter().filter(|a| !a.is_empty()))
            .collect();
        let (c, out, err) = outputs(bottle(dir.path()).args(&args));
        assert_eq!(c, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains("ps --format json has no bottles to list in a dry run")
                && err.contains("(from --dry-run)")
                && err.contains("hint: drop --format json"),
            "{err}"
        );
    }

    // logs and image build are refused; nothing on stdout.
    for args in [
        &["--dry-run", "logs"][..],
        &["--dry-run", "image", "build", "gate"],
        &["--backend", "dry-run-podman", "image", "build"],
    ] {
        let (c, out, err) = outputs(bottle(dir.path()).args(args));
        assert_eq!(c, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.contains("changes nothing") && err.contains("hint: drop --dry-run"),
            "{err}"
        );
    }
    // The demo needs an engine.
    let (c, err) = code(bottle(dir.path()).args(["--dry-run", "demo"]));
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("not on 'dry-run'"), "{err}");
}

#[test]
fn exec_takes_the_command_after_the_separator_and_its_options() {
    let dir = project();
    let out = ok(bottle(dir.path()).args(["--dry-run", "exec", "--", "ls", "-l"]));
    assert!(
        out.contains("docker exec bottle-cli-demo-agent ls -l"),
        "{out}"
    );
    // A word before `--` is the bottle, never the command.
    let out = ok(bottle(dir.path()).args(["--dry-run", "exec", "ls"]));
    assert!(out.contains("docker exec bottle-cli-ls-agent sh"), "{out}");
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "exec", "demo", "ls"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("unexpected argument 'ls'"), "{out}");

    let out = ok(bottle(dir.path()).args([
        "--dry-run",
        "exec",
        "demo",
        "-u",
        "1000:1000",
        "-w",
        "/work/my app",
        "-e",
        "GIT_TRACE=1",
        "--env",
        "EMPTY=",
        "--",
        "git",
        "status",
    ]));
    assert!(
        out.contains("docker exec -u 1000:1000 -w '/work/my app' -e 'GIT_TRACE=1' -e 'EMPTY=' bottle-cli-demo-agent git status"),
        "{out}"
    );
    // run takes them too.
    let out = ok(bottle(dir.path()).args(["--dry-run", "run", "-u", "root", "--", "id"]));
    assert!(
        out.contains("docker exec -u root bottle-cli-demo-agent id"),
        "{out}"
    );

    for (args, says) in [
        (&["-e", "NOVALUE"][..], "expected KEY=VALUE"),
        (&["-e", "1X=y"], "is not a variable name"),
        (&["-e", "=y"], "is not a variable name"),
        (&["-w", "work"], "is not an absolute path"),
        (&["-u", ""], "expected a user name or uid"),
    ] {
        let (c, out) = code(
            bottle(dir.path())
                .args(["--dry-run", "exec"])
                .args(args)
                .args(["--", "true"]),
        );
        assert_eq!(c, 2, "{args:?}: {out}");
        assert!(out.contains(says), "{args:?}: {out}");
    }
}

#[test]
fn doctor_refuses_an_unknown_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (c, out) = code(bottle(dir.path()).args(["--backend", "nope", "doctor"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("no backend named 'nope' (from --backend)")
            && out.contains("known backends: docker, podman, dry-run, dry-run-podman"),
        "{out}"
    );
    let (c, out) = code(
        bottle(dir.path())
            .env("BOTTLE_BACKEND", "nope")
            .arg("doctor"),
    );
    assert_eq!(c, 2, "{out}");
}

/// `doctor` checks the manifest's identity files as `up` reads them, whatever the backend:
/// a usable key is ok; a public key or a passphrase-protected one makes the host unhealthy
/// (exit 1) with what to do.
#[test]
fn doctor_checks_the_manifests_identity_files() {
    let dir = project();
    let out = ok(bottle(dir.path()).args(["--backend", "dry-run", "doctor"]));
    assert!(out.contains("ok       key demo/app"), "{out}");
    let key = dir.path().join(".ssh/bottle_app");
    std::fs::remove_file(&key).unwrap();
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    std::fs::rename(dir.path().join(".ssh/bottle_app.pub"), &key).unwrap();
    let (c, out) = code(bottle(dir.path()).args(["--backend", "dry-run", "doctor"]));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("MISSING  key demo/app") && out.contains("is a public key"),
        "{out}"
    );
    std::fs::remove_file(&key).unwrap();
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
        .arg(&key));
    let (c, out) = code(bottle(dir.path()).args(["--backend", "dry-run", "doctor"]));
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("protected by a passphrase"), "{out}");
}

#[test]
fn usage_errors_exit_2_and_runtime_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // clap's own: an unknown flag, a missing subcommand.
    let (c, out) = code(bottle(dir.path()).arg("--nope"));
    assert_eq!(c, 2, "{out}");
    let (c, out) = code(&mut bottle(dir.path()));
    assert_eq!(c, 2, "{out}");
    // A runtime failure: the engine is not there.
    let (c, out) = code(
        bottle(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["--backend", "docker", "ps"]),
    );
    assert_eq!(c, 1, "{out}");
    // `exec` exits with the command's code: the dry run's is 0.
    ok(bottle(dir.path()).args(["--dry-run", "exec", "x", "--", "false"]));
}

/// `bottle validate` checks what `up` would (the identity file read, the route's key
/// looked up) and summarises each bottle; it never prints a key.
#[test]
fn validate_checks_as_up_would_and_summarises() {
    let dir = project();
    let out = ok(bottle(dir.path()).arg("validate"));
    assert!(out.contains("bottle demo\n"), "{out}");
    assert!(
        out.contains("git app: ssh://git@git.example.com:2222/team/app.git"),
        "{out}"
    );
    assert!(out.contains("host key pinned"), "{out}");
    assert!(
        out.contains(
            "containers: bottle-cli-demo-gate, bottle-cli-demo-proxy, bottle-cli-demo-agent"
        ),
        "{out}"
    );
    assert!(out.contains("valid (1 bottle)"), "{out}");
    assert!(
        !out.contains(&bottle_test_keys::identity_key().mark),
        "{out}"
    );

    // A missing identity file: exit 2, with its place.
    std::fs::remove_file(dir.path().join(".ssh/bottle_app")).unwrap();
    let (c, out) = code(bottle(dir.path()).arg("validate"));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("bottle demo: NOT ready") && out.contains("identity_file"),
        "{out}"
    );

    // A route: its key named, never shown; missing, an error naming the variable.
    let claude = tempfile::tempdir().unwrap();
    ok(bottle(claude.path()).args(["init", "--agent", "claude-code"]));
    let out = ok(bottle(claude.path())
        .env("ANTHROPIC_API_KEY", "sk-ant-validate-5150")
        .arg("validate"));
    assert!(
        out.contains(
            "route anthropic: https://api.anthropic.com with x-api-key from $ANTHROPIC_API_KEY"
        ),
        "{out}"
    );
    assert!(!out.contains("sk-ant-validate-5150"), "{out}");
    let (c, out) = code(
        bottle(claude.path())
            .env_remove("ANTHROPIC_API_KEY")
            .arg("validate"),
    );
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("ANTHROPIC_API_KEY is not set"), "{out}");
}

/// A directory `name` (in a fresh temp dir) holding a one-bottle manifest `demo`, with
/// `settings` (TOML lines) above it.
fn project_dir(name: &str, settings: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("bottle.toml"),
        format!("{settings}\n[bottles.demo]\nimage = \"bottle-agent:latest\"\n"),
    )
    .unwrap();
    (root, dir)
}

/// The agent `bottle --dry-run exec demo -- true` prints, in `dir` with `cmd`'s settings.
fn agent_of(cmd: &mut Command) -> String {
    let out = ok(cmd.args(["--dry-run", "exec", "demo", "--", "true"]));
    let line = out
        .lines()
        .find(|l| l.starts_with("docker exec "))
        .unwrap_or_else(|| panic!("no exec line:\n{out}"));
    line.trim_start_matches("docker exec ")
        .trim_end_matches(" true")
        .to_owned()
}

#[test]
fn the_project_is_the_flag_the_env_the_manifest_or_the_directory() {
    // The directory's name, normalised as Docker Compose does.
    let (_root, dir) = project_dir("My-Web App.v2", "");
    assert_eq!(
        agent_of(&mut bottle_clean(&dir)),
        "bottle-my-webappv2-demo-agent"
    );
    let plan = ok(bottle_clean(&dir).args(["--dry-run", "up"]));
    assert!(
        plan.contains("--label 'bottle.project=my-webappv2'"),
        "{plan}"
    );

    // [settings] project over the directory, BOTTLE_PROJECT over that, -p over all.
    let (_root, dir) = project_dir("ignored", "[settings]\nproject = \"fromfile\"\n");
    assert_eq!(
        agent_of(&mut bottle_clean(&dir)),
        "bottle-fromfile-demo-agent"
    );
    assert_eq!(
        agent_of(bottle_clean(&dir).env("BOTTLE_PROJECT", "fromenv")),
        "bottle-fromenv-demo-agent"
    );
    assert_eq!(
        agent_of(
            bottle_clean(&dir)
                .env("BOTTLE_PROJECT", "fromenv")
                .args(["-p", "fromflag"])
        ),
        "bottle-fromflag-demo-agent"
    );
    assert_eq!(
        agent_of(bottle_clean(&dir).args(["--project-name", "long_form"])),
        // A '_' is no DNS label's: such a name is shortened with its hash.
        bottle_core::plan::resource_name("long_form", "demo", "agent")
    );
}

#[test]
fn an_invalid_project_name_is_a_usage_error_naming_the_rule() {
    let (_root, dir) = project_dir("fine", "");
    let mut by_flag = bottle_clean(&dir);
    by_flag.args(["-p", "Bad.Name", "--dry-run", "up"]);
    let mut by_env = bottle_clean(&dir);
    by_env.env("BOTTLE_PROJECT", "-x").args(["--dry-run", "up"]);
    for (mut cmd, from) in [
        (by_flag, "from --project-name"),
        (by_env, "from BOTTLE_PROJECT"),
    ] {
        let (c, out) = code(&mut cmd);
        assert_eq!(c, 2, "{out}");
        assert!(
            out.contains("is not a valid project name")
                && out.contains("[a-z0-9_-]")
                && out.contains(from),
            "{out}"
        );
    }

    let (_root, dir) = project_dir("fine", "[settings]\nproject = \"UPPER\"\n");
    let (c, out) = code(bottle_clean(&dir).args(["--dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("settings.project") && out.contains("'UPPER' is not a valid project name"),
        "{out}"
    );

    // A directory whose name leaves nothing valid: the error says to name one.
    let (_root, dir) = project_dir(".äö", "");
    let (c, out) = code(bottle_clean(&dir).args(["--dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("-p NAME"), "{out}");
}

#[test]
fn cleanup_all_asks_first_and_refuses_without_a_terminal() {
    let dir = project();
    // No terminal (the test's stdin is not one) and no --yes: refused before any engine is
    // asked (there is none here).
    let (c, out) = code(
        bottle(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["cleanup", "--all"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("no terminal") && out.contains("--yes"),
        "{out}"
    );
    // With --yes it goes to the engine (which is not there: a runtime failure, exit 1).
    let (c, out) = code(
        bottle(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["cleanup", "--all", "--yes"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(c, 1, "{out}");
    // The dry run changes nothing, so it asks nothing: it prints the script for every project.
    let out = ok(bottle(dir.path())
        .args(["--dry-run", "cleanup", "--all"])
        .stdin(std::process::Stdio::null()));
    assert!(
        out.contains("of every project") && out.contains("--filter 'label=bottle.managed'"),
        "{out}"
    );
    assert!(!out.contains("bottle.project="), "{out}");
    // Without --all: this project's stopped bottles only, keeping complete stopped ones
    // (and saying so); by name, a stopped bottle goes whole.
    let out = ok(bottle(dir.path()).args(["--dry-run", "cleanup"]));
    assert!(
        out.contains("--filter 'label=bottle.project=cli'") && out.contains("status=running"),
        "{out}"
    );
    assert!(
        out.contains("status=created") && out.contains("kept stopped"),
        "{out}"
    );
    let out = ok(bottle(dir.path()).args(["--dry-run", "cleanup", "demo"]));
    assert!(
        out.contains("status=running") && !out.contains("kept stopped"),
        "{out}"
    );
    // A bottle name and --all do not go together.
    let (c, out) = code(bottle(dir.path()).args(["cleanup", "--all", "demo"]));
    assert_eq!(c, 2, "{out}");
}

/// `stop`, `start`, `status` and `logs --container`: their help, their dry-run scripts (the
/// plan's order for `start`), and their refusals.
#[test]
fn stop_start_status_and_container_logs() {
    let dir = project();
    for command in ["stop", "start", "status", "logs"] {
        let help = ok(bottle(dir.path())
            .env("COLUMNS", "100")
            .args([command, "--help"]));
        insta::assert_snapshot!(format!("help_{command}"), help);
    }

    // stop: the running containers found by label, stopped, kept.
    let out = ok(bottle(dir.path()).args(["--dry-run", "stop"]));
    assert!(
        out.contains(
            "containers=$(docker ps -q --filter 'label=bottle.managed' --filter 'label=bottle.project=cli' --filter 'label=bottle.slug=demo')"
        ) && out.contains("xargs -r docker stop"),
        "{out}"
    );
    assert!(!out.contains(" rm "), "stop removes nothing:\n{out}");
    // start: the plan's containers, one by one, the agent last.
    let out = ok(bottle(dir.path()).args(["--backend", "dry-run-podman", "start"]));
    let starts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("podman start "))
        .collect();
    assert_eq!(
        starts,
        [
            "podman start bottle-cli-demo-gate >/dev/null",
            "podman start bottle-cli-demo-proxy >/dev/null",
            "podman start bottle-cli-demo-agent >/dev/null",
        ],
        "{out}"
    );

    // start plans, so it needs the manifest; stop does not.
    let empty = tempfile::tempdir().unwrap();
    let (c, out) = code(bottle(empty.path()).args(["--dry-run", "start", "demo"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("no bottle.toml"), "{out}");
    ok(bottle(empty.path()).args(["--dry-run", "stop", "demo"]));

    // status reads the engine: refused in a dry run, nothing on stdout.
    let (c, out, err) = outputs(bottle(dir.path()).args(["--dry-run", "status"]));
    assert_eq!((c, out.as_str()), (2, ""), "{err}");
    insta::assert_snapshot!("dry_run_status_refused", err);

    // --container shows a container's output, not audit records: no audit filters with it.
    let (c, out) = code(bottle(dir.path()).args(["logs", "--container", "gate", "--denied"]));
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("cannot be used with"), "{out}");

    // An engine that is not there is a runtime failure.
    for args in [
        &["status"][..],
        &["stop"],
        &["start"],
        &["logs", "--container", "gate"],
    ] {
        let (c, out) = code(
            bottle(dir.path())
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
                .args(["--backend", "docker"])
                .args(args),
        );
        assert_eq!(c, 1, "{args:?}: {out}");
    }
}

/// `bottle config` prints the manifest as `up` reads it: defaults filled in, the env_file
/// merged under env, a `${VAR}` value as its reference and a route's key as its variable;
/// no value from the host appears, in TOML or JSON.
#[test]
fn config_prints_the_resolved_manifest_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "FROM_FILE=\"file-secret-2291\"\nA=overridden\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bottle.toml"),
        "[bottles.demo]\nimage = \"bottle-agent:latest\"\nenv_file = \".env\"\n\
         env = { TOKEN = \"Bearer ${CFG_TOKEN}\", A = \"p$$w\", D = \"${CFG_UNSET:-dflt}\" }\n\
         [bottles.demo.egress]\nallow = [\"api.example.com\"]\n\
         [[bottles.demo.cred_proxy.routes]]\nname = \"api\"\nupstream = \"https://api.example.com\"\n\
         header = \"x-api-key\"\nsecret_env = \"CFG_API_KEY\"\n",
    )
    .unwrap();
    let cmd = |format: &str| {
        let mut c = bottle(dir.path());
        c.env("CFG_TOKEN", "tok-secret-8812")
            .env("CFG_API_KEY", "sk-secret-3356")
            .args(["config", "--format", format]);
        c
    };
    let toml = ok(&mut cmd("table"));
    let json = ok(&mut cmd("json"));
    for out in [&toml, &json] {
        for secret in ["file-secret-2291", "tok-secret-8812", "sk-secret-3356"] {
            assert!(!out.contains(secret), "{secret} printed:\n{out}");
        }
    }
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        parsed["bottles"]["demo"]["env"]["TOKEN"],
        "Bearer ${CFG_TOKEN}"
    );
    insta::assert_snapshot!("config_toml", toml);
    insta::assert_snapshot!("config_json", json);
}
