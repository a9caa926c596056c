//! The run's context: the bottle binary, keys, directories.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cleanup::{cleanup_forget, cleanup_register};
use crate::{cmd, Args, STEP};

/// The project of every bottle the bench brings up (set in each manifest's `[settings]`).
pub(crate) const BENCH_PROJECT: &str = "bench";

pub(crate) struct Ctx {
    pub(crate) bottle: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) runs: usize,
    pub(crate) gate_key: PathBuf,
    /// The upstream fixture's host key (private, then `<type> <base64>`).
    pub(crate) host_key: String,
    pub(crate) host_key_pub: String,
    /// Gate levers turned off (`--lever-off`).
    pub(crate) levers_off: Vec<String>,
}

impl Ctx {
    pub(crate) fn bottle_cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new(&self.bottle);
        c.current_dir(dir).args(["--backend", "docker"]);
        c
    }

    pub(crate) fn upstream_url(slug: &str, repo: &str) -> String {
        format!("ssh://git@bottle-{BENCH_PROJECT}-{slug}-upstream/srv/git/{repo}.git")
    }

    /// Writes the manifest of bottle `slug` (one upstream, `repo` on its fixture) into its
    /// own directory and returns the directory.
    pub(crate) fn manifest(&self, slug: &str, repo: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.path().join("bottles").join(slug);
        std::fs::create_dir_all(&dir)?;
        let text = format!(
            "[settings]\nproject = \"{BENCH_PROJECT}\"\n\n[bottles.{slug}]\nimage = \"bottle-agent:latest\"\ncommand = [\"sleep\", \"infinity\"]\n\n\
             [[bottles.{slug}.git]]\nname = \"{repo}\"\nupstream = {url:?}\nidentity_file = {key:?}\n\
             known_host_key = {pin:?}\n",
            url = Ctx::upstream_url(slug, repo),
            key = self.gate_key.display().to_string(),
            pin = self.host_key_pub,
        );
        std::fs::write(dir.join("bottle.toml"), text)?;
        Ok(dir)
    }

    /// `bottle up SLUG`, registered for cleanup first.
    pub(crate) fn up(&self, slug: &str, dir: &Path) -> anyhow::Result<f64> {
        cleanup_register(|c| c.bottles.push((slug.to_owned(), dir.to_path_buf())));
        cmd::timed(self.bottle_cmd(dir).args(["up", slug]), STEP)
    }

    pub(crate) fn down(&self, slug: &str, dir: &Path) -> anyhow::Result<()> {
        cmd::ok(self.bottle_cmd(dir).args(["down", slug]), STEP)?;
        cleanup_forget(slug);
        Ok(())
    }
}

pub(crate) fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    cmd::ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// The bottle binary: `--bottle`, else built with cargo next to this binary.
pub(crate) fn bottle_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(b) = &args.bottle {
        // Absolute: the bottle commands run in each bottle's own directory.
        return std::fs::canonicalize(b)
            .with_context(|| format!("the bottle binary {} does not exist", b.display()));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has a parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building bottle: cargo build --release --bin bottle");
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "--bin", "bottle"])
        .status()
        .context("cannot run cargo (or pass --bottle PATH)")?;
    if !status.success() {
        bail!("cargo build --release --bin bottle failed");
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("this binary has a directory")?
        .join("bottle");
    if !bin.is_file() {
        bail!(
            "{} does not exist after the build; pass --bottle PATH",
            bin.display()
        );
    }
    Ok(bin)
}
