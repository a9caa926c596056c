//! Backend plugins: the ABI's failure cases with real libraries loaded by the real binary,
//! the kube plugin's output applied through the binary, and that output run for real with
//! `podman kube play`.
//!
//! # Where the libraries come from
//!
//! The plugins are `cdylib` crates of the workspace (`plugins/testing/*`, `plugins/kube`).
//! A cdylib cannot be a dependency, so `cargo test` does not build its library; the first
//! test that needs one runs `cargo build -p ...` for all of them, once per run, with the
//! cargo that runs the tests (`$CARGO`), the profile of this test binary and its target
//! directory (both read from this executable's path), and loads them from there
//! (`target/debug/lib*.so`). Cargo has released its build lock by the time tests run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cli::{bottle as bottle_in, project};
use crate::support::{have, ok, run, text};

/// The plugin crates the tests load, by package name.
const PACKAGES: [&str; 6] = [
    "bottle-plugin-test-good",
    "bottle-plugin-test-panicking",
    "bottle-plugin-test-wrong-abi",
    "bottle-plugin-test-missing-symbol",
    "bottle-plugin-test-impostor",
    "bottle-kube",
];

/// The directory holding the built plugin libraries (this test binary's profile directory),
/// after building them once.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/integration-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_owned();
        let target_dir = profile_dir.parent().expect("target").to_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["build", "--quiet"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        ok(&mut cmd);
        profile_dir
    })
}

/// The library of a plugin crate (`good`, `panicking`, ..., or `kube`).
fn lib(name: &str) -> PathBuf {
    let file = match name {
        "kube" => "libbottle_kube.so".to_owned(),
        other => format!("libbottle_plugin_test_{}.so", other.replace('-', "_")),
    };
    let path = lib_dir().join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// `bottle` in `dir`, with no plugin path or kube settings from the caller's environment
/// (HOME is `dir`, so the plugin directory is `dir/.local/share/bottle/plugins`).
fn bottle(dir: &Path) -> Command {
    let mut cmd = bottle_in(dir);
    cmd.env_remove("BOTTLE_PLUGIN_PATH")
        .env_remove("XDG_DATA_HOME")
        .env_remove("BOTTLE_KUBE_SECRETS")
        .env_remove("BOTTLE_KUBE_NAMESPACE")
        .env_remove("BOTTLE_KUBECTL")
        // Unset: the plugin prints and never reaches a cluster.
        .env_remove("BOTTLE_KUBE_APPLY")
        .env_remove("BOTTLE_APPLY")
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// Exit code (a signal is a test failure: a plugin must never crash bottle) and output.
fn code(cmd: &mut Command) -> (i32, String) {
    let out = run(cmd);
    let c = out
        .status
        .code()
        .unwrap_or_else(|| panic!("bottle died of a signal: {}\n{}", out.status, text(&out)));
    (c, text(&out))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn flag(path: &Path) -> String {
    format!("--plugin={}", path.display())
}

#[test]
fn a_good_plugin_is_listed_and_works_as_a_backend() {
    let dir = project();
    let good = lib("good");

    let out = ok(bottle(dir.path()).args([&flag(&good), "plugins", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &doc["plugins"][0];
    assert_eq!(p["backend"], "test-good", "{out}");
    assert_eq!(p["abi_version"], 2);
    assert_eq!(p["ok"], true);
    assert_eq!(p["from"], "--plugin");
    let table = ok(bottle(dir.path()).args([&flag(&good), "plugins"]));
    assert!(
        table.contains("test-good") && table.contains("--plugin") && table.contains("2 "),
        "{table}"
    );

    // The plan crosses as JSON, the identity key's bytes included.
    let out = ok(bottle(dir.path()).args([&flag(&good), "--backend", "test-good", "up", "demo"]));
    let key_bytes = bottle_test_keys::identity_key().bytes.len();
    assert!(
        out.contains(&format!("test-good: up demo containers=[bottle-cli-demo-gate,bottle-cli-demo-proxy,bottle-cli-demo-agent] networks=2 secret-bytes={key_bytes} keep-on-failure=false")),
        "{out}"
    );
    let out = ok(bottle(dir.path()).args([
        &flag(&good),
        "--backend",
        "test-good",
        "ps",
        "--json",
        "demo",
    ]));
    assert!(out.contains("\"bottle-demo-agent\""), "{out}");
    // The scope crosses: the plugin answers with the project it was asked about.
    assert!(out.contains("\"project\": \"cli\""), "{out}");
    // The exit code of exec crosses.
    let (c, out) = code(bottle(dir.path()).args([
        &flag(&good),
        "--backend",
        "test-good",
        "exec",
        "demo",
        "--",
        "echo",
        "hi",
    ]));
    assert_eq!(c, 3, "{out}");
    assert!(out.contains(r#"["echo", "hi"]"#), "{out}");
    // A bottle that is not running is told apart from a command that failed: exit 125 and
    // a message saying the command did not run; a name that may be the command, a hint.
    let (c, out) =
        code(bottle(dir.path()).args([&flag(&good), "--backend", "test-good", "exec", "stopped"]));
    assert_eq!(c, 125, "{out}");
    assert!(
        out.contains("bottle 'stopped' has no running agent container, so the command did not run")
            && out.contains("hint: start it with `bottle up stopped`")
            && out
                .contains("if 'stopped' is the command, put it after `--`: bottle exec -- stopped"),
        "{out}"
    );
    // The plugin wire carries no exec options: refused, not dropped.
    let (c, out) = code(bottle(dir.path()).args([
        &flag(&good),
        "--backend",
        "test-good",
        "exec",
        "demo",
        "-u",
        "root",
        "--",
        "id",
    ]));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("cannot run a command as another user") && !out.contains("test-good: exec"),
        "{out}"
    );
    // An error keeps its kind and hint across the boundary.
    let (c, out) =
        code(bottle(dir.path()).args([&flag(&good), "--backend", "test-good", "down", "fail"]));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("bottle 'fail' has no running agent container")
            && out.contains("hint: start it with `bottle up fail`"),
        "{out}"
    );
}

#[test]
fn plugins_are_found_in_the_plugin_dir_and_on_the_plugin_path() {
    let dir = project();
    // $HOME/.local/share/bottle/plugins (XDG_DATA_HOME unset).
    let data = dir.path().join(".local/share/bottle/plugins");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(lib("good"), data.join("libgood.so")).unwrap();
    std::fs::write(data.join("README"), "not a library").unwrap();
    let out = ok(bottle(dir.path()).args(["--backend", "test-good", "up", "demo"]));
    assert!(out.contains("test-good: up demo"), "{out}");

    // XDG_DATA_HOME moves the directory.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("bottle/plugins")).unwrap();
    std::fs::rename(
        data.join("libgood.so"),
        xdg.join("bottle/plugins/libgood.so"),
    )
    .unwrap();
    let out = ok(bottle(dir.path())
        .env("XDG_DATA_HOME", &xdg)
        .args(["plugins"]));
    assert!(
        out.contains("test-good") && out.contains("plugin dir"),
        "{out}"
    );

    // BOTTLE_PLUGIN_PATH: files and directories, ':'-separated.
    let path = format!(
        "{}:{}",
        lib("panicking").display(),
        xdg.join("bottle/plugins").display()
    );
    let out = ok(bottle(dir.path())
        .env("BOTTLE_PLUGIN_PATH", &path)
        .args(["plugins", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["backend"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["test-panic", "test-good"], "{out}");
    assert!(doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["from"] == "BOTTLE_PLUGIN_PATH"));
}

#[test]
fn a_wrong_abi_version_is_a_clear_error_naming_the_file() {
    let dir = project();
    let wrong = lib("wrong-abi");
    let (c, out) =
        code(bottle(dir.path()).args([&flag(&wrong), "--backend", "dry-run", "up", "demo"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains(&format!(
            "plugin {}: built for plugin ABI version 999, but this bottle speaks version 2",
            wrong.display()
        )),
        "{out}"
    );
    let (c, out) = code(bottle(dir.path()).args([&flag(&wrong), "plugins", "--json"]));
    assert_eq!(c, 1, "a failed plugin makes `bottle plugins` fail: {out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["plugins"][0]["abi_version"], 999);
    assert_eq!(doc["plugins"][0]["ok"], false);
}

#[test]
fn a_missing_table_symbol_is_a_clear_error() {
    let dir = project();
    let lib = lib("missing-symbol");
    let (c, out) = code(bottle(dir.path()).args([&flag(&lib), "plugins"]));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains(&format!(
            "plugin {}: exports ABI version 2 but no symbol BOTTLE_PLUGIN_TABLE_V1",
            lib.display()
        )),
        "{out}"
    );
}

/// The C library this test process has loaded: a real shared library that is no plugin.
fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
        .expect("libc in /proc/self/maps")
}

#[test]
fn libraries_that_fail_to_load_or_are_no_plugins_are_clear_errors() {
    let dir = project();
    let junk = dir.path().join("libjunk.so");
    std::fs::write(&junk, "this is not an ELF file\n").unwrap();
    let (c, out) = code(bottle(dir.path()).args([&flag(&junk), "--backend", "test-good", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains(&format!("plugin {}: cannot load it:", junk.display())),
        "{out}"
    );

    let libc = libc_path();
    let (c, out) = code(bottle(dir.path()).args([&flag(&libc), "plugins"]));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("not a bottle plugin: it exports no symbol BOTTLE_PLUGIN_ABI_VERSION"),
        "{out}"
    );

    let missing = dir.path().join("nowhere/libx.so");
    let (c, out) = code(bottle(dir.path()).args([&flag(&missing), "--backend", "dry-run", "up"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains(&format!("plugin {}: No such file", missing.display())),
        "{out}"
    );
}

#[test]
fn two_plugins_claiming_one_name_are_both_refused() {
    let dir = project();
    let plugins = dir.path().join("more-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let (a, b) = (plugins.join("liba.so"), plugins.join("libb.so"));
    std::fs::copy(lib("good"), &a).unwrap();
    std::fs::copy(lib("good"), &b).unwrap();
    let (c, out) = code(
        bottle(dir.path())
            .env("BOTTLE_PLUGIN_PATH", &plugins)
            .args(["--backend", "test-good", "up", "demo"]),
    );
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains(&format!(
            "plugin {} (found by BOTTLE_PLUGIN_PATH): claims the backend name 'test-good', which plugin {} also claims",
            a.display(),
            b.display()
        )),
        "{out}"
    );
    // The same file found twice is one plugin, not a conflict.
    let out = ok(bottle(dir.path()).env("BOTTLE_PLUGIN_PATH", &a).args([
        &flag(&a),
        "--backend",
        "test-good",
        "up",
        "demo",
    ]));
    assert!(out.contains("test-good: up demo"), "{out}");
}

#[test]
fn a_plugin_claiming_a_built_in_name_is_refused() {
    let dir = project();
    let impostor = lib("impostor");
    let (c, out) =
        code(bottle(dir.path()).args([&flag(&impostor), "--backend", "dry-run", "up", "demo"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains(&format!(
            "plugin {} (found by --plugin): claims the name 'dry-run' of a built-in backend",
            impostor.display()
        )),
        "{out}"
    );
    assert!(!out.contains("impostor: up"), "{out}");
    // Found by searching, it is a warning; the built-in backend still works.
    let out = run(bottle(dir.path())
        .env("BOTTLE_PLUGIN_PATH", &impostor)
        .args([&flag(&lib("good")), "--backend", "dry-run", "up", "demo"]));
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains("warning: plugin") && out.contains("docker network create"),
        "{out}"
    );
}

#[test]
fn a_panicking_plugin_is_an_error_not_a_crash() {
    let dir = project();
    let panicking = lib("panicking");
    let args = |op: &[&str]| {
        let mut v = vec![flag(&panicking), "--backend".into(), "test-panic".into()];
        v.extend(op.iter().map(|s| s.to_string()));
        v
    };
    let (c, out) = code(bottle(dir.path()).args(args(&["up", "demo"])));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains(&format!(
            "error: plugin backend 'test-panic' ({}) panicked during up: test-panic: boom in up of demo",
            panicking.display()
        )) && out.contains("bottle itself is unharmed"),
        "{out}"
    );
    let (c, out) = code(bottle(dir.path()).args(args(&["ps"])));
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains("panicked during ps: a panic with a non-string payload"),
        "{out}"
    );
    for op in [
        &["down", "demo"][..],
        &["cleanup"],
        &["exec", "demo", "--", "true"],
    ] {
        let (c, out) = code(bottle(dir.path()).args(args(op)));
        assert_eq!(c, 1, "{op:?}: {out}");
        assert!(out.contains("panicked during"), "{op:?}: {out}");
    }
}

#[test]
fn unknown_backend_errors_list_plugins_and_broken_ones() {
    let dir = project();
    let (c, out) = code(
        bottle(dir.path())
            .env("BOTTLE_PLUGIN_PATH", lib("wrong-abi"))
            .args([&flag(&lib("good")), "--backend", "nope", "up"]),
    );
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("known backends: docker, ") && out.contains(", test-good"),
        "{out}"
    );
    assert!(
        out.contains("a test plugin that echoes what it is asked (plugin "),
        "{out}"
    );
    assert!(
        out.contains("plugins that could not be used:") && out.contains("ABI version 999"),
        "{out}"
    );
}

#[test]
fn broken_plugins_on_the_path_do_not_stand_in_the_way_of_built_in_backends() {
    let dir = project();
    let out = ok(bottle(dir.path())
        .env("BOTTLE_PLUGIN_PATH", lib("wrong-abi"))
        .args(["--backend", "dry-run", "up", "demo"]));
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn kube_prints_the_bottle_without_its_key_unless_asked() {
    let dir = project();
    let kube = lib("kube");
    let out = ok(bottle(dir.path()).args([&flag(&kube), "--backend", "kube", "up", "demo"]));
    for kind in ["NetworkPolicy", "ConfigMap", "Service", "Pod"] {
        assert!(out.contains(&format!("kind: {kind}\n")), "{kind}: {out}");
    }
    assert!(!out.contains("kind: Secret"), "{out}");
    assert!(
        out.contains(
            "kubectl create secret generic bottle-cli-demo-gate-secret --from-file='app.key="
        ),
        "{out}"
    );
    let key_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&bottle_test_keys::identity_key().bytes)
    };
    assert!(!out.contains(&key_b64), "{out}");
    let out = ok(bottle(dir.path())
        .env("BOTTLE_KUBE_SECRETS", "print")
        .args([&flag(&kube), "--backend", "kube", "up", "demo"]));
    assert!(
        out.contains("kind: Secret") && out.contains(&key_b64),
        "{out}"
    );

    // The plugin ABI has no stop, start or container output: each a clear refusal.
    for args in [
        &["stop", "demo"][..],
        &["start", "demo"],
        &["logs", "demo", "--container", "gate"],
    ] {
        let (c, out) = code(
            bottle(dir.path())
                .args([&flag(&kube), "--backend", "kube"])
                .args(args),
        );
        assert_eq!(c, 1, "{args:?}: {out}");
        assert!(
            out.contains("error: the kube backend cannot ")
                && out.contains("hint: use --backend docker or podman"),
            "{args:?}: {out}"
        );
    }

    let out = ok(bottle(dir.path()).args([&flag(&kube), "--backend", "kube", "down", "demo"]));
    assert_eq!(
        out.trim(),
        "kubectl delete 'pods,services,configmaps,secrets,networkpolicies' -l 'bottle.managed,bottle.project=cli,bottle.slug=demo' --ignore-not-found '--wait=true'"
    );
}

/// A stand-in kubectl in `dir`: logs each call (`ARGS ...`) and what `apply` reads, says
/// a context is configured, and succeeds.
fn fake_kubectl(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("kubectl.log");
    let fake = dir.join("kubectl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nlog={}\necho \"ARGS $*\" >> \"$log\"\ncase \"$*\" in\n*' apply '*) cat >> \"$log\" ;;\n*current-context*) echo a-real-looking-context ;;\nesac\nexit 0\n",
            sh_quote(&log.display().to_string())
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (fake, log)
}

/// Without BOTTLE_KUBE_APPLY the plugin prints, even with a kubectl that has a context on
/// PATH: every command prints what it would run and kubectl is never called.
#[test]
fn kube_prints_by_default_and_never_calls_kubectl() {
    let dir = project();
    let kube = lib("kube");
    let (fake, log) = fake_kubectl(dir.path());
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kube_cmd = |args: &[&str]| {
        let mut cmd = bottle(dir.path());
        cmd.env("BOTTLE_KUBECTL", &fake)
            .env("PATH", &path)
            .args([&flag(&kube), "--backend", "kube"])
            .args(args);
        cmd
    };
    let out = run(&mut kube_cmd(&["up", "demo"]));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind: Pod\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kube: printed bottle 'demo', applied nothing; `bottle --apply` (or BOTTLE_KUBE_APPLY=1) applies it with kubectl"),
        "{stderr}"
    );
    for args in [
        &["down", "demo"][..],
        &["ps"],
        &["cleanup", "demo"],
        &["exec", "demo", "--", "true"],
    ] {
        let out = ok(&mut kube_cmd(args));
        assert!(
            out.contains(&format!("{} ", fake.display())),
            "{args:?}: {out}"
        );
    }
    assert!(
        !log.exists(),
        "kubectl was called without BOTTLE_KUBE_APPLY:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // An unknown value is refused, naming the variable.
    let (c, out) = code(kube_cmd(&["up", "demo"]).env("BOTTLE_KUBE_APPLY", "maybe"));
    assert_ne!(c, 0, "{out}");
    assert!(out.contains("BOTTLE_KUBE_APPLY=maybe"), "{out}");
    assert!(!log.exists());
    // --apply and --dry-run contradict each other.
    let (c, out) = code(bottle(dir.path()).args(["--dry-run", "--apply", "up", "demo"]));
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("--apply") && out.contains("cannot be used with"),
        "{out}"
    );
}

#[test]
fn kube_applies_with_kubectl_when_asked() {
    let dir = project();
    let kube = lib("kube");
    let (fake, log) = fake_kubectl(dir.path());
    // `--apply` and BOTTLE_KUBE_APPLY=1 alike.
    let mut cmd = bottle(dir.path());
    cmd.env("BOTTLE_KUBECTL", &fake)
        .env("BOTTLE_KUBE_NAMESPACE", "agents");
    let out = run(cmd.args([&flag(&kube), "--backend", "kube", "--apply", "up", "demo"]));
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(
        out.contains("kube: bottle 'demo' is up (12 objects)"),
        "{out}"
    );
    ok(bottle(dir.path())
        .env("BOTTLE_KUBE_APPLY", "1")
        .env("BOTTLE_KUBECTL", &fake)
        .args([&flag(&kube), "--backend", "kube", "down", "demo"]));
    let log = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = log.lines().filter(|l| l.starts_with("ARGS ")).collect();
    assert_eq!(
        calls,
        [
            "ARGS --namespace=agents get pods,services,configmaps,secrets,networkpolicies -l bottle.managed,bottle.project=cli,bottle.slug=demo -o name",
            "ARGS --namespace=agents apply --server-side --field-manager=bottle -f -",
            "ARGS --namespace=agents wait --for=condition=Ready pod -l bottle.managed,bottle.project=cli,bottle.slug=demo --timeout=180s",
            "ARGS delete pods,services,configmaps,secrets,networkpolicies -l bottle.managed,bottle.project=cli,bottle.slug=demo --ignore-not-found --wait=true",
        ],
        "{log}"
    );
    // What kubectl applies holds the Secret (it goes to kubectl's stdin, never to stdout).
    assert!(
        log.contains("kind: Secret") && log.contains("namespace: agents"),
        "{log}"
    );
    assert!(!out.contains("kind: Secret"), "{out}");
}

// ---------------------------------------------------------------------------------------
// The kube output under `podman kube play`.

const IMAGES: [&str; 3] = [
    "bottle-gate:latest",
    "bottle-agent:latest",
    "bottle-upstream-fixture:latest",
];

/// Skips loudly, except on CI, where a missing prerequisite fails the test.
fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("kube play test cannot run on CI: {why}");
    }
    eprintln!("\n!!!! SKIP kube play test: {why} !!!!\n");
}

fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(args);
    cmd
}

/// Makes sure podman has bottle's images: imported from docker (`docker save | podman
/// load`) when podman lacks one. Returns why it cannot, if it cannot.
fn podman_images() -> Result<(), String> {
    for image in IMAGES {
        if run(&mut podman(&["image", "exists", image]))
            .status
            .success()
        {
            continue;
        }
        if !have("docker")
            || !run(Command::new("docker").args(["image", "inspect", image]))
                .status
                .success()
        {
            return Err(format!(
                "podman has no {image}, and docker has none to import (run `bottle image build`)"
            ));
        }
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let load = Command::new("podman")
            .args(["load", "--quiet"])
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .map_err(|e| e.to_string())?;
        let saved = save.wait().map_err(|e| e.to_string())?;
        if !saved.success() || !load.status.success() {
            return Err(format!(
                "cannot import {image} from docker: {}",
                String::from_utf8_lossy(&load.stderr)
            ));
        }
    }
    Ok(())
}

/// What the test made under podman; removed on drop unless BOTTLE_TEST_KEEP=1.
struct Played {
    files: Vec<PathBuf>,
    secrets: Vec<String>,
    volumes: Vec<String>,
    network: String,
}

impl Drop for Played {
    fn drop(&mut self) {
        if std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1") {
            eprintln!(
                "BOTTLE_TEST_KEEP=1: kept; remove with: podman kube play --down FILE (for {:?}); podman secret rm {}; podman volume rm {}; podman network rm {}",
                self.files,
                self.secrets.join(" "),
                self.volumes.join(" "),
                self.network
            );
            return;
        }
        for f in self.files.iter().rev() {
            let _ = run(&mut podman(&[
                "kube",
                "play",
                "--down",
                &f.display().to_string(),
            ]));
        }
        for s in &self.secrets {
            let _ = run(&mut podman(&["secret", "rm", s]));
        }
        for v in &self.volumes {
            let _ = run(&mut podman(&["volume", "rm", "--force", v]));
        }
        let _ = run(&mut podman(&["network", "rm", "--force", &self.network]));
    }
}

/// Polls a container's log for `line`, for at most `secs`.
fn wait_for_log(container: &str, line: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = run(&mut podman(&["logs", container]));
        if text(&out).contains(line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{container} did not log {line:?} within {secs}s:\n{}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn exec(container: &str, user: Option<&str>, script: &str) -> Output {
    let mut cmd = podman(&["exec"]);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    cmd.args([container, "sh", "-c", script]);
    run(&mut cmd)
}

/// podman 4.3 writes a Secret volume's `data` values undecoded (the base64 text itself) and
/// leaves out `stringData`, so the test creates the podman secret itself, from a Secret
/// whose `data` holds the decoded text: what 4.3 then writes is the real bytes. The other
/// documents go to `kube play` unchanged.
fn split_secrets(yaml: &str, dir: &Path) -> (Vec<(String, PathBuf)>, String) {
    use base64::Engine as _;
    use serde::Deserialize as _;
    let mut secrets = Vec::new();
    let mut rest = String::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc).expect("kube output is YAML");
        if value["kind"] == "Secret" {
            let name = value["metadata"]["name"].as_str().unwrap().to_owned();
            let data: serde_json::Map<String, serde_json::Value> = value["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap();
                    (k.clone(), String::from_utf8(bytes).unwrap().into())
                })
                .collect();
            let file = dir.join(format!("{name}.json"));
            let secret = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name}, "data": data,
            });
            std::fs::write(&file, secret.to_string()).unwrap();
            secrets.push((name, file));
        } else {
            rest.push_str("---\n");
            rest.push_str(&serde_norway::to_string(&value).unwrap());
        }
    }
    (secrets, rest)
}

/// The whole path, for real: `bottle --plugin .../libbottle_kube.so --backend kube up`
/// prints the objects, `podman kube play` runs them (plus the upstream fixture as a third
/// Pod), and from the agent Pod a clone and a clean push go through the gate Pod while a
/// push holding a secret is refused. `kube play` ignores Services and NetworkPolicies: the
/// Pods find each other by Pod name (the gate's Pod has the Service's name) through the
/// DNS of a podman network of the test's own, and nothing here tests the isolation the
/// policies give on a real cluster.
#[test]
fn kube_output_runs_under_podman_kube_play() {
    if !have("podman") || !run(&mut podman(&["info"])).status.success() {
        return skip("podman is not installed or not usable");
    }
    if !have("ssh-keygen") {
        return skip("ssh-keygen is missing");
    }
    if let Err(why) = podman_images() {
        return skip(&why);
    }
    let kube = lib("kube");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let slug = format!("kp{}", std::process::id());
    let upstream = format!("bottle-{slug}-upstream");
    for key in ["host_key", "client_key"] {
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
            .arg(d.join(key)));
    }
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    let host_key = host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        d.join("bottle.toml"),
        format!(
            "[bottles.{slug}]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n\n\
             [[bottles.{slug}.git]]\nname = \"app\"\nupstream = \"ssh://git@{upstream}/srv/git/app.git\"\n\
             identity_file = \"{}\"\nknown_host_key = \"{host_key}\"\n",
            d.join("client_key").display()
        ),
    )
    .unwrap();

    // The plugin, loaded at run time, prints the objects (Secret included, on request).
    let yaml = ok(bottle(d).env("BOTTLE_KUBE_SECRETS", "print").args([
        &flag(&kube),
        "--backend",
        "kube",
        "up",
        &slug,
    ]));
    let (secrets, rest) = split_secrets(&yaml, d);
    std::fs::write(d.join("bottle.yaml"), &rest).unwrap();

    let upstream_pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": upstream},
        "spec": {"restartPolicy": "OnFailure", "containers": [{
            "name": "sshd", "image": "bottle-upstream-fixture:latest", "imagePullPolicy": "IfNotPresent",
            "env": [
                {"name": "FIXTURE_REPOS", "value": "app"},
                {"name": "FIXTURE_HOST_KEY", "value": std::fs::read_to_string(d.join("host_key")).unwrap()},
                {"name": "FIXTURE_AUTHORIZED_KEYS", "value": std::fs::read_to_string(d.join("client_key.pub")).unwrap()},
            ],
        }]},
    });
    std::fs::write(
        d.join("upstream.yaml"),
        serde_norway::to_string(&upstream_pod).unwrap(),
    )
    .unwrap();

    let network = format!("bottle-{slug}-play");
    // `bottle` runs in project `cli` (BOTTLE_PROJECT).
    let gate_pod = format!("bottle-cli-{slug}-gate");
    let agent_pod = format!("bottle-cli-{slug}-agent");
    let played = Played {
        files: vec![d.join("upstream.yaml"), d.join("bottle.yaml")],
        secrets: secrets.iter().map(|(n, _)| n.clone()).collect(),
        volumes: vec![
            format!("{gate_pod}-files"),
            format!("{gate_pod}-secret"),
            format!("{gate_pod}-root"),
            format!("{agent_pod}-files"),
        ],
        network: network.clone(),
    };
    // A plain bridge network with DNS: Pods are separate network namespaces and need
    // pod-to-pod traffic (an --internal podman network is cut off by Docker's FORWARD DROP
    // policy on this kind of machine; kube play would not enforce policies anyway).
    ok(&mut podman(&["network", "create", &network]));
    for (name, file) in &secrets {
        ok(&mut podman(&[
            "secret",
            "create",
            name,
            &file.display().to_string(),
        ]));
    }
    let net = format!("--network={network}");
    ok(&mut podman(&[
        "kube",
        "play",
        &net,
        &d.join("upstream.yaml").display().to_string(),
    ]));
    ok(&mut podman(&[
        "kube",
        "play",
        &net,
        &d.join("bottle.yaml").display().to_string(),
    ]));

    let gate = format!("{gate_pod}-gate");
    let agent = format!("{agent_pod}-agent");
    let sshd = format!("{upstream}-sshd");
    wait_for_log(&sshd, "Server listening on", 60);
    wait_for_log(&gate, "Ready to rumble", 60);

    // The init container installed the gate's files with the plan's owners and modes, and
    // the gate sees them read-only.
    let out = exec(
        &gate,
        None,
        "cd /etc/bottle-gate && stat -c '%a %u:%g %n' . entrypoint access-hook hooks hooks/pre-receive creds creds/app.key creds/app.known_hosts && (touch x 2>/dev/null && echo writable || echo read-only) && id -u",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "755 0:0 .\n755 0:0 entrypoint\n755 0:0 access-hook\n755 0:0 hooks\n755 0:0 hooks/pre-receive\n700 10001:10001 creds\n400 10001:10001 creds/app.key\n644 0:0 creds/app.known_hosts\nread-only\n10001\n",
        "{}",
        text(&out)
    );

    // A clone from the agent Pod comes through the gate Pod.
    let url = format!("ssh://git@{upstream}/srv/git/app.git");
    let out = exec(
        &agent,
        None,
        &format!("cd /tmp && git clone -q {url} app && git -C app rev-parse HEAD && git -C app remote get-url --push origin && git config --show-origin --get-regexp '^url' "),
    );
    let said = text(&out);
    assert!(out.status.success(), "clone failed:\n{said}");
    assert!(
        said.starts_with("0aa15d045f81b841f2ac22bd10c06ef8eff4927c\n"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "file:/etc/bottle-files/gitconfig\turl.git://{gate_pod}/app.git.insteadof {url}"
        )),
        "{said}"
    );

    // A clean push arrives upstream.
    let out = exec(
        &agent,
        None,
        "cd /tmp/app && echo hello > hello.txt && git add hello.txt && git commit -qm clean && git push -q origin HEAD:main && git rev-parse HEAD",
    );
    assert!(out.status.success(), "clean push failed:\n{}", text(&out));
    let pushed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let upstream_head = || {
        let out = exec(&sshd, Some("git"), "git -C /srv/git/app.git rev-parse main");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(upstream_head(), pushed);

    // A push holding a secret is refused, and the upstream has not moved.
    let out = exec(
        &agent,
        None,
        "cd /tmp/app && printf 'aws_access_key_id = AKIAIOSFODNN7EXAMPLF\\n' > creds.txt && git add creds.txt && git commit -qm secret && git push origin HEAD:main",
    );
    let said = text(&out);
    assert!(
        !out.status.success(),
        "the secret push went through:\n{said}"
    );
    assert!(
        said.contains("leaks found") && said.contains("pre-receive hook declined"),
        "{said}"
    );
    assert_eq!(upstream_head(), pushed);
    drop(played);
}
