//! Flow keys and the hashes that place flows on shards and in session tables (fast path).
//!
//! A [`FlowKey`] is the 5-tuple of one direction of a flow as the appliance sees it: for in2out lookups it
//! is (protocol, private address and port, remote address and port); for out2in lookups it is (protocol,
//! public address and port, remote address and port). ICMP echo uses the identifier as the local port and 0
//! as the remote port, so that an echo request and its reply map to the same session.
//!
//! [`flow_shard`] is the canonical in2out steering function: the runtime programs the same formula into the
//! NIC or the AF_PACKET fanout program, so that packets arrive on the shard that owns their flow and handoffs
//! stay rare. It is deliberately simple enough to express in classic BPF (xor, shift, modulo).

use natgw_config::Protocol;
use std::net::Ipv4Addr;

/// One direction of a flow: protocol, local endpoint (private or public), remote endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Transport protocol.
    pub proto: Protocol,
    /// Local address: the private host (in2out) or the public IP (out2in).
    pub local_ip: Ipv4Addr,
    /// Local port, or the ICMP echo identifier.
    pub local_port: u16,
    /// Remote (internet) address.
    pub remote_ip: Ipv4Addr,
    /// Remote port; 0 for ICMP.
    pub remote_port: u16,
}

impl FlowKey {
    /// A seeded hash of the key for the session tables. Keys from the outside are chosen by strangers, so the
    /// seed is random per shard (hash flooding); the mixing is a multiply-xorshift, fast and good enough to
    /// spread the 104 key bits over 64.
    #[inline]
    pub fn table_hash(&self, seed: u64) -> u64 {
        let a = (u64::from(u32::from(self.local_ip)) << 32) | u64::from(u32::from(self.remote_ip));
        let b = (u64::from(self.local_port) << 32)
            | (u64::from(self.remote_port) << 16)
            | self.proto as u64;
        let mut h = (a ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 29) ^ b).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 32)
    }
}

/// Multipliers of [`flow_shard`] (odd, well mixed).
pub const FLOW_K1: u32 = 0x9E37_79B1;
/// Second multiplier of [`flow_shard`].
pub const FLOW_K2: u32 = 0x85EB_CA77;
/// Third multiplier of [`flow_shard`].
pub const FLOW_K3: u32 = 0xC2B2_AE3D;

/// The shard that owns an in2out flow: a fold of the 5-tuple modulo the number of shards.
///
/// The formula, in wrapping 32-bit arithmetic, is
/// `h = ((src * K1 + dst) * K2 + (sport << 16 | dport)) * K3 + proto; h ^= h >> 16; h % shards` — multiply-add rather than xor, so that correlated fields (address and
/// port both counting up) do not cancel. Classic BPF can compute it (ld, mul, add, rsh, xor, mod), so an
/// AF_PACKET fanout program (or a NIC's flow rules) can deliver inside packets to their owner directly.
#[inline]
pub fn flow_shard(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ip_proto: u8,
    shards: u16,
) -> u16 {
    if shards <= 1 {
        return 0;
    }
    let mut h = u32::from(src)
        .wrapping_mul(FLOW_K1)
        .wrapping_add(u32::from(dst));
    h = h
        .wrapping_mul(FLOW_K2)
        .wrapping_add((u32::from(sport) << 16) | u32::from(dport));
    h = h.wrapping_mul(FLOW_K3).wrapping_add(u32::from(ip_proto));
    h ^= h >> 16;
    (h % u32::from(shards)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            proto: Protocol::Tcp,
            local_ip: Ipv4Addr::from(0x0a00_0000 | (i & 0xffff)),
            local_port: (i >> 3) as u16,
            remote_ip: Ipv4Addr::new(198, 51, 100, 10),
            remote_port: 443,
        }
    }

    #[test]
    fn table_hash_depends_on_every_field_and_the_seed() {
        let k = key(7);
        let h = k.table_hash(1);
        assert_ne!(h, k.table_hash(2));
        let mut other = k;
        other.proto = Protocol::Udp;
        assert_ne!(h, other.table_hash(1));
        other = k;
        other.remote_port = 444;
        assert_ne!(h, other.table_hash(1));
        other = k;
        other.local_port ^= 1;
        assert_ne!(h, other.table_hash(1));
    }

    #[test]
    fn table_hash_spreads_low_bits() {
        // 4096 sequential keys into 1024 buckets: no bucket may get more than a small multiple of the mean.
        let mut buckets = vec![0u32; 1024];
        for i in 0..4096 {
            buckets[(key(i).table_hash(0x1234) & 1023) as usize] += 1;
        }
        assert!(*buckets.iter().max().unwrap() <= 16, "{buckets:?}");
    }

    #[test]
    fn flow_shard_is_in_range_and_spreads() {
        let mut count = [0u32; 4];
        for i in 0..10_000u32 {
            let s = flow_shard(
                Ipv4Addr::from(0x0a00_0000 + i),
                Ipv4Addr::new(198, 51, 100, 10),
                (1024 + i) as u16,
                80,
                6,
                4,
            );
            count[s as usize] += 1;
        }
        for c in count {
            assert!((2000..3000).contains(&c), "{count:?}");
        }
        assert_eq!(
            flow_shard(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, 6, 1),
            0
        );
    }
}
