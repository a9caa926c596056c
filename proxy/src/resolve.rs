//! Name resolution, done by the proxy itself.
//!
//! The sidecars resolve names with hickory (reading `/etc/resolv.conf` and `/etc/hosts`),
//! never with the C library's `getaddrinfo`: the binary is static, and a static glibc
//! cannot load the NSS modules `getaddrinfo` needs. Resolving ourselves is also what lets
//! the proxy check every address before connecting to exactly one of them.
//!
//! [`Resolve`] is a trait so tests can map names to loopback without any DNS.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Hosts, TokioResolver};

use crate::Error;

/// A boxed future of a lookup: every address of a name, or why there is none.
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, String>> + Send + 'a>>;

/// Resolves a normalised host name to all its addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Every address of `name` (never empty on success).
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a>;
}

/// A shared resolver.
pub type SharedResolver = Arc<dyn Resolve>;

/// hickory's resolver, configured from files.
pub struct Hickory(TokioResolver);

impl Hickory {
    /// From `/etc/resolv.conf` and `/etc/hosts`.
    pub fn system() -> Result<Hickory, Error> {
        Hickory::from_files(Path::new("/etc/resolv.conf"), Path::new("/etc/hosts"))
    }

    /// From a resolv.conf-style file and a hosts-style file. A missing resolv.conf, or
    /// one naming no `nameserver`, means only the hosts file answers; a missing hosts
    /// file means none.
    pub fn from_files(resolv_conf: &Path, hosts: &Path) -> Result<Hickory, Error> {
        let io = |path: &Path, e: std::io::Error| Error::Io {
            what: "read resolver configuration",
            path: path.display().to_string(),
            source: e,
        };
        let (config, mut opts) = match std::fs::read(resolv_conf) {
            // hickory refuses a file naming no server; for us that means hosts only.
            Ok(data) if !names_a_server(&data) => hosts_only(),
            Ok(data) => hickory_resolver::system_conf::parse_resolv_conf(&data).map_err(|e| {
                Error::Config(format!("cannot parse {}: {e}", resolv_conf.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => hosts_only(),
            Err(e) => return Err(io(resolv_conf, e)),
        };
        // We read the hosts file ourselves (from the path given), so hickory must not
        // read the system one over it.
        opts.use_hosts_file = ResolveHosts::Never;
        let mut table = Hosts::default();
        match std::fs::File::open(hosts) {
            Ok(f) => table.read_hosts_conf(f).map_err(|e| io(hosts, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(hosts, e)),
        }
        let mut resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        resolver.set_hosts(Arc::new(table));
        Ok(Hickory(resolver))
    }
}

fn hosts_only() -> (ResolverConfig, ResolverOpts) {
    (
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )
}

fn names_a_server(resolv_conf: &[u8]) -> bool {
    String::from_utf8_lossy(resolv_conf)
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nameserver"))
}

impl Resolve for Hickory {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            // A trailing dot makes the name absolute: no search domain is appended.
            let fqdn = format!("{name}.");
            let found = self.0.lookup_ip(fqdn).await.map_err(|e| e.to_string())?;
            let addrs: Vec<IpAddr> = found.iter().collect();
            if addrs.is_empty() {
                return Err(format!("{name} has no address"));
            }
            Ok(addrs)
        })
    }
}

/// A fixed table of names, for tests: no DNS at all.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl StaticResolver {
    /// Adds a name.
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.0.insert(name.to_string(), addrs.to_vec());
        self
    }
}

impl Resolve for StaticResolver {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        let found = self.0.get(name).cloned();
        Box::pin(async move { found.ok_or_else(|| format!("{name}: no such name")) })
    }
}
