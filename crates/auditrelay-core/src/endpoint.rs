//! Which network addresses a webhook may reach (Decision 10): public ones, unless the operator
//! allows private and loopback endpoints.
//!
//! Pure classification of IP addresses and `localhost` names; resolving names and refusing
//! connections is the service's job, at validation time and again at connect time (DNS can
//! change in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for addresses a webhook must not reach unless private endpoints are allowed: loopback,
/// private (RFC 1918, unique-local), link-local, carrier-grade NAT, unspecified, broadcast,
/// multicast and documentation ranges, and IPv4 addresses embedded in IPv6.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_non_public_v4(v4),
            None => is_non_public_v6(v6),
        },
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

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT: shared, not public.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking networks.
        || (a == 198 && (b == 18 || b == 19))
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b::/96 NAT64 carries an IPv4 address: judge by that address.
        || (ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            && is_non_public_v4(Ipv4Addr::from(((u32::from(ip.segments()[6])) << 16) | u32::from(ip.segments()[7]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let non_public = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.10",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ];
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ];
        for ip in non_public {
            assert!(
                is_non_public(ip.parse().unwrap()),
                "{ip} should be non-public"
            );
        }
        for ip in public {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip} should be public");
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
