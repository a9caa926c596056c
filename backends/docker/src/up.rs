//! `up`: leftover probe, images, networks, containers, rollback.

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListNetworksOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use bottle_core::backend::{BackendError, UpOptions};
use bottle_core::plan::{ContainerSpec, NetworkSpec, Plan, ResourceKind};
use futures_util::stream::{FuturesOrdered, StreamExt};

use bottle_backend_shared::archive;
use bottle_backend_shared::resources::{self, AfterFailure};

use crate::{engine_err, error_text, is_not_found, Docker};

/// What this `up` created, by engine id, in creation order.
#[derive(Default)]
struct Created {
    networks: Mutex<Vec<(String, String)>>,
    containers: Mutex<Vec<(String, String)>>,
}

pub(crate) async fn up(d: &Docker, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
    probe_leftovers(d, plan).await?;
    d.ensure_plan_images(plan).await?;

    let created = Created::default();
    let Err(err) = apply(d, plan, &created).await else {
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
        AfterFailure::RolledBack(rollback(d, &containers, &networks).await)
    };
    Err(resources::failed_up(err, &plan.slug, &after))
}

/// Fails with [`BackendError::Leftovers`] when any name the plan would create exists.
async fn probe_leftovers(d: &Docker, plan: &Plan) -> Result<(), BackendError> {
    let probes = plan.resource_names().map(|(kind, name)| async move {
        let found = match kind {
            ResourceKind::Container => d.client.inspect_container(name, None).await.map(|_| ()),
            ResourceKind::Network => d.client.inspect_network(name, None).await.map(|_| ()),
        };
        match found {
            Ok(()) => Ok(Some((kind, name.to_owned()))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_err(format!("look for {kind} {name}"), &e)),
        }
    });
    let mut found = Vec::new();
    for r in futures_util::future::join_all(probes).await {
        if let Some(f) = r? {
            found.push(f);
        }
    }
    resources::leftovers(&plan.slug, found)
}

async fn apply(d: &Docker, plan: &Plan, created: &Created) -> Result<(), BackendError> {
    // Networks, all at once; every request is awaited so each created id is recorded.
    let results =
        futures_util::future::join_all(plan.networks.iter().map(|n| create_network(d, n, created)))
            .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;

    // Containers: create, copy and connect concurrently; start in plan order.
    let mut prepared: FuturesOrdered<_> = plan
        .containers
        .iter()
        .map(|c| async move { prepare_container(d, c, created).await.map(|id| (c, id)) })
        .collect();
    let mut first_err = None;
    while let Some(result) = prepared.next().await {
        if first_err.is_some() {
            continue; // drain: let every in-flight step finish and record what it created
        }
        match result {
            Ok((spec, id)) => {
                if let Err(e) = d.client.start_container(&id, None).await {
                    first_err = Some(engine_err(format!("start container {}", spec.name), &e));
                }
            }
            Err(e) => first_err = Some(e),
        }
    }
    first_err.map_or(Ok(()), Err)
}

async fn create_network(
    d: &Docker,
    n: &NetworkSpec,
    created: &Created,
) -> Result<(), BackendError> {
    let action = || format!("create network {}", n.name);
    let request = NetworkCreateRequest {
        name: n.name.clone(),
        driver: Some("bridge".to_owned()),
        internal: Some(n.internal),
        labels: Some(n.labels.clone().into_iter().collect()),
        ..Default::default()
    };
    let response = d
        .client
        .create_network(request)
        .await
        .map_err(|e| engine_err(action(), &e))?;
    let id = response.id;
    created
        .networks
        .lock()
        .expect("lock")
        .push((id.clone(), n.name.clone()));

    // API 1.41 creates a second network with the same name unless told not to; make sure
    // ours is the only one.
    let filters = HashMap::from([("name".to_owned(), vec![n.name.clone()])]);
    let list = d
        .client
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| engine_err(format!("list networks named {}", n.name), &e))?;
    let twins = list
        .iter()
        .filter(|x| x.name.as_deref() == Some(n.name.as_str()) && x.id.as_deref() != Some(&id))
        .count();
    if twins > 0 {
        return Err(BackendError::Engine {
            action: action(),
            message: format!(
                "another network named {} appeared meanwhile (is another `bottle up` of this bottle running?)",
                n.name
            ),
        });
    }
    Ok(())
}

/// Creates a container on its network, copies its files in and connects its other
/// networks; returns its id.
async fn prepare_container(
    d: &Docker,
    c: &ContainerSpec,
    created: &Created,
) -> Result<String, BackendError> {
    let h = &c.hardening;
    let mut security_opt = Vec::new();
    if h.no_new_privileges {
        security_opt.push("no-new-privileges".to_owned());
    }
    let body = ContainerCreateBody {
        image: Some(c.image.name.clone()),
        entrypoint: c.entrypoint.clone(),
        cmd: c.command.clone(),
        user: c.user.clone(),
        env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(c.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(c.network.clone()),
            cap_drop: Some(h.cap_drop.clone()),
            cap_add: Some(h.cap_add.clone()),
            security_opt: Some(security_opt),
            pids_limit: Some(h.pids_limit),
            memory: Some(h.memory_bytes),
            // Swap limit = memory limit: no swap on top of the memory limit.
            memory_swap: Some(h.memory_bytes),
            init: Some(c.init),
            extra_hosts: Some(
                c.extra_hosts
                    .iter()
                    .map(|(host, ip)| format!("{host}:{ip}"))
                    .collect(),
            ),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                c.network.clone(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    };
    let response = d
        .client
        .create_container(
            Some(CreateContainerOptions {
                name: Some(c.name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| engine_err(format!("create container {}", c.name), &e))?;
    let id = response.id;
    created
        .containers
        .lock()
        .expect("lock")
        .push((id.clone(), c.name.clone()));

    if !c.files.is_empty() {
        let action = || format!("copy files into container {}", c.name);
        let tar = archive::container_files(&c.files).map_err(|e| BackendError::Engine {
            action: action(),
            message: format!("cannot build the archive: {e}"),
        })?;
        d.client
            .upload_to_container(
                &id,
                Some(UploadToContainerOptions {
                    path: "/".to_owned(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(|e| engine_err(action(), &e))?;
    }

    for network in &c.connect {
        d.client
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(|e| {
                engine_err(
                    format!("connect container {} to network {network}", c.name),
                    &e,
                )
            })?;
    }
    Ok(id)
}

/// Removes what `up` created (containers first, then networks); returns what it could not
/// remove.
async fn rollback(
    d: &Docker,
    containers: &[(String, String)],
    networks: &[(String, String)],
) -> Vec<String> {
    let force = Some(RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    });
    let container_results = futures_util::future::join_all(containers.iter().map(|(id, name)| {
        let force = force.clone();
        async move {
            match d.client.remove_container(id, force).await {
                Ok(()) => None,
                Err(e) if is_not_found(&e) => None,
                Err(e) => Some(format!("container {name}: {}", error_text(&e))),
            }
        }
    }))
    .await;
    let network_results =
        futures_util::future::join_all(networks.iter().map(|(id, name)| async move {
            match d.client.remove_network(id).await {
                Ok(()) => None,
                Err(e) if is_not_found(&e) => None,
                Err(e) => Some(format!("network {name}: {}", error_text(&e))),
            }
        }))
        .await;
    container_results
        .into_iter()
        .chain(network_results)
        .flatten()
        .collect()
}
