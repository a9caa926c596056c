//! The egress proxy, started in-process on loopback against real TLS servers.
//!
//! Loopback is the only address tests may use, and the proxy refuses loopback unless
//! `allow_private` names the host: so every name expected to get through is also in
//! `allow_private`, and the names expected to be refused as private are not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bottle_proxy::audit::{Audit, MemoryAudit};
use bottle_proxy::resolve::StaticResolver;
use bottle_proxy::Running;
use bottle_proxy_config::{AuditRecord, Decision, EgressConfig, Limits, RouteHint, Source};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

struct Proxy {
    addr: SocketAddr,
    audit: MemoryAudit,
    running: Option<Running>,
}

impl Proxy {
    fn records(&self) -> Vec<AuditRecord> {
        self.audit.records()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            tokio::spawn(r.shutdown());
        }
    }
}

fn names() -> StaticResolver {
    StaticResolver::default()
        .with("api.example.test", &[LOCAL])
        .with("sub.wild.test", &[LOCAL])
        .with("wild.test", &[LOCAL])
        .with("plain.example.test", &[LOCAL])
        .with("internal.test", &[LOCAL])
        .with("mixed.test", &["::1".parse().unwrap(), LOCAL])
}

fn config(upstream_port: u16) -> EgressConfig {
    EgressConfig {
        bottle: "dev".into(),
        listen: vec![SocketAddr::new(LOCAL, 0)],
        allow: vec![
            format!("api.example.test:{upstream_port}"),
            format!("*.wild.test:{upstream_port}"),
            format!("wild.test:{upstream_port}"),
            "blocked.example.test".into(),
            format!("internal.test:{upstream_port}"),
            format!("mixed.test:{upstream_port}"),
            "bottle-dev-git".into(),
            "api.anthropic.com".into(),
        ],
        deny: vec!["blocked.example.test".into(), "wild.test".into()],
        allow_private: vec![
            "api.example.test".into(),
            "*.wild.test".into(),
            "wild.test".into(),
            "plain.example.test".into(),
        ],
        own_hosts: vec!["bottle-dev-git".into(), "bottle-dev-cred".into()],
        routes: vec![RouteHint {
            host: "api.anthropic.com".into(),
            url: "http://bottle-dev-cred/anthropic/".into(),
        }],
        limits: Limits::default(),
    }
}

async fn start(cfg: EgressConfig, resolver: StaticResolver) -> Proxy {
    let audit = MemoryAudit::default();
    let running = bottle_proxy::egress::start(
        cfg,
        Arc::new(resolver),
        Audit::new("dev", Source::Proxy, Box::new(audit.clone())),
    )
    .await
    .unwrap();
    Proxy {
        addr: running.addrs()[0],
        audit,
        running: Some(running),
    }
}

async fn hello_server(pki: &Pki) -> SocketAddr {
    http_server(
        Some(pki.acceptor()),
        |req: Request<hyper::body::Incoming>| async move {
            Response::new(full(format!("hello {}", req.uri().path())))
        },
    )
    .await
}

#[tokio::test]
async fn allowed_host_answers_through_connect() {
    let pki = Pki::new(&["api.example.test"]);
    let up = hello_server(&pki).await;
    let p = start(config(up.port()), names()).await;
    let (status, body) = get_via_tunnel(p.addr, &pki, "api.example.test", up.port(), "/v1/x")
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello /v1/x"));
    eventually(|| !p.records().is_empty()).await;
    let r = &p.records()[0];
    assert_eq!(r.decision, Decision::Allow);
    assert_eq!(r.reason, "allowed");
    assert_eq!(r.source, Source::Proxy);
    assert_eq!(r.bottle, "dev");
    assert_eq!(r.host.as_deref(), Some("api.example.test"));
    assert_eq!(r.port, Some(up.port()));
    assert_eq!(r.addr.as_deref(), Some(up.to_string().as_str()));
    assert_eq!(r.method.as_deref(), Some("CONNECT"));
    assert_eq!(r.rule, Some(format!("api.example.test:{}", up.port())));
    assert!(
        r.bytes_up.unwrap() > 100 && r.bytes_down.unwrap() > 100,
        "{r:?}"
    );
    assert!(r.duration_ms.is_some());
    assert!(r.time.ends_with('Z') && r.time.len() == 24, "{}", r.time);
}

#[tokio::test]
async fn refusals_say_why() {
    let pki = Pki::new(&["x"]);
    let up = hello_server(&pki).await;
    let port = up.port();
    let p = start(config(port), names()).await;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "blocked.example.test:443".into(),
            "denied-by-rule",
            "matches \"blocked.example.test\" in the deny list",
        ),
        (
            "example.org:443".into(),
            "not-allowed",
            "bottle: refused CONNECT example.org:443: not in the allow list of bottle 'dev'; to allow it, add \"example.org\" to allow in [bottles.dev.egress] of bottle.toml",
        ),
        (format!("wild.test:{port}"), "denied-by-rule", "\"wild.test\""),
        (
            format!("nope.other.test:{port}"),
            "not-allowed",
            &*Box::leak(format!("add \"nope.other.test:{port}\"").into_boxed_str()),
        ),
        (
            "api.example.test:443".into(),
            "port-not-allowed",
            "port 443 is not allowed",
        ),
        ("127.0.0.1:443".into(), "ip-literal", "add \"127.0.0.1:443\""),
        ("[::1]:443".into(), "ip-literal", "add \"[::1]:443\""),
        (
            "bottle-dev-git:443".into(),
            "own-sidecar",
            "own containers",
        ),
        (
            "bottle-dev-cred:80".into(),
            "own-sidecar",
            "own containers",
        ),
        (
            "api.anthropic.com:443".into(),
            "use-route",
            "has a credential route: call http://bottle-dev-cred/anthropic/ instead",
        ),
        (
            format!("internal.test:{port}"),
            "private-address",
            "internal.test resolves to 127.0.0.1, a loopback address; to allow it, add \"internal.test\" to allow_private",
        ),
        (
            format!("mixed.test:{port}"),
            "private-address",
            "a loopback address",
        ),
    ];
    for (target, reason, words) in &cases {
        let resp = connect(p.addr, target).await.expect_err(target);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{target}");
        assert_eq!(deny_reason(&resp), *reason, "{target}");
        let body = text(resp).await;
        assert!(body.contains(words), "{target}: {body}");
        assert!(
            body.ends_with('\n') && body.lines().count() == 1,
            "{body:?}"
        );
    }
    let recs = p.records();
    assert_eq!(recs.len(), cases.len());
    for (r, (_, reason, _)) in recs.iter().zip(&cases) {
        assert_eq!(r.decision, Decision::Deny);
        assert_eq!(r.reason, *reason);
        assert_eq!(r.status, Some(403));
    }
    // The private refusal names the address it saw, and never connected.
    let private = recs
        .iter()
        .find(|r| r.host.as_deref() == Some("internal.test"))
        .unwrap();
    assert_eq!(private.addr, Some(format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn wildcard_matches_subdomain_not_apex() {
    let pki = Pki::new(&["sub.wild.test", "wild.test"]);
    let up = hello_server(&pki).await;
    let mut cfg = config(up.port());
    cfg.deny.clear();
    cfg.allow = vec![format!("*.wild.test:{}", up.port())];
    let p = start(cfg, names()).await;
    let (status, _) = get_via_tunnel(p.addr, &pki, "sub.wild.test", up.port(), "/")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let resp = connect(p.addr, &format!("wild.test:{}", up.port()))
        .await
        .expect_err("apex");
    assert_eq!(deny_reason(&resp), "not-allowed");
    // Case and a trailing dot do not matter (only the decision is checked: rustls
    // refuses a trailing dot in SNI).
    let tunnel = connect(p.addr, &format!("SUB.Wild.test.:{}", up.port())).await;
    assert!(tunnel.is_ok());
}

#[tokio::test]
async fn long_lived_stream_through_tunnel() {
    let pki = Pki::new(&["api.example.test"]);
    let up = tls_echo_server(pki.acceptor()).await;
    let p = start(config(up.port()), names()).await;
    let tunnel = connect(p.addr, &format!("api.example.test:{}", up.port()))
        .await
        .unwrap();
    let mut tls = pki
        .connector()
        .connect("api.example.test".try_into().unwrap(), tunnel)
        .await
        .unwrap();
    for i in 0..5 {
        let msg = format!("message {i}");
        tls.write_all(msg.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(WAIT, tls.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, msg.as_bytes());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    drop(tls);
    eventually(|| p.records().len() == 1).await;
    let r = &p.records()[0];
    assert!(r.duration_ms.unwrap() >= 600, "{r:?}");
}

#[tokio::test]
async fn idle_tunnel_is_closed() {
    let pki = Pki::new(&["api.example.test"]);
    let up = tls_echo_server(pki.acceptor()).await;
    let mut cfg = config(up.port());
    cfg.limits.idle_timeout_secs = 1;
    let p = start(cfg, names()).await;
    let mut tunnel = connect(p.addr, &format!("api.example.test:{}", up.port()))
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, tunnel.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(900));
    eventually(|| p.records().len() == 1).await;
    let detail = p.records()[0].detail.clone().unwrap();
    assert!(detail.contains("without traffic"), "{detail}");
}

async fn plain_echo() -> SocketAddr {
    http_server(None, |req: Request<hyper::body::Incoming>| async move {
        let mut seen = format!("{} {}", req.method(), req.uri());
        for h in ["host", "proxy-authorization", "connection", "x-keep"] {
            if let Some(v) = req.headers().get(h) {
                seen.push_str(&format!("\n{h}: {}", v.to_str().unwrap()));
            }
        }
        Response::new(full(seen))
    })
    .await
}

#[tokio::test]
async fn plain_http_is_forwarded_and_host_checked() {
    let up = plain_echo().await;
    let mut cfg = config(up.port());
    cfg.allow.push(format!("plain.example.test:{}", up.port()));
    let p = start(cfg, names()).await;
    let url = format!("http://plain.example.test:{}/a/b?q=1", up.port());
    let req = Request::get(&url)
        .header("host", format!("plain.example.test:{}", up.port()))
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-keep", "yes")
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(p.addr, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = text(resp).await;
    assert!(body.starts_with("GET /a/b?q=1\n"), "{body}");
    assert!(body.contains("x-keep: yes"), "{body}");
    assert!(!body.contains("proxy-authorization"), "{body}");

    let req = Request::get(&url)
        .header("host", "evil.test")
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(p.addr, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(deny_reason(&resp), "host-mismatch");

    let req = Request::get("http://example.org/")
        .header("host", "example.org")
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(p.addr, req).await;
    assert_eq!(deny_reason(&resp), "not-allowed");
    assert!(text(resp).await.contains("refused GET example.org:80"));

    let req = Request::get("/just/a/path")
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(p.addr, req).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(deny_reason(&resp), "not-a-proxy-request");

    eventually(|| p.records().len() == 4).await;
    let recs = p.records();
    let ok = recs.iter().find(|r| r.decision == Decision::Allow).unwrap();
    assert_eq!(
        ok.path.as_deref(),
        Some("/a/b"),
        "no query string in the log"
    );
    assert_eq!(ok.status, Some(200));
    assert!(ok.bytes_down.unwrap() > 0);
    assert!(
        !p.audit.text().contains("c2VjcmV0"),
        "no header value in the log"
    );
}

#[tokio::test]
async fn slowloris_is_dropped() {
    let mut cfg = config(443);
    cfg.limits.header_read_timeout_secs = 1;
    let p = start(cfg, names()).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    // A request head that is never finished.
    s.write_all(b"CONNECT api.example.test:443 HTTP/1.1\r\nHost: a")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "the proxy kept a slow client past its header timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // And a client that sends nothing at all.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "the proxy kept a silent client past its header timeout"
    );
}

#[tokio::test]
async fn connection_cap_holds() {
    let pki = Pki::new(&["api.example.test"]);
    let up = tls_echo_server(pki.acceptor()).await;
    let mut cfg = config(up.port());
    cfg.limits.max_connections = 2;
    let p = start(cfg, names()).await;
    let target = format!("api.example.test:{}", up.port());
    let t1 = connect(p.addr, &target).await.unwrap();
    let _t2 = connect(p.addr, &target).await.unwrap();
    let resp = connect(p.addr, &target).await.expect_err("over the cap");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(deny_reason(&resp), "over-capacity");
    assert!(text(resp).await.contains("limit of 2 connections"));
    drop(t1);
    // The slot comes back when the tunnel closes.
    let deadline = Instant::now() + WAIT;
    loop {
        match connect(p.addr, &target).await {
            Ok(_) => break,
            Err(r) => assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE),
        }
        assert!(Instant::now() < deadline, "slot never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_entry_is_a_startup_error() {
    let mut cfg = config(443);
    cfg.allow.push("exa mple.com".into());
    let err = bottle_proxy::egress::Egress::new(
        cfg,
        Arc::new(names()),
        Audit::new("dev", Source::Proxy, Box::new(MemoryAudit::default())),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("bad allow entry \"exa mple.com\""),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_tunnels_end() {
    let pki = Pki::new(&["api.example.test"]);
    let up = tls_echo_server(pki.acceptor()).await;
    let mut p = start(config(up.port()), names()).await;
    let addr = p.addr;
    let tunnel = connect(addr, &format!("api.example.test:{}", up.port()))
        .await
        .unwrap();
    let running = p.running.take().unwrap();
    let done = tokio::spawn(running.shutdown());
    // New connections are refused once the listener is gone.
    eventually(|| std::net::TcpStream::connect(addr).is_err()).await;
    assert!(!done.is_finished(), "shutdown waits for the open tunnel");
    drop(tunnel);
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap();
    eventually(|| p.records().len() == 1).await;
}

#[tokio::test]
async fn silent_plain_http_upstream_is_bounded() {
    // An upstream that answers its head, then never sends the body it promised.
    let up = http_server(None, |_req: Request<hyper::body::Incoming>| async move {
        let (tx, body) =
            http_body_util::Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(1);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tx);
        });
        Response::new(http_body_util::BodyExt::boxed(body))
    })
    .await;
    let mut cfg = config(up.port());
    cfg.allow.push(format!("plain.example.test:{}", up.port()));
    cfg.limits.idle_timeout_secs = 1;
    let p = start(cfg, names()).await;
    let req = Request::get(format!("http://plain.example.test:{}/", up.port()))
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(p.addr, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let started = Instant::now();
    let r = tokio::time::timeout(WAIT, http_body_util::BodyExt::collect(resp.into_body())).await;
    assert!(r.expect("the proxy ends a silent body").is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually(|| p.records().len() == 1).await;
}
