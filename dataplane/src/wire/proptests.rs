//! Property tests across the wire views (test-only module).
//!
//! - Incremental checksum updates (the `rewrite_*` helpers, [`Delta`], `rewrite_embedded`) equal a full
//!   recomputation, and `etherparse` agrees, for random packets and random rewrites of addresses, ports, TTL and
//!   ICMP identifiers.
//! - Frames built by `etherparse` parse with our views to the same fields.
//! - `new_checked` on arbitrary bytes never panics, and neither does any accessor, setter or rewrite afterwards.

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;

use super::checksum::Delta;
use super::icmp::{error_allowed_for, Endpoint, QuotedL4};
use super::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from_bits)
}

/// A random TCP, UDP or ICMP echo frame with correct checksums.
fn frame() -> impl Strategy<Value = FrameBuilder> {
    let endpoints = (addr(), any::<u16>(), addr(), any::<u16>());
    let common = (any::<u8>(), any::<u16>(), 0usize..64, any::<bool>());
    (0u8..3, endpoints, common, any::<u8>()).prop_map(
        |(kind, (s, sp, d, dp), (ttl, ident, len, df), flags)| {
            let src = SocketAddrV4::new(s, sp);
            let dst = SocketAddrV4::new(d, dp);
            let b = match kind {
                0 => FrameBuilder::tcp(src, dst, TcpFlags(flags))
                    .seq_ack(u32::from(ident) * 7, u32::from(sp)),
                1 => FrameBuilder::udp(src, dst),
                _ if flags & 1 == 0 => FrameBuilder::icmp_echo_request(s, d, sp, dp),
                _ => FrameBuilder::icmp_echo_reply(s, d, sp, dp),
            };
            let b = b.ttl(ttl).ident(ident).payload_len(len);
            if df {
                b.dont_frag()
            } else {
                b
            }
        },
    )
}

/// One in-place rewrite the NAT core performs.
#[derive(Debug, Clone)]
enum Rewrite {
    SrcAddr(Ipv4Addr),
    DstAddr(Ipv4Addr),
    SrcPort(u16),
    DstPort(u16),
    Ttl(u8),
    DecrementTtl,
    /// Source address and port together through one [`Delta`] applied to both checksums.
    SnatDelta(Ipv4Addr, u16),
}

fn rewrite() -> impl Strategy<Value = Rewrite> {
    prop_oneof![
        addr().prop_map(Rewrite::SrcAddr),
        addr().prop_map(Rewrite::DstAddr),
        any::<u16>().prop_map(Rewrite::SrcPort),
        any::<u16>().prop_map(Rewrite::DstPort),
        any::<u8>().prop_map(Rewrite::Ttl),
        Just(Rewrite::DecrementTtl),
        (addr(), any::<u16>()).prop_map(|(a, p)| Rewrite::SnatDelta(a, p)),
    ]
}

/// Applies `rw` to the IPv4 datagram in `ip_bytes` the way the NAT core would: field and header checksum
/// through the IPv4 view, the transport checksum incrementally.
fn apply(ip_bytes: &mut [u8], rw: &Rewrite) {
    let mut ip = Ipv4Packet::new_checked(&mut ip_bytes[..]).unwrap();
    let (src, proto) = (ip.src_addr(), ip.protocol());
    // Address changes: header first, then the transport pseudo-header.
    let addr_change = match *rw {
        Rewrite::SrcAddr(a) => Some((ip.rewrite_src_addr(a), a)),
        Rewrite::DstAddr(a) => Some((ip.rewrite_dst_addr(a), a)),
        Rewrite::Ttl(t) => {
            ip.rewrite_ttl(t);
            None
        }
        Rewrite::DecrementTtl => {
            ip.decrement_ttl();
            None
        }
        Rewrite::SnatDelta(a, _) => {
            let d = Delta::ZERO.addr(src, a);
            let c = d.apply(ip.checksum());
            ip.set_src_addr(a);
            ip.set_checksum(c);
            None
        }
        Rewrite::SrcPort(_) | Rewrite::DstPort(_) => None,
    };
    let l4 = ip.payload_mut();
    match proto {
        ip_proto::TCP => {
            let mut t = TcpPacket::new_checked(l4).unwrap();
            if let Some((old, new)) = addr_change {
                t.update_checksum_addr(old, new);
            }
            match *rw {
                Rewrite::SrcPort(p) => {
                    t.rewrite_src_port(p);
                }
                Rewrite::DstPort(p) => {
                    t.rewrite_dst_port(p);
                }
                Rewrite::SnatDelta(a, p) => {
                    let d = Delta::ZERO.addr(src, a).u16(t.src_port(), p);
                    t.set_src_port(p);
                    t.apply_checksum_delta(d);
                }
                _ => {}
            }
        }
        ip_proto::UDP => {
            let mut u = UdpPacket::new_checked(l4).unwrap();
            if let Some((old, new)) = addr_change {
                u.update_checksum_addr(old, new);
            }
            match *rw {
                Rewrite::SrcPort(p) => {
                    u.rewrite_src_port(p);
                }
                Rewrite::DstPort(p) => {
                    u.rewrite_dst_port(p);
                }
                Rewrite::SnatDelta(a, p) => {
                    let d = Delta::ZERO.addr(src, a).u16(u.src_port(), p);
                    u.set_src_port(p);
                    u.apply_checksum_delta(d);
                }
                _ => {}
            }
        }
        ip_proto::ICMP => {
            // ICMP has no pseudo-header; its "port" is the echo identifier.
            let mut i = Icmpv4Packet::new_checked(l4).unwrap();
            match *rw {
                Rewrite::SrcPort(p) | Rewrite::DstPort(p) | Rewrite::SnatDelta(_, p) => {
                    i.rewrite_echo_ident(p);
                }
                _ => {}
            }
        }
        _ => unreachable!("builder makes TCP, UDP and ICMP only"),
    }
}

/// Checks every checksum in the datagram three ways: our verify, our full recompute (must be bit-identical to
/// the incremental result), and etherparse.
fn check_datagram(ip_bytes: &[u8]) -> Result<(), TestCaseError> {
    let ip = Ipv4Packet::new_checked(ip_bytes).unwrap();
    prop_assert!(ip.verify_checksum());
    let mut copy = ip_bytes.to_vec();
    let mut ip2 = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
    ip2.fill_checksum();
    prop_assert_eq!(
        ip2.checksum(),
        ip.checksum(),
        "IPv4 incremental != recompute"
    );
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let stored;
    let recomputed;
    {
        let l4 = ip2.payload_mut();
        match ip.protocol() {
            ip_proto::TCP => {
                let mut t = TcpPacket::new_checked(l4).unwrap();
                prop_assert!(t.verify_checksum(src, dst));
                stored = t.checksum();
                t.fill_checksum(src, dst);
                recomputed = t.checksum();
            }
            ip_proto::UDP => {
                let mut u = UdpPacket::new_checked(l4).unwrap();
                prop_assert!(u.verify_checksum(src, dst));
                stored = u.checksum();
                u.fill_checksum(src, dst);
                recomputed = u.checksum();
            }
            _ => {
                let mut i = Icmpv4Packet::new_checked(l4).unwrap();
                prop_assert!(i.verify_checksum());
                stored = i.checksum();
                i.fill_checksum();
                recomputed = i.checksum();
            }
        }
    }
    prop_assert_eq!(stored, recomputed, "L4 incremental != recompute");
    // etherparse, independently.
    let h = etherparse::PacketHeaders::from_ip_slice(ip_bytes).unwrap();
    let Some(etherparse::NetHeaders::Ipv4(eh, _)) = &h.net else {
        return Err(TestCaseError::fail("etherparse: not IPv4"));
    };
    prop_assert_eq!(eh.header_checksum, eh.calc_header_checksum());
    prop_assert_eq!(eh.source, src.octets());
    prop_assert_eq!(eh.destination, dst.octets());
    let payload = h.payload.slice();
    match &h.transport {
        Some(etherparse::TransportHeader::Tcp(t)) => {
            prop_assert_eq!(t.checksum, t.calc_checksum_ipv4(eh, payload).unwrap())
        }
        Some(etherparse::TransportHeader::Udp(u)) => {
            prop_assert_eq!(u.checksum, u.calc_checksum_ipv4(eh, payload).unwrap())
        }
        Some(etherparse::TransportHeader::Icmpv4(i)) => {
            prop_assert_eq!(i.checksum, i.icmp_type.calc_checksum(payload))
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "etherparse transport {other:?}"
            )))
        }
    }
    Ok(())
}

/// Reads every accessor of every view that accepts `bytes`, then writes through the setters and rewrites, then
/// reads again. Must never panic.
fn exercise(bytes: &mut [u8], v: u16) {
    let v8 = v as u8;
    let a = Ipv4Addr::from_bits(u32::from(v) * 0x0001_0001);
    if let Ok(mut f) = EthernetFrame::new_checked(&mut *bytes) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.is_vlan_tagged(),
            f.payload().len(),
        );
        f.set_dst_addr(MacAddr([v8; 6]));
        f.set_src_addr(f.dst_addr());
        f.set_ethertype(f.ethertype());
        let _ = f.payload_mut().len();
    }
    if let Ok(mut t) = VlanTag::new_checked(&mut *bytes) {
        let _ = (
            t.tci(),
            t.vid(),
            t.pcp(),
            t.dei(),
            t.ethertype(),
            t.payload().len(),
        );
        t.set_vid(v);
        t.set_pcp(v8);
        let _ = t.payload_mut().len();
    }
    if let Ok(p) = ArpPacket::new_checked(&*bytes) {
        let _ = ArpRepr::parse(&p);
        let _ = (
            p.operation(),
            p.sender_hardware_addr(),
            p.target_protocol_addr(),
        );
    }
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut *bytes) {
        read_ipv4(&p);
        let _ = error_allowed_for(&p);
        let _ = Ipv4Repr::parse(&p);
        p.rewrite_src_addr(a);
        p.rewrite_dst_addr(a);
        p.decrement_ttl();
        let _ = p.payload_mut().len();
        let _ = p.options_mut().len();
        // Careless setters after the check: accessors must still not panic.
        p.set_header_len(usize::from(v8));
        p.set_total_len(v);
        read_ipv4(&p);
        p.fill_checksum();
        let _ = p.payload_mut().len();
        let _ = p.options_mut().len();
    }
    if let Ok(p) = Ipv4Packet::new_checked_embedded(&*bytes) {
        read_ipv4(&p);
    }
    if let Ok(mut t) = TcpPacket::new_checked(&mut *bytes) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq_number(),
            t.ack_number(),
            t.flags(),
            t.window(),
        );
        let _ = (
            t.checksum(),
            t.urgent_at(),
            t.options().len(),
            t.payload().len(),
            t.verify_checksum(a, a),
        );
        t.rewrite_src_port(v);
        t.rewrite_dst_port(v);
        t.update_checksum_addr(a, Ipv4Addr::UNSPECIFIED);
        t.set_header_len(usize::from(v8));
        let _ = (
            t.options().len(),
            t.payload().len(),
            t.options_mut().len(),
            t.payload_mut().len(),
        );
        t.fill_checksum(a, a);
    }
    if let Ok(mut u) = UdpPacket::new_checked(&mut *bytes) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.is_empty(),
            u.checksum(),
            u.payload().len(),
        );
        let _ = u.verify_checksum(a, a);
        u.rewrite_src_port(v);
        u.update_checksum_addr(a, Ipv4Addr::UNSPECIFIED);
        u.set_len(v);
        let _ = (
            u.payload().len(),
            u.payload_mut().len(),
            u.verify_checksum(a, a),
        );
        u.fill_checksum(a, a);
    }
    if let Ok(mut i) = Icmpv4Packet::new_checked(&mut *bytes) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.echo_ident(),
            i.echo_seq_no(),
        );
        let _ = (
            i.next_hop_mtu(),
            i.pointer(),
            i.rest_of_header(),
            i.is_error(),
            i.data().len(),
        );
        let _ = i.verify_checksum();
        if let Ok(inner) = i.embedded_ip() {
            read_ipv4(&inner);
            if let Ok(q) = QuotedL4::new_checked(inner.payload()) {
                let _ = (
                    q.src_port(),
                    q.dst_port(),
                    q.echo_ident(),
                    q.kind(inner.protocol()),
                );
            }
        }
        let _ = i.rewrite_embedded(Endpoint::Source, a, v);
        let _ = i.rewrite_embedded(Endpoint::Destination, a, v);
        i.rewrite_echo_ident(v);
        i.fill_checksum();
    }
    let _ = Icmpv4ErrorRepr::quote_len(bytes, QuoteLen::UpTo576);
    let mut out = [0u8; 600];
    let _ =
        Icmpv4ErrorRepr::time_exceeded().emit_ipv4(a, a, 64, bytes, QuoteLen::UpTo576, &mut out);
}

fn read_ipv4<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
    let _ = (
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.dscp(),
        p.ecn(),
        p.total_len(),
        p.ident(),
    );
    let _ = (
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
        p.is_non_first_fragment(),
    );
    let _ = (
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    );
    let _ = (
        p.header().len(),
        p.options().len(),
        p.payload().len(),
        p.verify_checksum(),
    );
}

/// Arbitrary bytes, biased toward plausible IPv4 headers so the deeper views are reached.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..100),
        (
            proptest::collection::vec(any::<u8>(), 20..120),
            0u8..16,
            any::<bool>()
        )
            .prop_map(|(mut b, ihl, icmp)| {
                b[0] = 0x40 | ihl;
                let len = b.len() as u16;
                b[2..4].copy_from_slice(&len.to_be_bytes());
                if icmp {
                    b[9] = 1;
                }
                b
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn incremental_rewrites_equal_recompute(
        b in frame(),
        rewrites in proptest::collection::vec(rewrite(), 1..6),
    ) {
        let frame = b.build();
        let mut ip = frame[ETHERNET_HEADER_LEN..].to_vec();
        check_datagram(&ip)?;
        for rw in &rewrites {
            apply(&mut ip, rw);
            check_datagram(&ip)?;
        }
    }

    /// An ICMP error about a translated TCP/UDP/echo datagram, quoted fully or minimally, translated back with
    /// `rewrite_embedded`: the outer checksum equals a recompute and etherparse agrees; when the whole datagram
    /// is quoted, the embedded checksums verify too.
    #[test]
    fn embedded_rewrite_equals_recompute(
        b in frame(),
        full_quote in any::<bool>(),
        to_src in any::<bool>(),
        new_addr in addr(),
        new_port in any::<u16>(),
        router in addr(),
    ) {
        let original = b.build_ip();
        let quote = if full_quote { QuoteLen::UpTo576 } else { QuoteLen::HeaderPlus8 };
        let err = FrameBuilder::icmp_error(router, b.src_ip, Icmpv4ErrorRepr::time_exceeded(), &original)
            .quote(quote)
            .build();
        let mut ip = err[ETHERNET_HEADER_LEN..].to_vec();
        let which = if to_src { Endpoint::Source } else { Endpoint::Destination };
        {
            let mut outer = Ipv4Packet::new_checked(&mut ip[..]).unwrap();
            let mut icmp = Icmpv4Packet::new_checked(outer.payload_mut()).unwrap();
            icmp.rewrite_embedded(which, new_addr, new_port).unwrap();
        }
        check_datagram(&ip)?;
        let outer = Ipv4Packet::new_checked(&ip[..]).unwrap();
        let icmp = Icmpv4Packet::new_checked(outer.payload()).unwrap();
        let inner = icmp.embedded_ip().unwrap();
        prop_assert!(inner.verify_checksum());
        let (s, d) = (inner.src_addr(), inner.dst_addr());
        prop_assert_eq!(if to_src { s } else { d }, new_addr);
        if full_quote {
            match inner.protocol() {
                ip_proto::TCP => {
                    let t = TcpPacket::new_checked(inner.payload()).unwrap();
                    prop_assert!(t.verify_checksum(s, d));
                    prop_assert_eq!(if to_src { t.src_port() } else { t.dst_port() }, new_port);
                }
                ip_proto::UDP => {
                    let u = UdpPacket::new_checked(inner.payload()).unwrap();
                    prop_assert!(u.verify_checksum(s, d));
                    prop_assert_eq!(if to_src { u.src_port() } else { u.dst_port() }, new_port);
                }
                _ => {
                    let i = Icmpv4Packet::new_checked(inner.payload()).unwrap();
                    prop_assert!(i.verify_checksum());
                    prop_assert_eq!(i.echo_ident(), new_port);
                }
            }
        }
    }

    /// Frames built by etherparse parse with our views to the same fields, with verifying checksums.
    #[test]
    fn etherparse_frames_parse_identically(
        s in any::<[u8; 4]>(),
        d in any::<[u8; 4]>(),
        sp in any::<u16>(),
        dp in any::<u16>(),
        ttl in any::<u8>(),
        kind in 0u8..3,
        payload in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let base = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(s, d, ttl);
        let mut f = Vec::new();
        match kind {
            0 => base.tcp(sp, dp, 12345, 4096).syn().ack(99).write(&mut f, &payload).unwrap(),
            1 => base.udp(sp, dp).write(&mut f, &payload).unwrap(),
            _ => base.icmpv4_echo_request(sp, dp).write(&mut f, &payload).unwrap(),
        }
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        prop_assert_eq!(eth.src_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        prop_assert_eq!(eth.dst_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        prop_assert_eq!(eth.ethertype(), EtherType::IPV4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(ip.src_addr(), Ipv4Addr::from(s));
        prop_assert_eq!(ip.dst_addr(), Ipv4Addr::from(d));
        prop_assert_eq!(ip.ttl(), ttl);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        match kind {
            0 => {
                let t = TcpPacket::new_checked(ip.payload()).unwrap();
                prop_assert_eq!((t.src_port(), t.dst_port(), t.seq_number(), t.ack_number()), (sp, dp, 12345, 99));
                prop_assert_eq!(t.flags(), TcpFlags::SYN | TcpFlags::ACK);
                prop_assert_eq!(t.window(), 4096);
                prop_assert!(t.verify_checksum(src, dst));
                prop_assert_eq!(t.payload(), &payload[..]);
            }
            1 => {
                let u = UdpPacket::new_checked(ip.payload()).unwrap();
                prop_assert_eq!((u.src_port(), u.dst_port()), (sp, dp));
                prop_assert!(u.verify_checksum(src, dst));
                prop_assert_eq!(u.payload(), &payload[..]);
            }
            _ => {
                let i = Icmpv4Packet::new_checked(ip.payload()).unwrap();
                prop_assert_eq!(i.msg_type(), Icmpv4Type::ECHO_REQUEST);
                prop_assert_eq!((i.echo_ident(), i.echo_seq_no()), (sp, dp));
                prop_assert!(i.verify_checksum());
                prop_assert_eq!(i.data(), &payload[..]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut b in bytes(), v in any::<u16>()) {
        exercise(&mut b, v);
        // Also at every Ethernet-relevant offset, as the core slices frames.
        for off in [1usize, 4, 8, 14, 18, 20, 28] {
            if off <= b.len() {
                exercise(&mut b[off..], v);
            }
        }
    }
}
