//! Which backend to use, and where that choice came from.
//!
//! Precedence, first found wins: `--backend` (or `--dry-run`), `BOTTLE_BACKEND`, the
//! manifest's `[settings] backend`, `backend` in `$XDG_CONFIG_HOME/bottle/config.toml`
//! (`~/.config/...` when unset), and finally `docker`.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// The backend used when nothing names one.
pub const DEFAULT_BACKEND: &str = "docker";

/// Where the backend's name came from; shown in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--backend` or `--dry-run`.
    Flag,
    /// `BOTTLE_BACKEND`.
    Env,
    /// The manifest's `[settings] backend`, at this location.
    Manifest(String),
    /// The user's config file.
    ConfigFile(PathBuf),
    /// Nothing named one.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("from --backend"),
            Source::Env => f.write_str("from BOTTLE_BACKEND"),
            Source::Manifest(at) => write!(f, "from [settings] backend at {at}"),
            Source::ConfigFile(p) => write!(f, "from {}", p.display()),
            Source::Default => f.write_str("the default"),
        }
    }
}

/// The user's config file, `$XDG_CONFIG_HOME/bottle/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The backend to use.
    pub backend: Option<String>,
    /// The podman API socket, for the podman backend.
    pub podman_socket: Option<String>,
}

/// The path of the user's config file, if a home or XDG_CONFIG_HOME is known.
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bottle").join("config.toml"))
}

/// Reads the user's config file; a missing file is an empty config.
pub fn load_user_config(path: &std::path::Path) -> anyhow::Result<UserConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {}\n  hint: the file holds backend = \"NAME\" and podman_socket = \"unix:///PATH\", both optional",
                path.display(),
                e.message()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Picks the backend's name from the sources in order of precedence.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    manifest: Option<(&str, String)>,
    user: Option<(&str, PathBuf)>,
) -> (String, Source) {
    if let Some(name) = flag {
        return (name.to_owned(), Source::Flag);
    }
    if let Some(name) = env.filter(|n| !n.is_empty()) {
        return (name.to_owned(), Source::Env);
    }
    if let Some((name, at)) = manifest {
        return (name.to_owned(), Source::Manifest(at));
    }
    if let Some((name, path)) = user {
        return (name.to_owned(), Source::ConfigFile(path));
    }
    (DEFAULT_BACKEND.to_owned(), Source::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let m = || Some(("m", "bottle.toml:2:11".to_owned()));
        let u = || Some(("u", PathBuf::from("/c")));
        assert_eq!(resolve(Some("f"), Some("e"), m(), u()).0, "f");
        assert_eq!(resolve(None, Some("e"), m(), u()).0, "e");
        assert_eq!(resolve(None, Some(""), m(), u()).0, "m");
        assert_eq!(resolve(None, None, m(), u()).0, "m");
        assert_eq!(
            resolve(None, None, None, u()),
            ("u".to_owned(), Source::ConfigFile("/c".into()))
        );
        assert_eq!(
            resolve(None, None, None, None),
            ("docker".to_owned(), Source::Default)
        );
    }
}
