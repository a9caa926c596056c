//! What the agent sends the egress proxy and the credential sidecar: a request line and
//! headers, read as hyper hands them over (the target as a URI, the Host header as a
//! header value), then through the same pure functions the proxies decide with
//! (`bottle_proxy::request`) and the egress rules. Nothing may panic, and:
//! - a host the proxy extracted prints as text that parses back to the same host (the
//!   audit log and the refusal name what was decided on);
//! - a credential route's upstream target without dot segments stays under the route's
//!   base.
#![no_main]

use std::sync::OnceLock;

use bottle_proxy::request::{
    connect_target, forward_target, has_dot_segment, route_path, route_target,
};
use bottle_proxy::rules::{Entry, Host, List, Rules};
use http::{HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let s = |v: &[&str]| v.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        Rules::new(
            &s(&["example.com", "*.github.com", "10.0.0.1:8080", "[::1]:443"]),
            &s(&["evil.github.com", "*.internal.example.com"]),
            &s(&["registry.local"]),
            &s(&["demo-gate", "demo-agent"]),
            &[("api.model.example".into(), "http://cred/model".into())],
        )
        .expect("the fuzz target's own rules parse")
    })
}

fn check_host(host: &Host, port: u16) {
    let text = host.to_string();
    assert_eq!(
        Host::parse(&text).as_ref(),
        Ok(host),
        "{text:?} does not parse back"
    );
    let _ = rules().decide(host, port);
    let _ = rules().private_allowed(host);
}

fuzz_target!(|data: &[u8]| {
    // "METHOD TARGET VERSION" then "Name: value" lines, as on the wire.
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return;
    };
    let mut words = request_line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let host_header = lines
        .filter_map(|l| {
            let (name, value) = l.split_at(l.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"host")
                .then(|| HeaderValue::from_bytes(value[1..].trim_ascii()).ok())
                .flatten()
        })
        .next();
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    // The allow-list syntax, on the same bytes.
    if let Ok(text) = std::str::from_utf8(target) {
        for list in [List::Allow, List::Deny, List::AllowPrivate] {
            if let Ok(entry) = Entry::parse(text, list) {
                let _ = entry.matches(&Host::Name("example.com".into()), 443);
            }
        }
    }
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };

    if method == Method::CONNECT {
        if let Some((host, port)) = connect_target(&uri) {
            check_host(&host, port);
        }
    } else if let Ok((host, port)) = forward_target(&uri, host_header.as_ref()) {
        check_host(&host, port);
    }

    // The credential sidecar: `/<route>/<rest>` under the route's base.
    let (_name, rest) = route_path(uri.path());
    if !has_dot_segment(rest) {
        let target = route_target("/v1", rest, uri.query());
        if let Ok(built) = Uri::builder()
            .scheme("https")
            .authority("api.model.example")
            .path_and_query(target.as_str())
            .build()
        {
            assert!(
                built.path().starts_with("/v1/"),
                "{target:?} left the base: {built}"
            );
        }
    }
});
