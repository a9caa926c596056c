//! Projects: the namespace a bottle lives in on an engine.
//!
//! Two directories may each have a bottle named `demo`; they keep apart because every
//! resource name and label carries the project as well as the bottle's name. The rule is
//! Docker Compose's, so that it surprises no one who knows compose:
//!
//! - by default the project is the manifest's directory name, *normalised*: lowercased,
//!   every character outside `[a-z0-9_-]` dropped, leading `_` and `-` trimmed
//!   (`My App.v2` -> `myappv2`);
//! - a name given explicitly (`--project-name`/`-p`, `BOTTLE_PROJECT`, `[settings] project`)
//!   is not normalised but checked: `^[a-z0-9][a-z0-9_-]*$`, like compose's `-p`. bottle
//!   also caps it at [`MAX_PROJECT_LEN`] bytes, the most a Kubernetes label value holds.
//!
//! See [`crate::plan::resource_name`] for how a project and a bottle make a name.

use std::fmt;
use std::path::Path;

/// The longest project name bottle accepts: a Kubernetes label value's limit, so that the
/// `bottle.project` label fits every backend. Resource names are shortened separately.
pub const MAX_PROJECT_LEN: usize = 63;

/// The rule a project name follows, as error messages state it.
pub const PROJECT_RULE: &str = "1 to 63 characters from [a-z0-9_-], starting with a lowercase letter or a digit (Docker Compose's rule)";

/// A valid project name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Project(String);

/// A project name that breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{}' is not a valid project name: use {PROJECT_RULE}", name.escape_debug())]
pub struct InvalidProject {
    /// The name given.
    pub name: String,
}

impl Project {
    /// `name` when it follows the rule (explicit names are checked, never rewritten).
    pub fn new(name: &str) -> Result<Project, InvalidProject> {
        if is_project_name(name) {
            Ok(Project(name.to_owned()))
        } else {
            Err(InvalidProject {
                name: name.to_owned(),
            })
        }
    }

    /// The default project of a manifest in `dir`: the directory's name, normalised
    /// ([`normalize`]). An error when nothing valid is left (a directory named `.x` or
    /// `ü`), or when the result is too long; the message names the directory.
    pub fn from_dir(dir: &Path) -> Result<Project, InvalidProject> {
        let raw = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Project::new(&normalize(&raw)).map_err(|_| InvalidProject { name: raw })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` is a valid project name: `^[a-z0-9][a-z0-9_-]*$`, at most
/// [`MAX_PROJECT_LEN`] bytes.
pub fn is_project_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_PROJECT_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

/// Compose's normalisation of a directory name: lowercase, keep only `[a-z0-9_-]`, trim
/// leading `_` and `-`. May return an empty string.
pub fn normalize(raw: &str) -> String {
    let kept: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_directory_names_like_compose() {
        assert_eq!(normalize("My App.v2"), "myappv2");
        assert_eq!(normalize("__web-site_"), "web-site_");
        assert_eq!(normalize("-_-x"), "x");
        assert_eq!(normalize("ünï"), "n");
        assert_eq!(normalize("..."), "");
        assert_eq!(
            Project::from_dir(Path::new("/home/u/My_Project"))
                .unwrap()
                .as_str(),
            "my_project"
        );
        let err = Project::from_dir(Path::new("/tmp/.äö")).unwrap_err();
        assert_eq!(err.name, ".äö");
        assert!(err.to_string().contains("[a-z0-9_-]"), "{err}");
    }

    #[test]
    fn checks_explicit_names() {
        for good in ["a", "0", "my_app-2", &"a".repeat(63)] {
            assert!(Project::new(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "_a", "A", "a.b", "a b", "ä", &"a".repeat(64)] {
            assert!(Project::new(bad).is_err(), "{bad:?}");
        }
    }
}
