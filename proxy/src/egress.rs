//! The egress proxy: CONNECT tunnels and absolute-form plain HTTP, by the allow list.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bottle_proxy_config::{AuditRecord, Decision, EgressConfig};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::audit::Audit;
use crate::body::{audited_response, empty, full, strip_hop_by_hop, Body, Counted};
use crate::net::{connect_checked, resolve_checked, Unreachable};
use crate::resolve::SharedResolver;
/// The buffer of each direction of a CONNECT tunnel.
const TUNNEL_BUFFER: usize = 64 * 1024;

use crate::request::{connect_target, forward_target, BadForward};
use crate::rules::{suggested_entry, Host, Reason, Rules, Verdict};
use crate::server::{serve, ConnGuard, Handler, RespFuture};
use crate::{Error, Running};

/// The header carrying a refusal's reason token.
pub const DENY_HEADER: &str = "x-bottle-deny";

/// The egress proxy, ready to serve.
pub struct Egress {
    cfg: EgressConfig,
    rules: Rules,
    resolver: SharedResolver,
    audit: Audit,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// Checks the configuration (every entry parsed once, here).
    pub fn new(cfg: EgressConfig, resolver: SharedResolver, audit: Audit) -> Result<Egress, Error> {
        let routes: Vec<(String, String)> = cfg
            .routes
            .iter()
            .map(|r| (r.host.clone(), r.url.clone()))
            .collect();
        let rules = Rules::new(
            &cfg.allow,
            &cfg.deny,
            &cfg.allow_private,
            &cfg.own_hosts,
            &routes,
        )?;
        Ok(Egress {
            cfg,
            rules,
            resolver,
            audit,
        })
    }

    /// Binds every `listen` address and serves until shut down.
    pub async fn start(self) -> Result<Running, Error> {
        let listen = self.cfg.listen.clone();
        let limits = self.cfg.limits;
        serve(&listen, limits, Arc::new(self)).await
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.limits.connect_timeout_secs.max(1))
    }

    fn base_record(&self, decision: Decision, reason: &str, method: &Method) -> AuditRecord {
        let mut r = self.audit.record(decision, reason);
        r.method = Some(method.to_string());
        r
    }

    /// Logs and answers a refusal.
    fn refuse(&self, status: StatusCode, mut rec: AuditRecord, message: String) -> Response<Body> {
        rec.status = Some(status.as_u16());
        rec.detail = Some(message.clone());
        self.audit.write(&rec);
        let mut resp = Response::new(full(format!("{message}\n")));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&rec.reason) {
            h.insert(DENY_HEADER, v);
        }
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }

    /// The one line an agent (or a person) reads to learn why and what to change.
    fn explain(&self, verb: &str, host: &Host, port: u16, v: &Verdict) -> String {
        let b = &self.cfg.bottle;
        let dest = format!("{}:{port}", host);
        let section = format!("[bottles.{b}.egress] of bottle.toml");
        let why = match v.reason {
            Reason::NotAllowed => format!(
                "not in the allow list of bottle '{b}'; to allow it, add {:?} to allow in {section}",
                suggested_entry(host, port)
            ),
            Reason::PortNotAllowed => format!(
                "port {port} is not allowed by {:?} (a bare entry allows 443 and 80); to allow it, add {:?} to allow in {section}",
                v.rule.as_deref().unwrap_or(""),
                suggested_entry(host, port)
            ),
            Reason::DeniedByRule => format!(
                "matches {:?} in the deny list of bottle '{b}'; to allow it, remove that entry from deny in {section}",
                v.rule.as_deref().unwrap_or("")
            ),
            Reason::IpLiteral => format!(
                "an IP address, and bottle '{b}' allows names only; to allow it, add {:?} to allow in {section}",
                suggested_entry(host, port)
            ),
            Reason::OwnSidecar => format!(
                "one of bottle '{b}''s own containers, which the proxy never reaches"
            ),
            Reason::UseRoute => format!(
                "has a credential route: call {} instead",
                v.route_url.as_deref().unwrap_or("the route")
            ),
            Reason::Allowed => "allowed".to_string(),
        };
        format!("bottle: refused {verb} {dest}: {why}")
    }

    fn unreachable_message(&self, verb: &str, host: &Host, port: u16, u: &Unreachable) -> String {
        let b = &self.cfg.bottle;
        match u {
            Unreachable::Private { .. } => format!(
                "bottle: refused {verb} {host}:{port}: {u}; to allow it, add {:?} to allow_private in [bottles.{b}.egress] of bottle.toml",
                host.to_string().trim_start_matches('[').trim_end_matches(']')
            ),
            _ => format!("bottle: {verb} {host}:{port} failed: {u}"),
        }
    }

    /// Decides by name, then resolves, checks and connects.
    async fn open(
        &self,
        verb: &str,
        host: &Host,
        port: u16,
        rec: &mut AuditRecord,
    ) -> Result<(TcpStream, SocketAddr), Response<Body>> {
        rec.host = Some(host.to_string());
        rec.port = Some(port);
        let v = self.rules.decide(host, port);
        rec.rule = v.rule.clone();
        if !v.allowed() {
            rec.reason = v.reason.token().into();
            let msg = self.explain(verb, host, port, &v);
            return Err(self.refuse(StatusCode::FORBIDDEN, rec.clone(), msg));
        }
        let private_rule = self.rules.private_allowed(host);
        let checked =
            match resolve_checked(&*self.resolver, host, port, private_rule.is_some()).await {
                Ok(a) => a,
                Err(u) => return Err(self.unreachable(verb, host, port, u, rec)),
            };
        match connect_checked(host, &checked, self.connect_timeout()).await {
            Ok((s, addr)) => {
                rec.addr = Some(addr.to_string());
                Ok((s, addr))
            }
            Err(u) => Err(self.unreachable(verb, host, port, u, rec)),
        }
    }

    fn unreachable(
        &self,
        verb: &str,
        host: &Host,
        port: u16,
        u: Unreachable,
        rec: &AuditRecord,
    ) -> Response<Body> {
        let mut rec = rec.clone();
        rec.reason = u.token().into();
        let status = match u {
            Unreachable::Private { addr, .. } => {
                rec.addr = Some(SocketAddr::new(addr, port).to_string());
                StatusCode::FORBIDDEN
            }
            Unreachable::Resolve { .. } | Unreachable::Connect { .. } => {
                rec.decision = Decision::Allow;
                StatusCode::BAD_GATEWAY
            }
        };
        let msg = self.unreachable_message(verb, host, port, &u);
        self.refuse(status, rec, msg)
    }

    async fn connect(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        guard: Arc<ConnGuard>,
    ) -> Response<Body> {
        let mut rec = self.base_record(Decision::Deny, "bad-request", req.method());
        let Some((host, port)) = connect_target(req.uri()) else {
            let msg = format!(
                "bottle: CONNECT needs host:port, not {:?}",
                req.uri().to_string()
            );
            return self.refuse(StatusCode::BAD_REQUEST, rec, msg);
        };
        let (upstream, _addr) = match self.open("CONNECT", &host, port, &mut rec).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let idle = Duration::from_secs(self.cfg.limits.idle_timeout_secs.max(1));
        let audit = self.audit.clone();
        tokio::spawn(async move {
            let _guard = guard; // the tunnel keeps its connection slot
            let started = Instant::now();
            rec.decision = Decision::Allow;
            rec.reason = Reason::Allowed.token().into();
            rec.status = Some(200);
            let client = match upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    rec.detail = Some(format!("client upgrade failed: {e}"));
                    audit.write(&rec);
                    return;
                }
            };
            let meter = Arc::new(Meter::new());
            let mut upstream = Metered {
                inner: upstream,
                meter: meter.clone(),
            };
            let mut client = TokioIo::new(client);
            let outcome = tokio::select! {
                // 64 KiB a direction rather than the default 8: fewer, larger hand-offs
                // between the agent, the proxy and the upstream on a busy machine (the
                // bench's 200 MB download: docs/performance.md).
                r = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, TUNNEL_BUFFER, TUNNEL_BUFFER) => match r {
                    Ok(_) => None,
                    Err(e) => Some(format!("tunnel closed: {e}")),
                },
                _ = meter.idle_for(idle) => Some(format!("closed after {}s without traffic", idle.as_secs())),
            };
            rec.bytes_up = Some(meter.up.load(Ordering::Relaxed));
            rec.bytes_down = Some(meter.down.load(Ordering::Relaxed));
            rec.duration_ms = Some(started.elapsed().as_millis() as u64);
            rec.detail = outcome;
            audit.write(&rec);
        });
        Response::new(empty())
    }

    async fn forward(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let mut rec = self.base_record(Decision::Deny, "not-a-proxy-request", req.method());
        rec.path = Some(req.uri().path().to_string());
        let uri = req.uri().clone();
        let (host, port) = match forward_target(&uri, req.headers().get(http::header::HOST)) {
            Ok(target) => target,
            Err(BadForward::NotProxyRequest) => {
                let msg = format!(
                    "bottle: this is bottle '{}''s egress proxy, not a web server: send proxy requests (absolute URLs, or CONNECT for https) by setting HTTP_PROXY and HTTPS_PROXY",
                    self.cfg.bottle
                );
                return self.refuse(StatusCode::BAD_REQUEST, rec, msg);
            }
            Err(BadForward::NotHttp) => {
                rec.reason = "bad-request".into();
                let msg = format!("bottle: only http:// URLs are forwarded; use CONNECT for {uri}");
                return self.refuse(StatusCode::BAD_REQUEST, rec, msg);
            }
            Err(BadForward::InvalidHost) => {
                rec.reason = "bad-request".into();
                let msg = format!("bottle: invalid host in {uri}");
                return self.refuse(StatusCode::BAD_REQUEST, rec, msg);
            }
            Err(BadForward::HostMismatch(host, port)) => {
                rec.reason = "host-mismatch".into();
                rec.host = Some(host.to_string());
                rec.port = Some(port);
                let sent = req
                    .headers()
                    .get(http::header::HOST)
                    .map(|h| h.as_bytes())
                    .unwrap_or_default();
                let msg = format!(
                    "bottle: refused {} {host}:{port}: the Host header {:?} does not name the URL's host",
                    req.method(),
                    String::from_utf8_lossy(sent)
                );
                return self.refuse(StatusCode::FORBIDDEN, rec, msg);
            }
        };
        let verb = req.method().to_string();
        let (stream, _addr) = match self.open(&verb, &host, port, &mut rec).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        rec.decision = Decision::Allow;
        rec.reason = Reason::Allowed.token().into();

        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if !parts.headers.contains_key(http::header::HOST) {
            // forward_target found an authority in the URL.
            if let Some(v) = uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        let up = Arc::new(AtomicU64::new(0));
        let idle = Duration::from_secs(self.cfg.limits.idle_timeout_secs.max(1));
        let body = Counted::new(body, up.clone()).idle_limit(idle).boxed();
        let out = Request::from_parts(parts, body);

        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => return self.upstream_failed(rec, &host, port, e.to_string()),
            };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = match tokio::time::timeout(idle, sender.send_request(out)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.upstream_failed(rec, &host, port, e.to_string()),
            Err(_) => {
                let why = format!("no response within {}s", idle.as_secs());
                return self.upstream_failed(rec, &host, port, why);
            }
        };
        audited_response(resp, rec, up, started, idle, self.audit.clone())
    }

    fn upstream_failed(
        &self,
        mut rec: AuditRecord,
        host: &Host,
        port: u16,
        e: String,
    ) -> Response<Body> {
        rec.reason = "upstream-error".into();
        let msg = format!("bottle: {host}:{port} failed: {e}");
        self.refuse(StatusCode::BAD_GATEWAY, rec, msg)
    }
}

impl Handler for Egress {
    fn handle(self: Arc<Self>, req: Request<Incoming>, guard: Arc<ConnGuard>) -> RespFuture {
        Box::pin(async move {
            if req.method() == Method::CONNECT {
                self.connect(req, guard).await
            } else {
                self.forward(req).await
            }
        })
    }

    fn over_capacity(&self) -> Response<Body> {
        let rec = self.audit.record(Decision::Deny, "over-capacity");
        let msg = format!(
            "bottle: egress proxy of bottle '{}' is at its limit of {} connections; retry later",
            self.cfg.bottle, self.cfg.limits.max_connections
        );
        self.refuse(StatusCode::SERVICE_UNAVAILABLE, rec, msg)
    }
}

/// Bytes each way and the time of the last one, for a tunnel.
struct Meter {
    start: Instant,
    up: AtomicU64,
    down: AtomicU64,
    last_ms: AtomicU64,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            start: Instant::now(),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Completes once no byte moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = self.start + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The upstream side of a tunnel: its writes are bytes up, its reads bytes down.
struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.meter.down.fetch_add(n as u64, Ordering::Relaxed);
            self.meter.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.meter.up.fetch_add(n as u64, Ordering::Relaxed);
                self.meter.touch();
            }
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Starts an egress proxy with lines going to `audit` (what the binary and tests call).
pub async fn start(
    cfg: EgressConfig,
    resolver: SharedResolver,
    audit: Audit,
) -> Result<Running, Error> {
    Egress::new(cfg, resolver, audit)?.start().await
}
