//! A bottle kept across stops: `bottle stop`/`start`, and the engine stopping its containers
//! behind bottle's back (what an engine restart leaves), seen by `bottle status` and
//! resumed by `bottle up`.

use super::super::harness::{expect_ok, run, said, show, Harness, Options, REPO};
use super::super::Engine;
use super::{clean_push_arrives, clone_in_agent, clone_matches, commit_upstream};

/// `bottle status --format json` of the scenario's bottle.
fn status(h: &Harness) -> serde_json::Value {
    let out = expect_ok(
        run(h.bottle().args(["status", "--format", "json", &h.slug])),
        "bottle status --format json",
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bottle status --json: {e}\n{out}"))
}

/// The state `bottle status` gives the container `name`.
fn state_of(status: &serde_json::Value, name: &str) -> String {
    status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["state"].as_str())
        .unwrap_or_else(|| panic!("{name} is not in bottle status:\n{status:#}"))
        .to_owned()
}

/// The upstream fixture is not part of the bottle's plan (it only carries its labels, for
/// cleanup): started again by hand after the bottle's containers were stopped.
fn restart_fixture(h: &Harness) {
    h.engine_ok(&["start", &h.fixture()]);
    h.wait_ready();
}

/// 20. `bottle stop` keeps the bottle: its containers stop (status says so, `exec` says the
///     command did not run, exit 125, apart from a command's own failure), `bottle start`
///     starts them again, the gate's mirror has the same refs as before the stop, a fetch
///     brings what the upstream got meanwhile, a clone works, status shows the mirror's last
///     refresh, and `logs --container gate` shows the gate's own output (its entrypoint ran
///     twice, once per start).
pub fn stop_and_start_keep_the_mirror(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("stop")) else {
        return;
    };
    clean_push_arrives(&h);
    let branch = h.opts.default_branch;
    let head = format!("refs/heads/{branch}");
    let mirror_before = h.gate_ref(&head).expect("the gate's mirror has the branch");

    // A command that fails is its own exit code.
    let failed = run(h
        .bottle()
        .args(["exec", &h.slug, "-T", "--", "sh", "-c", "exit 3"]));
    assert_eq!(failed.status.code(), Some(3), "{}", show(&failed));

    let stop = expect_ok(run(h.bottle().args(["stop", &h.slug])), "bottle stop");
    for name in [h.gate(), h.agent()] {
        assert!(
            stop.contains(&format!("stopped container {name}")),
            "{name}:\n{stop}"
        );
    }
    let stopped = status(&h);
    assert_eq!(stopped["state"], "stopped", "{stopped:#}");
    assert_ne!(state_of(&stopped, &h.gate()), "running", "{stopped:#}");
    assert!(
        stopped["hint"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("bottle start {}", h.slug))),
        "{stopped:#}"
    );
    let text = expect_ok(run(h.bottle().args(["status", &h.slug])), "bottle status");
    assert!(text.contains(": stopped"), "{text}");

    // exec on the stopped bottle: told apart from the command's failure.
    let out = run(h.bottle().args(["exec", &h.slug, "-T", "--", "true"]));
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(said(&out).contains("did not run"), "{}", show(&out));

    // The networks are kept.
    let networks = h.engine_ok(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=bottle.slug={}", h.slug),
    ]);
    assert_eq!(
        networks.lines().count(),
        2,
        "networks after stop:\n{networks}"
    );

    let start = expect_ok(run(h.bottle().args(["start", &h.slug])), "bottle start");
    assert!(
        start.contains(&format!("started container {}", h.agent())),
        "{start}"
    );
    // The mirror is the one from before the stop: read before any fetch refreshes it.
    assert_eq!(
        h.gate_ref(&head).as_deref(),
        Some(mirror_before.as_str()),
        "the gate's mirror after stop and start"
    );
    restart_fixture(&h);
    let running = status(&h);
    assert_eq!(running["state"], "running", "{running:#}");
    let mirror = running["mirrors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["repo"] == REPO)
        .unwrap_or_else(|| panic!("no mirror {REPO} in bottle status:\n{running:#}"));
    assert!(mirror["last_refresh"].is_string(), "{running:#}");

    // A fetch brings what the upstream got while the bottle was stopped.
    let news = commit_upstream(
        &h,
        "WHILE_STOPPED",
        "committed while the bottle was stopped",
    );
    let fetched = h.agent_ok(&format!(
        "cd push-clean && git fetch -q origin && git rev-parse origin/{branch}"
    ));
    assert_eq!(fetched, news, "the fetch after start");
    clone_matches(&h);

    // The gate's own output: its entrypoint served once per start.
    // (Its standard error, where the entrypoint speaks, goes to ours.)
    let out = run(h.bottle().args(["logs", &h.slug, "--container", "gate"]));
    assert!(out.status.success(), "{}", show(&out));
    let gate_log = said(&out);
    assert!(
        gate_log.contains("\"reason\":\"refreshed\""),
        "the gate's audit lines are its standard output:\n{gate_log}"
    );
    assert_eq!(
        gate_log.matches("bottle-gate: serving").count(),
        2,
        "the gate's output:\n{gate_log}"
    );
    let nope = run(h.bottle().args(["logs", &h.slug, "--container", "nope"]));
    assert_eq!(nope.status.code(), Some(1), "{}", show(&nope));
    assert!(
        said(&nope).contains("no nope container") && said(&nope).contains("gate"),
        "{}",
        show(&nope)
    );
}

/// 21. The engine restarted (simulated as issue 14 says: every container of the bottle
///     stopped with the engine's own CLI, behind bottle's back): `bottle status` says the
///     bottle is stopped and how to start it; `bottle up` resumes it (no "leftovers"), a
///     clone works afterwards, and another `up` says it is up already.
pub fn up_resumes_a_bottle_the_engine_stopped(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("resume")) else {
        return;
    };
    clone_matches(&h);
    let ids = h.engine_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=bottle.slug={}", h.slug),
    ]);
    let mut stop = vec!["stop"];
    stop.extend(ids.lines());
    assert!(stop.len() >= 4, "the gate, agent and fixture: {ids}");
    h.engine_ok(&stop);

    let stopped = status(&h);
    assert_eq!(stopped["state"], "stopped", "{stopped:#}");
    let text = expect_ok(run(h.bottle().args(["status", &h.slug])), "bottle status");
    assert!(
        text.contains(": stopped") && text.contains(&format!("bottle up {}", h.slug)),
        "{text}"
    );

    // Partly running (the engine brought one back): still resumable.
    h.engine_ok(&["start", &h.gate()]);
    let partly = status(&h);
    assert_eq!(partly["state"], "partly-running", "{partly:#}");

    let up = run(h.bottle().args(["up", &h.slug]));
    assert!(
        up.status.success(),
        "bottle up over the stopped bottle\n{}",
        show(&up)
    );
    assert!(
        said(&up).contains("started") && said(&up).contains(&h.agent()),
        "{}",
        show(&up)
    );
    // The engine may have given the gate another address (podman does): the agent's host
    // entry follows it.
    let resolved = h.agent_ok(&format!("getent hosts {}", h.gate()));
    let address = h.address(&h.gate(), &h.name("internal"));
    assert_eq!(
        resolved.split_whitespace().next(),
        Some(address.as_str()),
        "the agent's entry for the gate after the resume: {resolved}"
    );
    restart_fixture(&h);
    assert_eq!(status(&h)["state"], "running");
    clone_in_agent(&h, "after-resume");
    clone_matches(&h);

    let again = run(h.bottle().args(["up", &h.slug]));
    assert!(again.status.success(), "{}", show(&again));
    assert!(said(&again).contains("up already"), "{}", show(&again));
}
