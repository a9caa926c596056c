//! The git-gate's one script set: entrypoint, pre-receive hook, access hook.
//!
//! Every backend copies these same bytes into its gate; the host-level test runs them
//! directly under a temporary root. They are POSIX sh, pass `shellcheck` and `sh -n`, and
//! take every manifest value as a shell-quoted word ([`crate::quote::sh`]): nothing from a
//! manifest is pasted into a script unquoted. The hooks read per-repository facts (the
//! entry's name, its known_hosts path) from the bare repository's git config, written by the
//! entrypoint, so the hooks themselves hold no manifest values at all.

use crate::gate::GateLayout;
use crate::manifest::GitUpstream;
use crate::quote::{self, QuoteError};
use crate::template::{self, TemplateError};

// The scripts, kept as files so they are read, edited and shellchecked as shell.
const ENTRYPOINT: &str = include_str!("entrypoint.sh");
const PRE_RECEIVE: &str = include_str!("pre-receive.sh");
const ACCESS_HOOK: &str = include_str!("access-hook.sh");
/// The hooks' reading of a mirror's facts (written by the entrypoint into its config), in
/// one `git config` call, pasted into both hooks at `@READ_FACTS@`.
const READ_FACTS: &str = include_str!("read-facts.sh");
/// The hooks' `audit` function (one JSON line per verdict), pasted in at `@AUDIT@`.
const AUDIT: &str = include_str!("audit.sh");

/// Rendering the script set failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A value could not be quoted into a script (validation should have caught it).
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// A script's placeholders and the values given for them disagree (a bug in bottle).
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The rendered scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSet {
    /// Creates the bare mirrors and execs `git daemon`.
    pub entrypoint: String,
    /// Scans what a push brings with `bottle-gate-scan`, then forwards every ref upstream
    /// atomically.
    pub pre_receive: String,
    /// Refreshes a mirror from its upstream before it is served; fails closed.
    pub access_hook: String,
}

/// How long the gate's persistent ssh connection to an upstream stays open after its last
/// use, in seconds.
pub const CONTROL_PERSIST_SECS: u32 = 120;

/// The ssh command the gate uses for one upstream: its own key, its pinned host key, no
/// user or system ssh config, never a prompt; and one persistent connection per upstream
/// (`ControlMaster`), so that a refresh does not pay for a new ssh handshake. The control
/// socket lives in the gate user's home, which no one else can enter, and belongs to this
/// entry alone (each entry has its own key). Keepalives (`ServerAliveInterval`) end a
/// connection whose upstream went silent, and the access hook checks before every refresh
/// that the upstream still accepts new connections.
pub fn ssh_command(layout: &GateLayout, name: &str) -> Result<String, QuoteError> {
    let mut options = vec![
        format!("IdentityFile={}", layout.key(name)),
        "IdentitiesOnly=yes".to_owned(),
        format!("UserKnownHostsFile={}", layout.known_hosts(name)),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        "BatchMode=yes".to_owned(),
        "ConnectTimeout=15".to_owned(),
    ];
    if let Some(control) = layout.control_path(name) {
        options.extend([
            "ControlMaster=auto".to_owned(),
            format!("ControlPath={control}"),
            format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            "ServerAliveInterval=15".to_owned(),
            "ServerAliveCountMax=3".to_owned(),
        ]);
    }
    let mut words = vec!["ssh", "-F", "/dev/null"];
    for option in &options {
        words.extend(["-o", option.as_str()]);
    }
    quote::sh_join(words)
}

/// Renders the script set for `upstreams` with the paths of `layout`.
pub fn render(
    layout: &GateLayout,
    bottle: &str,
    upstreams: &[GitUpstream],
) -> Result<ScriptSet, RenderError> {
    let facts = ("READ_FACTS", READ_FACTS.trim_end_matches('\n'));
    let audit = ("AUDIT", AUDIT.trim_end_matches('\n'));
    let scanner = quote::sh(&layout.scanner())?;
    let gitleaks = quote::sh(&layout.gitleaks())?;
    let config = quote::sh(&layout.gitleaks_config())?;
    Ok(ScriptSet {
        entrypoint: entrypoint(layout, bottle, upstreams)?,
        pre_receive: template::render(
            "pre-receive.sh",
            PRE_RECEIVE,
            &[
                facts,
                ("SCANNER", &scanner),
                ("GITLEAKS", &gitleaks),
                ("SCAN_CONFIG", &config),
                audit,
            ],
        )?,
        access_hook: template::render("access-hook.sh", ACCESS_HOOK, &[facts, audit])?,
    })
}

/// git's `receive.maxInputSize` for a push limit of `push_bytes`: a quarter more (and one
/// MiB), since a pack of content that does not compress is a little larger than the objects
/// it holds. Within that, the scan's own check refuses with the clearer message (naming
/// `max_push_mb`); past it, git stops reading the pack before it fills the gate's disk.
pub fn pack_limit(push_bytes: u64) -> u64 {
    push_bytes + push_bytes / 4 + (1 << 20)
}

fn entrypoint(
    layout: &GateLayout,
    bottle: &str,
    upstreams: &[GitUpstream],
) -> Result<String, RenderError> {
    let mut calls = String::new();
    for up in upstreams {
        calls.push_str(&format!(
            "init_repo {} {} {} {} {} {}\n",
            quote::sh(&up.name)?,
            quote::sh(&up.url)?,
            quote::sh(&ssh_command(layout, &up.name)?)?,
            quote::sh(&layout.known_hosts(&up.name))?,
            quote::sh(&up.host)?,
            quote::sh(&up.port.unwrap_or(22).to_string())?,
        ));
        let scan = &up.scan;
        let push_bytes = scan.max_push_mb << 20;
        calls.push_str(&format!(
            "scan_facts {} {} {} {} {} {}\n",
            quote::sh(&up.name)?,
            quote::sh(&push_bytes.to_string())?,
            quote::sh(&(scan.max_scan_mb << 20).to_string())?,
            quote::sh(&scan.scan_timeout_s.to_string())?,
            quote::sh(&scan.max_archive_depth.to_string())?,
            quote::sh(&pack_limit(push_bytes).to_string())?,
        ));
        for (key, values) in [
            ("acceptFingerprint", &scan.accept_fingerprints),
            ("acceptPath", &scan.accept_paths),
        ] {
            for value in values {
                calls.push_str(&format!(
                    "accept {} {key} {}\n",
                    quote::sh(&up.name)?,
                    quote::sh(value)?
                ));
            }
        }
    }
    Ok(template::render(
        "entrypoint.sh",
        ENTRYPOINT,
        &[
            ("REPOS", &quote::sh(&layout.repos_dir())?),
            ("HOOKS", &quote::sh(&layout.hooks_dir())?),
            ("ACCESS_HOOK", &quote::sh(&layout.access_hook())?),
            ("CONTROL", &quote::sh(&layout.control_dir())?),
            ("AUDIT_LOG", &quote::sh(&layout.audit_log())?),
            ("BOTTLE", &quote::sh(bottle)?),
            ("INIT_REPOS", calls.trim_end_matches('\n')),
        ],
    )?)
}
