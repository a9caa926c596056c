//! The credential sidecar: API keys the agent uses but never holds.
//!
//! A bottle with `[[bottles.NAME.cred_proxy.routes]]` gets `bottle-<slug>-cred`, running
//! `bottle-proxy cred` (crate `proxy/`, the proxy image) as its own user. The agent calls
//! `http://bottle-<slug>-cred:8080/<route>/...` in plain HTTP on the internal network; the
//! sidecar drops every credential header the agent sent, sets the route's, and forwards
//! over TLS to the route's upstream (certificate and name checked), streaming both ways.
//!
//! It is a container of its own, not a mode of the egress proxy: the egress proxy carries
//! whatever the agent sends anywhere it is allowed, this one holds the keys; a flaw in the
//! first must not expose the second (the same argument that keeps the gate's SSH key out
//! of everything else).
//!
//! The keys are read when the bottle is planned (`bottle up`), from `bottle`'s environment
//! (`secret_env`) or a host file (`secret_file`), and copied into this container only,
//! 0400 and owned by its user. A missing or unusable key stops the plan before anything
//! is created.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use bottle_proxy_config::{CredConfig, Limits, Route};

use crate::diag::{Diagnostic, ManifestError, PlanError};
use crate::images::{self, ImageRecipe};
use crate::manifest::{CredRoute, SecretSource};
use crate::plan::{FileSource, FileSpec, SecretBytes};
use crate::sidecar::proxy::{self, proxy_container, ProxyContainer};
use crate::sidecar::{AgentGrant, BottleContext, HostEnv, Sidecar, SidecarPlan};

/// The sidecar's name: its role, label and resource-name suffix.
pub const NAME: &str = "cred";
/// The port it listens on (above 1024: it needs no capability).
pub const CRED_PORT: u16 = 8080;
/// The name of its port.
pub const PORT_NAME: &str = "http";
/// Its user and group: neither the egress proxy's nor the gate's.
pub const CRED_UID: u32 = 10003;
/// Where its configuration goes.
pub const CONFIG_PATH: &str = "/etc/bottle-proxy/cred.json";
/// The directory of the keys, one file per route.
pub const KEY_DIR: &str = "/run/bottle-cred";
/// The directory of the routes' extra CA files.
pub const CA_DIR: &str = "/etc/bottle-proxy/ca";

/// The credential sidecar.
#[derive(Debug, Clone, Copy)]
pub struct CredSidecar;

/// The URL the agent calls for `route` in the bottle of `cx` (no trailing `/`: clients
/// append `/v1/...`).
pub fn route_url(cx: &BottleContext<'_>, route: &str) -> String {
    format!("http://{}:{CRED_PORT}/{route}", cx.name(NAME))
}

impl Sidecar for CredSidecar {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "the credential routes: API keys added outside the bottle"
    }

    fn images(&self) -> &'static [&'static ImageRecipe] {
        &[&images::PROXY]
    }

    fn plan(&self, cx: &BottleContext<'_>) -> Result<Option<SidecarPlan>, PlanError> {
        let cred = &cx.bottle.cred_proxy;
        if cred.routes.is_empty() {
            return Ok(None);
        }
        let host = cx.name(NAME);
        let mut files = Vec::new();
        let mut routes = Vec::new();
        let mut problems = Vec::new();
        for route in &cred.routes {
            let key_path = format!("{KEY_DIR}/{}.key", route.name);
            match read_secret(route, cx.host_env) {
                Ok(source) => files.push(FileSpec {
                    path: key_path.clone(),
                    mode: 0o400,
                    uid: CRED_UID,
                    gid: CRED_UID,
                    source,
                    relocate_env: None,
                }),
                Err(d) => problems.push(d),
            }
            let ca_path = match &route.ca_file {
                None => None,
                Some(file) => match std::fs::read_to_string(file) {
                    Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {
                        let path = format!("{CA_DIR}/{}.pem", route.name);
                        files.push(text_file(&path, text));
                        Some(path)
                    }
                    Ok(_) => {
                        problems.push(diagnostic(route, "ca_file", format!("ca_file {} holds no PEM certificate", file.display()), "point ca_file at a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)"));
                        None
                    }
                    Err(e) => {
                        problems.push(diagnostic(
                            route,
                            "ca_file",
                            format!("cannot read ca_file {}: {e}", file.display()),
                            "fix the path; it must be a PEM file readable by you",
                        ));
                        None
                    }
                },
            };
            routes.push(Route {
                name: route.name.clone(),
                upstream: route.upstream.clone(),
                header: route.header.clone(),
                format: route.format.clone(),
                secret_file: key_path,
                ca_file: ca_path,
                insecure_http: false,
            });
        }
        if !problems.is_empty() {
            return Err(PlanError::Invalid(ManifestError::new(problems)));
        }
        let config = CredConfig {
            bottle: cx.bottle.name.clone(),
            listen: vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, CRED_PORT))],
            routes,
            allow_private: crate::manifest::Egress::texts(&cred.allow_private),
            limits: Limits::default(),
        };
        let text = serde_json::to_string_pretty(&config).expect("a config serialises") + "\n";
        files.insert(0, text_file(CONFIG_PATH, text));

        let container = proxy_container(ProxyContainer {
            cx,
            name: NAME,
            mode: "cred",
            config_path: CONFIG_PATH,
            uid: CRED_UID,
            port: CRED_PORT,
            port_name: PORT_NAME,
            files,
            writable: &[proxy::CONFIG_DIR, KEY_DIR],
        });
        let env: BTreeMap<String, String> = cred
            .routes
            .iter()
            .filter_map(|r| {
                let var = r.agent_env.clone()?;
                Some((var, route_url(cx, &r.name)))
            })
            .collect();
        Ok(Some(SidecarPlan {
            container,
            agent: AgentGrant {
                files: Vec::new(),
                env,
                hosts: vec![host],
                reaches: vec![PORT_NAME.to_owned()],
            },
        }))
    }
}

fn text_file(path: &str, text: String) -> FileSpec {
    FileSpec {
        path: path.to_owned(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        source: FileSource::Text { text },
        relocate_env: None,
    }
}

fn diagnostic(route: &CredRoute, key: &str, message: String, hint: &str) -> Diagnostic {
    Diagnostic {
        location: route.location.clone(),
        field: format!("{}.{key}", route.field),
        message,
        hint: hint.to_owned(),
    }
}

/// Reads a route's key and checks it makes one header line. The error never quotes it.
fn read_secret(route: &CredRoute, env: &HostEnv) -> Result<FileSource, Diagnostic> {
    let (bytes, source, key) = match &route.secret {
        SecretSource::Env(var) => match env.var(var) {
            Some(value) if !value.is_empty() => (
                value.clone().into_bytes(),
                FileSource::HostEnv {
                    var: var.clone(),
                    bytes: SecretBytes::new(value.into_bytes()),
                },
                "secret_env",
            ),
            _ => {
                return Err(diagnostic(
                    route,
                    "secret_env",
                    format!("route '{}': the environment variable {var} is not set or empty", route.name),
                    &format!("export {var}=<the key> in the shell that runs bottle (it is copied into the cred sidecar only), or use secret_file"),
                ))
            }
        },
        SecretSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => (
                bytes.clone(),
                FileSource::HostFile {
                    path: path.clone(),
                    bytes: SecretBytes::new(bytes),
                },
                "secret_file",
            ),
            Err(e) => {
                return Err(diagnostic(
                    route,
                    "secret_file",
                    format!("route '{}': cannot read secret_file {}: {e}", route.name, path.display()),
                    "fix the path; the file holds the key on one line and must be readable by you",
                ))
            }
        },
    };
    // The sidecar drops one trailing newline (a file written by `echo`); what is left must
    // be a header value: printable, one line.
    let mut value: &[u8] = &bytes;
    value = value.strip_suffix(b"\n").unwrap_or(value);
    value = value.strip_suffix(b"\r").unwrap_or(value);
    let why = if value.is_empty() {
        Some("is empty")
    } else if value.iter().any(|b| b.is_ascii_control() && *b != b'\t') {
        Some("holds a line break or control character, which no header can carry")
    } else {
        None
    };
    match why {
        Some(why) => Err(diagnostic(
            route,
            key,
            format!("route '{}': the key {why}", route.name),
            "the key is one line of printable text",
        )),
        None => Ok(source),
    }
}
