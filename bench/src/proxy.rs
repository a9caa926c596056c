//! The egress proxy measures: bottle-proxy against the same HTTPS requests straight, and
//! against squid and tinyproxy, each set up as a CONNECT allowlist proxy for one origin.
//!
//! Everything runs on loopback on the host: an origin (TLS, rustls, a certificate made
//! by rcgen for `origin.bench.test`) in this process; bottle-proxy, squid and tinyproxy as
//! host processes, each allowing CONNECT to that origin's host and port only; the client
//! in this process (hyper over tokio-rustls, CONNECT with hyper's client and upgrade). No
//! name is ever looked up in the DNS: bottle-proxy reads `origin.bench.test` from a hosts
//! file and is given a resolv.conf naming no server; squid reads it from its `hosts_file`
//! and its `dns_nameservers` is 127.0.0.1 (nothing outside could be asked); tinyproxy
//! resolves with the C library, which would ask the system's name server for a name, so
//! the client asks it for `127.0.0.1:PORT` and its filter allows that host only.
//!
//! | measure | bottle | baseline | peers |
//! |---|---|---|---|
//! | proxy_latency | a new connection + CONNECT + TLS + GET of a tiny body through bottle-proxy | the same straight to the origin | squid, tinyproxy |
//! | proxy_throughput | one 200 MB download through bottle-proxy | the same straight | squid, tinyproxy |
//! | proxy_tunnels | 100 tunnels at once, each a request, all open together | 100 connections at once straight | squid, tinyproxy |
//! | proxy_memory | bottle-proxy's RSS idle after start | (absolute) | squid, tinyproxy |

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::cleanup::{on_runtime, process_register};
use crate::results::{Measure, Series, Target};

/// The measures of this module, in the order they run.
pub(crate) const MEASURES: [&str; 4] = [
    "proxy_latency",
    "proxy_throughput",
    "proxy_tunnels",
    "proxy_memory",
];

/// The origin's name, mapped to 127.0.0.1 in the proxies' hosts files.
const HOST: &str = "origin.bench.test";
/// Latency samples per path, after the warm-up ones.
const LATENCY_SAMPLES: usize = 300;
const LATENCY_WARMUP: usize = 30;
/// The throughput download: 200 MB.
const BIG_BYTES: u64 = 200_000_000;
/// The chunk the origin sends it in.
const CHUNK: usize = 64 * 1024;
/// Tunnels at once in `proxy_tunnels`.
const TUNNELS: usize = 100;
/// Limits: one latency sample, one download, one round of tunnels, a proxy's start.
const SAMPLE_LIMIT: Duration = Duration::from_secs(10);
const DOWNLOAD_LIMIT: Duration = Duration::from_secs(120);
const TUNNELS_LIMIT: Duration = Duration::from_secs(60);
const START_LIMIT: Duration = Duration::from_secs(15);

/// How a request reaches the origin.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    name: &'static str,
    /// The proxy's address; none for straight.
    proxy: Option<SocketAddr>,
    /// The CONNECT target.
    authority: String,
    pub(crate) pid: Option<u32>,
}

/// What the caller wants measured, and with what.
pub(crate) struct ProxyRun<'a> {
    pub(crate) proxy_bin: &'a Path,
    pub(crate) dir: &'a Path,
    pub(crate) runs: usize,
    pub(crate) wants: &'a dyn Fn(&str) -> bool,
}

/// Runs the wanted proxy measures; returns them and the facts (versions, memory).
pub(crate) fn measure_proxies(
    run: &ProxyRun<'_>,
) -> anyhow::Result<(Vec<Measure>, serde_json::Map<String, Value>)> {
    // Whatever happened, the processes it started go.
    on_runtime(measure_all(run))
}

async fn measure_all(
    run: &ProxyRun<'_>,
) -> anyhow::Result<(Vec<Measure>, serde_json::Map<String, Value>)> {
    let dir = run.dir.join("proxies");
    std::fs::create_dir_all(&dir)?;
    // squid and tinyproxy drop to their own users: they must reach their files.
    set_mode(run.dir, 0o755)?;
    set_mode(&dir, 0o777)?;

    let (tls, acceptor) = certificates()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let origin = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, acceptor));
    let result = measure_with_origin(run, &dir, origin, tls).await;
    server.abort();
    result
}

async fn measure_with_origin(
    run: &ProxyRun<'_>,
    dir: &Path,
    origin: SocketAddr,
    tls: TlsConnector,
) -> anyhow::Result<(Vec<Measure>, serde_json::Map<String, Value>)> {
    let port = origin.port();
    let authority = format!("{HOST}:{port}");
    let mut facts = serde_json::Map::new();

    let straight = Route {
        name: "straight",
        proxy: None,
        authority: authority.clone(),
        pid: None,
    };
    let bottle = start_bottle_proxy(run.proxy_bin, dir, port).await?;
    let squid = start_squid(dir, port).await?;
    let tinyproxy = start_tinyproxy(dir, port).await?;
    let proxies = [&bottle, &squid, &tinyproxy];
    facts.insert(
        "proxy_versions".into(),
        json!({
            "bottle-proxy": version(Command::new(run.proxy_bin).arg("--version")),
            "squid": version(Command::new("squid").arg("-v")),
            "tinyproxy": version(Command::new("tinyproxy").arg("-v")),
        }),
    );

    // Idle: started and listening (one TCP probe, no request), settled.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start: Vec<Mem> = proxies.iter().map(|r| mem(r.pid)).collect();

    // Each is an allowlist: a CONNECT elsewhere is refused (no connection is made, no
    // name looked up: the refused names are not in any hosts file and are refused first).
    for (r, other) in [
        (&bottle, format!("other.bench.test:{port}")),
        (&squid, format!("other.bench.test:{port}")),
        (&tinyproxy, format!("127.0.0.2:{port}")),
    ] {
        let proxy = r.proxy.context("a proxy route")?;
        match tunnel(proxy, &other).await {
            Ok(_) => bail!("{} allowed CONNECT {other}: not an allowlist", r.name),
            Err(e) if format!("{e:#}").contains("answered") => {}
            Err(e) => return Err(e.context(format!("{}: CONNECT {other}", r.name))),
        }
    }
    // And each reaches the origin.
    for r in [&straight, &bottle, &squid, &tinyproxy] {
        fetch(r, &tls, origin, "/small")
            .await
            .with_context(|| format!("a first request via {}", r.name))?;
    }

    let routes = [&straight, &bottle, &squid, &tinyproxy];
    let mut measures = Vec::new();
    if (run.wants)("proxy_latency") {
        eprintln!("proxy_latency: {LATENCY_SAMPLES} requests per path after {LATENCY_WARMUP} warm-ups, interleaved");
        measures.push(latency(&routes, &tls, origin).await);
    }
    if (run.wants)("proxy_throughput") {
        eprintln!(
            "proxy_throughput: {} downloads of {} MB per path after a warm-up",
            run.runs,
            BIG_BYTES / 1_000_000
        );
        measures.push(throughput(&routes, &tls, origin, run.runs).await);
    }
    let mut under_load = vec![Mem::default(); proxies.len()];
    if (run.wants)("proxy_tunnels") || (run.wants)("proxy_memory") {
        eprintln!(
            "proxy_tunnels: {} rounds of {TUNNELS} tunnels at once per path after a warm-up",
            run.runs
        );
        let (m, load) = tunnels(&routes, &tls, origin, run.runs).await;
        // The peak RSS seen while all tunnels were open, per proxy (routes 1..).
        for (i, slot) in under_load.iter_mut().enumerate() {
            *slot = load[i + 1];
        }
        if (run.wants)("proxy_tunnels") {
            measures.push(m);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_after: Vec<Mem> = proxies.iter().map(|r| mem(r.pid)).collect();
    let mut memory = serde_json::Map::new();
    for (i, r) in proxies.iter().enumerate() {
        memory.insert(
            r.name.into(),
            json!({
                "idle_after_start": idle_start[i].json(),
                "all_tunnels_open": under_load[i].json(),
                "idle_after_load": idle_after[i].json(),
            }),
        );
    }
    facts.insert("proxy_memory".into(), Value::Object(memory.clone()));
    if (run.wants)("proxy_memory") {
        measures.push(memory_measure(
            proxies.map(|r| r.name),
            &idle_start,
            &under_load,
            &idle_after,
            Value::Object(memory),
        ));
    }
    Ok((measures, facts))
}

// ---- the measures ----

async fn latency(routes: &[&Route; 4], tls: &TlsConnector, origin: SocketAddr) -> Measure {
    let mut series: [Series; 4] = Default::default();
    for i in 0..LATENCY_WARMUP + LATENCY_SAMPLES {
        // Rotate the order, so no path always follows another.
        for k in 0..routes.len() {
            let j = (i + k) % routes.len();
            let r = tokio::time::timeout(SAMPLE_LIMIT, fetch(routes[j], tls, origin, "/small"))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {SAMPLE_LIMIT:?}")))
                .map(|(_, t)| t);
            if i >= LATENCY_WARMUP {
                series[j].record(r);
            }
        }
    }
    let [straight, bottle, squid, tinyproxy] = series;
    let mut m = Measure::new(
        "proxy_latency",
        "a new TCP connection, CONNECT, TLS handshake and GET of a 3-byte body through bottle-proxy",
        "the same straight to the origin",
        Target::AddedMillis(1.0),
    );
    let q = |s: &Series, q: f64| s.quantile(q).unwrap_or(f64::NAN) * 1e3;
    let mut details = serde_json::Map::new();
    let mut added_p50 = Vec::new();
    for (name, s) in [
        ("straight", &straight),
        ("bottle-proxy", &bottle),
        ("squid", &squid),
        ("tinyproxy", &tinyproxy),
    ] {
        let (p50, p99) = (q(s, 0.5), q(s, 0.99));
        let (a50, a99) = (p50 - q(&straight, 0.5), p99 - q(&straight, 0.99));
        details.insert(
            name.into(),
            json!({ "p50_ms": p50, "p99_ms": p99, "added_p50_ms": a50, "added_p99_ms": a99, "errors": s.errors.len() }),
        );
        if name != "straight" {
            added_p50.push(a50);
            m.notes.push(format!(
                "{name}: p50 {p50:.3} ms (+{a50:.3}), p99 {p99:.3} ms (+{a99:.3}){}",
                errors(s)
            ));
        } else {
            m.notes.push(format!(
                "straight: p50 {p50:.3} ms, p99 {p99:.3} ms{}",
                errors(s)
            ));
        }
    }
    m.checks.push((
        format!(
            "p50 added below squid's ({:.3} < {:.3} ms)",
            added_p50[0], added_p50[1]
        ),
        added_p50[0] < added_p50[1],
    ));
    m.checks.push((
        format!(
            "p50 added below tinyproxy's ({:.3} < {:.3} ms)",
            added_p50[0], added_p50[2]
        ),
        added_p50[0] < added_p50[2],
    ));
    m.details = Value::Object(details);
    m.bottle = bottle;
    m.baseline = straight;
    m.peers = vec![("squid".into(), squid), ("tinyproxy".into(), tinyproxy)];
    m
}

async fn throughput(
    routes: &[&Route; 4],
    tls: &TlsConnector,
    origin: SocketAddr,
    runs: usize,
) -> Measure {
    let mut series: [Series; 4] = Default::default();
    // CPU seconds over the counted downloads: the proxy's, and this process's (the
    // client and the origin).
    let mut cpu_proxy = [0.0f64; 4];
    let mut cpu_bench = [0.0f64; 4];
    let me = Some(std::process::id());
    for i in 0..=runs {
        for k in 0..routes.len() {
            let j = (i + k) % routes.len();
            let (p0, b0) = (cpu(routes[j].pid), cpu(me));
            let r = tokio::time::timeout(DOWNLOAD_LIMIT, fetch(routes[j], tls, origin, "/big"))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("not done within {DOWNLOAD_LIMIT:?}")))
                .and_then(|(n, t)| {
                    if n != BIG_BYTES {
                        bail!("got {n} bytes of {BIG_BYTES}");
                    }
                    Ok(t)
                });
            if i > 0 {
                cpu_proxy[j] += cpu(routes[j].pid) - p0;
                cpu_bench[j] += cpu(me) - b0;
                series[j].record(r);
            }
        }
        if i > 0 {
            eprintln!("  round {i} of {runs}");
        }
    }
    let [straight, bottle, squid, tinyproxy] = series;
    let mut m = Measure::new(
        "proxy_throughput",
        "one 200 MB HTTPS download through bottle-proxy (new connection, CONNECT, TLS)",
        "the same straight to the origin",
        Target::Ratio(1.0 / 0.95),
    );
    let mbps = |s: &Series| s.median().map_or(f64::NAN, |t| BIG_BYTES as f64 / 1e6 / t);
    let base = mbps(&straight);
    let mut details = serde_json::Map::new();
    let per = runs.max(1) as f64;
    for (j, (name, s)) in [
        ("straight", &straight),
        ("bottle-proxy", &bottle),
        ("squid", &squid),
        ("tinyproxy", &tinyproxy),
    ]
    .into_iter()
    .enumerate()
    {
        let v = mbps(s);
        let (cp, cb) = (cpu_proxy[j] / per, cpu_bench[j] / per);
        details.insert(
            name.into(),
            json!({ "median_mb_per_s": v, "of_straight": v / base,
                    "cpu_s_per_download_proxy": cp, "cpu_s_per_download_client_and_origin": cb }),
        );
        m.notes.push(format!(
            "{name}: {v:.0} MB/s ({:.2} of straight); CPU per download: {}client + origin {cb:.2} s{}",
            v / base,
            if j == 0 { String::new() } else { format!("proxy {cp:.2} s, ") },
            errors(s)
        ));
    }
    m.notes
        .push("target: throughput >= 0.95 of straight, i.e. time ratio <= 1.053".into());
    m.details = Value::Object(details);
    m.bottle = bottle;
    m.baseline = straight;
    m.peers = vec![("squid".into(), squid), ("tinyproxy".into(), tinyproxy)];
    m
}

/// Rounds of [`TUNNELS`] at once per route; returns the measure and, per route, the
/// highest RSS seen with all tunnels open.
async fn tunnels(
    routes: &[&Route; 4],
    tls: &TlsConnector,
    origin: SocketAddr,
    runs: usize,
) -> (Measure, Vec<Mem>) {
    let mut series: [Series; 4] = Default::default();
    let mut load = vec![Mem::default(); routes.len()];
    for i in 0..=runs {
        for k in 0..routes.len() {
            let j = (i + k) % routes.len();
            let r = tokio::time::timeout(TUNNELS_LIMIT, round(routes[j], tls, origin))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("not done within {TUNNELS_LIMIT:?}")));
            let r = r.map(|(t, m)| {
                load[j] = load[j].max(m);
                t
            });
            if i > 0 {
                series[j].record(r);
            }
        }
    }
    let [straight, bottle, squid, tinyproxy] = series;
    let mut m = Measure::new(
        "proxy_tunnels",
        "100 tunnels through bottle-proxy at once, each a new connection, CONNECT, TLS and GET; all open together",
        "100 such connections at once straight to the origin",
        Target::None,
    );
    let mut details = serde_json::Map::new();
    for (name, s) in [
        ("straight", &straight),
        ("bottle-proxy", &bottle),
        ("squid", &squid),
        ("tinyproxy", &tinyproxy),
    ] {
        let med = s.median().unwrap_or(f64::NAN);
        details.insert(
            name.into(),
            json!({ "median_s": med, "failed_rounds": s.errors.len() }),
        );
        m.notes.push(format!(
            "{name}: all {TUNNELS} done in {:.1} ms (median){}",
            med * 1e3,
            errors(s)
        ));
    }
    for (name, s) in [
        ("bottle-proxy", &bottle),
        ("squid", &squid),
        ("tinyproxy", &tinyproxy),
    ] {
        m.checks.push((
            format!("{name}: all {TUNNELS} tunnels succeeded in every round"),
            s.errors.is_empty() && !s.samples.is_empty(),
        ));
    }
    m.details = Value::Object(details);
    m.bottle = bottle;
    m.baseline = straight;
    m.peers = vec![("squid".into(), squid), ("tinyproxy".into(), tinyproxy)];
    (m, load)
}

/// One round: [`TUNNELS`] requests at once, each keeping its connection open until all
/// are answered; the proxy's memory is read then, before they close.
async fn round(
    route: &Route,
    tls: &TlsConnector,
    origin: SocketAddr,
) -> anyhow::Result<(f64, Mem)> {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel(TUNNELS);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TUNNELS {
        let (route, tls, release, tx) = (route.clone(), tls.clone(), release.clone(), tx.clone());
        tasks.spawn(async move {
            match open_and_get(&route, &tls, origin, "/small").await {
                Ok((n, conn)) => {
                    let _ = tx.send(Ok(n)).await;
                    // Hold the connection (and its tunnel) open until told.
                    let _permit = release.acquire().await;
                    drop(conn);
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
    }
    drop(tx);
    let mut failed = Vec::new();
    for _ in 0..TUNNELS {
        match rx.recv().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => failed.push(format!("{e:#}")),
            None => failed.push("a task ended without an answer".into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let m = mem(route.pid);
    release.add_permits(TUNNELS);
    while tasks.join_next().await.is_some() {}
    if !failed.is_empty() {
        bail!(
            "{} of {TUNNELS} failed via {}: {}",
            failed.len(),
            route.name,
            failed[0]
        );
    }
    Ok((elapsed, m))
}

fn memory_measure(
    names: [&'static str; 3],
    idle_start: &[Mem],
    under_load: &[Mem],
    idle_after: &[Mem],
    details: Value,
) -> Measure {
    let mut m = Measure::new(
        "proxy_memory",
        "bottle-proxy's resident memory (VmRSS) idle after start",
        "-",
        Target::MiB(10.0),
    );
    m.bottle.samples.push(idle_start[0].rss_mib());
    for (i, name) in names.iter().enumerate() {
        m.notes.push(format!(
            "{name}: RSS idle {:.1} MiB, with {TUNNELS} tunnels open {:.1} MiB, idle after the load {:.1} MiB, peak (VmHWM) {:.1} MiB",
            idle_start[i].rss_mib(),
            under_load[i].rss_mib(),
            idle_after[i].rss_mib(),
            idle_after[i].hwm_mib(),
        ));
        if i > 0 {
            m.peers.push((
                (*name).to_owned(),
                Series {
                    samples: vec![idle_start[i].rss_mib()],
                    errors: Vec::new(),
                },
            ));
        }
    }
    m.checks.push((
        format!(
            "bottle-proxy idle after the load <= 10 MiB ({:.1} MiB)",
            idle_after[0].rss_mib()
        ),
        idle_after[0].rss_mib() <= 10.0,
    ));
    m.details = details;
    m
}

pub(crate) fn errors(s: &Series) -> String {
    if s.errors.is_empty() {
        String::new()
    } else {
        format!("; {} FAILED", s.errors.len())
    }
}

// ---- the client ----

/// A request on a new connection; the body's length and the time from connecting to its
/// last byte.
async fn fetch(
    route: &Route,
    tls: &TlsConnector,
    origin: SocketAddr,
    path: &str,
) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let (n, conn) = open_and_get(route, tls, origin, path).await?;
    let t = start.elapsed().as_secs_f64();
    // Closing is not timed, but waited for: no connection outlives its sample.
    conn.close().await;
    Ok((n, t))
}

/// An open HTTP/1 connection over TLS (over a tunnel or straight).
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    async fn close(self) {
        drop(self.sender);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn open_and_get(
    route: &Route,
    tls: &TlsConnector,
    origin: SocketAddr,
    path: &str,
) -> anyhow::Result<(u64, Conn)> {
    match route.proxy {
        None => {
            let tcp = TcpStream::connect(origin).await?;
            tcp.set_nodelay(true)?;
            get(tcp, tls, path).await
        }
        Some(proxy) => {
            let upgraded = tunnel(proxy, &route.authority).await?;
            get(TokioIo::new(upgraded), tls, path).await
        }
    }
}

/// `CONNECT authority` to `proxy` on a new connection; the tunnel.
async fn tunnel(proxy: SocketAddr, authority: &str) -> anyhow::Result<hyper::upgrade::Upgraded> {
    let tcp = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("connect to the proxy {proxy}"))?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn.with_upgrades());
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .header(header::HOST, authority)
        .body(Empty::new())?;
    let res = sender.send_request(req).await?;
    if res.status() != StatusCode::OK {
        conn.abort();
        bail!("the proxy answered {} to CONNECT {authority}", res.status());
    }
    let upgraded = hyper::upgrade::on(res).await?;
    Ok(upgraded)
}

/// TLS to the origin over `io`, then `GET path`; the body's length and the connection.
async fn get<IO>(io: IO, tls: &TlsConnector, path: &str) -> anyhow::Result<(u64, Conn)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = ServerName::try_from(HOST)?.to_owned();
    let stream = tls.connect(name, io).await.context("TLS handshake")?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(path)
        .header(header::HOST, HOST)
        .body(Empty::new())?;
    let res = sender.send_request(req).await?;
    if res.status() != StatusCode::OK {
        bail!("the origin answered {}", res.status());
    }
    let mut body = res.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok((n, Conn { sender, task }))
}

// ---- the origin ----

/// A client that trusts only the bench's CA (no session resumption: every connection
/// makes a full handshake, as a new client process would), and the origin's acceptor.
fn certificates() -> anyhow::Result<(TlsConnector, TlsAcceptor)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bottle-bench CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec![HOST.to_owned()])?.signed_by(&key, &ca, &ca_key)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec()))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    Ok((
        TlsConnector::from(Arc::new(client)),
        TlsAcceptor::from(Arc::new(server)),
    ))
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    let chunk = Bytes::from(pseudo_random(CHUNK));
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let (acceptor, chunk) = (acceptor.clone(), chunk.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let chunk = chunk.clone();
                async move { Ok::<_, Infallible>(answer(&req, chunk)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, chunk: Bytes) -> Response<Payload> {
    let (status, body) = match req.uri().path() {
        "/small" => (StatusCode::OK, Payload::new(Bytes::from_static(b"ok\n"), 3)),
        "/big" => (StatusCode::OK, Payload::new(chunk, BIG_BYTES)),
        _ => (StatusCode::NOT_FOUND, Payload::new(Bytes::new(), 0)),
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res
}

/// A body of `left` bytes, `chunk` repeated (generated as it is sent, never stored).
struct Payload {
    chunk: Bytes,
    left: u64,
}

impl Payload {
    fn new(chunk: Bytes, len: u64) -> Payload {
        Payload { chunk, left: len }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 || self.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let n = (self.chunk.len() as u64).min(self.left) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Bytes that do not compress (not that anything here compresses): xorshift64.
fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- the proxies ----

/// A loopback port free now (the proxy binds it a moment later).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

pub(crate) fn write(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    set_mode(path, 0o644)?;
    Ok(path.to_path_buf())
}

/// Starts `cmd` (output to files in `dir`), registers it for cleanup, waits until `port`
/// accepts connections.
pub(crate) async fn start(
    name: &'static str,
    mut cmd: Command,
    dir: &Path,
    port: u16,
    authority: String,
) -> anyhow::Result<Route> {
    let out = std::fs::File::create(dir.join(format!("{name}.stdout")))?;
    let err = std::fs::File::create(dir.join(format!("{name}.stderr")))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = cmd.spawn().with_context(|| {
        format!("cannot start {name} (is it installed? scripts/bench.sh installs it)")
    })?;
    let pid = child.id();
    process_register(name, child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            break;
        }
        let log =
            || std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default();
        if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
            bail!("{name} exited at start: {}", log());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} is not listening on {addr} after {START_LIMIT:?}: {}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Route {
        name,
        proxy: Some(addr),
        authority,
        pid: Some(pid),
    })
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

async fn start_bottle_proxy(bin: &Path, dir: &Path, origin_port: u16) -> anyhow::Result<Route> {
    let port = free_port()?;
    let cfg = bottle_proxy_config::EgressConfig {
        bottle: "bench".into(),
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        allow: vec![format!("{HOST}:{origin_port}")],
        allow_private: vec![HOST.into()],
        ..Default::default()
    };
    let config = write(
        &dir.join("bottle-proxy.json"),
        &serde_json::to_string_pretty(&cfg)?,
    )?;
    let hosts = write(&dir.join("hosts"), &format!("127.0.0.1 {HOST}\n"))?;
    let resolv = write(
        &dir.join("resolv.conf"),
        "# no name server: names come from the hosts file only\n",
    )?;
    let mut cmd = Command::new(bin);
    cmd.arg("egress")
        .arg("--config")
        .arg(config)
        .arg("--hosts")
        .arg(hosts)
        .arg("--resolv-conf")
        .arg(resolv);
    start(
        "bottle-proxy",
        cmd,
        dir,
        port,
        format!("{HOST}:{origin_port}"),
    )
    .await
}

async fn start_squid(dir: &Path, origin_port: u16) -> anyhow::Result<Route> {
    let port = free_port()?;
    let hosts = write(&dir.join("hosts"), &format!("127.0.0.1 {HOST}\n"))?;
    let d = dir.display();
    let conf = write(
        &dir.join("squid.conf"),
        &format!(
            "# bottle-bench: a CONNECT allowlist proxy for one origin, no cache, no DNS\n\
             http_port 127.0.0.1:{port}\n\
             acl origin dstdomain {HOST}\n\
             acl origin_port port {origin_port}\n\
             acl CONNECT method CONNECT\n\
             http_access allow CONNECT origin origin_port\n\
             http_access deny all\n\
             hosts_file {hosts}\n\
             dns_nameservers 127.0.0.1\n\
             cache deny all\n\
             cache_mem 0 MB\n\
             visible_hostname bottle-bench\n\
             pid_filename none\n\
             access_log stdio:{d}/squid-access.log\n\
             cache_log {d}/squid-cache.log\n\
             cache_store_log none\n\
             netdb_filename none\n\
             coredump_dir {d}\n\
             logfile_rotate 0\n\
             shutdown_lifetime 0 seconds\n",
            hosts = hosts.display(),
        ),
    )?;
    let mut cmd = Command::new("squid");
    // -N: one process in the foreground (no daemon, no kid process).
    cmd.arg("-N").arg("-f").arg(conf);
    start("squid", cmd, dir, port, format!("{HOST}:{origin_port}")).await
}

async fn start_tinyproxy(dir: &Path, origin_port: u16) -> anyhow::Result<Route> {
    let port = free_port()?;
    let filter = write(&dir.join("tinyproxy.filter"), "^127\\.0\\.0\\.1$\n")?;
    let d = dir.display();
    let conf = write(
        &dir.join("tinyproxy.conf"),
        &format!(
            "# bottle-bench: a CONNECT allowlist proxy for one origin (by address: no DNS)\n\
             Port {port}\n\
             Listen 127.0.0.1\n\
             User nobody\n\
             Group nogroup\n\
             Timeout 600\n\
             MaxClients 256\n\
             LogFile \"{d}/tinyproxy.log\"\n\
             LogLevel Connect\n\
             Allow 127.0.0.1\n\
             ConnectPort {origin_port}\n\
             Filter \"{filter}\"\n\
             FilterDefaultDeny Yes\n\
             DisableViaHeader Yes\n",
            filter = filter.display(),
        ),
    )?;
    let mut cmd = Command::new("tinyproxy");
    // -d: in the foreground.
    cmd.arg("-d").arg("-c").arg(conf);
    start(
        "tinyproxy",
        cmd,
        dir,
        port,
        format!("127.0.0.1:{origin_port}"),
    )
    .await
}

pub(crate) fn version(cmd: &mut Command) -> Option<String> {
    let out = crate::cmd::run(cmd, None, Duration::from_secs(10)).ok()?;
    out.both().lines().next().map(|l| l.trim().to_owned())
}

/// A process's CPU time (user + system, all threads), in seconds, from /proc/PID/stat.
fn cpu(pid: Option<u32>) -> f64 {
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .and_then(|s| parse_cpu_ticks(&s))
        .map_or(0.0, |ticks| ticks as f64 / clock_ticks())
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on Linux in practice).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        crate::cmd::ok(
            Command::new("getconf").arg("CLK_TCK"),
            Duration::from_secs(10),
        )
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100.0)
    })
}

/// A process's resident memory, from /proc/PID/status.
#[derive(Debug, Default, Clone, Copy, PartialEq, PartialOrd)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Mem {
    fn max(self, other: Mem) -> Mem {
        Mem {
            rss_kib: self.rss_kib.max(other.rss_kib),
            hwm_kib: self.hwm_kib.max(other.hwm_kib),
        }
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }

    fn json(&self) -> Value {
        json!({ "vm_rss_kib": self.rss_kib, "vm_hwm_kib": self.hwm_kib })
    }
}

fn mem(pid: Option<u32>) -> Mem {
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .map(|s| parse_status(&s))
        .unwrap_or_default()
}

fn parse_status(status: &str) -> Mem {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let status = "Name:\tbottle-proxy\nVmPeak:\t  20000 kB\nVmHWM:\t    6100 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        let m = parse_status(status);
        assert_eq!(m.rss_kib, 5120);
        assert_eq!(m.hwm_kib, 6100);
        assert!((m.rss_mib() - 5.0).abs() < 1e-9);
        assert_eq!(parse_status("Name:\tx\n"), Mem::default());
    }

    #[test]
    fn reads_cpu_ticks_from_proc_stat() {
        let stat = "1234 (bottle proxy) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 40 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(290));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn payload_is_exactly_its_length() {
        let mut p = Payload::new(Bytes::from_static(b"abcdefgh"), 20);
        let waker = std::task::Waker::noop();
        let mut cx = TaskContext::from_waker(waker);
        let mut total = 0;
        while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut p).poll_frame(&mut cx) {
            total += f.into_data().map(|d| d.len()).unwrap_or(0);
        }
        assert_eq!(total, 20);
        assert!(p.is_end_stream());
    }
}
