//! bottle's Kubernetes backend, shipped as a plugin (`libbottle_kube.so`, backend `kube`):
//! it turns a plan into Kubernetes objects and prints them, or applies them with `kubectl`.
//!
//! ```sh
//! cargo build -p bottle-kube
//! bottle --plugin target/debug/libbottle_kube.so --backend kube up demo   # prints YAML
//! ```
//!
//! # The objects
//!
//! For a bottle `S` of project `P` with a gate (all carry `bottle.project`, `bottle.slug`,
//! `bottle.role`, `bottle.managed`; Pods, Services and NetworkPolicies select by project and
//! bottle, so two projects' bottles of one name can share a namespace):
//!
//! | object | name | what |
//! |---|---|---|
//! | NetworkPolicy | `bottle-P-S-agent` | the agent: no ingress; egress only to the gate's Pods on TCP 9418, and to cluster DNS |
//! | NetworkPolicy | `bottle-P-S-gate` | the gate: ingress only from the agent on TCP 9418; egress to cluster DNS and TCP anywhere (its upstreams) |
//! | ConfigMap | `bottle-P-S-gate-files` | the gate's scripts (entrypoint, pre-receive, access hook) |
//! | Secret | `bottle-P-S-gate-secret` | each upstream's identity key and known_hosts; mounted only into the gate Pod's init container |
//! | ConfigMap | `bottle-P-S-agent-files` | the agent's git config (the `insteadOf` rewrites to the gate) |
//! | Secret | `bottle-P-S-agent-secret` | only when the bottle's `env` takes values from the host (`${VAR}`, `env_file`): each as the key `env.NAME`, which the agent Pod reads with `secretKeyRef` (never a literal in the Pod); omitted from the printed YAML like every Secret, its note creating it from the same variables |
//! | Service | `bottle-P-S-gate` | port 9418 (`git`) to the gate Pod: the agent's `git://bottle-P-S-gate/NAME.git` resolves to it |
//! | Pod | `bottle-P-S-gate` | the gate, user 10001, with an init container installing its files |
//! | Pod | `bottle-P-S-agent` | the agent |
//!
//! The plan's two networks have no object of their own: the NetworkPolicies are what the
//! internal network means (the agent reaches nothing but the gate), and what the egress
//! network means (only the gate reaches out). They come first in the output so that no Pod
//! ever runs before its policy exists. A bottle without git entries gets only the agent's
//! Pod and a policy that lets it reach nothing at all.
//!
//! # Files, owners and modes
//!
//! A plan gives every file an exact mode and owner: the gate's scripts root-owned 0755 in a
//! root-owned directory (so the gate user cannot alter its own hooks), its key owned by the
//! gate user (10001) with mode 0400 in a 0700 directory (ssh refuses a key others can read).
//! ConfigMap and Secret volumes cannot say that: their files are root-owned, `fsGroup` only
//! changes the group, and their modes are applied unevenly (Podman 4.3 ignores `items`
//! modes and a Secret's `defaultMode`, and mounts a `subPath` of a ConfigMap as a
//! directory). So each Pod with files gets an init container, `install-files`, running the
//! container's own image as root with every capability dropped but `CHOWN`, `DAC_OVERRIDE`
//! and `FOWNER`, no privilege escalation and a read-only root file system. It sees the
//! ConfigMap and the Secret (nobody else does) and copies each file into an `emptyDir`
//! mounted over the file's directory (`/etc/bottle-gate` for the gate), with `chmod` then
//! `chown` to the plan's mode and owner. A directory holding a file of a non-root owner gets
//! that owner and 0700, any other 0755 and root, as the gate image has them. The main
//! container mounts that `emptyDir` **read-only**. Secret entries are all files of a
//! directory that holds an identity key (so the key and its known_hosts), ConfigMap entries
//! the rest.
//!
//! The one exception is a text file in a directory of the image, such as the agent's
//! `/etc/gitconfig`: no volume may replace `/etc`, and a `subPath` mount of a single file is
//! what Podman 4.3 gets wrong. When the plan names an environment variable through which
//! the file's program can be told where it is (`relocate_env`: `GIT_CONFIG_SYSTEM` for git's
//! system config), it is mounted read-only from the ConfigMap under `/etc/bottle-files/`
//! (root-owned, the plan's mode) and the variable points at it. Any other file in a
//! top-level directory is refused with an error rather than placed wrongly.
//!
//! # Ports, Services and NetworkPolicies
//!
//! All from the plan, for any container: each of its `ports` becomes a container port and
//! a port of a Service named like the container (so its name resolves as on an engine's
//! network); its NetworkPolicy admits on each port exactly the containers whose `reaches`
//! name it, lets it connect to the ports it `reaches` (and cluster DNS), and, for a
//! container whose `egress` is the network, to TCP anywhere. The plugin names no sidecar.
//!
//! # Hardening
//!
//! From the plan: `runAsUser`/`runAsGroup` (and `runAsNonRoot` for a non-root user),
//! `capabilities` (drop `ALL`, add the manifest's), `allowPrivilegeEscalation: false` for
//! `no-new-privileges`, and a memory limit. Also: seccomp `RuntimeDefault`, no service
//! account token, no Service environment variables, and `shareProcessNamespace` for the
//! plan's `init` (the Pod's pause process is PID 1 and reaps orphans). Kubernetes has no
//! per-Pod process limit (it is the kubelet's `--pod-max-pids`), so the plan's is recorded as
//! the annotation `bottle.pids-limit`. Images are pulled `IfNotPresent`: bottle's are built
//! locally, and a `:latest` image would otherwise always be pulled.
//!
//! # Print or apply
//!
//! `up` prints the objects as YAML on stdout, without the Secret (an identity key is never
//! printed unasked): a comment shows the `kubectl create secret` command reading the key
//! from its host path. With `BOTTLE_KUBE_APPLY=1` (the plugin's `--apply`) it applies them
//! instead (`kubectl apply --server-side`, which keeps the Secret out of the
//! `last-applied-configuration` annotation; then waits for the Pods to be ready). The same
//! command has the same effect whatever cluster `kubectl` happens to be configured for:
//! nothing reaches a cluster unless asked. It is an environment variable because the
//! plugin ABI (v1) passes a plugin no flags of its own.
//! `BOTTLE_KUBE_SECRETS=print` includes the Secret. `down` deletes every object with the
//! bottle's labels (`kubectl delete ... -l bottle.managed,bottle.project=P,bottle.slug=S`), or
//! prints that command. `cleanup` without a bottle name is refused (a Pod's phase does not
//! tell a stopped bottle from a working one); `cleanup --all` deletes every bottle's objects. Also read: `BOTTLE_KUBE_NAMESPACE` (objects and kubectl), `BOTTLE_KUBECTL` (the
//! program, default `kubectl`).
//!
//! # Why a plugin
//!
//! It is the first real user of the plugin ABI (`bottle_plugin`): a runtime added without
//! touching the binary. It implements the synchronous `PluginBackend` and drives `kubectl`
//! as a child process, which the host runs on a blocking thread.
#![deny(missing_docs)]

mod kubectl;
pub mod render;

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
use bottle_core::plan::Plan;
use bottle_plugin::{export_backend, PluginBackend};

pub use render::{render, Manifests, Options, Secrets};

/// The kinds of object bottle creates, as `kubectl delete` and `kubectl get` take them.
pub const KINDS: &str = "pods,services,configmaps,secrets,networkpolicies";

/// The `kube` backend.
#[derive(Debug)]
pub struct Kube {
    kubectl: kubectl::Kubectl,
    /// Apply to a cluster (`true`) or print (`false`).
    apply: bool,
    secrets: Secrets,
}

/// Reads `BOTTLE_KUBE_APPLY`: apply with kubectl (`1`, `true`, `yes`) or print (`0`,
/// `false`, `no`, or unset: printing is the default, whether or not a cluster is
/// configured).
pub fn apply_setting(value: Option<&str>) -> Result<bool, BackendError> {
    match value {
        Some("1" | "true" | "yes") => Ok(true),
        None | Some("0" | "false" | "no") => Ok(false),
        Some(other) => Err(BackendError::Other(format!(
            "BOTTLE_KUBE_APPLY={other}: use 1 (apply with kubectl) or unset it (print the objects)"
        ))),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Kube {
    fn options(&self, secrets: Secrets) -> Options {
        Options {
            namespace: self.kubectl.namespace.clone(),
            secrets,
        }
    }
}

impl PluginBackend for Kube {
    const NAME: &'static str = "kube";
    const ABOUT: &'static str =
        "Kubernetes (plugin): prints the bottle as Pods, a Service, ConfigMaps, a Secret and NetworkPolicies; applies them with kubectl with --apply (or BOTTLE_KUBE_APPLY=1)";

    fn open() -> Result<Self, BackendError> {
        let kubectl = kubectl::Kubectl {
            program: env("BOTTLE_KUBECTL").unwrap_or_else(|| "kubectl".to_owned()),
            namespace: env("BOTTLE_KUBE_NAMESPACE"),
        };
        // `bottle --apply` reaches plugins as BOTTLE_APPLY=1.
        let apply = env("BOTTLE_APPLY").as_deref() == Some("1")
            || apply_setting(env("BOTTLE_KUBE_APPLY").as_deref())?;
        let secrets = match env("BOTTLE_KUBE_SECRETS").as_deref() {
            Some("print") => Secrets::Include,
            None | Some("omit") => Secrets::Omit,
            Some(other) => {
                return Err(BackendError::Other(format!(
                    "BOTTLE_KUBE_SECRETS={other}: use print (include the Secret in printed YAML) or omit"
                )))
            }
        };
        Ok(Kube {
            kubectl,
            apply,
            secrets,
        })
    }

    fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
        let secrets = if self.apply {
            Secrets::Include
        } else {
            self.secrets
        };
        let manifests = render(plan, &self.options(secrets))
            .map_err(|e| BackendError::Other(format!("kube: {e}")))?;
        let yaml = manifests
            .to_yaml()
            .map_err(|e| BackendError::Other(format!("kube: {e}")))?;
        if !self.apply {
            kubectl::print(&yaml)?;
            eprintln!("kube: printed bottle '{}', applied nothing; `bottle --apply` (or BOTTLE_KUBE_APPLY=1) applies it with kubectl", plan.slug);
            return Ok(());
        }
        self.kubectl.up(&manifests, &yaml, opts.keep_on_failure)
    }

    fn down(&self, scope: &Scope) -> Result<(), BackendError> {
        let args = self.kubectl.delete_args(scope);
        if !self.apply {
            return kubectl::print(&format!("{}\n", self.kubectl.shown(&args)));
        }
        self.kubectl.run(&args).map(drop)
    }

    fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        let args = self.kubectl.get_args(scope);
        if !self.apply {
            kubectl::print(&format!("{}\n", self.kubectl.shown(&args)))?;
            return Ok(Vec::new());
        }
        let out = self.kubectl.run(&args)?;
        kubectl::parse_ps(&out)
    }

    fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        if scope.keep_complete {
            // Pods restart under OnFailure, so a Pod's phase does not tell a stopped bottle
            // from one at work: rather than guess and remove a working one, refuse.
            return Err(BackendError::Other(format!(
                "kube: cannot tell a stopped bottle from a running one, so `cleanup` without a bottle name removes nothing here ({})\n  hint: name the bottle (`bottle cleanup NAME`), or remove every bottle with `bottle cleanup --all`",
                scope.describe()
            )));
        }
        let args = self.kubectl.cleanup_args(scope);
        if !self.apply {
            kubectl::print(&format!("{}\n", self.kubectl.shown(&args)))?;
            return Ok(Vec::new());
        }
        let out = self.kubectl.run(&args)?;
        Ok(kubectl::parse_deleted(&out))
    }

    fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError> {
        let args = self.kubectl.exec_args(request);
        if !self.apply {
            kubectl::print(&format!("{}\n", self.kubectl.shown(&args)))?;
            return Ok(0);
        }
        self.kubectl.interactive(&args)
    }
}

export_backend!(Kube);
