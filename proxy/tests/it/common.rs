//! Fixtures: a test CA, TLS and plain servers on loopback, a proxy client built on hyper.
//! Everything listens on 127.0.0.1 and no test ever sends a DNS query outside.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|n| match n {}).boxed()
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and one leaf certificate for the given names.
pub struct Pki {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Pki {
    pub fn new(names: &[&str]) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bottle test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            leaf: leaf.der().clone(),
            key: leaf_key.serialize_der(),
        }
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(cfg))
    }

    pub fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(cfg))
    }
}

/// Serves HTTP/1.1 with `f` on every connection of a loopback listener, over TLS when
/// an acceptor is given. Returns the bound address.
pub async fn http_server<F, Fut>(tls: Option<TlsAcceptor>, f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let l = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let f = f.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let b = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acc) => {
                        if let Ok(s) = acc.accept(s).await {
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = b.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
            });
        }
    });
    addr
}

/// A TLS server that echoes every byte back: a long-lived stream.
pub async fn tls_echo_server(acc: TlsAcceptor) -> SocketAddr {
    let l = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acc = acc.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acc.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            let _ = s.flush().await;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends one request on a fresh HTTP/1.1 connection to `addr` (the proxy); the
/// request's URI is sent as given (absolute form for proxy requests).
pub async fn send(addr: SocketAddr, req: Request<Body>) -> Response<Incoming> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    tokio::time::timeout(WAIT, tx.send_request(req))
        .await
        .expect("answer in time")
        .unwrap()
}

pub async fn text(resp: Response<Incoming>) -> String {
    let b = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

/// CONNECT `target` through the proxy; Ok(tunnel) on 200, Err(response) otherwise.
pub async fn connect(
    proxy: SocketAddr,
    target: &str,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, Response<Incoming>> {
    let req = Request::connect(target)
        .header("host", target)
        .body(full(Bytes::new()))
        .unwrap();
    let resp = send(proxy, req).await;
    if resp.status() != StatusCode::OK {
        return Err(resp);
    }
    let up = tokio::time::timeout(WAIT, hyper::upgrade::on(resp))
        .await
        .unwrap()
        .unwrap();
    Ok(TokioIo::new(up))
}

/// CONNECT, then TLS to `name` (checked against the test CA), then `GET path`.
pub async fn get_via_tunnel(
    proxy: SocketAddr,
    pki: &Pki,
    name: &str,
    port: u16,
    path: &str,
) -> Result<(StatusCode, String), Response<Incoming>> {
    let tunnel = connect(proxy, &format!("{name}:{port}")).await?;
    let tls = pki
        .connector()
        .connect(ServerName::try_from(name.to_string()).unwrap(), tunnel)
        .await
        .unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", name)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status();
    Ok((status, text(resp).await))
}

/// The refusal's reason header.
pub fn deny_reason(resp: &Response<Incoming>) -> String {
    resp.headers()
        .get("x-bottle-deny")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Waits until `f` holds (audit lines of tunnels are written when they close).
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
