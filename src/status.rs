//! `bottle status`: a bottle's containers as the engine sees them (state, health, uptime,
//! restarts), the gate's mirrors with their last refresh, and what to do when the bottle is
//! stopped, partly stopped or incomplete.
//!
//! # Where the last refresh comes from
//!
//! The gate writes one audit line per refresh of a mirror from its upstream (`fetch allow
//! refreshed`, path = the repository's name) and one per refused fetch (`fetch deny
//! upstream-unreachable`): the newest of each per repository is what status shows. That is
//! the gate's own word on what it did, read back through the engine's logs as `bottle logs`
//! reads it, and it needs no exec into the gate (the mirror's `FETCH_HEAD` is not written:
//! the gate fetches with `--no-write-fetch-head`). A mirror that no fetch refreshed since the
//! gate's log began shows "not refreshed yet".

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bottle_core::backend::{Backend, ContainerStatus, Scope};
use bottle_core::plan::Plan;
use bottle_proxy_config::{AuditRecord, Decision, Source};
use serde::Serialize;

/// The bottle as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overall {
    /// No container of it exists.
    Absent,
    /// Every container runs.
    Running,
    /// None runs.
    Stopped,
    /// Some run, some do not.
    PartlyRunning,
    /// Some container of the plan is missing.
    Incomplete,
}

/// A gate mirror's refreshes, as the gate's audit lines tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// The repository's name (its `name` in the manifest).
    pub repo: String,
    /// When the gate last refreshed it from its upstream.
    pub last_refresh: Option<String>,
    /// When a refresh last failed (the fetch was refused), and why.
    pub last_failure: Option<String>,
    /// The failure's detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_detail: Option<String>,
}

/// What `bottle status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The bottle.
    pub bottle: String,
    /// Its state as a whole.
    pub state: Overall,
    /// Its containers.
    pub containers: Vec<ContainerStatus>,
    /// Containers the plan has that the engine does not (known only with the manifest).
    pub missing: Vec<String>,
    /// The gate's mirrors.
    pub mirrors: Vec<Mirror>,
    /// What to do, when something is not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Gathers the status of bottle `slug` of `project`; `plan`, when the manifest has the
/// bottle, names its containers (to find missing ones) and its mirrors.
pub async fn gather(
    backend: &dyn Backend,
    project: &str,
    slug: &str,
    plan: Option<&Plan>,
    repos: &[String],
) -> anyhow::Result<Status> {
    let scope = Scope::bottle(project, slug);
    let containers = backend.status(&scope).await?;
    let missing: Vec<String> = plan
        .map(|p| {
            p.containers
                .iter()
                .filter(|c| !containers.iter().any(|f| f.name == c.name))
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    // With the plan, only its containers count: others may carry the bottle's labels (a
    // test's upstream) without being part of it.
    let counted: Vec<&ContainerStatus> = containers
        .iter()
        .filter(|c| plan.is_none_or(|p| p.containers.iter().any(|pc| pc.name == c.name)))
        .collect();
    let running = counted.iter().filter(|c| c.state == "running").count();
    let state = if counted.is_empty() {
        Overall::Absent
    } else if !missing.is_empty() {
        Overall::Incomplete
    } else if running == counted.len() {
        Overall::Running
    } else if running == 0 {
        Overall::Stopped
    } else {
        Overall::PartlyRunning
    };
    let hint = match state {
        Overall::Running => None,
        Overall::Absent => Some(format!("`bottle up {slug}` creates and starts it")),
        Overall::Stopped => Some(format!(
            "`bottle start {slug}` (or `bottle up {slug}`) starts it again, its mirrors and audit log kept"
        )),
        Overall::PartlyRunning => Some(format!(
            "some containers stopped (the engine restarted, or `docker stop`): `bottle start {slug}` (or `bottle up {slug}`) starts them again"
        )),
        Overall::Incomplete => Some(format!(
            "containers are missing: `bottle down {slug}`, then `bottle up {slug}` (the gate fetches its mirrors again)"
        )),
    };
    // The audit log is only read when there is a gate to have written it.
    let mirrors = if containers.is_empty() {
        Vec::new()
    } else {
        let streams = backend.audit_logs(&scope).await.unwrap_or_default();
        mirrors(&crate::logs::merge(&streams), repos)
    };
    Ok(Status {
        bottle: slug.to_owned(),
        state,
        containers,
        missing,
        mirrors,
        hint,
    })
}

/// The mirrors of `repos` (and of any other repository the records name), each with its
/// newest refresh and newest refused fetch among the gate's `records`.
pub fn mirrors(records: &[AuditRecord], repos: &[String]) -> Vec<Mirror> {
    let mut out: BTreeMap<String, Mirror> = repos
        .iter()
        .map(|r| {
            (
                r.clone(),
                Mirror {
                    repo: r.clone(),
                    ..Mirror::default()
                },
            )
        })
        .collect();
    for r in records {
        if r.source != Source::Gate || r.method.as_deref() != Some("fetch") {
            continue;
        }
        let Some(repo) = &r.path else { continue };
        let m = out.entry(repo.clone()).or_insert_with(|| Mirror {
            repo: repo.clone(),
            ..Mirror::default()
        });
        // Records come merged by time: a later one replaces an earlier one.
        match r.decision {
            Decision::Allow => m.last_refresh = Some(r.time.clone()),
            Decision::Deny => {
                m.last_failure = Some(r.time.clone());
                m.failure_detail = r.detail.clone();
            }
        }
    }
    out.into_values().collect()
}

/// How long ago `time` (RFC 3339) was, for people: `3m 12s`; `None` when unreadable.
fn ago(time: &str, now: SystemTime) -> Option<String> {
    let then = humantime::parse_rfc3339_weak(time.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(time))
        .ok()?;
    let secs = now.duration_since(then).ok()?.as_secs();
    Some(humantime::format_duration(Duration::from_secs(secs)).to_string())
}

/// The status for people.
pub fn human(s: &Status, now: SystemTime) -> String {
    let mut out = String::new();
    let state = match s.state {
        Overall::Absent => "does not exist on this engine",
        Overall::Running => "running",
        Overall::Stopped => "stopped",
        Overall::PartlyRunning => "partly running",
        Overall::Incomplete => "incomplete",
    };
    out.push_str(&format!("bottle {}: {state}\n", s.bottle));
    // Columns as wide as their longest value, so long names keep the table aligned.
    let names = s.containers.iter().map(|c| c.name.len());
    let w = names
        .chain(s.missing.iter().map(String::len))
        .chain([9])
        .max()
        .unwrap_or(9);
    let r = s
        .containers
        .iter()
        .filter_map(|c| c.role.as_ref().map(String::len))
        .chain([4])
        .max()
        .unwrap_or(4);
    if !s.containers.is_empty() || !s.missing.is_empty() {
        out.push_str(&format!(
            "  {:<w$} {:<r$} {:<10} {:<10} {:<16} RESTARTS\n",
            "CONTAINER", "ROLE", "STATE", "HEALTH", "UP"
        ));
    }
    for c in &s.containers {
        let up = match (&c.started_at, c.state.as_str()) {
            (Some(at), "running") => ago(at, now).unwrap_or_else(|| at.clone()),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "  {:<w$} {:<r$} {:<10} {:<10} {:<16} {}\n",
            c.name,
            c.role.as_deref().unwrap_or("-"),
            c.state,
            c.health.as_deref().unwrap_or("-"),
            up,
            c.restarts.map_or("-".to_owned(), |n| n.to_string()),
        ));
    }
    for m in &s.missing {
        out.push_str(&format!("  {m:<w$} {:<r$} missing\n", "-"));
    }
    if !s.mirrors.is_empty() {
        out.push_str("  mirrors (the gate's, from its audit log):\n");
    }
    for m in &s.mirrors {
        let refreshed = match &m.last_refresh {
            Some(t) => match ago(t, now) {
                Some(a) => format!("refreshed {t} ({a} ago)"),
                None => format!("refreshed {t}"),
            },
            None => "not refreshed yet (no fetch since the gate started logging)".to_owned(),
        };
        out.push_str(&format!("    {:<20} {refreshed}\n", m.repo));
        let failed_later = match (&m.last_failure, &m.last_refresh) {
            (Some(f), Some(r)) => f > r,
            (Some(_), None) => true,
            _ => false,
        };
        if let (true, Some(f)) = (failed_later, &m.last_failure) {
            out.push_str(&format!(
                "    {:<20} last refresh failed {f}: {}\n",
                "",
                m.failure_detail.as_deref().unwrap_or("no detail")
            ));
        }
    }
    if let Some(h) = &s.hint {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: &str, decision: Decision, repo: &str) -> AuditRecord {
        AuditRecord {
            time: time.to_owned(),
            source: Source::Gate,
            decision,
            reason: "r".to_owned(),
            method: Some("fetch".to_owned()),
            path: Some(repo.to_owned()),
            detail: Some("d".to_owned()),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn mirrors_keep_the_newest_refresh_and_failure_per_repo() {
        let records = vec![
            record("2026-01-01T00:00:01.000Z", Decision::Allow, "app"),
            record("2026-01-01T00:00:02.000Z", Decision::Deny, "app"),
            record("2026-01-01T00:00:03.000Z", Decision::Allow, "app"),
            record("2026-01-01T00:00:04.000Z", Decision::Allow, "other"),
            AuditRecord {
                method: Some("push".to_owned()),
                ..record("2026-01-01T00:00:05.000Z", Decision::Allow, "app")
            },
        ];
        let got = mirrors(&records, &["app".to_owned(), "lib".to_owned()]);
        let repos: Vec<&str> = got.iter().map(|m| m.repo.as_str()).collect();
        assert_eq!(repos, ["app", "lib", "other"]);
        assert_eq!(
            got[0].last_refresh.as_deref(),
            Some("2026-01-01T00:00:03.000Z")
        );
        assert_eq!(
            got[0].last_failure.as_deref(),
            Some("2026-01-01T00:00:02.000Z")
        );
        assert_eq!(got[1].last_refresh, None);
    }

    #[test]
    fn the_table_keeps_long_names_aligned_and_says_what_to_do() {
        let c = |name: &str, role: &str, state: &str| ContainerStatus {
            name: name.to_owned(),
            role: Some(role.to_owned()),
            state: state.to_owned(),
            health: None,
            started_at: Some("2026-01-01T00:09:00Z".to_owned()),
            restarts: Some(0),
        };
        let s = Status {
            bottle: "b".to_owned(),
            state: Overall::PartlyRunning,
            containers: vec![
                c("bottle-a-long-bottle-name-here-gate", "gate", "running"),
                c("bottle-b-agent", "agent", "exited"),
            ],
            missing: vec![],
            mirrors: vec![Mirror {
                repo: "app".to_owned(),
                last_refresh: Some("2026-01-01T00:08:00.000Z".to_owned()),
                ..Mirror::default()
            }],
            hint: Some("`bottle start b`".to_owned()),
        };
        let now = humantime::parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        let text = human(&s, now);
        let state_at: Vec<Option<usize>> = text
            .lines()
            .skip(1)
            .take(3)
            .map(|l| l.find("STATE").or(l.find("running")).or(l.find("exited")))
            .collect();
        assert!(state_at.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(text.starts_with("bottle b: partly running\n"), "{text}");
        assert!(text.contains(" 1m "), "uptime of the running gate: {text}");
        assert!(
            text.contains("refreshed 2026-01-01T00:08:00.000Z (2m ago)"),
            "{text}"
        );
        assert!(text.ends_with("  hint: `bottle start b`\n"), "{text}");
    }

    #[test]
    fn ago_reads_engine_and_gate_times() {
        // Whole seconds, cut: 2m 29.877s is 2m 29s.
        let now = humantime::parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        assert_eq!(
            ago("2026-01-01T00:07:30.123456789Z", now).as_deref(),
            Some("2m 29s")
        );
        assert_eq!(ago("2026-01-01T00:09:59.000Z", now).as_deref(), Some("1s"));
        assert_eq!(ago("garbage", now), None);
    }
}
