//! Staged burst processing: hide the session table's cache misses behind each other (fast path).
//!
//! At a million sessions every lookup misses the cache twice (the index bucket, then the slab entry),
//! and a frame processed start to finish pays those misses one after the other. [`NatCore::process_burst`]
//! therefore walks a burst in three stages, as VPP's nodes do with their prefetch loops:
//! 1. read just enough of each frame to build its lookup key ([`lookup_hint`]), hash it and prefetch the
//!    key's index bucket;
//! 2. read each (now arriving) bucket and prefetch the slab entry its tag names: the frame's *candidate*
//!    session;
//! 3. run the ordinary per-frame path ([`NatCore::process`]) with the candidate: once the frame is
//!    parsed and checked, its real lookup key is compared with the candidate's (now cached) entry, and
//!    only a mismatch searches the index.
//!
//! Stages 1 and 2 only read and prefetch: they decide nothing and change nothing, and a candidate is used
//! only if its live entry carries exactly the key the full parse produced (keys are unique among live
//! sessions). So a frame whose guess is wrong or missing (ARP, fragments, ICMP errors, malformed input,
//! hairpinning, new flows) is handled exactly as [`NatCore::process`] handles it, only without the head
//! start.

use super::flow::FlowKey;
use super::parse::{icmp_type, IP_ICMP, IP_TCP, IP_UDP};
use super::session::SessionId;
use super::{FrameBuf, NatCore, Side, Verdict};
use crate::wire::ETHERNET_HEADER_LEN;
use natgw_allocator::Timestamp;
use natgw_config::Protocol;
use std::net::Ipv4Addr;

/// Most frames staged together (the prefetches of one stage must still be in the cache at the next).
pub const STAGE: usize = 32;

/// The session lookup key a frame received on `side` would use, read without any validation beyond
/// bounds: a guess for prefetching only, never a decision. `None` for anything but unfragmented (or
/// first-fragment) IPv4 TCP, UDP and ICMP echo of the direction's kind.
#[inline]
pub fn lookup_hint(frame: &[u8], side: Side) -> Option<FlowKey> {
    let ip = frame.get(ETHERNET_HEADER_LEN..)?;
    if frame[12..14] != [0x08, 0x00] || ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None; // a later fragment: no transport header
    }
    let l4 = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    if l4.len() < 8 {
        return None;
    }
    let word = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let (proto, sport, dport) = match (ip[9], side) {
        (IP_TCP, _) => (Protocol::Tcp, word(0), word(2)),
        (IP_UDP, _) => (Protocol::Udp, word(0), word(2)),
        // The echo identifier plays the local port; the remote port is 0.
        (IP_ICMP, Side::Inside) if l4[0] == icmp_type::ECHO_REQUEST => (Protocol::Icmp, word(4), 0),
        (IP_ICMP, Side::Outside) if l4[0] == icmp_type::ECHO_REPLY => (Protocol::Icmp, 0, word(4)),
        _ => return None,
    };
    Some(match side {
        Side::Inside => FlowKey {
            proto,
            local_ip: src,
            local_port: sport,
            remote_ip: dst,
            remote_port: dport,
        },
        Side::Outside => FlowKey {
            proto,
            local_ip: dst,
            local_port: dport,
            remote_ip: src,
            remote_port: sport,
        },
    })
}

impl NatCore {
    /// Process a burst of frames received on `side`; `verdicts` is cleared and gets one verdict per frame.
    /// Forwarded frames have their length set. Same result as [`NatCore::process`] on each frame in turn;
    /// the session lookups of the burst are prefetched in stages first (see the module documentation).
    pub fn process_burst<B: FrameBuf>(
        &mut self,
        now: Timestamp,
        side: Side,
        frames: &mut [B],
        verdicts: &mut Vec<Verdict>,
    ) {
        verdicts.clear();
        for chunk in frames.chunks_mut(STAGE) {
            let mut hashes = [None::<u64>; STAGE];
            // Stage 1: keys, hashes, index buckets.
            for (f, h) in chunk.iter_mut().zip(hashes.iter_mut()) {
                let len = f.frame_len();
                let frame = &f.buffer_mut()[..];
                if let Some(key) = lookup_hint(&frame[..len.min(frame.len())], side) {
                    let hash = self.sessions.hash(&key);
                    match side {
                        Side::Inside => self.sessions.prefetch_in2out(hash),
                        Side::Outside => self.sessions.prefetch_out2in(hash),
                    }
                    *h = Some(hash);
                }
            }
            // Stage 2: the slab entries the buckets name: the candidates stage 3 checks first.
            let mut hints = [None::<SessionId>; STAGE];
            for (h, hint) in hashes.iter().zip(hints.iter_mut()).take(chunk.len()) {
                if let Some(hash) = *h {
                    *hint = match side {
                        Side::Inside => self.sessions.prefetch_session_in2out(hash),
                        Side::Outside => self.sessions.prefetch_session_out2in(hash),
                    };
                }
            }
            // Stage 3: the ordinary path, now hitting the cache.
            for (f, hint) in chunk.iter_mut().zip(hints) {
                let len = f.frame_len();
                let v = self.process_hinted(now, side, f.buffer_mut(), len, hint);
                if let Verdict::Forward { len, .. } = v {
                    f.set_frame_len(usize::from(len));
                }
                verdicts.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::frag::FragSteer;
    use crate::nat::parse;
    use crate::nat::policy::Policy;
    use crate::nat::{CoreParams, CoreTimeouts};
    use crate::wire::{FrameBuilder, MacAddr, TcpFlags};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::net::SocketAddrV4;

    fn eth_ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[10, 0, 0, 2, 198, 51, 100, 7]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn hint_is_the_lookup_key_of_each_direction() {
        let udp = eth_ipv4(IP_UDP, 0, &[0x04, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
        let k = lookup_hint(&udp, Side::Inside).unwrap();
        assert_eq!(
            k,
            FlowKey {
                proto: Protocol::Udp,
                local_ip: Ipv4Addr::new(10, 0, 0, 2),
                local_port: 1024,
                remote_ip: Ipv4Addr::new(198, 51, 100, 7),
                remote_port: 53,
            }
        );
        let k = lookup_hint(&udp, Side::Outside).unwrap();
        assert_eq!(
            (k.local_ip, k.local_port, k.remote_ip, k.remote_port),
            (
                Ipv4Addr::new(198, 51, 100, 7),
                53,
                Ipv4Addr::new(10, 0, 0, 2),
                1024
            )
        );
        let echo = eth_ipv4(IP_ICMP, 0, &[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let k = lookup_hint(&echo, Side::Inside).unwrap();
        assert_eq!(
            (k.proto, k.local_port, k.remote_port),
            (Protocol::Icmp, 0x1234, 0)
        );
        assert_eq!(lookup_hint(&echo, Side::Outside), None);
        let reply = eth_ipv4(IP_ICMP, 0, &[0, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let k = lookup_hint(&reply, Side::Outside).unwrap();
        assert_eq!((k.local_port, k.remote_port), (0x1234, 0));
        // The real parser agrees, on a frame the crate's own builder made.
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 40_000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 80), 443);
        let tcp = FrameBuilder::tcp(src, dst, TcpFlags::SYN).build();
        let p = parse::ipv4(&tcp).unwrap();
        let parse::L4::Tcp { sport, dport, .. } = p.l4 else {
            panic!("not tcp")
        };
        let k = lookup_hint(&tcp, Side::Inside).unwrap();
        assert_eq!(
            (
                k.proto,
                k.local_ip,
                k.local_port,
                k.remote_ip,
                k.remote_port
            ),
            (Protocol::Tcp, p.src, sport, p.dst, dport)
        );
    }

    /// A frame buffer for the tests.
    struct Buf(Vec<u8>, usize);

    impl FrameBuf for Buf {
        fn buffer_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
        fn frame_len(&self) -> usize {
            self.1
        }
        fn set_frame_len(&mut self, len: usize) {
            self.1 = len;
        }
    }

    const IN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
    const OUT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
    const PUBLIC: [Ipv4Addr; 2] = [
        Ipv4Addr::new(203, 0, 113, 10),
        Ipv4Addr::new(203, 0, 113, 11),
    ];

    fn core() -> NatCore {
        let cfg = natgw_allocator::AllocatorConfig {
            public_ips: PUBLIC.to_vec(),
            port_range: (1024, 65535),
            seed: 7,
            ..natgw_allocator::AllocatorConfig::default()
        };
        let (inv, mut allocs) =
            natgw_allocator::Inventory::new(cfg, 1, natgw_allocator::Ownership::Blocks).unwrap();
        let params = CoreParams {
            shards: 1,
            inside_ip: Ipv4Addr::new(10, 0, 0, 1),
            inside_mac: IN_MAC,
            outside_ip: Ipv4Addr::new(203, 0, 113, 1),
            outside_mac: OUT_MAC,
            outside_gateway: Ipv4Addr::new(203, 0, 113, 254),
            public_ips: PUBLIC.to_vec(),
            statics: Vec::new(),
            policy: Policy {
                deny: Vec::new(),
                no_nat: Vec::new(),
                private: vec!["10.0.0.0/8".parse().unwrap()],
            },
            timeouts: CoreTimeouts::default(),
            icmp_prohibited: false,
            max_sessions: 512,
            max_neighbors: 64,
        };
        let mut c = NatCore::new(
            params,
            allocs.remove(0),
            inv.owners(),
            FragSteer::default(),
            11,
            Timestamp::from_secs(100),
        );
        c.set_gateway_mac(Some(MacAddr([2, 0, 0, 0, 2, 0xfe])));
        c
    }

    /// `process_burst` (staged, with candidates) and `process` frame by frame give the same verdicts,
    /// bytes and counters on a random mix: new and established flows both ways, hairpinning, replies
    /// to no flow, frames cut short, bit flips, ARP, frames for other MACs; and the table fills up.
    #[test]
    fn staged_burst_equals_frame_by_frame() {
        let (mut one, mut staged) = (core(), core());
        let mut rng = SmallRng::seed_from_u64(5);
        // Translations seen so far: (private, public, remote) endpoints and protocol (true = TCP).
        let mut flows: Vec<(SocketAddrV4, SocketAddrV4, SocketAddrV4, bool)> = Vec::new();
        let mut now = Timestamp::from_secs(100);
        for round in 0..300 {
            let side = if round % 2 == 0 {
                Side::Inside
            } else {
                Side::Outside
            };
            let n = rng.gen_range(1..=40);
            let mut frames = Vec::with_capacity(n);
            for _ in 0..n {
                let remote =
                    SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, rng.gen_range(1..4)), 53);
                let known = (!flows.is_empty() && rng.gen_bool(0.7))
                    .then(|| flows[rng.gen_range(0..flows.len())]);
                let mut f = match (side, known) {
                    (Side::Inside, Some((private, public, remote, tcp))) => {
                        let dst = if rng.gen_bool(0.1) { public } else { remote };
                        if tcp {
                            FrameBuilder::tcp(private, dst, TcpFlags::ACK)
                        } else {
                            FrameBuilder::udp(private, dst)
                        }
                        .macs(MacAddr([0x0a, 0, 0, 0, 0, 2]), IN_MAC)
                        .build()
                    }
                    (Side::Inside, None) => {
                        let host = Ipv4Addr::new(10, 0, rng.gen_range(0..2), rng.gen_range(2..20));
                        let private = SocketAddrV4::new(host, rng.gen_range(1024..1100));
                        if rng.gen_bool(0.3) {
                            FrameBuilder::tcp(private, remote, TcpFlags::SYN)
                        } else if rng.gen_bool(0.1) {
                            FrameBuilder::icmp_echo_request(host, *remote.ip(), private.port(), 1)
                        } else {
                            FrameBuilder::udp(private, remote)
                        }
                        .macs(MacAddr([0x0a, 0, 0, 0, 0, 2]), IN_MAC)
                        .build()
                    }
                    (Side::Outside, Some((_, public, remote, tcp))) => {
                        let port = if rng.gen_bool(0.1) { 1 } else { public.port() };
                        let dst = SocketAddrV4::new(*public.ip(), port);
                        if tcp {
                            FrameBuilder::tcp(remote, dst, TcpFlags::ACK)
                        } else {
                            FrameBuilder::udp(remote, dst)
                        }
                        .macs(MacAddr([2, 0, 0, 0, 2, 0xfe]), OUT_MAC)
                        .build()
                    }
                    (Side::Outside, None) => {
                        FrameBuilder::udp(remote, SocketAddrV4::new(PUBLIC[0], 2000))
                            .macs(MacAddr([2, 0, 0, 0, 2, 0xfe]), OUT_MAC)
                            .build()
                    }
                };
                match rng.gen_range(0..20) {
                    0 => f.truncate(rng.gen_range(0..f.len())),
                    1 => {
                        let i = rng.gen_range(0..f.len());
                        f[i] ^= 1 << rng.gen_range(0..8);
                    }
                    2 => f[12..14].copy_from_slice(&[0x08, 0x06]),
                    3 => f[0] ^= 0x40,
                    _ => {}
                }
                frames.push(f);
            }
            let mut bufs: Vec<Buf> = frames
                .iter()
                .map(|f| {
                    let mut b = vec![0u8; 256];
                    b[..f.len()].copy_from_slice(f);
                    Buf(b, f.len())
                })
                .collect();
            let mut verdicts = Vec::new();
            staged.process_burst(now, side, &mut bufs, &mut verdicts);
            for (i, f) in frames.iter().enumerate() {
                let mut b = vec![0u8; 256];
                b[..f.len()].copy_from_slice(f);
                let v = one.process(now, side, &mut b, f.len());
                assert_eq!(v, verdicts[i], "round {round} frame {i}");
                let len = match v {
                    Verdict::Forward { len, .. } => usize::from(len),
                    _ => f.len(),
                };
                assert_eq!(
                    &b[..len],
                    &bufs[i].0[..bufs[i].1],
                    "round {round} frame {i}"
                );
                // Learn new translations from what went out.
                if let (
                    Side::Inside,
                    Verdict::Forward {
                        side: Side::Outside,
                        ..
                    },
                ) = (side, v)
                {
                    let (q, p) = (parse::ipv4(f).unwrap(), parse::ipv4(&b[..len]).unwrap());
                    let tcp = q.proto == IP_TCP;
                    if let (
                        parse::L4::Udp { sport, dport } | parse::L4::Tcp { sport, dport, .. },
                        parse::L4::Udp { sport: public, .. } | parse::L4::Tcp { sport: public, .. },
                    ) = (q.l4, p.l4)
                    {
                        let flow = (
                            SocketAddrV4::new(q.src, sport),
                            SocketAddrV4::new(p.src, public),
                            SocketAddrV4::new(q.dst, dport),
                            tcp,
                        );
                        if !flows.contains(&flow) {
                            flows.push(flow);
                        }
                    }
                }
            }
            assert_eq!(one.counters(), staged.counters());
            now = Timestamp::from_nanos(now.as_nanos() + 50_000_000);
            one.handle_timeout(now);
            staged.handle_timeout(now);
        }
        assert_eq!(one.session_count(), staged.session_count());
        assert!(
            staged.counters().out2in.packets > 1000,
            "{:?}",
            staged.counters()
        );
        assert!(
            staged.counters().hairpin.packets > 10,
            "{:?}",
            staged.counters()
        );
        assert_eq!(
            staged.session_count(),
            512,
            "the table should have filled up"
        );
    }

    #[test]
    fn no_hint_for_what_has_no_session_key() {
        let l4 = [0x04, 0x00, 0x00, 0x35, 0, 8, 0, 0];
        assert!(lookup_hint(&eth_ipv4(IP_UDP, 0x2000, &l4), Side::Inside).is_some()); // first fragment
        assert_eq!(
            lookup_hint(&eth_ipv4(IP_UDP, 0x0010, &l4), Side::Inside),
            None
        ); // later fragment
        assert_eq!(lookup_hint(&eth_ipv4(47, 0, &l4), Side::Inside), None);
        let err = eth_ipv4(IP_ICMP, 0, &[3, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lookup_hint(&err, Side::Outside), None);
        let udp = eth_ipv4(IP_UDP, 0, &l4);
        for cut in 0..udp.len() {
            assert_eq!(lookup_hint(&udp[..cut], Side::Inside), None, "cut at {cut}");
        }
        let mut arp = udp.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(lookup_hint(&arp, Side::Inside), None);
        let mut bad_ihl = udp;
        bad_ihl[14] = 0x4f; // 60-byte header: past the end
        assert_eq!(lookup_hint(&bad_ihl, Side::Inside), None);
    }
}
