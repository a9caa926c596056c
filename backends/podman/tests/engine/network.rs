//! The internal network: no route out, names of the bottle's own containers resolve.

use bottle_core::backend::{Backend, UpOptions};

use crate::common::{self, engine, strings, Guard};

#[tokio::test]
async fn the_internal_network_has_no_way_out() {
    let p = engine!();
    let g = Guard::new(&p, "net");
    let image = common::tiny_image(&p).await;
    let plan = common::with_sidecar(&g.slug, &image);
    p.up(&plan, &UpOptions::default()).await.unwrap();
    let (gate, agent) = (&plan.containers[0].name, &plan.containers[1].name);
    let (internal, egress) = (&plan.networks[0].name, &plan.networks[1].name);

    let net = p
        .client()
        .networks()
        .get(internal.as_str())
        .inspect()
        .await
        .unwrap();
    assert_eq!(net.internal, Some(true));
    assert_eq!(net.dns_enabled, Some(true));
    assert_eq!(
        net.labels.unwrap().get("bottle.role").map(String::as_str),
        Some("internal")
    );
    let net = p
        .client()
        .networks()
        .get(egress.as_str())
        .inspect()
        .await
        .unwrap();
    assert_eq!(net.internal, Some(false));

    // The sidecar is on both networks, the agent on the internal one only.
    let networks = |name: String| {
        let p = p.clone();
        async move {
            let info = p.client().containers().get(name).inspect().await.unwrap();
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

    // The agent resolves its sidecar by name (podman's resolver on the network).
    let own = p
        .exec_output(agent, &strings(&["getent", "hosts", gate]))
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
    let has_default_route = |name: String| {
        let p = p.clone();
        async move {
            let routes = p
                .exec_output(&name, &strings(&["cat", "/proc/net/route"]))
                .await
                .unwrap();
            String::from_utf8(routes.stdout)
                .unwrap()
                .lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
        }
    };
    assert!(
        !has_default_route(agent.clone()).await,
        "the agent has a default route"
    );
    assert!(
        has_default_route(gate.clone()).await,
        "the sidecar has no default route"
    );
}
