//! No input makes manifest parsing or planning panic.

mod common;

use std::path::Path;

use bottle_core::manifest::{self, Env};
use proptest::prelude::*;

/// TOML-ish text built from the manifest's own keys and hostile values, so that the
/// generator reaches validation often instead of stopping at TOML syntax errors.
fn manifest_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "image",
        "command",
        "env",
        "memory",
        "pids_limit",
        "cap_add",
        "gate_memory",
        "git",
        "name",
        "upstream",
        "identity_file",
        "known_host_key",
        "extra_hosts",
        "backend",
        "bogus",
    ]);
    let value = prop_oneof![
        any::<String>().prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"ssh://git@h:22/x.git\"".to_owned()),
        Just("\"git@h:x.git\"".to_owned()),
        Just(
            "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\""
                .to_owned()
        ),
        Just("{ h = \"1.2.3.4\" }".to_owned()),
        Just("[\"a\", \"b\"]".to_owned()),
    ];
    let header = prop::sample::select(vec![
        "[settings]",
        "[bottles.demo]",
        "[[bottles.demo.git]]",
        "[bottles.x.env]",
        "[[bottles.demo.git]]\nname = \"app\"",
        "[bottles]",
        "",
    ]);
    prop::collection::vec((header, prop::collection::vec((key, value), 0..6)), 0..5).prop_map(
        |sections| {
            let mut out = String::new();
            for (header, pairs) in sections {
                out.push_str(header);
                out.push('\n');
                for (k, v) in pairs {
                    out.push_str(&format!("{k} = {v}\n"));
                }
            }
            out
        },
    )
}

fn check(text: &str) {
    let env = Env {
        home: Some("/nonexistent-home".into()),
    };
    if let Ok(m) = manifest::parse(Path::new("/nonexistent/bottle.toml"), text, &env) {
        for bottle in m.bottles.values() {
            let _ = bottle_core::planner::plan(
                bottle,
                &bottle_core::project::Project::new("proj").unwrap(),
            );
        }
        let _ = m.select(None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn manifest_like_toml_never_panics(text in manifest_like()) {
        check(&text);
    }
}
