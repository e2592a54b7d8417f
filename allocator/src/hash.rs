//! Key packing and the keyed hash used by every table of the allocator.
//!
//! Layer: allocator, fast path. Keys are packed into one `u64` so that hash tables hold 8-byte
//! entries (see the memory budget in the crate docs): a destination key is 48 bits (remote IPv4
//! address, remote port for TCP or 0 for UDP/ICMP), a pair key adds the 16-bit public port.

use crate::types::{Endpoint, Protocol};

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Keyed 64-bit hash: a folded 64x64->128 multiply, good in both the low bits (bucket index) and
/// the high bits (hashbrown's tag).
#[inline]
pub(crate) fn hash64(x: u64, seed: u64) -> u64 {
    let m = u128::from(x ^ seed) * u128::from(K ^ seed.rotate_left(32));
    let h = (m as u64) ^ ((m >> 64) as u64);
    // One more round so that keys differing only in their low 16 bits spread well.
    let m2 = u128::from(h) * u128::from(K);
    (m2 as u64) ^ ((m2 >> 64) as u64)
}

/// Maps a 64-bit random value uniformly onto `0..n` (Lemire's multiply-shift).
#[inline]
pub(crate) fn fastrange(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// The 48-bit port-reuse key of a destination: remote address and, for TCP only, remote port.
#[inline]
pub(crate) fn dest_key(proto: Protocol, dest: Endpoint) -> u64 {
    let port = match proto {
        Protocol::Tcp => u64::from(dest.port),
        Protocol::Udp | Protocol::Icmp => 0,
    };
    (u64::from(u32::from(dest.addr)) << 16) | port
}

/// Pair key: destination key and public port.
#[inline]
pub(crate) fn pair_key(dkey: u64, port: u16) -> u64 {
    (dkey << 16) | u64::from(port)
}

/// The destination part of a pair key (or of a destination-count entry).
#[inline]
pub(crate) fn dest_of(entry: u64) -> u64 {
    entry >> 16
}

/// The low 16 bits: the public port of a pair key, the live count of a destination entry.
#[inline]
pub(crate) fn low16(entry: u64) -> u16 {
    entry as u16
}

/// The endpoint a destination key stands for (port 0 for UDP/ICMP keys).
pub(crate) fn dest_endpoint(dkey: u64) -> Endpoint {
    Endpoint {
        addr: std::net::Ipv4Addr::from((dkey >> 16) as u32),
        port: dkey as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn keys_round_trip_and_udp_ignores_the_remote_port() {
        let d = Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 443);
        let t = dest_key(Protocol::Tcp, d);
        assert_eq!(dest_endpoint(t), d);
        let u1 = dest_key(Protocol::Udp, d);
        let u2 = dest_key(Protocol::Udp, Endpoint::new(d.addr, 53));
        assert_eq!(u1, u2);
        assert_eq!(dest_endpoint(u1).port, 0);
        let p = pair_key(t, 40000);
        assert_eq!(dest_of(p), t);
        assert_eq!(low16(p), 40000);
    }

    #[test]
    fn fastrange_stays_in_range_and_hash_spreads() {
        for r in [0, 1, u64::MAX, 1 << 63] {
            assert!(fastrange(r, 10) < 10);
        }
        // Consecutive ports must land in different buckets of a small table most of the time.
        let mut buckets = std::collections::HashSet::new();
        for port in 0..64u16 {
            buckets.insert(hash64(pair_key(42, port), 7) & 63);
        }
        assert!(buckets.len() > 32, "{}", buckets.len());
    }
}
