//! The sans-IO NAT core of one shard: frames and the time in, verdicts out (fast path).
//!
//! A [`NatCore`] owns one shard's sessions, its slice of the SNAT ports (a
//! [`natgw_allocator::ShardAllocator`]), its fragment cache, neighbour table and counters, all through
//! `&mut self`: no locks, no clock, no I/O, no allocation after construction. The runtime feeds it bursts
//! with [`NatCore::process_burst`] and calls [`NatCore::handle_timeout`] once per burst. Files follow VPP's
//! nat44-ed split: [`parse`] checks headers once, `in2out` and `out2in` translate, `icmp` handles ICMP errors
//! and generates time-exceeded / prohibited messages, [`session`] keeps the table and expiry wheel,
//! [`rewrite`] is the only place that edits headers.
//!
//! Steering: an inside packet belongs to the shard [`flow::flow_shard`] names from its 5-tuple; an outside
//! packet belongs to the shard that owns its public port ([`natgw_allocator::OwnerMap`]). A frame that
//! arrives on the wrong shard gets [`Verdict::Handoff`] before anything in it is changed.

mod burst;
pub mod counters;
pub mod flow;
pub mod frag;
mod icmp;
mod in2out;
mod index;
mod out2in;
pub mod parse;
pub mod policy;
pub mod rewrite;
pub mod session;

use crate::wire::MacAddr;
use counters::{Counters, DropReason};
use frag::{FragCache, FragSteer};
use hashbrown::HashMap;
use natgw_allocator::{CloseKind, Lease, OwnerMap, ShardAllocator, ShardId, Timestamp};
use natgw_config::Protocol;
use policy::Policy;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use session::{Session, SessionId, SessionState, SessionTable};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Which interface a frame came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The private side.
    Inside,
    /// The public side.
    Outside,
}

/// Why a frame goes to the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punt {
    /// An ARP request or reply.
    Arp,
    /// Addressed to one of the appliance's own addresses (e.g. a ping of the gateway).
    Local,
    /// Translated and ready, but the next hop's MAC is unknown: resolve it, fill in the destination MAC
    /// and transmit on `side` (or drop with [`DropReason::NeighborUnresolved`]).
    Resolve {
        /// Side to transmit on.
        side: Side,
        /// Next hop to resolve.
        next_hop: Ipv4Addr,
    },
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on `side`; `len` is its new length (generated ICMP errors change it).
    Forward {
        /// Side to transmit on.
        side: Side,
        /// Frame length.
        len: u16,
    },
    /// Drop it; already counted under the reason.
    Drop(DropReason),
    /// Hand it to the slow path (counted in `punted`).
    Punt(Punt),
    /// It belongs to another shard: hand it over, to be processed as received from `side`. The frame is
    /// unchanged, except for a hairpin: the in2out half is already done and the frame goes over as an
    /// outside frame (`side` is then `Outside`).
    Handoff {
        /// Owning shard.
        shard: ShardId,
        /// Side it was received on.
        side: Side,
    },
}

/// Timeouts of the NAT core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreTimeouts {
    /// Established TCP idle timeout.
    pub tcp_idle: Duration,
    /// Half-open and half-closed TCP timeout.
    pub tcp_transitory: Duration,
    /// UDP idle timeout.
    pub udp_idle: Duration,
    /// ICMP echo idle timeout.
    pub icmp_idle: Duration,
}

impl Default for CoreTimeouts {
    fn default() -> Self {
        CoreTimeouts {
            tcp_idle: Duration::from_secs(240),
            tcp_transitory: Duration::from_secs(240),
            udp_idle: Duration::from_secs(240),
            icmp_idle: Duration::from_secs(60),
        }
    }
}

/// How long a TCP session lingers after FINs both ways (for the last ACKs) before its port is released.
pub const TCP_CLOSED_LINGER: Duration = Duration::from_secs(4);
/// How long a TCP session lingers after a RST.
pub const TCP_RESET_LINGER: Duration = Duration::from_secs(2);
/// Most sessions the expiry walk checks per [`NatCore::handle_timeout`] call.
pub const EXPIRY_BUDGET: usize = 256;
/// ICMP errors generated per second per shard (RFC 1812 §4.3.2.8 rate limiting), and the burst allowed.
pub const ICMP_RATE: u32 = 1000;

/// Everything a NAT core needs to know, derived from the config by the runtime.
#[derive(Clone, Debug)]
pub struct CoreParams {
    /// Number of shards (workers).
    pub shards: u16,
    /// The appliance's inside address (the private hosts' gateway).
    pub inside_ip: Ipv4Addr,
    /// MAC of the inside interface.
    pub inside_mac: MacAddr,
    /// The appliance's outside address.
    pub outside_ip: Ipv4Addr,
    /// MAC of the outside interface.
    pub outside_mac: MacAddr,
    /// Next hop toward the internet.
    pub outside_gateway: Ipv4Addr,
    /// The SNAT public addresses (at most 16).
    pub public_ips: Vec<Ipv4Addr>,
    /// Static 1:1 mappings (private, public).
    pub statics: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Deny rules, no-NAT destinations, private prefixes.
    pub policy: Policy,
    /// Idle timeouts.
    pub timeouts: CoreTimeouts,
    /// Answer failed new flows with ICMP administratively prohibited.
    pub icmp_prohibited: bool,
    /// Session table capacity of this shard.
    pub max_sessions: u32,
    /// Inside neighbours remembered (hosts or inside routers).
    pub max_neighbors: u32,
}

/// Inside neighbours: host (or inside router) address → MAC, learned from frames and from ARP.
///
/// The entries sit in an array that only grows (up to the preallocated capacity) and whose entries are
/// never reused for another address, so a position handed out by [`Neighbors::learn`] names the same host
/// for the life of the core: sessions keep it ([`Session::neighbor`]) and reach their host's MAC without a
/// hash lookup. The entry also holds the address, so a position that does not belong to the host asked
/// about is never trusted.
struct Neighbors {
    index: HashMap<Ipv4Addr, u32>,
    entries: Vec<(Ipv4Addr, MacAddr)>,
    capacity: usize,
}

impl Neighbors {
    fn new(capacity: usize) -> Self {
        Neighbors {
            index: HashMap::with_capacity(capacity),
            entries: Vec::with_capacity(capacity),
            capacity,
        }
    }

    #[inline]
    fn get(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.index.get(&ip).map(|&i| self.entries[i as usize].1)
    }

    /// The MAC of `ip` at a position [`Neighbors::learn`] returned for it (`NO_NEIGHBOR`, or a position
    /// holding another address: `None`).
    #[inline]
    fn at(&self, pos: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        if pos == session::NO_NEIGHBOR {
            return None;
        }
        match self.entries.get(usize::from(pos)) {
            Some(&(a, mac)) if a == ip => Some(mac),
            _ => None,
        }
    }

    /// Learn or refresh a mapping; never grows past the preallocated capacity. Returns the entry's
    /// position when it fits a session's `u16` field.
    #[inline]
    fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr) -> u16 {
        let pos = if let Some(&i) = self.index.get(&ip) {
            self.entries[i as usize].1 = mac;
            i
        } else if self.entries.len() < self.capacity {
            let i = self.entries.len() as u32;
            self.entries.push((ip, mac));
            self.index.insert(ip, i);
            i
        } else {
            return session::NO_NEIGHBOR;
        };
        u16::try_from(pos).unwrap_or(session::NO_NEIGHBOR)
    }
}

/// A superset of the addresses that are ours on the public side (the SNAT addresses of every inventory in
/// use, the static 1:1 public addresses): a 256-bit filter on a hash of the address, so that in2out can
/// tell in a few instructions that a destination is none of them (the common case) before the exact
/// scans that hairpinning needs. Rebuilt whenever those lists change; stale entries only cost a scan.
#[derive(Clone, Copy, Debug, Default)]
struct AddrFilter([u64; 4]);

impl AddrFilter {
    #[inline(always)]
    fn bit(ip: Ipv4Addr) -> usize {
        (u32::from(ip).wrapping_mul(0x9E37_79B1) >> 24) as usize
    }

    fn insert(&mut self, ip: Ipv4Addr) {
        let b = Self::bit(ip);
        self.0[b >> 6] |= 1 << (b & 63);
    }

    #[inline(always)]
    fn may_contain(&self, ip: Ipv4Addr) -> bool {
        let b = Self::bit(ip);
        (self.0[b >> 6] >> (b & 63)) & 1 != 0
    }
}

/// A token bucket for generated ICMP errors.
struct RateLimit {
    tokens: u32,
    last_ms: u32,
}

impl RateLimit {
    fn allow(&mut self, now_ms: u32) -> bool {
        let elapsed = now_ms.wrapping_sub(self.last_ms);
        if elapsed >= 1000 / ICMP_RATE.max(1) {
            let add = (u64::from(elapsed) * u64::from(ICMP_RATE) / 1000) as u32;
            self.tokens = self.tokens.saturating_add(add).min(ICMP_RATE / 10 + 1);
            self.last_ms = now_ms;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// A frame buffer the core can rewrite: the whole capacity is writable, `len` bytes are the frame.
pub trait FrameBuf {
    /// The whole buffer.
    fn buffer_mut(&mut self) -> &mut [u8];
    /// Current frame length.
    fn frame_len(&self) -> usize;
    /// Set the frame length (never above the buffer length).
    fn set_frame_len(&mut self, len: usize);
}

impl FrameBuf for crate::port::PacketBuf {
    #[inline]
    fn buffer_mut(&mut self) -> &mut [u8] {
        &mut crate::port::PacketBuf::buffer_mut(self)[..]
    }
    #[inline]
    fn frame_len(&self) -> usize {
        self.len()
    }
    #[inline]
    fn set_frame_len(&mut self, len: usize) {
        self.set_len(len)
    }
}

/// A port inventory replaced by a reload, kept while sessions still hold its leases.
struct Retired {
    generation: u8,
    alloc: ShardAllocator,
    owners: OwnerMap,
}

/// Most inventories kept at once after reloads (the current one included).
pub const MAX_GENERATIONS: usize = 8;

/// The NAT core of one shard.
pub struct NatCore {
    shard: ShardId,
    params: CoreParams,
    alloc: ShardAllocator,
    owners: OwnerMap,
    generation: u8,
    retired: Vec<Retired>,
    sessions: SessionTable,
    neighbors: Neighbors,
    gateway_mac: Option<MacAddr>,
    frags: FragCache,
    frag_steer: FragSteer,
    rng: SmallRng,
    counters: Counters,
    icmp_limit: RateLimit,
    /// Addresses that may be ours on the public side (see [`AddrFilter`]).
    public_filter: AddrFilter,
}

impl NatCore {
    /// A core for `shard`, with its slice of the ports, the shared owner map and fragment steering table.
    /// `seed` seeds the port choice and the table hashes; all memory is allocated here.
    pub fn new(
        params: CoreParams,
        alloc: ShardAllocator,
        owners: OwnerMap,
        frag_steer: FragSteer,
        seed: u64,
        now: Timestamp,
    ) -> NatCore {
        let shard = alloc.id();
        let mut rng = SmallRng::seed_from_u64(seed);
        let table_seed = rand::RngCore::next_u64(&mut rng);
        let mut core = NatCore {
            shard,
            sessions: SessionTable::with_capacity(params.max_sessions, table_seed, now),
            neighbors: Neighbors::new(params.max_neighbors as usize),
            params,
            alloc,
            owners,
            generation: 0,
            retired: Vec::with_capacity(MAX_GENERATIONS),
            gateway_mac: None,
            frags: FragCache::default(),
            frag_steer,
            rng,
            counters: Counters::default(),
            icmp_limit: RateLimit {
                tokens: ICMP_RATE / 10,
                last_ms: session::clock_ms(now),
            },
            public_filter: AddrFilter::default(),
        };
        core.rebuild_public_filter();
        core
    }

    /// This core's shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The parameters in force.
    pub fn params(&self) -> &CoreParams {
        &self.params
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Count a drop that happened outside the core (full rings) under this shard's counters.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.counters.drop(reason);
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Bytes held by the session table (all structures) and the port allocator.
    pub fn memory_bytes(&self) -> usize {
        self.sessions.memory_bytes() + self.alloc.memory_bytes()
    }

    /// The shard's port allocator (for rebalancing messages and statistics).
    pub fn allocator(&mut self) -> &mut ShardAllocator {
        &mut self.alloc
    }

    /// The shard's port allocator, read-only.
    pub fn allocator_ref(&self) -> &ShardAllocator {
        &self.alloc
    }

    /// The outside gateway's MAC, resolved by the slow path.
    pub fn set_gateway_mac(&mut self, mac: Option<MacAddr>) {
        self.gateway_mac = mac;
    }

    /// An inside neighbour's MAC, resolved by the slow path.
    pub fn learn_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        let _ = self.neighbors.learn(ip, mac);
    }

    /// Apply new parameters (a reloaded config): new flows use them, existing sessions keep their
    /// translation. The session table keeps its size.
    pub fn set_params(&mut self, params: CoreParams) {
        let keep = self.params.max_sessions;
        self.params = params;
        self.params.max_sessions = keep;
        self.rebuild_public_filter();
    }

    /// Recompute [`NatCore::public_filter`] from the inventories in use and the static mappings.
    fn rebuild_public_filter(&mut self) {
        let mut f = AddrFilter::default();
        let retired = self.retired.iter().map(|r| r.alloc.public_ips());
        for ips in std::iter::once(self.alloc.public_ips()).chain(retired) {
            ips.iter().for_each(|&ip| f.insert(ip));
        }
        self.params.statics.iter().for_each(|&(_, q)| f.insert(q));
        self.public_filter = f;
    }

    /// Apply a reloaded config whose SNAT addresses or port rules changed: new flows get ports from `alloc`
    /// (this shard's slice of the new inventory); sessions already open keep their public address and port,
    /// answered through the old inventory until their last lease is released.
    pub fn reload(&mut self, params: CoreParams, alloc: ShardAllocator, owners: OwnerMap) {
        let old_alloc = std::mem::replace(&mut self.alloc, alloc);
        let old_owners = std::mem::replace(&mut self.owners, owners);
        if old_alloc.live_leases() > 0 {
            if self.retired.len() + 1 >= MAX_GENERATIONS {
                // Unreachable in practice (reloads far apart); the oldest flows lose their translation.
                let gone = self.retired.remove(0);
                log::error!(
                    "shard {}: more than {MAX_GENERATIONS} port inventories in use after reloads;                      {} flows of the oldest lose their translation",
                    self.shard.0,
                    gone.alloc.live_leases()
                );
            }
            self.retired.push(Retired {
                generation: self.generation,
                alloc: old_alloc,
                owners: old_owners,
            });
        }
        self.generation = self.generation.wrapping_add(1);
        self.set_params(params);
    }

    /// Inventories replaced by reloads and still holding leases.
    pub fn retired_generations(&self) -> usize {
        self.retired.len()
    }

    /// The shard owning a public port, in the current inventory or one kept after a reload.
    #[inline]
    fn owner_of(&self, ip: Ipv4Addr, proto: Protocol, port: u16) -> Option<ShardId> {
        self.owners.owner(ip, proto, port).or_else(|| {
            self.retired
                .iter()
                .find_map(|r| r.owners.owner(ip, proto, port))
        })
    }

    /// Whether an address is one of our SNAT addresses, current or kept after a reload.
    #[inline]
    fn is_snat_address(&self, ip: Ipv4Addr) -> bool {
        self.public_index(ip).is_some()
            || self
                .retired
                .iter()
                .any(|r| r.alloc.public_ips().contains(&ip))
    }

    /// Process one frame received on `side`. `buf` is the whole buffer; the frame is `buf[..len]`.
    #[inline]
    pub fn process(&mut self, now: Timestamp, side: Side, buf: &mut [u8], len: usize) -> Verdict {
        self.process_hinted(now, side, buf, len, None)
    }

    /// [`NatCore::process`], with the session the frame most likely belongs to (a guess from the
    /// burst's staged lookups; checked before use).
    #[inline]
    fn process_hinted(
        &mut self,
        now: Timestamp,
        side: Side,
        buf: &mut [u8],
        len: usize,
        hint: Option<SessionId>,
    ) -> Verdict {
        let len = len.min(buf.len());
        let v = match side {
            Side::Inside => self.in2out(now, buf, len, hint),
            Side::Outside => self.out2in(now, buf, len, hint),
        };
        match v {
            Verdict::Drop(r) => self.counters.drop(r),
            Verdict::Punt(_) => self.counters.punted += 1,
            Verdict::Handoff { .. } => self.counters.handoffs_out += 1,
            Verdict::Forward { .. } => {}
        }
        v
    }

    /// Timer work: expire idle sessions (bounded) and the allocator's cool-downs. Call once per burst.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.sessions.expiry_due(now) {
            let t = self.params.timeouts;
            let (alloc, retired, current) = (&mut self.alloc, &mut self.retired, self.generation);
            let counters = &mut self.counters;
            self.sessions.expire(
                now,
                EXPIRY_BUDGET,
                |s| timeout_of(&t, s.state),
                |s| {
                    counters.sessions_expired[s.proto as usize] += 1;
                    release(alloc, retired, current, &s, now);
                },
            );
        }
        self.alloc.handle_timeout(now);
    }

    /// End every session now (shutdown), releasing the ports; returns how many there were.
    pub fn clear(&mut self, now: Timestamp) -> usize {
        let far = now.saturating_add(Duration::from_secs(1 << 24));
        let (alloc, retired, current) = (&mut self.alloc, &mut self.retired, self.generation);
        let mut n = 0;
        self.sessions.expire(
            far,
            usize::MAX,
            |_| Duration::ZERO,
            |s| {
                n += 1;
                release(alloc, retired, current, &s, now);
            },
        );
        n
    }

    /// Look up the public side of a private flow (tests, diagnostics).
    pub fn find_in2out(&self, key: &flow::FlowKey) -> Option<Session> {
        self.sessions
            .lookup_in2out(key)
            .map(|id| *self.sessions.get(id))
    }

    /// Index of a current SNAT address. The allocator's list is the truth: it is what leases come from.
    fn public_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.alloc.public_ips().iter().position(|&p| p == ip)
    }

    fn static_public_of(&self, private: Ipv4Addr) -> Option<Ipv4Addr> {
        self.params
            .statics
            .iter()
            .find(|(p, _)| *p == private)
            .map(|&(_, q)| q)
    }

    fn static_private_of(&self, public: Ipv4Addr) -> Option<Ipv4Addr> {
        self.params
            .statics
            .iter()
            .find(|(_, q)| *q == public)
            .map(|&(p, _)| p)
    }

    fn is_own_address(&self, ip: Ipv4Addr) -> bool {
        ip == self.params.inside_ip || ip == self.params.outside_ip
    }
}

/// The idle timeout of a session in `state`.
#[inline]
pub fn timeout_of(t: &CoreTimeouts, state: SessionState) -> Duration {
    match state {
        SessionState::TcpEstablished => t.tcp_idle,
        SessionState::TcpSynSent | SessionState::TcpFinIn2out | SessionState::TcpFinOut2in => {
            t.tcp_transitory
        }
        SessionState::TcpClosed => TCP_CLOSED_LINGER,
        SessionState::TcpReset => TCP_RESET_LINGER,
        SessionState::Udp => t.udp_idle,
        SessionState::Icmp => t.icmp_idle,
        SessionState::Free => Duration::ZERO,
    }
}

/// How a flow in `state` ended, for the allocator's cool-down.
pub fn close_kind(state: SessionState) -> CloseKind {
    match state {
        SessionState::TcpSynSent => CloseKind::TcpHalfOpen,
        SessionState::TcpEstablished => CloseKind::TcpIdle,
        SessionState::TcpFinIn2out | SessionState::TcpFinOut2in | SessionState::TcpClosed => {
            CloseKind::TcpFin
        }
        SessionState::TcpReset => CloseKind::TcpRst,
        SessionState::Udp | SessionState::Free => CloseKind::UdpIdle,
        SessionState::Icmp => CloseKind::IcmpIdle,
    }
}

/// Give a closed session's port back to the inventory that leased it; a retired inventory is dropped with
/// its last lease.
fn release(
    alloc: &mut ShardAllocator,
    retired: &mut Vec<Retired>,
    current: u8,
    s: &Session,
    now: Timestamp,
) {
    let (lease, kind) = (lease_of(s), close_kind(s.state));
    if s.generation == current {
        alloc.release(&lease, kind, now);
    } else if let Some(i) = retired.iter().position(|r| r.generation == s.generation) {
        retired[i].alloc.release(&lease, kind, now);
        if retired[i].alloc.live_leases() == 0 {
            retired.swap_remove(i);
        }
    }
}

/// The allocator lease a session holds.
pub fn lease_of(s: &Session) -> Lease {
    Lease {
        proto: s.proto,
        public_ip: s.public_ip,
        public_port: s.public_port,
        host: s.private_ip,
        dest: natgw_allocator::Endpoint {
            addr: s.remote_ip,
            port: s.remote_port,
        },
    }
}

/// The protocol enum of an IP protocol number we translate.
#[inline]
pub(crate) fn protocol_of(ip_proto: u8) -> Option<Protocol> {
    Protocol::from_ip_number(ip_proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_positions_are_stable_and_bounded() {
        let mut n = Neighbors::new(2);
        let (a, b, c) = (
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 3),
            Ipv4Addr::new(10, 0, 0, 4),
        );
        let pa = n.learn(a, MacAddr([1; 6]));
        let pb = n.learn(b, MacAddr([2; 6]));
        assert_ne!(pa, pb);
        // A refresh keeps the position and changes the MAC seen through it.
        assert_eq!(n.learn(a, MacAddr([3; 6])), pa);
        assert_eq!(n.at(pa, a), Some(MacAddr([3; 6])));
        assert_eq!(n.get(a), Some(MacAddr([3; 6])));
        assert_eq!(n.at(pb, b), n.get(b));
        // A position is only good for its own address.
        assert_eq!(n.at(pb, a), None);
        assert_eq!(n.at(7, a), None);
        // Full: no position, and nothing learned.
        assert_eq!(n.learn(c, MacAddr([4; 6])), session::NO_NEIGHBOR);
        assert_eq!(n.get(c), None);
        assert_eq!(n.at(session::NO_NEIGHBOR, c), None);
    }

    #[test]
    fn neighbour_positions_past_u16_are_not_handed_out() {
        let mut n = Neighbors::new(70_000);
        let mut last = 0;
        for i in 0..70_000u32 {
            last = n.learn(Ipv4Addr::from(0x0a00_0000 + i), MacAddr([0; 6]));
        }
        assert_eq!(last, session::NO_NEIGHBOR);
        assert_eq!(n.learn(Ipv4Addr::from(0x0a00_0000), MacAddr([0; 6])), 0);
        let ip = Ipv4Addr::from(0x0a00_0000 + u32::from(session::NO_NEIGHBOR));
        assert_eq!(
            n.at(session::NO_NEIGHBOR, ip),
            None,
            "65,535 is the none marker"
        );
    }

    #[test]
    fn address_filter_has_no_false_negatives() {
        let mut f = AddrFilter::default();
        let ours: Vec<Ipv4Addr> = (0..48).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect();
        ours.iter().for_each(|&ip| f.insert(ip));
        assert!(ours.iter().all(|&ip| f.may_contain(ip)));
        // And it rejects most other addresses.
        let others = (0..10_000u32)
            .filter(|&i| f.may_contain(Ipv4Addr::from(0xc633_6400 + i)))
            .count();
        assert!(others < 3_000, "{others}");
        assert!(!AddrFilter::default().may_contain(ours[0]));
    }
}
