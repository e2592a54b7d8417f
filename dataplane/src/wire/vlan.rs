//! IEEE 802.1Q / 802.1ad VLAN tags.
//!
//! Layer: wire; fast path. A tag follows the Ethernet source address when the outer EtherType is
//! [`EtherType::VLAN`] (0x8100) or [`EtherType::QINQ`] (0x88a8): the view is built over the Ethernet payload and
//! holds the 2-byte tag control information (PCP, DEI, VID) and the inner EtherType; the inner payload starts
//! 4 bytes later, i.e. at frame offset 18. The NAT core uses it to either forward a tagged frame or drop it with a
//! counter; nested tags (Q-in-Q) are another `VlanTag` over this one's payload.

use super::bytes::{read_u16, write_u16};
use super::ethernet::EtherType;
use super::WireError;

/// Byte offsets within the tag.
mod field {
    pub(super) const TCI: usize = 0;
    pub(super) const ETHERTYPE: usize = 2;
    pub(super) const PAYLOAD: usize = 4;
}

/// Length of one VLAN tag (TCI + inner EtherType).
pub const VLAN_TAG_LEN: usize = 4;

/// A read/write view of a VLAN tag and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 4 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>, WireError> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// `Truncated` if the buffer is shorter than a tag.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
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

    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    #[inline]
    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }

    /// VLAN identifier (0 = priority tag only, 4095 reserved).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// Priority code point (802.1p).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// What follows the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Sets the VLAN identifier (low 12 bits of `vid`), keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Sets the priority (low 3 bits of `pcp`), keeping DEI and VID.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// What follows the tag, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let start = field::PAYLOAD.min(data.len());
        &mut data[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::super::ethernet::EthernetFrame;
    use super::*;

    /// An 802.1Q-tagged frame: VID 100, PCP 5, DEI 0, carrying 4 bytes of IPv4.
    static FRAME: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // PCP 5, VID 100
        0x08, 0x00, // inner: IPv4
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert!(f.is_vlan_tagged());
        assert_eq!(f.ethertype(), EtherType::VLAN);
        let tag = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!(tag.tci(), 0xa064);
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.payload(), &[0x45, 0x00, 0x00, 0x14]);
        // The inner payload sits at frame offset 18.
        assert_eq!(tag.payload().as_ptr(), FRAME[18..].as_ptr());
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 8];
        let mut tag = VlanTag::new_unchecked(&mut buf[..]);
        tag.set_vid(100);
        tag.set_pcp(5);
        tag.set_ethertype(EtherType::IPV4);
        tag.payload_mut().copy_from_slice(&[0x45, 0x00, 0x00, 0x14]);
        assert_eq!(buf, FRAME[14..]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            VlanTag::new_checked(&FRAME[14..17]),
            Err(WireError::Truncated)
        );
        assert!(VlanTag::new_checked(&FRAME[14..18])
            .unwrap()
            .payload()
            .is_empty());
    }
}
