//! The bytes of a host file (an identity key) never appear in anything printed.

use bottle_backend_dryrun::{render_up, render_up_with, Cli, DryRun};
use bottle_core::backend::{Backend, UpOptions};
use bottle_core::sidecar::{HostEnv, SIDECARS};
use std::collections::BTreeMap;

use crate::support::{demo, files_plan, secret_key, secret_mark, Fake};

/// Bottle `c` of manifest `text` in `dir`, planned with host variable `var` set to `value`.
fn plan_c(dir: &std::path::Path, text: &str, var: &str, value: &str) -> bottle_core::plan::Plan {
    let manifest = bottle_core::manifest::parse(
        &dir.join("bottle.toml"),
        text,
        &bottle_core::manifest::Env { home: None },
    )
    .unwrap();
    let env = HostEnv::Map(BTreeMap::from([(var.to_owned(), value.to_owned())]));
    bottle_core::planner::plan_in(
        manifest.select(Some("c")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &env,
    )
    .unwrap()
}

fn assert_no_secret(text: &str) {
    use std::io::Write as _;
    let key = String::from_utf8(secret_key()).unwrap();
    assert!(
        !text.contains(secret_mark()),
        "the key's bytes were printed"
    );
    for line in key
        .lines()
        .filter(|l| l.len() > 8 && !l.starts_with("-----"))
    {
        assert!(!text.contains(line), "a line of the key was printed");
    }
    // Nor in the plan's serialised form (base64).
    let mut b64 = Vec::new();
    write!(
        b64,
        "{}",
        serde_json::to_string(&bottle_core::plan::SecretBytes::new(secret_key())).unwrap()
    )
    .unwrap();
    let b64 = String::from_utf8(b64).unwrap();
    assert!(
        !text.contains(b64.trim_matches('"')),
        "the key was printed as base64"
    );
}

#[test]
fn scripts_never_hold_the_key() {
    let demo = demo();
    assert!(demo.plan.containers[0]
        .files
        .iter()
        .any(|f| f.bytes() == secret_key().as_slice()));
    let keep = UpOptions {
        keep_on_failure: true,
    };
    for cli in Cli::ALL {
        assert_no_secret(&render_up(&demo.plan, cli).unwrap());
        assert_no_secret(&render_up_with(&demo.plan, cli, &keep).unwrap());
        assert_no_secret(&render_up(&files_plan(&demo.key), cli).unwrap());
    }
}

#[tokio::test]
async fn the_backend_never_prints_the_key() {
    let demo = demo();
    for cli in Cli::ALL {
        let (backend, out) = DryRun::capture(cli);
        backend.up(&demo.plan, &UpOptions::default()).await.unwrap();
        let text = out.contents();
        assert!(text.contains("cp -- "));
        assert_no_secret(&text);
        assert_no_secret(&format!("{backend:?}"));
    }
}

#[test]
fn running_the_script_prints_no_key_either() {
    let demo = demo();
    let fake = Fake::new();
    let run = fake.run(&render_up(&demo.plan, Cli::Docker).unwrap());
    assert!(run.success, "{}", run.stderr);
    assert_no_secret(&run.stdout);
    assert_no_secret(&run.stderr);
    // The fake's argv records: the key travels only inside the archives.
    for call in &run.calls {
        assert_no_secret(&call.argv.join(" "));
    }
}

/// A route's key named by `secret_env` is read from the environment when the script runs:
/// printed as the variable, never as the key; a missing one stops the script before
/// anything is created.
#[test]
fn an_environment_key_is_read_when_the_script_runs() {
    const KEY: &str = "sk-route-key-6b1f0c";
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.c]\nimage = \"bottle-agent:latest\"\n\
        [[bottles.c.cred_proxy.routes]]\nname = \"api\"\nupstream = \"https://api.example.com\"\n\
        header = \"x-api-key\"\nsecret_env = \"TEST_ROUTE_KEY\"\n";
    let plan = plan_c(dir.path(), text, "TEST_ROUTE_KEY", KEY);
    let script = render_up(&plan, Cli::Docker).unwrap();
    assert!(!script.contains(KEY));
    assert!(script.contains("\"${TEST_ROUTE_KEY:?"), "{script}");

    let fake = Fake::new();
    let run = fake.run(&script);
    assert!(!run.success);
    assert!(run.stderr.contains("TEST_ROUTE_KEY"), "{}", run.stderr);
    assert!(
        run.calls
            .iter()
            .all(|c| !c.argv.iter().any(|a| a == "create")),
        "nothing is created without the key"
    );

    let fake = Fake::new();
    let run = fake.run_with_env(&script, &[("TEST_ROUTE_KEY", KEY)]);
    assert!(run.success, "{}", run.stderr);
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY));
    let key = run
        .calls_to(&["cp"])
        .iter()
        .flat_map(|c| c.copied().1)
        .find(|m| m.path == "run/bottle-cred/api.key")
        .expect("the key reaches the cred sidecar");
    assert_eq!(key.bytes, KEY.as_bytes());
    assert_eq!((key.mode, key.uid, key.gid), (0o400, 10003, 10003));
}

/// `${VAR}` values of `env` and an `env_file`'s values are read from the environment when
/// the script runs: printed as references, never as values; an unset one stops the script
/// before anything is created.
#[test]
fn host_env_values_are_read_when_the_script_runs() {
    const TOKEN: &str = "tok-3c9d1e";
    const FROM_FILE: &str = "file-secret-77a0";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("# a comment\nFILE_SECRET=\"{FROM_FILE}\"\nLITERAL=from-file\n"),
    )
    .unwrap();
    let text = "[bottles.c]\nimage = \"bottle-agent:latest\"\nenv_file = \".env\"\n\
        env = { TOKEN = \"Bearer ${TEST_TOKEN}\", DEF = \"${TEST_UNSET:-fall back \\\"q\\\" `x` \\\\}\", LITERAL = \"p$$w\" }\n";
    let plan = plan_c(dir.path(), text, "TEST_TOKEN", TOKEN);
    let json = serde_json::to_string(&plan).unwrap();
    let script = render_up(&plan, Cli::Docker).unwrap();
    for secret in [TOKEN, FROM_FILE] {
        assert!(!script.contains(secret), "{script}");
        assert!(!format!("{plan:?}").contains(secret));
        assert!(!json.contains(secret));
    }
    assert!(
        script.contains("env TOKEN = Bearer ${TEST_TOKEN}"),
        "{script}"
    );
    assert!(
        script.contains("--env 'TOKEN=Bearer '\"${TEST_TOKEN?"),
        "{script}"
    );
    assert!(script.contains("\"${TEST_TOKEN?is not set"), "{script}");
    assert!(
        script.contains("\"${FILE_SECRET?is not set: load the env_file"),
        "{script}"
    );
    // The manifest's literal wins over the file's, and is printed as the literal it is.
    assert!(script.contains("--env 'LITERAL=p$w'"), "{script}");

    let fake = Fake::new();
    let run = fake.run_with_env(&script, &[("FILE_SECRET", FROM_FILE)]);
    assert!(!run.success);
    assert!(run.stderr.contains("TEST_TOKEN"), "{}", run.stderr);
    assert!(
        run.calls.is_empty(),
        "the engine was called before the check"
    );

    let fake = Fake::new();
    let run = fake.run_with_env(
        &script,
        &[("TEST_TOKEN", TOKEN), ("FILE_SECRET", FROM_FILE)],
    );
    assert!(run.success, "{}", run.stderr);
    for secret in [TOKEN, FROM_FILE] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    let creates = run.calls_to(&["create"]);
    let create = &creates
        .iter()
        .find(|c| c.argv.iter().any(|a| a == "bottle-proj-c-agent"))
        .expect("the agent is created")
        .argv;
    for want in [
        format!("TOKEN=Bearer {TOKEN}"),
        "DEF=fall back \"q\" `x` \\".to_owned(),
        format!("FILE_SECRET={FROM_FILE}"),
        "LITERAL=p$w".to_owned(),
    ] {
        assert!(create.contains(&want), "{want} not in {create:?}");
    }
}
