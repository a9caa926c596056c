//! Which addresses the sidecars may connect to.
//!
//! Only globally routed unicast addresses are public. Everything else (loopback, the
//! private ranges, link-local with the cloud metadata address 169.254.169.254, CGNAT,
//! multicast, documentation and reserved ranges, and IPv6 forms embedding an IPv4
//! address) is refused unless the manifest lifts it for a host. The list is written as
//! data so it can be read against the IANA special-purpose registries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address may be connected to without an `allow_private` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// A globally routed unicast address.
    Public,
    /// Anything else, with the name of its range (`loopback`, `private`, ...).
    NonPublic(&'static str),
}

impl AddrClass {
    /// True for [`AddrClass::Public`].
    pub fn is_public(self) -> bool {
        self == AddrClass::Public
    }
}

/// IPv4 ranges that are not public: (network, prefix length, name).
const V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "cgnat"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "reserved"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "reserved"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "reserved"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// IPv6 ranges that are not public, checked in order after the embedded-IPv4 forms.
const V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    // IETF protocol assignments, Teredo among them.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "reserved"),
    // 6to4 can reach any IPv4 address through a relay, private ones included.
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "reserved"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "private"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "private"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Classifies an address.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    V4.iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map_or(AddrClass::Public, |(_, _, name)| AddrClass::NonPublic(name))
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let bits = u128::from(ip);
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the IPv4 address
    // they embed: judge that one.
    if in_v6(ip, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
        || in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)
    {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    if let Some((_, _, name)) = V6.iter().find(|(net, len, _)| in_v6(ip, *net, *len)) {
        return AddrClass::NonPublic(name);
    }
    // Only 2000::/3 is allocated for global unicast; the rest (IPv4-compatible ::/96,
    // discard 100::/64, local NAT64 64:ff9b:1::/48, ...) is reserved.
    if in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        AddrClass::Public
    } else {
        AddrClass::NonPublic("reserved")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn class(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn known_addresses() {
        for (ip, want) in [
            ("127.0.0.1", "loopback"),
            ("127.255.1.2", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "cgnat"),
            ("100.127.255.255", "cgnat"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.7", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("198.18.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::10.0.0.1", "private"),
            ("::127.0.0.1", "reserved"),
            ("2002:7f00:1::", "reserved"),
            ("2001::1", "reserved"),
        ] {
            assert_eq!(class(ip), AddrClass::NonPublic(want), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(class(ip), AddrClass::Public, "{ip}");
        }
    }

    proptest! {
        // What std already knows to be non-public must never be called public here.
        #[test]
        fn agrees_with_std_v4(bits: u32) {
            let ip = Ipv4Addr::from(bits);
            if ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_multicast()
                || ip.is_broadcast() || ip.is_documentation() || ip.is_unspecified()
            {
                prop_assert!(!classify(IpAddr::V4(ip)).is_public());
            }
        }

        #[test]
        fn mapped_v6_agrees_with_v4(bits: u32) {
            let v4 = Ipv4Addr::from(bits);
            prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), classify(IpAddr::V4(v4)));
        }

        #[test]
        fn agrees_with_std_v6(bits: u128) {
            let ip = Ipv6Addr::from(bits);
            if ip.is_loopback() || ip.is_multicast() || ip.is_unspecified()
                || ip.is_unique_local() || ip.is_unicast_link_local()
            {
                prop_assert!(!classify(IpAddr::V6(ip)).is_public());
            }
        }
    }
}
