//! The staging part of the `up` script, executed: each file reaches the engine with exactly
//! the plan's bytes, mode and numeric owner, and the staging directory is gone afterwards.

use std::collections::BTreeMap;
use std::fs;

use bottle_backend_dryrun::{render_up, Cli};
use bottle_core::plan::{FileSource, FileSpec, Plan};

use crate::support::{
    demo, expected_members, files_plan, secret_key, Fake, Member, Run, FAKE_ADDRESS,
};

/// What each container received, by container name, sorted by path; checks that every
/// archive holds one owner only.
fn received(run: &Run, cli: Cli) -> BTreeMap<String, Vec<Member>> {
    let mut out: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for call in run.calls_to(&["cp"]) {
        let args = call.args();
        let expected_flags: &[&str] = match cli {
            Cli::Docker => &["cp", "-"],
            Cli::Podman => &["cp", "--archive=false", "-"],
        };
        assert_eq!(args[..args.len() - 1], *expected_flags);
        let (name, m) = call.copied();
        assert!(!m.is_empty());
        assert!(
            m.iter().all(|x| (x.uid, x.gid) == (m[0].uid, m[0].gid)),
            "one owner per archive"
        );
        out.entry(name.to_owned()).or_default().extend(m);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.path.cmp(&b.path));
    }
    out
}

fn check_plan_arrives(plan: &Plan, cli: Cli) -> Run {
    let fake = Fake::new();
    let run = fake.run(&render_up(plan, cli).unwrap());
    assert!(run.success, "{cli:?}: {}", run.stderr);
    let got = received(&run, cli);
    for ct in &plan.containers {
        if ct.files.is_empty() {
            assert!(!got.contains_key(&ct.name));
            continue;
        }
        assert_eq!(got[&ct.name], expected_members(ct), "{cli:?}: {}", ct.name);
    }
    assert!(!fake.dir.path().join("marker").exists());
    assert_eq!(
        fs::read_dir(fake.tmp()).unwrap().count(),
        0,
        "the staging directory is removed"
    );
    run
}

#[test]
fn tricky_files_arrive_exactly() {
    let demo = demo();
    let mut plan = files_plan(&demo.key);
    plan.containers[1].files.push(FileSpec {
        relocate_env: None,
        path: "/etc/crlf".to_owned(),
        mode: 0o664,
        uid: 0,
        gid: 0,
        source: FileSource::Text {
            text: "a\r\nb\r\nno newline\r".to_owned(),
        },
    });
    for cli in Cli::ALL {
        check_plan_arrives(&plan, cli);
    }
}

#[test]
fn the_demo_bottle_arrives_exactly() {
    let demo = demo();
    for cli in Cli::ALL {
        let run = check_plan_arrives(&demo.plan, cli);
        let got = received(&run, cli);
        let key = got["bottle-proj-demo-gate"]
            .iter()
            .find(|m| m.path == "etc/bottle-gate/creds/app.key")
            .unwrap();
        assert_eq!(key.bytes, secret_key());
        assert_eq!((key.mode, key.uid, key.gid), (0o400, 10001, 10001));
    }
}

/// A host file is read when the script runs, not when it was printed.
#[test]
fn host_files_are_copied_at_run_time() {
    let demo = demo();
    let script = render_up(&demo.plan, Cli::Docker).unwrap();
    fs::write(&demo.key, b"rotated key\n").unwrap();
    let fake = Fake::new();
    let run = fake.run(&script);
    assert!(run.success, "{}", run.stderr);
    let got = received(&run, Cli::Docker);
    let key = got["bottle-proj-demo-gate"]
        .iter()
        .find(|m| m.path == "etc/bottle-gate/creds/lib.key")
        .unwrap();
    assert_eq!(key.bytes, b"rotated key\n");
}

/// The agent finds the gate through /etc/hosts: its create carries the gate's address on
/// the internal network, read once the gate runs. Under podman the internal network has no
/// resolver at all; docker has no switch for it.
#[test]
fn the_agent_gets_the_gates_address_and_no_resolver() {
    let demo = demo();
    for cli in Cli::ALL {
        let fake = Fake::new();
        let run = fake.run(&render_up(&demo.plan, cli).unwrap());
        assert!(run.success, "{cli:?}: {}", run.stderr);
        let inspect = run.calls_to(&["inspect"]);
        // One address per sidecar the agent has a host entry for: the gate and the proxy.
        assert_eq!(inspect.len(), 2, "{cli:?}: {:?}", run.calls);
        for (call, sidecar) in inspect
            .iter()
            .zip(["bottle-proj-demo-gate", "bottle-proj-demo-proxy"])
        {
            assert_eq!(
                call.args(),
                [
                    "inspect",
                    "--format",
                    "{{(index .NetworkSettings.Networks \"bottle-proj-demo-internal\").IPAddress}}",
                    sidecar
                ]
            );
        }
        let create = run.calls_to(&["create"]);
        let agent = create
            .iter()
            .find(|c| c.args().contains(&"bottle-proj-demo-agent"))
            .unwrap();
        for sidecar in ["bottle-proj-demo-gate", "bottle-proj-demo-proxy"] {
            let entry = format!("{sidecar}:{FAKE_ADDRESS}");
            assert!(
                agent.args().windows(2).any(|w| w == ["--add-host", &entry]),
                "{cli:?}: {:?}",
                agent.args()
            );
        }
        let internal = run.calls_to(&["network", "create"]);
        let internal = internal
            .iter()
            .find(|c| c.args().contains(&"bottle-proj-demo-internal"))
            .unwrap();
        assert_eq!(
            internal.args().contains(&"--disable-dns"),
            cli == Cli::Podman,
            "{cli:?}: {:?}",
            internal.args()
        );
    }
}

/// An entry naming a container that does not run first cannot be filled: refused before
/// anything is printed.
#[test]
fn a_host_entry_for_a_later_container_is_refused() {
    let mut plan = demo().plan;
    plan.containers.reverse();
    let err = render_up(&plan, Cli::Docker).unwrap_err().to_string();
    assert!(
        err.contains(
            "host entry \"bottle-proj-demo-gate\" takes the address of bottle-proj-demo-gate"
        ),
        "{err}"
    );
}

/// The order the backends follow: create, copy the files in, connect, start.
#[test]
fn containers_are_created_filled_connected_started() {
    let demo = demo();
    let fake = Fake::new();
    let run = fake.run(&render_up(&demo.plan, Cli::Docker).unwrap());
    assert!(run.success, "{}", run.stderr);
    let steps: Vec<String> = run
        .calls
        .iter()
        .filter(|c| !matches!(c.argv[1].as_str(), "image" | "container") && c.argv[2] != "inspect")
        .map(|c| {
            let a = c.args();
            match a[0] {
                "network" => format!("network {} {}", a[1], a.last().unwrap()),
                "create" => format!("create {}", a[2]),
                "cp" => format!("cp {}", a.last().unwrap()),
                "inspect" => format!("inspect {}", a.last().unwrap()),
                _ => a.join(" "),
            }
        })
        .collect();
    assert_eq!(
        steps,
        [
            "network create bottle-proj-demo-internal",
            "network create bottle-proj-demo-egress",
            "create bottle-proj-demo-gate",
            // Into the volume of its read-only root: scripts root's, the key the gate's.
            "cp bottle-proj-demo-gate:/etc/bottle-gate",
            "cp bottle-proj-demo-gate:/etc/bottle-gate",
            "network connect bottle-proj-demo-gate",
            "start bottle-proj-demo-gate",
            "create bottle-proj-demo-proxy",
            "cp bottle-proj-demo-proxy:/etc/bottle-proxy",
            "network connect bottle-proj-demo-proxy",
            "start bottle-proj-demo-proxy",
            // The sidecars' addresses, for the agent's /etc/hosts.
            "inspect bottle-proj-demo-gate",
            "inspect bottle-proj-demo-proxy",
            "create bottle-proj-demo-agent",
            "cp bottle-proj-demo-agent:/",
            "start bottle-proj-demo-agent",
        ]
    );
}
