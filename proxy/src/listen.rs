//! Listening only where the agent is: a sidecar on both of a bottle's networks binds its
//! port on the internal one, so nothing on the egress side (the host holds that bridge's
//! address) can use it. The engine assigns the container's addresses when it starts, so
//! the sidecar finds its own: on each network whose interface does not carry the default
//! route (the egress network carries it; the internal one has no route out), the address
//! the kernel picks as the source towards that network. A UDP socket's `connect` makes the
//! kernel pick it and sends nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// The IPv4 networks (network, mask) of the routing table `table` (the text of
/// `/proc/net/route`) that are directly connected to an interface which does not carry a
/// default route.
pub fn off_default_route(table: &str) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    // Fields: Iface Destination Gateway Flags RefCnt Use Metric Mask ..., the addresses
    // 32-bit hex in the kernel's (little-endian) byte order.
    let rows: Vec<(&str, u32, u32, u32)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| f.get(i).and_then(|v| u32::from_str_radix(v, 16).ok());
            Some((*f.first()?, hex(1)?, hex(2)?, hex(7)?))
        })
        .collect();
    let defaults: Vec<&str> = rows
        .iter()
        .filter(|(_, dest, _, mask)| *dest == 0 && *mask == 0)
        .map(|(iface, ..)| *iface)
        .collect();
    rows.iter()
        .filter(|(iface, _, gateway, mask)| {
            *gateway == 0 && *mask != 0 && !defaults.contains(iface)
        })
        .map(|(_, dest, _, mask)| {
            (
                Ipv4Addr::from(dest.swap_bytes()),
                Ipv4Addr::from(mask.swap_bytes()),
            )
        })
        .collect()
}

/// This container's addresses on the networks [`off_default_route`] finds in
/// `/proc/net/route`; empty when there are none (a single network, as in a Kubernetes
/// Pod) or no table.
pub fn internal_addresses() -> Vec<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut out = Vec::new();
    for (network, _) in off_default_route(&table) {
        // Any address of the network: the kernel's source towards it is ours there.
        let probe = Ipv4Addr::from(u32::from(network) | 1);
        let source = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.connect((probe, 9)).map(|()| s))
            .and_then(|s| s.local_addr());
        if let Ok(SocketAddr::V4(a)) = source {
            if !a.ip().is_unspecified() && !out.contains(a.ip()) {
                out.push(*a.ip());
            }
        }
    }
    out
}

/// `listen` with each unspecified IPv4 address (`0.0.0.0:PORT`) replaced by `internal`'s
/// addresses on the same port; unchanged when `internal` is empty.
pub fn narrow(listen: &[SocketAddr], internal: &[Ipv4Addr]) -> Vec<SocketAddr> {
    if internal.is_empty() {
        return listen.to_vec();
    }
    let mut out = Vec::new();
    for addr in listen {
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                out.extend(internal.iter().map(|i| SocketAddr::from((*i, addr.port()))))
            }
            _ => out.push(*addr),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn the_networks_off_the_default_route() {
        // Internal 10.89.0.0/24 on eth0, egress 172.18.0.0/16 on eth1 with the default route.
        let two = format!(
            "{HEAD}eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
             eth1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        );
        assert_eq!(
            off_default_route(&two),
            [(Ipv4Addr::new(10, 89, 0, 0), Ipv4Addr::new(255, 255, 255, 0))]
        );
        // One interface with the default route (a Pod), or garbage: none.
        let one = format!(
            "{HEAD}eth0\t00000000\t0100580A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        );
        assert!(off_default_route(&one).is_empty());
        assert!(off_default_route("").is_empty());
        assert!(off_default_route(&format!("{HEAD}eth0 zz 00 0 0 0 0 nope\n")).is_empty());
    }

    #[test]
    fn only_unspecified_addresses_are_narrowed() {
        let listen: Vec<SocketAddr> = vec![
            "0.0.0.0:3128".parse().unwrap(),
            "127.0.0.1:9000".parse().unwrap(),
        ];
        let internal = [Ipv4Addr::new(10, 89, 0, 7)];
        assert_eq!(
            narrow(&listen, &internal),
            [
                "10.89.0.7:3128".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:9000".parse().unwrap()
            ]
        );
        assert_eq!(narrow(&listen, &[]), listen);
    }

    #[test]
    fn the_source_towards_a_connected_network_is_an_address_of_this_host() {
        // On the machine running the tests: every address found is one a socket can bind.
        for ip in internal_addresses() {
            std::net::TcpListener::bind((ip, 0))
                .unwrap_or_else(|e| panic!("{ip} is not this host's: {e}"));
        }
    }
}
