//! `bottle doctor`: checks what the host must provide once for a backend, and prints, for
//! each thing missing, the command that fixes it.
//!
//! Checks read files and ask the engine; they never change anything.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok(String),
    /// Not fine: what is wrong, and the command that fixes it.
    Missing { what: String, fix: String },
    /// Works, with a weaker guarantee worth knowing about; does not make the host unhealthy.
    Warn(String),
}

/// One named check.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub status: Status,
}

fn check(name: &str, status: Status) -> Check {
    Check {
        name: name.to_owned(),
        status,
    }
}

fn ok(name: &str, detail: impl Into<String>) -> Check {
    check(name, Status::Ok(detail.into()))
}

fn missing(name: &str, what: impl Into<String>, fix: impl Into<String>) -> Check {
    check(
        name,
        Status::Missing {
            what: what.into(),
            fix: fix.into(),
        },
    )
}

/// Whether `tool` is an executable file on PATH.
fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Checks shared by every engine backend: the tools `bottle image build` uses.
pub fn build_tools() -> Vec<Check> {
    let mut out = Vec::new();
    // What each image recipe puts into its context at build time (pinned binaries, the
    // sidecar programs), as the image build would find it.
    let opts = bottle_backend_shared::images::BuildOptions::default();
    for recipe in bottle_core::images::ALL {
        for (what, found) in bottle_backend_shared::images::locate_artifacts(recipe, &opts) {
            let name = format!("{} for {}", what, recipe.tag);
            out.push(match found {
                Ok(path) => ok(&name, path.display().to_string()),
                Err(why) => missing(
                    &name,
                    format!("{why}: {} cannot be built (an already built one still works)", recipe.tag),
                    "scripts/install-deps.sh installs the pinned gitleaks; scripts/build-sidecars.sh builds the sidecar programs (point BOTTLE_SIDECAR_DIR at the directory it prints)",
                ),
            });
        }
    }
    out.push(match on_path("debootstrap").or_else(|| {
        let p = PathBuf::from("/usr/sbin/debootstrap");
        p.exists().then_some(p)
    }) {
        Some(p) => ok("debootstrap", format!("{} (makes the local base image; needs root)", p.display())),
        None => missing(
            "debootstrap",
            "debootstrap is missing: the local base image cannot be made (set BOTTLE_BASE_IMAGE to an image you have instead)",
            "apt-get install debootstrap",
        ),
    });
    out.push(match on_path("ssh-keygen") {
        Some(_) => ok("ssh-keygen", "present (bottle demo makes its keys with it)"),
        None => missing(
            "ssh-keygen",
            "ssh-keygen is missing",
            "apt-get install openssh-client",
        ),
    });
    out
}

/// The Docker engine: reachable, and its version.
pub async fn docker() -> Vec<Check> {
    let mut out = Vec::new();
    match bottle_backend_docker::Docker::connect().await {
        Ok(d) => out.push(ok(
            "docker engine",
            format!("{} answers (API {})", d.host(), d.api_version()),
        )),
        Err(e) => out.push(missing(
            "docker engine",
            e.to_string(),
            "systemctl start docker (or start dockerd), or set DOCKER_HOST",
        )),
    }
    out
}

/// Reads `KEY = VALUE` settings of a containers.conf, enough to check the two bottle needs.
fn conf_has(path: &Path, section: &str, key: &str, want: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    table
        .get(section)
        .and_then(|s| s.get(key))
        .map(|v| match v {
            toml::Value::String(s) => s == want,
            toml::Value::Array(a) => want == "[]" && a.is_empty(),
            _ => false,
        })
        .unwrap_or(false)
}

/// Podman: the settings RUNTIMES.md found necessary on these hosts, and for an ordinary
/// user the rootless prerequisites.
pub fn podman_host() -> Vec<Check> {
    let mut out = Vec::new();
    match on_path("podman") {
        Some(p) => out.push(ok("podman", p.display().to_string())),
        None => {
            out.push(missing(
                "podman",
                "podman is not installed",
                "apt-get install podman",
            ));
            return out;
        }
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "$USER".to_owned());
    let conf = if is_root() {
        PathBuf::from("/etc/containers/containers.conf")
    } else {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("~/.config"));
        base.join("containers/containers.conf")
    };
    let runtime_ok = conf_has(&conf, "engine", "runtime", "runc");
    let ulimits_ok = conf_has(&conf, "containers", "default_ulimits", "[]");
    if runtime_ok && ulimits_ok {
        out.push(ok(
            "containers.conf",
            format!("{}: runtime runc, no default ulimits", conf.display()),
        ));
    } else {
        out.push(missing(
            "containers.conf",
            format!(
                "{} lacks {}{}{} (crun and podman's default rlimits fail on these hosts)",
                conf.display(),
                if runtime_ok { "" } else { "[engine] runtime = \"runc\"" },
                if runtime_ok || ulimits_ok { "" } else { " and " },
                if ulimits_ok { "" } else { "[containers] default_ulimits = []" },
            ),
            format!(
                "mkdir -p {dir} && printf '[containers]\\ndefault_ulimits = []\\n\\n[engine]\\nruntime = \"runc\"\\n' > {path}",
                dir = conf.parent().map(|p| p.display().to_string()).unwrap_or_default(),
                path = conf.display()
            ),
        ));
    }
    if is_root() {
        out.extend(podman_next_to_docker());
        return out;
    }

    // Rootless.
    for file in ["/etc/subuid", "/etc/subgid"] {
        let has = std::fs::read_to_string(file)
            .map(|t| {
                t.lines()
                    .any(|l| l.split(':').next() == Some(user.as_str()))
            })
            .unwrap_or(false);
        out.push(if has {
            ok(file, format!("has subordinate ids for {user}"))
        } else {
            missing(
                file,
                format!("no subordinate ids for {user}"),
                format!(
                    "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
                ),
            )
        });
    }
    let tun = Path::new("/dev/net/tun");
    let tun_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tun)
        .is_ok();
    out.push(if tun_ok {
        ok("/dev/net/tun", "usable (rootless networking)")
    } else {
        missing(
            "/dev/net/tun",
            "not usable by this user (rootless networks need it)",
            "sudo chmod 666 /dev/net/tun",
        )
    });
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) => {
            let meta = std::fs::metadata(&dir);
            let mine = meta.as_ref().map(|m| m.uid() == std::fs::metadata("/proc/self").map(|s| s.uid()).unwrap_or(u32::MAX)).unwrap_or(false);
            let private = meta.as_ref().map(|m| m.permissions().mode() & 0o077 == 0).unwrap_or(false);
            out.push(if mine && private {
                ok("XDG_RUNTIME_DIR", dir.display().to_string())
            } else {
                missing(
                    "XDG_RUNTIME_DIR",
                    format!("{} must exist, be yours and have mode 0700", dir.display()),
                    format!("sudo install -d -m 0700 -o {user} {}", dir.display()),
                )
            });
        }
        None => out.push(missing(
            "XDG_RUNTIME_DIR",
            "unset (no login manager made one)",
            "export XDG_RUNTIME_DIR=/run/user/$(id -u) && sudo install -d -m 0700 -o $USER $XDG_RUNTIME_DIR",
        )),
    }
    out
}

/// The podman service: reachable through the socket bottle would use, and what it enforces.
pub async fn podman_service(setting: Option<&str>) -> Vec<Check> {
    match bottle_backend_podman::Podman::connect(setting).await {
        Ok(p) => {
            let mut out = vec![ok(
                "podman service",
                format!(
                    "{} answers (API {}, {}, cgroups {})",
                    p.address(),
                    p.api_version(),
                    if p.rootless() { "rootless" } else { "rootful" },
                    p.cgroup_version()
                ),
            )];
            if !p.limits_enforced() {
                out.push(check(
                    "resource limits",
                    Status::Warn(
                        "rootless podman on cgroups v1 ignores the pids and memory limits; capabilities and no-new-privileges still apply (a cgroups v2 host enforces them)".to_owned(),
                    ),
                ));
            }
            out
        }
        Err(e) => vec![missing(
            "podman service",
            e.to_string(),
            "scripts/setup-podman.sh (root), or: podman system service --time=0 unix://$XDG_RUNTIME_DIR/podman/podman.sock &",
        )],
    }
}

/// With Docker on the same host, its FORWARD DROP policy also drops traffic between
/// containers of one podman bridge, unless DOCKER-USER lets it through.
fn podman_next_to_docker() -> Vec<Check> {
    let iptables = |args: &[&str]| {
        std::process::Command::new("iptables")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !iptables(&["-S", "DOCKER-USER"]) {
        return Vec::new(); // no Docker chains: nothing in the way
    }
    let rule = ["-i", "podman+", "-o", "podman+", "-j", "ACCEPT"];
    let mut check_args = vec!["-C", "DOCKER-USER"];
    check_args.extend(rule);
    vec![if iptables(&check_args) {
        ok(
            "firewall",
            "DOCKER-USER lets traffic stay within podman bridges",
        )
    } else {
        missing(
            "firewall",
            "Docker's FORWARD DROP policy blocks traffic between containers on a podman bridge: an agent could not reach its gate",
            "iptables -I DOCKER-USER -i podman+ -o podman+ -j ACCEPT (scripts/setup-podman.sh does this)",
        )
    }]
}

/// Prints the checks; returns whether all passed.
pub fn report(title: &str, checks: &[Check]) -> bool {
    println!("{title}");
    let mut healthy = true;
    for c in checks {
        match &c.status {
            Status::Ok(detail) => println!("  ok       {:<18} {detail}", c.name),
            Status::Warn(detail) => println!("  warning  {:<18} {detail}", c.name),
            Status::Missing { what, fix } => {
                healthy = false;
                println!(
                    "  MISSING  {:<18} {what}\n           {:<18} fix: {fix}",
                    c.name, ""
                );
            }
        }
    }
    healthy
}

/// The manifest's identity files, as `up` reads them: readable, a private key, without a
/// passphrase (the gate has no one to type it).
pub fn identity_files(manifest: &bottle_core::manifest::Manifest) -> Vec<Check> {
    let mut out = Vec::new();
    for bottle in manifest.bottles.values() {
        for up in &bottle.git {
            let name = format!("key {}/{}", bottle.name, up.name);
            out.push(match bottle_core::sidecar::gate::read_identity(up) {
                Ok(_) => ok(&name, up.identity_file.value.display().to_string()),
                Err(d) => missing(&name, format!("{}: {}", d.location, d.message), d.hint),
            });
        }
    }
    out
}

/// The images `up` needs (the sidecars', and the agents' bottle builds for the manifest's
/// bottles, or the demo agent's without one) on `backend`: missing or stale ones are a
/// warning, since `up` builds them itself (slowly) and `bottle image build` does it now.
pub async fn images(
    backend: &dyn bottle_core::backend::Backend,
    manifest: Option<&bottle_core::manifest::Manifest>,
) -> Vec<Check> {
    use bottle_core::backend::ImageState;
    use bottle_core::images;
    let mut which: Vec<&'static bottle_core::images::ImageRecipe> =
        vec![&images::GATE, &images::PROXY];
    let agents: Vec<&'static bottle_core::images::ImageRecipe> = match manifest {
        Some(m) => m
            .bottles
            .values()
            .filter_map(|b| images::recipe_for_tag(&b.image))
            .collect(),
        None => vec![&images::AGENT],
    };
    for r in agents {
        if !which.iter().any(|w| w.tag == r.tag) {
            which.push(r);
        }
    }
    match backend.image_states(&which).await {
        Ok(states) => states
            .into_iter()
            .map(|(tag, state)| {
                let name = format!("image {tag}");
                match state {
                    ImageState::Fresh => ok(&name, "present, built from the current inputs"),
                    ImageState::Stale => check(&name, Status::Warn("built from other inputs: `bottle image build` rebuilds it (`up` would, taking minutes)".to_owned())),
                    ImageState::Present => ok(&name, "present (whether it is current cannot be told: its build inputs are not found, see above)"),
                    ImageState::Missing => check(&name, Status::Warn("not on the engine: `bottle image build` builds it (`up` would, taking minutes)".to_owned())),
                }
            })
            .collect(),
        Err(e) => vec![missing("images", e.to_string(), "fix the engine first (above)")],
    }
}
