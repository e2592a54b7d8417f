//! NAT core property tests: random flows (TCP, UDP, ICMP echo; payloads, TTLs, IPv4 options,
//! UDP without checksum; one or two shards, any arrival shard) translated in2out and back out2in
//! restore the original tuple, and every translated frame's checksums (updated incrementally by
//! the core) equal a full recomputation by the independent checker.

mod nat_common;

use nat_common::*;
use natgw_dataplane::nat::Side;
use natgw_dataplane::wire::{FrameBuilder, TcpFlags};
use proptest::prelude::*;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Inserts IPv4 options (a multiple of 4 bytes) after the 20-byte header, fixing IHL, total
/// length and the header checksum. Transport checksums do not cover options.
fn with_options(frame: &[u8], opts: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let ip = ip_of(frame);
    let mut f = frame[..14].to_vec();
    f.extend_from_slice(&ip[..20]);
    f.extend_from_slice(opts);
    f.extend_from_slice(&ip[20..]);
    f[14] = 0x40 | ((20 + opts.len()) / 4) as u8;
    let total = (ip.len() + opts.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut f, 14);
    f
}

#[derive(Clone, Debug)]
struct Flow {
    proto: u8,
    host: Ipv4Addr,
    sport: u16,
    remote: Ipv4Addr,
    dport: u16,
    payload: usize,
    ttl: u8,
    options: usize,
    udp_no_checksum: bool,
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        prop_oneof![Just(6u8), Just(17u8), Just(1u8)],
        (1u32..0x00ff_fffe).prop_map(|h| Ipv4Addr::from(0x0a00_0000 | h)),
        1u16..,
        (0u32..0x0001_ffff).prop_map(|h| Ipv4Addr::from(0xc612_0000 | h)),
        1u16..,
        0usize..300,
        2u8..,
        prop_oneof![Just(0usize), Just(4), Just(8), Just(40)],
        any::<bool>(),
    )
        .prop_map(
            |(proto, host, sport, remote, dport, payload, ttl, options, udp_no_checksum)| Flow {
                proto,
                host,
                sport,
                remote,
                dport: if proto == 6 && dport == 25 { 26 } else { dport },
                payload,
                ttl,
                options,
                udp_no_checksum,
            },
        )
        .prop_filter("not the appliance's inside address", |f| {
            f.host != INSIDE_IP
        })
}

fn opts(n: usize) -> Vec<u8> {
    // NOPs, then End of Options list.
    let mut o = vec![1u8; n];
    if let Some(last) = o.last_mut() {
        *last = 0;
    }
    o
}

fn request(f: &Flow) -> Vec<u8> {
    let b = match f.proto {
        6 => FrameBuilder::tcp(ep(f.host, f.sport), ep(f.remote, f.dport), TcpFlags::SYN),
        17 => FrameBuilder::udp(ep(f.host, f.sport), ep(f.remote, f.dport)),
        _ => FrameBuilder::icmp_echo_request(f.host, f.remote, f.sport, 1),
    };
    let mut frame = inside(b.payload_len(f.payload).ttl(f.ttl).ident(f.sport));
    if f.proto == 17 && f.udp_no_checksum {
        frame[14 + 26..14 + 28].fill(0);
    }
    with_options(&frame, &opts(f.options))
}

fn reply(f: &Flow, public: SocketAddrV4) -> Vec<u8> {
    let b = match f.proto {
        6 => FrameBuilder::tcp(ep(f.remote, f.dport), public, TcpFlags::SYN | TcpFlags::ACK),
        17 => FrameBuilder::udp(ep(f.remote, f.dport), public),
        _ => FrameBuilder::icmp_echo_reply(f.remote, *public.ip(), public.port(), 1),
    };
    let frame = outside(b.payload_len(f.payload / 2).ttl(f.ttl));
    with_options(&frame, &opts(f.options))
}

/// The transport payload of a checked frame's datagram (after the transport header).
fn l4_payload(frame: &[u8], proto: u8) -> Vec<u8> {
    let ip = ip_of(frame);
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let th = match proto {
        6 => usize::from(ip[hl + 12] >> 4) * 4,
        _ => 8,
    };
    ip[hl + th..].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn in2out_then_out2in_restores_the_original(
        flows in proptest::collection::vec(flow(), 1..24),
        two_shards in any::<bool>(),
        arrivals in proptest::collection::vec(0u16..2, 24),
    ) {
        let shards = if two_shards { 2 } else { 1 };
        let mut p = params(shards);
        p.max_sessions = 64;
        let mut net = Net::new(p, alloc_config());
        let mut seen = HashSet::new();
        let mut public_of = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            // The same private 5-tuple twice is the same flow: skip duplicates.
            let key = (f.proto, f.host, f.sport, f.remote, if f.proto == 1 { 0 } else { f.dport });
            if !seen.insert(key) {
                public_of.push(None);
                continue;
            }
            let req = request(f);
            let d = net.send_from(arrivals[i] % shards, Side::Inside, &req);
            let out = d.forwarded(Side::Outside);
            assert_snat(&out, PORT_RANGE);
            prop_assert_eq!(out.dst, f.remote);
            prop_assert_eq!(out.ttl, f.ttl - 1);
            prop_assert_eq!(out.ident, f.sport, "IP id unchanged");
            if f.proto != 1 {
                prop_assert_eq!(out.ports().1, f.dport);
            }
            if f.proto == 17 && f.udp_no_checksum {
                let no_sum = matches!(out.l4, L4::Udp { checksum: 0, .. });
                prop_assert!(no_sum, "UDP without checksum got one");
            }
            prop_assert_eq!(l4_payload(&d.frame, f.proto), l4_payload(&req, f.proto));
            prop_assert_eq!(d.frame.len(), req.len());
            public_of.push(Some(out.src_ep()));
        }
        // Public endpoints are distinct per (protocol, destination).
        let mut uniq = HashSet::new();
        for (f, p) in flows.iter().zip(&public_of) {
            if let Some(p) = p {
                let dest = if f.proto == 6 { (f.remote, f.dport) } else { (f.remote, 0) };
                prop_assert!(uniq.insert((f.proto, *p, dest)), "public endpoint reused for one destination");
            }
        }
        // Replies come back to the original private endpoint.
        for (i, (f, p)) in flows.iter().zip(&public_of).enumerate() {
            let Some(public) = p else { continue };
            let rep = reply(f, *public);
            let d = net.send_from(arrivals[(i + 7) % arrivals.len()] % shards, Side::Outside, &rep);
            let back = d.forwarded(Side::Inside);
            prop_assert_eq!(back.dst, f.host);
            prop_assert_eq!(back.src, f.remote);
            prop_assert_eq!(back.dst_mac, host_mac(f.host));
            match back.l4 {
                L4::Echo { kind, ident, .. } => prop_assert_eq!((kind, ident), (0, f.sport)),
                _ => prop_assert_eq!(back.ports(), (f.dport, f.sport)),
            }
            prop_assert_eq!(l4_payload(&d.frame, f.proto), l4_payload(&rep, f.proto));
        }
        prop_assert_eq!(net.counters().total_drops(), 0);
    }

    #[test]
    fn icmp_errors_about_random_flows_are_translated_back(
        f in flow(),
        error_kind in prop_oneof![Just((3u8, 3u8)), Just((11, 0)), Just((3, 4)), Just((12, 0))],
        whole in any::<bool>(),
    ) {
        let mut net = Net::standard();
        let d = net.send(Side::Inside, &request(&f));
        let sent = ip_of(&d.frame);
        let out = d.forwarded(Side::Outside);
        let repr = natgw_dataplane::wire::Icmpv4ErrorRepr {
            msg_type: natgw_dataplane::wire::Icmpv4Type(error_kind.0),
            code: error_kind.1,
            rest_of_header: 0,
        };
        let quote = if whole {
            natgw_dataplane::wire::QuoteLen::UpTo576
        } else {
            natgw_dataplane::wire::QuoteLen::HeaderPlus8
        };
        let err = outside(FrameBuilder::icmp_error(ROUTER, out.src, repr, &sent).quote(quote));
        let back = net.send(Side::Outside, &err).forwarded(Side::Inside);
        prop_assert_eq!((back.src, back.dst), (ROUTER, f.host));
        let inner = back.inner();
        prop_assert_eq!((inner.src, inner.dst), (f.host, f.remote));
        prop_assert_eq!(inner.sport, f.sport);
        if f.proto != 1 {
            prop_assert_eq!(inner.dport, f.dport);
        }
        // With the whole datagram quoted, its transport checksum was verified (UDP without a
        // checksum has none to verify).
        let has_sum = !(f.proto == 17 && f.udp_no_checksum);
        if whole && has_sum && sent.len() <= 576 - 28 {
            prop_assert!(inner.l4_checksum_verified);
        }
    }
}
