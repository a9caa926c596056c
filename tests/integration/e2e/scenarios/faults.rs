//! Faults: a bottle keeps its promises when parts fail or crowd it. A sidecar that fails
//! is restarted by its engine and serves again; pushes racing for one branch, a crowd of
//! clones and pushes, an upstream that stops answering, a gate killed or at its memory
//! limit in the middle of a push: each ends with everything done or nothing, a message,
//! and a next try that works. Faults are made deterministic (an upstream's processes
//! stopped before the operation, a kill once the push says it is forwarding), never
//! raced. docs/security.md ("When parts fail") lists what holds.

use std::process::Output;
use std::time::{Duration, Instant};

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
    let address = h.address(&h.gate(), &h.name("internal"));
    let branch = h.opts.default_branch;
    let mirror_before = h.gate_ref(&format!("refs/heads/{branch}"));

    let kill = kill_git_daemon(&h);
    wait_restarted(&h, before, &kill);
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
        h.address(&h.gate(), &h.name("internal")),
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

/// Kills the gate's git daemon with `kill -9` from inside, as the kernel's out-of-memory
/// killer would; fails the test unless one was found.
///
/// git daemon is the one child of the init: the entrypoint's shell exec'd it (the audit
/// copy `tail` is its child). The exec may itself be cut off when the container stops
/// under it (podman then reports a lost exec session): its status is not the test's; what
/// it printed before the kill is.
fn kill_git_daemon(h: &Harness) -> Output {
    h.engine(&[
        "exec",
        &h.gate(),
        "sh",
        "-c",
        "for s in /proc/[0-9]*/stat; do
           read -r pid comm state ppid rest <\"$s\" || continue
           if [ \"$ppid\" = 1 ]; then case $comm in *git*) echo \"$pid $comm\"; kill -9 \"$pid\";; esac; fi
         done",
    ])
}

/// Waits (bounded) until the engine restarted the gate after `kill` (its restart count
/// above `before`, running again); then checks that the kill found git daemon, so the
/// restart was its doing.
fn wait_restarted(h: &Harness, before: u64, kill: &Output) {
    poll(RESTART_LIMIT, "the gate restarted by its engine", || {
        let count = restart_count(h);
        let running = said(&h.engine(&["inspect", "-f", "{{.State.Running}}", &h.gate()]));
        if count > before && running.trim() == "true" {
            Ok(())
        } else {
            Err(format!(
                "RestartCount {count} (before {before}), running {}; the kill said:\n{}",
                running.trim(),
                show(kill)
            ))
        }
    });
    assert!(
        said(kill).contains("git"),
        "no git daemon was found to kill (the restart came from elsewhere?)\n{}",
        show(kill)
    );
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

/// How many rounds the two pushers race.
const RACE_ROUNDS: usize = 20;
/// How long one round (both shells syncing, committing and pushing) may take.
const ROUND_LIMIT: Duration = Duration::from_secs(90);
/// How long all rounds together may take.
const RACE_LIMIT: Duration = Duration::from_secs(600);

/// What one shell's push said, read from the agent's report (`@@ NAME STATUS HEAD`
/// followed by the push's output).
#[derive(Debug)]
struct Pushed {
    name: String,
    status: i32,
    head: String,
    output: String,
}

/// Parses the `@@ NAME STATUS HEAD` blocks a script printed.
fn reports(text: &str) -> Vec<Pushed> {
    let mut all: Vec<Pushed> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(status)) = (words.next(), words.next()) else {
                panic!("a garbled report line {line:?} in:\n{text}");
            };
            all.push(Pushed {
                name: name.to_owned(),
                status: status
                    .parse()
                    .unwrap_or_else(|e| panic!("status in {line:?}: {e}\n{text}")),
                head: words.next().unwrap_or_default().to_owned(),
                output: String::new(),
            });
        } else if let Some(last) = all.last_mut() {
            last.output.push_str(line);
            last.output.push('\n');
        }
    }
    all
}

/// Whether any of the upstream's refs holds `commit`. (Its objects alone may be there: a
/// receive-pack moves a pushed pack out of quarantine before it takes the ref locks, so a
/// push refused at the lock leaves unreachable objects for gc. What counts is history.)
fn upstream_reaches(h: &Harness, commit: &str) -> bool {
    let object = format!("{commit}^{{commit}}");
    if !h
        .upstream_git(&["cat-file", "-e", &object])
        .status
        .success()
    {
        return false;
    }
    let refs = expect_ok(
        h.upstream_git(&["for-each-ref", "--contains", commit]),
        "the upstream's refs holding a commit",
    );
    !refs.is_empty()
}

/// Whether git or the gate complained about a lock (a ref's, the index's, a pack's).
/// One lock message is no fault: the upstream's "cannot lock ref ...: is at X but
/// expected Y" when two forwards that both passed their leases race for its ref lock, and
/// the loser's lease refuses it; it counts only when the gate does not explain it as that.
fn lock_trouble(text: &str) -> bool {
    let explained = text.contains("another push reached the upstream of");
    text.lines().any(|line| {
        let line = line.to_lowercase();
        let lock = [
            "cannot lock",
            "unable to lock",
            "unable to create",
            ".lock'",
            "lock file",
        ]
        .iter()
        .any(|p| line.contains(p));
        lock && !(explained && line.contains("cannot lock ref") && line.contains("but expected"))
    })
}

/// 20. Two of the agent's shells push to the same branch at the same moment, twenty
///     rounds: every round exactly one push wins and lands upstream and on the gate; the
///     other is refused, telling to fetch (and rebase) and push again: the gate's
///     forward, whose lease the upstream refuses, or git itself, when the gate's ref had
///     already moved when it looked; nothing speaks of a lock; the upstream's history is
///     linear and holds every winner, in order, and no loser.
pub fn two_shells_pushing_one_branch_one_wins_each_round(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("race")) else {
        return;
    };
    let branch = h.opts.default_branch;
    let r = format!("refs/heads/{branch}");
    let start = h.upstream_ref(&r).expect("the upstream's default branch");
    for s in ["a", "b"] {
        super::clone_in_agent(&h, &format!("race-{s}"));
    }
    let began = Instant::now();
    let mut winners = Vec::new();
    let (mut by_gate, mut by_lock, mut by_git) = (0, 0, 0);
    for round in 1..=RACE_ROUNDS {
        // Both sync to the upstream and commit; then both push at once (two background
        // jobs of one shell, started microseconds apart).
        let script = format!(
            "set -e
             for s in a b; do
               cd race-$s; git fetch -q origin; git reset -q --hard origin/{branch}
               echo \"round {round} by $s\" >race.txt; git add race.txt
               git commit -qm \"round {round} by $s\"; cd ..
             done
             set +e
             for s in a b; do
               (cd race-$s; git push origin {branch} >../race-$s.out 2>&1; echo $? >../race-$s.rc) &
             done
             wait
             for s in a b; do
               echo \"@@ $s $(cat race-$s.rc) $(git -C race-$s rev-parse HEAD)\"; cat race-$s.out
             done"
        );
        let out = h.agent_sh_limited(&script, ROUND_LIMIT);
        assert!(out.status.success(), "round {round}\n{}", show(&out));
        let text = said(&out);
        let pushed = reports(&text);
        assert_eq!(pushed.len(), 2, "round {round}: two reports\n{text}");
        for p in &pushed {
            assert!(
                !lock_trouble(&p.output),
                "round {round}: {}'s push met a lock\n{text}",
                p.name
            );
        }
        let won: Vec<&Pushed> = pushed.iter().filter(|p| p.status == 0).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: not exactly one push won\n{text}"
        );
        let winner = won[0];
        let loser = pushed
            .iter()
            .find(|p| p.status != 0)
            .expect("the other push");
        if loser.output.contains("fetch, rebase and push again") {
            by_gate += 1;
            if loser.output.contains("but expected") {
                by_lock += 1;
            }
        } else if loser.output.contains("(fetch first)") {
            by_git += 1;
        } else {
            panic!("round {round}: the refused push does not tell to fetch and push again\n{text}");
        }
        assert!(
            winner.output.contains("no secrets found"),
            "round {round}: the winning push was not scanned\n{text}"
        );
        assert_eq!(
            h.upstream_ref(&r).as_deref(),
            Some(winner.head.as_str()),
            "round {round}: the upstream is not at the winner\n{text}"
        );
        assert_eq!(
            h.gate_ref(&r).as_deref(),
            Some(winner.head.as_str()),
            "round {round}: the gate is not at the winner\n{text}"
        );
        assert!(
            !upstream_reaches(&h, &loser.head),
            "round {round}: an upstream ref holds the refused commit\n{text}"
        );
        winners.push(winner.head.clone());
        assert!(
            began.elapsed() < RACE_LIMIT,
            "{round} rounds took longer than {} s",
            RACE_LIMIT.as_secs()
        );
    }
    let range = format!("{start}..{r}");
    let history = expect_ok(
        h.upstream_git(&["rev-list", "--reverse", "--topo-order", &range]),
        "the upstream's history",
    );
    let history: Vec<&str> = history.lines().collect();
    assert_eq!(
        history, winners,
        "the upstream's history is not every winner in order"
    );
    let merges = expect_ok(
        h.upstream_git(&["rev-list", "--merges", &range]),
        "merges upstream",
    );
    assert_eq!(merges, "", "the upstream's history is not linear");
    let first_parent = expect_ok(
        h.upstream_git(&["rev-list", "--first-parent", "--reverse", &range]),
        "first parents upstream",
    );
    assert_eq!(first_parent.lines().collect::<Vec<_>>(), winners);
    eprintln!(
        "{RACE_ROUNDS} rounds in {:.0} s: the loser refused by the upstream's lease {by_gate} times ({by_lock} of them at its ref lock), by git itself {by_git} times",
        began.elapsed().as_secs_f64()
    );
}

/// How many clones run at once in scenario 21, and how many pushes beside them.
const CLONES: usize = 20;
const PUSHES: usize = 5;

/// 21. Twenty clones and five pushes to five new branches, all at once: every one
///     succeeds; every clone is complete and at the upstream's head; every branch is
///     upstream and on the gate at its pusher's commit, and the default branch is where
///     it was.
pub fn twenty_clones_and_five_pushes_at_once(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("crowd")) else {
        return;
    };
    let branch = h.opts.default_branch;
    let main_ref = format!("refs/heads/{branch}");
    let main_before = h
        .upstream_ref(&main_ref)
        .expect("the upstream's default branch");
    let url = super::sh(&h.url);
    let pushers: Vec<usize> = (1..=PUSHES).collect();
    let numbers = |n: &[usize]| n.iter().map(usize::to_string).collect::<Vec<_>>().join(" ");
    let pushers = numbers(&pushers);
    let clones = numbers(&(1..=CLONES).collect::<Vec<_>>());
    h.agent_ok(&format!(
        "set -e; rm -rf crowd; mkdir crowd; cd crowd
         for i in {pushers}; do
           git clone -q {url} p$i; cd p$i; git checkout -q -b crowd-$i
           echo \"pusher $i\" >crowd.txt; git add crowd.txt; git commit -qm \"pusher $i\"; cd ..
         done"
    ));
    let script = format!(
        "cd crowd
         for i in {clones}; do
           (git clone -q {url} c$i >c$i.out 2>&1; echo $? >c$i.rc) &
         done
         for i in {pushers}; do
           (cd p$i; git push origin crowd-$i >../p$i.out 2>&1; echo $? >../p$i.rc) &
         done
         wait
         for i in {clones}; do
           echo \"@@ c$i $(cat c$i.rc) $(git -C c$i rev-parse HEAD 2>/dev/null)\"; cat c$i.out
           git -C c$i status --porcelain 2>&1
         done
         for i in {pushers}; do
           echo \"@@ p$i $(cat p$i.rc) $(git -C p$i rev-parse HEAD)\"; cat p$i.out
         done"
    );
    let out = h.agent_sh(&script);
    assert!(out.status.success(), "{}", show(&out));
    let text = said(&out);
    let all = reports(&text);
    assert_eq!(all.len(), CLONES + PUSHES, "a report per job\n{text}");
    for p in &all {
        assert_eq!(p.status, 0, "{} failed\n{text}", p.name);
        assert!(!lock_trouble(&p.output), "{} met a lock\n{text}", p.name);
        if let Some(n) = p.name.strip_prefix('p') {
            let r = format!("refs/heads/crowd-{n}");
            assert_eq!(
                h.upstream_ref(&r).as_deref(),
                Some(p.head.as_str()),
                "crowd-{n} upstream\n{text}"
            );
            assert_eq!(
                h.gate_ref(&r).as_deref(),
                Some(p.head.as_str()),
                "crowd-{n} on the gate\n{text}"
            );
        } else {
            assert_eq!(
                p.head, main_before,
                "clone {} is not at the upstream's head\n{text}",
                p.name
            );
            // The clone's report holds nothing but git status' (empty) output: a
            // complete checkout.
            assert_eq!(p.output.trim(), "", "clone {} is not clean\n{text}", p.name);
        }
    }
    assert_eq!(
        h.upstream_ref(&main_ref),
        Some(main_before),
        "the default branch moved"
    );
}

/// How long a push or a clone may hang on an upstream that stopped answering: the gate's
/// ssh gives up after its keepalives (`ServerAliveInterval` 15 s, 3 unanswered) or its
/// connect timeout (15 s, the handshake included); the rest is slack for a busy machine.
const HUNG_UPSTREAM_LIMIT: Duration = Duration::from_secs(150);

/// Stops every process of the upstream fixture but its init (sshd and its sessions) with
/// SIGSTOP: the upstream stops answering at once while its kernel still holds the
/// connections, as a hung or overloaded server does. Deterministic where racing a stop
/// against a push that takes milliseconds is not, and unlike `pause` it needs no cgroup
/// freezer (rootless podman on cgroups v1 has none).
fn freeze_upstream(h: &Harness) {
    h.engine_ok(&["exec", &h.fixture(), "sh", "-c", "kill -STOP -1"]);
}

/// Lets the fixture's processes run again.
fn thaw_upstream(h: &Harness) {
    h.engine_ok(&["exec", &h.fixture(), "sh", "-c", "kill -CONT -1"]);
}

/// A commit on the default branch of the agent's fresh clone `dir`, not pushed; its id.
fn commit_in_agent(h: &Harness, dir: &str, what: &str) -> String {
    super::clone_in_agent(h, dir);
    h.agent_ok(&format!(
        "set -e; cd {dir}; echo {what} >fault.txt; git add fault.txt
         git commit -qm {what}; git rev-parse HEAD",
        what = super::sh(what),
    ))
}

/// The refs of the default branch, upstream and on the gate, before a fault.
struct Before {
    upstream: Option<String>,
    gate: Option<String>,
}

impl Before {
    fn take(h: &Harness) -> Before {
        let r = format!("refs/heads/{}", h.opts.default_branch);
        Before {
            upstream: h.upstream_ref(&r),
            gate: h.gate_ref(&r),
        }
    }

    /// Nothing of the push of `commit` is upstream or on the gate, and neither ref moved.
    fn unchanged(&self, h: &Harness, commit: &str, when: &str) {
        let r = format!("refs/heads/{}", h.opts.default_branch);
        assert_eq!(
            h.upstream_ref(&r),
            self.upstream,
            "the upstream's ref {when}"
        );
        assert_eq!(h.gate_ref(&r), self.gate, "the gate's ref {when}");
        assert!(
            !upstream_reaches(h, commit),
            "an upstream ref holds the commit of the failed push {when}"
        );
    }
}

/// 22. The upstream stops answering in the middle of a push (its processes stopped once
///     the gate's connection to it stands; the push is scanned and its forward waits on
///     it) and of a clone (the gate's refresh waits on it): each fails cleanly within the
///     gate's ssh keepalive bound and says why; the gate's ref does not move, the
///     upstream gets nothing (checked again after it ran on for a while), a failed clone
///     leaves no directory; once the upstream answers again, the same push goes through
///     and a clone matches it.
pub fn an_upstream_that_stops_answering_fails_push_and_clone_cleanly(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("frozen")) else {
        return;
    };
    let branch = h.opts.default_branch;
    let dir = "frozen-push";
    let commit = commit_in_agent(&h, dir, "pushed while the upstream hung");
    let before = Before::take(&h);
    let push = format!("git -C {dir} push origin {branch}");

    freeze_upstream(&h);
    let began = Instant::now();
    let out = h.agent_sh_limited(&push, HUNG_UPSTREAM_LIMIT);
    let took = began.elapsed();
    thaw_upstream(&h);
    let text = said(&out);
    assert!(
        !out.status.success(),
        "a push succeeded while the upstream did not answer\n{}",
        show(&out)
    );
    for want in [
        "forwarding to the upstream",
        "refused the push or could not be reached",
        "nothing changed upstream or on the gate",
    ] {
        assert!(
            text.contains(want),
            "the failed push does not say {want:?}\n{}",
            show(&out)
        );
    }
    eprintln!("the push failed after {:.0} s", took.as_secs_f64());
    before.unchanged(&h, &commit, "after the push failed");

    freeze_upstream(&h);
    let out = h.agent_sh_limited(
        &format!(
            "rm -rf frozen-clone; git clone {} frozen-clone",
            super::sh(&h.url)
        ),
        HUNG_UPSTREAM_LIMIT,
    );
    let leftover = h.agent_sh("test -e frozen-clone");
    thaw_upstream(&h);
    super::assert_unreachable(&h, &out, "a clone while the upstream did not answer");
    assert!(
        !leftover.status.success(),
        "the failed clone left a directory behind"
    );
    // The upstream has run on since the push failed: whatever reached it late is in.
    before.unchanged(&h, &commit, "after the clone failed");

    let out = h.agent_sh(&push);
    assert!(
        out.status.success(),
        "the push once the upstream answered again\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
    super::clone_matches(&h);
}

/// The agent's `git push` of `dir`'s default branch, started in the background of the
/// calling scope; once its output says it is forwarding (scanned, its forward waiting on
/// the frozen upstream), runs `fault`. Returns the push's result and the fault's.
fn push_cut_midway<T>(h: &Harness, dir: &str, fault: impl FnOnce() -> T) -> (Output, T) {
    let log = format!("{dir}.push-log");
    let branch = h.opts.default_branch;
    let script = format!(
        "cd {dir} && git push origin {branch} >../{log} 2>&1; rc=$?; cat ../{log}; exit $rc"
    );
    std::thread::scope(|s| {
        let push = s.spawn(|| h.agent_sh_limited(&script, HUNG_UPSTREAM_LIMIT));
        poll(Duration::from_secs(60), "the push forwarding", || {
            let out = h.agent_sh(&format!("cat {log} 2>&1"));
            let text = said(&out);
            if text.contains("forwarding to the upstream") {
                Ok(())
            } else {
                Err(text)
            }
        });
        let faulted = fault();
        (super::join(push), faulted)
    })
}

/// The push failed, with git's word for the connection that was cut.
fn assert_push_cut(out: &Output, how: &str) {
    let text = said(out);
    assert!(
        !out.status.success(),
        "a push whose gate was {how} succeeded\n{}",
        show(out)
    );
    assert!(
        text.contains("fatal:") || text.contains("error:"),
        "the push whose gate was {how} failed without a message\n{}",
        show(out)
    );
}

/// 23. The gate's git daemon killed (`kill -9`, from inside) in the middle of a push
///     (scanned, its forward under way to an upstream that does not answer yet): the
///     agent's push fails with git's message; the upstream, once it runs again, has none
///     of the push and the gate's ref has not moved; after the engine's restart the same
///     push goes through.
pub fn a_gate_killed_in_the_middle_of_a_push_forwards_nothing(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("gatekill")) else {
        return;
    };
    let branch = h.opts.default_branch;

    // (a) git daemon, kill -9.
    let dir = "gatekill-daemon";
    let commit = commit_in_agent(&h, dir, "pushed while git daemon was killed");
    let before = Before::take(&h);
    let count = restart_count(&h);
    freeze_upstream(&h);
    let (out, kill) = push_cut_midway(&h, dir, || kill_git_daemon(&h));
    thaw_upstream(&h);
    assert_push_cut(&out, "killed (git daemon)");
    wait_restarted(&h, count, &kill);
    h.wait_ready();
    before.unchanged(&h, &commit, "after git daemon was killed");
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    assert!(
        out.status.success(),
        "the push after the restart\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
}

/// The gate's memory limit in scenario 24, and the size of the push it is given: one
/// incompressible file well over the limit (git reads a lone blob whole to unpack it). At
/// 48m gitleaks itself failed on podman even for a small push: the limit must leave room
/// for the scan.
const SMALL_GATE_MEMORY: &str = "96m";
const BIG_PUSH_MB: usize = 160;

/// 24. A push well over the gate's memory limit (`gate_memory = "96m"`, one file of
///     160 MiB random bytes): refused or completed, never forwarded half. Either the push succeeds
///     and its commit is upstream and on the gate, or it fails with a message and neither
///     ref moved nor does any upstream ref hold the commit. Either way the gate serves after
///     it (restarted by its engine, should the out-of-memory killer have taken git daemon)
///     and a small push goes through.
pub fn a_push_bigger_than_the_gates_memory_is_all_or_nothing(engine: &'static Engine) {
    let Some(h) = Harness::prepare(engine, Options::new("bigpush")) else {
        return;
    };
    // The gate's limit goes into the bottle's own table.
    h.add_to_manifest(
        "command = ",
        &format!("gate_memory = {SMALL_GATE_MEMORY:?}"),
    );
    h.bring_up();
    let branch = h.opts.default_branch;
    let r = format!("refs/heads/{branch}");
    let dir = "bigpush";
    super::clone_in_agent(&h, dir);
    let commit = h.agent_ok(&format!(
        "set -e; cd {dir}; head -c {BIG_PUSH_MB}M /dev/urandom >big.bin; git add big.bin
         git commit -qm 'a big file'; git rev-parse HEAD"
    ));
    let before = Before::take(&h);
    let count = restart_count(&h);
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    let text = said(&out);
    if out.status.success() {
        eprintln!("the big push went through");
        super::pushed_head_arrived(&h, dir, branch);
    } else {
        eprintln!("the big push was refused:\n{text}");
        assert!(
            text.contains("fatal:") || text.contains("error:") || text.contains("bottle-gate:"),
            "the refused big push says nothing\n{}",
            show(&out)
        );
        if restart_count(&h) > count {
            h.wait_ready();
        }
        before.unchanged(&h, &commit, "after the big push was refused");
        // Drop the big commit for what follows.
        h.agent_ok(&format!("git -C {dir} reset -q --hard HEAD~1"));
    }
    let upstream = h.upstream_ref(&r);
    assert!(upstream.is_some(), "the upstream lost its {branch}");
    // The gate serves: a small push goes through and a clone matches.
    let out = h.agent_sh(&format!(
        "set -e; cd {dir}; git pull -q --rebase origin {branch}
         echo small >small.txt; git add small.txt; git commit -qm small
         git push origin {branch}"
    ));
    assert!(
        out.status.success(),
        "a small push after the big one\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
    super::clone_matches(&h);
}

/// The disk-full scenario: the gate's mirrors on a tmpfs of this size, and the git entry's
/// push limit (the fixture's mirror takes well under a megabyte).
const SMALL_GATE_DISK: &str = "16m";
const SMALL_PUSH_LIMIT_MB: u64 = 4;

/// The free space of the gate's mirrors, in KiB.
fn gate_free_kb(h: &Harness) -> u64 {
    let line = h.engine_ok(&["exec", &h.gate(), "sh", "-c", "df -Pk /git | tail -n 1"]);
    line.split_whitespace()
        .nth(3)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("df in the gate said {line:?}"))
}

/// Fills the gate's mirrors (as the gate's user) until `free_kb` KiB are left.
fn fill_gate_disk(h: &Harness, free_kb: u64) {
    h.engine_ok(&["exec", &h.gate(), "rm", "-f", "/git/filler"]);
    let fill = gate_free_kb(h).saturating_sub(free_kb);
    h.engine_ok(&[
        "exec",
        &h.gate(),
        "sh",
        "-c",
        &format!("head -c {fill}K /dev/zero >/git/filler"),
    ]);
}

/// 24b. The gate's disk full (its mirrors on a 16 MB tmpfs, through the test hook
///     `BOTTLE_TEST_GATE_MIRRORS_TMPFS`; the git entry's `max_push_mb = 4`; the test
///     fills the rest with a file of its own):
///     - with less free than the push limit, a push is refused before git reads it,
///       saying so and naming the key;
///     - with more free than the limit but less than the push (git bounds a pack only at
///       the limit and a quarter, and 1 MiB), the disk fills in the middle of the push:
///       git refuses it (its words, or a cut connection), and git drops what it had
///       stored;
///     each time nothing is upstream or on the gate; with space again, the mirror serves a
///     clone that matches the upstream, and a small push goes through.
pub fn a_full_gate_disk_refuses_the_push_and_keeps_serving(engine: &'static Engine) {
    let mut opts = Options::new("diskfull");
    opts.bottle_env = vec![("BOTTLE_TEST_GATE_MIRRORS_TMPFS", SMALL_GATE_DISK.to_owned())];
    let Some(h) = Harness::prepare(engine, opts) else {
        return;
    };
    h.add_to_manifest(
        "identity_file = ",
        &format!("max_push_mb = {SMALL_PUSH_LIMIT_MB}"),
    );
    h.bring_up();
    let mirrors = h.engine_ok(&["exec", &h.gate(), "sh", "-c", "df -P /git | tail -n 1"]);
    assert!(
        mirrors.starts_with("tmpfs"),
        "the gate's mirrors are not on the test's tmpfs: {mirrors}"
    );
    let branch = h.opts.default_branch;
    let dir = "diskfull";
    super::clone_in_agent(&h, dir);
    let limit_kb = SMALL_PUSH_LIMIT_MB * 1024;

    // Less free than the limit: refused up front.
    fill_gate_disk(&h, limit_kb / 2);
    let commit = h.agent_ok(&format!(
        "set -e; cd {dir}; echo small >small.txt; git add small.txt
         git commit -qm small; git rev-parse HEAD"
    ));
    let before = Before::take(&h);
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    let text = said(&out);
    assert!(
        !out.status.success()
            && text.contains("the gate's disk has")
            && text.contains("max_push_mb"),
        "a push to a gate without room for it is not refused saying why\n{}",
        show(&out)
    );
    before.unchanged(&h, &commit, "after a push to a full gate");
    h.agent_ok(&format!("git -C {dir} reset -q --hard HEAD~1"));

    // More free than the limit, less than the push: the disk fills in the middle of it.
    fill_gate_disk(&h, limit_kb + 512);
    let commit = h.agent_ok(&format!(
        "set -e; cd {dir}; head -c {}K /dev/urandom >big.bin; git add big.bin
         git commit -qm 'more than the gate can hold'; git rev-parse HEAD",
        limit_kb + 1536
    ));
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    let text = said(&out);
    eprintln!("the push that filled the gate's disk:\n{text}");
    assert!(
        !out.status.success(),
        "a push bigger than the gate's free disk went through\n{}",
        show(&out)
    );
    assert!(
        [
            "No space left",
            "unpack failed",
            "hung up",
            "Connection reset"
        ]
        .iter()
        .any(|w| text.contains(w)),
        "the push that filled the gate's disk failed without git's word for it\n{}",
        show(&out)
    );
    before.unchanged(&h, &commit, "after the push that filled the gate's disk");
    // git dropped the push's quarantine: only the filler and the mirror take room.
    let used = h.engine_ok(&[
        "exec",
        &h.gate(),
        "sh",
        "-c",
        "rm -f /git/filler; du -sk /git | cut -f1",
    ]);
    let used_kb: u64 = used
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("du said {used:?}"));
    assert!(
        used_kb < 2048,
        "the failed push left {used_kb} KiB behind in the gate's mirrors"
    );

    // With room again, the gate serves as before.
    h.agent_ok(&format!("git -C {dir} reset -q --hard HEAD~1"));
    super::clone_matches(&h);
    let out = h.agent_sh(&format!(
        "set -e; cd {dir}; echo small >small.txt; git add small.txt
         git commit -qm small; git push origin {branch}"
    ));
    assert!(
        out.status.success(),
        "a small push after the disk was full\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
}

/// 23b. The gate's container killed by the engine (`kill`) in the middle of a push, as
///     23: the push fails with git's message, nothing of it is upstream or on the gate. No
///     restart policy undoes a kill (the user stopped it); `bottle start` brings the gate
///     back and points the agent's host entry at it (rootful podman 4.3 gives a started
///     container a new address on the internal network; docker keeps it), and the same
///     push goes through.
pub fn a_gate_container_killed_mid_push_comes_back_with_start(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("gatestop")) else {
        return;
    };
    let branch = h.opts.default_branch;
    let dir = "gatekill-container";
    let commit = commit_in_agent(&h, dir, "pushed while the gate was killed");
    let before = Before::take(&h);
    let address = h.address(&h.gate(), &h.name("internal"));
    freeze_upstream(&h);
    let (out, kill) = push_cut_midway(&h, dir, || h.engine(&["kill", &h.gate()]));
    thaw_upstream(&h);
    assert!(
        kill.status.success(),
        "{} kill\n{}",
        h.engine.cli,
        show(&kill)
    );
    assert_push_cut(&out, "killed (the container)");
    let running = h.engine_ok(&["inspect", "-f", "{{.State.Running}}", &h.gate()]);
    assert_eq!(
        running, "false",
        "the killed gate runs again: a policy undid the user's kill"
    );
    expect_ok(run(h.bottle().args(["start", &h.slug])), "bottle start");
    // The engine may have given the gate another address (rootful podman does): `bottle
    // start` pointed the agent's host entry at the new one.
    let now = h.address(&h.gate(), &h.name("internal"));
    if now != address {
        eprintln!("the started gate moved from {address} to {now}");
    }
    let resolved = h.agent_ok(&format!("getent hosts {}", h.gate()));
    assert_eq!(
        resolved.split_whitespace().next(),
        Some(now.as_str()),
        "the agent's entry for the started gate: {resolved}"
    );
    h.wait_ready();
    before.unchanged(&h, &commit, "after the gate was killed");
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    assert!(
        out.status.success(),
        "the push after the start\n{}",
        show(&out)
    );
    super::pushed_head_arrived(&h, dir, branch);
}
