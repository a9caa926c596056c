//! The git-gate: a sidecar holding a bare mirror of each upstream, served with `git daemon`.
//!
//! [`GitGate`] plays the part the abstract base class played in the original design: its
//! [`GitGate::prepare`] is the one shared, pure step that renders the script set and lists
//! the files and settings the gate container needs. It returns data (a [`GitGatePlan`]
//! holding a [`ContainerSpec`]), never starts anything: applying container specs is each
//! backend's job, done the same way for every sidecar. That is how bottle avoids the
//! original's one-class-per-sidecar-per-runtime trap. Its two layouts (in a container, and
//! under a host directory for the host-level test) are values of one type, not two impls.

pub mod scripts;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use crate::diag::{ManifestError, PlanError};
use crate::images::{self, ImageRecipe};
use crate::manifest::{Bottle, GitUpstream};
use crate::plan::{
    labels, resource_name, AuditSpec, ContainerRole, ContainerSpec, Egress, FileSource, FileSpec,
    Hardening, ImageRef, PortSpec, Restart, SecretBytes, Writable,
};
use crate::quote;
use crate::sidecar::{AgentGrant, BottleContext, Sidecar, SidecarPlan};
pub use scripts::ScriptSet;

/// The gate's name: its role, label and resource-name suffix.
pub const NAME: &str = "gate";
/// The gate image bottle builds from `gate-image/`.
pub const GATE_IMAGE: &str = images::GATE.tag;
/// The name of the gate's one port.
pub const GATE_PORT_NAME: &str = "git";
/// The gate's user and group inside its image.
pub const GATE_UID: u32 = 10001;
/// The port `git daemon` listens on.
pub const GATE_PORT: u16 = 9418;
/// The gate's memory limit unless the manifest sets `gate_memory`.
pub const GATE_MEMORY: i64 = 512 << 20;
/// The gate's process limit.
pub const GATE_PIDS: i64 = 256;

/// Where the gate keeps its repositories, scripts and credentials. Inside the container the
/// root is `/`; the host-level test renders the same scripts under a temporary directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateLayout {
    root: String,
}

impl GateLayout {
    /// The layout inside the gate container.
    pub const CONTAINER: GateLayout = GateLayout {
        root: String::new(),
    };

    /// The layout inside the gate container.
    pub fn container() -> GateLayout {
        GateLayout::CONTAINER
    }

    /// The same layout under `root` on the host. The root must be a plain absolute path
    /// (letters, digits, `/`, `.`, `_`, `-`): `git daemon` hands the access hook's path to a
    /// shell when it holds anything else, so such a root is refused rather than quoted.
    pub fn under(root: &Path) -> Result<GateLayout, String> {
        let text = root.to_str().unwrap_or_default();
        let plain = text.starts_with('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
        if !plain {
            return Err(format!(
                "gate root {} must be an absolute path of letters, digits, '/', '.', '_' and '-'",
                root.display()
            ));
        }
        Ok(GateLayout {
            root: text.trim_end_matches('/').to_owned(),
        })
    }

    /// Directory holding the bare repositories.
    pub fn repos_dir(&self) -> String {
        format!("{}/git", self.root)
    }
    /// Directory holding the rendered scripts (root-owned, read-only to the gate).
    pub fn config_dir(&self) -> String {
        format!("{}/etc/bottle-gate", self.root)
    }
    /// The entrypoint script.
    pub fn entrypoint(&self) -> String {
        format!("{}/entrypoint", self.config_dir())
    }
    /// The hooks directory every mirror's `core.hooksPath` points at.
    pub fn hooks_dir(&self) -> String {
        format!("{}/hooks", self.config_dir())
    }
    /// The pre-receive hook.
    pub fn pre_receive(&self) -> String {
        format!("{}/pre-receive", self.hooks_dir())
    }
    /// The access hook.
    pub fn access_hook(&self) -> String {
        format!("{}/access-hook", self.config_dir())
    }
    /// The directory of per-upstream credentials.
    pub fn creds_dir(&self) -> String {
        format!("{}/creds", self.config_dir())
    }
    /// The ssh key of upstream `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}.key", self.creds_dir())
    }
    /// The known_hosts file of upstream `name`.
    pub fn known_hosts(&self, name: &str) -> String {
        format!("{}/{name}.known_hosts", self.creds_dir())
    }
    /// The places the gate writes, its root filesystem being read-only; all on the
    /// engine's disk, whose volumes start with what the image holds there (owners and
    /// modes: the config directory root's, the rest the gate user's): its scripts and
    /// credentials (copied in before it starts), the mirrors, its home (audit log, ssh
    /// control sockets) and `/tmp`, where the push scanner writes the objects it scans
    /// (fast on the engine's disk, where a `fuse-overlayfs` root is slow per file; and
    /// not counted against the gate's memory, as a tmpfs would be, since a scan may
    /// write up to `max_scan_mb`).
    pub fn writable(&self) -> Vec<Writable> {
        [
            self.config_dir(),
            self.repos_dir(),
            self.home(),
            format!("{}/tmp", self.root),
        ]
        .iter()
        .map(|p| Writable::disk(p))
        .collect()
    }
    /// The push scanner, `bottle-gate-scan` (in the gate image).
    pub fn scanner(&self) -> String {
        format!("{}/usr/local/bin/bottle-gate-scan", self.root)
    }
    /// The pinned gitleaks binary (in the gate image).
    pub fn gitleaks(&self) -> String {
        format!("{}/usr/local/bin/gitleaks", self.root)
    }
    /// The gate's gitleaks config, made from that binary when the image is built
    /// (`bottle-gate-scan make-config`). Outside [`GateLayout::config_dir`], which a backend
    /// may mount over with the plan's files (the kube plugin does).
    pub fn gitleaks_config(&self) -> String {
        format!("{}/usr/local/lib/bottle-gate/gitleaks.toml", self.root)
    }
    /// The gate's audit log: its hooks append one JSON line per verdict, and the entrypoint
    /// copies each line to the container's standard output (what `bottle logs` reads).
    pub fn audit_log(&self) -> String {
        format!("{}/audit.jsonl", self.home())
    }
    /// The gate user's home (`HOME` in the gate image), which only that user can enter.
    pub fn home(&self) -> String {
        format!("{}/var/lib/bottle-gate", self.root)
    }
    /// The directory of the gate's ssh control sockets (its persistent connections to the
    /// upstreams), inside the gate user's home.
    pub fn control_dir(&self) -> String {
        format!("{}/ssh", self.home())
    }
    /// The control socket of upstream `name`'s persistent ssh connection: one per entry,
    /// never shared between entries, since each entry has its own key. `None` when the
    /// path would be too long for a unix socket (a host layout under a long root): the
    /// gate then makes a new connection every time.
    pub fn control_path(&self, name: &str) -> Option<String> {
        let path = format!("{}/{name}", self.control_dir());
        (path.len() <= MAX_CONTROL_PATH).then_some(path)
    }
}

/// The longest control path ssh can use: a unix socket path holds at most 107 bytes, and
/// ssh first binds the master's socket at the path plus `.` and 16 random characters.
/// (The container layout's longest, for a 64-character entry name, is 89.)
const MAX_CONTROL_PATH: usize = 107 - 17;

/// What [`GitGate::prepare`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitGatePlan {
    /// The gate's host name on the internal network.
    pub host: String,
    /// The rendered scripts (also among the container's files).
    pub scripts: ScriptSet,
    /// The gate container.
    pub container: ContainerSpec,
    /// The agent's git config: one `insteadOf` rewrite per upstream.
    pub agent_git_config: String,
}

/// The git-gate sidecar, with the layout it keeps its files in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitGate {
    layout: GateLayout,
}

impl GitGate {
    /// The gate bottle uses: the container layout, the built-in image.
    pub const STANDARD: GitGate = GitGate {
        layout: GateLayout::CONTAINER,
    };

    /// A gate whose `/` is `root` on the host (see [`GateLayout::under`]), for running the
    /// scripts without containers.
    pub fn on_host(root: &Path) -> Result<GitGate, String> {
        Ok(GitGate {
            layout: GateLayout::under(root)?,
        })
    }

    /// Where the gate keeps its files.
    pub fn layout(&self) -> &GateLayout {
        &self.layout
    }

    /// Renders the script set and describes the gate container for `bottle`, or `None`
    /// when the bottle has no git entries. Reads each identity file, and nothing else.
    pub fn prepare(
        &self,
        project: &str,
        bottle: &Bottle,
        internal: &str,
        egress: &str,
    ) -> Result<Option<GitGatePlan>, PlanError> {
        let slug = bottle.name.as_str();
        if bottle.git.is_empty() {
            return Ok(None);
        }
        let layout = &self.layout;
        let scripts = scripts::render(layout, &bottle.name, &bottle.git)?;
        let host = resource_name(project, slug, NAME);

        let text = |path: String, mode: u32, text: &str| FileSpec {
            relocate_env: None,
            path,
            mode,
            uid: 0,
            gid: 0,
            source: FileSource::Text {
                text: text.to_owned(),
            },
        };
        let mut files = vec![
            text(layout.entrypoint(), 0o755, &scripts.entrypoint),
            text(layout.pre_receive(), 0o755, &scripts.pre_receive),
            text(layout.access_hook(), 0o755, &scripts.access_hook),
        ];
        let mut problems = Vec::new();
        let mut extra_hosts: BTreeMap<String, IpAddr> = BTreeMap::new();
        for up in &bottle.git {
            match read_identity(up) {
                Ok(bytes) => files.push(FileSpec {
                    relocate_env: None,
                    path: layout.key(&up.name),
                    mode: 0o400,
                    uid: GATE_UID,
                    gid: GATE_UID,
                    source: FileSource::HostFile {
                        path: up.identity_file.value.clone(),
                        bytes: SecretBytes::new(bytes),
                    },
                }),
                Err(d) => problems.push(d),
            }
            if let Some(line) = up.known_hosts_line() {
                files.push(text(layout.known_hosts(&up.name), 0o644, &line));
            }
            extra_hosts.extend(up.extra_hosts.iter().map(|(h, ip)| (h.clone(), *ip)));
        }
        if !problems.is_empty() {
            return Err(PlanError::Invalid(ManifestError::new(problems)));
        }

        let container = ContainerSpec {
            name: host.clone(),
            role: ContainerRole::sidecar(NAME),
            image: ImageRef {
                name: GATE_IMAGE.to_owned(),
                recipe: Some(images::GATE.name.to_owned()),
            },
            entrypoint: Some(vec![layout.entrypoint()]),
            command: None,
            user: Some(format!("{GATE_UID}:{GATE_UID}")),
            env: BTreeMap::new(),
            host_env: BTreeMap::new(),
            labels: labels(project, slug, NAME),
            network: internal.to_owned(),
            connect: vec![egress.to_owned()],
            extra_hosts,
            hosts_of: Vec::new(),
            files,
            init: true,
            restart: Restart::sidecar(),
            // git daemon listens above 1024 and the gate owns what it writes: it needs no
            // capability at all.
            hardening: Hardening::sidecar(
                GATE_PIDS,
                bottle.gate_memory_bytes.unwrap_or(GATE_MEMORY),
            )
            .read_only(layout.writable()),
            ports: vec![PortSpec {
                name: GATE_PORT_NAME.to_owned(),
                port: GATE_PORT,
                network: internal.to_owned(),
            }],
            // Its upstreams, over ssh.
            egress: Egress::Network,
            reaches: Vec::new(),
            audit: Some(AuditSpec {
                source: NAME.to_owned(),
            }),
        };
        let agent_git_config = agent_git_config(&host, &bottle.git)?;
        Ok(Some(GitGatePlan {
            host,
            scripts,
            container,
            agent_git_config,
        }))
    }
}

impl Sidecar for GitGate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "the git-gate: mirrors of the upstreams, pushes scanned and forwarded"
    }

    fn images(&self) -> &'static [&'static ImageRecipe] {
        &[&images::GATE]
    }

    fn plan(&self, cx: &BottleContext<'_>) -> Result<Option<SidecarPlan>, PlanError> {
        let Some(gate) = self.prepare(cx.project, cx.bottle, cx.internal, cx.egress)? else {
            return Ok(None);
        };
        let agent = AgentGrant {
            files: vec![FileSpec {
                // git reads its system config from GIT_CONFIG_SYSTEM when set.
                relocate_env: Some("GIT_CONFIG_SYSTEM".to_owned()),
                path: AGENT_GITCONFIG.to_owned(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                source: FileSource::Text {
                    text: gate.agent_git_config,
                },
            }],
            env: BTreeMap::new(),
            hosts: vec![gate.host],
            reaches: vec![GATE_PORT_NAME.to_owned()],
        };
        Ok(Some(SidecarPlan {
            container: gate.container,
            agent,
        }))
    }
}

/// Where the agent's git config goes: the system-wide file, so every user in the image
/// gets the rewrites.
pub const AGENT_GITCONFIG: &str = "/etc/gitconfig";

/// Reads an upstream's identity file, refusing what the gate could not use (empty, a
/// public key, a key behind a passphrase); `bottle doctor` checks with it too.
pub fn read_identity(up: &GitUpstream) -> Result<Vec<u8>, crate::diag::Diagnostic> {
    let path = &up.identity_file.value;
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(up.identity_file.diagnostic(
            format!("identity file {} is empty", path.display()),
            "point identity_file at the private key the gate uses for this upstream",
        )),
        Ok(bytes) => match identity_problem(&bytes) {
            None => Ok(bytes),
            Some((why, hint)) => Err(up
                .identity_file
                .diagnostic(format!("identity file {}: {why}", path.display()), hint)),
        },
        Err(e) => Err(up.identity_file.diagnostic(
            format!("cannot read identity file {}: {e}", path.display()),
            "create the key (e.g. ssh-keygen -t ed25519 -f PATH) or fix the path; it must be readable by you",
        )),
    }
}

/// What is wrong with an identity file's bytes for a gate that runs ssh without a terminal:
/// a public key where the private one belongs, a key behind a passphrase (which nobody is
/// there to type), or anything that is not a private key ssh reads (OpenSSH's own format,
/// or PEM: PKCS#1 RSA, SEC1 EC, DSA, PKCS#8). Refused here, at plan time, rather than at
/// the gate's first fetch, where ssh's "invalid format" would not name the manifest entry.
fn identity_problem(bytes: &[u8]) -> Option<(String, &'static str)> {
    const NOT_A_KEY_HINT: &str = "point identity_file at the gate's private key (one made by ssh-keygen -t ed25519 -N '' -f PATH, whose PATH.pub is the deploy key upstream)";
    const PASSPHRASE_HINT: &str = "give the gate a key of its own without one: ssh-keygen -t ed25519 -N '' -f PATH (and add PATH.pub as a deploy key upstream), or an unprotected copy: cp KEY COPY && ssh-keygen -p -N '' -f COPY";
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let public = text.lines().count() == 1
        && ["ssh-", "ecdsa-", "sk-"]
            .iter()
            .any(|p| text.starts_with(p))
        && ssh_key::PublicKey::from_openssh(text).is_ok();
    if public {
        return Some((
            "is a public key".to_owned(),
            "point identity_file at the private key: the same path without .pub",
        ));
    }
    if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return match ssh_key::PrivateKey::from_openssh(text) {
            Ok(key) if key.is_encrypted() => Some((
                "is protected by a passphrase, which the gate has no one to ask for".to_owned(),
                PASSPHRASE_HINT,
            )),
            Ok(_) => None,
            Err(e) => Some((
                format!("looks like an OpenSSH private key but does not read as one ({e})"),
                NOT_A_KEY_HINT,
            )),
        };
    }
    let pem = match pem::parse(text) {
        Ok(pem) => pem,
        Err(_) => {
            return Some((
                "is not a private key (neither OpenSSH's format nor PEM)".to_owned(),
                NOT_A_KEY_HINT,
            ))
        }
    };
    let encrypted = pem.tag() == "ENCRYPTED PRIVATE KEY"
        || pem
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
    if encrypted {
        return Some((
            "is protected by a passphrase, which the gate has no one to ask for".to_owned(),
            PASSPHRASE_HINT,
        ));
    }
    match pem.tag() {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "DSA PRIVATE KEY" | "PRIVATE KEY" => None,
        other => Some((
            format!("is PEM but holds {other:?}, not a private key"),
            NOT_A_KEY_HINT,
        )),
    }
}

/// The agent's `/etc/gitconfig`: rewrites each upstream URL to the gate, for fetch and push
/// alike. Only the URL as written is rewritten: git matches `insteadOf` as a prefix, so a
/// shortened form (without `.git`) would also capture other repositories' URLs.
fn agent_git_config(host: &str, upstreams: &[GitUpstream]) -> Result<String, quote::QuoteError> {
    let mut out = String::from(
        "# Written by bottle: this bottle's git upstreams are reached through its git-gate.\n",
    );
    for up in upstreams {
        let target = format!("git://{host}/{}.git", up.name);
        out.push_str(&format!(
            "[url {}]\n\tinsteadOf = {}\n",
            quote::git_config_subsection(&target)?,
            quote::git_config_value(&up.url)?
        ));
    }
    Ok(out)
}
