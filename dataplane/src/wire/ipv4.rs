//! IPv4 headers (RFC 791), with options and fragmentation fields.
//!
//! Layer: wire; fast path. [`Ipv4Packet::new_checked`] validates once: version 4, IHL >= 5, header within the
//! buffer, `header_len <= total_len <= buffer length`. The buffer may be longer than `total_len` (Ethernet
//! padding): [`Ipv4Packet::payload`] stops at `total_len`, so transport views built on it see exactly the
//! datagram. [`Ipv4Packet::new_checked_embedded`] is the variant for the header quoted inside an ICMP error,
//! whose `total_len` describes the original datagram and so exceeds the bytes present.
//!
//! Raw setters never touch the checksum. The `rewrite_*` helpers set a field *and* update the header checksum
//! incrementally (RFC 1624, see [`checksum`]); the transport checksum, which also covers the
//! addresses through the pseudo-header, is the caller's to update (`TcpPacket::update_checksum_addr` and
//! friends). [`Ipv4Repr`] builds fresh headers for packets the appliance generates (ICMP errors).

use std::net::Ipv4Addr;

use super::bytes::{clamp, read_u16, read_u32, write_u16, write_u32};
use super::checksum;
use super::WireError;

/// Byte offsets of the IPv4 header.
mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC_ADDR: usize = 12;
    pub(super) const DST_ADDR: usize = 16;
    pub(super) const OPTIONS: usize = 20;
}

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;

/// Largest IPv4 header (IHL 15).
pub const IPV4_MAX_HEADER_LEN: usize = 60;

/// IP protocol numbers (IANA) for [`Ipv4Packet::protocol`].
pub mod ip_proto {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 20 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and a version check (`BadVersion` unless 4).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        if p.version() != 4 {
            return Err(WireError::BadVersion);
        }
        Ok(p)
    }

    /// Wraps the IPv4 header quoted in an ICMP error (RFC 792): like [`new_checked`](Self::new_checked) except
    /// that `total_len` may exceed the buffer (only the header and the first bytes of the original payload are
    /// quoted). [`payload`](Self::payload) then returns what is present.
    #[inline]
    pub fn new_checked_embedded(buffer: T) -> Result<Ipv4Packet<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_header_len()?;
        if p.version() != 4 {
            return Err(WireError::BadVersion);
        }
        if usize::from(p.total_len()) < p.header_len() {
            return Err(WireError::BadTotalLen);
        }
        Ok(p)
    }

    /// Checks the lengths: `Truncated` if the buffer is shorter than 20 bytes or than the header; `BadHeaderLen`
    /// if IHL < 5; `BadTotalLen` if total length < header length or > buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_header_len()?;
        let total = usize::from(self.total_len());
        if total < self.header_len() || total > self.buffer.as_ref().len() {
            return Err(WireError::BadTotalLen);
        }
        Ok(())
    }

    #[inline]
    fn check_header_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < IPV4_MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if hl > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer (which may extend past `total_len`).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte (formerly TOS).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification (the fragment reassembly key with src, dst and protocol).
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram (MF set or non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// A fragment other than the first: its payload carries no transport header.
    #[inline]
    pub fn is_non_first_fragment(&self) -> bool {
        self.flags_offset() & OFFSET_MASK != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`ip_proto`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Same as [`protocol`](Self::protocol) (smoltcp's name).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.protocol()
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The header bytes (options included).
    #[inline]
    pub fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), 0, self.header_len())]
    }

    /// The options (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), field::OPTIONS, self.header_len())]
    }

    /// The payload: from the end of the header to `total_len` (Ethernet padding excluded; for an embedded
    /// header, to the end of the quoted bytes).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), self.header_len(), usize::from(self.total_len()))]
    }

    /// Whether the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::sum(self.header()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4; at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = (len.min(IPV4_MAX_HEADER_LEN) / 4) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets the DSCP and ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    #[inline]
    fn set_flags_offset(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Clears the flags and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_flags_offset(0);
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = self.flags_offset();
        self.set_flags_offset(if value { v | FLAG_DF } else { v & !FLAG_DF });
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = self.flags_offset();
        self.set_flags_offset(if value { v | FLAG_MF } else { v & !FLAG_MF });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let v = self.flags_offset();
        self.set_flags_offset((v & !OFFSET_MASK) | (offset >> 3));
    }

    /// Sets the TTL (checksum untouched).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Same as [`set_protocol`](Self::set_protocol).
    #[inline]
    pub fn set_next_header(&mut self, protocol: u8) {
        self.set_protocol(protocol);
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, csum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, csum);
    }

    /// Sets the source address (checksum untouched).
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::SRC_ADDR, addr.to_bits());
    }

    /// Sets the destination address (checksum untouched).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::DST_ADDR, addr.to_bits());
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let data = self.buffer.as_mut();
        let r = clamp(data.len(), field::OPTIONS, hl);
        &mut data[r]
    }

    /// The payload (up to `total_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        let data = self.buffer.as_mut();
        let r = clamp(data.len(), hl, total);
        &mut data[r]
    }

    /// The whole buffer, writable.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::compute(self.header());
        self.set_checksum(c);
    }

    /// Sets the TTL and updates the header checksum incrementally.
    #[inline]
    pub fn rewrite_ttl(&mut self, ttl: u8) {
        let proto = u16::from(self.protocol());
        let old = (u16::from(self.ttl()) << 8) | proto;
        let new = (u16::from(ttl) << 8) | proto;
        self.set_ttl(ttl);
        let c = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Decrements the TTL (saturating at 0) with an incremental checksum update; returns the new TTL.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl().saturating_sub(1);
        self.rewrite_ttl(ttl);
        ttl
    }

    /// Sets the source address and updates the header checksum incrementally; returns the old address (the
    /// transport checksum still needs the same change).
    #[inline]
    pub fn rewrite_src_addr(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        self.set_src_addr(addr);
        let c = checksum::update_addr(self.checksum(), old, addr);
        self.set_checksum(c);
        old
    }

    /// Sets the destination address and updates the header checksum incrementally; returns the old address.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        self.set_dst_addr(addr);
        let c = checksum::update_addr(self.checksum(), old, addr);
        self.set_checksum(c);
        old
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level IPv4 header without options, for building packets (ICMP errors, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol (see [`ip_proto`]).
    pub protocol: u8,
    /// Payload length in bytes (total length minus the header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Don't Fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads the fields of a checked packet (options, fragment fields and the checksum are not interpreted).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(WireError::BadVersion);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()).saturating_sub(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dscp_ecn: packet.dscp_ecn(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Header length [`emit`](Self::emit) writes (20).
    #[inline]
    pub const fn header_len(&self) -> usize {
        IPV4_MIN_HEADER_LEN
    }

    /// Header plus payload length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        IPV4_MIN_HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options, not a fragment) with its checksum into `packet`. The payload is the
    /// caller's. `BufferTooSmall` if the buffer is shorter than 20 bytes, `BadTotalLen` if the total length
    /// exceeds 65,535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < IPV4_MIN_HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let total = u16::try_from(self.buffer_len()).map_err(|_| WireError::BadTotalLen)?;
        packet.set_version(4);
        packet.set_header_len(IPV4_MIN_HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.2 -> 198.51.100.7, UDP, TTL 64, DF, ident 0x1234, 10 bytes of payload, then 4 bytes of Ethernet
    /// padding that must not show in the payload.
    static PACKET: [u8; 34] = [
        0x45, 0x00, 0x00, 0x1e, // v4, IHL 5, total 30
        0x12, 0x34, 0x40, 0x00, // ident, DF
        0x40, 0x11, 0xf4, 0x5e, // TTL 64, UDP, checksum
        0x0a, 0x00, 0x00, 0x02, // src
        0xc6, 0x33, 0x64, 0x07, // dst
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, // payload
        0x00, 0x00, 0x00, 0x00, // padding
    ];

    /// IHL 6 with a 4-byte option (NOP NOP NOP EOL), DSCP/ECN 0x10, MF with offset 88, TTL 1, TCP, 8 bytes.
    static FRAGMENT: [u8; 32] = [
        0x46, 0x10, 0x00, 0x20, 0xab, 0xcd, 0x20, 0x0b, 0x01, 0x06, 0xb6, 0xb2, 0x0a, 0x00, 0x00,
        0x02, 0xc6, 0x33, 0x64, 0x07, 0x01, 0x01, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01,
        0x02, 0x03,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 2),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: ip_proto::UDP,
            payload_len: 10,
            ttl: 64,
            ident: 0x1234,
            dscp_ecn: 0,
            dont_frag: true,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 30);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.checksum(), 0xf45e);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(Ipv4Repr::parse(&p), Ok(repr()));
    }

    #[test]
    fn deconstruct_options_and_fragment() {
        let p = Ipv4Packet::new_checked(&FRAGMENT[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp_ecn(), 0x10);
        assert_eq!(p.dscp(), 4);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.ident(), 0xabcd);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 88);
        assert!(p.is_fragment());
        assert!(p.is_non_first_fragment());
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), ip_proto::TCP);
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 30];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(30);
        p.set_ident(0x1234);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_ttl(64);
        p.set_protocol(ip_proto::UDP);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.set_dst_addr(Ipv4Addr::new(198, 51, 100, 7));
        p.fill_checksum();
        p.payload_mut()
            .copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(buf[..], PACKET[..30]);
    }

    #[test]
    fn construct_options_and_fragment() {
        let mut buf = [0u8; 32];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp_ecn(0x10);
        p.set_total_len(32);
        p.set_ident(0xabcd);
        p.set_more_frags(true);
        p.set_frag_offset(88);
        p.set_ttl(1);
        p.set_next_header(ip_proto::TCP);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.set_dst_addr(Ipv4Addr::new(198, 51, 100, 7));
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.payload_mut()
            .copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]);
        p.fill_checksum();
        assert_eq!(buf, FRAGMENT);
    }

    #[test]
    fn repr_emit() {
        let mut buf = [0u8; 30];
        repr()
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..20]))
            .unwrap();
        buf[20..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(buf[..], PACKET[..30]);
        let big = Ipv4Repr {
            payload_len: 65_516,
            ..repr()
        };
        assert_eq!(
            big.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])),
            Err(WireError::BadTotalLen)
        );
        assert_eq!(
            repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..19])),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn length_checks() {
        let check = |b: &[u8]| Ipv4Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&PACKET[..19]), Err(WireError::Truncated));
        // Total length beyond the buffer.
        assert_eq!(check(&PACKET[..29]), Err(WireError::BadTotalLen));
        assert_eq!(check(&PACKET[..30]), Ok(()));
        let mut b = PACKET;
        b[0] = 0x44; // IHL 4
        assert_eq!(check(&b), Err(WireError::BadHeaderLen));
        b[0] = 0x4f; // IHL 15 = 60 bytes > 34
        assert_eq!(check(&b), Err(WireError::Truncated));
        b[0] = 0x65;
        assert_eq!(check(&b), Err(WireError::BadVersion));
        let mut b = PACKET;
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total < header
        assert_eq!(check(&b), Err(WireError::BadTotalLen));
    }

    #[test]
    fn embedded_header_may_be_longer_than_the_quote() {
        // The first 28 bytes of PACKET (header + 8 bytes) as quoted in an ICMP error: total_len says 30.
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..28]).map(|_| ()),
            Err(WireError::BadTotalLen)
        );
        let p = Ipv4Packet::new_checked_embedded(&PACKET[..28]).unwrap();
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(p.verify_checksum());
        let mut b = PACKET;
        b[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked_embedded(&b[..28]).map(|_| ()),
            Err(WireError::BadTotalLen)
        );
    }

    #[test]
    fn careless_setters_do_not_make_accessors_panic() {
        let mut b = PACKET;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        p.set_total_len(u16::MAX);
        assert_eq!(p.options().len(), 14);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
        assert_eq!(p.options_mut().len(), 14);
        let _ = p.verify_checksum();
        p.fill_checksum();
    }

    #[test]
    fn rewrites_keep_the_checksum_correct() {
        let mut b = PACKET;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        let old = p.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(old, Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.verify_checksum());
        p.rewrite_dst_addr(Ipv4Addr::new(10, 9, 8, 7));
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        p.rewrite_ttl(0);
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
    }
}
