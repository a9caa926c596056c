//! The contract between bottle and its HTTP sidecars.
//!
//! bottle's planner serialises an [`EgressConfig`] or a [`CredConfig`] as JSON into a file
//! that is copied into the sidecar's container; `bottle-proxy egress --config FILE` or
//! `bottle-proxy cred --config FILE` reads it. Every decision a sidecar takes is written
//! as one JSON [`AuditRecord`] per line on its stdout, which bottle's CLI reads back from
//! the engine's logs. The git-gate writes records of the same schema.
//!
//! The types are plain data: public fields, `Default`, serde only. Fields are added,
//! never renamed or removed; optional fields are left out of the JSON when absent, so old
//! readers keep working. Unknown fields are refused in the configs (a typo in the planner
//! is a startup error, not a silently ignored rule) but accepted in audit records (a newer
//! writer must not break an older reader).
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The egress proxy's configuration: the allow and deny lists of one bottle.
///
/// Entries of `allow`, `deny` and `allow_private` are `host`, `*.suffix` (subdomains of
/// `suffix`, never `suffix` itself) or an IP literal, each optionally followed by
/// `:port` (`[v6]:port` for IPv6). A bare `allow` entry means ports 443 and 80; a bare
/// `deny` entry means every port; `allow_private` entries take no port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// The bottle's name, as in `bottle.toml` (used in audit lines and refusal messages).
    pub bottle: String,
    /// Addresses to listen on (the agent's `HTTPS_PROXY` points at one of them).
    pub listen: Vec<SocketAddr>,
    /// Destinations the agent may reach.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Destinations refused even when `allow` matches; checked first.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Hosts allowed to resolve to private, loopback or otherwise non-public addresses.
    #[serde(default)]
    pub allow_private: Vec<String>,
    /// The bottle's own sidecar and agent names: always refused, whatever else says.
    #[serde(default)]
    pub own_hosts: Vec<String>,
    /// Hosts served by a credential route: a CONNECT to them is refused with a pointer
    /// to the route, so the agent uses the key-holding path instead of its own key.
    #[serde(default)]
    pub routes: Vec<RouteHint>,
    /// Timeouts and caps.
    #[serde(default)]
    pub limits: Limits,
}

/// A host that has a credential route, as the egress proxy needs to know it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteHint {
    /// The upstream's host name (e.g. `api.anthropic.com`).
    pub host: String,
    /// The URL the agent should call instead (e.g. `http://bottle-dev-cred/anthropic/`).
    pub url: String,
}

/// The credential sidecar's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredConfig {
    /// The bottle's name.
    pub bottle: String,
    /// Addresses to listen on (the agent calls `http://bottle-<slug>-cred/<route>/`).
    pub listen: Vec<SocketAddr>,
    /// The routes, by name.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Upstream hosts allowed to resolve to non-public addresses (same syntax as
    /// [`EgressConfig::allow_private`]).
    #[serde(default)]
    pub allow_private: Vec<String>,
    /// Timeouts and caps.
    #[serde(default)]
    pub limits: Limits,
}

/// One credential route: `/<name>/rest` is forwarded to `<upstream>/rest` with the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The first path segment the agent uses (`[A-Za-z0-9._-]+`).
    pub name: String,
    /// `https://host[:port][/base]`; no query, no user info.
    pub upstream: String,
    /// The header that carries the key (e.g. `x-api-key`, `authorization`).
    pub header: String,
    /// The header's value, with `{secret}` where the key goes (e.g. `Bearer {secret}`).
    pub format: String,
    /// Path of the file holding the key inside the container (mode 0400), read once at
    /// start; one trailing newline is dropped.
    pub secret_file: String,
    /// Optional PEM file of extra CA certificates trusted for this upstream, on top of
    /// the webpki roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Tests only: allow an `http://` upstream. Accepted only when the upstream's host is
    /// also in [`CredConfig::allow_private`]; the key then travels in clear text, so
    /// bottle's planner never sets it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_http: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Timeouts and caps of a sidecar. Every field has a default, so `{}` is a valid value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds allowed for a TCP (and, for cred, TLS) connection to an upstream. Default 10.
    pub connect_timeout_secs: u64,
    /// Seconds a CONNECT tunnel may carry no byte in either direction before it is
    /// closed; also the most a forwarded body may stay silent, and (egress plain HTTP)
    /// the most an upstream may take to answer. Default 300.
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send a request's complete header. Default 10.
    pub header_read_timeout_secs: u64,
    /// The most bytes of request header accepted (hyper's read buffer). Default 65536.
    pub max_header_bytes: usize,
    /// The most client connections served at once (tunnels included); beyond it a
    /// client gets `503`. Default 256.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout_secs: 10,
            idle_timeout_secs: 300,
            header_read_timeout_secs: 10,
            max_header_bytes: 64 * 1024,
            max_connections: 256,
        }
    }
}

/// The sidecar (or gate) that took a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The egress proxy.
    #[default]
    Proxy,
    /// The credential sidecar.
    Cred,
    /// The git-gate.
    Gate,
}

/// Whether a request went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// It was let through (even if the upstream later failed: see `reason`).
    Allow,
    /// It was refused.
    #[default]
    Deny,
}

/// One line of bottle's audit log: one decision of one sidecar.
///
/// Never holds a header value, a secret or a query string. `reason` is a short machine
/// token: `allowed`, `not-allowed`, `denied-by-rule`, `private-address`, `ip-literal`,
/// `port-not-allowed`, `own-sidecar`, `host-mismatch`, `use-route`, `unknown-route`,
/// `not-a-proxy-request`, `bad-request`, `over-capacity`, `resolve-failed`,
/// `connect-failed`, `upstream-error`, `idle-timeout` (the gate adds its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was logged: RFC 3339, UTC, milliseconds (`2026-01-02T03:04:05.678Z`).
    pub time: String,
    /// The bottle's name.
    pub bottle: String,
    /// Who decided.
    pub source: Source,
    /// What was decided.
    pub decision: Decision,
    /// Why, as a token (see the type's docs).
    pub reason: String,
    /// The destination host, normalised (lower case, punycode, no trailing dot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The address actually connected to (`ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The request's method (`CONNECT`, `GET`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request's path, without its query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The credential route used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The HTTP status answered to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes from the client towards the upstream (bodies, or tunnel bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_up: Option<u64>,
    /// Bytes from the upstream towards the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_down: Option<u64>,
    /// How long the request or tunnel lasted, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The allow or deny entry that matched, as written in the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record stamped now, with the given bottle, source, decision and reason.
    pub fn now(bottle: &str, source: Source, decision: Decision, reason: &str) -> Self {
        AuditRecord {
            time: rfc3339_millis(SystemTime::now()),
            bottle: bottle.to_string(),
            source,
            decision,
            reason: reason.to_string(),
            ..Default::default()
        }
    }

    /// The record as one JSON line, without the newline.
    pub fn to_line(&self) -> String {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(self).expect("an AuditRecord always serialises")
    }
}

/// Formats a time as RFC 3339 in UTC with millisecond precision, e.g.
/// `2026-01-02T03:04:05.678Z`. Times before 1970 are written as the epoch.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), counting in
/// 400-year eras whose years start on March 1st (so the leap day is last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339_millis(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_323_045); // 2026-01-02T03:04:05Z
        assert_eq!(rfc3339_millis(t), "2026-01-02T03:04:05.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_399); // 2100-02-28T23:59:59Z
        assert_eq!(rfc3339_millis(t), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn audit_skips_absent_fields() {
        let mut r = AuditRecord::now("dev", Source::Proxy, Decision::Deny, "not-allowed");
        r.time = "2026-01-02T03:04:05.678Z".into();
        r.host = Some("example.org".into());
        r.port = Some(443);
        assert_eq!(
            r.to_line(),
            r#"{"time":"2026-01-02T03:04:05.678Z","bottle":"dev","source":"proxy","decision":"deny","reason":"not-allowed","host":"example.org","port":443}"#
        );
        let back: AuditRecord = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(back, r);
        // A newer writer's extra field does not break this reader.
        let extra = r#"{"time":"t","bottle":"b","source":"gate","decision":"allow","reason":"allowed","new":1}"#;
        let r: AuditRecord = serde_json::from_str(extra).unwrap();
        assert_eq!(r.source, Source::Gate);
    }

    #[test]
    fn configs_default_and_refuse_unknown_fields() {
        let c: EgressConfig =
            serde_json::from_str(r#"{"bottle":"dev","listen":["0.0.0.0:3128"]}"#).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert!(serde_json::from_str::<EgressConfig>(
            r#"{"bottle":"dev","listen":[],"alow":["x"]}"#
        )
        .is_err());
        let l: Limits = serde_json::from_str(r#"{"idle_timeout_secs":5}"#).unwrap();
        assert_eq!(l.idle_timeout_secs, 5);
        assert_eq!(l.max_connections, 256);
    }
}

pub mod rules;

/// A malformed list entry, named with its list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// `allow`, `deny`, `allow_private`, `own_hosts` or `routes`.
    pub list: &'static str,
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad {} entry {:?}: {}", self.list, self.entry, self.why)
    }
}

impl std::error::Error for RuleError {}
