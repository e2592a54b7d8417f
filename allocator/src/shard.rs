//! The fast-path side of the allocator: one [`ShardAllocator`] per worker.
//!
//! Layer: allocator, fast path. A shard allocates only from the ports it owns, through `&mut self`:
//! no lock, no atomic, no shared write; once its tables have grown it allocates no memory per
//! call. Time and randomness come in as arguments (sans-IO).
//!
//! Invariants (checked by the state-machine test): no (protocol, public IP, port, destination)
//! is live or cooling twice; a pair released with a cool-down is not leased again to the same
//! destination before the cool-down has passed (expiry happens in
//! [`ShardAllocator::handle_timeout`], never early); every lease lies in a block this shard owns
//! and, in preallocated mode, in its host's range; limits are per-shard fair shares
//! (`ceil(limit / shards)`, as VPP does per thread), so a limit is reached on one shard when that
//! shard's share is used up, even if other shards have room.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::{HashMap, HashTable};
use rand::RngCore;

use crate::config::{AllocatorConfig, Policy, Pooling};
use crate::hash::{dest_endpoint, dest_key, dest_of, fastrange, hash64, low16, pair_key};
use crate::inventory::{ShardCommand, ShardEvent};
use crate::layout::{Layout, NO_SLOT};
use crate::pool::{Ctx, PerSlotOwnership, Pool};
use crate::time::Timestamp;
use crate::types::{AllocError, CloseKind, Endpoint, FlowRequest, Lease, Protocol, ShardId};

/// Cool-down entries expired per [`ShardAllocator::handle_timeout`] call at most.
pub const EXPIRE_BUDGET: usize = 4096;

const PAIRED_SALT: u64 = 0x7061_6972_6564_2121;

/// Initial ownership handed to a shard by the inventory.
pub(crate) enum ShardOwnership {
    Blocks { initial: Vec<u32> },
    PerSlot(PerSlotOwnership),
}

impl ShardOwnership {
    pub fn per_slot(table: &Arc<[u16]>, me: ShardId) -> ShardOwnership {
        let mut bits = vec![0u64; table.len().div_ceil(64)];
        let mut list = Vec::new();
        for (slot, &s) in table.iter().enumerate() {
            if s == me.0 {
                bits[slot / 64] |= 1u64 << (slot % 64);
                list.push(slot as u16);
            }
        }
        ShardOwnership::PerSlot(PerSlotOwnership {
            bits: bits.into(),
            list: list.into(),
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct CoolEntry {
    key: u64,
    expires: u64,
    pool: u32,
}

/// Per public IP and protocol figures of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPoolStats {
    /// Public IP.
    pub public_ip: Ipv4Addr,
    /// Protocol.
    pub proto: Protocol,
    /// Ports this shard owns (may allocate from).
    pub owned_ports: u32,
    /// Owned blocks with no live lease and no cool-down (0 in destination-port-hash mode).
    pub idle_blocks: u32,
    /// Live leases.
    pub live_leases: u32,
    /// (port, destination) pairs cooling down.
    pub cooling: u32,
    /// Destinations with at least one live lease.
    pub destinations: u32,
}

/// Statistics of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStats {
    /// The shard.
    pub shard: ShardId,
    /// Live leases.
    pub live_leases: u64,
    /// Pairs cooling down.
    pub cooling: u64,
    /// Successful allocations since start.
    pub allocations: u64,
    /// Releases since start (including ignored ones).
    pub releases: u64,
    /// Releases of a lease that was not live here (ignored).
    pub bad_releases: u64,
    /// Cool-downs that ended.
    pub expired: u64,
    /// Failed allocations by reason, indexed like [`AllocError::ALL`].
    pub failures: [u64; 5],
    /// One entry per public IP and protocol.
    pub pools: Vec<ShardPoolStats>,
}

impl ShardStats {
    /// Failures for one reason.
    pub fn failures_for(&self, e: AllocError) -> u64 {
        self.failures[e.index()]
    }
}

/// One destination in a pressure report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationUse {
    /// Public IP the ports belong to.
    pub public_ip: Ipv4Addr,
    /// Protocol.
    pub proto: Protocol,
    /// Destination (port 0 for UDP and ICMP, whose ports are per destination address).
    pub dest: Endpoint,
    /// Ports held towards it, live or cooling.
    pub ports: u32,
}

#[derive(Debug, Default)]
struct Counters {
    allocations: u64,
    releases: u64,
    bad_releases: u64,
    expired: u64,
    failures: [u64; 5],
}

/// Fast-path allocator of one shard. `Send`; owned by one worker.
#[derive(Debug)]
pub struct ShardAllocator {
    id: ShardId,
    layout: Arc<Layout>,
    pools: Vec<Pool>,
    per_slot: Option<PerSlotOwnership>,
    seed: u64,
    pooling: Pooling,
    paired_fallback: bool,
    session_share: u32,
    dest_share: u32,
    host_share: Option<u32>,
    hosts: HashTable<u64>,
    cooldown_ns: [u64; 4],
    queues: [VecDeque<CoolEntry>; 4],
    events: VecDeque<ShardEvent>,
    rebalancing: bool,
    /// Some pool may have crossed a watermark since the last check.
    wm_dirty: bool,
    low_wm: u32,
    high_wm: u32,
    live: u32,
    c: Counters,
}

fn share(limit: u32, shards: u16) -> u32 {
    limit.div_ceil(u32::from(shards))
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl ShardAllocator {
    pub(crate) fn new(
        id: ShardId,
        shards: u16,
        layout: Arc<Layout>,
        cfg: &AllocatorConfig,
        own: ShardOwnership,
        rebalancing: bool,
    ) -> ShardAllocator {
        let n_pools = layout.n_pools();
        let (pools, per_slot, initial_blocks) = match own {
            ShardOwnership::Blocks { initial } => {
                let pools = (0..n_pools)
                    .map(|_| Pool::new_blocks(&layout, &initial))
                    .collect();
                (pools, None, initial.len() as u32)
            }
            ShardOwnership::PerSlot(ps) => (
                (0..n_pools).map(|_| Pool::new_per_slot()).collect(),
                Some(ps),
                0,
            ),
        };
        let host_share = match cfg.policy {
            Policy::Dynamic { max_ports_per_host } => max_ports_per_host.map(|c| share(c, shards)),
            Policy::Preallocated { .. } => None,
        };
        let c = cfg.cooldown;
        let low_wm = cfg.rebalance.low_idle_blocks;
        ShardAllocator {
            id,
            pools,
            per_slot,
            seed: cfg.seed,
            pooling: cfg.pooling,
            paired_fallback: cfg.paired_fallback,
            session_share: share(cfg.max_sessions, shards),
            dest_share: share(cfg.max_per_destination, shards),
            host_share,
            hosts: HashTable::new(),
            cooldown_ns: [
                nanos(c.tcp_fin),
                nanos(c.tcp_rst),
                nanos(c.tcp_half_open),
                nanos(c.udp),
            ],
            queues: Default::default(),
            events: VecDeque::with_capacity(64),
            rebalancing,
            wm_dirty: false,
            low_wm,
            high_wm: cfg
                .rebalance
                .high_idle_blocks
                .unwrap_or((initial_blocks * 2).max(low_wm * 4)),
            live: 0,
            c: Counters::default(),
            layout,
        }
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The public IPs, in configuration order.
    pub fn public_ips(&self) -> &[Ipv4Addr] {
        &self.layout.ips
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            layout: &self.layout,
            per_slot: self.per_slot.as_ref(),
            seed: self.seed,
        }
    }

    /// The public IP index a host is paired with (the same on every shard).
    fn paired_index(&self, host: Ipv4Addr) -> usize {
        let h = hash64(u64::from(u32::from(host)), self.seed ^ PAIRED_SALT);
        fastrange(h, self.layout.ips.len() as u64) as usize
    }

    /// The public IP a host is paired with under paired pooling (the same on every shard).
    pub fn paired_ip(&self, host: Ipv4Addr) -> Ipv4Addr {
        self.layout.ips[self.paired_index(host)]
    }

    /// Leases a public IP and port for a new flow. Port choice is random among the ports this
    /// shard owns that the host may use and that are free for the destination (RFC 6056 style);
    /// a failure changes nothing but the failure counter.
    pub fn allocate<R: RngCore>(
        &mut self,
        req: &FlowRequest,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Lease, AllocError> {
        let mut r = self.try_allocate(req, rng);
        if r == Err(AllocError::PortsExhausted) && self.has_expired(now) {
            // Cool-downs that ended but were not yet collected may free a pair: collect, retry.
            self.handle_timeout(now);
            r = self.try_allocate(req, rng);
        }
        match r {
            Ok(_) => self.c.allocations += 1,
            Err(e) => self.c.failures[e.index()] += 1,
        }
        self.check_watermarks();
        r
    }

    fn try_allocate<R: RngCore>(
        &mut self,
        req: &FlowRequest,
        rng: &mut R,
    ) -> Result<Lease, AllocError> {
        let range = self
            .layout
            .host_range(req.host)
            .ok_or(AllocError::NotInPool)?;
        if self.live >= self.session_share {
            return Err(AllocError::SessionLimit);
        }
        let host = u64::from(u32::from(req.host));
        if let Some(cap) = self.host_share {
            let used = self
                .hosts
                .find(hash64(host, self.seed), |e| e >> 32 == host)
                .map_or(0, |e| *e as u32);
            if used >= cap {
                return Err(AllocError::HostLimit);
            }
        }
        let dkey = dest_key(req.proto, req.dest);
        let n_ips = self.layout.ips.len();
        let first = match self.pooling {
            Pooling::Paired => self.paired_index(req.host),
            Pooling::Arbitrary => {
                let r = rng.next_u64();
                let a = fastrange(r, n_ips as u64) as usize;
                let b = fastrange(r.rotate_left(32), n_ips as u64) as usize;
                let load = |i: usize| self.pools[Layout::pool_index(i as u16, req.proto)].live;
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
        };
        let tries = if self.pooling == Pooling::Paired && !self.paired_fallback {
            1
        } else {
            n_ips
        };
        let mut err = AllocError::DestinationLimit;
        for i in 0..tries {
            let ip_idx = (first + i) % n_ips;
            match self.try_pool(ip_idx, req.proto, dkey, range, rng) {
                Ok(port) => {
                    if self.host_share.is_some() {
                        let seed = self.seed;
                        let h = hash64(host, seed);
                        match self.hosts.find_mut(h, |e| e >> 32 == host) {
                            Some(e) => *e += 1,
                            None => {
                                self.hosts
                                    .insert_unique(h, (host << 32) | 1, |e| hash64(e >> 32, seed));
                            }
                        }
                    }
                    self.live += 1;
                    return Ok(Lease {
                        proto: req.proto,
                        public_ip: self.layout.ips[ip_idx],
                        public_port: port,
                        host: req.host,
                        dest: req.dest,
                    });
                }
                Err(AllocError::PortsExhausted) => err = AllocError::PortsExhausted,
                Err(_) => {}
            }
        }
        Err(err)
    }

    fn try_pool<R: RngCore>(
        &mut self,
        ip_idx: usize,
        proto: Protocol,
        dkey: u64,
        range: (u32, u32),
        rng: &mut R,
    ) -> Result<u16, AllocError> {
        let pi = Layout::pool_index(ip_idx as u16, proto);
        let ctx = Ctx {
            layout: &self.layout,
            per_slot: self.per_slot.as_ref(),
            seed: self.seed,
        };
        let pool = &mut self.pools[pi];
        if pool.dest_live(dkey, self.seed) >= self.dest_share {
            return Err(AllocError::DestinationLimit);
        }
        let slot = pool
            .find_slot(&ctx, dkey, range, rng)
            .ok_or(AllocError::PortsExhausted)?;
        let port = ctx.layout.ports[slot as usize];
        pool.insert_live(&ctx, dkey, slot, port);
        self.wm_dirty |= pool.wm_dirty;
        Ok(port)
    }

    /// Ends a lease. `how` selects the cool-down during which the (port, destination) pair is not
    /// leased again to that destination (the port keeps serving other destinations). Call exactly
    /// once per lease; a lease that is not live here is ignored and counted in `bad_releases`
    /// (detected when its destination has no other live lease on this public IP).
    pub fn release(&mut self, lease: &Lease, how: CloseKind, now: Timestamp) {
        self.c.releases += 1;
        if !self.release_inner(lease, how, now) {
            self.c.bad_releases += 1;
        }
        self.check_watermarks();
    }

    fn release_inner(&mut self, lease: &Lease, how: CloseKind, now: Timestamp) -> bool {
        let Some(ip_idx) = self.layout.ip_index(lease.public_ip) else {
            return false;
        };
        if self.layout.slot_of[usize::from(lease.public_port)] == NO_SLOT {
            return false;
        }
        let pi = Layout::pool_index(ip_idx, lease.proto);
        let dkey = dest_key(lease.proto, lease.dest);
        let seed = self.seed;
        if !self.pools[pi].end_live(dkey, lease.public_port, seed) {
            return false;
        }
        if self.host_share.is_some() {
            let host = u64::from(u32::from(lease.host));
            if let Ok(mut occ) = self
                .hosts
                .find_entry(hash64(host, seed), |e| e >> 32 == host)
            {
                if *occ.get() as u32 <= 1 {
                    occ.remove();
                } else {
                    *occ.get_mut() -= 1;
                }
            }
        }
        self.live = self.live.saturating_sub(1);
        let key = pair_key(dkey, lease.public_port);
        let q = match how {
            CloseKind::TcpFin => 0,
            CloseKind::TcpRst | CloseKind::TcpIdle => 1,
            CloseKind::TcpHalfOpen => 2,
            CloseKind::UdpIdle | CloseKind::IcmpIdle => 3,
        };
        let cd = self.cooldown_ns[q];
        if cd == 0 {
            let ctx = Ctx {
                layout: &self.layout,
                per_slot: self.per_slot.as_ref(),
                seed: self.seed,
            };
            self.pools[pi].remove_pair(&ctx, key);
            self.wm_dirty |= self.pools[pi].wm_dirty;
        } else {
            self.pools[pi].cooling += 1;
            self.queues[q].push_back(CoolEntry {
                key,
                expires: now.as_nanos().saturating_add(cd),
                pool: pi as u32,
            });
        }
        true
    }

    fn has_expired(&self, now: Timestamp) -> bool {
        self.next_timeout().is_some_and(|t| t <= now)
    }

    /// Ends the cool-downs due at `now`, at most [`EXPIRE_BUDGET`] per call; call again while
    /// [`ShardAllocator::next_timeout`] is not after `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let ctx = Ctx {
            layout: &self.layout,
            per_slot: self.per_slot.as_ref(),
            seed: self.seed,
        };
        let mut budget = EXPIRE_BUDGET;
        for q in &mut self.queues {
            while budget > 0 {
                match q.front() {
                    Some(e) if e.expires <= now.as_nanos() => {
                        let e = *e;
                        q.pop_front();
                        let pool = &mut self.pools[e.pool as usize];
                        pool.cooling = pool.cooling.saturating_sub(1);
                        pool.remove_pair(&ctx, e.key);
                        self.wm_dirty |= pool.wm_dirty;
                        self.c.expired += 1;
                        budget -= 1;
                    }
                    _ => break,
                }
            }
        }
        self.check_watermarks();
    }

    /// When the next cool-down ends, if any.
    pub fn next_timeout(&self) -> Option<Timestamp> {
        self.queues
            .iter()
            .filter_map(|q| q.front())
            .map(|e| e.expires)
            .min()
            .map(Timestamp::from_nanos)
    }

    /// Next message for the slow path.
    pub fn poll_event(&mut self) -> Option<ShardEvent> {
        self.events.pop_front()
    }

    /// Applies a message from the slow path. Commands naming an unknown IP or block are ignored.
    pub fn handle_command(&mut self, cmd: ShardCommand) {
        if self.per_slot.is_some() {
            return;
        }
        match cmd {
            ShardCommand::Grant {
                public_ip,
                proto,
                block,
            } => {
                let Some(ip) = self.layout.ip_index(public_ip) else {
                    return;
                };
                let pi = Layout::pool_index(ip, proto);
                self.pools[pi].grant(&self.layout, block);
                self.pools[pi].low_flag = false;
            }
            ShardCommand::Surrender {
                public_ip,
                proto,
                count,
                to,
            } => {
                let Some(ip) = self.layout.ip_index(public_ip) else {
                    return;
                };
                let pi = Layout::pool_index(ip, proto);
                let events = &mut self.events;
                self.pools[pi].surrender(&self.layout, count, |block| {
                    events.push_back(ShardEvent::Surrendered {
                        public_ip,
                        proto,
                        block,
                        to,
                    });
                });
                self.pools[pi].surplus_flag = false;
            }
        }
        self.wm_dirty = true;
        self.check_watermarks();
    }

    fn check_watermarks(&mut self) {
        if !self.rebalancing || !self.wm_dirty {
            return;
        }
        self.wm_dirty = false;
        for (pi, pool) in self.pools.iter_mut().enumerate() {
            if !pool.wm_dirty {
                continue;
            }
            pool.wm_dirty = false;
            let (public_ip, proto) = self.layout.pool_parts(pi);
            let idle_blocks = pool.idle_blocks;
            if idle_blocks < self.low_wm {
                if !pool.low_flag {
                    pool.low_flag = true;
                    self.events.push_back(ShardEvent::LowOnPorts {
                        public_ip,
                        proto,
                        idle_blocks,
                    });
                }
            } else {
                pool.low_flag = false;
            }
            if idle_blocks > self.high_wm {
                if !pool.surplus_flag {
                    pool.surplus_flag = true;
                    self.events.push_back(ShardEvent::Surplus {
                        public_ip,
                        proto,
                        idle_blocks,
                    });
                }
            } else {
                pool.surplus_flag = false;
            }
        }
    }

    /// Live leases on this shard.
    pub fn live_leases(&self) -> usize {
        self.live as usize
    }

    /// Whether this shard owns `port` of `public_ip`/`proto` (may allocate from it).
    pub fn owns(&self, public_ip: Ipv4Addr, proto: Protocol, port: u16) -> bool {
        let Some(ip) = self.layout.ip_index(public_ip) else {
            return false;
        };
        let slot = self.layout.slot_of[usize::from(port)];
        if slot == NO_SLOT {
            return false;
        }
        let slot = usize::from(slot);
        let word = match &self.per_slot {
            Some(ps) => ps.bits[slot / 64],
            None => self.pools[Layout::pool_index(ip, proto)].owned_bits[slot / 64],
        };
        word & (1u64 << (slot % 64)) != 0
    }

    /// Whether the (port, destination) pair of `lease` is live or cooling here.
    pub fn holds(&self, lease: &Lease) -> bool {
        let Some(ip) = self.layout.ip_index(lease.public_ip) else {
            return false;
        };
        let key = pair_key(dest_key(lease.proto, lease.dest), lease.public_port);
        self.pools[Layout::pool_index(ip, lease.proto)].has_pair(key, self.seed)
    }

    /// The destinations holding the most ports (live or cooling), most first, at most `top`.
    /// Filters: `public_ip` restricts to that address; `host` restricts, in preallocated mode, to
    /// the host's own range, and in dynamic mode to the public IP the host is paired with (the
    /// dynamic policy keeps no per-host port list, so other hosts' ports on that IP are included).
    /// Slow path: walks the pair tables.
    pub fn pressure(
        &self,
        public_ip: Option<Ipv4Addr>,
        host: Option<Ipv4Addr>,
        top: usize,
    ) -> Vec<DestinationUse> {
        let mut range = (0, self.layout.n_slots());
        let mut only_ip = public_ip.and_then(|ip| self.layout.ip_index(ip));
        if public_ip.is_some() && only_ip.is_none() {
            return Vec::new();
        }
        if let Some(h) = host {
            match self.layout.host_range(h) {
                Some(r) => range = r,
                None => return Vec::new(),
            }
            if self.layout.ppi == 0 && self.pooling == Pooling::Paired {
                let p = self.paired_index(h) as u16;
                if only_ip.is_some_and(|i| i != p) {
                    return Vec::new();
                }
                only_ip = Some(p);
            }
        }
        let mut counts: HashMap<(usize, u64), u32> = HashMap::new();
        for (pi, pool) in self.pools.iter().enumerate() {
            if only_ip.is_some_and(|i| usize::from(i) != pi / 3) {
                continue;
            }
            for e in pool.pairs.iter() {
                let slot = self.layout.slot_of[usize::from(low16(*e))];
                if slot == NO_SLOT || u32::from(slot) < range.0 || u32::from(slot) >= range.1 {
                    continue;
                }
                *counts.entry((pi, dest_of(*e))).or_insert(0) += 1;
            }
        }
        let mut v: Vec<DestinationUse> = counts
            .into_iter()
            .map(|((pi, d), ports)| {
                let (public_ip, proto) = self.layout.pool_parts(pi);
                DestinationUse {
                    public_ip,
                    proto,
                    dest: dest_endpoint(d),
                    ports,
                }
            })
            .collect();
        v.sort_unstable_by(|a, b| {
            b.ports.cmp(&a.ports).then_with(|| {
                (
                    u32::from(a.public_ip),
                    a.proto,
                    u32::from(a.dest.addr),
                    a.dest.port,
                )
                    .cmp(&(
                        u32::from(b.public_ip),
                        b.proto,
                        u32::from(b.dest.addr),
                        b.dest.port,
                    ))
            })
        });
        v.truncate(top);
        v
    }

    /// Statistics snapshot.
    pub fn stats(&self) -> ShardStats {
        let ctx = self.ctx();
        let pools = self
            .pools
            .iter()
            .enumerate()
            .map(|(pi, p)| {
                let (public_ip, proto) = self.layout.pool_parts(pi);
                ShardPoolStats {
                    public_ip,
                    proto,
                    owned_ports: p.owned_slots(&ctx),
                    idle_blocks: p.idle_blocks,
                    live_leases: p.live,
                    cooling: p.cooling,
                    destinations: p.dests.len() as u32,
                }
            })
            .collect();
        ShardStats {
            shard: self.id,
            live_leases: u64::from(self.live),
            cooling: self.queues.iter().map(|q| q.len() as u64).sum(),
            allocations: self.c.allocations,
            releases: self.c.releases,
            bad_releases: self.c.bad_releases,
            expired: self.c.expired,
            failures: self.c.failures,
            pools,
        }
    }

    /// Bytes held by this shard's structures (hash tables by allocated buckets, queues and
    /// vectors by capacity); the layout shared by all shards is not included.
    pub fn memory_bytes(&self) -> usize {
        self.pools.iter().map(Pool::memory_bytes).sum::<usize>()
            + self.hosts.allocation_size()
            + self
                .queues
                .iter()
                .map(|q| q.capacity() * std::mem::size_of::<CoolEntry>())
                .sum::<usize>()
            + self.events.capacity() * std::mem::size_of::<ShardEvent>()
            + self
                .per_slot
                .as_ref()
                .map_or(0, |p| p.bits.len() * 8 + p.list.len() * 2)
    }

    /// Destinations currently tracked with a bitmap because they hold many ports (diagnostics).
    pub fn hot_destinations(&self) -> usize {
        self.pools.iter().map(Pool::hot_count).sum()
    }
}
