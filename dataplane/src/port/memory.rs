//! In-memory ports: connected pairs, a loopback, a cyclic generator and a counting sink.
//!
//! Layer: packet I/O for tests and benches (no kernel involved); fast path. A link is one
//! direction of one queue: two bounded lock-free rings (`crossbeam` `ArrayQueue`), `full` holding
//! frames in flight and `free` holding spare buffers, prefilled at start-up. Transmitting swaps a
//! burst's frame buffer with a spare one from `free` and pushes the frame onto `full`; receiving
//! does the reverse. Frames are never copied and nothing is allocated after construction; buffers
//! are conserved (each is in a burst, in `full` or in `free`). A full link is a counted TX drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

use super::{
    Burst, Counter, MacAddr, PacketBuf, Port, PortConfig, PortInfo, PortStatsHandle, QueueId,
    QueueStats, RxQueue, TxQueue, FRAME_CAPACITY,
};

/// One direction of one queue.
struct Link {
    full: ArrayQueue<PacketBuf>,
    free: ArrayQueue<PacketBuf>,
}

impl Link {
    fn new(frames: usize) -> Arc<Link> {
        let frames = frames.max(1);
        let free = ArrayQueue::new(frames);
        for _ in 0..frames {
            // Cannot fail: exactly `frames` pushes into a ring of that capacity.
            let _ = free.push(PacketBuf::new());
        }
        Arc::new(Link {
            full: ArrayQueue::new(frames),
            free,
        })
    }
}

/// The transmit end of an in-memory link.
pub struct MemTx {
    link: Arc<Link>,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

/// The receive end of an in-memory link.
pub struct MemRx {
    link: Arc<Link>,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl TxQueue for MemTx {
    fn tx_burst(&mut self, frames: &mut Burst) -> usize {
        let n = frames.len();
        let mut sent = 0;
        let mut bytes = 0u64;
        for i in 0..n {
            let Some(mut spare) = self.link.free.pop() else {
                break;
            };
            frames.swap_slot(i, &mut spare);
            let len = spare.len() as u64;
            match self.link.full.push(spare) {
                Ok(()) => {
                    sent += 1;
                    bytes += len;
                }
                Err(back) => {
                    // Cannot happen (as many buffers as ring slots); keep the buffer anyway.
                    let _ = self.link.free.push(back);
                    break;
                }
            }
        }
        frames.clear();
        self.stats.add(Counter::TxPackets, sent as u64);
        self.stats.add(Counter::TxBytes, bytes);
        self.stats.add(Counter::TxDropped, (n - sent) as u64);
        sent
    }

    fn flush(&mut self) {}

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

impl RxQueue for MemRx {
    fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let mut got = 0;
        let mut bytes = 0u64;
        while !burst.is_full() {
            let Some(mut frame) = self.link.full.pop() else {
                break;
            };
            bytes += frame.len() as u64;
            let slot = burst.len();
            burst.swap_slot(slot, &mut frame);
            burst.commit();
            // `frame` now holds the burst's former spare buffer: give it back to the sender.
            let _ = self.link.free.push(frame);
            got += 1;
        }
        self.stats.add(Counter::RxPackets, got as u64);
        self.stats.add(Counter::RxBytes, bytes);
        got
    }

    fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.link.full.is_empty() {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep((deadline - now).min(Duration::from_micros(100)));
        }
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

fn mem_info(name: &str, index: u8) -> PortInfo {
    PortInfo {
        name: name.to_string(),
        ifindex: 0,
        // Locally administered unicast address, distinct per side.
        mac: MacAddr([0x02, 0, 0, 0, 0, index]),
        mtu: 1500,
        mode: "memory".to_string(),
    }
}

/// Two connected ports `(a, b)` with `queues` queues each: a frame sent on `a.tx[k]` is received
/// on `b.rx[k]` and the other way round. Each direction of each queue holds `ring_frames` frames.
pub fn pair(queues: usize, ring_frames: usize) -> (Port, Port) {
    let queues = queues.max(1);
    let mut a = Port {
        info: mem_info("mem-a", 1),
        rx: Vec::new(),
        tx: Vec::new(),
        stats: PortStatsHandle::default(),
    };
    let mut b = Port {
        info: mem_info("mem-b", 2),
        rx: Vec::new(),
        tx: Vec::new(),
        stats: PortStatsHandle::default(),
    };
    let mut a_stats = Vec::new();
    let mut b_stats = Vec::new();
    for k in 0..queues {
        let queue = QueueId(k as u16);
        let sa = Arc::new(QueueStats::default());
        let sb = Arc::new(QueueStats::default());
        let a_to_b = Link::new(ring_frames);
        let b_to_a = Link::new(ring_frames);
        a.tx.push(Box::new(MemTx {
            link: a_to_b.clone(),
            stats: sa.clone(),
            queue,
        }));
        b.rx.push(Box::new(MemRx {
            link: a_to_b,
            stats: sb.clone(),
            queue,
        }));
        b.tx.push(Box::new(MemTx {
            link: b_to_a.clone(),
            stats: sb.clone(),
            queue,
        }));
        a.rx.push(Box::new(MemRx {
            link: b_to_a,
            stats: sa.clone(),
            queue,
        }));
        a_stats.push(sa);
        b_stats.push(sb);
    }
    a.stats = PortStatsHandle::new(a_stats);
    b.stats = PortStatsHandle::new(b_stats);
    (a, b)
}

/// A port whose queue `k` receives what queue `k` sent (smoltcp's `Loopback`).
pub fn loopback(cfg: &PortConfig, queues: usize) -> Port {
    let mut port = Port {
        info: mem_info(&cfg.device, 3),
        rx: Vec::new(),
        tx: Vec::new(),
        stats: PortStatsHandle::default(),
    };
    let mut all = Vec::new();
    for k in 0..queues.max(1) {
        let queue = QueueId(k as u16);
        let s = Arc::new(QueueStats::default());
        let link = Link::new(cfg.ring_frames);
        port.tx.push(Box::new(MemTx {
            link: link.clone(),
            stats: s.clone(),
            queue,
        }));
        port.rx.push(Box::new(MemRx {
            link,
            stats: s.clone(),
            queue,
        }));
        all.push(s);
    }
    port.stats = PortStatsHandle::new(all);
    port
}

/// An RX source that yields prebuilt frames cyclically, like a NIC under constant load (benches).
///
/// Each frame is copied into the burst's buffer, as a NIC's DMA would write it.
pub struct Generator {
    frames: Vec<PacketBuf>,
    next: usize,
    remaining: Option<u64>,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl Generator {
    /// A generator cycling through `frames` (frames longer than [`FRAME_CAPACITY`] are skipped),
    /// yielding `limit` frames in total, or forever when `None`.
    pub fn new(frames: &[Vec<u8>], limit: Option<u64>) -> Generator {
        let frames: Vec<PacketBuf> = frames
            .iter()
            .filter(|f| f.len() <= FRAME_CAPACITY)
            .map(|f| {
                let mut p = PacketBuf::new();
                p.copy_from(f);
                p
            })
            .collect();
        Generator {
            frames,
            next: 0,
            remaining: limit,
            stats: Arc::new(QueueStats::default()),
            queue: QueueId(0),
        }
    }

    /// Frames still to be generated (`None`: unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }
}

impl RxQueue for Generator {
    fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        if self.frames.is_empty() {
            return 0;
        }
        let mut want = burst.free();
        if let Some(rem) = self.remaining {
            want = want.min(usize::try_from(rem).unwrap_or(usize::MAX));
        }
        let mut bytes = 0u64;
        for _ in 0..want {
            let src = &self.frames[self.next];
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
            }
            if let Some(buf) = burst.spare_mut() {
                buf.copy_from(src.data());
                bytes += src.len() as u64;
                burst.commit();
            }
        }
        if let Some(rem) = self.remaining.as_mut() {
            *rem -= want as u64;
        }
        self.stats.add(Counter::RxPackets, want as u64);
        self.stats.add(Counter::RxBytes, bytes);
        want
    }

    fn wait(&self, _timeout: Duration) -> std::io::Result<bool> {
        Ok(!self.frames.is_empty() && self.remaining != Some(0))
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

/// A TX queue that counts frames and discards them (benches).
#[derive(Default)]
pub struct Sink {
    stats: Arc<QueueStats>,
}

impl Sink {
    /// A new sink with zeroed counters.
    pub fn new() -> Sink {
        Sink::default()
    }
}

impl TxQueue for Sink {
    fn tx_burst(&mut self, frames: &mut Burst) -> usize {
        let n = frames.len();
        let bytes: u64 = frames.frames().iter().map(|f| f.len() as u64).sum();
        frames.clear();
        self.stats.add(Counter::TxPackets, n as u64);
        self.stats.add(Counter::TxBytes, bytes);
        n
    }

    fn flush(&mut self) {}

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        QueueId(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u32) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..4].copy_from_slice(&i.to_be_bytes());
        f
    }

    #[test]
    fn pair_round_trip_both_directions() {
        let (mut a, mut b) = pair(1, 64);
        let mut burst = Burst::new(32);
        for i in 0..20 {
            assert!(burst.push_copy(&frame(i)));
        }
        assert_eq!(a.tx[0].tx_burst(&mut burst), 20);
        assert!(burst.is_empty());
        assert_eq!(b.rx[0].rx_burst(&mut burst), 20);
        for (i, f) in burst.frames().iter().enumerate() {
            assert_eq!(
                f.data(),
                frame(i as u32).as_slice(),
                "order and content kept"
            );
        }
        // Echo back b -> a.
        assert_eq!(b.tx[0].tx_burst(&mut burst), 20);
        assert_eq!(a.rx[0].rx_burst(&mut burst), 20);
        assert_eq!(burst.frames()[19].data(), frame(19).as_slice());
        assert_eq!(a.stats.total().tx_packets, 20);
        assert_eq!(a.stats.total().rx_packets, 20);
        assert_eq!(b.stats.total().rx_bytes, 20 * 60);
    }

    #[test]
    fn full_link_counts_tx_drops_and_keeps_buffers() {
        let (mut a, mut b) = pair(1, 8);
        let mut burst = Burst::new(16);
        for i in 0..16 {
            assert!(burst.push_copy(&frame(i)));
        }
        assert_eq!(a.tx[0].tx_burst(&mut burst), 8);
        assert_eq!(a.stats.total().tx_dropped, 8);
        assert_eq!(burst.capacity(), 16);
        let mut rx = Burst::new(4);
        assert_eq!(b.rx[0].rx_burst(&mut rx), 4, "bounded by burst capacity");
        rx.clear();
        assert_eq!(b.rx[0].rx_burst(&mut rx), 4);
        rx.clear();
        assert_eq!(b.rx[0].rx_burst(&mut rx), 0);
        // The link's buffers all came back: a full ring's worth can be sent again.
        for i in 0..8 {
            assert!(burst.push_copy(&frame(i)));
        }
        assert_eq!(a.tx[0].tx_burst(&mut burst), 8);
    }

    #[test]
    fn wait_reports_ready_and_timeout() {
        let (mut a, b) = pair(1, 8);
        assert!(!b.rx[0].wait(Duration::from_millis(1)).unwrap());
        let mut burst = Burst::new(1);
        assert!(burst.push_copy(&frame(1)));
        a.tx[0].tx_burst(&mut burst);
        assert!(b.rx[0].wait(Duration::from_millis(1)).unwrap());
    }

    #[test]
    fn generator_cycles_and_stops_at_limit() {
        let mut g = Generator::new(&[frame(1), frame(2), frame(3)], Some(5));
        let mut burst = Burst::new(4);
        assert_eq!(g.rx_burst(&mut burst), 4);
        let firsts: Vec<u8> = burst.frames().iter().map(|f| f.data()[3]).collect();
        assert_eq!(firsts, vec![1, 2, 3, 1]);
        burst.clear();
        assert_eq!(g.rx_burst(&mut burst), 1);
        assert_eq!(burst.frames()[0].data()[3], 2);
        burst.clear();
        assert_eq!(g.rx_burst(&mut burst), 0);
        assert_eq!(g.remaining(), Some(0));
        let mut sink = Sink::new();
        let mut b2 = Burst::new(2);
        assert!(b2.push_copy(&frame(9)));
        assert_eq!(sink.tx_burst(&mut b2), 1);
        assert!(b2.is_empty());
        assert_eq!(sink.stats().snapshot().tx_bytes, 60);
    }
}
