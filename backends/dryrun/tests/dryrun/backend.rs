//! `DryRun` as a `Backend`: names, what each method prints and returns, and errors.

use std::io;

use bottle_backend_dryrun::{
    render_cleanup, render_down, render_exec, render_ps, render_up, render_up_with, Cli, DryRun,
    RenderError,
};
use bottle_core::backend::{Backend, BackendError, ExecRequest, Scope, UpOptions};
use bottle_core::plan::{FileSource, FileSpec};

use crate::support::{agent_only, demo, every_scope, files_plan, stopped_demo_scope};

#[test]
fn names() {
    assert_eq!(DryRun::capture(Cli::Docker).0.name(), "dry-run");
    assert_eq!(DryRun::capture(Cli::Podman).0.name(), "dry-run-podman");
    for cli in Cli::ALL {
        assert_eq!(Cli::from_backend_name(cli.backend_name()), Some(cli));
    }
    assert_eq!(Cli::from_backend_name("docker"), None);
    assert_eq!(Cli::Podman.program(), "podman");
}

#[tokio::test]
async fn every_method_prints_its_script() {
    let plan = demo().plan;
    for cli in Cli::ALL {
        let (backend, out) = DryRun::capture(cli);
        let backend: Box<dyn Backend> = Box::new(backend);

        backend.up(&plan, &UpOptions::default()).await.unwrap();
        assert_eq!(out.take(), render_up(&plan, cli).unwrap());
        let keep = UpOptions {
            keep_on_failure: true,
        };
        backend.up(&plan, &keep).await.unwrap();
        assert_eq!(out.take(), render_up_with(&plan, cli, &keep).unwrap());

        backend.down(&Scope::bottle("proj", "demo")).await.unwrap();
        assert_eq!(
            out.take(),
            render_down(&Scope::bottle("proj", "demo"), cli).unwrap()
        );

        assert_eq!(backend.ps(&every_scope()).await.unwrap(), []);
        assert_eq!(out.take(), render_ps(&every_scope(), cli).unwrap());

        assert_eq!(backend.cleanup(&stopped_demo_scope()).await.unwrap(), []);
        assert_eq!(
            out.take(),
            render_cleanup(&stopped_demo_scope(), cli).unwrap()
        );

        let request = ExecRequest {
            project: "proj".to_owned(),
            slug: "demo".to_owned(),
            command: vec!["bash".to_owned()],
            tty: true,
            ..Default::default()
        };
        assert_eq!(backend.exec(&request).await.unwrap(), 0);
        let text = out.take();
        assert_eq!(text, render_exec(&request, cli).unwrap());
        assert!(text.ends_with(&format!(
            "{} exec -it bottle-proj-demo-agent bash\n",
            cli.program()
        )));
    }
}

#[tokio::test]
async fn render_errors_print_nothing() {
    let (backend, out) = DryRun::capture(Cli::Docker);
    let request = ExecRequest {
        project: "proj".to_owned(),
        slug: "demo".to_owned(),
        command: Vec::new(),
        tty: false,
        ..Default::default()
    };
    let err = backend.exec(&request).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Other(m) if m.contains("no command")),
        "{err}"
    );

    let mut plan = agent_only();
    plan.containers[0].entrypoint = Some(Vec::new());
    let err = backend.up(&plan, &UpOptions::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("entrypoint is an empty list"),
        "{err}"
    );
    assert_eq!(out.contents(), "");
}

struct Broken;

impl io::Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn write_errors_are_reported() {
    let backend = DryRun::new(Cli::Docker, Broken);
    let err = backend
        .down(&Scope::bottle("proj", "demo"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot write the script: pipe closed"),
        "{err}"
    );
}

fn text(path: &str) -> FileSpec {
    FileSpec {
        relocate_env: None,
        path: path.to_owned(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        source: FileSource::Text {
            text: "x\n".to_owned(),
        },
    }
}

/// What the CLI cannot express is refused, not approximated.
#[test]
fn plans_the_cli_cannot_express_are_refused() {
    let base = agent_only();
    let refuse = |edit: &dyn Fn(&mut bottle_core::plan::Plan)| -> RenderError {
        let mut plan = base.clone();
        edit(&mut plan);
        let docker = render_up(&plan, Cli::Docker).unwrap_err();
        assert_eq!(render_up(&plan, Cli::Podman).unwrap_err(), docker);
        docker
    };
    assert!(matches!(
        refuse(&|p| {
            p.containers[0].env.insert("K".into(), "a\0b".into());
        }),
        RenderError::Quote(_)
    ));
    assert!(matches!(
        refuse(&|p| {
            p.containers[0].env.insert("A=B".into(), "v".into());
        }),
        RenderError::Key { what: "env", .. }
    ));
    assert!(matches!(
        refuse(&|p| {
            p.containers[0].labels.insert(String::new(), "v".into());
        }),
        RenderError::Key { what: "label", .. }
    ));
    assert!(matches!(
        refuse(&|p| p.containers[0].name = "../x".into()),
        RenderError::Name {
            kind: "container",
            ..
        }
    ));
    assert!(matches!(
        refuse(&|p| p.networks[0].name = "-x".into()),
        RenderError::Name {
            kind: "network",
            ..
        }
    ));
    assert!(matches!(
        refuse(&|p| {
            let c = p.containers[0].clone();
            p.containers.push(c);
        }),
        RenderError::DuplicateContainer { .. }
    ));
    assert!(matches!(
        refuse(&|p| p.containers[0].image.name = "--privileged".into()),
        RenderError::Image { .. }
    ));
    for (files, why) in [
        (vec![text("etc/x")], "not absolute"),
        (vec![text("/")], "root directory"),
        (vec![text("/etc/../x")], "'..'"),
        (
            vec![text("/etc/x"), text("/etc//x")],
            "another file at this path",
        ),
        (
            vec![text("/etc/x"), text("/etc/x/y")],
            "lies below this path",
        ),
    ] {
        let err = refuse(&|p| p.containers[0].files = files.clone());
        assert!(err.to_string().contains(why), "{err}");
    }
    let err = refuse(&|p| {
        let mut f = text("/x");
        f.mode = 0o10644;
        p.containers[0].files = vec![f];
    });
    assert!(err.to_string().contains("mode 0o10644"), "{err}");
    let err = refuse(&|p| {
        let mut f = text("/x");
        f.source = FileSource::Text { text: "a\0".into() };
        p.containers[0].files = vec![f];
    });
    assert!(err.to_string().contains("NUL"), "{err}");
    // Not an error: files_plan is fine.
    render_up(&files_plan(std::path::Path::new("/dev/null")), Cli::Docker).unwrap();
}
