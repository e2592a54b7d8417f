//! The session index: a fixed-size open-addressing table from a flow hash to a slab id (fast path).
//!
//! Layer: under [`super::session::SessionTable`], which keeps two of these (in2out and out2in keys). The
//! index stores no keys: each entry is a 32-bit tag (from the hash) and a 32-bit slab id, and the caller
//! confirms a tag match by comparing the slab entry, which the packet needs next anyway.
//!
//! Layout, chosen so that a lookup touches one cache line and that line can be prefetched:
//! - a bucket is one 64-byte line holding [`ENTRIES`] entries `tag << 32 | id` plus an *overflow count*:
//!   how many entries had to probe past this bucket because it was full;
//! - the bucket count is fixed at construction from the capacity (at most [`MAX_LOAD`] of the slots are
//!   ever used), so the index never grows and the fast path never allocates. The home bucket is picked by
//!   multiply-shift range reduction of the hash's high half, so the count need not be a power of two and
//!   the memory per session stays the same at every capacity (a power of two would cost up to twice as
//!   much just past a boundary);
//! - collisions probe linearly to the next bucket, at most [`MAX_PROBE`] buckets; an insert that finds no
//!   room in that window fails (the caller counts the session table as full).
//!
//! Invariants: an entry is never 0 (tags are odd), so 0 marks a free slot; an entry whose home bucket is
//! `h` and that sits in bucket `h + k` has raised the overflow count of buckets `h .. h + k - 1` by one.
//! A lookup therefore stops at the first bucket whose overflow count is 0, and deletion keeps that exact
//! (it lowers the same counts): no tombstones, no clean-up pass, lookups of absent keys stay short.

use std::fmt;

/// Entries per bucket.
pub const ENTRIES: usize = 7;
/// Highest fraction of the slots the index is sized to use at full capacity.
pub const MAX_LOAD: f64 = 0.75;
/// Most buckets one insert or lookup visits.
pub const MAX_PROBE: usize = 64;

/// One 64-byte bucket.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    entries: [u64; ENTRIES],
    overflow: u32,
    _spare: u32,
}

/// The insert found no free slot within [`MAX_PROBE`] buckets of the key's home.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("session index full around this hash")]
pub struct IndexFull;

/// A fixed-size hash → slab id index (see the module documentation).
pub struct SessionIndex {
    buckets: Box<[Bucket]>,
    /// Number of buckets, as a multiplier for the range reduction.
    n: u64,
    /// Most buckets one probe sequence may visit: [`MAX_PROBE`], or fewer in a tiny index.
    probe: usize,
}

impl fmt::Debug for SessionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionIndex")
            .field("buckets", &self.n)
            .finish()
    }
}

/// The tag stored for a hash, in the high half of an entry: never 0.
#[inline(always)]
fn tag_of(h: u64) -> u64 {
    u64::from(h as u32 | 1) << 32
}

/// Ask the memory system for the cache line holding `r`, without waiting for it.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, never changes memory, and the pointer comes
    // from a live reference anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

impl SessionIndex {
    /// An index for at most `capacity` entries; all memory is allocated now.
    pub fn with_capacity(capacity: usize) -> SessionIndex {
        let slots = (capacity as f64 / MAX_LOAD).ceil() as usize;
        let n = slots.div_ceil(ENTRIES).clamp(1, u32::MAX as usize);
        SessionIndex {
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            n: n as u64,
            probe: MAX_PROBE.min(n),
        }
    }

    /// Bytes held by the buckets.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// The home bucket of a hash.
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (((h >> 32) * self.n) >> 32) as usize
    }

    #[inline(always)]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// Start loading the home bucket of `h` into the cache.
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        prefetch(&self.buckets[self.home(h)]);
    }

    /// The first id along the probe sequence of `h` whose tag matches, if any: the likely answer of a
    /// lookup, known without the slab (used to prefetch the slab entry before the real lookup). Usually
    /// one cache line; the next bucket only for the few entries displaced from a full home bucket.
    #[inline(always)]
    pub fn candidate(&self, h: u64) -> Option<u32> {
        self.find(h, |_| true)
    }

    /// Find the id of `h` for which `eq` confirms the key.
    #[inline]
    pub fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(h);
        let mut b = self.home(h);
        for _ in 0..self.probe {
            let bucket = &self.buckets[b];
            for &e in &bucket.entries {
                if e & !0xffff_ffff == tag && eq(e as u32) {
                    return Some(e as u32);
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Add `id` under `h`. The caller guarantees the key is not already present.
    pub fn insert(&mut self, h: u64, id: u32) -> Result<(), IndexFull> {
        let home = self.home(h);
        let mut b = home;
        for step in 0..self.probe {
            if let Some(slot) = self.buckets[b].entries.iter().position(|&e| e == 0) {
                self.buckets[b].entries[slot] = tag_of(h) | u64::from(id);
                let mut c = home;
                for _ in 0..step {
                    self.buckets[c].overflow += 1;
                    c = self.next(c);
                }
                return Ok(());
            }
            b = self.next(b);
        }
        Err(IndexFull)
    }

    /// Remove `id`, inserted under `h`; returns whether it was there.
    pub fn remove(&mut self, h: u64, id: u32) -> bool {
        let home = self.home(h);
        let want = tag_of(h) | u64::from(id);
        let mut b = home;
        for step in 0..self.probe {
            if let Some(slot) = self.buckets[b].entries.iter().position(|&e| e == want) {
                self.buckets[b].entries[slot] = 0;
                let mut c = home;
                for _ in 0..step {
                    self.buckets[c].overflow -= 1;
                    c = self.next(c);
                }
                return true;
            }
            if self.buckets[b].overflow == 0 {
                return false;
            }
            b = self.next(b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn sized_from_capacity_without_power_of_two_rounding() {
        let ix = SessionIndex::with_capacity(1_032_192);
        let slots = ix.buckets.len() * ENTRIES;
        assert!(slots as f64 * MAX_LOAD >= 1_032_192.0);
        assert!((slots as f64 * MAX_LOAD) < 1_032_192.0 + 2.0 * ENTRIES as f64);
        assert_eq!(ix.memory_bytes(), ix.buckets.len() * 64);
        assert_eq!(SessionIndex::with_capacity(0).buckets.len(), 1);
    }

    /// Every hash lands in one bucket, so entries overflow into the next ones; deleting from the full
    /// home bucket must keep the displaced entries reachable.
    #[test]
    fn overflow_chains_survive_deletion() {
        let mut ix = SessionIndex::with_capacity(100);
        let h = 0x1234_5678_9abc_def0;
        for id in 0..30 {
            ix.insert(h, id).unwrap();
        }
        for id in 0..30 {
            assert_eq!(ix.find(h, |x| x == id), Some(id));
        }
        // Empty the home bucket: the rest are displaced, and must still be found.
        for id in 0..ENTRIES as u32 {
            assert!(ix.remove(h, id));
            assert!(!ix.remove(h, id));
        }
        for id in ENTRIES as u32..30 {
            assert_eq!(ix.find(h, |x| x == id), Some(id));
        }
        assert_eq!(ix.find(h, |x| x == 3), None);
        for id in ENTRIES as u32..30 {
            assert!(ix.remove(h, id));
        }
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
        assert!(ix.buckets.iter().all(|b| b.entries.iter().all(|&e| e == 0)));
    }

    #[test]
    fn insert_fails_cleanly_when_the_window_is_full() {
        let mut ix = SessionIndex::with_capacity(10);
        let slots = ix.buckets.len() * ENTRIES;
        let h = 42u64 << 32;
        for id in 0..slots as u32 {
            ix.insert(h, id).unwrap();
        }
        assert_eq!(ix.insert(h, 999), Err(IndexFull));
        // Nothing was changed by the failed insert.
        assert_eq!(ix.find(h, |x| x == 999), None);
        for id in 0..slots as u32 {
            assert!(ix.remove(h, id));
        }
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
    }

    /// Random inserts and removes against a model, at full load, wrapping around the end.
    #[test]
    fn matches_a_model_under_churn() {
        let cap = 2_000;
        let mut ix = SessionIndex::with_capacity(cap);
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(9);
        // Few distinct home buckets (hashes share their high bits) to force long chains and wrapping.
        let hash = |rng: &mut SmallRng| (rng.gen_range(0..8u64) << 61) | rng.gen::<u32>() as u64;
        let mut next_id = 0u32;
        for round in 0..40_000 {
            if model.len() < cap && (round % 3 != 0 || model.is_empty()) {
                let h = hash(&mut rng);
                if ix.insert(h, next_id).is_ok() {
                    model.insert(next_id, h);
                }
                next_id += 1;
            } else {
                let &id = model.keys().nth(rng.gen_range(0..model.len())).unwrap();
                let h = model.remove(&id).unwrap();
                assert!(ix.remove(h, id));
            }
            if round % 997 == 0 {
                for (&id, &h) in &model {
                    assert_eq!(ix.find(h, |x| x == id), Some(id));
                }
            }
        }
        for (&id, &h) in &model {
            assert_eq!(ix.find(h, |x| x == id), Some(id));
            assert!(ix.remove(h, id));
        }
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
    }

    #[test]
    fn candidate_is_the_first_tag_match() {
        let mut ix = SessionIndex::with_capacity(64);
        let h = 0xdead_beef_0000_0010;
        assert_eq!(ix.candidate(h), None);
        ix.insert(h, 5).unwrap();
        assert_eq!(ix.candidate(h), Some(5));
        assert_eq!(ix.candidate(h ^ 0x100), None);
    }
}
