//! The printers: plan (or request) in, POSIX sh script out. Pure functions, no I/O.
//!
//! Every word of every command goes through [`q`] (that is `bottle_core::quote::sh`, the
//! `shlex` crate), constants included, so that no value from the plan reaches the shell
//! unquoted. The only text written raw is shell syntax of our own (`"$stage"`, redirections,
//! `if`/`fi`) and comments, where plan values are escaped onto one line by [`c`].

use std::collections::BTreeSet;

use bottle_core::backend::{ExecRequest, UpOptions};
use bottle_core::plan::{
    resource_name, ContainerRole, ContainerSpec, Egress, FileSource, FileSpec, Plan, LABEL_MANAGED,
    LABEL_ROLE, LABEL_SLUG,
};
use bottle_core::quote::{self, QuoteError};

use crate::Cli;

/// A plan or request the CLI cannot express faithfully; nothing was printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A value holds a NUL byte, which no shell word can carry.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// A container or network name the engine would refuse, or one that could be read as an
    /// option or break the staging directory's layout.
    #[error("{kind} name {name:?} is not one the engine accepts\n  hint: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    Name {
        /// `container` or `network`.
        kind: &'static str,
        /// The offending name.
        name: String,
    },
    /// Two containers share a name.
    #[error("the plan has two containers named {name}\n  hint: every container of a plan needs its own name")]
    DuplicateContainer {
        /// The shared name.
        name: String,
    },
    /// An image reference the CLI would read as an option.
    #[error("container {container}: image {image:?} is not an image reference\n  hint: an image reference starts with a letter or digit")]
    Image {
        /// The container.
        container: String,
        /// The image reference.
        image: String,
    },
    /// `entrypoint: Some(vec![])`, which the CLIs cannot express the way the engine APIs read it.
    #[error("container {container}: the entrypoint is an empty list, which the docker and podman CLIs cannot express the way the engine APIs read it\n  hint: leave the entrypoint unset (None) to keep the image's")]
    EmptyEntrypoint {
        /// The container.
        container: String,
    },
    /// An env or label key the CLI's `KEY=VALUE` form cannot carry.
    #[error("container {container}: {what} key {key:?} is empty or holds '=', which the CLI's KEY=VALUE form cannot carry")]
    Key {
        /// The container or network.
        container: String,
        /// `env` or `label`.
        what: &'static str,
        /// The key.
        key: String,
    },
    /// A file the script cannot stage.
    #[error("container {container}: file {path:?}: {why}")]
    File {
        /// The container.
        container: String,
        /// The file's path in the container.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// An `/etc/hosts` entry naming a container that does not run before this one, or a
    /// network that container is not on.
    #[error("container {container}: host entry {name:?} takes the address of {of} on {network}, which no earlier container of the plan has")]
    HostOf {
        /// The container holding the entry.
        container: String,
        /// The entry's host name.
        name: String,
        /// The container whose address it takes.
        of: String,
        /// The network of that address.
        network: String,
    },
    /// `exec` without a command.
    #[error("exec in bottle {slug}: no command given\n  hint: name the program to run in the agent, e.g. bash")]
    EmptyCommand {
        /// The bottle's slug.
        slug: String,
    },
}

/// `rm -f`: docker's kills at once; podman's waits 10 s for a stop unless told `--time 0`.
fn rm_force(cli: Cli) -> Vec<&'static str> {
    match cli {
        Cli::Docker => vec!["docker", "rm", "-f"],
        Cli::Podman => vec!["podman", "rm", "-f", "--time", "0"],
    }
}

/// Quotes one shell word.
fn q(value: &str) -> Result<String, RenderError> {
    Ok(quote::sh(value)?)
}

/// Quotes every word and joins them with spaces.
fn qj<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<String, RenderError> {
    Ok(quote::sh_join(words)?)
}

/// A value made safe for a comment: one line, control characters escaped. Comments are never
/// executed, but a newline would end one.
fn c(value: &str) -> String {
    value.escape_debug().to_string()
}

/// The script being written.
#[derive(Default)]
struct Script(String);

impl Script {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    fn comment(&mut self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            if line.is_empty() {
                self.line("#");
            } else {
                self.line(format!("# {line}"));
            }
        }
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    /// A command written over several lines: `first \`, then one indented line per group.
    fn long(&mut self, first: String, groups: Vec<String>, tail: &str) {
        let mut text = first;
        for g in groups {
            text.push_str(" \\\n\t");
            text.push_str(&g);
        }
        text.push_str(tail);
        self.line(text);
    }

    fn header(&mut self, summary: &str) {
        self.line("#!/bin/sh");
        self.comment(summary);
        self.comment("Generated by bottle; review before running.");
        // File-wide (it precedes the first command): values are single-quoted literals on
        // purpose, and shellcheck would flag every `$` or backquote inside one.
        self.line("# shellcheck disable=SC2016");
    }

    fn finish(self) -> String {
        self.0
    }
}

/// Names the engines accept for containers and networks: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
/// Checking them also keeps them from being read as options and from nesting directories
/// in the staging area.
fn check_name(kind: &'static str, name: &str) -> Result<(), RenderError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RenderError::Name {
            kind,
            name: name.to_owned(),
        })
    }
}

fn check_key(container: &str, what: &'static str, key: &str) -> Result<(), RenderError> {
    if key.is_empty() || key.contains('=') {
        return Err(RenderError::Key {
            container: container.to_owned(),
            what,
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// A file of one container, as staged.
struct Staged<'a> {
    /// Path relative to the container's root, e.g. `etc/gitconfig`.
    rel: String,
    spec: &'a FileSpec,
}

/// One container's files, checked, with their paths made relative.
struct ContainerFiles<'a> {
    files: Vec<Staged<'a>>,
    /// Files grouped by owner, in order of first appearance: one archive per group.
    groups: Vec<((u32, u32), Vec<usize>)>,
}

fn file_error(container: &ContainerSpec, file: &FileSpec, why: impl Into<String>) -> RenderError {
    RenderError::File {
        container: container.name.clone(),
        path: file.path.clone(),
        why: why.into(),
    }
}

/// `/etc//bottle-gate/./entrypoint` -> `etc/bottle-gate/entrypoint`.
fn relative(path: &str) -> Result<String, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path is not absolute");
    };
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the path holds '..'"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the path names the root directory, not a file");
    }
    Ok(parts.join("/"))
}

fn container_files(container: &ContainerSpec) -> Result<ContainerFiles<'_>, RenderError> {
    let mut files = Vec::new();
    let mut groups: Vec<((u32, u32), Vec<usize>)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for spec in &container.files {
        let rel = relative(&spec.path).map_err(|why| file_error(container, spec, why))?;
        if spec.mode > 0o7777 {
            return Err(file_error(
                container,
                spec,
                format!(
                    "mode {:#o} has bits beyond permissions, setuid, setgid and sticky",
                    spec.mode
                ),
            ));
        }
        if spec.path.contains('\0') {
            return Err(file_error(container, spec, "the path holds a NUL byte"));
        }
        match &spec.source {
            FileSource::Text { text } if text.contains('\0') => {
                return Err(file_error(
                    container,
                    spec,
                    "the text holds a NUL byte, which a shell script cannot carry",
                ))
            }
            FileSource::HostFile { path, .. } if path.to_str().is_none() => {
                return Err(file_error(
                    container,
                    spec,
                    format!(
                        "host path {} is not valid UTF-8, which this printer cannot quote",
                        path.display()
                    ),
                ))
            }
            _ => {}
        }
        if !seen.insert(rel.clone()) {
            return Err(file_error(
                container,
                spec,
                "the container has another file at this path",
            ));
        }
        let mut dir = rel.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            dir = parent;
        }
        let owner = (spec.uid, spec.gid);
        let index = files.len();
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, members)) => members.push(index),
            None => groups.push((owner, vec![index])),
        }
        files.push(Staged { rel, spec });
    }
    if let Some(f) = files.iter().find(|f| dirs.contains(&f.rel)) {
        return Err(file_error(
            container,
            f.spec,
            "another file of the container lies below this path, so it would have to be a directory",
        ));
    }
    Ok(ContainerFiles { files, groups })
}

/// Checks what the printer relies on, before printing anything.
fn check_plan(plan: &Plan) -> Result<Vec<ContainerFiles<'_>>, RenderError> {
    for n in &plan.networks {
        check_name("network", &n.name)?;
        for key in n.labels.keys() {
            check_key(&n.name, "label", key)?;
        }
    }
    if let Some((ct, h)) = plan.unfillable_host() {
        return Err(RenderError::HostOf {
            container: ct.name.clone(),
            name: h.name.clone(),
            of: h.container.clone(),
            network: h.network.clone(),
        });
    }
    let mut names = BTreeSet::new();
    let mut all = Vec::new();
    for ct in &plan.containers {
        check_name("container", &ct.name)?;
        if !names.insert(ct.name.as_str()) {
            return Err(RenderError::DuplicateContainer {
                name: ct.name.clone(),
            });
        }
        check_name("network", &ct.network)?;
        for n in &ct.connect {
            check_name("network", n)?;
        }
        for h in &ct.hosts_of {
            check_name("host", &h.name)?;
        }
        if !ct
            .image
            .name
            .as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return Err(RenderError::Image {
                container: ct.name.clone(),
                image: ct.image.name.clone(),
            });
        }
        if ct.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
            return Err(RenderError::EmptyEntrypoint {
                container: ct.name.clone(),
            });
        }
        for key in ct.env.keys() {
            check_key(&ct.name, "env", key)?;
        }
        for key in ct.labels.keys() {
            check_key(&ct.name, "label", key)?;
        }
        all.push(container_files(ct)?);
    }
    Ok(all)
}

/// A heredoc delimiter that occurs nowhere in `text`.
fn delimiter(text: &str) -> String {
    let mut delim = "BOTTLE_EOF".to_owned();
    let mut n = 1;
    while text.contains(&delim) {
        delim = format!("BOTTLE_EOF_{n}");
        n += 1;
    }
    delim
}

/// `"$stage"/files/<container>/<rel>`, or the container's directory when `rel` is empty.
fn staged(container: &str, rel: &str) -> Result<String, RenderError> {
    let path = if rel.is_empty() {
        format!("files/{container}")
    } else {
        format!("files/{container}/{rel}")
    };
    Ok(format!("\"$stage\"/{}", q(&path)?))
}

/// The `create` words after the program: flags, image, arguments.
///
/// `addresses` are the shell variables holding the addresses of [`ContainerSpec::hosts_of`],
/// in its order.
fn create_groups(
    ct: &ContainerSpec,
    cli: Cli,
    addresses: &[String],
) -> Result<Vec<String>, RenderError> {
    let mut g = vec![
        qj(["--name", &ct.name])?,
        // As through the API, a missing image is an error, never a pull.
        qj(["--pull", "never"])?,
        qj(["--network", &ct.network])?,
    ];
    for (k, v) in &ct.labels {
        g.push(qj(["--label", &format!("{k}={v}")])?);
    }
    for (k, v) in &ct.env {
        g.push(qj(["--env", &format!("{k}={v}")])?);
    }
    if let Some(user) = &ct.user {
        g.push(qj(["--user", user])?);
    }
    let mut args: Vec<&str> = Vec::new();
    if let Some(entrypoint) = &ct.entrypoint {
        match cli {
            // docker's --entrypoint takes one string: the program. The rest of a longer
            // entrypoint goes before the command's arguments; the process's argv is the same.
            Cli::Docker => {
                g.push(qj(["--entrypoint", &entrypoint[0]])?);
                args.extend(entrypoint[1..].iter().map(String::as_str));
            }
            // podman's --entrypoint reads a JSON array when the value is one, and a lone
            // program otherwise: the array form carries the whole list and cannot be misread.
            Cli::Podman => {
                let json = serde_json::to_string(entrypoint).expect("a list of strings serialises");
                g.push(qj(["--entrypoint", &json])?);
            }
        }
    }
    for (host, ip) in &ct.extra_hosts {
        // `host:ip`, IPv6 unbracketed: docker and podman split at the first ':'.
        g.push(qj(["--add-host", &format!("{host}:{ip}")])?);
    }
    for (h, var) in ct.hosts_of.iter().zip(addresses) {
        g.push(format!(
            "{} {}\"${var}\"",
            q("--add-host")?,
            q(&format!("{}:", h.name))?
        ));
    }
    let h = &ct.hardening;
    for cap in &h.cap_drop {
        g.push(qj(["--cap-drop", cap])?);
    }
    for cap in &h.cap_add {
        g.push(qj(["--cap-add", cap])?);
    }
    if h.no_new_privileges {
        g.push(qj(["--security-opt", "no-new-privileges"])?);
    }
    g.push(qj(["--pids-limit", &h.pids_limit.to_string()])?);
    if h.memory_bytes > 0 {
        g.push(qj(["--memory", &h.memory_bytes.to_string()])?);
        // Swap limit = memory limit: no swap on top of it, as the docker backend sets.
        g.push(qj(["--memory-swap", &h.memory_bytes.to_string()])?);
    }
    if ct.init {
        g.push(q("--init")?);
    }
    g.push(q(&ct.image.name)?);
    if let Some(command) = &ct.command {
        args.extend(command.iter().map(String::as_str));
    }
    if !args.is_empty() {
        g.push(qj(args)?);
    }
    Ok(g)
}

/// What a container is, from the plan's data: its role, the ports it listens on, where it
/// goes, what it reaches.
fn describe(ct: &ContainerSpec) -> String {
    let mut parts = vec![if ct.role.is_agent() {
        "the agent".to_owned()
    } else {
        format!("sidecar '{}'", ct.role)
    }];
    for port in &ct.ports {
        parts.push(format!(
            "listens on {} (port {}) on {}",
            port.name, port.port, port.network
        ));
    }
    for reach in &ct.reaches {
        parts.push(format!("reaches {} of {}", reach.port, reach.container));
    }
    if ct.egress == Egress::Network {
        parts.push("goes out through the egress network".to_owned());
    }
    parts.join("; ")
}

/// Prints `plan` as the script `bottle up` amounts to, with default [`UpOptions`] (on
/// failure the script removes what it created).
pub fn render_up(plan: &Plan, cli: Cli) -> Result<String, RenderError> {
    render_up_with(plan, cli, &UpOptions::default())
}

/// Prints `plan` as the script `bottle up` amounts to. With `opts.keep_on_failure` the script
/// keeps what it created when a step fails, as the engine backends do.
pub fn render_up_with(plan: &Plan, cli: Cli, opts: &UpOptions) -> Result<String, RenderError> {
    let files = check_plan(plan)?;
    let mut up = Up {
        plan,
        cli,
        p: cli.program(),
        keep_on_failure: opts.keep_on_failure,
        has_files: files.iter().any(|f| !f.files.is_empty()),
        files,
        s: Script::default(),
    };
    up.header();
    up.images()?;
    up.tar_check()?;
    up.leftovers()?;
    up.exit_trap()?;
    up.staging()?;
    up.networks()?;
    up.containers()?;
    up.s.blank();
    up.s.line(format!(
        "printf '%s\\n' {}",
        q(&format!("bottle {} is up", plan.slug))?
    ));
    Ok(up.s.finish())
}

/// The `up` script, section by section.
struct Up<'a> {
    plan: &'a Plan,
    cli: Cli,
    /// The program: `docker` or `podman`.
    p: &'static str,
    keep_on_failure: bool,
    has_files: bool,
    files: Vec<ContainerFiles<'a>>,
    s: Script,
}

impl Up<'_> {
    fn header(&mut self) {
        let (plan, cli, p) = (self.plan, self.cli, self.p);
        self.s.header(&format!(
            "bottle up: bottle {}, slug {}.",
            c(&plan.bottle),
            c(&plan.slug)
        ));
        self.s.comment(format!(
            "\n\
             Run with the {p} CLI, this script creates the same bottle as `bottle --backend {p} up`:\n\
             the networks, then each container: created, filled with its files, connected, started.\n\
             It changes nothing until its checks pass, stops at the first failing step (set -e) and\n\
             then {on_failure}.\n\
             Remove the bottle with `bottle down {slug}`, or run what `bottle --backend {dry} down {slug}` prints.\n\
             Needs: {p}{extra}.",
            on_failure = if self.keep_on_failure {
                "keeps what it created, for debugging"
            } else {
                "removes what it created"
            },
            slug = c(&plan.slug),
            dry = cli.backend_name(),
            extra = if self.has_files { ", mktemp, GNU tar" } else { "" },
        ));
        self.s.line("set -eu");
    }

    /// One check per image. Nothing is pulled or built: `create` gets `--pull never` too.
    fn images(&mut self) -> Result<(), RenderError> {
        let p = self.p;
        self.s.blank();
        self.s.comment("Images: nothing is pulled or built here.");
        let mut seen = BTreeSet::new();
        for ct in &self.plan.containers {
            let image = &ct.image.name;
            if !seen.insert(image.as_str()) {
                continue;
            }
            let how = match ct.image.recipe {
                Some(_) => "build it with \"bottle image build\"".to_owned(),
                None => format!("build it or pull it ({p} pull {image})"),
            };
            let msg =
                format!("bottle: image {image} is missing; {how}, then run this script again");
            let check = match self.cli {
                Cli::Docker => qj([p, "image", "inspect", image])? + " >/dev/null 2>&1",
                Cli::Podman => qj([p, "image", "exists", image])?,
            };
            self.s.line(format!(
                "{check} || {{ printf '%s\\n' {} >&2; exit 1; }}",
                q(&msg)?
            ));
        }
        Ok(())
    }

    fn tar_check(&mut self) -> Result<(), RenderError> {
        if !self.has_files {
            return Ok(());
        }
        let s = &mut self.s;
        s.blank();
        s.comment("The archives below set numeric owners with GNU tar's --owner and --group.");
        s.line("if ! tar --version 2>/dev/null | grep -q 'GNU tar'; then");
        s.line(format!(
            "\tprintf '%s\\n' {} >&2",
            q("bottle: this script needs GNU tar (as tar on PATH) to give the files their owners")?
        ));
        s.line("\texit 1");
        s.line("fi");
        Ok(())
    }

    /// Probes every name the plan uses; any found stops the script before it creates anything.
    fn leftovers(&mut self) -> Result<(), RenderError> {
        let (p, slug) = (self.p, &self.plan.slug);
        let s = &mut self.s;
        s.blank();
        s.comment("Leftovers of an earlier run: stop before creating anything.");
        s.line("leftovers=");
        for (kind, name) in self.plan.resource_names() {
            let kind = kind.to_string();
            let probe = match self.cli {
                Cli::Docker => qj([p, &kind, "inspect", name])? + " >/dev/null 2>&1",
                Cli::Podman => qj([p, &kind, "exists", name])?,
            };
            s.line(format!(
                "if {probe}; then leftovers=\"$leftovers\"{}; fi",
                q(&format!(", {kind} {name}"))?
            ));
        }
        s.line("if [ -n \"$leftovers\" ]; then");
        s.line(format!(
            "\tprintf '%s\\n' {}\"${{leftovers#, }}\" >&2",
            q(&format!(
                "bottle {slug} has leftovers from an earlier run: "
            ))?
        ));
        s.line(format!(
            "\tprintf '%s\\n' {} >&2",
            q(&format!(
                "  hint: remove them with \"bottle cleanup {slug}\" (or \"bottle down {slug}\" if it is running), then run this script again"
            ))?
        ));
        s.line("\texit 1");
        s.line("fi");
        Ok(())
    }

    /// On exit: remove the staging directory; after a failure, unless keeping, what the script
    /// created. By name: the leftover probe proved none of these existed before.
    fn exit_trap(&mut self) -> Result<(), RenderError> {
        let (p, slug) = (self.p, &self.plan.slug);
        let s = &mut self.s;
        s.blank();
        s.comment(
            "On exit: remove the staging directory; after a failure, also what this script created.",
        );
        s.line("created=");
        s.line("stage=");
        s.line("bottle_exit() {");
        s.line("\tstatus=$?");
        s.line("\tif [ -n \"$stage\" ]; then rm -rf \"$stage\"; fi");
        s.line("\tif [ \"$status\" -ne 0 ] && [ -n \"$created\" ]; then");
        if self.keep_on_failure {
            s.line(format!(
                "\t\tprintf '%s\\n' {} >&2",
                q(&format!(
                    "bottle {slug}: up failed; keeping what this script created, for debugging; remove it with \"bottle cleanup {slug}\""
                ))?
            ));
        } else {
            s.line(format!(
                "\t\tprintf '%s\\n' {} >&2",
                q(&format!(
                    "bottle {slug}: up failed; removing what this script created"
                ))?
            ));
            for ct in self.plan.containers.iter().rev() {
                s.line(format!(
                    "\t\t{} >/dev/null 2>&1 || :",
                    qj(rm_force(self.cli).into_iter().chain([ct.name.as_str()]))?
                ));
            }
            for n in self.plan.networks.iter().rev() {
                s.line(format!(
                    "\t\t{} >/dev/null 2>&1 || :",
                    qj([p, "network", "rm", &n.name])?
                ));
            }
        }
        s.line("\tfi");
        s.line("\texit \"$status\"");
        s.line("}");
        s.line("trap bottle_exit EXIT");
        s.line("trap 'exit 1' HUP INT TERM");
        Ok(())
    }

    /// Writes every file of every container into the staging directory, before anything is
    /// created.
    fn staging(&mut self) -> Result<(), RenderError> {
        if !self.has_files {
            return Ok(());
        }
        let s = &mut self.s;
        s.blank();
        s.comment(
            "Files are staged in a private directory first, so that a missing host file stops the\n\
             script before anything is created.",
        );
        s.line("stage=$(mktemp -d)");
        for (ct, cf) in self.plan.containers.iter().zip(&self.files) {
            let mut made = BTreeSet::new();
            for f in &cf.files {
                let spec = f.spec;
                let dir = f.rel.rsplit_once('/').map_or("", |(d, _)| d);
                let target = staged(&ct.name, &f.rel)?;
                let from_host = match &spec.source {
                    FileSource::Text { .. } => "",
                    FileSource::HostFile { .. } => {
                        ": copied from the host when the script runs (secret: not printed)"
                    }
                };
                s.blank();
                s.comment(format!(
                    "{}:{} (mode {:04o}, owner {}:{}){from_host}",
                    c(&ct.name),
                    c(&spec.path),
                    spec.mode,
                    spec.uid,
                    spec.gid
                ));
                if made.insert(dir) {
                    s.line(format!("mkdir -p {}", staged(&ct.name, dir)?));
                }
                match &spec.source {
                    FileSource::Text { text } if text.is_empty() => {
                        s.line(format!(": >{target}"));
                    }
                    FileSource::Text { text } if text.ends_with('\n') => {
                        // Quoted delimiter: nothing in the text expands.
                        let delim = delimiter(text);
                        s.line(format!("cat >{target} <<'{delim}'"));
                        s.0.push_str(text);
                        s.line(delim);
                    }
                    FileSource::Text { text } => {
                        // A heredoc always ends in a newline, which this text does not.
                        s.line(format!("printf '%s' {} >{target}", q(text)?));
                    }
                    FileSource::HostFile { path, .. } => {
                        let path = path.to_str().expect("checked: UTF-8");
                        s.line(format!("cp -- {} {target}", q(path)?));
                    }
                }
                s.line(format!(
                    "chmod {} {target}",
                    q(&format!("{:04o}", spec.mode))?
                ));
            }
        }
        Ok(())
    }

    fn networks(&mut self) -> Result<(), RenderError> {
        let s = &mut self.s;
        s.blank();
        s.comment("Networks.");
        s.line("created=1");
        let cli_is_podman = self.cli == Cli::Podman;
        for n in &self.plan.networks {
            let mut words = vec![self.p, "network", "create"];
            if n.internal {
                words.push("--internal");
            }
            // docker cannot turn its resolver off per network (nor does it forward lookups
            // out of an internal one); podman can.
            if !n.dns && cli_is_podman {
                words.push("--disable-dns");
            }
            let mut cmd = qj(words)?;
            for (k, v) in &n.labels {
                cmd.push(' ');
                cmd.push_str(&qj(["--label", &format!("{k}={v}")])?);
            }
            cmd.push(' ');
            cmd.push_str(&q(&n.name)?);
            s.line(format!("{cmd} >/dev/null"));
        }
        Ok(())
    }

    /// Per container: create, copy the files in (one archive per owner), connect, start.
    fn containers(&mut self) -> Result<(), RenderError> {
        let (p, cli) = (self.p, self.cli);
        let s = &mut self.s;
        let mut archive = 0;
        let mut address = 0;
        for (ct, cf) in self.plan.containers.iter().zip(&self.files) {
            s.blank();
            s.comment(format!("Container {} ({}).", c(&ct.name), describe(ct)));
            if matches!((cli, &ct.entrypoint), (Cli::Docker, Some(e)) if e.len() > 1) {
                s.comment(
                    "docker's --entrypoint takes only the program; the rest of the entrypoint leads\n\
                     the arguments after the image.",
                );
            }
            let mut addresses = Vec::new();
            for h in &ct.hosts_of {
                address += 1;
                let var = format!("address_{address}");
                s.comment(format!(
                    "{}'s address on {}, for the host entry {}.",
                    c(&h.container),
                    c(&h.network),
                    c(&h.name)
                ));
                let format = format!(
                    "{{{{(index .NetworkSettings.Networks {}).IPAddress}}}}",
                    serde_json::to_string(&h.network).expect("a string serialises")
                );
                s.line(format!(
                    "{var}=$({})",
                    qj([p, "inspect", "--format", &format, &h.container])?
                ));
                s.line(format!(
                    "[ -n \"${var}\" ] || {{ printf '%s\\n' {} >&2; exit 1; }}",
                    q(&format!(
                        "bottle {}: {} has no address on {}",
                        self.plan.slug, h.container, h.network
                    ))?
                ));
                addresses.push(var);
            }
            s.long(
                qj([p, "create"])?,
                create_groups(ct, cli, &addresses)?,
                " >/dev/null",
            );
            for ((uid, gid), members) in &cf.groups {
                archive += 1;
                // Written to a file, not piped: POSIX sh has no pipefail to catch a failing tar.
                let tar = format!("\"$stage\"/{archive}.tar");
                let first = format!(
                    "tar -C {} {} -cf {tar} --",
                    staged(&ct.name, "")?,
                    qj([
                        "--numeric-owner",
                        &format!("--owner=:{uid}"),
                        &format!("--group=:{gid}"),
                        "--no-recursion",
                    ])?
                );
                let names = members
                    .iter()
                    .map(|&i| q(&cf.files[i].rel))
                    .collect::<Result<Vec<_>, _>>()?;
                s.long(first, names, "");
                let mut cp = vec![p, "cp"];
                if cli == Cli::Podman {
                    // Otherwise podman gives every file to the container's user.
                    cp.push("--archive=false");
                }
                let dest = format!("{}:/", ct.name);
                cp.extend(["-", dest.as_str()]);
                s.line(format!("{} <{tar}", qj(cp)?));
            }
            for n in &ct.connect {
                s.line(qj([p, "network", "connect", n, &ct.name])?);
            }
            s.line(format!("{} >/dev/null", qj([p, "start", &ct.name])?));
        }
        Ok(())
    }
}

/// The lines removing every container, then every network, matching `filter`.
fn remove_by_label(s: &mut Script, cli: Cli, filter: &str) -> Result<(), RenderError> {
    let p = cli.program();
    s.comment("Captured first, so that a failing listing stops the script (set -e).");
    s.line(format!(
        "containers=$({})",
        qj([p, "ps", "-aq", "--filter", filter])?
    ));
    s.line(format!(
        "printf '%s\\n' \"$containers\" | xargs -r {} >/dev/null",
        qj(rm_force(cli))?
    ));
    s.line(format!(
        "networks=$({})",
        qj([p, "network", "ls", "-q", "--filter", filter])?
    ));
    s.line(format!(
        "printf '%s\\n' \"$networks\" | xargs -r {} >/dev/null",
        qj([p, "network", "rm"])?
    ));
    Ok(())
}

/// Prints the script `bottle down <slug>` amounts to: remove the containers, then the
/// networks, labelled `bottle.slug=<slug>`. Removing nothing succeeds.
pub fn render_down(slug: &str, cli: Cli) -> Result<String, RenderError> {
    let mut s = Script::default();
    s.header(&format!(
        "bottle down: removes bottle {}: its containers, then its networks, found by label.",
        c(slug)
    ));
    s.comment("Idempotent: when nothing is left it removes nothing and succeeds.");
    s.line("set -eu");
    remove_by_label(&mut s, cli, &format!("label={LABEL_SLUG}={slug}"))?;
    s.line(format!(
        "printf '%s\\n' {}",
        q(&format!("bottle {slug} is down"))?
    ));
    Ok(s.finish())
}

/// Prints the script `bottle cleanup` amounts to: remove every labelled container and network
/// of every bottle (`slug: None`) or of one.
pub fn render_cleanup(slug: Option<&str>, cli: Cli) -> Result<String, RenderError> {
    let (what, filter, done) = match slug {
        Some(slug) => (
            format!("bottle {}", c(slug)),
            format!("label={LABEL_SLUG}={slug}"),
            format!("bottle {slug}: leftovers removed"),
        ),
        None => (
            "every bottle".to_owned(),
            format!("label={LABEL_MANAGED}"),
            "bottle: leftovers of every bottle removed".to_owned(),
        ),
    };
    let mut s = Script::default();
    s.header(&format!(
        "bottle cleanup: removes the containers, then the networks, of {what}, found by label."
    ));
    s.comment("Idempotent: when nothing is left it removes nothing and succeeds.");
    s.line("set -eu");
    remove_by_label(&mut s, cli, &filter)?;
    s.line(format!("printf '%s\\n' {}", q(&done)?));
    Ok(s.finish())
}

/// Prints the commands `bottle ps` amounts to: list labelled containers and networks.
pub fn render_ps(slug: Option<&str>, cli: Cli) -> Result<String, RenderError> {
    let p = cli.program();
    let filter = match slug {
        Some(slug) => format!("label={LABEL_SLUG}={slug}"),
        None => format!("label={LABEL_MANAGED}"),
    };
    // A label of a listed resource: docker has a method for it; podman has a map, which its
    // `network ls` keeps under `.Network` (its `.Labels` there is a string).
    let label = |map: &str, key: &str| match cli {
        Cli::Docker => format!("{{{{.Label \"{key}\"}}}}"),
        Cli::Podman => format!("{{{{index {map} \"{key}\"}}}}"),
    };
    let containers = format!(
        "{}\t{}\t{{{{.Names}}}}\t{{{{.State}}}}",
        label(".Labels", LABEL_SLUG),
        label(".Labels", LABEL_ROLE)
    );
    let networks = format!(
        "{}\t{}\t{{{{.Name}}}}",
        label(".Network.Labels", LABEL_SLUG),
        label(".Network.Labels", LABEL_ROLE)
    );
    let mut s = Script::default();
    s.header(&match slug {
        Some(slug) => format!(
            "bottle ps: lists the containers and networks of bottle {}, by label.",
            c(slug)
        ),
        None => {
            "bottle ps: lists the containers and networks of every bottle, by label.".to_owned()
        }
    });
    s.line("set -eu");
    s.line(qj([
        p,
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        &containers,
    ])?);
    s.line(qj([
        p, "network", "ls", "--filter", &filter, "--format", &networks,
    ])?);
    Ok(s.finish())
}

/// Prints the command `bottle exec` amounts to: run `request.command` in the bottle's agent.
pub fn render_exec(request: &ExecRequest, cli: Cli) -> Result<String, RenderError> {
    if request.command.is_empty() {
        return Err(RenderError::EmptyCommand {
            slug: request.slug.clone(),
        });
    }
    let agent = resource_name(&request.slug, ContainerRole::AGENT);
    check_name("container", &agent)?;
    let mut words = vec![cli.program(), "exec"];
    if request.tty {
        words.push("-it");
    }
    words.push(&agent);
    words.extend(request.command.iter().map(String::as_str));
    let mut s = Script::default();
    s.header(&format!(
        "bottle exec: runs a command in the agent of bottle {}.",
        c(&request.slug)
    ));
    s.line(qj(words)?);
    Ok(s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/etc/gitconfig").unwrap(), "etc/gitconfig");
        assert_eq!(relative("//etc/./a//b").unwrap(), "etc/a/b");
        assert!(relative("etc/x").is_err());
        assert!(relative("/").is_err());
        assert!(relative("/etc/../x").is_err());
    }

    #[test]
    fn delimiters_avoid_the_text() {
        assert_eq!(delimiter("a\n"), "BOTTLE_EOF");
        assert_eq!(delimiter("BOTTLE_EOF\n"), "BOTTLE_EOF_1");
        assert_eq!(delimiter("BOTTLE_EOF\nBOTTLE_EOF_1\n"), "BOTTLE_EOF_2");
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(c("a\nb\r\t"), "a\\nb\\r\\t");
        assert_eq!(c("demo"), "demo");
    }

    #[test]
    fn names() {
        assert!(check_name("container", "bottle-demo-gate").is_ok());
        for bad in ["", "-x", "a/b", "a b", "a\n", ".x"] {
            assert!(check_name("container", bad).is_err(), "{bad:?}");
        }
    }
}
