//! `bottle demo`: the git-gate at work, on a local engine (docker, or podman rootful or
//! rootless: any engine backend), with nothing to set up.
//!
//! It builds the images it needs, makes two keys (the gate's key for the upstream and the
//! upstream's host key), brings up the bottle `demo` from an embedded manifest, starts a
//! local upstream (sshd + git) on the bottle's egress network, and then, inside the agent,
//! clones through the gate, pushes a clean commit (it arrives upstream) and pushes a commit
//! holding an AWS key (gitleaks blocks it; the upstream does not move). Then the agent calls
//! a model API through its credential route (a stand-in on the egress network: the key is
//! added by the cred sidecar, the agent never holds it), is refused a host the bottle does
//! not allow, and the refusal is shown from the audit log (`bottle logs --denied`).
//! Everything is torn down at the end unless `--keep` is given.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bottle_backend_shared::engine::{self, Engine};
use bottle_backend_shared::fixture;
use bottle_core::backend::Scope;
use bottle_core::backend::{Backend, UpOptions};
use bottle_core::images;
use bottle_core::manifest::{self, Env};
use bottle_core::plan::{resource_name, ContainerRole};
use bottle_core::planner;
use bottle_core::project::Project;
use bottle_core::sidecar::{HostEnv, SIDECARS};

/// The demo's bottle, and so its slug.
const SLUG: &str = "demo";
/// The demo's project: its own, so that it never touches a `demo` bottle of a project of
/// the user's (`bottle -p demo down demo` removes a kept demo from anywhere).
const PROJECT: &str = "demo";
/// The upstream the agent clones, as the agent writes it.
/// Its host is the upstream fixture's container name (checked by a test).
const UPSTREAM_URL: &str = "ssh://git@bottle-demo-demo-upstream/srv/git/app.git";
/// An AWS access key id of the shape gitleaks recognises (made up).
const FAKE_AWS_KEY: &str = "AKIAQYLPMN5HHHFPZAM2";
/// The model API stand-in's host name, on the bottle's egress network.
const MODEL_HOST: &str = "model.demo.test";
/// A host the bottle does not allow (never resolved: the proxy refuses it by its name).
const REFUSED_HOST: &str = "paste.example.test";
/// The variable the route's key is read from (the demo sets it for its own plan only).
const KEY_VAR: &str = "BOTTLE_DEMO_MODEL_KEY";

const MANIFEST: &str = r#"# The manifest `bottle demo` runs: one bottle, one upstream, one credential route.
[bottles.demo]
image = "bottle-agent:latest"
command = ["sleep", "infinity"]

[[bottles.demo.git]]
name = "app"
upstream = "@URL@"
identity_file = "gate_key"
known_host_key = "@HOST_KEY@"

# The agent calls $MODEL_BASE_URL/v1/messages; the cred sidecar adds the key.
[[bottles.demo.cred_proxy.routes]]
name = "model"
upstream = "https://model.demo.test"
header = "x-api-key"
secret_env = "BOTTLE_DEMO_MODEL_KEY"
agent_env = "MODEL_BASE_URL"
ca_file = "model-ca.pem"

[bottles.demo.cred_proxy]
# The stand-in runs on the bottle's own egress network, at a private address.
allow_private = ["model.demo.test"]
"#;

struct Steps {
    total: usize,
    n: usize,
    started: Instant,
}

impl Steps {
    fn step(&mut self, what: &str) {
        self.n += 1;
        println!(
            "\n[{}/{}] {what}   (+{:.1}s)",
            self.n,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn show(label: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("    {label}{}", line.trim_end());
    }
}

/// Where the demo keeps its keys and manifest: `$XDG_CACHE_HOME/bottle/demo`.
fn demo_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set: nowhere to keep the demo's keys")?;
    Ok(base.join("bottle").join("demo"))
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    for p in [path.to_path_buf(), path.with_extension("pub")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", p.display()))
            }
            _ => {}
        }
    }
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("cannot run ssh-keygen: install openssh-client (scripts/install-deps.sh does)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn exec<E: Engine>(e: &E, container: &str, script: &str) -> anyhow::Result<(i32, Vec<u8>)> {
    let out = engine::exec_output(e, container, &["sh".into(), "-c".into(), script.into()]).await?;
    let mut both = out.stdout;
    both.extend_from_slice(&out.stderr);
    Ok((out.code, both))
}

/// Where the demo's progress lines go: indented under its steps.
pub fn progress(line: &str) {
    println!("    | {line}");
}

/// Runs the demo on `e`, an engine backend's client (`about`: which engine, for the first
/// line). `keep`: leave the bottle and the upstream up.
pub async fn run<E: Engine + Backend>(e: E, about: &str, keep: bool) -> anyhow::Result<()> {
    let mut steps = Steps {
        total: 10,
        n: 0,
        started: Instant::now(),
    };
    println!("bottle demo: an agent in a bottle, its git traffic through the git-gate.");
    println!("engine: {about}");

    steps.step(
        "Images: the git-gate, the proxies, the agent, a local upstream and a model API stand-in (first run builds them: a few minutes)",
    );
    e.build_images(images::DEMO, false)
        .await
        .context("building the demo's images")?;

    steps.step("Keys: the gate's own key for the upstream, and the upstream's host key");
    let dir = demo_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    keygen(&dir.join("gate_key"), "bottle demo gate")?;
    keygen(&dir.join("upstream_host_key"), "bottle demo upstream")?;
    let host_pub = std::fs::read_to_string(dir.join("upstream_host_key.pub"))?;
    let host_key = manifest::parse_host_key(&host_pub).map_err(|e| anyhow::anyhow!(e))?;
    let manifest_text = MANIFEST
        .replace("@URL@", UPSTREAM_URL)
        .replace("@HOST_KEY@", &host_key);
    let manifest_path = dir.join("bottle.toml");
    std::fs::write(&manifest_path, &manifest_text)?;
    let ca = DemoCa::new()?;
    std::fs::write(dir.join("model-ca.pem"), &ca.pem)?;
    println!(
        "    in {}: gate_key (only the gate gets it), upstream_host_key, model-ca.pem (the stand-in's CA), bottle.toml",
        dir.display()
    );
    let model_key = demo_model_key();

    steps.step("The bottle 'demo': internal and egress networks, the git-gate, the agent");
    let manifest = manifest::parse(&manifest_path, &manifest_text, &Env::current())?;
    // The route's key comes from this variable; the demo makes one up for its own plan
    // rather than reading (or needing) a real one from the environment.
    let host_env = HostEnv::Map([(KEY_VAR.to_owned(), model_key.clone())].into());
    let plan = planner::plan_in(
        manifest.select(Some(SLUG))?,
        &Project::new(PROJECT)?,
        SIDECARS,
        &host_env,
    )?;
    e.up(&plan, &UpOptions::default()).await?;
    for c in &plan.containers {
        let nets: Vec<_> = std::iter::once(c.network.as_str())
            .chain(c.connect.iter().map(String::as_str))
            .collect();
        println!("    {} on {}", c.name, nets.join(" + "));
    }

    // From here on, tear down on failure too (unless --keep).
    let result = match exercise(&e, &dir, &mut steps).await {
        Ok(()) => use_route(&e, &ca, &model_key, &mut steps).await,
        Err(err) => Err(err),
    };
    if keep {
        println!("\nThe bottle is still up (--keep). Get into the agent with:");
        println!("    bottle -p {PROJECT} exec {SLUG} -- bash");
        println!("and try: git clone {UPSTREAM_URL}");
        println!("Remove it with: bottle -p {PROJECT} down {SLUG}");
    } else {
        println!("\nTearing down: bottle -p {PROJECT} down {SLUG}");
        e.down(&Scope::bottle(PROJECT, SLUG)).await?;
    }
    result?;
    println!(
        "\nDone in {:.1}s: the clone came through the gate, the clean push arrived upstream, \
         the secret never left the bottle; the model was called with a key the agent never held, \
         and the host the bottle does not allow was refused and logged.",
        steps.started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn exercise<E: Engine>(e: &E, dir: &Path, steps: &mut Steps) -> anyhow::Result<()> {
    let agent = resource_name(PROJECT, SLUG, ContainerRole::AGENT);
    let upstream = &resource_name(PROJECT, SLUG, fixture::ROLE);

    steps.step("A local upstream (sshd + git) on the bottle's egress network, where only the gate can reach it");
    start_upstream(e, dir).await?;
    println!("    {upstream}: repository /srv/git/app.git, key login for the gate's key only");

    steps.step(&format!("In the agent: git clone {UPSTREAM_URL}"));
    println!("    (the agent's git config sends it to git://bottle-demo-demo-gate/app.git; the gate fetches from the upstream first)");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = exec(
            e,
            &agent,
            &format!(
                "cd && rm -rf app && git clone {UPSTREAM_URL} app 2>&1 && git -C app log --oneline"
            ),
        )
        .await?;
        if code == 0 {
            show("agent$ ", &out);
            break;
        }
        if Instant::now() > deadline {
            show("agent$ ", &out);
            bail!("the clone through the gate failed (see above)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    steps.step("In the agent: a clean commit, pushed");
    let (code, out) = exec(
        e,
        &agent,
        "cd ~/app && echo 'work by the agent' > feature.txt && git add feature.txt \
         && git commit -qm 'Add a feature' && git push origin HEAD 2>&1",
    )
    .await?;
    show("agent$ ", &out);
    if code != 0 {
        bail!("the clean push was refused (see above)");
    }
    let (_, log) = exec(e, upstream, &upstream_git("log --oneline -3")).await?;
    println!("    upstream now has:");
    show("upstream$ ", &log);

    steps.step("In the agent: a commit holding an AWS access key, pushed");
    let before = upstream_head(e, upstream).await?;
    let (code, out) = exec(
        e,
        &agent,
        &format!(
            "cd ~/app && echo 'AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}' > deploy.env && git add deploy.env \
             && git commit -qm 'Add deploy settings' && git push origin HEAD 2>&1"
        ),
    )
    .await?;
    show("agent$ ", &out);
    let after = upstream_head(e, upstream).await?;
    if code == 0 {
        bail!("the push holding a secret went through: the gate did not block it");
    }
    if before != after {
        bail!("the upstream moved although the push was refused");
    }
    println!(
        "    blocked: gitleaks found the key, nothing was forwarded; the upstream is still at {}",
        after
    );
    Ok(())
}

/// A git command on the upstream's repository, run as root inside the fixture (whose
/// repositories belong to its `git` user, hence the safe.directory).
fn upstream_git(args: &str) -> String {
    format!("git -c safe.directory='*' --git-dir=/srv/git/app.git {args}")
}

async fn upstream_head<E: Engine>(e: &E, upstream: &str) -> anyhow::Result<String> {
    let (code, out) = exec(e, upstream, &upstream_git("rev-parse --short HEAD")).await?;
    let text = String::from_utf8_lossy(&out).trim().to_owned();
    if code != 0 {
        bail!("cannot read the upstream's HEAD: {text}");
    }
    Ok(text)
}

/// Starts the upstream fixture on the bottle's egress network, labelled as part of the
/// bottle so `bottle -p demo down demo` removes it too.
async fn start_upstream<E: Engine>(e: &E, dir: &Path) -> anyhow::Result<()> {
    let host_key = std::fs::read_to_string(dir.join("upstream_host_key"))?;
    let authorized = std::fs::read_to_string(dir.join("gate_key.pub"))?;
    let spec = fixture::upstream(&fixture::Upstream {
        project: PROJECT,
        slug: SLUG,
        repos: &["app"],
        default_branch: "main",
        host_key: &host_key,
        authorized_keys: &authorized,
    });
    engine::run_container(e, &spec).await?;
    Ok(())
}

/// The demo's own CA, which signs the model stand-in's certificate (the cred sidecar
/// trusts it through the route's `ca_file`).
struct DemoCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    pem: String,
}

impl DemoCa {
    fn new() -> anyhow::Result<DemoCa> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bottle demo CA");
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        Ok(DemoCa { cert, key, pem })
    }
}

/// A made-up key, different each run (so finding it anywhere would mean something).
fn demo_model_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("demo-key-{nanos:x}")
}

/// Steps 8 to 10: the model API through the route, a refused host, the audit log.
async fn use_route<E: Engine + Backend>(
    e: &E,
    ca: &DemoCa,
    model_key: &str,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let agent = resource_name(PROJECT, SLUG, ContainerRole::AGENT);

    steps.step("In the agent: a call to the model API through its route; the key is added outside the bottle");
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec![MODEL_HOST.to_owned()])?
        .signed_by(&key, &ca.cert, &ca.key)?;
    let spec = fixture::web(&fixture::Web {
        project: PROJECT,
        slug: SLUG,
        name: MODEL_HOST,
        cert_pem: &leaf.pem(),
        key_pem: &key.serialize_pem(),
        script: Some("{\"text\": \"Hello from the model stand-in.\"}\n"),
    });
    engine::run_container(e, &spec).await?;
    println!("    {MODEL_HOST}: a stand-in for the Messages API, on the egress network (TLS from the demo's CA)");
    let call = "echo \"MODEL_BASE_URL=$MODEL_BASE_URL\"; \
        curl -sS --retry 5 --retry-connrefused --retry-delay 1 \"$MODEL_BASE_URL/v1/messages\" \
        -H 'content-type: application/json' \
        -d '{\"model\":\"stand-in\",\"max_tokens\":64,\"tools\":[{\"name\":\"none\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'";
    let (code, out) = exec(e, &agent, call).await?;
    show("agent$ ", &out);
    if code != 0 || !String::from_utf8_lossy(&out).contains("Hello from the model stand-in") {
        bail!("the call through the route failed (see above)");
    }
    let (_, seen) = exec(e, &agent, "curl -sS \"$MODEL_BASE_URL/_requests\"").await?;
    let seen: serde_json::Value = serde_json::from_slice(&seen).unwrap_or_default();
    if seen[0]["headers"]["x-api-key"] != model_key {
        bail!("the stand-in did not receive the route's key");
    }
    let (_, env) = exec(e, &agent, "env").await?;
    if String::from_utf8_lossy(&env).contains(model_key) {
        bail!("the key is in the agent's environment");
    }
    println!(
        "    the stand-in received x-api-key: {}... (the route's key); the agent's environment does not hold it",
        &model_key[..12.min(model_key.len())]
    );

    steps.step(&format!(
        "In the agent: a request to {REFUSED_HOST}, which the bottle does not allow"
    ));
    let (code, out) = exec(
        e,
        &agent,
        &format!("curl -sS --max-time 10 https://{REFUSED_HOST}/ 2>&1"),
    )
    .await?;
    show("agent$ ", &out);
    if code == 0 {
        bail!("{REFUSED_HOST} was reached although the bottle does not allow it");
    }

    steps.step("bottle logs --denied demo: every refusal, with its reason");
    let streams = e.audit_logs(&Scope::bottle(PROJECT, SLUG)).await?;
    let denied: Vec<_> = crate::logs::merge(&streams)
        .into_iter()
        .filter(|r| r.decision == bottle_proxy_config::Decision::Deny)
        .collect();
    for r in &denied {
        println!("    {}", crate::logs::human(r));
    }
    if !denied
        .iter()
        .any(|r| r.host.as_deref() == Some(REFUSED_HOST))
    {
        bail!("the refusal of {REFUSED_HOST} is not in the audit log");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_url_names_the_fixture_container() {
        let host = resource_name(PROJECT, SLUG, fixture::ROLE);
        assert_eq!(
            UPSTREAM_URL,
            format!("ssh://git@{host}/srv/git/app.git"),
            "the agent's clone URL must name the fixture's container"
        );
    }
}
