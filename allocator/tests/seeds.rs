//! The seeds' numbers and the allocator's rules as executable checks: preallocation sizes, the
//! 64,512-flow limit towards one TCP destination, UDP's one port per destination address,
//! cool-downs, pairing, limits, randomness of port choice, rebalancing and per-port ownership.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use natgw_allocator::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

const T0: Timestamp = Timestamp::from_secs(1000);

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xcb00_7100 + n) // 203.0.113.n
}

fn host(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}

fn dest(a: u32, port: u16) -> Endpoint {
    Endpoint::new(Ipv4Addr::from(0xc633_6400 + a), port) // 198.51.100.a
}

fn req(proto: Protocol, h: Ipv4Addr, d: Endpoint) -> FlowRequest {
    FlowRequest {
        proto,
        host: h,
        dest: d,
    }
}

fn one_ip(cfg: AllocatorConfig) -> AllocatorConfig {
    AllocatorConfig {
        public_ips: vec![ip(10)],
        ..cfg
    }
}

fn build(cfg: AllocatorConfig, shards: u16) -> (Inventory, Vec<ShardAllocator>) {
    Inventory::new(cfg, shards, Ownership::Blocks).expect("valid config")
}

/// Carries messages both ways until nothing is in flight.
fn pump(inv: &mut Inventory, shards: &mut [ShardAllocator]) {
    loop {
        let mut moved = false;
        for (i, s) in shards.iter_mut().enumerate() {
            while let Some(ev) = s.poll_event() {
                inv.handle_event(ShardId(i as u16), ev);
                moved = true;
            }
        }
        while let Some((to, cmd)) = inv.poll_command() {
            shards[usize::from(to.0)].handle_command(cmd);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn explicit_6400_ports_for_a_pool_of_10() {
    let instances: Vec<Ipv4Addr> = (1..=10).map(host).collect();
    let cfg = one_ip(AllocatorConfig {
        policy: Policy::Preallocated {
            instances: instances.clone(),
            ports_per_instance: 6400,
        },
        max_per_destination: 100_000,
        ..Default::default()
    });
    let (inv, mut shards) = build(cfg, 1);
    assert_eq!(inv.stats().ports_per_instance, 6400);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut seen: HashSet<u16> = HashSet::new();
    for (k, h) in instances.iter().enumerate() {
        // UDP to one destination address: one port per flow, so the range is exactly countable.
        let mut mine = HashSet::new();
        loop {
            let d = dest(1, 1000 + mine.len() as u16);
            match shards[0].allocate(&req(Protocol::Udp, *h, d), T0, &mut rng) {
                Ok(l) => {
                    let lo = 1024 + 6400 * k as u16;
                    assert!(
                        (lo..lo + 6400).contains(&l.public_port),
                        "{k}: {}",
                        l.public_port
                    );
                    assert!(mine.insert(l.public_port));
                }
                Err(e) => {
                    assert_eq!(e, AllocError::PortsExhausted);
                    break;
                }
            }
        }
        assert_eq!(mine.len(), 6400, "instance {k}");
        assert!(mine.iter().all(|p| seen.insert(*p)), "ranges overlap");
    }
    let outsider = req(Protocol::Udp, host(99), dest(1, 1));
    assert_eq!(
        shards[0].allocate(&outsider, T0, &mut rng),
        Err(AllocError::NotInPool)
    );
    assert_eq!(shards[0].stats().failures_for(AllocError::NotInPool), 1);
}

#[test]
fn default_table_gives_1024_for_50_and_32_for_1000() {
    for (n, want) in [(50u32, 1024u32), (51, 512), (1000, 32)] {
        let instances: Vec<Ipv4Addr> = (1..=n).map(host).collect();
        let cfg = one_ip(AllocatorConfig {
            policy: Policy::Preallocated {
                instances,
                ports_per_instance: 0,
            },
            ..Default::default()
        });
        let (inv, mut shards) = build(cfg, 1);
        assert_eq!(inv.stats().ports_per_instance, want, "pool of {n}");
        let mut rng = SmallRng::seed_from_u64(2);
        let got = (0..want + 1)
            .filter(|i| {
                let r = req(Protocol::Udp, host(n), dest(2, *i as u16 + 1));
                shards[0].allocate(&r, T0, &mut rng).is_ok()
            })
            .count();
        assert_eq!(got as u32, want, "pool of {n}");
    }
}

#[test]
fn tcp_to_one_destination_stops_after_64512_flows() {
    for shards_n in [1u16, 4] {
        let cfg = one_ip(AllocatorConfig {
            max_per_destination: 100_000,
            ..Default::default()
        });
        let (_inv, mut shards) = build(cfg, shards_n);
        let mut rng = SmallRng::seed_from_u64(3);
        let d = dest(3, 443);
        let mut ports = HashSet::new();
        for s in shards.iter_mut() {
            loop {
                match s.allocate(&req(Protocol::Tcp, host(1), d), T0, &mut rng) {
                    Ok(l) => assert!(ports.insert(l.public_port)),
                    Err(e) => {
                        assert_eq!(e, AllocError::PortsExhausted);
                        break;
                    }
                }
            }
        }
        assert_eq!(ports.len(), 64_512, "{shards_n} shards");
        // The same ports still serve another destination port of the same address.
        let other = req(Protocol::Tcp, host(1), dest(3, 80));
        assert!(shards[0].allocate(&other, T0, &mut rng).is_ok());
    }
}

#[test]
fn tcp_reuses_ports_across_destinations_udp_does_not_across_remote_ports() {
    let cfg = one_ip(AllocatorConfig {
        port_range: (2000, 2063),
        max_per_destination: 100_000,
        ..Default::default()
    });
    let (_inv, mut shards) = build(cfg, 1);
    let mut rng = SmallRng::seed_from_u64(4);
    // TCP: 64 ports but 10 x 64 flows, to 10 remote ports of one address.
    let mut tcp = 0;
    for dport in 1..=10u16 {
        for _ in 0..64 {
            let r = req(Protocol::Tcp, host(1), dest(4, dport));
            assert!(shards[0].allocate(&r, T0, &mut rng).is_ok());
            tcp += 1;
        }
    }
    assert_eq!(tcp, 640);
    // UDP to one address with many remote ports: one port per flow, 64 then exhausted.
    let mut used = HashSet::new();
    for dport in 1..=64u16 {
        let l = shards[0].allocate(&req(Protocol::Udp, host(1), dest(4, dport)), T0, &mut rng);
        assert!(used.insert(l.unwrap().public_port));
    }
    let r = req(Protocol::Udp, host(1), dest(4, 999));
    assert_eq!(
        shards[0].allocate(&r, T0, &mut rng),
        Err(AllocError::PortsExhausted)
    );
    // ICMP is a separate inventory with the same rule.
    let l = shards[0].allocate(&req(Protocol::Icmp, host(1), dest(4, 7)), T0, &mut rng);
    assert!(l.is_ok());
}

#[test]
fn nothing_leaks_allocate_all_release_all_allocate_all_again() {
    let cfg = one_ip(AllocatorConfig {
        max_per_destination: 100_000,
        ..Default::default()
    });
    let (mut inv, mut shards) = build(cfg, 2);
    let mut rng = SmallRng::seed_from_u64(5);
    for round in 0..2 {
        let mut leases = Vec::new();
        for (i, s) in shards.iter_mut().enumerate() {
            while let Ok(l) = s.allocate(&req(Protocol::Udp, host(1), dest(5, 1)), T0, &mut rng) {
                leases.push((i, l));
            }
        }
        assert_eq!(leases.len(), 64_512, "round {round}");
        let t = T0.saturating_add(Duration::from_secs(round * 1000));
        for (i, l) in &leases {
            shards[*i].release(l, CloseKind::UdpIdle, t);
        }
        let later = t.saturating_add(Duration::from_secs(66));
        for s in shards.iter_mut() {
            while s.next_timeout().is_some_and(|n| n <= later) {
                s.handle_timeout(later);
            }
            let st = s.stats();
            assert_eq!((st.live_leases, st.cooling, st.bad_releases), (0, 0, 0));
            let pool = &st.pools[Protocol::Udp as usize];
            assert_eq!(pool.destinations, 0);
            assert_eq!(
                u64::from(pool.idle_blocks) * 64,
                u64::from(pool.owned_ports)
            );
        }
        pump(&mut inv, &mut shards);
    }
}

#[test]
fn cooldown_blocks_the_same_destination_only_and_only_for_its_duration() {
    let cases = [
        (CloseKind::TcpFin, Protocol::Tcp, 65),
        (CloseKind::TcpRst, Protocol::Tcp, 16),
        (CloseKind::TcpIdle, Protocol::Tcp, 16),
        (CloseKind::TcpHalfOpen, Protocol::Tcp, 30),
        (CloseKind::UdpIdle, Protocol::Udp, 65),
        (CloseKind::IcmpIdle, Protocol::Icmp, 65),
    ];
    for (kind, proto, secs) in cases {
        // A single usable port makes the rule visible.
        let cfg = one_ip(AllocatorConfig {
            port_range: (3000, 3000),
            ..Default::default()
        });
        let (_inv, mut shards) = build(cfg, 1);
        let s = &mut shards[0];
        let mut rng = SmallRng::seed_from_u64(6);
        let d = dest(6, 443);
        let l = s.allocate(&req(proto, host(1), d), T0, &mut rng).unwrap();
        assert_eq!(l.public_port, 3000);
        s.release(&l, kind, T0);
        let just_before = T0.saturating_add(Duration::from_secs(secs) - Duration::from_nanos(1));
        s.handle_timeout(just_before);
        let again = s.allocate(&req(proto, host(2), d), just_before, &mut rng);
        assert_eq!(again, Err(AllocError::PortsExhausted), "{kind:?}");
        // Another destination may use the port meanwhile.
        let other = s.allocate(&req(proto, host(2), dest(7, 443)), just_before, &mut rng);
        assert_eq!(other.map(|l| l.public_port), Ok(3000), "{kind:?}");
        // At the deadline the pair is free again (allocate collects due cool-downs itself).
        let at = T0.saturating_add(Duration::from_secs(secs));
        assert_eq!(s.next_timeout(), Some(at));
        let l2 = s.allocate(&req(proto, host(1), d), at, &mut rng);
        assert_eq!(l2.map(|l| l.public_port), Ok(3000), "{kind:?}");
    }
}

#[test]
fn paired_pooling_keeps_one_ip_per_host_across_shards() {
    let cfg = AllocatorConfig {
        public_ips: (1..=4).map(ip).collect(),
        port_range: (4000, 4127),
        ..Default::default()
    };
    let (_inv, mut shards) = build(cfg.clone(), 2);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut per_ip = [0u32; 4];
    for h in 1..=64 {
        let mut ips = HashSet::new();
        for (k, s) in shards.iter_mut().enumerate() {
            for j in 0..3u16 {
                let l = s.allocate(
                    &req(Protocol::Tcp, host(h), dest(8, j + 10 * k as u16)),
                    T0,
                    &mut rng,
                );
                ips.insert(l.unwrap().public_ip);
            }
        }
        assert_eq!(ips.len(), 1, "host {h} used {ips:?}");
        let only = *ips.iter().next().unwrap();
        assert_eq!(only, shards[0].paired_ip(host(h)));
        per_ip[(u32::from(only) - u32::from(ip(1))) as usize] += 1;
    }
    assert!(
        per_ip.iter().all(|&n| n > 4),
        "hash pairing spreads hosts: {per_ip:?}"
    );

    // When the paired IP has no port for a destination: fail, unless fallback is on.
    for fallback in [false, true] {
        let cfg = AllocatorConfig {
            paired_fallback: fallback,
            ..cfg.clone()
        };
        let (_inv, mut shards) = build(cfg, 1);
        let s = &mut shards[0];
        let paired = s.paired_ip(host(1));
        for _ in 0..128 {
            let l = s
                .allocate(&req(Protocol::Udp, host(1), dest(9, 1)), T0, &mut rng)
                .unwrap();
            assert_eq!(l.public_ip, paired);
        }
        let next = s.allocate(&req(Protocol::Udp, host(1), dest(9, 1)), T0, &mut rng);
        if fallback {
            assert_ne!(next.unwrap().public_ip, paired);
        } else {
            assert_eq!(next, Err(AllocError::PortsExhausted));
        }
    }
}

#[test]
fn arbitrary_pooling_spreads_by_load() {
    let cfg = AllocatorConfig {
        public_ips: (1..=4).map(ip).collect(),
        pooling: Pooling::Arbitrary,
        ..Default::default()
    };
    let (_inv, mut shards) = build(cfg, 1);
    let mut rng = SmallRng::seed_from_u64(8);
    let mut per_ip = std::collections::HashMap::new();
    for i in 0..4000u32 {
        let l = shards[0].allocate(&req(Protocol::Tcp, host(1), dest(i, 443)), T0, &mut rng);
        *per_ip.entry(l.unwrap().public_ip).or_insert(0u32) += 1;
    }
    assert_eq!(per_ip.len(), 4);
    assert!(
        per_ip.values().all(|&n| (900..=1100).contains(&n)),
        "{per_ip:?}"
    );
}

#[test]
fn limits_are_per_shard_fair_shares() {
    let base = one_ip(AllocatorConfig::default());
    let mut rng = SmallRng::seed_from_u64(9);
    // max_per_destination 9 over 2 shards: 5 per shard.
    let (_inv, mut shards) = build(
        AllocatorConfig {
            max_per_destination: 9,
            ..base.clone()
        },
        2,
    );
    for _ in 0..5 {
        assert!(shards[0]
            .allocate(&req(Protocol::Tcp, host(1), dest(1, 1)), T0, &mut rng)
            .is_ok());
    }
    let r = req(Protocol::Tcp, host(1), dest(1, 1));
    assert_eq!(
        shards[0].allocate(&r, T0, &mut rng),
        Err(AllocError::DestinationLimit)
    );
    assert!(shards[0]
        .allocate(&req(Protocol::Tcp, host(1), dest(1, 2)), T0, &mut rng)
        .is_ok());
    assert!(shards[1].allocate(&r, T0, &mut rng).is_ok());
    // Sessions: 4 over 2 shards.
    let (_inv, mut shards) = build(
        AllocatorConfig {
            max_sessions: 4,
            ..base.clone()
        },
        2,
    );
    for i in 0..2 {
        assert!(shards[1]
            .allocate(&req(Protocol::Udp, host(1), dest(i, 1)), T0, &mut rng)
            .is_ok());
    }
    let r = req(Protocol::Udp, host(1), dest(7, 1));
    assert_eq!(
        shards[1].allocate(&r, T0, &mut rng),
        Err(AllocError::SessionLimit)
    );
    // Per-host cap, released leases give room back.
    let cfg = AllocatorConfig {
        policy: Policy::Dynamic {
            max_ports_per_host: Some(3),
        },
        ..base
    };
    let (_inv, mut shards) = build(cfg, 1);
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(
            shards[0]
                .allocate(&req(Protocol::Tcp, host(1), dest(i, 1)), T0, &mut rng)
                .unwrap(),
        );
    }
    let r = req(Protocol::Tcp, host(1), dest(9, 1));
    assert_eq!(
        shards[0].allocate(&r, T0, &mut rng),
        Err(AllocError::HostLimit)
    );
    assert!(shards[0]
        .allocate(&req(Protocol::Tcp, host(2), dest(9, 1)), T0, &mut rng)
        .is_ok());
    shards[0].release(&held[0], CloseKind::TcpFin, T0);
    assert!(shards[0].allocate(&r, T0, &mut rng).is_ok());
    let st = shards[0].stats();
    assert_eq!(st.failures_for(AllocError::HostLimit), 1);
}

#[test]
fn successive_ports_are_not_sequential() {
    let cfg = one_ip(AllocatorConfig::default());
    let (_inv, mut shards) = build(cfg, 1);
    let mut rng = SmallRng::seed_from_u64(10);
    let ports: Vec<i32> = (0..2000u32)
        .map(|i| {
            let r = req(Protocol::Tcp, host(1), dest(i, 443));
            i32::from(shards[0].allocate(&r, T0, &mut rng).unwrap().public_port)
        })
        .collect();
    // A sequential (or small-stride) allocator has nearly every step small; random choice over
    // 64,512 ports makes a step below 256 a 0.8% event.
    let small = ports
        .windows(2)
        .filter(|w| (w[1] - w[0]).abs() < 256)
        .count();
    assert!(small < 60, "{small} small steps out of 1999");
    // Ups and downs balance (a counter only goes up).
    let ups = ports.windows(2).filter(|w| w[1] > w[0]).count();
    assert!((800..1200).contains(&ups), "{ups} increasing steps");
    // And the choices cover the whole range.
    let lowest = ports.iter().min().unwrap();
    let highest = ports.iter().max().unwrap();
    assert!(*lowest < 2048 && *highest > 64_000, "{lowest}..{highest}");
}

#[test]
fn low_shard_receives_idle_blocks_and_owner_map_follows() {
    // 8 blocks of 64: 4 per shard. Shard 0 fills its blocks; shard 1 stays idle.
    let cfg = one_ip(AllocatorConfig {
        port_range: (10_000, 10_511),
        max_per_destination: 100_000,
        rebalance: Rebalance {
            low_idle_blocks: 1,
            high_idle_blocks: Some(100),
        },
        ..Default::default()
    });
    let (mut inv, mut shards) = build(cfg, 2);
    let owners = inv.owners();
    let mut rng = SmallRng::seed_from_u64(11);
    let mut got = 0;
    let r = req(Protocol::Udp, host(1), dest(1, 1));
    while let Ok(l) = shards[0].allocate(&r, T0, &mut rng) {
        let owner = owners.owner(l.public_ip, Protocol::Udp, l.public_port);
        assert_eq!(owner, Some(ShardId(0)));
        got += 1;
        pump(&mut inv, &mut shards);
    }
    // Shard 1 kept 2 idle blocks (twice the low watermark); shard 0 got the other 2.
    assert_eq!(got, 6 * 64);
    let st = inv.stats();
    assert_eq!(
        st.pools[Protocol::Udp as usize].blocks_per_shard,
        vec![6, 2]
    );
    assert_eq!(st.blocks_moved, 2);
    for p in 10_000..=10_511u16 {
        let o = owners.owner(ip(10), Protocol::Udp, p).unwrap();
        assert!(shards[usize::from(o.0)].owns(ip(10), Protocol::Udp, p));
        assert!(!shards[1 - usize::from(o.0)].owns(ip(10), Protocol::Udp, p));
    }
    // Blocks with leases never move; manual rebalance of a busy shard moves nothing.
    inv.rebalance(ip(10), Protocol::Udp, ShardId(0), ShardId(1), 10);
    pump(&mut inv, &mut shards);
    assert_eq!(inv.stats().blocks_moved, 2);
}

#[test]
fn dest_port_hash_ownership_matches_the_nic_function() {
    let f: Arc<dyn Fn(u16) -> ShardId + Send + Sync> = Arc::new(|p| ShardId(p % 3));
    let cfg = one_ip(AllocatorConfig {
        max_per_destination: 100_000,
        ..Default::default()
    });
    let (inv, mut shards) = Inventory::new(cfg, 3, Ownership::DestPortHash(f)).unwrap();
    let owners = inv.owners();
    let mut rng = SmallRng::seed_from_u64(12);
    for (k, s) in shards.iter_mut().enumerate() {
        for i in 0..500 {
            let l = s
                .allocate(&req(Protocol::Tcp, host(1), dest(i, 80)), T0, &mut rng)
                .unwrap();
            assert_eq!(l.public_port % 3, k as u16);
            assert_eq!(
                owners.owner(l.public_ip, Protocol::Tcp, l.public_port),
                Some(ShardId(k as u16))
            );
        }
    }
    assert_eq!(
        owners.owner(ip(10), Protocol::Tcp, 80),
        None,
        "below the port range"
    );
    assert_eq!(
        owners.owner(ip(11), Protocol::Tcp, 5000),
        None,
        "unknown IP"
    );
    // Exhausting one destination on one shard takes exactly that shard's ports.
    let n = (1024..=65535u32).filter(|p| p % 3 == 0).count();
    let mut got = 0;
    while shards[0]
        .allocate(&req(Protocol::Udp, host(1), dest(1, 1)), T0, &mut rng)
        .is_ok()
    {
        got += 1;
    }
    assert_eq!(got, n);
}

#[test]
fn pressure_reports_top_destinations() {
    let cfg = AllocatorConfig {
        public_ips: vec![ip(1), ip(2)],
        pooling: Pooling::Arbitrary,
        ..Default::default()
    };
    let (_inv, mut shards) = build(cfg, 1);
    let mut rng = SmallRng::seed_from_u64(13);
    for (d, n) in [(1u32, 50), (2, 30), (3, 10)] {
        for _ in 0..n {
            shards[0]
                .allocate(&req(Protocol::Tcp, host(1), dest(d, 443)), T0, &mut rng)
                .unwrap();
        }
    }
    let top = shards[0].pressure(None, None, 2);
    assert_eq!(top.len(), 2);
    // Summed over both IPs the order is by ports held.
    let all = shards[0].pressure(None, None, 100);
    let total = |d: u32| {
        all.iter()
            .filter(|u| u.dest == dest(d, 443))
            .map(|u| u.ports)
            .sum::<u32>()
    };
    assert_eq!((total(1), total(2), total(3)), (50, 30, 10));
    assert!(top[0].ports >= top[1].ports);
    let only = shards[0].pressure(Some(ip(1)), None, 10);
    assert!(only.iter().all(|u| u.public_ip == ip(1)));
}

#[test]
fn bad_releases_are_ignored_and_counted() {
    let cfg = one_ip(AllocatorConfig::default());
    let (_inv, mut shards) = build(cfg, 1);
    let s = &mut shards[0];
    let mut rng = SmallRng::seed_from_u64(14);
    let l = s
        .allocate(&req(Protocol::Tcp, host(1), dest(1, 1)), T0, &mut rng)
        .unwrap();
    s.release(&l, CloseKind::TcpFin, T0);
    s.release(&l, CloseKind::TcpFin, T0);
    let mut forged = l;
    forged.public_ip = ip(200);
    s.release(&forged, CloseKind::TcpRst, T0);
    let st = s.stats();
    assert_eq!((st.live_leases, st.cooling, st.bad_releases), (0, 1, 2));
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let bad = [
        AllocatorConfig::default(),
        one_ip(AllocatorConfig {
            port_range: (5000, 4000),
            ..Default::default()
        }),
        one_ip(AllocatorConfig {
            block_size: 0,
            ..Default::default()
        }),
        one_ip(AllocatorConfig {
            reserved: vec![(1024, 65535)],
            ..Default::default()
        }),
        one_ip(AllocatorConfig {
            policy: Policy::Preallocated {
                instances: (1..=11).map(host).collect(),
                ports_per_instance: 6400,
            },
            ..Default::default()
        }),
    ];
    for cfg in bad {
        assert!(Inventory::new(cfg, 1, Ownership::Blocks).is_err());
    }
    assert!(Inventory::new(one_ip(AllocatorConfig::default()), 0, Ownership::Blocks).is_err());
}
