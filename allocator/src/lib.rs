//! SNAT port inventory and allocation (sans-IO).
//!
//! Layer: allocator, between `config` and `dataplane`. No threads, no clock, no I/O: time
//! ([`Timestamp`]) and a seeded RNG come in as arguments, so tests and benches are deterministic.
//!
//! Shape: the slow path builds an [`Inventory`] with [`Inventory::new`], which returns one
//! [`ShardAllocator`] per fast-path worker and shares an [`OwnerMap`] for steering return traffic.
//! Per public IP and protocol (TCP, UDP and ICMP identifiers are separate inventories), the usable
//! ports (port range minus reserved ranges of 8) are cut into blocks; each block has exactly one
//! owner shard, and a shard allocates only from its own blocks, with no lock and no shared write.
//! Shards and the inventory exchange plain messages ([`ShardEvent`], [`ShardCommand`]) to move
//! idle blocks to a shard running low ([`Ownership::Blocks`]); with
//! [`Ownership::DestPortHash`] each port belongs to the shard the NIC's RSS on the destination
//! port selects, and nothing moves.
//!
//! Port reuse follows the seeds: a TCP port is leased at the same time to flows towards different
//! remote IP:port pairs; a UDP port (and an ICMP identifier) at most once per remote IP, whatever
//! the remote port. A (protocol, public IP, port, destination) is never live or cooling twice.
//!
//! Limits are enforced per shard as fair shares, `ceil(limit / shards)` (what VPP does per
//! thread): `max_sessions`, `max_per_destination` (per public IP and destination) and the dynamic
//! policy's per-host cap.
//!
//! Memory: per shard, per public IP and protocol, one `HashTable<u64>` of live-or-cooling
//! (destination, port) pairs and one of live counts per destination (8-byte entries), plus a
//! bitmap for each destination that holds a large share of the ports ("hot" destinations, so
//! that finding a free port for them is a word scan instead of blind probing).
//! [`ShardAllocator::memory_bytes`] counts them.
//!
//! Static 1:1 mappings consume no port and are answered by the data path before it asks here.
#![forbid(unsafe_code)]

mod config;
mod hash;
mod inventory;
mod layout;
mod owner;
mod pool;
mod shard;
mod time;
mod types;

pub use config::{
    default_ports_per_instance, AllocatorConfig, Cooldowns, Policy, Pooling, Rebalance,
};
pub use inventory::{
    Inventory, InventoryError, InventoryStats, PoolInventory, ShardCommand, ShardEvent,
};
pub use layout::{MAX_PUBLIC_IPS, MAX_SHARDS};
pub use owner::{OwnerMap, Ownership};
pub use shard::{DestinationUse, ShardAllocator, ShardPoolStats, ShardStats, EXPIRE_BUDGET};
pub use time::Timestamp;
pub use types::{AllocError, CloseKind, Endpoint, FlowRequest, Lease, Protocol, ShardId};
