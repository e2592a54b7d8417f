//! The slow path: ARP and next-hop resolution, punted frames, port rebalancing, statistics, exhaustion
//! warnings (slow path, one thread).
//!
//! It owns the global port [`Inventory`] and talks to the workers only through their rings: it answers
//! ARP for the inside gateway address, the outside address and every public IP; resolves next hops
//! (the outside gateway at start-up and every 30 s, inside hosts on demand) with retries, holding frames
//! that wait for a resolution in a bounded queue and dropping them, counted, when it fails; forwards
//! allocator events and rebalancing commands; gathers the workers' counter snapshots into the metrics
//! state; and logs when a public IP nears or reaches SNAT exhaustion, naming the top destinations.
//! Frames it sends go out through worker 0's transmit ring.

use crate::metrics::{MetricsState, SlowCounters};
use crate::rings::{Command, OwnedFrame, WorkerRings};
use natgw_allocator::{Inventory, ShardAllocator, ShardId, Timestamp};
use natgw_dataplane::nat::counters::{Counters, DropReason};
use natgw_dataplane::nat::{CoreParams, Punt, Side};
use natgw_dataplane::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, MacAddr, ARP_LEN,
    ETHERNET_HEADER_LEN,
};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Frames held per unresolved next hop.
const PENDING_PER_HOP: usize = 64;
/// Frames held in all.
const PENDING_TOTAL: usize = 4096;
/// ARP requests sent before giving up on a next hop.
const ARP_TRIES: u32 = 3;
/// Time between ARP retries.
const ARP_RETRY: Duration = Duration::from_secs(1);
/// How long a resolved inside neighbour stays valid before it is asked again.
const NEIGHBOR_TTL: Duration = Duration::from_secs(300);
/// How often the outside gateway is re-resolved.
const GATEWAY_REFRESH: Duration = Duration::from_secs(30);

struct Pending {
    side: Side,
    frames: VecDeque<OwnedFrame>,
    tries: u32,
    next_try: Timestamp,
}

struct Neighbor {
    mac: MacAddr,
    seen: Timestamp,
}

/// The slow path's state.
pub struct SlowPath {
    params: CoreParams,
    inventory: Inventory,
    workers: Vec<Arc<WorkerRings>>,
    neighbors: HashMap<(Side, Ipv4Addr), Neighbor>,
    pending: HashMap<(Side, Ipv4Addr), Pending>,
    pending_total: usize,
    gateway_next: Timestamp,
    counters: SlowCounters,
    metrics: Arc<Mutex<MetricsState>>,
    latest: Vec<Option<crate::rings::Snapshot>>,
    warned: HashMap<Ipv4Addr, u8>,
    last_failures: u64,
    retired_public: Vec<Ipv4Addr>,
}

impl SlowPath {
    /// A slow path for these workers.
    pub fn new(
        params: CoreParams,
        inventory: Inventory,
        workers: Vec<Arc<WorkerRings>>,
        metrics: Arc<Mutex<MetricsState>>,
    ) -> SlowPath {
        let n = workers.len();
        SlowPath {
            params,
            inventory,
            workers,
            neighbors: HashMap::new(),
            pending: HashMap::new(),
            pending_total: 0,
            gateway_next: Timestamp::from_nanos(0),
            counters: SlowCounters::default(),
            metrics,
            latest: (0..n).map(|_| None).collect(),
            warned: HashMap::new(),
            last_failures: 0,
            retired_public: Vec::new(),
        }
    }

    /// Apply reloaded parameters: workers get them for new flows; ARP answers follow them. With `ports`,
    /// the SNAT addresses or port rules changed: each worker gets its slice of the new inventory, and the
    /// old addresses stay answered for the flows that still use them.
    pub fn reload(&mut self, params: CoreParams, ports: Option<(Inventory, Vec<ShardAllocator>)>) {
        let mut slices: Vec<Option<ShardAllocator>> = Vec::new();
        if let Some((inventory, shards)) = ports {
            let old = std::mem::replace(&mut self.inventory, inventory);
            for ip in old.public_ips() {
                if !self.retired_public.contains(ip) {
                    self.retired_public.push(*ip);
                }
            }
            slices = shards.into_iter().map(Some).collect();
        }
        let owners = self.inventory.owners();
        for (i, w) in self.workers.iter().enumerate() {
            let slice = slices.get_mut(i).and_then(Option::take);
            let cmd = Command::Reload(
                Box::new(params.clone()),
                slice.map(|a| Box::new((a, owners.clone()))),
            );
            if w.commands.push(cmd).is_err() {
                log::error!(
                    "reload: worker {i}'s command ring is full; its parameters were not updated"
                );
            }
        }
        self.params = params;
        self.counters.reloads += 1;
    }

    /// Count a failed reload.
    pub fn reload_failed(&mut self) {
        self.counters.reload_failures += 1;
    }

    /// One round of slow-path work; returns whether anything was done.
    pub fn poll(&mut self, now: Timestamp) -> bool {
        let mut work = false;
        for i in 0..self.workers.len() {
            while let Some(f) = self.workers[i].punt.pop() {
                work = true;
                self.punted(now, f);
            }
            while let Some(ev) = self.workers[i].events.pop() {
                work = true;
                self.inventory.handle_event(ShardId(i as u16), ev);
            }
            if let Some(s) = self.workers[i].snapshots.pop() {
                self.latest[i] = Some(s);
                work = true;
            }
        }
        while let Some((shard, cmd)) = self.inventory.poll_command() {
            if let Some(w) = self.workers.get(usize::from(shard.0)) {
                if w.commands.push(Command::Alloc(cmd)).is_err() {
                    log::warn!("rebalance: worker {} command ring full", shard.0);
                }
            }
        }
        if now >= self.gateway_next {
            self.gateway_next = now.saturating_add(GATEWAY_REFRESH);
            let gw = self.params.outside_gateway;
            self.send_arp_request(Side::Outside, gw);
        }
        self.retry_pending(now);
        work
    }

    /// Publish the aggregated figures for the metrics endpoint and log exhaustion warnings.
    pub fn publish(&mut self) {
        let mut total = Counters::default();
        let mut sessions = 0;
        let mut memory = 0;
        let mut handoffs_in = 0;
        let mut per_ip: HashMap<Ipv4Addr, (u64, u64)> = HashMap::new();
        let mut failures = 0;
        for s in self.latest.iter().flatten() {
            total.accumulate(&s.counters);
            sessions += s.sessions;
            memory += s.memory_bytes;
            handoffs_in += s.handoffs_in;
            failures += s.alloc.failures.iter().sum::<u64>();
            for p in &s.alloc.pools {
                let e = per_ip.entry(p.public_ip).or_default();
                e.0 += u64::from(p.live_leases);
                e.1 += u64::from(p.owned_ports);
            }
        }
        total.drops[DropReason::NeighborUnresolved as usize] += self.counters.unresolved_drops;
        self.exhaustion_log(&per_ip, failures);
        let mut m = match self.metrics.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.counters = total;
        m.sessions = sessions;
        m.memory_bytes = memory;
        m.handoffs_in = handoffs_in;
        m.slow = self.counters.clone();
        m.ports_in_use = per_ip.iter().map(|(ip, &(used, _))| (*ip, used)).collect();
        m.ports_in_use.sort();
        m.ports_total = per_ip.iter().map(|(ip, &(_, t))| (*ip, t)).collect();
        m.ports_total.sort();
        m.workers_reporting = self.latest.iter().filter(|s| s.is_some()).count();
        m.workers = self.latest.len();
        m.gateway_resolved = self
            .neighbors
            .contains_key(&(Side::Outside, self.params.outside_gateway));
    }

    fn exhaustion_log(&mut self, per_ip: &HashMap<Ipv4Addr, (u64, u64)>, failures: u64) {
        for (ip, &(used, total)) in per_ip {
            // Ports are counted per protocol inventory; compare against one protocol's share.
            let per_proto = total / 3;
            if per_proto == 0 {
                continue;
            }
            let level = if used >= per_proto {
                2
            } else if used * 10 >= per_proto * 8 {
                1
            } else {
                0
            };
            let before = self.warned.get(ip).copied().unwrap_or(0);
            if level > before {
                let top = self.top_destinations(*ip);
                if level == 2 {
                    log::warn!(
                        "SNAT exhaustion: public IP {ip} has no free port ({used} leases); top destinations: {top}"
                    );
                } else {
                    log::warn!(
                        "SNAT pressure: public IP {ip} at {used} of {per_proto} ports; top destinations: {top}"
                    );
                }
            }
            self.warned.insert(*ip, level);
        }
        if failures > self.last_failures {
            log::warn!(
                "SNAT connection failures: {} new ({} in all)",
                failures - self.last_failures,
                failures
            );
            self.last_failures = failures;
        }
    }

    fn top_destinations(&self, ip: Ipv4Addr) -> String {
        let mut seen: Vec<String> = self
            .latest
            .iter()
            .flatten()
            .flat_map(|s| s.pressure.iter())
            .filter(|d| d.public_ip == ip)
            .map(|d| {
                format!(
                    "{}:{}/{} ({} ports)",
                    d.dest.addr, d.dest.port, d.proto, d.ports
                )
            })
            .collect();
        seen.truncate(5);
        if seen.is_empty() {
            "none reported".to_string()
        } else {
            seen.join(", ")
        }
    }

    fn punted(&mut self, now: Timestamp, f: OwnedFrame) {
        match f.punt {
            Some(Punt::Arp) => self.arp(now, f.side, f.bytes()),
            Some(Punt::Local) => self.local(f),
            Some(Punt::Resolve { side, next_hop }) => self.resolve(now, side, next_hop, f),
            None => {}
        }
    }

    /// The addresses we answer ARP for on a side: our own, and outside every SNAT address (also those a
    /// reload replaced, while flows may still use them) and every static public address.
    fn our_addresses(&self, side: Side) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let none: &[Ipv4Addr] = &[];
        let (own, publics, retired, statics): (_, _, _, &[(Ipv4Addr, Ipv4Addr)]) = match side {
            Side::Inside => (self.params.inside_ip, none, none, &[]),
            Side::Outside => (
                self.params.outside_ip,
                &self.params.public_ips[..],
                &self.retired_public[..],
                &self.params.statics[..],
            ),
        };
        std::iter::once(own)
            .chain(publics.iter().copied())
            .chain(retired.iter().copied())
            .chain(statics.iter().map(|s| s.1))
    }

    fn mac_of(&self, side: Side) -> MacAddr {
        match side {
            Side::Inside => self.params.inside_mac,
            Side::Outside => self.params.outside_mac,
        }
    }

    fn ip_of(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::Inside => self.params.inside_ip,
            Side::Outside => self.params.outside_ip,
        }
    }

    fn arp(&mut self, now: Timestamp, side: Side, frame: &[u8]) {
        let Some(payload) = frame.get(ETHERNET_HEADER_LEN..) else {
            return;
        };
        let Ok(pkt) = ArpPacket::new_checked(payload) else {
            self.counters.arp_malformed += 1;
            return;
        };
        let Ok(repr) = ArpRepr::parse(&pkt) else {
            self.counters.arp_malformed += 1;
            return;
        };
        self.counters.arp_received += 1;
        // Learn the sender (gleaning), if it is on our side's subnet or a host we wait for.
        if !repr.sender_ip.is_unspecified() && !repr.sender_mac.is_multicast() {
            self.learn(now, side, repr.sender_ip, repr.sender_mac);
        }
        if repr.op == ArpOperation::REQUEST && self.our_addresses(side).any(|a| a == repr.target_ip)
        {
            let mac = self.mac_of(side);
            let reply = ArpRepr {
                op: ArpOperation::REPLY,
                sender_mac: mac,
                sender_ip: repr.target_ip,
                target_mac: repr.sender_mac,
                target_ip: repr.sender_ip,
            };
            self.send_arp(side, repr.sender_mac, &reply);
            self.counters.arp_replies += 1;
        }
    }

    fn learn(&mut self, now: Timestamp, side: Side, ip: Ipv4Addr, mac: MacAddr) {
        let known = self.neighbors.get(&(side, ip)).map(|n| n.mac);
        let interesting = match side {
            Side::Outside => ip == self.params.outside_gateway,
            Side::Inside => self.params.policy.is_private(ip),
        } || self.pending.contains_key(&(side, ip));
        if !interesting {
            return;
        }
        self.neighbors
            .insert((side, ip), Neighbor { mac, seen: now });
        if known != Some(mac) {
            log::info!("neighbor {ip} ({side:?}) is at {mac}");
            let cmd = |ip, mac| match side {
                Side::Outside => Command::GatewayMac(Some(mac)),
                Side::Inside => Command::Neighbor(ip, mac),
            };
            for w in &self.workers {
                let _ = w.commands.push(cmd(ip, mac));
            }
        }
        if let Some(p) = self.pending.remove(&(side, ip)) {
            self.pending_total -= p.frames.len();
            for mut f in p.frames {
                if let Ok(mut eth) = EthernetFrame::new_checked(f.bytes_mut()) {
                    eth.set_dst_addr(mac);
                }
                f.side = side;
                self.transmit(f);
            }
        }
    }

    fn resolve(&mut self, now: Timestamp, side: Side, next_hop: Ipv4Addr, mut f: OwnedFrame) {
        if let Some(n) = self.neighbors.get(&(side, next_hop)) {
            if now.saturating_duration_since(n.seen) < NEIGHBOR_TTL {
                let mac = n.mac;
                if let Ok(mut eth) = EthernetFrame::new_checked(f.bytes_mut()) {
                    eth.set_dst_addr(mac);
                }
                f.side = side;
                self.transmit(f);
                // The worker did not know yet: tell them all.
                for w in &self.workers {
                    let _ = w.commands.push(match side {
                        Side::Outside => Command::GatewayMac(Some(mac)),
                        Side::Inside => Command::Neighbor(next_hop, mac),
                    });
                }
                return;
            }
        }
        let first = !self.pending.contains_key(&(side, next_hop));
        let total = self.pending_total;
        let entry = self
            .pending
            .entry((side, next_hop))
            .or_insert_with(|| Pending {
                side,
                frames: VecDeque::new(),
                tries: 0,
                next_try: now,
            });
        if entry.frames.len() >= PENDING_PER_HOP || total >= PENDING_TOTAL {
            self.counters.unresolved_drops += 1;
        } else {
            entry.frames.push_back(f);
            self.pending_total += 1;
        }
        if first {
            self.retry_pending(now);
        }
    }

    fn retry_pending(&mut self, now: Timestamp) {
        let mut ask = Vec::new();
        let mut give_up = Vec::new();
        for (&(side, ip), p) in self.pending.iter_mut() {
            if now < p.next_try {
                continue;
            }
            if p.tries >= ARP_TRIES {
                give_up.push((side, ip));
            } else {
                p.tries += 1;
                p.next_try = now.saturating_add(ARP_RETRY);
                ask.push((p.side, ip));
            }
        }
        for (side, ip) in ask {
            self.send_arp_request(side, ip);
        }
        for key in give_up {
            if let Some(p) = self.pending.remove(&key) {
                log::warn!(
                    "neighbor {} ({:?}) did not answer ARP; {} frames dropped",
                    key.1,
                    key.0,
                    p.frames.len()
                );
                self.pending_total -= p.frames.len();
                self.counters.unresolved_drops += p.frames.len() as u64;
            }
        }
    }

    fn send_arp_request(&mut self, side: Side, target: Ipv4Addr) {
        let req = ArpRepr::request(self.mac_of(side), self.ip_of(side), target);
        self.send_arp(side, MacAddr::BROADCAST, &req);
        self.counters.arp_requests += 1;
    }

    fn send_arp(&mut self, side: Side, dst: MacAddr, repr: &ArpRepr) {
        let mut buf = [0u8; ETHERNET_HEADER_LEN + ARP_LEN];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
            eth.set_dst_addr(dst);
            eth.set_src_addr(self.mac_of(side));
            eth.set_ethertype(EtherType::ARP);
        }
        let mut pkt = ArpPacket::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..]);
        if repr.emit(&mut pkt).is_ok() {
            self.transmit(OwnedFrame::copy_of(side, None, &buf));
        }
    }

    /// Frames for the appliance itself: answer pings of its own addresses, count the rest.
    fn local(&mut self, mut f: OwnedFrame) {
        let len = usize::from(f.len);
        let b = &mut f.data[..len];
        let ip = ETHERNET_HEADER_LEN;
        let ihl = b.get(ip).map(|v| usize::from(v & 0x0f) * 4).unwrap_or(0);
        let icmp = ip + ihl;
        let is_echo = ihl >= 20 && b.len() >= icmp + 8 && b[ip + 9] == 1 && b[icmp] == 8;
        if !is_echo {
            self.counters.local_ignored += 1;
            return;
        }
        // Swap MACs and addresses, turn the request into a reply, fix both checksums.
        let (src_mac, dst_mac) = (
            MacAddr::from_slice(&b[6..12]),
            MacAddr::from_slice(&b[0..6]),
        );
        if let (Some(s), Some(d)) = (src_mac, dst_mac) {
            b[0..6].copy_from_slice(s.as_bytes());
            b[6..12].copy_from_slice(d.as_bytes());
        }
        let mut src = [0u8; 4];
        src.copy_from_slice(&b[ip + 12..ip + 16]);
        b.copy_within(ip + 16..ip + 20, ip + 12);
        b[ip + 16..ip + 20].copy_from_slice(&src);
        b[ip + 8] = 64;
        b[ip + 10..ip + 12].fill(0);
        let sum = checksum::compute(&b[ip..ip + ihl]);
        b[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
        let total = usize::from(u16::from_be_bytes([b[ip + 2], b[ip + 3]])).min(b.len() - ip);
        b[icmp] = 0;
        b[icmp + 2..icmp + 4].fill(0);
        let sum = checksum::compute(&b[icmp..ip + total]);
        b[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
        self.counters.local_echo_replies += 1;
        f.punt = None;
        self.transmit(f);
    }

    fn transmit(&mut self, f: OwnedFrame) {
        match self.workers.first() {
            Some(w) if w.transmit.push(f).is_ok() => self.counters.transmitted += 1,
            _ => self.counters.transmit_drops += 1,
        }
    }
}
