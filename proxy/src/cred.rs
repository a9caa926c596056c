//! The credential sidecar: `/<route>/rest` to `<upstream base>/rest`, with the key.
//!
//! The agent calls plain HTTP on the bottle's internal network; this sidecar drops every
//! credential the agent sent, adds the route's real key, and forwards over TLS (the
//! upstream's certificate and name checked), streaming both ways. It connects only to
//! its routes' upstreams, resolving and checking addresses as the egress proxy does.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bottle_proxy_config::{AuditRecord, CredConfig, Decision, Route};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::audit::Audit;
use crate::body::{audited_response, full, strip_hop_by_hop, Body, BoxError, Counted};
use crate::net::{connect_checked, resolve_checked, Unreachable};
use crate::request::{has_dot_segment, route_path, route_target};
use crate::resolve::SharedResolver;
use crate::rules::{Entry, Host, List};
use crate::server::{serve, ConnGuard, Handler, RespFuture};
use crate::{Error, Running};

/// Credential headers an agent might send; always removed before forwarding.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
];

/// A key read from a file. `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Reads the key, dropping one trailing newline (`\n` or `\r\n`).
    pub fn read(path: &str) -> Result<Secret, Error> {
        let mut s = std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: "read secret file",
            path: path.to_string(),
            source,
        })?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        Ok(Secret(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One route, checked and ready.
struct Ready {
    name: String,
    /// `https` or (tests only) `http`.
    scheme: http::uri::Scheme,
    /// What goes into `Host`: `host` or `host:port` for a non-default port.
    authority: http::uri::Authority,
    /// The upstream's path prefix, without a trailing `/`.
    base: String,
    header: HeaderName,
    value: HeaderValue,
    client: Client<RouteConnector, Body>,
}

/// The credential sidecar, ready to serve.
pub struct Cred {
    bottle: String,
    routes: Vec<Ready>,
    audit: Audit,
    listen: Vec<SocketAddr>,
    limits: bottle_proxy_config::Limits,
}

impl fmt::Debug for Cred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cred")
            .field("bottle", &self.bottle)
            .field(
                "routes",
                &self.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Cred {
    /// Checks every route, reads its secret and CA file, and builds its client.
    pub fn new(cfg: CredConfig, resolver: SharedResolver, audit: Audit) -> Result<Cred, Error> {
        let private: Vec<Entry> = cfg
            .allow_private
            .iter()
            .map(|e| Entry::parse(e, List::AllowPrivate))
            .collect::<Result<_, _>>()?;
        let mut routes: Vec<Ready> = Vec::new();
        for r in &cfg.routes {
            if routes.iter().any(|x| x.name == r.name) {
                return Err(Error::Config(format!(
                    "route {:?} is declared twice",
                    r.name
                )));
            }
            routes.push(ready(r, &private, &resolver, &cfg.limits)?);
        }
        Ok(Cred {
            bottle: cfg.bottle,
            routes,
            audit,
            listen: cfg.listen,
            limits: cfg.limits,
        })
    }

    /// Binds every `listen` address and serves until shut down.
    pub async fn start(self) -> Result<Running, Error> {
        let listen = self.listen.clone();
        let limits = self.limits;
        serve(&listen, limits, Arc::new(self)).await
    }

    fn answer(&self, status: StatusCode, mut rec: AuditRecord, message: String) -> Response<Body> {
        rec.status = Some(status.as_u16());
        rec.detail = Some(message.clone());
        self.audit.write(&rec);
        let mut resp = Response::new(full(format!("{message}\n")));
        *resp.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&rec.reason) {
            resp.headers_mut().insert(crate::egress::DENY_HEADER, v);
        }
        resp
    }

    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let mut rec = self.audit.record(Decision::Deny, "unknown-route");
        rec.method = Some(req.method().to_string());
        // Never the query string: it may carry tokens.
        rec.path = Some(req.uri().path().to_string());
        let (name, rest) = route_path(req.uri().path());
        let Some(route) = self.routes.iter().find(|r| r.name == name) else {
            let known: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
            let msg = format!(
                "bottle: no route {name:?} in bottle '{}'; call http://<this host>/<route>/..., the routes are: {}",
                self.bottle,
                if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
            );
            return self.answer(StatusCode::NOT_FOUND, rec, msg);
        };
        // A dot segment would let the upstream resolve the path outside the route's
        // base; refuse it rather than guess how the upstream normalises.
        if has_dot_segment(rest) {
            rec.reason = "bad-request".into();
            rec.route = Some(route.name.clone());
            let msg = format!(
                "bottle: route {:?}: the path may not hold \".\" or \"..\" segments",
                route.name
            );
            return self.answer(StatusCode::BAD_REQUEST, rec, msg);
        }
        rec.route = Some(route.name.clone());
        rec.host = Some(route.authority.host().to_string());
        rec.port = Some(
            route
                .authority
                .port_u16()
                .unwrap_or(default_port(&route.scheme)),
        );
        rec.decision = Decision::Allow;
        rec.reason = "allowed".into();

        let target = route_target(&route.base, rest, req.uri().query());
        let uri = Uri::builder()
            .scheme(route.scheme.clone())
            .authority(route.authority.clone())
            .path_and_query(target)
            .build();
        let Ok(uri) = uri else {
            rec.reason = "bad-request".into();
            rec.decision = Decision::Deny;
            return self.answer(
                StatusCode::BAD_REQUEST,
                rec,
                "bottle: invalid request path".into(),
            );
        };
        let (mut parts, body) = req.into_parts();
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        for h in CREDENTIAL_HEADERS {
            parts.headers.remove(*h);
        }
        parts.headers.remove(&route.header);
        parts.headers.insert(
            http::header::HOST,
            HeaderValue::from_str(route.authority.as_str())
                .expect("an authority is a valid header"),
        );
        parts
            .headers
            .insert(route.header.clone(), route.value.clone());
        let up = Arc::new(AtomicU64::new(0));
        let idle = Duration::from_secs(self.limits.idle_timeout_secs.max(1));
        let body = Counted::new(body, up.clone()).idle_limit(idle).boxed();
        let resp = match route.client.request(Request::from_parts(parts, body)).await {
            Ok(r) => r,
            Err(e) => {
                let (reason, why) = connect_failure(&e);
                rec.reason = reason.into();
                if reason == "private-address" {
                    rec.decision = Decision::Deny;
                }
                rec.bytes_up = Some(up.load(Ordering::Relaxed));
                rec.duration_ms = Some(started.elapsed().as_millis() as u64);
                let msg = format!(
                    "bottle: route {:?} of bottle '{}': upstream {} failed: {why}",
                    route.name, self.bottle, route.authority
                );
                return self.answer(StatusCode::BAD_GATEWAY, rec, msg);
            }
        };
        audited_response(resp, rec, up, started, idle, self.audit.clone())
    }
}

impl Handler for Cred {
    fn handle(self: Arc<Self>, req: Request<Incoming>, _guard: Arc<ConnGuard>) -> RespFuture {
        Box::pin(self.route(req))
    }

    fn over_capacity(&self) -> Response<Body> {
        let rec = self.audit.record(Decision::Deny, "over-capacity");
        let msg = format!(
            "bottle: credential sidecar of bottle '{}' is at its limit of {} connections; retry later",
            self.bottle, self.limits.max_connections
        );
        self.answer(StatusCode::SERVICE_UNAVAILABLE, rec, msg)
    }
}

fn default_port(scheme: &http::uri::Scheme) -> u16 {
    if *scheme == http::uri::Scheme::HTTPS {
        443
    } else {
        80
    }
}

/// The reason token and a message for a failed upstream request.
fn connect_failure(e: &hyper_util::client::legacy::Error) -> (&'static str, String) {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(u) = s.downcast_ref::<Unreachable>() {
            return (u.token(), u.to_string());
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(u) = io.get_ref().and_then(|i| i.downcast_ref::<Unreachable>()) {
                return (u.token(), u.to_string());
            }
        }
        src = s.source();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ("upstream-error", msg)
}

fn ready(
    r: &Route,
    private: &[Entry],
    resolver: &SharedResolver,
    limits: &bottle_proxy_config::Limits,
) -> Result<Ready, Error> {
    let bad = |why: String| Error::Config(format!("route {:?}: {why}", r.name));
    if r.name.is_empty()
        || !r
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(bad(
            "the name must be one path segment of [A-Za-z0-9._-]".into()
        ));
    }
    let uri: Uri = r
        .upstream
        .parse()
        .map_err(|e| bad(format!("upstream {:?} is not a URL: {e}", r.upstream)))?;
    let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
        return Err(bad(format!(
            "upstream {:?} must be https://host[:port][/base]",
            r.upstream
        )));
    };
    if authority.as_str().contains('@') || uri.query().is_some() {
        return Err(bad(format!(
            "upstream {:?} may hold no user info and no query",
            r.upstream
        )));
    }
    let host = Host::parse(authority.host()).map_err(bad)?;
    let private_ok = private.iter().any(|e| e.matches(&host, 0));
    let tls = if scheme == http::uri::Scheme::HTTPS {
        true
    } else if scheme == http::uri::Scheme::HTTP && r.insecure_http && private_ok {
        false
    } else {
        return Err(bad(format!(
            "upstream {:?} must be https (plain http only for tests: insecure_http with the host in allow_private)",
            r.upstream
        )));
    };
    let header = HeaderName::from_bytes(r.header.as_bytes())
        .map_err(|_| bad(format!("invalid header name {:?}", r.header)))?;
    if !r.format.contains("{secret}") {
        return Err(bad("format must contain {secret}".into()));
    }
    let secret = Secret::read(&r.secret_file)?;
    let mut value =
        HeaderValue::from_str(&r.format.replace("{secret}", &secret.0)).map_err(|_| {
            bad(format!(
                "the secret in {} does not make a valid header value",
                r.secret_file
            ))
        })?;
    value.set_sensitive(true);
    let tls = if tls {
        Some(TlsConnector::from(Arc::new(
            client_tls(r.ca_file.as_deref()).map_err(bad)?,
        )))
    } else {
        None
    };
    let port = authority.port_u16().unwrap_or(default_port(&scheme));
    let connector = RouteConnector(Arc::new(ConnectorInner {
        host,
        port,
        tls,
        resolver: resolver.clone(),
        private_ok,
        timeout: Duration::from_secs(limits.connect_timeout_secs.max(1)),
    }));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    Ok(Ready {
        name: r.name.clone(),
        scheme,
        authority,
        base: uri.path().trim_end_matches('/').to_string(),
        header,
        value,
        client,
    })
}

/// rustls with the ring provider, trusting webpki's roots and the optional PEM file.
fn client_tls(ca_file: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("ca_file {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {path}: {e}"))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("ca_file {path} holds no certificate"));
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

struct ConnectorInner {
    host: Host,
    port: u16,
    tls: Option<TlsConnector>,
    resolver: SharedResolver,
    private_ok: bool,
    timeout: Duration,
}

/// hyper-util's client connector for one route: whatever URI it is handed, it connects
/// only to the route's upstream, at an address it resolved and checked itself.
#[derive(Clone)]
pub struct RouteConnector(Arc<ConnectorInner>);

impl tower_service::Service<Uri> for RouteConnector {
    type Response = TokioIo<Upstream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let c = self.0.clone();
        Box::pin(async move {
            let addrs = resolve_checked(&*c.resolver, &c.host, c.port, c.private_ok).await?;
            let (tcp, _addr) = connect_checked(&c.host, &addrs, c.timeout).await?;
            let Some(tls) = &c.tls else {
                return Ok(TokioIo::new(Upstream::Plain(tcp)));
            };
            let name = match &c.host {
                Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone())?,
                Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
            };
            let s = tokio::time::timeout(c.timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| format!("TLS handshake with {} timed out", c.host))??;
            Ok(TokioIo::new(Upstream::Tls(Box::new(s))))
        })
    }
}

/// A connection to an upstream: TLS, or plain for `insecure_http` test routes.
pub enum Upstream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Starts a credential sidecar with lines going to `audit`.
pub async fn start(
    cfg: CredConfig,
    resolver: SharedResolver,
    audit: Audit,
) -> Result<Running, Error> {
    Cred::new(cfg, resolver, audit)?.start().await
}
