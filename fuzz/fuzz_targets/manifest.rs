//! The manifest as a user or a downloaded project writes it: TOML text through parsing,
//! validation and planning with every registered sidecar. Nothing may panic, and
//! planning is deterministic (the dry-run's promise).
//!
//! Planning reads the files a manifest names (identity keys, secret files, CA files).
//! So that no input reads the machine's files (or blocks on /dev/stdin), every such path
//! is replaced, before planning, by a file of a fixture directory with the same file
//! name (a key, a public key, an encrypted key, an empty file, a CA), or a missing one.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bottle_core::manifest::{self, Bottle, Env, SecretSource};
use bottle_core::planner;
use bottle_core::project::Project;
use bottle_core::sidecar::{HostEnv, SIDECARS};
use libfuzzer_sys::fuzz_target;

/// The fixture's one good identity key (a real one, made by ssh-keygen for the process:
/// the planner refuses anything else, and then would never plan past the gate).
const KEY_FILE: &str = "id_app";

const FIXTURE_FILES: &[(&str, &str)] = &[
    (
        "id_app.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl u@h\n",
    ),
    (
        "id_enc",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    ),
    ("empty", ""),
    ("key.txt", "sk-test-0123456789\n"),
    (
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ),
];

/// A directory of its own per process, holding [`FIXTURE_FILES`].
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bottle-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fixture directory");
        for (name, text) in FIXTURE_FILES {
            std::fs::write(dir.join(name), text).expect("fixture file");
        }
        bottle_test_keys::write_identity_key(&dir.join(KEY_FILE));
        dir
    })
}

/// The fixture file named like `path`, or a path in the fixture that does not exist.
fn confine(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == KEY_FILE || FIXTURE_FILES.iter().any(|(n, _)| *n == name) {
        fixture().join(name)
    } else {
        fixture().join("missing")
    }
}

fn confined(bottle: &Bottle) -> Bottle {
    let mut b = bottle.clone();
    for up in &mut b.git {
        up.identity_file.value = confine(&up.identity_file.value);
    }
    for route in &mut b.cred_proxy.routes {
        if let SecretSource::File(path) = &mut route.secret {
            *path = confine(path);
        }
        if let Some(ca) = &mut route.ca_file {
            *ca = confine(ca);
        }
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = Env {
        home: Some(fixture().to_path_buf()),
    };
    let Ok(m) = manifest::parse(&fixture().join("bottle.toml"), text, &env) else {
        return;
    };
    let _ = m.select(None);
    let host_env = HostEnv::Map(BTreeMap::from([
        ("API_KEY".to_owned(), "sk-test-0123456789".to_owned()),
        ("ANTHROPIC_API_KEY".to_owned(), "sk-ant-test".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]));
    // The manifest's own project when it names one (parsing checked it), else a fixed one
    // (the CLI's other sources, flag, environment and directory, are not the manifest's).
    let project = m
        .settings
        .project
        .as_ref()
        .map(|p| p.value.clone())
        .unwrap_or_else(|| Project::new("fuzz").expect("a valid project name"));
    for bottle in m.bottles.values() {
        let bottle = confined(bottle);
        let first = planner::plan_in(&bottle, &project, SIDECARS, &host_env);
        let second = planner::plan_in(&bottle, &project, SIDECARS, &host_env);
        match (&first, &second) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "planning is not deterministic"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("planning twice gave a plan once and an error once"),
        }
    }
});
