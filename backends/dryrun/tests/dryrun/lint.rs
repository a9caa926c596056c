//! Every printed script is valid POSIX sh (`sh -n`) and passes `shellcheck -s sh`.

use std::path::Path;
use std::process::Command;

use bottle_backend_dryrun::{
    render_cleanup, render_down, render_exec, render_ps, render_start, render_stop, render_up,
    render_up_with, Cli,
};
use bottle_core::backend::{ExecRequest, Scope, UpOptions};
use tempfile::TempDir;

use crate::support::{
    agent_only, demo, every_scope, evil, files_plan, fixed_paths, hostile, project_cleanup_scope,
};

/// Every kind of script, in both syntaxes, with ordinary and hostile values.
fn scripts(dir: &Path) -> Vec<(String, String)> {
    let marker = dir.join("marker");
    let demo = demo();
    let keep = UpOptions {
        keep_on_failure: true,
    };
    let e = evil(&marker);
    let mut out = Vec::new();
    for cli in Cli::ALL {
        let n = cli.backend_name();
        out.push((
            format!("{n} up demo"),
            render_up(&fixed_paths(&demo.plan), cli).unwrap(),
        ));
        out.push((
            format!("{n} up demo real path"),
            render_up(&demo.plan, cli).unwrap(),
        ));
        out.push((
            format!("{n} up keep"),
            render_up_with(&demo.plan, cli, &keep).unwrap(),
        ));
        out.push((
            format!("{n} up solo"),
            render_up(&agent_only(), cli).unwrap(),
        ));
        out.push((
            format!("{n} up files"),
            render_up(&files_plan(&demo.key), cli).unwrap(),
        ));
        out.push((
            format!("{n} up hostile"),
            render_up(&hostile(&marker), cli).unwrap(),
        ));
        for slug in ["demo", e.as_str()] {
            out.push((
                format!("{n} down {slug:?}"),
                render_down(&Scope::bottle("proj", slug), cli).unwrap(),
            ));
            out.push((
                format!("{n} stop {slug:?}"),
                render_stop(&Scope::bottle("proj", slug), cli).unwrap(),
            ));
            out.push((
                format!("{n} cleanup {slug:?}"),
                render_cleanup(
                    &Scope {
                        stopped_only: true,
                        ..Scope::bottle("proj", slug)
                    },
                    cli,
                )
                .unwrap(),
            ));
            out.push((
                format!("{n} ps {slug:?}"),
                render_ps(&Scope::bottle("proj", slug), cli).unwrap(),
            ));
        }
        out.push((
            format!("{n} cleanup project"),
            render_cleanup(&project_cleanup_scope(), cli).unwrap(),
        ));
        out.push((
            format!("{n} cleanup all"),
            render_cleanup(&every_scope(), cli).unwrap(),
        ));
        out.push((
            format!("{n} ps all"),
            render_ps(&every_scope(), cli).unwrap(),
        ));
        out.push((
            format!("{n} start demo"),
            render_start(&demo.plan, cli).unwrap(),
        ));
        out.push((
            format!("{n} start hostile"),
            render_start(&hostile(&marker), cli).unwrap(),
        ));
        let request = ExecRequest {
            project: "proj".to_owned(),
            slug: "demo".to_owned(),
            command: vec!["sh".to_owned(), "-c".to_owned(), e.clone()],
            tty: true,
            ..Default::default()
        };
        out.push((format!("{n} exec"), render_exec(&request, cli).unwrap()));
    }
    out
}

fn check(tool: &str, args: &[&str]) {
    let dir = TempDir::new().unwrap();
    for (i, (name, text)) in scripts(dir.path()).into_iter().enumerate() {
        let file = dir.path().join(format!("{i}.sh"));
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(tool)
            .args(args)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} rejects the {name} script:\n{}{}\n--- script ---\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!dir.path().join("marker").exists());
}

#[test]
fn sh_parses_every_script() {
    check("sh", &["-n"]);
}

#[test]
fn dash_and_bash_parse_every_script() {
    check("dash", &["-n"]);
    check("bash", &["--posix", "-n"]);
}

#[test]
fn shellcheck_passes_every_script() {
    check("shellcheck", &["-s", "sh"]);
}
