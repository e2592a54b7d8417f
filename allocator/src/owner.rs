//! Who owns which port: the ownership function and the shared owner map.
//!
//! Layer: allocator. The [`OwnerMap`] is read by every fast-path worker to steer return traffic
//! (O(1): two array loads and a relaxed atomic load) and written only by the slow path's
//! [`Inventory`](crate::Inventory) when it moves an idle block. Invariant: every usable port has
//! exactly one owner at all times; a block changes owner only while it holds no live lease and no
//! cool-down, so a stale read can only steer a packet that no lease is waiting for.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use crate::layout::{Layout, NO_SLOT};
use crate::types::{Protocol, ShardId};

/// How ports are dealt to shards.
#[derive(Clone)]
pub enum Ownership {
    /// Contiguous blocks of `block_size` usable ports, dealt round-robin; the slow path may move
    /// idle blocks between shards (rebalancing).
    Blocks,
    /// Port `p` belongs to the shard the NIC's RSS on the L4 destination port selects for `p`
    /// (the return traffic's destination port is the public port), so the NIC steers return
    /// traffic in hardware. Fixed: no rebalancing. Values `>= shards` are taken modulo `shards`.
    DestPortHash(Arc<dyn Fn(u16) -> ShardId + Send + Sync>),
}

impl fmt::Debug for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ownership::Blocks => f.write_str("Blocks"),
            Ownership::DestPortHash(_) => f.write_str("DestPortHash(..)"),
        }
    }
}

pub(crate) enum OwnerTable {
    /// Per pool, per block.
    Blocks {
        per_pool: Vec<AtomicU16>,
        n_blocks: usize,
    },
    /// Per slot, the same for every pool.
    PerSlot(Arc<[u16]>),
}

pub(crate) struct OwnerInner {
    pub layout: Arc<Layout>,
    pub table: OwnerTable,
}

/// Shared, read-only view of port ownership for the fast path: `Clone + Send + Sync`, lock-free.
#[derive(Clone)]
pub struct OwnerMap {
    pub(crate) inner: Arc<OwnerInner>,
}

impl fmt::Debug for OwnerMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerMap")
            .field("public_ips", &self.inner.layout.ips.len())
            .finish()
    }
}

impl OwnerMap {
    /// The shard that owns `port` of `public_ip` for `proto`; `None` for an unknown IP or a port
    /// outside the inventory (reserved, or outside the port range).
    #[inline]
    pub fn owner(&self, public_ip: Ipv4Addr, proto: Protocol, port: u16) -> Option<ShardId> {
        let l = &self.inner.layout;
        let ip = l.ip_index(public_ip)?;
        let slot = l.slot_of[usize::from(port)];
        if slot == NO_SLOT {
            return None;
        }
        self.owner_of_slot(Layout::pool_index(ip, proto), u32::from(slot))
    }

    #[inline]
    pub(crate) fn owner_of_slot(&self, pool: usize, slot: u32) -> Option<ShardId> {
        let v = match &self.inner.table {
            OwnerTable::Blocks { per_pool, n_blocks } => {
                let b = (slot / self.inner.layout.block_size) as usize;
                per_pool.get(pool * n_blocks + b)?.load(Ordering::Relaxed)
            }
            OwnerTable::PerSlot(t) => *t.get(slot as usize)?,
        };
        (v != u16::MAX).then_some(ShardId(v))
    }

    /// Slow path only: records the new owner of a block.
    pub(crate) fn set_block_owner(&self, pool: usize, block: u32, shard: ShardId) {
        if let OwnerTable::Blocks { per_pool, n_blocks } = &self.inner.table {
            if let Some(a) = per_pool.get(pool * n_blocks + block as usize) {
                a.store(shard.0, Ordering::Relaxed);
            }
        }
    }

    /// The owner of block `block` of a pool (Blocks ownership only).
    pub(crate) fn block_owner(&self, pool: usize, block: u32) -> Option<ShardId> {
        match &self.inner.table {
            OwnerTable::Blocks { per_pool, n_blocks } => per_pool
                .get(pool * n_blocks + block as usize)
                .map(|a| ShardId(a.load(Ordering::Relaxed))),
            OwnerTable::PerSlot(_) => None,
        }
    }
}
