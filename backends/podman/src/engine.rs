//! [`Engine`] for podman: each primitive one libpod call (or a few), translated from plan
//! data, answering in podman's words. Order, concurrency, rollback and wording are
//! `bottle-backend-shared`'s.

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use bottle_backend_shared::engine::{
    Attached, BuildEvent, ContainerInfo, Engine, EngineError, ExecChunk, ExecState, ImageInfo,
    ImportBody, Listed, Settings,
};
use bottle_backend_shared::images::BuildSpec;
use bottle_core::backend::ExecOptions;
use bottle_core::plan::{
    ContainerSpec, NetworkSpec, Plan, ResourceKind, Restart, WritableOn, LABEL_MANAGED, LABEL_SLUG,
};
use futures_util::StreamExt;
use podman_api::conn::TtyChunk;
use podman_api::opts::{
    ContainerListFilter, ContainerListOpts, ContainerLogsOpts, ExecCreateOpts, ExecStartOpts,
    NetworkConnectOpts, NetworkCreateOpts, NetworkListFilter, NetworkListOpts, UserOpt,
};
use serde_json::json;
use tokio_util::compat::FuturesAsyncWriteCompatExt;

use crate::raw::{self, RawError};
use crate::{error_text, is_not_found, Podman};

/// A podman-api error as an [`EngineError`]: 404 is "not found".
fn ee(e: podman_api::Error) -> EngineError {
    EngineError::of(is_not_found(&e), error_text(&e))
}

/// A raw call's error as an [`EngineError`].
fn raw_ee(e: RawError) -> EngineError {
    EngineError::new(e.text())
}

#[async_trait]
impl Engine for Podman {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn who(&self) -> &'static str {
        "podman"
    }

    fn missing_image(&self, image: &str, container: &str) -> String {
        format!(
            "image {image} (for container {container}) does not exist in podman's store at {}; nothing was created\n  hint: build it (`podman build -t {image} DIR`) or pull it (`podman pull {image}`) as the same user bottle runs as (rootless podman has one store per user), or set the bottle's `image` to one you have",
            self.address
        )
    }

    fn warnings(&self, plan: &Plan) -> Vec<String> {
        if self.limits_enforced() {
            return Vec::new();
        }
        vec![format!(
            "bottle: warning: rootless podman on cgroups {} cannot enforce the pids and memory limits of bottle '{}' (podman ignores them); use cgroups v2 with delegation, or rootful podman, to have them",
            self.cgroup_version(),
            plan.slug
        )]
    }

    async fn exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError> {
        match kind {
            ResourceKind::Container => self.api.containers().get(name).exists().await,
            ResourceKind::Network => self.api.networks().get(name).exists().await,
        }
        .map_err(ee)
    }

    /// (Podman refuses a second network of the same name: no twin check is needed.)
    async fn create_network(&self, n: &NetworkSpec) -> Result<String, EngineError> {
        // netavark gives an internal bridge no address on the host (no gateway: measured
        // with netavark 1.4, rootful and rootless), which is what NetworkSpec::host = false
        // asks; a bridge that is not internal always gets its gateway's address on the host.
        if !n.host && !n.internal {
            return Err(EngineError::new(format!(
                "network {} is planned with no address of the host on it and a route out; podman (netavark) can leave the host's address off an internal network only",
                n.name
            )));
        }
        let opts = NetworkCreateOpts::builder()
            .name(&n.name)
            .driver("bridge")
            .internal(n.internal)
            // The API's default is no DNS (the CLI's is DNS): say which, as planned. The
            // internal network has none (the agent finds its gate through /etc/hosts), so
            // aardvark-dns cannot relay the agent's lookups out of it.
            .dns_enabled(n.dns)
            .labels(n.labels.clone())
            .build();
        // Podman 4.3 looks for a free subnet by listing the host's interfaces and then their
        // addresses; a bridge that goes away in between (another bottle's `down`) fails the
        // create with "route ip+net: no such network interface" (seen with rootless podman
        // under concurrent tests). Nothing was created then: try again, a few times.
        let mut attempt = 0;
        let network = loop {
            attempt += 1;
            match self.api.networks().create(&opts).await {
                Ok(network) => break network,
                Err(e) if attempt < 4 && error_text(&e).contains("no such network interface") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(ee(e)),
            }
        };
        Ok(network.id.unwrap_or_else(|| n.name.clone()))
    }

    async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.api
            .networks()
            .get(id)
            .delete()
            .await
            .map(|_| ())
            .map_err(ee)
    }

    async fn network_containers(&self, id: &str) -> Result<Vec<String>, EngineError> {
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter([ContainerListFilter::Network(id.to_owned())])
            .build();
        let attached = self.api.containers().list(&opts).await.map_err(ee)?;
        Ok(attached
            .into_iter()
            .map(|c| c.id.unwrap_or_default())
            .collect())
    }

    async fn disconnect(&self, network: &str, container: &str) -> Result<(), EngineError> {
        self.api
            .containers()
            .get(container)
            .disconnect(network, true)
            .await
            .map_err(ee)
    }

    /// Through the module `raw`: podman-api's builder misspells `no_new_privileges`.
    async fn create_container(&self, c: &ContainerSpec) -> Result<String, EngineError> {
        let answer = self
            .raw
            .json(
                hyper::Method::POST,
                "/libpod/containers/create",
                Some(&spec_generator(c)),
            )
            .await
            .map_err(raw_ee)?;
        let id = answer
            .get("Id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                EngineError::new(format!("podman's answer has no container id: {answer}"))
            })?
            .to_owned();
        if let Some(warnings) = answer.get("Warnings").and_then(|w| w.as_array()) {
            for w in warnings.iter().filter_map(|w| w.as_str()) {
                self.progress(&format!("bottle: podman: {}: {w}", c.name));
            }
        }
        Ok(id)
    }

    /// The Docker-compatible archive endpoint: it keeps each entry's uid/gid, where
    /// libpod's would chown everything to the container's user.
    async fn copy_in(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<(), EngineError> {
        self.api
            .containers()
            .get(id)
            .copy_to(dir, tar.into())
            .await
            .map_err(ee)
    }

    async fn connect(&self, id: &str, network: &str) -> Result<(), EngineError> {
        self.api
            .containers()
            .get(id)
            .connect(network, &NetworkConnectOpts::default())
            .await
            .map_err(ee)
    }

    async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.api.containers().get(id).start(None).await.map_err(ee)
    }

    async fn stop_container(&self, id: &str) -> Result<(), EngineError> {
        self.api
            .containers()
            .get(id)
            .stop(&Default::default())
            .await
            .map_err(ee)
    }

    async fn address(&self, id: &str, network: &str) -> Result<Option<IpAddr>, EngineError> {
        let c = self.api.containers().get(id).inspect().await.map_err(ee)?;
        Ok(c.network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|n| n.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }

    /// Through the module `raw`: podman-api asks for the volumes' removal as `v=true`,
    /// which libpod 4.3 ignores (its parameter is `volumes`; measured: a container's
    /// anonymous volumes outlived it). Both are sent, for libpod versions that read `v`.
    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!(
            "/libpod/containers/{}?force=true&v=true&volumes=true",
            raw::encode(id)
        );
        match self
            .raw
            .call(
                hyper::Method::DELETE,
                &path,
                "application/json",
                raw::full(bytes::Bytes::new()),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e @ RawError::Status { status: 404, .. }) => Err(EngineError::not_found(e.text())),
            Err(e) => Err(raw_ee(e)),
        }
    }

    async fn list_containers(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError> {
        let mut filters = vec![ContainerListFilter::LabelKey(LABEL_MANAGED.to_owned())];
        if let Some(slug) = slug {
            filters.push(ContainerListFilter::LabelKeyVal(
                LABEL_SLUG.to_owned(),
                slug.to_owned(),
            ));
        }
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter(filters)
            .build();
        let containers = self.api.containers().list(&opts).await.map_err(ee)?;
        Ok(containers
            .into_iter()
            .map(|c| Listed {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .cloned()
                    .unwrap_or_default(),
                labels: c.labels,
                state: c.state.unwrap_or_default(),
            })
            .collect())
    }

    /// A network's key is its name: the container filter `network=` and disconnect take
    /// names, and podman's network names are unique.
    async fn list_networks(&self, slug: Option<&str>) -> Result<Vec<Listed>, EngineError> {
        let mut filters = vec![NetworkListFilter::LabelKey(LABEL_MANAGED.to_owned())];
        if let Some(slug) = slug {
            filters.push(NetworkListFilter::LabelKeyVal(
                LABEL_SLUG.to_owned(),
                slug.to_owned(),
            ));
        }
        let opts = NetworkListOpts::builder().filter(filters).build();
        let networks = self.api.networks().list(&opts).await.map_err(ee)?;
        Ok(networks
            .into_iter()
            .map(|n| {
                let name = n.name.unwrap_or_default();
                Listed {
                    id: name.clone(),
                    name,
                    labels: n.labels,
                    state: String::new(),
                }
            })
            .collect())
    }

    async fn container_running(&self, name: &str) -> Result<bool, EngineError> {
        let c = self
            .api
            .containers()
            .get(name)
            .inspect()
            .await
            .map_err(ee)?;
        Ok(c.state.and_then(|s| s.running) == Some(true))
    }

    /// Through the module `raw`: podman-api's model of libpod's inspect output has no
    /// `RestartCount`.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, EngineError> {
        // `id` is the engine's own (hex) id, from its container list.
        let path = format!("/libpod/containers/{id}/json");
        let answer = self
            .raw
            .json(hyper::Method::GET, &path, None)
            .await
            .map_err(raw_ee)?;
        let state = answer.get("State");
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        // Podman 4 calls it `Health`, older releases `Healthcheck`; an empty status is none.
        let health = state
            .and_then(|s| s.get("Health").or_else(|| s.get("Healthcheck")))
            .and_then(|h| text(h.get("Status")))
            .filter(|h| !h.is_empty());
        Ok(ContainerInfo {
            restarts: answer
                .get("RestartCount")
                .and_then(|n| n.as_u64())
                .unwrap_or(0),
            started_at: ContainerInfo::started(text(state.and_then(|s| s.get("StartedAt")))),
            health,
        })
    }

    async fn output_log(&self, name: &str) -> Result<Vec<ExecChunk>, EngineError> {
        let opts = ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .build();
        let container = self.api.containers().get(name);
        let mut stream = container.logs(&opts);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(ee)? {
                TtyChunk::StdOut(bytes) => out.push(ExecChunk::Stdout(bytes.into())),
                TtyChunk::StdErr(bytes) => out.push(ExecChunk::Stderr(bytes.into())),
                TtyChunk::StdIn(_) => {}
            }
        }
        Ok(out)
    }

    async fn stdout_log(&self, name: &str) -> Result<Vec<u8>, EngineError> {
        let opts = ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(false)
            .build();
        let container = self.api.containers().get(name);
        let mut stream = container.logs(&opts);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            if let TtyChunk::StdOut(bytes) = chunk.map_err(ee)? {
                out.extend_from_slice(&bytes);
            }
        }
        Ok(out)
    }

    async fn inspect_image(&self, name: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.api.images().get(name).inspect().await {
            Ok(i) => {
                let (entrypoint, cmd) = i.config.map(|c| (c.entrypoint, c.cmd)).unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: i.id,
                    labels: i.labels.unwrap_or_default(),
                    entrypoint,
                    cmd,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(ee(e)),
        }
    }

    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.api.images().get(id).delete().await.map_err(ee)
    }

    /// Through the module `raw`: from the in-memory context, with the build's own error lines.
    async fn build(
        &self,
        spec: &BuildSpec,
        labels: &BTreeMap<String, String>,
        tar: Vec<u8>,
        event: &mut (dyn for<'a> FnMut(BuildEvent<'a>) + Send),
    ) -> Result<(), EngineError> {
        let query = raw::query([
            ("t", spec.tag.clone()),
            ("dockerfile", "Dockerfile".to_owned()),
            ("rm", "true".to_owned()),
            ("forcerm", "true".to_owned()),
            (
                "buildargs",
                serde_json::to_string(&spec.build_args).expect("JSON"),
            ),
            ("labels", serde_json::to_string(labels).expect("JSON")),
        ]);
        let response = self
            .raw
            .call(
                hyper::Method::POST,
                &format!("/libpod/build?{query}"),
                "application/x-tar",
                raw::full(tar),
            )
            .await
            .map_err(raw_ee)?;
        raw::for_each_line(response, |line| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                return;
            };
            if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                event(BuildEvent::Error(e));
            }
            if let Some(text) = v.get("stream").and_then(|s| s.as_str()) {
                event(BuildEvent::Output(text));
            }
        })
        .await
        .map_err(raw_ee)
    }

    /// Through the module `raw`: streamed from the file, not buffered whole.
    async fn import(
        &self,
        body: ImportBody,
        image: &str,
        changes: &[String],
    ) -> Result<(), EngineError> {
        let body = match body {
            ImportBody::Bytes(b) => raw::full(b),
            ImportBody::File(file) => raw::file(file),
        };
        let query = raw::query(
            std::iter::once(("reference", image.to_owned()))
                .chain(changes.iter().map(|c| ("changes", c.clone()))),
        );
        let response = self
            .raw
            .call(
                hyper::Method::POST,
                &format!("/libpod/images/import?{query}"),
                "application/x-tar",
                body,
            )
            .await
            .map_err(raw_ee)?;
        raw::for_each_line(response, |_| {}).await.map_err(raw_ee)
    }

    /// Podman takes the terminal's size at start (the shared resizer follows it after).
    async fn start_exec(
        &self,
        container: &str,
        command: &[String],
        options: &ExecOptions,
        tty: bool,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Option<Attached>, EngineError> {
        let mut create = ExecCreateOpts::builder()
            .command(command)
            .attach_stdin(stdin)
            .attach_stdout(true)
            .attach_stderr(true)
            .tty(tty);
        if let Some(user) = &options.user {
            // Displayed as given: a name or uid, with its `:group` if any.
            create = create.user(UserOpt::User(user.clone()));
        }
        if let Some(dir) = &options.workdir {
            create = create.working_dir(dir);
        }
        if !options.env.is_empty() {
            create = create.env(options.env.iter().map(|(k, v)| (k, v)));
        }
        let create = create.build();
        let exec = self
            .api
            .containers()
            .get(container)
            .create_exec(&create)
            .await
            .map_err(ee)?;
        let mut start = ExecStartOpts::builder().tty(tty);
        if let Some((rows, cols)) = size {
            start = start.height(usize::from(rows)).width(usize::from(cols));
        }
        let Some(attached) = exec.start(&start.build()).await.map_err(ee)? else {
            return Ok(None);
        };
        let (output, input) = attached.split();
        let output = output
            .filter_map(|item| async move {
                match item {
                    Ok(TtyChunk::StdErr(b)) => Some(Ok(ExecChunk::Stderr(b.into()))),
                    Ok(TtyChunk::StdOut(b)) => Some(Ok(ExecChunk::Stdout(b.into()))),
                    Ok(TtyChunk::StdIn(_)) => None,
                    // The stream's own words (not a libpod fault).
                    Err(e) => Some(Err(EngineError::new(e.to_string()))),
                }
            })
            .boxed();
        Ok(Some(Attached {
            id: exec.id().to_string(),
            output,
            input: Box::pin(input.compat_write()),
        }))
    }

    async fn inspect_exec(&self, id: &str) -> Result<ExecState, EngineError> {
        let info = self.api.execs().get(id).inspect().await.map_err(ee)?;
        Ok(ExecState {
            running: info.get("Running").and_then(|r| r.as_bool()),
            exit_code: info.get("ExitCode").and_then(|c| c.as_i64()),
        })
    }

    async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        self.api
            .execs()
            .get(id)
            .resize(usize::from(cols), usize::from(rows))
            .await
            .map_err(ee)
    }
}

/// The libpod SpecGenerator of a container: exactly the plan, nothing added.
pub(crate) fn spec_generator(c: &ContainerSpec) -> serde_json::Value {
    let h = &c.hardening;
    let mut spec = json!({
        "name": c.name,
        "image": c.image.name,
        "env": c.env_exposed(),
        "labels": c.labels,
        "netns": { "nsmode": "bridge" },
        "Networks": BTreeMap::from([(c.network.clone(), json!({}))]),
        "hostadd": c.extra_hosts.iter().map(|(host, ip)| format!("{host}:{ip}")).collect::<Vec<_>>(),
        "cap_drop": h.cap_drop,
        "cap_add": h.cap_add,
        "no_new_privileges": h.no_new_privileges,
        "resource_limits": {
            "pids": { "limit": h.pids_limit },
            // Swap limit = memory limit: no swap on top of the memory limit.
            "memory": { "limit": h.memory_bytes, "swap": h.memory_bytes },
        },
        "init": c.init,
        "sysctl": h.sysctls(),
    });
    let obj = spec.as_object_mut().expect("object");
    if let Restart::OnFailure { max_tries } = c.restart {
        obj.insert("restart_policy".into(), json!("on-failure"));
        obj.insert("restart_tries".into(), json!(max_tries));
    }
    if let Some(entrypoint) = &c.entrypoint {
        obj.insert("entrypoint".into(), json!(entrypoint));
    }
    if let Some(command) = &c.command {
        obj.insert("command".into(), json!(command));
    }
    if let Some(user) = &c.user {
        obj.insert("user".into(), json!(user));
    }
    if let Some(writable) = &h.read_only_root {
        // No tmpfs of podman's own at /tmp, /var/tmp and /run (its CLI's default with
        // --read-only): what is writable is the plan's list, nothing more.
        obj.insert("read_only_filesystem".into(), json!(true));
        obj.insert("read_write_tmpfs".into(), json!(false));
        let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
        for w in writable {
            match w.on {
                // An anonymous volume (no name): filled from the image's path, removed
                // with the container (`rm -v`).
                WritableOn::Disk => volumes.push(json!({ "Name": "", "Dest": w.path })),
                WritableOn::Memory { bytes } => mounts.push(json!({
                    "destination": w.path,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    // `U`: owned by the container's user, who must write there.
                    "options": [format!("size={bytes}"), "U"],
                })),
            }
        }
        obj.insert("volumes".into(), json!(volumes));
        obj.insert("mounts".into(), json!(mounts));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_core::plan::{
        labels, resource_name, ContainerRole, Egress, Hardening, ImageRef, Restart,
    };

    #[test]
    fn the_spec_says_exactly_what_the_plan_says() {
        let c = ContainerSpec {
            name: resource_name("p", "s", ContainerRole::AGENT),
            role: ContainerRole::agent(),
            image: ImageRef {
                name: "img:1".into(),
                recipe: None,
            },
            entrypoint: None,
            command: Some(vec!["sleep".into(), "1".into()]),
            user: Some("1000:1000".into()),
            env: BTreeMap::from([("A".into(), "1".into())]),
            host_env: BTreeMap::new(),
            labels: labels("p", "s", ContainerRole::AGENT),
            network: "net".into(),
            connect: vec![],
            extra_hosts: BTreeMap::from([("v6".into(), "2001:db8::1".parse().unwrap())]),
            hosts_of: Vec::new(),
            files: vec![],
            init: true,
            restart: Restart::No,
            hardening: Hardening {
                cap_drop: vec!["ALL".into()],
                cap_add: vec![],
                no_new_privileges: true,
                pids_limit: 64,
                memory_bytes: 1 << 20,
                no_ipv6: true,
                read_only_root: None,
            },
            ports: Vec::new(),
            egress: Egress::Nothing,
            reaches: Vec::new(),
            audit: None,
        };
        let s = spec_generator(&c);
        // The key podman reads; podman-api's builder writes "no_new_privilages".
        assert_eq!(s["no_new_privileges"], json!(true));
        assert_eq!(s["sysctl"], json!({"net.ipv6.conf.all.disable_ipv6": "1"}));
        assert_eq!(s["resource_limits"]["memory"]["swap"], json!(1 << 20));
        assert_eq!(s["resource_limits"]["pids"]["limit"], json!(64));
        assert_eq!(s["hostadd"], json!(["v6:2001:db8::1"]));
        assert_eq!(s["Networks"], json!({"net": {}}));
        assert!(s.get("entrypoint").is_none());
        assert_eq!(s["user"], json!("1000:1000"));
        assert!(s.get("restart_policy").is_none());
        let sidecar = ContainerSpec {
            restart: Restart::sidecar(),
            ..c
        };
        let s = spec_generator(&sidecar);
        assert_eq!(s["restart_policy"], json!("on-failure"));
        assert_eq!(s["restart_tries"], json!(Restart::SIDECAR_MAX_TRIES));
    }
}
