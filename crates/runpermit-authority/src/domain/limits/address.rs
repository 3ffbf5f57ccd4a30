//! Addresses as the limits count them: a client's id (IPv6 by its /64), override ids, and
//! the trusted proxies' ranges.

use std::net::IpAddr;
use std::str::FromStr;

use super::Limits;

/// The id an address is counted under: an IPv4 address as written, an IPv6 address as its
/// /64 (`2001:db8:1:2::/64`); IPv4-mapped IPv6 addresses count as IPv4.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// An override's address id, normalized: an IP address (an IPv6 one stands for its /64),
/// optionally written with its /64.
pub fn override_address(id: &str) -> Result<String, String> {
    let id = id.trim();
    let address = id.strip_suffix("/64").unwrap_or(id);
    address
        .parse::<IpAddr>()
        .map(address_key)
        .map_err(|_| format!("{id:?} is not an IP address (IPv4, or IPv6 for its /64)"))
}

/// A trusted proxy: an address or a CIDR range.
#[derive(Debug, Clone, Copy)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a CIDR range such as 10.0.0.0/8");
        let (address, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        Ok(IpRange { network, prefix })
    }
}

impl IpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let masked = |a: u128, bits: u8, width: u8| {
            if bits == 0 { 0 } else { a >> (width - bits) }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

impl Limits {
    /// Whether `ip` is one of the configured trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(address_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_eq!(
            override_address("2001:db8:1:2::/64"),
            Ok("2001:db8:1:2::/64".to_owned())
        );
        assert_eq!(
            override_address(" 2001:db8:1:2::7 "),
            Ok("2001:db8:1:2::/64".to_owned())
        );
        assert!(override_address("lab.example").is_err());
    }

    #[test]
    fn ranges_match_by_prefix() {
        let r: IpRange = "10.0.0.0/8".parse().expect("a range");
        assert!(r.contains(ip("10.200.3.4")));
        assert!(r.contains(ip("::ffff:10.1.1.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(!r.contains(ip("::1")));
        let one: IpRange = "192.0.2.1".parse().expect("an address");
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let all: IpRange = "::/0".parse().expect("everything");
        assert!(all.contains(ip("2001:db8::1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/x", "proxy"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }
}
