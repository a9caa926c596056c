//! The scenarios, each an `async fn(&E)` run on every engine by
//! [`engine_suite!`](crate::engine_suite): lifecycle (up, ps, exec, down, cleanup,
//! leftovers, rollback, foreign containers), hardening and files, the internal network,
//! image builds and imports.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bottle_core::backend::{Backend, BackendError, ExecRequest, Scope, UpOptions};
use bottle_core::images;
use bottle_core::plan::{
    resource_name, ContainerRole, FileSource, FileSpec, NetworkRole, ResourceKind, SecretBytes,
};

use super::{
    agent_only, strings, test_project, tiny_image, unique_slug, with_sidecar, Guard, ImageGuard,
    TestEngine, TEST_PROJECT,
};
use crate::base;
use crate::engine::{self, Engine};
use crate::images::{BuildOptions, BuildSpec, ImageStatus, DEFAULT_BASE_IMAGE, LABEL_INPUTS};

/// `up`, `ps` (of one bottle and of all), `exec` (exit codes, captured output), `down`
/// (idempotent), and `exec` in a bottle that is gone.
pub async fn up_ps_exec_down_of_an_agent_alone<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "life");
    let image = tiny_image(d).await;
    let plan = agent_only(&g.slug, &image);

    d.up(&plan, &UpOptions::default()).await.unwrap();

    let ps = d.ps(&g.scope()).await.unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].slug, g.slug);
    let agent = resource_name(TEST_PROJECT, &g.slug, ContainerRole::AGENT);
    let internal = resource_name(TEST_PROJECT, &g.slug, NetworkRole::Internal.as_str());
    let got: Vec<_> = ps[0]
        .resources
        .iter()
        .map(|r| (r.kind, r.name.clone(), r.role.clone(), r.state.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                ResourceKind::Container,
                agent.clone(),
                Some(ContainerRole::AGENT.to_owned()),
                "running".to_owned()
            ),
            (
                ResourceKind::Network,
                internal.clone(),
                Some(NetworkRole::Internal.as_str().to_owned()),
                String::new()
            ),
        ]
    );
    // ps of every bottle includes this one.
    assert!(d
        .ps(&Scope::default())
        .await
        .unwrap()
        .iter()
        .any(|b| b.slug == g.slug));

    let code = d
        .exec(&ExecRequest {
            project: TEST_PROJECT.to_owned(),
            slug: g.slug.clone(),
            command: strings(&["sh", "-c", "exit 7"]),
            tty: false,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(code, 7);
    let out = engine::exec_output(d, &agent, &strings(&["sh", "-c", "echo out; echo err >&2"]))
        .await
        .unwrap();
    assert_eq!(
        (out.code, &out.stdout[..], &out.stderr[..]),
        (0, &b"out\n"[..], &b"err\n"[..])
    );
    // A command that cannot run: the shell's exit code for "not found" (or docker's 126
    // for "cannot execute"), not an error.
    let missing = engine::exec_output(d, &agent, &strings(&["/no/such/command"]))
        .await
        .unwrap();
    assert!([126, 127].contains(&missing.code), "{missing:?}");

    d.down(&g.scope()).await.unwrap();
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
    // Idempotent.
    d.down(&g.scope()).await.unwrap();
    assert!(d.cleanup(&g.scope()).await.unwrap().is_empty());

    let err = d
        .exec(&ExecRequest {
            project: TEST_PROJECT.to_owned(),
            slug: g.slug.clone(),
            command: strings(&["true"]),
            tty: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::NotRunning { ref role, .. } if role == ContainerRole::AGENT
        ),
        "{err:?}"
    );
}

/// Hardening, environment, extra hosts, the user and files reach the engine exactly as
/// planned: inspected, and seen from inside the container.
pub async fn hardening_env_hosts_and_files_are_applied_exactly<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "files");
    let image = tiny_image(d).await;
    let mut plan = agent_only(&g.slug, &image);
    let binary: Vec<u8> = (0..=255u8).chain([0, 10, 13, 0]).collect();
    let long_path = format!("/opt/{}/deep.txt", "x".repeat(120));
    let files = vec![
        FileSpec {
            relocate_env: None,
            path: "/etc/bottle-test/script".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            source: FileSource::Text {
                text: "#!/bin/sh\necho hi\n".into(),
            },
        },
        FileSpec {
            relocate_env: None,
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
            relocate_env: None,
            path: "/tmp/setgid-file".into(),
            mode: 0o2640,
            uid: 1000,
            gid: 1000,
            source: FileSource::Text {
                text: String::new(),
            },
        },
        FileSpec {
            relocate_env: None,
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
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let name = &plan.containers[0].name;

    let info = t.container_view(name).await;
    // Podman's inspect words capabilities relative to its default set (NET_BIND_SERVICE
    // is in it, so CapAdd is empty): the process's bounding set below is the real check.
    if let Some(cap_drop) = &info.cap_drop {
        assert_eq!(cap_drop, &vec!["ALL"]);
    }
    if let Some(cap_add) = &info.cap_add {
        assert_eq!(cap_add, &vec!["NET_BIND_SERVICE"]);
    }
    assert!(
        info.security_opt
            .iter()
            .any(|o| o.starts_with("no-new-privileges")),
        "no-new-privileges missing: {:?}",
        info.security_opt
    );
    assert_eq!(info.init, Some(true));
    if t.limits_enforced() {
        assert_eq!(info.pids_limit, Some(77));
        assert_eq!(info.memory, Some(96 << 20));
        assert_eq!(info.memory_swap, Some(96 << 20));
    } else {
        eprintln!(
            "NOTE: limits not enforced here (inspect shows pids_limit {:?}, memory {:?})",
            info.pids_limit, info.memory
        );
    }
    let mut hosts = info.extra_hosts.clone();
    hosts.sort();
    assert_eq!(
        hosts,
        vec!["upstream.example:192.0.2.7", "v6.example:2001:db8::1"]
    );
    assert_eq!(info.user.as_deref(), Some("1000:1000"));
    assert!(
        info.env.contains(&"A=1".to_owned()) && info.env.contains(&"SPACED=a b=c".to_owned()),
        "{:?}",
        info.env
    );
    assert_eq!(info.labels.get("bottle.slug"), Some(&g.slug));
    assert_eq!(
        info.labels.get("bottle.role").map(String::as_str),
        Some("agent")
    );

    // The process really runs with no_new_privs, and with no capability beyond the one
    // added back (bounding set: NET_BIND_SERVICE only).
    let status = engine::exec_output(d, name, &strings(&["cat", "/proc/self/status"]))
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
    // PID 1 is the engine's init.
    let init = engine::exec_output(d, name, &strings(&["cat", "/proc/1/cmdline"]))
        .await
        .unwrap();
    let init = String::from_utf8_lossy(&init.stdout).into_owned();
    assert_eq!(init.split('\0').next(), Some(t.quirks().init), "{init:?}");
    let hosts_file = engine::exec_output(d, name, &strings(&["cat", "/etc/hosts"]))
        .await
        .unwrap();
    let hosts_file = String::from_utf8(hosts_file.stdout).unwrap();
    assert!(
        hosts_file.contains("192.0.2.7\tupstream.example"),
        "{hosts_file}"
    );

    for f in &files {
        let stat = engine::exec_output(
            d,
            name,
            &strings(&["stat", "-c", "%a %u %g %s %F", &f.path]),
        )
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
        let tar = t.download(name, &f.path).await;
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
    // Missing parent directories were created by the engine, root-owned, 0755 (not the
    // container user's: no chown).
    let dir = engine::exec_output(
        d,
        name,
        &strings(&["stat", "-c", "%a %u %g", "/etc/bottle-test/creds"]),
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8(dir.stdout).unwrap().trim(), "755 0 0");
}

/// A host entry naming a container that does not run before the one holding it cannot be
/// filled: `up` says so before creating anything.
pub async fn an_unfillable_host_entry_fails_before_anything_is_created<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "hostof");
    let image = tiny_image(d).await;
    let mut plan = with_sidecar(&g.slug, &image);
    plan.containers.reverse();
    let err = d.up(&plan, &UpOptions::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("which no earlier container of the plan has; nothing was created"),
        "{text}"
    );
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
}

/// A leftover of the plan's makes `up` fail before it creates anything, naming
/// `bottle cleanup`; `cleanup` removes it.
pub async fn leftovers_fail_fast_and_create_nothing<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "left");
    let image = tiny_image(d).await;
    let plan = with_sidecar(&g.slug, &image);
    // A leftover egress network from an "earlier run", labelled like bottle's.
    let egress = &plan.networks[1];
    Engine::create_network(d, egress).await.unwrap();

    let err = d.up(&plan, &UpOptions::default()).await.unwrap_err();
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
    let ps = d.ps(&g.scope()).await.unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].resources.len(), 1, "{ps:?}");

    let removed = d.cleanup(&g.scope()).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].name, egress.name);
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
}

/// An image bottle does not build and the engine lacks fails `up` with nothing created
/// and a hint in the engine's CLI words.
pub async fn a_missing_image_fails_before_anything_is_created<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "noimg");
    let image = tiny_image(d).await;
    let mut plan = with_sidecar(&g.slug, &image);
    plan.containers[1].image.name = "bottle-test-no-such-image:nope".into();
    let err = d
        .up(&plan, &UpOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bottle-test-no-such-image:nope"), "{err}");
    let cli = t.quirks().cli;
    assert!(
        err.contains(&format!("{cli} pull")) && err.contains(&format!("{cli} build")),
        "{err}"
    );
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
}

/// A failed `up` removes what it made and says so; with `keep_on_failure` it keeps it and
/// names `bottle cleanup`, and the next `up` meets it as leftovers.
pub async fn a_failed_up_rolls_back_or_keeps_what_it_made<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "roll");
    let image = tiny_image(d).await;
    let mut plan = with_sidecar(&g.slug, &image);
    // The second container cannot start: its entrypoint does not exist. (Without an init:
    // under one, the start succeeds and the init exits afterwards.)
    plan.containers[1].entrypoint = Some(vec!["/no/such/entrypoint".into()]);
    plan.containers[1].init = false;

    let err = d.up(&plan, &UpOptions::default()).await.unwrap_err();
    let BackendError::Engine { action, message } = &err else {
        panic!("want Engine, got {err:?}");
    };
    assert_eq!(
        action,
        &format!("start container {}", plan.containers[1].name)
    );
    assert!(
        message.contains("/no/such/entrypoint"),
        "engine's message missing: {message}"
    );
    assert!(message.contains("removed"), "{message}");
    assert!(
        d.ps(&g.scope()).await.unwrap().is_empty(),
        "rollback left resources"
    );

    let keep = UpOptions {
        keep_on_failure: true,
    };
    let err = d.up(&plan, &keep).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("bottle cleanup {}", g.slug)),
        "{err}"
    );
    let ps = d.ps(&g.scope()).await.unwrap();
    assert_eq!(ps.len(), 1);
    let kept: Vec<_> = ps[0]
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.state.clone()))
        .collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    let state = |n: &str| kept.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(state(&plan.containers[0].name), "running");
    // A container whose start failed is "created" (docker, podman) or, on some podman
    // versions, "exited"/"stopped": never running.
    let failed = state(&plan.containers[1].name);
    assert!(
        ["created", "exited", "stopped", "configured"].contains(&failed.as_str()),
        "{failed}"
    );
    assert_eq!(state(&plan.networks[0].name), "");
    assert_eq!(state(&plan.networks[1].name), "");

    // And a new up now meets them as leftovers.
    let err = d.up(&plan, &UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Leftovers { ref found, .. } if found.len() == 4),
        "{err:?}"
    );

    let removed = d.cleanup(&g.scope()).await.unwrap();
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
}

/// `down` removes the bottle's networks even when a container bottle did not create is
/// attached, and leaves that container alone (disconnected, not removed).
pub async fn down_disconnects_foreign_containers_and_keeps_them<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "foreign");
    let image = tiny_image(d).await;
    let plan = agent_only(&g.slug, &image);
    d.up(&plan, &UpOptions::default()).await.unwrap();

    let foreign = format!("{}-foreign", g.slug);
    t.run_foreign(&foreign, &image, &plan.networks[0].name)
        .await;

    let down = d.down(&g.scope()).await;
    let running = d.container_running(&foreign).await;
    let _ = Engine::remove_container(d, &foreign).await;
    down.unwrap();
    assert!(d.ps(&g.scope()).await.unwrap().is_empty());
    assert_eq!(running, Ok(true));
}

/// The internal network is internal, the sidecar is on both networks and the agent on the
/// internal one only; the agent resolves its sidecar by name (its /etc/hosts) and has no
/// route out.
pub async fn the_internal_network_has_no_way_out<T: TestEngine>(t: &T) {
    let d = t.client();
    let g = Guard::new(t, "net");
    let image = tiny_image(d).await;
    let plan = with_sidecar(&g.slug, &image);
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let (gate, agent) = (&plan.containers[0].name, &plan.containers[1].name);
    let (internal, egress) = (&plan.networks[0].name, &plan.networks[1].name);

    let net = t.network_view(internal).await;
    assert_eq!(net.internal, Some(true));
    // No resolver on it where the engine can turn it off (podman): the agent's lookups
    // cannot be relayed out.
    assert_ne!(net.dns_enabled, Some(true), "name resolution on {internal}");
    assert_eq!(
        net.labels.get("bottle.role").map(String::as_str),
        Some("internal")
    );
    let net = t.network_view(egress).await;
    assert_eq!(net.internal, Some(false));

    // The sidecar is on both networks, the agent on the internal one only.
    let networks = |name: String| async move {
        let mut n = t.container_view(&name).await.networks;
        n.sort();
        n
    };
    let mut both = vec![internal.clone(), egress.clone()];
    both.sort();
    assert_eq!(networks(gate.clone()).await, both);
    assert_eq!(networks(agent.clone()).await, vec![internal.clone()]);

    // The agent resolves its sidecar by name, through the /etc/hosts entry `up` wrote.
    let hosts = engine::exec_output(d, agent, &strings(&["cat", "/etc/hosts"]))
        .await
        .unwrap();
    let hosts = String::from_utf8(hosts.stdout).unwrap();
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().skip(1).any(|w| w == gate.as_str())),
        "no entry for {gate} in the agent's /etc/hosts:\n{hosts}"
    );
    let own = engine::exec_output(d, agent, &strings(&["getent", "hosts", gate]))
        .await
        .unwrap();
    assert_eq!(
        own.code,
        0,
        "the agent cannot resolve its sidecar: {}",
        String::from_utf8_lossy(&own.stderr)
    );

    // No route out of the internal network: the agent's routing table has no default
    // route (read from /proc, no traffic sent); the sidecar's has one (egress).
    let has_default_route = |name: String| async move {
        let routes = engine::exec_output(d, &name, &strings(&["cat", "/proc/net/route"]))
            .await
            .unwrap();
        String::from_utf8(routes.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    };
    if t.quirks().internal_has_no_route {
        assert!(
            !has_default_route(agent.clone()).await,
            "the agent has a default route"
        );
    }
    assert!(
        has_default_route(gate.clone()).await,
        "the sidecar has no default route"
    );

    if !t.quirks().embedded_resolver {
        return;
    }
    // Names resolve through the engine's embedded resolver only.
    let resolv = engine::exec_output(d, agent, &strings(&["cat", "/etc/resolv.conf"]))
        .await
        .unwrap();
    let resolv = String::from_utf8(resolv.stdout).unwrap();
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    // An outside name does not resolve from the agent. The query goes to the embedded
    // resolver only, which does not forward from an internal network: on Docker 20.10 it
    // does not answer at all, so the lookup ends by timeout. glibc's default (5 s, 2
    // attempts, A and AAAA) makes that 20 s; a short resolver timeout keeps the test quick.
    let start = Instant::now();
    let out = engine::exec_output(
        d,
        agent,
        &strings(&[
            "sh",
            "-c",
            "RES_OPTIONS='timeout:1 attempts:1' exec getent hosts example.com",
        ]),
    )
    .await
    .unwrap();
    assert_ne!(
        out.code,
        0,
        "example.com resolved: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
}

/// `image_command` (what `bottle run` runs when given no command) is the image's
/// entrypoint followed by its command; a missing image is an error saying so.
pub async fn the_image_command_is_its_entrypoint_and_command<T: TestEngine>(t: &T) {
    let d = t.client();
    let tiny = tiny_image(d).await;
    assert_eq!(
        d.image_command(&tiny).await.unwrap(),
        strings(&["/bin/sleep", "3600"])
    );
    let tag = format!("bottle-test-entry:{}", unique_slug("entry"));
    let _g = ImageGuard::new(t, vec![tag.clone()]);
    let (tar, _) = super::tiny_rootfs();
    engine::import_rootfs(
        d,
        crate::images::RootfsSource::Bytes(tar),
        &tag,
        &[
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]".to_owned(),
            "CMD [\"echo hi\"]".to_owned(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        d.image_command(&tag).await.unwrap(),
        strings(&["/bin/sh", "-c", "echo hi"])
    );
    let missing = format!("bottle-test-missing:{}", unique_slug("missing"));
    let err = d.image_command(&missing).await.unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

/// Builds carry the digest of their inputs, are skipped while fresh and redone when an
/// input (a build argument, a host file) changes or when forced.
pub async fn builds_are_labelled_and_skipped_when_fresh<T: TestEngine>(t: &T) {
    let d = t.client();
    let base = tiny_image(d).await;
    let tag = format!("bottle-test-build:{}", unique_slug("b"));
    let _g = ImageGuard::new(t, vec![tag.clone()]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG GREETING\nCOPY hello /hello\nRUN [\"/bin/sh\", \"-c\", \"echo \\\"$GREETING\\\" >> /hello\"]\n",
    )
    .unwrap();
    let extra = dir.path().join("outside");
    std::fs::write(&extra, "from the host\n").unwrap();
    let spec = BuildSpec::from_dir(&tag, dir.path())
        .unwrap()
        .extra_file("hello", &extra)
        .unwrap()
        .build_arg("BASE_IMAGE", &base)
        .build_arg("GREETING", "hi")
        .label("bottle.test", "1");

    // Podman's builder now and then loses a RUN step to a SIGKILL nobody sent (podman
    // #17918; seen once in CI on `echo`): that build failed as a whole and left nothing, so
    // one more try is the same build, not a second chance for a wrong result.
    let ensure = |spec: BuildSpec, force: bool| async move {
        match engine::ensure_image(d, &spec, force).await {
            Err(e)
                if e.to_string()
                    .contains("while running runtime: signal: killed") =>
            {
                eprintln!("NOTE: the engine killed a build step ({e}); building once more");
                engine::ensure_image(d, &spec, force).await.unwrap()
            }
            result => result.unwrap(),
        }
    };
    assert_eq!(ensure(spec.clone(), false).await, ImageStatus::Built);
    let labels = d.inspect_image(&tag).await.unwrap().unwrap().labels;
    assert_eq!(
        labels.get(LABEL_INPUTS),
        Some(&spec.inputs_digest().unwrap())
    );
    assert_eq!(labels.get("bottle.test").map(String::as_str), Some("1"));

    assert_eq!(ensure(spec.clone(), false).await, ImageStatus::Fresh);
    assert_eq!(ensure(spec.clone(), true).await, ImageStatus::Built);
    let changed = spec.clone().build_arg("GREETING", "hello");
    assert_eq!(ensure(changed.clone(), false).await, ImageStatus::Built);
    std::fs::write(&extra, "changed\n").unwrap();
    assert_eq!(ensure(changed.clone(), false).await, ImageStatus::Built);
    assert_eq!(ensure(changed.clone(), false).await, ImageStatus::Fresh);

    // The build really ran with the build argument.
    let g = Guard::new(t, "built");
    let plan = agent_only(&g.slug, &tag);
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let out = engine::exec_output(d, &plan.containers[0].name, &strings(&["cat", "/hello"]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "changed\nhello\n");
}

/// A failing build is [`BackendError::Engine`] for `build image TAG` with the builder's
/// words, and leaves no image.
pub async fn a_failing_build_carries_the_engine_message<T: TestEngine>(t: &T) {
    let d = t.client();
    let base = tiny_image(d).await;
    let tag = format!("bottle-test-fail:{}", unique_slug("f"));
    let _g = ImageGuard::new(t, vec![tag.clone()]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nRUN exit 3\n"),
    )
    .unwrap();
    let spec = BuildSpec::from_dir(&tag, dir.path()).unwrap();
    let err = engine::ensure_image(d, &spec, false).await.unwrap_err();
    let BackendError::Engine { action, message } = &err else {
        panic!("want Engine, got {err:?}");
    };
    assert_eq!(action, &format!("build image {tag}"));
    assert!(message.contains(t.quirks().build_exit_3), "{message}");
    assert!(!engine::image_exists(d, &tag).await.unwrap());
}

/// The base image imported through the API from the rootfs tarball prepared by
/// `scripts/setup-podman.sh --rootfs`: what a rootless user's store gets its base from.
pub async fn the_base_image_is_imported_from_a_prepared_rootfs<T: TestEngine>(t: &T) {
    let d = t.client();
    let Some(rootfs) = base::prepared_rootfs(DEFAULT_BASE_IMAGE).unwrap() else {
        eprintln!(
            "\n*** SKIP the_base_image_is_imported...: no prepared rootfs in {} (sudo scripts/setup-podman.sh --rootfs) ***\n",
            base::rootfs_dir().display()
        );
        return;
    };
    let tag = format!("bottle-test-base:{}", unique_slug("base"));
    let _g = ImageGuard::new(t, vec![tag.clone()]);
    engine::import_rootfs(d, rootfs.source.clone(), &tag, &rootfs.changes)
        .await
        .unwrap();
    check_base_image(t, &tag).await;
}

async fn check_base_image<T: TestEngine>(t: &T, tag: &str) {
    let d = t.client();
    let labels = d.inspect_image(tag).await.unwrap().unwrap().labels;
    assert!(
        labels
            .get("bottle.base.recipe")
            .is_some_and(|r| r.starts_with("bookworm/")),
        "{labels:?}"
    );
    assert!(t
        .image_env(tag)
        .await
        .iter()
        .any(|e| e.starts_with("PATH=")));
}

fn gitleaks() -> BTreeMap<String, PathBuf> {
    if std::env::var_os("BOTTLE_GITLEAKS").is_some() {
        return BTreeMap::new(); // the builder finds it itself
    }
    ["/usr/local/bin/gitleaks"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .map(|p| BTreeMap::from([("gitleaks".to_owned(), p)]))
        .unwrap_or_default()
}

/// The real built-in images, from the embedded contexts, in this store, under test tags.
/// Needs the base image (there already, or imported from a prepared rootfs) and gitleaks
/// (`BOTTLE_GITLEAKS`, PATH); skipped loudly otherwise. Then `up` runs one.
pub async fn the_builtin_images_build_from_the_embedded_contexts<T: TestEngine>(t: &T) {
    let d = t.client();
    let opts = BuildOptions {
        base_image: DEFAULT_BASE_IMAGE.into(),
        artifacts: gitleaks(),
        ..Default::default()
    };
    if !engine::image_exists(d, DEFAULT_BASE_IMAGE).await.unwrap()
        && base::prepared_rootfs(DEFAULT_BASE_IMAGE).unwrap().is_none()
    {
        eprintln!("\n*** SKIP the_builtin_images_build...: no {DEFAULT_BASE_IMAGE} and no prepared rootfs (sudo scripts/setup-podman.sh --rootfs) ***\n");
        return;
    }
    let have_gitleaks = !opts.artifacts.is_empty()
        || std::env::var_os("BOTTLE_GITLEAKS").is_some()
        || std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|p| p.join("gitleaks").is_file());
    for which in [&images::AGENT, &images::GATE] {
        if which == &images::GATE && !have_gitleaks {
            eprintln!(
                "\n*** SKIP building the gate image: no gitleaks (set BOTTLE_GITLEAKS) ***\n"
            );
            continue;
        }
        // Under a test tag, so a developer's own images are left alone.
        let tag = format!("bottle-test-{}:latest", which.name);
        engine::ensure_recipe(d, which, &tag, &opts).await.unwrap();
        assert_eq!(
            engine::ensure_recipe(d, which, &tag, &opts).await.unwrap(),
            ImageStatus::Fresh
        );
        let labels = d.inspect_image(&tag).await.unwrap().unwrap().labels;
        assert_eq!(
            labels.get("bottle.image").map(String::as_str),
            Some(which.name)
        );
    }

    // `up` ensures a built-in image itself (here: fresh, so no build) and runs it.
    let g = Guard::new(t, "builtin");
    let mut plan = agent_only(&g.slug, "bottle-test-agent:latest");
    plan.containers[0].image.recipe = Some(images::AGENT.name.to_owned());
    plan.containers[0].command = None; // the image's own `sleep infinity`
    let d = T::with_build_options(d.clone(), opts);
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let id = engine::exec_output(&d, &plan.containers[0].name, &strings(&["id", "-u"]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(id.stdout).unwrap().trim(), "1000");
}

/// The base image made with debootstrap and imported through the API. Slow (minutes) and
/// reaches the Debian mirror: runs only with `BOTTLE_TEST_MAKE_BASE=1` (as root).
pub async fn the_base_image_is_made_and_imported<T: TestEngine>(t: &T) {
    let d = t.client();
    if std::env::var("BOTTLE_TEST_MAKE_BASE").as_deref() != Ok("1") {
        eprintln!(
            "SKIP the_base_image_is_made_and_imported: set BOTTLE_TEST_MAKE_BASE=1 to run it"
        );
        return;
    }
    let tag = format!("bottle-test-base:{}", unique_slug("base"));
    let _g = ImageGuard::new(t, vec![tag.clone()]);
    engine::make_base_image(d, &tag).await.unwrap();
    check_base_image(t, &tag).await;
}

/// A sidecar added in one module of core (the test-only toy, `bottle_core::sidecar::toy`)
/// runs on this engine with its port and its host entry, and the agent reaches it: no
/// backend code knows of it. Runs the demo agent's image, which `bottle image build` makes
/// (on CI, before the tests); skipped loudly elsewhere when it is missing.
pub async fn a_sidecar_added_in_one_module_runs_with_its_port_and_host<T: TestEngine>(t: &T) {
    use bottle_core::sidecar::toy;
    let d = t.client();
    if !engine::image_exists(d, images::AGENT.tag).await.unwrap() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{} is missing on CI: scripts/test.sh builds it first",
            images::AGENT.tag
        );
        eprintln!(
            "\n*** SKIP a_sidecar_added_in_one_module...: no {} (bottle image build agent) ***\n",
            images::AGENT.tag
        );
        return;
    }
    let g = Guard::new(t, "toy");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bottle.toml");
    let text = format!(
        "[bottles.{slug}]\nimage = {image:?}\ncommand = [\"sleep\", \"infinity\"]\nenv = {{ TOY = \"1\" }}\n",
        slug = g.slug,
        image = images::AGENT.tag
    );
    let manifest =
        bottle_core::manifest::parse(&path, &text, &bottle_core::manifest::Env::current())
            .unwrap_or_else(|e| panic!("{e}"));
    let bottle = manifest.select(Some(&g.slug)).unwrap();
    // The toy alone: what it shows needs no other sidecar (nor their images).
    let plan = bottle_core::planner::plan_with(bottle, &test_project(), &[&toy::Toy]).unwrap();
    assert_eq!(
        plan.containers
            .iter()
            .map(|c| c.role.as_str())
            .collect::<Vec<_>>(),
        ["toy", "agent"]
    );
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let (host, agent) = (&plan.containers[0].name, &plan.containers[1].name);

    // Its host entry and its variable reached the agent.
    let got = engine::exec_output(d, agent, &strings(&["getent", "hosts", host]))
        .await
        .unwrap();
    assert_eq!(got.code, 0, "{host} does not resolve in the agent");
    let env = engine::exec_output(d, agent, &strings(&["sh", "-c", "echo $TOY_URL"]))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("git://{host}:{}/", toy::TOY_PORT)
    );
    // The agent reaches its port (git daemon needs a moment to listen), and a port the toy
    // does not listen on is refused: the check can fail.
    let connect = |port: u16| strings(&["bash", "-c", &format!("exec 3<>/dev/tcp/{host}/{port}")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = engine::exec_output(d, agent, &connect(toy::TOY_PORT))
            .await
            .unwrap();
        if out.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent cannot reach the toy's port: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = engine::exec_output(d, agent, &connect(toy::TOY_PORT + 1))
        .await
        .unwrap();
    assert_ne!(out.code, 0, "a port nobody listens on answered");
}
