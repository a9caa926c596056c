//! Fixtures shared by core's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bottle_core::manifest::{self, Env, Manifest};

/// A fixed host key, so snapshots are stable.
pub const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// A directory with an identity file at a fixed-looking path.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        bottle_test_keys::write_identity_key(&dir.path().join("id_app"));
        Fixture { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("bottle.toml")
    }

    /// Parses `text` as if it were `bottle.toml` in the fixture's directory.
    pub fn parse(&self, text: &str) -> Result<Manifest, bottle_core::diag::ManifestError> {
        manifest::parse(
            &self.manifest_path(),
            text,
            &Env {
                home: Some(self.dir.path().to_path_buf()),
            },
        )
    }
}

/// The example manifest used across tests (the identity file is relative to the manifest).
pub fn example() -> String {
    format!(
        r#"
[settings]
backend = "dry-run"

[bottles.demo]
image = "bottle-agent:latest"
command = ["sleep", "infinity"]
env = {{ TERM = "xterm" }}

[[bottles.demo.git]]
name = "app"
upstream = "ssh://git@git.example.com:2222/team/app.git"
identity_file = "id_app"
known_host_key = "{HOST_KEY}"
extra_hosts = {{ "git.example.com" = "10.1.2.3" }}

[[bottles.demo.git]]
name = "lib"
upstream = "git@git.example.com:team/lib.git"
identity_file = "~/id_app"
known_host_key = "{HOST_KEY} comment"
"#
    )
}
