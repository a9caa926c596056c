//! Snapshots of every printer, in both syntaxes.

use bottle_backend_dryrun::{
    render_cleanup, render_down, render_exec, render_ps, render_start, render_stop, render_up,
    render_up_with, Cli,
};
use bottle_core::backend::{ExecOptions, ExecRequest, Scope, UpOptions};

use crate::support::{
    agent_only, demo, every_scope, files_plan, fixed_paths, project_cleanup_scope,
    stopped_demo_scope, FIXED_KEY_PATH,
};

#[test]
fn up_demo_docker() {
    let plan = fixed_paths(&demo().plan);
    insta::assert_snapshot!(render_up(&plan, Cli::Docker).unwrap());
}

#[test]
fn up_demo_podman() {
    let plan = fixed_paths(&demo().plan);
    insta::assert_snapshot!(render_up(&plan, Cli::Podman).unwrap());
}

#[test]
fn up_demo_keep_on_failure() {
    let plan = fixed_paths(&demo().plan);
    let opts = UpOptions {
        keep_on_failure: true,
    };
    insta::assert_snapshot!(render_up_with(&plan, Cli::Docker, &opts).unwrap());
}

#[test]
fn up_agent_only() {
    insta::assert_snapshot!(render_up(&agent_only(), Cli::Docker).unwrap());
}

#[test]
fn up_tricky_files() {
    let plan = files_plan(std::path::Path::new("/dev/null"));
    let mut plan = fixed_paths(&plan);
    // A host file's bytes never show; make that visible in the snapshot too.
    if let bottle_core::plan::FileSource::HostFile { path, .. } =
        &mut plan.containers[0].files[1].source
    {
        assert_eq!(path.to_str(), Some(FIXED_KEY_PATH));
    }
    insta::assert_snapshot!(render_up(&plan, Cli::Docker).unwrap());
}

#[test]
fn down_and_cleanup() {
    for cli in Cli::ALL {
        let name = cli.backend_name();
        insta::assert_snapshot!(
            format!("down_{name}"),
            render_down(&Scope::bottle("proj", "demo"), cli).unwrap()
        );
        // `bottle cleanup --all`: every project's, running ones included.
        insta::assert_snapshot!(
            format!("cleanup_all_{name}"),
            render_cleanup(&every_scope(), cli).unwrap()
        );
        // `bottle cleanup`: the project's bottles with nothing running.
        insta::assert_snapshot!(
            format!("cleanup_project_{name}"),
            render_cleanup(&project_cleanup_scope(), cli).unwrap()
        );
        insta::assert_snapshot!(
            format!("cleanup_one_{name}"),
            render_cleanup(&stopped_demo_scope(), cli).unwrap()
        );
    }
}

#[test]
fn ps_and_exec() {
    for cli in Cli::ALL {
        let name = cli.backend_name();
        insta::assert_snapshot!(
            format!("ps_all_{name}"),
            render_ps(&every_scope(), cli).unwrap()
        );
        insta::assert_snapshot!(
            format!("ps_one_{name}"),
            render_ps(&Scope::bottle("proj", "demo"), cli).unwrap()
        );
        let request = ExecRequest {
            project: "proj".to_owned(),
            slug: "demo".to_owned(),
            command: vec![
                "git".to_owned(),
                "log".to_owned(),
                "--format=%H %s".to_owned(),
            ],
            tty: true,
            ..Default::default()
        };
        insta::assert_snapshot!(
            format!("exec_tty_{name}"),
            render_exec(&request, cli).unwrap()
        );
        let request = ExecRequest {
            tty: false,
            ..request
        };
        insta::assert_snapshot!(format!("exec_{name}"), render_exec(&request, cli).unwrap());
        let request = ExecRequest {
            options: ExecOptions {
                user: Some("1000:1000".to_owned()),
                workdir: Some("/work/my app".to_owned()),
                env: vec![
                    ("GIT_TRACE".to_owned(), "1".to_owned()),
                    ("GREETING".to_owned(), "it's me".to_owned()),
                ],
            },
            ..request
        };
        insta::assert_snapshot!(
            format!("exec_options_{name}"),
            render_exec(&request, cli).unwrap()
        );
    }
}

#[test]
fn stop_and_start() {
    let plan = fixed_paths(&demo().plan);
    for cli in Cli::ALL {
        let name = cli.backend_name();
        insta::assert_snapshot!(
            format!("stop_{name}"),
            render_stop(&Scope::bottle("proj", "demo"), cli).unwrap()
        );
        insta::assert_snapshot!(format!("start_{name}"), render_start(&plan, cli).unwrap());
    }
}
