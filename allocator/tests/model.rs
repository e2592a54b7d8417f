//! State-machine test: random sequences of allocate / release (every close kind) / advance time /
//! expire / rebalance against a simple reference model, checking after every step that no
//! (protocol, public IP, port, destination) is held twice, cool-downs are respected, limits and
//! preallocated ranges hold, every port has exactly one owner, failures are justified, and that
//! releasing everything brings the inventory back to full.

use std::net::Ipv4Addr;
use std::time::Duration;

use natgw_allocator::*;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xcb00_7100 + n)
}
fn host(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}
fn dest(a: u32, port: u16) -> Endpoint {
    Endpoint::new(Ipv4Addr::from(0xc633_6400 + a), port)
}

#[derive(Clone, Debug)]
struct Setup {
    n_ips: u32,
    ports8: u16,
    reserve: bool,
    block_size: u16,
    shards: u16,
    prealloc: Option<u32>,
    host_cap: Option<u32>,
    pooling: Pooling,
    fallback: bool,
    max_sessions: u32,
    max_per_dest: u32,
    cooldown_secs: [u64; 4],
    low_wm: u32,
}

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        shard: u16,
        proto: usize,
        host: u32,
        d_ip: u32,
        d_port: u16,
    },
    Release {
        idx: usize,
        kind: usize,
    },
    Advance {
        ms: u64,
    },
    Timeout,
    Rebalance {
        ip: u32,
        proto: usize,
        from: u16,
        to: u16,
        count: u32,
    },
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        (
            1u32..=2,
            4u16..=12,
            any::<bool>(),
            prop_oneof![Just(8u16), Just(16)],
            1u16..=3,
        ),
        (
            prop_oneof![Just(None), (2u32..=3).prop_map(Some)],
            prop_oneof![Just(None), (1u32..=6).prop_map(Some)],
        ),
        (
            prop_oneof![Just(Pooling::Paired), Just(Pooling::Arbitrary)],
            any::<bool>(),
        ),
        (
            3u32..=60,
            1u32..=12,
            [0u64..=3, 0u64..=3, 0u64..=3, 0u64..=3],
            0u32..=2,
        ),
    )
        .prop_map(
            |(
                (n_ips, ports8, reserve, block_size, shards),
                (prealloc, host_cap),
                (pooling, fallback),
                (max_sessions, max_per_dest, cooldown_secs, low_wm),
            )| Setup {
                n_ips,
                ports8,
                reserve,
                block_size,
                shards,
                prealloc,
                host_cap,
                pooling,
                fallback,
                max_sessions,
                max_per_dest,
                cooldown_secs,
                low_wm,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..3, 0usize..3, 1u32..=4, 1u32..=2, 1u16..=2)
            .prop_map(|(shard, proto, host, d_ip, d_port)| Op::Alloc { shard, proto, host, d_ip, d_port }),
        3 => (any::<usize>(), 0usize..6).prop_map(|(idx, kind)| Op::Release { idx, kind }),
        2 => (0u64..2500).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Timeout),
        1 => (1u32..=2, 0usize..3, 0u16..3, 0u16..3, 1u32..=3)
            .prop_map(|(ip, proto, from, to, count)| Op::Rebalance { ip, proto, from, to, count }),
    ]
}

type PairKey = (Protocol, Ipv4Addr, u16, Ipv4Addr, u16);

fn key(l: &Lease) -> PairKey {
    let dport = if l.proto == Protocol::Tcp {
        l.dest.port
    } else {
        0
    };
    (l.proto, l.public_ip, l.public_port, l.dest.addr, dport)
}

struct World {
    s: Setup,
    cfg: AllocatorConfig,
    inv: Inventory,
    owners: OwnerMap,
    shards: Vec<ShardAllocator>,
    /// Usable ports in order (the model's own computation).
    usable: Vec<u16>,
    now: Timestamp,
    live: Vec<(usize, Lease)>,
    cooling: Vec<(usize, Lease, Timestamp)>,
    rng: SmallRng,
}

impl World {
    fn new(s: Setup, seed: u64) -> World {
        let lo = 2000u16;
        let hi = lo + 8 * s.ports8 - 1;
        let reserved = if s.reserve {
            vec![(lo + 9, lo + 12)]
        } else {
            vec![]
        };
        let usable: Vec<u16> = (lo..=hi)
            .filter(|p| !(s.reserve && (lo + 8..lo + 16).contains(p)))
            .collect();
        let policy = match s.prealloc {
            Some(n) => Policy::Preallocated {
                instances: (1..=n).map(host).collect(),
                ports_per_instance: 8,
            },
            None => Policy::Dynamic {
                max_ports_per_host: s.host_cap,
            },
        };
        let c = |i: usize| Duration::from_secs(s.cooldown_secs[i]);
        let cfg = AllocatorConfig {
            public_ips: (1..=s.n_ips).map(ip).collect(),
            port_range: (lo, hi),
            reserved,
            policy,
            pooling: s.pooling,
            paired_fallback: s.fallback,
            max_sessions: s.max_sessions,
            max_per_destination: s.max_per_dest,
            cooldown: Cooldowns {
                tcp_fin: c(0),
                tcp_rst: c(1),
                tcp_half_open: c(2),
                udp: c(3),
            },
            block_size: s.block_size,
            rebalance: Rebalance {
                low_idle_blocks: s.low_wm,
                high_idle_blocks: None,
            },
            seed,
        };
        let (inv, shards) = Inventory::new(cfg.clone(), s.shards, Ownership::Blocks).unwrap();
        let owners = inv.owners();
        World {
            s,
            cfg,
            inv,
            owners,
            shards,
            usable,
            now: Timestamp::from_secs(100),
            live: Vec::new(),
            cooling: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn share(&self, limit: u32) -> usize {
        limit.div_ceil(u32::from(self.s.shards)) as usize
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (i, s) in self.shards.iter_mut().enumerate() {
                while let Some(ev) = s.poll_event() {
                    self.inv.handle_event(ShardId(i as u16), ev);
                    moved = true;
                }
            }
            while let Some((to, cmd)) = self.inv.poll_command() {
                self.shards[usize::from(to.0)].handle_command(cmd);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn host_range(&self, h: Ipv4Addr) -> Option<&[u16]> {
        match self.s.prealloc {
            None => Some(&self.usable),
            Some(n) => {
                let k = (1..=n).position(|i| host(i) == h)?;
                Some(&self.usable[k * 8..(k + 1) * 8])
            }
        }
    }

    fn blocked(&self, k: &PairKey) -> bool {
        self.live.iter().any(|(_, l)| key(l) == *k)
            || self
                .cooling
                .iter()
                .any(|(_, l, t)| key(l) == *k && *t > self.now)
    }

    fn dest_count(&self, shard: usize, pip: Ipv4Addr, r: &FlowRequest) -> usize {
        let probe = Lease {
            proto: r.proto,
            public_ip: pip,
            public_port: 0,
            host: r.host,
            dest: r.dest,
        };
        let (p, i, _, a, dp) = key(&probe);
        self.live
            .iter()
            .filter(|(s, l)| {
                *s == shard && {
                    let (p2, i2, _, a2, dp2) = key(l);
                    (p2, i2, a2, dp2) == (p, i, a, dp)
                }
            })
            .count()
    }

    fn candidates(&self, shard: usize, h: Ipv4Addr) -> Vec<Ipv4Addr> {
        if self.s.pooling == Pooling::Paired && !self.s.fallback {
            vec![self.shards[shard].paired_ip(h)]
        } else {
            self.cfg.public_ips.clone()
        }
    }

    fn alloc(&mut self, shard: usize, r: FlowRequest) {
        let res = self.shards[shard].allocate(&r, self.now, &mut self.rng);
        let range = self.host_range(r.host).map(|x| x.to_vec());
        let shard_live = self.live.iter().filter(|(s, _)| *s == shard).count();
        let host_live = self
            .live
            .iter()
            .filter(|(s, l)| *s == shard && l.host == r.host)
            .count();
        match res {
            Ok(l) => {
                assert_eq!((l.proto, l.host, l.dest), (r.proto, r.host, r.dest));
                assert!(
                    !self.blocked(&key(&l)),
                    "pair leased twice or during cool-down: {l:?}"
                );
                assert_eq!(
                    self.owners.owner(l.public_ip, l.proto, l.public_port),
                    Some(ShardId(shard as u16))
                );
                assert!(self.shards[shard].owns(l.public_ip, l.proto, l.public_port));
                let range = range.expect("allocated outside the pool");
                assert!(
                    range.contains(&l.public_port),
                    "port {} outside the host's range",
                    l.public_port
                );
                if self.s.pooling == Pooling::Paired && !self.s.fallback {
                    assert_eq!(l.public_ip, self.shards[0].paired_ip(r.host));
                    assert_eq!(l.public_ip, self.shards[shard].paired_ip(r.host));
                }
                assert!(shard_live < self.share(self.s.max_sessions));
                assert!(self.dest_count(shard, l.public_ip, &r) < self.share(self.s.max_per_dest));
                if let (None, Some(cap)) = (self.s.prealloc, self.s.host_cap) {
                    assert!(host_live < self.share(cap));
                }
                self.live.push((shard, l));
            }
            Err(AllocError::NotInPool) => assert!(range.is_none()),
            Err(e) => {
                assert!(range.is_some(), "{e:?} for a host outside the pool");
                let range = range.unwrap_or_default();
                match e {
                    AllocError::SessionLimit => {
                        assert!(shard_live >= self.share(self.s.max_sessions))
                    }
                    AllocError::HostLimit => {
                        let cap = self.s.host_cap.expect("host limit without a cap");
                        assert!(host_live >= self.share(cap));
                    }
                    AllocError::DestinationLimit => {
                        for pip in self.candidates(shard, r.host) {
                            assert!(
                                self.dest_count(shard, pip, &r) >= self.share(self.s.max_per_dest)
                            );
                        }
                    }
                    AllocError::PortsExhausted => {
                        let mut any_under = false;
                        for pip in self.candidates(shard, r.host) {
                            if self.dest_count(shard, pip, &r) >= self.share(self.s.max_per_dest) {
                                continue;
                            }
                            any_under = true;
                            for &p in &range {
                                if !self.shards[shard].owns(pip, r.proto, p) {
                                    continue;
                                }
                                let l = Lease {
                                    proto: r.proto,
                                    public_ip: pip,
                                    public_port: p,
                                    host: r.host,
                                    dest: r.dest,
                                };
                                assert!(
                                    self.blocked(&key(&l)),
                                    "port {p} of {pip} was free: {r:?}"
                                );
                            }
                        }
                        assert!(any_under);
                    }
                    AllocError::NotInPool => unreachable!(),
                }
            }
        }
    }

    fn release(&mut self, idx: usize, kind: usize) {
        if self.live.is_empty() {
            return;
        }
        let (s, l) = self.live.swap_remove(idx % self.live.len());
        let how = CloseKind::ALL[kind];
        self.shards[s].release(&l, how, self.now);
        let cd = self.cfg.cooldown.for_close(how);
        if cd.is_zero() {
            assert!(!self.shards[s].holds(&l));
        } else {
            assert!(self.shards[s].holds(&l));
            self.cooling.push((s, l, self.now.saturating_add(cd)));
        }
    }

    fn expire(&mut self) {
        for s in &mut self.shards {
            while s.next_timeout().is_some_and(|t| t <= self.now) {
                s.handle_timeout(self.now);
            }
        }
        let now = self.now;
        for (s, l, _) in self.cooling.iter().filter(|(_, _, t)| *t <= now) {
            // A pair may be live or cooling again since; otherwise it must be gone.
            if !self.blocked(&key(l)) {
                assert!(!self.shards[*s].holds(l), "cool-down not collected");
            }
        }
        self.cooling.retain(|(_, _, t)| *t > now);
    }

    fn check(&self) {
        for (s, l) in &self.live {
            assert!(self.shards[*s].holds(l));
            assert!(
                self.shards[*s].owns(l.public_ip, l.proto, l.public_port),
                "live lease's block moved"
            );
        }
        for (s, l, t) in &self.cooling {
            if *t > self.now {
                assert!(self.shards[*s].holds(l), "cool-down ended early");
            }
        }
        for pip in &self.cfg.public_ips {
            for proto in Protocol::ALL {
                for p in self.cfg.port_range.0..=self.cfg.port_range.1 {
                    let o = self.owners.owner(*pip, proto, p);
                    if !self.usable.contains(&p) {
                        assert_eq!(o, None);
                        continue;
                    }
                    let o = o.expect("usable port without owner");
                    for (i, sh) in self.shards.iter().enumerate() {
                        assert_eq!(sh.owns(*pip, proto, p), i == usize::from(o.0), "port {p}");
                    }
                }
            }
        }
        for (i, sh) in self.shards.iter().enumerate() {
            let st = sh.stats();
            assert_eq!(
                st.live_leases as usize,
                self.live.iter().filter(|(s, _)| *s == i).count()
            );
            assert_eq!(st.bad_releases, 0);
            let due = self
                .cooling
                .iter()
                .filter(|(s, _, t)| *s == i && *t > self.now)
                .count();
            let all = self.cooling.iter().filter(|(s, _, _)| *s == i).count();
            assert!(
                (due..=all).contains(&(st.cooling as usize)),
                "{} not in {due}..={all}",
                st.cooling
            );
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Alloc {
                shard,
                proto,
                host: h,
                d_ip,
                d_port,
            } => {
                let shard = usize::from(shard % self.s.shards);
                let r = FlowRequest {
                    proto: Protocol::ALL[proto],
                    host: host(h),
                    dest: dest(d_ip, d_port),
                };
                self.alloc(shard, r);
            }
            Op::Release { idx, kind } => self.release(idx, kind),
            Op::Advance { ms } => self.now = self.now.saturating_add(Duration::from_millis(ms)),
            Op::Timeout => self.expire(),
            Op::Rebalance {
                ip: i,
                proto,
                from,
                to,
                count,
            } => {
                let i = ip(1 + (i - 1) % self.s.n_ips);
                let n = self.s.shards;
                self.inv.rebalance(
                    i,
                    Protocol::ALL[proto],
                    ShardId(from % n),
                    ShardId(to % n),
                    count,
                );
            }
        }
        self.pump();
        self.check();
    }

    fn drain(&mut self) {
        while !self.live.is_empty() {
            self.release(0, 0);
        }
        self.now = self.now.saturating_add(Duration::from_secs(10));
        self.expire();
        self.pump();
        self.check();
        let inv = self.inv.stats();
        for (i, sh) in self.shards.iter().enumerate() {
            let st = sh.stats();
            assert_eq!((st.live_leases, st.cooling), (0, 0));
            for (pi, p) in st.pools.iter().enumerate() {
                assert_eq!((p.live_leases, p.cooling, p.destinations), (0, 0, 0));
                assert_eq!(
                    p.idle_blocks, inv.pools[pi].blocks_per_shard[i],
                    "blocks not idle"
                );
            }
        }
        let total: u32 = inv.pools[0].blocks_per_shard.iter().sum();
        assert_eq!(total, inv.pools[0].blocks);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_the_model(s in setup(), seed in any::<u64>(), ops in prop::collection::vec(op(), 1..200)) {
        let mut w = World::new(s, seed);
        for op in &ops {
            w.step(op);
        }
        w.drain();
    }
}
