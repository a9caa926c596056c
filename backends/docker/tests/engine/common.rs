//! Shared test helpers: the engine (or a loud skip), unique slugs, cleanup guards, a tiny
//! test image and plans.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use bottle_backend_docker::{Docker, RootfsSource};
use bottle_core::backend::Backend;
use bottle_core::plan::{
    labels, resource_name, ContainerSpec, FileSpec, Hardening, ImageRef, NetworkSpec, Plan, Role,
    PLAN_FORMAT,
};

/// The engine, or `None` after a loud SKIP message (a failure under `CI=true`).
pub async fn connect_or_skip() -> Option<Docker> {
    match Docker::connect().await {
        Ok(d) => Some(d.with_progress(|line| eprintln!("  | {line}"))),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but no docker engine is reachable: {e}");
            }
            eprintln!("\n*** SKIP: no docker engine reachable, engine test not run ***\n{e}\n");
            None
        }
    }
}

/// `let d = engine!();` — the engine, or return from the test after a SKIP message.
macro_rules! engine {
    () => {
        match crate::common::connect_or_skip().await {
            Some(d) => d,
            None => return,
        }
    };
}
pub(crate) use engine;

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

/// Removes everything labelled with its slug when dropped, unless `BOTTLE_TEST_KEEP=1`.
pub struct Guard {
    host: String,
    pub slug: String,
}

impl Guard {
    pub fn new(d: &Docker, test: &str) -> Guard {
        Guard {
            host: d.host().to_owned(),
            slug: unique_slug(test),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::env::var("BOTTLE_TEST_KEEP").as_deref() == Ok("1") {
            eprintln!(
                "BOTTLE_TEST_KEEP=1: keeping bottle '{}' (remove with `bottle cleanup {}`)",
                self.slug, self.slug
            );
            return;
        }
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let host = self.host.clone();
        let slug = self.slug.clone();
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let d = Docker::connect_to(&host).await?;
                    d.cleanup(Some(&slug)).await
                })
        })
        .join();
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!(
                "warning: cleanup of test bottle '{}' failed: {e}",
                self.slug
            ),
            Err(_) => eprintln!("warning: cleanup of test bottle '{}' panicked", self.slug),
        }
    }
}

/// A tiny image made from the host's own binaries and their libraries: `sh`, `sleep`,
/// `stat`, `cat`, `getent`, `id`. Imported through the API (so the import path is tested
/// too); rebuilt only when its content changes.
pub const TINY: &str = "bottle-test-tiny:latest";

pub async fn tiny_image(d: &Docker) -> String {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _held = LOCK.lock().await;
    let (tar, digest) = tiny_rootfs();
    let have = d.image_inputs(TINY).await.unwrap();
    if have.as_deref() != Some(digest.as_str()) {
        d.import_rootfs(
            RootfsSource::Bytes(tar),
            TINY,
            &[
                "ENV PATH=/bin".to_owned(),
                format!("LABEL bottle.inputs={digest}"),
                "CMD [\"/bin/sleep\", \"3600\"]".to_owned(),
            ],
        )
        .await
        .unwrap();
    }
    TINY.to_owned()
}

fn tiny_rootfs() -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    let mut libs = std::collections::BTreeSet::new();
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

    let mut dirs =
        std::collections::BTreeSet::from(["tmp".to_owned(), "etc".to_owned(), "root".to_owned()]);
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
    let digest = sha2::Sha256::digest(&tar)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    (tar, digest)
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

pub fn hardening() -> Hardening {
    Hardening {
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        no_new_privileges: true,
        pids_limit: 64,
        memory_bytes: 64 << 20,
    }
}

pub fn container(slug: &str, role: Role, image: &str, network: &str) -> ContainerSpec {
    ContainerSpec {
        name: resource_name(slug, role),
        role,
        image: ImageRef {
            name: image.to_owned(),
            builtin: None,
        },
        entrypoint: None,
        command: Some(vec!["sleep".into(), "3600".into()]),
        user: None,
        env: BTreeMap::new(),
        labels: labels(slug, role),
        network: network.to_owned(),
        connect: vec![],
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files: Vec::<FileSpec>::new(),
        init: true,
        hardening: hardening(),
    }
}

pub fn network(slug: &str, role: Role, internal: bool) -> NetworkSpec {
    NetworkSpec {
        name: resource_name(slug, role),
        role,
        internal,
        dns: !internal,
        labels: labels(slug, role),
    }
}

/// The agent alone on its internal network.
pub fn agent_only(slug: &str, image: &str) -> Plan {
    let internal = network(slug, Role::Internal, true);
    let agent = container(slug, Role::Agent, image, &internal.name);
    Plan {
        format: PLAN_FORMAT,
        bottle: slug.to_owned(),
        slug: slug.to_owned(),
        networks: vec![internal],
        containers: vec![agent],
    }
}

/// A sidecar in the gate's role (internal + egress) and the agent.
pub fn with_sidecar(slug: &str, image: &str) -> Plan {
    let internal = network(slug, Role::Internal, true);
    let egress = network(slug, Role::Egress, false);
    let mut gate = container(slug, Role::Gate, image, &internal.name);
    gate.connect = vec![egress.name.clone()];
    let agent = container(slug, Role::Agent, image, &internal.name);
    Plan {
        format: PLAN_FORMAT,
        bottle: slug.to_owned(),
        slug: slug.to_owned(),
        networks: vec![internal, egress],
        containers: vec![gate, agent],
    }
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
