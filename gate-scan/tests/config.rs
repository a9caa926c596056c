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

/// The gate image checks the config it makes against the same pin (gate-image/Dockerfile),
/// and labels the image with it.
#[test]
fn the_gate_image_pins_the_same_config() {
    let dockerfile = include_str!("../../gate-image/Dockerfile");
    let arg = format!("ARG GATE_CONFIG_SHA256={}", config::GATE_CONFIG_SHA256);
    assert!(
        dockerfile.contains(&arg),
        "gate-image/Dockerfile lacks {arg}"
    );
    let label = format!(
        "bottle.gitleaks.config.sha256={}",
        config::GATE_CONFIG_SHA256
    );
    assert!(
        dockerfile.contains(&label),
        "gate-image/Dockerfile lacks {label}"
    );
}

/// The manifest's defaults (what the gate passes when a git entry sets nothing) are the
/// scanner's own.
#[test]
fn the_manifest_defaults_are_the_scanners() {
    use bottle_core::manifest::GitScan;
    use bottle_gate_scan::scan::defaults;
    assert_eq!(GitScan::MAX_PUSH_MB, defaults::MAX_PUSH_MB);
    assert_eq!(GitScan::MAX_SCAN_MB, defaults::MAX_SCAN_MB);
    assert_eq!(GitScan::SCAN_TIMEOUT_S, defaults::SCAN_TIMEOUT_S);
    assert_eq!(
        GitScan::MAX_ARCHIVE_DEPTH,
        defaults::MAX_ARCHIVE_DEPTH as u64
    );
}
