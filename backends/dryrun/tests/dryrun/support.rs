//! Plans to print, and a fake engine CLI to run the printed scripts against.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bottle_core::backend::Scope;
use bottle_core::manifest::{self, Env};
use bottle_core::plan::{
    labels, ContainerRole, ContainerSpec, Egress, FileSource, FileSpec, Hardening, ImageRef,
    NetworkRole, NetworkSpec, Plan, Restart, SecretBytes, PLAN_FORMAT,
};
use bottle_core::planner;
use tempfile::TempDir;

/// A pinned host key (public; generated for these tests).
pub const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICPvBaSXUasEfRLJ8ze2aN9bb1FJy7OTATAbSao5Lgi0";

/// A line of the identity key's body: it must never be printed.
pub fn secret_mark() -> &'static str {
    &bottle_test_keys::identity_key().mark
}

/// The identity key's bytes (a real key: the planner refuses anything else).
pub fn secret_key() -> Vec<u8> {
    bottle_test_keys::identity_key().bytes.clone()
}

/// Where snapshots say the identity file is, instead of a temporary directory.
pub const FIXED_KEY_PATH: &str = "/home/user/.ssh/bottle_demo_ed25519";

/// The demo bottle planned from a manifest, with its identity file in a temporary directory.
pub struct Demo {
    /// Holds the manifest and the key.
    pub _dir: TempDir,
    /// The identity file.
    pub key: PathBuf,
    /// The plan.
    pub plan: Plan,
}

/// A bottle with a gate (two upstreams, IPv4 and IPv6 extra hosts) and an agent.
pub fn demo() -> Demo {
    let dir = TempDir::new().unwrap();
    let key = dir.path().join("id_ed25519");
    fs::write(&key, secret_key()).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let manifest = format!(
        r#"
[bottles.demo]
image = "bottle-agent:latest"
command = ["claude", "--dangerously-skip-permissions"]
memory = "2g"
pids_limit = 512
cap_add = ["CHOWN"]
env = {{ ANTHROPIC_BASE_URL = "http://proxy:8080", GREETING = "it's $$(not) run" }}

[[bottles.demo.git]]
name = "app"
upstream = "ssh://git@git.example.com:2222/team/app.git"
identity_file = {key:?}
known_host_key = "{HOST_KEY}"
extra_hosts = {{ "git.example.com" = "192.0.2.10", "git6.example.com" = "2001:db8::10" }}

[[bottles.demo.git]]
name = "lib"
upstream = "git@github.com:team/lib.git"
identity_file = {key:?}
"#
    );
    let path = dir.path().join("bottle.toml");
    fs::write(&path, &manifest).unwrap();
    let env = Env {
        home: Some(dir.path().to_path_buf()),
    };
    let m = manifest::parse(&path, &manifest, &env).unwrap();
    let plan = planner::plan(
        m.select(Some("demo")).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
    )
    .unwrap();
    Demo {
        _dir: dir,
        key,
        plan,
    }
}

/// `plan` with every host file's path replaced by [`FIXED_KEY_PATH`], for snapshots.
pub fn fixed_paths(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for f in plan.containers.iter_mut().flat_map(|c| c.files.iter_mut()) {
        if let FileSource::HostFile { path, .. } = &mut f.source {
            *path = PathBuf::from(FIXED_KEY_PATH);
        }
    }
    plan
}

/// A bottle without git entries: the agent alone on its internal network.
pub fn agent_only() -> Plan {
    let manifest = r#"
[bottles.solo]
image = "example.com/agents/custom:1.2"
"#;
    let path = Path::new("/nonexistent/bottle.toml");
    let m = manifest::parse(path, manifest, &Env { home: None }).unwrap();
    // No sidecar at all: the agent alone on its internal network.
    planner::plan_with(
        m.select(None).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
        &[],
    )
    .unwrap()
}

fn text(path: &str, mode: u32, uid: u32, gid: u32, text: &str) -> FileSpec {
    FileSpec {
        relocate_env: None,
        path: path.to_owned(),
        mode,
        uid,
        gid,
        source: FileSource::Text {
            text: text.to_owned(),
        },
    }
}

fn hardening() -> Hardening {
    Hardening {
        cap_drop: vec!["ALL".to_owned()],
        cap_add: Vec::new(),
        no_new_privileges: true,
        pids_limit: 100,
        memory_bytes: 1 << 30,
        no_ipv6: true,
        read_only_root: None,
    }
}

fn container(slug: &str, role: &str, network: &str, files: Vec<FileSpec>) -> ContainerSpec {
    ContainerSpec {
        name: format!("bottle-proj-{slug}-{role}"),
        role: ContainerRole::sidecar(role),
        image: ImageRef {
            name: "bottle-agent:latest".to_owned(),
            recipe: None,
        },
        entrypoint: None,
        command: None,
        user: None,
        env: BTreeMap::new(),
        host_env: BTreeMap::new(),
        labels: labels("proj", slug, role),
        network: network.to_owned(),
        connect: Vec::new(),
        extra_hosts: BTreeMap::new(),
        hosts_of: Vec::new(),
        files,
        init: true,
        restart: Restart::No,
        hardening: hardening(),
        ports: Vec::new(),
        egress: Egress::Nothing,
        reaches: Vec::new(),
        audit: None,
    }
}

fn network(slug: &str, role: NetworkRole, internal: bool) -> NetworkSpec {
    NetworkSpec {
        name: format!("bottle-proj-{slug}-{role}"),
        role,
        internal,
        dns: !internal,
        host: !internal,
        labels: labels("proj", slug, role.as_str()),
    }
}

/// A string a shell would love to run: quotes, `$(...)`, backticks, spaces, newlines. Each
/// attempt touches `marker`.
pub fn evil(marker: &Path) -> String {
    let m = marker.display();
    format!("it's $(touch {m}) `touch {m}` \"q\" \\ a  b\nnext; touch {m} #")
}

/// A hand-built plan whose values are hostile to a careless printer.
pub fn hostile(marker: &Path) -> Plan {
    let e = evil(marker);
    let internal = network("demo", NetworkRole::Internal, true);
    let mut egress = network("demo", NetworkRole::Egress, false);
    egress.labels.insert("note".to_owned(), e.clone());
    let mut agent = container(
        "demo",
        ContainerRole::AGENT,
        &internal.name,
        vec![text(
            &format!("/etc/evil dir/$(touch {})'s file", marker.display()),
            0o640,
            1000,
            1000,
            &e,
        )],
    );
    agent.image.name = format!("example.com/agent:$(touch {})", marker.display());
    agent.entrypoint = Some(vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!(
            "echo \"$HOME\" 'x' `id` $(touch {})\nline2",
            marker.display()
        ),
    ]);
    agent.command = Some(vec![
        "--flag".to_owned(),
        e.clone(),
        String::new(),
        " spaced ".to_owned(),
    ]);
    agent.user = Some("1000:1000".to_owned());
    agent.env.insert("EVIL".to_owned(), e.clone());
    agent.env.insert("EMPTY".to_owned(), String::new());
    agent.labels.insert("note".to_owned(), e.clone());
    agent.connect = vec![egress.name.clone()];
    agent.extra_hosts.insert(
        "git.example.com".to_owned(),
        "2001:db8::1".parse::<IpAddr>().unwrap(),
    );
    agent.extra_hosts.insert(
        "v4.example.com".to_owned(),
        "192.0.2.1".parse::<IpAddr>().unwrap(),
    );
    agent.hardening.cap_add = vec!["NET_ADMIN".to_owned()];
    Plan {
        format: PLAN_FORMAT,
        bottle: format!("demo\n$(touch {}) `x`", marker.display()),
        project: "proj".to_owned(),
        slug: "demo".to_owned(),
        networks: vec![internal, egress],
        containers: vec![agent],
    }
}

/// A plan whose files are hard to carry exactly, in two containers; the gate's key is read
/// from `key` at plan time.
pub fn files_plan(key: &Path) -> Plan {
    let internal = network("files", NetworkRole::Internal, true);
    let gate_files = vec![
        text("/etc/gate/config", 0o644, 0, 0, "listen = 9418\n"),
        FileSpec {
            relocate_env: None,
            path: "/etc/gate/creds/app.key".to_owned(),
            mode: 0o400,
            uid: 10001,
            gid: 10001,
            source: FileSource::HostFile {
                path: key.to_path_buf(),
                bytes: SecretBytes::new(fs::read(key).unwrap()),
            },
        },
    ];
    let agent_files = vec![
        text("/etc/no-newline", 0o644, 0, 0, "no trailing newline"),
        text(
            "/etc/delimiter",
            0o600,
            1000,
            1000,
            "BOTTLE_EOF\nline\nBOTTLE_EOF_1\n",
        ),
        text("/etc/empty", 0o444, 0, 0, ""),
        text("/etc/only-newlines", 0o644, 0, 0, "\n\n"),
        text(
            "/etc/mixed",
            0o755,
            1000,
            2000,
            "a\nb\n\ttab é ✓ $HOME `id` \\ '\"\n\n",
        ),
        text("/etc/backslash-end", 0o644, 0, 0, "a\\\nb\\"),
        text("/usr/local/bin/suid", 0o4755, 0, 0, "#!/bin/sh\nexit 0\n"),
        text(
            "/home/agent/.config/x y/$(touch marker)'s",
            0o640,
            1000,
            1000,
            "'quoted' and $(not run)",
        ),
    ];
    let mut gate = container("files", "gate", &internal.name, gate_files);
    gate.image = ImageRef {
        name: "bottle-gate:latest".to_owned(),
        recipe: Some("gate".to_owned()),
    };
    let agent = container("files", ContainerRole::AGENT, &internal.name, agent_files);
    Plan {
        format: PLAN_FORMAT,
        bottle: "files".to_owned(),
        project: "proj".to_owned(),
        slug: "files".to_owned(),
        networks: vec![internal],
        containers: vec![gate, agent],
    }
}

/// The path of a file inside its container's root, as the archives name it.
pub fn rel(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

// ---------------------------------------------------------------------------------------
// The fake engine.

/// A test double of the docker and podman CLIs, as a shell script. It records each call's
/// arguments (NUL-separated) in `call.N`, keeps what `cp` reads from stdin in `call.N.tar`,
/// and answers from files: `existing` (resource names that exist), `missing-images`,
/// `containers` and `networks` (what `ps -q` and `network ls -q` print), and `fail/WORD`
/// or `fail/WORD1-WORD2` (that subcommand fails). `inspect --format` of a container prints
/// [`FAKE_ADDRESS`], its address on any network.
const FAKE: &str = r#"#!/bin/sh
set -eu
d=$FAKE_DIR
n=$(( $(cat "$d/count") + 1 ))
echo "$n" >"$d/count"
printf '%s\0' "${0##*/}" "$@" >"$d/call.$n"
if [ -e "$d/fail/$1" ] || [ -e "$d/fail/$1-${2-}" ]; then
	echo "fake ${0##*/}: $1 ${2-} failed" >&2
	exit 1
fi
case "$1" in
image)
	if grep -qxF -- "$3" "$d/missing-images"; then exit 1; fi ;;
container|network)
	case "$2" in
	inspect|exists) grep -qxF -- "$3" "$d/existing" ;;
	ls) cat "$d/networks" ;;
	esac ;;
ps) cat "$d/containers" ;;
inspect) echo 192.0.2.7 ;;
cp) cat >"$d/call.$n.tar" ;;
esac
"#;

/// The address the fake engine gives every container on every network.
pub const FAKE_ADDRESS: &str = "192.0.2.7";

/// One call the script made.
#[derive(Debug, Clone)]
pub struct Call {
    /// The program's name and its arguments.
    pub argv: Vec<String>,
    /// What `cp` read from stdin.
    pub tar: Option<Vec<u8>>,
}

impl Call {
    /// The arguments after the program, as `&str`s.
    pub fn args(&self) -> Vec<&str> {
        self.argv[1..].iter().map(String::as_str).collect()
    }

    /// For a `cp - NAME:/DIR`: the container and its archive's members, each path made
    /// relative to the container's root (the archive's are relative to `DIR`: the root,
    /// or a volume of a container whose root filesystem is read-only).
    pub fn copied(&self) -> (String, Vec<Member>) {
        let dest = self.argv.last().expect("cp has a destination");
        let (name, dir) = dest
            .split_once(":/")
            .expect("cp's destination is NAME:/DIR");
        let mut m = members(self.tar.as_deref().expect("cp read an archive"));
        let dir = dir.trim_end_matches('/');
        if !dir.is_empty() {
            for x in &mut m {
                x.path = format!("{dir}/{}", x.path);
            }
        }
        (name.to_owned(), m)
    }
}

/// The outcome of running a script.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Every engine call, in order.
    pub calls: Vec<Call>,
}

impl Run {
    /// The calls whose arguments start with `prefix`.
    pub fn calls_to(&self, prefix: &[&str]) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.args().starts_with(prefix))
            .collect()
    }
}

/// A directory holding the fake CLIs, their state and a private `TMPDIR`.
pub struct Fake {
    /// The directory.
    pub dir: TempDir,
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

impl Fake {
    /// A fake engine where every image exists and nothing else does.
    pub fn new() -> Fake {
        let dir = TempDir::new().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(dir.path().join("state/fail")).unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        for name in ["docker", "podman"] {
            let p = bin.join(name);
            fs::write(&p, FAKE).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for f in [
            "count",
            "existing",
            "missing-images",
            "containers",
            "networks",
        ] {
            fs::write(dir.path().join("state").join(f), "").unwrap();
        }
        fs::write(dir.path().join("state/count"), "0\n").unwrap();
        Fake { dir }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join("state").join(name)
    }

    fn append(&self, file: &str, line: &str) {
        let p = self.state(file);
        let mut text = fs::read_to_string(&p).unwrap();
        text.push_str(line);
        text.push('\n');
        fs::write(p, text).unwrap();
    }

    /// Makes a container or network named `name` exist.
    pub fn exists(&self, name: &str) {
        self.append("existing", name);
    }

    /// Makes image `name` missing.
    pub fn missing_image(&self, name: &str) {
        self.append("missing-images", name);
    }

    /// Makes a subcommand fail: `start`, or `network-create`.
    pub fn fail(&self, what: &str) {
        fs::write(self.state("fail").join(what), "").unwrap();
    }

    /// Sets what `ps -q` prints.
    pub fn containers(&self, text: &str) {
        fs::write(self.state("containers"), text).unwrap();
    }

    /// Sets what `network ls -q` prints.
    pub fn networks(&self, text: &str) {
        fs::write(self.state("networks"), text).unwrap();
    }

    /// The private `TMPDIR` the script runs with.
    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Runs `script` with `sh`, the fake CLIs first on `PATH`.
    pub fn run(&self, script: &str) -> Run {
        self.run_with_env(script, &[])
    }

    /// [`Fake::run`] with extra environment variables (an API key a script reads).
    pub fn run_with_env(&self, script: &str, env: &[(&str, &str)]) -> Run {
        let file = self.dir.path().join("script.sh");
        fs::write(&file, script).unwrap();
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(&file)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("FAKE_DIR", self.dir.path().join("state"))
            .env("TMPDIR", self.tmp())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let count: usize = fs::read_to_string(self.state("count"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let calls = (1..=count)
            .map(|n| {
                let raw = fs::read(self.state(&format!("call.{n}"))).unwrap();
                let mut argv: Vec<String> = raw
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8(a.to_vec()).unwrap())
                    .collect();
                assert_eq!(argv.pop().as_deref(), Some(""), "NUL-terminated");
                let tar = fs::read(self.state(&format!("call.{n}.tar"))).ok();
                Call { argv, tar }
            })
            .collect();
        Run {
            success: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
            calls,
        }
    }
}

/// One archive member, as the engine would unpack it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its path, relative to the container's root.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The members of a tar archive; panics on anything but regular files, or on owner names.
pub fn members(archive: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert!(
            header.entry_type().is_file(),
            "only files are archived: {:?}",
            entry.path().unwrap()
        );
        assert!(
            header.username().unwrap().unwrap_or("").is_empty(),
            "numeric owners only"
        );
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        out.push(Member {
            path,
            mode: header.mode().unwrap(),
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            bytes,
        });
    }
    out
}

/// What `container`'s files should unpack to, sorted by path.
pub fn expected_members(container: &ContainerSpec) -> Vec<Member> {
    let mut v: Vec<Member> = container
        .files
        .iter()
        .map(|f| Member {
            path: rel(&f.path),
            mode: f.mode,
            uid: f.uid.into(),
            gid: f.gid.into(),
            bytes: f.bytes().to_vec(),
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// `ps --all` and `cleanup --all`: every project's bottles, unlabelled leftovers too.
pub fn every_scope() -> Scope {
    Scope {
        unlabelled: true,
        ..Scope::default()
    }
}

/// `cleanup` in project "proj": its bottles with nothing running, complete stopped ones
/// kept.
pub fn project_cleanup_scope() -> Scope {
    Scope {
        project: Some("proj".to_owned()),
        stopped_only: true,
        keep_complete: true,
        ..Scope::default()
    }
}

/// `cleanup demo` in project "proj": the bottle's resources, if nothing of it runs.
pub fn stopped_demo_scope() -> Scope {
    Scope {
        stopped_only: true,
        ..Scope::bottle("proj", "demo")
    }
}
