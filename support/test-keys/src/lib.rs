//! An identity key for tests that plan a bottle with a git upstream.
//!
//! The planner refuses an `identity_file` that is not an unprotected private key ssh can
//! read, so a placeholder text no longer does. The key is made by `ssh-keygen` once per
//! test process rather than committed: a private key in the tree would be refused by the
//! very gate this project builds (and by any other secret scanner).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// An unprotected ed25519 private key in OpenSSH's format.
pub struct IdentityKey {
    /// The private key file's bytes.
    pub bytes: Vec<u8>,
    /// A line of the key's body: output that contains it has printed the key.
    pub mark: String,
}

/// The process's identity key, made on first use.
///
/// # Panics
/// When `ssh-keygen` is missing or fails: the tests cannot run without it.
pub fn identity_key() -> &'static IdentityKey {
    static KEY: OnceLock<IdentityKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bottle-test", "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen runs (Debian: openssh-client)");
        assert!(out.status.success(), "ssh-keygen failed: {out:?}");
        let bytes = std::fs::read(&path).expect("ssh-keygen wrote the key");
        let text = String::from_utf8(bytes.clone()).expect("an OpenSSH key is text");
        let mark = text.lines().nth(1).expect("the key has a body").to_owned();
        IdentityKey { bytes, mark }
    })
}

/// Writes [`identity_key`] to `path`, readable by its owner only (as ssh wants it).
///
/// # Panics
/// When the file cannot be written.
pub fn write_identity_key(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, &identity_key().bytes).expect("the identity key is written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("the identity key's mode is set");
}

/// `text` with every copy of the key (as it is, and in base64) replaced by a placeholder:
/// for snapshots, since the key differs from run to run.
pub fn redact(text: &str) -> String {
    use base64::Engine as _;
    let key = identity_key();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key.bytes);
    text.replace(&b64, "<the identity key, base64>")
        .replace(&*String::from_utf8_lossy(&key.bytes), "<the identity key>")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_is_a_private_key_and_its_mark_is_in_it() {
        let key = super::identity_key();
        let text = String::from_utf8_lossy(&key.bytes);
        assert!(
            text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            "{text}"
        );
        assert!(key.mark.len() >= 40 && text.contains(&key.mark));
        assert!(std::ptr::eq(key, super::identity_key()), "made once");
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&key.bytes)
        };
        assert_eq!(
            super::redact(&format!("a {b64} b {text} c")),
            "a <the identity key, base64> b <the identity key> c"
        );
    }
}
