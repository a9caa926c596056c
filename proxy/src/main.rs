//! `bottle-proxy egress --config FILE` and `bottle-proxy cred --config FILE`: bottle's HTTP
//! sidecars. Audit lines (one JSON record each) go to stdout, diagnostics to stderr.
//!
//! bottle's image builder ships this as a static executable:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+crt-static' \
//!   cargo build --release -p bottle-proxy --target x86_64-unknown-linux-gnu
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bottle_proxy::audit::Audit;
use bottle_proxy::resolve::{Hickory, SharedResolver};
use bottle_proxy_config::{CredConfig, EgressConfig, Source};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bottle-proxy", version, about = "bottle's HTTP sidecars")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// Where it listens.
#[derive(Args)]
struct Listen {
    /// Bind each `0.0.0.0` of the config's `listen` to this container's addresses on the
    /// networks off its default route only (the bottle's internal network, where the
    /// agent is), when it has any (`bottle_proxy::listen`).
    #[arg(long)]
    listen_internal: bool,
}

impl Listen {
    fn apply(&self, listen: &mut Vec<std::net::SocketAddr>) {
        if self.listen_internal {
            *listen =
                bottle_proxy::listen::narrow(listen, &bottle_proxy::listen::internal_addresses());
        }
    }
}

#[derive(Args)]
struct Dns {
    /// resolv.conf-style file naming the name servers.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// hosts-style file consulted before DNS.
    #[arg(long, default_value = "/etc/hosts")]
    hosts: PathBuf,
}

#[derive(Subcommand)]
enum Mode {
    /// The egress proxy (CONNECT and plain-HTTP forwarding by the allow list).
    Egress {
        /// JSON EgressConfig.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        listen: Listen,
        #[command(flatten)]
        dns: Dns,
    },
    /// The credential sidecar (routes that add the API key).
    Cred {
        /// JSON CredConfig.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        listen: Listen,
        #[command(flatten)]
        dns: Dns,
    },
    /// Resolve a name as the sidecars do and print each address with its class.
    Resolve {
        /// The name.
        name: String,
        #[command(flatten)]
        dns: Dns,
    },
}

fn read<T: serde::de::DeserializeOwned>(path: &PathBuf) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
}

fn resolver(dns: &Dns) -> Result<SharedResolver, String> {
    Hickory::from_files(&dns.resolv_conf, &dns.hosts)
        .map(|h| Arc::new(h) as SharedResolver)
        .map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    let running = match cli.mode {
        Mode::Egress {
            config,
            listen,
            dns,
        } => {
            let mut cfg: EgressConfig = read(&config)?;
            listen.apply(&mut cfg.listen);
            let audit = Audit::stdout(&cfg.bottle, Source::Proxy);
            bottle_proxy::egress::start(cfg, resolver(&dns)?, audit)
                .await
                .map_err(|e| e.to_string())?
        }
        Mode::Cred {
            config,
            listen,
            dns,
        } => {
            let mut cfg: CredConfig = read(&config)?;
            listen.apply(&mut cfg.listen);
            let audit = Audit::stdout(&cfg.bottle, Source::Cred);
            bottle_proxy::cred::start(cfg, resolver(&dns)?, audit)
                .await
                .map_err(|e| e.to_string())?
        }
        Mode::Resolve { name, dns } => {
            let r = resolver(&dns)?;
            let host = bottle_proxy::rules::normalise_name(&name)?;
            for ip in r.lookup(&host).await? {
                let class = match bottle_proxy::addr::classify(ip) {
                    bottle_proxy::addr::AddrClass::Public => "public",
                    bottle_proxy::addr::AddrClass::NonPublic(c) => c,
                };
                println!("{ip} {class}");
            }
            return Ok(());
        }
    };
    let addrs: Vec<String> = running.addrs().iter().map(|a| a.to_string()).collect();
    eprintln!("bottle-proxy: listening on {}", addrs.join(", "));
    running.until_signal().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bottle-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bottle-proxy: {e}");
            ExitCode::from(2)
        }
    }
}
