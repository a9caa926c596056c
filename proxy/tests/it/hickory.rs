//! The hickory path: names from a hosts-style file, no DNS query leaving loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use bottle_proxy::audit::{Audit, MemoryAudit};
use bottle_proxy::resolve::{Hickory, Resolve};
use bottle_proxy_config::{EgressConfig, Source};
use http::StatusCode;

use crate::common::*;

/// A resolv.conf naming no name server: only the hosts file answers, and a missing name
/// fails at once without any query.
fn files() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "options timeout:1 attempts:1\n").unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "# test hosts\n127.0.0.1 hosted.test alias.test\n::1 six.test\n127.0.0.5 tenth.test\n",
    )
    .unwrap();
    (dir, resolv, hosts)
}

#[tokio::test]
async fn hosts_file_answers() {
    let (_dir, resolv, hosts) = files();
    let h = Hickory::from_files(&resolv, &hosts).unwrap();
    assert_eq!(h.lookup("hosted.test").await.unwrap(), vec![LOCAL]);
    assert_eq!(h.lookup("alias.test").await.unwrap(), vec![LOCAL]);
    assert_eq!(
        h.lookup("six.test").await.unwrap(),
        vec!["::1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(h.lookup("missing.test").await.is_err());
    // A real resolv.conf parses (nothing is asked of its server here).
    let with_server = resolv.with_file_name("resolv-server.conf");
    std::fs::write(&with_server, "nameserver 127.0.0.1\nsearch example.test\n").unwrap();
    let h = Hickory::from_files(&with_server, &hosts).unwrap();
    assert_eq!(h.lookup("hosted.test").await.unwrap(), vec![LOCAL]);
}

#[tokio::test]
async fn egress_with_hickory_refuses_private_unless_allowed() {
    let (_dir, resolv, hosts) = files();
    let pki = Pki::new(&["hosted.test"]);
    let up = tls_echo_server(pki.acceptor()).await;
    let cfg = EgressConfig {
        bottle: "dev".into(),
        listen: vec![SocketAddr::new(LOCAL, 0)],
        allow: vec![
            format!("hosted.test:{}", up.port()),
            format!("tenth.test:{}", up.port()),
        ],
        allow_private: vec!["hosted.test".into()],
        ..Default::default()
    };
    let running = bottle_proxy::egress::start(
        cfg,
        Arc::new(Hickory::from_files(&resolv, &hosts).unwrap()),
        Audit::new("dev", Source::Proxy, Box::new(MemoryAudit::default())),
    )
    .await
    .unwrap();
    let proxy = running.addrs()[0];
    assert!(connect(proxy, &format!("hosted.test:{}", up.port()))
        .await
        .is_ok());
    let resp = connect(proxy, &format!("tenth.test:{}", up.port()))
        .await
        .expect_err("private");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(deny_reason(&resp), "private-address");
    assert!(text(resp).await.contains("127.0.0.5, a loopback address"));
    running.shutdown().await;
}
