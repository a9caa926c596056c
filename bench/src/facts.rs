//! Gate facts: memory, CPU time, image size.

use serde_json::json;
use serde_json::Value;

use crate::cmd::docker;
use crate::{cmd, STEP};

pub(crate) fn gate_memory(gate: &str) -> Value {
    let stats = cmd::ok(
        &mut docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", gate]),
        STEP,
    )
    .unwrap_or_else(|e| format!("unknown: {e:#}"));
    let id = cmd::ok(&mut docker(["inspect", "-f", "{{.Id}}", gate]), STEP).unwrap_or_default();
    let read = |p: String| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let v1 = format!("/sys/fs/cgroup/memory/docker/{id}");
    let (usage, stat) = match read(format!("{v1}/memory.usage_in_bytes")) {
        Some(u) => (Some(u), read(format!("{v1}/memory.stat"))),
        None => {
            let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope");
            (
                read(format!("{v2}/memory.current")),
                read(format!("{v2}/memory.stat")),
            )
        }
    };
    let pick = |key: &str| -> Option<u64> {
        stat.as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let processes =
        cmd::ok(&mut docker(["top", gate, "-o", "pid,rss,args"]), STEP).unwrap_or_default();
    json!({
        "docker_stats": stats,
        "cgroup_usage_bytes": usage.and_then(|u| u.parse::<u64>().ok()),
        "cgroup_rss_bytes": pick("total_rss").or_else(|| pick("anon")),
        "cgroup_cache_bytes": pick("total_cache").or_else(|| pick("file")),
        "processes": processes.lines().collect::<Vec<_>>(),
    })
}

/// CPU time a container has used so far, in seconds, from its cgroup (v1 or v2).
pub(crate) fn cpu_seconds(container: &str) -> Option<f64> {
    let id = cmd::ok(&mut docker(["inspect", "-f", "{{.Id}}", container]), STEP).ok()?;
    let v1 = format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage");
    if let Ok(ns) = std::fs::read_to_string(v1) {
        return ns.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
    }
    let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat");
    let stat = std::fs::read_to_string(v2).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<f64>().ok())
        .map(|us| us / 1e6)
}

pub(crate) fn image_size(image: &str) -> Option<u64> {
    cmd::ok(
        &mut docker(["image", "inspect", "-f", "{{.Size}}", image]),
        STEP,
    )
    .ok()?
    .parse()
    .ok()
}
