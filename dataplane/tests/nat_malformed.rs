//! NAT core: malformed and foreign input. Each kind of bad frame is dropped under its named
//! `DropReason` on either side; and (proptest) arbitrary bytes, and arbitrary mutations of valid
//! frames of live flows, never make `process` panic, and every frame is accounted exactly once
//! (a drop under its reason, a punt, a handoff, or a forward).

mod nat_common;

use nat_common::*;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::{Punt, Side, Verdict};
use natgw_dataplane::wire::{
    builder::arp_frame, ArpOperation, ArpRepr, FrameBuilder, Icmpv4ErrorRepr, MacAddr, QuoteLen,
    TcpFlags,
};
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn both_sides() -> [(Side, MacAddr, Ipv4Addr, Ipv4Addr); 2] {
    [
        (Side::Inside, INSIDE_MAC, HOST_A, REMOTE),
        (Side::Outside, OUTSIDE_MAC, REMOTE, PUBLIC_IPS[0]),
    ]
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, our_mac: MacAddr) -> Vec<u8> {
    FrameBuilder::udp(ep(src, 1000), ep(dst, 2000))
        .payload_len(10)
        .macs(host_mac(src), our_mac)
        .build()
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, our_mac: MacAddr) -> Vec<u8> {
    FrameBuilder::tcp(ep(src, 1000), ep(dst, 2000), TcpFlags::SYN)
        .macs(host_mac(src), our_mac)
        .build()
}

fn expect(net: &mut Net, side: Side, frame: &[u8], reason: DropReason) {
    let before = net.counters();
    let d = net.send(side, frame);
    assert_eq!(d.verdict, Verdict::Drop(reason), "{side:?}: {frame:02x?}");
    assert_accounted(&before, &net.counters(), d.verdict);
}

#[test]
fn each_malformation_has_its_reason_on_both_sides() {
    let mut net = Net::standard();
    for (side, mac, src, dst) in both_sides() {
        let good = udp(src, dst, mac);
        // Truncated Ethernet.
        expect(&mut net, side, &good[..10], DropReason::EthernetTruncated);
        expect(&mut net, side, &[], DropReason::EthernetTruncated);
        // Truncated IPv4 header.
        expect(&mut net, side, &good[..14 + 12], DropReason::Ipv4Malformed);
        // Total length beyond the frame.
        expect(
            &mut net,
            side,
            &good[..good.len() - 2],
            DropReason::Ipv4Malformed,
        );
        // Bad IHL (4), checksum fixed so only the IHL is wrong.
        let mut f = good.clone();
        f[14] = 0x44;
        fix_ip_checksum(&mut f, 14);
        expect(&mut net, side, &f, DropReason::Ipv4Malformed);
        // IHL beyond the total length.
        let mut f = good.clone();
        f[14] = 0x4f;
        expect(&mut net, side, &f, DropReason::Ipv4Malformed);
        // Version 6 in an IPv4 ethertype.
        let mut f = good.clone();
        f[14] = 0x65;
        fix_ip_checksum(&mut f, 14);
        expect(&mut net, side, &f, DropReason::Ipv4Malformed);
        // Bad IPv4 checksum.
        let mut f = good.clone();
        f[24] ^= 0x01;
        expect(&mut net, side, &f, DropReason::Ipv4BadChecksum);
        // Truncated TCP header: the datagram ends 10 bytes into it.
        let t = tcp(src, dst, mac);
        let mut f = t[..14 + 20 + 10].to_vec();
        f[16..18].copy_from_slice(&30u16.to_be_bytes());
        fix_ip_checksum(&mut f, 14);
        expect(&mut net, side, &f, DropReason::L4Truncated);
        // TCP data offset below 5.
        let mut f = t.clone();
        f[14 + 20 + 12] = 0x40;
        expect(&mut net, side, &f, DropReason::L4Truncated);
        // Truncated UDP and ICMP headers.
        let mut f = good[..14 + 20 + 4].to_vec();
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        fix_ip_checksum(&mut f, 14);
        expect(&mut net, side, &f, DropReason::L4Truncated);
        let mut f = f.clone();
        f[14 + 9] = 1;
        fix_ip_checksum(&mut f, 14);
        expect(&mut net, side, &f, DropReason::L4Truncated);
        // UDP length field beyond the datagram.
        let mut f = good.clone();
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&200u16.to_be_bytes());
        expect(&mut net, side, &f, DropReason::L4Truncated);
        // VLAN tagged.
        let f = FrameBuilder::udp(ep(src, 1), ep(dst, 2))
            .macs(host_mac(src), mac)
            .vlan(7)
            .build();
        expect(&mut net, side, &f, DropReason::VlanTagged);
        // IPv6.
        let mut f = good.clone();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        expect(&mut net, side, &f, DropReason::NotIpv4);
        // Another host's MAC (promiscuous capture), and a broadcast IPv4 frame.
        let f = FrameBuilder::udp(ep(src, 1), ep(dst, 2))
            .macs(host_mac(src), MacAddr([2, 9, 9, 9, 9, 9]))
            .build();
        expect(&mut net, side, &f, DropReason::NotForUs);
        let f = FrameBuilder::udp(ep(src, 1), ep(dst, 2))
            .macs(host_mac(src), MacAddr::BROADCAST)
            .build();
        expect(&mut net, side, &f, DropReason::NotForUs);
    }
    // Nothing was created by any of it.
    assert_eq!(net.sessions(), 0);
    assert_eq!(net.counters().snat_attempts, 0);
}

#[test]
fn arp_goes_to_the_slow_path_from_either_side() {
    let mut net = Net::standard();
    let repr = ArpRepr {
        op: ArpOperation::REQUEST,
        sender_mac: host_mac(HOST_A),
        sender_ip: HOST_A,
        target_mac: MacAddr([0; 6]),
        target_ip: INSIDE_IP,
    };
    let f = arp_frame(host_mac(HOST_A), MacAddr::BROADCAST, &repr);
    for side in [Side::Inside, Side::Outside] {
        let before = net.counters();
        let d = net.send(side, &f);
        assert_eq!(d.verdict, Verdict::Punt(Punt::Arp));
        assert_eq!(d.frame, f, "punted frames are untouched");
        assert_accounted(&before, &net.counters(), d.verdict);
    }
}

/// A two-shard network with live TCP, UDP and ICMP flows, and a corpus of valid frames that
/// exercise every path: both directions of each flow, ICMP errors both ways, fragments, static
/// 1:1, no-NAT, hairpin, TTL 1, ARP.
fn world() -> (Net, Vec<(Side, Vec<u8>)>) {
    let mut p = params(2);
    p.max_sessions = 256;
    let mut net = Net::new(p, alloc_config());
    for c in &mut net.cores {
        c.learn_neighbor(STATIC_PRIVATE, host_mac(STATIC_PRIVATE));
    }
    let mut corpus = Vec::new();
    let a = ep(HOST_A, 40000);
    let r = ep(REMOTE, 443);
    let syn = tcp_in(a, r, TcpFlags::SYN);
    let t = net.send(Side::Inside, &syn);
    let tpub = t.forwarded(Side::Outside).src_ep();
    corpus.push((Side::Inside, syn));
    corpus.push((
        Side::Outside,
        tcp_out(r, tpub, TcpFlags::SYN | TcpFlags::ACK),
    ));
    corpus.push((Side::Inside, tcp_in(a, r, TcpFlags::FIN | TcpFlags::ACK)));
    let u = ep(HOST_A, 5000);
    let dns = ep(REMOTE, 53);
    let q = udp_in(u, dns);
    let ud = net.send(Side::Inside, &q);
    let usent = ip_of(&ud.frame);
    let upub = ud.forwarded(Side::Outside).src_ep();
    corpus.push((Side::Inside, q));
    let reply = udp_out(dns, upub);
    let delivered = ip_of(&net.send(Side::Outside, &reply).frame);
    corpus.push((Side::Outside, reply));
    let ping = echo_in(HOST_A, REMOTE, 77, 1);
    let e = net.send(Side::Inside, &ping).forwarded(Side::Outside);
    corpus.push((Side::Inside, ping));
    corpus.push((Side::Outside, echo_reply_out(REMOTE, e.src, e.ports().0, 1)));
    corpus.push((
        Side::Outside,
        outside(
            FrameBuilder::icmp_error(
                ROUTER,
                *upub.ip(),
                Icmpv4ErrorRepr::dest_unreachable(3),
                &usent,
            )
            .quote(QuoteLen::UpTo576),
        ),
    ));
    corpus.push((
        Side::Inside,
        inside(FrameBuilder::icmp_error(
            HOST_A,
            REMOTE,
            Icmpv4ErrorRepr::dest_unreachable(3),
            &delivered,
        )),
    ));
    let big = inside(
        FrameBuilder::tcp(a, r, TcpFlags::ACK)
            .payload_len(80)
            .ident(4),
    );
    for f in fragment(&big, &[40, 80]) {
        corpus.push((Side::Inside, f));
    }
    corpus.push((Side::Inside, udp_in(ep(STATIC_PRIVATE, 1), dns)));
    corpus.push((Side::Outside, udp_out(dns, ep(STATIC_PUBLIC, 1))));
    corpus.push((Side::Inside, udp_in(u, ep(NO_NAT_HOST, 53))));
    corpus.push((Side::Outside, udp_out(ep(NO_NAT_HOST, 53), u)));
    corpus.push((Side::Inside, udp_in(u, ep(STATIC_PUBLIC, 7))));
    corpus.push((Side::Inside, inside(FrameBuilder::udp(u, dns).ttl(1))));
    corpus.push((Side::Outside, outside(FrameBuilder::udp(dns, upub).ttl(1))));
    let repr = ArpRepr {
        op: ArpOperation::REPLY,
        sender_mac: GW_MAC,
        sender_ip: GATEWAY_IP,
        target_mac: OUTSIDE_MAC,
        target_ip: OUTSIDE_IP,
    };
    corpus.push((Side::Outside, arp_frame(GW_MAC, OUTSIDE_MAC, &repr)));
    (net, corpus)
}

/// Feeds one frame to one shard with a buffer of `room` bytes and checks its accounting.
fn feed(net: &mut Net, shard: u16, side: Side, frame: &[u8], room: usize) -> Verdict {
    let mut buf = frame.to_vec();
    buf.resize(room.max(frame.len()), 0);
    let core = &mut net.cores[usize::from(shard)];
    let before = core.counters().clone();
    let v = core.process(net.now, side, &mut buf, frame.len());
    assert_accounted(&before, core.counters(), v);
    if let Verdict::Forward { len, .. } = v {
        assert!(usize::from(len) <= buf.len());
    }
    if let Verdict::Handoff { shard: s, .. } = v {
        assert!(s.0 < 2 && s.0 != shard);
    }
    v
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Set(i, b) => {
            if !frame.is_empty() {
                let at = i % frame.len();
                frame[at] = *b;
            }
        }
        Mutation::Truncate(n) => {
            let keep = n % (frame.len() + 1);
            frame.truncate(keep);
        }
        Mutation::Extend(bytes) => frame.extend_from_slice(bytes),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_accounted(
        frames in proptest::collection::vec(
            (any::<bool>(), 0u16..2, proptest::collection::vec(any::<u8>(), 0..200)),
            1..16,
        ),
        ours in any::<bool>(),
    ) {
        let (mut net, _) = world();
        for (inside_side, shard, mut f) in frames {
            let side = if inside_side { Side::Inside } else { Side::Outside };
            // Half the time, make the frame look addressed to us as IPv4, to get past the MAC.
            if ours && f.len() >= 14 {
                let mac = if inside_side { INSIDE_MAC } else { OUTSIDE_MAC };
                f[..6].copy_from_slice(&mac.0);
                f[12] = 0x08;
                f[13] = 0x00;
                if f.len() >= 34 {
                    f[14] = 0x45;
                    fix_ip_checksum(&mut f, 14);
                }
            }
            feed(&mut net, shard, side, &f, BUF_LEN);
            feed(&mut net, shard, side, &f, f.len());
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic_and_are_accounted(
        picks in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0u16..2, proptest::collection::vec(mutation(), 0..4), any::<bool>(), any::<bool>()),
            1..24,
        ),
        advance in 0u64..400,
    ) {
        let (mut net, corpus) = world();
        net.advance(std::time::Duration::from_secs(advance));
        let mut verdicts = [0u64; 4];
        for (idx, shard, muts, fix, tight) in picks {
            let (side, frame) = &corpus[idx.index(corpus.len())];
            let mut f = frame.clone();
            for m in &muts {
                apply(&mut f, m);
            }
            if fix && f.len() >= 34 {
                fix_ip_checksum(&mut f, 14);
            }
            let room = if tight { f.len() } else { BUF_LEN };
            let v = feed(&mut net, shard, *side, &f, room);
            verdicts[match v {
                Verdict::Forward { .. } => 0,
                Verdict::Drop(_) => 1,
                Verdict::Punt(_) => 2,
                Verdict::Handoff { .. } => 3,
            }] += 1;
            // Translated frames that leave must still be well formed.
            if let Verdict::Forward { .. } = v {
                if muts.is_empty() {
                    let mut buf = f.clone();
                    buf.resize(BUF_LEN, 0);
                    let core = &mut net.cores[usize::from(shard)];
                    if let Verdict::Forward { len, .. } = core.process(net.now, *side, &mut buf, f.len()) {
                        check(&buf[..usize::from(len)]);
                    }
                }
            }
            net.tick();
        }
        let c = net.counters();
        // The totals agree: every frame is exactly one of drop / punt / handoff / forward, and
        // generated ICMP errors are forwards that also count their original as a drop.
        prop_assert!(c.total_drops() >= verdicts[1]);
        prop_assert_eq!(c.total_drops() - verdicts[1], c.icmp_generated);
    }
}
