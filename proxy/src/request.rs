//! What a request names, read from the bytes the agent sent: pure functions, no I/O.
//!
//! Everything here takes agent-controlled input (a request target, a `Host` header, a
//! route path), so it is kept apart from the serving code to be unit-tested and fuzzed
//! (`fuzz/fuzz_targets/proxy_request.rs`).

use http::{HeaderValue, Uri};

use crate::rules::Host;

/// Where a `CONNECT` goes: its authority's host and port. `None` when the target is not
/// `host:port` (CONNECT has no default port).
pub fn connect_target(uri: &Uri) -> Option<(Host, u16)> {
    let a = uri.authority()?;
    Some((Host::parse(a.host()).ok()?, a.port_u16()?))
}

/// Why a plain-HTTP proxy request is refused before any rule is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadForward {
    /// No authority: an origin-form request, sent to the proxy as if it were a server.
    NotProxyRequest,
    /// An absolute URL whose scheme is not `http`.
    NotHttp,
    /// The URL's host is not a valid name or IP literal.
    InvalidHost,
    /// The `Host` header names another host or port than the URL (the host and port
    /// here are the URL's).
    HostMismatch(Host, u16),
}

/// Where an absolute-form `http://` request goes: the URL's host and port (80 when
/// absent). A `Host` header, when sent, must name the same host and port, so that an
/// upstream reading the header cannot be told a different destination than the one the
/// rules allowed.
pub fn forward_target(
    uri: &Uri,
    host_header: Option<&HeaderValue>,
) -> Result<(Host, u16), BadForward> {
    let authority = uri.authority().ok_or(BadForward::NotProxyRequest)?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err(BadForward::NotHttp);
    }
    let host = Host::parse(authority.host()).map_err(|_| BadForward::InvalidHost)?;
    let port = authority.port_u16().unwrap_or(80);
    if let Some(h) = host_header {
        let agrees = h
            .to_str()
            .ok()
            .and_then(|s| s.parse::<http::uri::Authority>().ok())
            .and_then(|a| Some((Host::parse(a.host()).ok()?, a.port_u16().unwrap_or(80))))
            .is_some_and(|(hh, hp)| hh == host && hp == port);
        if !agrees {
            return Err(BadForward::HostMismatch(host, port));
        }
    }
    Ok((host, port))
}

/// A credential route's request path split into the route's name and the rest:
/// `/<name>/<rest>`.
pub fn route_path(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

/// Whether a path holds a `.` or `..` segment, also percent-encoded (`%2e`, `%2E`): one
/// would let the upstream resolve the path outside the route's base.
pub fn has_dot_segment(rest: &str) -> bool {
    rest.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

/// The upstream path and query for `rest` (and the client's `query`) under a route's
/// `base` (no trailing slash). The caller has refused dot segments.
pub fn route_target(base: &str, rest: &str, query: Option<&str>) -> String {
    let mut target = format!("{base}/{rest}");
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    #[test]
    fn connect_needs_host_and_port() {
        assert_eq!(
            connect_target(&uri("Example.COM.:443")),
            Some((name("example.com"), 443))
        );
        assert_eq!(connect_target(&uri("example.com")), None);
        assert_eq!(connect_target(&uri("/path")), None);
    }

    #[test]
    fn forward_checks_scheme_host_and_host_header() {
        assert_eq!(
            forward_target(&uri("http://a.example/x"), None),
            Ok((name("a.example"), 80))
        );
        assert_eq!(
            forward_target(&uri("/x"), None),
            Err(BadForward::NotProxyRequest)
        );
        assert_eq!(
            forward_target(&uri("https://a.example/x"), None),
            Err(BadForward::NotHttp)
        );
        let ok = HeaderValue::from_static("A.example:80");
        assert!(forward_target(&uri("http://a.example/"), Some(&ok)).is_ok());
        let other = HeaderValue::from_static("b.example");
        assert_eq!(
            forward_target(&uri("http://a.example:8080/"), Some(&other)),
            Err(BadForward::HostMismatch(name("a.example"), 8080))
        );
    }

    #[test]
    fn route_paths_split_and_refuse_dot_segments() {
        assert_eq!(route_path("/api/v1/x"), ("api", "v1/x"));
        assert_eq!(route_path("//api"), ("api", ""));
        assert!(has_dot_segment("v1/%2E%2e/x"));
        assert!(has_dot_segment("."));
        assert!(!has_dot_segment("v1/..x/y"));
        assert_eq!(route_target("/base", "v1", Some("q=1")), "/base/v1?q=1");
    }
}
