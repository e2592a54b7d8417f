//! `[policy]`: outbound deny rules (NSG-like), with outbound SMTP (TCP port 25) denied by default.
//!
//! Layer: config (slow path); the rules are evaluated by the data path's slow path when it creates
//! a session. Invariants after validation: destinations have no host bits set; a port or port
//! range only appears on TCP or UDP rules and is never reversed; unless `allow_smtp = true`, the
//! effective rule list starts with "deny tcp to 0.0.0.0/0 port 25" (the seeds' gateway blocks
//! outbound SMTP).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::check::{self, span};
use crate::error::{ErrorKind, Located};
use crate::protocol::Protocol;
use crate::raw::RawPolicy;

/// Which protocols a deny rule matches: one of the translated protocols, or all traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyProtocol {
    /// Every protocol, translated or not.
    Any,
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// ICMP only.
    Icmp,
}

impl DenyProtocol {
    /// Every value, with its name in the config file.
    pub const ALL: [(&'static str, DenyProtocol); 4] = [
        ("tcp", DenyProtocol::Tcp),
        ("udp", DenyProtocol::Udp),
        ("icmp", DenyProtocol::Icmp),
        ("any", DenyProtocol::Any),
    ];

    /// The name as written in the config file.
    pub const fn name(self) -> &'static str {
        match self {
            DenyProtocol::Any => "any",
            DenyProtocol::Tcp => "tcp",
            DenyProtocol::Udp => "udp",
            DenyProtocol::Icmp => "icmp",
        }
    }

    /// Whether a packet of `protocol` is matched. `None` stands for a protocol the appliance does
    /// not translate, which only [`DenyProtocol::Any`] matches.
    pub fn matches(self, protocol: Option<Protocol>) -> bool {
        matches!(
            (self, protocol),
            (DenyProtocol::Any, _)
                | (DenyProtocol::Tcp, Some(Protocol::Tcp))
                | (DenyProtocol::Udp, Some(Protocol::Udp))
                | (DenyProtocol::Icmp, Some(Protocol::Icmp))
        )
    }
}

impl From<Protocol> for DenyProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => DenyProtocol::Tcp,
            Protocol::Udp => DenyProtocol::Udp,
            Protocol::Icmp => DenyProtocol::Icmp,
        }
    }
}

impl fmt::Display for DenyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One outbound deny rule: flows to `destination` (and, for TCP/UDP, to a port in `ports`) are
/// dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DenyRule {
    protocol: DenyProtocol,
    destination: Ipv4Net,
    ports: Option<(u16, u16)>,
}

impl DenyRule {
    /// The rule that blocks outbound SMTP unless `policy.allow_smtp = true`.
    pub const SMTP: DenyRule = DenyRule {
        protocol: DenyProtocol::Tcp,
        destination: Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0),
        ports: Some((25, 25)),
    };

    /// The protocols matched.
    pub fn protocol(&self) -> DenyProtocol {
        self.protocol
    }

    /// The destination prefix matched.
    pub fn destination(&self) -> Ipv4Net {
        self.destination
    }

    /// The destination ports matched (inclusive), or `None` for every port.
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.ports
    }

    /// Whether a new flow of `protocol` to `destination`:`port` is denied by this rule. `port` is
    /// ignored for ICMP and untranslated protocols (rules with ports only exist for TCP and UDP).
    pub fn matches(&self, protocol: Option<Protocol>, destination: Ipv4Addr, port: u16) -> bool {
        self.protocol.matches(protocol)
            && self.destination.contains(&destination)
            && self.ports.is_none_or(|(lo, hi)| (lo..=hi).contains(&port))
    }
}

/// The outbound policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    allow_smtp: bool,
    configured: Vec<DenyRule>,
    rules: Vec<DenyRule>,
}

impl PolicyConfig {
    /// Whether outbound TCP port 25 is allowed (default false: denied).
    pub fn allow_smtp(&self) -> bool {
        self.allow_smtp
    }

    /// The effective deny rules: [`DenyRule::SMTP`] first unless SMTP is allowed, then the
    /// configured `[[policy.deny]]` rules in file order.
    pub fn deny_rules(&self) -> &[DenyRule] {
        &self.rules
    }

    /// Only the `[[policy.deny]]` rules written in the file.
    pub fn configured_rules(&self) -> &[DenyRule] {
        &self.configured
    }

    /// Whether any effective rule denies a new flow of `protocol` to `destination`:`port`.
    pub fn is_denied(&self, protocol: Option<Protocol>, destination: Ipv4Addr, port: u16) -> bool {
        self.rules
            .iter()
            .any(|r| r.matches(protocol, destination, port))
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawPolicy) -> Result<Self, Located> {
        let allow_smtp = raw.allow_smtp.as_ref().is_some_and(|b| *b.get_ref());
        let mut configured = Vec::with_capacity(raw.deny.len());
        for (i, r) in raw.deny.iter().enumerate() {
            let key = |k: &str| format!("policy.deny[{i}].{k}");
            let protocol = check::choice(
                &key("protocol"),
                &r.protocol,
                DenyProtocol::Any,
                &DenyProtocol::ALL,
            )?;
            let destination = match &r.destination {
                Some(d) => check::prefix(&key("destination"), d, false)?,
                None => Ipv4Net::default(),
            };
            let ports = match (&r.port, &r.ports) {
                (Some(_), Some(ps)) => {
                    return Err(Located::at(
                        key("ports"),
                        span(ps),
                        ErrorKind::Conflict {
                            message: "both `port` and `ports` are set; valid: one of them"
                                .to_string(),
                        },
                    ));
                }
                (Some(p), None) => {
                    let v = check::int_in(&key("port"), p, 1, 65535)? as u16;
                    Some(((v, v), key("port"), span(p)))
                }
                (None, Some(ps)) => Some((
                    check::port_pair(&key("ports"), ps, 1, 65535)?,
                    key("ports"),
                    span(ps),
                )),
                (None, None) => None,
            };
            let ports = match ports {
                Some((range, k, sp)) => {
                    if !matches!(protocol, DenyProtocol::Tcp | DenyProtocol::Udp) {
                        return Err(Located::at(
                            k,
                            sp,
                            ErrorKind::Conflict {
                                message: format!(
                                    "a port only applies to protocol \"tcp\" or \"udp\", not \
                                     \"{protocol}\"; valid: set protocol to \"tcp\" or \"udp\", or \
                                     drop the port"
                                ),
                            },
                        ));
                    }
                    Some(range)
                }
                None => None,
            };
            configured.push(DenyRule {
                protocol,
                destination,
                ports,
            });
        }
        let mut rules = Vec::with_capacity(configured.len() + 1);
        if !allow_smtp {
            rules.push(DenyRule::SMTP);
        }
        rules.extend_from_slice(&configured);
        Ok(PolicyConfig {
            allow_smtp,
            configured,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_rule_matches_tcp_25_only() {
        let dst = Ipv4Addr::new(198, 51, 100, 7);
        assert!(DenyRule::SMTP.matches(Some(Protocol::Tcp), dst, 25));
        assert!(!DenyRule::SMTP.matches(Some(Protocol::Tcp), dst, 26));
        assert!(!DenyRule::SMTP.matches(Some(Protocol::Udp), dst, 25));
        assert!(!DenyRule::SMTP.matches(None, dst, 25));
    }

    #[test]
    fn any_matches_untranslated_protocols() {
        assert!(DenyProtocol::Any.matches(None));
        assert!(!DenyProtocol::Icmp.matches(None));
        assert!(DenyProtocol::from(Protocol::Udp).matches(Some(Protocol::Udp)));
    }
}
