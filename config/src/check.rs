//! Small validation helpers shared by the sections: typed reads of spanned raw leaves.
//!
//! Layer: config (slow path). Each helper takes the dotted key and the spanned raw value and
//! returns either the typed value or a [`Located`] error naming the key, the span and what would be
//! valid. They never panic.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use ipnet::Ipv4Net;
use toml::Spanned;

use crate::duration;
use crate::error::{ErrorKind, Located};
use crate::raw::Leaf;

/// The byte span of a leaf.
pub(crate) fn span<T>(leaf: &Spanned<T>) -> Range<usize> {
    leaf.span()
}

/// An integer in `lo..=hi`.
pub(crate) fn int_in(key: &str, leaf: &Spanned<i64>, lo: i64, hi: i64) -> Result<i64, Located> {
    let v = *leaf.get_ref();
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Located::at(
            key,
            span(leaf),
            ErrorKind::OutOfRange {
                value: v.to_string(),
                valid: format!("{lo} to {hi}"),
            },
        ))
    }
}

/// An optional integer in `lo..=hi`, or `default` when absent.
pub(crate) fn opt_int(
    key: &str,
    leaf: &Leaf<i64>,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, Located> {
    leaf.as_ref()
        .map_or(Ok(default), |l| int_in(key, l, lo, hi))
}

/// A power of two in `lo..=hi`, or `default` when absent.
pub(crate) fn opt_pow2(
    key: &str,
    leaf: &Leaf<i64>,
    default: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, Located> {
    let Some(l) = leaf else { return Ok(default) };
    let v = *l.get_ref();
    match usize::try_from(v) {
        Ok(n) if (lo..=hi).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(Located::at(
            key,
            span(l),
            ErrorKind::OutOfRange {
                value: v.to_string(),
                valid: format!("a power of two from {lo} to {hi}"),
            },
        )),
    }
}

/// An IPv4 address.
pub(crate) fn address(key: &str, leaf: &Spanned<String>) -> Result<Ipv4Addr, Located> {
    leaf.get_ref().trim().parse().map_err(|_| {
        Located::at(
            key,
            span(leaf),
            ErrorKind::BadAddress {
                value: quoted(leaf.get_ref()),
            },
        )
    })
}

/// A unicast address usable on the internet side: not 0/8, loopback, multicast, class E or
/// the limited broadcast address.
pub(crate) fn unicast(key: &str, leaf: &Spanned<String>) -> Result<Ipv4Addr, Located> {
    let a = address(key, leaf)?;
    let first = a.octets()[0];
    if first == 0 || a.is_loopback() || a.is_multicast() || first >= 240 {
        return Err(Located::at(
            key,
            span(leaf),
            ErrorKind::BadValue {
                value: quoted(leaf.get_ref()),
                valid: "a unicast address, not in 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or \
                        240.0.0.0/4"
                    .to_string(),
            },
        ));
    }
    Ok(a)
}

/// An IPv4 prefix `a.b.c.d/len` with no host bits set. When `bare_is_host` is true, a plain
/// address is read as a `/32`.
pub(crate) fn prefix(
    key: &str,
    leaf: &Spanned<String>,
    bare_is_host: bool,
) -> Result<Ipv4Net, Located> {
    let text = leaf.get_ref().trim();
    let bad = |reason: String| {
        Located::at(
            key,
            span(leaf),
            ErrorKind::BadPrefix {
                value: quoted(leaf.get_ref()),
                reason,
            },
        )
    };
    if !text.contains('/') {
        if bare_is_host {
            if let Ok(a) = text.parse::<Ipv4Addr>() {
                return Ok(Ipv4Net::from(a));
            }
        }
        return Err(bad(format!(
            "expected an address, a slash and a length 0 to 32, like \"10.0.0.0/8\"{}",
            if bare_is_host {
                ", or a plain address"
            } else {
                ""
            }
        )));
    }
    let net: Ipv4Net = text.parse().map_err(|_| {
        bad("expected an address, a slash and a length 0 to 32, like \"10.0.0.0/8\"".to_string())
    })?;
    if net.addr() != net.network() {
        return Err(bad(format!(
            "host bits are set; valid: the network address, \"{}\"",
            net.trunc()
        )));
    }
    Ok(net)
}

/// A string leaf that must be one of `options`, or `default` when absent.
pub(crate) fn choice<T: Copy>(
    key: &str,
    leaf: &Leaf<String>,
    default: T,
    options: &[(&str, T)],
) -> Result<T, Located> {
    let Some(l) = leaf else { return Ok(default) };
    options
        .iter()
        .find(|(name, _)| *name == l.get_ref())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let valid = options
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ");
            Located::at(
                key,
                span(l),
                ErrorKind::BadValue {
                    value: quoted(l.get_ref()),
                    valid: format!("one of {valid}"),
                },
            )
        })
}

/// A duration in `lo..=hi`, or `default` when absent.
pub(crate) fn duration_in(
    key: &str,
    leaf: &Leaf<String>,
    default: Duration,
    lo: Duration,
    hi: Duration,
) -> Result<Duration, Located> {
    let Some(l) = leaf else { return Ok(default) };
    let d = duration::parse(l.get_ref().trim()).map_err(|reason| {
        Located::at(
            key,
            span(l),
            ErrorKind::BadDuration {
                value: quoted(l.get_ref()),
                reason,
            },
        )
    })?;
    if d < lo || d > hi {
        return Err(Located::at(
            key,
            span(l),
            ErrorKind::OutOfRange {
                value: quoted(l.get_ref()),
                valid: duration::format_range(lo, hi),
            },
        ));
    }
    Ok(d)
}

/// A `[low, high]` pair of ports, each in `lo..=hi`, not reversed.
pub(crate) fn port_pair(
    key: &str,
    list: &Spanned<Vec<Spanned<i64>>>,
    lo: u16,
    hi: u16,
) -> Result<(u16, u16), Located> {
    let items = list.get_ref();
    if items.len() != 2 {
        return Err(Located::at(
            key,
            span(list),
            ErrorKind::BadValue {
                value: format!("an array of {} elements", items.len()),
                valid: format!("[low, high] with {lo} <= low <= high <= {hi}"),
            },
        ));
    }
    let mut ends = [0u16; 2];
    for (i, item) in items.iter().enumerate() {
        let v = int_in(&format!("{key}[{i}]"), item, i64::from(lo), i64::from(hi))?;
        ends[i] = u16::try_from(v).unwrap_or(hi);
    }
    if ends[0] > ends[1] {
        return Err(Located::at(
            key,
            span(list),
            ErrorKind::PortRangeReversed {
                low: ends[0],
                high: ends[1],
            },
        ));
    }
    Ok((ends[0], ends[1]))
}

/// A string in double quotes, for messages.
pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Finds the first pair of overlapping prefixes in `nets` (index of the later one, and the earlier
/// one it overlaps).
pub(crate) fn first_overlap(nets: &[Ipv4Net]) -> Option<(usize, usize)> {
    for (j, b) in nets.iter().enumerate() {
        for (i, a) in nets[..j].iter().enumerate() {
            if a.contains(b) || b.contains(a) {
                return Some((j, i));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Spanned<String> {
        // A spanned value for tests: parse it out of a tiny document.
        #[derive(serde::Deserialize)]
        struct One {
            v: Spanned<String>,
        }
        let doc = format!("v = {v:?}");
        toml::from_str::<One>(&doc).expect("test document").v
    }

    #[test]
    fn prefixes_must_have_no_host_bits() {
        assert_eq!(
            prefix("k", &s("10.0.0.0/8"), false).unwrap().to_string(),
            "10.0.0.0/8"
        );
        let err = prefix("k", &s("10.0.0.1/8"), false).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::BadPrefix { ref reason, .. } if reason.contains("10.0.0.0/8"))
        );
        assert!(prefix("k", &s("10.0.0.1"), false).is_err());
        assert_eq!(
            prefix("k", &s("10.0.0.1"), true).unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!(prefix("k", &s("10.0.0.0/33"), false).is_err());
    }

    #[test]
    fn unicast_refuses_special_addresses() {
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
        ] {
            assert!(unicast("k", &s(bad)).is_err(), "{bad}");
        }
        assert!(unicast("k", &s("203.0.113.10")).is_ok());
        assert!(matches!(
            address("k", &s("203.0.113")).unwrap_err().kind,
            ErrorKind::BadAddress { .. }
        ));
    }

    #[test]
    fn overlap_is_found_in_either_direction() {
        let nets: Vec<Ipv4Net> = ["10.0.0.0/8", "192.168.0.0/16", "10.1.0.0/16"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(first_overlap(&nets), Some((2, 0)));
        assert_eq!(first_overlap(&nets[..2]), None);
    }
}
