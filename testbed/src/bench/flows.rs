//! Flow plans: what "N flows" means on the wire, and the `trafgen` config that sends them.
//!
//! Layer: test harness, slow path, pure (no I/O). A flow is one distinct source `ip:port` pair of the
//! client namespace sending 64-byte UDP frames (60 bytes plus the 4-byte FCS the wire adds) to a server
//! address in the inet namespace, destination port [`SINK_PORT`]. A plan is a list of [`Template`]s, one
//! per destination: each template walks `hosts` consecutive client addresses and `ports` consecutive
//! source ports with two independent `trafgen` run-time counters that step on every packet, so it covers
//! `hosts × ports` distinct pairs exactly when the two counts are coprime (the invariant [`FlowPlan::new`]
//! establishes). `trafgen` sends the templates round robin, so `flows()` consecutive packets touch every
//! flow exactly once.
//!
//! Sizes: at most [`PORTS_PER_HOST`] flows per client address (ports 1024 up) and [`FLOWS_PER_DEST`] per
//! destination address. The appliance may use a UDP SNAT port at most once per destination IP
//! (port-restricted cone), so with 16 public IPs (1,032,192 ports) one million flows are split over two
//! destinations to keep the port inventory half free.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The first source port of every template.
pub const FIRST_PORT: u16 = 1024;

/// Most flows one client address carries.
pub const PORTS_PER_HOST: u64 = 62_500;

/// Most flows sent to one destination address.
pub const FLOWS_PER_DEST: u64 = 500_000;

/// The UDP destination port of the bench traffic; the inet namespace drops it at ingress.
pub const SINK_PORT: u16 = 9;

/// Bytes of zero payload that make the frame 60 bytes (64 on the wire with the FCS).
const PAYLOAD: usize = 60 - 14 - 20 - 8;

/// Why a flow plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Zero flows were asked for.
    #[error("a flow count must be at least 1")]
    Zero,
    /// More client addresses are needed than the topology has.
    #[error("{flows} flows need {needed} client addresses, the topology has {have}")]
    NotEnoughHosts {
        /// Flows asked for.
        flows: u64,
        /// Addresses needed.
        needed: usize,
        /// Addresses available.
        have: usize,
    },
    /// The client addresses of one template are not consecutive within one /24.
    #[error("client addresses {first}..{last} are not consecutive in one /24")]
    NotConsecutive {
        /// First address of the template.
        first: Ipv4Addr,
        /// Last address of the template.
        last: Ipv4Addr,
    },
    /// No destination address was given.
    #[error("no destination address")]
    NoDestination,
    /// A MAC address did not parse.
    #[error("bad MAC address {0:?}")]
    BadMac(String),
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PlanError::BadMac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// One `trafgen` packet template: `hosts` consecutive source addresses × `ports` source ports → `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// First source address.
    pub first_host: Ipv4Addr,
    /// Number of consecutive source addresses.
    pub hosts: u32,
    /// Number of consecutive source ports from [`FIRST_PORT`].
    pub ports: u32,
    /// Destination address.
    pub dest: Ipv4Addr,
}

impl Template {
    /// Distinct flows of this template.
    pub fn flows(&self) -> u64 {
        u64::from(self.hosts) * u64::from(self.ports)
    }

    fn trafgen(&self, dst_mac: MacAddr) -> String {
        let last = self.first_host.octets()[3];
        let host_counter = if self.hosts > 1 {
            // `hosts` fits the last octet: checked by `FlowPlan::new`.
            let end = u32::from(last) + self.hosts - 1;
            format!(", sa[3]=dinc({last}, {end})")
        } else {
            String::new()
        };
        let sport = if self.ports > 1 {
            format!(
                "dinc({FIRST_PORT}, {})",
                u32::from(FIRST_PORT) + self.ports - 1
            )
        } else {
            FIRST_PORT.to_string()
        };
        format!(
            "{{ eth(da={dst_mac}), ipv4(sa={}, da={}, ttl=64{host_counter}), udp(sp={sport}, dp={SINK_PORT}), fill(0, {PAYLOAD}) }}\n",
            self.first_host, self.dest
        )
    }
}

/// The flows of one bench case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPlan {
    requested: u64,
    templates: Vec<Template>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How `requested` flows are cut: (destinations, hosts per destination, ports per host).
fn shape(requested: u64, max_dests: usize) -> (usize, u64, u64) {
    let dests = requested
        .div_ceil(FLOWS_PER_DEST)
        .clamp(1, max_dests.max(1) as u64);
    let per_dest = requested.div_ceil(dests);
    let hosts = per_dest.div_ceil(PORTS_PER_HOST).max(1);
    let mut ports = per_dest.div_ceil(hosts).max(1);
    while hosts > 1 && gcd(hosts, ports) != 1 {
        ports += 1;
    }
    (dests as usize, hosts, ports)
}

impl FlowPlan {
    /// Client addresses a plan of `requested` flows needs with `dests` destinations available.
    pub fn hosts_needed(requested: u64, dests: usize) -> usize {
        let (d, h, _) = shape(requested.max(1), dests);
        d * h as usize
    }

    /// Cuts `requested` flows over the client addresses `hosts` (consecutive, in order) and the
    /// destinations `dests`. The plan has at least `requested` flows (a few more where counts had to be
    /// made coprime).
    pub fn new(requested: u64, hosts: &[Ipv4Addr], dests: &[Ipv4Addr]) -> Result<Self, PlanError> {
        if requested == 0 {
            return Err(PlanError::Zero);
        }
        if dests.is_empty() {
            return Err(PlanError::NoDestination);
        }
        let (d, h, p) = shape(requested, dests.len());
        let needed = d * h as usize;
        if needed > hosts.len() {
            return Err(PlanError::NotEnoughHosts {
                flows: requested,
                needed,
                have: hosts.len(),
            });
        }
        let h = h as usize;
        let mut templates = Vec::with_capacity(d);
        for (i, dest) in dests.iter().take(d).enumerate() {
            let chunk = &hosts[i * h..(i + 1) * h];
            let first = chunk[0];
            let last = chunk[h - 1];
            let consecutive = chunk
                .windows(2)
                .all(|w| u32::from(w[1]) == u32::from(w[0]).wrapping_add(1));
            let same_24 = u32::from(first) >> 8 == u32::from(last) >> 8;
            if !consecutive || !same_24 {
                return Err(PlanError::NotConsecutive { first, last });
            }
            templates.push(Template {
                first_host: first,
                hosts: h as u32,
                ports: p as u32,
                dest: *dest,
            });
        }
        Ok(FlowPlan {
            requested,
            templates,
        })
    }

    /// The flow count asked for.
    pub fn requested(&self) -> u64 {
        self.requested
    }

    /// Distinct flows the plan sends (≥ requested).
    pub fn flows(&self) -> u64 {
        self.templates.iter().map(Template::flows).sum()
    }

    /// Its templates, one per destination.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Client addresses used.
    pub fn hosts(&self) -> u32 {
        self.templates.iter().map(|t| t.hosts).sum()
    }

    /// The `trafgen --cpp` config: one packet template per destination, frames to `dst_mac`.
    pub fn trafgen_config(&self, dst_mac: MacAddr) -> String {
        let mut s = format!(
            "/* natgw testbed bench: {} flows, 64-byte UDP to port {SINK_PORT} */\n",
            self.flows()
        );
        for t in &self.templates {
            s.push_str(&t.trafgen(dst_mac));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn hosts(n: u8) -> Vec<Ipv4Addr> {
        (0..n).map(|i| Ipv4Addr::new(10, 0, 0, 2 + i)).collect()
    }

    fn dests() -> Vec<Ipv4Addr> {
        vec![
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 11),
        ]
    }

    /// Simulates trafgen's per-template counters and counts distinct (src, port, dst) over one cycle.
    fn simulate(plan: &FlowPlan) -> usize {
        let mut seen = HashSet::new();
        for t in plan.templates() {
            for n in 0..t.flows() {
                let host = n % u64::from(t.hosts);
                let port = n % u64::from(t.ports);
                seen.insert((host, port, t.dest));
            }
        }
        seen.len()
    }

    #[test]
    fn shapes_of_the_standard_counts() {
        let p = FlowPlan::new(1, &hosts(20), &dests()).unwrap();
        assert_eq!((p.flows(), p.hosts(), p.templates().len()), (1, 1, 1));
        let p = FlowPlan::new(1000, &hosts(20), &dests()).unwrap();
        assert_eq!((p.flows(), p.hosts()), (1000, 1));
        let p = FlowPlan::new(65_536, &hosts(20), &dests()).unwrap();
        assert_eq!(p.hosts(), 2);
        assert!(p.flows() >= 65_536 && p.flows() < 65_600, "{}", p.flows());
        let p = FlowPlan::new(1_000_000, &hosts(20), &dests()).unwrap();
        assert_eq!(p.templates().len(), 2);
        assert_eq!(p.hosts(), 16);
        assert!(
            p.flows() >= 1_000_000 && p.flows() < 1_000_100,
            "{}",
            p.flows()
        );
        for t in p.templates() {
            assert!(u64::from(t.ports) <= PORTS_PER_HOST + 8);
            assert!(t.flows() <= FLOWS_PER_DEST + 100);
        }
        assert_eq!(FlowPlan::hosts_needed(1_000_000, 2), 16);
    }

    #[test]
    fn every_flow_is_distinct_over_one_cycle() {
        for n in [1, 7, 1000, 65_536, 130_001, 1_000_000] {
            let p = FlowPlan::new(n, &hosts(20), &dests()).unwrap();
            assert_eq!(simulate(&p) as u64, p.flows(), "{n} flows");
        }
    }

    #[test]
    fn errors_instead_of_panics() {
        assert_eq!(FlowPlan::new(0, &hosts(2), &dests()), Err(PlanError::Zero));
        assert_eq!(
            FlowPlan::new(10, &hosts(2), &[]),
            Err(PlanError::NoDestination)
        );
        assert!(matches!(
            FlowPlan::new(1_000_000, &hosts(4), &dests()),
            Err(PlanError::NotEnoughHosts { needed: 16, .. })
        ));
        let gap = vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 4)];
        assert!(matches!(
            FlowPlan::new(100_000, &gap, &dests()[..1]),
            Err(PlanError::NotConsecutive { .. })
        ));
    }

    #[test]
    fn trafgen_config_has_counters_and_64_byte_frames() {
        let mac: MacAddr = "02:aa:00:00:00:01".parse().unwrap();
        let p = FlowPlan::new(1_000_000, &hosts(20), &dests()).unwrap();
        let cfg = p.trafgen_config(mac);
        assert_eq!(cfg.matches("eth(da=02:aa:00:00:00:01)").count(), 2);
        assert!(cfg.contains("ipv4(sa=10.0.0.2, da=198.51.100.10, ttl=64, sa[3]=dinc(2, 9))"));
        assert!(cfg.contains("ipv4(sa=10.0.0.10, da=198.51.100.11, ttl=64, sa[3]=dinc(10, 17))"));
        assert!(cfg.contains("udp(sp=dinc(1024, 63524), dp=9), fill(0, 18)"));
        let one = FlowPlan::new(1, &hosts(1), &dests()).unwrap();
        assert!(one
            .trafgen_config(mac)
            .contains("ipv4(sa=10.0.0.2, da=198.51.100.10, ttl=64), udp(sp=1024, dp=9)"));
        assert_eq!(14 + 20 + 8 + PAYLOAD, 60);
    }

    #[test]
    fn mac_addresses_parse_and_print() {
        let m: MacAddr = "2:AB:0:0:ff:9".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:00:ff:09");
        for bad in [
            "",
            "02:ab",
            "02:ab:00:00:ff:09:00",
            "zz:00:00:00:00:00",
            "123:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
