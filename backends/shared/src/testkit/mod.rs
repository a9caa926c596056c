//! The engine tests, written once and run on every engine backend (feature `testkit`).
//!
//! A backend's `tests/engine/main.rs` implements [`TestEngine`] for its client (how to
//! connect, and how to *look* at what bottle made: inspections that the backend's own
//! [`Engine`] primitives do not need) and instantiates every scenario with
//! [`engine_suite!`](crate::engine_suite), once per engine it can reach (podman: rootful and
//! rootless). A scenario is a plain `async fn(&E)` in [`scenarios`], so the docker run of
//! `leftovers_fail_fast_and_create_nothing` and the podman runs of it are the same code, as
//! the end-to-end tests do with their `suite!` (one body per engine, like ripgrep's
//! one-body-per-matcher tests).
//!
//! - Each scenario works on its own bottle (a unique slug: test name, pid, counter) and
//!   removes it on drop ([`Guard`], which calls `cleanup(slug)`); `BOTTLE_TEST_KEEP=1` keeps
//!   everything for debugging and prints how to remove it.
//! - Without a reachable engine every test prints a loud SKIP and passes, except under
//!   `CI=true`, where it fails ([`connect_or_skip`]).
//! - The test image [`TINY`] is made from the host's own `sh`, `sleep`, `stat`, `cat`,
//!   `getent` and `id` with their shared libraries (found with `ldd`), and imported through
//!   the API into the store under test: no registry, no base image, a few MB. It is
//!   re-imported only when those binaries change.
//! - Where engines differ in what they report, not in what bottle asks of them, the
//!   difference is data: [`Quirks`] (the words of a failed build, the init's path, docker's
//!   embedded resolver), and [`ContainerView`] fields an engine does not report as planned
//!   are `None`.
//! - Tests send traffic only to their own containers and to loopback.

pub mod scenarios;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use bottle_core::backend::{Backend, BackendError, Scope};
use bottle_core::plan::{
    labels, resource_name, ContainerRole, ContainerSpec, Egress, FileSpec, Hardening, HostOf,
    ImageRef, NetworkRole, NetworkSpec, Plan, PortSpec, Reach, Restart, PLAN_FORMAT,
};

use crate::engine::{self, Engine};
use crate::images::{BuildOptions, RootfsSource, LABEL_INPUTS};

/// What an engine reports differently from another for the same request.
#[derive(Debug, Clone, Copy)]
pub struct Quirks {
    /// Its CLI, named in the missing-image hint (`docker pull`, `podman build`).
    pub cli: &'static str,
    /// What its builder says of a `RUN exit 3`.
    pub build_exit_3: &'static str,
    /// The command line of PID 1 under `init` (up to its first NUL).
    pub init: &'static str,
    /// Whether names resolve through docker's embedded resolver (`127.0.0.11`), which does
    /// not forward from an internal network.
    pub embedded_resolver: bool,
    /// Whether a container on an internal network only has no default route at all
    /// (podman); docker routes it but drops what leaves (its embedded resolver then shows
    /// that nothing outside resolves).
    pub internal_has_no_route: bool,
}

/// A container as its engine's inspection shows it.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    /// Dropped capabilities, when the engine reports them as planned.
    pub cap_drop: Option<Vec<String>>,
    /// Added capabilities, when the engine reports them as planned.
    pub cap_add: Option<Vec<String>>,
    /// Security options (`no-new-privileges`, ...).
    pub security_opt: Vec<String>,
    /// The pids limit.
    pub pids_limit: Option<i64>,
    /// The memory limit.
    pub memory: Option<i64>,
    /// The memory + swap limit.
    pub memory_swap: Option<i64>,
    /// Whether an init runs as PID 1.
    pub init: Option<bool>,
    /// Extra `/etc/hosts` entries, `HOST:IP`.
    pub extra_hosts: Vec<String>,
    /// The user.
    pub user: Option<String>,
    /// The environment, `K=V`.
    pub env: Vec<String>,
    /// The labels.
    pub labels: HashMap<String, String>,
    /// The networks it is on, by name.
    pub networks: Vec<String>,
}

/// A network as its engine's inspection shows it.
#[derive(Debug, Clone, Default)]
pub struct NetworkView {
    /// Whether it is internal (no route out).
    pub internal: Option<bool>,
    /// Whether names resolve on it, when the engine says.
    pub dns_enabled: Option<bool>,
    /// The labels.
    pub labels: HashMap<String, String>,
}

/// An engine backend under test: its client (the [`Engine`] and [`Backend`] under test),
/// plus how to connect and how to look at what bottle made.
///
/// A wrapper of the backend's client in the backend's test crate implements it (the test
/// crate may not implement this crate's trait for the backend's own type).
#[async_trait]
pub trait TestEngine: Clone + Send + Sync + 'static {
    /// The backend's client.
    type Client: Engine + Backend;

    /// What is tested, for SKIP messages (`docker engine`, `rootless podman`).
    const WHAT: &'static str;

    /// The client under test.
    fn client(&self) -> &Self::Client;

    /// Where engines differ.
    fn quirks(&self) -> Quirks;

    /// The address to connect to again ([`TestEngine::connect_to`]).
    fn address(&self) -> String;

    /// Connects to the engine at `address`.
    async fn connect_to(address: &str) -> Result<Self::Client, BackendError>;

    /// The same client, building images with `opts`.
    fn with_build_options(client: Self::Client, opts: BuildOptions) -> Self::Client;

    /// Whether the engine enforces pids and memory limits here.
    fn limits_enforced(&self) -> bool {
        true
    }

    /// Inspects container `name`.
    async fn container_view(&self, name: &str) -> ContainerView;

    /// Inspects network `name`.
    async fn network_view(&self, name: &str) -> NetworkView;

    /// The tar archive of `path` in container `name`, fetched through the API.
    async fn download(&self, name: &str, path: &str) -> Vec<u8>;

    /// The environment image `tag` sets (`K=V`).
    async fn image_env(&self, tag: &str) -> Vec<String>;

    /// Force-removes image `tag`, ignoring errors.
    async fn remove_image_force(client: &Self::Client, tag: &str);

    /// Creates and starts a container bottle did not make: `name`, from `image`
    /// (`sleep 3600`), on network `network`, without labels.
    async fn run_foreign(&self, name: &str, image: &str, network: &str);
}

/// The engine `connect` reaches, or `None` after a loud SKIP message (a failure under
/// `CI=true`).
pub async fn connect_or_skip<E: TestEngine>(
    connect: impl std::future::Future<Output = Result<E, BackendError>>,
) -> Option<E> {
    match connect.await {
        Ok(e) => Some(e),
        Err(err) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but no {} is reachable: {err}", E::WHAT);
            }
            eprintln!(
                "\n*** SKIP: no {} reachable, engine test not run ***\n{err}\n",
                E::WHAT
            );
            None
        }
    }
}

/// Instantiates every scenario of [`scenarios`] as a `#[tokio::test]` that runs it on the
/// engine `$connect` (an expression giving `Option<E>`: `None` skips) returns.
#[macro_export]
macro_rules! engine_suite {
    ($connect:expr) => {
        $crate::engine_suite!(@tests $connect;
            up_ps_exec_down_of_an_agent_alone,
            hardening_env_hosts_and_files_are_applied_exactly,
            leftovers_fail_fast_and_create_nothing,
            an_unfillable_host_entry_fails_before_anything_is_created,
            a_missing_image_fails_before_anything_is_created,
            a_failed_up_rolls_back_or_keeps_what_it_made,
            down_disconnects_foreign_containers_and_keeps_them,
            the_internal_network_has_no_way_out,
            builds_are_labelled_and_skipped_when_fresh,
            a_failing_build_carries_the_engine_message,
            the_base_image_is_imported_from_a_prepared_rootfs,
            the_builtin_images_build_from_the_embedded_contexts,
            the_base_image_is_made_and_imported,
            a_sidecar_added_in_one_module_runs_with_its_port_and_host,
            the_image_command_is_its_entrypoint_and_command,
        );
    };
    (@tests $connect:expr; $($name:ident,)+) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(engine) = $connect.await else {
                    return;
                };
                $crate::testkit::scenarios::$name(&engine).await;
            }
        )+
    };
}

/// The project of every bottle the backend tests make.
pub const TEST_PROJECT: &str = "bottle-test";

/// [`TEST_PROJECT`] as a [`Project`](bottle_core::project::Project).
pub fn test_project() -> bottle_core::project::Project {
    bottle_core::project::Project::new(TEST_PROJECT).expect("a valid project name")
}

/// A slug no other test (or concurrent run) uses.
pub fn unique_slug(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t-{test}-{}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos & 0xffff
    )
}

/// Runs `f` on a client of the engine at `address`, on a thread with its own runtime: a
/// `Drop` runs inside the test's runtime, which must not be blocked on.
fn on_own_runtime<E: TestEngine, T: Send + 'static>(
    address: String,
    f: impl FnOnce(E::Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
) -> Result<Result<T, BackendError>, ()> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let e = E::connect_to(&address).await?;
                Ok(f(e).await)
            })
    })
    .join()
    .map_err(|_| ())
}

fn keep() -> bool {
    std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1")
}

/// Removes everything labelled with its slug when dropped, unless `BOTTLE_TEST_KEEP=1`.
pub struct Guard<E: TestEngine> {
    address: String,
    /// The bottle's slug.
    pub slug: String,
    _engine: std::marker::PhantomData<fn() -> E>,
}

impl<E: TestEngine> Guard<E> {
    /// A guard of a new unique slug for test `test`.
    pub fn new(e: &E, test: &str) -> Guard<E> {
        Guard {
            address: e.address(),
            slug: unique_slug(test),
            _engine: std::marker::PhantomData,
        }
    }

    /// Its bottle, in [`TEST_PROJECT`].
    pub fn scope(&self) -> Scope {
        Scope::bottle(TEST_PROJECT, &self.slug)
    }
}

impl<E: TestEngine> Drop for Guard<E> {
    fn drop(&mut self) {
        if keep() {
            eprintln!(
                "BOTTLE_TEST_KEEP=1: keeping bottle '{}' (remove with `bottle -p {TEST_PROJECT} cleanup {}`)",
                self.slug, self.slug
            );
            return;
        }
        let slug = self.slug.clone();
        let result = on_own_runtime::<E, _>(self.address.clone(), move |e: E::Client| {
            Box::pin(async move { e.cleanup(&Scope::bottle(TEST_PROJECT, &slug)).await })
        });
        match result {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(err)) | Err(err)) => eprintln!(
                "warning: cleanup of test bottle '{}' failed: {err}",
                self.slug
            ),
            Err(()) => eprintln!("warning: cleanup of test bottle '{}' panicked", self.slug),
        }
    }
}

/// Force-removes the listed images on drop (unless `BOTTLE_TEST_KEEP=1`).
pub struct ImageGuard<E: TestEngine> {
    address: String,
    tags: Vec<String>,
    _engine: std::marker::PhantomData<fn() -> E>,
}

impl<E: TestEngine> ImageGuard<E> {
    /// A guard of `tags`.
    pub fn new(e: &E, tags: Vec<String>) -> ImageGuard<E> {
        ImageGuard {
            address: e.address(),
            tags,
            _engine: std::marker::PhantomData,
        }
    }
}

impl<E: TestEngine> Drop for ImageGuard<E> {
    fn drop(&mut self) {
        if keep() {
            return;
        }
        let tags = std::mem::take(&mut self.tags);
        let _ = on_own_runtime::<E, _>(self.address.clone(), move |e: E::Client| {
            Box::pin(async move {
                for t in tags {
                    E::remove_image_force(&e, &t).await;
                }
            })
        });
    }
}

/// A tiny image made from the host's own binaries and their libraries: `sh`, `sleep`,
/// `stat`, `cat`, `getent`, `id`. Imported through the API (so the import path is tested
/// too); re-imported only when its content changes.
pub const TINY: &str = "bottle-test-tiny:latest";

/// [`TINY`] in `e`'s store; returns its name.
pub async fn tiny_image<E: Engine>(e: &E) -> String {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _held = LOCK.lock().await;
    let (tar, digest) = tiny_rootfs();
    let have = engine::image_inputs(e, TINY).await.unwrap();
    if have.as_deref() != Some(digest.as_str()) {
        engine::import_rootfs(
            e,
            RootfsSource::Bytes(tar),
            TINY,
            &[
                "ENV PATH=/bin".to_owned(),
                format!("LABEL {LABEL_INPUTS}={digest}"),
                "CMD [\"/bin/sleep\", \"3600\"]".to_owned(),
            ],
        )
        .await
        .unwrap();
    }
    TINY.to_owned()
}

pub(crate) fn tiny_rootfs() -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    let mut libs = BTreeSet::new();
    for bin in ["sh", "sleep", "stat", "cat", "getent", "id"] {
        let host = which(bin).unwrap_or_else(|| panic!("the host has no `{bin}`"));
        files.insert(format!("bin/{bin}"), (std::fs::read(&host).unwrap(), 0o755));
        let out = std::process::Command::new("ldd")
            .arg(&host)
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                libs.insert(p.to_owned());
            }
        }
    }
    for lib in libs {
        files.insert(
            lib.trim_start_matches('/').to_owned(),
            (std::fs::read(&lib).unwrap(), 0o755),
        );
    }
    let text = |s: &str| (s.as_bytes().to_vec(), 0o644);
    files.insert(
        "etc/passwd".into(),
        text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"),
    );
    files.insert("etc/group".into(), text("root:x:0:\nnogroup:x:65534:\n"));
    files.insert(
        "etc/nsswitch.conf".into(),
        text("passwd: files\ngroup: files\nhosts: files dns\n"),
    );

    let mut dirs = BTreeSet::from(["tmp".to_owned(), "etc".to_owned(), "root".to_owned()]);
    for path in files.keys() {
        let mut p = Path::new(path).parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_string_lossy().into_owned());
            p = dir.parent();
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    for dir in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .unwrap();
    }
    for (path, (bytes, mode)) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(*mode);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let digest = crate::images::hex(&sha2::Sha256::digest(&tar));
    (tar, digest)
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Tight hardening: every capability dropped, no-new-privileges, small limits.
pub fn hardening() -> Hardening {
    Hardening {
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        no_new_privileges: true,
        pids_limit: 64,
        memory_bytes: 64 << 20,
        no_ipv6: false,
        read_only_root: None,
    }
}

/// A container of bottle `slug` in `role`, running `sleep 3600` from `image` on `network`.
pub fn container(slug: &str, role: &str, image: &str, network: &str) -> ContainerSpec {
    ContainerSpec {
        name: resource_name(TEST_PROJECT, slug, role),
        role: ContainerRole::sidecar(role),
        image: ImageRef {
            name: image.to_owned(),
            recipe: None,
        },
        entrypoint: None,
        command: Some(vec!["sleep".into(), "3600".into()]),
        user: None,
        env: BTreeMap::new(),
        host_env: BTreeMap::new(),
        labels: labels(TEST_PROJECT, slug, role),
        network: network.to_owned(),
        connect: vec![],
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files: Vec::<FileSpec>::new(),
        init: true,
        restart: Restart::No,
        hardening: hardening(),
        ports: Vec::new(),
        egress: Egress::Nothing,
        reaches: Vec::new(),
        audit: None,
    }
}

/// A network of bottle `slug` in `role`.
pub fn network(slug: &str, role: NetworkRole, internal: bool) -> NetworkSpec {
    NetworkSpec {
        name: resource_name(TEST_PROJECT, slug, role.as_str()),
        role,
        internal,
        dns: !internal,
        host: !internal,
        labels: labels(TEST_PROJECT, slug, role.as_str()),
    }
}

/// The agent alone on its internal network.
pub fn agent_only(slug: &str, image: &str) -> Plan {
    let internal = network(slug, NetworkRole::Internal, true);
    let agent = container(slug, ContainerRole::AGENT, image, &internal.name);
    Plan {
        format: PLAN_FORMAT,
        bottle: slug.to_owned(),
        project: TEST_PROJECT.to_owned(),
        slug: slug.to_owned(),
        networks: vec![internal],
        containers: vec![agent],
    }
}

/// A generic sidecar (internal + egress, listening on a port the agent reaches) and the
/// agent.
pub fn with_sidecar(slug: &str, image: &str) -> Plan {
    let internal = network(slug, NetworkRole::Internal, true);
    let egress = network(slug, NetworkRole::Egress, false);
    let mut gate = container(slug, "sidecar", image, &internal.name);
    gate.connect = vec![egress.name.clone()];
    gate.egress = Egress::Network;
    gate.ports = vec![PortSpec {
        name: "service".into(),
        port: 7000,
        network: internal.name.clone(),
    }];
    let mut agent = container(slug, ContainerRole::AGENT, image, &internal.name);
    // As the planner does: the agent finds the sidecar through /etc/hosts.
    agent.hosts_of = vec![HostOf {
        name: gate.name.clone(),
        container: gate.name.clone(),
        network: internal.name.clone(),
    }];
    agent.reaches = vec![Reach {
        container: gate.name.clone(),
        port: "service".into(),
    }];
    Plan {
        format: PLAN_FORMAT,
        bottle: slug.to_owned(),
        project: TEST_PROJECT.to_owned(),
        slug: slug.to_owned(),
        networks: vec![internal, egress],
        containers: vec![gate, agent],
    }
}

/// Owned strings.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
