//! What a topology looks like: interface names and addresses, with the defaults of the
//! example config (DESIGN §4).
//!
//! Layer: test harness, slow path, pure data (no I/O). Invariant after
//! [`TopologySpec::validate`]: the client addresses and the inside gateway share one subnet,
//! the public IPs and the internet gateway share the outside subnet (so the internet side
//! reaches every public IP on-link through ARP, which the appliance answers), and no address
//! is used twice.
//!
//! ```text
//!  client ns                 nat ns (appliance / kernel NAT)          inet ns
//!  c0 10.0.0.2/24 (+extras) ── inside0 [10.0.0.1]  outside0 [203.0.113.1] ── i0 203.0.113.254/24
//!  default via 10.0.0.1                                                     lo 198.51.100.10/32 ...
//! ```

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Result, TestbedError};
use crate::names::{IfName, Prefix};

/// Whether the veths keep the kernel's checksum and segmentation offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offloads {
    /// `ethtool -K DEV tx off tso off gso off gro off rx off` on every veth: frames carry
    /// finished checksums and are never GSO super-frames (what a real NIC delivers).
    #[default]
    Off,
    /// Leave the kernel defaults (to show what the appliance does with unfinished frames).
    KernelDefault,
}

/// Interface names and addresses of a topology. `Default` gives the example config's
/// values; change fields, then build with [`crate::Topology::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologySpec {
    /// Prefix of the namespace names (`testbed down` removes leftovers by it).
    pub prefix: Prefix,
    /// The client's veth end, in the client namespace.
    pub client_if: IfName,
    /// The appliance's private-side veth end, in the nat namespace.
    pub inside_if: IfName,
    /// The appliance's public-side veth end, in the nat namespace.
    pub outside_if: IfName,
    /// The internet's veth end, in the inet namespace.
    pub inet_if: IfName,
    /// The client's first address and its subnet.
    pub client_addr: Ipv4Net,
    /// How many more client addresses to add after `client_addr` (10.0.0.3, .4, ...; the
    /// inside gateway address is skipped).
    pub extra_client_addrs: u16,
    /// The appliance's inside address: the client's default gateway. Only a kernel-NAT
    /// topology puts it on an interface; the appliance answers ARP for it in user space.
    pub inside_gateway: Ipv4Net,
    /// The appliance's outside address (kernel NAT: assigned to `outside_if`).
    pub outside_addr: Ipv4Net,
    /// The internet gateway's address on `inet_if` (the appliance's outside next hop).
    pub inet_gateway: Ipv4Net,
    /// The NAT's public IPs (inside the outside subnet, reached on-link).
    pub public_ips: Vec<Ipv4Addr>,
    /// "Internet server" addresses, put on the inet namespace's loopback as /32.
    pub servers: Vec<Ipv4Addr>,
    /// Offload setting for every veth.
    pub offloads: Offloads,
    /// RX and TX queues of every veth (AF_XDP binds one socket per device queue, so an appliance with
    /// N workers on `af_xdp` needs N).
    pub queues: u16,
}

fn net(addr: [u8; 4], len: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default()
}

fn name(s: &'static str) -> IfName {
    IfName::from_static(s)
}

impl Default for TopologySpec {
    fn default() -> Self {
        TopologySpec {
            prefix: Prefix::default(),
            client_if: name("c0"),
            inside_if: name("inside0"),
            outside_if: name("outside0"),
            inet_if: name("i0"),
            client_addr: net([10, 0, 0, 2], 24),
            extra_client_addrs: 4,
            inside_gateway: net([10, 0, 0, 1], 24),
            outside_addr: net([203, 0, 113, 1], 24),
            inet_gateway: net([203, 0, 113, 254], 24),
            public_ips: vec![
                Ipv4Addr::new(203, 0, 113, 10),
                Ipv4Addr::new(203, 0, 113, 11),
            ],
            servers: vec![
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(198, 51, 100, 11),
            ],
            offloads: Offloads::Off,
            queues: 1,
        }
    }
}

impl TopologySpec {
    /// The client's addresses: `client_addr` then the extras, skipping the gateway.
    pub fn client_addrs(&self) -> Result<Vec<Ipv4Addr>> {
        let subnet = self.client_addr.trunc();
        let mut out = vec![self.client_addr.addr()];
        let mut next = u32::from(self.client_addr.addr());
        while out.len() <= usize::from(self.extra_client_addrs) {
            next = next.checked_add(1).ok_or_else(|| self.too_many_extras())?;
            let a = Ipv4Addr::from(next);
            if !subnet.contains(&a) || a == subnet.broadcast() {
                return Err(self.too_many_extras());
            }
            if a != self.inside_gateway.addr() {
                out.push(a);
            }
        }
        Ok(out)
    }

    fn too_many_extras(&self) -> TestbedError {
        TestbedError::InvalidSpec {
            field: "extra_client_addrs",
            why: format!(
                "{} extra addresses after {} do not fit in {}",
                self.extra_client_addrs,
                self.client_addr.addr(),
                self.client_addr.trunc()
            ),
        }
    }

    /// Checks the invariants listed in the module documentation.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: String| Err(TestbedError::InvalidSpec { field, why });
        if self.inside_if == self.outside_if {
            return bad(
                "outside_if",
                "the nat namespace needs two distinct interface names".into(),
            );
        }
        let client_net = self.client_addr.trunc();
        let host_in = |n: &Ipv4Net, a: Ipv4Addr| {
            n.contains(&a) && a != n.network() && (n.prefix_len() >= 31 || a != n.broadcast())
        };
        if !host_in(&client_net, self.client_addr.addr()) {
            return bad(
                "client_addr",
                format!("{} is not a host address", self.client_addr),
            );
        }
        if self.inside_gateway.trunc() != client_net {
            return bad(
                "inside_gateway",
                format!(
                    "{} is not in the client subnet {client_net}",
                    self.inside_gateway
                ),
            );
        }
        if self.inside_gateway.addr() == self.client_addr.addr() {
            return bad("inside_gateway", "equals the client address".into());
        }
        let outside_net = self.outside_addr.trunc();
        if self.inet_gateway.trunc() != outside_net {
            return bad(
                "inet_gateway",
                format!(
                    "{} is not in the outside subnet {outside_net}",
                    self.inet_gateway
                ),
            );
        }
        if outside_net.contains(&client_net.network())
            || client_net.contains(&outside_net.network())
        {
            return bad(
                "outside_addr",
                format!("outside subnet {outside_net} overlaps client subnet {client_net}"),
            );
        }
        if self.inet_gateway.addr() == self.outside_addr.addr() {
            return bad("inet_gateway", "equals the outside address".into());
        }
        if self.public_ips.is_empty() {
            return bad("public_ips", "at least one public IP is needed".into());
        }
        for (i, ip) in self.public_ips.iter().enumerate() {
            if !host_in(&outside_net, *ip) {
                return bad(
                    "public_ips",
                    format!("{ip} is not a host address of the outside subnet {outside_net}"),
                );
            }
            if *ip == self.inet_gateway.addr() || *ip == self.outside_addr.addr() {
                return bad("public_ips", format!("{ip} is already a gateway address"));
            }
            if self.public_ips[..i].contains(ip) {
                return bad("public_ips", format!("{ip} is listed twice"));
            }
        }
        for (i, ip) in self.servers.iter().enumerate() {
            if outside_net.contains(ip) || client_net.contains(ip) || ip.is_loopback() {
                return bad(
                    "servers",
                    format!("{ip} must lie outside the client and outside subnets"),
                );
            }
            if self.servers[..i].contains(ip) {
                return bad("servers", format!("{ip} is listed twice"));
            }
        }
        self.client_addrs().map(drop)
    }
}

/// How the kernel-NAT baseline translates (see [`crate::Topology::kernel_nat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNatSpec {
    /// The addresses nftables SNATs to. One address: `snat to A`. Several: a hash of the
    /// private source address picks one, so each private host keeps one public IP ("paired"
    /// pooling, like the appliance's default).
    pub snat_to: Vec<Ipv4Addr>,
}

impl Default for KernelNatSpec {
    fn default() -> Self {
        KernelNatSpec {
            snat_to: vec![Ipv4Addr::new(203, 0, 113, 10)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_example_config_and_validate() {
        let s = TopologySpec::default();
        s.validate().unwrap();
        for n in [&s.client_if, &s.inside_if, &s.outside_if, &s.inet_if] {
            assert_eq!(IfName::new(n.as_str()).ok().as_ref(), Some(n));
        }
        assert_eq!(s.inside_if.as_str(), "inside0");
        assert_eq!(s.outside_if.as_str(), "outside0");
        assert_eq!(s.client_if.as_str(), "c0");
        assert_eq!(s.inet_if.as_str(), "i0");
        assert_eq!(s.inside_gateway.to_string(), "10.0.0.1/24");
        assert_eq!(s.inet_gateway.to_string(), "203.0.113.254/24");
        assert_eq!(
            s.client_addrs().unwrap(),
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
                .map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
    }

    #[test]
    fn extras_skip_the_gateway_and_stop_at_the_subnet_end() {
        let mut s = TopologySpec {
            inside_gateway: "10.0.0.4/24".parse().unwrap(),
            extra_client_addrs: 3,
            ..TopologySpec::default()
        };
        let addrs = s.client_addrs().unwrap();
        assert_eq!(addrs.len(), 4);
        assert!(!addrs.contains(&"10.0.0.4".parse().unwrap()));
        s.inside_gateway = "10.0.0.1/24".parse().unwrap();
        s.extra_client_addrs = 252; // .3 ..= .254
        assert_eq!(s.client_addrs().unwrap().len(), 253);
        s.extra_client_addrs = 253; // would need .255, the broadcast address
        assert!(matches!(
            s.validate(),
            Err(TestbedError::InvalidSpec {
                field: "extra_client_addrs",
                ..
            })
        ));
    }

    #[test]
    fn inconsistent_specs_name_the_field() {
        let field_of = |s: TopologySpec| match s.validate() {
            Err(TestbedError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        };
        let d = TopologySpec::default;
        assert_eq!(
            field_of(TopologySpec {
                public_ips: vec!["198.18.0.1".parse().unwrap()],
                ..d()
            }),
            "public_ips"
        );
        assert_eq!(
            field_of(TopologySpec {
                public_ips: vec![],
                ..d()
            }),
            "public_ips"
        );
        assert_eq!(
            field_of(TopologySpec {
                inside_gateway: "10.1.0.1/24".parse().unwrap(),
                ..d()
            }),
            "inside_gateway"
        );
        assert_eq!(
            field_of(TopologySpec {
                servers: vec!["203.0.113.77".parse().unwrap()],
                ..d()
            }),
            "servers"
        );
        assert_eq!(
            field_of(TopologySpec {
                outside_if: IfName::new("inside0").unwrap(),
                ..d()
            }),
            "outside_if"
        );
        assert_eq!(
            field_of(TopologySpec {
                inet_gateway: "198.51.100.1/24".parse().unwrap(),
                ..d()
            }),
            "inet_gateway"
        );
    }
}
