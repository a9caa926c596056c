//! up, ps, exec, down, cleanup, leftovers, rollback, foreign containers.

use std::collections::BTreeMap;
use std::io::Read;

use bottle_backend_podman::podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, NetworkCreateOpts,
};
use bottle_core::backend::{Backend, BackendError, ExecRequest, UpOptions};
use bottle_core::plan::{resource_name, FileSource, FileSpec, ResourceKind, Role, SecretBytes};
use futures_util::TryStreamExt;

use crate::common::{self, engine, strings, Guard};

#[tokio::test]
async fn up_ps_exec_down_of_an_agent_alone() {
    let p = engine!();
    let g = Guard::new(&p, "life");
    let image = common::tiny_image(&p).await;
    let plan = common::agent_only(&g.slug, &image);

    p.up(&plan, &UpOptions::default()).await.unwrap();

    let ps = p.ps(Some(&g.slug)).await.unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].slug, g.slug);
    let agent = resource_name(&g.slug, Role::Agent);
    let internal = resource_name(&g.slug, Role::Internal);
    let got: Vec<_> = ps[0]
        .resources
        .iter()
        .map(|r| (r.kind, r.name.clone(), r.role, r.state.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                ResourceKind::Container,
                agent.clone(),
                Some(Role::Agent),
                "running".to_owned()
            ),
            (
                ResourceKind::Network,
                internal.clone(),
                Some(Role::Internal),
                String::new()
            ),
        ]
    );
    // ps of every bottle includes this one.
    assert!(p.ps(None).await.unwrap().iter().any(|b| b.slug == g.slug));

    let code = p
        .exec(&ExecRequest {
            slug: g.slug.clone(),
            command: strings(&["sh", "-c", "exit 7"]),
            tty: false,
        })
        .await
        .unwrap();
    assert_eq!(code, 7);
    let out = p
        .exec_output(&agent, &strings(&["sh", "-c", "echo out; echo err >&2"]))
        .await
        .unwrap();
    assert_eq!(
        (out.code, &out.stdout[..], &out.stderr[..]),
        (0, &b"out\n"[..], &b"err\n"[..])
    );
    // A command that cannot run: podman's exit code for "not found".
    let missing = p
        .exec_output(&agent, &strings(&["/no/such/command"]))
        .await
        .unwrap();
    assert_eq!(missing.code, 127, "{missing:?}");

    p.down(&g.slug).await.unwrap();
    assert!(p.ps(Some(&g.slug)).await.unwrap().is_empty());
    // Idempotent.
    p.down(&g.slug).await.unwrap();
    assert!(p.cleanup(Some(&g.slug)).await.unwrap().is_empty());

    let err = p
        .exec(&ExecRequest {
            slug: g.slug.clone(),
            command: strings(&["true"]),
            tty: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::NotRunning {
                role: Role::Agent,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn hardening_env_hosts_and_files_are_applied_exactly() {
    let p = engine!();
    let g = Guard::new(&p, "files");
    let image = common::tiny_image(&p).await;
    let mut plan = common::agent_only(&g.slug, &image);
    let binary: Vec<u8> = (0..=255u8).chain([0, 10, 13, 0]).collect();
    let long_path = format!("/opt/{}/deep.txt", "x".repeat(120));
    let files = vec![
        FileSpec {
            path: "/etc/bottle-test/script".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            source: FileSource::Text {
                text: "#!/bin/sh\necho hi\n".into(),
            },
        },
        FileSpec {
            path: "/etc/bottle-test/creds/key".into(),
            mode: 0o400,
            uid: 10001,
            gid: 10002,
            source: FileSource::HostFile {
                path: "/nonexistent/key".into(),
                bytes: SecretBytes::new(binary.clone()),
            },
        },
        FileSpec {
            path: "/tmp/setgid-file".into(),
            mode: 0o2640,
            uid: 1000,
            gid: 1000,
            source: FileSource::Text {
                text: String::new(),
            },
        },
        FileSpec {
            path: long_path.clone(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            source: FileSource::Text {
                text: "deep".into(),
            },
        },
    ];
    {
        let agent = &mut plan.containers[0];
        agent.files = files.clone();
        agent.hardening.cap_add = vec!["NET_BIND_SERVICE".into()];
        agent.hardening.pids_limit = 77;
        agent.hardening.memory_bytes = 96 << 20;
        agent.env = BTreeMap::from([("A".into(), "1".into()), ("SPACED".into(), "a b=c".into())]);
        agent.extra_hosts = BTreeMap::from([
            ("upstream.example".into(), "192.0.2.7".parse().unwrap()),
            ("v6.example".into(), "2001:db8::1".parse().unwrap()),
        ]);
        // Not root, so a chown to the container's user would show.
        agent.user = Some("1000:1000".into());
    }
    p.up(&plan, &UpOptions::default()).await.unwrap();
    let name = &plan.containers[0].name;

    let info = p
        .client()
        .containers()
        .get(name.as_str())
        .inspect()
        .await
        .unwrap();
    let hc = info.host_config.unwrap();
    assert!(
        hc.security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges")),
        "no-new-privileges missing"
    );
    // Podman's inspect words capabilities relative to its default set (NET_BIND_SERVICE
    // is in it, so CapAdd is empty): the process's bounding set below is the real check.
    eprintln!(
        "inspect: CapAdd {:?}, CapDrop {:?}",
        hc.cap_add, hc.cap_drop
    );
    assert_eq!(hc.init, Some(true));
    if p.limits_enforced() {
        assert_eq!(hc.pids_limit, Some(77));
        assert_eq!(hc.memory, Some(96 << 20));
        assert_eq!(hc.memory_swap, Some(96 << 20));
    } else {
        eprintln!(
            "NOTE: rootless podman on cgroups {}: limits not enforced (inspect shows pids_limit {:?}, memory {:?})",
            p.cgroup_version(),
            hc.pids_limit,
            hc.memory
        );
    }
    let mut hosts = hc.extra_hosts.unwrap();
    hosts.sort();
    assert_eq!(
        hosts,
        vec!["upstream.example:192.0.2.7", "v6.example:2001:db8::1"]
    );
    let config = info.config.unwrap();
    assert_eq!(config.user.as_deref(), Some("1000:1000"));
    let env = config.env.unwrap();
    assert!(
        env.contains(&"A=1".to_owned()) && env.contains(&"SPACED=a b=c".to_owned()),
        "{env:?}"
    );
    let labels = config.labels.unwrap();
    assert_eq!(labels.get("bottle.slug"), Some(&g.slug));
    assert_eq!(labels.get("bottle.role").map(String::as_str), Some("agent"));

    // The process really runs with no_new_privs, and with no capability beyond the one
    // added back (bounding set: NET_BIND_SERVICE only).
    let status = p
        .exec_output(name, &strings(&["cat", "/proc/self/status"]))
        .await
        .unwrap();
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapBnd:\t0000000000000400"), "{status}");
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(
        cap_eff.ends_with("0000000000000000") || cap_eff.ends_with("0000000000000400"),
        "{cap_eff}"
    );
    eprintln!("agent as 1000:1000 with cap_add NET_BIND_SERVICE: {cap_eff}");
    // PID 1 is podman's init.
    let init = p
        .exec_output(name, &strings(&["cat", "/proc/1/cmdline"]))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&init.stdout).starts_with("/run/podman-init\0"),
        "{:?}",
        String::from_utf8_lossy(&init.stdout)
    );
    let hosts_file = p
        .exec_output(name, &strings(&["cat", "/etc/hosts"]))
        .await
        .unwrap();
    let hosts_file = String::from_utf8(hosts_file.stdout).unwrap();
    assert!(
        hosts_file.contains("192.0.2.7\tupstream.example"),
        "{hosts_file}"
    );

    for f in &files {
        let stat = p
            .exec_output(name, &strings(&["stat", "-c", "%a %u %g %s %F", &f.path]))
            .await
            .unwrap();
        assert_eq!(
            stat.code,
            0,
            "{}: {}",
            f.path,
            String::from_utf8_lossy(&stat.stderr)
        );
        assert_eq!(
            String::from_utf8(stat.stdout).unwrap().trim(),
            format!(
                "{:o} {} {} {} regular{} file",
                f.mode,
                f.uid,
                f.gid,
                f.bytes().len(),
                if f.bytes().is_empty() { " empty" } else { "" }
            ),
            "{}",
            f.path
        );
        // The exact bytes, fetched back through the API.
        let tar: Vec<u8> = p
            .client()
            .containers()
            .get(name.as_str())
            .copy_from(&f.path)
            .try_concat()
            .await
            .unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut entry = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            entry.header().mode().unwrap() & 0o7777,
            f.mode,
            "{}",
            f.path
        );
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, f.bytes(), "{}", f.path);
    }
    // Missing parent directories were created by podman, root-owned (not the container
    // user's: no chown).
    let dir = p
        .exec_output(
            name,
            &strings(&["stat", "-c", "%a %u %g", "/etc/bottle-test/creds"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8(dir.stdout).unwrap().trim(), "755 0 0");
}

#[tokio::test]
async fn leftovers_fail_fast_and_create_nothing() {
    let p = engine!();
    let g = Guard::new(&p, "left");
    let image = common::tiny_image(&p).await;
    let plan = common::with_sidecar(&g.slug, &image);
    // A leftover egress network from an "earlier run", labelled like bottle's.
    let egress = &plan.networks[1];
    p.client()
        .networks()
        .create(
            &NetworkCreateOpts::builder()
                .name(&egress.name)
                .labels(egress.labels.clone())
                .build(),
        )
        .await
        .unwrap();

    let err = p.up(&plan, &UpOptions::default()).await.unwrap_err();
    let BackendError::Leftovers { slug, found } = &err else {
        panic!("want Leftovers, got {err:?}");
    };
    assert_eq!(slug, &g.slug);
    assert_eq!(found, &vec![(ResourceKind::Network, egress.name.clone())]);
    assert!(
        err.to_string()
            .contains(&format!("bottle cleanup {}", g.slug)),
        "{err}"
    );

    // Nothing else was created.
    let ps = p.ps(Some(&g.slug)).await.unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].resources.len(), 1, "{ps:?}");

    let removed = p.cleanup(Some(&g.slug)).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].name, egress.name);
    assert!(p.ps(Some(&g.slug)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_image_fails_before_anything_is_created() {
    let p = engine!();
    let g = Guard::new(&p, "noimg");
    let image = common::tiny_image(&p).await;
    let mut plan = common::with_sidecar(&g.slug, &image);
    plan.containers[1].image.name = "bottle-test-no-such-image:nope".into();
    let err = p
        .up(&plan, &UpOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bottle-test-no-such-image:nope"), "{err}");
    assert!(
        err.contains("podman pull") && err.contains("podman build"),
        "{err}"
    );
    assert!(p.ps(Some(&g.slug)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_up_rolls_back_or_keeps_what_it_made() {
    let p = engine!();
    let g = Guard::new(&p, "roll");
    let image = common::tiny_image(&p).await;
    let mut plan = common::with_sidecar(&g.slug, &image);
    // The second container cannot start: its entrypoint does not exist. (Without an init:
    // under one, the start succeeds and the init exits afterwards.)
    plan.containers[1].entrypoint = Some(vec!["/no/such/entrypoint".into()]);
    plan.containers[1].init = false;

    let err = p.up(&plan, &UpOptions::default()).await.unwrap_err();
    let BackendError::Engine { action, message } = &err else {
        panic!("want Engine, got {err:?}");
    };
    assert_eq!(
        action,
        &format!("start container {}", plan.containers[1].name)
    );
    assert!(
        message.contains("/no/such/entrypoint"),
        "podman's message missing: {message}"
    );
    assert!(message.contains("removed"), "{message}");
    assert!(
        p.ps(Some(&g.slug)).await.unwrap().is_empty(),
        "rollback left resources"
    );

    let keep = UpOptions {
        keep_on_failure: true,
    };
    let err = p.up(&plan, &keep).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("bottle cleanup {}", g.slug)),
        "{err}"
    );
    let ps = p.ps(Some(&g.slug)).await.unwrap();
    assert_eq!(ps.len(), 1);
    let mut kept: Vec<_> = ps[0]
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.state.clone()))
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 4, "{kept:?}");
    let state = |n: &str| kept.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(state(&plan.containers[0].name), "running");
    // Podman records a container whose start failed as "created" (docker too) or, on some
    // versions, "exited"/"stopped": never running.
    let failed = state(&plan.containers[1].name);
    assert!(
        ["created", "exited", "stopped", "configured"].contains(&failed.as_str()),
        "{failed}"
    );
    assert_eq!(state(&plan.networks[0].name), "");
    assert_eq!(state(&plan.networks[1].name), "");

    // And a new up now meets them as leftovers.
    let err = p.up(&plan, &UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Leftovers { ref found, .. } if found.len() == 4),
        "{err:?}"
    );

    let removed = p.cleanup(Some(&g.slug)).await.unwrap();
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(p.ps(Some(&g.slug)).await.unwrap().is_empty());
}

/// `down` removes the bottle's networks even when a container bottle did not create is
/// attached, and leaves that container alone (disconnected, not removed).
#[tokio::test]
async fn down_disconnects_foreign_containers_and_keeps_them() {
    let p = engine!();
    let g = Guard::new(&p, "foreign");
    let image = common::tiny_image(&p).await;
    let plan = common::agent_only(&g.slug, &image);
    p.up(&plan, &UpOptions::default()).await.unwrap();

    let foreign = format!("{}-foreign", g.slug);
    let mut networks = std::collections::HashMap::new();
    networks.insert(plan.networks[0].name.clone(), serde_json_empty());
    p.client()
        .containers()
        .create(
            &ContainerCreateOpts::builder()
                .name(&foreign)
                .image(&image)
                .command(["sleep", "3600"])
                .networks(networks)
                .net_namespace(bottle_backend_podman::podman_api::models::Namespace {
                    nsmode: Some("bridge".into()),
                    value: None,
                })
                .build(),
        )
        .await
        .unwrap();
    let container = p.client().containers().get(foreign.as_str());
    container.start(None).await.unwrap();

    p.down(&g.slug).await.unwrap();
    assert!(p.ps(Some(&g.slug)).await.unwrap().is_empty());
    let info = container.inspect().await.unwrap();
    assert_eq!(info.state.and_then(|s| s.running), Some(true));
    container
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
        .unwrap();
}

fn serde_json_empty() -> serde_json::Value {
    serde_json::json!({})
}
