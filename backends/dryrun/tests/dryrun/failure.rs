//! The `up` script stops before creating anything when an image is missing, leftovers exist
//! or a host file is gone, and removes what it created when a later step fails.

use std::fs;

use bottle_backend_dryrun::{
    render_down, render_start, render_stop, render_up, render_up_with, Cli,
};
use bottle_core::backend::{Scope, UpOptions};

use crate::support::{agent_only, demo, Fake, Run};

/// `rm -f` as each CLI spells a removal that does not wait for a stop.
fn rm_f(cli: Cli) -> Vec<&'static str> {
    match cli {
        Cli::Docker => vec!["rm", "-f", "-v"],
        Cli::Podman => vec!["rm", "-f", "-v", "--time", "0"],
    }
}

fn with<'a>(mut prefix: Vec<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    prefix.extend_from_slice(rest);
    prefix
}

fn created_anything(run: &Run) -> bool {
    !run.calls_to(&["create"]).is_empty() || !run.calls_to(&["network", "create"]).is_empty()
}

#[test]
fn leftovers_stop_the_script_before_anything_is_created() {
    for cli in Cli::ALL {
        let demo = demo();
        let fake = Fake::new();
        fake.exists("bottle-proj-demo-gate");
        fake.exists("bottle-proj-demo-egress");
        let run = fake.run(&render_up(&demo.plan, cli).unwrap());
        assert!(!run.success);
        assert!(!created_anything(&run), "{cli:?}");
        assert!(
            run.stderr.contains(
                "bottle demo has leftovers from an earlier run: network bottle-proj-demo-egress, container bottle-proj-demo-gate\n"
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("bottle cleanup demo"), "{}", run.stderr);
        assert!(
            run.calls_to(&["rm"]).is_empty(),
            "leftovers are not ours to remove"
        );
    }
}

#[test]
fn missing_images_stop_the_script_with_a_hint() {
    let demo = demo();
    let fake = Fake::new();
    fake.missing_image("bottle-gate:latest");
    let run = fake.run(&render_up(&demo.plan, Cli::Docker).unwrap());
    assert!(!run.success);
    assert!(!created_anything(&run));
    assert!(
        run.stderr
            .contains("image bottle-gate:latest is missing; build it with \"bottle image build\""),
        "{}",
        run.stderr
    );

    let solo = agent_only();
    let fake = Fake::new();
    fake.missing_image("example.com/agents/custom:1.2");
    let run = fake.run(&render_up(&solo, Cli::Podman).unwrap());
    assert!(!run.success);
    assert!(!created_anything(&run));
    assert!(
        run.stderr
            .contains("build it or pull it (podman pull example.com/agents/custom:1.2)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_host_file_stops_the_script_before_anything_is_created() {
    let demo = demo();
    let script = render_up(&demo.plan, Cli::Docker).unwrap();
    fs::remove_file(&demo.key).unwrap();
    let fake = Fake::new();
    let run = fake.run(&script);
    assert!(!run.success);
    assert!(!created_anything(&run));
    assert!(run.stderr.contains("id_ed25519"), "{}", run.stderr);
    assert_eq!(fs::read_dir(fake.tmp()).unwrap().count(), 0);
}

#[test]
fn a_failing_step_removes_what_was_created() {
    for cli in Cli::ALL {
        let demo = demo();
        let fake = Fake::new();
        fake.fail("network-connect");
        let run = fake.run(&render_up(&demo.plan, cli).unwrap());
        assert!(!run.success);
        assert!(run.stderr.contains("up failed; removing"), "{}", run.stderr);
        let after: Vec<Vec<&str>> = run
            .calls
            .iter()
            .skip_while(|c| c.args()[..2] != ["network", "connect"])
            .skip(1)
            .map(|c| c.args())
            .collect();
        assert_eq!(
            after,
            [
                with(rm_f(cli), &["bottle-proj-demo-agent"]),
                with(rm_f(cli), &["bottle-proj-demo-proxy"]),
                with(rm_f(cli), &["bottle-proj-demo-gate"]),
                vec!["network", "rm", "bottle-proj-demo-egress"],
                vec!["network", "rm", "bottle-proj-demo-internal"],
            ],
            "{cli:?}"
        );
        assert!(run.calls_to(&["start"]).is_empty());
        assert_eq!(fs::read_dir(fake.tmp()).unwrap().count(), 0);
    }
}

#[test]
fn keep_on_failure_keeps_what_was_created() {
    let demo = demo();
    let fake = Fake::new();
    fake.fail("start");
    let opts = UpOptions {
        keep_on_failure: true,
    };
    let run = fake.run(&render_up_with(&demo.plan, Cli::Docker, &opts).unwrap());
    assert!(!run.success);
    assert!(run.calls_to(&["rm"]).is_empty());
    assert!(run.calls_to(&["network", "rm"]).is_empty());
    assert!(
        run.stderr.contains("keeping what this script created"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("bottle cleanup demo"), "{}", run.stderr);
    assert_eq!(fs::read_dir(fake.tmp()).unwrap().count(), 0);
}

#[test]
fn down_removes_what_the_labels_find_and_is_idempotent() {
    for cli in Cli::ALL {
        let fake = Fake::new();
        fake.containers("c1\nc2\n");
        fake.networks("n1\n");
        let run = fake.run(&render_down(&Scope::bottle("proj", "demo"), cli).unwrap());
        assert!(run.success, "{}", run.stderr);
        let calls: Vec<Vec<&str>> = run.calls.iter().map(|c| c.args()).collect();
        let filters = [
            "--filter",
            "label=bottle.managed",
            "--filter",
            "label=bottle.project=proj",
            "--filter",
            "label=bottle.slug=demo",
        ];
        assert_eq!(
            calls,
            [
                [&["ps", "-aq"][..], &filters].concat(),
                with(rm_f(cli), &["c1", "c2"]),
                [&["network", "ls", "-q"][..], &filters].concat(),
                vec!["network", "rm", "n1"],
            ]
        );
        assert_eq!(run.stdout, "bottle 'demo' of project 'proj' is down\n");

        let fake = Fake::new();
        let run = fake.run(&render_down(&Scope::bottle("proj", "demo"), cli).unwrap());
        assert!(run.success, "{}", run.stderr);
        assert_eq!(run.calls.len(), 2, "nothing found, nothing removed");
    }
}

#[test]
fn down_stops_when_the_engine_cannot_list() {
    let fake = Fake::new();
    fake.fail("ps");
    let run = fake.run(&render_down(&Scope::bottle("proj", "demo"), Cli::Docker).unwrap());
    assert!(!run.success);
    assert_eq!(run.calls.len(), 1);
}

#[test]
fn stop_stops_what_runs_and_keeps_it() {
    for cli in Cli::ALL {
        let fake = Fake::new();
        fake.containers("c1\nc2\n");
        fake.networks("n1\n");
        let run = fake.run(&render_stop(&Scope::bottle("proj", "demo"), cli).unwrap());
        assert!(run.success, "{}", run.stderr);
        let calls: Vec<Vec<&str>> = run.calls.iter().map(|c| c.args()).collect();
        // Running containers only (no -a), stopped, nothing removed, networks untouched.
        assert_eq!(
            calls,
            [
                vec![
                    "ps",
                    "-q",
                    "--filter",
                    "label=bottle.managed",
                    "--filter",
                    "label=bottle.project=proj",
                    "--filter",
                    "label=bottle.slug=demo"
                ],
                vec!["stop", "c1", "c2"],
            ]
        );
        assert!(
            run.stdout.contains("bottle demo is stopped"),
            "{}",
            run.stdout
        );

        // Nothing running: nothing stopped, success.
        let run = Fake::new().run(&render_stop(&Scope::bottle("proj", "demo"), cli).unwrap());
        assert!(run.success, "{}", run.stderr);
        assert_eq!(run.calls.len(), 1);
    }
}

#[test]
fn start_goes_in_plan_order_and_stops_at_a_missing_container() {
    let demo = demo();
    let names: Vec<&str> = demo
        .plan
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for cli in Cli::ALL {
        let fake = Fake::new();
        let run = fake.run(&render_start(&demo.plan, cli).unwrap());
        assert!(run.success, "{}", run.stderr);
        let started: Vec<&str> = run
            .calls_to(&["start"])
            .iter()
            .map(|c| c.args()[1])
            .collect();
        assert_eq!(started, names);
        assert!(
            names.last().is_some_and(|n| n.ends_with("-agent")),
            "{names:?}"
        );

        // The first start fails (its container is missing): the script stops there.
        let fake = Fake::new();
        fake.fail("start");
        let run = fake.run(&render_start(&demo.plan, cli).unwrap());
        assert!(!run.success);
        assert_eq!(run.calls_to(&["start"]).len(), 1);
    }
}
