//! The global port inventory on the slow path: builds the layout, deals blocks to shards, owns
//! the [`OwnerMap`] and rebalances idle blocks.
//!
//! Layer: allocator, slow path (one core). Talks to shards only through plain messages:
//! [`ShardEvent`] (shard -> inventory, [`Inventory::handle_event`]) and [`ShardCommand`]
//! (inventory -> shard, [`Inventory::poll_command`]); the caller carries them over its rings.
//! Invariants: every block has exactly one owner in the owner map; a shard allocates only from
//! blocks it was dealt or granted; only blocks with no live lease and no cool-down move (the
//! shard picks them itself when it surrenders).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU16;
use std::sync::Arc;

use crate::config::{AllocatorConfig, Policy};
use crate::layout::{Layout, MAX_PUBLIC_IPS, MAX_SHARDS};
use crate::owner::{OwnerInner, OwnerMap, OwnerTable, Ownership};
use crate::shard::{ShardAllocator, ShardOwnership};
use crate::types::{Protocol, ShardId};

/// Why an inventory could not be built from a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// No public IP configured.
    #[error("no public IP configured")]
    NoPublicIps,
    /// More public IPs than the allocator supports.
    #[error("{0} public IPs, at most {MAX_PUBLIC_IPS} supported")]
    TooManyPublicIps(usize),
    /// The same public IP listed twice.
    #[error("public IP {0} listed twice")]
    DuplicatePublicIp(Ipv4Addr),
    /// Shard count 0 or above the maximum.
    #[error("shard count {0} outside 1..={MAX_SHARDS}")]
    BadShardCount(u16),
    /// Port range empty, reversed or including port 0.
    #[error("bad port range {0}-{1} (need 1 <= first <= last)")]
    BadPortRange(u16, u16),
    /// A reserved range with start above end.
    #[error("bad reserved range {0}-{1}")]
    BadReservedRange(u16, u16),
    /// Reserved ranges cover the whole port range.
    #[error("no usable port left after reserved ranges")]
    NoUsablePorts,
    /// Block size 0.
    #[error("bad block size {0}")]
    BadBlockSize(u16),
    /// Preallocated policy with no instance.
    #[error("preallocated pool is empty")]
    EmptyPool,
    /// Default tier table asked for more than 1,000 instances.
    #[error("pool of {0} instances is above the default table's 1,000; set ports_per_instance")]
    PoolTooLarge(usize),
    /// `ports_per_instance` not a multiple of 8.
    #[error("ports_per_instance {0} is not a multiple of 8")]
    PortsPerInstanceNotMultipleOf8(u16),
    /// Instances times ports per instance exceed the usable ports.
    #[error("preallocation needs {need} ports per public IP, only {have} usable")]
    NotEnoughPorts {
        /// Ports needed.
        need: u64,
        /// Usable ports per public IP and protocol.
        have: u32,
    },
    /// The same instance listed twice.
    #[error("instance {0} listed twice")]
    DuplicateInstance(Ipv4Addr),
}

/// Shard -> slow path messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardEvent {
    /// The shard holds fewer idle blocks of this IP/protocol than the low watermark.
    LowOnPorts {
        /// Public IP of the inventory.
        public_ip: Ipv4Addr,
        /// Protocol of the inventory.
        proto: Protocol,
        /// Idle blocks the shard holds now.
        idle_blocks: u32,
    },
    /// The shard holds more idle blocks of this IP/protocol than the high watermark.
    Surplus {
        /// Public IP of the inventory.
        public_ip: Ipv4Addr,
        /// Protocol of the inventory.
        proto: Protocol,
        /// Idle blocks the shard holds now.
        idle_blocks: u32,
    },
    /// Answer to [`ShardCommand::Surrender`]: the shard gave up this idle block, destined to `to`.
    Surrendered {
        /// Public IP of the inventory.
        public_ip: Ipv4Addr,
        /// Protocol of the inventory.
        proto: Protocol,
        /// Block index.
        block: u32,
        /// The shard it goes to.
        to: ShardId,
    },
}

/// Slow path -> shard messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardCommand {
    /// The shard now owns this block (idle).
    Grant {
        /// Public IP of the inventory.
        public_ip: Ipv4Addr,
        /// Protocol of the inventory.
        proto: Protocol,
        /// Block index.
        block: u32,
    },
    /// Give up to `count` idle blocks of this inventory; they go to `to`. The shard answers with
    /// one [`ShardEvent::Surrendered`] per block (possibly none).
    Surrender {
        /// Public IP of the inventory.
        public_ip: Ipv4Addr,
        /// Protocol of the inventory.
        proto: Protocol,
        /// Most blocks to give.
        count: u32,
        /// Receiving shard.
        to: ShardId,
    },
}

/// Ownership figures of one public IP and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolInventory {
    /// Public IP.
    pub public_ip: Ipv4Addr,
    /// Protocol.
    pub proto: Protocol,
    /// Usable ports.
    pub ports: u32,
    /// Blocks.
    pub blocks: u32,
    /// Blocks owned by each shard (index = shard id).
    pub blocks_per_shard: Vec<u32>,
}

/// Slow-path statistics of the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryStats {
    /// Usable ports per public IP and protocol (range minus reserved).
    pub ports_per_ip: u32,
    /// Ports per ownership block actually used.
    pub block_size: u32,
    /// Preallocated: ports per instance (0 when dynamic).
    pub ports_per_instance: u32,
    /// Blocks moved between shards since start.
    pub blocks_moved: u64,
    /// One entry per public IP and protocol, IP-major, protocols in [`Protocol::ALL`] order.
    pub pools: Vec<PoolInventory>,
}

/// The global inventory (slow path side).
#[derive(Debug)]
pub struct Inventory {
    layout: Arc<Layout>,
    owners: OwnerMap,
    shards: u16,
    rebalancing: bool,
    low_wm: u32,
    /// `[pool][shard]` blocks owned (exact) and last idle count reported (estimate).
    owned: Vec<Vec<u32>>,
    idle_hint: Vec<Vec<u32>>,
    commands: VecDeque<(ShardId, ShardCommand)>,
    moved: u64,
}

impl Inventory {
    /// Builds the inventory and one [`ShardAllocator`] per shard (index = [`ShardId`]).
    pub fn new(
        cfg: AllocatorConfig,
        shards: u16,
        ownership: Ownership,
    ) -> Result<(Inventory, Vec<ShardAllocator>), InventoryError> {
        let layout = Arc::new(Layout::new(&cfg, shards)?);
        let n_pools = layout.n_pools();
        let n_blocks = layout.n_blocks as usize;
        let dynamic = matches!(cfg.policy, Policy::Dynamic { .. });
        let mut owned = vec![vec![0u32; usize::from(shards)]; n_pools];
        let (table, shard_own): (OwnerTable, Vec<ShardOwnership>) = match &ownership {
            Ownership::Blocks => {
                let mut per_pool = Vec::with_capacity(n_pools * n_blocks);
                for _ in 0..n_pools {
                    for b in 0..n_blocks {
                        per_pool.push(AtomicU16::new((b % usize::from(shards)) as u16));
                    }
                }
                for per_shard in &mut owned {
                    for b in 0..n_blocks {
                        per_shard[b % usize::from(shards)] += 1;
                    }
                }
                let own = (0..shards)
                    .map(|s| ShardOwnership::Blocks {
                        initial: (0..n_blocks as u32)
                            .filter(|b| *b as usize % usize::from(shards) == usize::from(s))
                            .collect(),
                    })
                    .collect();
                (OwnerTable::Blocks { per_pool, n_blocks }, own)
            }
            Ownership::DestPortHash(f) => {
                let per_slot: Vec<u16> = layout.ports.iter().map(|&p| f(p).0 % shards).collect();
                let per_slot: Arc<[u16]> = per_slot.into();
                let own = (0..shards)
                    .map(|s| ShardOwnership::per_slot(&per_slot, ShardId(s)))
                    .collect();
                (OwnerTable::PerSlot(per_slot), own)
            }
        };
        let rebalancing = dynamic
            && matches!(ownership, Ownership::Blocks)
            && cfg.rebalance.low_idle_blocks > 0
            && shards > 1;
        let owners = OwnerMap {
            inner: Arc::new(OwnerInner {
                layout: layout.clone(),
                table,
            }),
        };
        let shard_list = shard_own
            .into_iter()
            .enumerate()
            .map(|(s, own)| {
                ShardAllocator::new(
                    ShardId(s as u16),
                    shards,
                    layout.clone(),
                    &cfg,
                    own,
                    rebalancing,
                )
            })
            .collect();
        let idle_hint = owned.clone();
        let inv = Inventory {
            layout,
            owners,
            shards,
            rebalancing,
            low_wm: cfg.rebalance.low_idle_blocks,
            owned,
            idle_hint,
            commands: VecDeque::new(),
            moved: 0,
        };
        Ok((inv, shard_list))
    }

    /// The shared owner map for the fast path's steering.
    pub fn owners(&self) -> OwnerMap {
        self.owners.clone()
    }

    /// The public IPs, in configuration order.
    pub fn public_ips(&self) -> &[Ipv4Addr] {
        &self.layout.ips
    }

    /// Number of shards.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Handles a message from shard `from`.
    pub fn handle_event(&mut self, from: ShardId, ev: ShardEvent) {
        if from.0 >= self.shards {
            return;
        }
        let f = usize::from(from.0);
        match ev {
            ShardEvent::LowOnPorts {
                public_ip,
                proto,
                idle_blocks,
            } => {
                let Some(pool) = self.pool(public_ip, proto) else {
                    return;
                };
                self.idle_hint[pool][f] = idle_blocks;
                if !self.rebalancing {
                    return;
                }
                // The richest other shard gives some of its idle blocks, keeping a margin.
                let keep = self.low_wm * 2;
                let donor = (0..usize::from(self.shards))
                    .filter(|&s| s != f)
                    .max_by_key(|&s| self.idle_hint[pool][s]);
                if let Some(d) = donor {
                    let spare = self.idle_hint[pool][d].saturating_sub(keep);
                    let count = (keep.saturating_sub(idle_blocks))
                        .max(1)
                        .min(spare.div_ceil(2));
                    if count > 0 {
                        self.idle_hint[pool][d] -= count;
                        self.commands.push_back((
                            ShardId(d as u16),
                            ShardCommand::Surrender {
                                public_ip,
                                proto,
                                count,
                                to: from,
                            },
                        ));
                    }
                }
            }
            ShardEvent::Surplus {
                public_ip,
                proto,
                idle_blocks,
            } => {
                let Some(pool) = self.pool(public_ip, proto) else {
                    return;
                };
                self.idle_hint[pool][f] = idle_blocks;
                if !self.rebalancing {
                    return;
                }
                let poorest = (0..usize::from(self.shards))
                    .filter(|&s| s != f)
                    .min_by_key(|&s| self.idle_hint[pool][s]);
                if let Some(p) = poorest {
                    let gap = idle_blocks.saturating_sub(self.idle_hint[pool][p]);
                    let count = gap / 2;
                    if count > 0 {
                        self.idle_hint[pool][f] -= count;
                        self.commands.push_back((
                            from,
                            ShardCommand::Surrender {
                                public_ip,
                                proto,
                                count,
                                to: ShardId(p as u16),
                            },
                        ));
                    }
                }
            }
            ShardEvent::Surrendered {
                public_ip,
                proto,
                block,
                to,
            } => {
                let Some(pool) = self.pool(public_ip, proto) else {
                    return;
                };
                if to.0 >= self.shards || block >= self.layout.n_blocks {
                    return;
                }
                if self.owners.block_owner(pool, block) != Some(from) {
                    return;
                }
                self.owners.set_block_owner(pool, block, to);
                let t = usize::from(to.0);
                self.owned[pool][f] = self.owned[pool][f].saturating_sub(1);
                self.owned[pool][t] += 1;
                self.idle_hint[pool][t] += 1;
                self.moved += 1;
                self.commands.push_back((
                    to,
                    ShardCommand::Grant {
                        public_ip,
                        proto,
                        block,
                    },
                ));
            }
        }
    }

    /// Next message for a shard, if any.
    pub fn poll_command(&mut self) -> Option<(ShardId, ShardCommand)> {
        self.commands.pop_front()
    }

    /// Asks shard `from` to move up to `count` idle blocks of `public_ip`/`proto` to `to`
    /// (operator or test driven rebalancing; Blocks ownership only).
    pub fn rebalance(
        &mut self,
        public_ip: Ipv4Addr,
        proto: Protocol,
        from: ShardId,
        to: ShardId,
        count: u32,
    ) {
        if from == to || from.0 >= self.shards || to.0 >= self.shards {
            return;
        }
        if self.pool(public_ip, proto).is_none() {
            return;
        }
        self.commands.push_back((
            from,
            ShardCommand::Surrender {
                public_ip,
                proto,
                count,
                to,
            },
        ));
    }

    /// Ownership statistics.
    pub fn stats(&self) -> InventoryStats {
        let pools = (0..self.layout.n_pools())
            .map(|pool| {
                let (public_ip, proto) = self.layout.pool_parts(pool);
                PoolInventory {
                    public_ip,
                    proto,
                    ports: self.layout.n_slots(),
                    blocks: self.layout.n_blocks,
                    blocks_per_shard: self.owned_blocks(pool),
                }
            })
            .collect();
        InventoryStats {
            ports_per_ip: self.layout.n_slots(),
            block_size: self.layout.block_size,
            ports_per_instance: self.layout.ppi,
            blocks_moved: self.moved,
            pools,
        }
    }

    fn owned_blocks(&self, pool: usize) -> Vec<u32> {
        match &self.owners.inner.table {
            OwnerTable::Blocks { .. } => self.owned[pool].clone(),
            // Per-port ownership: report ports as "blocks" of one.
            OwnerTable::PerSlot(t) => {
                let mut v = vec![0u32; usize::from(self.shards)];
                for &s in t.iter() {
                    v[usize::from(s)] += 1;
                }
                v
            }
        }
    }

    fn pool(&self, ip: Ipv4Addr, proto: Protocol) -> Option<usize> {
        Some(Layout::pool_index(self.layout.ip_index(ip)?, proto))
    }
}
