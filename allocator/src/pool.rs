//! One shard's state for one public IP and protocol: the pair table, per-destination live
//! counts, hot-destination bitmaps and the blocks the shard owns.
//!
//! Layer: allocator, fast path (owned by one shard through `&mut`, no lock, no shared write).
//! Invariants:
//! - `pairs` holds every (destination, public port) that is live or cooling, once; a pair's port
//!   lies in a block the shard owns (blocks only move while idle, so this survives rebalancing);
//! - `dests` holds, per destination with at least one live lease, that live count (low 16 bits);
//! - a hot destination's bitmap has bit `slot` set exactly when its pair with that slot's port is
//!   in `pairs`, and `pairs` counts them;
//! - `block_pairs[b]` counts the pairs in block `b`; `idle_blocks` counts owned blocks at 0.
//!
//! Memory: `pairs` and `dests` are `HashTable<u64>` (9 bytes per bucket with the control byte).

use std::sync::Arc;

use hashbrown::{HashMap, HashTable};

use crate::hash::{dest_of, fastrange, hash64, low16, pair_key};
use crate::layout::Layout;

/// Random probes before falling back to a scan.
pub(crate) const PROBES: u32 = 8;
pub(crate) const NONE: u32 = u32::MAX;

/// Read-only context a pool needs from its shard.
pub(crate) struct Ctx<'a> {
    pub layout: &'a Layout,
    pub per_slot: Option<&'a PerSlotOwnership>,
    pub seed: u64,
}

/// Per-port ownership (destination-port-hash mode): fixed, shared by every pool of a shard.
#[derive(Debug)]
pub(crate) struct PerSlotOwnership {
    pub bits: Arc<[u64]>,
    pub list: Arc<[u16]>,
}

#[derive(Debug)]
pub(crate) struct HotDest {
    bits: Box<[u64]>,
    pairs: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Pool {
    pub pairs: HashTable<u64>,
    pub dests: HashTable<u64>,
    pub hot: HashMap<u64, HotDest>,
    /// Blocks ownership only (empty in per-slot mode).
    pub block_pairs: Vec<u32>,
    pub owned_list: Vec<u32>,
    pub owned_pos: Vec<u32>,
    pub owned_bits: Vec<u64>,
    pub idle_blocks: u32,
    pub live: u32,
    pub cooling: u32,
    pub wm_dirty: bool,
    pub low_flag: bool,
    pub surplus_flag: bool,
}

#[inline]
fn fastrange32(r: u32, n: u32) -> u32 {
    ((u64::from(r) * u64::from(n)) >> 32) as u32
}

impl Pool {
    pub fn new_blocks(layout: &Layout, initial: &[u32]) -> Pool {
        let n_blocks = layout.n_blocks as usize;
        let mut p = Pool {
            block_pairs: vec![0; n_blocks],
            owned_pos: vec![NONE; n_blocks],
            owned_bits: vec![0; (layout.n_slots() as usize).div_ceil(64)],
            ..Pool::default()
        };
        for &b in initial {
            p.grant(layout, b);
        }
        p.wm_dirty = false;
        p
    }

    pub fn new_per_slot() -> Pool {
        Pool::default()
    }

    #[inline]
    pub fn has_pair(&self, key: u64, seed: u64) -> bool {
        self.pairs.find(hash64(key, seed), |e| *e == key).is_some()
    }

    /// Live leases towards a destination.
    #[inline]
    pub fn dest_live(&self, dkey: u64, seed: u64) -> u32 {
        self.dests
            .find(hash64(dkey, seed), |e| dest_of(*e) == dkey)
            .map_or(0, |e| u32::from(low16(*e)))
    }

    /// Number of owned slots.
    pub fn owned_slots(&self, ctx: &Ctx<'_>) -> u32 {
        match ctx.per_slot {
            Some(ps) => ps.list.len() as u32,
            None => self
                .owned_list
                .iter()
                .map(|&b| {
                    let (s, e) = ctx.layout.block_slots(b);
                    e - s
                })
                .sum(),
        }
    }

    #[inline]
    fn owned_word(&self, ctx: &Ctx<'_>, w: usize) -> u64 {
        match ctx.per_slot {
            Some(ps) => ps.bits.get(w).copied().unwrap_or(0),
            None => self.owned_bits.get(w).copied().unwrap_or(0),
        }
    }

    #[inline]
    fn is_owned(&self, ctx: &Ctx<'_>, slot: u32) -> bool {
        self.owned_word(ctx, (slot / 64) as usize) & (1u64 << (slot % 64)) != 0
    }

    /// A uniformly random owned slot (whole inventory), `None` when the shard owns none.
    #[inline]
    fn random_owned_slot(&self, ctx: &Ctx<'_>, r: u64) -> Option<u32> {
        match ctx.per_slot {
            Some(ps) => {
                if ps.list.is_empty() {
                    return None;
                }
                let i = fastrange(r, ps.list.len() as u64) as usize;
                Some(u32::from(ps.list[i]))
            }
            None => {
                if self.owned_list.is_empty() {
                    return None;
                }
                let b = self.owned_list
                    [fastrange32((r >> 32) as u32, self.owned_list.len() as u32) as usize];
                let (s, e) = ctx.layout.block_slots(b);
                Some(s + fastrange32(r as u32, e - s))
            }
        }
    }

    /// A slot in `[a, b)` owned by the shard whose pair with `dkey` is free, chosen at random.
    pub fn find_slot<R: rand::RngCore + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        dkey: u64,
        (a, b): (u32, u32),
        rng: &mut R,
    ) -> Option<u32> {
        if a >= b {
            return None;
        }
        let full = a == 0 && b == ctx.layout.n_slots();
        let is_hot = !self.hot.is_empty() && self.hot.contains_key(&dkey);
        if !is_hot {
            let mut collisions = 0;
            for _ in 0..PROBES {
                let r = rng.next_u64();
                let slot = if full {
                    self.random_owned_slot(ctx, r)?
                } else {
                    let s = a + fastrange32(r as u32, b - a);
                    if !self.is_owned(ctx, s) {
                        continue;
                    }
                    s
                };
                let port = ctx.layout.ports[slot as usize];
                if !self.has_pair(pair_key(dkey, port), ctx.seed) {
                    return Some(slot);
                }
                collisions += 1;
            }
            if full && collisions >= PROBES / 2 {
                self.make_hot(ctx, dkey);
            }
        }
        self.scan(ctx, dkey, a, b, rng)
    }

    /// Scans `[a, b)` word by word from a random word for a free owned slot.
    fn scan<R: rand::RngCore + ?Sized>(
        &self,
        ctx: &Ctx<'_>,
        dkey: u64,
        a: u32,
        b: u32,
        rng: &mut R,
    ) -> Option<u32> {
        let w0 = (a / 64) as usize;
        let w1 = ((b - 1) / 64) as usize;
        let nw = w1 - w0 + 1;
        let r = rng.next_u64();
        let start = fastrange32((r >> 32) as u32, nw as u32) as usize;
        let hot = if self.hot.is_empty() {
            None
        } else {
            self.hot.get(&dkey)
        };
        for i in 0..nw {
            let w = w0 + (start + i) % nw;
            let mut mask = self.owned_word(ctx, w);
            let base = (w * 64) as u32;
            if base < a {
                mask &= !0u64 << (a - base);
            }
            if base + 64 > b {
                mask &= !0u64 >> (base + 64 - b);
            }
            if let Some(h) = hot {
                mask &= !h.bits[w];
                if mask != 0 {
                    let k = fastrange32(r as u32, mask.count_ones());
                    return Some(base + nth_set_bit(mask, k));
                }
            } else {
                // Rotate so that the first bit tried is random within the word.
                let rot = (r as u32) % 64;
                let mut m = mask.rotate_right(rot);
                while m != 0 {
                    let bit = (m.trailing_zeros() + rot) % 64;
                    m &= m - 1;
                    let slot = base + bit;
                    let port = ctx.layout.ports[slot as usize];
                    if !self.has_pair(pair_key(dkey, port), ctx.seed) {
                        return Some(slot);
                    }
                }
            }
        }
        None
    }

    /// Builds the bitmap of a destination that collides often.
    fn make_hot(&mut self, ctx: &Ctx<'_>, dkey: u64) {
        let l = ctx.layout;
        let mut bits = vec![0u64; (l.n_slots() as usize).div_ceil(64)].into_boxed_slice();
        let mut pairs = 0;
        let mut mark = |port: u16| {
            let slot = l.slot_of[usize::from(port)];
            if slot != crate::layout::NO_SLOT {
                bits[usize::from(slot) / 64] |= 1u64 << (slot % 64);
                pairs += 1;
            }
        };
        if self.pairs.len() <= l.n_slots() as usize {
            for e in self.pairs.iter() {
                if dest_of(*e) == dkey {
                    mark(low16(*e));
                }
            }
        } else {
            for (slot, &port) in l.ports.iter().enumerate() {
                if self.is_owned(ctx, slot as u32) && self.has_pair(pair_key(dkey, port), ctx.seed)
                {
                    mark(port);
                }
            }
        }
        self.hot.insert(dkey, HotDest { bits, pairs });
    }

    /// Records a new live pair (known to be absent) on `slot`.
    pub fn insert_live(&mut self, ctx: &Ctx<'_>, dkey: u64, slot: u32, port: u16) {
        let seed = ctx.seed;
        let key = pair_key(dkey, port);
        self.pairs
            .insert_unique(hash64(key, seed), key, |e| hash64(*e, seed));
        let dh = hash64(dkey, seed);
        match self.dests.find_mut(dh, |e| dest_of(*e) == dkey) {
            Some(e) => *e += 1,
            None => {
                self.dests
                    .insert_unique(dh, (dkey << 16) | 1, |e| hash64(dest_of(*e), seed));
            }
        }
        if !self.hot.is_empty() {
            if let Some(h) = self.hot.get_mut(&dkey) {
                h.bits[(slot / 64) as usize] |= 1u64 << (slot % 64);
                h.pairs += 1;
            }
        }
        if let Some(c) = self
            .block_pairs
            .get_mut((slot / ctx.layout.block_size) as usize)
        {
            if *c == 0 && self.owned_pos[(slot / ctx.layout.block_size) as usize] != NONE {
                self.idle_blocks -= 1;
                self.wm_dirty = true;
            }
            *c += 1;
        }
        self.live += 1;
    }

    /// Ends the live state of a pair: decrements its destination's live count. `false` when the
    /// pair is not live (absent, or cooling while its destination has no live lease).
    pub fn end_live(&mut self, dkey: u64, port: u16, seed: u64) -> bool {
        if !self.has_pair(pair_key(dkey, port), seed) {
            return false;
        }
        match self
            .dests
            .find_entry(hash64(dkey, seed), |e| dest_of(*e) == dkey)
        {
            Ok(mut occ) => {
                if low16(*occ.get()) <= 1 {
                    occ.remove();
                } else {
                    *occ.get_mut() -= 1;
                }
            }
            Err(_) => return false,
        }
        self.live = self.live.saturating_sub(1);
        true
    }

    /// Removes a pair (end of cool-down, or release without one).
    pub fn remove_pair(&mut self, ctx: &Ctx<'_>, key: u64) {
        let seed = ctx.seed;
        let Ok(occ) = self.pairs.find_entry(hash64(key, seed), |e| *e == key) else {
            return;
        };
        occ.remove();
        let l = ctx.layout;
        let slot = l.slot_of[usize::from(low16(key))];
        if slot == crate::layout::NO_SLOT {
            return;
        }
        let slot = u32::from(slot);
        let dkey = dest_of(key);
        if !self.hot.is_empty() {
            if let Some(h) = self.hot.get_mut(&dkey) {
                h.bits[(slot / 64) as usize] &= !(1u64 << (slot % 64));
                h.pairs = h.pairs.saturating_sub(1);
                if h.pairs * 64 < l.n_slots() {
                    self.hot.remove(&dkey);
                }
            }
        }
        let b = (slot / l.block_size) as usize;
        if let Some(c) = self.block_pairs.get_mut(b) {
            *c = c.saturating_sub(1);
            if *c == 0 && self.owned_pos[b] != NONE {
                self.idle_blocks += 1;
                self.wm_dirty = true;
            }
        }
    }

    /// Takes ownership of block `b` (Blocks mode). Returns false if already owned or invalid.
    pub fn grant(&mut self, layout: &Layout, b: u32) -> bool {
        if b >= layout.n_blocks || self.owned_pos[b as usize] != NONE {
            return false;
        }
        self.owned_pos[b as usize] = self.owned_list.len() as u32;
        self.owned_list.push(b);
        let (s, e) = layout.block_slots(b);
        for slot in s..e {
            self.owned_bits[(slot / 64) as usize] |= 1u64 << (slot % 64);
        }
        if self.block_pairs[b as usize] == 0 {
            self.idle_blocks += 1;
        }
        self.wm_dirty = true;
        true
    }

    /// Gives up to `count` idle blocks; calls `out` with each.
    pub fn surrender(&mut self, layout: &Layout, count: u32, mut out: impl FnMut(u32)) {
        let mut left = count;
        let mut i = self.owned_list.len();
        while i > 0 && left > 0 {
            i -= 1;
            let b = self.owned_list[i];
            if self.block_pairs[b as usize] != 0 {
                continue;
            }
            self.owned_list.swap_remove(i);
            if let Some(&moved) = self.owned_list.get(i) {
                self.owned_pos[moved as usize] = i as u32;
            }
            self.owned_pos[b as usize] = NONE;
            let (s, e) = layout.block_slots(b);
            for slot in s..e {
                self.owned_bits[(slot / 64) as usize] &= !(1u64 << (slot % 64));
            }
            self.idle_blocks -= 1;
            self.wm_dirty = true;
            left -= 1;
            out(b);
        }
    }

    /// Bytes held by this pool's structures.
    pub fn memory_bytes(&self) -> usize {
        let hot: usize =
            self.hot.values().map(|h| h.bits.len() * 8).sum::<usize>() + self.hot.allocation_size();
        self.pairs.allocation_size()
            + self.dests.allocation_size()
            + hot
            + self.block_pairs.capacity() * 4
            + self.owned_list.capacity() * 4
            + self.owned_pos.capacity() * 4
            + self.owned_bits.capacity() * 8
    }

    /// Hot destinations (tests and stats).
    pub fn hot_count(&self) -> usize {
        self.hot.len()
    }
}

/// Position of the `k`-th set bit of `m` (k < popcount).
#[inline]
fn nth_set_bit(mut m: u64, k: u32) -> u32 {
    for _ in 0..k {
        m &= m - 1;
    }
    m.trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_set_bit_finds_each_bit() {
        let m = 0b1011_0100u64;
        assert_eq!(nth_set_bit(m, 0), 2);
        assert_eq!(nth_set_bit(m, 1), 4);
        assert_eq!(nth_set_bit(m, 2), 5);
        assert_eq!(nth_set_bit(m, 3), 7);
    }

    #[test]
    fn fastrange32_is_in_range() {
        assert_eq!(fastrange32(u32::MAX, 7), 6);
        assert_eq!(fastrange32(0, 7), 0);
    }
}
