//! The internal network: no route out, names of the bottle's own containers resolve.

use std::time::{Duration, Instant};

use bottle_core::backend::{Backend, UpOptions};

use crate::common::{self, engine, strings, Guard};

#[tokio::test]
async fn the_internal_network_has_no_way_out() {
    let d = engine!();
    let g = Guard::new(&d, "net");
    let image = common::tiny_image(&d).await;
    let plan = common::with_sidecar(&g.slug, &image);
    d.up(&plan, &UpOptions::default()).await.unwrap();
    let (gate, agent) = (&plan.containers[0].name, &plan.containers[1].name);
    let (internal, egress) = (&plan.networks[0].name, &plan.networks[1].name);

    let net = d.client().inspect_network(internal, None).await.unwrap();
    assert_eq!(net.internal, Some(true));
    let net = d.client().inspect_network(egress, None).await.unwrap();
    assert_eq!(net.internal, Some(false));

    // The sidecar is on both networks, the agent on the internal one only.
    let networks = |name: String| {
        let d = d.clone();
        async move {
            let info = d.client().inspect_container(&name, None).await.unwrap();
            let mut n: Vec<String> = info
                .network_settings
                .unwrap()
                .networks
                .unwrap()
                .into_keys()
                .collect();
            n.sort();
            n
        }
    };
    let mut both = vec![internal.clone(), egress.clone()];
    both.sort();
    assert_eq!(networks(gate.clone()).await, both);
    assert_eq!(networks(agent.clone()).await, vec![internal.clone()]);

    // Names resolve through the engine's embedded resolver only.
    let resolv = d
        .exec_output(agent, &strings(&["cat", "/etc/resolv.conf"]))
        .await
        .unwrap();
    let resolv = String::from_utf8(resolv.stdout).unwrap();
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    let own = d
        .exec_output(agent, &strings(&["getent", "hosts", gate]))
        .await
        .unwrap();
    assert_eq!(own.code, 0, "the agent cannot resolve its sidecar");

    // An outside name does not resolve from the agent. The query goes to the embedded
    // resolver only, which does not forward from an internal network: on Docker 20.10 it
    // does not answer at all, so the lookup ends by timeout. glibc's default (5 s, 2
    // attempts, A and AAAA) makes that 20 s; a short resolver timeout keeps the test quick.
    let start = Instant::now();
    let out = d
        .exec_output(
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
