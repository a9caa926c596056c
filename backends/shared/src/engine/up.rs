//! `up`: leftover probe, images, networks, containers, rollback.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bottle_core::backend::{BackendError, UpOptions};
use bottle_core::plan::{ContainerSpec, FileSpec, NetworkSpec, Plan};
use futures_util::future::join_all;
use futures_util::stream::{FuturesOrdered, StreamExt};

use super::{ensure_plan_images, Engine};
use crate::archive;
use crate::resources::{self, AfterFailure};

/// What this `up` created, by engine id, in creation order.
#[derive(Default)]
struct Created {
    networks: Mutex<Vec<(String, String)>>,
    containers: Mutex<Vec<(String, String)>>,
}

/// [`Backend::up`](bottle_core::backend::Backend::up): probes for leftovers, ensures the
/// images, then creates; on failure removes exactly what it created (or keeps it with
/// [`UpOptions::keep_on_failure`]) and says so in the error. A bottle whose every network
/// and container exists, each container having run before, is resumed instead: its
/// stopped containers are started in plan order ([`start`](super::start)).
pub async fn up<E: Engine>(e: &E, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
    if let Some((c, h)) = plan.unfillable_host() {
        return Err(BackendError::Other(format!(
            "container {}: host entry {:?} takes the address of {} on {}, which no earlier container of the plan has; nothing was created",
            c.name, h.name, h.container, h.network
        )));
    }
    match probe_leftovers(e, plan).await {
        Ok(()) => {}
        // The whole bottle is there, stopped (`bottle stop`, the engine restarted) or
        // running: start what does not run, as `bottle start` does.
        Err(BackendError::Leftovers { .. }) if super::lifecycle::resumable(e, plan).await => {
            let started = super::start(e, plan).await?;
            e.progress(&if started.is_empty() {
                format!("bottle '{}' is up already", plan.slug)
            } else {
                format!(
                    "bottle '{}' existed, stopped: started {}",
                    plan.slug,
                    started.join(", ")
                )
            });
            return Ok(());
        }
        Err(err) => return Err(err),
    }
    ensure_plan_images(e, plan).await?;
    for warning in e.warnings(plan) {
        e.progress(&warning);
    }

    let created = Created::default();
    let Err(err) = apply(e, plan, &created).await else {
        return Ok(());
    };
    let networks = created.networks.into_inner().unwrap_or_default();
    let containers = created.containers.into_inner().unwrap_or_default();
    if networks.is_empty() && containers.is_empty() {
        return Err(err);
    }
    let after = if opts.keep_on_failure {
        AfterFailure::Kept(resources::kept_names(&containers, &networks))
    } else {
        AfterFailure::RolledBack(rollback(e, &containers, &networks).await)
    };
    Err(resources::failed_up(err, &plan.slug, &after))
}

/// Creates container `c` on its network, copies its files in, connects its other networks
/// and starts it: what [`up`] does for each container of a plan, for one outside any plan
/// (the upstream fixture, [`crate::fixture`]). Returns its id. What it created stays on
/// failure (`c`'s labels let `down` or `cleanup` find it).
pub async fn run_container<E: Engine>(e: &E, c: &ContainerSpec) -> Result<String, BackendError> {
    if let Some(h) = c.hosts_of.first() {
        return Err(BackendError::Other(format!(
            "container {}: host entry {:?} takes the address of {}, which only a plan's `up` fills; nothing was created",
            c.name, h.name, h.container
        )));
    }
    let id = prepare_container(e, c, &Created::default()).await?;
    e.start_container(&id)
        .await
        .map_err(|err| err.at(format!("start container {}", c.name)))?;
    Ok(id)
}

/// Fails with [`BackendError::Leftovers`] when any name the plan would create exists.
async fn probe_leftovers<E: Engine>(e: &E, plan: &Plan) -> Result<(), BackendError> {
    let probes = plan.resource_names().map(|(kind, name)| async move {
        match e.exists(kind, name).await {
            Ok(true) => Ok(Some((kind, name.to_owned()))),
            Ok(false) => Ok(None),
            Err(err) => Err(err.at(format!("look for {kind} {name}"))),
        }
    });
    let mut found = Vec::new();
    for r in join_all(probes).await {
        if let Some(f) = r? {
            found.push(f);
        }
    }
    resources::leftovers(&plan.slug, found)
}

async fn apply<E: Engine>(e: &E, plan: &Plan, created: &Created) -> Result<(), BackendError> {
    // Networks, all at once; every request is awaited so each created id is recorded.
    let results = join_all(plan.networks.iter().map(|n| create_network(e, n, created))).await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;

    // Containers: create, copy and connect concurrently; start in plan order. A container
    // with host entries for others (the agent, for its gate) waits until those run and
    // have addresses: it is created afterwards, in plan order.
    let (now, later): (Vec<&ContainerSpec>, Vec<&ContainerSpec>) =
        plan.containers.iter().partition(|c| c.hosts_of.is_empty());
    let mut prepared: FuturesOrdered<_> = now
        .into_iter()
        .map(|c| async move { prepare_container(e, c, created).await.map(|id| (c, id)) })
        .collect();
    let mut started = Vec::new();
    let mut first_err = None;
    while let Some(result) = prepared.next().await {
        if first_err.is_some() {
            continue; // drain: let every in-flight step finish and record what it created
        }
        match result {
            Ok((spec, id)) => match e.start_container(&id).await {
                Ok(()) => started.push((spec.name.clone(), id)),
                Err(err) => first_err = Some(err.at(format!("start container {}", spec.name))),
            },
            Err(err) => first_err = Some(err),
        }
    }
    if let Some(err) = first_err {
        return Err(err);
    }
    for c in later {
        let c = with_addresses(e, c, &started).await?;
        let id = prepare_container(e, &c, created).await?;
        e.start_container(&id)
            .await
            .map_err(|err| err.at(format!("start container {}", c.name)))?;
        started.push((c.name, id));
    }
    Ok(())
}

/// `c` with its [`hosts_of`](ContainerSpec::hosts_of) entries filled in as
/// [`extra_hosts`](ContainerSpec::extra_hosts), from the addresses of the `started`
/// containers (name, id).
async fn with_addresses<E: Engine>(
    e: &E,
    c: &ContainerSpec,
    started: &[(String, String)],
) -> Result<ContainerSpec, BackendError> {
    let mut filled = c.clone();
    for h in &c.hosts_of {
        let action = || {
            format!(
                "find the address of container {} on network {} (the host entry {} of container {})",
                h.container, h.network, h.name, c.name
            )
        };
        let Some((_, id)) = started.iter().find(|(name, _)| *name == h.container) else {
            return Err(BackendError::Engine {
                action: action(),
                message: "the plan starts no such container before this one".to_owned(),
            });
        };
        match e.address(id, &h.network).await {
            Ok(Some(ip)) => {
                filled.extra_hosts.insert(h.name.clone(), ip);
            }
            Ok(None) => {
                return Err(BackendError::Engine {
                    action: action(),
                    message: format!("it has no address on {}", h.network),
                })
            }
            Err(err) => return Err(err.at(action())),
        }
    }
    Ok(filled)
}

async fn create_network<E: Engine>(
    e: &E,
    n: &NetworkSpec,
    created: &Created,
) -> Result<(), BackendError> {
    let id = e
        .create_network(n)
        .await
        .map_err(|err| err.at(format!("create network {}", n.name)))?;
    created
        .networks
        .lock()
        .expect("lock")
        .push((id.clone(), n.name.clone()));
    e.check_network(n, &id).await
}

/// Creates a container on its network, copies its files in and connects its other
/// networks; returns its id.
async fn prepare_container<E: Engine>(
    e: &E,
    c: &ContainerSpec,
    created: &Created,
) -> Result<String, BackendError> {
    let id = e
        .create_container(c)
        .await
        .map_err(|err| err.at(format!("create container {}", c.name)))?;
    created
        .containers
        .lock()
        .expect("lock")
        .push((id.clone(), c.name.clone()));

    // One archive per directory the files are copied into (`/`, or each volume of a
    // read-only container).
    let mut by_dir: BTreeMap<&str, Vec<&FileSpec>> = BTreeMap::new();
    for f in &c.files {
        let dir = c.copy_dir(f).ok_or_else(|| BackendError::Engine {
            action: format!("copy {} into container {}", f.path, c.name),
            message: "its root filesystem is read-only and no disk-backed writable path of the plan holds the file".to_owned(),
        })?;
        by_dir.entry(dir).or_default().push(f);
    }
    for (dir, files) in by_dir {
        let action = || format!("copy files into {dir} of container {}", c.name);
        let tar = archive::container_files(dir, &files).map_err(|err| BackendError::Engine {
            action: action(),
            message: format!("cannot build the archive: {err}"),
        })?;
        e.copy_in(&id, dir, tar)
            .await
            .map_err(|err| err.at(action()))?;
    }

    for network in &c.connect {
        e.connect(&id, network)
            .await
            .map_err(|err| err.at(format!("connect container {} to network {network}", c.name)))?;
    }
    Ok(id)
}

/// Removes what `up` created (containers first, then networks); returns what it could not
/// remove. Gone already is fine.
async fn rollback<E: Engine>(
    e: &E,
    containers: &[(String, String)],
    networks: &[(String, String)],
) -> Vec<String> {
    let container_results = join_all(containers.iter().map(|(id, name)| async move {
        match e.remove_container(id).await {
            Err(err) if !err.is_not_found() => Some(format!("container {name}: {err}")),
            _ => None,
        }
    }))
    .await;
    let network_results = join_all(networks.iter().map(|(id, name)| async move {
        match e.remove_network(id).await {
            Err(err) if !err.is_not_found() => Some(format!("network {name}: {err}")),
            _ => None,
        }
    }))
    .await;
    container_results
        .into_iter()
        .chain(network_results)
        .flatten()
        .collect()
}
