//! Shared harness of the NAT core integration tests (`tests/nat_*.rs`).
//!
//! Layer: tests only. It builds one [`NatCore`] per shard over a real allocator
//! [`Inventory`] (blocks ownership), feeds frames built with the crate's
//! [`FrameBuilder`], follows `Handoff` verdicts to the named shard (checking that a handed-off
//! frame is byte-for-byte unchanged), and checks every frame that comes out with an independent
//! decoder: `etherparse` parses the headers, and the IPv4, TCP, UDP and ICMP checksums (outer and
//! embedded) are recomputed here from scratch with a plain RFC 1071 sum, never with the crate's
//! own checksum code. Virtual time only: [`Net::now`] moves when a test says so.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use natgw_allocator::{
    AllocatorConfig, Cooldowns, Inventory, OwnerMap, Ownership, Protocol, Timestamp,
};
use natgw_dataplane::nat::counters::{Counters, DropReason};
use natgw_dataplane::nat::frag::FragSteer;
use natgw_dataplane::nat::policy::Policy;
use natgw_dataplane::nat::{CoreParams, CoreTimeouts, FrameBuf, NatCore, Punt, Side, Verdict};
use natgw_dataplane::wire::{FrameBuilder, MacAddr, TcpFlags};

/// MAC of the appliance's inside interface.
pub const INSIDE_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x01, 0x01]);
/// MAC of the appliance's outside interface.
pub const OUTSIDE_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x02, 0x01]);
/// MAC of the internet gateway.
pub const GW_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x02, 0xfe]);
/// The appliance's inside address.
pub const INSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The appliance's outside address.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The internet gateway.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
/// The SNAT addresses.
pub const PUBLIC_IPS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(203, 0, 113, 10),
    Ipv4Addr::new(203, 0, 113, 11),
];
/// A private host with a static 1:1 mapping.
pub const STATIC_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
/// Its public address.
pub const STATIC_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
/// A destination inside the no-NAT prefix.
pub const NO_NAT_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
/// A remote server.
pub const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// A router on the internet path (sends ICMP errors).
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// A first private host.
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// A second private host.
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// The SNAT port range of [`alloc_config`].
pub const PORT_RANGE: (u16, u16) = (1024, 65535);
/// Buffer size handed to the core (room for generated ICMP errors).
pub const BUF_LEN: usize = 2048;

/// The MAC a private host uses (derived from its address).
pub fn host_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x0a, 0x00, o[0], o[1], o[2], o[3]])
}

/// Shorthand for a socket address.
pub fn ep(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A point of virtual time, in seconds.
pub fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

/// Core parameters used by most tests: 2 public IPs, one static mapping, TCP 25 denied, no-NAT
/// prefix 192.0.2.0/24, private prefix 10.0.0.0/8, and timeouts that differ from each other so a
/// test can tell which one applied.
pub fn params(shards: u16) -> CoreParams {
    CoreParams {
        shards,
        inside_ip: INSIDE_IP,
        inside_mac: INSIDE_MAC,
        outside_ip: OUTSIDE_IP,
        outside_mac: OUTSIDE_MAC,
        outside_gateway: GATEWAY_IP,
        public_ips: PUBLIC_IPS.to_vec(),
        statics: vec![(STATIC_PRIVATE, STATIC_PUBLIC)],
        policy: Policy {
            deny: vec![natgw_config::DenyRule::SMTP],
            no_nat: vec!["192.0.2.0/24".parse().unwrap()],
            private: vec!["10.0.0.0/8".parse().unwrap()],
        },
        timeouts: timeouts(),
        icmp_prohibited: false,
        max_sessions: 1 << 15,
        max_neighbors: 1 << 14,
    }
}

/// Distinct timeouts: TCP idle 300 s, transitory 30 s, UDP 120 s, ICMP 60 s.
pub fn timeouts() -> CoreTimeouts {
    CoreTimeouts {
        tcp_idle: Duration::from_secs(300),
        tcp_transitory: Duration::from_secs(30),
        udp_idle: Duration::from_secs(120),
        icmp_idle: Duration::from_secs(60),
    }
}

/// Allocator configuration matching [`params`]: the same public IPs, the whole port range,
/// default cool-downs, fixed seed.
pub fn alloc_config() -> AllocatorConfig {
    AllocatorConfig {
        public_ips: PUBLIC_IPS.to_vec(),
        port_range: PORT_RANGE,
        seed: 0x5eed,
        ..AllocatorConfig::default()
    }
}

/// Allocator configuration without cool-downs.
pub fn alloc_config_no_cooldown() -> AllocatorConfig {
    AllocatorConfig {
        cooldown: Cooldowns::ZERO,
        ..alloc_config()
    }
}

/// A frame buffer for `process_burst`.
#[derive(Clone, Debug)]
pub struct TestBuf {
    /// The whole buffer.
    pub data: Vec<u8>,
    /// Frame length.
    pub len: usize,
}

impl TestBuf {
    /// A buffer of [`BUF_LEN`] bytes holding `frame`.
    pub fn new(frame: &[u8]) -> TestBuf {
        let mut data = vec![0u8; BUF_LEN.max(frame.len())];
        data[..frame.len()].copy_from_slice(frame);
        TestBuf {
            data,
            len: frame.len(),
        }
    }

    /// The frame.
    pub fn frame(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl FrameBuf for TestBuf {
    fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    fn frame_len(&self) -> usize {
        self.len
    }
    fn set_frame_len(&mut self, len: usize) {
        self.len = len.min(self.data.len());
    }
}

/// What happened to a frame sent into the network of shards.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The final verdict (never `Handoff`).
    pub verdict: Verdict,
    /// The frame after processing (the forwarded length for `Forward`).
    pub frame: Vec<u8>,
    /// The shard that gave the final verdict.
    pub shard: u16,
    /// How many handoffs it took.
    pub handoffs: u32,
}

impl Delivery {
    /// The frame, decoded and checked; panics unless the verdict is `Forward` on `side`.
    pub fn forwarded(&self, side: Side) -> Pkt {
        match self.verdict {
            Verdict::Forward { side: s, len } => {
                assert_eq!(s, side, "forwarded on the wrong side: {self:?}");
                assert_eq!(usize::from(len), self.frame.len());
            }
            v => panic!("expected Forward on {side:?}, got {v:?}"),
        }
        check(&self.frame)
    }

    /// The drop reason; panics on any other verdict.
    pub fn dropped(&self) -> DropReason {
        match self.verdict {
            Verdict::Drop(r) => r,
            v => panic!("expected a drop, got {v:?}"),
        }
    }
}

/// A set of NAT cores, one per shard, sharing an allocator inventory and a fragment steering
/// table, on virtual time.
pub struct Net {
    /// One core per shard, index = shard id.
    pub cores: Vec<NatCore>,
    /// The slow path's inventory (kept alive, not driven).
    pub inventory: Inventory,
    /// Port owners.
    pub owners: OwnerMap,
    /// Virtual time.
    pub now: Timestamp,
}

impl Net {
    /// Cores built from `params` (its `shards`) and `cfg`; gateway MAC resolved.
    pub fn new(params: CoreParams, cfg: AllocatorConfig) -> Net {
        let now = secs(1000);
        let (inventory, allocs) =
            Inventory::new(cfg, params.shards, Ownership::Blocks).expect("allocator config");
        let owners = inventory.owners();
        let steer = FragSteer::default();
        let cores = allocs
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let mut c = NatCore::new(
                    params.clone(),
                    a,
                    owners.clone(),
                    steer.clone(),
                    0xc0de + i as u64,
                    now,
                );
                c.set_gateway_mac(Some(GW_MAC));
                c
            })
            .collect();
        Net {
            cores,
            inventory,
            owners,
            now,
        }
    }

    /// One shard, [`params`] and [`alloc_config`].
    pub fn standard() -> Net {
        Net::new(params(1), alloc_config())
    }

    /// Moves virtual time forward by `d` in steps of at most one second, running the timers of
    /// every core at each step (as the runtime does once per burst).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        while self.now < end {
            let step = end
                .saturating_duration_since(self.now)
                .min(Duration::from_secs(1));
            self.now = self.now.saturating_add(step);
            self.tick();
        }
    }

    /// Runs the timers of every core at the current time.
    pub fn tick(&mut self) {
        let now = self.now;
        for c in &mut self.cores {
            c.handle_timeout(now);
        }
    }

    /// Processes `frame` on one shard, as received on `side`; returns the verdict and the bytes
    /// afterwards (cut to the new length for `Forward`).
    pub fn process_on(&mut self, shard: u16, side: Side, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut b = TestBuf::new(frame);
        let len = b.len;
        let v = self.cores[usize::from(shard)].process(self.now, side, &mut b.data, len);
        let out_len = match v {
            Verdict::Forward { len, .. } => usize::from(len),
            _ => len,
        };
        (v, b.data[..out_len].to_vec())
    }

    /// Sends `frame` into shard 0 and follows handoffs.
    pub fn send(&mut self, side: Side, frame: &[u8]) -> Delivery {
        self.send_from(0, side, frame)
    }

    /// Sends `frame` into shard `arrival` and follows handoffs; a handed-off frame must be
    /// unchanged and handed over with the side it came from.
    pub fn send_from(&mut self, arrival: u16, side: Side, frame: &[u8]) -> Delivery {
        let mut shard = arrival;
        let mut handoffs = 0;
        loop {
            let (v, out) = self.process_on(shard, side, frame);
            match v {
                Verdict::Handoff { shard: to, side: s } => {
                    assert_eq!(s, side, "handoff changed the side");
                    assert_eq!(out, frame, "a handed-off frame must be unchanged");
                    assert_ne!(to.0, shard, "handoff to itself");
                    handoffs += 1;
                    assert!(
                        handoffs <= self.cores.len() as u32,
                        "handoff loop for {frame:02x?}"
                    );
                    shard = to.0;
                }
                _ => {
                    return Delivery {
                        verdict: v,
                        frame: out,
                        shard,
                        handoffs,
                    }
                }
            }
        }
    }

    /// All shards' counters added up.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for core in &self.cores {
            c.accumulate(core.counters());
        }
        c
    }

    /// Live sessions on all shards.
    pub fn sessions(&self) -> usize {
        self.cores.iter().map(|c| c.session_count()).sum()
    }

    /// Live port leases on all shards.
    pub fn live_leases(&self) -> usize {
        self.cores
            .iter()
            .map(|c| c.allocator_ref().live_leases())
            .sum()
    }

    /// Port pairs cooling down on all shards.
    pub fn cooling(&self) -> u64 {
        self.cores
            .iter()
            .map(|c| c.allocator_ref().stats().cooling)
            .sum()
    }
}

/// Puts inside MACs on a built frame (host → appliance).
pub fn inside(b: FrameBuilder) -> Vec<u8> {
    let src = b.src_ip;
    b.macs(host_mac(src), INSIDE_MAC).build()
}

/// Puts outside MACs on a built frame (gateway → appliance).
pub fn outside(b: FrameBuilder) -> Vec<u8> {
    b.macs(GW_MAC, OUTSIDE_MAC).build()
}

/// A TCP segment from a private host.
pub fn tcp_in(src: SocketAddrV4, dst: SocketAddrV4, flags: TcpFlags) -> Vec<u8> {
    inside(FrameBuilder::tcp(src, dst, flags))
}

/// A TCP segment from the internet.
pub fn tcp_out(src: SocketAddrV4, dst: SocketAddrV4, flags: TcpFlags) -> Vec<u8> {
    outside(FrameBuilder::tcp(src, dst, flags))
}

/// A UDP datagram from a private host, with a small payload.
pub fn udp_in(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    inside(FrameBuilder::udp(src, dst).payload_len(12))
}

/// A UDP datagram from the internet, with a small payload.
pub fn udp_out(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    outside(FrameBuilder::udp(src, dst).payload_len(12))
}

/// An echo request from a private host.
pub fn echo_in(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16) -> Vec<u8> {
    inside(FrameBuilder::icmp_echo_request(src, dst, ident, seq).payload_len(8))
}

/// An echo reply from the internet.
pub fn echo_reply_out(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16) -> Vec<u8> {
    outside(FrameBuilder::icmp_echo_reply(src, dst, ident, seq).payload_len(8))
}

/// The IPv4 datagram of a frame (Ethernet header and padding removed).
pub fn ip_of(frame: &[u8]) -> Vec<u8> {
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    frame[14..14 + total].to_vec()
}

// ---------------------------------------------------------------------------------------------
// Independent checking.
// ---------------------------------------------------------------------------------------------

/// RFC 1071 one's-complement sum of `data` (folded, not complemented), starting from `init`.
pub fn ones_sum(init: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(init);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field value for `data` (with its checksum field zeroed).
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_sum(0, data)
}

/// Sum of the IPv4 pseudo-header.
pub fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + len as u32
}

/// Whether a TCP segment or UDP datagram (checksum field included) verifies.
pub fn l4_verifies(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> bool {
    ones_sum(pseudo_sum(src, dst, proto, seg.len()), seg) == 0xffff
}

/// A decoded, checked frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// IP identification.
    pub ident: u16,
    /// IP protocol.
    pub proto: u8,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
    /// Transport summary.
    pub l4: L4,
}

/// Transport summary of a checked frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte.
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Checksum field (0 = none).
        checksum: u16,
    },
    /// ICMP echo request (8) or reply (0).
    Echo {
        /// Type.
        kind: u8,
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// ICMP error with its embedded datagram.
    IcmpError {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8 of the ICMP header.
        rest: [u8; 4],
        /// The quoted datagram.
        inner: Inner,
    },
    /// A later fragment, or another protocol: not looked into.
    Opaque,
}

/// The datagram quoted by an ICMP error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inner {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: u8,
    /// TTL.
    pub ttl: u8,
    /// Source port (TCP/UDP) or echo identifier (ICMP).
    pub sport: u16,
    /// Destination port (TCP/UDP), 0 for ICMP.
    pub dport: u16,
    /// Whether the whole quoted transport message was present and its checksum verified.
    pub l4_checksum_verified: bool,
    /// The quoted bytes (IPv4 header first).
    pub bytes: Vec<u8>,
}

fn mac(b: [u8; 6]) -> MacAddr {
    MacAddr(b)
}

/// Decodes `frame` with etherparse and checks every checksum it carries by recomputing it here:
/// the IPv4 header checksum, the TCP/UDP checksum (pseudo-header included; not for fragments,
/// whose checksum covers the whole datagram), the ICMP checksum, and for ICMP errors the embedded
/// IPv4 header checksum and, when the quote holds the whole embedded transport message, its
/// checksum too. Panics with a description on any mismatch.
pub fn check(frame: &[u8]) -> Pkt {
    let eth = etherparse::Ethernet2HeaderSlice::from_slice(frame).expect("ethernet header");
    assert_eq!(
        eth.ether_type(),
        etherparse::EtherType::IPV4,
        "not an IPv4 frame"
    );
    let ipb = &frame[14..];
    let ip = etherparse::Ipv4HeaderSlice::from_slice(ipb).expect("etherparse: IPv4 header");
    let hl = usize::from(ip.ihl()) * 4;
    let total = usize::from(ip.total_len());
    assert!(total <= ipb.len(), "IPv4 total length beyond the frame");
    assert_eq!(
        ones_sum(0, &ipb[..hl]),
        0xffff,
        "IPv4 header checksum wrong: {:02x?}",
        &ipb[..hl]
    );
    assert_eq!(
        ip.header_checksum(),
        ip.to_header().calc_header_checksum(),
        "IPv4 header checksum differs from etherparse's"
    );
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    let proto = ip.protocol().0;
    let frag_offset = ip.fragments_offset().value() * 8;
    let more_frags = ip.more_fragments();
    let payload = &ipb[hl..total];
    let l4 = if frag_offset != 0 {
        L4::Opaque
    } else {
        let fragmented = more_frags;
        match proto {
            6 => {
                let t = etherparse::TcpHeaderSlice::from_slice(payload).expect("TCP header");
                if !fragmented {
                    assert!(
                        l4_verifies(src, dst, 6, payload),
                        "TCP checksum wrong ({src} -> {dst})"
                    );
                }
                L4::Tcp {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    flags: payload[13],
                }
            }
            17 => {
                let u = etherparse::UdpHeaderSlice::from_slice(payload).expect("UDP header");
                if !fragmented && u.checksum() != 0 {
                    assert_eq!(usize::from(u.length()), payload.len(), "UDP length");
                    assert!(
                        l4_verifies(src, dst, 17, payload),
                        "UDP checksum wrong ({src} -> {dst})"
                    );
                }
                L4::Udp {
                    sport: u.source_port(),
                    dport: u.destination_port(),
                    checksum: u.checksum(),
                }
            }
            1 => {
                let c = etherparse::Icmpv4Slice::from_slice(payload).expect("ICMP header");
                if !fragmented {
                    assert_eq!(ones_sum(0, payload), 0xffff, "ICMP checksum wrong");
                }
                let rest = c.bytes5to8();
                match c.type_u8() {
                    0 | 8 => L4::Echo {
                        kind: c.type_u8(),
                        ident: u16::from_be_bytes([rest[0], rest[1]]),
                        seq: u16::from_be_bytes([rest[2], rest[3]]),
                    },
                    3 | 4 | 11 | 12 => L4::IcmpError {
                        kind: c.type_u8(),
                        code: c.code_u8(),
                        rest,
                        inner: check_inner(&payload[8..]),
                    },
                    _ => L4::Opaque,
                }
            }
            _ => L4::Opaque,
        }
    };
    Pkt {
        src_mac: mac(eth.source()),
        dst_mac: mac(eth.destination()),
        src,
        dst,
        ttl: ip.ttl(),
        ident: ip.identification(),
        proto,
        more_frags,
        frag_offset,
        l4,
    }
}

/// Checks a datagram quoted in an ICMP error.
pub fn check_inner(q: &[u8]) -> Inner {
    let ip = etherparse::Ipv4HeaderSlice::from_slice(q).expect("embedded IPv4 header");
    let hl = usize::from(ip.ihl()) * 4;
    assert_eq!(
        ones_sum(0, &q[..hl]),
        0xffff,
        "embedded IPv4 header checksum wrong"
    );
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    let proto = ip.protocol().0;
    let l4 = &q[hl..];
    assert!(l4.len() >= 8, "quote shorter than 8 bytes of transport");
    let total = usize::from(ip.total_len());
    let whole = total <= q.len() && !ip.more_fragments() && ip.fragments_offset().value() == 0;
    let seg = &q[hl..total.min(q.len())];
    let word = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    let (sport, dport, verified) = match proto {
        6 => {
            let ok = whole && l4_verifies(src, dst, 6, seg);
            assert!(!whole || ok, "embedded TCP checksum wrong");
            (word(0), word(2), ok)
        }
        17 => {
            let has = word(6) != 0;
            let ok = whole && has && l4_verifies(src, dst, 17, seg);
            assert!(!(whole && has) || ok, "embedded UDP checksum wrong");
            (word(0), word(2), ok)
        }
        1 => {
            let ok = whole && ones_sum(0, seg) == 0xffff;
            assert!(!whole || ok, "embedded ICMP checksum wrong");
            (word(4), 0, ok)
        }
        _ => (0, 0, false),
    };
    Inner {
        src,
        dst,
        proto,
        ttl: ip.ttl(),
        sport,
        dport,
        l4_checksum_verified: verified,
        bytes: q.to_vec(),
    }
}

impl Pkt {
    /// Source and destination ports (echo identifier as source port for ICMP echo).
    pub fn ports(&self) -> (u16, u16) {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => (sport, dport),
            L4::Echo { ident, .. } => (ident, 0),
            _ => panic!("no ports in {self:?}"),
        }
    }

    /// Source endpoint.
    pub fn src_ep(&self) -> SocketAddrV4 {
        ep(self.src, self.ports().0)
    }

    /// Destination endpoint.
    pub fn dst_ep(&self) -> SocketAddrV4 {
        ep(self.dst, self.ports().1)
    }

    /// The embedded datagram of an ICMP error.
    pub fn inner(&self) -> &Inner {
        match &self.l4 {
            L4::IcmpError { inner, .. } => inner,
            _ => panic!("not an ICMP error: {self:?}"),
        }
    }
}

/// Checks that a frame leaving on the outside has the appliance's MAC as source and the gateway
/// as destination, and its source is a public address with the port in `range` (SNAT).
pub fn assert_snat(p: &Pkt, range: (u16, u16)) {
    assert_eq!(p.src_mac, OUTSIDE_MAC);
    assert_eq!(p.dst_mac, GW_MAC);
    assert!(PUBLIC_IPS.contains(&p.src), "source {} not public", p.src);
    let port = p.ports().0;
    assert!(
        (range.0..=range.1).contains(&port),
        "port {port} outside {range:?}"
    );
}

/// Recomputes the IPv4 header checksum of the datagram starting at `ip_off` of `frame`.
pub fn fix_ip_checksum(frame: &mut [u8], ip_off: usize) {
    let hl = usize::from(frame[ip_off] & 0x0f) * 4;
    if hl < 20 || frame.len() < ip_off + hl {
        return;
    }
    frame[ip_off + 10] = 0;
    frame[ip_off + 11] = 0;
    let sum = internet_checksum(&frame[ip_off..ip_off + hl]);
    frame[ip_off + 10..ip_off + 12].copy_from_slice(&sum.to_be_bytes());
}

/// Splits an unfragmented frame into IPv4 fragments whose payloads start at the given byte
/// offsets into the IPv4 payload (multiples of 8, increasing, first one above 0).
pub fn fragment(frame: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let hl = usize::from(frame[14] & 0x0f) * 4;
    let ip = ip_of(frame);
    let payload = &ip[hl..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(a % 8 == 0 && a < b);
        let mut f = frame[..14 + hl].to_vec();
        f.extend_from_slice(&payload[a..b]);
        let total = (hl + b - a) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        let more = b < payload.len();
        let word = ((a / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&word.to_be_bytes());
        fix_ip_checksum(&mut f, 14);
        out.push(f);
    }
    out
}

/// Counter deltas one frame must produce: a `Drop` adds exactly one drop under its reason and
/// nothing to punts or handoffs; a `Punt` adds one punt and no drop; a `Handoff` one handoff and
/// no drop; a `Forward` adds no punt or handoff and a drop only when it is a generated ICMP error
/// (which counts the original under its reason and `icmp_generated`).
pub fn assert_accounted(before: &Counters, after: &Counters, v: Verdict) {
    let drops = after.total_drops() - before.total_drops();
    let punts = after.punted - before.punted;
    let handoffs = after.handoffs_out - before.handoffs_out;
    let generated = after.icmp_generated - before.icmp_generated;
    match v {
        Verdict::Drop(r) => {
            assert_eq!(drops, 1, "{v:?}: drops +{drops}");
            assert_eq!(after.drops_of(r) - before.drops_of(r), 1, "{v:?}");
            assert_eq!((punts, handoffs, generated), (0, 0, 0), "{v:?}");
        }
        Verdict::Punt(_) => assert_eq!((drops, punts, handoffs, generated), (0, 1, 0, 0), "{v:?}"),
        Verdict::Handoff { .. } => {
            assert_eq!((drops, punts, handoffs, generated), (0, 0, 1, 0), "{v:?}")
        }
        Verdict::Forward { .. } => {
            assert_eq!((punts, handoffs), (0, 0), "{v:?}");
            assert_eq!(
                drops, generated,
                "{v:?}: a forward counts a drop only with an ICMP error"
            );
            let translated = (after.in2out.packets - before.in2out.packets)
                + (after.out2in.packets - before.out2in.packets)
                + (after.no_nat.packets - before.no_nat.packets);
            assert!(
                translated >= 1 || generated == 1,
                "{v:?}: forwarded but counted nowhere"
            );
        }
    }
}

/// Whether a verdict is a punt to resolve a next hop.
pub fn is_resolve(v: Verdict) -> bool {
    matches!(v, Verdict::Punt(Punt::Resolve { .. }))
}

/// The protocol of a packet summary.
pub fn protocol_of(p: &Pkt) -> Protocol {
    Protocol::from_ip_number(p.proto).expect("translated protocol")
}
