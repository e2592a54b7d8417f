//! Ethernet II frames (IEEE 802.3 with an EtherType; no FCS: NICs strip and add it).
//!
//! Layer: wire; fast path. The view checks only that the 14-byte header is present; the payload is everything
//! after it, including any padding up to the 60-byte minimum (upper layers trim by their own length fields).
//! An 802.1Q/802.1ad tagged frame shows `EtherType::VLAN` / `EtherType::QINQ` here, and its tag is read with
//! [`VlanTag`](super::vlan::VlanTag) over [`EthernetFrame::payload`] (inner payload at frame offset 18).

use core::fmt;

use super::bytes::{read_u16, write_u16};
use super::mac::{self, MacAddr};
use super::WireError;

/// Byte offsets of the Ethernet II header.
mod field {
    use core::ops::RangeFrom;

    pub(super) const DESTINATION: usize = 0;
    pub(super) const SOURCE: usize = 6;
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of an untagged Ethernet II header.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// An EtherType (IEEE 802 numbers) as carried in the Ethernet and 802.1Q headers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// Internet Protocol version 4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// Address Resolution Protocol.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag (customer tag).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service tag (Q-in-Q).
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// Internet Protocol version 6.
    pub const IPV6: EtherType = EtherType(0x86dd);

    /// Whether this EtherType announces a VLAN tag (802.1Q or 802.1ad).
    #[inline]
    pub fn is_vlan(self) -> bool {
        self == EtherType::VLAN || self == EtherType::QINQ
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::VLAN => f.write_str("802.1Q"),
            EtherType::QINQ => f.write_str("802.1ad"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType(other) => write!(f, "0x{other:04x}"),
        }
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({self})")
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than the header.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the header is present: `Truncated` if the buffer is shorter than 14 bytes.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < ETHERNET_HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The header length: always 14 (a VLAN tag, if any, is part of the payload).
    #[inline]
    pub const fn header_len(&self) -> usize {
        ETHERNET_HEADER_LEN
    }

    /// The whole frame.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        mac::read(self.buffer.as_ref(), field::DESTINATION)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        mac::read(self.buffer.as_ref(), field::SOURCE)
    }

    /// EtherType of the payload (or of the VLAN tag that starts it).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Whether the frame carries an 802.1Q or 802.1ad tag.
    #[inline]
    pub fn is_vlan_tagged(&self) -> bool {
        self.ethertype().is_vlan()
    }

    /// Everything after the 14-byte header (padding included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(field::PAYLOAD).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        let d = field::DESTINATION;
        self.buffer.as_mut()[d..d + 6].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        let s = field::SOURCE;
        self.buffer.as_mut()[s..s + 6].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Everything after the 14-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let start = ETHERNET_HEADER_LEN.min(data.len());
        &mut data[start..]
    }

    /// The whole frame, writable.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert!(!f.is_vlan_tagged());
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(f.into_inner(), &FRAME[..]);
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 18];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 2]));
        f.set_ethertype(EtherType::IPV4);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]),
            Err(WireError::Truncated)
        );
        let f = EthernetFrame::new_checked(&FRAME[..14]).unwrap();
        assert!(f.payload().is_empty());
    }

    #[test]
    fn ethertype_display() {
        assert_eq!(EtherType::ARP.to_string(), "ARP");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert!(
            EtherType::QINQ.is_vlan() && EtherType::VLAN.is_vlan() && !EtherType::IPV4.is_vlan()
        );
    }
}
