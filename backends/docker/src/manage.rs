//! `ps`, `down` and `cleanup`: everything found by label.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bottle_core::backend::{BackendError, BottleStatus, Resource};
use bottle_core::plan::{ResourceKind, Role, LABEL_MANAGED, LABEL_ROLE, LABEL_SLUG};

use crate::{engine_err, error_text, is_not_found, Docker};

/// A labelled resource as listed: its id, slug and what `ps` shows of it.
struct Found {
    id: String,
    slug: String,
    resource: Resource,
}

fn label_filters(slug: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![LABEL_MANAGED.to_owned()];
    if let Some(slug) = slug {
        labels.push(format!("{LABEL_SLUG}={slug}"));
    }
    HashMap::from([("label".to_owned(), labels)])
}

fn role_of(labels: Option<&HashMap<String, String>>) -> Option<Role> {
    labels
        .and_then(|l| l.get(LABEL_ROLE))
        .and_then(|r| Role::parse(r))
}

fn slug_of(labels: Option<&HashMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get(LABEL_SLUG))
        .cloned()
        .unwrap_or_default()
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
            Found {
                id: c.id.clone().unwrap_or_default(),
                slug: slug_of(c.labels.as_ref()),
                resource: Resource {
                    kind: ResourceKind::Container,
                    name,
                    role: role_of(c.labels.as_ref()),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                },
            }
        })
        .collect();
    let networks = networks
        .into_iter()
        .map(|n| Found {
            id: n.id.clone().unwrap_or_default(),
            slug: slug_of(n.labels.as_ref()),
            resource: Resource {
                kind: ResourceKind::Network,
                name: n.name.clone().unwrap_or_default(),
                role: role_of(n.labels.as_ref()),
                state: String::new(),
            },
        })
        .collect();
    Ok((containers, networks))
}

pub(crate) async fn ps(d: &Docker, slug: Option<&str>) -> Result<Vec<BottleStatus>, BackendError> {
    let (containers, networks) = find(d, slug).await?;
    let mut bottles: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for f in containers.into_iter().chain(networks) {
        bottles.entry(f.slug).or_default().push(f.resource);
    }
    Ok(bottles
        .into_iter()
        .map(|(slug, mut resources)| {
            resources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            BottleStatus { slug, resources }
        })
        .collect())
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

    if failures.is_empty() {
        Ok(removed)
    } else {
        let what = slug.map_or("bottle resources".to_owned(), |s| format!("bottle '{s}'"));
        let done = if removed.is_empty() {
            String::new()
        } else {
            format!(
                " (removed: {})",
                removed
                    .iter()
                    .map(|r| format!("{} {}", r.kind, r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(BackendError::Engine {
            action: format!("remove {what}"),
            message: format!("{}{done}", failures.join("; ")),
        })
    }
}
