//! The measure `plan`.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::ctx::Ctx;
use crate::results::{Measure, Target};
use crate::{PLAN_RUNS, PLAN_UPSTREAMS};

pub(crate) fn measure_plan(ctx: &Ctx) -> anyhow::Result<Measure> {
    let mut m = Measure::new(
        "plan",
        &format!("parse, validate and plan a manifest of {PLAN_UPSTREAMS} upstreams, in process"),
        "(absolute)",
        Target::Millis(20.0),
    );
    let dir = ctx.dir.path().join("plan");
    std::fs::create_dir_all(&dir)?;
    let mut text = String::from(
        "[bottles.many]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n",
    );
    for i in 0..PLAN_UPSTREAMS {
        write!(
            text,
            "\n[[bottles.many.git]]\nname = \"repo{i:03}\"\n\
             upstream = \"ssh://git@git{}.example.com:2222/team/repo{i:03}.git\"\n\
             identity_file = {:?}\nknown_host_key = {:?}\n",
            i % 7,
            ctx.gate_key.display().to_string(),
            ctx.host_key_pub,
        )?;
    }
    let path = dir.join("bottle.toml");
    std::fs::write(&path, &text)?;
    let env = bottle_core::manifest::Env::current();
    let once = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let manifest = bottle_core::manifest::parse(&path, &text, &env)?;
        let plan = bottle_core::planner::plan(
            manifest.select(Some("many"))?,
            &bottle_core::project::Project::new("bench")?,
        )?;
        let took = start.elapsed().as_secs_f64();
        let gate = plan.container(bottle_core::gate::NAME).context("a gate")?;
        if gate.files.len() < 3 + 2 * PLAN_UPSTREAMS {
            bail!("the plan lacks files: {}", gate.files.len());
        }
        std::hint::black_box(plan);
        Ok(took)
    };
    for _ in 0..5 {
        once()?;
    }
    for _ in 0..PLAN_RUNS {
        m.bottle.record(once());
    }
    m.notes.push(format!(
        "{PLAN_RUNS} runs after 5 warm-ups; each reads the {PLAN_UPSTREAMS} identity files, as planning does"
    ));
    Ok(m)
}
