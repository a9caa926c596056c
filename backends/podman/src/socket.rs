//! Where the libpod API socket is, and what to say when there is none.
//!
//! Order: `CONTAINER_HOST`, then the caller's setting (manifest or config file), then the
//! default for who we are: `$XDG_RUNTIME_DIR/podman/podman.sock` for an ordinary user
//! (`/run/user/UID/...` when `XDG_RUNTIME_DIR` is unset), `/run/podman/podman.sock` for
//! root. The first one that is *set* wins, whether or not a socket is there: an explicit
//! choice never silently falls through to another engine.

use std::fmt;
use std::path::{Path, PathBuf};

/// The socket root's podman service listens on by default.
pub const ROOT_SOCKET: &str = "/run/podman/podman.sock";

/// Where an address came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `CONTAINER_HOST` environment variable.
    ContainerHost,
    /// The caller's setting (manifest, config file, command line).
    Setting,
    /// The user's runtime directory (`XDG_RUNTIME_DIR`, or `/run/user/UID`).
    UserDefault,
    /// Root's default, [`ROOT_SOCKET`].
    RootDefault,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::ContainerHost => "from CONTAINER_HOST",
            Source::Setting => "from bottle's podman socket setting",
            Source::UserDefault => "the rootless default",
            Source::RootDefault => "the rootful default",
        })
    }
}

/// An API address: a unix socket or a TCP host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix://PATH`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT` (also written `http://HOST:PORT`).
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp(h) => write!(f, "tcp://{h}"),
        }
    }
}

/// Parses `unix://PATH`, `tcp://HOST:PORT`, `http://HOST:PORT`, or a bare absolute path.
pub fn parse(address: &str) -> Result<Address, String> {
    if let Some(path) = address.strip_prefix("unix://") {
        if path.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        return Err(format!(
            "'{address}' is not an absolute socket path (want unix:///PATH)"
        ));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(host) = address.strip_prefix(scheme) {
            let host = host.trim_end_matches('/');
            if host.is_empty() || host.contains('/') {
                return Err(format!("'{address}' has no HOST:PORT"));
            }
            return Ok(Address::Tcp(host.to_owned()));
        }
    }
    if address.starts_with('/') {
        return Ok(Address::Unix(PathBuf::from(address)));
    }
    if let Some((scheme, _)) = address.split_once("://") {
        return Err(format!(
            "bottle cannot use '{scheme}://' podman addresses such as '{address}'; use unix:///PATH/podman.sock (on a remote host, forward its socket, e.g. `ssh -L /tmp/podman.sock:/run/podman/podman.sock HOST`) or tcp://HOST:PORT"
        ));
    }
    Err(format!(
        "'{address}' is not a podman address (want unix:///PATH/podman.sock or tcp://HOST:PORT)"
    ))
}

/// What [`discover`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The address (or why it cannot be used).
    pub address: Result<Address, String>,
    /// The text it was given as, or the default path.
    pub given: String,
    /// Where it came from.
    pub source: Source,
}

/// Chooses the API address from the environment (`env`), the caller's `setting` and
/// whether we run as root (`uid` 0). Pure: the tests drive it with their own values.
pub fn discover(env: &dyn Fn(&str) -> Option<String>, setting: Option<&str>, uid: u32) -> Choice {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let explicit = set(env("CONTAINER_HOST"))
        .map(|v| (v, Source::ContainerHost))
        .or_else(|| set(setting.map(str::to_owned)).map(|v| (v, Source::Setting)));
    if let Some((given, source)) = explicit {
        return Choice {
            address: parse(given.trim()),
            given,
            source,
        };
    }
    let (path, source) = if uid == 0 {
        (PathBuf::from(ROOT_SOCKET), Source::RootDefault)
    } else {
        let run = set(env("XDG_RUNTIME_DIR"))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{uid}")));
        (run.join("podman").join("podman.sock"), Source::UserDefault)
    };
    Choice {
        given: path.display().to_string(),
        address: Ok(Address::Unix(path)),
        source,
    }
}

/// How to start a podman API service on `path` (or to point bottle at one), for who we
/// are (`uid`).
pub fn start_hint(path: Option<&Path>, uid: u32) -> String {
    let default;
    let path = match path {
        Some(p) => p,
        None => {
            default = PathBuf::from(ROOT_SOCKET);
            &default
        }
    };
    let systemd = if uid == 0 {
        "`systemctl enable --now podman.socket`".to_owned()
    } else {
        "`systemctl --user enable --now podman.socket`".to_owned()
    };
    let mut hint = format!(
        "start podman's API service: `podman system service --time=0 unix://{} &` (or, with systemd, {systemd})",
        path.display()
    );
    if uid != 0 {
        hint.push_str(
            "; as an ordinary user, XDG_RUNTIME_DIR must name your runtime directory (0700, yours); `sudo scripts/setup-podman.sh --rootless $USER` prepares all of it",
        );
    }
    hint.push_str("; or set CONTAINER_HOST=unix:///PATH/podman.sock to a running service");
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn container_host_wins_then_the_setting_then_the_default() {
        let e = env(&[
            ("CONTAINER_HOST", "unix:///a.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/7"),
        ]);
        let c = discover(&e, Some("/b.sock"), 7);
        assert_eq!(c.address, Ok(Address::Unix("/a.sock".into())));
        assert_eq!(c.source, Source::ContainerHost);

        let e = env(&[("CONTAINER_HOST", ""), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        let c = discover(&e, Some("unix:///b.sock"), 7);
        assert_eq!(c.address, Ok(Address::Unix("/b.sock".into())));
        assert_eq!(c.source, Source::Setting);

        let c = discover(&e, None, 7);
        assert_eq!(
            c.address,
            Ok(Address::Unix("/run/user/7/podman/podman.sock".into()))
        );
        assert_eq!(c.source, Source::UserDefault);

        let c = discover(&env(&[]), None, 1234);
        assert_eq!(
            c.address,
            Ok(Address::Unix("/run/user/1234/podman/podman.sock".into()))
        );

        let c = discover(&env(&[("XDG_RUNTIME_DIR", "/run/user/0")]), None, 0);
        assert_eq!(c.address, Ok(Address::Unix(ROOT_SOCKET.into())));
        assert_eq!(c.source, Source::RootDefault);
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(parse("tcp://h:1"), Ok(Address::Tcp("h:1".into())));
        assert_eq!(parse("http://h:1/"), Ok(Address::Tcp("h:1".into())));
        assert_eq!(parse("/x.sock"), Ok(Address::Unix("/x.sock".into())));
        assert!(parse("unix://rel.sock").is_err());
        assert!(parse("ssh://core@h/run/podman/podman.sock")
            .unwrap_err()
            .contains("ssh://"));
        assert!(parse("nonsense").is_err());
    }

    #[test]
    fn hints_say_how_to_start_a_service() {
        let h = start_hint(Some(Path::new("/run/user/5/podman/podman.sock")), 5);
        assert!(h.contains("podman system service --time=0 unix:///run/user/5/podman/podman.sock"));
        assert!(h.contains("systemctl --user enable --now podman.socket"));
        assert!(h.contains("XDG_RUNTIME_DIR"));
        let h = start_hint(None, 0);
        assert!(h.contains("systemctl enable --now podman.socket"));
        assert!(h.contains("CONTAINER_HOST"));
    }
}
