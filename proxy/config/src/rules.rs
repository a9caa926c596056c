//! The egress decision: which host and port the agent may reach, by name.
//!
//! Pure and synchronous: no I/O, so every rule is unit- and property-tested. Entries are
//! parsed once at start ([`Rules::new`]); a bad entry is a startup error naming it.
//!
//! Entry syntax: `host`, `*.suffix` (subdomains only, never the apex), or an IP literal
//! (`1.2.3.4`, `::1`, `[::1]`), each optionally with `:port` (`[::1]:443` for IPv6). A
//! bare `allow` entry means ports 443 and 80, a bare `deny` entry every port;
//! `allow_private` entries take no port. Names are compared after normalisation (lower
//! case, one trailing dot dropped, IDNA to punycode), so `EXAMPLE.com.` is `example.com`
//! and `bücher.example` is `xn--bcher-kva.example`.

use std::fmt;
use std::net::IpAddr;

use crate::RuleError;

/// A destination host, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower case ASCII (punycode), no trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// Parses and normalises a host as a client sent it (brackets allowed around IPv6).
    pub fn parse(raw: &str) -> Result<Host, String> {
        let unbracketed = raw
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(raw);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        normalise_name(raw).map(Host::Name)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Lower case, one trailing dot dropped, IDNA (UTS 46) to punycode, and every label
/// checked: 1 to 63 of `[a-z0-9_-]`, not starting or ending with `-`.
pub fn normalise_name(raw: &str) -> Result<String, String> {
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() {
        return Err("empty host name".into());
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| format!("invalid host name {raw:?}"))?;
    if ascii.len() > 253 {
        return Err(format!("host name {raw:?} is longer than 253 bytes"));
    }
    for label in ascii.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("invalid host name {raw:?}"));
        }
    }
    Ok(ascii)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `*.suffix`, stored without `*.`: matches names ending in `.suffix`.
    Subdomains(String),
    Ip(IpAddr),
}

impl Pattern {
    fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (Pattern::Exact(p), Host::Name(n)) => p == n,
            (Pattern::Subdomains(s), Host::Name(n)) => {
                n.len() > s.len() + 1 && n.ends_with(s.as_str()) && {
                    let cut = n.len() - s.len() - 1;
                    n.as_bytes()[cut] == b'.'
                }
            }
            (Pattern::Ip(p), Host::Ip(ip)) => p == ip,
            _ => false,
        }
    }
}

/// Which list an entry comes from: it decides what a missing port means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `allow`: a bare entry means 443 and 80.
    Allow,
    /// `deny`: a bare entry means every port.
    Deny,
    /// `allow_private`: no port may be given.
    AllowPrivate,
}

impl List {
    fn key(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::Deny => "deny",
            List::AllowPrivate => "allow_private",
        }
    }
}

/// One parsed entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry as written in the config.
    pub text: String,
    pattern: Pattern,
    /// `None`: the list's default (443 and 80 for allow, any for deny and allow_private).
    port: Option<u16>,
    list: List,
}

impl Entry {
    /// Parses one entry of the given list.
    pub fn parse(text: &str, list: List) -> Result<Entry, RuleError> {
        let bad = |why: String| RuleError {
            list: list.key(),
            entry: text.to_string(),
            why,
        };
        let s = text.trim();
        let (host, port) = split_host_port(s).map_err(bad)?;
        if port.is_some() && list == List::AllowPrivate {
            return Err(bad("allow_private entries take no port".into()));
        }
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(bad(
                    "'*' may only stand first, as in \"*.example.com\"".into()
                ));
            }
            let name = normalise_name(suffix).map_err(bad)?;
            Pattern::Subdomains(name)
        } else if host.contains('*') {
            return Err(bad(
                "'*' may only stand first, as in \"*.example.com\" (which matches subdomains, not example.com)".into(),
            ));
        } else {
            match Host::parse(host).map_err(bad)? {
                Host::Ip(ip) => Pattern::Ip(ip),
                Host::Name(n) => Pattern::Exact(n),
            }
        };
        Ok(Entry {
            text: text.to_string(),
            pattern,
            port,
            list,
        })
    }

    fn matches_host(&self, host: &Host) -> bool {
        self.pattern.matches(host)
    }

    fn matches_port(&self, port: u16) -> bool {
        match (self.port, self.list) {
            (Some(p), _) => p == port,
            (None, List::Allow) => port == 443 || port == 80,
            (None, _) => true,
        }
    }

    /// Whether the entry matches this host and port.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        self.matches_host(host) && self.matches_port(port)
    }
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 literal.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    if s.is_empty() {
        return Err("empty entry".into());
    }
    let parse_port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("invalid port {p:?}")),
            Ok(n) => Ok(n),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '['".to_string())?;
        let port = match after {
            "" => None,
            a => Some(parse_port(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {a:?} after ']'"))?,
            )?),
        };
        return Ok((&s[..inner.len() + 2], port));
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').expect("one colon");
            Ok((h, Some(parse_port(p)?)))
        }
        // Several colons: a bare IPv6 literal, which cannot carry a port.
        _ => Ok((s, None)),
    }
}

/// Why a destination was refused (or allowed): the audit log's `reason` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An allow entry matched.
    Allowed,
    /// No entry matched.
    NotAllowed,
    /// A deny entry matched.
    DeniedByRule,
    /// An allow entry names the host, but not this port.
    PortNotAllowed,
    /// An IP literal no entry lists.
    IpLiteral,
    /// One of the bottle's own containers.
    OwnSidecar,
    /// The host has a credential route.
    UseRoute,
}

impl Reason {
    /// The token written to the audit log and the `X-Bottle-Deny` header.
    pub fn token(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::NotAllowed => "not-allowed",
            Reason::DeniedByRule => "denied-by-rule",
            Reason::PortNotAllowed => "port-not-allowed",
            Reason::IpLiteral => "ip-literal",
            Reason::OwnSidecar => "own-sidecar",
            Reason::UseRoute => "use-route",
        }
    }
}

/// The outcome of [`Rules::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed or why not.
    pub reason: Reason,
    /// The entry that matched (as written), if one did.
    pub rule: Option<String>,
    /// For [`Reason::UseRoute`]: the URL to call instead.
    pub route_url: Option<String>,
}

impl Verdict {
    /// Whether the destination is allowed.
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }
}

/// The parsed lists of one bottle.
#[derive(Debug, Clone)]
pub struct Rules {
    allow: Vec<Entry>,
    deny: Vec<Entry>,
    allow_private: Vec<Entry>,
    own_hosts: Vec<Host>,
    routes: Vec<(Host, String)>,
}

impl Rules {
    /// Parses every list; the first bad entry is the error.
    pub fn new(
        allow: &[String],
        deny: &[String],
        allow_private: &[String],
        own_hosts: &[String],
        routes: &[(String, String)],
    ) -> Result<Rules, RuleError> {
        let parse = |v: &[String], list| -> Result<Vec<Entry>, RuleError> {
            v.iter().map(|e| Entry::parse(e, list)).collect()
        };
        let host = |list: &'static str, h: &str| {
            Host::parse(h).map_err(|why| RuleError {
                list,
                entry: h.to_string(),
                why,
            })
        };
        Ok(Rules {
            allow: parse(allow, List::Allow)?,
            deny: parse(deny, List::Deny)?,
            allow_private: parse(allow_private, List::AllowPrivate)?,
            own_hosts: own_hosts
                .iter()
                .map(|h| host("own_hosts", h))
                .collect::<Result<_, _>>()?,
            routes: routes
                .iter()
                .map(|(h, url)| Ok((host("routes", h)?, url.clone())))
                .collect::<Result<_, RuleError>>()?,
        })
    }

    /// Decides by name and port alone (the addresses are checked after resolving).
    ///
    /// Order: own hosts, deny entries, credential routes, then allow entries (an IP
    /// literal only through an entry naming it).
    pub fn decide(&self, host: &Host, port: u16) -> Verdict {
        let verdict = |reason, rule: Option<&Entry>| Verdict {
            reason,
            rule: rule.map(|e| e.text.clone()),
            route_url: None,
        };
        if self.own_hosts.contains(host) {
            return verdict(Reason::OwnSidecar, None);
        }
        if let Some(e) = self.deny.iter().find(|e| e.matches(host, port)) {
            return verdict(Reason::DeniedByRule, Some(e));
        }
        if let Some((_, url)) = self.routes.iter().find(|(h, _)| h == host) {
            return Verdict {
                reason: Reason::UseRoute,
                rule: None,
                route_url: Some(url.clone()),
            };
        }
        if let Some(e) = self.allow.iter().find(|e| e.matches(host, port)) {
            return verdict(Reason::Allowed, Some(e));
        }
        if let Some(e) = self.allow.iter().find(|e| e.matches_host(host)) {
            return verdict(Reason::PortNotAllowed, Some(e));
        }
        match host {
            Host::Ip(_) => verdict(Reason::IpLiteral, None),
            Host::Name(_) => verdict(Reason::NotAllowed, None),
        }
    }

    /// The `allow_private` entry that lets this host resolve to non-public addresses.
    pub fn private_allowed(&self, host: &Host) -> Option<&str> {
        self.allow_private
            .iter()
            .find(|e| e.matches_host(host))
            .map(|e| e.text.as_str())
    }
}

/// How to write a destination as an allow entry that would admit exactly it.
pub fn suggested_entry(host: &Host, port: u16) -> String {
    match (host, port) {
        (Host::Name(n), 443) => n.clone(),
        (Host::Ip(IpAddr::V6(ip)), p) => format!("[{ip}]:{p}"),
        (h, p) => format!("{h}:{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Rules::new(
            &v(allow),
            &v(deny),
            &v(&["*.internal"]),
            &v(&["bottle-dev-cred"]),
            &[(
                "api.anthropic.com".into(),
                "http://bottle-dev-cred/anthropic/".into(),
            )],
        )
        .unwrap()
    }

    fn name(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    fn reason(r: &Rules, host: &str, port: u16) -> &'static str {
        r.decide(&name(host), port).reason.token()
    }

    #[test]
    fn decisions() {
        let r = rules(
            &[
                "example.com",
                "*.github.com",
                "pypi.org:8443",
                "1.1.1.1",
                "[2606:4700::1111]:853",
            ],
            &["evil.github.com", "example.com:80"],
        );
        assert_eq!(reason(&r, "example.com", 443), "allowed");
        assert_eq!(reason(&r, "EXAMPLE.com.", 443), "allowed");
        assert_eq!(reason(&r, "example.com", 80), "denied-by-rule");
        assert_eq!(reason(&r, "example.com", 8080), "port-not-allowed");
        assert_eq!(reason(&r, "api.github.com", 443), "allowed");
        assert_eq!(reason(&r, "a.b.github.com", 80), "allowed");
        assert_eq!(reason(&r, "github.com", 443), "not-allowed");
        assert_eq!(reason(&r, "xgithub.com", 443), "not-allowed");
        assert_eq!(reason(&r, "evil.github.com", 443), "denied-by-rule");
        assert_eq!(reason(&r, "pypi.org", 8443), "allowed");
        assert_eq!(reason(&r, "pypi.org", 443), "port-not-allowed");
        assert_eq!(reason(&r, "1.1.1.1", 443), "allowed");
        assert_eq!(reason(&r, "1.0.0.1", 443), "ip-literal");
        assert_eq!(reason(&r, "[2606:4700::1111]", 853), "allowed");
        assert_eq!(reason(&r, "2606:4700::1111", 443), "port-not-allowed");
        assert_eq!(reason(&r, "[::1]", 443), "ip-literal");
        assert_eq!(reason(&r, "bottle-dev-cred", 80), "own-sidecar");
        assert_eq!(reason(&r, "api.anthropic.com", 443), "use-route");
        assert_eq!(
            r.decide(&name("api.anthropic.com"), 443)
                .route_url
                .as_deref(),
            Some("http://bottle-dev-cred/anthropic/")
        );
        assert_eq!(
            r.decide(&name("api.github.com"), 443).rule.as_deref(),
            Some("*.github.com")
        );
        assert_eq!(r.private_allowed(&name("db.internal")), Some("*.internal"));
        assert_eq!(r.private_allowed(&name("internal")), None);
    }

    #[test]
    fn own_hosts_win_over_allow() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let r = Rules::new(&v(&["gate"]), &[], &[], &v(&["gate"]), &[]).unwrap();
        assert_eq!(r.decide(&name("GATE."), 443).reason, Reason::OwnSidecar);
    }

    #[test]
    fn idna() {
        let r = rules(&["bücher.example", "xn--caf-dma.example"], &[]);
        assert_eq!(reason(&r, "xn--bcher-kva.example", 443), "allowed");
        assert_eq!(reason(&r, "BÜCHER.example.", 443), "allowed");
        assert_eq!(reason(&r, "café.example", 443), "allowed");
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "",
            "*",
            "*.",
            "a.*.com",
            "ex ample.com",
            "example.com:0",
            "example.com:99999",
            "example.com:http",
            "[::1",
            "[::1]x",
            "a..b",
            "-",
        ] {
            let e = Entry::parse(bad, List::Allow);
            let e = e.expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert!(Entry::parse("db:5432", List::AllowPrivate).is_err());
        assert!(Entry::parse("[::1]:443", List::Allow).is_ok());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggested_entry(&name("a.org"), 443), "a.org");
        assert_eq!(suggested_entry(&name("a.org"), 8443), "a.org:8443");
        assert_eq!(suggested_entry(&name("::1"), 443), "[::1]:443");
        assert_eq!(suggested_entry(&name("1.2.3.4"), 443), "1.2.3.4:443");
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,4}(-[a-z0-9]{1,4})?"
    }

    fn domain() -> impl Strategy<Value = String> {
        prop::collection::vec(label(), 1..4).prop_map(|v| v.join("."))
    }

    fn mangle(s: &str, upper: &[bool], dot: bool) -> String {
        let mut out: String = s
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
            .collect();
        if dot {
            out.push('.');
        }
        out
    }

    proptest! {
        #[test]
        fn deny_wins(d in domain(), port in 1u16.., wildcard: bool) {
            let entry = if wildcard { format!("*.{d}") } else { d.clone() };
            let host = if wildcard { format!("x.{d}") } else { d.clone() };
            let r = Rules::new(std::slice::from_ref(&entry), std::slice::from_ref(&entry), &[], &[], &[]).unwrap();
            let v = r.decide(&name(&host), port);
            prop_assert_eq!(v.reason, Reason::DeniedByRule);
        }

        #[test]
        fn wildcard_never_matches_apex(d in domain(), sub in label(), port in 1u16..) {
            let r = Rules::new(&[format!("*.{d}:{port}")], &[], &[], &[], &[]).unwrap();
            prop_assert!(!r.decide(&name(&d), port).allowed());
            let sub_host = format!("{sub}.{d}");
            prop_assert!(r.decide(&name(&sub_host), port).allowed());
        }

        #[test]
        fn case_and_trailing_dot_do_not_matter(
            d in domain(), upper in prop::collection::vec(any::<bool>(), 1..8),
            dot_entry: bool, dot_host: bool, port in 1u16..,
        ) {
            let entry = mangle(&d, &upper, dot_entry);
            let host = mangle(&d, &upper.iter().map(|b| !b).collect::<Vec<_>>(), dot_host);
            let r = Rules::new(&[entry], &[], &[], &[], &[]).unwrap();
            prop_assert_eq!(r.decide(&name(&host), port), r.decide(&name(&d), port));
            prop_assert_eq!(name(&host), name(&d));
        }

        #[test]
        fn bare_entry_allows_443_and_80_only(d in domain(), port in 1u16..) {
            let r = Rules::new(std::slice::from_ref(&d), &[], &[], &[], &[]).unwrap();
            prop_assert_eq!(r.decide(&name(&d), port).allowed(), port == 443 || port == 80);
        }

        #[test]
        fn bare_deny_covers_every_port(d in domain(), port in 1u16..) {
            let r = Rules::new(&[format!("{d}:{port}")], std::slice::from_ref(&d), &[], &[], &[]).unwrap();
            prop_assert_eq!(r.decide(&name(&d), port).reason, Reason::DeniedByRule);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Entry::parse(&s, List::Allow);
            let _ = Host::parse(&s);
        }
    }
}
