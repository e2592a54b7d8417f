//! The body of the `process_burst` fuzz target, shared by the libFuzzer binary and the stable
//! `replay` binary.
//!
//! Layer: test tooling on top of `natgw-dataplane` (sans-IO NAT core, fast path). Each input
//! builds a fresh two-shard world with live TCP, UDP and ICMP sessions, a static 1:1 mapping and
//! a no-NAT prefix, then cuts the input into frames and bursts:
//!
//! ```text
//! repeat { h: u8, len: u16 (little endian, at most 1600), bytes[len] }
//!   h bit 0: side (0 inside, 1 outside)      h bit 1: arrival shard (0 or 1)
//!   h bit 2: fix the IPv4 header checksum     h bit 3: no spare room in the buffer
//!   h bits 4-5: time step before the frame (0, 10 ms, 2 s, 300 s); h bit 6: start a new burst
//! ```
//!
//! Consecutive frames for the same side and shard form one `process_burst` call; handed-off
//! frames are processed by their target shard in a further burst. Invariants (a violation
//! panics, which the fuzzer reports): nothing panics; one verdict per frame; a frame handed off
//! for the side it came from is unchanged; a frame is never handed around more than twice; a
//! forwarded length fits the buffer; and the counters account for every frame exactly once
//! (drops minus generated ICMP errors = `Drop` verdicts, punts = `Punt`, handoffs = `Handoff`).

use natgw_allocator::{AllocatorConfig, Cooldowns, Inventory, Ownership, Timestamp};
use natgw_dataplane::nat::frag::FragSteer;
use natgw_dataplane::nat::policy::Policy;
use natgw_dataplane::nat::{CoreParams, CoreTimeouts, FrameBuf, NatCore, Side, Verdict};
use natgw_dataplane::wire::{FrameBuilder, Icmpv4ErrorRepr, MacAddr, TcpFlags};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const SHARDS: u16 = 2;
const BUF_LEN: usize = 2048;
const MAX_FRAME: usize = 1600;
const INSIDE_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const OUTSIDE_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 0xfe]);
const HOST_MAC: MacAddr = MacAddr([0x0a, 0, 10, 0, 0, 2]);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const PUBLIC: [Ipv4Addr; 2] = [
    Ipv4Addr::new(203, 0, 113, 10),
    Ipv4Addr::new(203, 0, 113, 11),
];
const STATIC: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 0, 0, 50), Ipv4Addr::new(203, 0, 113, 50));

struct Buf {
    data: Vec<u8>,
    len: usize,
}

impl FrameBuf for Buf {
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

fn params() -> CoreParams {
    CoreParams {
        shards: SHARDS,
        inside_ip: Ipv4Addr::new(10, 0, 0, 1),
        inside_mac: INSIDE_MAC,
        outside_ip: Ipv4Addr::new(203, 0, 113, 1),
        outside_mac: OUTSIDE_MAC,
        outside_gateway: Ipv4Addr::new(203, 0, 113, 254),
        public_ips: PUBLIC.to_vec(),
        statics: vec![STATIC],
        policy: Policy {
            deny: vec![natgw_config::DenyRule::SMTP],
            no_nat: vec![ipnet::Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap()],
            private: vec![ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap()],
        },
        timeouts: CoreTimeouts {
            tcp_idle: Duration::from_secs(240),
            tcp_transitory: Duration::from_secs(30),
            udp_idle: Duration::from_secs(120),
            icmp_idle: Duration::from_secs(60),
        },
        icmp_prohibited: true,
        max_sessions: 64,
        max_neighbors: 64,
    }
}

/// Frames waiting for one shard: (shard, side, [(bytes, no spare room)]).
type Batch = (u16, Side, Vec<(Vec<u8>, bool)>);

struct World {
    cores: Vec<NatCore>,
    now: Timestamp,
}

impl World {
    fn new() -> World {
        let now = Timestamp::from_secs(1000);
        let cfg = AllocatorConfig {
            public_ips: PUBLIC.to_vec(),
            port_range: (1024, 1279),
            cooldown: Cooldowns::ZERO,
            seed: 7,
            ..AllocatorConfig::default()
        };
        let (inv, allocs) = match Inventory::new(cfg, SHARDS, Ownership::Blocks) {
            Ok(x) => x,
            Err(e) => panic!("fuzz world allocator: {e}"),
        };
        let owners = inv.owners();
        let steer = FragSteer::default();
        let cores = allocs
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let mut c = NatCore::new(params(), a, owners.clone(), steer.clone(), i as u64, now);
                c.set_gateway_mac(Some(GW_MAC));
                c.learn_neighbor(STATIC.0, HOST_MAC);
                c
            })
            .collect();
        let mut w = World { cores, now };
        // Live sessions to hit: open flows from the host (on whichever shard owns them).
        for f in setup_frames() {
            w.burst(Side::Inside, 0, vec![(f, false)]);
        }
        w
    }

    /// Processes one burst arriving at `shard`, follows handoffs, checks the invariants.
    fn burst(&mut self, side: Side, shard: u16, frames: Vec<(Vec<u8>, bool)>) {
        let mut pending: Vec<Batch> = vec![(shard, side, frames)];
        for round in 0..3 {
            let mut next: Vec<Batch> = Vec::new();
            for (s, side, frames) in pending {
                if frames.is_empty() {
                    continue;
                }
                let mut bufs: Vec<Buf> = frames
                    .iter()
                    .map(|(f, tight)| {
                        let mut data = f.clone();
                        if !tight {
                            data.resize(BUF_LEN.max(f.len()), 0);
                        }
                        Buf { data, len: f.len() }
                    })
                    .collect();
                let core = &mut self.cores[usize::from(s)];
                let before = core.counters().clone();
                let mut verdicts = Vec::new();
                core.process_burst(self.now, side, &mut bufs, &mut verdicts);
                assert_eq!(verdicts.len(), frames.len(), "one verdict per frame");
                let after = core.counters();
                let (mut drops, mut punts, mut handoffs) = (0u64, 0u64, 0u64);
                for ((v, b), (orig, tight)) in verdicts.iter().zip(&bufs).zip(&frames) {
                    match *v {
                        Verdict::Drop(_) => drops += 1,
                        Verdict::Punt(_) => punts += 1,
                        Verdict::Forward { len, .. } => {
                            assert!(
                                usize::from(len) <= b.data.len(),
                                "forward beyond the buffer"
                            );
                            assert_eq!(b.len, usize::from(len));
                        }
                        Verdict::Handoff {
                            shard: to,
                            side: hs,
                        } => {
                            handoffs += 1;
                            assert!(to.0 < SHARDS && to.0 != s, "handoff to {to:?} from {s}");
                            if hs == side {
                                assert_eq!(&b.data[..b.len], &orig[..], "handed-off frame changed");
                            }
                            assert!(round < 2, "frame handed around more than twice");
                            let bytes = b.data[..b.len].to_vec();
                            match next.iter_mut().find(|(t, sd, _)| *t == to.0 && *sd == hs) {
                                Some((_, _, list)) => list.push((bytes, *tight)),
                                None => next.push((to.0, hs, vec![(bytes, *tight)])),
                            }
                        }
                    }
                }
                let generated = after.icmp_generated - before.icmp_generated;
                assert_eq!(
                    after.total_drops() - before.total_drops(),
                    drops + generated,
                    "drops not accounted once"
                );
                assert_eq!(after.punted - before.punted, punts, "punts not accounted");
                assert_eq!(
                    after.handoffs_out - before.handoffs_out,
                    handoffs,
                    "handoffs not accounted"
                );
            }
            pending = next;
        }
        assert!(pending.iter().all(|(_, _, f)| f.is_empty()), "handoff loop");
        let now = self.now;
        for c in &mut self.cores {
            c.handle_timeout(now);
        }
    }
}

fn ep(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn inside(b: FrameBuilder) -> Vec<u8> {
    b.macs(HOST_MAC, INSIDE_MAC).build()
}

fn outside(b: FrameBuilder) -> Vec<u8> {
    b.macs(GW_MAC, OUTSIDE_MAC).build()
}

fn setup_frames() -> Vec<Vec<u8>> {
    vec![
        inside(FrameBuilder::tcp(
            ep(HOST, 40000),
            ep(REMOTE, 443),
            TcpFlags::SYN,
        )),
        inside(FrameBuilder::udp(ep(HOST, 5000), ep(REMOTE, 53)).payload_len(8)),
        inside(FrameBuilder::icmp_echo_request(HOST, REMOTE, 77, 1).payload_len(8)),
    ]
}

fn fix_ip_checksum(f: &mut [u8]) {
    if f.len() < 34 {
        return;
    }
    let hl = usize::from(f[14] & 0x0f) * 4;
    if hl < 20 || f.len() < 14 + hl {
        return;
    }
    f[24] = 0;
    f[25] = 0;
    let mut sum = 0u32;
    for c in f[14..14 + hl].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Runs one fuzz input (see the module documentation).
pub fn run(data: &[u8]) {
    let mut w = World::new();
    let mut rest = data;
    let mut cur: Option<(Side, u16)> = None;
    let mut burst: Vec<(Vec<u8>, bool)> = Vec::new();
    while rest.len() >= 3 {
        let h = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(MAX_FRAME);
        rest = &rest[3..];
        let take = len.min(rest.len());
        let mut frame = rest[..take].to_vec();
        rest = &rest[take..];
        let side = if h & 1 == 0 {
            Side::Inside
        } else {
            Side::Outside
        };
        let shard = u16::from((h >> 1) & 1);
        if h & 4 != 0 {
            fix_ip_checksum(&mut frame);
        }
        let step = match (h >> 4) & 3 {
            0 => Duration::ZERO,
            1 => Duration::from_millis(10),
            2 => Duration::from_secs(2),
            _ => Duration::from_secs(300),
        };
        let new_burst = h & 0x40 != 0 || step > Duration::ZERO || cur != Some((side, shard));
        if new_burst {
            if let Some((s, sh)) = cur {
                w.burst(s, sh, std::mem::take(&mut burst));
            }
            w.now = w.now.saturating_add(step);
            cur = Some((side, shard));
        }
        burst.push((frame, h & 8 != 0));
    }
    if let Some((s, sh)) = cur {
        w.burst(s, sh, burst);
    }
}

fn record(out: &mut Vec<u8>, h: u8, frame: &[u8]) {
    out.push(h);
    out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    out.extend_from_slice(frame);
}

/// Seed inputs: valid frames of the setup's flows both ways (TCP handshake and close, UDP, echo,
/// ICMP errors both ways, fragments, static 1:1, no-NAT, hairpin, TTL 1, SMTP, ARP-less junk).
pub fn seeds() -> Vec<Vec<u8>> {
    // The public endpoints of the setup flows, as the world assigns them.
    let w = World::new();
    let find = |proto: natgw_allocator::Protocol, port: u16, rport: u16| {
        let key = natgw_dataplane::nat::flow::FlowKey {
            proto,
            local_ip: HOST,
            local_port: port,
            remote_ip: REMOTE,
            remote_port: rport,
        };
        w.cores
            .iter()
            .find_map(|c| c.find_in2out(&key))
            .map(|s| ep(s.public_ip, s.public_port))
            .unwrap_or(ep(PUBLIC[0], 1024))
    };
    let tcp_pub = find(natgw_allocator::Protocol::Tcp, 40000, 443);
    let udp_pub = find(natgw_allocator::Protocol::Udp, 5000, 53);
    let icmp_pub = find(natgw_allocator::Protocol::Icmp, 77, 0);
    let a = ep(HOST, 40000);
    let r = ep(REMOTE, 443);
    let u = ep(HOST, 5000);
    let dns = ep(REMOTE, 53);
    let udp_left = FrameBuilder::udp(udp_pub, dns)
        .payload_len(8)
        .ttl(63)
        .build_ip();
    let udp_in = FrameBuilder::udp(dns, u).payload_len(8).build_ip();
    let big = FrameBuilder::tcp(a, r, TcpFlags::ACK)
        .payload_len(80)
        .ident(9);
    let frames: Vec<(u8, Vec<u8>)> = vec![
        (0, inside(FrameBuilder::tcp(a, r, TcpFlags::SYN))),
        (
            1,
            outside(FrameBuilder::tcp(r, tcp_pub, TcpFlags::SYN | TcpFlags::ACK)),
        ),
        (
            0,
            inside(FrameBuilder::tcp(a, r, TcpFlags::ACK).payload_len(20)),
        ),
        (
            1,
            outside(FrameBuilder::tcp(r, tcp_pub, TcpFlags::FIN | TcpFlags::ACK)),
        ),
        (0, inside(FrameBuilder::tcp(a, r, TcpFlags::RST))),
        (0, inside(FrameBuilder::udp(u, dns).payload_len(30))),
        (1, outside(FrameBuilder::udp(dns, udp_pub).payload_len(30))),
        (
            0,
            inside(FrameBuilder::icmp_echo_request(HOST, REMOTE, 77, 2).payload_len(8)),
        ),
        (
            1,
            outside(
                FrameBuilder::icmp_echo_reply(REMOTE, *icmp_pub.ip(), icmp_pub.port(), 2)
                    .payload_len(8),
            ),
        ),
        (
            1,
            outside(FrameBuilder::icmp_error(
                REMOTE,
                *udp_pub.ip(),
                Icmpv4ErrorRepr::dest_unreachable(3),
                &udp_left,
            )),
        ),
        (
            0,
            inside(FrameBuilder::icmp_error(
                HOST,
                REMOTE,
                Icmpv4ErrorRepr::dest_unreachable(3),
                &udp_in,
            )),
        ),
        (0, inside(big.clone().fragment(0, true))),
        (0, inside(big.fragment(48, false))),
        (0, inside(FrameBuilder::udp(ep(STATIC.0, 1), dns))),
        (1, outside(FrameBuilder::udp(dns, ep(STATIC.1, 1)))),
        (
            0,
            inside(FrameBuilder::udp(u, ep(Ipv4Addr::new(192, 0, 2, 5), 53))),
        ),
        (0, inside(FrameBuilder::udp(u, ep(STATIC.1, 7)))),
        (0, inside(FrameBuilder::udp(u, dns).ttl(1))),
        (1, outside(FrameBuilder::udp(dns, udp_pub).ttl(1))),
        (
            0,
            inside(FrameBuilder::tcp(a, ep(REMOTE, 25), TcpFlags::SYN)),
        ),
        (
            0,
            inside(FrameBuilder::tcp(ep(HOST, 1), r, TcpFlags::SYN).vlan(5)),
        ),
    ];
    let mut out = Vec::new();
    // One seed per frame, on either arrival shard.
    for (side, f) in &frames {
        for shard in 0..2u8 {
            let mut s = Vec::new();
            record(&mut s, side | (shard << 1), f);
            out.push(s);
        }
    }
    // And the whole sequence as one input, with time passing.
    let mut all = Vec::new();
    for (i, (side, f)) in frames.iter().enumerate() {
        let step = if i % 5 == 4 { 0x10 } else { 0 };
        record(&mut all, side | step | ((i as u8 & 1) << 1), f);
    }
    out.push(all);
    out
}
