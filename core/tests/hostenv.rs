//! `${VAR}` values and `env_file`: resolved at plan time, carried as host values (never as
//! literals), and every problem named with the bottle, the field and what to do.

use std::collections::BTreeMap;

use bottle_core::manifest::{parse, Env};
use bottle_core::plan::{ContainerSpec, HostValueSource, Plan};
use bottle_core::planner::plan_in;
use bottle_core::sidecar::{HostEnv, SIDECARS};

fn plan(dir: &std::path::Path, text: &str, env: &[(&str, &str)]) -> Result<Plan, String> {
    let path = dir.join("bottle.toml");
    let m = parse(&path, text, &Env { home: None }).map_err(|e| e.to_string())?;
    let env = HostEnv::Map(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    plan_in(
        m.select(None).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        SIDECARS,
        &env,
    )
    .map_err(|e| e.to_string())
}

fn agent(plan: &Plan) -> &ContainerSpec {
    plan.containers.last().unwrap()
}

#[test]
fn references_resolve_into_host_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agent.env"),
        "# keys\nexport FROM_FILE='file value'\nBOTH=file\n",
    )
    .unwrap();
    let text = "[bottles.b]\nimage = \"i\"\nenv_file = \"agent.env\"\n\
        env = { A = \"x-${TOKEN}-y\", B = \"${UNSET:-dflt}\", C = \"${EMPTY:-dflt}\", BOTH = \"manifest\", L = \"$$1\" }\n";
    let p = plan(dir.path(), text, &[("TOKEN", "s3cr3t"), ("EMPTY", "")]).unwrap();
    let a = agent(&p);
    let value = |k: &str| String::from_utf8(a.host_env[k].value.expose().to_vec()).unwrap();
    assert_eq!(value("A"), "x-s3cr3t-y");
    assert_eq!(value("B"), "dflt");
    assert_eq!(value("C"), "dflt");
    assert_eq!(value("FROM_FILE"), "file value");
    assert!(
        matches!(&a.host_env["FROM_FILE"].from, HostValueSource::EnvFile { path } if path.ends_with("agent.env"))
    );
    assert_eq!(a.host_env["A"].from.describe("A"), "x-${TOKEN}-y");
    // Literals stay literals; the manifest's env wins over the file.
    assert_eq!(a.env["BOTH"], "manifest");
    assert_eq!(a.env["L"], "$1");
    assert!(!a.host_env.contains_key("BOTH") && !a.env.contains_key("A"));
    // Never in the plan's Debug or JSON.
    assert!(!format!("{p:?}").contains("s3cr3t"));
    assert!(!serde_json::to_string(&p).unwrap().contains("s3cr3t"));
}

#[test]
fn a_missing_variable_is_named_with_the_bottle_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.b]\nimage = \"i\"\nenv = { A = \"${NOPE_ONE}\", B = \"${NOPE_TWO}x\" }\n";
    let e = plan(dir.path(), text, &[]).unwrap_err();
    insta::assert_snapshot!(e.replace(&dir.path().display().to_string(), "DIR"));
}

#[test]
fn bad_references_and_env_files_are_manifest_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "[bottles.b]\nimage = \"i\"\nenv = { A = \"pa$word\", B = \"${X:?no}\", C = \"a$\" }\n";
    let e = plan(dir.path(), text, &[]).unwrap_err();
    insta::assert_snapshot!(
        "bad_references",
        e.replace(&dir.path().display().to_string(), "DIR")
    );

    std::fs::write(dir.path().join(".env"), "GOOD=1\nBAD LINE secret-value\n").unwrap();
    let text = "[bottles.b]\nimage = \"i\"\nenv_file = \".env\"\n";
    let e = plan(dir.path(), text, &[]).unwrap_err();
    assert!(!e.contains("secret-value"), "{e}");
    insta::assert_snapshot!(
        "bad_env_file",
        e.replace(&dir.path().display().to_string(), "DIR")
    );

    let text = "[bottles.b]\nimage = \"i\"\nenv_file = \"missing.env\"\n";
    let e = plan(dir.path(), text, &[]).unwrap_err();
    assert!(e.contains("missing.env") && e.contains("env_file"), "{e}");
}
