//! `bottle logs`: the bottle's one audit log, merged from every sidecar that writes one.
//!
//! Sidecars write one JSON [`AuditRecord`] per line on their standard output (the plan's
//! `audit` field, the `bottle.audit` label); the backend hands those outputs back
//! ([`Backend::audit_logs`]), and this module merges them by time, filters and prints them.
//! Lines that are not records (a sidecar's own chatter) are skipped. `bottle down` saves the
//! merged log under `$XDG_STATE_HOME/bottle/<project>/<slug>/` first, so nothing is lost with the
//! containers; `bottle logs` reads the newest saved log when the bottle is not up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bottle_core::backend::{AuditStream, Backend, OutputChunk, Scope};
use bottle_proxy_config::{rfc3339_millis, AuditRecord, Decision};

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only refusals.
    pub denied: bool,
    /// Only records newer than this long ago.
    pub since: Option<Duration>,
}

impl Filter {
    fn keeps(&self, r: &AuditRecord, after: Option<&str>) -> bool {
        (!self.denied || r.decision == Decision::Deny) && after.is_none_or(|t| r.time.as_str() >= t)
    }
}

/// The records of `streams`, merged by time (stable: one sidecar's order is kept).
pub fn merge(streams: &[AuditStream]) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = streams.iter().flat_map(|s| parse(&s.bytes)).collect();
    out.sort_by(|a, b| a.time.cmp(&b.time));
    out
}

/// The audit records among `bytes`' lines.
pub fn parse(bytes: &[u8]) -> Vec<AuditRecord> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One record for people: time, source, decision, destination, reason, then what else
/// it carries.
pub fn human(r: &AuditRecord) -> String {
    let source = serde_json::to_value(r.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let decision = match r.decision {
        Decision::Allow => "allow",
        Decision::Deny => "DENY",
    };
    let target = match (&r.route, &r.host, r.port) {
        (Some(route), _, _) => format!("route {route}"),
        (None, Some(h), Some(p)) => format!("{h}:{p}"),
        (None, Some(h), None) => h.clone(),
        (None, None, _) => "-".to_owned(),
    };
    let mut line = format!(
        "{}  {source:<5}  {decision:<5}  {target}  {}",
        r.time, r.reason
    );
    let mut extra = Vec::new();
    if let (Some(m), Some(p)) = (&r.method, &r.path) {
        extra.push(format!("{m} {p}"));
    }
    if let Some(s) = r.status {
        extra.push(format!("status {s}"));
    }
    if let (Some(up), Some(down)) = (r.bytes_up, r.bytes_down) {
        extra.push(format!("{up} B up, {down} B down"));
    }
    if let Some(ms) = r.duration_ms {
        extra.push(format!("{ms} ms"));
    }
    if let Some(rule) = &r.rule {
        extra.push(format!("rule {rule}"));
    }
    if let Some(d) = &r.detail {
        extra.push(d.clone());
    }
    if !extra.is_empty() {
        line.push_str("  (");
        line.push_str(&extra.join("; "));
        line.push(')');
    }
    line
}

/// Where `down` keeps a bottle's logs: `$XDG_STATE_HOME/bottle/<project>/<slug>/`, else
/// `~/.local/state/bottle/<project>/<slug>/`.
pub fn state_dir(project: &str, slug: &str) -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .context("neither XDG_STATE_HOME nor HOME is set: nowhere to keep the bottle's log")?;
    Ok(base.join("bottle").join(project).join(slug))
}

/// Saves the merged log of `streams` as `audit-<time>.jsonl` in the bottle's state
/// directory; `None` when there is nothing to save.
pub fn save(project: &str, slug: &str, streams: &[AuditStream]) -> anyhow::Result<Option<PathBuf>> {
    let records = merge(streams);
    if records.is_empty() {
        return Ok(None);
    }
    let dir = state_dir(project, slug)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // A file name that sorts by time and holds no ':' (which some tools mind).
    let stamp = rfc3339_millis(SystemTime::now()).replace(':', "");
    let path = dir.join(format!("audit-{stamp}.jsonl"));
    let mut text = String::new();
    for r in &records {
        text.push_str(&r.to_line());
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(path))
}

/// The newest log `down` saved for `slug`.
pub fn newest_saved(project: &str, slug: &str) -> anyhow::Result<Option<PathBuf>> {
    let dir = state_dir(project, slug)?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut saved: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    saved.sort();
    Ok(saved.pop())
}

fn print(
    records: &[AuditRecord],
    json: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    for r in records {
        if json {
            writeln!(out, "{}", r.to_line())?;
        } else {
            writeln!(out, "{}", human(r))?;
        }
    }
    out.flush()
}

/// `bottle logs`.
pub async fn run(
    backend: &dyn Backend,
    project: &str,
    slug: &str,
    filter: &Filter,
    json: bool,
    follow: bool,
) -> anyhow::Result<()> {
    let after = filter.since.map(|d| rfc3339_millis(SystemTime::now() - d));
    let keep = |r: &AuditRecord| filter.keeps(r, after.as_deref());
    let scope = Scope::bottle(project, slug);
    let streams = backend.audit_logs(&scope).await?;
    let mut stdout = std::io::stdout().lock();
    if streams.is_empty() {
        if follow {
            anyhow::bail!(
                "bottle '{slug}' is not up: there is nothing to follow\n  hint: `bottle up {slug}` first, or drop --follow to read its saved log"
            );
        }
        let Some(path) = newest_saved(project, slug)? else {
            anyhow::bail!(
                "bottle '{slug}' is not up and has no saved log in {}\n  hint: `bottle up {slug}`; `bottle down` saves a bottle's log there",
                state_dir(project, slug)?.display()
            );
        };
        eprintln!(
            "bottle: '{slug}' is not up; its log saved by `bottle down`: {}",
            path.display()
        );
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let records: Vec<AuditRecord> = parse(&bytes).into_iter().filter(keep).collect();
        print(&records, json, &mut stdout)?;
        return Ok(());
    }
    let count = |streams: &[AuditStream]| -> HashMap<String, usize> {
        streams
            .iter()
            .map(|s| (s.container.clone(), parse(&s.bytes).len()))
            .collect()
    };
    let mut seen = count(&streams);
    let records: Vec<AuditRecord> = merge(&streams).into_iter().filter(keep).collect();
    print(&records, json, &mut stdout)?;
    if !follow {
        return Ok(());
    }
    // Following: poll the logs and print each sidecar's records past those already
    // printed, the new ones of all sidecars merged by time.
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let streams = backend.audit_logs(&scope).await?;
        if streams.is_empty() {
            eprintln!("bottle: '{slug}' is gone");
            return Ok(());
        }
        let mut new: Vec<AuditRecord> = streams
            .iter()
            .flat_map(|s| {
                let skip = seen.get(&s.container).copied().unwrap_or(0);
                parse(&s.bytes).into_iter().skip(skip)
            })
            .filter(|r| keep(r))
            .collect();
        new.sort_by(|a, b| a.time.cmp(&b.time));
        print(&new, json, &mut stdout)?;
        seen = count(&streams);
    }
}

/// Saves the bottle's log before `down` removes its containers, and says where. A failure
/// to read or save is reported and does not stop `down`.
pub async fn save_before_down(backend: &dyn Backend, project: &str, slug: &str) {
    let streams = match backend.audit_logs(&Scope::bottle(project, slug)).await {
        Ok(s) => s,
        // Backends that keep no logs (dry-run, plugins) have nothing to save.
        Err(_) => return,
    };
    match save(project, slug, &streams) {
        Ok(Some(path)) => eprintln!(
            "bottle: saved the audit log of '{slug}' to {}",
            path.display()
        ),
        Ok(None) => {}
        Err(e) => eprintln!("bottle: warning: could not save the audit log of '{slug}': {e:#}"),
    }
}

/// `bottle logs --container ROLE`: everything the bottle's container of that role wrote, as
/// the engine kept it (not the audit log): its standard output to ours, its standard error
/// to ours.
pub async fn container_output(
    backend: &dyn Backend,
    project: &str,
    slug: &str,
    role: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    let chunks = backend
        .container_output(&Scope::bottle(project, slug), role)
        .await?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for chunk in chunks {
        match chunk {
            OutputChunk::Stdout(b) => out.write_all(&b)?,
            OutputChunk::Stderr(b) => {
                out.flush()?;
                err.write_all(&b)?
            }
        }
    }
    out.flush()?;
    Ok(())
}
