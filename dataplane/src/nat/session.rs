//! The per-shard session table: a preallocated slab indexed both ways, with an expiry wheel (fast path).
//!
//! Layout, chosen for memory per session (target ≤ 96 bytes, all included):
//! - the slab is a `Vec<Session>` allocated once with the shard's capacity (40 bytes an entry); free entries
//!   are chained through their timer link, so creating and deleting sessions never allocates;
//! - two `hashbrown::HashTable<u32>` map the in2out key and the out2in key to a slab index. They store only
//!   the 4-byte index (plus hashbrown's 1 control byte); the key itself is compared against the slab entry,
//!   which the packet needs next anyway;
//! - the expiry wheel has [`WHEEL_SLOTS`] slots of [`SLOT_NANOS`] (about one second) each; a session sits in
//!   exactly one slot through an intrusive doubly linked list, so rescheduling is O(1).
//!
//! Expiry is lazy: every packet refreshes `last_seen` only; when a session's slot comes round, its real
//! deadline is recomputed from `last_seen` and its state, and it either expires or moves to the slot of its
//! new deadline. [`SessionTable::expire`] does a bounded amount of that work per call, never a table scan.
//! Invariants: every live session is in both indexes and in exactly one wheel slot; a free entry is in none.

use super::flow::FlowKey;
use hashbrown::HashTable;
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

/// One translated flow. 36 bytes.
#[derive(Clone, Copy, Debug)]
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
    timer_prev: u32,
    timer_next: u32,
    slot: u16,
}

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
            timer_prev: NIL,
            timer_next: NIL,
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
    free_head: u32,
    by_private: HashTable<u32>,
    by_public: HashTable<u32>,
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
            free_head: NIL,
            by_private: HashTable::with_capacity(capacity as usize),
            by_public: HashTable::with_capacity(capacity as usize),
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

    /// Bytes this table holds, all structures included (slab, both indexes, the wheel).
    pub fn memory_bytes(&self) -> usize {
        let slab = self.slab.capacity() * std::mem::size_of::<Session>();
        // hashbrown keeps one control byte per bucket plus a group of trailing control bytes.
        let index = |t: &HashTable<u32>| {
            let buckets = (t.capacity() * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<u32>() + 1) + 16
        };
        slab + index(&self.by_private)
            + index(&self.by_public)
            + self.heads.len() * 4
            + std::mem::size_of::<Self>()
    }

    /// Find the session of an in2out key.
    #[inline]
    pub fn lookup_in2out(&self, key: &FlowKey) -> Option<SessionId> {
        let slab = &self.slab;
        self.by_private
            .find(key.table_hash(self.seed), |&i| {
                let s = &slab[i as usize];
                s.private_ip == key.local_ip
                    && s.private_port == key.local_port
                    && s.remote_ip == key.remote_ip
                    && s.remote_port == key.remote_port
                    && s.proto == key.proto
            })
            .map(|&i| SessionId(i))
    }

    /// Find the session of an out2in key.
    #[inline]
    pub fn lookup_out2in(&self, key: &FlowKey) -> Option<SessionId> {
        let slab = &self.slab;
        self.by_public
            .find(key.table_hash(self.seed), |&i| {
                let s = &slab[i as usize];
                s.public_ip == key.local_ip
                    && s.public_port == key.local_port
                    && s.remote_ip == key.remote_ip
                    && s.remote_port == key.remote_port
                    && s.proto == key.proto
            })
            .map(|&i| SessionId(i))
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
        if self.lookup_in2out(&pk).is_some() || self.lookup_out2in(&ok).is_some() {
            return Err(InsertError::Duplicate);
        }
        session.last_seen_ms = clock_ms(now);
        session.timer_prev = NIL;
        session.timer_next = NIL;
        let id = if self.free_head != NIL {
            let id = self.free_head;
            self.free_head = self.slab[id as usize].timer_next;
            self.slab[id as usize] = session;
            id
        } else {
            // Within capacity (checked above), so this never reallocates.
            self.slab.push(session);
            (self.slab.len() - 1) as u32
        };
        let seed = self.seed;
        let slab = &self.slab;
        self.by_private
            .insert_unique(pk.table_hash(seed), id, |&i| {
                slab[i as usize].in2out_key().table_hash(seed)
            });
        self.by_public.insert_unique(ok.table_hash(seed), id, |&i| {
            slab[i as usize].out2in_key().table_hash(seed)
        });
        self.live += 1;
        self.link(id, deadline);
        Ok(SessionId(id))
    }

    /// Remove a live session from both indexes and the wheel and return its record.
    pub fn remove(&mut self, id: SessionId) -> Session {
        let i = id.0;
        let s = self.slab[i as usize];
        debug_assert!(s.state != SessionState::Free, "removing a free session");
        let seed = self.seed;
        if let Ok(e) = self
            .by_private
            .find_entry(s.in2out_key().table_hash(seed), |&x| x == i)
        {
            e.remove();
        }
        if let Ok(e) = self
            .by_public
            .find_entry(s.out2in_key().table_hash(seed), |&x| x == i)
        {
            e.remove();
        }
        self.unlink(i);
        let slot = &mut self.slab[i as usize];
        slot.state = SessionState::Free;
        slot.timer_next = self.free_head;
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
        {
            let s = &mut self.slab[id as usize];
            s.slot = slot as u16;
            s.timer_prev = NIL;
            s.timer_next = head;
        }
        if head != NIL {
            self.slab[head as usize].timer_prev = id;
        }
        self.heads[slot] = id;
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next, slot) = {
            let s = &self.slab[id as usize];
            (s.timer_prev, s.timer_next, s.slot as usize)
        };
        if prev == NIL {
            self.heads[slot] = next;
        } else {
            self.slab[prev as usize].timer_next = next;
        }
        if next != NIL {
            self.slab[next as usize].timer_prev = prev;
        }
        let s = &mut self.slab[id as usize];
        s.timer_prev = NIL;
        s.timer_next = NIL;
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
    fn session_is_at_most_40_bytes() {
        assert!(
            std::mem::size_of::<Session>() <= 40,
            "{}",
            std::mem::size_of::<Session>()
        );
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
