//! A sidecar added in one module of core (the test-only toy) is printed like any other:
//! created on the internal network, started before the agent, its address read and given
//! to the agent's `/etc/hosts`, its variable in the agent's environment. The dry-run names
//! no sidecar.

use bottle_backend_dryrun::{render_up, Cli};
use bottle_core::manifest::{self, Env};
use bottle_core::planner;
use bottle_core::sidecar::toy;

#[test]
fn a_sidecar_added_in_one_module_is_printed_with_its_host_entry() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[bottles.t]\nimage = \"bottle-agent:latest\"\nenv = { TOY = \"1\" }\n";
    let m = manifest::parse(&dir.path().join("bottle.toml"), text, &Env { home: None }).unwrap();
    let plan = planner::plan_with(
        m.select(Some("t")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        &toy::with_toy(),
    )
    .unwrap();
    for cli in [Cli::Docker, Cli::Podman] {
        let script = render_up(&plan, cli).unwrap();
        let at = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{cli:?}: no {needle:?} in\n{script}"))
        };
        let comment = at("# Container bottle-proj-t-toy (sidecar 'toy'; listens on toy (port 7070) on bottle-proj-t-internal).");
        let create_toy = at("--name bottle-proj-t-toy");
        let address = at("bottle-proj-t-internal\").IPAddress}}' bottle-proj-t-toy)");
        let create_agent = at("--name bottle-proj-t-agent");
        let host = at("--add-host bottle-proj-t-toy:\"$address_");
        assert!(comment < create_toy && create_toy < address && address < create_agent);
        assert!(create_agent < host);
        at("TOY_URL=git://bottle-proj-t-toy:7070/");
        // The toy does not go out: it is never connected to the egress network (which
        // the bottle has for its egress proxy).
        assert!(
            !script.contains("network connect bottle-proj-t-egress bottle-proj-t-toy"),
            "{script}"
        );
        at("network connect bottle-proj-t-egress bottle-proj-t-proxy");
    }
}
