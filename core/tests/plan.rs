//! The plan is deterministic and pinned by a snapshot.

mod common;

use bottle_core::plan::{Egress, FileSource, HostOf, NetworkRole, Plan, PortSpec, Reach, Restart};
use bottle_core::planner;

/// Bottle `bottle` of manifest `text`, planned in project "proj".
fn plan_of(fx: &common::Fixture, text: &str, bottle: &str) -> Plan {
    let m = fx.parse(text).unwrap();
    planner::plan(
        m.select(Some(bottle)).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
    )
    .unwrap()
}

/// The example manifest's demo bottle, planned (its fixture, and so its key, is dropped:
/// the plan holds what it needs).
fn demo_plan() -> Plan {
    plan_of(&common::Fixture::new(), &common::example(), "demo")
}

/// `plan` as written before a field existed: `remove` takes the field out of each
/// container's JSON; read back.
fn without(plan: &Plan, remove: impl Fn(&mut serde_json::Value)) -> Plan {
    let mut json = serde_json::to_value(plan).unwrap();
    for c in json["containers"].as_array_mut().unwrap() {
        remove(c);
    }
    serde_json::from_value(json).unwrap()
}

fn plan_json(fx: &common::Fixture, text: &str, bottle: &str) -> String {
    serde_json::to_string_pretty(&plan_of(fx, text, bottle))
        .unwrap()
        .replace(&fx.path().display().to_string(), "[FIXTURE]")
}

#[test]
fn same_input_gives_a_byte_identical_plan() {
    let fx = common::Fixture::new();
    let a = plan_json(&fx, &common::example(), "demo");
    let b = plan_json(&fx, &common::example(), "demo");
    assert_eq!(a, b);
    insta::assert_snapshot!("demo_plan", bottle_test_keys::redact(&a));
}

#[test]
fn a_bottle_without_git_has_its_agent_and_egress_proxy_only() {
    let fx = common::Fixture::new();
    let json = plan_json(
        &fx,
        "[bottles.solo]\nimage = \"alpine:3\"\nmemory = \"1g\"\ncap_add = [\"cap_chown\"]\n",
        "solo",
    );
    insta::assert_snapshot!("solo_plan", json);
}

#[test]
fn the_shape_of_the_demo_plan() {
    let plan = demo_plan();
    let names: Vec<_> = plan.resource_names().map(|(_, n)| n.to_owned()).collect();
    assert_eq!(
        names,
        [
            "bottle-proj-demo-internal",
            "bottle-proj-demo-egress",
            "bottle-proj-demo-gate",
            "bottle-proj-demo-proxy",
            "bottle-proj-demo-agent"
        ]
    );
    let gate = plan.container("gate").unwrap();
    let agent = plan.agent().unwrap();
    // The agent is on the internal network only; the gate reaches out through egress.
    assert_eq!(agent.network, "bottle-proj-demo-internal");
    assert!(agent.connect.is_empty());
    assert_eq!(gate.connect, ["bottle-proj-demo-egress"]);
    assert!(plan.networks[0].internal && !plan.networks[1].internal);
    // The plan says what consumers used to infer from the gate's role: its port, on the
    // internal network only; that it goes out; that the agent reaches that port and goes
    // nowhere else.
    assert_eq!(
        gate.ports,
        [PortSpec {
            name: "git".into(),
            port: 9418,
            network: "bottle-proj-demo-internal".into()
        }]
    );
    assert_eq!(gate.egress, Egress::Network);
    assert_eq!(agent.egress, Egress::Nothing);
    assert_eq!(
        agent.reaches,
        [
            Reach {
                container: "bottle-proj-demo-gate".into(),
                port: "git".into()
            },
            Reach {
                container: "bottle-proj-demo-proxy".into(),
                port: "http".into()
            }
        ]
    );
    // The key goes to the gate only, never to the agent.
    let secret = bottle_test_keys::identity_key().mark.as_bytes();
    let holds = |c: &bottle_core::plan::ContainerSpec| {
        c.files
            .iter()
            .any(|f| f.bytes().windows(secret.len()).any(|w| w == secret))
    };
    assert!(holds(gate));
    assert!(!holds(agent));
    assert!(gate
        .files
        .iter()
        .any(|f| matches!(f.source, FileSource::HostFile { .. }) && f.mode == 0o400));
    // Debug output redacts it.
    assert!(!format!("{plan:?}").contains(&bottle_test_keys::identity_key().mark));
    // Every resource carries the labels.
    for c in &plan.containers {
        assert_eq!(c.labels["bottle.slug"], "demo");
        assert_eq!(c.labels["bottle.role"], c.role.as_str());
    }
    // The agent's git config rewrites each upstream URL to the gate.
    let gitconfig = std::str::from_utf8(agent.files[0].bytes()).unwrap();
    assert!(gitconfig.contains("[url \"git://bottle-proj-demo-gate/app.git\"]\n\tinsteadOf = \"ssh://git@git.example.com:2222/team/app.git\""), "{gitconfig}");
    assert!(gitconfig.contains("[url \"git://bottle-proj-demo-gate/lib.git\"]\n\tinsteadOf = \"git@git.example.com:team/lib.git\""), "{gitconfig}");
}

/// The agent needs no resolver: its host entry for the gate is filled from the gate, which
/// runs first; the internal network has no DNS, the egress network has.
#[test]
fn the_agent_finds_the_gate_through_a_host_entry() {
    let plan = demo_plan();
    let agent = plan.agent().unwrap();
    assert_eq!(
        agent.hosts_of,
        ["bottle-proj-demo-gate", "bottle-proj-demo-proxy"].map(|name| HostOf {
            name: name.to_owned(),
            container: name.to_owned(),
            network: "bottle-proj-demo-internal".to_owned(),
        })
    );
    assert!(plan.container("gate").unwrap().hosts_of.is_empty());
    assert_eq!(
        plan.networks
            .iter()
            .map(|n| (n.role, n.dns))
            .collect::<Vec<_>>(),
        [(NetworkRole::Internal, false), (NetworkRole::Egress, true)]
    );
    assert_eq!(plan.unfillable_host(), None);

    // An entry is unfillable when its container does not run first, or is not on the network.
    let mut reversed = plan.clone();
    reversed.containers.reverse();
    let (c, h) = reversed.unfillable_host().unwrap();
    assert_eq!(
        (c.name.as_str(), h.name.as_str()),
        ("bottle-proj-demo-agent", "bottle-proj-demo-gate")
    );
    let mut elsewhere = plan.clone();
    elsewhere.containers[2].hosts_of[0].network = "bottle-proj-demo-other".to_owned();
    assert!(elsewhere.unfillable_host().is_some());
    let mut egress = plan;
    egress.containers[2].hosts_of[0].network = "bottle-proj-demo-egress".to_owned();
    assert_eq!(egress.unfillable_host(), None, "the gate is on egress too");
}

#[test]
fn the_plan_round_trips_through_json() {
    let plan = demo_plan();
    let json = serde_json::to_vec(&plan).unwrap();
    let back: bottle_core::plan::Plan = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, plan);
}

/// Sidecars restart on their own faults, a bounded number of times; the agent never. A plan
/// written before the field existed reads as "never".
#[test]
fn sidecars_restart_on_failure_bounded_and_old_plans_still_read() {
    let plan = demo_plan();
    for c in &plan.containers {
        let want = if c.role.is_agent() {
            Restart::No
        } else {
            Restart::OnFailure { max_tries: 5 }
        };
        assert_eq!(c.restart, want, "{}", c.name);
    }
    assert_eq!(
        plan.container("gate").unwrap().restart.engine_value(),
        "on-failure:5"
    );

    let old = without(&plan, |c| {
        assert!(c.as_object_mut().unwrap().remove("restart").is_some());
    });
    assert!(old.containers.iter().all(|c| c.restart == Restart::No));
}

/// Every sidecar runs on a read-only root filesystem, writable only where the plan says
/// (on the engine's disk), and every file it is given lies in one of those places, where
/// engines can copy it; the agent's root stays writable. A plan written before the field
/// reads as writable roots.
#[test]
fn sidecars_have_read_only_roots_and_their_files_fit_their_writable_places() {
    use bottle_core::plan::WritableOn;
    let plan = demo_plan();
    for c in &plan.containers {
        if c.role.is_agent() {
            assert_eq!(c.hardening.read_only_root, None);
            continue;
        }
        let writable = c.hardening.read_only_root.as_ref().unwrap_or_else(|| {
            panic!("{}: a sidecar's root is read-only", c.name);
        });
        assert!(
            writable.iter().all(|w| w.on == WritableOn::Disk),
            "{}",
            c.name
        );
        assert!(!c.files.is_empty(), "{}", c.name);
        c.relative_file_paths()
            .unwrap_or_else(|(f, why)| panic!("{}: {}: {why}", c.name, f.path));
        for f in &c.files {
            assert_ne!(c.copy_dir(f), Some("/"), "{}: {}", c.name, f.path);
        }
    }
    let gate = plan.container("gate").unwrap();
    let paths: Vec<&str> = gate
        .hardening
        .read_only_root
        .as_ref()
        .unwrap()
        .iter()
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(
        paths,
        ["/etc/bottle-gate", "/git", "/var/lib/bottle-gate", "/tmp"]
    );
    let key = gate
        .files
        .iter()
        .find(|f| f.path.ends_with(".key"))
        .unwrap();
    assert_eq!(gate.copy_dir(key), Some("/etc/bottle-gate"));

    // A file outside every writable place of a read-only container cannot be placed.
    let mut bad = gate.clone();
    bad.files[0].path = "/usr/local/bin/evil".to_owned();
    let (f, why) = bad.relative_file_paths().unwrap_err();
    assert_eq!(f.path, "/usr/local/bin/evil");
    assert!(why.contains("read-only"), "{why}");

    let old = without(&plan, |c| {
        c["hardening"]
            .as_object_mut()
            .unwrap()
            .remove("read_only_root");
    });
    assert!(old
        .containers
        .iter()
        .all(|c| c.hardening.read_only_root.is_none()));
}

/// Every bottle has an egress proxy: the agent is pointed at it (the manifest's env wins),
/// it gets the manifest's lists and the bottle's own names, and its output is audit lines.
#[test]
fn the_egress_proxy_gets_the_lists_and_the_agent_its_variables() {
    let fx = common::Fixture::new();
    let text = "[bottles.p]\nimage = \"alpine:3\"\nenv = { NO_PROXY = \"mine\" }\n\n\
        [bottles.p.egress]\nallow = [\"api.example.com\", \"*.example.org:8443\"]\n\
        deny = [\"bad.example.com\"]\nallow_private = [\"registry.internal\"]\n";
    let plan = plan_of(&fx, text, "p");
    let proxy = plan.container("proxy").unwrap();
    assert_eq!(proxy.egress, Egress::Network);
    assert_eq!(proxy.labels["bottle.audit"], "proxy");
    assert_eq!(proxy.audit.as_ref().unwrap().source, "proxy");
    assert_eq!(proxy.ports[0].port, 3128);
    let config: bottle_proxy_config::EgressConfig =
        serde_json::from_slice(proxy.files[0].bytes()).unwrap();
    assert_eq!(config.allow, ["api.example.com", "*.example.org:8443"]);
    assert_eq!(config.deny, ["bad.example.com"]);
    assert_eq!(config.allow_private, ["registry.internal"]);
    assert_eq!(
        config.own_hosts,
        [
            "bottle-proj-p-gate",
            "bottle-proj-p-proxy",
            "bottle-proj-p-cred",
            "bottle-proj-p-agent"
        ]
    );
    let agent = plan.agent().unwrap();
    for key in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        assert_eq!(agent.env[key], "http://bottle-proj-p-proxy:3128", "{key}");
    }
    assert_eq!(agent.env["NODE_USE_ENV_PROXY"], "1");
    assert_eq!(agent.env["NO_PROXY"], "mine", "the manifest's env wins");
    assert!(agent.env["no_proxy"].starts_with(
        "bottle-proj-p-gate,bottle-proj-p-proxy,bottle-proj-p-cred,bottle-proj-p-agent"
    ));
    assert_eq!(
        agent.reaches,
        [Reach {
            container: "bottle-proj-p-proxy".into(),
            port: "http".into()
        }]
    );
    // Nothing in the agent's files or environment holds the proxy's lists.
    assert!(!agent.env.values().any(|v| v.contains("api.example.com")));
}

/// A bad egress entry is refused with its place, in the proxy's own words.
#[test]
fn bad_egress_entries_are_refused_with_their_line() {
    let fx = common::Fixture::new();
    let text = "[bottles.p]\nimage = \"alpine:3\"\n\n[bottles.p.egress]\n\
        allow = [\"ok.example.com\", \"a.*.example.com\"]\nallow_private = [\"x.internal:80\"]\n";
    let err = fx.parse(text).unwrap_err().to_string();
    assert!(err.contains(":6:"), "{err}");
    assert!(err.contains("bottles.p.egress.allow[1]"), "{err}");
    assert!(err.contains("bottles.p.egress.allow_private[0]"), "{err}");
    assert!(err.contains("take no port"), "{err}");
    assert!(!err.contains("ok.example.com"), "{err}");
}
