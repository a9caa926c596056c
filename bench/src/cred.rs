//! The credential route measures: `bottle-proxy cred` in front of the project's Messages-API
//! stand-in (`bottle-web-fixture`), against calling the stand-in straight.
//!
//! Everything runs on loopback on the host: the stand-in serves TLS with a certificate for
//! `api.bench.test` made by rcgen from the run's own CA; bottle-proxy runs in `cred` mode
//! with one route, `anthropic`, to `https://api.bench.test:PORT/v1`, trusting that CA
//! (`ca_file`), reading the name from a hosts file and given a resolv.conf naming no
//! server; the client is in this process (hyper, and tokio-rustls for the straight path).
//!
//! Both paths keep their connection alive, as an SDK does: the straight client one TLS
//! connection to the stand-in, the routed client one plain connection to the sidecar
//! (which pools its own TLS connection upstream). So the figures are the cost per request
//! of the hop, not of handshakes.
//!
//! | measure | bottle | baseline |
//! |---|---|---|
//! | cred_ttfb | `POST /anthropic/messages` (streaming) through the sidecar: time to the reply's first byte | `POST /v1/messages` straight to the stand-in over TLS |
//! | cred_events | each event of a stream paced [`GAP_MS`] ms apart: the time from the stand-in handing it to its connection to the client reading it, through the sidecar | the same straight |
//!
//! The per-event trip is read from a stamp the stand-in puts in each event (`stamp=1`: an
//! SSE comment with its wall-clock send time; same host, same clock), so a sidecar that
//! held events back would show in it even where the gaps between arrivals stay regular.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cleanup::on_runtime;
use crate::proxy::{errors, free_port, start, version, write};
use crate::results::{Measure, Series, Target};

/// The measures of this module, in the order they run.
pub(crate) const MEASURES: [&str; 2] = ["cred_ttfb", "cred_events"];

/// The stand-in's name, mapped to 127.0.0.1 in the sidecar's hosts file.
const HOST: &str = "api.bench.test";
/// The route's name: the agent calls `http://<sidecar>/anthropic/messages`.
const ROUTE: &str = "anthropic";
/// First-byte samples per path, after the warm-up ones.
const TTFB_SAMPLES: usize = 300;
const TTFB_WARMUP: usize = 30;
/// Paced streams per path (each 6 events, 5 of them after a gap), after the warm-up ones.
const STREAMS: usize = 200;
const STREAMS_WARMUP: usize = 20;
/// The gap between a stream's events, as a model's tokens arrive.
pub(crate) const GAP_MS: u64 = 10;
/// Limits: one request with its whole reply; a process's start.
const SAMPLE_LIMIT: Duration = Duration::from_secs(10);
/// A Messages request as Claude Code sends it, in short.
const REQUEST_BODY: &str = r#"{"model":"stand-in","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#;

/// What the caller wants measured, and with what.
pub(crate) struct CredRun<'a> {
    pub(crate) proxy_bin: &'a Path,
    pub(crate) fixture_bin: &'a Path,
    pub(crate) dir: &'a Path,
    pub(crate) wants: &'a dyn Fn(&str) -> bool,
}

/// Runs the wanted credential route measures; returns them and the facts (versions).
pub(crate) fn measure_cred(
    run: &CredRun<'_>,
) -> anyhow::Result<(Vec<Measure>, serde_json::Map<String, Value>)> {
    // Whatever happened, the processes it started go.
    on_runtime(measure_all(run))
}

/// How the client reaches the stand-in.
enum Via {
    /// TLS straight to the stand-in.
    Straight { addr: SocketAddr, tls: TlsConnector },
    /// Plain HTTP to the credential sidecar.
    Cred { addr: SocketAddr },
}

/// A client of one path, with its kept-alive connection (opened again after a failure).
struct Client {
    name: &'static str,
    via: Via,
    conn: Option<SendRequest<Full<Bytes>>>,
}

async fn measure_all(
    run: &CredRun<'_>,
) -> anyhow::Result<(Vec<Measure>, serde_json::Map<String, Value>)> {
    let dir = run.dir.join("cred");
    std::fs::create_dir_all(&dir)?;
    let pki = Pki::new()?;
    let ca = write(&dir.join("ca.pem"), &pki.ca_pem)?;
    let cert = write(&dir.join("api.pem"), &pki.cert_pem)?;
    let key = write(&dir.join("api.key"), &pki.key_pem)?;

    // The stand-in: TLS on a free port (its plain HTTP listener on another, unused).
    let (https, http) = (free_port()?, free_port()?);
    let mut fixture = Command::new(run.fixture_bin);
    fixture
        .args(["--name", "api"])
        .arg("--http")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--https")
        .arg(format!("127.0.0.1:{https}"))
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key);
    start("bottle-web-fixture", fixture, &dir, https, String::new()).await?;

    // The sidecar: one route to the stand-in, the key added, the CA trusted.
    let port = free_port()?;
    let secret = write(&dir.join("api-key"), "sk-bench-the-real-key\n")?;
    let cfg = bottle_proxy_config::CredConfig {
        bottle: "bench".into(),
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        routes: vec![bottle_proxy_config::Route {
            name: ROUTE.into(),
            upstream: format!("https://{HOST}:{https}/v1"),
            header: "x-api-key".into(),
            format: "{secret}".into(),
            secret_file: secret.display().to_string(),
            ca_file: Some(ca.display().to_string()),
            insecure_http: false,
        }],
        allow_private: vec![HOST.into()],
        ..Default::default()
    };
    let config = write(&dir.join("cred.json"), &serde_json::to_string_pretty(&cfg)?)?;
    let hosts = write(&dir.join("hosts"), &format!("127.0.0.1 {HOST}\n"))?;
    let resolv = write(
        &dir.join("resolv.conf"),
        "# no name server: names come from the hosts file only\n",
    )?;
    let mut sidecar = Command::new(run.proxy_bin);
    sidecar
        .arg("cred")
        .arg("--config")
        .arg(config)
        .arg("--hosts")
        .arg(hosts)
        .arg("--resolv-conf")
        .arg(resolv);
    start("bottle-proxy-cred", sidecar, &dir, port, String::new()).await?;

    let mut facts = serde_json::Map::new();
    facts.insert(
        "cred_versions".into(),
        json!({
            "bottle-proxy": version(Command::new(run.proxy_bin).arg("--version")),
            "bottle-web-fixture": version(Command::new(run.fixture_bin).arg("--version")),
        }),
    );

    let mut straight = Client {
        name: "straight",
        via: Via::Straight {
            addr: SocketAddr::from(([127, 0, 0, 1], https)),
            tls: pki.connector()?,
        },
        conn: None,
    };
    let mut cred = Client {
        name: "bottle-proxy cred",
        via: Via::Cred {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        },
        conn: None,
    };
    // Both answer, and the sidecar put the key in (the stand-in lists what it received).
    for p in [&mut straight, &mut cred] {
        first_byte(p, "")
            .await
            .with_context(|| format!("a first request via {}", p.name))?;
    }
    check_key_added(https, &pki).await?;

    let mut measures = Vec::new();
    if (run.wants)("cred_ttfb") {
        eprintln!(
            "cred_ttfb: {TTFB_SAMPLES} requests per path after {TTFB_WARMUP} warm-ups, interleaved"
        );
        measures.push(ttfb(&mut straight, &mut cred).await);
    }
    if (run.wants)("cred_events") {
        eprintln!(
            "cred_events: {STREAMS} streams of 6 events {GAP_MS} ms apart per path after {STREAMS_WARMUP} warm-ups, interleaved"
        );
        measures.push(events(&mut straight, &mut cred).await);
    }
    Ok((measures, facts))
}

// ---- the measures ----

async fn ttfb(straight: &mut Client, cred: &mut Client) -> Measure {
    let (mut a, mut b) = (Series::default(), Series::default());
    for i in 0..TTFB_WARMUP + TTFB_SAMPLES {
        // Alternate which path goes first, so neither always follows the other.
        let (ra, rb) = if i % 2 == 0 {
            let ra = first_byte(straight, "").await;
            (ra, first_byte(cred, "").await)
        } else {
            let rb = first_byte(cred, "").await;
            (first_byte(straight, "").await, rb)
        };
        if i >= TTFB_WARMUP {
            a.record(ra);
            b.record(rb);
        }
    }
    let mut m = Measure::new(
        "cred_ttfb",
        "POST /anthropic/messages (streaming) through bottle-proxy cred, kept-alive connection: time to the reply's first byte",
        "POST /v1/messages straight to the stand-in over TLS, kept-alive connection",
        Target::AddedMillis(2.0),
    );
    quantile_notes(&mut m, &a, &b, 2.0, "added");
    m.bottle = b;
    m.baseline = a;
    m
}

async fn events(straight: &mut Client, cred: &mut Client) -> Measure {
    let (mut a, mut b) = (Series::default(), Series::default());
    let (mut gaps_a, mut gaps_b) = (Series::default(), Series::default());
    for i in 0..STREAMS_WARMUP + STREAMS {
        let (ra, rb) = if i % 2 == 0 {
            let ra = stream(straight).await;
            (ra, stream(cred).await)
        } else {
            let rb = stream(cred).await;
            (stream(straight).await, rb)
        };
        if i < STREAMS_WARMUP {
            continue;
        }
        for (r, trips, gaps) in [(ra, &mut a, &mut gaps_a), (rb, &mut b, &mut gaps_b)] {
            match r {
                Ok(s) => {
                    trips.samples.extend(s.trips);
                    gaps.samples.extend(s.gaps);
                }
                Err(e) => {
                    trips.record(Err(e));
                }
            }
        }
    }
    let mut m = Measure::new(
        "cred_events",
        &format!(
            "each event of a stream paced {GAP_MS} ms apart, through bottle-proxy cred: from the stand-in handing it to its connection to the client reading it"
        ),
        "the same straight to the stand-in over TLS",
        Target::AddedMillis(1.0),
    );
    quantile_notes(&mut m, &a, &b, 1.0, "per-event trip");
    let q = |s: &Series, q: f64| s.quantile(q).unwrap_or(f64::NAN) * 1e3;
    m.notes.push(format!(
        "gap between arrivals (sent {GAP_MS} ms apart): straight p50 {:.3} ms, p99 {:.3} ms; through the sidecar p50 {:.3} ms, p99 {:.3} ms",
        q(&gaps_a, 0.5),
        q(&gaps_a, 0.99),
        q(&gaps_b, 0.5),
        q(&gaps_b, 0.99),
    ));
    if let Value::Object(d) = &mut m.details {
        d.insert(
            "gap_between_arrivals".into(),
            json!({
                "sent_apart_ms": GAP_MS,
                "straight": { "p50_ms": q(&gaps_a, 0.5), "p99_ms": q(&gaps_a, 0.99), "samples_s": gaps_a.samples },
                "bottle-proxy cred": { "p50_ms": q(&gaps_b, 0.5), "p99_ms": q(&gaps_b, 0.99), "samples_s": gaps_b.samples },
            }),
        );
    }
    m.bottle = b;
    m.baseline = a;
    m
}

/// The p50 and p99 of both sides as notes and details, and a check that the p99 added
/// stays within `max_ms` too (the target itself is on the p50, as the table shows).
fn quantile_notes(m: &mut Measure, straight: &Series, cred: &Series, max_ms: f64, what: &str) {
    let q = |s: &Series, q: f64| s.quantile(q).unwrap_or(f64::NAN) * 1e3;
    let (s50, s99, c50, c99) = (
        q(straight, 0.5),
        q(straight, 0.99),
        q(cred, 0.5),
        q(cred, 0.99),
    );
    m.notes.push(format!(
        "straight: p50 {s50:.3} ms, p99 {s99:.3} ms ({} samples){}",
        straight.samples.len(),
        errors(straight)
    ));
    m.notes.push(format!(
        "bottle-proxy cred: p50 {c50:.3} ms ({:+.3}), p99 {c99:.3} ms ({:+.3}) ({} samples){}",
        c50 - s50,
        c99 - s99,
        cred.samples.len(),
        errors(cred)
    ));
    m.checks.push((
        format!("{what} at p99 <= {max_ms} ms ({:+.3} ms)", c99 - s99),
        c99 - s99 <= max_ms,
    ));
    m.details = json!({
        "straight": { "p50_ms": s50, "p99_ms": s99, "errors": straight.errors.len() },
        "bottle-proxy cred": { "p50_ms": c50, "p99_ms": c99, "added_p50_ms": c50 - s50, "added_p99_ms": c99 - s99, "errors": cred.errors.len() },
    });
}

// ---- the client ----

impl Client {
    /// The kept-alive connection, opened if there is none.
    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.conn = Some(open(&self.via).await?);
        }
        let sender = self.conn.as_mut().expect("just opened");
        sender.ready().await?;
        Ok(sender)
    }

    fn request(&self, query: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let (path, host) = match &self.via {
            Via::Straight { addr, .. } => {
                ("/v1/messages".to_owned(), format!("{HOST}:{}", addr.port()))
            }
            Via::Cred { addr } => (format!("/{ROUTE}/messages"), addr.to_string()),
        };
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        Ok(Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", "2023-06-01")
            // What the agent holds: a stand-in key the sidecar replaces.
            .header("x-api-key", "agent-placeholder")
            .body(Full::new(Bytes::from_static(REQUEST_BODY.as_bytes())))?)
    }
}

/// A new HTTP/1 connection for `via`; its driver runs as a task until it closes.
async fn open(via: &Via) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    match via {
        Via::Straight { addr, tls } => {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(HOST)?.to_owned();
            let stream = tls.connect(name, tcp).await.context("TLS handshake")?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
        Via::Cred { addr } => {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
    }
}

/// One streaming request; the time from sending it to the reply's first body byte. The
/// rest of the reply is read (not timed), so the connection is ready for the next.
async fn first_byte(path: &mut Client, query: &str) -> anyhow::Result<f64> {
    let req = path.request(query)?;
    let r = tokio::time::timeout(SAMPLE_LIMIT, async {
        let sender = path.sender().await?;
        let start = Instant::now();
        let res = sender.send_request(req).await?;
        if res.status() != StatusCode::OK {
            bail!("answered {}", res.status());
        }
        let mut body = res.into_body();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if first.is_none() && !data.is_empty() {
                    first = Some(start.elapsed().as_secs_f64());
                }
            }
        }
        first.context("the reply had no body")
    })
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("no reply within {SAMPLE_LIMIT:?}")));
    if r.is_err() {
        // A failed exchange leaves the connection in an unknown state: start afresh.
        path.conn = None;
    }
    r.with_context(|| format!("via {}", path.name))
}

/// What one paced stream gave: each paced event's trip and the gaps between arrivals.
struct Stream {
    trips: Vec<f64>,
    gaps: Vec<f64>,
}

/// One stream of events [`GAP_MS`] apart, stamped by the stand-in.
async fn stream(path: &mut Client) -> anyhow::Result<Stream> {
    let req = path.request(&format!("event_ms={GAP_MS}&stamp=1"))?;
    let r = tokio::time::timeout(SAMPLE_LIMIT, async {
        let sender = path.sender().await?;
        let res = sender.send_request(req).await?;
        if res.status() != StatusCode::OK {
            bail!("answered {}", res.status());
        }
        let mut body = res.into_body();
        let mut buf = Vec::new();
        // (sent, arrived), in nanoseconds since the epoch.
        let mut seen: Vec<(u128, u128)> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            let arrived = unix_ns();
            buf.extend_from_slice(&data);
            for sent in take_events(&mut buf) {
                seen.push((
                    sent.context("an event without its sent_unix_ns stamp")?,
                    arrived,
                ));
            }
        }
        if seen.len() != 6 {
            bail!("{} events, not 6", seen.len());
        }
        let secs = |ns: i128| ns as f64 / 1e9;
        // The first event goes with the reply's head; the paced ones are the others.
        Ok(Stream {
            trips: seen[1..]
                .iter()
                .map(|(s, a)| secs(*a as i128 - *s as i128))
                .collect(),
            gaps: seen
                .windows(2)
                .map(|w| secs(w[1].1 as i128 - w[0].1 as i128))
                .collect(),
        })
    })
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("not done within {SAMPLE_LIMIT:?}")));
    if r.is_err() {
        path.conn = None;
    }
    r.with_context(|| format!("via {}", path.name))
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Takes the complete server-sent events (each ends with a blank line) off the front of
/// `buf`; for each, its `: sent_unix_ns=NS` stamp if it has one.
fn take_events(buf: &mut Vec<u8>) -> Vec<Option<u128>> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&event);
        out.push(
            text.lines()
                .find_map(|l| l.strip_prefix(": sent_unix_ns="))
                .and_then(|v| v.trim().parse().ok()),
        );
    }
    out
}

/// Asks the stand-in what it received last (`GET /_requests`, straight) and fails unless
/// the routed request carried the sidecar's key, not the agent's: the measure must be of
/// a sidecar that does its work.
async fn check_key_added(https: u16, pki: &Pki) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], https))).await?;
    let stream = pki
        .connector()?
        .connect(ServerName::try_from(HOST)?.to_owned(), tcp)
        .await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    let task = tokio::spawn(conn);
    let req = Request::get("/_requests")
        .header(header::HOST, HOST)
        .body(Full::new(Bytes::new()))?;
    let body = tokio::time::timeout(SAMPLE_LIMIT, async {
        let res = sender.send_request(req).await?;
        anyhow::Ok(res.into_body().collect().await?.to_bytes())
    })
    .await
    .context("the stand-in did not list its requests in time")??;
    task.abort();
    let all: Value = serde_json::from_slice(&body)?;
    let key = all
        .as_array()
        .and_then(|a| a.last())
        .and_then(|r| r["headers"]["x-api-key"].as_str())
        .unwrap_or_default()
        .to_owned();
    if key != "sk-bench-the-real-key" {
        bail!("the request through the sidecar reached the stand-in with x-api-key {key:?}, not the route's key");
    }
    Ok(())
}

// ---- the certificates ----

/// The run's CA and the stand-in's certificate for [`HOST`], as PEM for the stand-in and
/// the sidecar, and the CA for this process's straight client.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new() -> anyhow::Result<Pki> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bottle-bench cred CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let cert =
            rcgen::CertificateParams::new(vec![HOST.to_owned()])?.signed_by(&key, &ca, &ca_key)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client trusting only the run's CA, speaking HTTP/1.1 as the sidecar does upstream.
    fn connector(&self) -> anyhow::Result<TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConnector::from(Arc::new(cfg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_complete_events_with_their_stamps() {
        let mut buf =
            b": sent_unix_ns=17\nevent: a\ndata: {}\n\nevent: b\ndata: {}\n\n: sent_unix_ns=4"
                .to_vec();
        assert_eq!(take_events(&mut buf), vec![Some(17), None]);
        assert_eq!(buf, b": sent_unix_ns=4");
        buf.extend_from_slice(b"2\nevent: c\ndata: {}\n\n");
        assert_eq!(take_events(&mut buf), vec![Some(42)]);
        assert!(buf.is_empty());
    }
}
