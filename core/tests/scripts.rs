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

/// The entrypoint's `internal_addresses`, run by `sh` on routing tables of the shapes the
/// engines give a gate: git daemon listens on the address whose network has no default
/// route (the internal network, where the agent is), never on the egress network's.
#[test]
fn the_gate_listens_on_its_internal_address_only() {
    let fx = common::Fixture::new();
    let manifest = fx.parse(&common::example()).unwrap();
    let bottle = manifest.select(Some("demo")).unwrap();
    let set = scripts::render(&GateLayout::container(), &bottle.name, &bottle.git).unwrap();
    let start = set.entrypoint.find("internal_addresses() {").unwrap();
    let end = start + set.entrypoint[start..].find("\n}\n").unwrap() + 3;
    let function = &set.entrypoint[start..end];

    let dir = tempfile::tempdir().unwrap();
    let run = |routes: &str, addresses: &str| {
        let path = dir.path().join("route");
        std::fs::write(&path, routes).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{function}internal_addresses \"$1\" \"$2\""))
            .args(["sh", path.to_str().unwrap(), addresses])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let head =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
    // Internal 10.89.0.0/24 on eth0 (no gateway), egress 172.18.0.0/16 on eth1 with the
    // default route; the addresses in either order, IPv6 ignored.
    let two = format!(
        "{head}eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
         eth0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
         eth1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    );
    assert_eq!(run(&two, "172.18.0.3 10.89.0.7 fe80::1"), "10.89.0.7");
    assert_eq!(run(&two, "10.89.0.7 172.18.0.3"), "10.89.0.7");
    // An address of another network, or garbage, is never picked.
    assert_eq!(
        run(&two, "10.89.1.7 172.18.0.3 1.2.3 a.b.c.d 10.89.0.300"),
        ""
    );
    // One interface, carrying the default route (a Kubernetes Pod): none, so the
    // entrypoint listens on all of its addresses.
    let one = format!(
        "{head}eth0\t00000000\t0100580A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
         eth0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    );
    assert_eq!(run(&one, "10.88.0.5"), "");
}
