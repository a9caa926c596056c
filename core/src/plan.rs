//! The plan: what a backend must create for one bottle, as plain data.
//!
//! A plan is produced by [`crate::planner::plan`] from a validated manifest and is the only
//! thing a backend sees. It holds no runtime types (no bollard, no podman-api), so the same
//! plan drives the docker backend, the podman backend, the dry-run printer and plugins (which
//! receive it as JSON). Maps are `BTreeMap`s so that the same input always serialises to the
//! same bytes: the snapshot tests rely on it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Version of the plan's serialised form. Bumped whenever a field changes meaning, so a
/// plugin built against another version can refuse a plan instead of misreading it.
pub const PLAN_FORMAT: u32 = 4;

/// Label naming the bottle a resource belongs to (its name in the manifest).
pub const LABEL_SLUG: &str = "bottle.slug";
/// Label naming the project a resource belongs to ([`crate::project`]). Resources made by a
/// bottle older than projects lack it.
pub const LABEL_PROJECT: &str = "bottle.project";
/// Label naming the role of a resource inside its bottle (`gate`, `agent`, `internal`, ...).
pub const LABEL_ROLE: &str = "bottle.role";
/// Label on a container whose standard output is audit lines; its value is their source
/// (`proxy`, `gate`, ...). Set from [`ContainerSpec::audit`] by the planner.
pub const LABEL_AUDIT: &str = "bottle.audit";
/// Label present on every resource bottle creates; its value is the plan format.
pub const LABEL_MANAGED: &str = "bottle.managed";

/// Everything a backend must create for one bottle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`] at the time the plan was made.
    pub format: u32,
    /// The bottle's name in the manifest.
    pub bottle: String,
    /// The project the bottle belongs to ([`crate::project`]); with [`Plan::slug`] it makes
    /// every resource name and label. Plans written before projects: empty.
    #[serde(default)]
    pub project: String,
    /// The bottle's `bottle.slug` label: its name.
    pub slug: String,
    /// Networks, in creation order.
    pub networks: Vec<NetworkSpec>,
    /// Containers, in start order: sidecars first, the agent last.
    pub containers: Vec<ContainerSpec>,
}

impl Plan {
    /// The container with the given role, if the plan has one.
    pub fn container(&self, role: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.role.as_str() == role)
    }

    /// The agent's container (every plan has one, last).
    pub fn agent(&self) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.role.is_agent())
    }

    /// The network with the given role, if the plan has one.
    pub fn network(&self, role: NetworkRole) -> Option<&NetworkSpec> {
        self.networks.iter().find(|n| n.role == role)
    }

    /// The container named `name`.
    pub fn container_named(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The first [`HostOf`] entry a backend cannot fill, with the container holding it: one
    /// naming a container that does not come earlier in the plan (it must run first), or a
    /// network that container is not on. `None` when every entry can be filled.
    pub fn unfillable_host(&self) -> Option<(&ContainerSpec, &HostOf)> {
        self.containers.iter().enumerate().find_map(|(at, c)| {
            c.hosts_of
                .iter()
                .find(|h| {
                    !self.containers[..at].iter().any(|earlier| {
                        earlier.name == h.container
                            && (earlier.network == h.network
                                || earlier.connect.contains(&h.network))
                    })
                })
                .map(|h| (c, h))
        })
    }

    /// The names of every resource this plan creates: what a leftover probe looks for.
    pub fn resource_names(&self) -> impl Iterator<Item = (ResourceKind, &str)> {
        self.networks
            .iter()
            .map(|n| (ResourceKind::Network, n.name.as_str()))
            .chain(
                self.containers
                    .iter()
                    .map(|c| (ResourceKind::Container, c.name.as_str())),
            )
    }
}

/// Whether `name` is one the engines accept for a container, a network or a host entry:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. Such a name cannot be read as an option either, nor nest
/// directories when a printer lays files out by container name.
pub fn is_engine_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A [`FileSpec::path`] relative to the container's root, when it is a plain path of a
/// file: absolute, without `..`, naming neither the root nor a directory (a trailing `/`).
/// Empty and `.` components are dropped: `/etc//bottle-gate/./entrypoint` ->
/// `etc/bottle-gate/entrypoint`.
pub fn relative_file_path(path: &str) -> Result<String, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path is not absolute");
    };
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the path holds '..'"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the path names the root directory, not a file");
    }
    if path.ends_with('/') {
        return Err("the path ends in '/', so it names a directory, not a file");
    }
    Ok(parts.join("/"))
}

impl ContainerSpec {
    /// Linux tmpfs mount options for a [`WritableOn::Memory`] place of `bytes`: owned by
    /// the container's user when the plan names it (`uid:gid`), else open to every user
    /// and sticky (mode 1777, as `/tmp`), the image's user being unknown here. (Podman
    /// refuses `uid=`: its backends ask for its own `U` instead.)
    pub fn tmpfs_options(&self, bytes: u64) -> String {
        match self.user.as_deref().and_then(|u| u.split_once(':')) {
            Some((uid, gid)) => format!("size={bytes},uid={uid},gid={gid}"),
            None => format!("size={bytes},mode=1777"),
        }
    }

    /// Every environment variable with its value, [`ContainerSpec::host_env`]'s secrets
    /// included: only for handing to an engine, never for printing.
    pub fn env_exposed(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        for (k, v) in &self.host_env {
            env.insert(
                k.clone(),
                String::from_utf8_lossy(v.value.expose()).into_owned(),
            );
        }
        env
    }

    /// Its files' paths relative to its root ([`relative_file_path`]), in order, when they
    /// can all be placed: each a plain file path with a mode of permission bits only (plus
    /// setuid, setgid and sticky) and no NUL byte, no two at one path, none below another
    /// (which would have to be a directory). Otherwise the first file that cannot, and why.
    pub fn relative_file_paths(&self) -> Result<Vec<String>, (&FileSpec, String)> {
        let mut rels = Vec::new();
        let mut seen = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        for f in &self.files {
            let rel = relative_file_path(&f.path).map_err(|why| (f, why.to_owned()))?;
            if f.mode > 0o7777 {
                return Err((
                    f,
                    format!(
                        "mode {:#o} has bits beyond permissions, setuid, setgid and sticky",
                        f.mode
                    ),
                ));
            }
            if f.path.contains('\0') {
                return Err((f, "the path holds a NUL byte".to_owned()));
            }
            if !seen.insert(rel.clone()) {
                return Err((f, "the container has another file at this path".to_owned()));
            }
            if self.copy_dir(f).is_none() {
                return Err((
                    f,
                    "the container's root filesystem is read-only and none of its disk-backed writable paths holds this file"
                        .to_owned(),
                ));
            }
            let mut dir = rel.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                dir = parent;
            }
            rels.push(rel);
        }
        if let Some((f, _)) = self
            .files
            .iter()
            .zip(&rels)
            .find(|(_, r)| dirs.contains(*r))
        {
            return Err((
                f,
                "another file of the container lies below this path, so it would have to be a directory"
                    .to_owned(),
            ));
        }
        Ok(rels)
    }

    /// The directory `file` is copied into: `/` when the root filesystem is writable, else
    /// the [`WritableOn::Disk`] path holding it (engines copy into a read-only container
    /// only inside a volume); `None` when no such path holds it.
    pub fn copy_dir(&self, file: &FileSpec) -> Option<&str> {
        match &self.hardening.read_only_root {
            None => Some("/"),
            Some(writable) => writable
                .iter()
                .filter(|w| w.on == WritableOn::Disk && w.holds(&file.path))
                .map(|w| w.path.as_str())
                .max_by_key(|p| p.len()),
        }
    }
}

/// Kinds of engine resources bottle creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// A container.
    Container,
    /// A network.
    Network,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Container => "container",
            ResourceKind::Network => "network",
        })
    }
}

/// What a container is for: `agent`, or the name of the sidecar that made it (`gate`,
/// `proxy`, ...). Also its `bottle.role` label and the last part of its name. A sidecar's
/// role is its registered name ([`crate::sidecar::Sidecar::name`]), so this is an open set:
/// consumers read a container's ports, reach and audit fields, never its role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerRole(String);

impl ContainerRole {
    /// The agent's role name.
    pub const AGENT: &'static str = "agent";

    /// The agent's role.
    pub fn agent() -> ContainerRole {
        ContainerRole(Self::AGENT.to_owned())
    }

    /// The role of the sidecar registered as `name`.
    pub fn sidecar(name: &str) -> ContainerRole {
        ContainerRole(name.to_owned())
    }

    /// Whether this is the agent.
    pub fn is_agent(&self) -> bool {
        self.0 == Self::AGENT
    }

    /// The role's name, as used in resource names and labels.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a network is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkRole {
    /// The per-bottle network with no route out: the agent and the sidecars' inner side.
    Internal,
    /// The per-bottle network sidecars use to reach the outside.
    Egress,
}

impl NetworkRole {
    /// The role's name as used in resource names and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkRole::Internal => "internal",
            NetworkRole::Egress => "egress",
        }
    }
}

impl fmt::Display for NetworkRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest resource name: a DNS label's 63 bytes, which is also the most a container's
/// host name, a Kubernetes object name and every engine's network name hold.
pub const MAX_NAME_LEN: usize = 63;

/// How many hex digits of the hash a shortened name carries.
const NAME_HASH_HEX: usize = 8;

/// The longest role a resource name is planned for (`internal`, `upstream`: 8). Whether a
/// bottle's names are shortened depends on its project and name only, never on the role,
/// so every resource of one bottle is named alike.
pub const MAX_ROLE_LEN: usize = 10;

/// The deterministic name of a resource: `bottle-<project>-<bottle>-<role>`, where the role
/// is a [`ContainerRole`] or a [`NetworkRole`] of at most [`MAX_ROLE_LEN`] bytes.
///
/// When that could exceed [`MAX_NAME_LEN`] bytes (`bottle-<project>-<bottle>-` longer than
/// 63 - [`MAX_ROLE_LEN`]), or the project holds a `_` (no DNS label may), the name is
/// shortened: `bottle-<stem>-<hash>-<role>`, where `<hash>` is the first 8 hex digits of the
/// SHA-256 of `<project>/<bottle>` (unambiguous: neither holds a `/`) and `<stem>` is as much
/// of `<project>-<bottle>` (`_` made `-`) as fits. The role stays whole at the end, so the
/// name still says what the resource is. Deterministic: the same inputs, the same name.
pub fn resource_name(project: &str, bottle: &str, role: &str) -> String {
    debug_assert!(
        role.len() <= MAX_ROLE_LEN,
        "role {role} is too long for a name"
    );
    let prefix = format!("bottle-{project}-{bottle}-");
    if prefix.len() + MAX_ROLE_LEN <= MAX_NAME_LEN && !project.contains('_') {
        return format!("{prefix}{role}");
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{project}/{bottle}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let hash = &hex[..NAME_HASH_HEX];
    let budget = MAX_NAME_LEN - "bottle-".len() - 1 - NAME_HASH_HEX - 1 - MAX_ROLE_LEN;
    // Every byte is ASCII (validated names), so any cut is at a character boundary.
    let mut stem = format!("{project}-{bottle}").replace('_', "-");
    stem.truncate(budget);
    format!("bottle-{}-{hash}-{role}", stem.trim_end_matches('-'))
}

/// The labels every resource of a bottle carries.
pub fn labels(project: &str, slug: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_owned(), PLAN_FORMAT.to_string()),
        (LABEL_PROJECT.to_owned(), project.to_owned()),
        (LABEL_ROLE.to_owned(), role.to_owned()),
        (LABEL_SLUG.to_owned(), slug.to_owned()),
    ])
}

/// A network to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Deterministic name.
    pub name: String,
    /// What it is for.
    pub role: NetworkRole,
    /// `true` for a network with no route out of the host.
    pub internal: bool,
    /// Whether the engine answers name lookups on this network. Off for the internal
    /// network: the agent finds its sidecars through `/etc/hosts` entries
    /// ([`ContainerSpec::hosts_of`]) and needs no resolver, so no engine resolver can relay
    /// its lookups of outside names (aardvark-dns before 1.11 forwards them out of internal
    /// networks, a channel for data). An engine that cannot turn its resolver off per
    /// network (Docker, whose resolver does not forward from internal networks) ignores it.
    #[serde(default = "yes")]
    pub dns: bool,
    /// Whether the host has an address on this network. Off for the internal network: a
    /// container there reaches the host through whatever address the host holds on it (the
    /// bridge's gateway), and through it every address of the host, since the host accepts
    /// what arrives addressed to any of its own addresses and an engine's isolation rules
    /// act on forwarded traffic only. Docker: the bridge is created with
    /// `com.docker.network.bridge.inhibit_ipv4`; netavark gives an internal bridge no
    /// address by itself (a non-internal one it cannot make: the podman backend refuses it).
    /// The bridge keeps its link-local IPv6 address: see [`Hardening::no_ipv6`].
    #[serde(default = "yes")]
    pub host: bool,
    /// Labels, including [`LABEL_SLUG`] and [`LABEL_ROLE`].
    pub labels: BTreeMap<String, String>,
}

/// An image a container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The image reference, e.g. `bottle-gate:latest`.
    pub name: String,
    /// The name of the recipe bottle builds this image from ([`crate::images`]: `gate`,
    /// `agent`, ...); a backend builds it when it is missing or stale. `None`: the image
    /// must already exist.
    pub recipe: Option<String>,
}

/// A container to create, fill with files, connect and start.
///
/// Backends apply it in this order: create on [`ContainerSpec::network`], copy
/// [`ContainerSpec::files`] in, connect to each of [`ContainerSpec::connect`], start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Deterministic name; also the container's host name on its networks.
    pub name: String,
    /// What the container is for.
    pub role: ContainerRole,
    /// The image it runs.
    pub image: ImageRef,
    /// Overrides the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's command when set.
    pub command: Option<Vec<String>>,
    /// `uid:gid` to run as; the image's user when `None`.
    pub user: Option<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values are host secrets (the manifest's `${VAR}`
    /// references, `env_file` entries): never printed; a printer shows or replays
    /// [`HostValue::from`]. A name is in `env` or here, never both.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_env: BTreeMap<String, HostValue>,
    /// Labels, including [`LABEL_SLUG`] and [`LABEL_ROLE`].
    pub labels: BTreeMap<String, String>,
    /// The network the container is created on.
    pub network: String,
    /// Networks connected after the files are copied and before start.
    pub connect: Vec<String>,
    /// Host name to address entries added to the container's `/etc/hosts`.
    pub extra_hosts: BTreeMap<String, IpAddr>,
    /// `/etc/hosts` entries naming other containers of the plan, whose addresses the engine
    /// assigns when they start: a backend starts those containers first, reads their
    /// addresses and adds the entries to [`ContainerSpec::extra_hosts`] when it creates this
    /// one. (The plan lists containers in start order, so they come earlier in it.)
    #[serde(default)]
    pub hosts_of: Vec<HostOf>,
    /// Files copied into the container before it starts.
    pub files: Vec<FileSpec>,
    /// Run a minimal init as PID 1 (the engine's own, e.g. docker-init), which forwards
    /// signals and reaps orphaned processes, so a long-lived container does not fill its
    /// process limit with zombies and stops promptly.
    pub init: bool,
    /// Whether the engine starts it again when its main process fails. Sidecars restart
    /// on their own faults, a bounded number of times ([`Restart::sidecar`]); the agent is
    /// never restarted behind its user's back. Plans written before the field: `No`.
    #[serde(default)]
    pub restart: Restart,
    /// Capabilities and resource limits.
    pub hardening: Hardening,
    /// The ports it listens on, each on one network: what an engine publishes nowhere, a
    /// kube backend turns into container ports and a Service, and a firewall opens.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Where it may open connections of its own.
    #[serde(default)]
    pub egress: Egress,
    /// The ports of other containers of the plan it connects to (the agent: its
    /// sidecars'). A kube backend allows exactly these in its NetworkPolicies.
    #[serde(default)]
    pub reaches: Vec<Reach>,
    /// Whether its standard output is audit lines (one JSON record per line) that
    /// `bottle logs` reads back through the engine's logs API, and under which source.
    #[serde(default)]
    pub audit: Option<AuditSpec>,
}

/// When the engine starts a container again after its main process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never (the engine's default).
    #[default]
    No,
    /// When it exits with a status other than 0 (a crash, a process killed by a signal,
    /// e.g. by the kernel's out-of-memory killer), at most this many times in a row. A stop
    /// through the engine (`bottle down`, `docker stop`) is no failure.
    OnFailure {
        /// The most restarts the engine makes before it leaves the container stopped.
        max_tries: u32,
    },
}

impl Restart {
    /// How many times a sidecar is restarted at most: enough to ride out a crash or an
    /// out-of-memory kill, few enough that a sidecar failing on every start stops and shows
    /// as exited in `bottle ps` instead of looping forever.
    pub const SIDECAR_MAX_TRIES: u32 = 5;

    /// The policy of every sidecar.
    pub const fn sidecar() -> Self {
        Restart::OnFailure {
            max_tries: Self::SIDECAR_MAX_TRIES,
        }
    }

    /// The engines' own spelling: `no`, `on-failure:N` (`docker run --restart`, `podman run
    /// --restart`).
    pub fn engine_value(&self) -> String {
        match self {
            Restart::No => "no".to_owned(),
            Restart::OnFailure { max_tries } => format!("on-failure:{max_tries}"),
        }
    }
}

/// A port a container listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Its name (`git`, `http`, ...): how [`Reach`] and Services refer to it.
    pub name: String,
    /// The TCP port.
    pub port: u16,
    /// The network it serves: only containers there reach it.
    pub network: String,
}

/// Where a container may open connections of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    /// Nowhere beyond the containers it [`Reach`]es (the agent).
    #[default]
    Nothing,
    /// Out through the bottle's egress network (a sidecar that talks to upstreams).
    Network,
}

/// A named port of another container that a container connects to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// The container listening (its deterministic name).
    pub container: String,
    /// The name of its [`PortSpec`].
    pub port: String,
}

/// A container whose standard output is audit lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSpec {
    /// The `source` its records carry (`gate`, `proxy`, ...).
    pub source: String,
}

/// An `/etc/hosts` entry for another container of the plan: `name` resolves to the address
/// `container` has on `network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOf {
    /// The host name the entry gives.
    pub name: String,
    /// The container whose address it is (its deterministic name).
    pub container: String,
    /// The network on which that container's address is taken.
    pub network: String,
}

fn yes() -> bool {
    true
}

/// A file copied into a container before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute path inside the container. Its parent directory exists in the image.
    pub path: String,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
    /// Owner inside the container.
    pub uid: u32,
    /// Group inside the container.
    pub gid: u32,
    /// Where the bytes come from.
    pub source: FileSource,
    /// An environment variable through which the program reading this file can be told
    /// where it is instead (git's `GIT_CONFIG_SYSTEM` for `/etc/gitconfig`). A backend
    /// that cannot place the file at [`FileSpec::path`] (a directory of the image no volume
    /// may replace, under Kubernetes) places it elsewhere and sets this variable to where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relocate_env: Option<String>,
}

impl FileSpec {
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.source {
            FileSource::Text { text } => text.as_bytes(),
            FileSource::HostFile { bytes, .. } | FileSource::HostEnv { bytes, .. } => {
                bytes.expose()
            }
        }
    }
}

/// The bytes of a [`FileSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FileSource {
    /// Text rendered by bottle (scripts, configs). Safe to print.
    Text {
        /// The file's contents.
        text: String,
    },
    /// A file read from the host at plan time, such as an identity key. Its bytes are
    /// secret: never printed, redacted from `Debug`; a printer copies it from `path`.
    HostFile {
        /// Absolute path on the host.
        path: PathBuf,
        /// The bytes read at plan time.
        bytes: SecretBytes,
    },
    /// The value of an environment variable of the planning process, such as an API key
    /// (`secret_env`). Secret like [`FileSource::HostFile`]: a printer reads it from the
    /// variable again when its output runs.
    HostEnv {
        /// The variable's name.
        var: String,
        /// Its value at plan time.
        bytes: SecretBytes,
    },
}

impl FileSource {
    /// Whether the bytes are a secret read from the host (never printed, never a label).
    pub fn is_secret(&self) -> bool {
        !matches!(self, FileSource::Text { .. })
    }
}

/// An environment value taken from the host at plan time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostValue {
    /// Where it came from: what may be shown instead of it.
    pub from: HostValueSource,
    /// The value at plan time.
    pub value: SecretBytes,
}

/// Where a [`HostValue`] came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum HostValueSource {
    /// An `env` value with `${VAR}` references, resolved in the planning process's
    /// environment; a printer replays it from the environment its output runs in.
    Template {
        /// The value as written.
        template: crate::interp::Template,
    },
    /// A variable of the bottle's `env_file`, read at plan time. A printer reads the
    /// variable of the same name from the environment its output runs in (the file loaded
    /// there, e.g. `set -a; . ./.env; set +a`).
    EnvFile {
        /// The file, absolute.
        path: PathBuf,
    },
}

impl HostValueSource {
    /// `prefix` (e.g. `KEY=`), then the value, as a shell word that reads it from the
    /// environment the shell runs in,
    /// never holding it: `"${VAR?...}"` for a reference (an unset variable stops the
    /// script, as it stopped the plan), `"${VAR:-default}"`, literal parts quoted, and for
    /// an `env_file` entry the variable `key` itself. `what` names the value in the
    /// message of an unset variable; it must hold no shell specials (`$`, `` ` ``, `"`,
    /// `\`, `}`). Variable names are letters, digits and `_` (checked by the caller).
    pub fn shell_word(
        &self,
        prefix: &str,
        key: &str,
        what: &str,
    ) -> Result<String, crate::quote::QuoteError> {
        use crate::interp::Part;
        // Literal text waiting to be quoted as one piece: `prefix`, then text parts.
        let mut lit = prefix.to_owned();
        let mut w = String::new();
        let flush = |lit: &mut String, w: &mut String| -> Result<(), crate::quote::QuoteError> {
            if !lit.is_empty() {
                w.push_str(&crate::quote::sh(lit)?);
                lit.clear();
            }
            Ok(())
        };
        match self {
            HostValueSource::Template { template } => {
                for part in &template.0 {
                    if !matches!(part, Part::Text { .. }) {
                        flush(&mut lit, &mut w)?;
                    }
                    match part {
                        Part::Text { text } => lit.push_str(text),
                        Part::Var { var, default: None } => {
                            w.push_str(&format!(
                                "\"${{{var}?is not set: export it, for {what}}}\""
                            ));
                        }
                        Part::Var {
                            var,
                            default: Some(d),
                        } => {
                            // Inside "${VAR:-...}" these still mean something: escape them.
                            let mut e = String::new();
                            for ch in d.chars() {
                                if matches!(ch, '\\' | '"' | '$' | '`' | '}') {
                                    e.push('\\');
                                }
                                e.push(ch);
                            }
                            w.push_str(&format!("\"${{{var}:-{e}}}\""));
                        }
                    }
                }
            }
            HostValueSource::EnvFile { .. } => {
                flush(&mut lit, &mut w)?;
                w.push_str(&format!(
                    "\"${{{key}?is not set: load the env_file first, e.g. set -a; . ./.env; set +a}}\""
                ));
            }
        }
        flush(&mut lit, &mut w)?;
        if w.is_empty() {
            w.push_str("''");
        }
        Ok(w)
    }

    /// What is shown in place of the value: `${VAR}` references, or the file's name.
    pub fn describe(&self, key: &str) -> String {
        match self {
            HostValueSource::Template { template } => template.to_string(),
            HostValueSource::EnvFile { path } => format!("${{{key}}} from {}", path.display()),
        }
    }
}

/// Bytes that must not be shown: `Debug` prints only their length. They serialise as
/// base64 so a plan can cross to a plugin as JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret bytes themselves; call only to hand them to the engine.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(SecretBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Privileges and limits of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    /// Capabilities dropped (`ALL` drops every one).
    pub cap_drop: Vec<String>,
    /// Capabilities added back after the drop.
    pub cap_add: Vec<String>,
    /// Sets `no-new-privileges`: setuid binaries cannot raise privileges.
    pub no_new_privileges: bool,
    /// Maximum number of processes.
    pub pids_limit: i64,
    /// Memory limit in bytes. Backends set the swap limit to the same value: no swap on
    /// top of it.
    pub memory_bytes: i64,
    /// Turns IPv6 off inside the container (`net.ipv6.conf.all.disable_ipv6=1`). bottle's
    /// networks are IPv4 only, but every Linux bridge holds a link-local IPv6 address on its
    /// host side even when it holds no IPv4 one ([`NetworkSpec::host`]), and a container
    /// with IPv6 on reaches the host through it (measured with podman 4.3 and netavark:
    /// a listener on the host's `[::]` answered the agent at `fe80::...%eth0`). Docker turns
    /// IPv6 off in containers on IPv4-only networks by itself; saying so makes it the
    /// plan's, on every engine.
    #[serde(default)]
    pub no_ipv6: bool,
    /// A read-only root filesystem, with only these places writable; `None`: the image's
    /// root filesystem is writable. A container's [`FileSpec`]s are copied in before it
    /// starts, and engines copy into a read-only container only inside a volume: every
    /// file of such a container lies under one of its [`Writable::Disk`] paths
    /// ([`ContainerSpec::misplaced_files`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root: Option<Vec<Writable>>,
}

/// A writable place in a container whose root filesystem is read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writable {
    /// Absolute path inside the container.
    pub path: String,
    /// Where its bytes live.
    pub on: WritableOn,
}

/// Where a [`Writable`] path's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum WritableOn {
    /// The engine's own disk: an anonymous volume (docker, podman), an `emptyDir`
    /// (Kubernetes). It starts with what the image holds at the path (owner and mode
    /// included), outlives a restart of the container and is removed with it. Off the
    /// container's layered root filesystem, so writes there are as fast as the host's disk
    /// (a `fuse-overlayfs` root pays a FUSE round trip per file operation).
    Disk,
    /// Memory (tmpfs), at most `bytes`, counted against the container's memory limit;
    /// empty at every start and owned by the container's user ([`ContainerSpec::user`],
    /// else the image's): an engine's own default is root's 0755 (at a path the image
    /// holds, docker and podman keep that directory's mode whatever `mode=` says), which
    /// a sidecar running as its own user could not write. Nothing can be copied there
    /// before the container starts.
    Memory {
        /// The most it may hold.
        bytes: u64,
    },
}

impl Writable {
    /// `path` on the engine's disk.
    pub fn disk(path: &str) -> Writable {
        Writable {
            path: path.to_owned(),
            on: WritableOn::Disk,
        }
    }

    /// Whether `file` lies under this path (both compared as [`relative_file_path`]s).
    pub fn holds(&self, file: &str) -> bool {
        // A trailing '/' names the same directory (relative_file_path refuses it: a file
        // path cannot end in one).
        let dir = self.path.trim_end_matches('/');
        match (relative_file_path(dir), relative_file_path(file)) {
            (Ok(dir), Ok(file)) => file
                .strip_prefix(&dir)
                .is_some_and(|rest| rest.starts_with('/')),
            _ => false,
        }
    }
}

impl Hardening {
    /// A sidecar's: every capability dropped and none added (it listens above 1024 and owns
    /// what it writes), no-new-privileges, and these limits.
    pub fn sidecar(pids_limit: i64, memory_bytes: i64) -> Hardening {
        Hardening {
            cap_drop: vec!["ALL".to_owned()],
            cap_add: Vec::new(),
            no_new_privileges: true,
            pids_limit,
            memory_bytes,
            no_ipv6: false,
            read_only_root: None,
        }
    }

    /// The same, with a read-only root filesystem where only `writable` may be written.
    pub fn read_only(self, writable: Vec<Writable>) -> Hardening {
        Hardening {
            read_only_root: Some(writable),
            ..self
        }
    }
}

impl Hardening {
    /// The kernel parameters the container is created with, as the engines take them
    /// (`--sysctl KEY=VALUE`): what [`Hardening::no_ipv6`] asks for.
    pub fn sysctls(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.no_ipv6 {
            out.insert("net.ipv6.conf.all.disable_ipv6".to_owned(), "1".to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_place_holds_what_lies_below_it() {
        let w = Writable::disk("/etc/bottle-gate");
        assert!(w.holds("/etc/bottle-gate/entrypoint"));
        assert!(w.holds("//etc/./bottle-gate/creds/a.key"));
        assert!(!w.holds("/etc/bottle-gate"));
        assert!(!w.holds("/etc/bottle-gatex/a"));
        assert!(!w.holds("/etc/a"));
        assert!(!w.holds("/etc/bottle-gate/../x"));
        assert!(Writable::disk("/etc/bottle-gate/").holds("/etc/bottle-gate/a"));
    }

    #[test]
    fn relative_file_paths() {
        assert_eq!(
            relative_file_path("/etc/gitconfig").unwrap(),
            "etc/gitconfig"
        );
        assert_eq!(relative_file_path("//etc/./a//b").unwrap(), "etc/a/b");
        assert!(relative_file_path("etc/x").is_err());
        assert!(relative_file_path("/").is_err());
        assert!(relative_file_path("/etc/../x").is_err());
        assert!(relative_file_path("/etc/x/").is_err());
    }

    #[test]
    fn names_carry_project_bottle_and_role() {
        assert_eq!(resource_name("web", "demo", "gate"), "bottle-web-demo-gate");
        assert_eq!(
            labels("web", "demo", "gate")[LABEL_PROJECT],
            "web".to_owned()
        );
    }

    #[test]
    fn long_names_are_shortened_at_63_bytes() {
        // "bottle-" (7) + project + "-demo-" (6) + MAX_ROLE_LEN (10) = 63: the longest kept.
        let project = "p".repeat(63 - 7 - 6 - MAX_ROLE_LEN);
        let kept = resource_name(&project, "demo", "internal");
        assert_eq!(kept, format!("bottle-{project}-demo-internal"));
        assert!(kept.len() <= MAX_NAME_LEN);

        let longer = format!("{project}x");
        let internal = resource_name(&longer, "demo", "internal");
        let gate = resource_name(&longer, "demo", "gate");
        for name in [&internal, &gate] {
            assert!(name.len() <= MAX_NAME_LEN, "{name}");
            assert!(
                name.starts_with("bottle-ppp") && is_engine_name(name),
                "{name}"
            );
        }
        assert!(internal.ends_with("-internal") && gate.ends_with("-gate"));
        assert_eq!(
            internal.trim_end_matches("-internal"),
            gate.trim_end_matches("-gate"),
            "one stem and hash per bottle, whatever the role"
        );
        // Deterministic, and distinct per project and per bottle.
        assert_eq!(internal, resource_name(&longer, "demo", "internal"));
        assert_ne!(
            internal,
            resource_name(&format!("{project}y"), "demo", "internal")
        );
        assert_ne!(internal, resource_name(&longer, "demo2", "internal"));

        let longest = "r".repeat(MAX_ROLE_LEN);
        let name = resource_name(&"a".repeat(63), &"b".repeat(40), &longest);
        assert_eq!(name.len(), MAX_NAME_LEN, "{name}");
    }

    #[test]
    fn every_role_fits_a_name() {
        for role in [NetworkRole::Internal.as_str(), NetworkRole::Egress.as_str()]
            .into_iter()
            .chain(crate::sidecar::SIDECARS.iter().map(|s| s.name()))
            .chain([ContainerRole::AGENT])
        {
            assert!(role.len() <= MAX_ROLE_LEN, "{role}");
        }
    }

    #[test]
    fn underscores_never_reach_a_name() {
        let name = resource_name("my_app", "demo", "gate");
        assert!(!name.contains('_'), "{name}");
        assert!(name.starts_with("bottle-my-app-demo-") && name.ends_with("-gate"));
        assert_ne!(name, resource_name("my-app", "demo", "gate"));
    }

    #[test]
    fn engine_names() {
        assert!(is_engine_name("bottle-demo-gate"));
        for bad in ["", "-x", "a/b", "a b", "a\n", ".x"] {
            assert!(!is_engine_name(bad), "{bad:?}");
        }
    }
}
