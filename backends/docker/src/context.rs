//! Which engine address to use, chosen as the docker CLI chooses it, so that `bottle` and
//! the `docker` commands of the dry-run script talk to the same engine.
//!
//! In order: `DOCKER_HOST`; else the context named by `DOCKER_CONTEXT`; else the
//! `currentContext` of the CLI's `config.json` (in `DOCKER_CONFIG`, default
//! `~/.docker`); else the `default` context, which is [`DEFAULT_HOST`]. A named context is
//! read from `contexts/meta/<sha256 of its name>/meta.json` beside `config.json`: its
//! `Endpoints.docker.Host`. bollard (0.21) reads none of this, hence this module. A
//! context's TLS material is not used: a context whose engine needs client certificates
//! fails at the connection, naming the address.

use std::path::{Path, PathBuf};

use bottle_core::backend::BackendError;
use sha2::{Digest, Sha256};

use crate::DEFAULT_HOST;

/// The engine address and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix://PATH`, `tcp://HOST:PORT`, ...
    pub host: String,
    /// What chose it.
    pub origin: Origin,
}

/// What chose the engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `DOCKER_HOST`.
    DockerHost,
    /// The docker context of this name, named by `DOCKER_CONTEXT`
    /// (`from_env`) or by the CLI configuration's `currentContext`.
    Context {
        /// The context's name.
        name: String,
        /// Named by `DOCKER_CONTEXT` rather than by `currentContext`.
        from_env: bool,
    },
    /// Nothing: the default address.
    Default,
}

impl Origin {
    /// How to say where the address came from, for a hint.
    pub fn describe(&self) -> String {
        match self {
            Origin::DockerHost => "DOCKER_HOST".to_owned(),
            Origin::Context {
                name,
                from_env: true,
            } => format!("docker context '{name}' (named by DOCKER_CONTEXT)"),
            Origin::Context { name, .. } => {
                format!(
                    "docker context '{name}' (the current context in the docker CLI's config.json)"
                )
            }
            Origin::Default => "the default address".to_owned(),
        }
    }
}

/// The docker CLI's configuration directory: `DOCKER_CONFIG`, else `HOME/.docker`.
fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => env("HOME").map(|home| Path::new(&home).join(".docker")),
    }
}

/// Resolves the engine address from the variables `env` gives (non-empty values only
/// count) and the files they point at.
pub fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, BackendError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(host) = env("DOCKER_HOST") {
        return Ok(Endpoint {
            host,
            origin: Origin::DockerHost,
        });
    }
    let dir = config_dir(&env);
    let (name, from_env) = match env("DOCKER_CONTEXT") {
        Some(name) => (name, true),
        None => match dir.as_deref().map(current_context).transpose()?.flatten() {
            Some(name) => (name, false),
            None => {
                return Ok(Endpoint {
                    host: DEFAULT_HOST.to_owned(),
                    origin: Origin::Default,
                })
            }
        },
    };
    let origin = Origin::Context {
        name: name.clone(),
        from_env,
    };
    if name == "default" {
        return Ok(Endpoint {
            host: DEFAULT_HOST.to_owned(),
            origin,
        });
    }
    let Some(dir) = dir else {
        return Err(context_error(
            &origin,
            "neither DOCKER_CONFIG nor HOME is set, so its definition cannot be found".into(),
        ));
    };
    let meta = dir
        .join("contexts")
        .join("meta")
        .join(format!("{:x}", Sha256::digest(name.as_bytes())))
        .join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        context_error(
            &origin,
            format!("cannot read its definition {}: {e}", meta.display()),
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        context_error(
            &origin,
            format!("its definition {} is not JSON: {e}", meta.display()),
        )
    })?;
    match json
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
    {
        Some(host) if !host.is_empty() => Ok(Endpoint {
            host: host.to_owned(),
            origin,
        }),
        _ => Err(context_error(
            &origin,
            format!(
                "its definition {} has no docker endpoint (Endpoints.docker.Host)",
                meta.display()
            ),
        )),
    }
}

/// `currentContext` of `dir/config.json`; `None` when the file or the key is absent.
fn current_context(dir: &Path) -> Result<Option<String>, BackendError> {
    let file = dir.join("config.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BackendError::Unavailable {
                message: format!(
                    "cannot read the docker CLI's configuration {}: {e}",
                    file.display()
                ),
                hint: "make it readable, or set DOCKER_HOST to choose the engine".to_owned(),
            })
        }
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BackendError::Unavailable {
            message: format!(
                "the docker CLI's configuration {} is not JSON: {e}",
                file.display()
            ),
            hint: "fix the file, or set DOCKER_HOST to choose the engine".to_owned(),
        })?;
    Ok(json
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_owned))
}

fn context_error(origin: &Origin, why: String) -> BackendError {
    BackendError::Unavailable {
        message: format!("cannot use {}: {why}", origin.describe()),
        hint: "`docker context ls` lists the contexts; choose one with DOCKER_CONTEXT or `docker context use`, or set DOCKER_HOST".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A home with a docker config naming `current` and a context `remote`.
    fn home(current: Option<&str>) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        // sha256("remote") (`printf remote | sha256sum`), as the docker CLI names it.
        let meta = docker
            .join("contexts/meta/b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.9.8.7:2375","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        if let Some(c) = current {
            std::fs::write(
                docker.join("config.json"),
                format!(r#"{{"auths":{{}},"currentContext":"{c}"}}"#),
            )
            .unwrap();
        }
        home
    }

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Endpoint, BackendError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&|name| vars.get(name).cloned())
    }

    #[test]
    fn docker_context_names_the_endpoint() {
        let h = home(None);
        let home = h.path().to_str().unwrap();
        let e = resolve_with(&[("HOME", home), ("DOCKER_CONTEXT", "remote")]).unwrap();
        assert_eq!(e.host, "tcp://10.9.8.7:2375");
        assert_eq!(
            e.origin,
            Origin::Context {
                name: "remote".into(),
                from_env: true
            }
        );
    }

    #[test]
    fn the_current_context_of_the_config_is_used() {
        let h = home(Some("remote"));
        let home = h.path().to_str().unwrap();
        let e = resolve_with(&[("HOME", home)]).unwrap();
        assert_eq!(e.host, "tcp://10.9.8.7:2375");
        assert!(matches!(
            e.origin,
            Origin::Context {
                from_env: false,
                ..
            }
        ));
        // DOCKER_CONTEXT wins over the config; `default` is the default socket.
        let e = resolve_with(&[("HOME", home), ("DOCKER_CONTEXT", "default")]).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        // DOCKER_CONFIG moves the configuration directory.
        let e = resolve_with(&[
            ("HOME", "/nonexistent"),
            ("DOCKER_CONFIG", h.path().join(".docker").to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(e.host, "tcp://10.9.8.7:2375");
    }

    #[test]
    fn docker_host_wins_over_every_context() {
        let h = home(Some("remote"));
        let home = h.path().to_str().unwrap();
        let e = resolve_with(&[
            ("HOME", home),
            ("DOCKER_CONTEXT", "remote"),
            ("DOCKER_HOST", "unix:///run/other.sock"),
        ])
        .unwrap();
        assert_eq!(e.host, "unix:///run/other.sock");
        assert_eq!(e.origin, Origin::DockerHost);
    }

    #[test]
    fn nothing_set_is_the_default_socket() {
        let h = home(None);
        let home = h.path().to_str().unwrap();
        for vars in [
            &[("HOME", home)][..],
            &[],
            &[("HOME", home), ("DOCKER_HOST", "")],
        ] {
            let e = resolve_with(vars).unwrap();
            assert_eq!(e.host, DEFAULT_HOST);
            assert_eq!(e.origin, Origin::Default);
        }
    }

    #[test]
    fn an_unknown_context_is_a_clear_error() {
        let h = home(None);
        let home = h.path().to_str().unwrap();
        let e = resolve_with(&[("HOME", home), ("DOCKER_CONTEXT", "nope")]).unwrap_err();
        let BackendError::Unavailable { message, hint } = &e else {
            panic!("{e:?}");
        };
        assert!(
            message.starts_with("cannot use docker context 'nope' (named by DOCKER_CONTEXT): cannot read its definition "),
            "{message}"
        );
        assert!(message.contains("/.docker/contexts/meta/"), "{message}");
        assert!(hint.contains("docker context ls"), "{hint}");
        // A broken config.json is named too.
        std::fs::write(h.path().join(".docker/config.json"), "{").unwrap();
        let e = resolve_with(&[("HOME", home)]).unwrap_err().to_string();
        assert!(e.contains("config.json is not JSON"), "{e}");
    }
}
