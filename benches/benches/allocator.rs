//! allocator/alloc_release/leases=1M: one allocate + one release per iteration on one shard
//! holding 1 M live TCP leases across 16 public IPs (the figure; target >= 20 M/s).
//! Also prints the allocator's memory per live lease (target <= 32 bytes) for two destination
//! mixes: 4,096 popular destinations, and every lease towards its own destination.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natgw_allocator::{
    AllocatorConfig, CloseKind, Cooldowns, Endpoint, FlowRequest, Inventory, Lease, Ownership,
    Protocol, ShardAllocator, Timestamp,
};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

const LIVE: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Mix {
    Popular,
    Unique,
}

fn request(rng: &mut SmallRng, mix: Mix) -> FlowRequest {
    let r = rng.next_u64();
    let host = Ipv4Addr::from(0x0a00_0000 | (r as u32 & 0x3fff)); // 16,384 hosts
    let dest = match mix {
        Mix::Popular => Endpoint::new(
            Ipv4Addr::from(0xc633_0000 | ((r >> 32) as u32 & 0xfff)),
            443,
        ),
        Mix::Unique => Endpoint::new(Ipv4Addr::from((r >> 32) as u32), (r >> 16) as u16 | 1),
    };
    FlowRequest {
        proto: Protocol::Tcp,
        host,
        dest,
    }
}

fn setup(mix: Mix, cooldown: Cooldowns) -> (ShardAllocator, Vec<Lease>, SmallRng) {
    let cfg = AllocatorConfig {
        public_ips: (0..16)
            .map(|i| Ipv4Addr::new(203, 0, 113, 10 + i))
            .collect(),
        max_sessions: 4_000_000,
        cooldown,
        ..Default::default()
    };
    let (_inv, mut shards) = Inventory::new(cfg, 1, Ownership::Blocks).expect("config");
    let mut shard = shards.remove(0);
    let mut rng = SmallRng::seed_from_u64(42);
    let now = Timestamp::from_secs(1);
    let mut leases = Vec::with_capacity(LIVE);
    while leases.len() < LIVE {
        if let Ok(l) = shard.allocate(&request(&mut rng, mix), now, &mut rng) {
            leases.push(l);
        }
    }
    (shard, leases, rng)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocator");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    for (name, mix, cooldown) in [
        (
            "alloc_release/leases=1M/popular",
            Mix::Popular,
            Cooldowns::ZERO,
        ),
        (
            "alloc_release/leases=1M/unique",
            Mix::Unique,
            Cooldowns::ZERO,
        ),
        (
            "alloc_release_fin_cooldown/leases=1M/popular",
            Mix::Popular,
            Cooldowns {
                tcp_fin: Duration::from_millis(1),
                ..Cooldowns::ZERO
            },
        ),
    ] {
        let (mut shard, mut leases, mut rng) = setup(mix, cooldown);
        eprintln!(
            "{name}: {} live leases, allocator memory {:.1} bytes per live lease",
            shard.live_leases(),
            shard.memory_bytes() as f64 / shard.live_leases() as f64
        );
        let mut i = 0usize;
        let mut t = 2_000_000_000u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                // Virtual clock: 50 ns per operation pair.
                t += 50;
                let now = Timestamp::from_nanos(t);
                if i % 1024 == 0 {
                    shard.handle_timeout(now);
                }
                let slot = i % LIVE;
                shard.release(&leases[slot], CloseKind::TcpFin, now);
                loop {
                    if let Ok(l) = shard.allocate(&request(&mut rng, mix), now, &mut rng) {
                        leases[slot] = black_box(l);
                        break;
                    }
                }
                i += 1;
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
