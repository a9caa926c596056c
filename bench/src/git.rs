//! The git measures: one bottle, the upstream fixture, a direct client.

use std::process::Command;
use std::time::Duration;
use std::time::Instant;

use anyhow::{bail, Context};
use bottle_backend_docker::Docker;
use bottle_backend_shared::{engine, fixture};

use crate::cmd::{docker, exec_ok, exec_timed};
use crate::ctx::Ctx;
use crate::facts::cpu_seconds;
use crate::results::{Measure, Series, Target};
use crate::{cmd, cores, data, levers, PARALLEL, STEP};

pub(crate) struct World {
    pub(crate) agent: String,
    pub(crate) gate: String,
    pub(crate) direct: String,
    pub(crate) url: String,
    pub(crate) direct_url: String,
    pub(crate) generated: data::Generated,
    pub(crate) moves: std::sync::atomic::AtomicUsize,
}

pub(crate) const DIRECT_HOME: &str = "/var/lib/bottle-gate";

/// Starts the upstream fixture of bottle `slug`, with no repository of its own, labelled
/// with the run's label too: the shared spec, applied through the engine's API as the demo
/// and the e2e tests apply it.
fn start_fixture(ctx: &Ctx, slug: &str) -> anyhow::Result<()> {
    let authorized = std::fs::read_to_string(ctx.gate_key.with_extension("pub"))?;
    let mut spec = fixture::upstream(&fixture::Upstream {
        project: crate::ctx::BENCH_PROJECT,
        slug,
        repos: &[],
        default_branch: "main",
        host_key: &ctx.host_key,
        authorized_keys: &authorized,
    });
    let (key, value) = ctx
        .label
        .split_once('=')
        .context("the run's label is KEY=VALUE")?;
    spec.labels.insert(key.to_owned(), value.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = Docker::connect().await?;
        tokio::time::timeout(STEP, engine::run_container(&docker, &spec))
            .await
            .with_context(|| format!("starting {} took too long", spec.name))??;
        anyhow::Ok(())
    })
}

pub(crate) fn setup_world(ctx: &Ctx) -> anyhow::Result<World> {
    let data_dir = ctx.dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let started = Instant::now();
    let generated = data::generate(&data_dir.join("bench.git"), data::REPO)?;
    eprintln!(
        "  generated the repository: {} commits, {:.1} MB packed, in {:.1} s",
        generated.commits,
        generated.pack_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    // The direct pushes go to a copy, so that both sides push commits their upstream lacks.
    cmd::ok(
        Command::new("cp")
            .arg("-a")
            .arg(data_dir.join("bench.git"))
            .arg(data_dir.join("direct.git")),
        STEP,
    )?;
    let tar = ctx.dir.path().join("repos.tar");
    cmd::ok(
        Command::new("tar")
            .arg("-C")
            .arg(&data_dir)
            .arg("-cf")
            .arg(&tar)
            .args(["bench.git", "direct.git"]),
        STEP,
    )?;

    let slug = format!("bench{}-git", ctx.id);
    let dir = ctx.manifest(&slug, "bench")?;
    ctx.up(&slug, &dir)?;
    let name = |role: &str| format!("bottle-{}-{slug}-{role}", crate::ctx::BENCH_PROJECT);
    levers::turn_off(&name("gate"), "/git/bench.git", &ctx.levers_off, STEP)?;
    let (fixture, direct, egress) = (name("upstream"), name("direct"), name("egress"));
    let slug_label = format!("bottle.slug={slug}");

    // The upstream fixture, on the egress network, with the generated repositories.
    start_fixture(ctx, &slug)?;
    cmd::ok_input(
        &mut docker(["cp", "-", &format!("{fixture}:/srv/git")]),
        Some(std::fs::read(&tar)?),
        STEP,
    )?;
    // Copied in after its entrypoint gave /srv/git to its git user: again.
    cmd::ok(
        &mut docker(["exec", &fixture, "chown", "-R", "git:git", "/srv/git"]),
        STEP,
    )?;
    cmd::poll(Duration::from_secs(30), "the upstream fixture", || {
        let logs = cmd::run(&mut docker(["logs", &fixture]), None, STEP)?;
        if logs.both().contains("Server listening on") {
            Ok(())
        } else {
            bail!("not listening yet:\n{}", logs.both())
        }
    })?;

    // The direct client: the gate's image, the gate's key and pinned host key, on egress.
    cmd::ok(
        &mut docker([
            "run",
            "-d",
            "--pull",
            "never",
            "--name",
            &direct,
            "--network",
            &egress,
            "--label",
            &slug_label,
            "--label",
            "bottle.managed=2",
            "--label",
            &ctx.label,
            "--init",
            "--entrypoint",
            "sleep",
            "bottle-gate:latest",
            "infinity",
        ]),
        STEP,
    )?;
    let key = std::fs::read(&ctx.gate_key)?;
    exec_ok(
        &direct,
        "umask 077 && mkdir -p \"$HOME/.ssh\" && cat >\"$HOME/.ssh/id\"",
        Some(key),
        STEP,
    )?;
    let known = format!(
        "bottle-{}-{slug}-upstream {}\n",
        crate::ctx::BENCH_PROJECT,
        ctx.host_key_pub
    );
    exec_ok(
        &direct,
        "cat >\"$HOME/.ssh/known_hosts\"",
        Some(known.into_bytes()),
        STEP,
    )?;
    let ssh = format!(
        "ssh -F /dev/null -o IdentityFile={DIRECT_HOME}/.ssh/id -o IdentitiesOnly=yes \
         -o UserKnownHostsFile={DIRECT_HOME}/.ssh/known_hosts -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=15"
    );
    cmd::ok(
        &mut docker([
            "exec",
            &direct,
            "git",
            "config",
            "--global",
            "core.sshCommand",
            &ssh,
        ]),
        STEP,
    )?;
    let url = Ctx::upstream_url(&slug, "bench");
    let direct_url = Ctx::upstream_url(&slug, "direct");
    cmd::poll(Duration::from_secs(30), "the upstream over ssh", || {
        exec_ok(&direct, &format!("git ls-remote {url} HEAD"), None, STEP)
    })?;
    Ok(World {
        agent: name("agent"),
        gate: name("gate"),
        direct,
        url,
        direct_url,
        generated,
        moves: std::sync::atomic::AtomicUsize::new(0),
    })
}

impl World {
    pub(crate) fn gate_clone(&self, dest: &str) -> anyhow::Result<f64> {
        exec_ok(&self.agent, &format!("rm -rf \"$HOME/{dest}\""), None, STEP)?;
        exec_timed(
            &self.agent,
            &format!("git clone -q {} \"$HOME/{dest}\"", self.url),
            STEP,
        )
    }

    pub(crate) fn direct_clone(&self, dest: &str) -> anyhow::Result<f64> {
        exec_ok(
            &self.direct,
            &format!("rm -rf \"$HOME/{dest}\""),
            None,
            STEP,
        )?;
        exec_timed(
            &self.direct,
            &format!("git clone -q {} \"$HOME/{dest}\"", self.url),
            STEP,
        )
    }

    /// Moves the upstream: a new commit on `bench/moving`, pushed straight (not timed).
    pub(crate) fn advance(&self) -> anyhow::Result<()> {
        let n = self.moves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = &self.generated.tip;
        exec_ok(
            &self.direct,
            &format!(
                "cd \"$HOME/c\" && export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@bottle.invalid \
                 GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@bottle.invalid && \
                 c=$(git commit-tree -p {base} -m 'upstream moves {n}' {base}^{{tree}}) && \
                 git push -q --force {url} \"$c:refs/heads/bench/moving\"",
                url = self.url
            ),
            None,
            STEP,
        )?;
        Ok(())
    }

    pub(crate) fn fetch(container: &str) -> anyhow::Result<f64> {
        exec_timed(container, "git -C \"$HOME/c\" fetch -q origin", STEP)
    }
}

/// Runs `a` and `b` alternately (a warm-up of each first), `runs` times each.
pub(crate) fn alternate(
    runs: usize,
    what: &str,
    m: &mut Measure,
    mut a: impl FnMut(usize) -> anyhow::Result<f64>,
    mut b: impl FnMut(usize) -> anyhow::Result<f64>,
) -> anyhow::Result<()> {
    eprintln!("  {what}: warm-up");
    a(0)?;
    b(0)?;
    for i in 1..=runs {
        eprintln!("  {what}: run {i}");
        if i % 2 == 1 {
            m.bottle.record(a(i));
            m.baseline.record(b(i));
        } else {
            m.baseline.record(b(i));
            m.bottle.record(a(i));
        }
    }
    Ok(())
}

/// One round of a paired measure whose rounds each need their own setup (new commits to
/// push): the two sides in alternating order, so neither always runs second; round 0 is a
/// warm-up, not recorded, whose failure stops the measure.
pub(crate) fn paired_round(
    m: &mut Measure,
    k: usize,
    bottle: impl FnOnce() -> anyhow::Result<f64>,
    baseline: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<()> {
    let (a, b) = if k % 2 == 1 {
        let a = bottle();
        (a, baseline())
    } else {
        let b = baseline();
        (bottle(), b)
    };
    if k == 0 {
        a?;
        b?;
        return Ok(());
    }
    m.bottle.record(a);
    m.baseline.record(b);
    Ok(())
}

pub(crate) fn measure_clone(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
    let mut m = Measure::new(
        "clone",
        "git clone in the agent, through the gate",
        "git clone over ssh straight from the upstream",
        Target::Ratio(1.15),
    );
    // The first clone through the gate fills its empty mirror: reported, not compared.
    let cold = w.gate_clone("c")?;
    m.notes.push(format!(
        "first clone through the gate (its mirror empty, so it fetches everything first): {cold:.3} s"
    ));
    alternate(
        ctx.runs,
        "clone",
        &mut m,
        |_| w.gate_clone("c"),
        |_| w.direct_clone("c"),
    )?;
    Ok(m)
}

pub(crate) fn measure_fetch(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
    let mut m = Measure::new(
        "fetch_noop",
        "git fetch with nothing new, through the gate",
        "the same fetch over ssh straight from the upstream",
        Target::Ratio(1.3),
    );
    alternate(
        ctx.runs,
        "fetch_noop",
        &mut m,
        |_| World::fetch(&w.agent),
        |_| World::fetch(&w.direct),
    )?;
    Ok(m)
}

pub(crate) fn measure_parallel(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
    let mut m = Measure::new(
        "parallel",
        &format!(
            "{PARALLEL} clones at once in the agent, through the gate, the upstream having just \
             moved (all must succeed)"
        ),
        "one clone in the agent, through the gate, the upstream having just moved",
        Target::Ratio(2.0),
    );
    let script = format!(
        "for i in $(seq {PARALLEL}); do\n\
         \t( git clone -q {url} \"$HOME/p$i\" 2>\"$HOME/p$i.err\"; echo $? >\"$HOME/p$i.rc\" ) &\n\
         done\n\
         wait\n\
         failed=0\n\
         for i in $(seq {PARALLEL}); do\n\
         \tif [ \"$(cat \"$HOME/p$i.rc\")\" != 0 ]; then failed=$((failed + 1)); head -n 3 \"$HOME/p$i.err\"; fi\n\
         done\n\
         [ \"$failed\" -eq 0 ] || {{ echo \"$failed of {PARALLEL} clones failed\"; exit 1; }}",
        url = w.url
    );
    let clear = "rm -rf \"$HOME\"/p[0-9]*";
    let parallel = |container: &str| -> anyhow::Result<f64> {
        exec_ok(container, clear, None, STEP)?;
        let t = exec_timed(container, &script, STEP);
        exec_ok(container, clear, None, STEP)?;
        t
    };
    // Each run starts with a new commit upstream, so that every clone's refresh has
    // something to fetch: concurrent refreshes then all want to update the same ref.
    // The CPU time the agent and the gate spend is recorded too: it is what bounds the
    // parallel clones on a machine with few cores.
    let cpu = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let with_cpu = |many: bool, f: &dyn Fn() -> anyhow::Result<f64>| -> anyhow::Result<f64> {
        let before = cpu_seconds(&w.agent).zip(cpu_seconds(&w.gate));
        let t = f()?;
        if let (Some((a0, g0)), Some(a1), Some(g1)) =
            (before, cpu_seconds(&w.agent), cpu_seconds(&w.gate))
        {
            let mut c = cpu.borrow_mut();
            let v = if many { &mut c.0 } else { &mut c.1 };
            v.push((a1 - a0, g1 - g0));
        }
        Ok(t)
    };
    alternate(
        ctx.runs,
        "parallel",
        &mut m,
        |_| {
            w.advance()?;
            with_cpu(true, &|| parallel(&w.agent))
        },
        |_| {
            w.advance()?;
            with_cpu(false, &|| w.gate_clone("s"))
        },
    )?;
    let (many, one) = cpu.into_inner();
    let median_of = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        Series {
            samples: v.iter().map(pick).collect(),
            errors: Vec::new(),
        }
        .median()
    };
    if let (Some(a1), Some(g1), Some(a10), Some(g10)) = (
        median_of(&one, |c| c.0),
        median_of(&one, |c| c.1),
        median_of(&many, |c| c.0),
        median_of(&many, |c| c.1),
    ) {
        let floor = (a10 + g10) / cores() as f64;
        m.notes.push(format!(
            "CPU time (cgroup): one clone {a1:.2} s in the agent + {g1:.2} s in the gate; \
             {PARALLEL} clones {a10:.2} s + {g10:.2} s; on {} cores, {PARALLEL} clones need at \
             least {floor:.2} s of wall time for the CPU work of the agent and the gate alone{}",
            cores(),
            m.baseline
                .median()
                .map(|one| format!(
                    ", so the ratio cannot be below {:.2} on this machine",
                    floor / one
                ))
                .unwrap_or_default()
        ));
    }
    // What the machine itself allows: the same clones straight from the upstream.
    let mut straight = Series::default();
    for i in 1..=ctx.runs {
        eprintln!("  parallel (reference, straight): run {i}");
        straight.record(parallel(&w.direct));
    }
    m.reference = Some((
        format!("{PARALLEL} clones at once straight from the upstream over ssh"),
        straight,
    ));
    Ok(m)
}

pub(crate) fn measure_push(ctx: &Ctx, w: &World) -> anyhow::Result<Vec<Measure>> {
    let n = data::PUSH_COMMITS;
    let mut m = Measure::new(
        "push_scan",
        &format!("git push of {n} new commits in the agent, through the gate (scan, then forward)"),
        &format!("gitleaks over the same {n} commits, then git push straight to the upstream"),
        Target::Ratio(1.1),
    );
    let mut scope = Measure::new(
        "scan_scope",
        &format!("in the gate: gitleaks over the {n} new commits (<tips> --not --all)"),
        "in the gate: gitleaks over the whole history of the pushed branch",
        Target::None,
    );
    let base = w.generated.tip.clone();
    let gitleaks =
        "gitleaks git --no-banner --no-color --redact --verbose --ignore-gitleaks-allow \
                    --platform none";
    // Imports the k-th set of commits on both sides; returns their tip.
    let import = |k: usize| -> anyhow::Result<(String, String)> {
        let branch = format!("bench-push-{k}");
        let stream = w.generated.push_stream(&branch, k as u64 + 1, n);
        let script = format!(
            "git -C \"$HOME/c\" fast-import --quiet && git -C \"$HOME/c\" rev-parse refs/heads/{branch}"
        );
        let a = exec_ok(&w.agent, &script, Some(stream.clone()), STEP)?;
        let b = exec_ok(&w.direct, &script, Some(stream), STEP)?;
        if a != b {
            bail!(
                "the generated commits differ between the agent ({a}) and the direct client ({b})"
            );
        }
        Ok((branch, a))
    };
    for k in 0..=ctx.runs {
        eprintln!(
            "  push_scan: {}",
            if k == 0 {
                "warm-up".to_owned()
            } else {
                format!("run {k}")
            }
        );
        let (branch, tip) = import(k)?;
        let through_gate = || {
            exec_timed(
                &w.agent,
                &format!("git -C \"$HOME/c\" push -q origin refs/heads/{branch}:refs/heads/bench/push-{k}"),
                STEP,
            )
        };
        let direct = || {
            exec_timed(
                &w.direct,
                &format!(
                    "cd \"$HOME/c\" && {gitleaks} --log-opts=\"{tip} --not {base}\" . && \
                     git push -q {url} refs/heads/{branch}:refs/heads/bench/push-{k}",
                    url = w.direct_url
                ),
                STEP,
            )
        };
        paired_round(&mut m, k, through_gate, direct)?;
    }
    // What scanning only the new commits saves: the gate's scan, and a scan of everything.
    let last = ctx.runs;
    let repo = format!("/git/{}.git", "bench");
    let tip = exec_ok(
        &w.gate,
        &format!("git -C {repo} rev-parse refs/heads/bench/push-{last}"),
        None,
        STEP,
    )?;
    let new_only = |_| {
        exec_timed(
            &w.gate,
            &format!("cd {repo} && {gitleaks} --log-opts=\"{tip} --not {base}\" . >/dev/null"),
            STEP,
        )
    };
    let everything = |_| {
        exec_timed(
            &w.gate,
            &format!("cd {repo} && {gitleaks} --log-opts=\"{tip}\" . >/dev/null"),
            STEP,
        )
    };
    let runs = ctx.runs.min(3);
    alternate(runs, "scan_scope", &mut scope, new_only, everything)?;
    scope.notes.push(format!("{runs} runs"));
    Ok(vec![m, scope])
}
