//! The credential sidecar against a real TLS upstream on loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottle_proxy::audit::{Audit, MemoryAudit};
use bottle_proxy::resolve::StaticResolver;
use bottle_proxy::Running;
use bottle_proxy_config::{CredConfig, Decision, Limits, Route, Source};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Channel};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::common::*;

const SECRET: &str = "sk-test-THE-REAL-KEY";
const AGENT_KEY: &str = "agent-fake-key-123";

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    uris: Vec<String>,
}

struct Fixture {
    addr: SocketAddr,
    audit: MemoryAudit,
    seen: Arc<Mutex<Seen>>,
    /// Released by the test when it got the first SSE event.
    sse_go: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    sse_release: Option<oneshot::Sender<()>>,
    /// The upstream tells when it got the first chunk of an upload.
    upload_first: Arc<Mutex<Option<mpsc::Sender<Bytes>>>>,
    _dir: tempfile::TempDir,
    running: Option<Running>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            tokio::spawn(r.shutdown());
        }
    }
}

async fn upstream(
    pki: &Pki,
    seen: Arc<Mutex<Seen>>,
    sse_go: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    upload_first: Arc<Mutex<Option<mpsc::Sender<Bytes>>>>,
) -> SocketAddr {
    http_server(Some(pki.acceptor()), move |req: Request<Incoming>| {
        let seen = seen.clone();
        let sse_go = sse_go.clone();
        let upload_first = upload_first.clone();
        async move {
            {
                let mut s = seen.lock().unwrap();
                s.headers.push(req.headers().clone());
                s.uris.push(req.uri().to_string());
            }
            match req.uri().path() {
                "/v1/sse" => {
                    let go = sse_go.lock().unwrap().take().expect("one SSE request");
                    let (mut tx, body) =
                        Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(1);
                    tokio::spawn(async move {
                        tx.send_data(Bytes::from_static(b"data: one\n\n"))
                            .await
                            .unwrap();
                        // The second event only after the client saw the first: proves
                        // the sidecar does not buffer.
                        let _ = tokio::time::timeout(WAIT, go).await;
                        tx.send_data(Bytes::from_static(b"data: two\n\n"))
                            .await
                            .unwrap();
                    });
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body.boxed())
                        .unwrap()
                }
                "/v1/upload" => {
                    let tell = upload_first.lock().unwrap().take().expect("one upload");
                    let mut body = req.into_body();
                    let mut total = 0usize;
                    let mut first = true;
                    while let Some(f) = body.frame().await {
                        if let Ok(d) = f.unwrap().into_data() {
                            total += d.len();
                            if first {
                                first = false;
                                tell.send(d).await.unwrap();
                            }
                        }
                    }
                    Response::new(full(format!("got {total}")))
                }
                _ => Response::builder()
                    .status(StatusCode::CREATED)
                    .body(full("echo"))
                    .unwrap(),
            }
        }
    })
    .await
}

async fn fixture() -> Fixture {
    let pki = Pki::new(&["api.cred.test"]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (release, go) = oneshot::channel();
    let sse_go = Arc::new(Mutex::new(Some(go)));
    let upload_first = Arc::new(Mutex::new(None));
    let up = upstream(&pki, seen.clone(), sse_go.clone(), upload_first.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("key");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let cfg = CredConfig {
        bottle: "dev".into(),
        listen: vec![SocketAddr::new(LOCAL, 0)],
        routes: vec![
            Route {
                name: "anthropic".into(),
                upstream: format!("https://api.cred.test:{}/v1/", up.port()),
                header: "x-api-key".into(),
                format: "{secret}".into(),
                secret_file: secret_file.display().to_string(),
                ca_file: Some(ca_file.display().to_string()),
                insecure_http: false,
            },
            Route {
                name: "openai".into(),
                upstream: format!("https://api.cred.test:{}/v1", up.port()),
                header: "Authorization".into(),
                format: "Bearer {secret}".into(),
                secret_file: secret_file.display().to_string(),
                ca_file: Some(ca_file.display().to_string()),
                insecure_http: false,
            },
            Route {
                // Not in allow_private: resolving to loopback is refused.
                name: "elsewhere".into(),
                upstream: format!("https://other.cred.test:{}/", up.port()),
                header: "x-api-key".into(),
                format: "{secret}".into(),
                secret_file: secret_file.display().to_string(),
                ca_file: Some(ca_file.display().to_string()),
                insecure_http: false,
            },
        ],
        allow_private: vec!["api.cred.test".into()],
        limits: Limits::default(),
    };
    let audit = MemoryAudit::default();
    let resolver = StaticResolver::default()
        .with("api.cred.test", &[LOCAL])
        .with("other.cred.test", &[LOCAL]);
    let running = bottle_proxy::cred::start(
        cfg,
        Arc::new(resolver),
        Audit::new("dev", Source::Cred, Box::new(audit.clone())),
    )
    .await
    .unwrap();
    Fixture {
        addr: running.addrs()[0],
        audit,
        seen,
        sse_go,
        sse_release: Some(release),
        upload_first,
        _dir: dir,
        running: Some(running),
    }
}

fn agent_request(f: &Fixture, path: &str) -> http::request::Builder {
    // Origin form, as an SDK with ANTHROPIC_BASE_URL sends it.
    let _ = f;
    Request::post(path)
        .header("host", "bottle-dev-cred")
        .header("x-api-key", AGENT_KEY)
        .header("authorization", format!("Bearer {AGENT_KEY}"))
        .header("cookie", format!("session={AGENT_KEY}"))
        .header("proxy-authorization", AGENT_KEY)
        .header("X-Api-Key", AGENT_KEY)
        .header("anthropic-version", "2023-06-01")
}

#[tokio::test]
async fn upstream_sees_the_route_key_and_none_of_the_agents() {
    let f = fixture().await;
    let req = agent_request(&f, "/anthropic/messages?beta=true&token=abc")
        .body(full("{\"hi\":1}"))
        .unwrap();
    let resp = send(f.addr, req).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(text(resp).await, "echo");
    let req = agent_request(&f, "/openai/chat").body(full("x")).unwrap();
    assert_eq!(send(f.addr, req).await.status(), StatusCode::CREATED);

    let seen = std::mem::take(&mut *f.seen.lock().unwrap());
    assert_eq!(seen.uris[0], "/v1/messages?beta=true&token=abc");
    assert_eq!(seen.uris[1], "/v1/chat");
    let h = &seen.headers[0];
    assert_eq!(h.get_all("x-api-key").iter().collect::<Vec<_>>(), [SECRET]);
    assert!(h.get("authorization").is_none());
    assert!(h.get("cookie").is_none());
    assert!(h.get("proxy-authorization").is_none());
    assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
    let port = f.addr.port(); // the upstream's Host is its own, not the sidecar's
    assert!(h
        .get("host")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("api.cred.test:"));
    let _ = port;
    let h = &seen.headers[1];
    assert_eq!(h.get("authorization").unwrap(), &format!("Bearer {SECRET}"));
    assert!(h.get("x-api-key").is_none());
    for h in &seen.headers {
        for v in h.values() {
            assert!(
                !v.to_str().unwrap().contains(AGENT_KEY),
                "agent key leaked: {h:?}"
            );
        }
    }
    eventually(|| f.audit.records().len() == 2).await;
    let recs = f.audit.records();
    let r = &recs[0];
    assert_eq!(r.source, Source::Cred);
    assert_eq!(r.decision, Decision::Allow);
    assert_eq!(r.route.as_deref(), Some("anthropic"));
    assert_eq!(r.method.as_deref(), Some("POST"));
    assert_eq!(r.path.as_deref(), Some("/anthropic/messages"));
    assert_eq!(r.status, Some(201));
    assert_eq!(r.bytes_up, Some(8));
    assert_eq!(r.bytes_down, Some(4));
    let log = f.audit.text();
    assert!(!log.contains(SECRET) && !log.contains(AGENT_KEY), "{log}");
    assert!(
        !log.contains("token=abc"),
        "no query string in the log: {log}"
    );
}

#[tokio::test]
async fn unknown_route_lists_the_routes() {
    let f = fixture().await;
    let resp = send(f.addr, agent_request(&f, "/nope/x").body(full("")).unwrap()).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(deny_reason(&resp), "unknown-route");
    let body = text(resp).await;
    assert!(body.contains("no route \"nope\""), "{body}");
    assert!(body.contains("anthropic, openai, elsewhere"), "{body}");
    let r = &f.audit.records()[0];
    assert_eq!(
        (r.decision, r.reason.as_str()),
        (Decision::Deny, "unknown-route")
    );
}

#[tokio::test]
async fn dot_segments_are_refused() {
    let f = fixture().await;
    for path in [
        "/anthropic/../openai/x",
        "/anthropic/a/%2E%2e/b",
        "/anthropic/./x",
    ] {
        let resp = send(f.addr, agent_request(&f, path).body(full("")).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(deny_reason(&resp), "bad-request");
    }
    assert!(f.seen.lock().unwrap().uris.is_empty());
}

#[tokio::test]
async fn private_upstream_is_refused_unless_allowed() {
    let f = fixture().await;
    let resp = send(
        f.addr,
        agent_request(&f, "/elsewhere/x").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(deny_reason(&resp), "private-address");
    assert!(text(resp).await.contains("loopback"));
    assert!(f.seen.lock().unwrap().uris.is_empty());
}

#[tokio::test]
async fn sse_is_streamed_event_by_event() {
    let mut f = fixture().await;
    let resp = send(
        f.addr,
        agent_request(&f, "/anthropic/sse").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("the first event arrives while the upstream holds the stream")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "data: one\n\n");
    f.sse_release.take().unwrap().send(()).unwrap();
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "data: two\n\n");
    let _ = &f.sse_go;
    eventually(|| f.audit.records().len() == 1).await;
    assert_eq!(f.audit.records()[0].bytes_down, Some(22));
}

#[tokio::test]
async fn request_body_is_streamed() {
    let f = fixture().await;
    let (tell, mut told) = mpsc::channel(1);
    *f.upload_first.lock().unwrap() = Some(tell);
    let (mut tx, body) = Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(1);
    let req = agent_request(&f, "/anthropic/upload")
        .body(body.boxed())
        .unwrap();
    let addr = f.addr;
    let answer = tokio::spawn(async move { text(send(addr, req).await).await });
    tx.send_data(Bytes::from_static(b"first chunk;"))
        .await
        .unwrap();
    // The upstream has the first chunk before the second exists.
    let got = tokio::time::timeout(WAIT, told.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "first chunk;");
    tx.send_data(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
    assert_eq!(answer, "got 18");
    eventually(|| f.audit.records().len() == 1).await;
    assert_eq!(f.audit.records()[0].bytes_up, Some(18));
}

#[tokio::test]
async fn bad_routes_are_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "k").unwrap();
    let route = |upstream: &str, insecure: bool| Route {
        name: "r".into(),
        upstream: upstream.into(),
        header: "x-api-key".into(),
        format: "{secret}".into(),
        secret_file: key.display().to_string(),
        ca_file: None,
        insecure_http: insecure,
    };
    let try_cfg = |r: Route, private: &[&str]| {
        bottle_proxy::cred::Cred::new(
            CredConfig {
                bottle: "dev".into(),
                listen: vec![SocketAddr::new(LOCAL, 0)],
                routes: vec![r],
                allow_private: private.iter().map(|s| s.to_string()).collect(),
                limits: Limits::default(),
            },
            Arc::new(StaticResolver::default()),
            Audit::new("dev", Source::Cred, Box::new(MemoryAudit::default())),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert!(try_cfg(route("http://up.test/", false), &["up.test"])
        .unwrap_err()
        .contains("must be https"));
    assert!(try_cfg(route("http://up.test/", true), &[])
        .unwrap_err()
        .contains("must be https"));
    assert!(try_cfg(route("http://up.test/", true), &["up.test"]).is_ok());
    assert!(try_cfg(route("https://u:p@up.test/", false), &[]).is_err());
    assert!(try_cfg(route("https://up.test/?a=1", false), &[]).is_err());
    let mut r = route("https://up.test/", false);
    r.format = "Bearer".into();
    assert!(try_cfg(r, &[]).unwrap_err().contains("{secret}"));
    let mut r = route("https://up.test/", false);
    r.secret_file = "/nonexistent/key".into();
    assert!(try_cfg(r, &[]).unwrap_err().contains("/nonexistent/key"));
    // The secret never shows in Debug.
    let s = bottle_proxy::cred::Secret::read(&key.display().to_string()).unwrap();
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
}

#[tokio::test]
async fn insecure_http_route_for_tests() {
    let up = http_server(None, |req: Request<Incoming>| async move {
        Response::new(full(
            req.headers()
                .get("x-api-key")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "plain-key\r\n").unwrap();
    let cfg = CredConfig {
        bottle: "dev".into(),
        listen: vec![SocketAddr::new(LOCAL, 0)],
        routes: vec![Route {
            name: "local".into(),
            upstream: format!("http://up.test:{}", up.port()),
            header: "x-api-key".into(),
            format: "{secret}".into(),
            secret_file: key.display().to_string(),
            ca_file: None,
            insecure_http: true,
        }],
        allow_private: vec!["up.test".into()],
        limits: Limits::default(),
    };
    let running = bottle_proxy::cred::start(
        cfg,
        Arc::new(StaticResolver::default().with("up.test", &[LOCAL])),
        Audit::new("dev", Source::Cred, Box::new(MemoryAudit::default())),
    )
    .await
    .unwrap();
    // Keep-alive: two requests on one connection.
    let s = tokio::net::TcpStream::connect(running.addrs()[0])
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        let req = Request::get("/local/x")
            .header("host", "cred")
            .body(full(""))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), tx.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(text(resp).await, "plain-key");
    }
    running.shutdown().await;
}
