//! `bottle-gate-scan`: see the library's docs and gate-scan/README.md.
//!
//! Exit codes: 0 clean (forward the push), 1 findings, 2 refused for a limit or because
//! the scan failed (also for usage errors). Only 0 lets a push through.

use anyhow::Context;
use bottle_gate_scan::scan::defaults;
use bottle_gate_scan::{config, report, scan};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Scans what a push brings into the git-gate for secrets (run by the pre-receive hook,
/// in the bare repository, with the hook's lines on stdin).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    scan: ScanArgs,
}

#[derive(clap::Args)]
struct ScanArgs {
    /// The gate's gitleaks config (made by `make-config`).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The gitleaks binary.
    #[arg(long, value_name = "PATH", default_value = "gitleaks")]
    gitleaks: PathBuf,
    /// Most bytes of new objects (uncompressed) one push may bring.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_PUSH_MB << 20)]
    max_push_bytes: u64,
    /// Most bytes scanned, after decoding and decompression.
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_SCAN_MB << 20)]
    max_scan_bytes: u64,
    /// Longest the scan may take, in seconds.
    #[arg(long, value_name = "N", default_value_t = defaults::SCAN_TIMEOUT_S)]
    timeout_secs: u64,
    /// Deepest nesting of archives opened (a deeper one refuses the push).
    #[arg(long, value_name = "N", default_value_t = defaults::MAX_ARCHIVE_DEPTH)]
    max_archive_depth: usize,
    /// Accept the finding with this fingerprint (as the refusal prints it).
    #[arg(long, value_name = "FP")]
    accept_fingerprint: Vec<String>,
    /// Accept findings in files every path of which (in this push) matches this regex.
    #[arg(long, value_name = "RE")]
    accept_path: Vec<String>,
    /// Write a JSON summary (no secrets) here.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Append the verdict to this audit log as one JSON line (bottle's audit record: the
    /// rules, objects and paths of findings, or the limit; never a secret).
    #[arg(long, value_name = "FILE", requires = "audit_bottle")]
    audit: Option<PathBuf>,
    /// The bottle the audit line names.
    #[arg(long, value_name = "NAME")]
    audit_bottle: Option<String>,
    /// The gate's name for this repository, for the audit line.
    #[arg(long, value_name = "NAME", default_value = "")]
    audit_repo: String,
}

#[derive(Subcommand)]
enum Command {
    /// Make the gate's gitleaks config from a gitleaks binary's embedded default config.
    MakeConfig {
        /// The gitleaks binary (8.30.1).
        #[arg(long, value_name = "PATH")]
        gitleaks: PathBuf,
        /// Where to write the config.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::MakeConfig { gitleaks, out }) => match config::make_config(&gitleaks, &out) {
            Ok(sha) => {
                println!("{sha}  {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bottle-gate-scan: {e}");
                ExitCode::from(2)
            }
        },
        None => match run(cli.scan) {
            Ok(code) => code,
            Err(e) => {
                eprintln!(
                    "bottle-gate: push refused, nothing was forwarded upstream: the secret scan \
                     failed: {e:#}"
                );
                ExitCode::from(2)
            }
        },
    }
}

fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.context("--config is required")?;
    // gitleaks runs in the scan directory with an empty environment: absolute paths only.
    let config = std::fs::canonicalize(&config)
        .with_context(|| format!("the gitleaks config {}", config.display()))?;
    let gitleaks = resolve(&args.gitleaks)?;
    let accept_paths = args
        .accept_path
        .iter()
        .map(|re| regex::Regex::new(re).with_context(|| format!("--accept-path {re:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = scan::Options {
        config,
        gitleaks,
        max_push_bytes: args.max_push_bytes,
        max_scan_bytes: args.max_scan_bytes,
        timeout: Duration::from_secs(args.timeout_secs),
        max_archive_depth: args.max_archive_depth,
        accept_fingerprints: args.accept_fingerprint.into_iter().collect(),
        accept_paths,
        temp_dir: None,
    };
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the hook's input")?;
    let repo = std::env::current_dir().context("the current directory")?;
    let result = scan::parse_updates(&input).and_then(|u| scan::scan(&repo, &u, &opts));
    let (message, code) = match &result {
        Ok(o) if o.refused() => (report::findings_message(o), 1),
        Ok(o) => (report::clean_message(o), 0),
        Err(e) => (report::error_message(e), 2),
    };
    eprint!("{message}");
    if let Ok(o) = &result {
        for note in &o.notes {
            eprintln!("bottle-gate: note: {note}; its raw bytes were scanned");
        }
    }
    if let Some(path) = args.report {
        let json = serde_json::to_vec_pretty(&report::summary(&result))?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    // A refusal is a gate verdict of its own; a clean scan is logged by the hook with the
    // forward's outcome.
    if let (Some(path), Some(bottle), true) = (&args.audit, &args.audit_bottle, code != 0) {
        let line = report::audit_line(&result, bottle, &args.audit_repo);
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "bottle-gate: note: the audit line could not be written to {}: {e}",
                path.display()
            );
        }
    }
    Ok(ExitCode::from(code))
}

/// `program` as an absolute path: as given when it has a slash, else found on PATH.
fn resolve(program: &std::path::Path) -> anyhow::Result<PathBuf> {
    if program.components().count() > 1 {
        return std::fs::canonicalize(program)
            .with_context(|| format!("gitleaks at {}", program.display()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{} is not on PATH", program.display()))
}
