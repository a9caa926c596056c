//! The docker engine under the shared engine tests: how to connect, and how to look at
//! what bottle made (bollard's inspections).

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, RemoveImageOptions,
};
use bottle_backend_docker::{bollard, BuildOptions, Docker};
use bottle_backend_shared::testkit::{self, ContainerView, NetworkView, Quirks, TestEngine};
use bottle_core::backend::BackendError;
use futures_util::TryStreamExt;

/// The docker client under the shared tests.
#[derive(Clone)]
pub struct Under(pub Docker);

/// The engine (`DOCKER_HOST` or the default socket), or `None` after a loud SKIP.
pub async fn docker() -> Option<Under> {
    testkit::connect_or_skip(async {
        Docker::connect()
            .await
            .map(|d| Under(d.with_progress(|line| eprintln!("  | {line}"))))
    })
    .await
}

#[async_trait]
impl TestEngine for Under {
    type Client = Docker;

    const WHAT: &'static str = "docker engine";

    fn client(&self) -> &Docker {
        &self.0
    }

    fn quirks(&self) -> Quirks {
        Quirks {
            cli: "docker",
            build_exit_3: "non-zero code: 3",
            init: "/sbin/docker-init",
            embedded_resolver: true,
            internal_has_no_route: false,
        }
    }

    fn address(&self) -> String {
        self.0.host().to_owned()
    }

    async fn connect_to(address: &str) -> Result<Docker, BackendError> {
        Docker::connect_to(address).await
    }

    fn with_build_options(client: Docker, opts: BuildOptions) -> Docker {
        client.with_build_options(opts)
    }

    async fn container_view(&self, name: &str) -> ContainerView {
        let info = self.0.client().inspect_container(name, None).await.unwrap();
        let hc = info.host_config.unwrap();
        let config = info.config.unwrap();
        ContainerView {
            cap_drop: hc.cap_drop,
            cap_add: hc.cap_add,
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
        let net = self.0.client().inspect_network(name, None).await.unwrap();
        NetworkView {
            internal: net.internal,
            dns_enabled: None,
            labels: net.labels.unwrap_or_default(),
        }
    }

    async fn download(&self, name: &str, path: &str) -> Vec<u8> {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        self.0
            .client()
            .download_from_container(name, Some(options))
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .unwrap()
    }

    async fn image_env(&self, tag: &str) -> Vec<String> {
        let info = self.0.client().inspect_image(tag).await.unwrap();
        info.config.and_then(|c| c.env).unwrap_or_default()
    }

    async fn remove_image_force(client: &Docker, tag: &str) {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        let _ = client.client().remove_image(tag, Some(options), None).await;
    }

    async fn run_foreign(&self, name: &str, image: &str, network: &str) {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_owned()),
                ..Default::default()
            }),
            labels: Some(HashMap::new()),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        self.0
            .client()
            .create_container(Some(options), body)
            .await
            .unwrap();
        self.0.client().start_container(name, None).await.unwrap();
    }
}
