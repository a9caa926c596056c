//! The same topology as a bottle, as a docker-compose file: what a user would otherwise write.
//!
//! It is generated from the bottle's own [`Plan`], so it has exactly the bottle's networks
//! (internal and egress), containers, images, entrypoints, users, labels, extra hosts and
//! hardening. Files cannot be copied into containers by compose, so they are bind-mounted,
//! read-only, from a staging directory that holds them with the plan's modes and owners (the
//! way a compose user would ship the gate's scripts and key). Compose's file format version
//! 2.4 is used: it has `internal` networks, `init`, `pids_limit` and memory limits for
//! `docker-compose up` without swarm. The file is JSON, which is YAML.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use bottle_core::plan::Plan;
use serde_json::{json, Map, Value};

/// Writes the plan's files under `stage` and returns the compose file's text.
pub fn render(plan: &Plan, stage: &Path) -> anyhow::Result<String> {
    let mut services = Map::new();
    let mut networks = Map::new();
    for n in &plan.networks {
        networks.insert(
            n.role.as_str().to_owned(),
            json!({ "internal": n.internal, "labels": n.labels }),
        );
    }
    let network_key = |name: &str| -> anyhow::Result<String> {
        plan.networks
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.role.as_str().to_owned())
            .with_context(|| format!("network {name} is not in the plan"))
    };
    for c in &plan.containers {
        let mut volumes = Vec::new();
        for f in &c.files {
            let host = stage.join(&c.name).join(f.path.trim_start_matches('/'));
            std::fs::create_dir_all(host.parent().expect("a file has a parent"))?;
            std::fs::write(&host, f.bytes())
                .with_context(|| format!("cannot write {}", host.display()))?;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(f.mode))?;
            std::os::unix::fs::chown(&host, Some(f.uid), Some(f.gid)).with_context(|| {
                format!(
                    "cannot give {} to {}:{} (the compose comparison needs root, as bottle's \
                     file copies do)",
                    host.display(),
                    f.uid,
                    f.gid
                )
            })?;
            volumes.push(Value::String(format!("{}:{}:ro", host.display(), f.path)));
        }
        let mut nets = vec![network_key(&c.network)?];
        for n in &c.connect {
            nets.push(network_key(n)?);
        }
        let mut service = json!({
            "image": c.image.name,
            "container_name": c.name,
            "labels": c.labels,
            "networks": nets,
            "volumes": volumes,
            "init": c.init,
            "cap_drop": c.hardening.cap_drop,
            "pids_limit": c.hardening.pids_limit,
        });
        let s = service.as_object_mut().expect("an object");
        if !c.hardening.cap_add.is_empty() {
            s.insert("cap_add".into(), json!(c.hardening.cap_add));
        }
        if c.hardening.no_new_privileges {
            s.insert("security_opt".into(), json!(["no-new-privileges"]));
        }
        if c.hardening.memory_bytes > 0 {
            s.insert("mem_limit".into(), json!(c.hardening.memory_bytes));
            s.insert("memswap_limit".into(), json!(c.hardening.memory_bytes));
        }
        if let Some(e) = &c.entrypoint {
            s.insert("entrypoint".into(), json!(e));
        }
        if let Some(cmd) = &c.command {
            s.insert("command".into(), json!(cmd));
        }
        if let Some(u) = &c.user {
            s.insert("user".into(), json!(u));
        }
        if !c.env.is_empty() {
            s.insert("environment".into(), json!(c.env));
        }
        if !c.extra_hosts.is_empty() {
            let hosts: Vec<String> = c
                .extra_hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{ip}"))
                .collect();
            s.insert("extra_hosts".into(), json!(hosts));
        }
        // bottle starts the sidecars before the agent.
        if c.role.is_agent() {
            let sidecars: Vec<&str> = plan
                .containers
                .iter()
                .filter(|o| !o.role.is_agent())
                .map(|o| o.role.as_str())
                .collect();
            if !sidecars.is_empty() {
                s.insert("depends_on".into(), json!(sidecars));
            }
        }
        services.insert(c.role.as_str().to_owned(), service);
    }
    let file = json!({ "version": "2.4", "services": services, "networks": networks });
    Ok(serde_json::to_string_pretty(&file)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compose_file_has_the_bottles_topology() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        bottle_test_keys::write_identity_key(&key);
        let text = format!(
            "[bottles.t]\nimage = \"bottle-agent:latest\"\n\n[[bottles.t.git]]\nname = \"app\"\n\
             upstream = \"ssh://git@up.example/srv/git/app.git\"\nidentity_file = {:?}\n\
             known_host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPvBaSXUasEfRLJ8ze2aN9bb1FJy7OTATAbSao5Lgi0\"\n",
            key.display().to_string()
        );
        let path = dir.path().join("bottle.toml");
        let manifest =
            bottle_core::manifest::parse(&path, &text, &bottle_core::manifest::Env::current())
                .unwrap();
        let plan = bottle_core::planner::plan(
            manifest.select(Some("t")).unwrap(),
            &bottle_core::project::Project::new("bench").unwrap(),
        )
        .unwrap();
        let stage = dir.path().join("stage");
        // Giving files to the gate's user needs root; elsewhere only the shape is checked.
        let Ok(text) = render(&plan, &stage) else {
            assert_ne!(own_uid(), 0, "rendering failed as root");
            return;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["networks"]["internal"]["internal"], true);
        assert_eq!(v["networks"]["egress"]["internal"], false);
        assert_eq!(
            v["services"]["gate"]["networks"],
            json!(["internal", "egress"])
        );
        assert_eq!(v["services"]["agent"]["networks"], json!(["internal"]));
        assert_eq!(
            v["services"]["gate"]["container_name"],
            "bottle-bench-t-gate"
        );
        assert_eq!(v["services"]["gate"]["user"], "10001:10001");
        assert_eq!(v["services"]["gate"]["cap_drop"], json!(["ALL"]));
        let volumes = v["services"]["gate"]["volumes"].as_array().unwrap();
        assert!(volumes.iter().any(|m| m
            .as_str()
            .unwrap()
            .ends_with(":/etc/bottle-gate/creds/app.key:ro")));
        assert_eq!(
            std::fs::read(stage.join("bottle-bench-t-gate/etc/bottle-gate/creds/app.key")).unwrap(),
            bottle_test_keys::identity_key().bytes
        );
    }

    fn own_uid() -> u32 {
        std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
    }
}
