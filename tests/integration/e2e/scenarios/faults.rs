//! Faults: a sidecar that fails is restarted by its engine and serves again.

use std::time::Duration;

use super::super::harness::{expect_ok, poll, run, said, show, Harness, Options};
use super::super::Engine;
use super::{clean_push_arrives, clone_matches, commit_upstream};

/// How long the engine may take to notice the gate's exit and start it again.
const RESTART_LIMIT: Duration = Duration::from_secs(60);

/// The gate's restart count, as the engine counts it (`RestartCount` in docker's and
/// podman's inspect output alike).
fn restart_count(h: &Harness) -> u64 {
    let out = h.engine_ok(&["inspect", "-f", "{{.RestartCount}}", &h.gate()]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("RestartCount {out:?}: {e}"))
}

/// The gate's address on the bottle's internal network, where the agent's host entry
/// points.
fn gate_address(h: &Harness) -> String {
    h.engine_ok(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            h.name("internal")
        ),
        &h.gate(),
    ])
    .trim()
    .to_owned()
}

/// How many of the bottle's audit lines record a forwarded push.
fn forwarded_pushes(h: &Harness) -> usize {
    let all = expect_ok(
        run(h.bottle().args(["logs", "--json", &h.slug])),
        "bottle logs --json",
    );
    all.lines()
        .filter(|l| l.contains("\"source\":\"gate\"") && l.contains("push-forwarded"))
        .count()
}

/// 19. The gate's main process killed hard (git daemon, `kill -9`): its container exits
///     with a failure, the engine restarts it by the plan's `on-failure` policy (its
///     restart count goes up), and it serves again: the entrypoint, run a second time in the
///     same container, keeps the mirror, starts git daemon and the audit copy again; the
///     first fetch after the restart is fresh (it brings a commit the upstream got while the
///     gate was down), and a clone and a clean push work and arrive upstream, the push's
///     audit line in `bottle logs` once.
///
///     How the fault is made: `docker kill` and `podman kill` (any signal) count as a stop
///     by the user, which no restart policy undoes (measured: docker 20.10 and podman 4.3
///     leave the container exited with 137 and RestartCount 0). What a policy is for is a
///     process that dies on its own, so the test kills git daemon from inside, as the
///     kernel's out-of-memory killer would: the gate's init (PID 1) then exits with 137,
///     which the engine sees as a failure.
pub fn a_killed_gate_restarts_and_serves_again(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("restart")) else {
        return;
    };
    clean_push_arrives(&h);
    pushes_logged(&h, 1);
    let before = restart_count(&h);
    let address = gate_address(&h);
    let branch = h.opts.default_branch;
    let mirror_before = h.gate_ref(&format!("refs/heads/{branch}"));

    // git daemon is the one child of the init: the entrypoint's shell exec'd it (the audit
    // copy `tail` is its child). The exec may itself be cut off when the container stops
    // under it (podman then reports a lost exec session): its result is not the test's;
    // the restart count is.
    let kill = h.engine(&[
        "exec",
        &h.gate(),
        "sh",
        "-c",
        "for s in /proc/[0-9]*/stat; do
           read -r pid comm state ppid rest <\"$s\" || continue
           if [ \"$ppid\" = 1 ]; then case $comm in *git*) echo \"$pid $comm\"; kill -9 \"$pid\";; esac; fi
         done",
    ]);
    let killed = said(&kill);
    poll(RESTART_LIMIT, "the gate restarted by its engine", || {
        let count = restart_count(&h);
        let running = said(&h.engine(&["inspect", "-f", "{{.State.Running}}", &h.gate()]));
        if count > before && running.trim() == "true" {
            Ok(())
        } else {
            Err(format!(
                "RestartCount {count} (before {before}), running {}; the kill said:\n{}",
                running.trim(),
                show(&kill)
            ))
        }
    });
    assert!(
        killed.contains("git"),
        "no git daemon was found to kill (the restart came from elsewhere?)\n{}",
        show(&kill)
    );
    // `bottle ps` says so: the gate restarted, the agent did not.
    let ps = expect_ok(
        run(h.bottle().args(["ps", "--json", &h.slug])),
        "bottle ps --json",
    );
    let found: serde_json::Value = serde_json::from_str(&ps).expect("bottle ps --json");
    let restarts = |name: &str| {
        found[0]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name)
            .map(|r| r["restarts"].clone())
            .unwrap_or_else(|| panic!("{name} is not in bottle ps --json:\n{ps}"))
    };
    assert!(
        restarts(&h.gate()).as_u64() > Some(before),
        "bottle ps --json shows no restart of the gate:\n{ps}"
    );
    assert_eq!(restarts(&h.agent()), serde_json::json!(0), "{ps}");
    let text = expect_ok(run(h.bottle().args(["ps", &h.slug])), "bottle ps");
    assert!(
        text.lines()
            .any(|l| l.contains(&h.gate()) && l.contains("(restarted")),
        "bottle ps does not show the gate's restart:\n{text}"
    );
    assert_eq!(
        gate_address(&h),
        address,
        "the gate's address changed with the restart: the agent's host entry points at the old one"
    );

    // The mirror survived (same container, same files), and what the upstream got
    // meanwhile is in the first fetch after the restart.
    assert_eq!(
        h.gate_ref(&format!("refs/heads/{branch}")),
        mirror_before,
        "the gate's mirror after the restart"
    );
    let news = commit_upstream(&h, "AFTER", "while the gate restarted");
    h.wait_ready();
    // (Running comes before the entrypoint's first line: its log is read once it serves.)
    let logs = said(&h.engine(&["logs", &h.gate()]));
    assert_eq!(
        logs.matches("bottle-gate: serving").count(),
        2,
        "the entrypoint did not run exactly once more:\n{logs}"
    );
    assert_eq!(
        h.gate_ref(&format!("refs/heads/{branch}")),
        Some(news),
        "the first fetch after the restart did not refresh the mirror"
    );

    clone_matches(&h);
    // A clean push after the restart (clean_push_arrives' own commit is upstream already).
    let dir = "push-after-restart";
    let out = h.agent_sh(&format!(
        "set -e; rm -rf {dir}; git clone -q {url} {dir}; cd {dir}
         echo 'after the restart' >after.txt; git add after.txt; git commit -qm 'after the restart'
         git push origin {branch}",
        url = super::sh(&h.url),
    ));
    assert!(
        out.status.success(),
        "a clean push after the restart failed\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
    // The audit copy runs again and copies only what is new (`tail -n 0`): the push before
    // the restart once, the one after it once.
    pushes_logged(&h, 2);
}

/// Waits (bounded) until `bottle logs` holds exactly `want` forwarded pushes (the copy to
/// the gate's output may take a moment).
fn pushes_logged(h: &Harness, want: usize) {
    poll(
        Duration::from_secs(10),
        "the forwarded pushes in the audit log",
        || match forwarded_pushes(h) {
            n if n == want => Ok(()),
            n => Err(format!("{n} forwarded pushes in bottle logs, not {want}")),
        },
    );
}
