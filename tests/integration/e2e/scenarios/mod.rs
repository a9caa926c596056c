//! The scenarios, written once for every engine.
//!
//! Each `pub fn NAME(engine)` is one `#[test]` per engine (see `suite!` in the parent
//! module). The checks themselves are functions taking a [`Harness`] (`clone_matches`,
//! `clean_push_arrives`, ...), so a scenario can run them on a bottle made another way:
//! [`the_dry_run_script_makes_a_working_bottle`] runs them on a bottle created by the script
//! `bottle --dry-run up` prints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output};
use std::time::Instant;

use bottle_core::quote;

use super::harness::{
    expect_ok, run, run_limited, said, show, Harness, Options, Via, COMMAND_LIMIT, REPO,
};
use super::Engine;

mod cred;
mod faults;
mod host;
mod hostenv;
mod lifecycle;
mod projects;
pub use cred::{a_route_adds_the_key_outside_the_agent, claude_code_works_in_a_bottle};
pub use faults::{
    a_full_gate_disk_refuses_the_push_and_keeps_serving,
    a_gate_container_killed_mid_push_comes_back_with_start,
    a_gate_killed_in_the_middle_of_a_push_forwards_nothing,
    a_killed_gate_restarts_and_serves_again, a_push_bigger_than_the_gates_memory_is_all_or_nothing,
    an_upstream_that_stops_answering_fails_push_and_clone_cleanly,
    twenty_clones_and_five_pushes_at_once, two_shells_pushing_one_branch_one_wins_each_round,
};
pub use host::{the_agent_reaches_nothing_on_the_host, the_gate_listens_only_where_the_agent_is};
pub use hostenv::host_env_values_reach_the_agent_and_are_never_printed;
pub use lifecycle::{stop_and_start_keep_the_mirror, up_resumes_a_bottle_the_engine_stopped};
pub use projects::two_projects_with_one_bottle_name_keep_apart;

/// An AWS access key id of the shape gitleaks' `aws-access-token` rule looks for.
const AWS_KEY: &str = "AKIAQYLPMN5HHHFPZAM2";

// ---------------------------------------------------------------------------------------
// Scenarios.

/// 1. Inside the agent, `git clone <the real upstream URL>` goes through the gate and gets
///    the upstream's state; `bottle ps --json` lists the bottle as running.
pub fn clone_matches_upstream(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("clone")) else {
        return;
    };
    ps_lists_the_bottle(&h);
    clone_matches(&h);
    // The gate really talked to the upstream over ssh (the check the no-host-key scenario
    // relies on to show the opposite).
    assert!(
        fixture_connections(&h) > 0,
        "the fixture's sshd logged no connection although the gate fetched from it:\n{}",
        fixture_log(&h)
    );
}

/// 2. A commit made upstream is seen by the agent's next fetch.
pub fn upstream_commit_is_seen_by_the_next_fetch(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("fetch")) else {
        return;
    };
    let dir = "fetch-check";
    clone_in_agent(&h, dir);
    let before = h.agent_ok(&format!("git -C {dir} rev-parse HEAD"));
    let new = commit_upstream(&h, "NEWS", "news from upstream");
    assert_ne!(new, before, "the upstream commit did not change the branch");
    h.agent_ok(&format!("git -C {dir} fetch -q origin"));
    let branch = h.opts.default_branch;
    let seen = h.agent_ok(&format!(
        "git -C {dir} rev-parse refs/remotes/origin/{branch}"
    ));
    assert_eq!(
        seen, new,
        "the agent's fetch did not bring the upstream's new commit"
    );
    let news = h.agent_ok(&format!("git -C {dir} show origin/{branch}:NEWS"));
    assert_eq!(news, "news from upstream");
}

/// 3. A clean push arrives upstream, and the gate's ref follows.
pub fn clean_push_arrives_upstream(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("push")) else {
        return;
    };
    clean_push_arrives(&h);
}

/// 4. Pushes holding (a) an AWS access key, (b) a private key are rejected with gitleaks'
///    finding; neither the upstream's ref nor the gate's moves.
pub fn pushes_holding_secrets_are_rejected(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("secret")) else {
        return;
    };
    secret_pushes_rejected(&h);
    // The gate's verdicts are in the bottle's audit log (its output, through the engine's
    // logs), with the rule and never the secret; the copy to the output may take a moment.
    let logs = super::harness::poll(
        std::time::Duration::from_secs(10),
        "the gate's verdict in bottle logs",
        || {
            let out = said(&run(h
                .bottle()
                .args(["logs", "--denied", "--json", &h.slug])));
            if out.contains("\"source\":\"gate\"") && out.contains("secret-found") {
                Ok(out)
            } else {
                Err(out)
            }
        },
    );
    assert!(logs.contains("aws-access-token"), "{logs}");
    assert!(
        !logs.contains(AWS_KEY),
        "the secret is in the audit log:\n{logs}"
    );
}

/// 5. One push of two refs, one of them holding a secret, forwards nothing.
pub fn a_push_of_two_refs_with_one_secret_forwards_nothing(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("tworefs")) else {
        return;
    };
    let dir = "push-two";
    clone_in_agent(&h, dir);
    let branch = h.opts.default_branch;
    let main_ref = format!("refs/heads/{branch}");
    let upstream_before = h.upstream_ref(&main_ref);
    h.agent_ok(&format!(
        "set -e; cd {dir}
         git checkout -q -b clean-e2e
         echo 'nothing secret' >clean.txt; git add clean.txt; git commit -qm 'clean work'
         git checkout -q -b dirty-e2e {branch}
         echo 'key = {AWS_KEY}' >aws.txt; git add aws.txt; git commit -qm 'dirty work'"
    ));
    let out = h.agent_sh(&format!("git -C {dir} push origin clean-e2e dirty-e2e"));
    let text = said(&out);
    assert!(
        !out.status.success(),
        "a push holding a secret succeeded\n{}",
        show(&out)
    );
    assert!(
        text.contains("aws-access-token") && text.contains("aws.txt"),
        "gitleaks' finding is not shown\n{}",
        show(&out)
    );
    assert!(
        text.contains("[remote rejected] clean-e2e"),
        "the clean ref was not rejected with the other\n{}",
        show(&out)
    );
    for b in ["clean-e2e", "dirty-e2e"] {
        let r = format!("refs/heads/{b}");
        assert_eq!(h.upstream_ref(&r), None, "{b} reached the upstream");
        assert_eq!(h.gate_ref(&r), None, "{b} exists on the gate");
    }
    assert_eq!(h.upstream_ref(&main_ref), upstream_before, "upstream moved");

    // Control: the clean ref alone goes through, so the refusal was the secret's doing.
    let out = h.agent_sh(&format!("git -C {dir} push origin clean-e2e"));
    assert!(
        out.status.success(),
        "the clean ref alone was refused\n{}",
        show(&out)
    );
    let clean = h.agent_ok(&format!("git -C {dir} rev-parse clean-e2e"));
    assert_eq!(h.upstream_ref("refs/heads/clean-e2e"), Some(clean));
}

/// 17. What a log scan never saw is refused on every engine, and the same shapes without a
///     secret go through: a secret only in a merge's conflict resolution, in a commit
///     message, in a tag message, and in a blob a ref points at directly. Nothing moves
///     upstream or on the gate while refused.
pub fn secrets_outside_diffs_are_refused(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("scan")) else {
        return;
    };
    let dir = "push-scan";
    clone_in_agent(&h, dir);
    let branch = h.opts.default_branch;
    let main_ref = format!("refs/heads/{branch}");

    // A merge whose resolution alone holds the key.
    h.agent_ok(&format!(
        "set -e; cd {dir}
         printf 'mode = base\\n' >app.cfg; git add app.cfg; git commit -qm base
         git push -q origin {branch}
         git checkout -q -b side-e2e; printf 'mode = side\\n' >app.cfg; git commit -qam side
         git checkout -q {branch}; printf 'mode = main\\n' >app.cfg; git commit -qam main
         if git merge -q --no-commit side-e2e; then echo 'no conflict' >&2; exit 1; fi
         printf 'key = {AWS_KEY}\\n' >app.cfg; git add app.cfg; git commit -qm 'merge side'"
    ));
    let merge = h.agent_ok(&format!("git -C {dir} rev-parse HEAD"));
    scan_refuses(
        &h,
        dir,
        branch,
        &[&main_ref],
        &["aws-access-token", "\"app.cfg\"", &merge[..12]],
    );
    h.agent_ok(&format!(
        "set -e; cd {dir}; printf 'mode = both\\n' >app.cfg; git add app.cfg
         git commit -q --amend --no-edit; git rev-parse HEAD^2 >/dev/null"
    ));
    scan_accepts(&h, dir, branch, &main_ref);

    // A commit message.
    h.agent_ok(&format!(
        "cd {dir} && git commit -q --allow-empty -m deploy -m 'the key is {AWS_KEY}'"
    ));
    scan_refuses(
        &h,
        dir,
        branch,
        &[&main_ref],
        &["aws-access-token", "the message of commit"],
    );
    h.agent_ok(&format!(
        "cd {dir} && git commit -q --amend --allow-empty -m deploy -m 'the key is in the vault'"
    ));
    scan_accepts(&h, dir, branch, &main_ref);

    // A tag message.
    let tag = "refs/tags/v1-e2e";
    h.agent_ok(&format!(
        "cd {dir} && git tag -a v1-e2e -m release -m 'key {AWS_KEY}'"
    ));
    scan_refuses(
        &h,
        dir,
        tag,
        &[tag, &main_ref],
        &["aws-access-token", "the message of tag \"v1-e2e\""],
    );
    h.agent_ok(&format!(
        "cd {dir} && git tag -f -a v1-e2e -m 'release 1' >/dev/null"
    ));
    scan_accepts(&h, dir, tag, tag);

    // A ref pointing straight at a blob.
    let blob_ref = "refs/tags/blob-e2e";
    let blob = h.agent_ok(&format!(
        "cd {dir} && printf 'key = {AWS_KEY}\\n' >loose && git hash-object -w loose"
    ));
    scan_refuses(
        &h,
        dir,
        &format!("{blob}:{blob_ref}"),
        &[blob_ref, &main_ref],
        &[
            "aws-access-token",
            "pointed at directly by refs/tags/blob-e2e",
        ],
    );
    let blob = h.agent_ok(&format!(
        "cd {dir} && printf 'nothing to see\\n' >loose && git hash-object -w loose"
    ));
    let out = h.agent_sh(&format!("git -C {dir} push origin {blob}:{blob_ref}"));
    assert!(
        out.status.success(),
        "the clean blob ref was refused\n{}",
        show(&out)
    );
    assert_eq!(h.upstream_ref(blob_ref), Some(blob.clone()));
    assert_eq!(h.gate_ref(blob_ref), Some(blob));
}

/// 6. With the upstream stopped, fetch fails saying the upstream is unreachable, and no
///    stale data is served: a fresh clone fails too.
pub fn a_stopped_upstream_fails_fetch_and_clone(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("stopped")) else {
        return;
    };
    let dir = "stale-check";
    clone_in_agent(&h, dir);
    let branch = h.opts.default_branch;
    assert!(
        h.gate_ref(&format!("refs/heads/{branch}")).is_some(),
        "the gate's mirror holds nothing, so there is no stale data it could serve"
    );
    h.stop_fixture();

    let out = h.agent_sh(&format!("git -C {dir} fetch origin"));
    assert_unreachable(&h, &out, "fetch");
    let out = h.agent_sh(&format!("rm -rf fresh; git clone {} fresh", sh(&h.url)));
    assert_unreachable(&h, &out, "clone");
    let leftover = h.agent_sh("test -e fresh");
    assert!(
        !leftover.status.success(),
        "the failed clone left a directory behind"
    );
    let out = h.agent_sh(&format!("git ls-remote {}", sh(&h.url)));
    assert_unreachable(&h, &out, "ls-remote");

    // A push is refused too (its forward cannot reach the upstream), and the gate's ref
    // does not move.
    let gate_before = h.gate_ref(&format!("refs/heads/{branch}"));
    let out = h.agent_sh(&format!(
        "set -e; cd {dir}
         echo 'while the upstream is down' >down.txt; git add down.txt; git commit -qm 'down'
         git push origin {branch}"
    ));
    assert!(
        !out.status.success(),
        "a push succeeded with the upstream stopped\n{}",
        show(&out)
    );
    assert!(
        said(&out).contains("refused the push or could not be reached"),
        "the refused push does not say why\n{}",
        show(&out)
    );
    assert_eq!(
        h.gate_ref(&format!("refs/heads/{branch}")),
        gate_before,
        "the gate's {branch} moved although nothing reached the upstream"
    );
}

/// 6b. A push is not preceded by a refresh: when the upstream moved since the gate last
///     saw it, the forward's lease makes the upstream refuse the push, the agent is told to
///     fetch and rebase, and nothing is overwritten; after a fetch and a rebase the push
///     goes through.
pub fn a_push_over_an_upstream_that_moved_is_refused_then_rebased(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("moved")) else {
        return;
    };
    let dir = "moved-check";
    clone_in_agent(&h, dir);
    let branch = h.opts.default_branch;
    let r = format!("refs/heads/{branch}");
    let theirs = commit_upstream(&h, "THEIRS", "someone else's work");
    let out = h.agent_sh(&format!(
        "set -e; cd {dir}
         echo 'the agent, meanwhile' >mine.txt; git add mine.txt; git commit -qm 'mine'
         git push origin {branch}"
    ));
    assert!(
        !out.status.success(),
        "a push over an upstream that moved succeeded\n{}",
        show(&out)
    );
    assert!(
        said(&out).contains("if the upstream moved, fetch, rebase and push again"),
        "the refused push does not say what to do\n{}",
        show(&out)
    );
    assert_eq!(
        h.upstream_ref(&r),
        Some(theirs.clone()),
        "the upstream's work was overwritten"
    );
    h.agent_ok(&format!(
        "set -e; cd {dir}; git fetch -q origin; git rebase -q origin/{branch}; git push -q origin {branch}"
    ));
    let head = h.agent_ok(&format!("git -C {dir} rev-parse HEAD"));
    assert_eq!(h.upstream_ref(&r), Some(head.clone()), "after the rebase");
    let parent = h.agent_ok(&format!("git -C {dir} rev-parse HEAD~1"));
    assert_eq!(
        parent, theirs,
        "the rebased push does not build on the upstream's work"
    );
}

/// 7a. An upstream whose default branch is `main` clones onto `main`.
pub fn clone_follows_default_branch_main(engine: &'static Engine) {
    clone_follows_default_branch(engine, "brmain", "main", &[]);
}

/// 7b. An upstream whose default branch is `trunk` (and which also has a `main`) clones
///     onto `trunk`: the gate follows the upstream's HEAD, not a default of its own.
pub fn clone_follows_default_branch_trunk(engine: &'static Engine) {
    clone_follows_default_branch(engine, "brtrunk", "trunk", &["main"]);
}

/// 7c. The same with a `master` branch beside `trunk`: `master` is the gate's own initial
///     HEAD (git 2.39 without init.defaultBranch), which resolves once fetched, so a gate
///     that only repointed an unresolvable HEAD would serve `master`.
pub fn clone_follows_default_branch_trunk_beside_master(engine: &'static Engine) {
    clone_follows_default_branch(engine, "brmaster", "trunk", &["main", "master"]);
}

/// 8. Without `known_host_key`, clone, fetch and push are refused with a message saying
///    what to add, and the gate never contacts the upstream.
pub fn without_a_host_key_fetch_and_push_are_refused(engine: &'static Engine) {
    let mut opts = Options::new("nokey");
    opts.pin_host_key = false;
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    let main_ref = format!("refs/heads/{}", h.opts.default_branch);
    let upstream_before = h.upstream_ref(&main_ref);
    assert!(upstream_before.is_some(), "the fixture has no {main_ref}");
    let url = sh(&h.url);

    let clone = h.agent_sh(&format!("git clone {url} c"));
    let fetch = h.agent_sh(&format!(
        "git init -q f && git -C f fetch {url} refs/heads/*:refs/remotes/up/*"
    ));
    let push = h.agent_sh(&format!(
        "set -e; git init -q -b main local; cd local
         echo a >a; git add a; git commit -qm a
         git push {url} main"
    ));
    for (what, out) in [("clone", &clone), ("fetch", &fetch), ("push", &push)] {
        assert!(
            !out.status.success(),
            "{what} without a pinned host key succeeded\n{}",
            show(out)
        );
        assert!(
            said(out).contains("known_host_key"),
            "the refused {what} does not say to add known_host_key\n{}",
            show(out)
        );
    }
    assert_eq!(h.upstream_ref(&main_ref), upstream_before, "upstream moved");
    assert_eq!(
        fixture_connections(&h),
        0,
        "the gate connected to an upstream whose host key is not pinned:\n{}",
        fixture_log(&h)
    );
}

/// 9. The identity key's bytes are nowhere in the agent (files, environment, engine
///    metadata) and are in the gate, where the plan puts them.
pub fn the_identity_key_is_only_in_the_gate(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("key")) else {
        return;
    };
    let key = std::fs::read_to_string(&h.identity_file).expect("identity file");
    // The base64 lines of the key. The first is the same in every unencrypted ed25519 key
    // (format name, cipher "none"), the last is short: the full lines after the first hold
    // the key's own bytes.
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let needles: Vec<String> = body
        .iter()
        .skip(1)
        .filter(|l| l.len() >= 60)
        .map(|l| (*l).to_owned())
        .collect();
    assert!(
        needles.len() >= 2,
        "unexpected key layout; no distinctive lines in:\n{}",
        body.len()
    );
    let whole = expect_ok(
        run(Command::new("base64").arg("-w0").arg(&h.identity_file)),
        "base64 of the key",
    );
    let mut all = needles.clone();
    all.push(whole.clone());

    // The gate holds it, owned by the gate's user, readable by it alone, and the search
    // used on the agent below finds it there.
    let gate = h.gate();
    let creds = format!("/etc/bottle-gate/creds/{REPO}.key");
    let mode = h.engine_ok(&["exec", &gate, "stat", "-c", "%a %u %g", &creds]);
    assert_eq!(
        mode, "400 10001 10001",
        "mode and owner of {creds} in the gate"
    );
    let held = expect_ok(
        h.engine(&["exec", &gate, "cat", &creds]),
        "read the gate's key",
    );
    assert_eq!(held.trim(), key.trim(), "{creds} is not the identity key");
    let found = grep_inside(&h, &gate, None, &needles);
    assert!(
        found.contains(&creds),
        "grep inside the gate does not find {creds}:\n{found}"
    );

    // The agent's files: its whole filesystem as the engine exports it (every file, whatever
    // its owner and mode: root in the agent has no capability to read others' files), then
    // from inside, as root and as the agent, what an export leaves out (mounted files, the
    // main process's environment and command line).
    let agent = h.agent();
    let rewrite = format!("git://{gate}/{REPO}.git");
    // The three scans are independent (and slow): run them at once.
    let ((seen, in_agent), as_root, as_agent) = std::thread::scope(|s| {
        let exported = s.spawn(|| {
            let tar = export(&h, &agent);
            // Control: the scan sees the agent's files (its /etc/gitconfig names the gate).
            let seen = count_lines(&h, &tar, std::slice::from_ref(&rewrite));
            let in_agent = count_lines(&h, &tar, &needles);
            let _ = std::fs::remove_file(&tar);
            (seen, in_agent)
        });
        let as_root = s.spawn(|| grep_inside(&h, &agent, Some("0"), &needles));
        let as_agent = s.spawn(|| grep_inside(&h, &agent, None, &needles));
        (join(exported), join(as_root), join(as_agent))
    });
    assert!(
        seen > 0,
        "the scan of the agent's export does not find {rewrite} (/etc/gitconfig)"
    );
    assert_eq!(
        in_agent,
        0,
        "{in_agent} line(s) of the identity key {key} in the agent's filesystem \
         (look with BOTTLE_TEST_KEEP=1: {cli} export {agent} | grep -aF -f <its lines>)",
        key = h.identity_file.display(),
        cli = h.engine.cli
    );
    for (user, found) in [("root", as_root), ("agent", as_agent)] {
        assert!(
            found.is_empty(),
            "the identity key is in the agent's files (searched as {user}):\n{found}"
        );
    }

    // Its environment, as `bottle exec` and the engine's exec see it.
    let env_exec = h.agent_ok("env");
    let env_engine = h.engine_ok(&["exec", &agent, "env"]);
    // Its engine metadata: the whole inspect output (env, labels, command, mounts).
    let inspect = h.engine_ok(&["inspect", &agent]);
    let parsed: serde_json::Value = serde_json::from_str(&inspect).expect("inspect is JSON");
    let config_env = parsed[0]["Config"]["Env"].to_string();
    assert!(
        parsed[0]["Config"]["Env"].is_array(),
        "no Config.Env in the agent's inspect output"
    );
    for (what, text) in [
        ("environment (bottle exec env)", &env_exec),
        ("environment (engine exec env)", &env_engine),
        ("Config.Env", &config_env),
        ("inspect output", &inspect),
    ] {
        for needle in &all {
            assert!(
                !text.contains(needle.as_str()),
                "the identity key is in the agent's {what}"
            );
        }
    }
}

/// 10. The agent reaches the gate and nothing else: not the upstream by name or address, not
///     the gate's egress address, not an outside name; its network is internal.
///
/// The agent finds the gate through its /etc/hosts. Where the engine's DNS may forward
/// unknown names out of an internal network ([`Engine::internal_dns_forwards`]: podman's
/// aardvark-dns 1.4), the agent is never asked to resolve another name (were the bottle
/// wrong, the query would leave the machine): [`internal_network_has_no_resolver`] checks
/// instead, without traffic, that the internal network has no DNS and that the agent can
/// route to no resolver.
pub fn the_agent_reaches_nothing_but_the_gate(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("net")) else {
        return;
    };
    let internal = h.name("internal");
    let egress = h.name("egress");
    for (network, want) in [(&internal, true), (&egress, false)] {
        let out = h.engine_ok(&["network", "inspect", network]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("network inspect is JSON");
        let flag = v[0]
            .get("Internal")
            .or_else(|| v[0].get("internal"))
            .and_then(|f| f.as_bool())
            .unwrap_or(false);
        assert_eq!(flag, want, "network {network}: internal flag\n{out}");
    }
    let networks = |container: &str| -> serde_json::Value {
        let out = h.engine_ok(&["inspect", container]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
        v[0]["NetworkSettings"]["Networks"].clone()
    };
    let agent_networks: Vec<String> = networks(&h.agent())
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        agent_networks,
        vec![internal.clone()],
        "the agent's networks"
    );
    let ip = |container: &str, network: &str| -> String {
        let ip = networks(container)[network]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!ip.is_empty(), "{container} has no address on {network}");
        ip
    };
    let fixture_ip = ip(&h.fixture(), &egress);
    let gate_egress_ip = ip(&h.gate(), &egress);
    let gate_internal_ip = ip(&h.gate(), &internal);

    the_gate_is_in_the_agents_hosts_file(&h, &gate_internal_ip);
    let resolve = |name: &str| {
        h.agent_sh(&format!(
            "RES_OPTIONS='timeout:1 attempts:1' getent hosts {name}"
        ))
    };
    let connect =
        |ip: &str, port: u16| h.agent_sh(&format!("timeout 3 bash -c '</dev/tcp/{ip}/{port}'"));
    let gate_name = h.gate();
    let fixture_name = h.fixture();
    // (what, expected to work, result): all probes at once, each bounded by 3 s.
    let results: Vec<(String, bool, Output)> = std::thread::scope(|s| {
        let mut probes: Vec<(String, bool, std::thread::ScopedJoinHandle<'_, Output>)> = vec![
            (
                format!("resolve the gate {gate_name}"),
                true,
                s.spawn(|| resolve(&gate_name)),
            ),
            (
                format!("connect to the gate {gate_internal_ip}:9418 on {internal}"),
                true,
                s.spawn(|| connect(&gate_internal_ip, 9418)),
            ),
            (
                format!("connect to the upstream {fixture_ip}:22"),
                false,
                s.spawn(|| connect(&fixture_ip, 22)),
            ),
            (
                format!("connect to the gate's egress address {gate_egress_ip}:9418"),
                false,
                s.spawn(|| connect(&gate_egress_ip, 9418)),
            ),
        ];
        if !engine.internal_dns_forwards {
            probes.extend([
                (
                    format!("resolve the upstream {fixture_name}"),
                    false,
                    s.spawn(|| resolve(&fixture_name)),
                ),
                (
                    "resolve example.com".to_owned(),
                    false,
                    s.spawn(|| resolve("example.com")),
                ),
            ]);
        }
        probes
            .into_iter()
            .map(|(what, want, handle)| (what, want, join(handle)))
            .collect()
    });
    for (what, want, out) in &results {
        assert_eq!(
            out.status.success(),
            *want,
            "from the agent: {what}: expected {}\n{}",
            if *want { "success" } else { "failure" },
            show(out)
        );
    }
    if engine.internal_dns_forwards {
        internal_network_has_no_resolver(&h);
    }
    // Control: the upstream listens, for the gate, at the address the agent cannot reach.
    let probe = format!("</dev/tcp/{fixture_ip}/22");
    h.engine_ok(&["exec", &h.gate(), "timeout", "3", "bash", "-c", &probe]);
}

/// The agent's routes (network, prefix length) on any interface but loopback, IPv4 and IPv6,
/// as its kernel has them (/proc/net/route, /proc/net/ipv6_route).
fn agent_routes(h: &Harness) -> Vec<(IpAddr, u8)> {
    let v4 = h.agent_ok("cat /proc/net/route");
    let v6 = h.agent_ok("cat /proc/net/ipv6_route 2>/dev/null || :");
    let mut routes = Vec::new();
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses as the kernel's
    // in-memory words in hex (network byte order in memory, so native-endian words here).
    for line in v4.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let word = |s: &str| u32::from_str_radix(s, 16).expect("a hex word in /proc/net/route");
        if f.len() < 8 || f[0] == "lo" {
            continue;
        }
        let net = Ipv4Addr::from(word(f[1]).to_ne_bytes());
        routes.push((IpAddr::V4(net), word(f[7]).count_ones() as u8));
    }
    // Destination PrefixLen Source SourcePrefixLen NextHop Metric RefCnt Use Flags Iface.
    for line in v6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[9] == "lo" {
            continue;
        }
        let net = u128::from_str_radix(f[0], 16).expect("a hex address in ipv6_route");
        let len = u8::from_str_radix(f[1], 16).expect("a hex prefix length in ipv6_route");
        routes.push((IpAddr::V6(Ipv6Addr::from(net)), len));
    }
    routes
}

/// Whether `addr` is in one of `routes` (or is loopback): the agent could send to it.
fn routable(addr: IpAddr, routes: &[(IpAddr, u8)]) -> bool {
    addr.is_loopback()
        || routes.iter().any(|(net, len)| match (net, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(a) & mask
            }
            _ => false,
        })
}

/// For an engine whose DNS may forward names from an internal network: the bottle gives the
/// agent no resolver it can reach, checked without a single query.
///
/// - The internal network has no DNS at all (`dns_enabled` false), so no aardvark-dns
///   listens where the agent could ask it (aardvark-dns before 1.11 forwards names it does
///   not know to the host's resolvers: containers/aardvark-dns#447).
/// - None of the resolvers podman writes into the agent's /etc/resolv.conf (the host's) is
///   routable from the agent: a lookup of another name fails inside the agent.
/// - The agent resolved the gate through its /etc/hosts (checked for every engine by
///   [`the_gate_is_in_the_agents_hosts_file`]).
fn internal_network_has_no_resolver(h: &Harness) {
    let internal = h.name("internal");
    let out = h.engine_ok(&["network", "inspect", &internal]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("network inspect is JSON");
    assert_eq!(
        v[0]["dns_enabled"].as_bool(),
        Some(false),
        "the internal network {internal} serves DNS, which may relay the agent's lookups out\n{out}"
    );
    let resolv = h.agent_ok("cat /etc/resolv.conf");
    let servers: Vec<IpAddr> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    let routes = agent_routes(h);
    for server in &servers {
        assert!(
            !routable(*server, &routes),
            "the agent can reach the resolver {server} (routes {routes:?}):\n{resolv}"
        );
    }
}

/// The agent's /etc/hosts maps the gate's name to the gate's address on the internal
/// network: the agent needs no resolver to find its gate.
fn the_gate_is_in_the_agents_hosts_file(h: &Harness, gate_internal_ip: &str) {
    let hosts = h.agent_ok("cat /etc/hosts");
    let gate = h.gate();
    assert!(
        hosts.lines().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(gate_internal_ip) && words.any(|w| w == gate)
        }),
        "the agent's /etc/hosts does not map {gate} to {gate_internal_ip}:\n{hosts}"
    );
}

/// 11. A leftover of an earlier run makes `bottle up` fail fast, creating nothing and
///     naming `bottle cleanup`; after `bottle cleanup <slug>`, `bottle up` works.
pub fn leftovers_make_up_fail_fast_until_cleanup(engine: &'static Engine) {
    let Some(h) = Harness::prepare(engine, Options::new("leftover")) else {
        return;
    };
    let slug_label = format!("bottle.slug={}", h.slug);
    let (gate, egress) = (h.gate(), h.name("egress"));
    h.engine_ok(&[
        "create",
        "--pull",
        "never",
        "--name",
        &gate,
        "--label",
        &slug_label,
        "--label",
        "bottle.managed=3",
        "--label",
        "bottle.role=gate",
        "bottle-agent:latest",
    ]);
    h.engine_ok(&[
        "network",
        "create",
        "--label",
        &slug_label,
        "--label",
        "bottle.managed=3",
        "--label",
        "bottle.role=egress",
        &egress,
    ]);

    let started = Instant::now();
    let out = run(h.bottle().args(["up", &h.slug]));
    let failed_in = started.elapsed();
    let text = said(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "up over leftovers\n{}",
        show(&out)
    );
    for want in [
        "leftovers".to_owned(),
        format!("container {gate}"),
        format!("network {egress}"),
        format!("bottle cleanup {}", h.slug),
    ] {
        assert!(
            text.contains(&want),
            "the error does not say {want:?}\n{}",
            show(&out)
        );
    }
    assert!(
        failed_in.as_secs() < 10,
        "up over leftovers took {failed_in:?} to fail"
    );
    for list in [labelled as Lister, named] {
        assert_eq!(
            list(&h, "container"),
            [gate.as_str()],
            "containers after the failed up"
        );
        assert_eq!(
            list(&h, "network"),
            [egress.as_str()],
            "networks after the failed up"
        );
    }

    let out = run(h.bottle().args(["cleanup", &h.slug]));
    let text = expect_ok(out, "bottle cleanup");
    for want in [
        format!("removed container {gate}"),
        format!("removed network {egress}"),
    ] {
        assert!(
            text.contains(&want),
            "cleanup does not say {want:?}:\n{text}"
        );
    }
    for list in [labelled as Lister, named] {
        assert!(
            list(&h, "container").is_empty() && list(&h, "network").is_empty(),
            "cleanup left something: {:?} {:?}",
            list(&h, "container"),
            list(&h, "network")
        );
    }

    let started = Instant::now();
    expect_ok(
        run(h.bottle().args(["up", &h.slug])),
        "bottle up after cleanup",
    );
    let up_in = started.elapsed();
    eprintln!(
        "{}: up over leftovers failed in {failed_in:?}; a clean up took {up_in:?}",
        h.slug
    );
    assert!(
        failed_in < up_in,
        "up over leftovers ({failed_in:?}) was not faster than a real up ({up_in:?}): it did not fail fast"
    );
    h.start_fixture();
    h.wait_ready();
    ps_lists_the_bottle(&h);
}

/// 12. After `bottle down` nothing of the bottle remains (the fixture labelled with its
///     slug included); `bottle down` again succeeds.
pub fn down_removes_everything_and_is_idempotent(engine: &'static Engine) {
    let Some(h) = Harness::start(engine, Options::new("down")) else {
        return;
    };
    assert_eq!(
        labelled(&h, "container").len(),
        4,
        "gate, proxy, agent and fixture before down"
    );
    // The sidecars' roots are read-only; what they may write are volumes of their own (the
    // gate's config, mirrors, home and /tmp; the proxy's config), which go with them.
    let volumes = h.engine_ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
        &h.gate(),
        &h.name("proxy"),
    ]);
    let volumes: Vec<&str> = volumes.split_whitespace().collect();
    assert_eq!(volumes.len(), 5, "the sidecars' volumes: {volumes:?}");
    for (container, path) in [(h.gate(), "/usr/local/bin/x"), (h.name("proxy"), "/etc/x")] {
        let write = h.engine(&["exec", &container, "sh", "-c", &format!("echo x >{path}")]);
        assert!(
            !write.status.success() && said(&write).contains("Read-only file system"),
            "{container} wrote {path}\n{}",
            show(&write)
        );
    }
    expect_ok(run(h.bottle().args(["down", &h.slug])), "bottle down");
    let left = h.engine_ok(&["volume", "ls", "-q"]);
    for v in &volumes {
        assert!(
            !left.lines().any(|l| l.trim() == *v),
            "down left volume {v}"
        );
    }
    for (how, list) in [("labelled", labelled as Lister), ("named", named)] {
        assert_eq!(
            list(&h, "container"),
            [""; 0],
            "containers ({how}) left by down"
        );
        assert_eq!(
            list(&h, "network"),
            [""; 0],
            "networks ({how}) left by down"
        );
    }
    expect_ok(
        run(h.bottle().args(["down", &h.slug])),
        "a second bottle down",
    );
    let ps = expect_ok(run(h.bottle().args(["ps", "--json"])), "bottle ps --json");
    let v: serde_json::Value = serde_json::from_str(&ps).expect("ps --json is JSON");
    assert!(
        !v.as_array()
            .expect("a list")
            .iter()
            .any(|b| b["slug"] == h.slug.as_str()),
        "ps still lists the bottle after down:\n{ps}"
    );
}

/// `bottle run`: it brings the bottle up, runs the command in the agent without a terminal
/// (stdin is not one), exits with the command's code and takes down what it brought up, its
/// audit log saved; `--keep` leaves it up; a bottle that was up stays up. SIGTERM ends the
/// command's wait and takes the bottle down too (exit 143).
pub fn run_takes_down_only_what_it_brought_up(engine: &'static Engine) {
    let Some(h) = Harness::prepare(engine, Options::new("run")) else {
        return;
    };
    // A request the egress proxy refuses (by rule: the name is never looked up), so that
    // the audit log has a line to keep.
    let script = format!(
        "curl -s -o /dev/null --max-time 10 http://nowhere.{}.test/ || :; echo \"in the agent as $(id -u)\"; exit 3",
        h.slug
    );
    let out = run(h.bottle().args(["run", &h.slug, "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(3), "bottle run\n{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("in the agent as 1000"),
        "{}",
        show(&out)
    );
    assert!(
        said(&out).contains("saved the audit log"),
        "run's down saves the audit log\n{}",
        show(&out)
    );
    assert_eq!(labelled(&h, "container"), [""; 0], "containers left by run");
    assert_eq!(labelled(&h, "network"), [""; 0], "networks left by run");
    let denied = expect_ok(
        run(h.bottle().args(["logs", "--denied", "--json", &h.slug])),
        "bottle logs --denied --json (the log run's down saved)",
    );
    assert!(
        denied.contains(&format!("nowhere.{}.test", h.slug)),
        "{denied}"
    );

    expect_ok(
        run(h.bottle().args(["run", "--keep", &h.slug, "--", "true"])),
        "bottle run --keep",
    );
    assert!(
        labelled(&h, "container").contains(&h.agent()),
        "run --keep took the bottle down"
    );
    // Up already: run leaves it up, whatever the command's code.
    let out = run(h
        .bottle()
        .args(["run", &h.slug, "--", "sh", "-c", "exit 1"]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        labelled(&h, "container").contains(&h.agent()),
        "run took down a bottle it did not bring up"
    );
    expect_ok(run(h.bottle().args(["down", &h.slug])), "bottle down");

    // A signal to bottle (here, not through the rootless user's runuser) takes it down.
    if engine.rootless {
        return;
    }
    let child = h
        .bottle()
        .args([
            "run",
            &h.slug,
            "--",
            "sh",
            "-c",
            "touch /tmp/run-started; exec sleep 120",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bottle run");
    super::harness::poll(
        std::time::Duration::from_secs(120),
        "the command of bottle run",
        || {
            let got = h.engine(&["exec", &h.agent(), "test", "-e", "/tmp/run-started"]);
            if got.status.success() {
                Ok(())
            } else {
                Err(show(&got))
            }
        },
    );
    let pid = child.id().to_string();
    expect_ok(
        run(Command::new("kill").args(["-TERM", &pid])),
        "kill -TERM bottle",
    );
    let out = child.wait_with_output().expect("bottle run's output");
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
    assert!(
        said(&out).contains("SIGTERM received: taking"),
        "{}",
        show(&out)
    );
    assert_eq!(
        labelled(&h, "container"),
        [""; 0],
        "containers left by run after SIGTERM"
    );
}

/// 13. The script `bottle --dry-run up` prints, run with `sh` against the same engine, makes
///     a bottle that passes scenarios 1, 3 and 4.
pub fn the_dry_run_script_makes_a_working_bottle(engine: &'static Engine) {
    let mut opts = Options::new("script");
    opts.via = Via::DryRunScript;
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    ps_lists_the_bottle(&h);
    clone_matches(&h);
    clean_push_arrives(&h);
    secret_pushes_rejected(&h);
}

/// 16. `bottle doctor`, run as the engine's user, finds this host healthy for the engine:
///     what `scripts/setup-podman.sh` set up (rootful and rootless) is what doctor checks.
pub fn doctor_reports_a_healthy_host(engine: &'static Engine) {
    let Some(h) = Harness::prepare(engine, Options::new("doctor")) else {
        return;
    };
    let out = run(h.bottle_at_home().arg("doctor"));
    let said = show(&out);
    assert!(
        out.status.success(),
        "bottle doctor found this host unhealthy for {}:\n{said}",
        engine.name
    );
    assert!(
        said.contains("healthy: everything this backend needs is in place"),
        "{said}"
    );
    assert!(!said.contains("MISSING"), "{said}");
    if engine.rootless {
        assert!(
            said.contains("rootless"),
            "doctor did not see rootless podman:\n{said}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Checks shared by scenarios.

/// `bottle ps --json` lists the bottle's gate and agent as running, and its networks.
pub fn ps_lists_the_bottle(h: &Harness) {
    let out = expect_ok(run(h.bottle().args(["ps", "--json"])), "bottle ps --json");
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ps --json: {e}\n{out}"));
    let bottle = v
        .as_array()
        .and_then(|l| l.iter().find(|b| b["slug"] == h.slug.as_str()))
        .unwrap_or_else(|| panic!("bottle ps --json does not list {}:\n{out}", h.slug));
    let resources = bottle["resources"].as_array().expect("resources");
    let has = |kind: &str, role: &str, state: &str| {
        resources.iter().any(|r| {
            r["kind"] == kind
                && r["role"] == role
                && r["name"] == h.name(role).as_str()
                && r["state"] == state
        })
    };
    for role in ["gate", "agent"] {
        assert!(
            has("container", role, "running"),
            "ps --json: no running {role}:\n{out}"
        );
    }
    for role in ["internal", "egress"] {
        assert!(
            has("network", role, ""),
            "ps --json: no {role} network:\n{out}"
        );
    }
}

/// Clones the upstream by its real URL in the agent, and checks that the clone is the
/// upstream's default branch at the upstream's commit, reached through the gate.
pub fn clone_matches(h: &Harness) {
    let dir = "clone-check";
    clone_in_agent(h, dir);
    let branch = h.opts.default_branch;
    let upstream = h
        .upstream_ref(&format!("refs/heads/{branch}"))
        .unwrap_or_else(|| panic!("the upstream has no {branch}"));
    let head = h.agent_ok(&format!("git -C {dir} rev-parse HEAD"));
    assert_eq!(
        head, upstream,
        "the agent's clone is not at the upstream's {branch}"
    );
    let on = h.agent_ok(&format!("git -C {dir} symbolic-ref --short HEAD"));
    assert_eq!(
        on, branch,
        "the clone is not on the upstream's default branch"
    );
    let readme = h.agent_ok(&format!("cat {dir}/README.md"));
    assert_eq!(readme, format!("# {REPO}"), "README.md of the clone");
    // The agent used the real URL; its git config sent it to the gate.
    let origin = h.agent_ok(&format!("git -C {dir} config remote.origin.url"));
    assert_eq!(origin, h.url, "the clone's remote URL");
    let effective = h.agent_ok(&format!("git -C {dir} ls-remote --get-url origin"));
    assert_eq!(
        effective,
        format!("git://{}/{REPO}.git", h.gate()),
        "where the URL leads"
    );
    assert_eq!(
        h.gate_ref(&format!("refs/heads/{branch}")),
        Some(upstream),
        "the gate's mirror after the clone"
    );
}

/// A clean commit pushed from the agent arrives upstream; the gate's ref follows.
pub fn clean_push_arrives(h: &Harness) {
    let dir = "push-clean";
    clone_in_agent(h, dir);
    let branch = h.opts.default_branch;
    let out = h.agent_sh(&format!(
        "set -e; cd {dir}
         echo 'work by the agent' >feature.txt; git add feature.txt; git commit -qm 'agent work'
         git push origin {branch}"
    ));
    assert!(out.status.success(), "a clean push failed\n{}", show(&out));
    assert!(
        said(&out).contains("no secrets found"),
        "the push was not scanned\n{}",
        show(&out)
    );
    pushed_head_arrived(h, dir, branch);
}

/// The head of the agent's clone `dir` is `branch` upstream and on the gate.
fn pushed_head_arrived(h: &Harness, dir: &str, branch: &str) {
    let head = h.agent_ok(&format!("git -C {dir} rev-parse HEAD"));
    let r = format!("refs/heads/{branch}");
    assert_eq!(
        h.upstream_ref(&r),
        Some(head.clone()),
        "the upstream's {branch} after the push"
    );
    assert_eq!(
        h.gate_ref(&r),
        Some(head),
        "the gate's {branch} after the push"
    );
}

/// Pushes an AWS key and then a private key; both are rejected with gitleaks' finding.
pub fn secret_pushes_rejected(h: &Harness) {
    let dir = "push-secret";
    clone_in_agent(h, dir);
    assert_secret_push_rejected(
        h,
        dir,
        "config.env",
        format!("AWS_ACCESS_KEY_ID={AWS_KEY}\n").as_bytes(),
        "aws-access-token",
    );
    let leaked = h.dir().join("leaked_key");
    expect_ok(
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "leaked", "-f"])
            .arg(&leaked)),
        "ssh-keygen",
    );
    let private = std::fs::read(&leaked).expect("leaked key");
    assert_secret_push_rejected(h, dir, "deploy_key", &private, "private-key");
}

/// Commits `contents` as `file` on the default branch in the agent's clone `dir` and pushes:
/// the push must be refused with gitleaks' finding (`rule`, the file), redacted, and
/// neither the upstream's nor the gate's ref may move, nor the commit reach either.
fn assert_secret_push_rejected(h: &Harness, dir: &str, file: &str, contents: &[u8], rule: &str) {
    let branch = h.opts.default_branch;
    let r = format!("refs/heads/{branch}");
    let upstream_before = h.upstream_ref(&r);
    let gate_before = h.gate_ref(&r);
    assert!(
        gate_before.is_some(),
        "the gate has no {branch} before the push"
    );
    expect_ok(
        h.agent_sh_input(&format!("cat >{dir}/{file}"), contents),
        "write the secret in the agent",
    );
    let commit = h.agent_ok(&format!(
        "set -e; cd {dir}; git add {file}; git commit -qm 'add {file}'; git rev-parse HEAD"
    ));
    let out = h.agent_sh(&format!("git -C {dir} push origin {branch}"));
    let text = said(&out);
    assert!(
        !out.status.success(),
        "a push holding a secret ({rule}) succeeded\n{}",
        show(&out)
    );
    for want in [
        rule.to_owned(),
        format!("\"{file}\""),
        "push refused: gitleaks found".to_owned(),
        "nothing was forwarded upstream".to_owned(),
    ] {
        assert!(
            text.contains(&want),
            "the rejected push does not show {want:?}\n{}",
            show(&out)
        );
    }
    // The finding is redacted: the secret itself is not echoed back.
    for line in String::from_utf8_lossy(contents).lines() {
        let secret = line.rsplit('=').next().unwrap_or(line);
        if secret.len() >= 16 && !secret.starts_with("-----") {
            assert!(
                !text.contains(secret),
                "the push output shows the secret {secret:?}\n{}",
                show(&out)
            );
        }
    }
    assert_eq!(
        h.upstream_ref(&r),
        upstream_before,
        "the upstream's {branch} moved"
    );
    assert_eq!(h.gate_ref(&r), gate_before, "the gate's {branch} moved");
    let object = format!("{commit}^{{commit}}");
    let upstream_has = h.upstream_git(&["cat-file", "-e", &object]);
    assert!(
        !upstream_has.status.success(),
        "the rejected commit reached the upstream"
    );
    let repo = format!("/git/{REPO}.git");
    let gate_has = h.engine(&[
        "exec",
        &h.gate(),
        "git",
        "-C",
        &repo,
        "cat-file",
        "-e",
        &object,
    ]);
    assert!(
        !gate_has.status.success(),
        "the rejected commit is in the gate's mirror"
    );
    // Drop the rejected commit for what follows.
    h.agent_ok(&format!("git -C {dir} reset -q --hard HEAD~1"));
}

fn clone_follows_default_branch(
    engine: &'static Engine,
    short: &'static str,
    branch: &'static str,
    extra: &'static [&'static str],
) {
    let mut opts = Options::new(short);
    opts.default_branch = branch;
    opts.extra_branches = extra;
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    let head = expect_ok(
        h.upstream_git(&["symbolic-ref", "HEAD"]),
        "the upstream's HEAD",
    );
    assert_eq!(
        head,
        format!("refs/heads/{branch}"),
        "the fixture's default branch"
    );
    for other in extra {
        assert!(
            h.upstream_ref(&format!("refs/heads/{other}")).is_some(),
            "the upstream has no {other} beside {branch}"
        );
    }
    clone_matches(&h);
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// A scoped thread's result; its panic, if it panicked, goes on in this thread.
fn join<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One shell word.
fn sh(value: &str) -> String {
    quote::sh(value).expect("no NUL in the value")
}

/// A fresh clone of the upstream, by its real URL, in the agent's `~/<dir>`.
fn clone_in_agent(h: &Harness, dir: &str) {
    h.agent_ok(&format!(
        "rm -rf {dir} && git clone -q {} {dir}",
        sh(&h.url)
    ));
}

/// Commits `contents` as `file` on the upstream's default branch, inside the fixture as its
/// user git (bypassing the gate); returns the new commit.
fn commit_upstream(h: &Harness, file: &str, contents: &str) -> String {
    let script = format!(
        "set -eu; w=$(mktemp -d); trap 'rm -rf \"$w\"' EXIT
         git clone -q /srv/git/{REPO}.git \"$w/w\"; cd \"$w/w\"
         printf '%s\\n' {contents} >{file}; git add {file}
         git -c user.name=upstream -c user.email=upstream@bottle.invalid commit -qm 'upstream change'
         git push -q origin HEAD; git rev-parse HEAD",
        contents = sh(contents),
        file = sh(file),
    );
    let new = h.engine_ok(&["exec", "-u", "git", &h.fixture(), "sh", "-c", &script]);
    let branch = format!("refs/heads/{}", h.opts.default_branch);
    assert_eq!(
        h.upstream_ref(&branch),
        Some(new.clone()),
        "the upstream commit"
    );
    new
}

/// A git command in the agent failed, saying the upstream is unreachable.
fn assert_unreachable(h: &Harness, out: &Output, what: &str) {
    let text = said(out);
    assert!(
        !out.status.success(),
        "{what} succeeded with the upstream stopped\n{}",
        show(out)
    );
    assert!(
        text.contains("unreachable") && text.contains(&h.url),
        "{what} failed without saying the upstream {} is unreachable\n{}",
        h.url,
        show(out)
    );
}

/// Lists a bottle's containers (`kind` = "container") or networks.
type Lister = fn(&Harness, &str) -> Vec<String>;

/// The bottle's containers (`kind` = "container") or networks, by the slug's label.
fn labelled(h: &Harness, kind: &str) -> Vec<String> {
    listed(h, kind, &format!("label=bottle.slug={}", h.slug))
}

/// The bottle's containers or networks, by name (`bottle-<project>-<slug>-...`), labelled or not.
fn named(h: &Harness, kind: &str) -> Vec<String> {
    listed(h, kind, &format!("name={}", h.name("")))
}

fn listed(h: &Harness, kind: &str, filter: &str) -> Vec<String> {
    let out = if kind == "container" {
        h.engine_ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])
    } else {
        h.engine_ok(&["network", "ls", "--filter", filter, "--format", "{{.Name}}"])
    };
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// The fixture's log.
fn fixture_log(h: &Harness) -> String {
    said(&h.engine(&["logs", &h.fixture()]))
}

/// How many ssh connections the fixture's sshd logged.
fn fixture_connections(h: &Harness) -> usize {
    fixture_log(h).matches("Connection from").count()
}

/// Exports `container`'s filesystem to a tar file in the scenario's directory: every file,
/// whatever its owner and mode.
fn export(h: &Harness, container: &str) -> std::path::PathBuf {
    let tar = h.dir().join(format!("{container}.tar"));
    let tar_arg = tar.display().to_string();
    h.engine_ok(&["export", "-o", &tar_arg, container]);
    let size = std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 1 << 20,
        "the export of {container} is only {size} bytes"
    );
    tar
}

/// How many lines of `file` hold one of `patterns` (fixed strings).
fn count_lines(h: &Harness, file: &std::path::Path, patterns: &[String]) -> usize {
    let list = h.dir().join("patterns");
    std::fs::write(&list, patterns.join("\n") + "\n").expect("write the patterns");
    let out = run(Command::new("grep")
        .args(["-c", "-a", "-F", "-f"])
        .arg(&list)
        .arg(file));
    match out.status.code() {
        Some(0) | Some(1) => String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("grep -c printed no count\n{}", show(&out))),
        _ => panic!("grep over {} failed\n{}", file.display(), show(&out)),
    }
}

/// The files inside the running `container` (as `user`, or its own user) holding one of
/// `needles`: every directory but /proc, /sys and /dev (with /dev/shm), plus the main
/// process's environment and command line. Unreadable files are skipped silently.
fn grep_inside(h: &Harness, container: &str, user: Option<&str>, needles: &[String]) -> String {
    let mut cmd = h.cli();
    cmd.args(["exec", "-i"]);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    // The patterns come on stdin: they are written nowhere in the container.
    cmd.args([
        container,
        "sh",
        "-c",
        "set --; for d in /* /dev/shm; do case $d in /proc|/sys|/dev) ;; *) set -- \"$@\" \"$d\" ;; esac; done
         grep -rlsF -f - \"$@\" /proc/1/environ /proc/1/cmdline
         echo \"grep-status=$?\" >&2",
    ]);
    let patterns = needles.join("\n") + "\n";
    let out = run_limited(&mut cmd, Some(patterns.as_bytes()), COMMAND_LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    // 0: found, 1: not found, 2: not found but some file was unreadable (skipped).
    assert!(
        out.status.success()
            && ["0", "1", "2"]
                .iter()
                .any(|s| err.contains(&format!("grep-status={s}"))),
        "grep inside {container} did not run\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------------------
// Egress: the agent reaches the hosts its bottle allows, and nothing else.

/// The egress table of the egress scenario: `web.<slug>.test` allowed (and allowed to be
/// private, as every fixture on the engine's network is), `*.sfx.<slug>.test` allowed,
/// `denied.<slug>.test` both allowed and denied, `private.<slug>.test` allowed but not
/// allowed to be private.
fn egress_table(slug: &str) -> String {
    format!(
        "[bottles.{slug}.egress]\n\
         allow = [\"web.{slug}.test\", \"*.sfx.{slug}.test\", \"denied.{slug}.test\", \"private.{slug}.test\"]\n\
         deny = [\"denied.{slug}.test\"]\n\
         allow_private = [\"web.{slug}.test\", \"*.sfx.{slug}.test\"]\n"
    )
}

/// What `curl` in the agent got: the HTTP status it saw (the proxy's answer to a CONNECT
/// too), the proxy's `X-Bottle-Deny` reason, and the body.
struct Fetched {
    status: String,
    deny: String,
    body: String,
}

fn fetch(h: &Harness, curl_args: &str) -> Fetched {
    // -w prints what curl learnt of the response; for a refused CONNECT, %{http_connect}
    // is the proxy's status. Headers (the proxy's among them) go to a file.
    let out = h.agent_sh(&format!(
        "curl -sS --max-time 10 --cacert /tmp/ca.pem -D /tmp/headers -o /tmp/body \
         -w '%{{http_code}} %{{http_connect}}' {curl_args}; \
         echo; grep -i '^x-bottle-deny:' /tmp/headers | tr -d '\\r'; echo '--'; cat /tmp/body 2>/dev/null; \
         rm -f /tmp/headers /tmp/body"
    ));
    let text = said(&out);
    let (head, body) = text.split_once("\n--\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let codes = lines.next().unwrap_or_default().to_owned();
    let deny = lines
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-bottle-deny"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let rest = [body];
    // The status that matters: the proxy's answer to CONNECT when there was one, else the
    // response's.
    let mut codes = codes.split_whitespace();
    let http = codes.next().unwrap_or("000").to_owned();
    let connect = codes.next().unwrap_or("000").to_owned();
    let status = if connect != "000" && connect != "200" {
        connect
    } else {
        http
    };
    Fetched {
        status,
        deny,
        body: rest.join("\n"),
    }
}

/// 18. The egress proxy lets the agent reach what the manifest allows and refuses the
///     rest, each refusal a 403 with its reason; a CONNECT tunnel carries a long stream as
///     it is written; the agent reaches nothing without the proxy; `bottle logs --denied
///     --json` shows exactly the refusals, and the log survives `bottle down`.
pub fn egress_allows_what_the_manifest_allows_and_nothing_else(engine: &'static Engine) {
    let mut opts = Options::new("egress");
    opts.manifest_extra = Some(egress_table);
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    let s = h.slug.clone();
    let web = format!("web.{s}.test");
    let sub = format!("api.sfx.{s}.test");
    let private = format!("private.{s}.test");
    h.start_webs(&[web.clone(), sub.clone(), private.clone()]);

    // Allowed: the answer comes from the fixture itself, through a CONNECT tunnel (TLS end
    // to end: curl checks the fixture's certificate against the test CA) and as plain HTTP.
    let got = fetch(&h, &format!("https://{web}/"));
    assert_eq!(
        (got.status.as_str(), got.body.trim()),
        ("200", format!("hello from {web}").as_str()),
        "https://{web}/"
    );
    let got = fetch(&h, &format!("http://{web}/"));
    assert_eq!(
        got.body.trim(),
        format!("hello from {web}"),
        "http://{web}/"
    );
    let got = fetch(&h, &format!("https://{sub}/"));
    assert_eq!(
        got.body.trim(),
        format!("hello from {sub}"),
        "*.suffix matches a subdomain"
    );

    // Refused, each with its reason (and nothing reached: the fixture logs no request).
    let web_ip = h.engine_ok(&[
        "inspect",
        "--format",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            h.name("egress")
        ),
        &web,
    ]);
    let refusals: Vec<(String, &str)> = vec![
        (format!("https://denied.{s}.test/"), "denied-by-rule"),
        (format!("https://other.{s}.test/"), "not-allowed"),
        (format!("http://other.{s}.test/"), "not-allowed"),
        (format!("https://sfx.{s}.test/"), "not-allowed"),
        (format!("https://{web}:8443/"), "port-not-allowed"),
        (format!("https://{}/", web_ip.trim()), "ip-literal"),
        (format!("https://{private}/"), "private-address"),
        // The bottle's own containers are in NO_PROXY, which applies to -x too: --noproxy ''
        // sends these through the proxy anyway, as a hostile agent would.
        (
            format!(
                "--noproxy '' -x http://{}:3128 http://{}:9418/",
                h.name("proxy"),
                h.gate()
            ),
            "own-sidecar",
        ),
        (
            format!(
                "--noproxy '' -x http://{p}:3128 http://{p}:3128/",
                p = h.name("proxy")
            ),
            "own-sidecar",
        ),
    ];
    for (args, reason) in &refusals {
        let got = fetch(&h, args);
        assert_eq!(
            (got.status.as_str(), got.deny.as_str()),
            ("403", *reason),
            "curl {args}: body {}",
            got.body
        );
        // A refused plain-HTTP request shows the refusal's body (curl keeps no body of a
        // refused CONNECT): the host, the rule, the manifest line that would allow it.
        if args.starts_with("http://other") {
            assert!(
                got.body.contains(&format!("other.{s}.test"))
                    && got.body.contains(&format!("[bottles.{s}.egress]")),
                "the refusal says what and how: {}",
                got.body
            );
        }
    }

    // Without the proxy the agent reaches nothing: it has no resolver for outside names
    // and no route out (bounded; no query leaves the agent's network).
    let out = h.agent_sh(&format!(
        "curl -sS --noproxy '*' --connect-timeout 3 --max-time 5 --cacert /tmp/ca.pem https://{web}/"
    ));
    assert!(
        !out.status.success(),
        "reached {web} without the proxy: {}",
        show(&out)
    );

    // A long-lived stream through a CONNECT tunnel: four lines, 700 ms apart, each read as
    // it is written (the last arrives at least two seconds after the first).
    let out = h.agent_ok(&format!(
        "curl -sSN --max-time 20 --cacert /tmp/ca.pem 'https://{web}/stream?n=4&ms=700' \
         | while read -r line; do echo \"$(date +%s%3N) $line\"; done"
    ));
    let times: Vec<u64> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(times.len(), 4, "{out}");
    assert!(
        times[3] - times[0] >= 2000,
        "the lines came all at once: {out}"
    );

    // The audit log: exactly the refusals, with their reasons, as JSON lines.
    let denied = expect_ok(
        run(h.bottle().args(["logs", "--denied", "--json", &s])),
        "bottle logs --denied --json",
    );
    let reasons: Vec<String> = denied
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(v["decision"], "deny", "{l}");
            assert_eq!(v["source"], "proxy", "{l}");
            v["reason"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let want: Vec<&str> = refusals.iter().map(|(_, r)| *r).collect();
    assert_eq!(reasons, want, "bottle logs --denied --json:\n{denied}");
    let all = expect_ok(
        run(h.bottle().args(["logs", "--json", &s])),
        "bottle logs --json",
    );
    let allowed = all
        .lines()
        .filter(|l| l.contains("\"decision\":\"allow\""))
        .count();
    assert!(allowed >= 4, "the allowed requests are logged too:\n{all}");
    assert!(
        all.contains("\"bytes_down\""),
        "a tunnel's line carries its byte counts:\n{all}"
    );

    // The log survives `bottle down`.
    let down = run(h.bottle().args(["down", &s]));
    let said_down = expect_ok(down, "bottle down");
    let _ = said_down;
    let after = expect_ok(
        run(h.bottle().args(["logs", "--denied", "--json", &s])),
        "bottle logs after down",
    );
    assert_eq!(
        after.trim(),
        denied.trim(),
        "the saved log differs from the live one"
    );
}

/// Pushes `refspec` from the agent's clone `dir`: the scan must refuse it saying each of
/// `says`, and none of `refs` may move upstream or on the gate.
fn scan_refuses(h: &Harness, dir: &str, refspec: &str, refs: &[&str], says: &[&str]) {
    let before: Vec<_> = refs
        .iter()
        .map(|r| (h.upstream_ref(r), h.gate_ref(r)))
        .collect();
    let out = h.agent_sh(&format!("git -C {dir} push origin {refspec}"));
    let text = said(&out);
    assert!(
        !out.status.success(),
        "the push of {refspec} went through\n{}",
        show(&out)
    );
    for want in says.iter().chain(&["nothing was forwarded upstream"]) {
        assert!(
            text.contains(want),
            "the refusal does not say {want:?}\n{}",
            show(&out)
        );
    }
    assert!(
        !text.contains(AWS_KEY),
        "the refusal shows the secret\n{}",
        show(&out)
    );
    let after: Vec<_> = refs
        .iter()
        .map(|r| (h.upstream_ref(r), h.gate_ref(r)))
        .collect();
    assert_eq!(after, before, "a ref moved although the push was refused");
}

/// Pushes `refspec` from the agent's clone `dir`: it must arrive, upstream and on the gate,
/// as `r` in the agent.
fn scan_accepts(h: &Harness, dir: &str, refspec: &str, r: &str) {
    let out = h.agent_sh(&format!("git -C {dir} push origin {refspec}"));
    assert!(
        out.status.success(),
        "the clean push of {refspec} was refused\n{}",
        show(&out)
    );
    let local = h.agent_ok(&format!("git -C {dir} rev-parse {r}"));
    assert_eq!(h.upstream_ref(r), Some(local.clone()), "upstream {r}");
    assert_eq!(h.gate_ref(r), Some(local), "the gate's {r}");
}
