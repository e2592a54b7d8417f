//! First look at a frame: Ethernet and IPv4 checks and the transport fields the NAT needs (fast path).
//!
//! [`ipv4`] validates once what the translation will touch (Ethernet header, IPv4 header and checksum,
//! the transport header of unfragmented packets and first fragments) and returns a small `Copy` summary with
//! offsets, so that in2out and out2in rewrite the frame in place without re-checking bounds.

use super::counters::DropReason;
use crate::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr, TcpPacket, UdpPacket,
    ETHERNET_HEADER_LEN,
};
use std::net::Ipv4Addr;

/// IP protocol numbers.
pub const IP_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IP_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IP_UDP: u8 = 17;

/// ICMP message types the NAT distinguishes.
pub mod icmp_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated, still translated as an error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;

    /// Whether the type is an error message carrying an embedded datagram.
    pub const fn is_error(t: u8) -> bool {
        matches!(
            t,
            DEST_UNREACHABLE | SOURCE_QUENCH | TIME_EXCEEDED | PARAM_PROBLEM
        )
    }
}

/// Fragment position of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    Whole,
    /// First fragment: carries the transport header.
    First,
    /// A later fragment: no transport header.
    Later,
}

/// What the transport header says, for unfragmented packets and first fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP ports and flags.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
        flags: u8,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP echo request or reply.
    Echo {
        /// Type: echo request or echo reply.
        kind: u8,
        /// Identifier.
        ident: u16,
    },
    /// ICMP error message (embedded datagram parsed separately).
    IcmpError {
        /// Type.
        kind: u8,
    },
    /// Any other ICMP type.
    IcmpOther,
    /// Another IP protocol, or a later fragment.
    Opaque,
}

/// Offsets and fields of a checked IPv4 frame.
#[derive(Clone, Copy, Debug)]
pub struct Parsed {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Offset of the IPv4 header (14).
    pub ip_off: usize,
    /// Offset of the transport header.
    pub l4_off: usize,
    /// Bytes from the IPv4 header to the end of the datagram (IPv4 total length).
    pub ip_len: usize,
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Whether forwarding this packet is a hop (decrement the TTL, answer TTL expiry). False for the
    /// second, out2in half of a hairpin, which is one hop in all.
    pub hop: bool,
    /// IP identification (fragment reassembly key).
    pub ident: u16,
    /// Fragment position.
    pub frag: Fragment,
    /// Transport summary.
    pub l4: L4,
}

/// Outcome of the Ethernet check.
pub enum L2 {
    /// An ARP frame: the slow path's business.
    Arp,
    /// An IPv4 frame addressed to us.
    Ipv4,
}

/// Check the Ethernet header: addressed to `our_mac` (or broadcast, for ARP), untagged, ARP or IPv4.
#[inline]
pub fn ethernet(frame: &[u8], our_mac: MacAddr) -> Result<L2, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::EthernetTruncated)?;
    let ty = eth.ethertype();
    if ty == EtherType::ARP {
        return Ok(L2::Arp);
    }
    if eth.dst_addr() != our_mac {
        return Err(DropReason::NotForUs);
    }
    if ty == EtherType::IPV4 {
        Ok(L2::Ipv4)
    } else if ty == EtherType::VLAN || ty == EtherType::QINQ {
        Err(DropReason::VlanTagged)
    } else {
        Err(DropReason::NotIpv4)
    }
}

/// Check the IPv4 header and the transport header of an Ethernet frame whose ethertype is IPv4.
///
/// Always inlined: returned through memory, the summary costs a store-forwarding stall per packet.
#[inline(always)]
pub fn ipv4(frame: &[u8]) -> Result<Parsed, DropReason> {
    let ip_off = ETHERNET_HEADER_LEN;
    let src_mac = EthernetFrame::new_unchecked(frame).src_addr();
    let ip = Ipv4Packet::new_checked(&frame[ip_off..]).map_err(|_| DropReason::Ipv4Malformed)?;
    if !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let hl = ip.header_len();
    let ip_len = ip.total_len() as usize;
    let proto = ip.protocol();
    let frag = if ip.frag_offset() != 0 {
        Fragment::Later
    } else if ip.more_frags() {
        Fragment::First
    } else {
        Fragment::Whole
    };
    let l4_off = ip_off + hl;
    let l4_bytes = &frame[l4_off..ip_off + ip_len];
    let l4 = if frag == Fragment::Later {
        L4::Opaque
    } else {
        match proto {
            IP_TCP => {
                let t = TcpPacket::new_checked(l4_bytes).map_err(|_| DropReason::L4Truncated)?;
                L4::Tcp {
                    sport: t.src_port(),
                    dport: t.dst_port(),
                    flags: t.flags().bits(),
                }
            }
            IP_UDP => {
                // A first fragment holds only the start of the datagram the UDP length describes.
                let u = if frag == Fragment::First && l4_bytes.len() >= 8 {
                    UdpPacket::new_unchecked(l4_bytes)
                } else {
                    UdpPacket::new_checked(l4_bytes).map_err(|_| DropReason::L4Truncated)?
                };
                L4::Udp {
                    sport: u.src_port(),
                    dport: u.dst_port(),
                }
            }
            IP_ICMP => {
                let c = Icmpv4Packet::new_checked(l4_bytes).map_err(|_| DropReason::L4Truncated)?;
                let kind = c.msg_type().0;
                match kind {
                    icmp_type::ECHO_REQUEST | icmp_type::ECHO_REPLY => L4::Echo {
                        kind,
                        ident: c.echo_ident(),
                    },
                    k if icmp_type::is_error(k) => L4::IcmpError { kind },
                    _ => L4::IcmpOther,
                }
            }
            _ => L4::Opaque,
        }
    };
    Ok(Parsed {
        src_mac,
        ip_off,
        l4_off,
        ip_len,
        proto,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.ttl(),
        hop: true,
        ident: ip.ident(),
        frag,
        l4,
    })
}

/// The datagram embedded in an ICMP error: its header fields and where its pieces sit in the frame.
#[derive(Clone, Copy, Debug)]
pub struct Embedded {
    /// Offset of the embedded IPv4 header in the frame.
    pub ip_off: usize,
    /// Offset of the embedded transport header (at least 8 bytes of it are present).
    pub l4_off: usize,
    /// Bytes of the embedded transport header available in the frame.
    pub l4_avail: usize,
    /// Embedded protocol number (TCP, UDP or ICMP).
    pub proto: u8,
    /// Embedded source address.
    pub src: Ipv4Addr,
    /// Embedded destination address.
    pub dst: Ipv4Addr,
    /// Embedded source port, or ICMP echo identifier.
    pub sport: u16,
    /// Embedded destination port, 0 for ICMP.
    pub dport: u16,
}

/// Parse the datagram embedded in an ICMP error message whose header starts at `p.l4_off`.
pub fn embedded(frame: &[u8], p: &Parsed) -> Result<Embedded, DropReason> {
    const BAD: DropReason = DropReason::IcmpErrorMalformed;
    if p.frag != Fragment::Whole {
        return Err(BAD);
    }
    let ip_off = p.l4_off + 8;
    let end = p.ip_off + p.ip_len;
    let data = frame.get(ip_off..end).ok_or(BAD)?;
    // The embedded header may claim more bytes than the error carries: check the header only.
    if data.len() < 20 || data[0] >> 4 != 4 {
        return Err(BAD);
    }
    let hl = usize::from(data[0] & 0x0f) * 4;
    if hl < 20 || data.len() < hl + 8 {
        return Err(BAD);
    }
    let inner = Ipv4Packet::new_unchecked(data);
    if inner.frag_offset() != 0 {
        return Err(BAD);
    }
    let proto = inner.protocol();
    let l4 = &data[hl..];
    let word = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    let (sport, dport) = match proto {
        IP_TCP | IP_UDP => (word(0), word(2)),
        IP_ICMP if l4[0] == icmp_type::ECHO_REQUEST || l4[0] == icmp_type::ECHO_REPLY => {
            (word(4), 0)
        }
        _ => return Err(BAD),
    };
    Ok(Embedded {
        ip_off,
        l4_off: ip_off + hl,
        l4_avail: data.len() - hl,
        proto,
        src: inner.src_addr(),
        dst: inner.dst_addr(),
        sport,
        dport,
    })
}
