//! Resources found by label, and the words of `up`, `down` and `cleanup`: the same for
//! every engine backend.
//!
//! An engine backend lists its containers and networks with [`label_filters`], turns each
//! into a [`Found`], and leaves grouping ([`group`]), the leftover error ([`leftovers`]),
//! the outcome of a removal ([`removal_outcome`]) and the note on a failed `up`
//! ([`failed_up`]) to this module, so that `bottle ps` and the errors read the same on
//! docker and podman.

use std::collections::{BTreeMap, HashMap};

use bottle_core::backend::{BackendError, BottleStatus, Resource, Scope};
use bottle_core::plan::{ResourceKind, LABEL_MANAGED, LABEL_PROJECT, LABEL_ROLE, LABEL_SLUG};

/// The `label` filter values that select bottle's resources: every bottle's
/// (`bottle.managed`), or one bottle's (`bottle.managed` and `bottle.slug=SLUG`). Engines
/// AND several label filters.
pub fn label_filters(slug: Option<&str>) -> Vec<String> {
    let mut labels = vec![LABEL_MANAGED.to_owned()];
    if let Some(slug) = slug {
        labels.push(format!("{LABEL_SLUG}={slug}"));
    }
    labels
}

/// The `bottle.role` of a resource with these labels, when it has one.
pub fn role_of(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels.and_then(|l| l.get(LABEL_ROLE)).cloned()
}

/// The `bottle.slug` of a resource with these labels (empty without one).
pub fn slug_of(labels: Option<&HashMap<String, String>>) -> String {
    labels
        .and_then(|l| l.get(LABEL_SLUG))
        .cloned()
        .unwrap_or_default()
}

/// The `bottle.project` of a resource with these labels (`None` without one: made by a
/// bottle older than projects).
pub fn project_of(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels.and_then(|l| l.get(LABEL_PROJECT)).cloned()
}

/// A labelled resource as listed: its engine id, its bottle and what `ps` shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The engine's id, to remove exactly this resource.
    pub id: String,
    /// Its `bottle.project`, when it has one.
    pub project: Option<String>,
    /// Its `bottle.slug`.
    pub slug: String,
    /// What `ps` shows.
    pub resource: Resource,
}

impl Found {
    /// A container with these labels and engine state (`running`, `exited`, ...).
    pub fn container(
        id: String,
        name: String,
        labels: Option<&HashMap<String, String>>,
        state: String,
    ) -> Found {
        Found {
            id,
            project: project_of(labels),
            slug: slug_of(labels),
            resource: Resource {
                kind: ResourceKind::Container,
                name,
                role: role_of(labels),
                state,
                restarts: None,
            },
        }
    }

    /// A network with these labels.
    pub fn network(id: String, name: String, labels: Option<&HashMap<String, String>>) -> Found {
        Found {
            id,
            project: project_of(labels),
            slug: slug_of(labels),
            resource: Resource {
                kind: ResourceKind::Network,
                name,
                role: role_of(labels),
                state: String::new(),
                restarts: None,
            },
        }
    }
}

/// `ps`: resources grouped by bottle (by project, then slug; unlabelled ones first), each
/// bottle's containers first, then its networks, by name.
pub fn group(found: impl IntoIterator<Item = Found>) -> Vec<BottleStatus> {
    let mut bottles: BTreeMap<(Option<String>, String), Vec<Resource>> = BTreeMap::new();
    for f in found {
        bottles
            .entry((f.project, f.slug))
            .or_default()
            .push(f.resource);
    }
    bottles
        .into_iter()
        .map(|((project, slug), mut resources)| {
            resources.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            BottleStatus {
                project,
                slug,
                resources,
            }
        })
        .collect()
}

/// The result of a leftover probe: [`BackendError::Leftovers`] when any name the plan
/// would create exists.
pub fn leftovers(slug: &str, found: Vec<(ResourceKind, String)>) -> Result<(), BackendError> {
    if found.is_empty() {
        Ok(())
    } else {
        Err(BackendError::Leftovers {
            slug: slug.to_owned(),
            found,
        })
    }
}

/// The outcome of `down`/`cleanup`: what was removed, or an error naming each failure
/// (`failures`, already worded as `KIND NAME: engine message`) and what was removed anyway.
pub fn removal_outcome(
    scope: &Scope,
    removed: Vec<Resource>,
    failures: Vec<String>,
) -> Result<Vec<Resource>, BackendError> {
    if failures.is_empty() {
        return Ok(removed);
    }
    let what = scope.describe();
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

/// What a failed `up` did about the resources it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Kept for debugging (`keep_on_failure`): their names, containers first.
    Kept(Vec<String>),
    /// Rolled back; what could not be removed (empty: everything was).
    RolledBack(Vec<String>),
}

/// The error of a failed `up`: `err` with a note saying what happened to what the run
/// created (kept, removed, or partly removed, with `bottle cleanup SLUG` where needed).
pub fn failed_up(err: BackendError, slug: &str, after: &AfterFailure) -> BackendError {
    let note = match after {
        AfterFailure::Kept(names) => format!(
            "kept for debugging (keep_on_failure): {}; remove them with `bottle cleanup {slug}`",
            names.join(", "),
        ),
        AfterFailure::RolledBack(failures) if failures.is_empty() => {
            "everything this run created was removed".to_owned()
        }
        AfterFailure::RolledBack(failures) => format!(
            "rollback incomplete ({}); remove the rest with `bottle cleanup {slug}`",
            failures.join("; "),
        ),
    };
    match err {
        BackendError::Engine { action, message } => BackendError::Engine {
            action,
            message: format!("{message}\n  ({note})"),
        },
        BackendError::Other(message) => BackendError::Other(format!("{message}\n  ({note})")),
        other => other,
    }
}

/// The names of created resources as [`AfterFailure::Kept`] lists them.
pub fn kept_names(containers: &[(String, String)], networks: &[(String, String)]) -> Vec<String> {
    containers
        .iter()
        .map(|(_, n)| format!("container {n}"))
        .chain(networks.iter().map(|(_, n)| format!("network {n}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(slug: &str, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SLUG.to_owned(), slug.to_owned()),
            (LABEL_ROLE.to_owned(), role.to_owned()),
        ])
    }

    #[test]
    fn filters_select_every_bottle_or_one() {
        assert_eq!(label_filters(None), vec!["bottle.managed"]);
        assert_eq!(
            label_filters(Some("x")),
            vec!["bottle.managed", "bottle.slug=x"]
        );
    }

    #[test]
    fn grouping_sorts_bottles_and_puts_containers_first() {
        let found = vec![
            Found::network(
                "n1".into(),
                "bottle-b-internal".into(),
                Some(&labels("b", "internal")),
            ),
            Found::container(
                "c1".into(),
                "bottle-b-agent".into(),
                Some(&labels("b", "agent")),
                "running".into(),
            ),
            Found::network(
                "n2".into(),
                "bottle-a-egress".into(),
                Some(&labels("a", "nope")),
            ),
        ];
        let got = group(found);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].slug, "a");
        assert_eq!(got[0].resources[0].role.as_deref(), Some("nope"));
        assert_eq!(got[1].resources[0].name, "bottle-b-agent");
        assert_eq!(got[1].resources[0].role, Some("agent".to_owned()));
        assert_eq!(got[1].resources[1].kind, ResourceKind::Network);
    }

    #[test]
    fn failure_notes_name_cleanup() {
        let e = || BackendError::Engine {
            action: "start container x".into(),
            message: "boom".into(),
        };
        let kept = failed_up(e(), "s", &AfterFailure::Kept(vec!["container x".into()]));
        assert!(kept.to_string().contains("bottle cleanup s"), "{kept}");
        let ok = failed_up(e(), "s", &AfterFailure::RolledBack(vec![]));
        assert!(ok.to_string().contains("removed"), "{ok}");
        let part = failed_up(
            e(),
            "s",
            &AfterFailure::RolledBack(vec!["network n: busy".into()]),
        );
        assert!(part.to_string().contains("rollback incomplete"), "{part}");
        assert!(removal_outcome(
            &Scope::bottle("p", "s"),
            vec![],
            vec!["container c: no".into()]
        )
        .is_err());
        assert!(leftovers("s", vec![]).is_ok());
    }
}
