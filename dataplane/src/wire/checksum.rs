//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624): the one place for checksum math.
//!
//! Layer: wire; fast path. The NAT core never recomputes a checksum over a whole packet it forwards: it rewrites
//! a field and adjusts the checksum by the field's old and new values ([`update_u16`], [`update_u32`],
//! [`update_addr`], or a [`Delta`] that folds several changes once and applies them to several checksums, e.g.
//! one address change to both the IPv4 header checksum and the TCP/UDP checksum). Full sums ([`sum`],
//! [`compute`], [`pseudo_header_sum`]) are for verification, for frames the appliance builds itself (ICMP
//! errors, ARP is checksum-free), and for tests.
//!
//! Conventions. A *partial sum* is a `u32` holding a one's-complement sum that has not been folded to 16 bits
//! yet; [`sum`] returns one already folded (at most `0xffff`) and [`pseudo_header_sum`] one below `2^19`, so a
//! handful of them can be added with plain `+` before [`fold`] / [`finish`]. [`finish`] gives the value to
//! store in a checksum field (`!fold`). A message verifies when the folded sum over it, checksum field included,
//! is `0xffff` ([`is_valid`]).
//!
//! Incremental updates use RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, which (unlike eqn. 2) never turns a
//! correct checksum into the wrong zero. Its result equals a full recomputation whenever the data's sum is
//! non-zero, which holds for IPv4 headers (version nibble), TCP and UDP (the pseudo-header carries the protocol);
//! only an all-zero ICMP message can differ (`0x0000` instead of `0xffff`), and
//! [`Icmpv4Packet::rewrite_echo_ident`](super::icmp::Icmpv4Packet::rewrite_echo_ident) handles that case. The
//! UDP "zero means no checksum" rule lives in [`udp`](super::udp).

use std::net::Ipv4Addr;

/// Folds a 64-bit accumulator to at most `0xffff` with end-around carries (value kept modulo `0xffff`).
#[inline(always)]
fn fold64(mut acc: u64) -> u32 {
    // At most four rounds for any u64; one or two for packet-sized inputs.
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// One's-complement sum of `data` taken as big-endian 16-bit words (an odd last byte is padded with a zero),
/// folded to at most `0xffff`. Zero only for all-zero (or empty) data.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Add 32-bit big-endian words into a 64-bit accumulator: since 2^16 = 1 (mod 0xffff), the sum of 32-bit
    // words is congruent to the sum of 16-bit words, and the accumulator cannot overflow below 2^31 chunks.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder();
    while let [a, b, tail @ ..] = rest {
        acc += u64::from(u16::from_be_bytes([*a, *b]));
        rest = tail;
    }
    if let [last] = rest {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

/// Folds a partial sum to 16 bits with end-around carries (not complemented).
#[inline(always)]
pub fn fold(partial: u32) -> u16 {
    let s = (partial & 0xffff) + (partial >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for a partial sum taken with the checksum field zeroed: `!fold(partial)`.
#[inline(always)]
pub fn finish(partial: u32) -> u16 {
    !fold(partial)
}

/// The Internet checksum of `data` (to store in a zeroed checksum field that `data` covers).
#[inline]
pub fn compute(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Whether a partial sum taken over a whole message, checksum field included, verifies.
#[inline(always)]
pub fn is_valid(partial: u32) -> bool {
    fold(partial) == 0xffff
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1, RFC 768): source and destination
/// address, protocol, and the transport length (header plus data). Below `2^19`.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(len)
}

/// RFC 1624 eqn. 3: the checksum `csum` after a 16-bit word it covers changed from `old` to `new`.
#[inline(always)]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// RFC 1624 eqn. 3 for an aligned 32-bit field (two words), e.g. an IPv4 address or a TCP sequence number.
#[inline(always)]
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let not_old = !old;
    !fold(u32::from(!csum) + (not_old >> 16) + (not_old & 0xffff) + (new >> 16) + (new & 0xffff))
}

/// [`update_u32`] for an IPv4 address (in the IPv4 header, or in the TCP/UDP pseudo-header).
#[inline(always)]
pub fn update_addr(csum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(csum, old.to_bits(), new.to_bits())
}

/// Several field changes folded once and applied to one or more checksums.
///
/// `Delta::ZERO.addr(old_ip, new_ip)` applied to the IPv4 header checksum and, with `.u16(old_port, new_port)`
/// added, to the TCP checksum gives the same results as the chained `update_*` calls, in fewer operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u32);

impl Delta {
    /// No change.
    pub const ZERO: Delta = Delta(0);

    /// Adds the change of one 16-bit word from `old` to `new`.
    #[inline(always)]
    #[must_use]
    pub fn u16(self, old: u16, new: u16) -> Delta {
        Delta(u32::from(fold(self.0 + u32::from(!old) + u32::from(new))))
    }

    /// Adds the change of an aligned 32-bit field from `old` to `new`.
    #[inline(always)]
    #[must_use]
    pub fn u32(self, old: u32, new: u32) -> Delta {
        let not_old = !old;
        Delta(u32::from(fold(
            self.0 + (not_old >> 16) + (not_old & 0xffff) + (new >> 16) + (new & 0xffff),
        )))
    }

    /// Adds the change of an IPv4 address.
    #[inline(always)]
    #[must_use]
    pub fn addr(self, old: Ipv4Addr, new: Ipv4Addr) -> Delta {
        self.u32(old.to_bits(), new.to_bits())
    }

    /// The checksum `csum` after all the changes (RFC 1624 eqn. 3).
    #[inline(always)]
    pub fn apply(self, csum: u16) -> u16 {
        !fold(u32::from(!csum) + self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference: 16-bit words summed in a u64, folded at the end.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with carries folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(compute(&data), !0xddf2);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(fold(sum(&[0x01])), 0x0100);
        assert_eq!(fold(sum(&[])), 0);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(compute(&hdr), 0xb861);
        hdr[10] = 0xb8;
        hdr[11] = 0x61;
        assert!(is_valid(sum(&hdr)));
        hdr[19] ^= 1;
        assert!(!is_valid(sum(&hdr)));
    }

    #[test]
    fn pseudo_header_example() {
        let s = pseudo_header_sum(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            0x0010,
        );
        assert_eq!(s, 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 0x10);
    }

    #[test]
    fn update_keeps_a_correct_checksum_away_from_the_wrong_zero() {
        // RFC 1624 §3's example: eqn. 2 would give 0x0000 here, eqn. 3 must give 0xffff... only when the sum is
        // really zero; with a non-zero sum the result must verify like a recomputation does.
        let mut data = [0x00u8, 0x00, 0xcd, 0x13, 0x00, 0x00];
        let c = compute(&data);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        let new_c = update_u16(c, 0xcd13, 0x3285);
        data[2..4].copy_from_slice(&0x3285u16.to_be_bytes());
        data[4..6].copy_from_slice(&new_c.to_be_bytes());
        assert!(is_valid(sum(&data)));
        data[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(new_c, compute(&data));
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert_eq!(fold(sum(&data)), reference_sum(&data));
            prop_assert!(sum(&data) <= 0xffff);
        }

        #[test]
        fn sum_of_split_equals_sum_of_whole(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..300,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(sum(a) + sum(b)), fold(sum(&data)));
        }

        /// Rewriting one aligned word or double word of a message with a non-zero sum and updating the checksum
        /// incrementally gives exactly the recomputed checksum.
        #[test]
        fn incremental_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 12..200),
            word in 0usize..100,
            new16 in any::<u16>(),
            new32 in any::<u32>(),
        ) {
            data[0] |= 0x40; // keep the sum non-zero, as a real header's is
            let len = data.len() & !1;
            data.truncate(len);
            // Checksum at bytes 2..4, as in ICMP.
            data[2] = 0;
            data[3] = 0;
            let c = compute(&data);
            // A 16-bit word other than the checksum and the first one.
            let w = 4 + (word * 2) % (len - 4);
            let old16 = u16::from_be_bytes([data[w], data[w + 1]]);
            data[w..w + 2].copy_from_slice(&new16.to_be_bytes());
            let inc = update_u16(c, old16, new16);
            prop_assert_eq!(inc, compute(&data));
            // A 32-bit field.
            let w = 4 + (word * 2) % (len - 6);
            let old32 = u32::from_be_bytes([data[w], data[w + 1], data[w + 2], data[w + 3]]);
            data[w..w + 4].copy_from_slice(&new32.to_be_bytes());
            let inc2 = update_u32(inc, old32, new32);
            prop_assert_eq!(inc2, compute(&data));
        }

        #[test]
        fn delta_equals_chained_updates(
            csum in any::<u16>(),
            a in any::<(u16, u16)>(),
            b in any::<(u32, u32)>(),
            c in any::<([u8; 4], [u8; 4])>(),
        ) {
            let chained = update_addr(
                update_u32(update_u16(csum, a.0, a.1), b.0, b.1),
                Ipv4Addr::from(c.0),
                Ipv4Addr::from(c.1),
            );
            let delta = Delta::ZERO
                .u16(a.0, a.1)
                .u32(b.0, b.1)
                .addr(Ipv4Addr::from(c.0), Ipv4Addr::from(c.1));
            // Equal as one's-complement numbers (0 and 0xffff are the same number).
            let applied = delta.apply(csum);
            prop_assert_eq!(applied % 0xffff, chained % 0xffff);
        }
    }
}
