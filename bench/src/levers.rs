//! Turning the gate's speed levers off, one at a time, to measure what each one is worth.
//!
//! A lever is turned off in the running gate of the bench's bottle, right after `bottle up`
//! and before any git traffic, by editing what bottle put there: the access hook (a root-owned
//! file, replaced through `docker exec -u 0`) and the mirror's `core.sshCommand`. Every edit
//! replaces an exact piece of the rendered script, and the run fails when that piece is not
//! found: a lever-off run can never silently measure the lever on. Nothing here changes
//! bottle itself; a run without `--lever-off` measures the gate exactly as bottle makes it.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::cmd::{docker, exec_ok};

/// The levers that can be turned off.
pub const LEVERS: [&str; 3] = ["persistent-ssh", "refresh-lock", "bitmap"];

/// What turning a lever off means, for the report.
pub fn describe(lever: &str) -> &'static str {
    match lever {
        "persistent-ssh" => {
            "no ControlMaster: every refresh and every forward opens a new ssh connection (and \
             the liveness probe, which only the persistent connection needs, is not run)"
        }
        "refresh-lock" => {
            "no refresh lock: every request refreshes the mirror itself, concurrently with the \
             others, racing on its refs (as before the lock)"
        }
        "bitmap" => "no reachability bitmap is written after the first refresh",
        _ => "unknown lever",
    }
}

/// One exact replacement in the access hook.
struct Edit {
    from: &'static str,
    to: &'static str,
}

fn hook_edits(lever: &str) -> anyhow::Result<Vec<Edit>> {
    Ok(match lever {
        "persistent-ssh" => vec![Edit {
            from: "\ttimeout 15 bash -c ': <>\"/dev/tcp/$1/$2\"' bottle-gate \"$host\" \"$port\" \\\n\
                   \t\t>bottle-gate-refresh.probe 2>&1 9>&- &\n",
            to: "\ttrue &\n",
        }],
        "refresh-lock" => vec![Edit {
            from: "if command -v flock >/dev/null 2>&1; then\n",
            to: "if false; then\n",
        }],
        "bitmap" => vec![Edit {
            from: "\tif [ ! -e \"$1\" ] && [ -n \"$(git for-each-ref --count=1 2>/dev/null)\" ]; then\n",
            to: "\tif false; then\n",
        }],
        other => bail!("no lever named '{other}'; the levers: {}", LEVERS.join(", ")),
    })
}

/// Applies `edits` to `text`; an error naming the first piece that is missing.
fn apply(text: &str, lever: &str, edits: &[Edit]) -> anyhow::Result<String> {
    let mut out = text.to_owned();
    for e in edits {
        if out.matches(e.from).count() != 1 {
            bail!(
                "cannot turn '{lever}' off: the access hook does not hold exactly one\n{}\n\
                 (the gate's scripts changed: update bench/src/levers.rs)",
                e.from
            );
        }
        out = out.replacen(e.from, e.to, 1);
    }
    Ok(out)
}

/// The ssh command without the persistent-connection options.
fn without_control(ssh: &str) -> anyhow::Result<String> {
    let at = ssh
        .find(" -o 'ControlMaster=auto'")
        .context("cannot turn 'persistent-ssh' off: core.sshCommand has no ControlMaster")?;
    let rest = &ssh[at..];
    for option in ["ControlPath=", "ControlPersist=", "ServerAliveInterval="] {
        if !rest.contains(option) {
            bail!("cannot turn 'persistent-ssh' off: core.sshCommand lacks {option}");
        }
    }
    Ok(ssh[..at].to_owned())
}

/// Turns `levers` off in `gate`, whose mirror is `repo` (a path in the gate).
pub fn turn_off(gate: &str, repo: &str, levers: &[String], limit: Duration) -> anyhow::Result<()> {
    if levers.is_empty() {
        return Ok(());
    }
    let path = "/etc/bottle-gate/access-hook";
    let mut hook = exec_ok(gate, &format!("cat {path}"), None, limit)?;
    hook.push('\n'); // exec_ok trims
    for lever in levers {
        hook = apply(&hook, lever, &hook_edits(lever)?)?;
        if lever == "persistent-ssh" {
            let ssh = exec_ok(
                gate,
                &format!("git -C {repo} config core.sshCommand"),
                None,
                limit,
            )?;
            let plain = without_control(&ssh)?;
            crate::cmd::ok(
                &mut docker([
                    "exec",
                    gate,
                    "git",
                    "-C",
                    repo,
                    "config",
                    "core.sshCommand",
                    &plain,
                ]),
                limit,
            )?;
        }
        eprintln!("  lever off: {lever}: {}", describe(lever));
    }
    // As root: the hook belongs to root. `cat >` keeps its owner and mode.
    crate::cmd::ok_input(
        &mut docker([
            "exec",
            "-i",
            "-u",
            "0",
            gate,
            "sh",
            "-c",
            &format!("cat >{path}"),
        ]),
        Some(hook.into_bytes()),
        limit,
    )?;
    let check = exec_ok(gate, &format!("sh -n {path} && echo ok"), None, limit)?;
    if check != "ok" {
        bail!("the edited access hook does not parse: {check}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_core::gate::{scripts, GateLayout};

    fn rendered_hook() -> String {
        scripts::render(&GateLayout::container(), "bench", &[])
            .unwrap()
            .access_hook
    }

    #[test]
    fn every_lever_edits_the_rendered_access_hook() {
        let hook = rendered_hook();
        for lever in LEVERS {
            let edited = apply(&hook, lever, &hook_edits(lever).unwrap()).unwrap();
            assert_ne!(edited, hook, "{lever}");
        }
    }

    #[test]
    fn all_levers_off_at_once() {
        let mut hook = rendered_hook();
        for lever in LEVERS {
            hook = apply(&hook, lever, &hook_edits(lever).unwrap()).unwrap();
        }
        assert_eq!(hook.matches("if false; then\n").count(), 2, "{hook}");
        assert!(hook.contains("\ttrue &\n\tprobe=$!\n"), "{hook}");
    }

    #[test]
    fn the_ssh_command_loses_exactly_the_control_options() {
        let ssh = scripts::ssh_command(&GateLayout::container(), "app").unwrap();
        let plain = without_control(&ssh).unwrap();
        assert!(plain.ends_with("-o 'ConnectTimeout=15'"), "{plain}");
        assert!(!plain.contains("Control"));
    }

    #[test]
    fn an_unknown_lever_is_refused() {
        assert!(hook_edits("turbo").is_err());
    }
}
