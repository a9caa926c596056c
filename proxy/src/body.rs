//! Response and request bodies: boxed, streamed, counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the sidecars answer with.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub(crate) fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

type OnDrop = Box<dyn FnOnce() + Send + Sync>;

pin_project_lite::pin_project! {
    /// Passes frames through as they come (no buffering), counting data bytes, and
    /// runs `on_drop` once when the body is dropped (finished, or the peer went away).
    /// With an idle limit, a body that yields nothing for that long ends in an error,
    /// so a silent peer cannot hold a connection slot forever.
    pub(crate) struct Counted<B> {
        #[pin]
        inner: B,
        count: Arc<AtomicU64>,
        on_drop: Option<OnDrop>,
        idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().on_drop.take() {
                f();
            }
        }
    }
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted {
            inner,
            count,
            on_drop: None,
            idle: None,
        }
    }

    pub(crate) fn idle_limit(mut self, limit: Duration) -> Self {
        self.idle = Some((limit, Box::pin(tokio::time::sleep(limit))));
        self
    }

    pub(crate) fn on_drop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some((limit, sleep)) = this.idle.as_mut() {
            if polled.is_ready() {
                sleep.as_mut().reset(tokio::time::Instant::now() + *limit);
            } else if sleep.as_mut().poll(cx).is_ready() {
                let secs = limit.as_secs();
                return Poll::Ready(Some(Err(format!("no data for {secs}s").into())));
            }
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in named
        .iter()
        .map(String::as_str)
        .chain(HOP_BY_HOP.iter().copied())
    {
        headers.remove(name);
    }
}

/// An upstream's response passed on to the agent, the same for the egress proxy's plain
/// HTTP and the credential routes: hop-by-hop headers dropped, the body counted and cut
/// after `idle` of silence, and `rec` (status, bytes each way, duration) written to `audit`
/// once the body is done or the agent went away.
pub(crate) fn audited_response<B>(
    resp: http::Response<B>,
    mut rec: bottle_proxy_config::AuditRecord,
    up: Arc<AtomicU64>,
    started: std::time::Instant,
    idle: Duration,
    audit: crate::audit::Audit,
) -> http::Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rec.status = Some(parts.status.as_u16());
    let down = Arc::new(AtomicU64::new(0));
    let counted = down.clone();
    let body = Counted::new(body, counted)
        .idle_limit(idle)
        .on_drop(move || {
            rec.bytes_up = Some(up.load(Ordering::Relaxed));
            rec.bytes_down = Some(down.load(Ordering::Relaxed));
            rec.duration_ms = Some(started.elapsed().as_millis() as u64);
            audit.write(&rec);
        })
        .boxed();
    http::Response::from_parts(parts, body)
}
