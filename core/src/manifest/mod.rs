//! The manifest, `bottle.toml`: parsing and validation.
//!
//! Parsing happens in two steps. serde reads the file into raw types that keep the byte span
//! of every field (`toml::Spanned`), rejecting unknown keys and wrong types; then
//! [`validate`] checks every value and turns the raw types into the [`Manifest`] model,
//! collecting *all* problems rather than stopping at the first. Every problem is a
//! [`Diagnostic`] naming the file, line, column, field and what to do. Nothing here panics on
//! any input: a property test feeds it arbitrary TOML.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, Location, ManifestError};
use crate::interp::Template;

mod cred;
mod keys;
pub use cred::{CredProxy, CredRoute, SecretSource};

/// The manifest's file name, looked for in the current directory.
pub const MANIFEST_FILE: &str = "bottle.toml";

/// The bottle `up` acts on when no name is given and the manifest has several.
pub const DEFAULT_BOTTLE: &str = "default";

// ---------------------------------------------------------------------------------------
// Raw form: what serde reads, with spans.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    bottles: BTreeMap<Spanned<String>, Spanned<RawBottle>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    backend: Option<Spanned<String>>,
    podman_socket: Option<Spanned<String>>,
    project: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBottle {
    image: Spanned<String>,
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    env_file: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    pids_limit: Option<Spanned<i64>>,
    #[serde(default)]
    cap_add: Vec<Spanned<String>>,
    gate_memory: Option<Spanned<String>>,
    #[serde(default)]
    git: Vec<Spanned<RawGit>>,
    egress: Option<Spanned<RawEgress>>,
    cred_proxy: Option<Spanned<cred::RawCredProxy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    allow_private: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGit {
    name: Spanned<String>,
    upstream: Spanned<String>,
    identity_file: Spanned<String>,
    known_host_key: Option<Spanned<String>>,
    #[serde(default)]
    extra_hosts: BTreeMap<Spanned<String>, Spanned<String>>,
    max_push_mb: Option<Spanned<i64>>,
    max_scan_mb: Option<Spanned<i64>>,
    scan_timeout_s: Option<Spanned<i64>>,
    max_archive_depth: Option<Spanned<i64>>,
    #[serde(default)]
    accept_fingerprints: Vec<Spanned<String>>,
    #[serde(default)]
    accept_paths: Vec<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// Model: what the rest of bottle uses.

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[settings]`.
    pub settings: Settings,
    /// `[bottles.<name>]`, by name.
    pub bottles: BTreeMap<String, Bottle>,
}

/// `[settings]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// The backend to use unless `--backend` or `BOTTLE_BACKEND` say otherwise.
    pub backend: Option<Located<String>>,
    /// The podman API socket (`unix:///path` or a path), unless `CONTAINER_HOST` is set.
    pub podman_socket: Option<String>,
    /// The project ([`crate::project`]) unless `--project-name` or `BOTTLE_PROJECT` say
    /// otherwise; a valid project name.
    pub project: Option<Located<crate::project::Project>>,
}

/// A value with the place in the manifest it came from, for errors found after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub location: Location,
    /// Its dotted field path.
    pub field: String,
}

impl<T> Located<T> {
    /// A [`Diagnostic`] about this value.
    pub fn diagnostic(&self, message: impl Into<String>, hint: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.location.clone(),
            field: self.field.clone(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// One `[bottles.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bottle {
    /// The bottle's name (the table key).
    pub name: String,
    /// The agent's image.
    pub image: String,
    /// The agent's command; the image's default when `None`.
    pub command: Option<Vec<String>>,
    /// The agent's environment as written: literals, and `${VAR}` references read from
    /// the environment of `bottle up` at plan time ([`crate::interp`]).
    pub env: BTreeMap<String, Located<Template>>,
    /// `env_file`: a compose-style `.env` file (`~` expanded, relative to the manifest's
    /// directory) whose variables the agent also gets; `env` wins on a clash. Read at plan
    /// time; its values are host secrets like `${VAR}` ones.
    pub env_file: Option<Located<PathBuf>>,
    /// The agent's memory limit in bytes, if set.
    pub memory_bytes: Option<i64>,
    /// The agent's process limit, if set.
    pub pids_limit: Option<i64>,
    /// Capabilities given back to the agent after all are dropped.
    pub cap_add: Vec<String>,
    /// The gate's memory limit in bytes, if set.
    pub gate_memory_bytes: Option<i64>,
    /// The git upstreams the gate fronts, in manifest order.
    pub git: Vec<GitUpstream>,
    /// `[bottles.<name>.egress]`: what the egress proxy lets the agent reach.
    pub egress: Egress,
    /// `[bottles.<name>.cred_proxy]`: the routes that add API keys outside the bottle.
    pub cred_proxy: CredProxy,
}

/// `[bottles.<name>.egress]`: the egress proxy's lists, each entry checked with the
/// proxy's own parser (so what validates here is what the proxy accepts). Empty lists
/// (the default) refuse everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Egress {
    /// Hosts the agent may reach: `host`, `*.suffix`, an IP literal, each optionally
    /// `:port`; bare means ports 443 and 80.
    pub allow: Vec<Located<String>>,
    /// Hosts refused even when allowed (checked first); bare means every port.
    pub deny: Vec<Located<String>>,
    /// Hosts that may resolve to private, loopback or link-local addresses.
    pub allow_private: Vec<Located<String>>,
}

impl Egress {
    /// The entries of `list`, as written.
    pub fn texts(list: &[Located<String>]) -> Vec<String> {
        list.iter().map(|e| e.value.clone()).collect()
    }
}

/// One `[[bottles.<name>.git]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUpstream {
    /// The bare repository's name on the gate (`/git/<name>.git`).
    pub name: String,
    /// The upstream URL exactly as written (ssh:// or scp form).
    pub url: String,
    /// The upstream's host, from the URL.
    pub host: String,
    /// The upstream's port, from the URL; `None` means ssh's default, 22.
    pub port: Option<u16>,
    /// The identity file on the host, `~` expanded and made absolute against the
    /// manifest's directory. Read at plan time.
    pub identity_file: Located<PathBuf>,
    /// The upstream's pinned host key, `<type> <base64>` (comment dropped).
    pub known_host_key: Option<String>,
    /// Host name to address entries for the gate's `/etc/hosts`.
    pub extra_hosts: BTreeMap<String, IpAddr>,
    /// How the gate scans pushes to this upstream: its limits and accepted findings.
    pub scan: GitScan,
}

/// The push scan's settings of one git entry (`max_push_mb`, ..., `accept_paths`). The
/// defaults are the scanner's own (`bottle-gate-scan`); the gate passes every value
/// explicitly, so what the manifest says is what the scan uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitScan {
    /// Most MiB of new objects (uncompressed) one push may bring (`max_push_mb`); also the
    /// pack size git itself accepts (`receive.maxInputSize`).
    pub max_push_mb: u64,
    /// Most MiB scanned, decoded and decompressed views included (`max_scan_mb`).
    pub max_scan_mb: u64,
    /// Longest a scan may take, in seconds (`scan_timeout_s`).
    pub scan_timeout_s: u64,
    /// Deepest nesting of archives opened (`max_archive_depth`); deeper refuses the push.
    pub max_archive_depth: u64,
    /// Findings accepted by fingerprint, as a refusal prints them.
    pub accept_fingerprints: Vec<String>,
    /// Findings accepted in files whose every path in the push matches one of these
    /// regexes (checked to compile).
    pub accept_paths: Vec<String>,
}

impl GitScan {
    /// `max_push_mb` unless set.
    pub const MAX_PUSH_MB: u64 = 256;
    /// `max_scan_mb` unless set.
    pub const MAX_SCAN_MB: u64 = 1024;
    /// `scan_timeout_s` unless set.
    pub const SCAN_TIMEOUT_S: u64 = 300;
    /// `max_archive_depth` unless set.
    pub const MAX_ARCHIVE_DEPTH: u64 = 4;
}

impl Default for GitScan {
    fn default() -> Self {
        GitScan {
            max_push_mb: Self::MAX_PUSH_MB,
            max_scan_mb: Self::MAX_SCAN_MB,
            scan_timeout_s: Self::SCAN_TIMEOUT_S,
            max_archive_depth: Self::MAX_ARCHIVE_DEPTH,
            accept_fingerprints: Vec::new(),
            accept_paths: Vec::new(),
        }
    }
}

impl GitUpstream {
    /// The upstream's line for an OpenSSH `known_hosts` file, if a key is pinned.
    /// Non-default ports use the `[host]:port` form OpenSSH itself writes.
    pub fn known_hosts_line(&self) -> Option<String> {
        let key = self.known_host_key.as_ref()?;
        let target = match self.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.host),
            _ => self.host.clone(),
        };
        Some(format!("{target} {key}\n"))
    }
}

impl Manifest {
    /// Picks the bottle a command acts on: the named one; else the only one; else `default`.
    pub fn select(&self, name: Option<&str>) -> Result<&Bottle, SelectError> {
        let known = || self.bottles.keys().cloned().collect::<Vec<_>>();
        match name {
            Some(name) => self.bottles.get(name).ok_or_else(|| SelectError::Unknown {
                name: name.to_owned(),
                manifest: self.path.clone(),
                known: known(),
            }),
            None if self.bottles.len() == 1 => Ok(self.bottles.values().next().expect("one")),
            None => self
                .bottles
                .get(DEFAULT_BOTTLE)
                .ok_or_else(|| SelectError::Ambiguous {
                    manifest: self.path.clone(),
                    known: known(),
                }),
        }
    }
}

/// The bottle asked for cannot be picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No bottle has that name.
    #[error("{}: no bottle named '{name}'; the manifest has: {}", manifest.display(), list(known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The manifest's path.
        manifest: PathBuf,
        /// The bottles it has.
        known: Vec<String>,
    },
    /// No name was given, and the manifest has several bottles and none named `default`.
    #[error("{}: name a bottle: the manifest has {} and none is named 'default' ({})", manifest.display(), if known.is_empty() { "no bottles".to_owned() } else { format!("{} bottles", known.len()) }, list(known))]
    Ambiguous {
        /// The manifest's path.
        manifest: PathBuf,
        /// The bottles it has.
        known: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none; add a [bottles.<name>] table".to_owned()
    } else {
        names.join(", ")
    }
}

// ---------------------------------------------------------------------------------------
// Loading.

/// The manifest could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read manifest {}: {cause}\n  hint: create one with `bottle init`, or pass --manifest PATH", path.display())]
    Io {
        /// The path tried.
        path: PathBuf,
        /// Why it failed (not a `source`: the message already says it).
        cause: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error(transparent)]
    Invalid(#[from] ManifestError),
}

/// What validation needs from the environment, passed in so that validation stays pure.
#[derive(Debug, Clone)]
pub struct Env {
    /// `$HOME`, for `~` in paths.
    pub home: Option<PathBuf>,
}

impl Env {
    /// The process's environment.
    pub fn current() -> Env {
        Env {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// Reads and validates the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|cause| LoadError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    Ok(parse(path, &source, &Env::current())?)
}

/// Parses and validates manifest text; `path` is used for messages and relative paths.
pub fn parse(path: &Path, source: &str, env: &Env) -> Result<Manifest, ManifestError> {
    // Every unknown key, wrong type and missing key at once (serde would stop at the first).
    if let Some(problems) = keys::check(source).filter(|p| !p.is_empty()) {
        return Err(ManifestError::new(
            problems
                .into_iter()
                .map(|p| Diagnostic {
                    location: Location::of_span(path, source, &p.span),
                    message: p.message,
                    hint: p.hint,
                    field: p.field,
                })
                .collect(),
        ));
    }
    let raw: RawManifest = toml::from_str(source).map_err(|e| {
        let location = Location::at(path, source, e.span().map_or(0, |s| s.start));
        let message = e.message().trim().to_owned();
        let hint = if message.contains("unknown field") {
            "remove the key or fix its spelling; docs/manifest.md lists every key".to_owned()
        } else {
            "see docs/manifest.md for the manifest's format".to_owned()
        };
        ManifestError::new(vec![Diagnostic {
            location,
            field: field_at(source, e.span()),
            message,
            hint,
        }])
    })?;
    Validator {
        path,
        source,
        env,
        diagnostics: Vec::new(),
    }
    .run(raw)
}

/// The key on the line an error points at, as a best effort field name for TOML errors.
fn field_at(source: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else {
        return "(file)".to_owned();
    };
    let start = span.start.min(source.len());
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let line = source[line_start..line_end].trim();
    match line.split_once('=') {
        Some((key, _)) => key.trim().to_owned(),
        None if line.starts_with('[') => line.trim_matches(|c| c == '[' || c == ']').to_owned(),
        None => "(value)".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Validation.

struct Validator<'a> {
    path: &'a Path,
    source: &'a str,
    env: &'a Env,
    diagnostics: Vec<Diagnostic>,
}

/// Characters allowed in a bottle name: it becomes part of container and network names and
/// of the gate's DNS name, so it is a DNS label.
fn valid_bottle_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=40).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Characters allowed in a git entry's name: it becomes a path on the gate and part of a
/// git:// URL, and is never quoted into a path component the shell could misread.
fn valid_git_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
        && !name.ends_with(".git")
        && !name.ends_with(".lock")
}

fn valid_env_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Parses a memory size as Docker writes it: bytes, or a number with `k`, `m` or `g`
/// (binary units, optional `b`/`ib` suffix).
pub fn parse_memory(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, mult) = match t.as_bytes().last()? {
        b'k' => (&t[..t.len() - 1], 1i64 << 10),
        b'm' => (&t[..t.len() - 1], 1 << 20),
        b'g' => (&t[..t.len() - 1], 1 << 30),
        b'0'..=b'9' => (t, 1),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(mult)
}

/// The smallest memory limit accepted: Docker refuses less than 6 MiB.
const MIN_MEMORY: i64 = 6 << 20;

impl Validator<'_> {
    fn loc(&self, span: &Range<usize>) -> Location {
        Location::of_span(self.path, self.source, span)
    }

    fn located<T>(&self, value: T, span: &Range<usize>, field: &str) -> Located<T> {
        Located {
            value,
            location: self.loc(span),
            field: field.to_owned(),
        }
    }

    fn error(
        &mut self,
        span: &Range<usize>,
        field: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let location = self.loc(span);
        self.diagnostics.push(Diagnostic {
            location,
            field: field.to_owned(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    fn run(mut self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        let (backend, podman_socket, project) = match raw.settings {
            Some(s) => (s.backend, s.podman_socket, s.project),
            None => (None, None, None),
        };
        let project = project.and_then(|p| {
            let span = p.span();
            match crate::project::Project::new(p.get_ref()) {
                Ok(project) => Some(self.located(project, &span, "settings.project")),
                Err(e) => {
                    self.error(
                        &span,
                        "settings.project",
                        e.to_string(),
                        "or remove it: the project is then the manifest's directory name",
                    );
                    None
                }
            }
        });
        let settings = Settings {
            backend: backend.map(|b| {
                let span = b.span();
                self.located(b.into_inner(), &span, "settings.backend")
            }),
            podman_socket: podman_socket.map(Spanned::into_inner),
            project,
        };
        let mut bottles = BTreeMap::new();
        for (name, bottle) in raw.bottles {
            let name_span = name.span();
            let name = name.into_inner();
            if !valid_bottle_name(&name) {
                self.error(
                    &name_span,
                    &format!("bottles.{name}"),
                    format!("'{}' is not a valid bottle name", name.escape_debug()),
                    "use 1 to 40 lowercase letters, digits and '-', not starting or ending with '-' (it becomes part of container and DNS names)",
                );
                continue;
            }
            if let Some(b) = self.bottle(&name, bottle) {
                bottles.insert(name, b);
            }
        }
        if self.diagnostics.is_empty() {
            Ok(Manifest {
                path: self.path.to_path_buf(),
                settings,
                bottles,
            })
        } else {
            Err(ManifestError::new(self.diagnostics))
        }
    }

    fn memory(&mut self, value: Option<Spanned<String>>, field: &str) -> Option<i64> {
        let value = value?;
        match parse_memory(value.get_ref()) {
            Some(bytes) if bytes >= MIN_MEMORY => Some(bytes),
            _ => {
                self.error(
                    &value.span(),
                    field,
                    format!(
                        "'{}' is not a memory size of at least 6m",
                        value.get_ref().escape_debug()
                    ),
                    "write a number of bytes or a number with k, m or g, e.g. \"512m\" or \"4g\"",
                );
                None
            }
        }
    }

    fn bottle(&mut self, name: &str, raw: Spanned<RawBottle>) -> Option<Bottle> {
        let before = self.diagnostics.len();
        let raw = raw.into_inner();
        let prefix = format!("bottles.{name}");

        let image = raw.image.get_ref().clone();
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                &raw.image.span(),
                &format!("{prefix}.image"),
                format!("'{}' is not an image reference", image.escape_debug()),
                "write an image name such as \"bottle-agent:latest\"",
            );
        }

        let command = raw.command.map(|c| {
            let span = c.span();
            let command = c.into_inner();
            if command.is_empty() {
                self.error(&span, &format!("{prefix}.command"), "the command is empty", "remove the key to use the image's command, or give at least the program, e.g. [\"sleep\", \"infinity\"]");
            }
            if command.iter().any(|a| a.contains('\0')) {
                self.error(&span, &format!("{prefix}.command"), "an argument holds a NUL character", "remove the NUL: no program can receive it");
            }
            command
        });

        let mut env = BTreeMap::new();
        for (key, value) in raw.env {
            let field = format!("{prefix}.env.{}", key.get_ref());
            if !valid_env_key(key.get_ref()) {
                self.error(
                    &key.span(),
                    &field,
                    format!(
                        "'{}' is not a valid environment variable name",
                        key.get_ref().escape_debug()
                    ),
                    "use letters, digits and '_', not starting with a digit",
                );
            } else if value.get_ref().contains('\0') {
                self.error(
                    &value.span(),
                    &field,
                    "the value holds a NUL character",
                    "remove the NUL: environment values cannot carry it",
                );
            } else {
                match Template::parse(value.get_ref()) {
                    Ok(t) => {
                        let t = self.located(t, &value.span(), &field);
                        env.insert(key.into_inner(), t);
                    }
                    Err(why) => self.error(
                        &value.span(),
                        &field,
                        why,
                        "write ${VAR} or ${VAR:-default} to read VAR from the environment of `bottle up`, and $$ for a literal $",
                    ),
                }
            }
        }
        let env_file = raw.env_file.and_then(|f| {
            let field = format!("{prefix}.env_file");
            match self.expand_path(f.get_ref()) {
                Ok(p) => Some(self.located(p, &f.span(), &field)),
                Err(why) => {
                    self.error(&f.span(), &field, why, "write a path relative to the manifest, e.g. \".env\", an absolute one, or one starting with ~/");
                    None
                }
            }
        });

        let memory_bytes = self.memory(raw.memory, &format!("{prefix}.memory"));
        let gate_memory_bytes = self.memory(raw.gate_memory, &format!("{prefix}.gate_memory"));
        let pids_limit = raw.pids_limit.and_then(|p| {
            if (16..=1_000_000).contains(p.get_ref()) {
                Some(*p.get_ref())
            } else {
                self.error(
                    &p.span(),
                    &format!("{prefix}.pids_limit"),
                    format!(
                        "{} is not a process limit between 16 and 1000000",
                        p.get_ref()
                    ),
                    "pick a limit such as 1024",
                );
                None
            }
        });

        let mut cap_add = Vec::new();
        for cap in raw.cap_add {
            let c = cap.get_ref().to_ascii_uppercase();
            let c = c.strip_prefix("CAP_").unwrap_or(&c).to_owned();
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') || c == "ALL"
            {
                self.error(&cap.span(), &format!("{prefix}.cap_add"), format!("'{}' is not a capability name", cap.get_ref().escape_debug()), "name one capability, e.g. \"CHOWN\" or \"NET_BIND_SERVICE\" (ALL is not accepted)");
            } else {
                cap_add.push(c);
            }
        }

        let mut git: Vec<GitUpstream> = Vec::new();
        let mut names: BTreeMap<String, Location> = BTreeMap::new();
        // host -> (ip, upstream name that set it)
        let mut hosts: BTreeMap<String, (IpAddr, String)> = BTreeMap::new();
        for (i, entry) in raw.git.into_iter().enumerate() {
            let field = format!("{prefix}.git[{i}]");
            if let Some(up) = self.git(&field, entry.into_inner(), &mut names, &mut hosts) {
                git.push(up);
            }
        }

        let egress = raw
            .egress
            .map(|e| self.egress(&format!("{prefix}.egress"), e.into_inner()))
            .unwrap_or_default();
        let cred_proxy = raw
            .cred_proxy
            .map(|c| self.cred_proxy(&format!("{prefix}.cred_proxy"), c.into_inner(), &env))
            .unwrap_or_default();

        (self.diagnostics.len() == before).then(|| Bottle {
            name: name.to_owned(),
            image,
            command,
            env,
            env_file,
            memory_bytes,
            pids_limit,
            cap_add,
            gate_memory_bytes,
            git,
            egress,
            cred_proxy,
        })
    }

    fn egress(&mut self, prefix: &str, raw: RawEgress) -> Egress {
        use bottle_proxy_config::rules::{Entry, List};
        let mut list = |entries: Vec<Spanned<String>>, kind: List, key: &str| {
            let mut out = Vec::new();
            for (i, entry) in entries.into_iter().enumerate() {
                let field = format!("{prefix}.{key}[{i}]");
                match Entry::parse(entry.get_ref(), kind) {
                    Ok(_) => out.push(self.located(entry.get_ref().clone(), &entry.span(), &field)),
                    Err(e) => self.error(
                        &entry.span(),
                        &field,
                        format!("'{}' is not a host entry: {}", entry.get_ref().escape_debug(), e.why),
                        match kind {
                            List::AllowPrivate => "write a host name or \"*.suffix\", without a port, e.g. \"registry.internal\"",
                            _ => "write a host name, \"*.suffix\" (its subdomains) or an IP literal, optionally with :port, e.g. \"api.anthropic.com\" or \"example.com:8443\"",
                        },
                    ),
                }
            }
            out
        };
        Egress {
            allow: list(raw.allow, List::Allow, "allow"),
            deny: list(raw.deny, List::Deny, "deny"),
            allow_private: list(raw.allow_private, List::AllowPrivate, "allow_private"),
        }
    }

    fn git(
        &mut self,
        field: &str,
        raw: RawGit,
        names: &mut BTreeMap<String, Location>,
        hosts: &mut BTreeMap<String, (IpAddr, String)>,
    ) -> Option<GitUpstream> {
        let before = self.diagnostics.len();
        let name = raw.name.get_ref().clone();
        let name_span = raw.name.span();
        if !valid_git_name(&name) {
            self.error(
                &name_span,
                &format!("{field}.name"),
                format!("'{}' is not a valid git entry name", name.escape_debug()),
                "use 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit, without '..' and not ending in .git or .lock",
            );
        } else if let Some(first) = names.get(&name) {
            self.error(
                &name_span,
                &format!("{field}.name"),
                format!("the git name '{name}' is used twice (first at line {})", first.line),
                "give every git entry of a bottle its own name: it names the repository on the gate",
            );
        } else {
            names.insert(name.clone(), self.loc(&name_span));
        }

        let url = raw.upstream.get_ref().clone();
        let parsed = self.upstream(&format!("{field}.upstream"), &url, &raw.upstream.span());

        let known_host_key = raw.known_host_key.and_then(|k| {
            let key_field = format!("{field}.known_host_key");
            let (hosts, key) = split_keyscan_line(k.get_ref());
            let key = match parse_host_key(key) {
                Ok(key) => key,
                Err(why) => {
                    self.error(&k.span(), &key_field, format!("not an SSH public host key: {why}"), "write '<type> <base64>', or the whole line `ssh-keyscan -p PORT HOST` prints, e.g. \"ssh-ed25519 AAAAC3Nza...\"");
                    return None;
                }
            };
            // ssh-keyscan's line names the host it asked: it must be this upstream's.
            if let (Some(hosts), Some((host, port))) = (hosts, parsed.as_ref()) {
                let port = port.unwrap_or(22);
                if let Err(why) = keyscan_host_matches(hosts, host, port) {
                    self.error(&k.span(), &key_field, why, format!("pin the key of the upstream's own host: ssh-keyscan -p {port} {host}"));
                    return None;
                }
            }
            Some(key)
        });

        let identity_span = raw.identity_file.span();
        let identity_text = raw.identity_file.get_ref();
        let identity_file = match self.expand_path(identity_text) {
            Ok(p) => Some(self.located(p, &identity_span, &format!("{field}.identity_file"))),
            Err(why) => {
                self.error(&identity_span, &format!("{field}.identity_file"), why, "write an absolute path, a path relative to the manifest, or one starting with ~/");
                None
            }
        };

        let mut extra_hosts = BTreeMap::new();
        for (host, ip) in raw.extra_hosts {
            let host_field = format!("{field}.extra_hosts.{}", host.get_ref());
            let h = host.get_ref().to_ascii_lowercase();
            if h.is_empty()
                || h.len() > 253
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
                || h.starts_with(['-', '.'])
            {
                self.error(
                    &host.span(),
                    &host_field,
                    format!("'{}' is not a host name", host.get_ref().escape_debug()),
                    "use a DNS name such as git.example.com",
                );
                continue;
            }
            let Ok(addr) = ip.get_ref().parse::<IpAddr>() else {
                self.error(
                    &ip.span(),
                    &host_field,
                    format!("'{}' is not an IP address", ip.get_ref().escape_debug()),
                    "write an IPv4 or IPv6 address, e.g. \"10.1.2.3\"",
                );
                continue;
            };
            match hosts.get(&h) {
                Some((other, owner)) if *other != addr => {
                    self.error(&ip.span(), &host_field, format!("host '{h}' maps to {addr} here, in upstream '{name}', but to {other} in upstream '{owner}'"), "the gate has one /etc/hosts: map the host to the same address in both upstreams");
                }
                Some(_) => {}
                None => {
                    hosts.insert(h.clone(), (addr, name.clone()));
                }
            }
            extra_hosts.insert(h, addr);
        }

        let mut scan = GitScan::default();
        let mut limit = |value: Option<Spanned<i64>>, key: &str, range: (i64, i64), what: &str| {
            let value = value?;
            let n = *value.get_ref();
            if (range.0..=range.1).contains(&n) {
                return u64::try_from(n).ok();
            }
            self.error(
                &value.span(),
                &format!("{field}.{key}"),
                format!("{n} is not {what} between {} and {}", range.0, range.1),
                "remove the key for the default, or pick a value in that range",
            );
            None
        };
        if let Some(n) = limit(
            raw.max_push_mb,
            "max_push_mb",
            (1, 1 << 20),
            "a push size in MiB",
        ) {
            scan.max_push_mb = n;
        }
        if let Some(n) = limit(
            raw.max_scan_mb,
            "max_scan_mb",
            (1, 1 << 20),
            "a scan size in MiB",
        ) {
            scan.max_scan_mb = n;
        }
        if let Some(n) = limit(
            raw.scan_timeout_s,
            "scan_timeout_s",
            (1, 86_400),
            "a number of seconds",
        ) {
            scan.scan_timeout_s = n;
        }
        if let Some(n) = limit(
            raw.max_archive_depth,
            "max_archive_depth",
            (0, 32),
            "an archive depth",
        ) {
            scan.max_archive_depth = n;
        }
        for (i, fp) in raw.accept_fingerprints.into_iter().enumerate() {
            let text = fp.get_ref();
            if text.is_empty() || text.len() > 1024 || text.chars().any(char::is_control) {
                self.error(
                    &fp.span(),
                    &format!("{field}.accept_fingerprints[{i}]"),
                    format!("'{}' is not a finding's fingerprint", text.escape_debug()),
                    "copy the fingerprint the gate printed when it refused the push, e.g. \"3f2a...:aws-access-token:1\"",
                );
            } else {
                scan.accept_fingerprints.push(fp.into_inner());
            }
        }
        for (i, re) in raw.accept_paths.into_iter().enumerate() {
            let text = re.get_ref();
            let problem = if text.is_empty() || text.chars().any(char::is_control) {
                Some("it is empty or holds control characters".to_owned())
            } else {
                regex::Regex::new(text)
                    .err()
                    .map(|e| format!("it does not compile: {e}"))
            };
            match problem {
                Some(why) => self.error(
                    &re.span(),
                    &format!("{field}.accept_paths[{i}]"),
                    format!("'{}' is not a path regex: {why}", text.escape_debug()),
                    "write a regex (Rust regex syntax) matched against each path a file has in the push, e.g. \"^testdata/\"",
                ),
                None => scan.accept_paths.push(re.into_inner()),
            }
        }

        if self.diagnostics.len() != before {
            return None;
        }
        let (host, port) = parsed?;
        Some(GitUpstream {
            name,
            url,
            host,
            port,
            identity_file: identity_file?,
            known_host_key,
            extra_hosts,
            scan,
        })
    }

    /// Checks an upstream URL; returns its host and port.
    fn upstream(
        &mut self,
        field: &str,
        url: &str,
        span: &Range<usize>,
    ) -> Option<(String, Option<u16>)> {
        const HINT: &str = "write ssh://user@host[:port]/path/repo.git or user@host:path/repo.git";
        if url.is_empty() || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.error(span, field, format!("'{}' is not an upstream URL: it is empty or holds whitespace or control characters", url.escape_debug()), HINT);
            return None;
        }
        let parsed = match gix_url::parse(url) {
            Ok(p) => p,
            Err(e) => {
                self.error(
                    span,
                    field,
                    format!("'{url}' does not parse as a git URL: {e}"),
                    HINT,
                );
                return None;
            }
        };
        if parsed.password().is_some() {
            // Never echo the URL: it holds the password.
            self.error(
                span,
                field,
                "the upstream URL holds a password",
                "remove it (ssh://user@host/path): the gate authenticates with identity_file, its own key, which never enters the agent; a password in the manifest would be read by anyone who reads the file",
            );
            return None;
        }
        if parsed.scheme != gix_url::Scheme::Ssh {
            self.error(
                span,
                field,
                format!(
                    "'{url}' uses {}, but the gate reaches upstreams over ssh only",
                    parsed.scheme.as_str()
                ),
                HINT,
            );
            return None;
        }
        let Some(host) = parsed.host().filter(|h| !h.is_empty()).map(str::to_owned) else {
            self.error(span, field, format!("'{url}' names no host"), HINT);
            return None;
        };
        if host.starts_with('-') || parsed.user().is_some_and(|u| u.starts_with('-')) {
            self.error(
                span,
                field,
                format!("'{url}': a host or user starting with '-' would be read as an ssh option"),
                HINT,
            );
            return None;
        }
        if parsed.path.is_empty() || parsed.path.as_slice() == b"/" {
            self.error(
                span,
                field,
                format!("'{url}' names no repository path"),
                HINT,
            );
            return None;
        }
        Some((host, parsed.port))
    }

    fn expand_path(&self, text: &str) -> Result<PathBuf, String> {
        if text.is_empty() || text.contains('\0') {
            return Err("the path is empty or holds a NUL character".to_owned());
        }
        let path = if text == "~" || text.starts_with("~/") {
            let home = self
                .env
                .home
                .as_ref()
                .ok_or_else(|| format!("'{text}' starts with ~ but HOME is not set"))?;
            home.join(text.trim_start_matches('~').trim_start_matches('/'))
        } else if text.starts_with('~') {
            return Err(format!(
                "'{text}': only ~/ (your own home) is understood, not ~user"
            ));
        } else {
            PathBuf::from(text)
        };
        if path.is_absolute() {
            Ok(path)
        } else {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            Ok(dir.join(path))
        }
    }
}

/// Splits a `known_host_key` value into the host field of an `ssh-keyscan` line (`host`,
/// `[host]:port`, or several separated by commas), when there is one, and the key.
fn split_keyscan_line(text: &str) -> (Option<&str>, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        // A key type never holds '.', ':', '[' or ',' (ssh-ed25519, ecdsa-sha2-nistp256,
        // sk-ssh-ed25519@openssh.com: '@' only), and a host field of a bare name without a
        // dot is told apart by what follows: a key type, then base64.
        Some((first, rest))
            if !first.starts_with("ssh-")
                && !first.starts_with("ecdsa-")
                && !first.starts_with("sk-") =>
        {
            (Some(first), rest.trim_start())
        }
        _ => (None, text),
    }
}

/// Whether an `ssh-keyscan` host field names `host` on `port` (the form OpenSSH writes:
/// `host` for port 22, `[host]:port` otherwise; hashed names cannot be compared).
fn keyscan_host_matches(field: &str, host: &str, port: u16) -> Result<(), String> {
    if field.starts_with('|') {
        return Err("the line's host is hashed (ssh-keyscan -H), so it cannot be checked against the upstream".to_owned());
    }
    let want = if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    };
    if field.split(',').any(|h| h.to_ascii_lowercase() == want) {
        Ok(())
    } else {
        Err(format!(
            "the key line is for {field}, not for the upstream's {want}"
        ))
    }
}

/// Checks an OpenSSH public key line and returns it as `<type> <base64>` (comment dropped).
pub fn parse_host_key(text: &str) -> Result<String, String> {
    let mut parts = text.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("expected '<type> <base64>'".to_owned());
    };
    let line = format!("{kind} {blob}");
    ssh_key::PublicKey::from_openssh(&line).map_err(|e| format!("{e}"))?;
    Ok(line)
}
