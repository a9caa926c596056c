//! Planning: a validated bottle and its project in, a [`Plan`] out.
//!
//! Pure apart from reading the files sidecars copy (identity keys): the same manifest gives
//! byte-identical plans, which is what the snapshot tests pin down and what makes the
//! dry-run honest. The planner knows no sidecar by name: it asks each registered one
//! ([`crate::sidecar::SIDECARS`]) for its container and the agent's grant, then builds the
//! agent from the manifest and those grants.

use std::collections::BTreeMap;

pub use crate::diag::PlanError;
use crate::diag::{Diagnostic, ManifestError};
use crate::images;
use crate::manifest::{Bottle, Located};
use crate::plan::{
    labels, resource_name, ContainerRole, ContainerSpec, Egress, Hardening, HostOf, HostValue,
    HostValueSource, ImageRef, NetworkRole, NetworkSpec, Plan, Reach, Restart, SecretBytes,
    LABEL_AUDIT, PLAN_FORMAT,
};
use crate::project::Project;
use crate::sidecar::{BottleContext, HostEnv, Sidecar, SIDECARS};

/// The demo agent image bottle builds from `agent-image/`.
pub const AGENT_IMAGE: &str = images::AGENT.tag;
/// The agent's memory limit unless the manifest sets `memory`.
pub const AGENT_MEMORY: i64 = 4 << 30;
/// The agent's process limit unless the manifest sets `pids_limit`.
pub const AGENT_PIDS: i64 = 1024;

/// The slug of a bottle: its `bottle.slug` label and, after the project, the second part
/// of every resource name. It is the bottle's name, which validation keeps DNS-safe.
pub fn slug(bottle: &Bottle) -> String {
    bottle.name.clone()
}

/// Plans `bottle` of `project` with the registered sidecars, reading secrets from this
/// process's environment.
pub fn plan(bottle: &Bottle, project: &Project) -> Result<Plan, PlanError> {
    plan_in(bottle, project, SIDECARS, &HostEnv::Process)
}

/// Plans `bottle` of `project` with the given sidecars, in that start order.
pub fn plan_with(
    bottle: &Bottle,
    project: &Project,
    sidecars: &[&dyn Sidecar],
) -> Result<Plan, PlanError> {
    plan_in(bottle, project, sidecars, &HostEnv::Process)
}

/// Plans `bottle` of `project` with the given sidecars, reading `secret_env` variables
/// from `host_env`.
pub fn plan_in(
    bottle: &Bottle,
    project: &Project,
    sidecars: &[&dyn Sidecar],
    host_env: &HostEnv,
) -> Result<Plan, PlanError> {
    let slug = slug(bottle);
    let project = project.as_str();
    let name = |role: &str| resource_name(project, &slug, role);
    let internal = name(NetworkRole::Internal.as_str());
    let egress = name(NetworkRole::Egress.as_str());
    let own_hosts: Vec<String> = sidecars
        .iter()
        .map(|s| s.name())
        .chain([ContainerRole::AGENT])
        .map(name)
        .collect();
    let cx = BottleContext {
        project,
        slug: &slug,
        bottle,
        internal: &internal,
        egress: &egress,
        own_hosts: &own_hosts,
        host_env,
    };

    let mut containers = Vec::new();
    let mut agent_files = Vec::new();
    let mut agent_env = BTreeMap::new();
    let mut agent_hosts = Vec::new();
    let mut agent_reaches = Vec::new();
    for sidecar in sidecars {
        let Some(part) = sidecar.plan(&cx)? else {
            continue;
        };
        let name = &part.container.name;
        agent_files.extend(part.agent.files);
        agent_env.extend(part.agent.env);
        // The agent finds its sidecars by name through /etc/hosts, never through a resolver.
        agent_hosts.extend(part.agent.hosts.into_iter().map(|host| HostOf {
            name: host,
            container: name.clone(),
            network: internal.clone(),
        }));
        agent_reaches.extend(part.agent.reaches.into_iter().map(|port| Reach {
            container: name.clone(),
            port,
        }));
        let mut container = part.container;
        // Where `bottle logs` finds the audit lines, whatever the backend.
        if let Some(audit) = &container.audit {
            container
                .labels
                .insert(LABEL_AUDIT.to_owned(), audit.source.clone());
        }
        containers.push(container);
    }
    // What the manifest sets wins over what sidecars offer (e.g. a proxy variable); its
    // `env` wins over its `env_file`.
    let mut host_values = BTreeMap::new();
    if let Some(file) = &bottle.env_file {
        for (key, value) in read_env_file(file)? {
            agent_env.remove(&key);
            host_values.insert(
                key,
                HostValue {
                    from: HostValueSource::EnvFile {
                        path: file.value.clone(),
                    },
                    value: SecretBytes::new(value.into_bytes()),
                },
            );
        }
    }
    let mut missing = Vec::new();
    for (key, template) in &bottle.env {
        if let Some(text) = template.value.literal() {
            host_values.remove(key);
            agent_env.insert(key.clone(), text);
            continue;
        }
        match template.value.resolve(|var| host_env.var(var)) {
            Ok(value) => {
                agent_env.remove(key);
                host_values.insert(
                    key.clone(),
                    HostValue {
                        from: HostValueSource::Template {
                            template: template.value.clone(),
                        },
                        value: SecretBytes::new(value.into_bytes()),
                    },
                );
            }
            Err(var) => missing.push(template.diagnostic(
                format!("bottle '{}': the environment variable {var} is not set", bottle.name),
                format!("export {var}=... in the shell that runs bottle, or write ${{{var}:-default}} for a default"),
            )),
        }
    }
    if !missing.is_empty() {
        return Err(ManifestError::new(missing).into());
    }

    let mut networks = vec![NetworkSpec {
        name: internal.clone(),
        role: NetworkRole::Internal,
        internal: true,
        // Nothing on it resolves names through the engine: see NetworkSpec::dns.
        dns: false,
        // The host holds no address on it, so the agent has no way to the host.
        host: false,
        labels: labels(project, &slug, NetworkRole::Internal.as_str()),
    }];
    // The egress network exists only for sidecars that go out: without any, there is none.
    if containers.iter().any(|c| c.egress == Egress::Network) {
        networks.push(NetworkSpec {
            name: egress.clone(),
            role: NetworkRole::Egress,
            internal: false,
            dns: true,
            host: true,
            labels: labels(project, &slug, NetworkRole::Egress.as_str()),
        });
    }

    containers.push(ContainerSpec {
        name: name(ContainerRole::AGENT),
        role: ContainerRole::agent(),
        image: ImageRef {
            name: bottle.image.clone(),
            recipe: images::recipe_for_tag(&bottle.image).map(|r| r.name.to_owned()),
        },
        entrypoint: None,
        command: bottle.command.clone(),
        user: None,
        env: agent_env,
        host_env: host_values,
        labels: labels(project, &slug, ContainerRole::AGENT),
        network: internal,
        connect: Vec::new(),
        extra_hosts: BTreeMap::new(),
        hosts_of: agent_hosts,
        files: agent_files,
        init: true,
        restart: Restart::No,
        hardening: Hardening {
            cap_drop: vec!["ALL".to_owned()],
            cap_add: bottle.cap_add.clone(),
            no_new_privileges: true,
            pids_limit: bottle.pids_limit.unwrap_or(AGENT_PIDS),
            memory_bytes: bottle.memory_bytes.unwrap_or(AGENT_MEMORY),
            // No way to the host through a bridge's link-local IPv6 address: see Hardening.
            no_ipv6: true,
            read_only_root: None,
        },
        ports: Vec::new(),
        egress: Egress::Nothing,
        reaches: agent_reaches,
        audit: None,
    });

    Ok(Plan {
        format: PLAN_FORMAT,
        bottle: bottle.name.clone(),
        project: project.to_owned(),
        slug,
        networks,
        containers,
    })
}

/// The variables of an `env_file`, in the compose format (`KEY=VALUE` lines, `#` comments,
/// quotes, `export`), read with `dotenvy`. The error names the file, never a value.
pub fn read_env_file(
    file: &Located<std::path::PathBuf>,
) -> Result<Vec<(String, String)>, PlanError> {
    let fail = |why: String| {
        PlanError::from(ManifestError::new(vec![Diagnostic {
            location: file.location.clone(),
            field: file.field.clone(),
            message: format!("cannot read the env_file {}: {why}", file.value.display()),
            hint: "write KEY=VALUE lines (compose's .env format), or remove env_file".to_owned(),
        }]))
    };
    let iter = dotenvy::from_path_iter(&file.value).map_err(|e| fail(describe(&e, None)))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for item in iter {
        let last = out.last().map(|(k, _)| k.as_str());
        let (key, value) = item.map_err(|e| fail(describe(&e, last)))?;
        if !crate::interp::is_var_name(&key) || value.contains('\0') {
            return Err(fail(format!(
                "'{}' is not a variable name, or its value holds a NUL",
                key.escape_debug()
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// dotenvy's error without the text of the line (which may hold a secret); `after` is the
/// last variable read before it.
fn describe(e: &dotenvy::Error, after: Option<&str>) -> String {
    match e {
        dotenvy::Error::LineParse(_, at) => format!(
            "the line {} does not parse at its character {} (not shown: it may hold a secret)",
            after.map_or("holding the first variable".to_owned(), |k| format!(
                "after {k}'s"
            )),
            at + 1
        ),
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "it does not parse".to_owned(),
    }
}
