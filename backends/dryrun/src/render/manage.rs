//! The printers of `down`, `stop`, `start`, `cleanup`, `ps` and `exec`.

use bottle_core::backend::ExecRequest;
use bottle_core::plan::{
    resource_name, ContainerRole, Plan, LABEL_MANAGED, LABEL_ROLE, LABEL_SLUG,
};

use super::checks::check_name;
use super::script::Script;
use super::words::{c, q, qj, rm_force};
use super::RenderError;
use crate::Cli;

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

/// Prints the script `bottle stop <slug>` amounts to: stop the running containers labelled
/// `bottle.slug=<slug>`, keeping them and their networks. Stopping nothing succeeds.
pub fn render_stop(slug: &str, cli: Cli) -> Result<String, RenderError> {
    let p = cli.program();
    let mut s = Script::default();
    s.header(&format!(
        "bottle stop: stops the running containers of bottle {}, found by label; keeps them, their networks and what they hold.",
        c(slug)
    ));
    s.line("set -eu");
    s.comment("Captured first, so that a failing listing stops the script (set -e).");
    s.line(format!(
        "containers=$({})",
        qj([
            p,
            "ps",
            "-q",
            "--filter",
            &format!("label={LABEL_SLUG}={slug}")
        ])?
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
