//! The printers of `down`, `stop`, `start`, `cleanup`, `ps` and `exec`.

use bottle_core::backend::{ExecRequest, Scope};
use bottle_core::plan::{
    resource_name, ContainerRole, Plan, LABEL_MANAGED, LABEL_PROJECT, LABEL_ROLE, LABEL_SLUG,
};

use super::checks::check_name;
use super::script::Script;
use super::words::{c, q, qj, rm_force};
use super::RenderError;
use crate::Cli;

/// The `--filter` values selecting the labelled resources of `scope`: engines AND them.
/// A filter cannot select a missing label, so resources without a project label (made by a
/// bottle older than projects) are reached only when the scope spans every project.
fn filters(scope: &Scope) -> Vec<String> {
    let mut out = vec![format!("label={LABEL_MANAGED}")];
    if let Some(p) = &scope.project {
        out.push(format!("label={LABEL_PROJECT}={p}"));
    }
    if let Some(b) = &scope.bottle {
        out.push(format!("label={LABEL_SLUG}={b}"));
    }
    out
}

/// `--filter F` for each filter.
fn filter_args(filters: &[String]) -> Vec<&str> {
    filters
        .iter()
        .flat_map(|f| ["--filter", f.as_str()])
        .collect()
}

/// The lines removing every container, then every network, matching all of `filters`.
fn remove_by_label(s: &mut Script, cli: Cli, filters: &[String]) -> Result<(), RenderError> {
    let p = cli.program();
    let f = filter_args(filters);
    s.comment("Captured first, so that a failing listing stops the script (set -e).");
    s.line(format!(
        "containers=$({})",
        qj([&[p, "ps", "-aq"][..], &f].concat())?
    ));
    s.line(format!(
        "printf '%s\\n' \"$containers\" | xargs -r {} >/dev/null",
        qj(rm_force(cli))?
    ));
    s.line(format!(
        "networks=$({})",
        qj([&[p, "network", "ls", "-q"][..], &f].concat())?
    ));
    s.line(format!(
        "printf '%s\\n' \"$networks\" | xargs -r {} >/dev/null",
        qj([p, "network", "rm"])?
    ));
    Ok(())
}

/// Prints the script `bottle down <slug>` amounts to: remove the containers, then the
/// networks, labelled with the project and `bottle.slug=<slug>`. Removing nothing succeeds.
pub fn render_down(scope: &Scope, cli: Cli) -> Result<String, RenderError> {
    let what = scope.describe();
    let mut s = Script::default();
    s.header(&format!(
        "bottle down: removes {}: its containers, then its networks, found by label.",
        c(&what.replace('\'', ""))
    ));
    s.comment("Idempotent: when nothing is left it removes nothing and succeeds.");
    s.line("set -eu");
    remove_by_label(&mut s, cli, &filters(scope))?;
    s.line(format!("printf '%s\\n' {}", q(&format!("{what} is down"))?));
    Ok(s.finish())
}

/// Prints the script `bottle stop <slug>` amounts to: stop the running containers of the
/// bottle of `scope`, found by label, keeping them and their networks. Stopping nothing
/// succeeds.
pub fn render_stop(scope: &Scope, cli: Cli) -> Result<String, RenderError> {
    let p = cli.program();
    let slug = scope.bottle.as_deref().unwrap_or_default();
    let mut s = Script::default();
    s.header(&format!(
        "bottle stop: stops the running containers of bottle {}, found by label; keeps them, their networks and what they hold.",
        c(slug)
    ));
    s.line("set -eu");
    s.comment("Captured first, so that a failing listing stops the script (set -e).");
    s.line(format!(
        "containers=$({})",
        qj([&[p, "ps", "-q"][..], &filter_args(&filters(scope))].concat())?
    ));
    s.line(format!(
        "printf '%s\\n' \"$containers\" | xargs -r {} >/dev/null",
        qj([p, "stop"])?
    ));
    s.line(format!(
        "printf '%s\\n' {}",
        q(&format!(
            "bottle {slug} is stopped; `bottle start {slug}` starts it again"
        ))?
    ));
    Ok(s.finish())
}

/// Prints the script `bottle start` amounts to for `plan`: start its containers one after
/// the other in plan order (`start` of a running container changes nothing). A missing
/// container stops the script.
pub fn render_start(plan: &Plan, cli: Cli) -> Result<String, RenderError> {
    let mut s = Script::default();
    s.header(&format!(
        "bottle start: starts the containers of bottle {} in the plan's order, as up does.",
        c(&plan.slug)
    ));
    s.comment(format!(
        "A missing container stops the script: then `bottle down {0}` and `bottle up {0}`.",
        c(&plan.slug)
    ));
    s.line("set -eu");
    for container in &plan.containers {
        check_name("container", &container.name)?;
        s.line(format!(
            "{} >/dev/null",
            qj([cli.program(), "start", &container.name])?
        ));
    }
    s.line(format!(
        "printf '%s\\n' {}",
        q(&format!("bottle {} is started", plan.slug))?
    ));
    Ok(s.finish())
}

/// Prints the script `bottle cleanup` amounts to: remove the labelled containers and
/// networks of `scope`; with [`Scope::stopped_only`], bottle by bottle, skipping each that
/// has a container running, restarting or paused, and with [`Scope::keep_complete`] each
/// complete stopped one.
pub fn render_cleanup(scope: &Scope, cli: Cli) -> Result<String, RenderError> {
    let what = scope.describe();
    let mut s = Script::default();
    s.header(&format!(
        "bottle cleanup: removes the containers, then the networks, of {}, found by label.",
        c(&what.replace('\'', ""))
    ));
    s.comment("Idempotent: when nothing is left it removes nothing and succeeds.");
    s.line("set -eu");
    if !scope.stopped_only {
        remove_by_label(&mut s, cli, &filters(scope))?;
    } else {
        let p = cli.program();
        let all = filters(scope);
        let f = filter_args(&all);
        let slug = match cli {
            Cli::Docker => format!("{{{{.Label \"{LABEL_SLUG}\"}}}}"),
            Cli::Podman => format!("{{{{index .Labels \"{LABEL_SLUG}\"}}}}"),
        };
        let net_slug = match cli {
            Cli::Docker => slug.clone(),
            Cli::Podman => format!("{{{{index .Network.Labels \"{LABEL_SLUG}\"}}}}"),
        };
        s.comment("Only bottles with nothing running: a running bottle is `bottle down`'s.");
        if scope.keep_complete {
            s.comment(
                "Nor complete stopped ones (an agent, every container started once): `bottle start` resumes them.",
            );
        }
        s.line(format!(
            "bottles=$({{ {}; {}; }} | sort -u)",
            qj([&[p, "ps", "-a"][..], &f, &["--format", &slug]].concat())?,
            qj([&[p, "network", "ls"][..], &f, &["--format", &net_slug]].concat())?,
        ));
        s.line("for b in $bottles; do");
        let mut one = all.clone();
        one.push(format!("label={LABEL_SLUG}=$b"));
        let live = filter_args(&one)
            .into_iter()
            .map(|w| {
                if w.contains("=$b") {
                    format!("\"{}\"", w)
                } else {
                    q(w).unwrap_or_default()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        s.line(format!(
            "  live=$({p} ps -q {live} --filter status=running; {p} ps -q {live} --filter status=restarting; {p} ps -q {live} --filter status=paused)"
        ));
        s.line(
            "  if [ -n \"$live\" ]; then printf 'left running: bottle %s\\n' \"$b\"; continue; fi",
        );
        if scope.keep_complete {
            s.line(format!(
                "  agent=$({p} ps -aq {live} --filter {})",
                q(&format!("label={LABEL_ROLE}={}", ContainerRole::AGENT))?
            ));
            s.line(format!(
                "  fresh=$({p} ps -aq {live} --filter status=created)"
            ));
            s.line(
                "  if [ -n \"$agent\" ] && [ -z \"$fresh\" ]; then printf 'kept stopped: bottle %s (`bottle start %s` resumes it, `bottle cleanup %s` removes it)\\n' \"$b\" \"$b\" \"$b\"; continue; fi",
            );
        }
        s.line(format!(
            "  {p} ps -aq {live} | xargs -r {} >/dev/null",
            qj(rm_force(cli))?
        ));
        s.line(format!(
            "  {p} network ls -q {live} | xargs -r {p} network rm >/dev/null"
        ));
        s.line("done");
    }
    s.line(format!(
        "printf '%s\\n' {}",
        q(&format!("{what}: leftovers removed"))?
    ));
    Ok(s.finish())
}

/// Prints the commands `bottle ps` amounts to: list labelled containers and networks.
pub fn render_ps(scope: &Scope, cli: Cli) -> Result<String, RenderError> {
    let p = cli.program();
    let all = filters(scope);
    let f = filter_args(&all);
    // A label of a listed resource: docker has a method for it; podman has a map, which its
    // `network ls` keeps under `.Network` (its `.Labels` there is a string).
    let label = |map: &str, key: &str| match cli {
        Cli::Docker => format!("{{{{.Label \"{key}\"}}}}"),
        Cli::Podman => format!("{{{{index {map} \"{key}\"}}}}"),
    };
    let containers = format!(
        "{}\t{}\t{}\t{{{{.Names}}}}\t{{{{.State}}}}",
        label(".Labels", LABEL_PROJECT),
        label(".Labels", LABEL_SLUG),
        label(".Labels", LABEL_ROLE)
    );
    let networks = format!(
        "{}\t{}\t{}\t{{{{.Name}}}}",
        label(".Network.Labels", LABEL_PROJECT),
        label(".Network.Labels", LABEL_SLUG),
        label(".Network.Labels", LABEL_ROLE)
    );
    let mut s = Script::default();
    s.header(&format!(
        "bottle ps: lists the containers and networks of {}, by label.",
        c(&scope.describe().replace('\'', ""))
    ));
    s.line("set -eu");
    s.line(qj(
        [&[p, "ps", "-a"][..], &f, &["--format", &containers]].concat()
    )?);
    s.line(qj([
        &[p, "network", "ls"][..],
        &f,
        &["--format", &networks],
    ]
    .concat())?);
    Ok(s.finish())
}

/// Prints the command `bottle exec` amounts to: run `request.command` in the bottle's agent.
pub fn render_exec(request: &ExecRequest, cli: Cli) -> Result<String, RenderError> {
    if request.command.is_empty() {
        return Err(RenderError::EmptyCommand {
            slug: request.slug.clone(),
        });
    }
    let agent = resource_name(&request.project, &request.slug, ContainerRole::AGENT);
    check_name("container", &agent)?;
    let mut words = vec![cli.program(), "exec"];
    if request.tty {
        words.push("-it");
    }
    let options = &request.options;
    if let Some(user) = &options.user {
        words.extend(["-u", user]);
    }
    if let Some(dir) = &options.workdir {
        words.extend(["-w", dir]);
    }
    let env = options.env_pairs();
    for pair in &env {
        words.extend(["-e", pair]);
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
