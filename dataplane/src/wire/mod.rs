//! Wire formats: zero-copy views of the headers the appliance parses and rewrites.
//!
//! Layer: the bottom of the data plane, shared by the fast path (in2out / out2in rewrite frames in place) and
//! the slow path (ARP, generated ICMP errors). Nothing here allocates, reads a clock or does I/O.
//!
//! Shape (smoltcp style): every header is a view `Xxx<T: AsRef<[u8]>>` over a byte buffer, with its byte offsets
//! written once in a private `mod field`. `new_checked` validates the lengths once; after it succeeds **no
//! accessor panics, whatever the bytes** (variable-length accessors such as `payload()` additionally clamp to the
//! buffer, so even a later careless setter cannot make them panic). `new_unchecked` skips the check: its accessors
//! may panic on a short buffer. Setters exist only where `T: AsMut<[u8]>` and never touch checksums: checksum
//! math lives in [`checksum`] (full sums and RFC 1624 incremental updates), and the `rewrite_*` helpers on the
//! views combine a setter with the matching incremental checksum update.
//!
//! One protocol per file: [`mac`], [`ethernet`], [`vlan`], [`arp`], [`ipv4`], [`tcp`], [`udp`], [`icmp`], plus
//! [`builder`], a test-and-bench helper that builds whole frames with correct checksums.

pub mod arp;
pub mod builder;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod mac;
pub mod tcp;
pub mod udp;
pub mod vlan;

#[cfg(test)]
mod proptests;

pub use arp::{ArpOperation, ArpPacket, ArpRepr, ARP_LEN};
pub use builder::{FrameBuilder, L4Spec};
pub use ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
pub use icmp::{Icmpv4ErrorRepr, Icmpv4Packet, Icmpv4Type, QuoteLen, QuotedL4, ICMP_HEADER_LEN};
pub use ipv4::{ip_proto, Ipv4Packet, Ipv4Repr, IPV4_MIN_HEADER_LEN};
pub use mac::MacAddr;
pub use tcp::{TcpFlags, TcpPacket, TCP_MIN_HEADER_LEN};
pub use udp::{UdpPacket, UDP_HEADER_LEN};
pub use vlan::{VlanTag, VLAN_TAG_LEN};

/// Why a buffer could not be viewed as a header (fast-path error: `Copy`, never allocates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field inside it says).
    #[error("buffer truncated")]
    Truncated,
    /// The IP version nibble is not 4.
    #[error("bad IP version")]
    BadVersion,
    /// A header length field is below its minimum or beyond the buffer (IPv4 IHL, TCP data offset).
    #[error("bad header length")]
    BadHeaderLen,
    /// A total length field is inconsistent (IPv4 total length, UDP length).
    #[error("bad total length")]
    BadTotalLen,
    /// A fixed field has a value this view does not handle (e.g. ARP for something other than Ethernet/IPv4).
    #[error("unsupported header variant")]
    Unsupported,
    /// The bytes are structurally invalid in some other way.
    #[error("malformed header")]
    Malformed,
    /// The output buffer is too small for what is being emitted.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Big-endian field access shared by the views. All functions index the slice, so they panic only on a short
/// slice; the views call them at offsets their `check_len` has validated.
pub(crate) mod bytes {
    use core::ops::Range;

    /// Reads a big-endian `u16` at `at`.
    #[inline(always)]
    pub(crate) fn read_u16(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    /// Reads a big-endian `u32` at `at`.
    #[inline(always)]
    pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
    }

    /// Writes a big-endian `u16` at `at`.
    #[inline(always)]
    pub(crate) fn write_u16(data: &mut [u8], at: usize, value: u16) {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes a big-endian `u32` at `at`.
    #[inline(always)]
    pub(crate) fn write_u32(data: &mut [u8], at: usize, value: u32) {
        data[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// `start..end` clamped so that it is a valid (possibly empty) range of a slice of length `len`.
    #[inline(always)]
    pub(crate) fn clamp(len: usize, start: usize, end: usize) -> Range<usize> {
        let end = end.min(len);
        start.min(end)..end
    }
}

#[cfg(test)]
mod tests {
    use super::bytes::*;

    #[test]
    fn clamp_never_produces_an_invalid_range() {
        assert_eq!(clamp(10, 2, 5), 2..5);
        assert_eq!(clamp(10, 2, 50), 2..10);
        assert_eq!(clamp(10, 20, 50), 10..10);
        assert_eq!(clamp(10, 7, 3), 3..3);
        assert_eq!(clamp(0, 0, 0), 0..0);
    }

    #[test]
    fn big_endian_round_trip() {
        let mut b = [0u8; 6];
        write_u16(&mut b, 0, 0x1234);
        write_u32(&mut b, 2, 0xdead_beef);
        assert_eq!(b, [0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(read_u16(&b, 0), 0x1234);
        assert_eq!(read_u32(&b, 2), 0xdead_beef);
    }
}
