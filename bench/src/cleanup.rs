//! Cleanup: on exit, on failure, on Ctrl-C.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use crate::cmd;
use crate::cmd::docker;
use crate::results::first_lines;

#[derive(Debug, Default)]
pub(crate) struct Cleanup {
    pub(crate) bottle: PathBuf,
    pub(crate) label: String,
    /// Bottles brought up (slug, directory holding its manifest).
    pub(crate) bottles: Vec<(String, PathBuf)>,
    /// Compose projects (name, file).
    pub(crate) compose: Vec<(String, PathBuf)>,
}

pub(crate) static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);
/// The run's directory, for an interrupted run to remove.
pub(crate) static RUN_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Host processes the run started (the proxies of the proxy measures), by name.
static PROCESSES: Mutex<Vec<(&'static str, Child)>> = Mutex::new(Vec::new());

pub(crate) fn process_register(name: &'static str, child: Child) {
    PROCESSES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((name, child));
}

/// Runs `work` (loopback measures with processes of their own) on a two-thread runtime,
/// then stops those processes whatever happened.
pub(crate) fn on_runtime<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(work);
    process_stop();
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Stops the processes the run started: SIGTERM, then SIGKILL after 5 s; safe to call
/// more than once.
pub(crate) fn process_stop() {
    let mut procs = std::mem::take(&mut *PROCESSES.lock().unwrap_or_else(|p| p.into_inner()));
    for (_, child) in &procs {
        // By its own id only; `kill` is util-linux's or procps's.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for (name, child) in &mut procs {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    eprintln!("warning: cleanup: {name} did not stop on SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

/// Forgets bottle `slug` (it was removed).
pub(crate) fn cleanup_forget(slug: &str) {
    cleanup_register(|c| c.bottles.retain(|(s, _)| s != slug));
    cleanup_register(|c| c.compose.retain(|(p, _)| *p != slug.replace('-', "")));
}

pub(crate) fn cleanup_register(f: impl FnOnce(&mut Cleanup)) {
    if let Some(c) = CLEANUP.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        f(c);
    }
}

/// Removes everything the run created; safe to call more than once.
pub(crate) fn cleanup_now() {
    process_stop();
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

pub(crate) fn on_signals() {
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
