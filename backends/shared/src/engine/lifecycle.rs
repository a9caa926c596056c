//! `stop`, `start`, `status` and a container's own output: a bottle kept, not removed.
//!
//! `stop` stops every running container of a bottle (found by label) and keeps them, their
//! networks and what they hold (the gate's mirror, the audit lines in the engine's logs).
//! `start` takes the plan: it starts the stopped containers in the plan's order, the order
//! `up` starts them in (sidecars first; the agent, which needs their addresses, last), and
//! refuses, naming what is missing and what to do, when the bottle is not all there. After a
//! start, a container's host entries for its sidecars are pointed at their addresses now
//! (an engine may give a restarted container another one).

use std::collections::HashMap;

use bottle_core::backend::{
    BackendError, ContainerStatus, ExecOptions, OutputChunk, Resource, Scope,
};
use bottle_core::plan::{ContainerSpec, Plan, ResourceKind};
use futures_util::future::join_all;

use super::manage::find;
use super::{ContainerInfo, Engine, ExecChunk};
use crate::resources::Found;

/// Engine states of a container that is not running and that `start` starts.
fn is_running(state: &str) -> bool {
    matches!(state, "running" | "restarting" | "paused")
}

/// [`Backend::stop`](bottle_core::backend::Backend::stop): stops every running container of
/// the bottle of `scope`, all at once (none depends on another to stop); returns those it
/// stopped.
pub async fn stop<E: Engine>(e: &E, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
    let slug = scope.bottle.as_deref().unwrap_or_default();
    let (containers, _) = find(e, scope).await?;
    if containers.is_empty() {
        return Err(BackendError::Other(format!(
            "bottle '{slug}' has no containers on this engine: nothing to stop\n  hint: `bottle up {slug}` creates and starts it"
        )));
    }
    let running: Vec<Found> = containers
        .into_iter()
        .filter(|c| is_running(&c.resource.state))
        .collect();
    let results = join_all(running.into_iter().map(|f| async move {
        let r = e.stop_container(&f.id).await;
        (f, r)
    }))
    .await;
    let mut stopped = Vec::new();
    let mut failures = Vec::new();
    for (f, r) in results {
        match r {
            Ok(()) => stopped.push(f.resource),
            // Gone between the list and the stop: nothing left to stop.
            Err(err) if err.is_not_found() => {}
            Err(err) => failures.push(format!("container {}: {err}", f.resource.name)),
        }
    }
    if failures.is_empty() {
        return Ok(stopped);
    }
    Err(BackendError::Engine {
        action: format!("stop bottle '{slug}'"),
        message: failures.join("; "),
    })
}

/// What `start` found of a plan's bottle: each container's engine id and state, by name,
/// and what the plan has that the engine does not.
struct Present {
    containers: HashMap<String, (String, String)>,
    missing: Vec<(ResourceKind, String)>,
}

async fn present<E: Engine>(e: &E, plan: &Plan) -> Result<Present, BackendError> {
    // The plan's project only: its names carry the project, so a bottle made before
    // projects is never part of it.
    let scope = Scope {
        unlabelled: false,
        ..Scope::bottle(&plan.project, &plan.slug)
    };
    let (containers, networks) = find(e, &scope).await?;
    let containers: HashMap<String, (String, String)> = containers
        .into_iter()
        .map(|f| (f.resource.name, (f.id, f.resource.state)))
        .collect();
    let networks: Vec<String> = networks.into_iter().map(|f| f.resource.name).collect();
    let missing = plan
        .resource_names()
        .filter(|(kind, name)| match kind {
            ResourceKind::Container => !containers.contains_key(*name),
            ResourceKind::Network => !networks.iter().any(|n| n == name),
        })
        .map(|(kind, name)| (kind, name.to_owned()))
        .collect();
    Ok(Present {
        containers,
        missing,
    })
}

/// Whether `up` may resume the plan's bottle instead of refusing its leftovers: every
/// network and container of the plan exists, and every container has run before (a
/// container that never started is what a failed `up --keep-on-failure` leaves, and
/// starting it would fail the same way).
pub(super) async fn resumable<E: Engine>(e: &E, plan: &Plan) -> bool {
    let Ok(found) = present(e, plan).await else {
        return false;
    };
    if !found.missing.is_empty() {
        return false;
    }
    let infos = join_all(
        found
            .containers
            .values()
            .map(|(id, _)| e.inspect_container(id)),
    )
    .await;
    infos
        .into_iter()
        .all(|i| i.is_ok_and(|i| i.started_at.is_some()))
}

/// [`Backend::start`](bottle_core::backend::Backend::start): starts the plan's containers
/// that do not run, one after the other in plan order; returns their names.
pub async fn start<E: Engine>(e: &E, plan: &Plan) -> Result<Vec<String>, BackendError> {
    let slug = &plan.slug;
    let found = present(e, plan).await?;
    if found.containers.is_empty() {
        return Err(BackendError::Other(format!(
            "bottle '{slug}' does not exist on this engine: nothing to start\n  hint: `bottle up {slug}` creates and starts it"
        )));
    }
    if !found.missing.is_empty() {
        let list = found
            .missing
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(BackendError::Other(format!(
            "bottle '{slug}' is incomplete: {list} missing, and start does not create\n  hint: `bottle down {slug}`, then `bottle up {slug}` (the gate fetches its mirrors again from the upstreams)"
        )));
    }
    let mut started = Vec::new();
    for c in &plan.containers {
        let (id, state) = &found.containers[&c.name];
        if is_running(state) {
            continue;
        }
        e.start_container(id)
            .await
            .map_err(|err| err.at(format!("start container {}", c.name)))?;
        started.push(c.name.clone());
    }
    if !started.is_empty() {
        for c in plan.containers.iter().filter(|c| !c.hosts_of.is_empty()) {
            refresh_hosts(e, c, &found.containers).await?;
        }
    }
    Ok(started)
}

/// Points container `c`'s host entries for other containers ([`ContainerSpec::hosts_of`])
/// at their addresses now. `up` wrote them at create time, and an engine may give a
/// container another address when it starts again (podman 4 does, after a stop: measured;
/// docker kept them), while it rewrites `/etc/hosts` from the create-time entries. The file
/// is rewritten in place (it is a bind mount: no rename), as root, through an exec of `sh`.
async fn refresh_hosts<E: Engine>(
    e: &E,
    c: &ContainerSpec,
    ids: &HashMap<String, (String, String)>,
) -> Result<(), BackendError> {
    let mut drop = Vec::new();
    let mut add = Vec::new();
    for h in &c.hosts_of {
        let action = || {
            format!(
                "find the address of container {} on network {} (the host entry {} of container {})",
                h.container, h.network, h.name, c.name
            )
        };
        let Some((id, _)) = ids.get(&h.container) else {
            return Err(BackendError::Engine {
                action: action(),
                message: "it does not exist".to_owned(),
            });
        };
        let ip = match e.address(id, &h.network).await {
            Ok(Some(ip)) => ip,
            Ok(None) => {
                return Err(BackendError::Engine {
                    action: action(),
                    message: format!("it has no address on {}", h.network),
                })
            }
            Err(err) => return Err(err.at(action())),
        };
        drop.push(h.name.clone());
        add.push(format!("{ip}\t{}", h.name));
    }
    // Lines naming one of these hosts go; the fresh ones are added. Names and addresses
    // are passed as arguments, never pasted into the script.
    let script = r#"n=$1; shift; kept=$(awk -v n="$n" 'BEGIN { split(n, a, " "); for (i in a) drop[a[i]] = 1 } { for (i = 2; i <= NF; i++) if ($i in drop) next; print }' /etc/hosts) && { printf '%s\n' "$kept"; printf '%b\n' "$@"; } >/etc/hosts"#;
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
        drop.join(" "),
    ];
    command.extend(add);
    let root = ExecOptions {
        user: Some("0".to_owned()),
        ..ExecOptions::default()
    };
    let out = super::exec::exec_output_with(e, &c.name, &command, &root).await?;
    if out.code != 0 {
        return Err(BackendError::Engine {
            action: format!(
                "point the host entries of container {} at the addresses its sidecars have now",
                c.name
            ),
            message: format!(
                "exit code {}: {}",
                out.code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// [`Backend::status`](bottle_core::backend::Backend::status): each container of the
/// bottle of `scope` with its inspection (all at once), by name. A container gone between
/// the list and its inspection is shown as listed.
pub async fn status<E: Engine>(e: &E, scope: &Scope) -> Result<Vec<ContainerStatus>, BackendError> {
    let (mut containers, _) = find(e, scope).await?;
    containers.sort_by(|a, b| a.resource.name.cmp(&b.resource.name));
    let infos = join_all(containers.iter().map(|c| e.inspect_container(&c.id))).await;
    Ok(containers
        .into_iter()
        .zip(infos)
        .map(|(c, info)| {
            let info = info.ok();
            let ContainerInfo {
                restarts,
                started_at,
                health,
            } = info.clone().unwrap_or_default();
            ContainerStatus {
                name: c.resource.name,
                role: c.resource.role,
                state: c.resource.state,
                health,
                started_at,
                restarts: info.map(|_| restarts),
            }
        })
        .collect())
}

/// [`Backend::container_output`](bottle_core::backend::Backend::container_output): the
/// engine's log of the container of the bottle of `scope` whose role is `role`.
pub async fn container_output<E: Engine>(
    e: &E,
    scope: &Scope,
    role: &str,
) -> Result<Vec<OutputChunk>, BackendError> {
    let slug = scope.bottle.as_deref().unwrap_or_default();
    let (containers, _) = find(e, scope).await?;
    let Some(c) = containers
        .iter()
        .find(|c| c.resource.role.as_deref() == Some(role))
    else {
        let mut roles: Vec<&str> = containers
            .iter()
            .filter_map(|c| c.resource.role.as_deref())
            .collect();
        roles.sort_unstable();
        return Err(BackendError::Other(if roles.is_empty() {
            format!(
                "bottle '{slug}' has no containers on this engine\n  hint: `bottle up {slug}` creates it"
            )
        } else {
            format!(
                "bottle '{slug}' has no {role} container; its containers: {}\n  hint: --container {}",
                roles.join(", "),
                roles.join("|")
            )
        }));
    };
    let chunks = e
        .output_log(&c.id)
        .await
        .map_err(|err| err.at(format!("read the log of container {}", c.resource.name)))?;
    Ok(chunks
        .into_iter()
        .map(|chunk| match chunk {
            ExecChunk::Stdout(b) => OutputChunk::Stdout(b.to_vec()),
            ExecChunk::Stderr(b) => OutputChunk::Stderr(b.to_vec()),
        })
        .collect())
}
