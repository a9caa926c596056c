//! `ps`, `down` and `cleanup`: everything found by label.

use bottle_backend_shared::resources::{self, Found};
use bottle_core::backend::{BackendError, BottleStatus, Resource};
use bottle_core::plan::{LABEL_MANAGED, LABEL_SLUG};
use podman_api::opts::{
    ContainerListFilter, ContainerListOpts, NetworkListFilter, NetworkListOpts,
};

use crate::up::remove_container;
use crate::{engine_err, error_text, is_not_found, Podman};

/// Every labelled container and network (of `slug`, or of every bottle).
async fn find(p: &Podman, slug: Option<&str>) -> Result<(Vec<Found>, Vec<Found>), BackendError> {
    let mut container_filters = vec![ContainerListFilter::LabelKey(LABEL_MANAGED.to_owned())];
    let mut network_filters = vec![NetworkListFilter::LabelKey(LABEL_MANAGED.to_owned())];
    if let Some(slug) = slug {
        container_filters.push(ContainerListFilter::LabelKeyVal(
            LABEL_SLUG.to_owned(),
            slug.to_owned(),
        ));
        network_filters.push(NetworkListFilter::LabelKeyVal(
            LABEL_SLUG.to_owned(),
            slug.to_owned(),
        ));
    }
    let containers = p
        .api
        .containers()
        .list(
            &ContainerListOpts::builder()
                .all(true)
                .filter(container_filters)
                .build(),
        )
        .await
        .map_err(|e| engine_err("list bottle containers", &e))?;
    let networks = p
        .api
        .networks()
        .list(&NetworkListOpts::builder().filter(network_filters).build())
        .await
        .map_err(|e| engine_err("list bottle networks", &e))?;

    // The same selection as resources::label_filters, checked here too: it must never
    // depend on how an engine version combines several label filters.
    let ours = |labels: Option<&std::collections::HashMap<String, String>>| {
        labels.is_some_and(|l| {
            l.contains_key(LABEL_MANAGED)
                && slug.is_none_or(|s| l.get(LABEL_SLUG).map(String::as_str) == Some(s))
        })
    };
    let containers = containers
        .into_iter()
        .filter(|c| ours(c.labels.as_ref()))
        .map(|c| {
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .cloned()
                .unwrap_or_default();
            Found::container(
                c.id.clone().unwrap_or_default(),
                name,
                c.labels.as_ref(),
                c.state.clone().unwrap_or_default(),
            )
        })
        .collect();
    let networks = networks
        .into_iter()
        .filter(|n| ours(n.labels.as_ref()))
        .map(|n| {
            let name = n.name.clone().unwrap_or_default();
            Found::network(
                n.id.clone().unwrap_or(name.clone()),
                name,
                n.labels.as_ref(),
            )
        })
        .collect();
    Ok((containers, networks))
}

pub(crate) async fn ps(p: &Podman, slug: Option<&str>) -> Result<Vec<BottleStatus>, BackendError> {
    let (containers, networks) = find(p, slug).await?;
    Ok(resources::group(containers.into_iter().chain(networks)))
}

/// Removes a network. Containers bottle did not create (a user's debugging container, a
/// test's upstream) may still be attached: they are disconnected, not removed (podman's
/// own `force` would remove them), and the removal is tried again.
async fn remove_network(p: &Podman, name: &str) -> Result<(), podman_api::Error> {
    let network = p.api.networks().get(name);
    match network.delete().await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            let attached = p
                .api
                .containers()
                .list(
                    &ContainerListOpts::builder()
                        .all(true)
                        .filter([ContainerListFilter::Network(name.to_owned())])
                        .build(),
                )
                .await?;
            if attached.is_empty() {
                return Err(e);
            }
            for c in attached {
                let id = c.id.unwrap_or_default();
                match p.api.containers().get(id).disconnect(name, true).await {
                    Err(e) if !is_not_found(&e) => return Err(e),
                    _ => {}
                }
            }
            match network.delete().await {
                Err(e) if !is_not_found(&e) => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Force-removes every labelled container, then every labelled network, of `slug` or of
/// every bottle; returns what was removed. Already-gone resources are not an error.
pub(crate) async fn remove_labelled(
    p: &Podman,
    slug: Option<&str>,
) -> Result<Vec<Resource>, BackendError> {
    let (containers, networks) = find(p, slug).await?;
    let mut removed = Vec::new();
    let mut failures = Vec::new();

    let results = futures_util::future::join_all(containers.into_iter().map(|f| async move {
        let r = remove_container(p, &f.id).await;
        (f, r)
    }))
    .await;
    for (f, r) in results {
        match r {
            Ok(()) => removed.push(f.resource),
            Err(e) => failures.push(format!("container {}: {}", f.resource.name, error_text(&e))),
        }
    }

    // By name: the container filter `network=` and disconnect take names.
    let results = futures_util::future::join_all(networks.into_iter().map(|f| async move {
        let r = remove_network(p, &f.resource.name).await;
        (f, r)
    }))
    .await;
    for (f, r) in results {
        match r {
            Ok(()) => removed.push(f.resource),
            Err(e) => failures.push(format!("network {}: {}", f.resource.name, error_text(&e))),
        }
    }

    resources::removal_outcome(slug, removed, failures)
}
