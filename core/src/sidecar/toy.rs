//! A test-only sidecar (feature `toy-sidecar`, never in a release build): the proof that a
//! sidecar added in one module appears on every backend with its port, its host entry and
//! its grant to the agent, without a line of backend code.
//!
//! It runs the demo agent's image with `git daemon` listening on [`TOY_PORT`] on the
//! internal network (the image has git, and nothing else needs to be built), gives the
//! agent a host entry for it (its container name, as every sidecar's), the environment
//! variable `TOY_URL`, and reach to its port. A bottle gets it when its `env` holds
//! `TOY=1`, so tests choose.

use std::collections::BTreeMap;

use crate::diag::PlanError;
use crate::images::{self, ImageRecipe};
use crate::plan::{ContainerRole, ContainerSpec, Egress, Hardening, ImageRef, PortSpec, Restart};
use crate::sidecar::{AgentGrant, BottleContext, Sidecar, SidecarPlan, SIDECARS};

/// The toy's name.
pub const NAME: &str = "toy";
/// The port it listens on.
pub const TOY_PORT: u16 = 7070;

/// The toy sidecar.
#[derive(Debug, Clone, Copy)]
pub struct Toy;

impl Sidecar for Toy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "a test-only sidecar serving git daemon"
    }

    fn images(&self) -> &'static [&'static ImageRecipe] {
        &[&images::AGENT]
    }

    fn plan(&self, cx: &BottleContext<'_>) -> Result<Option<SidecarPlan>, PlanError> {
        if cx
            .bottle
            .env
            .get("TOY")
            .and_then(|t| t.value.literal())
            .as_deref()
            != Some("1")
        {
            return Ok(None);
        }
        let host = cx.name(NAME);
        let container = ContainerSpec {
            name: host.clone(),
            role: ContainerRole::sidecar(NAME),
            image: ImageRef {
                name: cx.bottle.image.clone(),
                recipe: images::recipe_for_tag(&cx.bottle.image).map(|r| r.name.to_owned()),
            },
            entrypoint: None,
            command: Some(vec![
                "git".into(),
                "daemon".into(),
                "--reuseaddr".into(),
                "--export-all".into(),
                format!("--port={TOY_PORT}"),
                "--base-path=/tmp".into(),
                "/tmp".into(),
            ]),
            user: None,
            env: BTreeMap::new(),
            host_env: BTreeMap::new(),
            labels: cx.labels(NAME),
            network: cx.internal.to_owned(),
            connect: Vec::new(),
            extra_hosts: BTreeMap::new(),
            hosts_of: Vec::new(),
            files: Vec::new(),
            init: true,
            restart: Restart::sidecar(),
            hardening: Hardening::sidecar(64, 64 << 20),
            ports: vec![PortSpec {
                name: "toy".into(),
                port: TOY_PORT,
                network: cx.internal.to_owned(),
            }],
            egress: Egress::Nothing,
            reaches: Vec::new(),
            audit: None,
        };
        Ok(Some(SidecarPlan {
            container,
            agent: AgentGrant {
                files: Vec::new(),
                env: BTreeMap::from([("TOY_URL".to_owned(), format!("git://{host}:{TOY_PORT}/"))]),
                hosts: vec![host.clone()],
                reaches: vec!["toy".into()],
            },
        }))
    }
}

/// The registered sidecars plus the toy.
pub fn with_toy() -> Vec<&'static dyn Sidecar> {
    SIDECARS
        .iter()
        .copied()
        .chain([&Toy as &dyn Sidecar])
        .collect()
}
