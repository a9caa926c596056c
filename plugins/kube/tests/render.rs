//! The kube plugin's output, pinned by snapshots, and the properties that matter checked
//! one by one. Regenerate with `INSTA_UPDATE=always cargo test -p bottle-kube`.

use std::path::Path;

use bottle_core::manifest::{self, Env};
use bottle_core::plan::Plan;
use bottle_core::planner;
use bottle_kube::render::{render, Object, Options, Secrets};

/// The demo manifest of `bottle init`, with two upstreams, planned in `dir` with the gate
/// as its only sidecar: these tests pin how the gate and the agent are rendered. Every
/// other sidecar (the egress proxy among them) is rendered from the same plan fields: the
/// toy sidecar's test below shows it, and the `podman kube play` test runs the whole plan.
fn plan(dir: &Path, toml: &str, bottle: &str) -> Plan {
    bottle_test_keys::write_identity_key(&dir.join("key"));
    let path = dir.join("bottle.toml");
    let text = toml.replace("@DIR@", &dir.display().to_string());
    let m = manifest::parse(&path, &text, &Env { home: None }).unwrap();
    static GATE: bottle_core::gate::GitGate = bottle_core::gate::GitGate::STANDARD;
    let sidecars: Vec<&dyn bottle_core::sidecar::Sidecar> =
        if m.select(Some(bottle)).unwrap().git.is_empty() {
            Vec::new()
        } else {
            vec![&GATE]
        };
    planner::plan_with(
        m.select(Some(bottle)).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        &sidecars,
    )
    .unwrap()
}

const DEMO: &str = r#"
[bottles.demo]
image = "bottle-agent:latest"
command = ["sleep", "infinity"]
env = { TERM = "xterm" }
cap_add = ["NET_BIND_SERVICE"]

[[bottles.demo.git]]
name = "app"
upstream = "ssh://git@git.example.com:2222/team/app.git"
identity_file = "@DIR@/key"
known_host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
extra_hosts = { "git.example.com" = "192.0.2.10" }

[[bottles.demo.git]]
name = "docs"
upstream = "git@git.example.com:team/docs.git"
identity_file = "@DIR@/key"
known_host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
"#;

/// The YAML, with the temporary directory replaced and the gate's scripts (core's, pinned
/// by core's own tests) reduced to a placeholder, so these snapshots pin what this plugin
/// decides and change only when it does.
fn yaml(plan: &Plan, secrets: Secrets, dir: &Path) -> String {
    let opts = Options {
        namespace: None,
        secrets,
    };
    let mut m = render(plan, &opts).unwrap();
    for o in &mut m.objects {
        if let Object::ConfigMap(cm) = o {
            for (key, text) in cm.data.iter_mut().flatten() {
                if text.starts_with("#!/bin/sh") {
                    *text = format!("[the gate's {key} script]");
                }
            }
        }
    }
    m.to_yaml()
        .unwrap()
        .replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn demo_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), DEMO, "demo");
    let out = yaml(&p, Secrets::Omit, dir.path());
    assert!(
        !out.contains(&bottle_test_keys::identity_key().mark),
        "the key leaked:\n{out}"
    );
    insta::assert_snapshot!("demo_omit", out);
}

#[test]
fn demo_with_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), DEMO, "demo");
    insta::assert_snapshot!(
        "demo_include",
        bottle_test_keys::redact(&yaml(&p, Secrets::Include, dir.path()))
    );
}

#[test]
fn a_bottle_without_git_is_an_agent_that_reaches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(
        dir.path(),
        "[bottles.solo]\nimage = \"alpine:3\"\nmemory = \"1g\"\n",
        "solo",
    );
    let out = yaml(&p, Secrets::Omit, dir.path());
    insta::assert_snapshot!("solo", out);
}

#[test]
fn every_object_is_labelled_and_namespaced() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), DEMO, "demo");
    let opts = Options {
        namespace: Some("agents".to_owned()),
        secrets: Secrets::Include,
    };
    let m = render(&p, &opts).unwrap();
    let ids: Vec<String> = m.objects.iter().map(Object::id).collect();
    assert_eq!(
        ids,
        [
            "NetworkPolicy/bottle-proj-demo-gate",
            "NetworkPolicy/bottle-proj-demo-agent",
            "ConfigMap/bottle-proj-demo-gate-files",
            "Secret/bottle-proj-demo-gate-secret",
            "ConfigMap/bottle-proj-demo-agent-files",
            "Service/bottle-proj-demo-gate",
            "Pod/bottle-proj-demo-gate",
            "Pod/bottle-proj-demo-agent",
        ]
    );
    for o in &m.objects {
        let meta = match o {
            Object::NetworkPolicy(x) => &x.metadata,
            Object::ConfigMap(x) => &x.metadata,
            Object::Secret(x) => &x.metadata,
            Object::Service(x) => &x.metadata,
            Object::Pod(x) => &x.metadata,
        };
        let labels = meta.labels.as_ref().unwrap();
        for key in [
            "bottle.project",
            "bottle.slug",
            "bottle.role",
            "bottle.managed",
        ] {
            assert!(labels.contains_key(key), "{} lacks {key}", o.id());
        }
        assert_eq!(labels["bottle.slug"], "demo");
        assert_eq!(labels["bottle.project"], "proj");
        assert_eq!(meta.namespace.as_deref(), Some("agents"), "{}", o.id());
    }
}

#[test]
fn the_secret_reaches_only_the_gate_and_its_key_is_installed_for_the_gate_user() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), DEMO, "demo");
    let m = render(
        &p,
        &Options {
            namespace: None,
            secrets: Secrets::Include,
        },
    )
    .unwrap();
    let pods: Vec<_> = m
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect();
    let gate = pods[0].spec.as_ref().unwrap();
    let agent = pods[1].spec.as_ref().unwrap();
    let uses_secret = |s: &k8s_openapi::api::core::v1::PodSpec| {
        s.volumes.iter().flatten().any(|v| v.secret.is_some())
    };
    assert!(uses_secret(gate) && !uses_secret(agent));
    // The Secret is mounted only into the init container, never into the gate itself,
    // whose files are read-only to it; its root filesystem is read-only, and it writes only
    // to the plan's writable places, emptyDirs of their own.
    let main = &gate.containers[0];
    let (read_only, writable): (Vec<_>, Vec<_>) = main
        .volume_mounts
        .iter()
        .flatten()
        .partition(|m| m.read_only == Some(true));
    assert!(read_only
        .iter()
        .all(|m| m.name != "bottle-proj-demo-gate-secret"));
    assert_eq!(
        read_only
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect::<Vec<_>>(),
        ["/etc/bottle-gate"]
    );
    assert_eq!(
        writable
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect::<Vec<_>>(),
        ["/git", "/var/lib/bottle-gate", "/tmp"]
    );
    assert!(writable.iter().all(|m| gate
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == m.name && v.empty_dir.is_some())));
    assert_eq!(
        main.security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    let script = gate.init_containers.as_ref().unwrap()[0]
        .command
        .as_ref()
        .unwrap()[2]
        .clone();
    assert!(script.contains(
        "cp /bottle-in/secret/app.key /etc/bottle-gate/creds/app.key && chmod 0400 /etc/bottle-gate/creds/app.key && chown 10001:10001 /etc/bottle-gate/creds/app.key"
    ), "{script}");
    assert!(script
        .contains("chmod 0700 /etc/bottle-gate/creds && chown 10001:10001 /etc/bottle-gate/creds"));
    assert!(
        script.contains("chmod 0755 /etc/bottle-gate/hooks && chown 0:0 /etc/bottle-gate/hooks")
    );
    // The install script is valid POSIX sh.
    let check = std::process::Command::new("sh")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(check.success());
    // The agent's git config reaches git through GIT_CONFIG_SYSTEM (the plan's
    // relocate_env: /etc belongs to the image, so it is mounted elsewhere).
    let env = agent.containers[0].env.as_ref().unwrap();
    assert!(env.iter().any(|e| e.name == "GIT_CONFIG_SYSTEM"
        && e.value.as_deref() == Some("/etc/bottle-files/gitconfig")));
    for s in [gate, agent] {
        assert_eq!(s.automount_service_account_token, Some(false));
        let sc = s.containers[0].security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
    }
}

/// A sidecar added in one module of core (the test-only toy) gets its container port, a
/// Service and NetworkPolicies from the plan's data alone: the plugin names no sidecar.
#[test]
fn a_sidecar_added_in_one_module_gets_its_port_service_and_policies() {
    use bottle_core::sidecar::toy;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.t]\nimage = \"bottle-agent:latest\"\nenv = { TOY = \"1\" }\n";
    let m = manifest::parse(&dir.path().join("bottle.toml"), text, &Env { home: None }).unwrap();
    let p = planner::plan_with(
        m.select(Some("t")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        &toy::with_toy(),
    )
    .unwrap();
    let m = render(
        &p,
        &Options {
            namespace: None,
            secrets: Secrets::Omit,
        },
    )
    .unwrap();
    let port = i32::from(toy::TOY_PORT);
    let service = m
        .objects
        .iter()
        .find_map(|o| match o {
            Object::Service(s) if s.metadata.name.as_deref() == Some("bottle-proj-t-toy") => {
                Some(s)
            }
            _ => None,
        })
        .expect("a Service for the toy");
    let ports = service.spec.as_ref().unwrap().ports.as_ref().unwrap();
    assert_eq!(ports[0].port, port);
    let pod = |name: &str| {
        m.objects
            .iter()
            .find_map(|o| match o {
                Object::Pod(p) if p.metadata.name.as_deref() == Some(name) => Some(p),
                _ => None,
            })
            .unwrap()
    };
    let toy_pod = pod("bottle-proj-t-toy").spec.as_ref().unwrap();
    assert_eq!(
        toy_pod.containers[0].ports.as_ref().unwrap()[0].container_port,
        port
    );
    let policy = |name: &str| {
        m.objects
            .iter()
            .find_map(|o| match o {
                Object::NetworkPolicy(p) if p.metadata.name.as_deref() == Some(name) => {
                    p.spec.clone()
                }
                _ => None,
            })
            .unwrap()
    };
    // The toy admits the agent on its port, and goes nowhere (its egress is nothing).
    let toy_policy = policy("bottle-proj-t-toy");
    let ingress = toy_policy.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.as_ref().unwrap()[0]
        .pod_selector
        .clone()
        .unwrap();
    assert_eq!(
        from.match_labels.unwrap()["bottle.role"],
        "agent".to_owned()
    );
    assert_eq!(
        ingress[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(port))
    );
    assert_eq!(toy_policy.egress, Some(Vec::new()));
    // The agent may connect to the toy's port (and the proxy's, and DNS to resolve their
    // Services), nothing else.
    let agent_egress = policy("bottle-proj-t-agent").egress.unwrap();
    assert_eq!(agent_egress.len(), 3);
    let to_toy = agent_egress
        .iter()
        .find(|r| {
            r.to.as_ref().is_some_and(|to| {
                to[0]
                    .pod_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                    .is_some_and(|l| l["bottle.role"] == "toy")
            })
        })
        .expect("a rule to the toy");
    assert_eq!(
        to_toy.ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(port))
    );
}

/// A credential route's key, named by `secret_env`, goes into the cred sidecar's Secret; the
/// omitted Secret's note creates it from the variable, never printing the key.
#[test]
fn a_route_key_from_the_environment_is_created_from_the_variable() {
    use bottle_core::sidecar::{cred::CredSidecar, HostEnv};
    const ROUTE_KEY: &str = "sk-kube-route-91c2";
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.c]\nimage = \"bottle-claude:latest\"\n\
        [[bottles.c.cred_proxy.routes]]\nname = \"anthropic\"\nupstream = \"https://api.anthropic.com\"\n\
        header = \"x-api-key\"\nsecret_env = \"ANTHROPIC_API_KEY\"\nagent_env = \"ANTHROPIC_BASE_URL\"\n";
    let m = manifest::parse(&dir.path().join("bottle.toml"), text, &Env { home: None }).unwrap();
    let env = HostEnv::Map([("ANTHROPIC_API_KEY".to_owned(), ROUTE_KEY.to_owned())].into());
    let p = planner::plan_in(
        m.select(Some("c")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        &[&CredSidecar],
        &env,
    )
    .unwrap();
    let out = yaml(&p, Secrets::Omit, dir.path());
    assert!(!out.contains(ROUTE_KEY), "the key leaked:\n{out}");
    assert!(
        out.contains(r#"--from-literal='anthropic.key='"$ANTHROPIC_API_KEY""#),
        "{out}"
    );
    let with = yaml(&p, Secrets::Include, dir.path());
    assert!(with.contains("kind: Secret"), "{with}");
}

/// An `env` value from the host (`${VAR}`) reaches the container through its Secret
/// (`secretKeyRef`), never as a literal in the Pod; the omitted Secret's note recreates it
/// from the variable, and the Secret's files stay the only files mounted.
#[test]
fn a_host_env_value_is_a_secret_reference() {
    use bottle_core::sidecar::{HostEnv, SIDECARS};
    const TOKEN: &str = "tok-kube-5e21";
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.c]\nimage = \"bottle-agent:latest\"\nenv = { TOKEN = \"Bearer ${TEST_TOKEN}\" }\n";
    let m = manifest::parse(&dir.path().join("bottle.toml"), text, &Env { home: None }).unwrap();
    let env = HostEnv::Map([("TEST_TOKEN".to_owned(), TOKEN.to_owned())].into());
    let p = planner::plan_in(
        m.select(Some("c")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &env,
    )
    .unwrap();
    let out = yaml(&p, Secrets::Omit, dir.path());
    assert!(!out.contains(TOKEN), "the value leaked:\n{out}");
    assert!(
        out.contains(r#"--from-literal='env.TOKEN=Bearer '"${TEST_TOKEN?"#),
        "{out}"
    );
    assert!(out.contains("secretKeyRef:"), "{out}");
    assert!(out.contains("key: env.TOKEN"), "{out}");
    assert!(out.contains("name: bottle-proj-c-agent-secret"), "{out}");
    let with = yaml(&p, Secrets::Include, dir.path());
    assert!(
        with.contains("kind: Secret") && with.contains("env.TOKEN:"),
        "{with}"
    );
}
