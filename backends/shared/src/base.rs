//! Where the root filesystem of bottle's base images comes from.
//!
//! The built-in Dockerfiles build `FROM bottle-base:bookworm` ([`DEFAULT_BASE_IMAGE`]; the
//! upstream fixture from [`SSHD_BASE_IMAGE`]). No registry is needed: when the engine lacks
//! such a base, the backend imports a root filesystem tarball through its API. This module
//! finds or makes that tarball ([`base_rootfs`]), in this order:
//!
//! 1. **Prepared**: `NAME.tar` and `NAME.changes` (the image name with `:` and `/` as `_`)
//!    in `BOTTLE_ROOTFS_DIR` (default [`DEFAULT_ROOTFS_DIR`]), as written once by
//!    `scripts/setup-podman.sh --rootfs` (as root). Any user may import them: this is how
//!    rootless podman gets its base images without root at run time.
//! 2. **Made now**: the embedded `gate-image/base/make-base.sh --tar-out` (debootstrap; root
//!    and the Debian mirror needed; a few minutes). The changes are what it prints.
//!
//! Neither: an error that says how to prepare one.

use std::path::{Path, PathBuf};

use bottle_core::backend::BackendError;

use crate::images::{RootfsSource, DEFAULT_BASE_IMAGE, SSHD_BASE_IMAGE};

/// The script that makes a base image's root filesystem, compiled in.
const MAKE_BASE_SCRIPT: &str = include_str!("../../../gate-image/base/make-base.sh");

/// The environment variable naming the directory of prepared rootfs tarballs.
pub const ROOTFS_DIR_ENV: &str = "BOTTLE_ROOTFS_DIR";
/// Where prepared rootfs tarballs are looked for when `BOTTLE_ROOTFS_DIR` is unset.
pub const DEFAULT_ROOTFS_DIR: &str = "/var/lib/bottle/rootfs";

/// Whether bottle knows how to make the base image `name` (else the engine pulls it).
pub fn is_builtin_base(name: &str) -> bool {
    name == DEFAULT_BASE_IMAGE || name == SSHD_BASE_IMAGE
}

/// The directory of prepared rootfs tarballs: `BOTTLE_ROOTFS_DIR`, else
/// [`DEFAULT_ROOTFS_DIR`].
pub fn rootfs_dir() -> PathBuf {
    std::env::var_os(ROOTFS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS_DIR))
}

/// The file stem of the prepared tarball of image `name`: `bottle-base:bookworm` ->
/// `bottle-base_bookworm`.
pub fn rootfs_file_stem(name: &str) -> String {
    name.replace([':', '/'], "_")
}

/// A root filesystem ready to import.
#[derive(Debug)]
pub struct BaseRootfs {
    /// The tarball.
    pub source: RootfsSource,
    /// Dockerfile changes to apply on import (`ENV PATH=...`, `LABEL ...`, `CMD [...]`).
    pub changes: Vec<String>,
    /// Where it came from, for progress messages.
    pub origin: String,
    /// Keeps a freshly made tarball's directory until the import is done.
    _tmp: Option<tempfile::TempDir>,
}

/// The hint for a missing base image that bottle cannot make here.
pub fn manual_hint() -> String {
    format!(
        "prepare it once as root with `sudo scripts/setup-podman.sh --rootfs` (writes the rootfs tarballs to {} or $BOTTLE_ROOTFS_DIR, which bottle imports as any user), or make it by hand with `sudo sh gate-image/base/make-base.sh`, or set BOTTLE_BASE_IMAGE to an image you have (e.g. debian:bookworm-slim where a registry is reachable)",
        DEFAULT_ROOTFS_DIR
    )
}

/// The prepared tarball of image `name` in [`rootfs_dir`], if both its files are there.
pub fn prepared_rootfs(name: &str) -> Result<Option<BaseRootfs>, BackendError> {
    prepared_rootfs_in(&rootfs_dir(), name)
}

/// [`prepared_rootfs`] in `dir`.
pub fn prepared_rootfs_in(dir: &Path, name: &str) -> Result<Option<BaseRootfs>, BackendError> {
    let stem = rootfs_file_stem(name);
    let tar = dir.join(format!("{stem}.tar"));
    let changes = dir.join(format!("{stem}.changes"));
    if !tar.is_file() || !changes.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&changes)
        .map_err(|e| BackendError::Other(format!("cannot read {}: {e}", changes.display())))?;
    Ok(Some(BaseRootfs {
        origin: tar.display().to_string(),
        source: RootfsSource::File(tar),
        changes: parse_changes(&text),
        _tmp: None,
    }))
}

fn parse_changes(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The root filesystem of base image `name`: prepared, else made now (see the module
/// docs). `progress` receives make-base.sh's output line by line.
pub async fn base_rootfs(
    name: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<BaseRootfs, BackendError> {
    if let Some(prepared) = prepared_rootfs(name)? {
        return Ok(prepared);
    }
    make_rootfs(name, progress).await
}

/// Makes the root filesystem of base image `name` with the embedded
/// `make-base.sh --tar-out` (root and debootstrap required; takes minutes and reaches the
/// Debian mirror), in a temporary directory under `TMPDIR` (default `/var/tmp`).
pub async fn make_rootfs(
    name: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<BaseRootfs, BackendError> {
    let manual = manual_hint();
    let script = MAKE_BASE_SCRIPT;
    if !rustix::process::geteuid().is_root() {
        return Err(BackendError::Other(format!(
            "the base image {name} is missing, there is no prepared rootfs for it in {}, and making one (debootstrap) needs root\n  hint: {manual}",
            rootfs_dir().display()
        )));
    }
    let tmp_root = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let tmp = tempfile::Builder::new()
        .prefix("bottle-base-")
        .tempdir_in(&tmp_root)
        .map_err(|e| {
            BackendError::Other(format!(
                "cannot make a temporary directory in {}: {e}",
                tmp_root.display()
            ))
        })?;
    let script_path = tmp.path().join("make-base.sh");
    std::fs::write(&script_path, script)
        .map_err(|e| BackendError::Other(format!("cannot write {}: {e}", script_path.display())))?;
    let tar_path = tmp.path().join("rootfs.tar");

    progress(&format!(
        "bottle: base image {name} is missing; making it with debootstrap (a few minutes)"
    ));
    let mut child = tokio::process::Command::new("sh")
        .arg(&script_path)
        .arg("--name")
        .arg(name)
        .args(if name == SSHD_BASE_IMAGE {
            &["--include", "openssh-server"][..]
        } else {
            &[]
        })
        .arg("--tar-out")
        .arg(&tar_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BackendError::Other(format!("cannot run sh: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let read_stdout = async {
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stdout), &mut out)
            .await
            .map(|_| out)
    };
    let read_stderr = async {
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
        let mut tail: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            progress(&line);
            tail.push(line);
            if tail.len() > 15 {
                tail.remove(0);
            }
        }
        tail
    };
    let (out, tail, status) = tokio::join!(read_stdout, read_stderr, child.wait());
    let status = status.map_err(|e| BackendError::Other(format!("make-base.sh: {e}")))?;
    if !status.success() {
        return Err(BackendError::Other(format!(
            "making the base image {name} failed (make-base.sh: {status}):\n    {}\n  hint: {manual}",
            tail.join("\n    ")
        )));
    }
    Ok(BaseRootfs {
        origin: "make-base.sh".to_owned(),
        source: RootfsSource::File(tar_path),
        changes: parse_changes(&out.unwrap_or_default()),
        _tmp: Some(tmp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_tarballs_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepared_rootfs_in(dir.path(), DEFAULT_BASE_IMAGE)
            .unwrap()
            .is_none());
        std::fs::write(dir.path().join("bottle-base_bookworm.tar"), b"tar").unwrap();
        // The changes file is part of it: without, nothing is found.
        assert!(prepared_rootfs_in(dir.path(), DEFAULT_BASE_IMAGE)
            .unwrap()
            .is_none());
        std::fs::write(
            dir.path().join("bottle-base_bookworm.changes"),
            "ENV PATH=/bin\n\nLABEL a=b\n",
        )
        .unwrap();
        let got = prepared_rootfs_in(dir.path(), DEFAULT_BASE_IMAGE)
            .unwrap()
            .unwrap();
        assert_eq!(got.changes, vec!["ENV PATH=/bin", "LABEL a=b"]);
        assert!(
            matches!(got.source, RootfsSource::File(ref p) if p.ends_with("bottle-base_bookworm.tar"))
        );
        assert_eq!(rootfs_file_stem("reg/x:1"), "reg_x_1");
        assert!(is_builtin_base(SSHD_BASE_IMAGE) && !is_builtin_base("debian:bookworm"));
    }
}
