//! `ps`, `down` and `cleanup`: everything found by label.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bottle_backend_shared::resources::{self, Found};
use bottle_core::backend::{BackendError, BottleStatus, Resource};

use crate::{engine_err, error_text, is_not_found, Docker};

fn label_filters(slug: Option<&str>) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), resources::label_filters(slug))])
}

/// Every labelled container and network (of `slug`, or of every bottle).
async fn find(d: &Docker, slug: Option<&str>) -> Result<(Vec<Found>, Vec<Found>), BackendError> {
    let containers = d
        .client
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filters(slug)),
            ..Default::default()
        }))
        .await
        .map_err(|e| engine_err("list bottle containers", &e))?;
    let networks = d
        .client
        .list_networks(Some(ListNetworksOptions {
            filters: Some(label_filters(slug)),
        }))
        .await
        .map_err(|e| engine_err("list bottle networks", &e))?;

    let containers = containers
        .into_iter()
        .map(|c| {
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            Found::container(
                c.id.clone().unwrap_or_default(),
                name,
                c.labels.as_ref(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let networks = networks
        .into_iter()
        .map(|n| {
            Found::network(
                n.id.clone().unwrap_or_default(),
                n.name.clone().unwrap_or_default(),
                n.labels.as_ref(),
            )
        })
        .collect();
    Ok((containers, networks))
}

pub(crate) async fn ps(d: &Docker, slug: Option<&str>) -> Result<Vec<BottleStatus>, BackendError> {
    let (containers, networks) = find(d, slug).await?;
    Ok(resources::group(containers.into_iter().chain(networks)))
}

/// Removes a network. Containers bottle did not create (a user's debugging container, a
/// test's upstream) may still be attached: they are disconnected, not removed, and the
/// removal is tried again.
async fn remove_network(d: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    match d.client.remove_network(id).await {
        Err(e) if !is_not_found(&e) => {
            let attached = d
                .client
                .inspect_network(id, None)
                .await?
                .containers
                .unwrap_or_default();
            if attached.is_empty() {
                return Err(e);
            }
            for container in attached.keys() {
                let request = bollard::models::NetworkDisconnectRequest {
                    container: container.clone(),
                    force: Some(true),
                };
                match d.client.disconnect_network(id, request).await {
                    Err(e) if !is_not_found(&e) => return Err(e),
                    _ => {}
                }
            }
            d.client.remove_network(id).await
        }
        other => other,
    }
}

/// Force-removes every labelled container, then every labelled network, of `slug` or of
/// every bottle; returns what was removed. Already-gone resources are not an error.
pub(crate) async fn remove_labelled(
    d: &Docker,
    slug: Option<&str>,
) -> Result<Vec<Resource>, BackendError> {
    let (containers, networks) = find(d, slug).await?;
    let mut removed = Vec::new();
    let mut failures = Vec::new();

    let results = futures_util::future::join_all(containers.into_iter().map(|f| async move {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let r = d.client.remove_container(&f.id, Some(options)).await;
        (f, r)
    }))
    .await;
    for (f, r) in results {
        match r {
            Ok(()) => removed.push(f.resource),
            Err(e) if is_not_found(&e) => {}
            Err(e) => failures.push(format!("container {}: {}", f.resource.name, error_text(&e))),
        }
    }

    let results = futures_util::future::join_all(networks.into_iter().map(|f| async move {
        let r = remove_network(d, &f.id).await;
        (f, r)
    }))
    .await;
    for (f, r) in results {
        match r {
            Ok(()) => removed.push(f.resource),
            Err(e) if is_not_found(&e) => {}
            Err(e) => failures.push(format!("network {}: {}", f.resource.name, error_text(&e))),
        }
    }

    resources::removal_outcome(slug, removed, failures)
}
