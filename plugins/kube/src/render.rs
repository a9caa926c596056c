//! Pure rendering: a [`Plan`] in, Kubernetes objects (and their YAML) out. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bottle_core::plan::{
    ContainerSpec, Egress, FileSource, FileSpec, Plan, WritableOn, LABEL_MANAGED, LABEL_PROJECT,
    LABEL_ROLE, LABEL_SLUG,
};
use bottle_core::quote;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HostAlias, KeyToPath, Pod, PodSpec, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

/// Where files that cannot be placed at their path (a directory of the image) are mounted
/// instead; their program finds them through the file's `relocate_env` variable.
pub const RELOCATED_DIR: &str = "/etc/bottle-files";

/// Where the install init container sees the ConfigMap and the Secret.
const CONFIG_IN: &str = "/bottle-in/config";
const SECRET_IN: &str = "/bottle-in/secret";

/// Whether secret bytes (identity keys) appear in the printed YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// The Secret is part of the output (for `kubectl apply`, or printing on request).
    Include,
    /// The Secret is left out; a comment says how to create it from the key's host path.
    Omit,
}

/// How to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace of every object; the current one when `None`.
    pub namespace: Option<String>,
    /// Whether the Secret is rendered.
    pub secrets: Secrets,
}

/// The plan cannot be expressed as Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Kubernetes object.
// A bottle has eight of them at most: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Secret.
    Secret(Secret),
    /// A Service.
    Service(Service),
    /// A Pod.
    Pod(Pod),
}

impl Object {
    /// `Kind/name`.
    pub fn id(&self) -> String {
        let (kind, meta) = match self {
            Object::NetworkPolicy(o) => ("NetworkPolicy", &o.metadata),
            Object::ConfigMap(o) => ("ConfigMap", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
            Object::Service(o) => ("Service", &o.metadata),
            Object::Pod(o) => ("Pod", &o.metadata),
        };
        format!("{kind}/{}", meta.name.as_deref().unwrap_or_default())
    }

    fn yaml(&self) -> Result<String, serde_norway::Error> {
        match self {
            Object::NetworkPolicy(o) => serde_norway::to_string(o),
            Object::ConfigMap(o) => serde_norway::to_string(o),
            Object::Secret(o) => serde_norway::to_string(o),
            Object::Service(o) => serde_norway::to_string(o),
            Object::Pod(o) => serde_norway::to_string(o),
        }
    }
}

/// The objects of one bottle, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    /// The bottle's project.
    pub project: String,
    /// The bottle's slug.
    pub slug: String,
    /// NetworkPolicies first (so no Pod ever runs unprotected), then ConfigMaps and
    /// Secrets, the Service, and the Pods in plan order (the gate before the agent).
    pub objects: Vec<Object>,
    /// Comment lines put before the objects (what was left out, and how to add it).
    pub notes: Vec<String>,
}

impl Manifests {
    /// A multi-document YAML stream, as `kubectl apply -f -` and `podman kube play` read it.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut out = String::new();
        for note in &self.notes {
            if note.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {note}");
            }
        }
        for object in &self.objects {
            let doc = object
                .yaml()
                .map_err(|e| RenderError(format!("cannot write {} as YAML: {e}", object.id())))?;
            out.push_str("---\n");
            out.push_str(&doc);
        }
        Ok(out)
    }
}

fn meta(name: &str, labels: &BTreeMap<String, String>, opts: &Options) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: opts.namespace.clone(),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    }
}

/// The labels that select one role's Pod of one bottle: its project's too, since two
/// projects' bottles of one name may share a namespace.
fn selector(plan: &Plan, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PROJECT.to_owned(), plan.project.clone()),
        (LABEL_SLUG.to_owned(), plan.slug.clone()),
        (LABEL_ROLE.to_owned(), role.to_owned()),
    ])
}

fn pods(plan: &Plan, role: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector(plan, role)),
        ..LabelSelector::default()
    }
}

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }
}

/// Cluster DNS: kube-dns (also CoreDNS's label) in kube-system, port 53.
fn dns_rule() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "kube-system".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "k8s-app".to_owned(),
                    "kube-dns".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some(p.to_owned()),
                    ..NetworkPolicyPort::default()
                })
                .collect(),
        ),
    }
}

fn policy(
    c: &ContainerSpec,
    plan: &Plan,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
    opts: &Options,
) -> Object {
    Object::NetworkPolicy(NetworkPolicy {
        metadata: meta(&c.name, &c.labels, opts),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods(plan, c.role.as_str())),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

/// The NetworkPolicies, one per container, from the plan's `ports`, `reaches` and `egress`:
/// a container accepts connections on its ports only from the containers that reach them;
/// it connects to the ports it reaches (and cluster DNS, to resolve their Services), and,
/// when it may go out, to DNS and TCP anywhere (its upstreams: a plan names them by host,
/// and a policy needs addresses). Nothing else. The agent, which reaches its sidecars and
/// goes nowhere, gets exactly that.
fn policies(plan: &Plan, opts: &Options) -> Vec<Object> {
    let peer = |c: &ContainerSpec| NetworkPolicyPeer {
        pod_selector: Some(pods(plan, c.role.as_str())),
        ..NetworkPolicyPeer::default()
    };
    let mut out = Vec::new();
    for c in &plan.containers {
        let mut egress = Vec::new();
        for reach in &c.reaches {
            let Some((target, port)) = plan
                .container_named(&reach.container)
                .and_then(|t| Some((t, t.ports.iter().find(|p| p.name == reach.port)?)))
            else {
                continue;
            };
            egress.push(NetworkPolicyEgressRule {
                to: Some(vec![peer(target)]),
                ports: Some(vec![tcp(port.port)]),
            });
        }
        if !c.reaches.is_empty() || c.egress == Egress::Network {
            egress.push(dns_rule());
        }
        if c.egress == Egress::Network {
            let anywhere = ["0.0.0.0/0", "::/0"]
                .into_iter()
                .map(|cidr| NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: cidr.to_owned(),
                        except: None,
                    }),
                    ..NetworkPolicyPeer::default()
                })
                .collect();
            egress.push(NetworkPolicyEgressRule {
                to: Some(anywhere),
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            });
        }
        let ingress = c
            .ports
            .iter()
            .filter_map(|port| {
                let from: Vec<NetworkPolicyPeer> = plan
                    .containers
                    .iter()
                    .filter(|o| {
                        o.reaches
                            .iter()
                            .any(|r| r.container == c.name && r.port == port.name)
                    })
                    .map(peer)
                    .collect();
                (!from.is_empty()).then(|| NetworkPolicyIngressRule {
                    from: Some(from),
                    ports: Some(vec![tcp(port.port)]),
                })
            })
            .collect();
        out.push(policy(c, plan, ingress, egress, opts));
    }
    out
}

/// How one container's files reach it.
struct Placement {
    /// Text files for the ConfigMap: key to text.
    config: BTreeMap<String, String>,
    /// Files for the Secret: key to bytes, and where each came from (for the note).
    secret: BTreeMap<String, (Vec<u8>, Source)>,
    /// The plan's host values (`host_env`): Secret key (`env.NAME`) to bytes, and the shell
    /// word that reads the value again (for the note). In the same Secret as the files,
    /// but not mounted: the container reads each through `secretKeyRef`.
    env_secret: BTreeMap<String, (Vec<u8>, String)>,
    /// Directories replaced by an emptyDir, filled by the install init container.
    roots: Vec<String>,
    /// `(key, in Secret?, file)` for each installed file.
    installed: Vec<(String, bool, FileSpec)>,
    /// Files moved to [`RELOCATED_DIR`]: ConfigMap key, mode, and the variable that says
    /// where they are.
    relocated: Vec<(String, u32, String)>,
}

/// Where a Secret entry's bytes come from.
#[derive(Debug, Clone)]
enum Source {
    Host(std::path::PathBuf),
    /// An environment variable of the shell that creates the Secret (an API key).
    Env(String),
    Text,
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A ConfigMap/Secret key for `path`: its file name (characters outside `[-._a-zA-Z0-9]`
/// replaced), made unique with a suffix.
fn key_for(path: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = basename(path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base == "." || base == ".." {
        "file".to_owned()
    } else {
        base
    };
    let mut key = base.clone();
    let mut n = 2;
    while !taken.insert(key.clone()) {
        key = format!("{base}-{n}");
        n += 1;
    }
    key
}

/// The Secret key of a host value: `env.` and its name (a Secret key allows
/// `[-._a-zA-Z0-9]`; an environment variable's name is letters, digits and `_`).
fn env_key(name: &str) -> String {
    format!("env.{name}")
}

fn is_under(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Decides where each file of `c` goes (see the crate docs).
fn place(c: &ContainerSpec) -> Result<Placement, RenderError> {
    let mut p = Placement {
        config: BTreeMap::new(),
        secret: BTreeMap::new(),
        env_secret: BTreeMap::new(),
        roots: Vec::new(),
        installed: Vec::new(),
        relocated: Vec::new(),
    };
    let mut taken = BTreeSet::new();
    // Directories holding a secret file: all their files go to the Secret.
    let private: BTreeSet<&str> = c
        .files
        .iter()
        .filter(|f| f.source.is_secret())
        .map(|f| parent(&f.path))
        .collect();
    // The plan's own checks (plain absolute paths, modes, no two files at one place).
    c.relative_file_paths()
        .map_err(|(f, why)| RenderError(format!("container {}: file {}: {why}", c.name, f.path)))?;
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for f in &c.files {
        let key = key_for(&f.path, &mut taken);
        let dir = parent(&f.path);
        // A file in a directory of the image (no volume may replace it) that its program
        // can be told about goes to RELOCATED_DIR instead.
        if let (Some(var), FileSource::Text { text }, true, 0, 0) = (
            &f.relocate_env,
            &f.source,
            dir.matches('/').count() < 2,
            f.uid,
            f.gid,
        ) {
            p.config.insert(key.clone(), text.clone());
            p.relocated.push((key, f.mode, var.clone()));
            continue;
        }
        if dir.matches('/').count() < 2 {
            return Err(RenderError(format!(
                "container {}: cannot place {}: the kube backend mounts a volume over a file's directory, and {dir} belongs to the image",
                c.name, f.path
            )));
        }
        let in_secret = private.contains(dir);
        if in_secret {
            let source = match &f.source {
                FileSource::HostFile { path, .. } => Source::Host(path.clone()),
                FileSource::HostEnv { var, .. } => Source::Env(var.clone()),
                FileSource::Text { .. } => Source::Text,
            };
            p.secret.insert(key.clone(), (f.bytes().to_vec(), source));
        } else {
            let FileSource::Text { text } = &f.source else {
                unreachable!("host files are in private directories");
            };
            p.config.insert(key.clone(), text.clone());
        }
        dirs.insert(dir.to_owned());
        p.installed.push((key, in_secret, f.clone()));
    }
    for (name, v) in &c.host_env {
        let word = v
            .from
            .shell_word(
                &format!("{}=", env_key(name)),
                name,
                &format!("{} env {name}", c.name),
            )
            .map_err(|e| RenderError(format!("container {}: env {name}: {e}", c.name)))?;
        p.env_secret
            .insert(env_key(name), (v.value.expose().to_vec(), word));
    }
    // Roots: directories not under another one.
    for d in &dirs {
        if !dirs.iter().any(|o| o != d && is_under(d, o)) {
            p.roots.push(d.clone());
        }
    }
    Ok(p)
}

fn numeric_user(c: &ContainerSpec) -> Result<Option<(i64, i64)>, RenderError> {
    let Some(user) = &c.user else {
        return Ok(None);
    };
    let bad = || {
        RenderError(format!(
            "container {}: user {user:?} is not numeric uid:gid, which Kubernetes needs",
            c.name
        ))
    };
    let (u, g) = user
        .split_once(':')
        .unwrap_or((user.as_str(), user.as_str()));
    let u: i64 = u.parse().map_err(|_| bad())?;
    let g: i64 = g.parse().map_err(|_| bad())?;
    Ok(Some((u, g)))
}

/// A memory quantity: whole MiB or GiB when exact, bytes otherwise.
fn memory(bytes: i64) -> Quantity {
    const MI: i64 = 1 << 20;
    const GI: i64 = 1 << 30;
    Quantity(if bytes % GI == 0 {
        format!("{}Gi", bytes / GI)
    } else if bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    })
}

/// The shell script of the install init container.
fn install_script(c: &ContainerSpec, p: &Placement) -> Result<String, RenderError> {
    let q = |s: &str| quote::sh(s).map_err(|e| RenderError(format!("container {}: {e}", c.name)));
    let mut s = String::from(
        "set -eu\n# Installs this container's files with the plan's modes and owners.\numask 077\n",
    );
    for root in &p.roots {
        // The emptyDir may hold a previous run's files (Podman keeps it as a named volume).
        let r = q(root)?;
        let _ = writeln!(s, "rm -rf -- {r}/* {r}/.[!.]* {r}/..?*");
    }
    // Every directory between a root and its files, with its owner and mode: a directory
    // holding a file of a non-root owner belongs to that owner, 0700; others root, 0755.
    let mut dirs: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for (_, _, f) in &p.installed {
        let mut d = parent(&f.path).to_owned();
        let root = p
            .roots
            .iter()
            .find(|r| is_under(&d, r))
            .expect("every file is under a root");
        loop {
            let entry = dirs.entry(d.clone()).or_insert((0, 0, 0o755));
            if parent(&f.path) == d && f.uid != 0 {
                *entry = (f.uid, f.gid, 0o700);
            }
            if &d == root {
                break;
            }
            d = parent(&d).to_owned();
        }
    }
    for d in dirs.keys() {
        let _ = writeln!(s, "mkdir -p {}", q(d)?);
    }
    for (key, in_secret, f) in &p.installed {
        let src = format!("{}/{key}", if *in_secret { SECRET_IN } else { CONFIG_IN });
        let dst = q(&f.path)?;
        let _ = writeln!(
            s,
            "cp {} {dst} && chmod {:04o} {dst} && chown {}:{} {dst}",
            q(&src)?,
            f.mode,
            f.uid,
            f.gid
        );
    }
    // Deepest first, so a parent is closed last.
    for (d, (uid, gid, mode)) in dirs.iter().rev() {
        let d = q(d)?;
        let _ = writeln!(s, "chmod {mode:04o} {d} && chown {uid}:{gid} {d}");
    }
    Ok(s)
}

/// The container's environment: the plan's, then where each relocated file is.
fn env_vars(c: &ContainerSpec, p: &Placement) -> Vec<EnvVar> {
    let var = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..EnvVar::default()
    };
    let plan = c.env.iter().map(|(k, v)| var(k, v.clone()));
    // Host values come from the container's Secret, never written into the Pod.
    let secret = format!("{}-secret", c.name);
    let host = c.host_env.keys().map(|k| EnvVar {
        name: k.clone(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.clone(),
                key: env_key(k),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    });
    let relocated = p
        .relocated
        .iter()
        .map(|(key, _, name)| var(name, format!("{RELOCATED_DIR}/{key}")));
    plan.chain(host).chain(relocated).collect()
}

/// The volumes of a Pod and the mounts of its containers.
#[derive(Default)]
struct Mounts {
    volumes: Vec<Volume>,
    /// The main container's.
    main: Vec<VolumeMount>,
    /// The install init container's.
    init: Vec<VolumeMount>,
}

impl Mounts {
    fn add(&mut self, volume: Volume) -> &mut Mounts {
        self.volumes.push(volume);
        self
    }

    fn mount(name: &str, path: &str, read_only: Option<bool>) -> VolumeMount {
        VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only,
            ..VolumeMount::default()
        }
    }
}

/// The relocated files: one ConfigMap volume at [`RELOCATED_DIR`], read-only.
fn relocated_volume(c: &ContainerSpec, p: &Placement, m: &mut Mounts) {
    if p.relocated.is_empty() {
        return;
    }
    // Podman 4.3 applies a single mode per volume: the most open the files ask for.
    let mode = p
        .relocated
        .iter()
        .map(|(_, mode, _)| *mode)
        .max()
        .unwrap_or(0o644);
    let name = format!("{}-relocated", c.name);
    m.add(Volume {
        name: name.clone(),
        config_map: Some(ConfigMapVolumeSource {
            name: format!("{}-files", c.name),
            items: Some(
                p.relocated
                    .iter()
                    .map(|(key, mode, _)| KeyToPath {
                        key: key.clone(),
                        path: key.clone(),
                        mode: Some(*mode as i32),
                    })
                    .collect(),
            ),
            default_mode: Some(mode as i32),
            optional: Some(false),
        }),
        ..Volume::default()
    })
    .main
    .push(Mounts::mount(&name, RELOCATED_DIR, Some(true)));
}

/// The installed files' volumes: the ConfigMap's and the Secret's, seen by the install init
/// container only, and one emptyDir per root directory, which it fills and the main
/// container mounts read-only.
fn install_volumes(c: &ContainerSpec, p: &Placement, m: &mut Mounts) {
    let config_map = format!("{}-files", c.name);
    let secret = format!("{}-secret", c.name);
    let config_items: Vec<KeyToPath> = p
        .installed
        .iter()
        .filter(|(_, s, _)| !s)
        .map(|(k, _, _)| KeyToPath {
            key: k.clone(),
            path: k.clone(),
            mode: None,
        })
        .collect();
    if !config_items.is_empty() {
        m.add(Volume {
            name: config_map.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                items: Some(config_items),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Volume::default()
        })
        .init
        .push(Mounts::mount(&config_map, CONFIG_IN, Some(true)));
    }
    if !p.secret.is_empty() {
        m.add(Volume {
            name: secret.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                // Only the files: the Secret's host values (`env.*`) are not files.
                items: (!p.env_secret.is_empty()).then(|| {
                    p.secret
                        .keys()
                        .map(|k| KeyToPath {
                            key: k.clone(),
                            path: k.clone(),
                            mode: None,
                        })
                        .collect()
                }),
                default_mode: Some(0o400),
                // Podman 4.3 dereferences this field without checking it is set.
                optional: Some(false),
            }),
            ..Volume::default()
        })
        .init
        .push(Mounts::mount(&secret, SECRET_IN, Some(true)));
    }
    for (i, root) in p.roots.iter().enumerate() {
        // Volume names are unique per bottle and container: Podman turns an emptyDir
        // into a named volume of that name.
        let name = if i == 0 {
            format!("{}-root", c.name)
        } else {
            format!("{}-root-{}", c.name, i + 1)
        };
        m.add(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        m.init.push(Mounts::mount(&name, root, None));
        m.main.push(Mounts::mount(&name, root, Some(true)));
    }
}

/// A read-only container's writable places: an emptyDir each (in memory, sized, for a
/// [`WritableOn::Memory`] one), mounted read-write, except where the installed files'
/// directories already are: those the plan lists as writable only because an engine
/// copies files into a read-only container through a volume; here the install init
/// container fills them and the main container mounts them read-only. An emptyDir starts
/// empty (mode 0777), where an engine's volume starts with the image's directory.
fn writable_volumes(c: &ContainerSpec, p: &Placement, m: &mut Mounts) {
    let Some(writable) = &c.hardening.read_only_root else {
        return;
    };
    let mut n = 0;
    for w in writable {
        if p.roots.iter().any(|root| is_under(&w.path, root)) {
            continue;
        }
        n += 1;
        let name = format!("{}-writable-{n}", c.name);
        let empty_dir = match w.on {
            WritableOn::Disk => EmptyDirVolumeSource::default(),
            WritableOn::Memory { bytes } => EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(Quantity(bytes.to_string())),
            },
        };
        m.add(Volume {
            name: name.clone(),
            empty_dir: Some(empty_dir),
            ..Volume::default()
        });
        m.main.push(Mounts::mount(&name, &w.path, None));
    }
}

/// The init container that installs the files with their modes and owners.
fn install_container(
    c: &ContainerSpec,
    p: &Placement,
    mounts: Vec<VolumeMount>,
) -> Result<Container, RenderError> {
    Ok(Container {
        name: "install-files".to_owned(),
        image: Some(c.image.name.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            install_script(c, p)?,
        ]),
        // Root with only what copying files to their owners needs: chown, and reading
        // and writing directories the image gave to another user.
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(vec![
                    "CHOWN".to_owned(),
                    "DAC_OVERRIDE".to_owned(),
                    "FOWNER".to_owned(),
                ]),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_owned(), memory(64 << 20))])),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    })
}

/// The container running the plan's: its image, command, environment, ports, privileges,
/// limits and mounts.
fn main_container(
    c: &ContainerSpec,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Result<Container, RenderError> {
    let user = numeric_user(c)?;
    let h = &c.hardening;
    let limits = (h.memory_bytes > 0)
        .then(|| BTreeMap::from([("memory".to_owned(), memory(h.memory_bytes))]));
    let ports = (!c.ports.is_empty()).then(|| {
        c.ports
            .iter()
            .map(|port| ContainerPort {
                name: Some(port.name.clone()),
                container_port: i32::from(port.port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            })
            .collect()
    });
    Ok(Container {
        name: c.role.as_str().to_owned(),
        image: Some(c.image.name.clone()),
        // bottle's images are built locally; never pull a ":latest" one behind the user's back.
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: c.entrypoint.clone(),
        args: c.command.clone(),
        env: (!env.is_empty()).then_some(env),
        ports,
        security_context: Some(SecurityContext {
            run_as_user: user.map(|(u, _)| u),
            run_as_group: user.map(|(_, g)| g),
            run_as_non_root: user.and_then(|(u, _)| (u != 0).then_some(true)),
            allow_privilege_escalation: Some(!h.no_new_privileges),
            read_only_root_filesystem: h.read_only_root.is_some().then_some(true),
            capabilities: Some(Capabilities {
                drop: (!h.cap_drop.is_empty()).then(|| h.cap_drop.clone()),
                add: (!h.cap_add.is_empty()).then(|| h.cap_add.clone()),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        resources: Some(ResourceRequirements {
            limits,
            ..ResourceRequirements::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    })
}

/// The plan's extra hosts as host aliases, one per address.
fn host_aliases(c: &ContainerSpec) -> Option<Vec<HostAlias>> {
    let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, ip) in &c.extra_hosts {
        by_ip.entry(ip.to_string()).or_default().push(host.clone());
    }
    (!by_ip.is_empty()).then(|| {
        by_ip
            .into_iter()
            .map(|(ip, hostnames)| HostAlias {
                ip,
                hostnames: Some(hostnames),
            })
            .collect()
    })
}

/// The Pod of container `c`, and where its files went.
fn pod(c: &ContainerSpec, plan: &Plan, opts: &Options) -> Result<(Pod, Placement), RenderError> {
    let p = place(c)?;
    let mut m = Mounts::default();
    relocated_volume(c, &p, &mut m);
    let mut init = Vec::new();
    if !p.installed.is_empty() {
        install_volumes(c, &p, &mut m);
        init.push(install_container(c, &p, std::mem::take(&mut m.init))?);
    }
    writable_volumes(c, &p, &mut m);
    let container = main_container(c, env_vars(c, &p), m.main)?;

    let mut labels = c.labels.clone();
    labels.insert(LABEL_SLUG.to_owned(), plan.slug.clone());
    labels.insert(LABEL_PROJECT.to_owned(), plan.project.clone());
    let mut metadata = meta(&c.name, &labels, opts);
    // Kubernetes has no per-Pod process limit (it is the kubelet's --pod-max-pids).
    metadata.annotations = Some(BTreeMap::from([(
        "bottle.pids-limit".to_owned(),
        c.hardening.pids_limit.to_string(),
    )]));
    let pod = Pod {
        metadata,
        spec: Some(PodSpec {
            // The agent must not talk to the Kubernetes API, nor learn of other Services.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // OnFailure: a completed init container is not run again (Podman 4.3 restarts
            // it under Always); a crashed container is. The kubelet restarts a Pod's
            // containers with a growing back-off and no bound, whatever the plan's
            // `restart` says (a Pod has no maximum): sidecars (`on-failure:5` on the
            // engines) restart here without a limit, and so does the agent, which the
            // engines never restart.
            restart_policy: Some("OnFailure".to_owned()),
            // The plan's `init`: the Pod's pause container is PID 1 and reaps orphans.
            share_process_namespace: c.init.then_some(true),
            host_aliases: host_aliases(c),
            init_containers: (!init.is_empty()).then_some(init),
            containers: vec![container],
            volumes: (!m.volumes.is_empty()).then_some(m.volumes),
            ..PodSpec::default()
        }),
        status: None,
    };
    Ok((pod, p))
}

/// Renders `plan` as Kubernetes objects.
pub fn render(plan: &Plan, opts: &Options) -> Result<Manifests, RenderError> {
    let slug = &plan.slug;
    let mut objects = policies(plan, opts);
    let mut notes = vec![
        format!(
            "bottle '{}' as Kubernetes objects (bottle's kube plugin, plan format {}).",
            plan.bottle, plan.format
        ),
        format!(
            "Apply with: kubectl apply --server-side -f -    Remove with: kubectl delete {} -l {LABEL_PROJECT}={},{LABEL_SLUG}={slug}",
            crate::KINDS,
            plan.project
        ),
    ];
    let mut pods = Vec::new();
    let mut services = Vec::new();
    for c in &plan.containers {
        if c.labels.get(LABEL_SLUG) != Some(slug)
            || c.labels.get(LABEL_PROJECT) != Some(&plan.project)
            || !c.labels.contains_key(LABEL_MANAGED)
        {
            return Err(RenderError(format!(
                "container {} lacks the labels {LABEL_PROJECT}={}, {LABEL_SLUG}={slug} and {LABEL_MANAGED}",
                c.name, plan.project
            )));
        }
        let (pod, p) = pod(c, plan, opts)?;
        let labels = &c.labels;
        if !p.config.is_empty() {
            objects.push(Object::ConfigMap(ConfigMap {
                metadata: meta(&format!("{}-files", c.name), labels, opts),
                data: Some(p.config.clone()),
                ..ConfigMap::default()
            }));
        }
        if !p.secret.is_empty() || !p.env_secret.is_empty() {
            let name = format!("{}-secret", c.name);
            match opts.secrets {
                Secrets::Include => objects.push(Object::Secret(Secret {
                    metadata: meta(&name, labels, opts),
                    type_: Some("Opaque".to_owned()),
                    data: Some(
                        p.secret
                            .iter()
                            .map(|(k, (bytes, _))| (k, bytes))
                            .chain(p.env_secret.iter().map(|(k, (bytes, _))| (k, bytes)))
                            .map(|(k, bytes)| (k.clone(), ByteString(bytes.clone())))
                            .collect(),
                    ),
                    ..Secret::default()
                })),
                Secrets::Omit => notes.extend(secret_note(&name, labels, &p)),
            }
        }
        // A container others reach gets a Service named like it, so its name resolves as
        // it does on an engine's network.
        if !c.ports.is_empty() {
            services.push(Object::Service(Service {
                metadata: meta(&c.name, labels, opts),
                spec: Some(ServiceSpec {
                    selector: Some(selector(plan, c.role.as_str())),
                    ports: Some(
                        c.ports
                            .iter()
                            .map(|port| ServicePort {
                                name: Some(port.name.clone()),
                                port: i32::from(port.port),
                                target_port: Some(IntOrString::Int(i32::from(port.port))),
                                protocol: Some("TCP".to_owned()),
                                ..ServicePort::default()
                            })
                            .collect(),
                    ),
                    ..ServiceSpec::default()
                }),
                status: None,
            }));
        }
        pods.push(Object::Pod(pod));
    }
    objects.extend(services);
    objects.extend(pods);
    Ok(Manifests {
        project: plan.project.clone(),
        slug: slug.clone(),
        objects,
        notes,
    })
}

/// The comment standing in for an omitted Secret: the commands that create it, reading the
/// key from its host path (its bytes are never printed).
fn secret_note(name: &str, labels: &BTreeMap<String, String>, p: &Placement) -> Vec<String> {
    let q = |s: &str| quote::sh(s).unwrap_or_else(|_| "'?'".to_owned());
    let mut create = format!("  kubectl create secret generic {}", q(name));
    for (key, (bytes, source)) in &p.secret {
        match source {
            Source::Host(path) => {
                let _ = write!(
                    create,
                    " --from-file={}",
                    q(&format!("{key}={}", path.display()))
                );
            }
            Source::Env(var) => {
                // Quoted apart from the expansion, which the shell fills in.
                let _ = write!(
                    create,
                    " --from-literal={}\"${var}\"",
                    q(&format!("{key}="))
                );
            }
            Source::Text => {
                // One comment line per command: a trailing newline is dropped (ssh reads a
                // last line without one), inner ones are written as printf escapes.
                let text = String::from_utf8_lossy(bytes);
                let text = text.trim_end_matches('\n');
                if text.contains('\n') {
                    let escaped = text.replace('\\', "\\\\").replace('\n', "\\n");
                    let _ = write!(
                        create,
                        " --from-literal={key}=\"$(printf '%b' {})\"",
                        q(&escaped)
                    );
                } else {
                    let _ = write!(create, " --from-literal={}", q(&format!("{key}={text}")));
                }
            }
        }
    }
    for (_, word) in p.env_secret.values() {
        let _ = write!(create, " --from-literal={word}");
    }
    let label: Vec<String> = labels.iter().map(|(k, v)| q(&format!("{k}={v}"))).collect();
    let mut lines = vec![
        String::new(),
        format!("The Secret {name} holds a key, so it is not printed. Create it"),
        "before applying the objects below (or set BOTTLE_KUBE_SECRETS=print to include it):"
            .to_owned(),
    ];
    lines.push(create);
    lines.push(format!(
        "  kubectl label secret {} {}",
        q(name),
        label.join(" ")
    ));
    lines
}
