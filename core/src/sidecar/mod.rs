//! Sidecars as registered data.
//!
//! A sidecar is one module here (its manifest section is read by [`crate::manifest`], its
//! plan and image recipes are here) plus, when it is a program of ours, its own crate. It
//! describes itself through [`Sidecar`]: its name (the container's role, label and the last
//! part of its resource name), the image recipes its container runs, and, given a bottle,
//! its [`ContainerSpec`] and what the agent gets from it ([`AgentGrant`]: files,
//! environment, `/etc/hosts` entries, the ports it may reach).
//!
//! The planner loops over a list of sidecars ([`SIDECARS`] in a real build; tests pass
//! their own, with a toy sidecar among them) and backends apply container specs
//! generically. Nothing outside a sidecar's module names it: no backend, plugin or CLI code
//! knows that a gate exists. Adding a sidecar is adding a module and an entry in
//! [`SIDECARS`] (docs/architecture.md, "How to add a sidecar").

pub mod cred;
pub mod gate;
pub mod proxy;
#[cfg(feature = "toy-sidecar")]
pub mod toy;

use std::collections::BTreeMap;

use crate::diag::PlanError;
use crate::images::ImageRecipe;
use crate::manifest::Bottle;
use crate::plan::{ContainerSpec, FileSpec};

/// What a sidecar is given to plan itself for one bottle.
#[derive(Debug, Clone, Copy)]
pub struct BottleContext<'a> {
    /// The project the bottle belongs to.
    pub project: &'a str,
    /// The bottle's slug (its name; with the project, the stem of every resource name).
    pub slug: &'a str,
    /// The validated bottle.
    pub bottle: &'a Bottle,
    /// The name of the bottle's internal network (the agent's only one).
    pub internal: &'a str,
    /// The name of the bottle's egress network (it exists when a sidecar asks for it with
    /// [`crate::plan::Egress::Network`]).
    pub egress: &'a str,
    /// The names of every container the bottle may have (each sidecar's and the agent's):
    /// what must never be reached through the egress proxy, and what the agent reaches
    /// without it.
    pub own_hosts: &'a [String],
    /// Where secrets named by environment variable (`secret_env`) are read from.
    pub host_env: &'a HostEnv,
}

impl BottleContext<'_> {
    /// The name of the bottle's resource with this role ([`crate::plan::resource_name`]):
    /// a sidecar's container name, which is also its host name for the agent.
    pub fn name(&self, role: &str) -> String {
        crate::plan::resource_name(self.project, self.slug, role)
    }

    /// The labels of the bottle's resource with this role ([`crate::plan::labels`]).
    pub fn labels(&self, role: &str) -> BTreeMap<String, String> {
        crate::plan::labels(self.project, self.slug, role)
    }
}

/// The environment `bottle` plans in: its own process's, or (tests) a fixed map, so that a
/// test never has to set a variable of the whole test process.
#[derive(Debug, Clone, Default)]
pub enum HostEnv {
    /// `std::env::var_os` of this process.
    #[default]
    Process,
    /// Only these variables exist.
    Map(BTreeMap<String, String>),
}

impl HostEnv {
    /// The variable's value, `None` when unset or not UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            HostEnv::Process => std::env::var(name).ok(),
            HostEnv::Map(map) => map.get(name).cloned(),
        }
    }
}

/// What the agent gets from one sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentGrant {
    /// Files copied into the agent (e.g. the gate's git config).
    pub files: Vec<FileSpec>,
    /// Environment variables (the manifest's `env` overrides them).
    pub env: BTreeMap<String, String>,
    /// Host names that resolve, in the agent's `/etc/hosts`, to the sidecar's address on
    /// the internal network. The agent has no resolver: this is how it finds the sidecar.
    pub hosts: Vec<String>,
    /// The names of the sidecar's ports the agent connects to.
    pub reaches: Vec<String>,
}

/// A sidecar's part of a bottle's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarPlan {
    /// Its container, on the internal network (plus the egress network when it asks).
    pub container: ContainerSpec,
    /// What the agent gets from it.
    pub agent: AgentGrant,
}

/// A sidecar, registered in [`SIDECARS`].
pub trait Sidecar: Sync {
    /// Its name: the role of its container, the `bottle.role` label's value and the last
    /// part of its resource name (`bottle-<slug>-<name>`). Lower case letters and `-`.
    fn name(&self) -> &'static str;

    /// What it is, in a few words (for `bottle image build --help`, `doctor`, the docs).
    fn about(&self) -> &'static str;

    /// The recipes of the images its container runs.
    fn images(&self) -> &'static [&'static ImageRecipe];

    /// Its container and the agent's grant for `cx`'s bottle, or `None` when that bottle
    /// does not need it. Pure apart from reading the files it copies (keys, CA files).
    fn plan(&self, cx: &BottleContext<'_>) -> Result<Option<SidecarPlan>, PlanError>;
}

/// The sidecars of a real build, in the order they start (before the agent).
pub static SIDECARS: &[&dyn Sidecar] = &[
    &gate::GitGate::STANDARD,
    &proxy::EgressProxy,
    &cred::CredSidecar,
];

/// The registered sidecar named `name`.
pub fn sidecar(name: &str) -> Option<&'static dyn Sidecar> {
    SIDECARS.iter().copied().find(|s| s.name() == name)
}
