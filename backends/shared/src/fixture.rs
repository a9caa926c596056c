//! The upstream fixture (`tests/fixtures/upstream-image/`: sshd + git): a local upstream
//! for the demo, the bench and the end-to-end tests, defined once as a [`ContainerSpec`]
//! and started with [`engine::run_container`](crate::engine::run_container).
//!
//! No plan names it: it stands for the real upstream a bottle's gate reaches, so it sits on
//! the bottle's egress network as `bottle-<project>-<slug>-upstream`, labelled with the bottle's slug
//! so that `bottle down` removes it with the bottle.

use std::collections::BTreeMap;

use bottle_core::images;
use bottle_core::plan::{
    labels, resource_name, ContainerRole, ContainerSpec, Egress, FileSource, FileSpec, Hardening,
    ImageRef, NetworkRole, PortSpec, Restart,
};

/// The fixture's role: the last part of its name and its `bottle.role` label.
pub const ROLE: &str = "upstream";

/// What the fixture serves, and to whom (the entrypoint's `FIXTURE_*` variables).
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    /// The project of the bottle it serves.
    pub project: &'a str,
    /// The bottle it serves: its name, labels and network follow from this slug and the
    /// project.
    pub slug: &'a str,
    /// Repositories it creates at start, each `/srv/git/NAME.git` with one commit
    /// (`FIXTURE_REPOS`); none when repositories are copied in instead.
    pub repos: &'a [&'a str],
    /// The branch of that commit and of `HEAD` (`FIXTURE_DEFAULT_BRANCH`).
    pub default_branch: &'a str,
    /// sshd's private host key, as text (`FIXTURE_HOST_KEY`).
    pub host_key: &'a str,
    /// The public keys that may log in as `git` (`FIXTURE_AUTHORIZED_KEYS`).
    pub authorized_keys: &'a str,
}

/// The fixture's container: `bottle-<project>-<slug>-upstream` on the bottle's egress network, run
/// as the image's root (its entrypoint installs the keys, then runs sshd), with an init.
pub fn upstream(u: &Upstream) -> ContainerSpec {
    let egress = resource_name(u.project, u.slug, NetworkRole::Egress.as_str());
    ContainerSpec {
        name: resource_name(u.project, u.slug, ROLE),
        role: ContainerRole::sidecar(ROLE),
        image: ImageRef {
            name: images::UPSTREAM.tag.to_owned(),
            recipe: Some(images::UPSTREAM.name.to_owned()),
        },
        entrypoint: None,
        command: None,
        user: None,
        env: BTreeMap::from([
            ("FIXTURE_REPOS".to_owned(), u.repos.join(" ")),
            (
                "FIXTURE_DEFAULT_BRANCH".to_owned(),
                u.default_branch.to_owned(),
            ),
            ("FIXTURE_HOST_KEY".to_owned(), u.host_key.to_owned()),
            (
                "FIXTURE_AUTHORIZED_KEYS".to_owned(),
                u.authorized_keys.to_owned(),
            ),
        ]),
        host_env: BTreeMap::new(),
        labels: labels(u.project, u.slug, ROLE),
        network: egress.clone(),
        connect: Vec::new(),
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files: Vec::new(),
        init: true,
        restart: Restart::No,
        // sshd needs root and its capabilities; the limits only bound a runaway.
        hardening: Hardening {
            cap_drop: Vec::new(),
            cap_add: Vec::new(),
            no_new_privileges: false,
            pids_limit: 4096,
            memory_bytes: 4 << 30,
            no_ipv6: false,
            read_only_root: None,
        },
        ports: vec![PortSpec {
            name: "ssh".to_owned(),
            port: 22,
            network: egress,
        }],
        egress: Egress::Nothing,
        reaches: Vec::new(),
        audit: None,
    }
}

/// The role of web fixtures (`bottle-web-fixture`), on a bottle's egress network.
pub const WEB_ROLE: &str = "web";

/// A web fixture: its name (container name and host name the egress proxy resolves, e.g.
/// `web.<slug>.test`) and the TLS certificate and key it serves (PEM).
#[derive(Debug, Clone, Copy)]
pub struct Web<'a> {
    /// The project of the bottle it belongs to.
    pub project: &'a str,
    /// The bottle it belongs to.
    pub slug: &'a str,
    /// Its container name, also its host name on the egress network.
    pub name: &'a str,
    /// Its certificate chain (PEM).
    pub cert_pem: &'a str,
    /// Its private key (PEM; a test key).
    pub key_pem: &'a str,
    /// The Messages API stand-in's scripted replies, one JSON object per line
    /// (`bottle-web-fixture --script`).
    pub script: Option<&'a str>,
}

/// The spec of a web fixture (`images::WEB`) on `w.slug`'s egress network: HTTP on 80,
/// TLS on 443, as root with only `NET_BIND_SERVICE` for those ports.
pub fn web(w: &Web) -> ContainerSpec {
    let egress = resource_name(w.project, w.slug, NetworkRole::Egress.as_str());
    let file = |path: &str, mode: u32, text: &str| FileSpec {
        path: path.to_owned(),
        mode,
        uid: 0,
        gid: 0,
        source: FileSource::Text {
            text: text.to_owned(),
        },
        relocate_env: None,
    };
    let mut command: Vec<String> = [
        "--name",
        w.name,
        "--cert",
        "/etc/bottle-web/cert.pem",
        "--key",
        "/etc/bottle-web/key.pem",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut files = vec![
        file("/etc/bottle-web/cert.pem", 0o644, w.cert_pem),
        file("/etc/bottle-web/key.pem", 0o600, w.key_pem),
    ];
    if let Some(script) = w.script {
        command.extend([
            "--script".to_owned(),
            "/etc/bottle-web/script.jsonl".to_owned(),
        ]);
        files.push(file("/etc/bottle-web/script.jsonl", 0o644, script));
    }
    ContainerSpec {
        name: w.name.to_owned(),
        role: ContainerRole::sidecar(WEB_ROLE),
        image: ImageRef {
            name: images::WEB.tag.to_owned(),
            recipe: Some(images::WEB.name.to_owned()),
        },
        entrypoint: None,
        command: Some(command),
        user: None,
        env: BTreeMap::new(),
        host_env: BTreeMap::new(),
        labels: labels(w.project, w.slug, WEB_ROLE),
        network: egress.clone(),
        connect: Vec::new(),
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files,
        init: true,
        restart: Restart::No,
        hardening: Hardening {
            cap_drop: vec!["ALL".to_owned()],
            cap_add: vec!["NET_BIND_SERVICE".to_owned()],
            no_new_privileges: true,
            pids_limit: 256,
            memory_bytes: 256 << 20,
            no_ipv6: false,
            read_only_root: None,
        },
        ports: vec![
            PortSpec {
                name: "http".to_owned(),
                port: 80,
                network: egress.clone(),
            },
            PortSpec {
                name: "https".to_owned(),
                port: 443,
                network: egress,
            },
        ],
        egress: Egress::Nothing,
        reaches: Vec::new(),
        audit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_core::plan::{LABEL_ROLE, LABEL_SLUG};

    #[test]
    fn the_fixture_belongs_to_its_bottle() {
        let c = upstream(&Upstream {
            project: "web",
            slug: "demo",
            repos: &["app", "lib"],
            default_branch: "main",
            host_key: "KEY",
            authorized_keys: "ssh-ed25519 AAAA",
        });
        assert_eq!(c.name, "bottle-web-demo-upstream");
        assert_eq!(c.network, "bottle-web-demo-egress");
        assert_eq!(c.labels[LABEL_SLUG], "demo");
        assert_eq!(c.labels[LABEL_ROLE], "upstream");
        assert_eq!(c.image.name, "bottle-upstream-fixture:latest");
        assert_eq!(c.env["FIXTURE_REPOS"], "app lib");
        assert_eq!(c.env["FIXTURE_HOST_KEY"], "KEY");
    }
}
