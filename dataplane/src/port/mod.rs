//! Packet I/O: one batch-first trait, several backends.
//!
//! Layer: packet I/O, between the NIC (or kernel interface) and the NAT core; fast path. A port
//! is opened with a number of queues; each queue is a pair of handles, one [`RxQueue`] and one
//! [`TxQueue`], each `Send` and owned by one worker thread, so no queue is ever shared and the
//! fast path takes no lock. Frames travel in preallocated [`Burst`]s of [`PacketBuf`]s: `rx_burst`
//! fills spare buffers, the NAT core rewrites them in place (length unchanged), `tx_burst` sends
//! and empties the burst. Backends copy frames between their rings and the burst's buffers
//! (AF_PACKET and copy-mode AF_XDP must copy anyway); no allocation happens per packet or per
//! burst. A later DPDK backend fits the same shape: its queues are the NIC's queues, and its
//! `rx_burst`/`tx_burst` map onto `rte_eth_rx_burst`/`rte_eth_tx_burst`.
//!
//! Backends:
//! - [`af_packet`]: TPACKET_V2 mmap RX and TX rings, `PACKET_FANOUT` to spread
//!   frames over the RX queues, `PACKET_QDISC_BYPASS`, promiscuous.
//! - [`af_xdp`]: AF_XDP sockets (copy mode, native XDP where the driver allows, generic
//!   otherwise), one socket per device queue, our own minimal XDP redirect program.
//! - [`memory`]: connected in-memory pairs, a cyclic generator and a counting sink (tests and
//!   benches; no kernel involved).
//!
//! Counters: every queue owns an `Arc<QueueStats>` (see [`stats`]); [`PortStatsHandle`] lets the
//! slow path read the sum without touching the workers.

pub mod af_packet;
pub mod af_xdp;
pub mod buf;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod stats;
pub mod steer;
mod sys;
mod xdp_prog;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub use buf::{Burst, PacketBuf, RxFlags, FRAME_CAPACITY};
pub use stats::{Counter, PortStats, QueueStats};

pub use crate::wire::MacAddr;

/// The index of a queue within a port (0-based; worker `k` usually owns queue `k`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(pub u16);

/// The receive half of one port queue. Owned by one worker; never blocks in `rx_burst`.
pub trait RxQueue: Send {
    /// Appends up to `burst.free()` received frames to `burst` and returns how many it appended
    /// (0 when nothing is waiting). Never blocks, never allocates.
    fn rx_burst(&mut self, burst: &mut Burst) -> usize;

    /// For an idle worker: waits at most `timeout` for frames to arrive. Returns `Ok(true)` when
    /// frames may be ready, `Ok(false)` on timeout. Also the moment a backend refreshes counters
    /// that cost a system call (kernel drop counts).
    fn wait(&self, timeout: Duration) -> io::Result<bool>;

    /// This queue's counters (shared with the port's [`PortStatsHandle`]).
    fn stats(&self) -> &Arc<QueueStats>;

    /// Which queue of the port this is.
    fn queue_id(&self) -> QueueId;
}

/// The transmit half of one port queue. Owned by one worker; never blocks.
pub trait TxQueue: Send {
    /// Queues every frame of `frames` for transmission and empties the burst. Returns how many
    /// frames were accepted; the rest (ring full, frame too long) are counted as `tx_dropped`.
    /// The backend may hold accepted frames until its ring kick; [`TxQueue::flush`] forces it.
    fn tx_burst(&mut self, frames: &mut Burst) -> usize;

    /// Pushes out frames still held by the backend (one system call at most).
    fn flush(&mut self);

    /// This queue's counters (shared with the port's [`PortStatsHandle`]).
    fn stats(&self) -> &Arc<QueueStats>;

    /// Which queue of the port this is.
    fn queue_id(&self) -> QueueId;
}

/// Which backend a port uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// AF_PACKET sockets with mmap rings ([`af_packet`]).
    AfPacket,
    /// AF_XDP sockets ([`af_xdp`]).
    AfXdp,
    /// An in-memory loopback: frames sent on queue `k` are received on queue `k` of the same
    /// port ([`memory`]; use [`memory::pair`] for two connected ports).
    Memory,
    /// A DPDK poll-mode driver port ([`dpdk`]; needs the `dpdk` feature and
    /// [`dpdk::init_eal`]).
    #[cfg(feature = "dpdk")]
    Dpdk,
}

/// How an AF_PACKET port spreads received frames over its RX queues (`PACKET_FANOUT` mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutMode {
    /// By the kernel's flow hash (`PACKET_FANOUT_HASH`): one flow stays on one queue.
    Hash,
    /// By the CPU that received the frame (`PACKET_FANOUT_CPU`).
    Cpu,
    /// By the device queue the frame came in on (`PACKET_FANOUT_QM`).
    QueueMapping,
    /// Round robin (`PACKET_FANOUT_LB`): even, but splits flows.
    RoundRobin,
    /// By a loaded eBPF socket-filter program returning the queue index (`PACKET_FANOUT_EBPF`).
    /// The descriptor only needs to stay open during [`open`]; the kernel keeps a reference.
    Ebpf {
        /// File descriptor of a `BPF_PROG_TYPE_SOCKET_FILTER` program.
        prog_fd: RawFd,
    },
    /// By one of our classic-BPF steering programs (`PACKET_FANOUT_CBPF`), so that frames reach the worker
    /// that owns their flow or public port ([`steer`]).
    Steer(steer::SteerRule),
}

/// Which XDP attach mode an AF_XDP port uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode where the driver supports it, generic (SKB) mode otherwise.
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (SKB) mode only (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// How to open a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// The backend.
    pub driver: Driver,
    /// Kernel interface name (ignored by [`Driver::Memory`] except for [`PortInfo::name`]).
    pub device: String,
    /// Frames per burst (the capacity of the bursts the caller uses); sizes ring kicks.
    pub burst: usize,
    /// Frames each queue's RX ring and TX ring hold (rounded up to what the backend needs).
    pub ring_frames: usize,
    /// How frames are spread over RX queues (AF_PACKET; ignored elsewhere).
    pub fanout: FanoutMode,
    /// XDP attach mode (AF_XDP; ignored elsewhere).
    pub xdp_mode: XdpMode,
}

impl PortConfig {
    /// A config with the usual defaults: burst 32, 4,096-frame rings, hash fanout, auto XDP mode.
    pub fn new(driver: Driver, device: impl Into<String>) -> PortConfig {
        PortConfig {
            driver,
            device: device.into(),
            burst: 32,
            ring_frames: 4096,
            fanout: FanoutMode::Hash,
            xdp_mode: XdpMode::Auto,
        }
    }
}

/// Facts about the interface behind a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Interface name.
    pub name: String,
    /// Kernel interface index (0 for in-memory ports).
    pub ifindex: u32,
    /// The interface's MAC address (the appliance answers ARP with it).
    pub mac: MacAddr,
    /// The interface MTU (L3 bytes).
    pub mtu: u32,
    /// Human-readable backend details, e.g. "af_xdp native copy" (for logs).
    pub mode: String,
}

/// Read access to all queue counters of one port, for the slow path. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PortStatsHandle {
    queues: Vec<Arc<QueueStats>>,
}

impl PortStatsHandle {
    /// A handle over the given queue counters.
    pub fn new(queues: Vec<Arc<QueueStats>>) -> PortStatsHandle {
        PortStatsHandle { queues }
    }

    /// The sum over all queues.
    pub fn total(&self) -> PortStats {
        let mut sum = PortStats::default();
        for q in &self.queues {
            sum += q.snapshot();
        }
        sum
    }

    /// One snapshot per queue, in queue order.
    pub fn per_queue(&self) -> Vec<PortStats> {
        self.queues.iter().map(|q| q.snapshot()).collect()
    }
}

/// An opened port: its interface facts, one RX and one TX handle per queue, and its counters.
/// Move `rx[k]` and `tx[k]` into worker `k`.
pub struct Port {
    /// Interface facts.
    pub info: PortInfo,
    /// RX handles, one per queue, in queue order.
    pub rx: Vec<Box<dyn RxQueue>>,
    /// TX handles, one per queue, in queue order.
    pub tx: Vec<Box<dyn TxQueue>>,
    /// Counters of all queues.
    pub stats: PortStatsHandle,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("info", &self.info)
            .field("queues", &self.rx.len())
            .finish()
    }
}

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A system call failed; `op` names it and what it was for.
    #[error("{device}: {op} failed: {source}")]
    Io {
        /// The interface.
        device: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// No interface has this name (in the current network namespace).
    #[error("no such interface: {0:?}")]
    NoSuchInterface(String),
    /// The configuration cannot work (e.g. zero queues, more queues than the device has).
    #[error("{device}: invalid port configuration: {reason}")]
    Invalid {
        /// The interface.
        device: String,
        /// What is wrong.
        reason: String,
    },
}

/// Opens `cfg.device` with `queues` queues using `cfg.driver`.
pub fn open(cfg: &PortConfig, queues: usize) -> Result<Port, PortError> {
    if queues == 0 || queues > usize::from(u16::MAX) {
        return Err(PortError::Invalid {
            device: cfg.device.clone(),
            reason: format!("queue count {queues} out of range 1..=65535"),
        });
    }
    match cfg.driver {
        Driver::AfPacket => af_packet::open(cfg, queues),
        Driver::AfXdp => af_xdp::open(cfg, queues),
        Driver::Memory => Ok(memory::loopback(cfg, queues)),
        #[cfg(feature = "dpdk")]
        Driver::Dpdk => dpdk::open(cfg, queues),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_queues_refused() {
        let cfg = PortConfig::new(Driver::Memory, "m0");
        assert!(matches!(open(&cfg, 0), Err(PortError::Invalid { .. })));
    }

    #[test]
    fn memory_loopback_through_open() {
        let cfg = PortConfig::new(Driver::Memory, "m0");
        let mut port = open(&cfg, 2).expect("memory port");
        let mut b = Burst::new(4);
        assert!(b.push_copy(&[1, 2, 3, 4]));
        assert_eq!(port.tx[1].tx_burst(&mut b), 1);
        assert!(b.is_empty());
        assert_eq!(
            port.rx[0].rx_burst(&mut b),
            0,
            "queue 0 must not see queue 1's frame"
        );
        assert_eq!(port.rx[1].rx_burst(&mut b), 1);
        assert_eq!(b.frames()[0].data(), &[1, 2, 3, 4]);
        let total = port.stats.total();
        assert_eq!(total.tx_packets, 1);
        assert_eq!(total.rx_packets, 1);
        assert_eq!(total.rx_bytes, 4);
    }
}
