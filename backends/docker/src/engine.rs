//! [`Engine`] for docker: each primitive one bollard call (or a few), translated from plan
//! data, answering in the engine's words. Order, concurrency, rollback and wording are
//! `bottle-backend-shared`'s.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    ListNetworksOptions, LogsOptions, RemoveContainerOptions, ResizeExecOptions,
    UploadToContainerOptions,
};
use bottle_backend_shared::engine::{
    Attached, BuildEvent, ContainerInfo, Engine, EngineError, ExecChunk, ExecState, ImageInfo,
    ImportBody, Listed, Settings,
};
use bottle_backend_shared::images::{split_reference, BuildSpec};
use bottle_backend_shared::resources;
use bottle_core::backend::{BackendError, ExecOptions};
use bottle_core::plan::{ContainerSpec, NetworkSpec, ResourceKind, Restart, WritableOn};
use futures_util::StreamExt;

use crate::{error_text, is_not_found, Docker};

/// A bollard error as an [`EngineError`]: 404 is "not found".
fn ee(e: bollard::errors::Error) -> EngineError {
    EngineError::of(is_not_found(&e), error_text(&e))
}

/// The bridge driver's option that leaves the host side of a bridge without an IPv4
/// address.
const INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";

fn label_filters(slug: Option<&str>) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), resources::label_filters(slug))])
}

#[async_trait]
impl Engine for Docker {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn who(&self) -> &'static str {
        "the engine"
    }

    fn missing_image(&self, image: &str, container: &str) -> String {
        format!(
            "image {image} (for container {container}) does not exist on the engine at {}; nothing was created\n  hint: build it (`docker build -t {image} DIR`) or pull it (`docker pull {image}`), or set the bottle's `image` to one you have",
            self.host
        )
    }

    async fn exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError> {
        let found = match kind {
            ResourceKind::Container => self.client.inspect_container(name, None).await.map(|_| ()),
            ResourceKind::Network => self.client.inspect_network(name, None).await.map(|_| ()),
        };
        match found {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(ee(e)),
        }
    }

    async fn create_network(&self, n: &NetworkSpec) -> Result<String, EngineError> {
        // A bridge without the host's address on it (NetworkSpec::host): Docker still
        // reserves the gateway's address in the subnet and gives containers a default route
        // to it, but nothing holds it, so the host is out of their reach.
        let options =
            (!n.host).then(|| HashMap::from([(INHIBIT_IPV4.to_owned(), "true".to_owned())]));
        let request = NetworkCreateRequest {
            name: n.name.clone(),
            driver: Some("bridge".to_owned()),
            internal: Some(n.internal),
            labels: Some(n.labels.clone().into_iter().collect()),
            options,
            ..Default::default()
        };
        Ok(self.client.create_network(request).await.map_err(ee)?.id)
    }

    /// API 1.41 creates a second network with the same name unless told not to (and
    /// bollard's request type cannot tell it): make sure ours is the only one.
    async fn check_network(&self, n: &NetworkSpec, id: &str) -> Result<(), BackendError> {
        let filters = HashMap::from([("name".to_owned(), vec![n.name.clone()])]);
        let list = self
            .client
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| ee(e).at(format!("list networks named {}", n.name)))?;
        let twins = list
            .iter()
            .filter(|x| x.name.as_deref() == Some(n.name.as_str()) && x.id.as_deref() != Some(id))
            .count();
        if twins > 0 {
            return Err(BackendError::Engine {
                action: format!("create network {}", n.name),
                message: format!(
                    "another network named {} appeared meanwhile (is another `bottle up` of this bottle running?)",
                    n.name
                ),
            });
        }
        Ok(())
    }

    async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.client.remove_network(id).await.map_err(ee)
    }

    async fn network_containers(&self, id: &str) -> Result<Vec<String>, EngineError> {
        let network = self.client.inspect_network(id, None).await.map_err(ee)?;
        Ok(network.containers.unwrap_or_default().into_keys().collect())
    }

    async fn disconnect(&self, network: &str, container: &str) -> Result<(), EngineError> {
        let request = NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        self.client
            .disconnect_network(network, request)
            .await
            .map_err(ee)
    }

    async fn create_container(&self, c: &ContainerSpec) -> Result<String, EngineError> {
        let h = &c.hardening;
        let mut security_opt = Vec::new();
        if h.no_new_privileges {
            security_opt.push("no-new-privileges".to_owned());
        }
        let (volumes, tmpfs) = writable_places(c);
        let body = ContainerCreateBody {
            image: Some(c.image.name.clone()),
            volumes,
            entrypoint: c.entrypoint.clone(),
            cmd: c.command.clone(),
            user: c.user.clone(),
            env: Some(
                c.env_exposed()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(c.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                network_mode: Some(c.network.clone()),
                cap_drop: Some(h.cap_drop.clone()),
                cap_add: Some(h.cap_add.clone()),
                security_opt: Some(security_opt),
                pids_limit: Some(h.pids_limit),
                memory: Some(h.memory_bytes),
                // Swap limit = memory limit: no swap on top of the memory limit.
                memory_swap: Some(h.memory_bytes),
                init: Some(c.init),
                restart_policy: Some(restart_policy(c.restart)),
                sysctls: Some(h.sysctls().into_iter().collect()),
                readonly_rootfs: Some(h.read_only_root.is_some()),
                tmpfs,
                extra_hosts: Some(
                    c.extra_hosts
                        .iter()
                        .map(|(host, ip)| format!("{host}:{ip}"))
                        .collect(),
                ),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    c.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(c.name.clone()),
            ..Default::default()
        };
        Ok(self
            .client
            .create_container(Some(options), body)
            .await
            .map_err(ee)?
            .id)
    }

    async fn copy_in(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        let options = UploadToContainerOptions {
            path: dir.to_owned(),
            ..Default::default()
        };
        self.client
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(ee)
    }

    async fn connect(&self, id: &str, network: &str) -> Result<(), EngineError> {
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(EndpointSettings::default()),
        };
        self.client
            .connect_network(network, request)
            .await
            .map_err(ee)
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.client.start_container(id, None).await.map_err(ee)
    }

    async fn stop_container(&self, id: &str) -> Result<(), EngineError> {
        self.client.stop_container(id, None).await.map_err(ee)
    }

    async fn address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, EngineError> {
        let c = self.client.inspect_container(id, None).await.map_err(ee)?;
        Ok(c.network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|n| n.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        self.client
            .remove_container(id, Some(options))
            .await
            .map_err(ee)
    }

    async fn list_containers(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filters(slug)),
            ..Default::default()
        };
        let containers = self
            .client
            .list_containers(Some(options))
            .await
            .map_err(ee)?;
        Ok(containers
            .into_iter()
            .map(|c| Listed {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                labels: c.labels,
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }

    async fn list_networks(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError> {
        let options = ListNetworksOptions {
            filters: Some(label_filters(slug)),
        };
        let networks = self.client.list_networks(Some(options)).await.map_err(ee)?;
        Ok(networks
            .into_iter()
            .map(|n| Listed {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: n.labels,
                state: String::new(),
            })
            .collect())
    }

    async fn container_running(&self, name: &str) -> Result<bool, EngineError> {
        let c = self
            .client
            .inspect_container(name, None)
            .await
            .map_err(ee)?;
        Ok(c.state.and_then(|s| s.running) == Some(true))
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, EngineError> {
        let c = self.client.inspect_container(id, None).await.map_err(ee)?;
        let state = c.state.unwrap_or_default();
        Ok(ContainerInfo {
            restarts: c
                .restart_count
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            started_at: ContainerInfo::started(state.started_at),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
        })
    }

    async fn output_log(&self, name: &str) -> Result<Vec<ExecChunk>, EngineError> {
        self.logs(name, true).await
    }

    async fn stdout_log(&self, name: &str) -> Result<Vec<u8>, EngineError> {
        let mut out = Vec::new();
        for chunk in self.logs(name, false).await? {
            if let ExecChunk::Stdout(message) = chunk {
                out.extend_from_slice(&message);
            }
        }
        Ok(out)
    }

    async fn inspect_image(&self, name: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.client.inspect_image(name).await {
            Ok(i) => {
                let config = i.config.unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: i.id,
                    labels: config.labels.unwrap_or_default(),
                    entrypoint: config.entrypoint,
                    cmd: config.cmd,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(ee(e)),
        }
    }

    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.client
            .remove_image(
                id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .map(|_| ())
            .map_err(ee)
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        labels: &BTreeMap<String, String>,
        tar: Vec<u8>,
        event: &mut (dyn for<'a> FnMut(BuildEvent<'a>) + Send),
    ) -> Result<(), EngineError> {
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_owned(),
            t: Some(spec.tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args.clone().into_iter().collect()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        while let Some(item) = stream.next().await {
            let info = item.map_err(ee)?;
            event(BuildEvent::Output(
                &info.stream.or(info.status).unwrap_or_default(),
            ));
        }
        Ok(())
    }

    async fn import(
        &self,
        body: ImportBody,
        image: &str,
        changes: &[String],
    ) -> Result<(), EngineError> {
        let (repo, tag) = split_reference(image);
        let body = match body {
            ImportBody::Bytes(b) => bollard::body_full(b.into()),
            ImportBody::File(file) => {
                bollard::body_try_stream(tokio_util::io::ReaderStream::new(file))
            }
        };
        let options = CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            changes: changes.to_vec(),
            ..Default::default()
        };
        let mut stream = self.client.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            if let Some(status) = item.map_err(ee)?.status.filter(|s| !s.trim().is_empty()) {
                self.progress(&format!("import {image}: {}", status.trim()));
            }
        }
        Ok(())
    }

    /// Docker takes no size at start: the shared resizer sets it right after.
    async fn start_exec(
        &self,
        container: &str,
        command: &[String],
        exec: &ExecOptions,
        tty: bool,
        stdin: bool,
        _size: Option<(u16, u16)>,
    ) -> Result<Option<Attached>, EngineError> {
        let options = CreateExecOptions {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(command.to_vec()),
            user: exec.user.clone(),
            working_dir: exec.workdir.clone(),
            env: Some(exec.env_pairs()).filter(|e| !e.is_empty()),
            ..Default::default()
        };
        let exec = self
            .client
            .create_exec(container, options)
            .await
            .map_err(ee)?;
        let start = StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        let started = self
            .client
            .start_exec(&exec.id, Some(start))
            .await
            .map_err(ee)?;
        let StartExecResults::Attached { output, input } = started else {
            return Ok(None);
        };
        let output = output
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdErr { message }) => Some(Ok(ExecChunk::Stderr(message))),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok(ExecChunk::Stdout(message)))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(ee(e))),
                }
            })
            .boxed();
        Ok(Some(Attached {
            id: exec.id,
            output,
            input,
        }))
    }

    async fn inspect_exec(&self, id: &str) -> Result<ExecState, EngineError> {
        let info = self.client.inspect_exec(id).await.map_err(ee)?;
        Ok(ExecState {
            running: info.running,
            exit_code: info.exit_code,
        })
    }

    async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let options = ResizeExecOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        self.client.resize_exec(id, options).await.map_err(ee)
    }
}

impl Docker {
    /// Container `name`'s output so far, as the engine kept it: standard output (a TTY's
    /// output counts as that), and standard error when `stderr`.
    async fn logs(&self, name: &str, stderr: bool) -> Result<Vec<ExecChunk>, EngineError> {
        let options = LogsOptions {
            stdout: true,
            stderr,
            ..Default::default()
        };
        let mut stream = self.client.logs(name, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item.map_err(ee)? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.push(ExecChunk::Stdout(message))
                }
                LogOutput::StdErr { message } => out.push(ExecChunk::Stderr(message)),
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(out)
    }
}

/// A read-only container's writable places as docker takes them: its disk-backed ones as
/// anonymous volumes (`Volumes`, the `-v PATH` form, which `rm -v` removes with the
/// container; docker fills a new one with what the image holds at the path, owner and
/// mode included), its memory-backed ones as sized tmpfs mounts.
fn writable_places(c: &ContainerSpec) -> (Option<Vec<String>>, Option<HashMap<String, String>>) {
    let Some(writable) = &c.hardening.read_only_root else {
        return (None, None);
    };
    let mut volumes = Vec::new();
    let mut tmpfs = HashMap::new();
    for w in writable {
        match w.on {
            WritableOn::Disk => volumes.push(w.path.clone()),
            WritableOn::Memory { bytes } => {
                tmpfs.insert(w.path.clone(), c.tmpfs_options(bytes));
            }
        }
    }
    (Some(volumes), Some(tmpfs))
}

/// The plan's [`Restart`] as Docker's `HostConfig.RestartPolicy`.
fn restart_policy(r: Restart) -> RestartPolicy {
    match r {
        Restart::No => RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        Restart::OnFailure { max_tries } => RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(i64::from(max_tries)),
        },
    }
}
