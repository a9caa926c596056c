//! Secrets from the host: `${VAR}` in `env` and an `env_file` reach the agent and are
//! printed nowhere.

use super::super::harness::{expect_ok, run, show, Harness, Options};
use super::super::Engine;

/// A value random per run, so finding it anywhere is meaningful.
fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{what}-{nanos:x}-{}", std::process::id())
}

fn env_table(slug: &str) -> String {
    format!(
        "[bottles.{slug}.env]\nTOKEN = \"Bearer ${{BOTTLE_E2E_TOKEN}}\"\nDEFAULTED = \"${{BOTTLE_E2E_UNSET:-fallback}}\"\n"
    )
}

/// `up` without the variable fails naming it (exit 2) and creates nothing; with it, the
/// agent gets `TOKEN` from the variable and `FILE_TOKEN` from the env_file; neither value
/// is in the dry-run script, `bottle ps --json`, `bottle validate` or `bottle logs`.
pub fn host_env_values_reach_the_agent_and_are_never_printed(engine: &'static Engine) {
    let secret = token("tok");
    let from_file = token("file");
    let mut opts = Options::new("hostenv");
    opts.manifest_extra = Some(env_table);
    let Some(mut h) = Harness::prepare(engine, opts) else {
        return;
    };
    let s = h.slug.clone();
    h.add_to_manifest("command = ", "env_file = \".env\"");
    std::fs::write(
        h.dir().join(".env"),
        format!("# the agent's\nFILE_TOKEN=\"{from_file}\"\n"),
    )
    .expect("write .env");

    // Without the variable: a manifest problem naming it, and nothing created.
    let out = run(h.bottle().args(["up", &s]));
    let said = show(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("BOTTLE_E2E_TOKEN is not set")
            && said.contains(&format!("bottles.{s}.env.TOKEN")),
        "{said}"
    );
    let ps = expect_ok(run(h.bottle().args(["ps", "--json"])), "bottle ps --json");
    assert!(
        !ps.contains(&s),
        "up without the variable created something:\n{ps}"
    );

    h.opts.bottle_env = vec![("BOTTLE_E2E_TOKEN", secret.clone())];
    let mut printed = vec![
        (
            "the dry-run script",
            expect_ok(run(h.dry_run().args(["up", &s])), "bottle dry-run up"),
        ),
        (
            "bottle validate",
            expect_ok(run(h.bottle().arg("validate")), "bottle validate"),
        ),
    ];
    assert!(
        printed[0].1.contains("\"${BOTTLE_E2E_TOKEN?"),
        "the script does not read the variable:\n{}",
        printed[0].1
    );
    h.bring_up();
    assert_eq!(
        h.agent_ok("printf '%s' \"$TOKEN\""),
        format!("Bearer {secret}")
    );
    assert_eq!(h.agent_ok("printf '%s' \"$FILE_TOKEN\""), from_file);
    assert_eq!(h.agent_ok("printf '%s' \"$DEFAULTED\""), "fallback");
    printed.push((
        "bottle ps --json",
        expect_ok(run(h.bottle().args(["ps", "--json"])), "bottle ps --json"),
    ));
    printed.push((
        "bottle logs --json",
        expect_ok(
            run(h.bottle().args(["logs", "--json", &s])),
            "bottle logs --json",
        ),
    ));
    assert!(printed[2].1.contains(&s), "ps does not list the bottle");
    for (what, text) in &printed {
        for value in [&secret, &from_file] {
            assert!(
                !text.contains(value.as_str()),
                "{what} printed a host value:\n{text}"
            );
        }
    }
}
