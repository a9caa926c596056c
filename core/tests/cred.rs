//! Credential routes: the manifest's `[bottles.NAME.cred_proxy]`, and the cred sidecar's
//! part of the plan (the key in it alone, never in the agent).

mod common;

use std::collections::BTreeMap;

use bottle_core::plan::{Egress, FileSource};
use bottle_core::planner;
use bottle_core::sidecar::{HostEnv, SIDECARS};

const KEY: &str = "sk-test-0123456789abcdef";

fn route_manifest(extra: &str) -> String {
    format!(
        "[bottles.c]\nimage = \"bottle-claude:latest\"\n\n\
         [[bottles.c.cred_proxy.routes]]\nname = \"anthropic\"\n\
         upstream = \"https://api.anthropic.com\"\nheader = \"x-api-key\"\n\
         secret_env = \"TEST_ANTHROPIC_KEY\"\nagent_env = \"ANTHROPIC_BASE_URL\"\n{extra}"
    )
}

fn env_with_key() -> HostEnv {
    HostEnv::Map(BTreeMap::from([(
        "TEST_ANTHROPIC_KEY".to_owned(),
        KEY.to_owned(),
    )]))
}

#[test]
fn a_route_puts_its_key_in_the_cred_sidecar_only() {
    let fx = common::Fixture::new();
    let m = fx.parse(&route_manifest("")).unwrap();
    let bottle = m.select(Some("c")).unwrap();
    let plan = planner::plan_in(
        bottle,
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &env_with_key(),
    )
    .unwrap();

    let cred = plan
        .container("cred")
        .expect("a bottle with routes has a cred sidecar");
    assert_eq!(cred.name, "bottle-proj-c-cred");
    assert_eq!(cred.user.as_deref(), Some("10003:10003"));
    assert_eq!(cred.egress, Egress::Network);
    assert_eq!(cred.labels["bottle.audit"], "cred");
    assert_eq!(cred.ports[0].port, 8080);
    assert_eq!(cred.hardening.cap_drop, ["ALL"]);
    let key = cred
        .files
        .iter()
        .find(|f| f.path == "/run/bottle-cred/anthropic.key")
        .unwrap();
    assert_eq!((key.mode, key.uid, key.gid), (0o400, 10003, 10003));
    assert!(matches!(&key.source, FileSource::HostEnv { var, .. } if var == "TEST_ANTHROPIC_KEY"));
    assert_eq!(key.bytes(), KEY.as_bytes());
    let config: bottle_proxy_config::CredConfig =
        serde_json::from_slice(cred.files[0].bytes()).unwrap();
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].upstream, "https://api.anthropic.com");
    assert_eq!(config.routes[0].header, "x-api-key");
    assert_eq!(config.routes[0].format, "{secret}");
    assert_eq!(
        config.routes[0].secret_file,
        "/run/bottle-cred/anthropic.key"
    );
    assert!(!config.routes[0].insecure_http);

    let agent = plan.agent().unwrap();
    assert_eq!(
        agent.env["ANTHROPIC_BASE_URL"],
        "http://bottle-proj-c-cred:8080/anthropic"
    );
    assert!(agent
        .hosts_of
        .iter()
        .any(|h| h.name == "bottle-proj-c-cred"));
    assert!(agent
        .reaches
        .iter()
        .any(|r| r.container == "bottle-proj-c-cred"));

    // The key is in the cred sidecar's key file and nowhere else: not in any other
    // container's files, env or labels, not in the plan's Debug, not in its JSON apart
    // from the one file's (base64) bytes.
    for c in &plan.containers {
        for f in &c.files {
            if f.path != key.path {
                assert!(
                    !String::from_utf8_lossy(f.bytes()).contains(KEY),
                    "{}:{}",
                    c.name,
                    f.path
                );
            }
        }
        assert!(!c.env.values().any(|v| v.contains(KEY)), "{}", c.name);
        assert!(!c.labels.values().any(|v| v.contains(KEY)), "{}", c.name);
    }
    assert!(!format!("{plan:?}").contains(KEY));
    assert!(!serde_json::to_string(&plan).unwrap().contains(KEY));

    // The egress proxy sends the agent to the route for the upstream's host.
    let proxy = plan.container("proxy").unwrap();
    let egress: bottle_proxy_config::EgressConfig =
        serde_json::from_slice(proxy.files[0].bytes()).unwrap();
    assert_eq!(egress.routes.len(), 1);
    assert_eq!(egress.routes[0].host, "api.anthropic.com");
    assert_eq!(
        egress.routes[0].url,
        "http://bottle-proj-c-cred:8080/anthropic/"
    );
}

#[test]
fn without_routes_there_is_no_cred_sidecar() {
    let fx = common::Fixture::new();
    let m = fx.parse("[bottles.p]\nimage = \"alpine:3\"\n").unwrap();
    let plan = planner::plan_in(
        m.select(Some("p")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &HostEnv::Map(BTreeMap::new()),
    )
    .unwrap();
    assert!(plan.container("cred").is_none());
}

#[test]
fn a_file_secret_and_its_ca_file_are_copied_and_checked() {
    let fx = common::Fixture::new();
    std::fs::write(fx.path().join("key"), format!("{KEY}\n")).unwrap();
    std::fs::write(
        fx.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = "[bottles.c]\nimage = \"a\"\n[[bottles.c.cred_proxy.routes]]\nname = \"api\"\n\
        upstream = \"https://api.example.test/v2\"\nheader = \"Authorization\"\n\
        format = \"Bearer {secret}\"\nsecret_file = \"~/key\"\nca_file = \"ca.pem\"\n\
        [bottles.c.cred_proxy]\nallow_private = [\"api.example.test\"]\n";
    let m = fx.parse(text).unwrap();
    let plan = planner::plan_in(
        m.select(Some("c")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &HostEnv::Map(BTreeMap::new()),
    )
    .unwrap();
    let cred = plan.container("cred").unwrap();
    let config: bottle_proxy_config::CredConfig =
        serde_json::from_slice(cred.files[0].bytes()).unwrap();
    assert_eq!(config.routes[0].header, "authorization");
    assert_eq!(config.routes[0].format, "Bearer {secret}");
    assert_eq!(
        config.routes[0].ca_file.as_deref(),
        Some("/etc/bottle-proxy/ca/api.pem")
    );
    assert_eq!(config.allow_private, ["api.example.test"]);
    assert!(cred
        .files
        .iter()
        .any(|f| f.path == "/etc/bottle-proxy/ca/api.pem" && f.mode == 0o644));
    let key = cred
        .files
        .iter()
        .find(|f| f.path.ends_with("api.key"))
        .unwrap();
    assert!(matches!(key.source, FileSource::HostFile { .. }));

    // A key of two lines cannot be one header value: refused at plan time.
    std::fs::write(fx.path().join("key"), format!("{KEY}\nmore\n")).unwrap();
    let err = planner::plan_in(
        m.select(Some("c")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &HostEnv::Map(BTreeMap::new()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bottles.c.cred_proxy.routes[0].secret_file"),
        "{err}"
    );
    assert!(err.contains("line break"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn a_missing_key_stops_the_plan_with_what_to_do() {
    let fx = common::Fixture::new();
    let m = fx.parse(&route_manifest("")).unwrap();
    for env in [
        HostEnv::Map(BTreeMap::new()),
        HostEnv::Map(BTreeMap::from([(
            "TEST_ANTHROPIC_KEY".to_owned(),
            String::new(),
        )])),
    ] {
        let err = planner::plan_in(
            m.select(Some("c")).unwrap(),
            &bottle_core::project::Project::new("proj").unwrap(),
            SIDECARS,
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bottles.c.cred_proxy.routes[0].secret_env"),
            "{err}"
        );
        assert!(err.contains("TEST_ANTHROPIC_KEY is not set"), "{err}");
        assert!(err.contains("export TEST_ANTHROPIC_KEY="), "{err}");
        assert!(err.contains(":4:"), "the route's line: {err}");
    }
}

#[test]
fn every_route_problem_is_reported_with_its_field() {
    let fx = common::Fixture::new();
    let text = "[bottles.c]\nimage = \"a\"\nenv = { ANTHROPIC_BASE_URL = \"x\" }\n\
        [[bottles.c.cred_proxy.routes]]\nname = \"..\"\nupstream = \"http://api.example.com\"\n\
        header = \"content-length\"\nformat = \"Bearer\"\nsecret_env = \"A\"\nsecret_file = \"k\"\n\
        agent_env = \"ANTHROPIC_BASE_URL\"\n\
        [[bottles.c.cred_proxy.routes]]\nname = \"b\"\nupstream = \"https://u:p@api.example.com/?q=1\"\n\
        header = \"x api\"\n\
        [[bottles.c.cred_proxy.routes]]\nname = \"b\"\nupstream = \"https://ok.example.com\"\n\
        header = \"x-api-key\"\nsecret_env = \"1BAD\"\n";
    let err = fx.parse(text).unwrap_err().to_string();
    for want in [
        "routes[0].name",
        "routes[0].upstream",
        "must be https",
        "routes[0].header",
        "frames the request",
        "routes[0].format",
        "routes[0].secret_file",
        "both secret_env and secret_file",
        "routes[0].agent_env",
        "also set in the bottle's env",
        "routes[1].upstream",
        "user info",
        "routes[1].header",
        "has no secret_env or secret_file",
        "routes[2].name",
        "declared twice",
        "routes[2].secret_env",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn unknown_route_keys_are_refused() {
    let fx = common::Fixture::new();
    let err = fx
        .parse(&route_manifest("secret = \"inline\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `secret`"), "{err}");
}
