//! `bottle-bench`: bottle measured side by side with what a user would otherwise do.
//!
//! Every measure runs bottle's way and a baseline in the same run, alternately, a warm-up
//! first and then `--runs` times each, and reports the medians and their ratio: the machines
//! this runs on are shared and noisy, so absolute times drift while ratios hold. It needs
//! the local Docker engine (root, as bottle's images and the compose comparison do),
//! `docker-compose` for `up_compose`, and `git` on the host to generate its data.
//!
//! | measure | bottle | baseline |
//! |---|---|---|
//! | up | `bottle up` (images warm) | `sh` of the script `bottle --dry-run up` prints |
//! | up_compose | `bottle up` | `docker-compose up -d` of the same topology |
//! | clone | `git clone` in the agent, through the gate | the same clone straight from the upstream over ssh |
//! | fetch_noop | `git fetch` with nothing new, through the gate | the same, straight |
//! | push_scan | a push of 500 new commits through the gate | gitleaks over those commits, then a direct push |
//! | parallel | 10 clones at once through the gate | one clone through the gate |
//! | scan_scope | gitleaks over the new commits only (what the gate does) | over the whole history |
//! | plan | planning a manifest of 100 upstreams, in process | (absolute) |
//!
//! "Straight" means from a container on the bottle's egress network, built from the gate's
//! own image (same git, ssh and gitleaks), holding the gate's key and pinned host key, with
//! the gate's ssh options (a fresh ssh connection per command, as a user's git makes). Git
//! times are taken inside the containers (`date +%s%N` around the command), so the cost of
//! `docker exec` is left out on both sides; `up` times are wall clock on the host, process
//! start included. Everything it creates carries the label `bottle.bench=<pid>` or belongs to
//! a bottle it brought up, and is removed at the end, on failure and on Ctrl-C.
//!
//! `--lever-off NAME` turns one of the gate's speed levers off in the bench's bottle (see
//! [`levers`]), to measure what it is worth. `scripts/bench.sh` is the documented way to
//! run it; docs/performance.md holds the figures.

mod cmd;
mod compose;
mod data;
mod levers;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use crate::cmd::{docker, exec_ok, exec_timed};

/// How long one git or engine step may take before the run fails.
const STEP: Duration = Duration::from_secs(300);
/// Clones in the `parallel` measure.
const PARALLEL: usize = 10;
/// Upstreams in the manifest the `plan` measure plans.
const PLAN_UPSTREAMS: usize = 100;
/// How many times `plan` is timed (it takes milliseconds).
const PLAN_RUNS: usize = 50;

const MEASURES: [&str; 8] = [
    "up",
    "up_compose",
    "clone",
    "fetch_noop",
    "push_scan",
    "parallel",
    "scan_scope",
    "plan",
];

#[derive(Debug, Parser)]
#[command(
    name = "bottle-bench",
    about = "Benchmark bottle against what a user would otherwise do"
)]
struct Args {
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Timed runs per measure, after one warm-up run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Only these measures (comma separated): up, up_compose, clone, fetch_noop, push_scan,
    /// parallel, scan_scope, plan.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The bottle binary to measure; by default `cargo build --release --bin bottle` is run
    /// and the binary next to this one is used.
    #[arg(long, env = "BOTTLE_BENCH_BOTTLE")]
    bottle: Option<PathBuf>,
    /// Turn these gate levers off (comma separated) in the bench's bottle, to measure what
    /// each is worth: persistent-ssh, refresh-lock, bitmap. See bench/src/levers.rs.
    #[arg(long, value_delimiter = ',')]
    lever_off: Vec<String>,
    /// Keep what the run created (bottles, the upstream, the direct client, the data),
    /// for a look around; prints how to remove it.
    #[arg(long)]
    keep: bool,
}

// ---------------------------------------------------------------------------------------
// Results.

/// The samples of one side of a measure.
#[derive(Debug, Default, Clone)]
struct Series {
    samples: Vec<f64>,
    errors: Vec<String>,
}

impl Series {
    fn record(&mut self, r: anyhow::Result<f64>) {
        match r {
            Ok(t) => self.samples.push(t),
            Err(e) => {
                eprintln!("    failed: {}", first_lines(&format!("{e:#}"), 6));
                self.errors.push(format!("{e:#}"));
            }
        }
    }

    fn median(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    fn json(&self) -> Value {
        json!({
            "median_s": self.median(),
            "samples_s": self.samples,
            "errors": self.errors,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    /// bottle's median over the baseline's, at most.
    Ratio(f64),
    /// bottle's median in milliseconds, at most.
    Millis(f64),
    /// Reported, no target.
    None,
}

#[derive(Debug, Clone)]
struct Measure {
    name: &'static str,
    bottle_side: String,
    baseline_side: String,
    bottle: Series,
    baseline: Series,
    target: Target,
    load: String,
    notes: Vec<String>,
    /// A third series, for information (what limits the measure).
    reference: Option<(String, Series)>,
}

impl Measure {
    fn new(name: &'static str, bottle_side: &str, baseline_side: &str, target: Target) -> Measure {
        Measure {
            name,
            bottle_side: bottle_side.to_owned(),
            baseline_side: baseline_side.to_owned(),
            bottle: Series::default(),
            baseline: Series::default(),
            target,
            load: loadavg(),
            notes: Vec::new(),
            reference: None,
        }
    }

    fn ratio(&self) -> Option<f64> {
        Some(self.bottle.median()? / self.baseline.median()?)
    }

    fn holds(&self) -> Option<bool> {
        let clean = self.bottle.errors.is_empty() && self.baseline.errors.is_empty();
        match self.target {
            Target::Ratio(max) => Some(clean && self.ratio().is_some_and(|r| r <= max)),
            Target::Millis(max) => {
                Some(clean && self.bottle.median().is_some_and(|m| m * 1e3 <= max))
            }
            Target::None => None,
        }
    }

    fn json(&self) -> Value {
        let target = match self.target {
            Target::Ratio(r) => json!({ "ratio_at_most": r }),
            Target::Millis(ms) => json!({ "ms_at_most": ms }),
            Target::None => Value::Null,
        };
        json!({
            "name": self.name,
            "bottle": { "what": self.bottle_side, "series": self.bottle.json() },
            "baseline": { "what": self.baseline_side, "series": self.baseline.json() },
            "ratio": self.ratio(),
            "target": target,
            "holds": self.holds(),
            "load_at_start": self.load,
            "notes": self.notes,
            "reference": self.reference.as_ref().map(|(what, series)| json!({
                "what": what,
                "series": series.json(),
            })),
        })
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .take(n)
        .collect::<Vec<_>>()
        .join("\n            ")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

// ---------------------------------------------------------------------------------------
// Cleanup: on exit, on failure, on Ctrl-C.

#[derive(Debug, Default)]
struct Cleanup {
    bottle: PathBuf,
    label: String,
    /// Bottles brought up (slug, directory holding its manifest).
    bottles: Vec<(String, PathBuf)>,
    /// Compose projects (name, file).
    compose: Vec<(String, PathBuf)>,
}

static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);
/// The run's directory, for an interrupted run to remove.
static RUN_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Forgets bottle `slug` (it was removed).
fn cleanup_forget(slug: &str) {
    cleanup_register(|c| c.bottles.retain(|(s, _)| s != slug));
    cleanup_register(|c| c.compose.retain(|(p, _)| *p != slug.replace('-', "")));
}

fn cleanup_register(f: impl FnOnce(&mut Cleanup)) {
    if let Some(c) = CLEANUP.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        f(c);
    }
}

/// Removes everything the run created; safe to call more than once.
fn cleanup_now() {
    let Some(c) = CLEANUP.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let limit = Duration::from_secs(120);
    let warn = |what: &str, r: anyhow::Result<String>| {
        if let Err(e) = r {
            eprintln!(
                "warning: cleanup: {what}: {}",
                first_lines(&format!("{e:#}"), 3)
            );
        }
    };
    for (project, file) in &c.compose {
        let mut down = Command::new("docker-compose");
        down.arg("-p").arg(project).arg("-f").arg(file);
        down.args(["down", "-v", "--remove-orphans", "-t", "1"]);
        warn(
            &format!("docker-compose down {project}"),
            cmd::ok(&mut down, limit),
        );
    }
    for (slug, dir) in &c.bottles {
        for step in ["down", "cleanup"] {
            let mut b = Command::new(&c.bottle);
            b.current_dir(dir).args(["--backend", "docker", step, slug]);
            warn(&format!("bottle {step} {slug}"), cmd::ok(&mut b, limit));
        }
    }
    let filter = format!("label={}", c.label);
    if let Ok(ids) = cmd::ok(&mut docker(["ps", "-aq", "--filter", &filter]), limit) {
        for id in ids.split_whitespace() {
            warn("docker rm", cmd::ok(&mut docker(["rm", "-f", id]), limit));
        }
    }
    if let Ok(ids) = cmd::ok(
        &mut docker(["network", "ls", "-q", "--filter", &filter]),
        limit,
    ) {
        for id in ids.split_whitespace() {
            warn(
                "docker network rm",
                cmd::ok(&mut docker(["network", "rm", id]), limit),
            );
        }
    }
}

fn on_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        eprintln!("\nbottle-bench: interrupted; removing what it created");
        cleanup_now();
        // The process exits here, so the run's directory is not dropped: remove it.
        if let Some(dir) = RUN_DIR.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}

// ---------------------------------------------------------------------------------------
// The run's context: the bottle binary, keys, directories.

struct Ctx {
    bottle: PathBuf,
    dir: tempfile::TempDir,
    id: String,
    label: String,
    runs: usize,
    gate_key: PathBuf,
    /// The upstream fixture's host key (private, then `<type> <base64>`).
    host_key: String,
    host_key_pub: String,
    /// Gate levers turned off (`--lever-off`).
    levers_off: Vec<String>,
}

impl Ctx {
    fn bottle_cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new(&self.bottle);
        c.current_dir(dir).args(["--backend", "docker"]);
        c
    }

    fn upstream_url(slug: &str, repo: &str) -> String {
        format!("ssh://git@bottle-{slug}-upstream/srv/git/{repo}.git")
    }

    /// Writes the manifest of bottle `slug` (one upstream, `repo` on its fixture) into its
    /// own directory and returns the directory.
    fn manifest(&self, slug: &str, repo: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.path().join("bottles").join(slug);
        std::fs::create_dir_all(&dir)?;
        let text = format!(
            "[bottles.{slug}]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n\n\
             [[bottles.{slug}.git]]\nname = \"{repo}\"\nupstream = {url:?}\nidentity_file = {key:?}\n\
             known_host_key = {pin:?}\n",
            url = Ctx::upstream_url(slug, repo),
            key = self.gate_key.display().to_string(),
            pin = self.host_key_pub,
        );
        std::fs::write(dir.join("bottle.toml"), text)?;
        Ok(dir)
    }

    /// `bottle up SLUG`, registered for cleanup first.
    fn up(&self, slug: &str, dir: &Path) -> anyhow::Result<f64> {
        cleanup_register(|c| c.bottles.push((slug.to_owned(), dir.to_path_buf())));
        cmd::timed(self.bottle_cmd(dir).args(["up", slug]), STEP)
    }

    fn down(&self, slug: &str, dir: &Path) -> anyhow::Result<()> {
        cmd::ok(self.bottle_cmd(dir).args(["down", slug]), STEP)?;
        cleanup_forget(slug);
        Ok(())
    }
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    cmd::ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// The bottle binary: `--bottle`, else built with cargo next to this binary.
fn bottle_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.bottle {
        // Absolute: the bottle commands run in each bottle's own directory.
        return std::fs::canonicalize(b)
            .with_context(|| format!("the bottle binary {} does not exist", b.display()));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has a parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building bottle: cargo build --release --bin bottle");
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--bin", "bottle"])
        .status()
        .context("cannot run cargo (or pass --bottle PATH)")?;
    if !status.success() {
        bail!("cargo build --release --bin bottle failed");
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("this binary has a directory")?
        .join("bottle");
    if !bin.is_file() {
        bail!(
            "{} does not exist after the build; pass --bottle PATH",
            bin.display()
        );
    }
    Ok(bin)
}

// ---------------------------------------------------------------------------------------
// up and up_compose.

fn measure_up(ctx: &Ctx, with_compose: bool) -> anyhow::Result<Vec<Measure>> {
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
fn up_phases(slug: &str, since: std::time::SystemTime, took: f64) -> Option<[f64; 4]> {
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
    let gate = format!("bottle-{slug}-gate");
    let agent = format!("bottle-{slug}-agent");
    let prefix = format!("bottle-{slug}-");
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
fn compose_up(slug: &str, dir: &Path) -> anyhow::Result<f64> {
    let manifest_path = dir.join("bottle.toml");
    let text = std::fs::read_to_string(&manifest_path)?;
    let manifest = bottle_core::manifest::parse(
        &manifest_path,
        &text,
        &bottle_core::manifest::Env::current(),
    )?;
    let plan = bottle_core::planner::plan(manifest.select(Some(slug))?)?;
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

// ---------------------------------------------------------------------------------------
// plan.

fn measure_plan(ctx: &Ctx) -> anyhow::Result<Measure> {
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
        let plan = bottle_core::planner::plan(manifest.select(Some("many"))?)?;
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

// ---------------------------------------------------------------------------------------
// The git measures: one bottle, the upstream fixture, a direct client.

struct World {
    agent: String,
    gate: String,
    direct: String,
    url: String,
    direct_url: String,
    generated: data::Generated,
    moves: std::sync::atomic::AtomicUsize,
}

const DIRECT_HOME: &str = "/var/lib/bottle-gate";

fn setup_world(ctx: &Ctx) -> anyhow::Result<World> {
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
    let name = |role: &str| format!("bottle-{slug}-{role}");
    levers::turn_off(&name("gate"), "/git/bench.git", &ctx.levers_off, STEP)?;
    let (fixture, direct, egress) = (name("upstream"), name("direct"), name("egress"));
    let slug_label = format!("bottle.slug={slug}");

    // The upstream fixture, on the egress network, with the generated repositories.
    let authorized = std::fs::read_to_string(ctx.gate_key.with_extension("pub"))?;
    cmd::ok(
        &mut docker([
            "create",
            "--pull",
            "never",
            "--name",
            &fixture,
            "--network",
            &egress,
            "--label",
            &slug_label,
            "--label",
            "bottle.managed=2",
            "--label",
            &ctx.label,
            "-e",
            "FIXTURE_REPOS=",
            "-e",
            &format!("FIXTURE_HOST_KEY={}", ctx.host_key),
            "-e",
            &format!("FIXTURE_AUTHORIZED_KEYS={authorized}"),
            "bottle-upstream-fixture:latest",
        ]),
        STEP,
    )?;
    cmd::ok_input(
        &mut docker(["cp", "-", &format!("{fixture}:/srv/git")]),
        Some(std::fs::read(&tar)?),
        STEP,
    )?;
    cmd::ok(&mut docker(["start", &fixture]), STEP)?;
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
    let known = format!("bottle-{slug}-upstream {}\n", ctx.host_key_pub);
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
    fn gate_clone(&self, dest: &str) -> anyhow::Result<f64> {
        exec_ok(&self.agent, &format!("rm -rf \"$HOME/{dest}\""), None, STEP)?;
        exec_timed(
            &self.agent,
            &format!("git clone -q {} \"$HOME/{dest}\"", self.url),
            STEP,
        )
    }

    fn direct_clone(&self, dest: &str) -> anyhow::Result<f64> {
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
    fn advance(&self) -> anyhow::Result<()> {
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

    fn fetch(container: &str) -> anyhow::Result<f64> {
        exec_timed(container, "git -C \"$HOME/c\" fetch -q origin", STEP)
    }
}

/// Runs `a` and `b` alternately (a warm-up of each first), `runs` times each.
fn alternate(
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

fn measure_clone(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
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

fn measure_fetch(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
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

fn measure_parallel(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
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

fn measure_push(ctx: &Ctx, w: &World) -> anyhow::Result<Vec<Measure>> {
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
        let (a, b) = if k % 2 == 1 {
            let a = through_gate();
            (a, direct())
        } else {
            let b = direct();
            (through_gate(), b)
        };
        if k == 0 {
            a?;
            b?;
            continue;
        }
        m.bottle.record(a);
        m.baseline.record(b);
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

// ---------------------------------------------------------------------------------------
// Gate facts.

fn gate_memory(gate: &str) -> Value {
    let stats = cmd::ok(
        &mut docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", gate]),
        STEP,
    )
    .unwrap_or_else(|e| format!("unknown: {e:#}"));
    let id = cmd::ok(&mut docker(["inspect", "-f", "{{.Id}}", gate]), STEP).unwrap_or_default();
    let read = |p: String| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let v1 = format!("/sys/fs/cgroup/memory/docker/{id}");
    let (usage, stat) = match read(format!("{v1}/memory.usage_in_bytes")) {
        Some(u) => (Some(u), read(format!("{v1}/memory.stat"))),
        None => {
            let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope");
            (
                read(format!("{v2}/memory.current")),
                read(format!("{v2}/memory.stat")),
            )
        }
    };
    let pick = |key: &str| -> Option<u64> {
        stat.as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let processes =
        cmd::ok(&mut docker(["top", gate, "-o", "pid,rss,args"]), STEP).unwrap_or_default();
    json!({
        "docker_stats": stats,
        "cgroup_usage_bytes": usage.and_then(|u| u.parse::<u64>().ok()),
        "cgroup_rss_bytes": pick("total_rss").or_else(|| pick("anon")),
        "cgroup_cache_bytes": pick("total_cache").or_else(|| pick("file")),
        "processes": processes.lines().collect::<Vec<_>>(),
    })
}

/// CPU time a container has used so far, in seconds, from its cgroup (v1 or v2).
fn cpu_seconds(container: &str) -> Option<f64> {
    let id = cmd::ok(&mut docker(["inspect", "-f", "{{.Id}}", container]), STEP).ok()?;
    let v1 = format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage");
    if let Ok(ns) = std::fs::read_to_string(v1) {
        return ns.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
    }
    let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat");
    let stat = std::fs::read_to_string(v2).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<f64>().ok())
        .map(|us| us / 1e6)
}

fn image_size(image: &str) -> Option<u64> {
    cmd::ok(
        &mut docker(["image", "inspect", "-f", "{{.Size}}", image]),
        STEP,
    )
    .ok()?
    .parse()
    .ok()
}

// ---------------------------------------------------------------------------------------

fn main() {
    let args = Args::parse();
    for m in &args.only {
        if !MEASURES.contains(&m.as_str()) {
            eprintln!(
                "error: no measure named '{m}'; the measures: {}",
                MEASURES.join(", ")
            );
            std::process::exit(2);
        }
    }
    for l in &args.lever_off {
        if !levers::LEVERS.contains(&l.as_str()) {
            eprintln!(
                "error: no lever named '{l}'; the levers: {}",
                levers::LEVERS.join(", ")
            );
            std::process::exit(2);
        }
    }
    on_signals();
    // A panic is caught so that what the run created is removed all the same.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&args)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("bottle-bench panicked")));
    if !args.keep {
        cleanup_now();
    }
    match result {
        Ok(all_hold) => std::process::exit(if all_hold { 0 } else { 1 }),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    for tool in ["docker", "git", "ssh-keygen", "tar", "sh"] {
        if !cmd::have(tool) {
            bail!("{tool} is not installed (scripts/install-deps.sh installs what bottle needs)");
        }
    }
    cmd::ok(&mut docker(["info"]), Duration::from_secs(30))
        .context("the Docker engine is unreachable")?;
    let bottle = bottle_binary(args)?;
    let id = std::process::id().to_string();
    let label = format!("bottle.bench={id}");
    *CLEANUP.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cleanup {
        bottle: bottle.clone(),
        label: label.clone(),
        ..Cleanup::default()
    });
    let started = Instant::now();
    let load_start = loadavg();
    eprintln!(
        "bottle-bench: load average {load_start} on {} cores",
        cores()
    );

    eprintln!("images: bottle image build (builds only what is missing or stale)");
    cmd::ok(
        Command::new(&bottle).args(["--backend", "docker", "image", "build"]),
        Duration::from_secs(1800),
    )?;

    let dir = tempfile::Builder::new().prefix("bottle-bench-").tempdir()?;
    *RUN_DIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.path().to_path_buf());
    let gate_key = dir.path().join("gate_key");
    keygen(&gate_key, "bottle-bench-gate")?;
    keygen(&dir.path().join("host_key"), "bottle-bench-upstream")?;
    let host_key = std::fs::read_to_string(dir.path().join("host_key"))?;
    let host_key_pub = std::fs::read_to_string(dir.path().join("host_key.pub"))?
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let ctx = Ctx {
        bottle,
        dir,
        id,
        label,
        runs: args.runs as usize,
        gate_key,
        host_key,
        host_key_pub,
        levers_off: args.lever_off.clone(),
    };

    let outcome = measure_all(args, &ctx);
    if !args.keep {
        // Before the run's directory (manifests, compose files) goes away with `ctx`.
        cleanup_now();
    }
    let (measures, mut facts) = match outcome {
        Ok(o) => o,
        Err(e) => {
            if args.keep {
                keep(ctx);
            }
            return Err(e);
        }
    };
    facts.insert(
        "gate_image_bytes".into(),
        json!(image_size("bottle-gate:latest")),
    );

    let load_end = loadavg();
    let table = table(&measures);
    println!("{table}");
    for l in &ctx.levers_off {
        println!("LEVER OFF: {l}: {}", levers::describe(l));
    }
    if let Some(size) = facts.get("gate_image_bytes").and_then(Value::as_u64) {
        println!("gate image: {:.0} MB", size as f64 / 1e6);
    }
    for key in [
        "gate_memory_idle_after_up",
        "gate_memory_idle_after_measures",
    ] {
        if let Some(v) = facts.get(key) {
            println!(
                "{key}: docker stats {}, cgroup usage {} bytes",
                v["docker_stats"].as_str().unwrap_or("?"),
                v["cgroup_usage_bytes"]
            );
        }
    }
    println!(
        "load average: {load_start} at start, {load_end} at end ({} cores); {:.0} s in all",
        cores(),
        started.elapsed().as_secs_f64()
    );

    let report = json!({
        "bench": "bottle-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "bottle": {
            "binary": ctx.bottle.display().to_string(),
            "version": cmd::ok(Command::new(&ctx.bottle).arg("--version"), STEP).ok(),
        },
        "runs": ctx.runs,
        "levers_off": ctx.levers_off.iter().map(|l| json!({ "lever": l, "meaning": levers::describe(l) })).collect::<Vec<_>>(),
        "machine": {
            "cores": cores(),
            "load_at_start": load_start,
            "load_at_end": load_end,
            "docker": cmd::ok(&mut docker(["version", "-f", "{{.Server.Version}}"]), STEP).ok(),
            "storage_driver": cmd::ok(&mut docker(["info", "-f", "{{.Driver}}"]), STEP).ok(),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
        },
        "seconds": started.elapsed().as_secs_f64(),
        "measures": measures.iter().map(Measure::json).collect::<Vec<_>>(),
        "facts": facts,
    });
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("results: {}", args.out.display());
    if args.keep {
        keep(ctx);
    }
    Ok(measures.iter().all(|m| m.holds() != Some(false)))
}

type Facts = serde_json::Map<String, Value>;

fn measure_all(args: &Args, ctx: &Ctx) -> anyhow::Result<(Vec<Measure>, Facts)> {
    let wants = |m: &str| args.only.is_empty() || args.only.iter().any(|o| o == m);
    let mut measures = Vec::new();
    let mut facts = serde_json::Map::new();
    if wants("plan") {
        eprintln!("plan");
        measures.push(measure_plan(ctx)?);
    }
    if wants("up") || wants("up_compose") {
        eprintln!("up");
        let mut ms = measure_up(ctx, wants("up_compose"))?;
        if !wants("up") {
            ms.retain(|m| m.name != "up");
        }
        measures.extend(ms);
    }
    let git = ["clone", "fetch_noop", "parallel", "push_scan", "scan_scope"];
    if git.iter().any(|m| wants(m)) {
        eprintln!("git: generating the data and bringing up a bottle with its upstream");
        let w = setup_world(ctx)?;
        facts.insert(
            "repository".into(),
            json!({
                "commits": w.generated.commits,
                "pack_bytes": w.generated.pack_bytes,
                "push_commits": data::PUSH_COMMITS,
            }),
        );
        facts.insert("gate_memory_idle_after_up".into(), gate_memory(&w.gate));
        facts.insert(
            "gate_git".into(),
            json!(exec_ok(
                &w.gate,
                "git --version; ssh -V 2>&1; gitleaks version",
                None,
                STEP
            )?
            .lines()
            .collect::<Vec<_>>()),
        );
        let result = (|| -> anyhow::Result<()> {
            // The clone measure runs first whatever is asked: every other git measure
            // works in the clones it leaves in the agent and the direct client.
            {
                eprintln!("clone");
                let m = measure_clone(ctx, &w)?;
                if wants("clone") {
                    measures.push(m);
                }
            }
            if wants("fetch_noop") {
                eprintln!("fetch_noop");
                measures.push(measure_fetch(ctx, &w)?);
            }
            if wants("parallel") {
                eprintln!("parallel");
                measures.push(measure_parallel(ctx, &w)?);
            }
            if wants("push_scan") || wants("scan_scope") {
                eprintln!("push_scan");
                let ms = measure_push(ctx, &w)?;
                measures.extend(ms.into_iter().filter(|m| wants(m.name)));
            }
            std::thread::sleep(Duration::from_secs(5));
            facts.insert(
                "gate_memory_idle_after_measures".into(),
                gate_memory(&w.gate),
            );
            Ok(())
        })();
        if let Err(e) = &result {
            let logs = cmd::run(&mut docker(["logs", "--tail", "40", &w.gate]), None, STEP)
                .map(|o| o.both())
                .unwrap_or_default();
            eprintln!("the gate's log (last 40 lines):\n{logs}\nerror: {e:#}");
        }
        result?;
    }
    Ok((measures, facts))
}

/// `--keep`: forgets the cleanup and says what is left.
fn keep(ctx: Ctx) {
    RUN_DIR.lock().unwrap_or_else(|p| p.into_inner()).take();
    let dir = ctx.dir.keep();
    if let Some(c) = CLEANUP.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprintln!("--keep: kept the run's directory {}", dir.display());
        for (slug, d) in &c.bottles {
            eprintln!(
                "  bottle {slug}: remove with `cd {} && {} --backend docker down {slug}`",
                d.display(),
                c.bottle.display()
            );
        }
        for (project, file) in &c.compose {
            eprintln!("  compose project {project} ({})", file.display());
        }
        eprintln!(
            "  and: docker rm -f $(docker ps -aq --filter label={label}); rm -rf {}",
            dir.display(),
            label = c.label
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn table(measures: &[Measure]) -> String {
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3} s"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<11} {:>11} {:>11} {:>7} {:>10} {:>6}  load (1/5/15 min)",
        "measure", "bottle", "baseline", "ratio", "target", "holds"
    );
    for m in measures {
        let (bottle, baseline, ratio, target) = match m.target {
            Target::Millis(max) => (
                m.bottle
                    .median()
                    .map_or("-".to_owned(), |v| format!("{:.2} ms", v * 1e3)),
                "-".to_owned(),
                "-".to_owned(),
                format!("<= {max} ms"),
            ),
            Target::Ratio(max) => (
                secs(m.bottle.median()),
                secs(m.baseline.median()),
                m.ratio().map_or("-".to_owned(), |r| format!("{r:.2}")),
                format!("<= {max}"),
            ),
            Target::None => (
                secs(m.bottle.median()),
                secs(m.baseline.median()),
                m.ratio().map_or("-".to_owned(), |r| format!("{r:.2}")),
                "-".to_owned(),
            ),
        };
        let holds = match m.holds() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<11} {:>11} {:>11} {:>7} {:>10} {:>6}  {}",
            m.name, bottle, baseline, ratio, target, holds, m.load
        );
        let errors = m.bottle.errors.len() + m.baseline.errors.len();
        if errors > 0 {
            let _ = writeln!(
                out,
                "{:<11} {errors} failed run(s): {}",
                "",
                first_lines(
                    m.bottle
                        .errors
                        .first()
                        .or(m.baseline.errors.first())
                        .map_or("", String::as_str),
                    2
                )
            );
        }
        if let Some((what, series)) = &m.reference {
            let _ = writeln!(
                out,
                "{:<11} reference: {what}: {}",
                "",
                secs(series.median())
            );
        }
        for note in &m.notes {
            let _ = writeln!(out, "{:<11} note: {note}", "");
        }
    }
    out
}
