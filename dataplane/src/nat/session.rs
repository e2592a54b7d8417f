//! The per-shard session table: a preallocated slab indexed both ways, with an expiry wheel (fast path).
//!
//! Layout, chosen for one cache miss per lookup stage and for memory per session (target ≤ 96 bytes, all
//! included):
//! - the slab is a `Vec<Session>` allocated once with the shard's capacity: 32-byte entries, 32-byte
//!   aligned, so an entry never straddles two cache lines. The expiry wheel's links (8 bytes a session,
//!   touched only by the timer work) live in a parallel array, which also chains the free entries, so
//!   creating and deleting sessions never allocates;
//! - two session indexes (`nat/index.rs`) map the in2out key and the out2in key to a slab index. They
//!   store a tag and the 4-byte index in 64-byte buckets; the key itself is compared against the slab
//!   entry, which the packet needs next anyway. Both can be prefetched a burst ahead
//!   ([`SessionTable::prefetch_in2out`], [`SessionTable::prefetch_session_in2out`] and their out2in
//!   twins);
//! - the expiry wheel has [`WHEEL_SLOTS`] slots of [`SLOT_NANOS`] (about one second) each; a session sits in
//!   exactly one slot through an intrusive doubly linked list, so rescheduling is O(1).
//!
//! Expiry is lazy: every packet refreshes `last_seen` only; when a session's slot comes round, its real
//! deadline is recomputed from `last_seen` and its state, and it either expires or moves to the slot of its
//! new deadline. [`SessionTable::expire`] does a bounded amount of that work per call, never a table scan.
//! Invariants: every live session is in both indexes and in exactly one wheel slot; a free entry is in none.

use super::flow::FlowKey;
use super::index::{prefetch, SessionIndex};
use natgw_allocator::Timestamp;
use natgw_config::Protocol;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Index of a session in its shard's slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub u32);

const NIL: u32 = u32::MAX;
/// Number of slots in the expiry wheel; deadlines further away are parked in the last slot and re-checked.
pub const WHEEL_SLOTS: usize = 1024;
/// Width of one wheel slot: 2^30 ns, about 1.07 s.
pub const SLOT_SHIFT: u32 = 30;
/// Width of one wheel slot in nanoseconds.
pub const SLOT_NANOS: u64 = 1 << SLOT_SHIFT;

/// Where a session stands; drives its idle timeout and the close kind reported to the allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SessionState {
    /// TCP: SYN seen from the inside, nothing back yet (half-open).
    TcpSynSent = 0,
    /// TCP: traffic seen both ways.
    TcpEstablished = 1,
    /// TCP: FIN seen from the inside only.
    TcpFinIn2out = 2,
    /// TCP: FIN seen from the outside only.
    TcpFinOut2in = 3,
    /// TCP: FIN seen both ways; the session lingers briefly for the last ACKs.
    TcpClosed = 4,
    /// TCP: RST seen; the session lingers briefly.
    TcpReset = 5,
    /// A UDP flow.
    Udp = 6,
    /// An ICMP echo flow.
    Icmp = 7,
    /// Slab entry not in use.
    Free = 255,
}

impl SessionState {
    /// The state a new session starts in.
    pub fn initial(proto: Protocol) -> SessionState {
        match proto {
            Protocol::Tcp => SessionState::TcpSynSent,
            Protocol::Udp => SessionState::Udp,
            Protocol::Icmp => SessionState::Icmp,
        }
    }

    /// Whether the flow is being torn down (used to pick short timeouts).
    pub fn is_closing(self) -> bool {
        matches!(self, SessionState::TcpClosed | SessionState::TcpReset)
    }
}

/// One translated flow: 32 bytes, aligned so that it sits in one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
pub struct Session {
    /// Private (inside) host address.
    pub private_ip: Ipv4Addr,
    /// Public address the flow is translated to.
    pub public_ip: Ipv4Addr,
    /// Remote (internet) address.
    pub remote_ip: Ipv4Addr,
    /// Private source port or ICMP identifier.
    pub private_port: u16,
    /// Public (SNAT) port or ICMP identifier.
    pub public_port: u16,
    /// Remote port (0 for ICMP).
    pub remote_port: u16,
    /// Transport protocol.
    pub proto: Protocol,
    /// Flow state.
    pub state: SessionState,
    /// Which allocator generation leased the port (config reloads keep old flows on the old inventory).
    pub generation: u8,
    /// Spare flag bits.
    pub flags: u8,
    /// Last packet seen, in milliseconds of the shard clock (wrapping; ages stay far below 49 days because
    /// the wheel re-checks every session at least every [`WHEEL_SLOTS`] slots).
    pub last_seen_ms: u32,
    /// Where the inside neighbour that reaches `private_ip` sits in the NAT core's neighbour table
    /// ([`NO_NEIGHBOR`] if unknown): saves the out2in path a hash lookup. Only a hint, checked on use.
    pub neighbor: u16,
    /// The expiry wheel slot the session is linked in.
    slot: u16,
}

/// [`Session::neighbor`] of a session whose neighbour entry is not known.
pub const NO_NEIGHBOR: u16 = u16::MAX;

/// A session's links in its expiry wheel slot (or, for a free entry, in the free list: `next` only).
#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

impl Session {
    /// A new session record (not yet in a table).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        proto: Protocol,
        private_ip: Ipv4Addr,
        private_port: u16,
        public_ip: Ipv4Addr,
        public_port: u16,
        remote_ip: Ipv4Addr,
        remote_port: u16,
        generation: u8,
    ) -> Session {
        Session {
            private_ip,
            public_ip,
            remote_ip,
            private_port,
            public_port,
            remote_port,
            proto,
            state: SessionState::initial(proto),
            generation,
            flags: 0,
            last_seen_ms: 0,
            neighbor: NO_NEIGHBOR,
            slot: 0,
        }
    }

    /// The in2out lookup key of this session.
    #[inline]
    pub fn in2out_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            local_ip: self.private_ip,
            local_port: self.private_port,
            remote_ip: self.remote_ip,
            remote_port: self.remote_port,
        }
    }

    /// The out2in lookup key of this session.
    #[inline]
    pub fn out2in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            local_ip: self.public_ip,
            local_port: self.public_port,
            remote_ip: self.remote_ip,
            remote_port: self.remote_port,
        }
    }
}

/// Milliseconds of the shard clock, wrapping.
#[inline]
pub fn clock_ms(now: Timestamp) -> u32 {
    (now.as_nanos() / 1_000_000) as u32
}

/// Why a session could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The slab is full.
    #[error("session table full")]
    Full,
    /// A session with the same in2out or out2in key already exists.
    #[error("duplicate session key")]
    Duplicate,
}

/// The session table of one shard.
pub struct SessionTable {
    slab: Vec<Session>,
    /// Wheel links of each slab entry (free entries: the free list through `next`).
    links: Vec<Link>,
    free_head: u32,
    by_private: SessionIndex,
    by_public: SessionIndex,
    seed: u64,
    live: u32,
    heads: Box<[u32]>,
    /// The next slot number (absolute, in [`SLOT_NANOS`] units) the expiry walk will process.
    cursor: u64,
}

impl SessionTable {
    /// A table for at most `capacity` sessions, all memory allocated now. `seed` keys the hash.
    pub fn with_capacity(capacity: u32, seed: u64, now: Timestamp) -> SessionTable {
        SessionTable {
            slab: Vec::with_capacity(capacity as usize),
            links: Vec::with_capacity(capacity as usize),
            free_head: NIL,
            by_private: SessionIndex::with_capacity(capacity as usize),
            by_public: SessionIndex::with_capacity(capacity as usize),
            seed,
            live: 0,
            heads: vec![NIL; WHEEL_SLOTS].into_boxed_slice(),
            cursor: now.as_nanos() >> SLOT_SHIFT,
        }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Maximum number of sessions.
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Bytes this table holds, all structures included (slab, wheel links, both indexes, the wheel).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Session>()
            + self.links.capacity() * std::mem::size_of::<Link>()
            + self.by_private.memory_bytes()
            + self.by_public.memory_bytes()
            + self.heads.len() * std::mem::size_of::<u32>()
            + std::mem::size_of::<Self>()
    }

    /// The seeded hash of a lookup key, as both indexes use it.
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        key.table_hash(self.seed)
    }

    /// Start loading the in2out index bucket of a key hashed with [`SessionTable::hash`].
    #[inline(always)]
    pub fn prefetch_in2out(&self, h: u64) {
        self.by_private.prefetch(h);
    }

    /// Start loading the out2in index bucket of a key hashed with [`SessionTable::hash`].
    #[inline(always)]
    pub fn prefetch_out2in(&self, h: u64) {
        self.by_public.prefetch(h);
    }

    /// Start loading the session an in2out hash most likely names (reads its index bucket, which should
    /// have been prefetched first) and return that candidate, for [`SessionTable::lookup_in2out_hinted`].
    #[inline(always)]
    pub fn prefetch_session_in2out(&self, h: u64) -> Option<SessionId> {
        let id = self.by_private.candidate(h)?;
        prefetch(self.slab.get(id as usize)?);
        Some(SessionId(id))
    }

    /// Start loading the session an out2in hash most likely names, and return that candidate.
    #[inline(always)]
    pub fn prefetch_session_out2in(&self, h: u64) -> Option<SessionId> {
        let id = self.by_public.candidate(h)?;
        prefetch(self.slab.get(id as usize)?);
        Some(SessionId(id))
    }

    /// Find the session of an in2out key, trying `hint` (a candidate from
    /// [`SessionTable::prefetch_session_in2out`]) first: keys are unique among live sessions, so a live
    /// entry whose key matches is the answer, without touching the index.
    #[inline]
    pub fn lookup_in2out_hinted(
        &self,
        key: &FlowKey,
        hint: Option<SessionId>,
    ) -> Option<SessionId> {
        match hint {
            Some(id) if self.live_entry(id).is_some_and(|s| s.in2out_key() == *key) => Some(id),
            _ => self.lookup_in2out(key),
        }
    }

    /// Find the session of an out2in key, trying `hint` first (see
    /// [`SessionTable::lookup_in2out_hinted`]).
    #[inline]
    pub fn lookup_out2in_hinted(
        &self,
        key: &FlowKey,
        hint: Option<SessionId>,
    ) -> Option<SessionId> {
        match hint {
            Some(id) if self.live_entry(id).is_some_and(|s| s.out2in_key() == *key) => Some(id),
            _ => self.lookup_out2in(key),
        }
    }

    /// The slab entry of `id` if it holds a live session.
    #[inline(always)]
    fn live_entry(&self, id: SessionId) -> Option<&Session> {
        self.slab
            .get(id.0 as usize)
            .filter(|s| s.state != SessionState::Free)
    }

    /// Find the session of an in2out key.
    #[inline]
    pub fn lookup_in2out(&self, key: &FlowKey) -> Option<SessionId> {
        self.lookup_in2out_hashed(key, self.hash(key))
    }

    /// Find the session of an in2out key whose [`SessionTable::hash`] is `h`.
    #[inline]
    pub fn lookup_in2out_hashed(&self, key: &FlowKey, h: u64) -> Option<SessionId> {
        let slab = &self.slab;
        self.by_private
            .find(h, |i| {
                let s = &slab[i as usize];
                s.private_ip == key.local_ip
                    && s.private_port == key.local_port
                    && s.remote_ip == key.remote_ip
                    && s.remote_port == key.remote_port
                    && s.proto == key.proto
            })
            .map(SessionId)
    }

    /// Find the session of an out2in key.
    #[inline]
    pub fn lookup_out2in(&self, key: &FlowKey) -> Option<SessionId> {
        self.lookup_out2in_hashed(key, self.hash(key))
    }

    /// Find the session of an out2in key whose [`SessionTable::hash`] is `h`.
    #[inline]
    pub fn lookup_out2in_hashed(&self, key: &FlowKey, h: u64) -> Option<SessionId> {
        let slab = &self.slab;
        self.by_public
            .find(h, |i| {
                let s = &slab[i as usize];
                s.public_ip == key.local_ip
                    && s.public_port == key.local_port
                    && s.remote_ip == key.remote_ip
                    && s.remote_port == key.remote_port
                    && s.proto == key.proto
            })
            .map(SessionId)
    }

    /// The session behind an id.
    #[inline]
    pub fn get(&self, id: SessionId) -> &Session {
        &self.slab[id.0 as usize]
    }

    /// The session behind an id, mutably. Callers must not change its keys.
    #[inline]
    pub fn get_mut(&mut self, id: SessionId) -> &mut Session {
        &mut self.slab[id.0 as usize]
    }

    /// Insert a new session, schedule its first expiry check at `deadline`, and return its id.
    pub fn insert(
        &mut self,
        mut session: Session,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Result<SessionId, InsertError> {
        if self.live as usize >= self.slab.capacity() {
            return Err(InsertError::Full);
        }
        let pk = session.in2out_key();
        let ok = session.out2in_key();
        let (ph, oh) = (self.hash(&pk), self.hash(&ok));
        if self.lookup_in2out_hashed(&pk, ph).is_some()
            || self.lookup_out2in_hashed(&ok, oh).is_some()
        {
            return Err(InsertError::Duplicate);
        }
        session.last_seen_ms = clock_ms(now);
        let id = if self.free_head != NIL {
            self.free_head
        } else {
            // Within capacity (checked above), so the slab never reallocates.
            self.slab.len() as u32
        };
        self.by_private
            .insert(ph, id)
            .map_err(|_| InsertError::Full)?;
        if self.by_public.insert(oh, id).is_err() {
            self.by_private.remove(ph, id);
            return Err(InsertError::Full);
        }
        if id == self.free_head {
            self.free_head = self.links[id as usize].next;
            self.slab[id as usize] = session;
            self.links[id as usize] = UNLINKED;
        } else {
            self.slab.push(session);
            self.links.push(UNLINKED);
        }
        self.live += 1;
        self.link(id, deadline);
        Ok(SessionId(id))
    }

    /// Remove a live session from both indexes and the wheel and return its record.
    pub fn remove(&mut self, id: SessionId) -> Session {
        let i = id.0;
        let s = self.slab[i as usize];
        debug_assert!(s.state != SessionState::Free, "removing a free session");
        let found_private = self.by_private.remove(self.hash(&s.in2out_key()), i);
        let found_public = self.by_public.remove(self.hash(&s.out2in_key()), i);
        debug_assert!(
            found_private && found_public,
            "live session missing from an index"
        );
        self.unlink(i);
        self.slab[i as usize].state = SessionState::Free;
        self.links[i as usize].next = self.free_head;
        self.free_head = i;
        self.live -= 1;
        s
    }

    /// Record a packet of the session: refresh its idle timer.
    #[inline]
    pub fn touch(&mut self, id: SessionId, now: Timestamp) {
        self.slab[id.0 as usize].last_seen_ms = clock_ms(now);
    }

    /// Move a session's next expiry check to `deadline` (used when its state shortens its timeout).
    pub fn reschedule(&mut self, id: SessionId, deadline: Timestamp) {
        self.unlink(id.0);
        self.link(id.0, deadline);
    }

    /// Walk the wheel up to `now`, doing at most `budget` session checks. `timeout` gives each session's
    /// idle timeout from its state; each session idle for at least that long is removed and passed to
    /// `expired`. Returns the number of sessions checked, so callers can tell whether work remains.
    pub fn expire(
        &mut self,
        now: Timestamp,
        mut budget: usize,
        timeout: impl Fn(&Session) -> Duration,
        mut expired: impl FnMut(Session),
    ) -> usize {
        let now_slot = now.as_nanos() >> SLOT_SHIFT;
        let now_ms = clock_ms(now);
        let mut checked = 0;
        while self.cursor < now_slot && budget > 0 {
            if self.live == 0 {
                self.cursor = now_slot;
                break;
            }
            let head = (self.cursor % WHEEL_SLOTS as u64) as usize;
            let id = self.heads[head];
            if id == NIL {
                self.cursor += 1;
                continue;
            }
            budget -= 1;
            checked += 1;
            let s = &self.slab[id as usize];
            let idle = Duration::from_millis(u64::from(now_ms.wrapping_sub(s.last_seen_ms)));
            let limit = timeout(s);
            if idle >= limit {
                let gone = self.remove(SessionId(id));
                expired(gone);
            } else {
                let deadline = now.saturating_add(limit - idle);
                self.unlink(id);
                self.link(id, deadline);
            }
        }
        checked
    }

    /// Whether expiry work is due (the wheel cursor is behind the clock).
    pub fn expiry_due(&self, now: Timestamp) -> bool {
        self.cursor < now.as_nanos() >> SLOT_SHIFT
    }

    fn link(&mut self, id: u32, deadline: Timestamp) {
        // Never schedule into a slot the walk has passed, nor beyond the wheel's horizon.
        let want = (deadline.as_nanos() >> SLOT_SHIFT) + 1;
        let slot_no = want.clamp(self.cursor, self.cursor + WHEEL_SLOTS as u64 - 1);
        let slot = (slot_no % WHEEL_SLOTS as u64) as usize;
        let head = self.heads[slot];
        self.slab[id as usize].slot = slot as u16;
        self.links[id as usize] = Link {
            prev: NIL,
            next: head,
        };
        if head != NIL {
            self.links[head as usize].prev = id;
        }
        self.heads[slot] = id;
    }

    fn unlink(&mut self, id: u32) {
        let Link { prev, next } = self.links[id as usize];
        if prev == NIL {
            let slot = usize::from(self.slab[id as usize].slot);
            self.heads[slot] = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[id as usize] = UNLINKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn sess(i: u16) -> Session {
        Session::new(
            Protocol::Udp,
            Ipv4Addr::new(10, 0, 0, 2),
            1000 + i,
            Ipv4Addr::new(203, 0, 113, 10),
            20000 + i,
            Ipv4Addr::new(198, 51, 100, 10),
            53,
            0,
        )
    }

    #[test]
    fn session_is_32_bytes_in_one_cache_line() {
        assert_eq!(std::mem::size_of::<Session>(), 32);
        assert_eq!(std::mem::align_of::<Session>(), 32);
    }

    #[test]
    fn insert_lookup_both_ways_remove() {
        let mut t = SessionTable::with_capacity(16, 7, ts(100));
        let s = sess(1);
        let id = t.insert(s, ts(100), ts(340)).unwrap();
        assert_eq!(t.lookup_in2out(&s.in2out_key()), Some(id));
        assert_eq!(t.lookup_out2in(&s.out2in_key()), Some(id));
        assert_eq!(t.insert(s, ts(100), ts(340)), Err(InsertError::Duplicate));
        let gone = t.remove(id);
        assert_eq!(gone.public_port, 20001);
        assert_eq!(t.lookup_in2out(&s.in2out_key()), None);
        assert_eq!(t.lookup_out2in(&s.out2in_key()), None);
        assert!(t.is_empty());
        // The freed entry is reused.
        let id2 = t.insert(sess(2), ts(100), ts(340)).unwrap();
        assert_eq!(id2, id);
    }

    #[test]
    fn a_hint_is_used_only_when_its_live_entry_has_the_key() {
        let mut t = SessionTable::with_capacity(16, 7, ts(100));
        let (a, b) = (sess(1), sess(2));
        let ia = t.insert(a, ts(100), ts(340)).unwrap();
        let ib = t.insert(b, ts(100), ts(340)).unwrap();
        let (ka, kb) = (a.in2out_key(), b.out2in_key());
        assert_eq!(t.lookup_in2out_hinted(&ka, Some(ia)), Some(ia));
        // A wrong, out-of-range or missing hint falls back to the index.
        assert_eq!(t.lookup_in2out_hinted(&ka, Some(ib)), Some(ia));
        assert_eq!(t.lookup_in2out_hinted(&ka, Some(SessionId(99))), Some(ia));
        assert_eq!(t.lookup_in2out_hinted(&ka, None), Some(ia));
        assert_eq!(t.lookup_out2in_hinted(&kb, Some(ia)), Some(ib));
        // The out2in key of a session is not its in2out key.
        assert_eq!(t.lookup_out2in_hinted(&a.in2out_key(), Some(ia)), None);
        // A freed entry still holds its old key, but is not live.
        t.remove(ia);
        assert_eq!(t.lookup_in2out_hinted(&ka, Some(ia)), None);
        assert_eq!(t.lookup_out2in_hinted(&a.out2in_key(), Some(ia)), None);
    }

    #[test]
    fn full_table_refuses_without_growing() {
        let mut t = SessionTable::with_capacity(4, 7, ts(0));
        let cap = t.capacity();
        for i in 0..cap as u16 {
            t.insert(sess(i), ts(0), ts(10)).unwrap();
        }
        assert_eq!(t.insert(sess(999), ts(0), ts(10)), Err(InsertError::Full));
        assert_eq!(t.capacity(), cap);
    }

    #[test]
    fn idle_sessions_expire_and_touched_ones_survive() {
        let timeout = |_: &Session| Duration::from_secs(60);
        let mut t = SessionTable::with_capacity(64, 1, ts(1000));
        let quiet = t.insert(sess(1), ts(1000), ts(1060)).unwrap();
        let busy = t.insert(sess(2), ts(1000), ts(1060)).unwrap();
        let mut gone = Vec::new();
        // Keep `busy` alive every 10 s for 200 s.
        for sec in (1010..=1200).step_by(10) {
            t.touch(busy, ts(sec));
            t.expire(ts(sec), 1000, timeout, |s| gone.push(s.private_port));
        }
        assert_eq!(gone, vec![1001]);
        assert!(t.lookup_in2out(&sess(1).in2out_key()).is_none());
        assert_eq!(t.lookup_in2out(&sess(2).in2out_key()), Some(busy));
        let _ = quiet;
        // Quiet from 1200 on: expires around 1260, not before.
        t.expire(ts(1255), 1000, timeout, |s| gone.push(s.private_port));
        assert_eq!(gone.len(), 1);
        t.expire(ts(1265), 1000, timeout, |s| gone.push(s.private_port));
        assert_eq!(gone, vec![1001, 1002]);
        assert!(t.is_empty());
    }

    #[test]
    fn expiry_work_is_bounded_per_call() {
        let timeout = |_: &Session| Duration::from_secs(5);
        let mut t = SessionTable::with_capacity(1024, 1, ts(0));
        for i in 0..500 {
            t.insert(sess(i), ts(0), ts(5)).unwrap();
        }
        let mut n = 0;
        let checked = t.expire(ts(100), 64, timeout, |_| n += 1);
        assert_eq!(checked, 64);
        assert_eq!(n, 64);
        while t.expiry_due(ts(100)) {
            t.expire(ts(100), 64, timeout, |_| n += 1);
        }
        assert_eq!(n, 500);
        assert!(t.is_empty());
    }

    #[test]
    fn long_timeouts_beyond_the_wheel_horizon() {
        let timeout = |_: &Session| Duration::from_secs(7200);
        let mut t = SessionTable::with_capacity(8, 1, ts(0));
        t.insert(sess(1), ts(0), ts(7200)).unwrap();
        let mut n = 0;
        for sec in (0..7190).step_by(50) {
            t.expire(ts(sec), 100, timeout, |_| n += 1);
        }
        assert_eq!(n, 0, "expired before its 2 h timeout");
        for sec in (7190..7300).step_by(5) {
            t.expire(ts(sec), 100, timeout, |_| n += 1);
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn reschedule_to_a_shorter_deadline() {
        let mut t = SessionTable::with_capacity(8, 1, ts(0));
        let id = t.insert(sess(1), ts(0), ts(240)).unwrap();
        t.get_mut(id).state = SessionState::TcpReset;
        t.reschedule(id, ts(2));
        let timeout = |s: &Session| {
            if s.state == SessionState::TcpReset {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(240)
            }
        };
        let mut n = 0;
        t.expire(ts(5), 100, timeout, |_| n += 1);
        assert_eq!(n, 1);
    }
}
