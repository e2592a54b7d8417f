//! In-place header rewrites with incremental checksum updates (fast path).
//!
//! Every address, port, identifier and TTL change the NAT makes goes through here, and every checksum it
//! touches is updated with the RFC 1624 arithmetic of `wire::checksum`, never recomputed over the payload.
//! Offsets come from [`super::parse::Parsed`], already checked, so the slices below are in bounds.

use super::parse::{Fragment, Parsed, IP_ICMP, IP_TCP, IP_UDP};
use crate::wire::checksum::{self, Delta};
use crate::wire::icmp::Endpoint;
use crate::wire::{EthernetFrame, Ipv4Packet, MacAddr};
use std::net::Ipv4Addr;

#[inline]
fn read16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn write16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Set the Ethernet addresses for the next hop.
#[inline]
pub fn set_macs(frame: &mut [u8], src: MacAddr, dst: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_src_addr(src);
    eth.set_dst_addr(dst);
}

/// Rewrite one address of the IPv4 header (or none) and, when forwarding is a hop (`p.hop`), decrement the
/// TTL, updating the header checksum. The caller has checked that the TTL is above 1.
#[inline]
pub fn ip_header(frame: &mut [u8], p: &Parsed, end: Endpoint, new_addr: Option<Ipv4Addr>) {
    let addr = new_addr.map_or(Delta::ZERO, |a| Delta::ZERO.addr(old_addr(p, end), a));
    set_ip_header(frame, p, end, new_addr, addr);
}

/// The address at `end` before translation.
#[inline]
fn old_addr(p: &Parsed, end: Endpoint) -> Ipv4Addr {
    match end {
        Endpoint::Source => p.src,
        Endpoint::Destination => p.dst,
    }
}

/// [`ip_header`] with the address change already folded into `addr`.
#[inline]
fn set_ip_header(
    frame: &mut [u8],
    p: &Parsed,
    end: Endpoint,
    new_addr: Option<Ipv4Addr>,
    addr: Delta,
) {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[p.ip_off..]);
    let mut delta = addr;
    if p.hop {
        // TTL shares a 16-bit word with the protocol.
        let ttl = p.ttl.saturating_sub(1);
        let old_word = (u16::from(p.ttl) << 8) | u16::from(p.proto);
        let new_word = (u16::from(ttl) << 8) | u16::from(p.proto);
        delta = delta.u16(old_word, new_word);
        ip.set_ttl(ttl);
    }
    match (end, new_addr) {
        (Endpoint::Source, Some(a)) => ip.set_src_addr(a),
        (Endpoint::Destination, Some(a)) => ip.set_dst_addr(a),
        (_, None) => {}
    }
    let sum = delta.apply(ip.checksum());
    ip.set_checksum(sum);
}

/// The whole rewrite of a session's packet: the IPv4 header as [`ip_header`] does, and the port (or ICMP
/// echo identifier) at `end` with the transport checksum, the address change folded once ([`Delta`]) and
/// applied to both checksums (TCP and UDP checksums cover a pseudo-header with the addresses; ICMP's does
/// not). Later fragments carry no transport header and are left alone; the first fragment's checksum
/// already accounts for the whole datagram.
#[inline]
pub fn translate(frame: &mut [u8], p: &Parsed, end: Endpoint, new_addr: Ipv4Addr, new_port: u16) {
    let addr = Delta::ZERO.addr(old_addr(p, end), new_addr);
    set_ip_header(frame, p, end, Some(new_addr), addr);
    if p.frag == Fragment::Later {
        return;
    }
    let l4 = p.l4_off;
    match p.proto {
        IP_TCP | IP_UDP => {
            let port_at = l4 + if end == Endpoint::Source { 0 } else { 2 };
            let csum_at = l4 + if p.proto == IP_TCP { 16 } else { 6 };
            let old_port = read16(frame, port_at);
            write16(frame, port_at, new_port);
            let old_sum = read16(frame, csum_at);
            if p.proto == IP_UDP && old_sum == 0 {
                return; // UDP without checksum stays without.
            }
            let mut sum = addr.u16(old_port, new_port).apply(old_sum);
            if p.proto == IP_UDP && sum == 0 {
                sum = 0xffff;
            }
            write16(frame, csum_at, sum);
        }
        IP_ICMP => {
            let old_id = read16(frame, l4 + 4);
            if old_id != new_port {
                write16(frame, l4 + 4, new_port);
                let sum = checksum::update_u16(read16(frame, l4 + 2), old_id, new_port);
                write16(frame, l4 + 2, sum);
            }
        }
        _ => {}
    }
}

/// Rewrite only the transport checksum for an address change (static 1:1 keeps ports).
#[inline]
pub fn transport_addr_only(frame: &mut [u8], p: &Parsed, old_addr: Ipv4Addr, new_addr: Ipv4Addr) {
    if p.frag == Fragment::Later {
        return;
    }
    let csum_at = match p.proto {
        IP_TCP => p.l4_off + 16,
        IP_UDP => p.l4_off + 6,
        _ => return,
    };
    let old_sum = read16(frame, csum_at);
    if p.proto == IP_UDP && old_sum == 0 {
        return;
    }
    let mut sum = checksum::update_addr(old_sum, old_addr, new_addr);
    if p.proto == IP_UDP && sum == 0 {
        sum = 0xffff;
    }
    write16(frame, csum_at, sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::parse::{self, L4};
    use crate::wire::{FrameBuilder, Icmpv4Packet, TcpFlags, TcpPacket, UdpPacket};
    use proptest::prelude::*;
    use std::net::SocketAddrV4;

    fn frame(kind: u8, src: SocketAddrV4, dst: SocketAddrV4, ttl: u8, len: usize) -> Vec<u8> {
        let b = match kind {
            0 => FrameBuilder::tcp(src, dst, TcpFlags::ACK),
            1 => FrameBuilder::udp(src, dst),
            2 => FrameBuilder::icmp_echo_request(*src.ip(), *dst.ip(), src.port(), 1),
            _ => FrameBuilder::icmp_echo_reply(*src.ip(), *dst.ip(), dst.port(), 1),
        };
        b.ttl(ttl).payload_len(len).build()
    }

    proptest! {
        /// The incremental rewrite gives the checksums a full recompute gives, sets the address, port
        /// (or echo identifier) and TTL, and leaves a UDP datagram without checksum without one.
        #[test]
        fn translate_equals_a_full_recompute(
            kind in 0u8..4,
            (s, sp, d, dp) in (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()),
            ttl in 2u8..=255,
            len in 0usize..40,
            (new_addr, new_port) in (any::<u32>(), any::<u16>()),
            source in any::<bool>(),
            hop in any::<bool>(),
            zero_udp_sum in any::<bool>(),
        ) {
            let src = SocketAddrV4::new(Ipv4Addr::from_bits(s), sp);
            let dst = SocketAddrV4::new(Ipv4Addr::from_bits(d), dp);
            let mut f = frame(kind, src, dst, ttl, len);
            if kind == 1 && zero_udp_sum {
                f[14 + 20 + 6] = 0;
                f[14 + 20 + 7] = 0;
            }
            let mut p = parse::ipv4(&f).unwrap();
            p.hop = hop;
            let end = if source { Endpoint::Source } else { Endpoint::Destination };
            let new_addr = Ipv4Addr::from_bits(new_addr);
            translate(&mut f, &p, end, new_addr, new_port);

            let q = parse::ipv4(&f);
            prop_assert!(q.is_ok(), "IPv4 header checksum no longer verifies");
            let q = q.unwrap();
            prop_assert_eq!(q.ttl, if hop { ttl - 1 } else { ttl });
            prop_assert_eq!(if source { q.src } else { q.dst }, new_addr);
            let mut full = f.clone();
            let l4 = &mut full[q.l4_off..q.ip_off + q.ip_len];
            match q.l4 {
                L4::Tcp { sport, dport, .. } => {
                    prop_assert_eq!(if source { sport } else { dport }, new_port);
                    TcpPacket::new_unchecked(l4).fill_checksum(q.src, q.dst);
                }
                L4::Udp { sport, dport } => {
                    prop_assert_eq!(if source { sport } else { dport }, new_port);
                    if kind == 1 && zero_udp_sum {
                        prop_assert_eq!(&f[q.l4_off + 6..q.l4_off + 8], &[0u8, 0][..]);
                    } else {
                        UdpPacket::new_unchecked(l4).fill_checksum(q.src, q.dst);
                    }
                }
                L4::Echo { ident, .. } => {
                    prop_assert_eq!(ident, new_port);
                    Icmpv4Packet::new_unchecked(l4).fill_checksum();
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert_eq!(&f, &full, "incremental checksums differ from a full recompute");
        }
    }
}
