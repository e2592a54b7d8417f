//! The bounded rings between cores, and the messages they carry.
//!
//! Cores talk only through these (STYLE §9): lock-free bounded queues (`crossbeam::queue::ArrayQueue`),
//! one per direction and pair, allocated at start-up. A full ring is a counted drop, never a wait. Frames
//! cross cores by copy into an inline buffer ([`OwnedFrame`]), so no buffer ownership crosses threads and
//! nothing is allocated per frame.

use crossbeam::queue::ArrayQueue;
use natgw_allocator::{
    DestinationUse, OwnerMap, ShardAllocator, ShardCommand, ShardEvent, ShardStats,
};
use natgw_dataplane::nat::counters::Counters;
use natgw_dataplane::nat::{CoreParams, Punt, Side};
use natgw_dataplane::port::FRAME_CAPACITY;
use natgw_dataplane::wire::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A frame copied out of a burst to cross to another core.
pub struct OwnedFrame {
    /// Side it was received on (handoff), or is to be sent on (transmit).
    pub side: Side,
    /// Why it was punted (punts only).
    pub punt: Option<Punt>,
    /// Frame length.
    pub len: u16,
    /// Frame bytes.
    pub data: [u8; FRAME_CAPACITY],
}

impl OwnedFrame {
    /// Copy `frame` (truncated to the capacity).
    pub fn copy_of(side: Side, punt: Option<Punt>, frame: &[u8]) -> OwnedFrame {
        let len = frame.len().min(FRAME_CAPACITY);
        let mut data = [0u8; FRAME_CAPACITY];
        data[..len].copy_from_slice(&frame[..len]);
        OwnedFrame {
            side,
            punt,
            len: len as u16,
            data,
        }
    }

    /// The frame bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The frame bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data[..usize::from(self.len)]
    }
}

/// Slow path → worker control messages.
pub enum Command {
    /// The outside gateway's MAC (None: unresolved).
    GatewayMac(Option<MacAddr>),
    /// An inside neighbour's MAC.
    Neighbor(Ipv4Addr, MacAddr),
    /// A port-block message for the shard's allocator.
    Alloc(ShardCommand),
    /// New parameters after a reload (new flows only), with this shard's slice of a new port inventory
    /// when the SNAT addresses or port rules changed.
    Reload(Box<CoreParams>, Option<Box<(ShardAllocator, OwnerMap)>>),
}

/// What a worker publishes for the slow path, about ten times a second.
pub struct Snapshot {
    /// NAT counters.
    pub counters: Counters,
    /// Live sessions.
    pub sessions: usize,
    /// Bytes held by sessions and allocator.
    pub memory_bytes: usize,
    /// Allocator statistics.
    pub alloc: ShardStats,
    /// Frames received from other workers.
    pub handoffs_in: u64,
    /// Top destinations by ports held, filled only when the shard is short of ports.
    pub pressure: Vec<DestinationUse>,
}

/// All rings of one worker, shared between it, the other workers and the slow path.
pub struct WorkerRings {
    /// Frames this worker punts to the slow path.
    pub punt: ArrayQueue<OwnedFrame>,
    /// Frames the slow path asks this worker to transmit.
    pub transmit: ArrayQueue<OwnedFrame>,
    /// Control messages from the slow path.
    pub commands: ArrayQueue<Command>,
    /// Allocator events for the slow path.
    pub events: ArrayQueue<ShardEvent>,
    /// Counter snapshots for the slow path (latest wins).
    pub snapshots: ArrayQueue<Snapshot>,
    /// Frames handed to this worker by other workers.
    pub handoff: ArrayQueue<OwnedFrame>,
}

impl WorkerRings {
    /// Rings with the given handoff capacity.
    pub fn new(handoff: usize) -> Arc<WorkerRings> {
        Arc::new(WorkerRings {
            punt: ArrayQueue::new(512),
            transmit: ArrayQueue::new(512),
            commands: ArrayQueue::new(4096),
            events: ArrayQueue::new(1024),
            snapshots: ArrayQueue::new(2),
            handoff: ArrayQueue::new(handoff.max(64)),
        })
    }
}
