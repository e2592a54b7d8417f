//! Per-queue port counters, written by the worker that owns the queue and read by the slow path.
//!
//! Layer: packet I/O, fast path (writes) and slow path (reads). Each queue handle owns an
//! `Arc<QueueStats>`; the owning worker is the only writer, so an update is a relaxed load and
//! store (no locked instruction), done once per burst, not per packet. Readers take a
//! [`PortStats`] snapshot at any time without locking; a snapshot may be one burst behind.

use std::ops::AddAssign;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one queue (one writer: the worker owning the queue handle).
#[derive(Debug, Default)]
pub struct QueueStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    rx_csum_not_ready: AtomicU64,
    rx_truncated: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
}

/// Which counter of a [`QueueStats`] to add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Frames delivered to the caller by `rx_burst`.
    RxPackets,
    /// Bytes of the frames counted in `RxPackets`.
    RxBytes,
    /// Frames the kernel or a ring dropped before we could receive them (ring full).
    RxDropped,
    /// Frames received with an unfinished L4 checksum (`TP_STATUS_CSUMNOTREADY`); delivered.
    RxCsumNotReady,
    /// Frames longer than a buffer (GSO super-frames, snaplen cuts); dropped, never delivered.
    RxTruncated,
    /// Frames handed to the device for transmission.
    TxPackets,
    /// Bytes of the frames counted in `TxPackets`.
    TxBytes,
    /// Frames given to `tx_burst` that could not be sent (TX ring full, frame too long).
    TxDropped,
}

impl QueueStats {
    /// Adds `n` to `counter`. Only the owning worker calls this (single writer), which makes the
    /// relaxed load-then-store exact.
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        let cell = self.cell(counter);
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    fn cell(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::RxPackets => &self.rx_packets,
            Counter::RxBytes => &self.rx_bytes,
            Counter::RxDropped => &self.rx_dropped,
            Counter::RxCsumNotReady => &self.rx_csum_not_ready,
            Counter::RxTruncated => &self.rx_truncated,
            Counter::TxPackets => &self.tx_packets,
            Counter::TxBytes => &self.tx_bytes,
            Counter::TxDropped => &self.tx_dropped,
        }
    }

    /// A consistent-enough copy of the counters (each read individually, relaxed).
    pub fn snapshot(&self) -> PortStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortStats {
            rx_packets: r(&self.rx_packets),
            rx_bytes: r(&self.rx_bytes),
            rx_dropped: r(&self.rx_dropped),
            rx_csum_not_ready: r(&self.rx_csum_not_ready),
            rx_truncated: r(&self.rx_truncated),
            tx_packets: r(&self.tx_packets),
            tx_bytes: r(&self.tx_bytes),
            tx_dropped: r(&self.tx_dropped),
        }
    }
}

/// A snapshot of port counters (one queue, or a sum over queues with `+=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received and delivered.
    pub rx_packets: u64,
    /// Bytes received and delivered.
    pub rx_bytes: u64,
    /// Frames dropped before delivery by the kernel or a ring (receiver too slow).
    pub rx_dropped: u64,
    /// Frames delivered with an unfinished L4 checksum (sender relied on offload).
    pub rx_csum_not_ready: u64,
    /// Frames too long for a buffer, dropped.
    pub rx_truncated: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames that could not be transmitted (TX ring full, frame too long).
    pub tx_dropped: u64,
}

impl AddAssign for PortStats {
    fn add_assign(&mut self, o: PortStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_dropped += o.rx_dropped;
        self.rx_csum_not_ready += o.rx_csum_not_ready;
        self.rx_truncated += o.rx_truncated;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_dropped += o.tx_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_snapshot() {
        let s = QueueStats::default();
        s.add(Counter::RxPackets, 3);
        s.add(Counter::RxPackets, 2);
        s.add(Counter::TxDropped, 7);
        let snap = s.snapshot();
        assert_eq!(snap.rx_packets, 5);
        assert_eq!(snap.tx_dropped, 7);
        assert_eq!(snap.rx_bytes, 0);
        let mut sum = snap;
        sum += snap;
        assert_eq!(sum.rx_packets, 10);
        assert_eq!(sum.tx_dropped, 14);
    }
}
