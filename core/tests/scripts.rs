//! The rendered script set passes `sh -n` and `shellcheck`.

mod common;

use std::process::Command;

use bottle_core::gate::{scripts, GateLayout};

fn check(name: &str, script: &str) {
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
    let set = scripts::render(&GateLayout::container(), &bottle.git).unwrap();
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
    let set = scripts::render(&GateLayout::container(), &bottle.git).unwrap();
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
