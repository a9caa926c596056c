//! Values holding quotes, `$(...)`, backquotes, spaces and newlines reach the engine as
//! exactly the words the plan holds, and nothing in them runs.

use bottle_backend_dryrun::{render_down, render_up, Cli};
use bottle_core::backend::Scope;
use bottle_core::plan::{FileSource, Plan};

use crate::support::{evil, hostile, Fake};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|w| (*w).to_owned()).collect()
}

/// The `create` arguments the docker backend's plan amounts to, written out by hand.
fn expected_create(plan: &Plan, cli: Cli, e: &str) -> Vec<String> {
    let agent = &plan.containers[0];
    let managed = format!("bottle.managed={}", bottle_core::plan::PLAN_FORMAT);
    let mut v = s(&[
        "create",
        "--name",
        "bottle-proj-demo-agent",
        "--pull",
        "never",
        "--network",
        "bottle-proj-demo-internal",
        "--label",
        &managed,
        "--label",
        "bottle.project=proj",
        "--label",
        "bottle.role=agent",
        "--label",
        "bottle.slug=demo",
        "--label",
    ]);
    v.push(format!("note={e}"));
    v.extend(s(&["--env", "EMPTY=", "--env"]));
    v.push(format!("EVIL={e}"));
    v.extend(s(&["--user", "1000:1000", "--entrypoint"]));
    let entrypoint = agent.entrypoint.clone().unwrap();
    match cli {
        Cli::Docker => v.push(entrypoint[0].clone()),
        // Checked separately: it is JSON.
        Cli::Podman => v.push("<json>".to_owned()),
    }
    v.extend(s(&[
        "--add-host",
        "git.example.com:2001:db8::1",
        "--add-host",
        "v4.example.com:192.0.2.1",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "100",
        "--memory",
        "1073741824",
        "--memory-swap",
        "1073741824",
        "--sysctl",
        "net.ipv6.conf.all.disable_ipv6=1",
        "--init",
    ]));
    v.push(agent.image.name.clone());
    if cli == Cli::Docker {
        v.extend(entrypoint[1..].iter().cloned());
    }
    v.extend(s(&["--flag"]));
    v.push(e.to_owned());
    v.extend(s(&["", " spaced "]));
    v
}

#[test]
fn hostile_values_reach_the_engine_verbatim() {
    for cli in Cli::ALL {
        let fake = Fake::new();
        let marker = fake.dir.path().join("marker");
        let plan = hostile(&marker);
        let e = evil(&marker);
        let script = render_up(&plan, cli).unwrap();
        let run = fake.run(&script);
        assert!(run.success, "{cli:?}: {}", run.stderr);
        assert!(!marker.exists(), "{cli:?}: a value was run by the shell");

        let creates = run.calls_to(&["create"]);
        assert_eq!(creates.len(), 1);
        let mut got = creates[0].argv[1..].to_vec();
        if cli == Cli::Podman {
            let i = got.iter().position(|a| a == "--entrypoint").unwrap() + 1;
            let list: Vec<String> = serde_json::from_str(&got[i]).unwrap();
            assert_eq!(
                Some(list),
                plan.containers[0].entrypoint,
                "podman's JSON entrypoint"
            );
            got[i] = "<json>".to_owned();
        }
        assert_eq!(got, expected_create(&plan, cli, &e), "{cli:?}");

        let egress = run.calls_to(&["network", "create", "--label"]);
        assert_eq!(egress.len(), 1, "the egress network is not internal");
        assert!(egress[0].argv.contains(&format!("note={e}")));

        let files = run.calls_to(&["cp"]);
        assert_eq!(files.len(), 1);
        let members = crate::support::members(files[0].tar.as_deref().unwrap());
        let FileSource::Text { text } = &plan.containers[0].files[0].source else {
            unreachable!()
        };
        assert_eq!(members.len(), 1);
        assert_eq!(
            members[0].path,
            crate::support::rel(&plan.containers[0].files[0].path)
        );
        assert_eq!(members[0].bytes, text.as_bytes());
        assert!(
            run.stdout.ends_with("bottle demo is up\n"),
            "{}",
            run.stdout
        );
    }
}

/// Reading the printed `create` command back with a shell-word parser gives the same words.
#[test]
fn create_command_parses_back_to_the_plan() {
    let marker = std::path::Path::new("/nonexistent/marker");
    let plan = hostile(marker);
    let e = evil(marker);
    let script = render_up(&plan, Cli::Docker).unwrap();
    let start = script.find("\ndocker create \\\n").unwrap() + 1;
    // The `shlex` parser reads a line continuation as an empty word, where sh drops it; none
    // of the values holds ` \<newline><tab>`, so joining the lines first is exact here.
    let command = script[start..].replace(" \\\n\t", " ");
    let words: Vec<String> = shlex::Shlex::new(&command)
        .take_while(|w| w != ">/dev/null")
        .collect();
    assert_eq!(words[0], "docker");
    assert_eq!(words[1..], expected_create(&plan, Cli::Docker, &e)[..]);
}

/// The bottle's name holds a newline and `$(...)`: it shows in comments, escaped, and
/// never starts a line of its own.
#[test]
fn comments_cannot_be_broken_out_of() {
    let marker = std::path::Path::new("/nonexistent/marker");
    let script = render_up(&hostile(marker), Cli::Docker).unwrap();
    let line = script.lines().nth(1).unwrap();
    assert!(
        line.starts_with("# bottle up: bottle demo\\n$(touch"),
        "{line}"
    );
    assert!(!script.lines().any(|l| l.starts_with("$(touch")));
}

#[test]
fn hostile_slugs_are_quoted_in_filters() {
    let fake = Fake::new();
    let marker = fake.dir.path().join("marker");
    let e = evil(&marker);
    let run = fake.run(&render_down(&Scope::bottle("proj", &e), Cli::Docker).unwrap());
    assert!(run.success, "{}", run.stderr);
    assert!(!marker.exists());
    let filter = format!("label=bottle.slug={e}");
    let f = [
        "--filter",
        "label=bottle.managed",
        "--filter",
        "label=bottle.project=proj",
        "--filter",
        &filter,
    ];
    assert_eq!(run.calls[0].args(), [&["ps", "-aq"][..], &f].concat());
    assert_eq!(
        run.calls[1].args(),
        [&["network", "ls", "-q"][..], &f].concat()
    );
}
