//! A fast-path worker: one pinned thread, one shard, run to completion (fast path).
//!
//! The poll loop reads the clock once per round, receives a burst from each side, runs it through the
//! shard's [`NatCore`], and moves every frame where its verdict says: the transmit burst of a side, the
//! slow path's punt ring, or another worker's handoff ring (counted). It never blocks and never takes a
//! lock; when a whole round finds nothing to do it parks briefly in the inside queue's `wait` so an idle
//! appliance does not burn its cores.

use crate::clock::Clock;
use crate::rings::{Command, OwnedFrame, Snapshot, WorkerRings};
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::{NatCore, Side, Verdict};
use natgw_dataplane::port::{Burst, RxQueue, TxQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One side's queue pair.
pub struct SideQueues {
    /// Receive handle.
    pub rx: Box<dyn RxQueue>,
    /// Transmit handle.
    pub tx: Box<dyn TxQueue>,
}

/// Everything a worker thread owns.
pub struct Worker {
    /// The shard's NAT core.
    pub core: NatCore,
    /// Inside queues.
    pub inside: SideQueues,
    /// Outside queues.
    pub outside: SideQueues,
    /// This worker's rings.
    pub rings: Arc<WorkerRings>,
    /// Every worker's rings, by shard (for handoffs).
    pub peers: Vec<Arc<WorkerRings>>,
    /// Burst size.
    pub burst: usize,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// The shared clock.
    pub clock: Clock,
    /// Core to pin to.
    pub pin: Option<core_affinity::CoreId>,
}

impl Worker {
    /// Run the poll loop until `stop` is set; returns the core for final accounting.
    pub fn run(mut self) -> NatCore {
        if let Some(c) = self.pin {
            if !core_affinity::set_for_current(c) {
                log::warn!(
                    "worker {}: could not pin to core {}",
                    self.core.shard().0,
                    c.id
                );
            }
        }
        let n = self.burst;
        let mut rx = Burst::new(n);
        let mut tx_in = Burst::new(n * 2);
        let mut tx_out = Burst::new(n * 2);
        let mut verdicts = Vec::with_capacity(n);
        let mut handoffs_in = 0u64;
        let mut idle_rounds = 0u32;
        let mut last_publish = self.clock.now();
        log::info!("worker {} started", self.core.shard().0);
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            self.commands();
            let mut work = 0;
            for side in [Side::Inside, Side::Outside] {
                let q = match side {
                    Side::Inside => &mut self.inside.rx,
                    Side::Outside => &mut self.outside.rx,
                };
                rx.clear();
                if q.rx_burst(&mut rx) == 0 {
                    continue;
                }
                work += rx.len();
                self.core
                    .process_burst(now, side, rx.frames_mut(), &mut verdicts);
                self.dispatch(side, &mut rx, &verdicts, &mut tx_in, &mut tx_out);
            }
            // Frames handed over by other workers, then frames the slow path wants sent.
            let mut budget = n;
            while budget > 0 {
                let Some(mut f) = self.rings.handoff.pop() else {
                    break;
                };
                budget -= 1;
                handoffs_in += 1;
                work += 1;
                let len = usize::from(f.len);
                let v = self.core.process(now, f.side, &mut f.data, len);
                if let Verdict::Forward { len, .. } = v {
                    f.len = len;
                }
                self.dispatch_one(f.bytes(), f.side, v, &mut tx_in, &mut tx_out);
            }
            while let Some(f) = self.rings.transmit.pop() {
                work += 1;
                let dst = if f.side == Side::Inside {
                    &mut tx_in
                } else {
                    &mut tx_out
                };
                if !dst.push_copy(f.bytes()) {
                    self.core.count_drop(DropReason::TxFull);
                }
            }
            if !tx_in.is_empty() {
                self.inside.tx.tx_burst(&mut tx_in);
                tx_in.clear();
            }
            if !tx_out.is_empty() {
                self.outside.tx.tx_burst(&mut tx_out);
                tx_out.clear();
            }
            self.inside.tx.flush();
            self.outside.tx.flush();
            self.core.handle_timeout(now);
            while let Some(ev) = self.core.allocator().poll_event() {
                let _ = self.rings.events.push(ev);
            }
            if now.saturating_duration_since(last_publish) >= Duration::from_millis(100) {
                last_publish = now;
                self.publish(handoffs_in);
            }
            if work == 0 {
                idle_rounds += 1;
                if idle_rounds > 64 {
                    let _ = self.inside.rx.wait(Duration::from_millis(1));
                }
            } else {
                idle_rounds = 0;
            }
        }
        self.publish(handoffs_in);
        log::info!("worker {} stopped", self.core.shard().0);
        self.core
    }

    fn commands(&mut self) {
        while let Some(cmd) = self.rings.commands.pop() {
            match cmd {
                Command::GatewayMac(m) => self.core.set_gateway_mac(m),
                Command::Neighbor(ip, mac) => self.core.learn_neighbor(ip, mac),
                Command::Alloc(c) => self.core.allocator().handle_command(c),
                Command::Reload(p, None) => self.core.set_params(*p),
                Command::Reload(p, Some(ports)) => {
                    let (alloc, owners) = *ports;
                    self.core.reload(*p, alloc, owners);
                }
            }
        }
    }

    fn publish(&mut self, handoffs_in: u64) {
        let alloc = self.core.allocator_ref().stats();
        let short = alloc.pools.iter().any(|p| {
            p.owned_ports > 0 && u64::from(p.live_leases) * 10 >= u64::from(p.owned_ports) * 8
        });
        let pressure = if short {
            self.core.allocator_ref().pressure(None, None, 5)
        } else {
            Vec::new()
        };
        let snap = Snapshot {
            counters: self.core.counters().clone(),
            sessions: self.core.session_count(),
            memory_bytes: self.core.memory_bytes(),
            alloc,
            handoffs_in,
            pressure,
        };
        // Latest wins: drop the older snapshot if the slow path has not read it.
        if let Err(s) = self.rings.snapshots.push(snap) {
            let _ = self.rings.snapshots.pop();
            let _ = self.rings.snapshots.push(s);
        }
    }

    /// Move each received frame where its verdict says.
    fn dispatch(
        &mut self,
        rx_side: Side,
        rx: &mut Burst,
        verdicts: &[Verdict],
        tx_in: &mut Burst,
        tx_out: &mut Burst,
    ) {
        for (frame, &v) in rx.frames_mut().iter_mut().zip(verdicts) {
            match v {
                Verdict::Forward { side, .. } => {
                    let dst = if side == Side::Inside {
                        &mut *tx_in
                    } else {
                        &mut *tx_out
                    };
                    match dst.spare_mut() {
                        Some(spare) => {
                            std::mem::swap(spare, frame);
                            dst.commit();
                        }
                        None => self.core.count_drop(DropReason::TxFull),
                    }
                }
                other => {
                    let side = match other {
                        Verdict::Handoff { side, .. } => side,
                        _ => rx_side,
                    };
                    self.dispatch_one(frame.data(), side, other, tx_in, tx_out);
                }
            }
        }
    }

    /// Act on one verdict for a frame that is not in a burst slot (or is not forwarded).
    fn dispatch_one(
        &mut self,
        bytes: &[u8],
        side: Side,
        v: Verdict,
        tx_in: &mut Burst,
        tx_out: &mut Burst,
    ) {
        match v {
            Verdict::Forward { side, .. } => {
                let dst = if side == Side::Inside { tx_in } else { tx_out };
                if !dst.push_copy(bytes) {
                    self.core.count_drop(DropReason::TxFull);
                }
            }
            Verdict::Drop(_) => {}
            Verdict::Punt(p) => {
                let send_side = match p {
                    natgw_dataplane::nat::Punt::Resolve { side, .. } => side,
                    _ => side,
                };
                if self
                    .rings
                    .punt
                    .push(OwnedFrame::copy_of(send_side, Some(p), bytes))
                    .is_err()
                {
                    self.core.count_drop(DropReason::SlowPathRingFull);
                }
            }
            Verdict::Handoff { shard, side } => {
                let ok = self
                    .peers
                    .get(usize::from(shard.0))
                    .map(|peer| {
                        peer.handoff
                            .push(OwnedFrame::copy_of(side, None, bytes))
                            .is_ok()
                    })
                    .unwrap_or(false);
                if !ok {
                    self.core.count_drop(DropReason::HandoffRingFull);
                }
            }
        }
    }
}
