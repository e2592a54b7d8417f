//! `[nat]`: the public addresses, the SNAT port range, how ports are handed out, static 1:1
//! mappings and the no-NAT destinations.
//!
//! Layer: config (slow path). Invariants after validation:
//! - 1 to 16 public addresses (`public_ips` plus the expanded `public_prefixes`), unicast,
//!   distinct, outside the private prefixes;
//! - `1024 <= port_range.0 <= port_range.1 <= 65535`; reserved ranges are 8-port blocks (aligned
//!   on multiples of 8, clipped to the port range), sorted and disjoint, and at least one SNAT port
//!   per address is left;
//! - private prefixes and no-NAT prefixes have no host bits and do not overlap among themselves;
//! - static 1:1 mappings use distinct private and distinct public addresses, none of them a SNAT
//!   address; the private side lies in a private prefix;
//! - in preallocated mode the instances are distinct private addresses (sorted), the ports per
//!   instance are a multiple of 8 (from the default tier table of the seeds when not given), and
//!   every instance gets its own range on some public address.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use toml::Spanned;

use crate::check::{self, quoted, span};
use crate::error::{ErrorKind, Located};
use crate::raw::{List, RawNat, RawPreallocated};
use crate::timeouts::Timeouts;

/// Lowest SNAT port (ports below are never used for SNAT).
pub const MIN_PORT: u16 = 1024;
/// At most this many public addresses (as the seeds' NAT gateway).
pub const MAX_PUBLIC_IPS: usize = 16;
/// Default cap on sessions.
pub const DEFAULT_MAX_SESSIONS: u32 = 2_000_000;
/// Highest `max_sessions` accepted.
pub const MAX_SESSIONS: u32 = 1 << 28;
/// Default cap on concurrent flows per public IP to one destination.
pub const DEFAULT_MAX_PER_DESTINATION: u32 = 50_000;
/// Largest pool the default preallocation table covers.
pub const MAX_DEFAULT_POOL: usize = 1000;
/// The private prefixes used when `nat.private_prefixes` is not given (RFC 1918).
pub const DEFAULT_PRIVATE_PREFIXES: [Ipv4Net; 3] = [
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
];

/// The default preallocation tier table of the seeds: SNAT ports per instance for a pool of
/// `instances` backend instances, or `None` for an empty pool or one above 1,000 instances.
pub fn default_ports_per_instance(instances: usize) -> Option<u16> {
    match instances {
        0 => None,
        1..=50 => Some(1024),
        51..=100 => Some(512),
        101..=200 => Some(256),
        201..=400 => Some(128),
        401..=800 => Some(64),
        801..=MAX_DEFAULT_POOL => Some(32),
        _ => None,
    }
}

/// How SNAT ports are handed to private hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// One shared inventory, ports handed out on demand (NAT-gateway style).
    Dynamic {
        /// Most SNAT ports one private host may hold at once, per protocol; `None`: no cap.
        max_ports_per_host: Option<u32>,
    },
    /// Each listed instance owns an exclusive range of ports (load-balancer outbound-rule style).
    Preallocated {
        /// The backend instances, sorted and distinct.
        instances: Vec<Ipv4Addr>,
        /// Ports in each instance's range, a multiple of 8.
        ports_per_instance: u16,
    },
}

impl Allocation {
    /// The name as written in `nat.allocation`.
    pub fn name(&self) -> &'static str {
        match self {
            Allocation::Dynamic { .. } => "dynamic",
            Allocation::Preallocated { .. } => "preallocated",
        }
    }
}

/// Which public address a private host's flows use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// A host keeps the same public address while it has any flow (default).
    Paired,
    /// Each flow may use any public address.
    Arbitrary,
}

impl Pooling {
    /// The name as written in `nat.pooling`.
    pub const fn name(self) -> &'static str {
        match self {
            Pooling::Paired => "paired",
            Pooling::Arbitrary => "arbitrary",
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a new flow does under paired pooling when its host's public address has no free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exhaustion {
    /// The flow fails (dropped, counted; default).
    Fail,
    /// The flow takes a port on another public address, breaking the pairing for that flow.
    Fallback,
}

impl Exhaustion {
    /// The name as written in `nat.exhaustion`.
    pub const fn name(self) -> &'static str {
        match self {
            Exhaustion::Fail => "fail",
            Exhaustion::Fallback => "fallback",
        }
    }
}

impl fmt::Display for Exhaustion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A static 1:1 mapping (instance-level public IP): `private` always appears as `public`, all
/// ports, no port rewriting; it takes precedence over SNAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaticMapping {
    /// The private host.
    pub private: Ipv4Addr,
    /// Its own public address.
    pub public: Ipv4Addr,
}

/// The validated `[nat]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    public_ips: Vec<Ipv4Addr>,
    private_prefixes: Vec<Ipv4Net>,
    port_range: (u16, u16),
    reserved_ranges: Vec<(u16, u16)>,
    allocation: Allocation,
    pooling: Pooling,
    max_sessions: u32,
    max_per_destination: u32,
    exhaustion: Exhaustion,
    icmp_prohibited: bool,
    no_nat: Vec<Ipv4Net>,
    timeouts: Timeouts,
    statics: Vec<StaticMapping>,
}

impl NatConfig {
    /// The SNAT public addresses, prefixes expanded, in file order (1 to 16).
    pub fn public_ips(&self) -> &[Ipv4Addr] {
        &self.public_ips
    }

    /// Sources that are translated (the private side).
    pub fn private_prefixes(&self) -> &[Ipv4Net] {
        &self.private_prefixes
    }

    /// The SNAT port range of every public address, inclusive.
    pub fn port_range(&self) -> (u16, u16) {
        self.port_range
    }

    /// Port blocks kept out of SNAT for inbound rules: 8-port blocks aligned on multiples of 8,
    /// clipped to the port range, sorted, disjoint and merged when adjacent.
    pub fn reserved_ranges(&self) -> &[(u16, u16)] {
        &self.reserved_ranges
    }

    /// The port range minus the reserved blocks: the SNAT ports of each public address, as sorted
    /// disjoint inclusive ranges.
    pub fn snat_port_ranges(&self) -> Vec<(u16, u16)> {
        subtract(self.port_range, &self.reserved_ranges)
    }

    /// SNAT ports per public address and protocol, reserved blocks taken out.
    pub fn ports_per_ip(&self) -> u32 {
        count_ports(self.port_range)
            - self
                .reserved_ranges
                .iter()
                .map(|&r| count_ports(r))
                .sum::<u32>()
    }

    /// How ports are handed out.
    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// The per-host port cap of dynamic allocation, if any.
    pub fn max_ports_per_host(&self) -> Option<u32> {
        match self.allocation {
            Allocation::Dynamic { max_ports_per_host } => max_ports_per_host,
            Allocation::Preallocated { .. } => None,
        }
    }

    /// Which public address a host's flows use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Most live sessions, all workers together.
    pub fn max_sessions(&self) -> u32 {
        self.max_sessions
    }

    /// Most concurrent flows from one public address to one destination.
    pub fn max_per_destination(&self) -> u32 {
        self.max_per_destination
    }

    /// Behaviour of paired pooling when the paired address has no free port.
    pub fn exhaustion(&self) -> Exhaustion {
        self.exhaustion
    }

    /// Whether failed new flows are answered with ICMP "administratively prohibited".
    pub fn icmp_prohibited(&self) -> bool {
        self.icmp_prohibited
    }

    /// Destinations forwarded without translation.
    pub fn no_nat(&self) -> &[Ipv4Net] {
        &self.no_nat
    }

    /// Idle timers and cool-downs.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Static 1:1 mappings, in file order.
    pub fn statics(&self) -> &[StaticMapping] {
        &self.statics
    }

    /// Whether `addr` is a private source (inside one of the private prefixes).
    pub fn is_private(&self, addr: Ipv4Addr) -> bool {
        self.private_prefixes.iter().any(|p| p.contains(&addr))
    }

    /// Whether traffic to `addr` is forwarded untranslated.
    pub fn is_no_nat(&self, addr: Ipv4Addr) -> bool {
        self.no_nat.iter().any(|p| p.contains(&addr))
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawNat) -> Result<Self, Located> {
        let private_prefixes = private_prefixes(&raw.private_prefixes)?;
        let public_ips = public_ips(raw, &private_prefixes)?;

        let port_range = match &raw.port_range {
            Some(list) => check::port_pair("nat.port_range", list, MIN_PORT, u16::MAX)?,
            None => (MIN_PORT, u16::MAX),
        };
        let reserved_ranges = reserved(&raw.reserved_ports, port_range)?;
        let ports_per_ip =
            count_ports(port_range) - reserved_ranges.iter().map(|&r| count_ports(r)).sum::<u32>();
        if ports_per_ip == 0 {
            let l = raw.reserved_ports.as_ref().map(span).unwrap_or_default();
            return Err(Located::at(
                "nat.reserved_ports",
                l,
                ErrorKind::Conflict {
                    message: "the reserved ports take out every port of nat.port_range; valid: \
                              leave at least one 8-port block for SNAT"
                        .to_string(),
                },
            ));
        }

        let dynamic = check::choice(
            "nat.allocation",
            &raw.allocation,
            true,
            &[("dynamic", true), ("preallocated", false)],
        )?;
        let pooling = check::choice(
            "nat.pooling",
            &raw.pooling,
            Pooling::Paired,
            &[
                ("paired", Pooling::Paired),
                ("arbitrary", Pooling::Arbitrary),
            ],
        )?;
        let exhaustion = check::choice(
            "nat.exhaustion",
            &raw.exhaustion,
            Exhaustion::Fail,
            &[
                ("fail", Exhaustion::Fail),
                ("fallback", Exhaustion::Fallback),
            ],
        )?;
        let max_sessions = check::opt_int(
            "nat.max_sessions",
            &raw.max_sessions,
            i64::from(DEFAULT_MAX_SESSIONS),
            1,
            i64::from(MAX_SESSIONS),
        )? as u32;
        let max_per_destination = check::opt_int(
            "nat.max_per_destination",
            &raw.max_per_destination,
            i64::from(DEFAULT_MAX_PER_DESTINATION),
            1,
            i64::from(count_ports((MIN_PORT, u16::MAX))),
        )? as u32;
        let icmp_prohibited = raw.icmp_prohibited.as_ref().is_some_and(|b| *b.get_ref());
        let no_nat = prefix_list("nat.no_nat", &raw.no_nat)?.unwrap_or_default();
        let timeouts = Timeouts::from_raw(&raw.timeouts)?;
        let statics = statics(raw, &private_prefixes, &public_ips)?;

        let allocation = if dynamic {
            if let Some(p) = &raw.preallocated {
                let sp = raw
                    .allocation
                    .as_ref()
                    .map(span)
                    .or_else(|| p.instances.as_ref().map(span))
                    .or_else(|| p.ports_per_instance.as_ref().map(span));
                return Err(Located {
                    key: "nat.allocation".to_string(),
                    span: sp,
                    kind: ErrorKind::Conflict {
                        message: "[nat.preallocated] is set but nat.allocation is \"dynamic\"; \
                                  valid: allocation = \"preallocated\", or no [nat.preallocated]"
                            .to_string(),
                    },
                    first: None,
                });
            }
            let max_ports_per_host = match &raw.max_ports_per_host {
                None => None,
                Some(l) => {
                    let reach = match pooling {
                        Pooling::Paired => u64::from(ports_per_ip),
                        Pooling::Arbitrary => u64::from(ports_per_ip) * public_ips.len() as u64,
                    };
                    Some(check::int_in("nat.max_ports_per_host", l, 1, reach as i64)? as u32)
                }
            };
            Allocation::Dynamic { max_ports_per_host }
        } else {
            if let Some(l) = &raw.max_ports_per_host {
                return Err(Located::at(
                    "nat.max_ports_per_host",
                    span(l),
                    ErrorKind::Conflict {
                        message: "max_ports_per_host only applies to allocation = \"dynamic\"; \
                                  valid: remove it (preallocated instances are capped by \
                                  nat.preallocated.ports_per_instance)"
                            .to_string(),
                    },
                ));
            }
            let Some(p) = &raw.preallocated else {
                let mut err = Located::missing(
                    "nat.preallocated.instances",
                    "a [nat.preallocated] table listing the instances, since nat.allocation is \
                     \"preallocated\"",
                );
                err.span = raw.allocation.as_ref().map(span);
                return Err(err);
            };
            preallocated(p, &private_prefixes, ports_per_ip, public_ips.len())?
        };

        Ok(NatConfig {
            public_ips,
            private_prefixes,
            port_range,
            reserved_ranges,
            allocation,
            pooling,
            max_sessions,
            max_per_destination,
            exhaustion,
            icmp_prohibited,
            no_nat,
            timeouts,
            statics,
        })
    }
}

/// Ports in an inclusive range.
fn count_ports((lo, hi): (u16, u16)) -> u32 {
    u32::from(hi) - u32::from(lo) + 1
}

/// `range` minus the sorted disjoint `holes`.
fn subtract(range: (u16, u16), holes: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let mut next = u32::from(range.0);
    for &(lo, hi) in holes {
        if u32::from(lo) > next {
            out.push((next as u16, lo - 1));
        }
        next = next.max(u32::from(hi) + 1);
    }
    if next <= u32::from(range.1) {
        out.push((next as u16, range.1));
    }
    out
}

/// A list of prefixes, each without host bits, not overlapping one another.
fn prefix_list(key: &str, list: &List<String>) -> Result<Option<Vec<Ipv4Net>>, Located> {
    let Some(list) = list else { return Ok(None) };
    let mut nets = Vec::with_capacity(list.get_ref().len());
    for (i, item) in list.get_ref().iter().enumerate() {
        nets.push(check::prefix(&format!("{key}[{i}]"), item, false)?);
    }
    if let Some((j, i)) = check::first_overlap(&nets) {
        return Err(Located::at(
            format!("{key}[{j}]"),
            span(&list.get_ref()[j]),
            ErrorKind::Overlap {
                value: nets[j].to_string(),
                other: nets[i].to_string(),
            },
        ));
    }
    Ok(Some(nets))
}

fn private_prefixes(list: &List<String>) -> Result<Vec<Ipv4Net>, Located> {
    match prefix_list("nat.private_prefixes", list)? {
        None => Ok(DEFAULT_PRIVATE_PREFIXES.to_vec()),
        Some(v) if v.is_empty() => Err(Located::at(
            "nat.private_prefixes",
            list.as_ref().map(span).unwrap_or_default(),
            ErrorKind::BadValue {
                value: "[]".to_string(),
                valid: "at least one prefix, like [\"10.0.0.0/8\"]".to_string(),
            },
        )),
        Some(v) => Ok(v),
    }
}

/// `nat.public_ips` and the expanded `nat.public_prefixes`.
fn public_ips(raw: &RawNat, private: &[Ipv4Net]) -> Result<Vec<Ipv4Addr>, Located> {
    // (address, key, span) of every public address, in file order.
    let mut found: Vec<(Ipv4Addr, String, std::ops::Range<usize>)> = Vec::new();
    let mut count: u64 = 0;
    if let Some(list) = &raw.public_ips {
        count = list.get_ref().len() as u64;
        if count > MAX_PUBLIC_IPS as u64 {
            return Err(Located::at(
                "nat.public_ips",
                span(list),
                ErrorKind::TooManyPublicIps { count },
            ));
        }
        for (i, item) in list.get_ref().iter().enumerate() {
            let key = format!("nat.public_ips[{i}]");
            let a = check::unicast(&key, item)?;
            found.push((a, key, span(item)));
        }
    }
    if let Some(list) = &raw.public_prefixes {
        for (i, item) in list.get_ref().iter().enumerate() {
            let key = format!("nat.public_prefixes[{i}]");
            let net = check::prefix(&key, item, false)?;
            count += 1u64 << (32 - u32::from(net.prefix_len()));
            if count > MAX_PUBLIC_IPS as u64 {
                return Err(Located::at(
                    key,
                    span(item),
                    ErrorKind::TooManyPublicIps { count },
                ));
            }
            for a in net.hosts_all() {
                let first = a.octets()[0];
                if first == 0 || a.is_loopback() || a.is_multicast() || first >= 240 {
                    return Err(Located::at(
                        key,
                        span(item),
                        ErrorKind::BadPrefix {
                            value: quoted(item.get_ref()),
                            reason: "it contains non-unicast addresses; valid: a prefix of \
                                     unicast addresses"
                                .to_string(),
                        },
                    ));
                }
                found.push((a, key.clone(), span(item)));
            }
        }
    }
    if found.is_empty() {
        let sp = raw
            .public_ips
            .as_ref()
            .or(raw.public_prefixes.as_ref())
            .map(span);
        return Err(Located {
            key: "nat.public_ips".to_string(),
            span: sp,
            kind: ErrorKind::NoPublicIps,
            first: None,
        });
    }
    for (j, (a, key, sp)) in found.iter().enumerate() {
        if let Some((_, _, first)) = found[..j].iter().find(|(b, _, _)| b == a) {
            return Err(Located::at(
                key.clone(),
                sp.clone(),
                ErrorKind::Duplicate {
                    value: a.to_string(),
                    first_line: 0,
                },
            )
            .with_first(first.start));
        }
        if let Some(p) = private.iter().find(|p| p.contains(a)) {
            return Err(Located::at(
                key.clone(),
                sp.clone(),
                ErrorKind::Conflict {
                    message: format!(
                        "public address {a} lies in the private prefix {p}; valid: an address \
                         outside nat.private_prefixes"
                    ),
                },
            ));
        }
    }
    Ok(found.into_iter().map(|(a, _, _)| a).collect())
}

/// Small extension: all addresses of a prefix, network and broadcast included (a routed public
/// prefix has no broadcast address of its own).
trait HostsAll {
    fn hosts_all(&self) -> Vec<Ipv4Addr>;
}

impl HostsAll for Ipv4Net {
    fn hosts_all(&self) -> Vec<Ipv4Addr> {
        let base = u32::from(self.network());
        let n = 1u64 << (32 - u32::from(self.prefix_len()));
        (0..n)
            .map(|i| Ipv4Addr::from(base.wrapping_add(i as u32)))
            .collect()
    }
}

/// `nat.reserved_ports`: ports or `[low, high]` ranges, widened to 8-port blocks.
fn reserved(list: &List<toml::Value>, range: (u16, u16)) -> Result<Vec<(u16, u16)>, Located> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut entries: Vec<(u16, u16)> = Vec::with_capacity(list.get_ref().len());
    for (i, item) in list.get_ref().iter().enumerate() {
        let key = format!("nat.reserved_ports[{i}]");
        let sp = span(item);
        let valid = format!(
            "a port or a [low, high] range inside nat.port_range ({} to {})",
            range.0, range.1
        );
        let port = |v: &toml::Value| -> Result<u16, Located> {
            match v {
                toml::Value::Integer(n)
                    if (i64::from(range.0)..=i64::from(range.1)).contains(n) =>
                {
                    Ok(*n as u16)
                }
                toml::Value::Integer(n) => Err(Located::at(
                    key.clone(),
                    sp.clone(),
                    ErrorKind::OutOfRange {
                        value: n.to_string(),
                        valid: valid.clone(),
                    },
                )),
                other => Err(Located::at(
                    key.clone(),
                    sp.clone(),
                    ErrorKind::WrongType {
                        found: other.type_str().to_string(),
                        expected: valid.clone(),
                    },
                )),
            }
        };
        let entry = match item.get_ref() {
            toml::Value::Array(pair) if pair.len() == 2 => {
                let (lo, hi) = (port(&pair[0])?, port(&pair[1])?);
                if lo > hi {
                    return Err(Located::at(
                        key,
                        sp,
                        ErrorKind::PortRangeReversed { low: lo, high: hi },
                    ));
                }
                (lo, hi)
            }
            toml::Value::Array(pair) => {
                return Err(Located::at(
                    key,
                    sp,
                    ErrorKind::BadValue {
                        value: format!("an array of {} elements", pair.len()),
                        valid,
                    },
                ))
            }
            v => {
                let p = port(v)?;
                (p, p)
            }
        };
        if let Some(j) = entries
            .iter()
            .position(|&(lo, hi)| lo <= entry.1 && entry.0 <= hi)
        {
            let (lo, hi) = entries[j];
            return Err(Located::at(
                key,
                sp,
                ErrorKind::Overlap {
                    value: format!("[{}, {}]", entry.0, entry.1),
                    other: format!("nat.reserved_ports[{j}] = [{lo}, {hi}]"),
                },
            ));
        }
        entries.push(entry);
    }
    // Widen to aligned 8-port blocks (a port used by an inbound rule consumes its whole block of
    // eight, as in the seeds), clip to the port range, then merge.
    let mut blocks: Vec<(u16, u16)> = entries
        .iter()
        .map(|&(lo, hi)| ((lo & !7).max(range.0), (hi | 7).min(range.1)))
        .collect();
    blocks.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(blocks.len());
    for (lo, hi) in blocks {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
}

/// `[[nat.static]]`.
fn statics(
    raw: &RawNat,
    private: &[Ipv4Net],
    snat: &[Ipv4Addr],
) -> Result<Vec<StaticMapping>, Located> {
    let mut out: Vec<StaticMapping> = Vec::with_capacity(raw.statics.len());
    // First byte offset of each private and public address seen, for duplicates.
    let mut seen_private: HashMap<Ipv4Addr, usize> = HashMap::with_capacity(raw.statics.len());
    let mut seen_public: HashMap<Ipv4Addr, usize> = HashMap::with_capacity(raw.statics.len());
    for (i, s) in raw.statics.iter().enumerate() {
        let key = |k: &str| format!("nat.static[{i}].{k}");
        let require = |leaf: &Option<Spanned<String>>, k: &str| -> Result<(), Located> {
            if leaf.is_none() {
                return Err(Located::missing(key(k), crate::schema::expected(&key(k))));
            }
            Ok(())
        };
        require(&s.private, "private")?;
        require(&s.public, "public")?;
        let (Some(pl), Some(ul)) = (&s.private, &s.public) else {
            continue;
        };
        let private_addr = check::address(&key("private"), pl)?;
        if !private.iter().any(|p| p.contains(&private_addr)) {
            return Err(Located::at(
                key("private"),
                span(pl),
                ErrorKind::Conflict {
                    message: format!(
                        "{private_addr} is not in nat.private_prefixes; valid: a private address \
                         inside one of {}",
                        list_str(private)
                    ),
                },
            ));
        }
        let public_addr = check::unicast(&key("public"), ul)?;
        if snat.contains(&public_addr) {
            return Err(Located::at(
                key("public"),
                span(ul),
                ErrorKind::StaticCollidesWithPublic {
                    address: public_addr,
                },
            ));
        }
        if private.iter().any(|p| p.contains(&public_addr)) {
            return Err(Located::at(
                key("public"),
                span(ul),
                ErrorKind::Conflict {
                    message: format!(
                        "{public_addr} is in nat.private_prefixes; valid: a public address"
                    ),
                },
            ));
        }
        if let Some(&first) = seen_private.get(&private_addr) {
            return Err(Located::at(
                key("private"),
                span(pl),
                ErrorKind::Duplicate {
                    value: private_addr.to_string(),
                    first_line: 0,
                },
            )
            .with_first(first));
        }
        if let Some(&first) = seen_public.get(&public_addr) {
            return Err(Located::at(
                key("public"),
                span(ul),
                ErrorKind::Duplicate {
                    value: public_addr.to_string(),
                    first_line: 0,
                },
            )
            .with_first(first));
        }
        seen_private.insert(private_addr, span(pl).start);
        seen_public.insert(public_addr, span(ul).start);
        out.push(StaticMapping {
            private: private_addr,
            public: public_addr,
        });
    }
    Ok(out)
}

fn list_str(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[nat.preallocated]`.
fn preallocated(
    raw: &RawPreallocated,
    private: &[Ipv4Net],
    ports_per_ip: u32,
    public_count: usize,
) -> Result<Allocation, Located> {
    const KEY: &str = "nat.preallocated.instances";
    let Some(list) = &raw.instances else {
        return Err(Located::missing(KEY, crate::schema::expected(KEY)));
    };
    let mut nets = Vec::with_capacity(list.get_ref().len());
    let mut count: u64 = 0;
    for (i, item) in list.get_ref().iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let net = check::prefix(&key, item, true)?;
        if !private.iter().any(|p| p.contains(&net)) {
            return Err(Located::at(
                key,
                span(item),
                ErrorKind::Conflict {
                    message: format!(
                        "instance {net} is not inside nat.private_prefixes; valid: addresses \
                         inside one of {}",
                        list_str(private)
                    ),
                },
            ));
        }
        count += 1u64 << (32 - u32::from(net.prefix_len()));
        nets.push(net);
    }
    if count == 0 {
        return Err(Located::at(
            KEY,
            span(list),
            ErrorKind::BadValue {
                value: "[]".to_string(),
                valid: "at least one instance address or prefix".to_string(),
            },
        ));
    }

    let ppi_key = "nat.preallocated.ports_per_instance";
    let ppi: u32 = match &raw.ports_per_instance {
        Some(l) => {
            let v = check::int_in(
                ppi_key,
                l,
                8,
                i64::from(ports_per_ip.min(u32::from(u16::MAX))),
            )?;
            let v = v as u32;
            if v % 8 != 0 {
                return Err(Located::at(
                    ppi_key,
                    span(l),
                    ErrorKind::NotMultipleOf8 { value: v },
                ));
            }
            v
        }
        None => match usize::try_from(count)
            .ok()
            .and_then(default_ports_per_instance)
        {
            Some(v) => u32::from(v),
            None => {
                return Err(Located::at(
                    KEY,
                    span(list),
                    ErrorKind::PoolTooLarge { instances: count },
                ));
            }
        },
    };
    let capacity = u64::from(ports_per_ip / ppi) * public_count as u64;
    if count > capacity {
        let sp = raw
            .ports_per_instance
            .as_ref()
            .map_or_else(|| span(list), span);
        let key = if raw.ports_per_instance.is_some() {
            ppi_key
        } else {
            KEY
        };
        return Err(Located::at(
            key,
            sp,
            ErrorKind::PoolDoesNotFit {
                instances: count,
                ports_per_instance: ppi,
                capacity,
            },
        ));
    }

    // The pool fits, so it has at most 16 * 64,512 / 8 addresses: expanding is cheap.
    let mut instances: Vec<(Ipv4Addr, usize)> = Vec::with_capacity(count as usize);
    for (i, net) in nets.iter().enumerate() {
        instances.extend(net.hosts_all().into_iter().map(|a| (a, i)));
    }
    instances.sort_unstable();
    for w in instances.windows(2) {
        if w[0].0 == w[1].0 {
            let (first, later) = (w[0].1.min(w[1].1), w[0].1.max(w[1].1));
            let items = list.get_ref();
            return Err(Located::at(
                format!("{KEY}[{later}]"),
                span(&items[later]),
                ErrorKind::Duplicate {
                    value: w[0].0.to_string(),
                    first_line: 0,
                },
            )
            .with_first(span(&items[first]).start));
        }
    }
    Ok(Allocation::Preallocated {
        instances: instances.into_iter().map(|(a, _)| a).collect(),
        ports_per_instance: ppi as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_table_matches_the_seeds() {
        let cases = [
            (1, 1024),
            (50, 1024),
            (51, 512),
            (100, 512),
            (101, 256),
            (200, 256),
            (201, 128),
            (400, 128),
            (401, 64),
            (800, 64),
            (801, 32),
            (1000, 32),
        ];
        for (n, ports) in cases {
            assert_eq!(default_ports_per_instance(n), Some(ports), "{n} instances");
        }
        assert_eq!(default_ports_per_instance(0), None);
        assert_eq!(default_ports_per_instance(1001), None);
    }

    #[test]
    fn subtract_leaves_the_gaps() {
        assert_eq!(subtract((1024, 65535), &[]), vec![(1024, 65535)]);
        assert_eq!(
            subtract((1024, 65535), &[(1024, 1031), (8000, 8007), (65528, 65535)]),
            vec![(1032, 7999), (8008, 65527)]
        );
    }

    #[test]
    fn hosts_all_includes_network_and_broadcast() {
        let net: Ipv4Net = "198.51.100.0/30".parse().unwrap();
        assert_eq!(net.hosts_all().len(), 4);
        let one: Ipv4Net = "198.51.100.7/32".parse().unwrap();
        assert_eq!(one.hosts_all(), vec![Ipv4Addr::new(198, 51, 100, 7)]);
    }
}
