//! Outbound policy: deny rules, no-NAT destinations, private source prefixes (fast path, read-only).
//!
//! Deny rules are checked when a new flow is created (and for every packet of a static 1:1 host, which has
//! no session); established flows are never re-checked. Lists are short, so they are scanned linearly.

use ipnet::Ipv4Net;
use natgw_config::{DenyRule, Protocol};
use std::net::Ipv4Addr;

/// The policy lists of the NAT core.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Outbound deny rules.
    pub deny: Vec<DenyRule>,
    /// Destinations forwarded without translation.
    pub no_nat: Vec<Ipv4Net>,
    /// Sources accepted on the inside.
    pub private: Vec<Ipv4Net>,
}

impl Policy {
    /// Whether a new outbound flow is denied.
    #[inline]
    pub fn denied(&self, proto: Option<Protocol>, dst: Ipv4Addr, dport: u16) -> bool {
        self.deny.iter().any(|r| r.matches(proto, dst, dport))
    }

    /// Whether a destination is forwarded untranslated.
    #[inline]
    pub fn is_no_nat(&self, addr: Ipv4Addr) -> bool {
        self.no_nat.iter().any(|n| n.contains(&addr))
    }

    /// Whether an inside source address is one we translate.
    #[inline]
    pub fn is_private(&self, addr: Ipv4Addr) -> bool {
        self.private.iter().any(|n| n.contains(&addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_rule_denies_tcp_25_only() {
        let p = Policy {
            deny: vec![DenyRule::SMTP],
            ..Policy::default()
        };
        let d = Ipv4Addr::new(198, 51, 100, 10);
        assert!(p.denied(Some(Protocol::Tcp), d, 25));
        assert!(!p.denied(Some(Protocol::Tcp), d, 26));
        assert!(!p.denied(Some(Protocol::Udp), d, 25));
        assert!(!p.denied(Some(Protocol::Icmp), d, 0));
    }

    #[test]
    fn prefixes() {
        let p = Policy {
            no_nat: vec!["192.0.2.0/24".parse().unwrap()],
            private: vec!["10.0.0.0/8".parse().unwrap()],
            ..Policy::default()
        };
        assert!(p.is_no_nat(Ipv4Addr::new(192, 0, 2, 9)));
        assert!(!p.is_no_nat(Ipv4Addr::new(192, 0, 3, 9)));
        assert!(p.is_private(Ipv4Addr::new(10, 9, 0, 1)));
        assert!(!p.is_private(Ipv4Addr::new(11, 0, 0, 1)));
    }
}
