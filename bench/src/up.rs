//! The measures `up` and `up_compose`.

use std::path::Path;
use std::process::Command;

use crate::cleanup::{cleanup_forget, cleanup_register};
use crate::cmd::docker;
use crate::ctx::Ctx;
use crate::results::{Measure, Series, Target};
use crate::{cmd, compose, STEP};

pub(crate) fn measure_up(ctx: &Ctx, with_compose: bool) -> anyhow::Result<Vec<Measure>> {
    let mut up = Measure::new(
        "up",
        "bottle up (images warm)",
        "sh up.sh, the script `bottle --dry-run up` prints",
        Target::Ratio(0.5),
    );
    let compose_ok = with_compose && cmd::have("docker-compose");
    let mut up_c = Measure::new(
        "up_compose",
        "bottle up (images warm)",
        "docker-compose up -d of the same topology",
        Target::Ratio(0.5),
    );
    if with_compose && !compose_ok {
        up_c.notes
            .push("docker-compose is not installed: not measured".to_owned());
    }
    let mut phases: Vec<[f64; 4]> = Vec::new();
    for i in 0..=ctx.runs {
        let warm = i == 0;
        eprintln!(
            "  up: {}",
            if warm {
                "warm-up".to_owned()
            } else {
                format!("run {i}")
            }
        );
        // Rotate the order, so no side always runs first.
        for k in 0..3 {
            match (i + k) % 3 {
                0 => {
                    let slug = format!("bench{}-up{i}", ctx.id);
                    let dir = ctx.manifest(&slug, "app")?;
                    let since = std::time::SystemTime::now();
                    let t = ctx.up(&slug, &dir);
                    if let (false, Ok(took)) = (warm, &t) {
                        if let Some(p) = up_phases(&slug, since, *took) {
                            phases.push(p);
                        }
                    }
                    let t = t.and_then(|t| ctx.down(&slug, &dir).map(|_| t));
                    match t {
                        Err(e) if warm => return Err(e),
                        _ if warm => {}
                        Ok(t) => {
                            up.bottle.samples.push(t);
                            up_c.bottle.samples.push(t);
                        }
                        Err(e) => {
                            up_c.bottle.errors.push(format!("{e:#}"));
                            up.bottle.record(Err(e));
                        }
                    }
                }
                1 => {
                    let slug = format!("bench{}-dry{i}", ctx.id);
                    let dir = ctx.manifest(&slug, "app")?;
                    let script = cmd::ok(
                        Command::new(&ctx.bottle).current_dir(&dir).args([
                            "--backend",
                            "dry-run",
                            "up",
                            &slug,
                        ]),
                        STEP,
                    )?;
                    let path = dir.join("up.sh");
                    std::fs::write(&path, script)?;
                    cleanup_register(|c| c.bottles.push((slug.clone(), dir.clone())));
                    let t = cmd::timed(Command::new("sh").arg(&path).current_dir(&dir), STEP);
                    let t = t.and_then(|t| ctx.down(&slug, &dir).map(|_| t));
                    if warm {
                        t?;
                    } else {
                        up.baseline.record(t);
                    }
                }
                _ if compose_ok => {
                    let slug = format!("bench{}-cmp{i}", ctx.id);
                    let dir = ctx.manifest(&slug, "app")?;
                    let t = compose_up(&slug, &dir);
                    if warm {
                        t?;
                    } else {
                        up_c.baseline.record(t);
                    }
                }
                _ => {}
            }
        }
    }
    if !phases.is_empty() {
        let median = |i: usize| {
            Series {
                samples: phases.iter().map(|p| p[i]).collect(),
                errors: Vec::new(),
            }
            .median()
            .unwrap_or(f64::NAN)
        };
        up.notes.push(format!(
            "where bottle up's time goes (medians, from the engine's event times): {:.3} s until \
             the engine reports its first step (process start, leftover probes, image checks, \
             the first network); {:.3} s creating the other network and the containers, copying \
             their files, connecting the gate; {:.3} s in the engine starting the gate, then the \
             agent; {:.3} s after the last start until bottle exits",
            median(0),
            median(1),
            median(2),
            median(3)
        ));
    }
    let mut out = vec![up];
    if with_compose {
        out.push(up_c);
    }
    Ok(out)
}

/// Splits one `bottle up` of `slug`, which started at `since` and took `took` seconds, into
/// phases by the times the engine reports its steps (`docker events`): until the first
/// step, the other steps before the first start, the starts, and after the last start.
pub(crate) fn up_phases(slug: &str, since: std::time::SystemTime, took: f64) -> Option<[f64; 4]> {
    let t0 = since
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let until = t0 + took + 0.5;
    let out = cmd::ok(
        &mut docker([
            "events",
            "--since",
            &format!("{t0:.9}"),
            "--until",
            &format!("{until:.9}"),
            "--format",
            "{{.TimeNano}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ]),
        STEP,
    )
    .ok()?;
    let prefix = format!("bottle-{}-{slug}-", crate::ctx::BENCH_PROJECT);
    let gate = format!("{prefix}gate");
    let agent = format!("{prefix}agent");
    let mut events: Vec<(f64, String, String)> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let nanos: f64 = w.next()?.parse().ok()?;
            let _kind = w.next()?;
            let action = w.next()?.to_owned();
            let name = w.next()?.to_owned();
            name.starts_with(&prefix)
                .then_some((nanos / 1e9 - t0, action, name))
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = events.first()?.0;
    let start_of = |who: &str| {
        events
            .iter()
            .find(|e| e.1 == "start" && e.2 == who)
            .map(|e| e.0)
    };
    let (gate_start, agent_start) = (start_of(&gate)?, start_of(&agent)?);
    let first_start = gate_start.min(agent_start);
    let prepared = events
        .iter()
        .filter(|e| e.0 < first_start && e.1 != "start")
        .map(|e| e.0)
        .fold(first, f64::max);
    let last_start = gate_start.max(agent_start);
    Some([
        first,
        prepared - first,
        last_start - prepared,
        (took - last_start).max(0.0),
    ])
}

/// `docker-compose up -d` of the bottle `slug`'s plan, timed; then `down`.
pub(crate) fn compose_up(slug: &str, dir: &Path) -> anyhow::Result<f64> {
    let manifest_path = dir.join("bottle.toml");
    let text = std::fs::read_to_string(&manifest_path)?;
    let manifest = bottle_core::manifest::parse(
        &manifest_path,
        &text,
        &bottle_core::manifest::Env::current(),
    )?;
    let plan = bottle_core::planner::plan(
        manifest.select(Some(slug))?,
        &bottle_core::project::Project::new(crate::ctx::BENCH_PROJECT)?,
    )?;
    let file = dir.join("docker-compose.json");
    std::fs::write(&file, compose::render(&plan, &dir.join("stage"))?)?;
    let project = slug.replace('-', "");
    cleanup_register(|c| c.compose.push((project.clone(), file.clone())));
    let mut upc = Command::new("docker-compose");
    upc.current_dir(dir)
        .arg("-p")
        .arg(&project)
        .arg("-f")
        .arg(&file)
        .args(["up", "-d", "--no-build"]);
    let t = cmd::timed(&mut upc, STEP)?;
    let mut down = Command::new("docker-compose");
    down.current_dir(dir)
        .arg("-p")
        .arg(&project)
        .arg("-f")
        .arg(&file)
        .args(["down", "-v", "-t", "1"]);
    cmd::ok(&mut down, STEP)?;
    cleanup_forget(slug);
    Ok(t)
}
