//! UDP datagram headers (RFC 768).
//!
//! Layer: wire; fast path. The view is built over the IPv4 payload. `new_checked` requires the 8-byte header and
//! `8 <= length field <= buffer length`; [`UdpPacket::payload`] stops at the length field.
//!
//! Checksum rules (RFC 768, RFC 1122 §4.1.3.4): a stored 0 means "no checksum" and stays 0 through every rewrite
//! (verification passes); a computed 0 is sent as `0xffff`. Both rules live here, in [`UdpPacket::fill_checksum`]
//! and the `rewrite_*` / `update_*` helpers, so callers never special-case them.

use std::net::Ipv4Addr;

use super::bytes::{clamp, read_u16, write_u16};
use super::checksum::{self, Delta};
use super::ipv4::ip_proto;
use super::WireError;

/// Byte offsets of the UDP header.
mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
    pub(super) const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// Maps an updated checksum to its wire form: 0 is sent as `0xffff` (0 would mean "none").
#[inline(always)]
fn nonzero(csum: u16) -> u16 {
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes or than the length field; `BadTotalLen` if the length
    /// field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < UDP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < UDP_HEADER_LEN {
            return Err(WireError::BadTotalLen);
        }
        if field_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header plus data).
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the datagram carries no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= UDP_HEADER_LEN
    }

    /// Checksum as stored (0 = none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The data, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), field::PAYLOAD, usize::from(self.len()))]
    }

    /// The datagram as the length field delimits it (header included).
    #[inline]
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), 0, usize::from(self.len()))]
    }

    #[inline]
    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        checksum::pseudo_header_sum(src, dst, ip_proto::UDP, self.len())
            + checksum::sum(self.datagram())
    }

    /// Whether the checksum is correct for a datagram between `src` and `dst` (always true when it is 0).
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::is_valid(self.full_sum(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum untouched).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port (checksum untouched).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Stores a checksum value as is (0 = none).
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// The data, up to the length field, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let data = self.buffer.as_mut();
        let r = clamp(data.len(), field::PAYLOAD, len);
        &mut data[r]
    }

    /// Recomputes the checksum (a result of 0 is stored as `0xffff`).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.full_sum(src, dst));
        self.set_checksum(nonzero(c));
    }

    /// Applies an incremental change to a present checksum; leaves "no checksum" alone.
    #[inline(always)]
    fn update(&mut self, f: impl FnOnce(u16) -> u16) {
        let c = self.checksum();
        if c != 0 {
            self.set_checksum(nonzero(f(c)));
        }
    }

    /// Sets the source port and updates the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_src_port(&mut self, port: u16) -> u16 {
        let old = self.src_port();
        self.set_src_port(port);
        self.update(|c| checksum::update_u16(c, old, port));
        old
    }

    /// Sets the destination port and updates the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_dst_port(&mut self, port: u16) -> u16 {
        let old = self.dst_port();
        self.set_dst_port(port);
        self.update(|c| checksum::update_u16(c, old, port));
        old
    }

    /// Updates the checksum for a change of one pseudo-header address (the IPv4 header was rewritten).
    #[inline]
    pub fn update_checksum_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.update(|c| checksum::update_addr(c, old, new));
    }

    /// Applies a precomputed checksum [`Delta`] (a zero checksum stays zero).
    #[inline]
    pub fn apply_checksum_delta(&mut self, delta: Delta) {
        self.update(|c| delta.apply(c));
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// 10.0.0.2:40000 -> 198.51.100.7:53, 4 bytes of data.
    static DATAGRAM: [u8; 12] = [
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x0c, 0x91, 0x86, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0x9186);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, DST));
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 12];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(53);
        p.set_len(12);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..11]),
            Err(WireError::Truncated)
        );
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::BadTotalLen));
        // Length shorter than the buffer: the payload stops at the length field.
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&DATAGRAM);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn zero_checksum_means_none_and_stays_none() {
        let mut b = DATAGRAM;
        b[6] = 0;
        b[7] = 0;
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        p.rewrite_src_port(1234);
        p.update_checksum_addr(SRC, Ipv4Addr::new(203, 0, 113, 10));
        p.apply_checksum_delta(Delta::ZERO.u16(1, 2));
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last data word so that the checksum computes to zero, then check both the full and the
        // incremental paths store 0xffff.
        let mut b = DATAGRAM;
        b[6] = 0;
        b[7] = 0;
        b[10] = 0;
        b[11] = 0;
        let partial = checksum::fold(
            checksum::pseudo_header_sum(SRC, DST, ip_proto::UDP, 12) + checksum::sum(&b),
        );
        // Adding word w makes the sum partial + w; a sum of 0xffff gives checksum 0.
        let w = 0xffff - partial;
        b[10..12].copy_from_slice(&w.to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
        // Incremental: move away and back; the result must again be 0xffff, never 0.
        p.rewrite_dst_port(54);
        assert!(p.verify_checksum(SRC, DST));
        p.rewrite_dst_port(53);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn rewrites_keep_the_checksum_correct() {
        let mut b = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        let public = Ipv4Addr::new(203, 0, 113, 10);
        assert_eq!(p.rewrite_src_port(2048), 40000);
        p.update_checksum_addr(SRC, public);
        assert!(p.verify_checksum(public, DST));
        let c = p.checksum();
        p.fill_checksum(public, DST);
        assert_eq!(p.checksum(), c);
    }
}
