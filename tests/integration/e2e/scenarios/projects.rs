//! Projects: two directories, each with a bottle of the same name, keep apart on one engine.

use std::path::PathBuf;
use std::process::Command;

use bottle_core::plan::resource_name;

use super::{expect_ok, run, said, show, Engine, Harness, Options};

/// The bottle name both projects use.
const TWIN: &str = "twin";

/// Takes both projects' bottles down when the scenario ends, also when it fails.
struct DownOnDrop<'a> {
    h: &'a Harness,
    dirs: Vec<PathBuf>,
}

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let out = run(self.h.bottle_in(dir).arg("down"));
            if !out.status.success() {
                eprintln!("warning: bottle down in {}: {}", dir.display(), show(&out));
            }
        }
    }
}

/// Projects: the bottle `twin` of two projects (two directories, each project named after
/// its directory) comes up in both; `ps` in one shows only its own (`ps --all` both);
/// `down` in one leaves the other running; `cleanup` in one leaves the other's containers
/// (its stopped ones included) and removes only its own stopped bottle.
pub fn two_projects_with_one_bottle_name_keep_apart(engine: &'static Engine) {
    let Some(h) = Harness::prepare(engine, Options::new("proj")) else {
        return;
    };
    let manifest = format!(
        "[bottles.{TWIN}]\nimage = {:?}\ncommand = [\"sleep\", \"infinity\"]\n",
        h.opts.image
    );
    // The default project is the directory's name (already valid, so kept as it is).
    let (pa, pb) = (format!("{}-a", h.slug), format!("{}-b", h.slug));
    let a = h.project_dir(&pa, &manifest);
    let b = h.project_dir(&pb, &manifest);
    let _down = DownOnDrop {
        h: &h,
        dirs: vec![a.clone(), b.clone()],
    };
    let (agent_a, agent_b) = (
        resource_name(&pa, TWIN, "agent"),
        resource_name(&pb, TWIN, "agent"),
    );

    expect_ok(run(h.bottle_in(&a).arg("up")), "bottle up in project a");
    expect_ok(
        run(h.bottle_in(&b).arg("up")),
        "bottle up in project b (same bottle name, other project)",
    );
    assert_eq!(
        state(&h, &agent_a).as_deref(),
        Some("true"),
        "a's agent runs"
    );
    assert_eq!(
        state(&h, &agent_b).as_deref(),
        Some("true"),
        "b's agent runs"
    );

    // ps: each project sees its own twin only; --all sees both.
    for (dir, own, other) in [(&a, &pa, &pb), (&b, &pb, &pa)] {
        let projects = ps_projects(h.bottle_in(dir).args(["ps", "--format", "json"]));
        assert!(
            projects.contains(&(Some(own.clone()), TWIN.to_owned())),
            "ps in {own} does not list its own bottle: {projects:?}"
        );
        assert!(
            projects
                .iter()
                .all(|(p, _)| p.as_deref() != Some(other.as_str())),
            "ps in {own} lists project {other}'s bottle: {projects:?}"
        );
    }
    let all = ps_projects(h.bottle_in(&a).args(["ps", "--all", "--format", "json"]));
    for p in [&pa, &pb] {
        assert!(
            all.contains(&(Some(p.clone()), TWIN.to_owned())),
            "ps --all does not list {p}'s bottle: {all:?}"
        );
    }

    // down in a leaves b running.
    expect_ok(run(h.bottle_in(&a).arg("down")), "bottle down in project a");
    assert_eq!(
        state(&h, &agent_a),
        None,
        "a's agent is gone after its down"
    );
    assert_eq!(
        state(&h, &agent_b).as_deref(),
        Some("true"),
        "down in project a stopped project b's bottle"
    );
    assert_eq!(
        labelled(&h, "container", &pa),
        [""; 0],
        "down in project a left some of its containers"
    );

    // cleanup: a's bottle up again and stopped; cleanup in b touches neither a's stopped
    // bottle nor its own running one; cleanup in a keeps a's while it is complete, removes
    // it once it is an orphan, and leaves b's.
    expect_ok(
        run(h.bottle_in(&a).arg("up")),
        "bottle up again in project a",
    );
    let a_containers = labelled(&h, "container", &pa);
    assert!(a_containers.len() >= 2, "a's containers: {a_containers:?}");
    let mut stop = vec!["stop", "-t", "1"];
    stop.extend(a_containers.iter().map(String::as_str));
    h.engine_ok(&stop);

    let out = expect_ok(run(h.bottle_in(&b).arg("cleanup")), "bottle cleanup in b");
    assert!(
        out.contains(&format!("left running: bottle '{TWIN}'")) && !out.contains("removed"),
        "cleanup in b with its bottle running:\n{out}"
    );
    assert_eq!(
        labelled(&h, "container", &pa),
        a_containers,
        "cleanup in project b removed project a's stopped containers"
    );
    assert_eq!(state(&h, &agent_b).as_deref(), Some("true"));

    // A complete stopped bottle (what `bottle stop` leaves) is kept by a plain cleanup,
    // which says so; without its agent it is an orphan, and cleanup removes the rest.
    let out = expect_ok(run(h.bottle_in(&a).arg("cleanup")), "bottle cleanup in a");
    assert!(
        out.contains(&format!("kept stopped: bottle '{TWIN}'")) && !out.contains("removed"),
        "cleanup in a with its bottle stopped, complete:\n{out}"
    );
    assert_eq!(labelled(&h, "container", &pa), a_containers);
    h.engine_ok(&["rm", "-f", &agent_a]);
    let out = expect_ok(run(h.bottle_in(&a).arg("cleanup")), "bottle cleanup in a");
    let sidecar_a = a_containers
        .iter()
        .find(|c| **c != agent_a)
        .expect("a's bottle has a sidecar");
    assert!(
        out.contains(&format!("removed container {sidecar_a}")),
        "cleanup in a does not say it removed {sidecar_a}:\n{out}"
    );
    for kind in ["container", "network"] {
        assert_eq!(
            labelled(&h, kind, &pa),
            [""; 0],
            "cleanup in project a left {kind}s of its orphaned bottle"
        );
    }
    assert_eq!(
        state(&h, &agent_b).as_deref(),
        Some("true"),
        "cleanup in project a touched project b's running bottle"
    );
}

/// `{{.State.Running}}` of a container, `None` when there is no such container.
fn state(h: &Harness, name: &str) -> Option<String> {
    let out = h.engine(&["inspect", "-f", "{{.State.Running}}", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The containers or networks labelled with `project`, by name, sorted.
fn labelled(h: &Harness, kind: &str, project: &str) -> Vec<String> {
    let filter = format!("label=bottle.project={project}");
    let out = if kind == "container" {
        h.engine_ok(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
    } else {
        h.engine_ok(&[
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ])
    };
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// The (project, bottle) pairs `bottle ps --format json` lists.
fn ps_projects(cmd: &mut Command) -> Vec<(Option<String>, String)> {
    let out = run(cmd);
    let text = said(&out);
    assert!(out.status.success(), "bottle ps failed:\n{}", show(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("ps JSON: {e}\n{text}"));
    v.as_array()
        .expect("a list")
        .iter()
        .map(|b| {
            (
                b["project"].as_str().map(str::to_owned),
                b["slug"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
