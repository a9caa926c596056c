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
//! | push_large | a push of one commit adding a 32 MiB binary file through the gate | gitleaks over that commit, then a direct push |
//! | push_merge | a push of an octopus merge of 16 branches, each editing 15 files, through the gate | gitleaks over those commits, then a direct push |
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
//! The proxy measures (bench/src/proxy.rs: the egress proxy against squid and tinyproxy;
//! bench/src/cred.rs: the credential routes against calling the API stand-in straight)
//! run on loopback on the host and need no engine.
//!
//! `--lever-off NAME` turns one of the gate's speed levers off in the bench's bottle (see
//! [`levers`]), to measure what it is worth. `scripts/bench.sh` is the documented way to
//! run it; docs/performance.md holds the figures.

mod cleanup;
mod cmd;
mod compose;
mod cred;
mod ctx;
mod data;
mod facts;
mod git;
mod levers;
mod planning;
mod proxy;
mod push_shapes;
mod results;
mod up;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use crate::cleanup::{cleanup_now, on_signals, Cleanup, CLEANUP, RUN_DIR};
use crate::cmd::{docker, exec_ok};
use crate::ctx::{bottle_binary, keygen, Ctx};
use crate::facts::{gate_memory, image_size};
use crate::git::{measure_clone, measure_fetch, measure_parallel, measure_push, setup_world};
use crate::planning::measure_plan;
use crate::push_shapes::{measure_push_large, measure_push_merge};
use crate::results::{first_lines, loadavg, Measure, Target};
use crate::up::measure_up;

/// How long one git or engine step may take before the run fails.
const STEP: Duration = Duration::from_secs(300);
/// Clones in the `parallel` measure.
const PARALLEL: usize = 10;
/// Upstreams in the manifest the `plan` measure plans.
const PLAN_UPSTREAMS: usize = 100;
/// How many times `plan` is timed (it takes milliseconds).
const PLAN_RUNS: usize = 50;

const MEASURES: [&str; 16] = [
    "up",
    "up_compose",
    "clone",
    "fetch_noop",
    "push_scan",
    "push_large",
    "push_merge",
    "parallel",
    "scan_scope",
    "plan",
    "proxy_latency",
    "proxy_throughput",
    "proxy_tunnels",
    "proxy_memory",
    "cred_ttfb",
    "cred_events",
];

/// The measures that need the Docker engine (and bottle's images).
const ENGINE_MEASURES: [&str; 9] = [
    "up",
    "up_compose",
    "clone",
    "fetch_noop",
    "push_scan",
    "push_large",
    "push_merge",
    "parallel",
    "scan_scope",
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
    /// push_large, push_merge, parallel, scan_scope, plan, proxy_latency, proxy_throughput,
    /// proxy_tunnels, proxy_memory, cred_ttfb, cred_events. Without an engine measure,
    /// Docker is not needed.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The bottle binary to measure; by default `cargo build --release --bin bottle` is run
    /// and the binary next to this one is used.
    #[arg(long, env = "BOTTLE_BENCH_BOTTLE")]
    bottle: Option<PathBuf>,
    /// The bottle-proxy binary the proxy measures run (the static build
    /// scripts/build-sidecars.sh makes); by default $BOTTLE_SIDECAR_DIR/bottle-proxy, else
    /// the one next to this binary, else the tree's static build.
    #[arg(long, env = "BOTTLE_BENCH_PROXY")]
    proxy: Option<PathBuf>,
    /// The bottle-web-fixture binary the cred measures run as the API stand-in; by default
    /// the one next to the bottle-proxy binary (scripts/build-sidecars.sh builds both).
    #[arg(long, env = "BOTTLE_BENCH_WEB_FIXTURE")]
    web_fixture: Option<PathBuf>,
    /// Turn these gate levers off (comma separated) in the bench's bottle, to measure what
    /// each is worth: persistent-ssh, refresh-lock, bitmap. See bench/src/levers.rs.
    #[arg(long, value_delimiter = ',')]
    lever_off: Vec<String>,
    /// Keep what the run created (bottles, the upstream, the direct client, the data),
    /// for a look around; prints how to remove it.
    #[arg(long)]
    keep: bool,
}

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

fn wants(args: &Args, m: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o == m)
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let engine = ENGINE_MEASURES.iter().any(|m| wants(args, m));
    if engine {
        for tool in ["docker", "git", "ssh-keygen", "tar", "sh"] {
            if !cmd::have(tool) {
                bail!(
                    "{tool} is not installed (scripts/install-deps.sh installs what bottle needs)"
                );
            }
        }
        cmd::ok(&mut docker(["info"]), Duration::from_secs(30))
            .context("the Docker engine is unreachable")?;
    }
    let cred_measures = cred::MEASURES.iter().any(|m| wants(args, m));
    let proxy_bin = if cred_measures || proxy::MEASURES.iter().any(|m| wants(args, m)) {
        Some(proxy_binary(args)?)
    } else {
        None
    };
    let fixture_bin = match &proxy_bin {
        Some(p) if cred_measures => Some(web_fixture_binary(args, p)?),
        _ => None,
    };
    let bottle = if engine {
        bottle_binary(args)?
    } else {
        args.bottle
            .clone()
            .unwrap_or_else(|| PathBuf::from("bottle"))
    };
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

    if engine {
        eprintln!("images: bottle image build (builds only what is missing or stale)");
        cmd::ok(
            Command::new(&bottle).args(["--backend", "docker", "image", "build"]),
            Duration::from_secs(1800),
        )?;
    }

    let dir = tempfile::Builder::new().prefix("bottle-bench-").tempdir()?;
    *RUN_DIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.path().to_path_buf());
    let gate_key = dir.path().join("gate_key");
    let (mut host_key, mut host_key_pub) = (String::new(), String::new());
    if engine {
        keygen(&gate_key, "bottle-bench-gate")?;
        keygen(&dir.path().join("host_key"), "bottle-bench-upstream")?;
        host_key = std::fs::read_to_string(dir.path().join("host_key"))?;
        host_key_pub = std::fs::read_to_string(dir.path().join("host_key.pub"))?
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
    }
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

    let outcome = measure_all(args, &ctx, proxy_bin.as_deref(), fixture_bin.as_deref());
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
    if engine {
        facts.insert(
            "gate_image_bytes".into(),
            json!(image_size("bottle-gate:latest")),
        );
    }

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

fn measure_all(
    args: &Args,
    ctx: &Ctx,
    proxy_bin: Option<&std::path::Path>,
    fixture_bin: Option<&std::path::Path>,
) -> anyhow::Result<(Vec<Measure>, Facts)> {
    let wants = |m: &str| wants(args, m);
    let mut measures = Vec::new();
    let mut facts = serde_json::Map::new();
    if wants("plan") {
        eprintln!("plan");
        measures.push(measure_plan(ctx)?);
    }
    if let Some(proxy_bin) = proxy_bin.filter(|_| proxy::MEASURES.iter().any(|m| wants(m))) {
        eprintln!(
            "proxy: bottle-proxy ({}), squid and tinyproxy on loopback",
            proxy_bin.display()
        );
        let (ms, proxy_facts) = proxy::measure_proxies(&proxy::ProxyRun {
            proxy_bin,
            dir: ctx.dir.path(),
            runs: ctx.runs,
            wants: &wants,
        })?;
        measures.extend(ms);
        facts.extend(proxy_facts);
    }
    if let (Some(proxy_bin), Some(fixture_bin)) = (proxy_bin, fixture_bin) {
        eprintln!(
            "cred: bottle-proxy cred ({}) in front of the API stand-in ({}) on loopback",
            proxy_bin.display(),
            fixture_bin.display()
        );
        let (ms, cred_facts) = cred::measure_cred(&cred::CredRun {
            proxy_bin,
            fixture_bin,
            dir: ctx.dir.path(),
            wants: &wants,
        })?;
        measures.extend(ms);
        facts.extend(cred_facts);
    }
    if wants("up") || wants("up_compose") {
        eprintln!("up");
        let mut ms = measure_up(ctx, wants("up_compose"))?;
        if !wants("up") {
            ms.retain(|m| m.name != "up");
        }
        measures.extend(ms);
    }
    let git = [
        "clone",
        "fetch_noop",
        "parallel",
        "push_scan",
        "scan_scope",
        "push_large",
        "push_merge",
    ];
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
            if wants("push_large") {
                eprintln!("push_large");
                measures.push(measure_push_large(ctx, &w)?);
            }
            if wants("push_merge") {
                eprintln!("push_merge");
                measures.push(measure_push_merge(ctx, &w)?);
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

/// The bottle-proxy binary: `--proxy`, else `$BOTTLE_SIDECAR_DIR/bottle-proxy`, else next
/// to this binary, else the tree's static build (scripts/build-sidecars.sh).
fn proxy_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.proxy {
        return std::fs::canonicalize(p)
            .with_context(|| format!("the bottle-proxy binary {} does not exist", p.display()));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("BOTTLE_SIDECAR_DIR") {
        candidates.push(PathBuf::from(dir).join("bottle-proxy"));
    }
    if let Some(dir) = std::env::current_exe()?.parent() {
        candidates.push(dir.join("bottle-proxy"));
        // target/release/ -> target/x86_64-unknown-linux-gnu/release/
        if let Some(target) = dir.parent() {
            candidates.push(target.join("x86_64-unknown-linux-gnu/release/bottle-proxy"));
        }
    }
    candidates.into_iter().find(|c| c.is_file()).context(
        "no bottle-proxy binary: run ./scripts/build-sidecars.sh (it prints the directory to \
         pass as BOTTLE_SIDECAR_DIR) or pass --proxy PATH",
    )
}

/// The bottle-web-fixture binary: `--web-fixture`, else next to the bottle-proxy binary.
fn web_fixture_binary(args: &Args, proxy_bin: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = match &args.web_fixture {
        Some(p) => p.clone(),
        None => proxy_bin.with_file_name("bottle-web-fixture"),
    };
    std::fs::canonicalize(&path).with_context(|| {
        format!(
            "no bottle-web-fixture binary at {}: run ./scripts/build-sidecars.sh (it builds it \
             next to bottle-proxy) or pass --web-fixture PATH",
            path.display()
        )
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A target's number with at most 3 decimals, trailing zeros dropped (1.053, 0.5, 2).
fn short(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn table(measures: &[Measure]) -> String {
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3} s"));
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.2} ms", v * 1e3));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<16} {:>11} {:>11} {:>9} {:>10} {:>6}  load (1/5/15 min)",
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
            Target::AddedMillis(max) => (
                ms(m.bottle.median()),
                ms(m.baseline.median()),
                m.added()
                    .map_or("-".to_owned(), |a| format!("{:+.2} ms", a * 1e3)),
                format!("+{max} ms"),
            ),
            Target::MiB(max) => (
                m.bottle
                    .median()
                    .map_or("-".to_owned(), |v| format!("{v:.1} MiB")),
                "-".to_owned(),
                "-".to_owned(),
                format!("<= {max} MiB"),
            ),
            Target::Ratio(max) => (
                secs(m.bottle.median()),
                secs(m.baseline.median()),
                m.ratio().map_or("-".to_owned(), |r| format!("{r:.2}")),
                format!("<= {}", short(max)),
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
            "{:<16} {:>11} {:>11} {:>9} {:>10} {:>6}  {}",
            m.name, bottle, baseline, ratio, target, holds, m.load
        );
        let errors = m.bottle.errors.len() + m.baseline.errors.len();
        if errors > 0 {
            let _ = writeln!(
                out,
                "{:<16} {errors} failed run(s): {}",
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
                "{:<16} reference: {what}: {}",
                "",
                secs(series.median())
            );
        }
        for (what, holds) in &m.checks {
            let verdict = if *holds { "holds" } else { "MISSES" };
            let _ = writeln!(out, "{:<16} check: {what}: {verdict}", "");
        }
        for note in &m.notes {
            let _ = writeln!(out, "{:<16} note: {note}", "");
        }
    }
    out
}
