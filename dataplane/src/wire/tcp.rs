//! TCP segment headers (RFC 9293).
//!
//! Layer: wire; fast path. The view is built over exactly one segment, i.e. over
//! [`Ipv4Packet::payload`](super::ipv4::Ipv4Packet::payload) (which stops at the IPv4 total length), because the
//! checksum covers the whole buffer. `new_checked` requires 20 bytes and a data offset between 20 and the buffer
//! length. The NAT core reads the ports and [`TcpFlags`] (for its state machine), rewrites one port with
//! [`TcpPacket::rewrite_src_port`] / [`TcpPacket::rewrite_dst_port`] and folds the address change into the
//! checksum with [`TcpPacket::update_checksum_addr`], all incremental (RFC 1624).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::bytes::{clamp, read_u16, read_u32, write_u16, write_u32};
use super::checksum::{self, Delta};
use super::ipv4::ip_proto;
use super::WireError;

/// Byte offsets of the TCP header.
mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ_NUM: usize = 4;
    pub(super) const ACK_NUM: usize = 8;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
    pub(super) const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const TCP_MIN_HEADER_LEN: usize = 20;

/// The eight TCP control bits (byte 13 of the header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);
    /// No flag.
    pub const NONE: TcpFlags = TcpFlags(0);

    /// All of `other`'s bits are set in `self`.
    #[inline(always)]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Any of `other`'s bits is set in `self`.
    #[inline(always)]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// No bit set.
    #[inline(always)]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw byte.
    #[inline(always)]
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 20 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 20 bytes or than the data offset; `BadHeaderLen` if the data
    /// offset is below 20 bytes.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < TCP_MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < TCP_MIN_HEADER_LEN {
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

    /// The whole segment.
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Receive window.
    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options (raw bytes).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), field::OPTIONS, self.header_len())]
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), self.header_len(), data.len())]
    }

    #[inline]
    fn full_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let data = self.buffer.as_ref();
        checksum::pseudo_header_sum(src, dst, ip_proto::TCP, data.len() as u16)
            + checksum::sum(data)
    }

    /// Whether the checksum is correct for a segment between `src` and `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::is_valid(self.full_sum(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4; at most 60), keeping the low nibble.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let off = (len.min(60) / 4) as u8;
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (off << 4);
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the receive window.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let data = self.buffer.as_mut();
        let r = clamp(data.len(), field::OPTIONS, hl);
        &mut data[r]
    }

    /// The data after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let data = self.buffer.as_mut();
        let r = clamp(data.len(), hl, data.len());
        &mut data[r]
    }

    /// Recomputes the checksum over the pseudo-header and the whole segment.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.full_sum(src, dst));
        self.set_checksum(c);
    }

    /// Sets the source port and updates the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_src_port(&mut self, port: u16) -> u16 {
        let old = self.src_port();
        self.set_src_port(port);
        self.set_checksum(checksum::update_u16(self.checksum(), old, port));
        old
    }

    /// Sets the destination port and updates the checksum incrementally; returns the old port.
    #[inline]
    pub fn rewrite_dst_port(&mut self, port: u16) -> u16 {
        let old = self.dst_port();
        self.set_dst_port(port);
        self.set_checksum(checksum::update_u16(self.checksum(), old, port));
        old
    }

    /// Updates the checksum for a change of one pseudo-header address (the IPv4 header was rewritten).
    #[inline]
    pub fn update_checksum_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.set_checksum(checksum::update_addr(self.checksum(), old, new));
    }

    /// Applies a precomputed checksum [`Delta`] (e.g. address and port changes folded once).
    #[inline]
    pub fn apply_checksum_delta(&mut self, delta: Delta) {
        self.set_checksum(delta.apply(self.checksum()));
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// SYN 10.0.0.2:40000 -> 198.51.100.7:443, seq 0x01020304, window 64240, MSS 1460 option.
    static SYN: [u8; 24] = [
        0x9c, 0x40, 0x01, 0xbb, // ports
        0x01, 0x02, 0x03, 0x04, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x60, 0x02, 0xfa, 0xf0, // data offset 6, SYN, window
        0xc6, 0xf7, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    #[test]
    fn deconstruct() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x0102_0304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert!(p.flags().contains(TcpFlags::SYN));
        assert!(!p.flags().contains(TcpFlags::SYN | TcpFlags::ACK));
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0xc6f7);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(198, 51, 100, 8)));
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(443);
        p.set_seq_number(0x0102_0304);
        p.set_ack_number(0);
        p.set_header_len(24);
        p.set_flags(TcpFlags::SYN);
        p.set_window(64240);
        p.set_urgent_at(0);
        p.options_mut().copy_from_slice(&[2, 4, 5, 0xb4]);
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, SYN);
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            TcpPacket::new_checked(&SYN[..23]),
            Err(WireError::Truncated)
        );
        let mut b = SYN;
        b[12] = 0x40; // 16 bytes
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::BadHeaderLen));
        let mut b = SYN;
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.set_header_len(60);
        assert!(p.payload().is_empty() && p.payload_mut().is_empty());
        assert_eq!(p.options().len(), 4);
    }

    #[test]
    fn flags() {
        let f = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(format!("{f:?}"), "SYN|ACK");
        assert_eq!(TcpFlags::NONE.to_string(), "(none)");
        assert!(f.intersects(TcpFlags::ACK | TcpFlags::FIN));
        assert!(!f.intersects(TcpFlags::RST | TcpFlags::FIN));
        assert_eq!((f & TcpFlags::ACK), TcpFlags::ACK);
        let mut g = TcpFlags::FIN;
        g |= TcpFlags::ACK;
        assert_eq!(g.bits(), 0x11);
        assert!(TcpFlags::default().is_empty());
    }

    #[test]
    fn rewrites_keep_the_checksum_correct() {
        let mut b = SYN;
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.rewrite_src_port(61_000), 40000);
        p.update_checksum_addr(SRC, Ipv4Addr::new(203, 0, 113, 10));
        assert!(p.verify_checksum(Ipv4Addr::new(203, 0, 113, 10), DST));
        assert_eq!(p.rewrite_dst_port(8443), 443);
        assert!(p.verify_checksum(Ipv4Addr::new(203, 0, 113, 10), DST));
        let new_src = Ipv4Addr::new(10, 1, 1, 1);
        let delta = Delta::ZERO
            .addr(Ipv4Addr::new(203, 0, 113, 10), new_src)
            .u16(61_000, 1024);
        p.set_src_port(1024);
        p.apply_checksum_delta(delta);
        assert!(p.verify_checksum(new_src, DST));
    }
}
