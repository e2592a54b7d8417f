//! The FD.io CSIT NAT44 scenario on a real NAT core (benches only).
//!
//! CSIT's NAT44-ED method, which DESIGN §6 follows so that our figures line up with published ones:
//! 63 source ports per inside host and 1,024 inside hosts per public IP, so one public IP carries
//! 64,512 sessions and 16 public IPs about 1 M ([`Shape::sessions`] = 1,032,192). Larger ladder steps
//! (4 M, 16 M) reuse every SNAT port towards `dests` different destination groups, which the port
//! reuse rules allow (a UDP port once per destination IP, a TCP port once per destination IP:port).
//!
//! One choice differs from CSIT and is ours: CSIT sends every flow to one destination IP:port. That
//! would put 64,512 flows of one public IP on one destination, above the default per-destination cap
//! (50,000) and at the allocator's very last free port. Here flow `i` of a destination group goes to
//! remote `198.18.0.0 + group * 1024 + i % 1024`, so each (public IP, destination) pair holds about 63
//! flows: the realistic case of many servers, and the allocator's common path.
//!
//! Sessions are created the way traffic creates them: first packets sent through
//! [`NatCore::process_burst`] (port allocation and all), never by writing tables directly.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use natgw_allocator::{AllocatorConfig, Inventory, OwnerMap, Ownership, ShardAllocator, Timestamp};
use natgw_config::{DenyRule, Protocol};
use natgw_dataplane::nat::flow::FlowKey;
use natgw_dataplane::nat::frag::FragSteer;
use natgw_dataplane::nat::policy::Policy;
use natgw_dataplane::nat::{CoreParams, CoreTimeouts, NatCore, Side};
use natgw_dataplane::wire::{FrameBuilder, MacAddr, TcpFlags};

use crate::harness::run_nat;
use crate::stream::{FrameStream, StreamError};

/// Source ports per inside host (CSIT).
pub const PORTS_PER_HOST: u32 = 63;
/// Inside hosts per public IP (CSIT's sharing ratio).
pub const HOSTS_PER_IP: u32 = 1024;
/// First source port of an inside host.
pub const FIRST_SPORT: u16 = 1024;
/// Remote addresses per destination group.
pub const REMOTES_PER_GROUP: u32 = 1024;
/// Frame length of every generated frame: a 64-byte frame on the wire (60 + FCS).
pub const FRAME_LEN: usize = 60;

/// MAC of the appliance's inside interface.
pub const INSIDE_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x01]);
/// MAC of the appliance's outside interface.
pub const OUTSIDE_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x01]);
/// MAC of the internet gateway.
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0xfe]);
/// MAC the inside hosts send from.
pub const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x10]);

/// Virtual nanoseconds the clock advances per packet in the harness (one burst reads the clock once).
pub const NANOS_PER_PACKET: u64 = 50;

/// The i-th public IP: 100.64.0.16 and up.
pub fn public_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0010u32 + i as u32)
}

/// The i-th inside host: 10.1.0.0 and up.
pub fn host_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a01_0000u32 + i)
}

/// One direction-independent flow of the scenario, as the inside host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Transport protocol.
    pub proto: Protocol,
    /// Inside host and source port.
    pub private: SocketAddrV4,
    /// Remote server.
    pub remote: SocketAddrV4,
}

impl Flow {
    /// The in2out lookup key of the flow.
    pub fn key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            local_ip: *self.private.ip(),
            local_port: self.private.port(),
            remote_ip: *self.remote.ip(),
            remote_port: self.remote.port(),
        }
    }

    /// A 64-byte frame of the flow from the inside host (TCP with `flags`; ignored for UDP).
    pub fn in2out(&self, flags: TcpFlags) -> FrameBuilder {
        let b = match self.proto {
            Protocol::Tcp => FrameBuilder::tcp(self.private, self.remote, flags),
            _ => FrameBuilder::udp(self.private, self.remote),
        };
        b.macs(HOST_MAC, INSIDE_MAC).pad_to(FRAME_LEN)
    }

    /// A 64-byte reply of the flow from the remote server to the public endpoint `public`.
    pub fn out2in(&self, public: SocketAddrV4, flags: TcpFlags) -> FrameBuilder {
        let b = match self.proto {
            Protocol::Tcp => FrameBuilder::tcp(self.remote, public, flags),
            _ => FrameBuilder::udp(self.remote, public),
        };
        b.macs(GATEWAY_MAC, OUTSIDE_MAC).pad_to(FRAME_LEN)
    }
}

/// The size and kind of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Public IPs (1 to 16).
    pub public_ips: u32,
    /// Destination groups each SNAT port is reused towards (1 for 1 M sessions on 16 IPs, 16 for 16 M).
    pub dests: u32,
    /// Protocol of the live flows (TCP or UDP).
    pub proto: Protocol,
}

impl Shape {
    /// CSIT's ladder step for `public_ips` IPs and `dests` destination groups, UDP.
    pub fn udp(public_ips: u32, dests: u32) -> Shape {
        Shape {
            public_ips,
            dests,
            proto: Protocol::Udp,
        }
    }

    /// Inside hosts.
    pub fn hosts(&self) -> u32 {
        self.public_ips * HOSTS_PER_IP
    }

    /// Live sessions once filled: `public_ips * 1024 * 63 * dests`.
    pub fn sessions(&self) -> u64 {
        u64::from(self.hosts()) * u64::from(PORTS_PER_HOST) * u64::from(self.dests)
    }

    fn dport(proto: Protocol) -> u16 {
        match proto {
            Protocol::Tcp => 80,
            _ => 53,
        }
    }

    /// Live flow `i` (`i < sessions()`).
    pub fn flow(&self, i: u64) -> Flow {
        let per_group = u64::from(self.hosts()) * u64::from(PORTS_PER_HOST);
        let group = (i / per_group) as u32;
        let r = i % per_group;
        let host = (r / u64::from(PORTS_PER_HOST)) as u32;
        let port = (r % u64::from(PORTS_PER_HOST)) as u16;
        let remote = 0xc612_0000u32 + group * REMOTES_PER_GROUP + (r % 1024) as u32;
        Flow {
            proto: self.proto,
            private: SocketAddrV4::new(host_ip(host), FIRST_SPORT + port),
            remote: SocketAddrV4::new(Ipv4Addr::from(remote), Self::dport(self.proto)),
        }
    }

    /// Fresh flow `k` of protocol `proto`: a source port above the live range of one of the scenario's
    /// hosts, so it is never a live session (for new-flow measurements). `k` below about 60,000 times
    /// the number of hosts.
    pub fn fresh_flow(&self, k: u64, proto: Protocol) -> Flow {
        let hosts = u64::from(self.hosts());
        let host = (k % hosts) as u32;
        let port = (u64::from(FIRST_SPORT) + u64::from(PORTS_PER_HOST) + k / hosts).min(65535);
        let remote = 0xc612_0000u32 + (k.wrapping_mul(7) % 16_384) as u32;
        Flow {
            proto,
            private: SocketAddrV4::new(host_ip(host), port as u16),
            remote: SocketAddrV4::new(Ipv4Addr::from(remote), Self::dport(proto)),
        }
    }

    /// The allocator configuration: the scenario's public IPs, default port range, limits raised so the
    /// table size (not a cap) bounds the sessions, default cool-downs, paired pooling.
    pub fn allocator_config(&self, max_sessions: u32) -> AllocatorConfig {
        AllocatorConfig {
            public_ips: (0..self.public_ips as usize).map(public_ip).collect(),
            max_sessions,
            ..AllocatorConfig::default()
        }
    }
}

/// The NAT core parameters of a scenario: `shards` shards, default timeouts, SMTP denied, 10/8 private.
pub fn core_params(public_ips: &[Ipv4Addr], shards: u16, max_sessions: u32) -> CoreParams {
    CoreParams {
        shards,
        inside_ip: Ipv4Addr::new(10, 0, 0, 1),
        inside_mac: INSIDE_MAC,
        outside_ip: Ipv4Addr::new(100, 64, 0, 1),
        outside_mac: OUTSIDE_MAC,
        outside_gateway: Ipv4Addr::new(100, 64, 0, 254),
        public_ips: public_ips.to_vec(),
        statics: Vec::new(),
        policy: Policy {
            deny: vec![DenyRule::SMTP],
            no_nat: Vec::new(),
            private: vec!["10.0.0.0/8".parse().expect("prefix literal")],
        },
        timeouts: CoreTimeouts::default(),
        icmp_prohibited: false,
        max_sessions,
        max_neighbors: 65_536,
    }
}

/// Why a scenario could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The allocator refused its configuration.
    #[error("allocator: {0}")]
    Allocator(#[from] natgw_allocator::InventoryError),
    /// A frame could not be built.
    #[error("frames: {0}")]
    Stream(#[from] StreamError),
    /// First packets did not all create a session.
    #[error("{created} of {wanted} sessions created")]
    Incomplete {
        /// Sessions wanted.
        wanted: u64,
        /// Sessions created.
        created: u64,
    },
    /// A live flow has no session.
    #[error("flow {0:?} has no session")]
    Missing(Flow),
}

/// How filling went.
#[derive(Clone, Debug, Default)]
pub struct FillReport {
    /// Sessions created.
    pub created: u64,
    /// Time spent in the NAT core (frame building excluded).
    pub nat_time: Duration,
    /// Time spent building frames.
    pub build_time: Duration,
    /// Sessions per second of each chunk, in order.
    pub chunk_rates: Vec<f64>,
}

impl FillReport {
    /// Mean creation rate over the whole fill.
    pub fn rate(&self) -> f64 {
        self.created as f64 / self.nat_time.as_secs_f64().max(1e-9)
    }
}

/// A single-shard NAT core set up for one [`Shape`].
pub struct Scenario {
    /// The core under test.
    pub core: NatCore,
    /// The scenario's shape.
    pub shape: Shape,
    /// The virtual clock.
    pub now: Timestamp,
    /// The owner map of the allocator (for steering checks).
    pub owners: OwnerMap,
}

impl Scenario {
    /// An empty single-shard core for `shape` with a session table of `capacity`.
    pub fn new(shape: Shape, capacity: u32, seed: u64) -> Result<Scenario, ScenarioError> {
        let cfg = shape.allocator_config(capacity.max(1));
        let ips = cfg.public_ips.clone();
        let (inv, mut shards) = Inventory::new(cfg, 1, Ownership::Blocks)?;
        let alloc: ShardAllocator = shards.remove(0);
        let now = Timestamp::from_secs(1_000);
        let mut core = NatCore::new(
            core_params(&ips, 1, capacity),
            alloc,
            inv.owners(),
            FragSteer::default(),
            seed,
            now,
        );
        core.set_gateway_mac(Some(GATEWAY_MAC));
        Ok(Scenario {
            core,
            shape,
            now,
            owners: inv.owners(),
        })
    }

    /// Create `count` sessions from `first` on by sending first packets (UDP datagrams, or TCP SYNs then
    /// the remote's SYN-ACKs so that TCP sessions end up established), `chunk` flows at a time.
    pub fn fill(
        &mut self,
        flows: impl Fn(u64) -> Flow,
        first: u64,
        count: u64,
        chunk: u64,
    ) -> Result<FillReport, ScenarioError> {
        let mut rep = FillReport::default();
        let before = self.core.session_count() as u64;
        let mut i = first;
        let end = first + count;
        while i < end {
            let n = chunk.min(end - i);
            let t = Instant::now();
            let mut s = FrameStream::with_capacity(n as usize);
            for k in i..i + n {
                s.push(&flows(k).in2out(TcpFlags::SYN))?;
            }
            rep.build_time += t.elapsed();
            let live = self.core.session_count();
            let st = run_nat(
                &mut self.core,
                &mut self.now,
                &[(Side::Inside, &s)],
                s.len() as u64,
            );
            let made = (self.core.session_count() - live) as u64;
            rep.nat_time += st.elapsed;
            rep.chunk_rates
                .push(made as f64 / st.elapsed.as_secs_f64().max(1e-9));
            // TCP: the remote answers, so the sessions are established (untimed).
            if flows(i).proto == Protocol::Tcp {
                let t = Instant::now();
                let mut r = FrameStream::with_capacity(n as usize);
                for k in i..i + n {
                    let f = flows(k);
                    let public = self.public_of(&f)?;
                    r.push(&f.out2in(public, TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0)))?;
                }
                rep.build_time += t.elapsed();
                run_nat(
                    &mut self.core,
                    &mut self.now,
                    &[(Side::Outside, &r)],
                    r.len() as u64,
                );
            }
            i += n;
        }
        rep.created = self.core.session_count() as u64 - before;
        if rep.created != count {
            return Err(ScenarioError::Incomplete {
                wanted: count,
                created: rep.created,
            });
        }
        Ok(rep)
    }

    /// Fill the scenario's live set (all [`Shape::sessions`]).
    pub fn fill_all(&mut self, chunk: u64) -> Result<FillReport, ScenarioError> {
        let shape = self.shape;
        self.fill(|i| shape.flow(i), 0, shape.sessions(), chunk)
    }

    /// The public endpoint a flow was translated to.
    pub fn public_of(&self, f: &Flow) -> Result<SocketAddrV4, ScenarioError> {
        let s = self
            .core
            .find_in2out(&f.key())
            .ok_or(ScenarioError::Missing(*f))?;
        Ok(SocketAddrV4::new(s.public_ip, s.public_port))
    }

    /// Streams of established traffic over every live flow, in a random flow order (one permutation per
    /// direction): in2out frames and out2in replies (TCP: ACKs).
    pub fn established_streams(
        &self,
        seed: u64,
    ) -> Result<(FrameStream, FrameStream), ScenarioError> {
        self.established_streams_over(self.shape.sessions(), seed)
    }

    /// [`Scenario::established_streams`] over the first `n` live flows only (a smaller working set).
    pub fn established_streams_over(
        &self,
        n: u64,
        seed: u64,
    ) -> Result<(FrameStream, FrameStream), ScenarioError> {
        use rand::rngs::SmallRng;
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let n = n.min(self.shape.sessions());
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rng);
        let mut inside = FrameStream::with_capacity(n as usize);
        for &i in &order {
            inside.push(&self.shape.flow(u64::from(i)).in2out(TcpFlags::ACK))?;
        }
        order.shuffle(&mut rng);
        let mut outside = FrameStream::with_capacity(n as usize);
        for &i in &order {
            let f = self.shape.flow(u64::from(i));
            outside.push(&f.out2in(self.public_of(&f)?, TcpFlags::ACK))?;
        }
        Ok((inside, outside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csit_ladder_sizes() {
        assert_eq!(Shape::udp(1, 1).sessions(), 64_512);
        assert_eq!(Shape::udp(4, 1).sessions(), 258_048);
        assert_eq!(Shape::udp(16, 1).sessions(), 1_032_192);
        assert_eq!(Shape::udp(16, 4).sessions(), 4_128_768);
        assert_eq!(Shape::udp(16, 16).sessions(), 16_515_072);
    }

    #[test]
    fn flows_are_distinct_and_fresh_flows_are_not_live() {
        let shape = Shape::udp(1, 2);
        let live: std::collections::HashSet<_> =
            (0..shape.sessions()).map(|i| shape.flow(i).key()).collect();
        assert_eq!(live.len() as u64, shape.sessions());
        for k in 0..10_000 {
            assert!(!live.contains(&shape.fresh_flow(k, Protocol::Udp).key()));
        }
    }

    #[test]
    fn small_scenario_fills_and_forwards_both_ways() {
        let shape = Shape::udp(1, 1);
        let mut sc = Scenario::new(shape, shape.sessions() as u32, 1).unwrap();
        let rep = sc.fill_all(16_384).unwrap();
        assert_eq!(rep.created, 64_512);
        assert_eq!(sc.core.session_count(), 64_512);
        let (i, o) = sc.established_streams(3).unwrap();
        let st = run_nat(
            &mut sc.core,
            &mut sc.now,
            &[(Side::Inside, &i), (Side::Outside, &o)],
            100_000,
        );
        assert_eq!(st.packets, 100_000);
        assert_eq!(st.forwarded, 100_000);
        // A full table refuses the next flow.
        let f = shape.fresh_flow(0, Protocol::Udp);
        assert!(sc.fill(|_| f, 0, 1, 1).is_err());
    }

    #[test]
    fn tcp_scenario_is_established() {
        let shape = Shape {
            public_ips: 1,
            dests: 1,
            proto: Protocol::Tcp,
        };
        let mut sc = Scenario::new(shape, 70_000, 1).unwrap();
        sc.fill(|i| shape.flow(i), 0, 5_000, 1_000).unwrap();
        let s = sc.core.find_in2out(&shape.flow(17).key()).unwrap();
        assert_eq!(
            s.state,
            natgw_dataplane::nat::session::SessionState::TcpEstablished
        );
    }
}
