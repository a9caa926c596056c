//! `[bottles.NAME.cred_proxy]`: the credential routes, where the agent's API keys live
//! outside the bottle.
//!
//! ```toml
//! [[bottles.NAME.cred_proxy.routes]]
//! name = "anthropic"                   # http://<cred sidecar>/anthropic/... -> upstream/...
//! upstream = "https://api.anthropic.com"
//! header = "x-api-key"
//! format = "{secret}"                  # optional; e.g. "Bearer {secret}"
//! secret_env = "ANTHROPIC_API_KEY"     # or secret_file = "~/.config/anthropic/key"
//! agent_env = "ANTHROPIC_BASE_URL"     # optional: the agent gets the route's URL in it
//! ca_file = "test-ca.pem"              # optional extra CA for the upstream
//! ```
//!
//! Validation is complete here (every problem of every route, each with its field); the
//! secret itself is read only when the bottle is planned (`bottle up`), by the cred
//! sidecar ([`crate::sidecar::cred`]), never at parse time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{valid_env_key, Located, Validator};
use crate::diag::Location;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredProxy {
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    allow_private: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    upstream: Spanned<String>,
    header: Spanned<String>,
    format: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    agent_env: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

/// `[bottles.NAME.cred_proxy]`. No routes (the default): no cred sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredProxy {
    /// The routes, in manifest order.
    pub routes: Vec<CredRoute>,
    /// Route upstream hosts that may resolve to private, loopback or link-local addresses
    /// (a model API on the local network, a test stand-in). Its own list, not the egress
    /// proxy's: a host allowed private for one is not for the other.
    pub allow_private: Vec<Located<String>>,
}

/// One `[[bottles.NAME.cred_proxy.routes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredRoute {
    /// The first path segment the agent calls (`/<name>/...`).
    pub name: String,
    /// `https://host[:port][/base]`, as written (checked).
    pub upstream: String,
    /// The upstream's host (for the egress proxy's "use the route" refusal).
    pub host: String,
    /// The header the sidecar sets, lower case.
    pub header: String,
    /// The header's value with `{secret}` where the key goes.
    pub format: String,
    /// Where `bottle up` reads the key from.
    pub secret: SecretSource,
    /// An agent environment variable given the route's URL.
    pub agent_env: Option<String>,
    /// Extra CA certificates (PEM) trusted for the upstream, absolute.
    pub ca_file: Option<PathBuf>,
    /// The route's field path (`bottles.NAME.cred_proxy.routes[i]`), for messages.
    pub field: String,
    /// Where the route was written.
    pub location: Location,
}

/// Where a route's key comes from, read when the bottle is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The environment variable of that name, in `bottle`'s own environment.
    Env(String),
    /// A file on the host (absolute, `~` expanded); one trailing newline is dropped.
    File(PathBuf),
}

/// What the routes before this one took (valid or not), so a clash is reported once.
#[derive(Default)]
struct Seen {
    names: std::collections::BTreeSet<String>,
    /// agent_env -> the route that set it.
    agent_envs: BTreeMap<String, String>,
}

/// Headers a route may not set: they frame or route the request, so the sidecar owns them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// RFC 9110 token characters (a header name).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A route name: one path segment of `[A-Za-z0-9._-]`, starting with a letter or digit
/// (so never `.` or `..`), at most 64 characters.
fn valid_route_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

impl Validator<'_> {
    pub(super) fn cred_proxy(
        &mut self,
        prefix: &str,
        raw: RawCredProxy,
        env: &BTreeMap<String, Located<crate::interp::Template>>,
    ) -> CredProxy {
        use bottle_proxy_config::rules::{Entry, List};
        let mut allow_private = Vec::new();
        for (i, entry) in raw.allow_private.into_iter().enumerate() {
            let field = format!("{prefix}.allow_private[{i}]");
            match Entry::parse(entry.get_ref(), List::AllowPrivate) {
                Ok(_) => {
                    allow_private.push(self.located(entry.get_ref().clone(), &entry.span(), &field))
                }
                Err(e) => self.error(
                    &entry.span(),
                    &field,
                    format!(
                        "'{}' is not a host entry: {}",
                        entry.get_ref().escape_debug(),
                        e.why
                    ),
                    "write a route upstream's host name or \"*.suffix\", without a port",
                ),
            }
        }
        let mut routes: Vec<CredRoute> = Vec::new();
        let mut seen = Seen::default();
        for (i, raw) in raw.routes.into_iter().enumerate() {
            let field = format!("{prefix}.routes[{i}]");
            let span = raw.span();
            if let Some(route) = self.route(&field, &span, raw.into_inner(), env, &mut seen) {
                routes.push(route);
            }
        }
        CredProxy {
            routes,
            allow_private,
        }
    }

    fn route(
        &mut self,
        field: &str,
        span: &std::ops::Range<usize>,
        raw: RawRoute,
        env: &BTreeMap<String, Located<crate::interp::Template>>,
        seen: &mut Seen,
    ) -> Option<CredRoute> {
        let before = self.diagnostics.len();

        let name = raw.name.get_ref().clone();
        if !valid_route_name(&name) {
            self.error(
                &raw.name.span(),
                &format!("{field}.name"),
                format!("'{}' is not a valid route name", name.escape_debug()),
                "use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit: it is the first segment of the route's path",
            );
        } else if !seen.names.insert(name.clone()) {
            self.error(
                &raw.name.span(),
                &format!("{field}.name"),
                format!("route '{name}' is declared twice"),
                "give each route its own name",
            );
        }

        let upstream = raw.upstream.get_ref().clone();
        let host = self.route_upstream(
            &upstream,
            &raw.upstream.span(),
            &format!("{field}.upstream"),
        );

        let header = raw.header.get_ref().to_ascii_lowercase();
        if !is_token(&header) {
            self.error(
                &raw.header.span(),
                &format!("{field}.header"),
                format!("'{}' is not a header name", raw.header.get_ref().escape_debug()),
                "write the header the upstream reads the key from, e.g. \"x-api-key\" or \"authorization\"",
            );
        } else if RESERVED_HEADERS.contains(&header.as_str()) {
            self.error(
                &raw.header.span(),
                &format!("{field}.header"),
                format!("'{header}' frames the request and cannot carry a key"),
                "write the header the upstream reads the key from, e.g. \"x-api-key\" or \"authorization\"",
            );
        }

        let format = match raw.format {
            None => "{secret}".to_owned(),
            Some(f) => {
                let text = f.get_ref().clone();
                if !text.contains("{secret}") {
                    self.error(
                        &f.span(),
                        &format!("{field}.format"),
                        format!("'{}' has no {{secret}}", text.escape_debug()),
                        "write where the key goes, e.g. \"Bearer {secret}\"",
                    );
                } else if text.chars().any(|c| c.is_control()) {
                    self.error(
                        &f.span(),
                        &format!("{field}.format"),
                        "the format holds a control character",
                        "a header value is one line of printable text",
                    );
                }
                text
            }
        };

        let secret = match (raw.secret_env, raw.secret_file) {
            (Some(var), None) => {
                if !valid_env_key(var.get_ref()) {
                    self.error(&var.span(), &format!("{field}.secret_env"), format!("'{}' is not an environment variable name", var.get_ref().escape_debug()), "name the variable `bottle up` reads the key from, e.g. \"ANTHROPIC_API_KEY\"");
                }
                Some(SecretSource::Env(var.into_inner()))
            }
            (None, Some(file)) => match self.expand_path(file.get_ref()) {
                Ok(path) => Some(SecretSource::File(path)),
                Err(why) => {
                    self.error(&file.span(), &format!("{field}.secret_file"), why, "write the path of the file holding the key, absolute, ~/..., or relative to the manifest");
                    None
                }
            },
            (Some(_), Some(file)) => {
                self.error(
                    &file.span(),
                    &format!("{field}.secret_file"),
                    "both secret_env and secret_file are set",
                    "keep one: the key comes from exactly one place",
                );
                None
            }
            (None, None) => {
                self.error(span, field, format!("route '{name}' has no secret_env or secret_file"), "add secret_env = \"VAR\" (read by `bottle up` from its environment) or secret_file = \"PATH\"");
                None
            }
        };

        let agent_env = raw.agent_env.and_then(|var| {
            let key = var.get_ref().clone();
            let f = format!("{field}.agent_env");
            if !valid_env_key(&key) {
                self.error(&var.span(), &f, format!("'{}' is not an environment variable name", key.escape_debug()), "name the variable the agent reads the API's base URL from, e.g. \"ANTHROPIC_BASE_URL\"");
                None
            } else if env.contains_key(&key) {
                self.error(&var.span(), &f, format!("'{key}' is also set in the bottle's env"), "remove it from env: the route sets it to its own URL");
                None
            } else if let Some(other) = seen.agent_envs.get(&key) {
                self.error(&var.span(), &f, format!("'{key}' is already set by route '{other}'"), "give each route its own variable");
                None
            } else {
                seen.agent_envs.insert(key.clone(), name.clone());
                Some(key)
            }
        });

        let ca_file = raw.ca_file.and_then(|file| match self.expand_path(file.get_ref()) {
            Ok(path) => Some(path),
            Err(why) => {
                self.error(&file.span(), &format!("{field}.ca_file"), why, "write the path of a PEM file of CA certificates, absolute, ~/..., or relative to the manifest");
                None
            }
        });

        if self.diagnostics.len() != before {
            return None;
        }
        Some(CredRoute {
            name,
            upstream,
            host: host?,
            header,
            format,
            secret: secret?,
            agent_env,
            ca_file,
            field: field.to_owned(),
            location: self.loc(span),
        })
    }

    /// Checks a route's upstream URL; returns its host.
    fn route_upstream(
        &mut self,
        text: &str,
        span: &std::ops::Range<usize>,
        field: &str,
    ) -> Option<String> {
        const HINT: &str = "write https://HOST[:PORT][/BASE], e.g. \"https://api.anthropic.com\"";
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    span,
                    field,
                    format!("'{}' is not a URL: {e}", text.escape_debug()),
                    HINT,
                );
                return None;
            }
        };
        let why = if url.scheme() != "https" {
            Some("must be https: the key travels to it")
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("may not hold user info: the route adds the credential")
        } else if url.query().is_some() || url.fragment().is_some() {
            Some("may not hold a query or fragment")
        } else {
            None
        };
        if let Some(why) = why {
            self.error(
                span,
                field,
                format!("'{}' {why}", text.escape_debug()),
                HINT,
            );
            return None;
        }
        let Some(host) = url.host_str() else {
            self.error(
                span,
                field,
                format!("'{}' names no host", text.escape_debug()),
                HINT,
            );
            return None;
        };
        match bottle_proxy_config::rules::Host::parse(host) {
            Ok(host) => Some(host.to_string()),
            Err(why) => {
                self.error(
                    span,
                    field,
                    format!("'{}': {why}", text.escape_debug()),
                    HINT,
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_one_safe_segment() {
        for ok in ["anthropic", "a", "open-ai_2.v1"] {
            assert!(valid_route_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "-a", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(!valid_route_name(bad), "{bad}");
        }
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_token("x-api-key"));
        assert!(!is_token("x api key"));
        assert!(!is_token("x:y"));
        assert!(!is_token(""));
    }
}
