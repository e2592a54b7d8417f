//! `[interfaces.inside]` and `[interfaces.outside]`: which packet I/O backend and device each side
//! uses, and the appliance's own address there.
//!
//! Layer: config (slow path). Invariants after validation: the address is a host address of its
//! subnet (not the network or broadcast address for prefixes up to /30); a gateway lies inside the
//! subnet and differs from the address; the outside side has a gateway; kernel interface names fit
//! `IFNAMSIZ`; a MAC is unicast.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::check::{self, quoted, span};
use crate::error::{ErrorKind, Located};
use crate::raw::RawInterface;

/// The packet I/O backend of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// Linux AF_PACKET sockets with mmap rings; `device` is a kernel interface.
    AfPacket,
    /// Linux AF_XDP sockets; `device` is a kernel interface.
    AfXdp,
    /// DPDK; `device` is a PCI address or a DPDK virtual device (`net_af_packet0,iface=out0`).
    Dpdk,
    /// An in-memory port pair for tests and benches; `device` is a free-form name.
    Memory,
}

impl Driver {
    /// Every driver, with its name in the config file.
    pub const ALL: [(&'static str, Driver); 4] = [
        ("af_packet", Driver::AfPacket),
        ("af_xdp", Driver::AfXdp),
        ("dpdk", Driver::Dpdk),
        ("memory", Driver::Memory),
    ];

    /// The name as written in the config file.
    pub const fn name(self) -> &'static str {
        match self {
            Driver::AfPacket => "af_packet",
            Driver::AfXdp => "af_xdp",
            Driver::Dpdk => "dpdk",
            Driver::Memory => "memory",
        }
    }

    /// Whether `device` names a Linux network interface (and so must fit `IFNAMSIZ`).
    pub const fn uses_kernel_interface(self) -> bool {
        matches!(self, Driver::AfPacket | Driver::AfXdp)
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether the group bit (the lowest bit of the first byte) is set.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The string is not six hex bytes separated by colons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected six hexadecimal bytes separated by colons, like \"02:00:00:00:00:01\"")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or(MacParseError)?;
            if part.len() != 2 {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

/// Which side of the appliance an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Inside,
    Outside,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Inside => "inside",
            Side::Outside => "outside",
        }
    }
}

/// One side of the appliance: backend, device and the appliance's own address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    driver: Driver,
    device: String,
    address: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    mac: Option<MacAddr>,
}

impl InterfaceConfig {
    /// The packet I/O backend.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The kernel interface name, DPDK device or memory port name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The appliance's own address on this side, with the subnet's prefix length
    /// (`address().addr()` is the address; it answers ARP for it).
    pub fn address(&self) -> Ipv4Net {
        self.address
    }

    /// The next hop on this side, if any (always set on the outside).
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// A MAC address to use instead of the device's own.
    pub fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    /// Validates one side.
    pub(crate) fn from_raw(side: Side, raw: Option<&RawInterface>) -> Result<Self, Located> {
        let base = format!("interfaces.{}", side.name());
        let key = |k: &str| format!("{base}.{k}");
        let Some(raw) = raw else {
            return Err(Located::missing(
                key("device"),
                format!("a [{base}] table with at least device and address"),
            ));
        };
        let driver = check::choice(&key("driver"), &raw.driver, Driver::AfPacket, &Driver::ALL)?;

        let Some(dev) = &raw.device else {
            return Err(Located::missing(
                key("device"),
                crate::schema::expected(&key("device")),
            ));
        };
        let device = dev.get_ref().clone();
        let bad_device = |valid: &str| {
            Located::at(
                key("device"),
                span(dev),
                ErrorKind::BadValue {
                    value: quoted(&device),
                    valid: valid.to_string(),
                },
            )
        };
        if device.trim().is_empty() {
            return Err(bad_device("a non-empty device name"));
        }
        if driver.uses_kernel_interface()
            && (device.len() > 15
                || device.contains(['/', ':'])
                || device.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(bad_device(
                "a Linux interface name: 1 to 15 bytes, no '/', ':' or whitespace",
            ));
        }

        let Some(addr) = &raw.address else {
            return Err(Located::missing(
                key("address"),
                crate::schema::expected(&key("address")),
            ));
        };
        let address: Ipv4Net = addr.get_ref().trim().parse().map_err(|_| {
            Located::at(
                key("address"),
                span(addr),
                ErrorKind::BadPrefix {
                    value: quoted(addr.get_ref()),
                    reason: "expected the appliance's address with its prefix length, like \
                             \"10.0.0.1/24\""
                        .to_string(),
                },
            )
        })?;
        let host = address.addr();
        if host.is_unspecified()
            || host.is_multicast()
            || host.is_broadcast()
            || host.is_loopback()
            || (address.prefix_len() <= 30
                && (host == address.network() || host == address.broadcast()))
        {
            return Err(Located::at(
                key("address"),
                span(addr),
                ErrorKind::BadPrefix {
                    value: quoted(addr.get_ref()),
                    reason:
                        "the address must be a host of its subnet, not its network or broadcast \
                             address (nor 0.0.0.0, loopback or multicast)"
                            .to_string(),
                },
            ));
        }

        let gateway = match &raw.gateway {
            None if side == Side::Outside => {
                return Err(Located::missing(
                    key("gateway"),
                    "the next hop toward the internet, an address in the outside subnet",
                ));
            }
            None => None,
            Some(g) => {
                let gw = check::address(&key("gateway"), g)?;
                if !address.contains(&gw)
                    || gw == host
                    || (address.prefix_len() <= 30
                        && (gw == address.network() || gw == address.broadcast()))
                {
                    return Err(Located::at(
                        key("gateway"),
                        span(g),
                        ErrorKind::Conflict {
                            message: format!(
                                "gateway {gw} is not a host of {} other than the appliance's own \
                                 address {host}; valid: an on-link address in {}",
                                address.trunc(),
                                address.trunc()
                            ),
                        },
                    ));
                }
                Some(gw)
            }
        };

        let mac = match &raw.mac {
            None => None,
            Some(m) => {
                let bad = |valid: &str| {
                    Located::at(
                        key("mac"),
                        span(m),
                        ErrorKind::BadValue {
                            value: quoted(m.get_ref()),
                            valid: valid.to_string(),
                        },
                    )
                };
                let mac: MacAddr = m.get_ref().trim().parse().map_err(|_| {
                    bad("six hexadecimal bytes separated by colons, like \"02:00:00:00:00:01\"")
                })?;
                if mac.is_multicast() || mac.octets() == [0; 6] {
                    return Err(bad(
                        "a unicast MAC address (lowest bit of the first byte clear, not all zero)",
                    ));
                }
                Some(mac)
            }
        };

        Ok(InterfaceConfig {
            driver,
            device,
            address,
            gateway,
            mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let mac: MacAddr = "02:00:0A:ff:00:01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:0a:ff:00:01");
        assert!(!mac.is_multicast());
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:00:00:00:00:01",
            "zz:00:00:00:00:01",
            "",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn driver_names_round_trip() {
        for (name, d) in Driver::ALL {
            assert_eq!(d.name(), name);
        }
    }
}
