//! The egress proxy: the agent reaches the hosts its bottle allows and nothing else.
//!
//! Every bottle has one (like the original design's pipelock sidecar): with nothing
//! allowed it refuses everything, and its audit log shows what the agent tried. The
//! program is `bottle-proxy egress` (crate `proxy/`), a static executable in its own image
//! (`proxy-image/`). It runs as its own unprivileged user with no capability, on the
//! internal network (where the agent reaches its one port) and the egress network (where it
//! goes out), reads its lists from a JSON file ([`bottle_proxy_config::EgressConfig`]), and
//! writes one audit line per decision on its stdout.
//!
//! The agent gets `HTTPS_PROXY`/`HTTP_PROXY` (and their lower-case twins), `NO_PROXY`
//! naming the bottle's own containers (which are reached directly), `NODE_USE_ENV_PROXY=1`
//! (Node's own fetch ignores the proxy variables otherwise), and the proxy's address in
//! `/etc/hosts`. The manifest's `env` may override any of them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use bottle_proxy_config::{EgressConfig, Limits, RouteHint};

use crate::diag::PlanError;
use crate::images::{self, ImageRecipe};
use crate::manifest::Egress as EgressLists;
use crate::plan::{
    AuditSpec, ContainerRole, ContainerSpec, Egress, FileSource, FileSpec, Hardening, ImageRef,
    PortSpec, Restart, Writable,
};
use crate::sidecar::{cred, AgentGrant, BottleContext, Sidecar, SidecarPlan};

/// The proxy's name: its role, label and resource-name suffix.
pub const NAME: &str = "proxy";
/// The port it listens on.
pub const PROXY_PORT: u16 = 3128;
/// The name of its port.
pub const PORT_NAME: &str = "http";
/// Its user and group inside its image.
pub const PROXY_UID: u32 = 10002;
/// Where its configuration goes.
pub const CONFIG_PATH: &str = "/etc/bottle-proxy/egress.json";
/// The directory of the `bottle-proxy` sidecars' configuration (root's, in the image).
pub const CONFIG_DIR: &str = "/etc/bottle-proxy";
/// Its memory limit.
pub const PROXY_MEMORY: i64 = 128 << 20;
/// Its process (thread) limit.
pub const PROXY_PIDS: i64 = 128;

/// The egress proxy sidecar.
#[derive(Debug, Clone, Copy)]
pub struct EgressProxy;

/// The proxy's configuration for a bottle: its lists, and the bottle's own containers,
/// which it always refuses.
pub fn config(bottle: &str, lists: &EgressLists, own_hosts: &[String]) -> EgressConfig {
    EgressConfig {
        bottle: bottle.to_owned(),
        listen: vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, PROXY_PORT))],
        allow: EgressLists::texts(&lists.allow),
        deny: EgressLists::texts(&lists.deny),
        allow_private: EgressLists::texts(&lists.allow_private),
        own_hosts: own_hosts.to_vec(),
        routes: Vec::new(),
        limits: Limits::default(),
    }
}

impl Sidecar for EgressProxy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "the egress proxy: the hosts the manifest allows, every decision logged"
    }

    fn images(&self) -> &'static [&'static ImageRecipe] {
        &[&images::PROXY]
    }

    fn plan(&self, cx: &BottleContext<'_>) -> Result<Option<SidecarPlan>, PlanError> {
        let host = cx.name(NAME);
        let mut config = config(&cx.bottle.name, &cx.bottle.egress, cx.own_hosts);
        // A host that has a credential route is refused with the route to use instead.
        config.routes = cx
            .bottle
            .cred_proxy
            .routes
            .iter()
            .map(|r| RouteHint {
                host: r.host.clone(),
                url: format!("{}/", cred::route_url(cx, &r.name)),
            })
            .collect();
        let text = serde_json::to_string_pretty(&config).expect("a config serialises") + "\n";
        let container = proxy_container(ProxyContainer {
            cx,
            name: NAME,
            mode: "egress",
            config_path: CONFIG_PATH,
            uid: PROXY_UID,
            port: PROXY_PORT,
            port_name: PORT_NAME,
            files: vec![FileSpec {
                path: CONFIG_PATH.to_owned(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                source: FileSource::Text { text },
                relocate_env: None,
            }],
            writable: &[CONFIG_DIR],
        });
        let url = format!("http://{host}:{PROXY_PORT}");
        // The bottle's own containers are reached directly, never through the proxy
        // (which would refuse them anyway).
        let no_proxy = cx
            .own_hosts
            .iter()
            .map(String::as_str)
            .chain(["localhost", "127.0.0.1", "::1"])
            .collect::<Vec<_>>()
            .join(",");
        let mut env = BTreeMap::new();
        for key in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
            env.insert(key.to_owned(), url.clone());
        }
        env.insert("NO_PROXY".to_owned(), no_proxy.clone());
        env.insert("no_proxy".to_owned(), no_proxy);
        env.insert("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned());
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

/// What differs between bottle's two `bottle-proxy` sidecars (egress and cred).
pub(crate) struct ProxyContainer<'a> {
    pub cx: &'a BottleContext<'a>,
    /// The sidecar's name (role, label, resource-name suffix, audit source).
    pub name: &'static str,
    /// `bottle-proxy`'s mode (its subcommand).
    pub mode: &'static str,
    pub config_path: &'static str,
    /// Its own user and group.
    pub uid: u32,
    pub port: u16,
    pub port_name: &'static str,
    /// Its files, the configuration among them.
    pub files: Vec<FileSpec>,
    /// The directories its files go to: its only writable places (on the engine's disk,
    /// starting with the image's directory there), its root filesystem being read-only.
    /// It writes nothing itself.
    pub writable: &'static [&'static str],
}

/// The container of a `bottle-proxy` sidecar: the proxy image as its own unprivileged user
/// with no capability, on the internal network (where the agent reaches its one port) and
/// the egress network (where it goes out), its audit lines on stdout.
pub(crate) fn proxy_container(p: ProxyContainer<'_>) -> ContainerSpec {
    let cx = p.cx;
    ContainerSpec {
        name: cx.name(p.name),
        role: ContainerRole::sidecar(p.name),
        image: ImageRef {
            name: images::PROXY.tag.to_owned(),
            recipe: Some(images::PROXY.name.to_owned()),
        },
        entrypoint: Some(vec!["/usr/local/bin/bottle-proxy".to_owned()]),
        command: Some(vec![
            p.mode.to_owned(),
            "--config".to_owned(),
            p.config_path.to_owned(),
            // Its port on the internal network only, never the egress one.
            "--listen-internal".to_owned(),
        ]),
        user: Some(format!("{}:{}", p.uid, p.uid)),
        env: BTreeMap::new(),
        host_env: BTreeMap::new(),
        labels: cx.labels(p.name),
        network: cx.internal.to_owned(),
        connect: vec![cx.egress.to_owned()],
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files: p.files,
        init: true,
        restart: Restart::sidecar(),
        // It listens above 1024 and writes nothing: no capability at all.
        hardening: Hardening::sidecar(PROXY_PIDS, PROXY_MEMORY)
            .read_only(p.writable.iter().map(|d| Writable::disk(d)).collect()),
        ports: vec![PortSpec {
            name: p.port_name.to_owned(),
            port: p.port,
            network: cx.internal.to_owned(),
        }],
        egress: Egress::Network,
        reaches: Vec::new(),
        audit: Some(AuditSpec {
            source: p.name.to_owned(),
        }),
    }
}
