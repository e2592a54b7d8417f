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
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[p.ip_off..]);
    let mut sum = ip.checksum();
    if p.hop {
        // TTL shares a 16-bit word with the protocol.
        let ttl = p.ttl.saturating_sub(1);
        let old_word = (u16::from(p.ttl) << 8) | u16::from(p.proto);
        let new_word = (u16::from(ttl) << 8) | u16::from(p.proto);
        sum = checksum::update_u16(sum, old_word, new_word);
        ip.set_ttl(ttl);
    }
    if let Some(addr) = new_addr {
        match end {
            Endpoint::Source => {
                sum = checksum::update_addr(sum, p.src, addr);
                ip.set_src_addr(addr);
            }
            Endpoint::Destination => {
                sum = checksum::update_addr(sum, p.dst, addr);
                ip.set_dst_addr(addr);
            }
        }
    }
    ip.set_checksum(sum);
}

/// Rewrite the transport part of a translation: the port (or ICMP echo identifier) at `end`, and the
/// transport checksum for the address change (TCP and UDP checksums cover a pseudo-header with the
/// addresses; ICMP's does not). Later fragments carry no transport header and are left alone; the first
/// fragment's checksum already accounts for the whole datagram.
#[inline]
pub fn transport(
    frame: &mut [u8],
    p: &Parsed,
    end: Endpoint,
    old_addr: Ipv4Addr,
    new_addr: Ipv4Addr,
    new_port: u16,
) {
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
            let mut sum = checksum::update_addr(old_sum, old_addr, new_addr);
            sum = checksum::update_u16(sum, old_port, new_port);
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

/// The whole rewrite of a session's packet: [`ip_header`] with `new_addr` at `end`, then [`transport`]
/// with `new_addr` and `new_port` at `end`, but with the address change folded once ([`Delta`]) and
/// applied to both checksums. Same bytes as the two calls (RFC 1624 eqn. 3 either way).
#[inline]
pub fn translate(frame: &mut [u8], p: &Parsed, end: Endpoint, new_addr: Ipv4Addr, new_port: u16) {
    let old_addr = match end {
        Endpoint::Source => p.src,
        Endpoint::Destination => p.dst,
    };
    let addr = Delta::ZERO.addr(old_addr, new_addr);
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
    match end {
        Endpoint::Source => ip.set_src_addr(new_addr),
        Endpoint::Destination => ip.set_dst_addr(new_addr),
    }
    let sum = delta.apply(ip.checksum());
    ip.set_checksum(sum);
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
    use crate::nat::parse;
    use crate::wire::{FrameBuilder, TcpFlags};
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
        /// The folded rewrite writes exactly the bytes of the two separate rewrites, and a frame whose
        /// checksums verify still verifies.
        #[test]
        fn translate_equals_ip_header_then_transport(
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
            let mut a = frame(kind, src, dst, ttl, len);
            if kind == 1 && zero_udp_sum {
                a[14 + 20 + 6] = 0;
                a[14 + 20 + 7] = 0;
            }
            let mut b = a.clone();
            let mut p = parse::ipv4(&a).unwrap();
            p.hop = hop;
            let (end, old) = if source {
                (Endpoint::Source, p.src)
            } else {
                (Endpoint::Destination, p.dst)
            };
            let new_addr = Ipv4Addr::from_bits(new_addr);
            ip_header(&mut a, &p, end, Some(new_addr));
            transport(&mut a, &p, end, old, new_addr, new_port);
            translate(&mut b, &p, end, new_addr, new_port);
            prop_assert_eq!(&a, &b);
            prop_assert!(parse::ipv4(&b).is_ok(), "IPv4 header checksum no longer verifies");
        }
    }
}
