//! session/*: what one established packet's session lookup costs with 1 M live sessions, and what a
//! burst-staged index would cost (an experiment behind docs/performance.md's "what to do next").
//!
//! - `session/lookup_in2out/sessions=1M`: the dataplane's `SessionTable::lookup_in2out` (since this
//!   experiment, its own bucketed index of tag + id entries + slab) for a burst of 32 random keys, one after
//!   the other, without the staging `process_burst` now does;
//! - `session/staged_prototype/sessions=1M`: a prototype written here, not product code: a
//!   bucketized index (64-byte buckets of eight `tag << 32 | id` entries) looked up in stages across the
//!   burst: hash all 32 keys and prefetch their buckets, then pick the ids and prefetch their slab
//!   entries, then compare the keys. The misses of one stage are independent, so the core overlaps
//!   them instead of paying three dependent misses per packet.
//!
//! Both use the same keys, the same slab layout (40-byte entries) and the same hash
//! (`FlowKey::table_hash`). Printed beside: the ratio of the two, measured in this process.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

#[cfg(not(target_arch = "x86_64"))]
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use benches::scenario::Shape;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natgw_allocator::Timestamp;
use natgw_config::Protocol;
use natgw_dataplane::nat::flow::FlowKey;
use natgw_dataplane::nat::session::{Session, SessionTable};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const BURST: usize = 32;
const SEED: u64 = 0x5eed_1234_abcd_0001;

/// A 40-byte slab entry like the dataplane's `Session`.
#[derive(Clone, Copy, Default)]
struct Entry {
    private_ip: u32,
    remote_ip: u32,
    _public_ip: u32,
    private_port: u16,
    remote_port: u16,
    _public_port: u16,
    proto: u8,
    _rest: [u8; 21],
}

#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([u64; 8]);

/// The prototype: open addressing over 64-byte buckets, linear probing bucket to bucket.
struct Staged {
    buckets: Vec<Bucket>,
    mask: usize,
    slab: Vec<Entry>,
}

fn tag_of(h: u64) -> u64 {
    (h >> 32) | 1 // never 0, so 0 marks an empty entry
}

impl Staged {
    fn new(capacity: usize) -> Staged {
        let n = (capacity / 4).next_power_of_two().max(1);
        Staged {
            buckets: vec![Bucket::default(); n],
            mask: n - 1,
            slab: Vec::with_capacity(capacity),
        }
    }

    fn insert(&mut self, key: &FlowKey) {
        let id = self.slab.len() as u64;
        self.slab.push(Entry {
            private_ip: key.local_ip.to_bits(),
            remote_ip: key.remote_ip.to_bits(),
            _public_ip: 0,
            private_port: key.local_port,
            remote_port: key.remote_port,
            _public_port: 0,
            proto: key.proto as u8,
            _rest: [0; 21],
        });
        let h = key.table_hash(SEED);
        let mut b = h as usize & self.mask;
        loop {
            if let Some(e) = self.buckets[b].0.iter_mut().find(|e| **e == 0) {
                *e = (tag_of(h) << 32) | id;
                return;
            }
            b = (b + 1) & self.mask;
        }
    }

    fn matches(e: &Entry, key: &FlowKey) -> bool {
        e.private_ip == key.local_ip.to_bits()
            && e.remote_ip == key.remote_ip.to_bits()
            && e.private_port == key.local_port
            && e.remote_port == key.remote_port
            && e.proto == key.proto as u8
    }

    /// The full lookup of one key (also the fallback of a tag collision).
    fn lookup_one(&self, key: &FlowKey, h: u64) -> Option<u32> {
        let tag = tag_of(h);
        let mut b = h as usize & self.mask;
        loop {
            let bucket = &self.buckets[b].0;
            for &e in bucket {
                if e >> 32 == tag && Self::matches(&self.slab[(e & 0xffff_ffff) as usize], key) {
                    return Some(e as u32);
                }
            }
            if bucket.contains(&0) {
                return None;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Look up a burst in three stages.
    fn lookup_burst(&self, keys: &[FlowKey], out: &mut [Option<u32>; BURST]) {
        let mut hs = [0u64; BURST];
        // Stage 1: hashes, and a prefetch of each bucket (the cache lines arrive together).
        for (i, k) in keys.iter().enumerate() {
            let h = k.table_hash(SEED);
            hs[i] = h;
            prefetch(&self.buckets[h as usize & self.mask]);
        }
        // Stage 2: the candidate id from the (now cached) bucket, and a prefetch of its slab entry.
        let mut ids = [u32::MAX; BURST];
        for i in 0..keys.len() {
            let h = hs[i];
            let tag = tag_of(h);
            if let Some(&e) = self.buckets[h as usize & self.mask]
                .0
                .iter()
                .find(|&&e| e >> 32 == tag)
            {
                ids[i] = e as u32;
                prefetch(&self.slab[ids[i] as usize]);
            }
        }
        // Stage 3: confirm (cached), or fall back to the full probe.
        for (i, k) in keys.iter().enumerate() {
            out[i] = match ids[i] {
                id if id != u32::MAX && Self::matches(&self.slab[id as usize], k) => Some(id),
                _ => self.lookup_one(k, hs[i]),
            };
        }
    }
}

/// Ask for the cache line holding `x` without waiting for it.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults nor changes memory; the pointer comes from a
    // live reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    black_box(x);
}

struct Fixture {
    table: SessionTable,
    staged: Staged,
    keys: Vec<FlowKey>,
}

fn fixture() -> Fixture {
    let shape = Shape::udp(16, 1);
    let n = shape.sessions() as usize;
    let now = Timestamp::from_secs(1_000);
    let mut table = SessionTable::with_capacity(n as u32, SEED, now);
    let mut staged = Staged::new(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let f = shape.flow(i);
        let k = f.key();
        let s = Session::new(
            Protocol::Udp,
            k.local_ip,
            k.local_port,
            Ipv4Addr::new(100, 64, 0, 16 + (i % 16) as u8),
            1024 + (i / 16) as u16, // i / 16 < 64,512: unique per public IP
            k.remote_ip,
            k.remote_port,
            0,
        );
        table
            .insert(s, now, now.saturating_add(Duration::from_secs(240)))
            .expect("insert");
        staged.insert(&k);
        keys.push(k);
    }
    keys.shuffle(&mut SmallRng::seed_from_u64(7));
    Fixture {
        table,
        staged,
        keys,
    }
}

fn ns_per_lookup(f: &Fixture, staged: bool) -> f64 {
    let t = Instant::now();
    let mut out = [None; BURST];
    let mut found = 0usize;
    for chunk in f.keys.chunks_exact(BURST) {
        if staged {
            f.staged.lookup_burst(chunk, &mut out);
            found += out.iter().filter(|o| o.is_some()).count();
        } else {
            for k in chunk {
                found += usize::from(f.table.lookup_in2out(k).is_some());
            }
        }
    }
    assert_eq!(found, f.keys.len() / BURST * BURST, "lookups must all hit");
    t.elapsed().as_secs_f64() * 1e9 / found as f64
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let mut base = Vec::new();
    let mut proto = Vec::new();
    for _ in 0..3 {
        base.push(ns_per_lookup(&f, false));
        proto.push(ns_per_lookup(&f, true));
    }
    base.sort_by(f64::total_cmp);
    proto.sort_by(f64::total_cmp);
    eprintln!(
        "session: unstaged lookup_in2out {:.1} ns/lookup, staged prototype {:.1} ns/lookup: ratio {:.2} \
         (1,032,192 sessions, random order, bursts of 32)",
        base[1],
        proto[1],
        base[1] / proto[1]
    );

    let mut g = c.benchmark_group("session");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BURST as u64));
    let mut pos = 0usize;
    let n_bursts = f.keys.len() / BURST;
    g.bench_function("lookup_in2out/sessions=1M", |b| {
        b.iter(|| {
            let chunk = &f.keys[pos * BURST..(pos + 1) * BURST];
            pos = (pos + 1) % n_bursts;
            chunk
                .iter()
                .filter(|k| f.table.lookup_in2out(k).is_some())
                .count()
        })
    });
    let mut out = [None; BURST];
    g.bench_function("staged_prototype/sessions=1M", |b| {
        b.iter(|| {
            let chunk = &f.keys[pos * BURST..(pos + 1) * BURST];
            pos = (pos + 1) % n_bursts;
            f.staged.lookup_burst(chunk, &mut out);
            out[0]
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
