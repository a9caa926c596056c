//! The accept loop both sidecars share: a cap on connections, hyper's header limits,
//! graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bottle_proxy_config::Limits;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::body::Body;
use crate::Error;

pub(crate) type RespFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Held for as long as a client connection (or the tunnel it became) lives.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    _permit: OwnedSemaphorePermit,
}

/// What a sidecar does with each request.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(self: Arc<Self>, req: Request<Incoming>, guard: Arc<ConnGuard>) -> RespFuture;
    /// The answer when every connection slot is taken.
    fn over_capacity(&self) -> Response<Body>;
}

/// A running sidecar: its bound addresses, and how to stop it.
#[derive(Debug)]
pub struct Running {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The addresses actually bound (port 0 resolved).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting, lets requests in flight finish (at most 10 s), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn until_signal(self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("bottle-proxy: shutting down");
        self.shutdown().await;
    }
}

const GRACE: Duration = Duration::from_secs(10);
/// How long an over-capacity client gets to read its 503.
const OVERFLOW_TIME: Duration = Duration::from_secs(2);

pub(crate) async fn serve<H: Handler>(
    listen: &[SocketAddr],
    limits: Limits,
    handler: Arc<H>,
) -> Result<Running, Error> {
    if listen.is_empty() {
        return Err(Error::Config("listen is empty".into()));
    }
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for addr in listen {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen {
                addr: *addr,
                source,
            })?;
        addrs.push(l.local_addr().map_err(|source| Error::Listen {
            addr: *addr,
            source,
        })?);
        listeners.push(l);
    }
    let (stop, stopped) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Over-capacity answers are bounded too, or a flood would make them the leak.
    let overflow = Arc::new(Semaphore::new(limits.max_connections.clamp(16, 1024)));
    let done = tokio::spawn(async move {
        let mut accepts = JoinSet::new();
        for l in listeners {
            accepts.spawn(accept_loop(
                l,
                limits,
                handler.clone(),
                slots.clone(),
                overflow.clone(),
                stopped.clone(),
            ));
        }
        while accepts.join_next().await.is_some() {}
        // Wait for every connection's permit to come back, within the grace period.
        let all = limits.max_connections.max(1) as u32;
        let _ = tokio::time::timeout(GRACE, slots.acquire_many(all)).await;
    });
    Ok(Running { addrs, stop, done })
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    limits: Limits,
    handler: Arc<H>,
    slots: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("bottle-proxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let guard = Arc::new(ConnGuard { _permit: permit });
                tokio::spawn(serve_conn(
                    stream,
                    limits,
                    handler.clone(),
                    guard,
                    stopped.clone(),
                ));
            }
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(permit) => {
                    let resp = handler.over_capacity();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _ =
                            tokio::time::timeout(OVERFLOW_TIME, answer_once(stream, resp)).await;
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
}

fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)))
        // hyper refuses a buffer under 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b
}

async fn serve_conn<H: Handler>(
    stream: TcpStream,
    limits: Limits,
    handler: Arc<H>,
    guard: Arc<ConnGuard>,
    mut stopped: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| {
        let fut = handler.clone().handle(req, guard.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = http1(&limits)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopped.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GRACE, conn).await;
}

/// Reads one request head and answers `resp`, closing the connection.
async fn answer_once(stream: TcpStream, resp: Response<Body>) {
    let resp = std::sync::Mutex::new(Some(resp));
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let r = resp.lock().unwrap_or_else(|p| p.into_inner()).take();
        async move {
            let mut r = r.unwrap_or_else(|| Response::new(crate::body::empty()));
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            Ok::<_, Infallible>(r)
        }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_TIME)
        .keep_alive(false);
    let _ = b.serve_connection(TokioIo::new(stream), service).await;
}
