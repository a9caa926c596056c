//! The bytes of a host file (an identity key) never appear in anything printed.

use bottle_backend_dryrun::{render_up, render_up_with, Cli, DryRun};
use bottle_core::backend::{Backend, UpOptions};

use crate::support::{demo, files_plan, secret_key, Fake, SECRET_MARK};

fn assert_no_secret(text: &str) {
    use std::io::Write as _;
    let key = String::from_utf8(secret_key()).unwrap();
    assert!(!text.contains(SECRET_MARK), "the key's bytes were printed");
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
