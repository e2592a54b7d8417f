//! NAT core: fragments (first translated, later ones follow by IP id, out-of-order ones counted,
//! wrong-shard ones handed over) and steering between shards (in2out by the flow hash, out2in by
//! the owner of the public port; a handed-off frame is byte-for-byte unchanged).

mod nat_common;

use nat_common::*;
use natgw_allocator::Protocol;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::flow::flow_shard;
use natgw_dataplane::nat::{Side, Verdict};
use natgw_dataplane::wire::{FrameBuilder, TcpFlags};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Reassembles translated fragments (in order) into one IPv4 payload and checks its transport
/// checksum against the translated addresses.
fn reassemble_and_verify(frags: &[Vec<u8>]) -> Vec<u8> {
    let first = check(&frags[0]);
    let mut payload = Vec::new();
    for f in frags {
        let p = check(f);
        assert_eq!((p.src, p.dst, p.ident), (first.src, first.dst, first.ident));
        assert_eq!(usize::from(p.frag_offset), payload.len());
        let ip = ip_of(f);
        payload.extend_from_slice(&ip[20..]);
    }
    match first.proto {
        6 | 17 => assert!(
            l4_verifies(first.src, first.dst, first.proto, &payload),
            "transport checksum of the reassembled datagram"
        ),
        1 => assert_eq!(ones_sum(0, &payload), 0xffff),
        _ => {}
    }
    payload
}

fn tcp_datagram(a: SocketAddrV4, r: SocketAddrV4, ident: u16) -> Vec<u8> {
    inside(
        FrameBuilder::tcp(a, r, TcpFlags::SYN)
            .payload_len(100)
            .ident(ident),
    )
}

#[test]
fn tcp_fragments_follow_the_first_both_ways() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 40000);
    let r = ep(REMOTE, 443);
    let frags = fragment(&tcp_datagram(a, r, 77), &[32, 64, 96]);
    let mut out = Vec::new();
    for f in &frags {
        let d = net.send(Side::Inside, f);
        d.forwarded(Side::Outside);
        out.push(d.frame);
    }
    let first = check(&out[0]);
    assert_snat(&first, PORT_RANGE);
    let public = first.src_ep();
    let payload = reassemble_and_verify(&out);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), public.port());
    assert_eq!(net.sessions(), 1);

    // The reply, fragmented, comes back to the host.
    let reply = outside(
        FrameBuilder::tcp(r, public, TcpFlags::SYN | TcpFlags::ACK)
            .payload_len(60)
            .ident(5),
    );
    let mut back = Vec::new();
    for f in fragment(&reply, &[24, 48]) {
        let d = net.send(Side::Outside, &f);
        let p = d.forwarded(Side::Inside);
        assert_eq!(p.dst, HOST_A);
        back.push(d.frame);
    }
    let payload = reassemble_and_verify(&back);
    assert_eq!(u16::from_be_bytes([payload[2], payload[3]]), 40000);
}

#[test]
fn echo_fragments_follow_the_first() {
    let mut net = Net::standard();
    let ping = inside(
        FrameBuilder::icmp_echo_request(HOST_A, REMOTE, 0x777, 1)
            .payload_len(120)
            .ident(9),
    );
    let mut out = Vec::new();
    for f in fragment(&ping, &[64]) {
        let d = net.send(Side::Inside, &f);
        d.forwarded(Side::Outside);
        out.push(d.frame);
    }
    reassemble_and_verify(&out);
}

#[test]
fn udp_fragments_follow_the_first() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let dgram = inside(FrameBuilder::udp(a, r).payload_len(1000).ident(31));
    let mut out = Vec::new();
    for f in fragment(&dgram, &[512]) {
        let d = net.send(Side::Inside, &f);
        d.forwarded(Side::Outside);
        out.push(d.frame);
    }
    reassemble_and_verify(&out);
}

#[test]
fn later_fragment_before_the_first_is_dropped() {
    let mut net = Net::standard();
    let frags = fragment(&tcp_datagram(ep(HOST_A, 1), ep(REMOTE, 80), 1234), &[40]);
    assert_eq!(
        net.send(Side::Inside, &frags[1]).dropped(),
        DropReason::FragmentOutOfOrder
    );
    // Same on the outside, for a datagram nobody asked for.
    let f = outside(
        FrameBuilder::raw(REMOTE, PUBLIC_IPS[0], 17)
            .payload_len(16)
            .fragment(64, false)
            .ident(3),
    );
    assert_eq!(
        net.send(Side::Outside, &f).dropped(),
        DropReason::FragmentOutOfOrder
    );
    // A later fragment whose first fragment belonged to another datagram (other IP id) too.
    let d = net.send(Side::Inside, &frags[0]);
    d.forwarded(Side::Outside);
    let other = fragment(&tcp_datagram(ep(HOST_A, 1), ep(REMOTE, 80), 1235), &[40]);
    assert_eq!(
        net.send(Side::Inside, &other[1]).dropped(),
        DropReason::FragmentOutOfOrder
    );
    assert_eq!(net.counters().drops_of(DropReason::FragmentOutOfOrder), 3);
}

#[test]
fn first_fragments_are_forgotten_after_a_while() {
    let mut net = Net::standard();
    let frags = fragment(&tcp_datagram(ep(HOST_A, 1), ep(REMOTE, 80), 99), &[40]);
    net.send(Side::Inside, &frags[0]).forwarded(Side::Outside);
    net.advance(std::time::Duration::from_secs(10));
    assert_eq!(
        net.send(Side::Inside, &frags[1]).dropped(),
        DropReason::FragmentOutOfOrder
    );
}

/// Two shards, and a flow whose in2out owner is `owner`.
fn flow_owned_by(owner: u16, proto: u8) -> (SocketAddrV4, SocketAddrV4) {
    (1000..60000u16)
        .map(|p| (ep(HOST_A, p), ep(REMOTE, 443)))
        .find(|(a, r)| {
            let (sp, dp) = if proto == 1 {
                (0, 0)
            } else {
                (a.port(), r.port())
            };
            flow_shard(*a.ip(), *r.ip(), sp, dp, proto, 2) == owner
        })
        .unwrap()
}

#[test]
fn later_fragment_on_the_wrong_shard_is_handed_to_the_first_ones_shard() {
    let mut net = Net::new(params(2), alloc_config());
    for owner in [0u16, 1] {
        let (a, r) = flow_owned_by(owner, 6);
        let frags = fragment(&tcp_datagram(a, r, 500 + owner), &[40]);
        let d = net.send_from(owner, Side::Inside, &frags[0]);
        d.forwarded(Side::Outside);
        assert_eq!((d.shard, d.handoffs), (owner, 0));
        let public = check(&d.frame).src_ep();
        // The later fragment lands on the other shard: handed over unchanged, then translated.
        let other = 1 - owner;
        let (v, bytes) = net.process_on(other, Side::Inside, &frags[1]);
        assert_eq!(
            v,
            Verdict::Handoff {
                shard: natgw_allocator::ShardId(owner),
                side: Side::Inside
            }
        );
        assert_eq!(bytes, frags[1]);
        let d2 = net.send_from(other, Side::Inside, &frags[1]);
        assert_eq!((d2.shard, d2.handoffs), (owner, 1));
        reassemble_and_verify(&[d.frame.clone(), d2.frame.clone()]);

        // The fragmented reply: its first fragment is steered by port, the later one by the
        // steering table.
        let reply = outside(
            FrameBuilder::tcp(r, public, TcpFlags::ACK)
                .payload_len(60)
                .ident(900 + owner),
        );
        let rf = fragment(&reply, &[32]);
        let d = net.send_from(other, Side::Outside, &rf[0]);
        d.forwarded(Side::Inside);
        assert_eq!((d.shard, d.handoffs), (owner, 1));
        let d2 = net.send_from(other, Side::Outside, &rf[1]);
        let p = d2.forwarded(Side::Inside);
        assert_eq!((d2.shard, d2.handoffs, p.dst), (owner, 1, HOST_A));
    }
}

#[test]
fn in2out_frames_of_the_other_shard_are_handed_off_unchanged() {
    let mut net = Net::new(params(2), alloc_config());
    let mut n = 0;
    for i in 0..300u32 {
        let host = Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8 + 2);
        let remote = Ipv4Addr::new(198, 51, 100, (i % 50) as u8 + 1);
        let (frame, proto, sp, dp) = match i % 3 {
            0 => (
                tcp_in(ep(host, 2000 + i as u16), ep(remote, 443), TcpFlags::SYN),
                6u8,
                2000 + i as u16,
                443,
            ),
            1 => (
                udp_in(ep(host, 3000 + i as u16), ep(remote, 53)),
                17,
                3000 + i as u16,
                53,
            ),
            _ => (echo_in(host, remote, i as u16, 1), 1, 0, 0),
        };
        let owner = flow_shard(host, remote, sp, dp, proto, 2);
        let wrong = 1 - owner;
        let (v, bytes) = net.process_on(wrong, Side::Inside, &frame);
        assert_eq!(
            v,
            Verdict::Handoff {
                shard: natgw_allocator::ShardId(owner),
                side: Side::Inside
            }
        );
        assert_eq!(bytes, frame, "handed-off frame modified");
        let d = net.send_from(owner, Side::Inside, &frame);
        let out = d.forwarded(Side::Outside);
        assert_eq!((d.shard, d.handoffs), (owner, 0));
        // The public port belongs to the owning shard, so the replies are steered back there.
        let proto_enum = protocol_of(&out);
        let (pport, _) = out.ports();
        assert_eq!(
            net.owners.owner(out.src, proto_enum, pport).map(|s| s.0),
            Some(owner),
            "public port of shard {owner} owned elsewhere"
        );
        // A reply arriving at the wrong shard is handed to the owner of the public port.
        let reply = match proto {
            6 => tcp_out(ep(remote, 443), out.src_ep(), TcpFlags::SYN | TcpFlags::ACK),
            17 => udp_out(ep(remote, 53), out.src_ep()),
            _ => echo_reply_out(remote, out.src, pport, 1),
        };
        let (v, bytes) = net.process_on(wrong, Side::Outside, &reply);
        assert_eq!(
            v,
            Verdict::Handoff {
                shard: natgw_allocator::ShardId(owner),
                side: Side::Outside
            }
        );
        assert_eq!(bytes, reply);
        let d = net.send_from(wrong, Side::Outside, &reply);
        let back = d.forwarded(Side::Inside);
        assert_eq!(back.dst, host);
        n += 1;
    }
    assert_eq!(n, 300);
    let c = net.counters();
    // Each flow: two handoffs probed with process_on, one more through send_from.
    assert_eq!(c.handoffs_out, 3 * 300);
    assert_eq!(
        net.cores[0].session_count() + net.cores[1].session_count(),
        300
    );
    assert!(net.cores[0].session_count() > 100 && net.cores[1].session_count() > 100);
    let _ = Protocol::Tcp;
}

#[test]
fn errors_about_a_flow_are_steered_to_its_shard() {
    let mut net = Net::new(params(2), alloc_config());
    for owner in [0u16, 1] {
        let (a, r) = flow_owned_by(owner, 17);
        let d = net.send_from(owner, Side::Inside, &udp_in(a, r));
        let sent = ip_of(&d.frame);
        let public = d.forwarded(Side::Outside).src_ep();
        let err = outside(FrameBuilder::icmp_error(
            ROUTER,
            *public.ip(),
            natgw_dataplane::wire::Icmpv4ErrorRepr::dest_unreachable(3),
            &sent,
        ));
        let d = net.send_from(1 - owner, Side::Outside, &err);
        let p = d.forwarded(Side::Inside);
        assert_eq!((d.shard, d.handoffs), (owner, 1));
        assert_eq!(p.inner().src, HOST_A);
        // And from inside: an error about the reply.
        let delivered = {
            let d = net.send_from(owner, Side::Outside, &udp_out(r, public));
            ip_of(&d.frame)
        };
        let err = inside(FrameBuilder::icmp_error(
            HOST_A,
            *r.ip(),
            natgw_dataplane::wire::Icmpv4ErrorRepr::dest_unreachable(3),
            &delivered,
        ));
        let d = net.send_from(1 - owner, Side::Inside, &err);
        d.forwarded(Side::Outside);
        assert_eq!((d.shard, d.handoffs), (owner, 1));
    }
}
