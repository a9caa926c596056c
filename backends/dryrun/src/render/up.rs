//! The `up` script, section by section.

use std::collections::BTreeSet;

use bottle_core::backend::UpOptions;
use bottle_core::plan::{ContainerSpec, Egress, Plan, Restart, WritableOn};

use super::checks::{check_plan, ContainerFiles, CopyGroup};
use super::script::Script;
use super::staging::staged;
use super::words::{c, q, qj, rm_force};
use super::RenderError;
use crate::Cli;

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
    for (k, v) in &ct.host_env {
        // Read from the environment the script runs in: the value is never printed.
        let what = format!("{} env {k}", ct.name);
        g.push(format!(
            "{} {}",
            q("--env")?,
            v.from.shell_word(&format!("{k}="), k, &what)?
        ));
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
    for (key, value) in h.sysctls() {
        g.push(qj(["--sysctl", &format!("{key}={value}")])?);
    }
    if let Some(writable) = &h.read_only_root {
        g.push(q("--read-only")?);
        if cli == Cli::Podman {
            // Else podman adds tmpfs mounts of its own at /tmp, /var/tmp and /run.
            g.push(q("--read-only-tmpfs=false")?);
        }
        for w in writable {
            match w.on {
                // An anonymous volume, filled from the image, removed by `rm -v`.
                WritableOn::Disk => g.push(qj(["--volume", &w.path])?),
                WritableOn::Memory { bytes } => {
                    // Podman refuses `uid=`; its `U` chowns to the container's user.
                    let options = match cli {
                        Cli::Podman => format!("size={bytes},U"),
                        Cli::Docker => ct.tmpfs_options(bytes),
                    };
                    g.push(qj(["--tmpfs", &format!("{}:{options}", w.path)])?)
                }
            }
        }
    }
    if ct.init {
        g.push(q("--init")?);
    }
    if ct.restart != Restart::No {
        g.push(qj(["--restart", &ct.restart.engine_value()])?);
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
    up.host_values()?;
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
pub(super) struct Up<'a> {
    pub(super) plan: &'a Plan,
    pub(super) cli: Cli,
    /// The program: `docker` or `podman`.
    pub(super) p: &'static str,
    pub(super) keep_on_failure: bool,
    pub(super) has_files: bool,
    pub(super) files: Vec<ContainerFiles<'a>>,
    pub(super) s: Script,
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

    /// Values from the host's environment (`host_env`): each expanded once, so that an unset
    /// variable stops the script before anything is created, as it stopped the plan.
    fn host_values(&mut self) -> Result<(), RenderError> {
        let s = &mut self.s;
        let mut first = true;
        for ct in &self.plan.containers {
            for (key, v) in &ct.host_env {
                if std::mem::take(&mut first) {
                    s.blank();
                    s.comment("Values from the host's environment: read when the script runs, never printed.");
                }
                s.comment(format!(
                    "{} env {key} = {}",
                    c(&ct.name),
                    c(&v.from.describe(key))
                ));
                let what = format!("{} env {key}", ct.name);
                s.line(format!(": {}", v.from.shell_word("", key, &what)?));
            }
        }
        Ok(())
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
            // No address of the host on the bridge (NetworkSpec::host): docker's bridge
            // driver leaves it off when told; netavark gives an internal bridge none.
            if !n.host {
                match self.cli {
                    Cli::Docker => {
                        words.extend(["-o", "com.docker.network.bridge.inhibit_ipv4=true"])
                    }
                    Cli::Podman if n.internal => {}
                    Cli::Podman => {
                        return Err(RenderError::HostlessNetwork {
                            network: n.name.clone(),
                        })
                    }
                }
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
            for (group, members) in &cf.groups {
                let CopyGroup { dir, uid, gid } = group;
                archive += 1;
                // Written to a file, not piped: POSIX sh has no pipefail to catch a failing tar.
                let tar = format!("\"$stage\"/{archive}.tar");
                let first = format!(
                    "tar -C {} {} -cf {tar} --",
                    staged(&ct.name, dir)?,
                    qj([
                        "--numeric-owner",
                        &format!("--owner=:{uid}"),
                        &format!("--group=:{gid}"),
                        "--no-recursion",
                    ])?
                );
                let names = members
                    .iter()
                    .map(|&i| {
                        let rel = &cf.files[i].rel;
                        q(if dir.is_empty() {
                            rel
                        } else {
                            rel.strip_prefix(dir.as_str())
                                .and_then(|r| r.strip_prefix('/'))
                                .unwrap_or(rel)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                s.long(first, names, "");
                let mut cp = vec![p, "cp"];
                if cli == Cli::Podman {
                    // Otherwise podman gives every file to the container's user.
                    cp.push("--archive=false");
                }
                // Into a volume of a read-only container: engines copy nowhere else there.
                let dest = format!("{}:/{dir}", ct.name);
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
