//! Resolve, check every address, connect to a checked one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::addr::{classify, AddrClass};
use crate::resolve::Resolve;
use crate::rules::Host;

/// Why no connection was made.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Unreachable {
    /// An address is not public and no `allow_private` entry names the host.
    #[error("{host} resolves to {addr}, a {class} address")]
    Private {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("cannot connect to {host} ({addrs}): {why}")]
    Connect {
        host: String,
        addrs: String,
        why: String,
    },
}

impl Unreachable {
    pub(crate) fn token(&self) -> &'static str {
        match self {
            Unreachable::Private { .. } => "private-address",
            Unreachable::Resolve { .. } => "resolve-failed",
            Unreachable::Connect { .. } => "connect-failed",
        }
    }
}

/// Every address of `host`, each checked: if any is not public (and `private_ok` is
/// false), the whole name is refused, since a client could not choose which one we use.
pub(crate) async fn resolve_checked(
    resolver: &dyn Resolve,
    host: &Host,
    port: u16,
    private_ok: bool,
) -> Result<Vec<SocketAddr>, Unreachable> {
    let ips = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => resolver
            .lookup(name)
            .await
            .map_err(|why| Unreachable::Resolve {
                host: name.clone(),
                why,
            })?,
    };
    if ips.is_empty() {
        return Err(Unreachable::Resolve {
            host: host.to_string(),
            why: "no address".into(),
        });
    }
    if !private_ok {
        for ip in &ips {
            if let AddrClass::NonPublic(class) = classify(*ip) {
                return Err(Unreachable::Private {
                    host: host.to_string(),
                    addr: *ip,
                    class,
                });
            }
        }
    }
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// Connects to the first checked address that answers within `timeout` each.
pub(crate) async fn connect_checked(
    host: &Host,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), Unreachable> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *addr));
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out after {}s", timeout.as_secs()),
        }
    }
    Err(Unreachable::Connect {
        host: host.to_string(),
        addrs: addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        why: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::StaticResolver;

    #[tokio::test]
    async fn one_private_address_refuses_the_name() {
        // Resolution only: nothing here connects.
        let r = StaticResolver::default()
            .with(
                "mixed.test",
                &[
                    "1.1.1.1".parse().unwrap(),
                    "169.254.169.254".parse().unwrap(),
                ],
            )
            .with("public.test", &["1.1.1.1".parse().unwrap()]);
        let host = Host::Name("mixed.test".into());
        let e = resolve_checked(&r, &host, 443, false).await.unwrap_err();
        assert_eq!(e.token(), "private-address");
        assert!(
            e.to_string()
                .contains("169.254.169.254, a link-local address"),
            "{e}"
        );
        assert_eq!(
            resolve_checked(&r, &host, 443, true).await.unwrap().len(),
            2
        );
        let public = Host::Name("public.test".into());
        assert_eq!(
            resolve_checked(&r, &public, 443, false).await.unwrap(),
            vec!["1.1.1.1:443".parse().unwrap()]
        );
        let literal = Host::Ip("127.0.0.1".parse().unwrap());
        assert_eq!(
            resolve_checked(&r, &literal, 1, false)
                .await
                .unwrap_err()
                .token(),
            "private-address"
        );
    }
}
