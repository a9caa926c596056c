//! Planning: a validated manifest and a bottle name in, a [`Plan`] out.
//!
//! Pure apart from reading identity files: the same manifest gives byte-identical plans,
//! which is what the snapshot tests pin down and what makes the dry-run honest.

use std::collections::BTreeMap;

use crate::diag::ManifestError;
use crate::gate::{GitGate, StandardGate};
use crate::manifest::Bottle;
use crate::plan::{
    labels, resource_name, BuiltinImage, ContainerSpec, FileSource, FileSpec, Hardening, HostOf,
    ImageRef, NetworkSpec, Plan, Role, PLAN_FORMAT,
};
use crate::quote::QuoteError;

/// The demo agent image bottle builds from `agent-image/`.
pub const AGENT_IMAGE: &str = BuiltinImage::Agent.tag();
/// The agent's memory limit unless the manifest sets `memory`.
pub const AGENT_MEMORY: i64 = 4 << 30;
/// The agent's process limit unless the manifest sets `pids_limit`.
pub const AGENT_PIDS: i64 = 1024;
/// Where the agent's git config goes: the system-wide file, so every user in the image
/// gets the rewrites.
pub const AGENT_GITCONFIG: &str = "/etc/gitconfig";

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest is wrong in a way only planning can see (an unreadable identity file).
    #[error(transparent)]
    Invalid(#[from] ManifestError),
    /// A value could not be quoted into a script (validation should have caught it).
    #[error("cannot render the gate's scripts: {0}")]
    Quote(#[from] QuoteError),
}

/// The slug of a bottle: the prefix of every resource name and the `bottle.slug` label.
/// It is the bottle's name, which validation keeps DNS-safe.
pub fn slug(bottle: &Bottle) -> String {
    bottle.name.clone()
}

/// Plans `bottle` with the standard gate.
pub fn plan(bottle: &Bottle) -> Result<Plan, PlanError> {
    plan_with(bottle, &StandardGate)
}

/// Plans `bottle` with the given gate implementation.
pub fn plan_with(bottle: &Bottle, gate: &dyn GitGate) -> Result<Plan, PlanError> {
    let slug = slug(bottle);
    let internal = resource_name(&slug, Role::Internal);
    let egress = resource_name(&slug, Role::Egress);

    let mut networks = vec![NetworkSpec {
        name: internal.clone(),
        role: Role::Internal,
        internal: true,
        // Nothing on it resolves names through the engine: see NetworkSpec::dns.
        dns: false,
        labels: labels(&slug, Role::Internal),
    }];
    let mut containers = Vec::new();
    let mut agent_files = Vec::new();
    let mut agent_hosts = Vec::new();

    if let Some(gate) = gate.prepare(&slug, bottle, &internal, &egress)? {
        // The egress network exists only for sidecars: a bottle without any has none.
        networks.push(NetworkSpec {
            name: egress.clone(),
            role: Role::Egress,
            internal: false,
            dns: true,
            labels: labels(&slug, Role::Egress),
        });
        agent_files.push(FileSpec {
            path: AGENT_GITCONFIG.to_owned(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            source: FileSource::Text {
                text: gate.agent_git_config,
            },
        });
        // The agent finds the gate by its name through /etc/hosts, never through a resolver.
        agent_hosts.push(HostOf {
            name: gate.host.clone(),
            container: gate.container.name.clone(),
            network: internal.clone(),
        });
        containers.push(gate.container);
    }

    containers.push(ContainerSpec {
        name: resource_name(&slug, Role::Agent),
        role: Role::Agent,
        image: ImageRef {
            name: bottle.image.clone(),
            builtin: (bottle.image == AGENT_IMAGE).then_some(BuiltinImage::Agent),
        },
        entrypoint: None,
        command: bottle.command.clone(),
        user: None,
        env: bottle.env.clone(),
        labels: labels(&slug, Role::Agent),
        network: internal,
        connect: Vec::new(),
        extra_hosts: BTreeMap::new(),
        hosts_of: agent_hosts,
        files: agent_files,
        init: true,
        hardening: Hardening {
            cap_drop: vec!["ALL".to_owned()],
            cap_add: bottle.cap_add.clone(),
            no_new_privileges: true,
            pids_limit: bottle.pids_limit.unwrap_or(AGENT_PIDS),
            memory_bytes: bottle.memory_bytes.unwrap_or(AGENT_MEMORY),
        },
    });

    Ok(Plan {
        format: PLAN_FORMAT,
        bottle: bottle.name.clone(),
        slug,
        networks,
        containers,
    })
}
