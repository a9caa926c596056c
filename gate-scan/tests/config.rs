//! The gate's gitleaks config, made from the real gitleaks binary.

mod common;

use bottle_gate_scan::config;

#[test]
fn the_config_is_cut_from_the_binary_and_pinned() {
    let default = config::extract_default_config(&common::gitleaks()).unwrap();
    assert_eq!(
        config::sha256_hex(default.as_bytes()),
        config::DEFAULT_CONFIG_SHA256
    );
    let made = config::transform(&default).unwrap();
    assert_eq!(
        config::sha256_hex(made.as_bytes()),
        config::GATE_CONFIG_SHA256
    );
    let out = std::fs::read(common::gate_config()).unwrap();
    assert_eq!(out, made.as_bytes());
}

#[test]
fn the_transform_removes_the_path_allowlist_and_fixes_the_regex() {
    let default = config::extract_default_config(&common::gitleaks()).unwrap();
    let made: toml::Table = config::transform(&default).unwrap().parse().unwrap();
    let before: toml::Table = default.parse().unwrap();
    let allowlist = made["allowlist"].as_table().unwrap();
    assert!(!allowlist.contains_key("paths"));
    assert!(before["allowlist"]
        .as_table()
        .unwrap()
        .contains_key("paths"));
    let regexes: Vec<&str> = allowlist["regexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(regexes.contains(&"(?i)^(?:true|false|null)$"));
    assert!(!regexes.contains(&"(?i)^true|false|null$"));
    assert_eq!(made["rules"], before["rules"]);
    assert!(made["rules"].as_array().unwrap().len() > 200);
}

#[test]
fn the_transform_refuses_a_config_it_was_not_made_for() {
    assert!(config::transform("title = \"x\"\n").is_err());
    let no_regex = "[allowlist]\npaths = [\n    '''a''',\n]\nregexes = []\n";
    assert!(config::transform(no_regex).is_err());
}

/// What the fix changes, shown with gitleaks itself: the default config drops a key holding
/// "FALSE"; the gate's finds it, and still takes a bare "false" for no secret.
#[test]
fn the_fixed_regex_keeps_findings_holding_false() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, format!("id = {}\n", common::secret_with_false())).unwrap();
    let default = dir.path().join("default.toml");
    std::fs::write(
        &default,
        config::extract_default_config(&common::gitleaks()).unwrap(),
    )
    .unwrap();
    let run = |cfg: &std::path::Path| {
        std::process::Command::new(common::gitleaks())
            .env_clear()
            .args(["dir", "--no-banner", "--config"])
            .arg(cfg)
            .arg(&file)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&default), Some(0), "the default config should drop it");
    assert_eq!(
        run(&common::gate_config()),
        Some(1),
        "the gate's config should find it"
    );
    std::fs::write(&file, "password = \"false\"\n").unwrap();
    assert_eq!(run(&common::gate_config()), Some(0));
}
