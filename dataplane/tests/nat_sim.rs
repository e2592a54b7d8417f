//! Deterministic simulation of the NAT core (seeded, virtual time): thousands of private hosts on
//! two shards open TCP connections (handshake, data, close by FIN from either side or RST from
//! either side, some to a black hole), UDP request/response exchanges (some answered with ICMP
//! port unreachable from the server, some ending with the host refusing a late datagram), pings,
//! and strangers send unsolicited packets. A port range of 256 ports per public IP is exhausted
//! by long connections to one hot destination.
//!
//! Frames arrive at a random shard in bursts (`process_burst`); handoffs are followed. A model
//! of the expected outcome checks every frame and, at the end, every counter:
//! - every packet of an established flow, both ways, keeps being translated to the same public
//!   ip:port (and back to the same private endpoint) until the flow closes, exhaustion or not;
//! - a new flow fails only when the model says every port of its (shard, public IP, protocol,
//!   destination) may be held by sessions still alive, and succeeds whenever at least one port
//!   is certainly free (sessions end between their deadline and a few seconds later);
//! - drops happen only where expected, under the expected reason; counters match the model;
//! - after the traffic stops, every session expires and every port is released.
//!
//! Every forwarded frame is decoded and its checksums recomputed by the independent checker.

mod nat_common;

use nat_common::*;
use natgw_allocator::{AllocatorConfig, Cooldowns, Protocol, Timestamp};
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::flow::flow_shard;
use natgw_dataplane::nat::{CoreTimeouts, Side, Verdict, TCP_CLOSED_LINGER, TCP_RESET_LINGER};
use natgw_dataplane::wire::{FrameBuilder, Icmpv4ErrorRepr, TcpFlags};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const SHARDS: u16 = 2;
const HOSTS: u32 = 3000;
/// Virtual seconds during which new flows start.
const TRAFFIC_SECS: u64 = 420;
/// Time step when something is due; the timers run at least this often.
const STEP_MS: u64 = 10;
const MAX_IDLE_STEP_MS: u64 = 100;
/// How late after its deadline a session may still be alive (wheel slots of ~1.07 s).
const EXPIRY_SLACK_MS: u64 = 3000;
const HOT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 443);

fn sim_timeouts() -> CoreTimeouts {
    CoreTimeouts {
        tcp_idle: Duration::from_secs(120),
        tcp_transitory: Duration::from_secs(20),
        udp_idle: Duration::from_secs(30),
        icmp_idle: Duration::from_secs(20),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A TCP connection to an ordinary server.
    Tcp,
    /// A long TCP connection to the hot destination.
    TcpHot,
    /// A SYN to a destination that never answers (retransmitted twice).
    TcpBlackhole,
    /// UDP request/response exchanges.
    Udp,
    /// A UDP request answered with ICMP port unreachable by the server.
    UdpClosed,
    /// A UDP exchange, then a late datagram the host refuses with ICMP port unreachable.
    UdpRefused,
    /// Echo request/reply exchanges.
    Ping,
    /// A stranger sends to a public address.
    Unsolicited,
    /// A host sends a non-SYN TCP segment for a flow it never opened.
    NonSyn,
    /// A host tries SMTP.
    Smtp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    HostFin,
    ServerFin,
    HostRst,
    ServerRst,
}

/// The model's view of a session's TCP state (mirrors what the core tracks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MState {
    SynSent,
    Established,
    FinIn,
    FinOut,
    Closed,
    Reset,
    Udp,
    Icmp,
}

impl MState {
    fn timeout_ms(self) -> u64 {
        let t = sim_timeouts();
        let d = match self {
            MState::SynSent | MState::FinIn | MState::FinOut => t.tcp_transitory,
            MState::Established => t.tcp_idle,
            MState::Closed => TCP_CLOSED_LINGER,
            MState::Reset => TCP_RESET_LINGER,
            MState::Udp => t.udp_idle,
            MState::Icmp => t.icmp_idle,
        };
        d.as_millis() as u64
    }

    /// The core's transition for a TCP packet with `flags` seen from `side`.
    fn after(self, flags: u8, side: Side) -> MState {
        const FIN: u8 = 1;
        const RST: u8 = 4;
        if flags & RST != 0 {
            return MState::Reset;
        }
        match (self, side) {
            (MState::SynSent, Side::Outside) => MState::Established,
            (MState::Established, Side::Inside) if flags & FIN != 0 => MState::FinIn,
            (MState::Established, Side::Outside) if flags & FIN != 0 => MState::FinOut,
            (MState::FinIn, Side::Outside) if flags & FIN != 0 => MState::Closed,
            (MState::FinOut, Side::Inside) if flags & FIN != 0 => MState::Closed,
            (s, _) => s,
        }
    }
}

/// What a flow does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Open,
    ServerSynAck,
    HostAck,
    HostData,
    ServerData,
    HostFin,
    ServerFinAck,
    HostLastAck,
    ServerFin,
    HostFinAck,
    ServerLastAck,
    HostRst,
    ServerRst,
    UdpReply,
    ServerUnreachable,
    ServerLate,
    HostUnreachable,
    PingReply,
    Done,
}

#[derive(Clone, Debug)]
struct Flow {
    kind: Kind,
    private: SocketAddrV4,
    remote: SocketAddrV4,
    proto: u8,
    /// The shard that owns the flow (in2out steering hash).
    shard: u16,
    paired: Ipv4Addr,
    public: Option<SocketAddrV4>,
    /// The model of its session: state and last packet (ms).
    sess: Option<(MState, u64)>,
    step: Step,
    exchanges: u32,
    tries: u32,
    close: Close,
    /// The last datagram that left (for the server's ICMP error quote) or was delivered.
    quoted: Vec<u8>,
    failed: bool,
}

/// Expected counter values.
#[derive(Default, Debug)]
struct Expect {
    created: [u64; 3],
    failures: u64,
    unsolicited: u64,
    nonsyn: u64,
    smtp: u64,
    in2out: u64,
    out2in: u64,
    handoffs: u64,
    established_packets: u64,
    errors_translated: u64,
}

type DestKey = (u16, Ipv4Addr, u8, Ipv4Addr, u16);

struct Sim {
    net: Net,
    rng: SmallRng,
    start: Timestamp,
    now_ms: u64,
    flows: Vec<Flow>,
    queue: BinaryHeap<Reverse<(u64, usize)>>,
    next_port: Vec<u16>,
    /// Flows whose session may be alive, by allocator key.
    by_key: HashMap<DestKey, Vec<usize>>,
    /// Ports each (shard, public IP, protocol) owns.
    capacity: HashMap<(u16, Ipv4Addr, u8), u32>,
    expect: Expect,
}

fn proto_enum(p: u8) -> Protocol {
    Protocol::from_ip_number(p).unwrap()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut p = params(SHARDS);
        p.timeouts = sim_timeouts();
        p.statics.clear();
        let cfg = AllocatorConfig {
            port_range: (1024, 1024 + 255),
            cooldown: Cooldowns::ZERO,
            seed,
            ..alloc_config()
        };
        let net = Net::new(p, cfg);
        let mut capacity = HashMap::new();
        for c in &net.cores {
            for pool in c.allocator_ref().stats().pools {
                capacity.insert(
                    (c.shard().0, pool.public_ip, pool.proto.ip_number()),
                    pool.owned_ports,
                );
            }
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let next_port = (0..HOSTS).map(|_| rng.gen_range(1024..30000)).collect();
        Sim {
            start: net.now,
            net,
            rng,
            now_ms: 0,
            flows: Vec::new(),
            queue: BinaryHeap::new(),
            next_port,
            by_key: HashMap::new(),
            capacity,
            expect: Expect::default(),
        }
    }

    fn host_ip(i: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8 + 10)
    }

    fn port_of(&mut self, host: u32) -> u16 {
        let p = &mut self.next_port[host as usize];
        *p = if *p >= 65000 { 1024 } else { *p + 1 };
        *p
    }

    fn schedule(&mut self, fid: usize, after_ms: u64) {
        self.queue.push(Reverse((self.now_ms + after_ms, fid)));
    }

    fn rtt(&mut self) -> u64 {
        self.rng.gen_range(STEP_MS..60)
    }

    /// Starts a random flow now.
    fn new_flow(&mut self) {
        let roll = self.rng.gen_range(0..100);
        let kind = match roll {
            0..=29 => Kind::Tcp,
            30..=44 => Kind::TcpHot,
            45..=47 => Kind::TcpBlackhole,
            48..=69 => Kind::Udp,
            70..=74 => Kind::UdpClosed,
            75..=79 => Kind::UdpRefused,
            80..=89 => Kind::Ping,
            90..=95 => Kind::Unsolicited,
            96..=97 => Kind::NonSyn,
            _ => Kind::Smtp,
        };
        let h = self.rng.gen_range(0..HOSTS);
        let host = Self::host_ip(h);
        let port = self.port_of(h);
        let server = Ipv4Addr::new(198, 51, 100, self.rng.gen_range(10..74));
        let (proto, remote) = match kind {
            Kind::Tcp | Kind::NonSyn => (
                6,
                SocketAddrV4::new(server, *[80u16, 443].get(self.rng.gen_range(0..2)).unwrap()),
            ),
            Kind::TcpHot => (6, HOT),
            Kind::TcpBlackhole => (6, SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 250), 8080)),
            Kind::Smtp => (6, SocketAddrV4::new(server, 25)),
            Kind::Udp | Kind::UdpClosed | Kind::UdpRefused => (17, SocketAddrV4::new(server, 53)),
            Kind::Ping => (1, SocketAddrV4::new(server, 0)),
            Kind::Unsolicited => (
                17,
                SocketAddrV4::new(
                    Ipv4Addr::new(100, 64, self.rng.gen(), self.rng.gen()),
                    self.rng.gen(),
                ),
            ),
        };
        let private = SocketAddrV4::new(host, port);
        let (hs, hd) = if proto == 1 {
            (0, 0)
        } else {
            (port, remote.port())
        };
        let shard = flow_shard(host, *remote.ip(), hs, hd, proto, SHARDS);
        let paired = self.net.cores[0].allocator_ref().paired_ip(host);
        let exchanges = match kind {
            Kind::TcpHot => self.rng.gen_range(3..8),
            Kind::Tcp => self.rng.gen_range(0..5),
            Kind::Udp | Kind::Ping => self.rng.gen_range(1..4),
            _ => 1,
        };
        let close = match self.rng.gen_range(0..4) {
            0 => Close::HostFin,
            1 => Close::ServerFin,
            2 => Close::HostRst,
            _ => Close::ServerRst,
        };
        let fid = self.flows.len();
        self.flows.push(Flow {
            kind,
            private,
            remote,
            proto,
            shard,
            paired,
            public: None,
            sess: None,
            step: Step::Open,
            exchanges,
            tries: 0,
            close,
            quoted: Vec::new(),
            failed: false,
        });
        self.schedule(fid, 0);
    }

    fn key(&self, f: &Flow) -> DestKey {
        let (dst, dport) = if f.proto == 6 {
            (*f.remote.ip(), f.remote.port())
        } else {
            (*f.remote.ip(), 0)
        };
        (f.shard, f.paired, f.proto, dst, dport)
    }

    /// (certainly alive, possibly alive) sessions holding a port of `key`; prunes dead ones.
    fn bounds(&mut self, key: DestKey) -> (u32, u32) {
        let now = self.now_ms;
        let flows = &self.flows;
        let list = self.by_key.entry(key).or_default();
        list.retain(|&fid| {
            let (s, last) = flows[fid].sess.expect("indexed flow has a session");
            last + s.timeout_ms() + EXPIRY_SLACK_MS > now
        });
        let mut sure = 0;
        for &fid in list.iter() {
            let (s, last) = flows[fid].sess.unwrap();
            if now < last + s.timeout_ms() {
                sure += 1;
            }
        }
        (sure, list.len() as u32)
    }

    /// The frame a flow's current step sends, and the side it arrives on.
    fn frame(&mut self, fid: usize) -> (Side, Vec<u8>) {
        let f = &self.flows[fid];
        let (a, r) = (f.private, f.remote);
        let public = f.public.unwrap_or(r);
        use TcpFlags as F;
        let tcp_i = |fl: TcpFlags| (Side::Inside, tcp_in(a, r, fl));
        let tcp_o = |fl: TcpFlags| (Side::Outside, tcp_out(r, public, fl));
        match (f.kind, f.step) {
            (Kind::Unsolicited, _) => {
                let to = SocketAddrV4::new(PUBLIC_IPS[usize::from(r.port()) % 2], a.port());
                if r.port() % 3 == 0 {
                    (Side::Outside, tcp_out(r, to, F::SYN))
                } else {
                    (Side::Outside, udp_out(r, to))
                }
            }
            (Kind::NonSyn, _) => tcp_i(F::ACK),
            (Kind::Ping, Step::Open) => (
                Side::Inside,
                echo_in(*a.ip(), *r.ip(), a.port(), f.exchanges as u16),
            ),
            (Kind::Ping, Step::PingReply) => (
                Side::Outside,
                echo_reply_out(*r.ip(), *public.ip(), public.port(), f.exchanges as u16),
            ),
            (_, Step::Open) if f.proto == 6 => tcp_i(F::SYN),
            (_, Step::Open) => (Side::Inside, udp_in(a, r)),
            (_, Step::ServerSynAck) => tcp_o(F::SYN | F::ACK),
            (_, Step::HostAck) => tcp_i(F::ACK),
            (_, Step::HostData) => (
                Side::Inside,
                inside(FrameBuilder::tcp(a, r, F::ACK | F::PSH).payload_len(64)),
            ),
            (_, Step::ServerData) => (
                Side::Outside,
                outside(FrameBuilder::tcp(r, public, F::ACK | F::PSH).payload_len(200)),
            ),
            (_, Step::HostFin) => tcp_i(F::FIN | F::ACK),
            (_, Step::ServerFinAck) => tcp_o(F::FIN | F::ACK),
            (_, Step::HostLastAck) => tcp_i(F::ACK),
            (_, Step::ServerFin) => tcp_o(F::FIN | F::ACK),
            (_, Step::HostFinAck) => tcp_i(F::FIN | F::ACK),
            (_, Step::ServerLastAck) => tcp_o(F::ACK),
            (_, Step::HostRst) => tcp_i(F::RST),
            (_, Step::ServerRst) => tcp_o(F::RST | F::ACK),
            (_, Step::UdpReply) | (_, Step::ServerLate) => (Side::Outside, udp_out(r, public)),
            (_, Step::ServerUnreachable) => (
                Side::Outside,
                outside(FrameBuilder::icmp_error(
                    *r.ip(),
                    *public.ip(),
                    Icmpv4ErrorRepr::dest_unreachable(3),
                    &f.quoted,
                )),
            ),
            (_, Step::HostUnreachable) => (
                Side::Inside,
                inside(FrameBuilder::icmp_error(
                    *a.ip(),
                    *r.ip(),
                    Icmpv4ErrorRepr::dest_unreachable(3),
                    &f.quoted,
                )),
            ),
            (k, s) => panic!("no frame for {k:?} at {s:?}"),
        }
    }

    /// Checks the outcome of a flow's step and moves it on.
    fn outcome(&mut self, fid: usize, side: Side, sent: &[u8], v: Verdict, out: &[u8]) {
        let f = self.flows[fid].clone();
        let ctx = || format!("flow {fid} {:?} at {:?}: {v:?} {f:?}", f.kind, f.step);
        match f.kind {
            Kind::Unsolicited => {
                assert_eq!(v, Verdict::Drop(DropReason::Unsolicited), "{}", ctx());
                self.expect.unsolicited += 1;
                return self.finish(fid);
            }
            Kind::NonSyn => {
                assert_eq!(v, Verdict::Drop(DropReason::TcpNonSyn), "{}", ctx());
                self.expect.nonsyn += 1;
                return self.finish(fid);
            }
            Kind::Smtp => {
                assert_eq!(v, Verdict::Drop(DropReason::PolicyDenied), "{}", ctx());
                self.expect.smtp += 1;
                return self.finish(fid);
            }
            _ => {}
        }
        if f.step == Step::Open && f.sess.is_none() {
            return self.opened(fid, v, out);
        }
        // An established flow: every packet is translated, to the same endpoints.
        let Verdict::Forward { side: to, .. } = v else {
            panic!("established flow broken: {}", ctx());
        };
        let p = check(out);
        let public = f.public.unwrap();
        self.expect.established_packets += 1;
        match side {
            Side::Inside => {
                assert_eq!(to, Side::Outside, "{}", ctx());
                assert_eq!(p.src, *public.ip(), "{}", ctx());
                self.expect.in2out += 1;
                if let L4::IcmpError { .. } = p.l4 {
                    let inner = p.inner();
                    assert_eq!(
                        (inner.dst, inner.dport),
                        (*public.ip(), public.port()),
                        "{}",
                        ctx()
                    );
                    assert_eq!(
                        (inner.src, inner.sport),
                        (*f.remote.ip(), f.remote.port()),
                        "{}",
                        ctx()
                    );
                    self.expect.errors_translated += 1;
                } else {
                    assert_eq!(p.src_ep(), public, "{}", ctx());
                    assert_eq!(p.dst, *f.remote.ip(), "{}", ctx());
                    if f.proto != 1 {
                        assert_eq!(p.dst_ep(), f.remote, "{}", ctx());
                    }
                }
            }
            Side::Outside => {
                assert_eq!(to, Side::Inside, "{}", ctx());
                assert_eq!(p.dst, *f.private.ip(), "{}", ctx());
                assert_eq!(p.dst_mac, host_mac(*f.private.ip()), "{}", ctx());
                self.expect.out2in += 1;
                if let L4::IcmpError { .. } = p.l4 {
                    let inner = p.inner();
                    assert_eq!(
                        (inner.src, inner.sport),
                        (*f.private.ip(), f.private.port()),
                        "{}",
                        ctx()
                    );
                    self.expect.errors_translated += 1;
                } else if f.proto == 1 {
                    assert_eq!(p.ports().0, f.private.port(), "echo id {}", ctx());
                    assert_eq!(p.src, *f.remote.ip(), "{}", ctx());
                } else {
                    assert_eq!(p.dst_ep(), f.private, "{}", ctx());
                    assert_eq!(p.src_ep(), f.remote, "{}", ctx());
                }
            }
        }
        // Model the session: refreshed, and its TCP state moved.
        let (state, _) = f.sess.unwrap();
        let state = if f.proto == 6 && !matches!(p.l4, L4::IcmpError { .. }) {
            state.after(sent[14 + 20 + 13], side)
        } else {
            state
        };
        self.flows[fid].sess = Some((state, self.now_ms));
        if matches!(f.step, Step::HostUnreachable | Step::ServerLate) {
            self.flows[fid].quoted = ip_of(out);
        }
        self.advance_flow(fid);
    }

    /// The first packet of a flow: a new session, or a failure the model must allow.
    fn opened(&mut self, fid: usize, v: Verdict, out: &[u8]) {
        let f = self.flows[fid].clone();
        let key = self.key(&f);
        let cap = self.capacity[&(f.shard, f.paired, f.proto)];
        let (sure, maybe) = self.bounds(key);
        match v {
            Verdict::Forward {
                side: Side::Outside,
                ..
            } => {
                assert!(
                    sure < cap,
                    "flow {fid} got a port though {sure} sessions surely hold all {cap} of {key:?}"
                );
                let p = check(out);
                assert_snat(&p, (1024, 1024 + 255));
                assert_eq!(p.src, f.paired, "paired pooling");
                let public = p.src_ep();
                self.expect.created[proto_enum(f.proto) as usize] += 1;
                self.expect.in2out += 1;
                let state = match f.proto {
                    6 => MState::SynSent,
                    17 => MState::Udp,
                    _ => MState::Icmp,
                };
                let fl = &mut self.flows[fid];
                fl.public = Some(public);
                fl.sess = Some((state, self.now_ms));
                fl.quoted = ip_of(out);
                self.by_key.entry(key).or_default().push(fid);
                self.advance_flow(fid);
            }
            Verdict::Drop(DropReason::PortsExhausted) => {
                assert!(
                    maybe >= cap,
                    "flow {fid} refused though only {maybe} of {cap} ports of {key:?} may be held"
                );
                self.expect.failures += 1;
                let fl = &mut self.flows[fid];
                fl.tries += 1;
                fl.failed = true;
                if f.proto == 6 && fl.tries < 3 {
                    let wait = 1000 * u64::from(fl.tries);
                    self.schedule(fid, wait);
                } else {
                    self.finish(fid);
                }
            }
            _ => panic!("flow {fid} {:?} open: unexpected {v:?}", f.kind),
        }
    }

    fn finish(&mut self, fid: usize) {
        self.flows[fid].step = Step::Done;
    }

    /// Picks the next step of a flow after a successful one, and when it happens.
    fn advance_flow(&mut self, fid: usize) {
        let rtt = self.rtt();
        let f = self.flows[fid].clone();
        let gap = |rng: &mut SmallRng, lo: u64, hi: u64| rng.gen_range(lo..hi);
        let (next, wait) = match (f.kind, f.step) {
            (Kind::TcpBlackhole, Step::Open) => {
                // Retransmit the SYN twice (hits the half-open session), then give up.
                self.flows[fid].tries += 1;
                if self.flows[fid].tries < 3 {
                    (Step::Open, 1000 * u64::from(self.flows[fid].tries))
                } else {
                    (Step::Done, 0)
                }
            }
            (_, Step::Open) if f.proto == 6 => (Step::ServerSynAck, rtt),
            (_, Step::ServerSynAck) => (Step::HostAck, rtt),
            (_, Step::HostAck) | (_, Step::ServerData) => {
                if f.exchanges > 0 {
                    self.flows[fid].exchanges -= 1;
                    let idle = if f.kind == Kind::TcpHot {
                        gap(&mut self.rng, 20_000, 60_000)
                    } else {
                        gap(&mut self.rng, 100, 20_000)
                    };
                    (Step::HostData, idle)
                } else {
                    let s = match f.close {
                        Close::HostFin => Step::HostFin,
                        Close::ServerFin => Step::ServerFin,
                        Close::HostRst => Step::HostRst,
                        Close::ServerRst => Step::ServerRst,
                    };
                    (s, gap(&mut self.rng, 100, 5_000))
                }
            }
            (_, Step::HostData) => (Step::ServerData, rtt),
            (_, Step::HostFin) => (Step::ServerFinAck, rtt),
            (_, Step::ServerFinAck) => (Step::HostLastAck, rtt),
            (_, Step::ServerFin) => (Step::HostFinAck, rtt),
            (_, Step::HostFinAck) => (Step::ServerLastAck, rtt),
            (_, Step::HostLastAck)
            | (_, Step::ServerLastAck)
            | (_, Step::HostRst)
            | (_, Step::ServerRst) => (Step::Done, 0),
            (Kind::UdpClosed, Step::Open) => (Step::ServerUnreachable, rtt),
            (_, Step::ServerUnreachable) => (Step::Done, 0),
            (_, Step::Open) if f.proto == 17 => (Step::UdpReply, rtt),
            (Kind::UdpRefused, Step::UdpReply) => {
                (Step::ServerLate, gap(&mut self.rng, 100, 10_000))
            }
            (_, Step::ServerLate) => (Step::HostUnreachable, rtt),
            (_, Step::HostUnreachable) => (Step::Done, 0),
            (_, Step::UdpReply) | (_, Step::PingReply) => {
                if f.exchanges > 1 {
                    self.flows[fid].exchanges -= 1;
                    (Step::Open, gap(&mut self.rng, 500, 15_000))
                } else {
                    (Step::Done, 0)
                }
            }
            (Kind::Ping, Step::Open) => (Step::PingReply, rtt),
            (k, s) => panic!("no step after {k:?} {s:?}"),
        };
        self.flows[fid].step = next;
        if next != Step::Done {
            self.schedule(fid, wait);
        }
    }

    /// Delivers a burst: frames arrive at random shards, handoffs are followed in further
    /// bursts. Returns (verdict, bytes) per frame.
    fn deliver(&mut self, side: Side, frames: Vec<Vec<u8>>) -> Vec<(Verdict, Vec<u8>)> {
        let mut results: Vec<Option<(Verdict, Vec<u8>)>> = vec![None; frames.len()];
        let mut pending: Vec<Vec<(usize, TestBuf)>> = vec![Vec::new(); usize::from(SHARDS)];
        for (i, f) in frames.iter().enumerate() {
            let s = self.rng.gen_range(0..SHARDS);
            pending[usize::from(s)].push((i, TestBuf::new(f)));
        }
        let mut verdicts = Vec::new();
        let now = self.net.now;
        for _round in 0..=SHARDS {
            let mut next: Vec<Vec<(usize, TestBuf)>> = vec![Vec::new(); usize::from(SHARDS)];
            for (s, batch) in pending.into_iter().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                let (idx, mut bufs): (Vec<usize>, Vec<TestBuf>) = batch.into_iter().unzip();
                self.net.cores[s].process_burst(now, side, &mut bufs, &mut verdicts);
                assert_eq!(verdicts.len(), bufs.len());
                for ((i, b), v) in idx.into_iter().zip(bufs).zip(verdicts.iter()) {
                    match *v {
                        Verdict::Handoff { shard, side: hs } => {
                            assert_eq!(hs, side);
                            assert_eq!(b.frame(), &frames[i][..], "handed-off frame changed");
                            self.expect.handoffs += 1;
                            next[usize::from(shard.0)].push((i, b));
                        }
                        v => results[i] = Some((v, b.frame().to_vec())),
                    }
                }
            }
            pending = next;
            if pending.iter().all(|p| p.is_empty()) {
                break;
            }
        }
        assert!(pending.iter().all(|p| p.is_empty()), "handoff loop");
        results
            .into_iter()
            .map(|r| r.expect("every frame has a final verdict"))
            .collect()
    }

    fn run(&mut self) {
        let end_ms = TRAFFIC_SECS * 1000;
        // New flows arrive as a Poisson-like process: about 18 per second.
        let mut next_arrival = 0u64;
        loop {
            let next_due = self.queue.peek().map(|r| r.0 .0);
            if self.now_ms >= end_ms && next_due.is_none() {
                break;
            }
            while next_arrival <= self.now_ms && self.now_ms < end_ms {
                self.new_flow();
                next_arrival += self.rng.gen_range(1..110);
            }
            // Collect what is due now, by side.
            let mut due = Vec::new();
            while let Some(&Reverse((t, fid))) = self.queue.peek() {
                if t > self.now_ms {
                    break;
                }
                self.queue.pop();
                due.push(fid);
            }
            let mut by_side: [(Vec<usize>, Vec<Vec<u8>>); 2] = Default::default();
            for fid in due {
                let (side, frame) = self.frame(fid);
                let k = usize::from(side == Side::Outside);
                by_side[k].0.push(fid);
                by_side[k].1.push(frame);
            }
            for (k, (fids, frames)) in by_side.into_iter().enumerate() {
                if fids.is_empty() {
                    continue;
                }
                let side = if k == 0 { Side::Inside } else { Side::Outside };
                let sent = frames.clone();
                let results = self.deliver(side, frames);
                for ((fid, (v, out)), s) in fids.into_iter().zip(results).zip(sent) {
                    self.outcome(fid, side, &s, v, &out);
                }
            }
            // Next step: soon if anything is due, and never more than 100 ms later.
            let next = self
                .queue
                .peek()
                .map(|r| r.0 .0)
                .unwrap_or(u64::MAX)
                .min(if self.now_ms < end_ms {
                    next_arrival
                } else {
                    u64::MAX
                })
                .max(self.now_ms + STEP_MS)
                .min(self.now_ms + MAX_IDLE_STEP_MS);
            self.now_ms = next;
            self.net.now = self
                .start
                .saturating_add(Duration::from_millis(self.now_ms));
            self.net.tick();
        }
    }

    fn check_counters(&mut self) {
        let c = self.net.counters();
        let e = &self.expect;
        assert_eq!(c.sessions_created, e.created, "sessions created");
        assert_eq!(c.snat_failures, e.failures);
        assert_eq!(c.snat_attempts, e.created.iter().sum::<u64>() + e.failures);
        assert_eq!(c.drops_of(DropReason::PortsExhausted), e.failures);
        assert_eq!(c.drops_of(DropReason::Unsolicited), e.unsolicited);
        assert_eq!(c.drops_of(DropReason::TcpNonSyn), e.nonsyn);
        assert_eq!(c.drops_of(DropReason::PolicyDenied), e.smtp);
        assert_eq!(
            c.total_drops(),
            e.failures + e.unsolicited + e.nonsyn + e.smtp,
            "unexpected drops: {:?}",
            DropReason::ALL
                .iter()
                .filter(|r| c.drops_of(**r) > 0)
                .map(|r| (r.name(), c.drops_of(*r)))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.in2out.packets, e.in2out);
        assert_eq!(c.out2in.packets, e.out2in);
        assert_eq!(c.handoffs_out, e.handoffs);
        assert_eq!(
            (
                c.punted,
                c.hairpin.packets,
                c.no_nat.packets,
                c.icmp_generated
            ),
            (0, 0, 0, 0)
        );
        // Everything ends: sessions expire, ports return.
        self.net.advance(Duration::from_secs(200));
        for _ in 0..50 {
            self.net.tick();
        }
        assert_eq!(self.net.sessions(), 0);
        assert_eq!(self.net.live_leases(), 0);
        let c = self.net.counters();
        assert_eq!(c.sessions_expired, c.sessions_created);
    }
}

fn simulate(seed: u64) {
    let mut sim = Sim::new(seed);
    sim.run();
    sim.check_counters();
    let e = &sim.expect;
    // The mix really happened.
    assert!(sim.flows.len() > 3000, "{} flows", sim.flows.len());
    assert!(e.failures > 20, "exhaustion never happened: {e:?}");
    assert!(e.created.iter().all(|&n| n > 100), "{e:?}");
    assert!(e.errors_translated > 50, "{e:?}");
    assert!(e.unsolicited > 50 && e.nonsyn > 10 && e.smtp > 10, "{e:?}");
    assert!(e.handoffs > 1000, "{e:?}");
    let hosts: std::collections::HashSet<_> = sim.flows.iter().map(|f| *f.private.ip()).collect();
    assert!(hosts.len() > 1500, "{} hosts", hosts.len());
    let failed_hot = sim
        .flows
        .iter()
        .filter(|f| f.kind == Kind::TcpHot && f.failed)
        .count();
    assert!(failed_hot > 0);
    eprintln!("nat_sim seed {seed}: {} flows, {e:?}", sim.flows.len());
}

#[test]
fn simulation_seed_1() {
    simulate(1);
}

#[test]
fn simulation_seed_2() {
    simulate(0x2545_f491_4f6c_dd1d);
}
