//! `bottle validate`: the manifest checked as `up` would check it (every bottle planned:
//! identity files, host keys, route keys and CA files read), then a summary of each
//! bottle. Nothing is created and no secret is printed.

use std::fmt::Write as _;

use bottle_core::manifest::{Bottle, Manifest, SecretSource};
use bottle_core::plan::Plan;
use bottle_core::planner;
use bottle_core::project::Project;

/// Plans the selected bottles (all of them when `only` is `None`); prints a summary of each
/// and fails (as a manifest problem) when any bottle would not come up.
pub fn run(manifest: &Manifest, project: &Project, only: Option<&str>) -> anyhow::Result<()> {
    let bottles: Vec<&Bottle> = match only {
        Some(name) => vec![manifest.select(Some(name))?],
        None => manifest.bottles.values().collect(),
    };
    let mut errors = Vec::new();
    for bottle in &bottles {
        match planner::plan(bottle, project) {
            Ok(plan) => print!("{}", summary(bottle, &plan)),
            Err(e) => {
                println!("bottle {}: NOT ready (below)", bottle.name);
                errors.push(e);
            }
        }
    }
    // Every problem is shown; the last one is returned, for main to print and to exit 2
    // with, as for any manifest problem.
    let last = errors.pop();
    for e in &errors {
        eprintln!("{e}");
    }
    match last {
        Some(e) => Err(e.into()),
        None => {
            println!(
                "{}: valid ({} bottle{})",
                manifest.path.display(),
                bottles.len(),
                if bottles.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

/// What a bottle is, in a few lines: its agent, what it reaches, where its keys come from.
pub fn summary(bottle: &Bottle, plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "bottle {}", bottle.name);
    let _ = writeln!(
        s,
        "  agent: {}{}",
        bottle.image,
        bottle
            .command
            .as_ref()
            .map(|c| format!(", command {c:?}"))
            .unwrap_or_default()
    );
    for up in &bottle.git {
        let _ = writeln!(
            s,
            "  git {}: {} (key {}, host key {})",
            up.name,
            up.url,
            up.identity_file.value.display(),
            if up.known_host_key.is_some() {
                "pinned"
            } else {
                "NOT pinned: the gate refuses this upstream"
            }
        );
    }
    let allow: Vec<&str> = bottle
        .egress
        .allow
        .iter()
        .map(|e| e.value.as_str())
        .collect();
    let _ = writeln!(
        s,
        "  egress: {}",
        if allow.is_empty() {
            "nothing allowed".to_owned()
        } else {
            format!("allows {}", allow.join(", "))
        }
    );
    for r in &bottle.cred_proxy.routes {
        let from = match &r.secret {
            SecretSource::Env(var) => format!("${var}"),
            SecretSource::File(path) => path.display().to_string(),
        };
        let _ = writeln!(
            s,
            "  route {}: {} with {} from {from}{}",
            r.name,
            r.upstream,
            r.header,
            r.agent_env
                .as_ref()
                .map(|v| format!(", agent's {v}"))
                .unwrap_or_default()
        );
    }
    let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    let _ = writeln!(s, "  containers: {}", names.join(", "));
    s
}
