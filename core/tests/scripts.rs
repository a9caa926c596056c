//! The rendered script set passes `sh -n` and `shellcheck`.

mod common;

use std::process::Command;

use bottle_core::gate::{scripts, GateLayout};

fn check(name: &str, script: &str) {
    check_with(name, script, &[]);
}

fn check_with(name: &str, script: &str, exclude: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, script).unwrap();
    let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "sh -n {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match Command::new("shellcheck")
        .args(["-s", "sh", "-S", "style"])
        .args(exclude.iter().flat_map(|code| ["-e", code]))
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck {name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("shellcheck is not installed on CI: {e}")
        }
        Err(_) => {
            eprintln!("\n!!!! SKIPPED shellcheck of {name}: shellcheck is not installed !!!!\n")
        }
    }
}

#[test]
fn rendered_scripts_pass_sh_n_and_shellcheck() {
    let fx = common::Fixture::new();
    let manifest = fx.parse(&common::example()).unwrap();
    let bottle = manifest.select(Some("demo")).unwrap();
    let set = scripts::render(&GateLayout::container(), &bottle.name, &bottle.git).unwrap();
    check("entrypoint", &set.entrypoint);
    check("pre-receive", &set.pre_receive);
    check("access-hook", &set.access_hook);
}

#[test]
fn hostile_urls_are_single_words_in_the_entrypoint() {
    let fx = common::Fixture::new();
    let url = "ssh://git@h/x/$(id)`id`'\"${IFS}.git";
    let text = common::example().replace(
        "ssh://git@git.example.com:2222/team/app.git",
        &url.replace('\\', "\\\\").replace('"', "\\\""),
    );
    let manifest = fx.parse(&text).unwrap();
    let bottle = manifest.select(Some("demo")).unwrap();
    let set = scripts::render(&GateLayout::container(), &bottle.name, &bottle.git).unwrap();
    check("entrypoint", &set.entrypoint);
    let line = set
        .entrypoint
        .lines()
        .find(|l| l.starts_with("init_repo 'app'") || l.starts_with("init_repo app"))
        .unwrap();
    let words = shlex::split(line).unwrap();
    assert_eq!(words[1], "app");
    assert_eq!(words[2], url);
}

/// The scripts as kept in the tree, placeholders and all, pass shellcheck too: what a
/// reader edits is shell, not a Rust string. Only SC2154 (a variable used but not set) is
/// left out: the hooks' facts are set by read-facts.sh, pasted in at render, and the
/// rendered scripts are checked in full above.
#[test]
fn script_sources_pass_shellcheck() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sidecar/gate");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            check_with(&name, &std::fs::read_to_string(&path).unwrap(), &["SC2154"]);
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        5,
        "expected the gate's five script files in {}",
        dir.display()
    );
}
