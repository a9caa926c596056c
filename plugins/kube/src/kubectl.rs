//! Driving `kubectl`: the commands `up`, `down`, `ps`, `cleanup` and `exec` run (or print).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope};
use bottle_core::plan::{
    resource_name, ContainerRole, ResourceKind, LABEL_MANAGED, LABEL_PROJECT, LABEL_ROLE,
    LABEL_SLUG,
};
use bottle_core::quote;

use crate::render::Manifests;
use crate::KINDS;

/// How long `up` waits for the Pods to be ready.
const READY_TIMEOUT: &str = "180s";

/// The `kubectl` program and the namespace it works in.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// The program (`kubectl`, or `BOTTLE_KUBECTL`).
    pub program: String,
    /// `--namespace`, when set.
    pub namespace: Option<String>,
}

/// Writes to the process's stdout (the plugin shares it with bottle).
pub fn print(text: &str) -> Result<(), BackendError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| BackendError::Other(format!("kube: cannot write to stdout: {e}")))
}

/// The label selector of `scope`. A selector cannot say "this project, or none", so
/// objects of a bottle older than projects are reached only when the scope spans every
/// project (`cleanup --all`).
fn selector(scope: &Scope) -> String {
    let mut out = LABEL_MANAGED.to_owned();
    if let Some(p) = &scope.project {
        out.push_str(&format!(",{LABEL_PROJECT}={p}"));
    }
    if let Some(b) = &scope.bottle {
        out.push_str(&format!(",{LABEL_SLUG}={b}"));
    }
    out
}

impl Kubectl {
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(ns) = &self.namespace {
            cmd.arg(format!("--namespace={ns}"));
        }
        cmd.args(args);
        cmd
    }

    /// The command line, shell-quoted, as printed when there is no cluster.
    pub fn shown(&self, args: &[String]) -> String {
        let mut words = vec![self.program.clone()];
        if let Some(ns) = &self.namespace {
            words.push(format!("--namespace={ns}"));
        }
        words.extend(args.iter().cloned());
        quote::sh_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
    }

    /// `kubectl delete` of one bottle's objects.
    pub fn delete_args(&self, scope: &Scope) -> Vec<String> {
        vec![
            "delete".into(),
            KINDS.into(),
            "-l".into(),
            selector(scope),
            "--ignore-not-found".into(),
            "--wait=true".into(),
        ]
    }

    /// `kubectl get` of one or every bottle's objects, as JSON.
    pub fn get_args(&self, scope: &Scope) -> Vec<String> {
        vec![
            "get".into(),
            KINDS.into(),
            "-l".into(),
            selector(scope),
            "-o".into(),
            "json".into(),
        ]
    }

    /// `kubectl delete` of one or every bottle's objects, naming each.
    pub fn cleanup_args(&self, scope: &Scope) -> Vec<String> {
        vec![
            "delete".into(),
            KINDS.into(),
            "-l".into(),
            selector(scope),
            "--ignore-not-found".into(),
            "-o".into(),
            "name".into(),
        ]
    }

    /// `kubectl exec` in the agent.
    pub fn exec_args(&self, request: &ExecRequest) -> Vec<String> {
        let mut args = vec!["exec".to_owned()];
        if request.tty {
            args.extend(["-i".to_owned(), "-t".to_owned()]);
        }
        args.extend([
            resource_name(&request.project, &request.slug, ContainerRole::AGENT),
            "-c".to_owned(),
            ContainerRole::AGENT.to_owned(),
            "--".to_owned(),
        ]);
        args.extend(request.command.iter().cloned());
        args
    }

    fn failed(&self, args: &[String], e: std::io::Error) -> BackendError {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::Unavailable {
                message: format!("kube: cannot run {}: {e}", self.program),
                hint: "install kubectl (or set BOTTLE_KUBECTL), or unset BOTTLE_KUBE_APPLY to print the objects instead".to_owned(),
            }
        } else {
            BackendError::Engine {
                action: self.shown(args),
                message: e.to_string(),
            }
        }
    }

    /// Runs kubectl with `input` on stdin; its stdout, or its stderr as the error.
    pub fn run_input(&self, args: &[String], input: Option<&[u8]>) -> Result<String, BackendError> {
        let mut child = self
            .command(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.failed(args, e))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A failed write shows up as kubectl's own error below.
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().map_err(|e| self.failed(args, e))?;
        if !out.status.success() {
            return Err(BackendError::Engine {
                action: self.shown(args),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl; its stdout, or its stderr as the error.
    pub fn run(&self, args: &[String]) -> Result<String, BackendError> {
        self.run_input(args, None)
    }

    /// Runs kubectl on the process's own terminal; its exit code.
    pub fn interactive(&self, args: &[String]) -> Result<i32, BackendError> {
        let status = self
            .command(args)
            .status()
            .map_err(|e| self.failed(args, e))?;
        Ok(status.code().unwrap_or(1))
    }

    /// Applies a bottle: fails on leftovers, applies, waits for the Pods; on failure removes
    /// what it applied unless `keep`.
    pub fn up(&self, m: &Manifests, yaml: &str, keep: bool) -> Result<(), BackendError> {
        let slug = &m.slug;
        let scope = Scope {
            project: Some(m.project.clone()),
            bottle: Some(slug.clone()),
            ..Scope::default()
        };
        let mut probe = self.get_args(&scope);
        probe.truncate(4);
        probe.extend(["-o".to_owned(), "name".to_owned()]);
        let found: Vec<(ResourceKind, String)> = self
            .run(&probe)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| (kind_of(l), l.trim().to_owned()))
            .collect();
        if !found.is_empty() {
            return Err(BackendError::Leftovers {
                slug: slug.clone(),
                found,
            });
        }
        let apply = [
            "apply",
            "--server-side",
            "--field-manager=bottle",
            "-f",
            "-",
        ]
        .map(str::to_owned);
        let wait = vec![
            "wait".to_owned(),
            "--for=condition=Ready".to_owned(),
            "pod".to_owned(),
            "-l".to_owned(),
            selector(&scope),
            format!("--timeout={READY_TIMEOUT}"),
        ];
        let result = self
            .run_input(&apply, Some(yaml.as_bytes()))
            .and_then(|_| self.run(&wait));
        match result {
            Ok(_) => {
                eprintln!("kube: bottle '{slug}' is up ({} objects)", m.objects.len());
                Ok(())
            }
            Err(e) => {
                let e = match e {
                    BackendError::Engine { action, message } => BackendError::Engine {
                        action,
                        message: format!(
                            "{message}\n  hint: `kubectl describe pods -l {}` shows why",
                            selector(&scope)
                        ),
                    },
                    other => other,
                };
                if !keep {
                    let _ = self.run(&self.delete_args(&scope));
                }
                Err(e)
            }
        }
    }
}

fn kind_of(name: &str) -> ResourceKind {
    if name.starts_with("networkpolicy") {
        ResourceKind::Network
    } else {
        ResourceKind::Container
    }
}

/// Reads `kubectl get -o json`: Pods as containers (their phase as state), NetworkPolicies
/// as networks, grouped by bottle.
pub fn parse_ps(json: &str) -> Result<Vec<BottleStatus>, BackendError> {
    let doc: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| BackendError::Other(format!("kube: cannot read kubectl's JSON: {e}")))?;
    let mut bottles: BTreeMap<(Option<String>, String), Vec<Resource>> = BTreeMap::new();
    for item in doc["items"].as_array().into_iter().flatten() {
        let labels = &item["metadata"]["labels"];
        let Some(slug) = labels[LABEL_SLUG].as_str() else {
            continue;
        };
        let project = labels[LABEL_PROJECT].as_str().map(str::to_owned);
        let role = labels[LABEL_ROLE].as_str().map(str::to_owned);
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let resource = match item["kind"].as_str() {
            Some("Pod") => Resource {
                kind: ResourceKind::Container,
                name,
                role,
                state: item["status"]["phase"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_ascii_lowercase(),
                // The kubelet's count of the Pod's container restarts (its init containers'
                // are not restarts of the Pod's work).
                restarts: item["status"]["containerStatuses"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|s| s["restartCount"].as_u64()).sum()),
            },
            Some("NetworkPolicy") => Resource {
                kind: ResourceKind::Network,
                name,
                role,
                state: String::new(),
                restarts: None,
            },
            _ => continue,
        };
        bottles
            .entry((project, slug.to_owned()))
            .or_default()
            .push(resource);
    }
    Ok(bottles
        .into_iter()
        .map(|((project, slug), resources)| BottleStatus {
            project,
            slug,
            resources,
        })
        .collect())
}

/// Reads `kubectl delete -o name`: the Pods and NetworkPolicies removed.
pub fn parse_deleted(out: &str) -> Vec<Resource> {
    out.lines()
        .filter_map(|l| {
            let (kind, name) = l.trim().split_once('/')?;
            let kind = match kind {
                "pod" => ResourceKind::Container,
                k if k.starts_with("networkpolicy") => ResourceKind::Network,
                _ => return None,
            };
            Some(Resource {
                kind,
                name: name.to_owned(),
                role: name.rsplit('-').next().map(str::to_owned),
                state: String::new(),
                restarts: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_groups_pods_and_policies_by_bottle() {
        let json = r#"{"items": [
            {"kind": "Pod", "metadata": {"name": "bottle-a-gate", "labels": {"bottle.slug": "a", "bottle.role": "gate"}}, "status": {"phase": "Running", "containerStatuses": [{"name": "gate", "restartCount": 2}]}},
            {"kind": "Pod", "metadata": {"name": "bottle-a-agent", "labels": {"bottle.slug": "a", "bottle.role": "agent"}}, "status": {"phase": "Pending"}},
            {"kind": "Service", "metadata": {"name": "bottle-a-gate", "labels": {"bottle.slug": "a", "bottle.role": "gate"}}},
            {"kind": "NetworkPolicy", "metadata": {"name": "bottle-b-agent", "labels": {"bottle.slug": "b", "bottle.role": "agent"}}}
        ]}"#;
        let got = parse_ps(json).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].slug, "a");
        assert_eq!(got[0].resources[0].state, "running");
        assert_eq!(got[0].resources[0].restarts, Some(2));
        assert_eq!(
            got[0].resources[1].restarts, None,
            "no container status yet"
        );
        assert_eq!(got[0].resources.len(), 2);
        assert_eq!(got[1].resources[0].kind, ResourceKind::Network);
    }

    #[test]
    fn deleted_names_become_resources() {
        let got = parse_deleted(
            "pod/bottle-a-gate\nservice/bottle-a-gate\nnetworkpolicy.networking.k8s.io/bottle-a-agent\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].role.as_deref(), Some("gate"));
        assert_eq!(got[1].kind, ResourceKind::Network);
    }
}
