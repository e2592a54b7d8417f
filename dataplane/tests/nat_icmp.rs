//! NAT core: ICMP error translation both ways (outer and embedded headers, every checksum
//! recomputed independently) and the ICMP errors the appliance generates itself (time exceeded
//! for TTL 1 on either side, rate limited).

mod nat_common;

use nat_common::*;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::{Side, Verdict, ICMP_RATE};
use natgw_dataplane::wire::{FrameBuilder, Icmpv4ErrorRepr, QuoteLen, TcpFlags};
use std::net::{Ipv4Addr, SocketAddrV4};

/// An error from `ROUTER` to `to` about `original` (an IPv4 datagram), as received outside.
fn error_out(to: Ipv4Addr, repr: Icmpv4ErrorRepr, original: &[u8], q: QuoteLen) -> Vec<u8> {
    outside(FrameBuilder::icmp_error(ROUTER, to, repr, original).quote(q))
}

/// Opens a UDP flow with a payload of `payload` bytes; returns the datagram as it left.
fn udp_flow(net: &mut Net, a: SocketAddrV4, r: SocketAddrV4, payload: usize) -> Vec<u8> {
    let d = net.send(
        Side::Inside,
        &inside(FrameBuilder::udp(a, r).payload_len(payload)),
    );
    d.forwarded(Side::Outside);
    ip_of(&d.frame)
}

fn assert_error_to_host(p: &Pkt, kind: u8, code: u8, rest: [u8; 4]) {
    assert_eq!((p.src, p.dst), (ROUTER, HOST_A));
    assert_eq!((p.src_mac, p.dst_mac), (INSIDE_MAC, host_mac(HOST_A)));
    let L4::IcmpError {
        kind: k,
        code: c,
        rest: r,
        ..
    } = p.l4
    else {
        panic!("{p:?}")
    };
    assert_eq!((k, c, r), (kind, code, rest));
}

#[test]
fn port_unreachable_about_udp_reaches_the_private_host() {
    for (payload, quote) in [(0, QuoteLen::HeaderPlus8), (40, QuoteLen::UpTo576)] {
        let mut net = Net::standard();
        let a = ep(HOST_A, 5000);
        let r = ep(REMOTE, 53);
        let sent = udp_flow(&mut net, a, r, payload);
        let public = check_ip(&sent).src_ep();
        let err = error_out(
            *public.ip(),
            Icmpv4ErrorRepr::dest_unreachable(3),
            &sent,
            quote,
        );
        let p = net.send(Side::Outside, &err).forwarded(Side::Inside);
        assert_error_to_host(&p, 3, 3, [0; 4]);
        let inner = p.inner();
        assert_eq!((inner.src, inner.sport), (HOST_A, 5000));
        assert_eq!((inner.dst, inner.dport), (REMOTE, 53));
        assert_eq!(inner.ttl, 63, "the quoted TTL is the one that left");
        assert!(inner.l4_checksum_verified, "whole UDP datagram quoted");
        // The quoted payload is untouched.
        assert_eq!(&inner.bytes[28..], &sent[28..]);
        assert_eq!(net.counters().out2in.packets, 1);
    }
}

#[test]
fn time_exceeded_about_tcp_reaches_the_private_host() {
    for quote in [QuoteLen::HeaderPlus8, QuoteLen::UpTo576] {
        let mut net = Net::standard();
        let a = ep(HOST_A, 40000);
        let r = ep(REMOTE, 443);
        let d = net.send(
            Side::Inside,
            &inside(FrameBuilder::tcp(a, r, TcpFlags::SYN).payload_len(16)),
        );
        let sent = ip_of(&d.frame);
        let public = d.forwarded(Side::Outside).src_ep();
        let err = error_out(*public.ip(), Icmpv4ErrorRepr::time_exceeded(), &sent, quote);
        let p = net.send(Side::Outside, &err).forwarded(Side::Inside);
        assert_error_to_host(&p, 11, 0, [0; 4]);
        let inner = p.inner();
        assert_eq!((inner.src, inner.sport), (HOST_A, 40000));
        assert_eq!((inner.dst, inner.dport), (REMOTE, 443));
        assert_eq!(
            inner.l4_checksum_verified,
            quote == QuoteLen::UpTo576,
            "the embedded TCP checksum must be right when quoted whole"
        );
    }
}

#[test]
fn frag_needed_about_an_echo_reaches_the_private_host() {
    let mut net = Net::standard();
    let d = net.send(Side::Inside, &echo_in(HOST_A, REMOTE, 0x4321, 9));
    let sent = ip_of(&d.frame);
    let out = d.forwarded(Side::Outside);
    let (public_id, _) = out.ports();
    let err = error_out(
        out.src,
        Icmpv4ErrorRepr::frag_needed(1400),
        &sent,
        QuoteLen::UpTo576,
    );
    let p = net.send(Side::Outside, &err).forwarded(Side::Inside);
    let mtu = 1400u16.to_be_bytes();
    assert_error_to_host(&p, 3, 4, [0, 0, mtu[0], mtu[1]]);
    let inner = p.inner();
    assert_eq!((inner.src, inner.dst, inner.proto), (HOST_A, REMOTE, 1));
    assert_eq!(
        inner.sport, 0x4321,
        "echo identifier restored (was {public_id})"
    );
    assert!(inner.l4_checksum_verified);
}

#[test]
fn errors_that_match_no_flow_are_dropped() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let sent = udp_flow(&mut net, a, r, 0);
    let public = check_ip(&sent).src_ep();
    // About a flow that does not exist (other remote port).
    let other = ip_of(&outside(FrameBuilder::udp(public, ep(REMOTE, 54))));
    let d = net.send(
        Side::Outside,
        &error_out(
            *public.ip(),
            Icmpv4ErrorRepr::dest_unreachable(3),
            &other,
            QuoteLen::HeaderPlus8,
        ),
    );
    assert_eq!(d.dropped(), DropReason::IcmpErrorNoSession);
    // Sent to the other public address than the one quoted.
    let wrong = if *public.ip() == PUBLIC_IPS[0] {
        PUBLIC_IPS[1]
    } else {
        PUBLIC_IPS[0]
    };
    let d = net.send(
        Side::Outside,
        &error_out(
            wrong,
            Icmpv4ErrorRepr::dest_unreachable(3),
            &sent,
            QuoteLen::HeaderPlus8,
        ),
    );
    assert_eq!(d.dropped(), DropReason::IcmpErrorNoSession);
    // Quote cut short: fewer than 8 bytes of the transport header.
    let mut short = error_out(
        *public.ip(),
        Icmpv4ErrorRepr::dest_unreachable(3),
        &sent,
        QuoteLen::HeaderPlus8,
    );
    let total = u16::from_be_bytes([short[16], short[17]]) - 4;
    short.truncate(14 + usize::from(total));
    short[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut short, 14);
    short[36] = 0;
    short[37] = 0;
    let sum = internet_checksum(&short[34..]);
    short[36..38].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        net.send(Side::Outside, &short).dropped(),
        DropReason::IcmpErrorMalformed
    );
    // The genuine error still passes.
    net.send(
        Side::Outside,
        &error_out(
            *public.ip(),
            Icmpv4ErrorRepr::dest_unreachable(3),
            &sent,
            QuoteLen::HeaderPlus8,
        ),
    )
    .forwarded(Side::Inside);
}

#[test]
fn errors_from_inside_are_translated_outward() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let sent = udp_flow(&mut net, a, r, 0);
    let public = check_ip(&sent).src_ep();
    // The server sends another datagram; the host's port is closed and it says so.
    let d = net.send(Side::Outside, &udp_out(r, public));
    let delivered = ip_of(&d.frame);
    d.forwarded(Side::Inside);
    let err = inside(
        FrameBuilder::icmp_error(
            HOST_A,
            REMOTE,
            Icmpv4ErrorRepr::dest_unreachable(3),
            &delivered,
        )
        .quote(QuoteLen::UpTo576),
    );
    let p = net.send(Side::Inside, &err).forwarded(Side::Outside);
    assert_eq!((p.src, p.dst), (*public.ip(), REMOTE));
    assert_eq!((p.src_mac, p.dst_mac), (OUTSIDE_MAC, GW_MAC));
    let inner = p.inner();
    assert_eq!((inner.src, inner.sport), (REMOTE, 53));
    assert_eq!((inner.dst, inner.dport), (*public.ip(), public.port()));
    assert!(inner.l4_checksum_verified);
    // An inside error about no flow is dropped.
    let stray = ip_of(&udp_out(ep(REMOTE, 9), ep(HOST_A, 9)));
    let err = inside(FrameBuilder::icmp_error(
        HOST_A,
        REMOTE,
        Icmpv4ErrorRepr::dest_unreachable(3),
        &stray,
    ));
    assert_eq!(
        net.send(Side::Inside, &err).dropped(),
        DropReason::IcmpErrorNoSession
    );
}

fn check_ip(ip: &[u8]) -> Pkt {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip);
    check(&f)
}

/// Checks a generated time-exceeded message: from `from` to the sender, back to its MAC, quoting
/// the offending header as received plus 8 bytes.
fn assert_time_exceeded(
    d: &Delivery,
    side: Side,
    from: Ipv4Addr,
    our_mac: natgw_dataplane::wire::MacAddr,
    original: &[u8],
    to_mac: natgw_dataplane::wire::MacAddr,
) {
    let p = d.forwarded(side);
    let orig = check(original);
    assert_eq!((p.src, p.dst), (from, orig.src));
    assert_eq!((p.src_mac, p.dst_mac), (our_mac, to_mac));
    let L4::IcmpError { kind, code, .. } = p.l4 else {
        panic!("{p:?}")
    };
    assert_eq!((kind, code), (11, 0));
    let inner = p.inner();
    let o = ip_of(original);
    assert_eq!(
        inner.bytes,
        o[..o.len().min(28)].to_vec(),
        "quote = header + 8 bytes, as received"
    );
    assert_eq!(inner.ttl, 1);
}

#[test]
fn ttl_one_inside_is_answered_with_time_exceeded() {
    let mut net = Net::standard();
    let f = inside(
        FrameBuilder::udp(ep(HOST_A, 5000), ep(REMOTE, 53))
            .ttl(1)
            .payload_len(30),
    );
    let d = net.send(Side::Inside, &f);
    assert_time_exceeded(
        &d,
        Side::Inside,
        INSIDE_IP,
        INSIDE_MAC,
        &f,
        host_mac(HOST_A),
    );
    let c = net.counters();
    assert_eq!(c.drops_of(DropReason::TtlExpired), 1);
    assert_eq!(c.icmp_generated, 1);
    assert_eq!(net.sessions(), 0, "no session for an expired packet");
    // TTL 0 likewise.
    let f = inside(FrameBuilder::tcp(ep(HOST_A, 5000), ep(REMOTE, 80), TcpFlags::SYN).ttl(0));
    let d = net.send(Side::Inside, &f);
    assert!(matches!(
        d.verdict,
        Verdict::Forward {
            side: Side::Inside,
            ..
        }
    ));
}

#[test]
fn ttl_one_outside_is_answered_with_time_exceeded() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let public = net
        .send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside)
        .src_ep();
    let f = outside(FrameBuilder::udp(r, public).ttl(1).payload_len(30));
    let d = net.send(Side::Outside, &f);
    assert_time_exceeded(&d, Side::Outside, OUTSIDE_IP, OUTSIDE_MAC, &f, GW_MAC);
    assert_eq!(net.counters().drops_of(DropReason::TtlExpired), 1);
}

#[test]
fn no_error_about_an_error_or_a_later_fragment() {
    let mut net = Net::standard();
    let orig = ip_of(&udp_out(ep(REMOTE, 53), ep(HOST_A, 9)));
    let err = inside(
        FrameBuilder::icmp_error(HOST_A, REMOTE, Icmpv4ErrorRepr::dest_unreachable(3), &orig)
            .ttl(1),
    );
    assert_eq!(
        net.send(Side::Inside, &err).dropped(),
        DropReason::TtlExpired
    );
    let frag = inside(
        FrameBuilder::raw(HOST_A, REMOTE, 17)
            .payload_len(16)
            .fragment(64, false)
            .ttl(1),
    );
    assert_eq!(
        net.send(Side::Inside, &frag).dropped(),
        DropReason::TtlExpired
    );
    assert_eq!(net.counters().icmp_generated, 0);
}

#[test]
fn generated_errors_are_rate_limited() {
    let mut net = Net::standard();
    let f = inside(FrameBuilder::udp(ep(HOST_A, 5000), ep(REMOTE, 53)).ttl(1));
    let n = 3 * ICMP_RATE;
    let mut sent = 0;
    for _ in 0..n {
        if matches!(net.send(Side::Inside, &f).verdict, Verdict::Forward { .. }) {
            sent += 1;
        }
    }
    // At one instant, only the bucket's burst goes out.
    assert!((1..=ICMP_RATE / 5).contains(&sent), "{sent} sent");
    let c = net.counters();
    assert_eq!(c.drops_of(DropReason::TtlExpired), u64::from(n));
    assert_eq!(c.icmp_generated, u64::from(sent));
    // A second later the bucket has refilled.
    net.advance(std::time::Duration::from_secs(1));
    assert!(matches!(
        net.send(Side::Inside, &f).verdict,
        Verdict::Forward { .. }
    ));
}

#[test]
fn generated_error_needs_room_in_the_buffer() {
    let mut net = Net::standard();
    // A 60-byte buffer cannot hold the 70-byte answer: drop, counted, no panic.
    let f = inside(
        FrameBuilder::udp(ep(HOST_A, 5000), ep(REMOTE, 53))
            .ttl(1)
            .pad_to(60),
    );
    let mut buf = f.clone();
    let now = net.now;
    let v = net.cores[0].process(now, Side::Inside, &mut buf, f.len());
    assert_eq!(v, Verdict::Drop(DropReason::TtlExpired));
}

#[test]
fn unsolicited_ttl_one_is_filtered_not_answered() {
    let mut net = Net::standard();
    let f = outside(FrameBuilder::udp(ep(REMOTE, 53), ep(PUBLIC_IPS[0], 40000)).ttl(1));
    assert_eq!(
        net.send(Side::Outside, &f).dropped(),
        DropReason::Unsolicited
    );
    let f = outside(FrameBuilder::udp(ep(REMOTE, 53), ep(Ipv4Addr::new(8, 8, 8, 8), 53)).ttl(1));
    assert_eq!(net.send(Side::Outside, &f).dropped(), DropReason::NotForUs);
    assert_eq!(net.counters().icmp_generated, 0);
}
