//! wire/*: the per-packet header work of the fast path, on a 64-byte UDP frame already in cache.
//!
//! - `wire/checksum/update_addr` and `wire/checksum/update_u16`: RFC 1624 incremental updates (what
//!   every translation does);
//! - `wire/checksum/full_ipv4_header`: a full RFC 1071 recompute of a 20-byte header (what the NAT
//!   avoids), and `wire/checksum/verify_ipv4_header` (what the parser does once per frame);
//! - `wire/parse/eth_ipv4_udp`: the NAT core's Ethernet + IPv4 + UDP checks (`nat::parse`);
//! - `wire/rewrite/in2out_udp`: the source rewrite of an in2out translation (`nat::rewrite`): address,
//!   port, TTL and both checksums.
//!
//! Printed beside: the machine-independent ratios full recompute / incremental update and
//! (parse + rewrite) / parse, measured in this process.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natgw_dataplane::nat::parse;
use natgw_dataplane::nat::rewrite;
use natgw_dataplane::wire::icmp::Endpoint;
use natgw_dataplane::wire::{checksum, FrameBuilder, MacAddr};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x01]);

fn frame() -> Vec<u8> {
    FrameBuilder::udp(
        SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 40_000),
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 7), 53),
    )
    .macs(MacAddr([0x02, 0, 0, 0, 0x01, 0x10]), OUR_MAC)
    .pad_to(60)
    .build()
}

/// Nanoseconds per call of `f`, timed over `n` calls.
fn ns_per(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e9 / f64::from(n)
}

fn ratios() {
    let f = frame();
    let hdr: [u8; 20] = f[14..34].try_into().expect("20 bytes");
    let (a, b) = (Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(100, 64, 0, 16));
    let n = 20_000_000;
    let mut full = Vec::new();
    let mut incr = Vec::new();
    let mut parse_ns = Vec::new();
    let mut both_ns = Vec::new();
    for _ in 0..3 {
        full.push(ns_per(n, || {
            black_box(checksum::compute(black_box(&hdr)));
        }));
        incr.push(ns_per(n, || {
            black_box(checksum::update_addr(black_box(0x1234), a, b));
        }));
        parse_ns.push(ns_per(n / 4, || {
            let fr = black_box(&f[..]);
            let _ = black_box(parse::ethernet(fr, OUR_MAC).is_ok());
            let _ = black_box(parse::ipv4(fr));
        }));
        let mut buf = f.clone();
        both_ns.push(ns_per(n / 4, || {
            let fr = black_box(&mut buf[..]);
            let _ = black_box(parse::ethernet(fr, OUR_MAC).is_ok());
            if let Ok(p) = parse::ipv4(fr) {
                rewrite::translate(fr, &p, Endpoint::Source, b, 2_000);
                // Undo the TTL and address change so the next round parses the same frame.
                fr[14..34].copy_from_slice(&hdr);
            }
        }));
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (full, incr, parse_ns, both_ns) = (med(full), med(incr), med(parse_ns), med(both_ns));
    eprintln!(
        "wire: full IPv4 header checksum {full:.2} ns, incremental address update {incr:.2} ns: ratio {:.1}",
        full / incr
    );
    eprintln!(
        "wire: parse {parse_ns:.1} ns, parse + in2out rewrite {both_ns:.1} ns: ratio {:.2}",
        both_ns / parse_ns
    );
}

fn bench(c: &mut Criterion) {
    ratios();
    let f = frame();
    let hdr: [u8; 20] = f[14..34].try_into().expect("20 bytes");
    let (a, b) = (Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(100, 64, 0, 16));

    let mut g = c.benchmark_group("wire");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    g.bench_function("checksum/update_addr", |bch| {
        bch.iter(|| checksum::update_addr(black_box(0x1234), black_box(a), black_box(b)))
    });
    g.bench_function("checksum/update_u16", |bch| {
        bch.iter(|| checksum::update_u16(black_box(0x1234), black_box(40_000), black_box(2_000)))
    });
    g.bench_function("checksum/full_ipv4_header", |bch| {
        bch.iter(|| checksum::compute(black_box(&hdr)))
    });
    g.bench_function("checksum/verify_ipv4_header", |bch| {
        bch.iter(|| checksum::is_valid(checksum::sum(black_box(&hdr))))
    });
    g.bench_function("parse/eth_ipv4_udp", |bch| {
        bch.iter(|| {
            let fr = black_box(&f[..]);
            (
                parse::ethernet(fr, OUR_MAC).is_ok(),
                parse::ipv4(fr).is_ok(),
            )
        })
    });
    let mut buf = f.clone();
    g.bench_function("rewrite/in2out_udp", |bch| {
        let p = parse::ipv4(&f).expect("valid frame");
        bch.iter(|| {
            let fr = black_box(&mut buf[..]);
            rewrite::translate(fr, &p, Endpoint::Source, b, 2_000);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
