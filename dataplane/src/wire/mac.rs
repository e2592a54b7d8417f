//! Ethernet MAC addresses (IEEE 802).
//!
//! Layer: wire; fast path (a `Copy` 6-byte value compared and written per frame). The group bit (bit 0 of the
//! first byte) marks multicast; all ones is broadcast.

use core::fmt;
use core::str::FromStr;

/// A 48-bit Ethernet MAC address in transmission order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseMacError {
    /// Not six colon- or dash-separated two-digit hexadecimal groups.
    #[error("expected six two-digit hex groups separated by ':' or '-'")]
    BadFormat,
}

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00` (e.g. the unknown target of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address from its six bytes.
    #[inline]
    pub const fn new(bytes: [u8; 6]) -> MacAddr {
        MacAddr(bytes)
    }

    /// The address from a 6-byte slice; `None` for any other length.
    #[inline]
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// The six bytes.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The six bytes, borrowed.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// All ones.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Group bit set (broadcast included).
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Group bit clear.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// All zeros.
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Locally administered bit (bit 1 of the first byte) set.
    #[inline]
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

/// Reads a MAC address at byte `at` of `data` (panics if `data` is shorter than `at + 6`).
#[inline(always)]
pub(crate) fn read(data: &[u8], at: usize) -> MacAddr {
    MacAddr([
        data[at],
        data[at + 1],
        data[at + 2],
        data[at + 3],
        data[at + 4],
        data[at + 5],
    ])
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        MacAddr(bytes)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut groups = s.split([':', '-']);
        for byte in &mut out {
            let g = groups.next().ok_or(ParseMacError::BadFormat)?;
            if g.len() != 2 || !g.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseMacError::BadFormat);
            }
            *byte = u8::from_str_radix(g, 16).map_err(|_| ParseMacError::BadFormat)?;
        }
        if groups.next().is_some() {
            return Err(ParseMacError::BadFormat);
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse() {
        let m = MacAddr([0x02, 0x00, 0x5e, 0x10, 0xab, 0xff]);
        assert_eq!(m.to_string(), "02:00:5e:10:ab:ff");
        assert_eq!(format!("{m:?}"), "02:00:5e:10:ab:ff");
        assert_eq!("02:00:5e:10:ab:ff".parse::<MacAddr>(), Ok(m));
        assert_eq!("02-00-5E-10-AB-FF".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "02:00:5e:10:ab",
            "02:00:5e:10:ab:ff:00",
            "2:00:5e:10:ab:ff",
            "0g:00:5e:10:ab:ff",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(ParseMacError::BadFormat),
                "{bad}"
            );
        }
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_broadcast());
        let u = MacAddr([0x02, 0, 0, 0, 0, 1]);
        assert!(u.is_unicast() && u.is_local() && !u.is_multicast() && !u.is_zero());
        assert!(MacAddr::ZERO.is_zero());
        assert_eq!(
            MacAddr::from_slice(&[1, 2, 3, 4, 5, 6]),
            Some(MacAddr([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }
}
