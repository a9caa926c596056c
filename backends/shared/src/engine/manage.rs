//! `ps`, `down` and `cleanup`: everything found by label.

use std::collections::{BTreeMap, BTreeSet};

use bottle_core::backend::{
    is_complete_stopped, is_live_state, AuditStream, BackendError, BottleStatus, Resource, Scope,
};
use bottle_core::plan::LABEL_AUDIT;
use futures_util::future::join_all;

use super::{Engine, EngineError, Listed};
use crate::resources::{self, Found};

/// Every labelled container and network in `scope`.
pub(super) async fn find<E: Engine>(
    e: &E,
    scope: &Scope,
) -> Result<(Vec<Found>, Vec<Found>), BackendError> {
    // The engine filters by bottle at most; the project (and the absence of a project
    // label) is checked here.
    let slug = scope.bottle.as_deref();
    let containers = e
        .list_containers(slug)
        .await
        .map_err(|err| err.at("list bottle containers"))?;
    let networks = e
        .list_networks(slug)
        .await
        .map_err(|err| err.at("list bottle networks"))?;

    // The whole selection, checked here too: it must never depend on how an engine version
    // combines several label filters.
    let ours = |l: &Listed| {
        l.labels
            .as_ref()
            .is_some_and(|l| scope.matches(|k| l.get(k).map(String::as_str)))
    };
    let containers = containers
        .into_iter()
        .filter(ours)
        .map(|c| Found::container(c.id, c.name, c.labels.as_ref(), c.state))
        .collect();
    let networks = networks
        .into_iter()
        .filter(ours)
        .map(|n| Found::network(n.id, n.name, n.labels.as_ref()))
        .collect();
    Ok((containers, networks))
}

/// [`Backend::ps`](bottle_core::backend::Backend::ps): resources grouped by bottle, each
/// container with its restart count (one inspection each, all at once). A container gone
/// between the list and its inspection has no count; that is no error.
pub async fn ps<E: Engine>(e: &E, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
    let (mut containers, networks) = find(e, scope).await?;
    let infos = join_all(containers.iter().map(|c| e.inspect_container(&c.id))).await;
    for (c, info) in containers.iter_mut().zip(infos) {
        c.resource.restarts = info.ok().map(|i| i.restarts);
    }
    Ok(resources::group(containers.into_iter().chain(networks)))
}

/// [`Backend::audit_logs`](bottle_core::backend::Backend::audit_logs): the standard
/// output of each of the bottle's containers labelled [`LABEL_AUDIT`].
pub async fn audit_logs<E: Engine>(e: &E, scope: &Scope) -> Result<Vec<AuditStream>, BackendError> {
    let containers = e
        .list_containers(scope.bottle.as_deref())
        .await
        .map_err(|err| err.at("list bottle containers"))?;
    let mut out = Vec::new();
    for c in containers {
        let Some(source) = c.labels.as_ref().and_then(|l| {
            scope
                .matches(|k| l.get(k).map(String::as_str))
                .then(|| l.get(LABEL_AUDIT).cloned())
                .flatten()
        }) else {
            continue;
        };
        let bytes = e
            .stdout_log(&c.id)
            .await
            .map_err(|err| err.at(format!("read the log of container {}", c.name)))?;
        out.push(AuditStream {
            container: c.name,
            source,
            bytes,
        });
    }
    out.sort_by(|a, b| a.container.cmp(&b.container));
    Ok(out)
}

/// [`Backend::down`](bottle_core::backend::Backend::down): [`cleanup`] of one bottle.
pub async fn down<E: Engine>(e: &E, scope: &Scope) -> Result<(), BackendError> {
    cleanup(e, scope).await.map(|_| ())
}

/// Removes a network. Containers bottle did not create (a user's debugging container, a
/// test's upstream) may still be attached: they are disconnected, not removed (an engine's
/// own `force` may remove them), and the removal is tried again.
async fn remove_network<E: Engine>(e: &E, id: &str) -> Result<(), EngineError> {
    match e.remove_network(id).await {
        Err(err) if !err.is_not_found() => {
            let attached = e.network_containers(id).await?;
            if attached.is_empty() {
                return Err(err);
            }
            for container in &attached {
                match e.disconnect(id, container).await {
                    Err(err) if !err.is_not_found() => return Err(err),
                    _ => {}
                }
            }
            e.remove_network(id).await
        }
        other => other,
    }
}

/// [`Backend::cleanup`](bottle_core::backend::Backend::cleanup): force-removes every
/// labelled container, then every labelled network, in `scope` (with
/// [`Scope::stopped_only`], none of a bottle that has a live container, and with
/// [`Scope::keep_complete`] none of a complete stopped one); returns what was removed.
/// Already-gone resources are not an error (nor reported as removed).
pub async fn cleanup<E: Engine>(e: &E, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
    let (mut containers, mut networks) = find(e, scope).await?;
    if scope.stopped_only {
        let mut by_bottle: BTreeMap<(Option<String>, String), Vec<&Resource>> = BTreeMap::new();
        for c in &containers {
            by_bottle
                .entry((c.project.clone(), c.slug.clone()))
                .or_default()
                .push(&c.resource);
        }
        let kept: BTreeSet<(Option<String>, String)> = by_bottle
            .into_iter()
            .filter(|(_, rs)| {
                rs.iter().any(|r| is_live_state(&r.state))
                    || (scope.keep_complete && is_complete_stopped(rs.iter().copied()))
            })
            .map(|(k, _)| k)
            .collect();
        let keep = |f: &Found| kept.contains(&(f.project.clone(), f.slug.clone()));
        containers.retain(|f| !keep(f));
        networks.retain(|f| !keep(f));
    }
    let mut removed = Vec::new();
    let mut failures = Vec::new();

    let mut tally = |results: Vec<(Found, Result<(), EngineError>)>| {
        for (f, r) in results {
            match r {
                Ok(()) => removed.push(f.resource),
                Err(err) if err.is_not_found() => {}
                Err(err) => {
                    failures.push(format!("{} {}: {err}", f.resource.kind, f.resource.name))
                }
            }
        }
    };
    tally(
        join_all(containers.into_iter().map(|f| async move {
            let r = e.remove_container(&f.id).await;
            (f, r)
        }))
        .await,
    );
    tally(
        join_all(networks.into_iter().map(|f| async move {
            let r = remove_network(e, &f.id).await;
            (f, r)
        }))
        .await,
    );

    resources::removal_outcome(scope, removed, failures)
}
