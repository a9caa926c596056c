//! A minimal libpod client (hyper over the same socket) for the three calls podman-api
//! cannot make as bottle needs them:
//!
//! - **container create**: podman-api's `ContainerCreateOpts` spells the SpecGenerator key
//!   `no_new_privileges` as `no_new_privilages`, which podman silently ignores: a container
//!   made through it runs *without* no-new-privileges (checked: `NoNewPrivs: 0`). Bottle
//!   sends the SpecGenerator JSON itself.
//! - **image import**: podman-api takes the whole tarball as one in-memory buffer (the base
//!   rootfs is ~180 MB); here it is streamed from the file.
//! - **image build**: podman-api builds only from a host directory, which it gzips itself;
//!   bottle's contexts are in memory (embedded, with a verified gitleaks binary), and the
//!   build's `{"error": ...}` lines must become bottle's error with the engine's words.
//!
//! Everything else goes through podman-api. Both speak to the same address and the same
//! API version.

use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use crate::socket::Address;

/// A request body.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A body held in memory.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from a file.
pub(crate) fn file(file: tokio::fs::File) -> Body {
    StreamBody::new(tokio_util::io::ReaderStream::new(file).map_ok(Frame::data)).boxed_unsync()
}

/// Why a raw call failed.
#[derive(Debug)]
pub(crate) enum RawError {
    /// The socket could not be reached, or the connection broke.
    Transport(String),
    /// The service answered with an error status; `message` is its own words.
    Status { status: u16, message: String },
}

impl RawError {
    pub(crate) fn text(&self) -> String {
        match self {
            RawError::Transport(t) => t.clone(),
            RawError::Status { message, .. } => message.clone(),
        }
    }
}

/// The client: an address and the API version prefix (`/v4.3.1`).
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    address: Address,
    prefix: String,
}

impl Raw {
    pub(crate) fn new(address: Address, version: &str) -> Raw {
        Raw {
            address,
            prefix: format!("/v{version}"),
        }
    }

    async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, RawError> {
        let transport = |e: &dyn std::fmt::Display| {
            RawError::Transport(format!("cannot reach podman at {}: {e}", self.address))
        };
        let mut sender = match &self.address {
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| transport(&e))?;
                handshake(stream).await.map_err(|e| transport(&e))?
            }
            Address::Tcp(host) => {
                let stream = tokio::net::TcpStream::connect(host)
                    .await
                    .map_err(|e| transport(&e))?;
                handshake(stream).await.map_err(|e| transport(&e))?
            }
        };
        sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))
    }

    /// Sends `method path` (`path` from `/libpod/...`, with its query) with `body`; an
    /// error status becomes [`RawError::Status`] with the service's message.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Body,
    ) -> Result<Response<Incoming>, RawError> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, "d")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|e| RawError::Transport(format!("bad request {path}: {e}")))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(RawError::Status {
            status: status.as_u16(),
            message: error_message(&bytes, status.canonical_reason().unwrap_or("error")),
        })
    }

    /// [`Raw::call`] with a JSON body (`None`: no body), returning the JSON answer.
    pub(crate) async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, RawError> {
        let body = match body {
            Some(b) => full(serde_json::to_vec(b).expect("JSON")),
            None => full(Bytes::new()),
        };
        let response = self.call(method, path, "application/json", body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RawError::Transport(format!("reading the answer to {path}: {e}")))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| {
            RawError::Transport(format!(
                "the answer to {path} is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ))
        })
    }
}

async fn handshake<S>(stream: S) -> hyper::Result<hyper::client::conn::http1::SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The message of a libpod error body (`{"cause": ..., "message": ..., "response": N}`).
pub(crate) fn error_message(body: &[u8], fallback: &str) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "cause"] {
            if let Some(m) = v
                .get(key)
                .and_then(|m| m.as_str())
                .filter(|m| !m.is_empty())
            {
                return m.trim().to_owned();
            }
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() {
        fallback.to_owned()
    } else {
        text
    }
}

/// Reads a response body as lines, handing each (without its newline) to `line`.
pub(crate) async fn for_each_line(
    response: Response<Incoming>,
    mut line: impl FnMut(&str),
) -> Result<(), RawError> {
    let mut body = response.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RawError::Transport(format!("reading a stream: {e}")))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let rest = buf.split_off(pos + 1);
                line(String::from_utf8_lossy(&buf[..pos]).trim_end_matches('\r'));
                buf = rest;
            }
        }
    }
    if !buf.is_empty() {
        line(&String::from_utf8_lossy(&buf));
    }
    Ok(())
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs (a key may repeat).
pub(crate) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", encode(&v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(encode("a b/c:d\"[]"), "a%20b%2Fc%3Ad%22%5B%5D");
        assert_eq!(
            query([
                ("changes", "ENV A=1".into()),
                ("changes", "CMD [\"x\"]".into())
            ]),
            "changes=ENV%20A%3D1&changes=CMD%20%5B%22x%22%5D"
        );
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                br#"{"cause":"no such container","message":"no container with name x found: no such container","response":404}"#,
                "Not Found"
            ),
            "no container with name x found: no such container"
        );
        assert_eq!(error_message(b"", "Not Found"), "Not Found");
        assert_eq!(error_message(b"plain\n", "x"), "plain");
    }
}
