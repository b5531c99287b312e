//! Which network addresses a webhook may reach (DECISIONS.md D10): public ones, unless the operator
//! allows private and loopback endpoints.
//!
//! Pure classification of IP addresses and `localhost` names; resolving names and refusing
//! connections is the service's job, at validation time and again at connect time (DNS can
//! change in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for addresses a webhook must not reach unless private endpoints are allowed: every
/// range of IANA's special-purpose registries that is not globally reachable (loopback,
/// private, link-local, shared, documentation, benchmarking, reserved, …), multicast and
/// broadcast, and every IPv6 form that embeds a non-public IPv4 address.
pub fn is_non_public(ip: IpAddr) -> bool {
    non_public_range(ip).is_some()
}

/// The name of the non-public range `ip` lies in (for messages and tests), if any.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// IANA IPv4 Special-Purpose Address Registry (2025 edition): the entries whose "Globally
/// Reachable" is False (192.0.0.0/24 whole, although two /32s inside are reachable: no webhook
/// lives there), the deprecated 6to4 relay anycast, and multicast, which is no unicast
/// destination. Public ranges of the registry (AS112, AMT) are not listed.
const V4_RANGES: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" 0.0.0.0/8"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private 10.0.0.0/8"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared (carrier-grade NAT) 100.64.0.0/10",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback 127.0.0.0/8"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local 169.254.0.0/16",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private 172.16.0.0/12"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments 192.0.0.0/24",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation 192.0.2.0/24",
    ),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "deprecated 6to4 relay anycast 192.88.99.0/24",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private 192.168.0.0/16"),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "benchmarking 198.18.0.0/15",
    ),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation 198.51.100.0/24",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation 203.0.113.0/24",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast 224.0.0.0/4"),
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "limited broadcast 255.255.255.255/32",
    ),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved 240.0.0.0/4"),
];

/// IANA IPv6 Special-Purpose Address Registry (2025 edition): the entries whose "Globally
/// Reachable" is False (2001::/23 whole, Teredo included, whose embedded addresses are
/// obfuscated), the deprecated IPv4-compatible ::/96 (`::1` and `::` among it), site-local and
/// multicast. The forms that carry an IPv4 address and are otherwise routable (IPv4-mapped,
/// IPv4-translated, NAT64's well-known prefix, 6to4) are judged by that address instead.
const V6_RANGES: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "unspecified, loopback or IPv4-compatible ::/96",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use IPv4/IPv6 translation 64:ff9b:1::/48",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only 100::/64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "dummy prefix 100:0:0:1::/64",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments (Teredo among them) 2001::/23",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation 2001:db8::/32",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation 3fff::/20",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing SIDs 5f00::/16",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local fc00::/7",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link-local fe80::/10",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "deprecated site-local fec0::/10",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast ff00::/8",
    ),
];

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES.iter().find_map(|(net, len, name)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        (bits & mask == u32::from(*net)).then_some(*name)
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let listed = V6_RANGES.iter().find_map(|(net, len, name)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        (bits & mask == u128::from(*net)).then_some(*name)
    });
    listed.or_else(|| embedded_v4(ip).and_then(non_public_v4))
}

/// The IPv4 address an IPv6 address carries, in the forms that are routed to it: IPv4-mapped
/// `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..]
        | [0, 0, 0, 0, 0xffff, 0, ..]
        | [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// True for `localhost` and names under it (`*.localhost`, with or without trailing dots), which
/// RFC 6761 reserves for loopback whatever DNS says.
pub fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let tail = name.len().saturating_sub(".localhost".len());
    name.eq_ignore_ascii_case("localhost")
        || (name.is_char_boundary(tail) && name[tail..].eq_ignore_ascii_case(".localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One address inside each refused range (its first and, where it differs, a later one)
    /// with the range it must be refused as, then addresses that must pass.
    #[test]
    fn every_non_public_range_is_refused_by_name() {
        let refused = [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.255.1.2", "0.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.255", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.255.254", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.2.10", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.1", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("250.1.2.3", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
            ("::", "::/96"),
            ("::1", "::/96"),
            ("::127.0.0.1", "::/96"),
            ("::8.8.8.8", "::/96"),
            ("::ffff:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("::ffff:0:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:0:192.168.0.1", "192.168.0.0/16"),
            ("64:ff9b::a00:1", "10.0.0.0/8"),
            ("64:ff9b::7f00:1", "127.0.0.0/8"),
            ("64:ff9b:1::1", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("100:0:0:1::1", "100:0:0:1::/64"),
            ("2001::1", "2001::/23"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/23"),
            ("2001:1ff::1", "2001::/23"),
            ("2001:db8::1", "2001:db8::/32"),
            ("2002:7f00:1::1", "127.0.0.0/8"),
            ("2002:a9fe:a9fe::1", "169.254.0.0/16"),
            ("2002:c0a8:101::", "192.168.0.0/16"),
            ("3fff::1", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("febf::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
        ];
        for (ip, range) in refused {
            let found = non_public_range(ip.parse().unwrap());
            assert!(
                found.is_some_and(|name| name.ends_with(range)),
                "{ip}: expected {range}, got {found:?}"
            );
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.1.1",
            "192.31.196.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:200::1",
            "2620:4f:8000::1",
        ];
        for ip in public {
            assert_eq!(
                non_public_range(ip.parse().unwrap()),
                None,
                "{ip} is public"
            );
        }
    }

    #[test]
    fn recognises_localhost_names() {
        for name in ["localhost", "LocalHost.", "app.localhost", "a.b.LOCALHOST."] {
            assert!(is_localhost(name), "{name}");
        }
        for name in [
            "localhost.example.com",
            "mylocalhost",
            "example.com",
            "",
            "é",
        ] {
            assert!(!is_localhost(name), "{name}");
        }
    }
}
