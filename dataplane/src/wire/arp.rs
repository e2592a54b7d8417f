//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Layer: wire; slow path (the slow-path core answers ARP for the appliance's addresses and resolves next hops).
//! [`ArpPacket`] is the byte view; `new_checked` requires the 28-byte Ethernet/IPv4 form (hardware type 1,
//! protocol type 0x0800, lengths 6 and 4) and rejects anything else as `Unsupported`. [`ArpRepr`] is the parsed
//! form, restricted to requests and replies.

use core::fmt;
use std::net::Ipv4Addr;

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::ethernet::EtherType;
use super::mac::{self, MacAddr};
use super::WireError;

/// Byte offsets of the Ethernet/IPv4 ARP packet.
mod field {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: usize = 6;
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const THA: usize = 18;
    pub(super) const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;

/// ARP hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

/// An ARP operation code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// Request (who has `target_ip`?).
    pub const REQUEST: ArpOperation = ArpOperation(1);
    /// Reply (`sender_ip` is at `sender_mac`).
    pub const REPLY: ArpOperation = ArpOperation(2);
}

impl fmt::Debug for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpOperation::REQUEST => f.write_str("Request"),
            ArpOperation::REPLY => f.write_str("Reply"),
            ArpOperation(other) => write!(f, "ArpOperation({other})"),
        }
    }
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 28 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and [`check_format`](Self::check_format).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        p.check_format()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than [`ARP_LEN`] (trailing Ethernet padding is allowed).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < ARP_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Unsupported` unless hardware type 1, protocol type 0x0800, hardware length 6, protocol length 4.
    /// Call after [`check_len`](Self::check_len).
    #[inline]
    pub fn check_format(&self) -> Result<(), WireError> {
        if self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
        {
            Ok(())
        } else {
            Err(WireError::Unsupported)
        }
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        mac::read(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        mac::read(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(read_u32(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v.0);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, op: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, op.0);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::SPA, addr.to_bits());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::TPA, addr.to_bits());
    }
}

/// A parsed Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub op: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a checked packet: `Unsupported` for a non-Ethernet/IPv4 format or an operation other than request
    /// and reply.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr, WireError> {
        packet.check_len()?;
        packet.check_format()?;
        let op = packet.operation();
        if op != ArpOperation::REQUEST && op != ArpOperation::REPLY {
            return Err(WireError::Unsupported);
        }
        Ok(ArpRepr {
            op,
            sender_mac: packet.sender_hardware_addr(),
            sender_ip: packet.sender_protocol_addr(),
            target_mac: packet.target_hardware_addr(),
            target_ip: packet.target_protocol_addr(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        ARP_LEN
    }

    /// Writes all 28 bytes (fixed fields included) into `packet`, whose buffer must hold at least 28 bytes
    /// (`BufferTooSmall` otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut ArpPacket<T>,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < ARP_LEN {
            return Err(WireError::BufferTooSmall);
        }
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.op);
        packet.set_sender_hardware_addr(self.sender_mac);
        packet.set_sender_protocol_addr(self.sender_ip);
        packet.set_target_hardware_addr(self.target_mac);
        packet.set_target_protocol_addr(self.target_ip);
        Ok(())
    }

    /// A request from `sender` asking for `target_ip`'s hardware address.
    pub fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            op: ArpOperation::REQUEST,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    /// The reply that `our_mac` gives to this request (sender and target swapped, our address as sender).
    pub fn reply(&self, our_mac: MacAddr) -> ArpRepr {
        ArpRepr {
            op: ArpOperation::REPLY,
            sender_mac: our_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 10.0.0.1? Tell 10.0.0.2 (02:00:00:00:00:02).
    static REQUEST: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // lengths
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sender MAC
        0x0a, 0x00, 0x00, 0x02, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC
        0x0a, 0x00, 0x00, 0x01, // target IP
    ];

    fn repr() -> ArpRepr {
        ArpRepr::request(
            MacAddr([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
        )
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), ArpOperation::REQUEST);
        assert_eq!(p.sender_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.sender_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ArpRepr::parse(&p), Ok(repr()));
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 28];
        let mut p = ArpPacket::new_unchecked(&mut buf[..]);
        repr().emit(&mut p).unwrap();
        assert_eq!(buf, REQUEST);
        assert_eq!(
            repr().emit(&mut ArpPacket::new_unchecked(&mut [0u8; 27][..])),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn reply_swaps_roles() {
        let ours = MacAddr([2, 0, 0, 0, 0, 0x10]);
        let r = repr().reply(ours);
        assert_eq!(r.op, ArpOperation::REPLY);
        assert_eq!(
            (r.sender_mac, r.sender_ip),
            (ours, Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            (r.target_mac, r.target_ip),
            (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 0, 0, 2))
        );
        let mut buf = [0u8; 28];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf[6..8], [0, 2]);
    }

    #[test]
    fn rejects_other_formats() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]),
            Err(WireError::Truncated)
        );
        for (at, v) in [(1usize, 6u8), (3, 0xdd), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = v;
            assert_eq!(
                ArpPacket::new_checked(&b[..]),
                Err(WireError::Unsupported),
                "byte {at}"
            );
        }
        let mut b = REQUEST;
        b[7] = 3; // RARP request
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Err(WireError::Unsupported));
        // Trailing padding is fine.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&padded[..]).unwrap()),
            Ok(repr())
        );
    }
}
