//! bottle's HTTP sidecars: the **egress proxy** and the **credential router**.
//!
//! Both are one binary, `bottle-proxy`, run in two different containers
//! (`bottle-proxy egress --config FILE`, `bottle-proxy cred --config FILE`) so that a bug
//! in one cannot hand over what the other holds: the egress proxy carries arbitrary agent
//! traffic and holds nothing; the credential sidecar holds API keys and talks only to
//! its routes. Their configuration and audit schema live in [`bottle_proxy_config`].
//!
//! # Design decisions
//!
//! - **CONNECT without interception.** The egress proxy decides on the host name and
//!   port of a `CONNECT`, then splices bytes ([`tokio::io::copy_bidirectional`]). It never
//!   terminates the agent's TLS, so it needs no CA in the agent, holds no key, and
//!   HTTP/2, WebSockets and gRPC inside TLS work unchanged. What it cannot see (paths,
//!   bodies) it does not claim to police; credentials are kept out of the agent by the
//!   credential sidecar instead.
//! - **Resolve, check, connect.** The proxy resolves the name itself, refuses when *any*
//!   address is not public (loopback, private, link-local with the metadata address,
//!   CGNAT, ...; see [`addr`]) unless `allow_private` names the host, then connects to an
//!   address it checked. There is no second lookup, so a name cannot be re-pointed at an
//!   internal address between the check and the connect (DNS rebinding).
//! - **A refusal says why.** `403` with `X-Bottle-Deny: <reason>` and a one-line body
//!   naming the rule and the `bottle.toml` line that would allow it: agents read these.
//! - **One audit line per decision**, a stable serde record on stdout, never a header
//!   value, a secret or a query string.
//! - **Bounded.** Header read timeout and size (hyper's), a cap on connections (tunnels
//!   included), connect timeout, idle timeout on tunnels ([`Limits`]).
//! - **Static.** The executable is copied into a Debian image whatever built it, so it
//!   is linked statically, and resolves names with hickory rather than the C library
//!   (a static glibc cannot load NSS modules). Build it with:
//!
//!   ```sh
//!   RUSTFLAGS='-C target-feature=+crt-static' \
//!     cargo build --release -p bottle-proxy --target x86_64-unknown-linux-gnu
//!   # -> target/x86_64-unknown-linux-gnu/release/bottle-proxy
//!   ```
//!
//!   The explicit `--target` keeps the flag off build scripts and proc-macros. TLS uses
//!   rustls with the *ring* provider (no cmake, no C toolchain beyond cc).
//!
//! [`Limits`]: bottle_proxy_config::Limits
#![deny(missing_docs)]

pub mod addr;
pub mod audit;
mod body;
pub mod cred;
pub mod egress;
pub mod listen;
mod net;
pub mod request;
pub mod resolve;
/// The entry syntax and the matcher, shared with bottle's manifest validation.
pub use bottle_proxy_config::rules;
pub use bottle_proxy_config::RuleError;
mod server;

pub use server::Running;

/// An error starting a sidecar. Runtime failures of single requests are answered and
/// logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An allow, deny or allow_private entry is malformed.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A file could not be read.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}
