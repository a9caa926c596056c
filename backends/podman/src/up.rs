//! `up`: leftover probe, images, networks, containers, rollback.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bottle_backend_shared::archive;
use bottle_backend_shared::resources::{self, AfterFailure};
use bottle_core::backend::{BackendError, UpOptions};
use bottle_core::plan::{ContainerSpec, NetworkSpec, Plan, ResourceKind};
use futures_util::stream::{FuturesOrdered, StreamExt};
use podman_api::opts::{ContainerDeleteOpts, NetworkConnectOpts, NetworkCreateOpts};
use serde_json::json;

use crate::{engine_err, error_text, is_not_found, raw_err, Podman};

/// What this `up` created, by engine id, in creation order.
#[derive(Default)]
struct Created {
    networks: Mutex<Vec<(String, String)>>,
    containers: Mutex<Vec<(String, String)>>,
}

pub(crate) async fn up(p: &Podman, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
    probe_leftovers(p, plan).await?;
    p.ensure_plan_images(plan).await?;
    if !p.limits_enforced() {
        p.progress(&format!(
            "bottle: warning: rootless podman on cgroups {} cannot enforce the pids and memory limits of bottle '{}' (podman ignores them); use cgroups v2 with delegation, or rootful podman, to have them",
            p.cgroup_version(),
            plan.slug
        ));
    }

    let created = Created::default();
    let Err(err) = apply(p, plan, &created).await else {
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
        AfterFailure::RolledBack(rollback(p, &containers, &networks).await)
    };
    Err(resources::failed_up(err, &plan.slug, &after))
}

/// Fails with [`BackendError::Leftovers`] when any name the plan would create exists.
async fn probe_leftovers(p: &Podman, plan: &Plan) -> Result<(), BackendError> {
    let probes = plan.resource_names().map(|(kind, name)| async move {
        let found = match kind {
            ResourceKind::Container => p.api.containers().get(name).exists().await,
            ResourceKind::Network => p.api.networks().get(name).exists().await,
        };
        match found {
            Ok(true) => Ok(Some((kind, name.to_owned()))),
            Ok(false) => Ok(None),
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

async fn apply(p: &Podman, plan: &Plan, created: &Created) -> Result<(), BackendError> {
    // Networks, all at once; every request is awaited so each created id is recorded.
    // (Podman refuses a second network of the same name: no twin check is needed.)
    let results =
        futures_util::future::join_all(plan.networks.iter().map(|n| create_network(p, n, created)))
            .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;

    // Containers: create, copy and connect concurrently; start in plan order.
    let mut prepared: FuturesOrdered<_> = plan
        .containers
        .iter()
        .map(|c| async move { prepare_container(p, c, created).await.map(|id| (c, id)) })
        .collect();
    let mut first_err = None;
    while let Some(result) = prepared.next().await {
        if first_err.is_some() {
            continue; // drain: let every in-flight step finish and record what it created
        }
        match result {
            Ok((spec, id)) => {
                if let Err(e) = p.api.containers().get(id.as_str()).start(None).await {
                    first_err = Some(engine_err(format!("start container {}", spec.name), &e));
                }
            }
            Err(e) => first_err = Some(e),
        }
    }
    first_err.map_or(Ok(()), Err)
}

async fn create_network(
    p: &Podman,
    n: &NetworkSpec,
    created: &Created,
) -> Result<(), BackendError> {
    let opts = NetworkCreateOpts::builder()
        .name(&n.name)
        .driver("bridge")
        .internal(n.internal)
        // The API's default is no DNS (the CLI's is DNS): the bottle's containers find
        // each other by name, as on docker's user networks.
        .dns_enabled(true)
        .labels(n.labels.clone())
        .build();
    // Podman 4.3 looks for a free subnet by listing the host's interfaces and then their
    // addresses; a bridge that goes away in between (another bottle's `down`) fails the
    // create with "route ip+net: no such network interface" (seen with rootless podman
    // under concurrent tests). Nothing was created then: try again, a few times.
    let mut attempt = 0;
    let network = loop {
        attempt += 1;
        match p.api.networks().create(&opts).await {
            Ok(network) => break network,
            Err(e) if attempt < 4 && error_text(&e).contains("no such network interface") => {
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(engine_err(format!("create network {}", n.name), &e)),
        }
    };
    let id = network.id.unwrap_or_else(|| n.name.clone());
    created
        .networks
        .lock()
        .expect("lock")
        .push((id, n.name.clone()));
    Ok(())
}

/// The libpod SpecGenerator of a container: exactly the plan, nothing added.
pub(crate) fn spec_generator(c: &ContainerSpec) -> serde_json::Value {
    let h = &c.hardening;
    let mut spec = json!({
        "name": c.name,
        "image": c.image.name,
        "env": c.env,
        "labels": c.labels,
        "netns": { "nsmode": "bridge" },
        "Networks": BTreeMap::from([(c.network.clone(), json!({}))]),
        "hostadd": c.extra_hosts.iter().map(|(host, ip)| format!("{host}:{ip}")).collect::<Vec<_>>(),
        "cap_drop": h.cap_drop,
        "cap_add": h.cap_add,
        "no_new_privileges": h.no_new_privileges,
        "resource_limits": {
            "pids": { "limit": h.pids_limit },
            // Swap limit = memory limit: no swap on top of the memory limit.
            "memory": { "limit": h.memory_bytes, "swap": h.memory_bytes },
        },
        "init": c.init,
    });
    let obj = spec.as_object_mut().expect("object");
    if let Some(entrypoint) = &c.entrypoint {
        obj.insert("entrypoint".into(), json!(entrypoint));
    }
    if let Some(command) = &c.command {
        obj.insert("command".into(), json!(command));
    }
    if let Some(user) = &c.user {
        obj.insert("user".into(), json!(user));
    }
    spec
}

/// Creates a container on its network, copies its files in and connects its other
/// networks; returns its id.
async fn prepare_container(
    p: &Podman,
    c: &ContainerSpec,
    created: &Created,
) -> Result<String, BackendError> {
    let action = || format!("create container {}", c.name);
    let answer = p
        .raw
        .json(
            hyper::Method::POST,
            "/libpod/containers/create",
            Some(&spec_generator(c)),
        )
        .await
        .map_err(|e| raw_err(action(), &e))?;
    let id = answer
        .get("Id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| BackendError::Engine {
            action: action(),
            message: format!("podman's answer has no container id: {answer}"),
        })?
        .to_owned();
    created
        .containers
        .lock()
        .expect("lock")
        .push((id.clone(), c.name.clone()));
    if let Some(warnings) = answer.get("Warnings").and_then(|w| w.as_array()) {
        for w in warnings.iter().filter_map(|w| w.as_str()) {
            p.progress(&format!("bottle: podman: {}: {w}", c.name));
        }
    }

    let container = p.api.containers().get(id.as_str());
    if !c.files.is_empty() {
        let action = || format!("copy files into container {}", c.name);
        let tar = archive::container_files(&c.files).map_err(|e| BackendError::Engine {
            action: action(),
            message: format!("cannot build the archive: {e}"),
        })?;
        // The Docker-compatible archive endpoint: it keeps each entry's uid/gid, where
        // libpod's would chown everything to the container's user.
        container
            .copy_to("/", tar.into())
            .await
            .map_err(|e| engine_err(action(), &e))?;
    }

    for network in &c.connect {
        container
            .connect(network.as_str(), &NetworkConnectOpts::default())
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

/// Force-removes a container (and its anonymous volumes); gone already is fine.
pub(crate) async fn remove_container(p: &Podman, id: &str) -> Result<(), podman_api::Error> {
    let opts = ContainerDeleteOpts::builder()
        .force(true)
        .volumes(true)
        .build();
    match p.api.containers().get(id).delete(&opts).await {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

/// Removes what `up` created (containers first, then networks); returns what it could not
/// remove.
async fn rollback(
    p: &Podman,
    containers: &[(String, String)],
    networks: &[(String, String)],
) -> Vec<String> {
    let container_results =
        futures_util::future::join_all(containers.iter().map(|(id, name)| async move {
            remove_container(p, id)
                .await
                .err()
                .map(|e| format!("container {name}: {}", error_text(&e)))
        }))
        .await;
    let network_results =
        futures_util::future::join_all(networks.iter().map(|(id, name)| async move {
            match p.api.networks().get(id.as_str()).delete().await {
                Ok(_) => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_core::plan::{labels, resource_name, Hardening, ImageRef, Role};

    #[test]
    fn the_spec_says_exactly_what_the_plan_says() {
        let c = ContainerSpec {
            name: resource_name("s", Role::Agent),
            role: Role::Agent,
            image: ImageRef {
                name: "img:1".into(),
                builtin: None,
            },
            entrypoint: None,
            command: Some(vec!["sleep".into(), "1".into()]),
            user: Some("1000:1000".into()),
            env: BTreeMap::from([("A".into(), "1".into())]),
            labels: labels("s", Role::Agent),
            network: "net".into(),
            connect: vec![],
            extra_hosts: BTreeMap::from([("v6".into(), "2001:db8::1".parse().unwrap())]),
            hosts_of: Vec::new(),
            files: vec![],
            init: true,
            hardening: Hardening {
                cap_drop: vec!["ALL".into()],
                cap_add: vec![],
                no_new_privileges: true,
                pids_limit: 64,
                memory_bytes: 1 << 20,
            },
        };
        let s = spec_generator(&c);
        // The key podman reads; podman-api's builder writes "no_new_privilages".
        assert_eq!(s["no_new_privileges"], json!(true));
        assert_eq!(s["resource_limits"]["memory"]["swap"], json!(1 << 20));
        assert_eq!(s["resource_limits"]["pids"]["limit"], json!(64));
        assert_eq!(s["hostadd"], json!(["v6:2001:db8::1"]));
        assert_eq!(s["Networks"], json!({"net": {}}));
        assert!(s.get("entrypoint").is_none());
        assert_eq!(s["user"], json!("1000:1000"));
    }
}
