//! Fragments: the first fragment's translation remembered for the later ones (fast path).
//!
//! Only the first fragment carries the ports, so only it can find the session. Its translated address is
//! kept briefly, keyed by (source, destination, IP id, protocol) as the datagram arrives, in a small
//! direct-mapped cache owned by the shard (a collision evicts: the later fragments are then dropped and
//! counted, never mistranslated, because the whole key is compared). Later fragments carry no transport
//! header, so nothing but the address (and the IPv4 checksum) changes; the transport checksum in the first
//! fragment already covers the whole datagram.
//!
//! Later fragments may land on another worker than the first one (they carry no ports for the steering
//! hash), so the shard that saw the first fragment also writes its id into [`FragSteer`], a fixed table of
//! atomics shared by all workers: a worker receiving a later fragment hands it to that shard.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// How long a first fragment's translation is remembered.
pub const FRAG_TTL_MS: u32 = 2_000;
const CACHE_SLOTS: usize = 1024;
const STEER_SLOTS: usize = 4096;

/// The reassembly key of a fragment as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    /// Source address as received.
    pub src: Ipv4Addr,
    /// Destination address as received.
    pub dst: Ipv4Addr,
    /// IP identification.
    pub ident: u16,
    /// IP protocol.
    pub proto: u8,
}

impl FragKey {
    /// The reassembly key of a checked IPv4 packet, as received.
    pub fn of(p: &super::parse::Parsed) -> FragKey {
        FragKey {
            src: p.src,
            dst: p.dst,
            ident: p.ident,
            proto: p.proto,
        }
    }

    fn hash(&self) -> u32 {
        let mut h = u32::from(self.src).wrapping_mul(0x9E37_79B1)
            ^ u32::from(self.dst).rotate_left(13)
            ^ (u32::from(self.ident) << 8)
            ^ u32::from(self.proto);
        h ^= h >> 15;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^ (h >> 13)
    }
}

#[derive(Clone, Copy)]
struct Entry {
    key: FragKey,
    new_addr: Ipv4Addr,
    expires_ms: u32,
    live: bool,
}

/// Per-shard cache of first-fragment translations.
pub struct FragCache {
    slots: Box<[Entry]>,
}

impl Default for FragCache {
    fn default() -> Self {
        let empty = Entry {
            key: FragKey {
                src: Ipv4Addr::UNSPECIFIED,
                dst: Ipv4Addr::UNSPECIFIED,
                ident: 0,
                proto: 0,
            },
            new_addr: Ipv4Addr::UNSPECIFIED,
            expires_ms: 0,
            live: false,
        };
        FragCache {
            slots: vec![empty; CACHE_SLOTS].into_boxed_slice(),
        }
    }
}

impl FragCache {
    /// Remember the translated address for the rest of a datagram.
    pub fn insert(&mut self, key: FragKey, new_addr: Ipv4Addr, now_ms: u32) {
        let slot = &mut self.slots[key.hash() as usize % CACHE_SLOTS];
        *slot = Entry {
            key,
            new_addr,
            expires_ms: now_ms.wrapping_add(FRAG_TTL_MS),
            live: true,
        };
    }

    /// The translated address for a later fragment, if its first fragment was seen recently.
    pub fn lookup(&self, key: &FragKey, now_ms: u32) -> Option<Ipv4Addr> {
        let e = &self.slots[key.hash() as usize % CACHE_SLOTS];
        // Wrapping comparison: still valid while fewer than 2^31 ms remain.
        let fresh = (e.expires_ms.wrapping_sub(now_ms) as i32) > 0;
        (e.live && fresh && e.key == *key).then_some(e.new_addr)
    }
}

/// Which shard owns a fragmented datagram: shared by all workers, lock-free.
#[derive(Clone)]
pub struct FragSteer {
    slots: Arc<[AtomicU32]>,
}

impl Default for FragSteer {
    fn default() -> Self {
        FragSteer {
            slots: (0..STEER_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl FragSteer {
    /// Record that `shard` translated the first fragment of `key`.
    pub fn publish(&self, key: &FragKey, shard: u16) {
        let h = key.hash();
        let v = ((u32::from(shard) + 1) << 16) | (h >> 16);
        self.slots[h as usize % STEER_SLOTS].store(v, Ordering::Relaxed);
    }

    /// The shard that translated the first fragment of `key`, if known.
    pub fn owner(&self, key: &FragKey) -> Option<u16> {
        let h = key.hash();
        let v = self.slots[h as usize % STEER_SLOTS].load(Ordering::Relaxed);
        (v != 0 && (v & 0xffff) == h >> 16).then(|| ((v >> 16) - 1) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::new(198, 51, 100, 1),
            ident,
            proto: 17,
        }
    }

    #[test]
    fn cache_remembers_briefly_and_compares_the_whole_key() {
        let mut c = FragCache::default();
        let public = Ipv4Addr::new(203, 0, 113, 10);
        c.insert(key(7), public, 1000);
        assert_eq!(c.lookup(&key(7), 1500), Some(public));
        assert_eq!(c.lookup(&key(8), 1500), None);
        let mut other = key(7);
        other.proto = 6;
        assert_eq!(c.lookup(&other, 1500), None);
        assert_eq!(c.lookup(&key(7), 1000 + FRAG_TTL_MS + 1), None);
    }

    #[test]
    fn steer_table_names_the_shard() {
        let s = FragSteer::default();
        assert_eq!(s.owner(&key(1)), None);
        s.publish(&key(1), 3);
        assert_eq!(s.clone().owner(&key(1)), Some(3));
    }
}
