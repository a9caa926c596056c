//! `bottle config`: the manifest as `up` reads it, defaults filled in and the `env_file`
//! merged, as TOML (default) or JSON. Nothing secret is printed: a value from the host is
//! shown as its `${VAR}` reference, an `env_file`'s values as where they come from, and a
//! route's key only as the variable or file it is read from.

use std::collections::BTreeMap;

use bottle_core::manifest::{Bottle, GitUpstream, Manifest, SecretSource};
use bottle_core::planner::{self, AGENT_MEMORY, AGENT_PIDS};
use bottle_core::sidecar::gate::GATE_MEMORY;
use serde::Serialize;

#[derive(Serialize)]
struct Resolved {
    settings: Settings,
    bottles: BTreeMap<String, ResolvedBottle>,
}

#[derive(Serialize)]
struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    podman_socket: Option<String>,
}

#[derive(Serialize)]
struct ResolvedBottle {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_file: Option<String>,
    memory: i64,
    pids_limit: i64,
    cap_add: Vec<String>,
    gate_memory: i64,
    env: BTreeMap<String, String>,
    git: Vec<Git>,
    egress: Egress,
    cred_proxy: CredProxy,
}

#[derive(Serialize)]
struct Git {
    name: String,
    upstream: String,
    identity_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    known_host_key: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra_hosts: BTreeMap<String, String>,
    max_push_mb: u64,
    max_scan_mb: u64,
    scan_timeout_s: u64,
    max_archive_depth: u64,
    accept_fingerprints: Vec<String>,
    accept_paths: Vec<String>,
}

#[derive(Serialize)]
struct Egress {
    allow: Vec<String>,
    deny: Vec<String>,
    allow_private: Vec<String>,
}

#[derive(Serialize)]
struct CredProxy {
    allow_private: Vec<String>,
    routes: Vec<Route>,
}

#[derive(Serialize)]
struct Route {
    name: String,
    upstream: String,
    header: String,
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

fn git(up: &GitUpstream) -> Git {
    Git {
        name: up.name.clone(),
        upstream: up.url.clone(),
        identity_file: up.identity_file.value.display().to_string(),
        known_host_key: up.known_host_key.clone(),
        extra_hosts: up
            .extra_hosts
            .iter()
            .map(|(h, ip)| (h.clone(), ip.to_string()))
            .collect(),
        max_push_mb: up.scan.max_push_mb,
        max_scan_mb: up.scan.max_scan_mb,
        scan_timeout_s: up.scan.scan_timeout_s,
        max_archive_depth: up.scan.max_archive_depth,
        accept_fingerprints: up.scan.accept_fingerprints.clone(),
        accept_paths: up.scan.accept_paths.clone(),
    }
}

fn bottle(b: &Bottle) -> anyhow::Result<ResolvedBottle> {
    // The env_file's variables first: the manifest's env wins, as in the plan.
    let mut env = BTreeMap::new();
    if let Some(file) = &b.env_file {
        for (key, _) in planner::read_env_file(file)? {
            env.insert(key, format!("<from {}>", file.value.display()));
        }
    }
    for (key, template) in &b.env {
        // A literal shows as written, `$$` and all, like a reference: what the manifest says.
        env.insert(key.clone(), template.value.to_string());
    }
    let texts = bottle_core::manifest::Egress::texts;
    Ok(ResolvedBottle {
        image: b.image.clone(),
        command: b.command.clone(),
        env_file: b.env_file.as_ref().map(|f| f.value.display().to_string()),
        memory: b.memory_bytes.unwrap_or(AGENT_MEMORY),
        pids_limit: b.pids_limit.unwrap_or(AGENT_PIDS),
        cap_add: b.cap_add.clone(),
        gate_memory: b.gate_memory_bytes.unwrap_or(GATE_MEMORY),
        env,
        git: b.git.iter().map(git).collect(),
        egress: Egress {
            allow: texts(&b.egress.allow),
            deny: texts(&b.egress.deny),
            allow_private: texts(&b.egress.allow_private),
        },
        cred_proxy: CredProxy {
            allow_private: texts(&b.cred_proxy.allow_private),
            routes: b
                .cred_proxy
                .routes
                .iter()
                .map(|r| Route {
                    name: r.name.clone(),
                    upstream: r.upstream.clone(),
                    header: r.header.clone(),
                    format: r.format.clone(),
                    secret_env: match &r.secret {
                        SecretSource::Env(var) => Some(var.clone()),
                        SecretSource::File(_) => None,
                    },
                    secret_file: match &r.secret {
                        SecretSource::File(p) => Some(p.display().to_string()),
                        SecretSource::Env(_) => None,
                    },
                    agent_env: r.agent_env.clone(),
                    ca_file: r.ca_file.as_ref().map(|p| p.display().to_string()),
                })
                .collect(),
        },
    })
}

/// The resolved manifest (only bottle `only` when given), as TOML or JSON.
pub fn render(manifest: &Manifest, only: Option<&str>, json: bool) -> anyhow::Result<String> {
    let bottles: Vec<&Bottle> = match only {
        Some(name) => vec![manifest.select(Some(name))?],
        None => manifest.bottles.values().collect(),
    };
    let resolved = Resolved {
        settings: Settings {
            backend: manifest.settings.backend.as_ref().map(|b| b.value.clone()),
            podman_socket: manifest.settings.podman_socket.clone(),
        },
        bottles: bottles
            .into_iter()
            .map(|b| Ok((b.name.clone(), bottle(b)?)))
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(if json {
        serde_json::to_string_pretty(&resolved)? + "\n"
    } else {
        toml::to_string_pretty(&resolved)?
    })
}
