//! What the printers rely on, checked before anything is printed: the plan's own checks
//! (names, file paths: `bottle_core::plan`) and what the CLI or a shell script cannot carry.

use std::collections::BTreeSet;

use bottle_core::plan::{self, relative_file_path, ContainerSpec, FileSource, FileSpec, Plan};

use super::RenderError;

/// Names the engines accept for containers and networks ([`plan::is_engine_name`]).
/// Checking them also keeps them from being read as options and from nesting directories
/// in the staging area.
pub(super) fn check_name(kind: &'static str, name: &str) -> Result<(), RenderError> {
    if plan::is_engine_name(name) {
        Ok(())
    } else {
        Err(RenderError::Name {
            kind,
            name: name.to_owned(),
        })
    }
}

fn check_key(container: &str, what: &'static str, key: &str) -> Result<(), RenderError> {
    if key.is_empty() || key.contains('=') {
        return Err(RenderError::Key {
            container: container.to_owned(),
            what,
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// A file of one container, as staged.
pub(super) struct Staged<'a> {
    /// Path relative to the container's root, e.g. `etc/gitconfig`.
    pub(super) rel: String,
    pub(super) spec: &'a FileSpec,
}

/// One container's files, checked, with their paths made relative.
pub(super) struct ContainerFiles<'a> {
    pub(super) files: Vec<Staged<'a>>,
    /// Files grouped by the directory they are copied into (relative to the root: `""`
    /// for the root itself, else a volume of a read-only container,
    /// [`ContainerSpec::copy_dir`]) and by owner, in order of first appearance: one
    /// archive per group.
    pub(super) groups: Vec<(CopyGroup, Vec<usize>)>,
}

/// Where an archive of files goes and whose they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CopyGroup {
    /// The directory, relative to the container's root (`""`: the root).
    pub(super) dir: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

fn file_error(container: &ContainerSpec, file: &FileSpec, why: impl Into<String>) -> RenderError {
    RenderError::File {
        container: container.name.clone(),
        path: file.path.clone(),
        why: why.into(),
    }
}

/// One container's files: the plan's checks ([`ContainerSpec::relative_file_paths`]), then
/// what a shell script cannot carry.
fn container_files(container: &ContainerSpec) -> Result<ContainerFiles<'_>, RenderError> {
    let rels = container
        .relative_file_paths()
        .map_err(|(spec, why)| file_error(container, spec, why))?;
    let mut files = Vec::new();
    let mut groups: Vec<(CopyGroup, Vec<usize>)> = Vec::new();
    for (spec, rel) in container.files.iter().zip(rels) {
        match &spec.source {
            FileSource::Text { text } if text.contains('\0') => {
                return Err(file_error(
                    container,
                    spec,
                    "the text holds a NUL byte, which a shell script cannot carry",
                ))
            }
            FileSource::HostFile { path, .. } if path.to_str().is_none() => {
                return Err(file_error(
                    container,
                    spec,
                    format!(
                        "host path {} is not valid UTF-8, which this printer cannot quote",
                        path.display()
                    ),
                ))
            }
            FileSource::HostEnv { var, .. } if !is_env_name(var) => {
                return Err(file_error(
                    container,
                    spec,
                    format!("{var:?} is not an environment variable name this printer can expand"),
                ))
            }
            _ => {}
        }
        // Checked by relative_file_paths: a read-only container's files lie in its volumes.
        let dir = container
            .copy_dir(spec)
            .and_then(|d| relative_file_path(d).ok())
            .unwrap_or_default();
        let group = CopyGroup {
            dir,
            uid: spec.uid,
            gid: spec.gid,
        };
        let index = files.len();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(index),
            None => groups.push((group, vec![index])),
        }
        files.push(Staged { rel, spec });
    }
    Ok(ContainerFiles { files, groups })
}

/// Checks what the printer relies on, before printing anything.
pub(super) fn check_plan(plan: &Plan) -> Result<Vec<ContainerFiles<'_>>, RenderError> {
    for n in &plan.networks {
        check_name("network", &n.name)?;
        for key in n.labels.keys() {
            check_key(&n.name, "label", key)?;
        }
    }
    if let Some((ct, h)) = plan.unfillable_host() {
        return Err(RenderError::HostOf {
            container: ct.name.clone(),
            name: h.name.clone(),
            of: h.container.clone(),
            network: h.network.clone(),
        });
    }
    let mut names = BTreeSet::new();
    let mut all = Vec::new();
    for ct in &plan.containers {
        check_name("container", &ct.name)?;
        if !names.insert(ct.name.as_str()) {
            return Err(RenderError::DuplicateContainer {
                name: ct.name.clone(),
            });
        }
        check_name("network", &ct.network)?;
        for n in &ct.connect {
            check_name("network", n)?;
        }
        for h in &ct.hosts_of {
            check_name("host", &h.name)?;
        }
        if !ct
            .image
            .name
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return Err(RenderError::Image {
                container: ct.name.clone(),
                image: ct.image.name.clone(),
            });
        }
        if ct.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
            return Err(RenderError::EmptyEntrypoint {
                container: ct.name.clone(),
            });
        }
        for key in ct.env.keys() {
            check_key(&ct.name, "env", key)?;
        }
        // A host value's key and variables go unquoted into `${...}`.
        for (key, v) in &ct.host_env {
            let vars: Vec<&str> = match &v.from {
                plan::HostValueSource::Template { template } => template.vars().collect(),
                plan::HostValueSource::EnvFile { .. } => vec![key.as_str()],
            };
            if let Some(bad) = std::iter::once(key.as_str())
                .chain(vars)
                .find(|n| !is_env_name(n))
            {
                return Err(RenderError::Key {
                    container: ct.name.clone(),
                    what: "env",
                    key: bad.to_owned(),
                });
            }
        }
        for key in ct.labels.keys() {
            check_key(&ct.name, "label", key)?;
        }
        all.push(container_files(ct)?);
    }
    Ok(all)
}

/// Letters, digits and `_`, not starting with a digit: safe unquoted inside `${...}`.
fn is_env_name(var: &str) -> bool {
    var.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("container", "bottle-demo-gate").is_ok());
        for bad in ["", "-x", "a/b", "a b", "a\n", ".x"] {
            assert!(check_name("container", bad).is_err(), "{bad:?}");
        }
    }
}
