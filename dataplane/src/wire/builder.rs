//! Frame builder for tests, fuzz seeds and benches: complete Ethernet + IPv4 + TCP/UDP/ICMP frames with correct
//! checksums from a few parameters.
//!
//! Layer: wire; test-and-bench helper, never used on the fast path ([`FrameBuilder::build`] allocates; the
//! allocation-free [`FrameBuilder::build_into`] is there for benches that prebuild frames into their own
//! buffers). It writes through the same views the data plane parses with, so every builder test is also a test
//! of those views; the tests below check its output with the independent `etherparse` crate.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use natgw_dataplane::wire::{FrameBuilder, TcpFlags};
//!
//! let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
//! let dst = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 443);
//! let syn = FrameBuilder::tcp(src, dst, TcpFlags::SYN).ttl(64).pad_to(60).build();
//! assert_eq!(syn.len(), 60);
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};

use super::arp::{ArpPacket, ArpRepr, ARP_LEN};
use super::ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
use super::icmp::{Icmpv4ErrorRepr, Icmpv4Packet, Icmpv4Type, QuoteLen, ICMP_HEADER_LEN};
use super::ipv4::{ip_proto, Ipv4Packet, Ipv4Repr, IPV4_MIN_HEADER_LEN};
use super::mac::MacAddr;
use super::tcp::{TcpFlags, TcpPacket, TCP_MIN_HEADER_LEN};
use super::udp::{UdpPacket, UDP_HEADER_LEN};
use super::vlan::{VlanTag, VLAN_TAG_LEN};
use super::WireError;

/// Minimum Ethernet frame length without the FCS (a "64-byte frame" on the wire).
pub const MIN_FRAME_LEN: usize = 60;

/// Default source MAC of built frames.
pub const DEFAULT_SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
/// Default destination MAC of built frames.
pub const DEFAULT_DST_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

/// The transport part of a built frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4Spec {
    /// A 20-byte TCP header (no options).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Control bits.
        flags: TcpFlags,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Receive window.
        window: u16,
    },
    /// An 8-byte UDP header with a checksum.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// An ICMP echo request or reply.
    IcmpEcho {
        /// [`Icmpv4Type::ECHO_REQUEST`] or [`Icmpv4Type::ECHO_REPLY`].
        msg_type: Icmpv4Type,
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
    },
    /// An ICMP error quoting `original` (an IPv4 datagram); the payload length is ignored.
    IcmpError {
        /// Type, code and rest of header.
        repr: Icmpv4ErrorRepr,
        /// The datagram the error is about, IPv4 header first.
        original: Vec<u8>,
        /// How much of it to quote.
        quote: QuoteLen,
    },
    /// No transport header: the IPv4 payload is the payload pattern, under protocol number `protocol`.
    Raw {
        /// IPv4 protocol number.
        protocol: u8,
    },
}

/// Builds one Ethernet/IPv4 frame; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBuilder {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// An 802.1Q tag with this VLAN identifier, if any.
    pub vlan: Option<u16>,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// IPv4 identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (multiple of 8). Non-zero: no transport header is written.
    pub frag_offset: u16,
    /// Transport header.
    pub l4: L4Spec,
    /// Bytes of payload after the transport header (a fixed pattern: byte `i` is `i as u8`).
    pub payload_len: usize,
    /// Zero-pad the frame to at least this length (e.g. [`MIN_FRAME_LEN`]).
    pub pad_to: usize,
}

impl FrameBuilder {
    fn with(src_ip: Ipv4Addr, dst_ip: Ipv4Addr, l4: L4Spec) -> FrameBuilder {
        FrameBuilder {
            src_mac: DEFAULT_SRC_MAC,
            dst_mac: DEFAULT_DST_MAC,
            vlan: None,
            src_ip,
            dst_ip,
            ttl: 64,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            l4,
            payload_len: 0,
            pad_to: 0,
        }
    }

    /// A TCP segment from `src` to `dst` with `flags` (seq 1, ack 0 unless ACK is set, then 1; window 65535).
    pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: TcpFlags) -> FrameBuilder {
        let ack = if flags.contains(TcpFlags::ACK) { 1 } else { 0 };
        Self::with(
            *src.ip(),
            *dst.ip(),
            L4Spec::Tcp {
                src_port: src.port(),
                dst_port: dst.port(),
                flags,
                seq: 1,
                ack,
                window: 65535,
            },
        )
    }

    /// A UDP datagram from `src` to `dst`.
    pub fn udp(src: SocketAddrV4, dst: SocketAddrV4) -> FrameBuilder {
        Self::with(
            *src.ip(),
            *dst.ip(),
            L4Spec::Udp {
                src_port: src.port(),
                dst_port: dst.port(),
            },
        )
    }

    /// An ICMP echo request.
    pub fn icmp_echo_request(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
    ) -> FrameBuilder {
        Self::with(
            src,
            dst,
            L4Spec::IcmpEcho {
                msg_type: Icmpv4Type::ECHO_REQUEST,
                ident,
                seq_no,
            },
        )
    }

    /// An ICMP echo reply.
    pub fn icmp_echo_reply(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq_no: u16) -> FrameBuilder {
        Self::with(
            src,
            dst,
            L4Spec::IcmpEcho {
                msg_type: Icmpv4Type::ECHO_REPLY,
                ident,
                seq_no,
            },
        )
    }

    /// An ICMP error from `src` to `dst` quoting the IPv4 datagram `original` (header and first 8 bytes; use
    /// [`quote`](Self::quote) for more).
    pub fn icmp_error(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        repr: Icmpv4ErrorRepr,
        original: &[u8],
    ) -> FrameBuilder {
        Self::with(
            src,
            dst,
            L4Spec::IcmpError {
                repr,
                original: original.to_vec(),
                quote: QuoteLen::HeaderPlus8,
            },
        )
    }

    /// An IPv4 datagram of protocol `protocol` whose payload is the pattern (no transport header).
    pub fn raw(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> FrameBuilder {
        Self::with(src, dst, L4Spec::Raw { protocol })
    }

    /// Sets both MAC addresses.
    #[must_use]
    pub fn macs(mut self, src: MacAddr, dst: MacAddr) -> FrameBuilder {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Adds an 802.1Q tag with VLAN identifier `vid`.
    #[must_use]
    pub fn vlan(mut self, vid: u16) -> FrameBuilder {
        self.vlan = Some(vid);
        self
    }

    /// Sets the TTL.
    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> FrameBuilder {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 identification.
    #[must_use]
    pub fn ident(mut self, ident: u16) -> FrameBuilder {
        self.ident = ident;
        self
    }

    /// Sets Don't Fragment.
    #[must_use]
    pub fn dont_frag(mut self) -> FrameBuilder {
        self.dont_frag = true;
        self
    }

    /// Makes the datagram a fragment: offset in bytes (multiple of 8) and More Fragments. At offset 0 (the first
    /// fragment) the transport header is written; later fragments carry only payload bytes.
    #[must_use]
    pub fn fragment(mut self, offset: u16, more_frags: bool) -> FrameBuilder {
        self.frag_offset = offset;
        self.more_frags = more_frags;
        self
    }

    /// Sets the payload length after the transport header.
    #[must_use]
    pub fn payload_len(mut self, len: usize) -> FrameBuilder {
        self.payload_len = len;
        self
    }

    /// Zero-pads the frame to at least `len` bytes.
    #[must_use]
    pub fn pad_to(mut self, len: usize) -> FrameBuilder {
        self.pad_to = len;
        self
    }

    /// Sets the TCP sequence and acknowledgment numbers (no effect on other protocols).
    #[must_use]
    pub fn seq_ack(mut self, seq_number: u32, ack_number: u32) -> FrameBuilder {
        if let L4Spec::Tcp { seq, ack, .. } = &mut self.l4 {
            *seq = seq_number;
            *ack = ack_number;
        }
        self
    }

    /// Sets how much of the original an ICMP error quotes (no effect on other protocols).
    #[must_use]
    pub fn quote(mut self, len: QuoteLen) -> FrameBuilder {
        if let L4Spec::IcmpError { quote, .. } = &mut self.l4 {
            *quote = len;
        }
        self
    }

    fn protocol(&self) -> u8 {
        match &self.l4 {
            L4Spec::Tcp { .. } => ip_proto::TCP,
            L4Spec::Udp { .. } => ip_proto::UDP,
            L4Spec::IcmpEcho { .. } | L4Spec::IcmpError { .. } => ip_proto::ICMP,
            L4Spec::Raw { protocol } => *protocol,
        }
    }

    /// Length of the IPv4 payload.
    fn l4_len(&self) -> Result<usize, WireError> {
        if self.frag_offset != 0 {
            return Ok(self.payload_len);
        }
        Ok(match &self.l4 {
            L4Spec::Tcp { .. } => TCP_MIN_HEADER_LEN + self.payload_len,
            L4Spec::Udp { .. } => UDP_HEADER_LEN + self.payload_len,
            L4Spec::IcmpEcho { .. } => ICMP_HEADER_LEN + self.payload_len,
            L4Spec::IcmpError {
                original, quote, ..
            } => Icmpv4ErrorRepr::icmp_len(original, *quote)?,
            L4Spec::Raw { .. } => self.payload_len,
        })
    }

    fn eth_header_len(&self) -> usize {
        ETHERNET_HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Length of the IPv4 datagram.
    pub fn ip_len(&self) -> Result<usize, WireError> {
        Ok(IPV4_MIN_HEADER_LEN + self.l4_len()?)
    }

    /// Length of the frame [`build`](Self::build) returns (padding included).
    pub fn frame_len(&self) -> Result<usize, WireError> {
        Ok((self.eth_header_len() + self.ip_len()?).max(self.pad_to))
    }

    /// Writes the frame at the start of `buf` and returns its length. Errors: `BufferTooSmall`, `BadTotalLen`
    /// (datagram over 65,535 bytes), or the ICMP error's original failing to parse.
    pub fn build_into(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let frame_len = self.frame_len()?;
        let Some(frame) = buf.get_mut(..frame_len) else {
            return Err(WireError::BufferTooSmall);
        };
        frame.fill(0);
        let eth_len = self.eth_header_len();
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        if let Some(vid) = self.vlan {
            eth.set_ethertype(EtherType::VLAN);
            let mut tag = VlanTag::new_unchecked(eth.payload_mut());
            tag.set_vid(vid);
            tag.set_ethertype(EtherType::IPV4);
        } else {
            eth.set_ethertype(EtherType::IPV4);
        }
        let ip_len = self.ip_len()?;
        self.write_ip(&mut frame[eth_len..eth_len + ip_len])?;
        Ok(frame_len)
    }

    /// Writes the IPv4 datagram into `buf`, which is exactly [`ip_len`](Self::ip_len) bytes.
    fn write_ip(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let l4_len = self.l4_len()?;
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
        Ipv4Repr {
            src_addr: self.src_ip,
            dst_addr: self.dst_ip,
            protocol: self.protocol(),
            payload_len: l4_len,
            ttl: self.ttl,
            ident: self.ident,
            dscp_ecn: 0,
            dont_frag: self.dont_frag,
        }
        .emit(&mut ip)?;
        if self.more_frags || self.frag_offset != 0 {
            ip.set_more_frags(self.more_frags);
            ip.set_frag_offset(self.frag_offset);
            ip.fill_checksum();
        }
        let (src, dst) = (self.src_ip, self.dst_ip);
        let l4 = ip.payload_mut();
        let pattern = |out: &mut [u8]| {
            for (i, b) in out.iter_mut().enumerate() {
                *b = i as u8;
            }
        };
        if self.frag_offset != 0 {
            pattern(l4);
            return Ok(());
        }
        match &self.l4 {
            L4Spec::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
                ack,
                window,
            } => {
                let mut tcp = TcpPacket::new_unchecked(l4);
                tcp.set_src_port(*src_port);
                tcp.set_dst_port(*dst_port);
                tcp.set_seq_number(*seq);
                tcp.set_ack_number(*ack);
                tcp.set_header_len(TCP_MIN_HEADER_LEN);
                tcp.set_flags(*flags);
                tcp.set_window(*window);
                pattern(tcp.payload_mut());
                tcp.fill_checksum(src, dst);
            }
            L4Spec::Udp { src_port, dst_port } => {
                let len = u16::try_from(l4.len()).map_err(|_| WireError::BadTotalLen)?;
                let mut udp = UdpPacket::new_unchecked(l4);
                udp.set_src_port(*src_port);
                udp.set_dst_port(*dst_port);
                udp.set_len(len);
                pattern(udp.payload_mut());
                udp.fill_checksum(src, dst);
            }
            L4Spec::IcmpEcho {
                msg_type,
                ident,
                seq_no,
            } => {
                let mut icmp = Icmpv4Packet::new_unchecked(l4);
                icmp.set_msg_type(*msg_type);
                icmp.set_code(0);
                icmp.set_echo_ident(*ident);
                icmp.set_echo_seq_no(*seq_no);
                pattern(icmp.data_mut());
                icmp.fill_checksum();
            }
            L4Spec::IcmpError {
                repr,
                original,
                quote,
            } => {
                repr.emit(original, *quote, l4)?;
            }
            L4Spec::Raw { .. } => pattern(l4),
        }
        Ok(())
    }

    /// Builds the frame.
    ///
    /// # Panics
    /// Only on a nonsensical specification: a datagram over 65,535 bytes, or an ICMP error whose `original` is
    /// not an IPv4 datagram. Use [`try_build`](Self::try_build) to get the error instead.
    pub fn build(&self) -> Vec<u8> {
        match self.try_build() {
            Ok(frame) => frame,
            Err(e) => panic!("FrameBuilder::build: {e} for {self:?}"),
        }
    }

    /// Builds the frame, or says why the specification cannot be built.
    pub fn try_build(&self) -> Result<Vec<u8>, WireError> {
        let mut buf = vec![0u8; self.frame_len()?];
        let n = self.build_into(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Builds the IPv4 datagram alone (no Ethernet header, no padding), e.g. the original of an ICMP error.
    pub fn build_ip(&self) -> Vec<u8> {
        let mut buf = self.build();
        let start = self.eth_header_len();
        let end = start + usize::from(Ipv4Packet::new_unchecked(&buf[start..]).total_len());
        buf.truncate(end);
        buf.drain(..start);
        buf
    }
}

/// An Ethernet frame carrying the ARP packet `repr`, padded to [`MIN_FRAME_LEN`].
pub fn arp_frame(src_mac: MacAddr, dst_mac: MacAddr, repr: &ArpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; MIN_FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(src_mac);
    eth.set_ethertype(EtherType::ARP);
    let mut arp = ArpPacket::new_unchecked(&mut eth.payload_mut()[..ARP_LEN]);
    // The buffer holds 46 bytes of payload, more than ARP_LEN: emit cannot fail.
    let _ = repr.emit(&mut arp);
    buf
}

#[cfg(test)]
mod tests {
    use super::super::icmp::error_allowed_for;
    use super::*;
    use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

    fn ep(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(addr, port)
    }

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// Parses `frame` with etherparse and checks the IPv4 header checksum and the transport checksum there.
    fn etherparse_check(frame: &[u8]) -> PacketHeaders<'_> {
        let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
        let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
            panic!("not IPv4: {h:?}")
        };
        assert_eq!(
            ip.header_checksum,
            ip.calc_header_checksum(),
            "IPv4 header checksum"
        );
        let payload = h.payload.slice();
        match &h.transport {
            Some(TransportHeader::Tcp(t)) => {
                assert_eq!(
                    t.checksum,
                    t.calc_checksum_ipv4(ip, payload).unwrap(),
                    "TCP checksum"
                )
            }
            Some(TransportHeader::Udp(u)) => {
                assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv4(ip, payload).unwrap(),
                    "UDP checksum"
                )
            }
            Some(TransportHeader::Icmpv4(i)) => {
                assert_eq!(
                    i.checksum,
                    i.icmp_type.calc_checksum(payload),
                    "ICMP checksum"
                )
            }
            other => panic!("unexpected transport {other:?}"),
        }
        h
    }

    #[test]
    fn tcp_frame_matches_etherparse() {
        let f = FrameBuilder::tcp(ep(A, 40000), ep(B, 443), TcpFlags::SYN)
            .macs(MacAddr([2, 0, 0, 0, 0, 0xa]), MacAddr([2, 0, 0, 0, 0, 0xb]))
            .ttl(63)
            .ident(77)
            .dont_frag()
            .seq_ack(1000, 0)
            .payload_len(5)
            .build();
        assert_eq!(f.len(), 14 + 20 + 20 + 5);
        let h = etherparse_check(&f);
        let Some(etherparse::LinkHeader::Ethernet2(eth)) = h.link else {
            panic!()
        };
        assert_eq!(eth.source, [2, 0, 0, 0, 0, 0xa]);
        assert_eq!(eth.destination, [2, 0, 0, 0, 0, 0xb]);
        let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
            panic!()
        };
        assert_eq!((ip.source, ip.destination), (A.octets(), B.octets()));
        assert_eq!(
            (ip.time_to_live, ip.identification, ip.dont_fragment),
            (63, 77, true)
        );
        let Some(TransportHeader::Tcp(t)) = &h.transport else {
            panic!()
        };
        assert_eq!(
            (t.source_port, t.destination_port, t.sequence_number),
            (40000, 443, 1000)
        );
        assert!(t.syn && !t.ack && !t.fin && !t.rst);
        assert_eq!(h.payload.slice(), &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn udp_frame_matches_etherparse_and_is_padded() {
        let f = FrameBuilder::udp(ep(A, 5000), ep(B, 53))
            .payload_len(4)
            .pad_to(MIN_FRAME_LEN)
            .build();
        assert_eq!(f.len(), 60);
        assert!(f[14 + 32..].iter().all(|&b| b == 0));
        let h = etherparse_check(&f[..14 + 32]);
        let Some(TransportHeader::Udp(u)) = &h.transport else {
            panic!()
        };
        assert_eq!(
            (u.source_port, u.destination_port, u.length),
            (5000, 53, 12)
        );
        // Our own views agree, padding excluded.
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(ip.verify_checksum() && udp.verify_checksum(A, B));
        assert_eq!(udp.payload(), &[0, 1, 2, 3]);
    }

    #[test]
    fn icmp_echo_frame_matches_etherparse() {
        let f = FrameBuilder::icmp_echo_request(A, B, 0x4242, 7)
            .payload_len(16)
            .build();
        let h = etherparse_check(&f);
        let Some(TransportHeader::Icmpv4(i)) = &h.transport else {
            panic!()
        };
        match i.icmp_type {
            etherparse::Icmpv4Type::EchoRequest(e) => assert_eq!((e.id, e.seq), (0x4242, 7)),
            ref other => panic!("{other:?}"),
        }
        let r = FrameBuilder::icmp_echo_reply(B, A, 0x4242, 7).build();
        etherparse_check(&r);
    }

    #[test]
    fn icmp_error_frame_quotes_the_original() {
        let original = FrameBuilder::udp(ep(A, 5000), ep(B, 53))
            .ttl(1)
            .payload_len(100)
            .build_ip();
        assert_eq!(original.len(), 128);
        assert!(error_allowed_for(
            &Ipv4Packet::new_checked(&original[..]).unwrap()
        ));
        let f = FrameBuilder::icmp_error(
            Ipv4Addr::new(10, 0, 0, 1),
            A,
            Icmpv4ErrorRepr::time_exceeded(),
            &original,
        )
        .build();
        assert_eq!(f.len(), 14 + 20 + 8 + 28);
        let h = etherparse_check(&f);
        let Some(TransportHeader::Icmpv4(i)) = &h.transport else {
            panic!()
        };
        assert!(matches!(
            i.icmp_type,
            etherparse::Icmpv4Type::TimeExceeded(_)
        ));
        assert_eq!(h.payload.slice(), &original[..28]);
        let full = FrameBuilder::icmp_error(B, A, Icmpv4ErrorRepr::frag_needed(1400), &original)
            .quote(QuoteLen::UpTo576)
            .build();
        assert_eq!(full.len(), 14 + 20 + 8 + 128);
        etherparse_check(&full);
        assert_eq!(
            FrameBuilder::icmp_error(B, A, Icmpv4ErrorRepr::time_exceeded(), &original[..10])
                .try_build(),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn vlan_and_fragments() {
        let f = FrameBuilder::udp(ep(A, 1), ep(B, 2)).vlan(100).build();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert!(eth.is_vlan_tagged());
        let tag = VlanTag::new_checked(eth.payload()).unwrap();
        assert_eq!((tag.vid(), tag.ethertype()), (100, EtherType::IPV4));
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        assert!(h.vlan.is_some());
        assert!(matches!(h.transport, Some(TransportHeader::Udp(_))));

        let first = FrameBuilder::udp(ep(A, 1), ep(B, 2))
            .ident(9)
            .fragment(0, true)
            .payload_len(16)
            .build();
        let ip = Ipv4Packet::new_checked(&first[14..]).unwrap();
        assert!(ip.is_fragment() && !ip.is_non_first_fragment() && ip.verify_checksum());
        assert_eq!(UdpPacket::new_checked(ip.payload()).unwrap().dst_port(), 2);
        let later = FrameBuilder::udp(ep(A, 1), ep(B, 2))
            .ident(9)
            .fragment(24, false)
            .payload_len(16)
            .build();
        let ip = Ipv4Packet::new_checked(&later[14..]).unwrap();
        assert!(ip.is_non_first_fragment() && ip.verify_checksum());
        assert_eq!((ip.frag_offset(), ip.payload().len()), (24, 16));
    }

    #[test]
    fn build_into_checks_the_buffer() {
        let b = FrameBuilder::tcp(ep(A, 1), ep(B, 2), TcpFlags::ACK).payload_len(10);
        let mut buf = [0u8; 64];
        assert_eq!(b.build_into(&mut buf[..63]), Err(WireError::BufferTooSmall));
        assert_eq!(b.build_into(&mut buf), Ok(64));
        assert_eq!(&buf[..], &b.build()[..]);
        let huge = FrameBuilder::raw(A, B, 47).payload_len(70_000);
        assert_eq!(huge.try_build(), Err(WireError::BadTotalLen));
    }

    #[test]
    fn arp_frames() {
        let req = ArpRepr::request(MacAddr([2, 0, 0, 0, 0, 9]), A, Ipv4Addr::new(10, 0, 0, 1));
        let f = arp_frame(MacAddr([2, 0, 0, 0, 0, 9]), MacAddr::BROADCAST, &req);
        assert_eq!(f.len(), 60);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::ARP);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()),
            Ok(req)
        );
    }
}
