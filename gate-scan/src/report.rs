//! What the scanner says: to the person or agent who pushed (stderr), and to the hook's audit
//! line (`--report`, JSON). Neither ever holds a secret: gitleaks runs with `--redact` and
//! only rule ids, objects, paths and lines are taken from its report.

use crate::scan::{Finding, Outcome, ScanError, Via};

const TAG: &str = "bottle-gate:";

fn short(oid: &str) -> &str {
    &oid[..oid.len().min(12)]
}

/// One finding, in words: what, where.
fn describe(f: &Finding) -> String {
    let p = &f.place;
    let on = p
        .on_ref
        .as_deref()
        .map(|r| format!(" (on {r})"))
        .unwrap_or_default();
    let where_ = match (p.kind.as_str(), &p.via) {
        ("commit", _) => format!("the {} of commit {}{on}", p.part, short(&p.object)),
        ("tag", Via::Tag { name, .. }) => {
            format!("the {} of tag {name:?} ({}){on}", p.part, short(&p.object))
        }
        ("ref names", _) => "the name of a ref this push updates".to_owned(),
        (kind, via) => {
            let path = match p.path.as_deref() {
                None => "(no path)".to_owned(),
                Some("") => "the top directory".to_owned(),
                Some(path) => format!("{path:?}"),
            };
            let by = match via {
                Via::Commit { commit } => format!("in commit {}{on}", short(commit)),
                Via::Tag { name, tag } => format!("under tag {name:?} ({})", short(tag)),
                Via::Ref { name } => format!("pointed at directly by {name}"),
                Via::Push => "brought by this push".to_owned(),
            };
            let mut s = format!("{kind} {} at {path} {by}, {}", short(&p.object), p.part);
            if !p.other_paths.is_empty() {
                s.push_str(&format!(
                    " (also at {} more path{})",
                    p.other_paths.len(),
                    if p.other_paths.len() == 1 { "" } else { "s" }
                ));
            }
            s
        }
    };
    format!("{} ({}): {where_}, line {}", f.rule, f.description, p.line)
}

/// The message for a push with findings none of which the manifest accepts... or some.
pub fn findings_message(outcome: &Outcome) -> String {
    let refused: Vec<&Finding> = outcome.findings.iter().filter(|f| !f.accepted).collect();
    let accepted = outcome.findings.len() - refused.len();
    let mut s = format!(
        "{TAG} push refused: gitleaks found {} secret{} in what this push brings \
         (nothing was forwarded upstream):\n",
        refused.len(),
        if refused.len() == 1 { "" } else { "s" }
    );
    for (i, f) in refused.iter().enumerate() {
        s.push_str(&format!("{TAG}   {}. {}\n", i + 1, describe(f)));
        s.push_str(&format!("{TAG}      fingerprint {}\n", f.fingerprint));
    }
    if accepted > 0 {
        s.push_str(&format!(
            "{TAG} ({accepted} more finding{} accepted by bottle.toml)\n",
            if accepted == 1 { " is" } else { "s are" }
        ));
    }
    s.push_str(&format!(
        "{TAG} what to do: remove each secret from the commits that hold it and push again: \
         rewrite them (git commit --amend, or git rebase -i <base> and edit each commit), since \
         deleting the file in a new commit still pushes the old ones. Treat a real secret as \
         leaked to whoever could read it and rotate it.\n\
         {TAG} if a finding is not a secret, the user (not the agent) can accept it in \
         bottle.toml, in this repository's [[bottles.NAME.git]] entry: \
         accept_fingerprints = [\"<fingerprint above>\"], or accept_paths = [\"<regex>\"] for \
         files whose every path in the push matches; then recreate the bottle.\n"
    ));
    s
}

/// The message for a push that could not be judged.
pub fn error_message(err: &ScanError) -> String {
    match err {
        ScanError::Limit(limit) => format!(
            "{TAG} push refused, nothing was forwarded upstream: {}\n",
            limit.explain()
        ),
        e => format!(
            "{TAG} push refused, nothing was forwarded upstream: the secret scan failed, \
             so the push cannot be judged: {e}\n\
             {TAG} this is a fault of the gate, not of the push: report it with the message above.\n"
        ),
    }
}

/// The one-line summary for a clean push.
pub fn clean_message(outcome: &Outcome) -> String {
    let accepted = outcome.findings.len();
    let extra = if accepted > 0 {
        format!(
            " ({accepted} finding{} accepted by bottle.toml)",
            if accepted == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    format!(
        "{TAG} scanned {} new objects ({:.1} MiB, {:.1} MiB scanned) in {:.2} s: no secrets found{extra}\n",
        outcome.objects,
        outcome.object_bytes as f64 / (1 << 20) as f64,
        outcome.scanned_bytes as f64 / (1 << 20) as f64,
        outcome.millis as f64 / 1000.0
    )
}

/// The JSON summary `--report` writes: no secret, only rules, objects and places.
#[derive(Debug, serde::Serialize)]
pub struct Summary<'a> {
    /// "clean", "findings" or "refused" (a limit or a scan failure).
    pub result: &'static str,
    /// Why, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The limit, when refused for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'a crate::scan::Limit>,
    /// The scan's figures and findings, when it ran.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub outcome: Option<&'a Outcome>,
}

/// The summary of a scan's result.
pub fn summary(result: &Result<Outcome, ScanError>) -> Summary<'_> {
    match result {
        Ok(o) => Summary {
            result: if o.refused() { "findings" } else { "clean" },
            reason: None,
            limit: None,
            outcome: Some(o),
        },
        Err(e) => Summary {
            result: "refused",
            reason: Some(e.to_string()),
            limit: match e {
                ScanError::Limit(l) => Some(l),
                _ => None,
            },
            outcome: None,
        },
    }
}

/// The audit line of a refusing verdict: bottle's audit record (source `gate`, decision
/// `deny`, reason `secret-found` with the rules and places, or `scan-refused` with why).
pub fn audit_line(result: &Result<Outcome, ScanError>, bottle: &str, repo: &str) -> String {
    use bottle_proxy_config::{AuditRecord, Decision, Source};
    let (reason, rule, detail) = match result {
        Ok(o) => {
            let refused: Vec<&Finding> = o.findings.iter().filter(|f| !f.accepted).collect();
            let mut rules: Vec<&str> = refused.iter().map(|f| f.rule.as_str()).collect();
            rules.sort_unstable();
            rules.dedup();
            let places: Vec<String> = refused.iter().take(5).map(|f| describe(f)).collect();
            (
                "secret-found",
                Some(rules.join(",")),
                format!(
                    "push to {repo} refused, nothing forwarded: {} finding{} ({})",
                    refused.len(),
                    if refused.len() == 1 { "" } else { "s" },
                    places.join("; ")
                ),
            )
        }
        Err(e) => (
            "scan-refused",
            None,
            format!("push to {repo} refused, nothing forwarded: {e}"),
        ),
    };
    let mut record = AuditRecord::now(bottle, Source::Gate, Decision::Deny, reason);
    record.rule = rule;
    record.method = Some("push".to_owned());
    record.path = (!repo.is_empty()).then(|| repo.to_owned());
    record.detail = Some(detail.replace('\n', " "));
    record.to_line()
}
