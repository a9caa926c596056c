//! Planning: a validated bottle and its project in, a [`Plan`] out.
//!
//! Pure apart from reading the files sidecars copy (identity keys): the same manifest gives
//! byte-identical plans, which is what the snapshot tests pin down and what makes the
//! dry-run honest. The planner knows no sidecar by name: it asks each registered one
//! ([`crate::sidecar::SIDECARS`]) for its container and the agent's grant, then builds the
//! agent from the manifest and those grants.

use std::collections::BTreeMap;

pub use crate::diag::PlanError;
use crate::images;
use crate::manifest::Bottle;
use crate::plan::{
    labels, resource_name, ContainerRole, ContainerSpec, Egress, Hardening, HostOf, ImageRef,
    NetworkRole, NetworkSpec, Plan, Reach, Restart, LABEL_AUDIT, PLAN_FORMAT,
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
    // What the manifest sets wins over what sidecars offer (e.g. a proxy variable).
    agent_env.extend(bottle.env.clone());

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
