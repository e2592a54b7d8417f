//! The three-namespace topology: client — NAT — internet, joined by two veth pairs.
//!
//! Layer: test harness, slow path. Build order matters and is: create the namespaces, set
//! their sysctls (IPv6 off everywhere so no kernel chatter reaches the appliance; in the nat
//! namespace forwarding off or on by mode), create both veth pairs from inside the nat
//! namespace with the peers placed straight into the client and inet namespaces (so no
//! interface ever exists in the root namespace and the short fixed names cannot collide),
//! then addresses and routes (one `ip -batch` per namespace), then offloads.
//!
//! Modes:
//! - [`NatMode::Appliance`]: the nat namespace's interfaces are up with no kernel address,
//!   `arp off`, forwarding off, `arp_ignore = 8` and `rp_filter = 0`: the kernel there stays
//!   silent and the appliance (AF_PACKET / AF_XDP / DPDK on those interfaces) answers ARP for
//!   the inside gateway, the outside address and the public IPs itself.
//! - [`NatMode::KernelNat`]: the nat namespace is a Linux router doing nftables SNAT — the
//!   baseline the bench compares against.
//!
//! Invariant: a [`Topology`] that exists is fully built; any failure during the build drops
//! the namespaces made so far. Dropping a topology kills every process inside its
//! namespaces and deletes them (deleting a namespace deletes its veths).

use std::net::Ipv4Addr;

use crate::error::{Result, TestbedError};
use crate::names::{NsName, Role, RunId};
use crate::netns::Netns;
use crate::spec::{KernelNatSpec, Offloads, TopologySpec};

/// Name of the nftables table a kernel-NAT topology installs in its nat namespace.
pub const KERNEL_NAT_TABLE: &str = "natgw_testbed";

/// What sits in the nat namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatMode {
    /// Nothing yet: the caller starts the appliance there on the two bare interfaces.
    Appliance,
    /// The Linux kernel with nftables SNAT.
    KernelNat(KernelNatSpec),
}

/// A built client — nat — inet topology; dropping it tears everything down.
#[derive(Debug)]
pub struct Topology {
    spec: TopologySpec,
    mode: NatMode,
    run: RunId,
    client_addrs: Vec<Ipv4Addr>,
    client: Netns,
    nat: Netns,
    inet: Netns,
}

impl Topology {
    /// Builds the topology for the appliance: bare interfaces in the nat namespace.
    pub fn new(spec: TopologySpec) -> Result<Self> {
        Self::build(spec, NatMode::Appliance)
    }

    /// Builds the same shape with the Linux kernel as the NAT: addresses
    /// `inside_gateway` and `outside_addr` on the nat namespace's veths, each `snat_to`
    /// address as a /32 on the outside veth (so the kernel answers ARP for it),
    /// `ip_forward = 1`, a default route via the internet gateway, and an nftables table
    /// `natgw_testbed` that SNATs the client subnet leaving the outside interface.
    pub fn kernel_nat(spec: TopologySpec, nat: KernelNatSpec) -> Result<Self> {
        Self::build(spec, NatMode::KernelNat(nat))
    }

    /// Builds a topology in the given mode.
    pub fn build(spec: TopologySpec, mode: NatMode) -> Result<Self> {
        spec.validate()?;
        if let NatMode::KernelNat(k) = &mode {
            validate_kernel_nat(&spec, k)?;
        }
        let client_addrs = spec.client_addrs()?;
        let run = RunId::next();
        let client = Netns::create(NsName::new(&spec.prefix, run, Role::Client))?;
        let nat = Netns::create(NsName::new(&spec.prefix, run, Role::Nat))?;
        let inet = Netns::create(NsName::new(&spec.prefix, run, Role::Inet))?;
        let topo = Topology {
            spec,
            mode,
            run,
            client_addrs,
            client,
            nat,
            inet,
        };
        topo.configure()?;
        log::info!(
            "topology up: {} / {} / {}",
            topo.client.name(),
            topo.nat.name(),
            topo.inet.name()
        );
        Ok(topo)
    }

    fn configure(&self) -> Result<()> {
        let s = &self.spec;
        let no_v6 = [
            ("net/ipv6/conf/all/disable_ipv6", "1"),
            ("net/ipv6/conf/default/disable_ipv6", "1"),
        ];
        for ns in [&self.client, &self.inet] {
            ns.set_sysctls(&no_v6)?;
        }
        let mut nat_sysctls = no_v6.to_vec();
        nat_sysctls.extend([
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv4/conf/default/rp_filter", "0"),
        ]);
        match &self.mode {
            NatMode::Appliance => nat_sysctls.extend([
                ("net/ipv4/ip_forward", "0"),
                ("net/ipv4/conf/all/arp_ignore", "8"),
                ("net/ipv4/conf/default/arp_ignore", "8"),
            ]),
            NatMode::KernelNat(_) => nat_sysctls.push(("net/ipv4/ip_forward", "1")),
        }
        self.nat.set_sysctls(&nat_sysctls)?;

        self.nat.ip_batch(&self.nat_batch())?;
        self.client.ip_batch(&self.client_batch())?;
        self.inet.ip_batch(&self.inet_batch())?;

        if let NatMode::KernelNat(k) = &self.mode {
            self.nat
                .exec_with_stdin(&["nft", "-f", "-"], kernel_nat_ruleset(s, k).as_bytes())?;
        }
        if s.offloads == Offloads::Off {
            for (ns, dev) in [
                (&self.client, &s.client_if),
                (&self.nat, &s.inside_if),
                (&self.nat, &s.outside_if),
                (&self.inet, &s.inet_if),
            ] {
                ns.exec_checked(&[
                    "ethtool",
                    "-K",
                    dev.as_str(),
                    "tx",
                    "off",
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                    "rx",
                    "off",
                ])?;
            }
        }
        Ok(())
    }

    fn nat_batch(&self) -> Vec<String> {
        let s = &self.spec;
        let mut b = vec![
            format!(
                "link add {} numtxqueues {q} numrxqueues {q} type veth peer name {} \
                 numtxqueues {q} numrxqueues {q} netns {}",
                s.inside_if,
                s.client_if,
                self.client.name(),
                q = s.queues.max(1),
            ),
            format!(
                "link add {} numtxqueues {q} numrxqueues {q} type veth peer name {} \
                 numtxqueues {q} numrxqueues {q} netns {}",
                s.outside_if,
                s.inet_if,
                self.inet.name(),
                q = s.queues.max(1),
            ),
        ];
        match &self.mode {
            NatMode::Appliance => {
                b.push(format!("link set {} arp off up", s.inside_if));
                b.push(format!("link set {} arp off up", s.outside_if));
            }
            NatMode::KernelNat(k) => {
                b.push(format!("link set {} up", s.inside_if));
                b.push(format!("link set {} up", s.outside_if));
                b.push(format!("addr add {} dev {}", s.inside_gateway, s.inside_if));
                b.push(format!("addr add {} dev {}", s.outside_addr, s.outside_if));
                for ip in &k.snat_to {
                    b.push(format!("addr add {ip}/32 dev {}", s.outside_if));
                }
                b.push(format!("route add default via {}", s.inet_gateway.addr()));
            }
        }
        b
    }

    fn client_batch(&self) -> Vec<String> {
        let s = &self.spec;
        let len = s.client_addr.prefix_len();
        let mut b = vec![format!("link set {} up", s.client_if)];
        for a in &self.client_addrs {
            b.push(format!("addr add {a}/{len} dev {}", s.client_if));
        }
        b.push(format!("route add default via {}", s.inside_gateway.addr()));
        b
    }

    fn inet_batch(&self) -> Vec<String> {
        let s = &self.spec;
        let mut b = vec![
            format!("link set {} up", s.inet_if),
            format!("addr add {} dev {}", s.inet_gateway, s.inet_if),
        ];
        for ip in &s.servers {
            b.push(format!("addr add {ip}/32 dev lo"));
        }
        b
    }

    /// The client namespace (private hosts).
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The nat namespace (where the appliance runs, or the kernel NAT lives).
    pub fn nat(&self) -> &Netns {
        &self.nat
    }

    /// The inet namespace (internet gateway and servers).
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// Its mode.
    pub fn mode(&self) -> &NatMode {
        &self.mode
    }

    /// The run id embedded in its namespace names.
    pub fn run_id(&self) -> RunId {
        self.run
    }

    /// The names of its namespaces: client, nat, inet.
    pub fn namespaces(&self) -> [&str; 3] {
        [self.client.name(), self.nat.name(), self.inet.name()]
    }

    /// The appliance's private-side interface name (in the nat namespace).
    pub fn inside_if(&self) -> &str {
        self.spec.inside_if.as_str()
    }

    /// The appliance's public-side interface name (in the nat namespace).
    pub fn outside_if(&self) -> &str {
        self.spec.outside_if.as_str()
    }

    /// The client's addresses, first the primary one.
    pub fn client_addrs(&self) -> &[Ipv4Addr] {
        &self.client_addrs
    }

    /// The internet servers' addresses (on the inet namespace's loopback).
    pub fn servers(&self) -> &[Ipv4Addr] {
        &self.spec.servers
    }

    /// Adds one more address to the client interface (for example the private side of a
    /// static 1:1 mapping), with the client subnet's prefix length.
    pub fn add_client_addr(&mut self, addr: Ipv4Addr) -> Result<()> {
        let subnet = self.spec.client_addr.trunc();
        if !subnet.contains(&addr) || addr == self.spec.inside_gateway.addr() {
            return Err(TestbedError::InvalidSpec {
                field: "client address",
                why: format!("{addr} is not a free host address of {subnet}"),
            });
        }
        if self.client_addrs.contains(&addr) {
            return Ok(());
        }
        self.client.ip(&[
            "addr",
            "add",
            &format!("{addr}/{}", subnet.prefix_len()),
            "dev",
            self.spec.client_if.as_str(),
        ])?;
        self.client_addrs.push(addr);
        Ok(())
    }

    /// A machine-readable description (names and addresses), as `testbed up --json` prints.
    pub fn describe(&self) -> serde_json::Value {
        let s = &self.spec;
        let mode = match &self.mode {
            NatMode::Appliance => serde_json::json!({ "kind": "appliance" }),
            NatMode::KernelNat(k) => serde_json::json!({
                "kind": "kernel_nat",
                "snat_to": k.snat_to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        };
        let strs = |v: &[Ipv4Addr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        serde_json::json!({
            "mode": mode,
            "client": {
                "namespace": self.client.name(),
                "interface": s.client_if.as_str(),
                "addresses": strs(&self.client_addrs),
                "prefix_len": s.client_addr.prefix_len(),
                "default_gateway": s.inside_gateway.addr().to_string(),
            },
            "nat": {
                "namespace": self.nat.name(),
                "inside": { "interface": s.inside_if.as_str(), "address": s.inside_gateway.to_string() },
                "outside": {
                    "interface": s.outside_if.as_str(),
                    "address": s.outside_addr.to_string(),
                    "gateway": s.inet_gateway.addr().to_string(),
                },
                "public_ips": strs(&s.public_ips),
            },
            "inet": {
                "namespace": self.inet.name(),
                "interface": s.inet_if.as_str(),
                "address": s.inet_gateway.to_string(),
                "servers": strs(&s.servers),
            },
        })
    }
}

fn validate_kernel_nat(spec: &TopologySpec, k: &KernelNatSpec) -> Result<()> {
    let outside = spec.outside_addr.trunc();
    if k.snat_to.is_empty() {
        return Err(TestbedError::InvalidSpec {
            field: "snat_to",
            why: "at least one address is needed".into(),
        });
    }
    for ip in &k.snat_to {
        if !outside.contains(ip)
            || *ip == outside.network()
            || *ip == outside.broadcast()
            || *ip == spec.inet_gateway.addr()
        {
            return Err(TestbedError::InvalidSpec {
                field: "snat_to",
                why: format!("{ip} is not a free host address of the outside subnet {outside}"),
            });
        }
    }
    Ok(())
}

/// The nftables ruleset of a kernel-NAT topology (input to `nft -f -`).
pub fn kernel_nat_ruleset(spec: &TopologySpec, k: &KernelNatSpec) -> String {
    let target = match k.snat_to.as_slice() {
        [one] => one.to_string(),
        many => {
            let entries: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("{i} : {ip}"))
                .collect();
            format!(
                "jhash ip saddr mod {} map {{ {} }}",
                many.len(),
                entries.join(", ")
            )
        }
    };
    format!(
        "table ip {KERNEL_NAT_TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{}\" ip saddr {} snat to {target}\n\
         \t}}\n\
         }}\n",
        spec.outside_if,
        spec.client_addr.trunc()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_for_one_address() {
        let r = kernel_nat_ruleset(&TopologySpec::default(), &KernelNatSpec::default());
        assert!(
            r.contains("type nat hook postrouting priority srcnat"),
            "{r}"
        );
        assert!(
            r.contains("oifname \"outside0\" ip saddr 10.0.0.0/24 snat to 203.0.113.10\n"),
            "{r}"
        );
    }

    #[test]
    fn ruleset_for_a_pool_is_paired_by_source_hash() {
        let k = KernelNatSpec {
            snat_to: vec![
                "203.0.113.10".parse().unwrap(),
                "203.0.113.11".parse().unwrap(),
            ],
        };
        let r = kernel_nat_ruleset(&TopologySpec::default(), &k);
        assert!(
            r.contains("snat to jhash ip saddr mod 2 map { 0 : 203.0.113.10, 1 : 203.0.113.11 }"),
            "{r}"
        );
    }

    #[test]
    fn kernel_nat_addresses_must_be_on_link() {
        let s = TopologySpec::default();
        let bad = KernelNatSpec {
            snat_to: vec!["198.51.100.99".parse().unwrap()],
        };
        assert!(validate_kernel_nat(&s, &bad).is_err());
        let none = KernelNatSpec { snat_to: vec![] };
        assert!(validate_kernel_nat(&s, &none).is_err());
        assert!(validate_kernel_nat(&s, &KernelNatSpec::default()).is_ok());
    }
}
