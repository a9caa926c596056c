//! Podman under the shared engine tests: how to connect (rootful or rootless), and how to
//! look at what bottle made (podman-api's inspections).

use std::collections::HashMap;

use async_trait::async_trait;
use bottle_backend_podman::podman_api::models::Namespace;
use bottle_backend_podman::podman_api::opts::ContainerCreateOpts;
use bottle_backend_podman::{BuildOptions, Podman};
use bottle_backend_shared::testkit::{self, ContainerView, NetworkView, Quirks, TestEngine};
use bottle_core::backend::BackendError;
use futures_util::TryStreamExt;

/// The podman client under the shared tests.
#[derive(Clone)]
pub struct Under(pub Podman);

fn connected(p: Podman) -> Under {
    Under(p.with_progress(|line| eprintln!("  | {line}")))
}

/// The podman service found as `bottle` finds it (CONTAINER_HOST, else the default socket
/// for who runs the tests: root's service, or the user's own rootless one), or `None` after
/// a loud SKIP.
pub async fn podman() -> Option<Under> {
    testkit::connect_or_skip(async { Podman::connect(None).await.map(connected) }).await
}

/// The user whose rootless service [`rootless`] tests: `BOTTLE_TEST_ROOTLESS_USER`, else
/// `bottle-rl` (the user `scripts/test.sh` sets up with `scripts/setup-podman.sh`).
fn rootless_user() -> String {
    std::env::var("BOTTLE_TEST_ROOTLESS_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "bottle-rl".to_owned())
}

/// That user's rootless podman service, reached from root through its socket
/// (`/run/user/UID/podman/podman.sock`): the same scenarios in a rootless store, from the
/// same test binary. `None` after a loud SKIP when not run as root or when there is no such
/// user or socket (a socket that does not answer fails under `CI=true`).
pub async fn rootless() -> Option<Under> {
    let user = rootless_user();
    let skip = |why: String| {
        eprintln!("\n*** SKIP: rootless podman of {user} not tested: {why} ***\n");
        None
    };
    if !rustix_is_root() {
        return skip("the tests do not run as root (they test the caller's own service)".into());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some(uid) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user.as_str()) && f.len() > 2).then(|| f[2].to_owned())
    }) else {
        return skip(format!(
            "no user {user} (sudo scripts/setup-podman.sh --rootless {user})"
        ));
    };
    let socket = format!("/run/user/{uid}/podman/podman.sock");
    if !std::path::Path::new(&socket).exists() {
        return skip(format!("no socket {socket}"));
    }
    let under = testkit::connect_or_skip(async {
        Podman::connect_to(&format!("unix://{socket}"))
            .await
            .map(connected)
    })
    .await?;
    assert!(under.0.rootless(), "{socket} is not a rootless service");
    Some(under)
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[async_trait]
impl TestEngine for Under {
    type Client = Podman;

    const WHAT: &'static str = "podman API service";

    fn client(&self) -> &Podman {
        &self.0
    }

    fn quirks(&self) -> Quirks {
        Quirks {
            cli: "podman",
            build_exit_3: "exit status 3",
            init: "/run/podman-init",
            embedded_resolver: false,
            internal_has_no_route: true,
        }
    }

    fn address(&self) -> String {
        self.0.address()
    }

    async fn connect_to(address: &str) -> Result<Podman, BackendError> {
        Podman::connect_to(address).await
    }

    fn with_build_options(client: Podman, opts: BuildOptions) -> Podman {
        client.with_build_options(opts)
    }

    fn limits_enforced(&self) -> bool {
        self.0.limits_enforced()
    }

    /// Podman's inspect words capabilities relative to its default set: not reported.
    async fn container_view(&self, name: &str) -> ContainerView {
        let info = self
            .0
            .client()
            .containers()
            .get(name)
            .inspect()
            .await
            .unwrap();
        let hc = info.host_config.unwrap();
        let config = info.config.unwrap();
        ContainerView {
            cap_drop: None,
            cap_add: None,
            security_opt: hc.security_opt.unwrap_or_default(),
            pids_limit: hc.pids_limit,
            memory: hc.memory,
            memory_swap: hc.memory_swap,
            init: hc.init,
            extra_hosts: hc.extra_hosts.unwrap_or_default(),
            user: config.user,
            env: config.env.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            networks: info
                .network_settings
                .and_then(|n| n.networks)
                .map(|n| n.into_keys().collect())
                .unwrap_or_default(),
        }
    }

    async fn network_view(&self, name: &str) -> NetworkView {
        let net = self
            .0
            .client()
            .networks()
            .get(name)
            .inspect()
            .await
            .unwrap();
        NetworkView {
            internal: net.internal,
            dns_enabled: net.dns_enabled,
            labels: net.labels.unwrap_or_default(),
        }
    }

    async fn download(&self, name: &str, path: &str) -> Vec<u8> {
        self.0
            .client()
            .containers()
            .get(name)
            .copy_from(path)
            .try_concat()
            .await
            .unwrap()
    }

    async fn image_env(&self, tag: &str) -> Vec<String> {
        let info = self.0.client().images().get(tag).inspect().await.unwrap();
        info.config.and_then(|c| c.env).unwrap_or_default()
    }

    async fn remove_image_force(client: &Podman, tag: &str) {
        let _ = client.client().images().get(tag).remove().await;
    }

    async fn run_foreign(&self, name: &str, image: &str, network: &str) {
        let networks = HashMap::from([(network.to_owned(), serde_json::json!({}))]);
        self.0
            .client()
            .containers()
            .create(
                &ContainerCreateOpts::builder()
                    .name(name)
                    .image(image)
                    .command(["sleep", "3600"])
                    .networks(networks)
                    .net_namespace(Namespace {
                        nsmode: Some("bridge".into()),
                        value: None,
                    })
                    .build(),
            )
            .await
            .unwrap();
        self.0
            .client()
            .containers()
            .get(name)
            .start(None)
            .await
            .unwrap();
    }
}
