//! pipeline/*: the NAT core's burst pipeline on one core, 64-byte frames, bursts of 32.
//!
//! - `pipeline/established/flows=1M`: one burst of 32 established UDP frames per iteration, bursts
//!   alternating in2out / out2in, random flow order over 1,032,192 live sessions (the CSIT layout of
//!   `benches::scenario`); the figure `established_mpps_1core`;
//! - `pipeline/plain_forward/flows=1M`: the same harness and streams without NAT (the ratio's base);
//! - `pipeline/new_flows/live=1M`: one UDP first packet per iteration, each creating a session on top
//!   of 1 M live ones (the figure `new_flows_per_s_1core`); the core is rebuilt, untimed, when its
//!   table would overflow.
//!
//! Before criterion runs, the machine-independent ratio established / plain forward is measured in
//! the same process and printed beside the absolute numbers.

// criterion_group!/criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use benches::harness::{median, Replay, BURST};
use benches::scenario::{Scenario, Shape};
use benches::stream::FrameStream;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natgw_config::Protocol;
use natgw_dataplane::nat::Side;
use natgw_dataplane::wire::TcpFlags;

const NEW_FLOW_HEADROOM: u64 = 1 << 20;

fn established_scenario() -> (Scenario, FrameStream, FrameStream) {
    let shape = Shape::udp(16, 1);
    let mut sc = Scenario::new(shape, shape.sessions() as u32, 21).expect("scenario");
    sc.fill_all(131_072).expect("fill");
    let (i, o) = sc.established_streams(22).expect("streams");
    (sc, i, o)
}

fn bench_established(c: &mut Criterion) {
    let t = Instant::now();
    let (mut sc, inside, outside) = established_scenario();
    eprintln!(
        "pipeline: {} live sessions set up in {:.1} s",
        sc.core.session_count(),
        t.elapsed().as_secs_f64()
    );
    let streams = [(Side::Inside, &inside), (Side::Outside, &outside)];
    // The ratio, measured here in one process, interleaved.
    let mut nat = Replay::new(&streams);
    let mut fwd = Replay::new(&streams);
    nat.nat(&mut sc.core, &mut sc.now, 2_000_000);
    let mut ratios = Vec::new();
    for _ in 0..3 {
        let n = nat.nat(&mut sc.core, &mut sc.now, 2_000_000);
        let f = fwd.forward(2_000_000);
        assert_eq!(
            n.forwarded, n.packets,
            "NAT dropped frames: {:?}",
            n.first_other
        );
        ratios.push(n.mpps() / f.mpps());
    }
    eprintln!(
        "pipeline/established vs pipeline/plain_forward (same run): ratio {:.4} (samples {:?})",
        median(&ratios),
        ratios
    );

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BURST as u64));
    g.bench_function("established/flows=1M", |b| {
        b.iter(|| nat.nat(&mut sc.core, &mut sc.now, BURST as u64))
    });
    g.bench_function("plain_forward/flows=1M", |b| {
        b.iter(|| fwd.forward(BURST as u64))
    });
    g.finish();
}

fn bench_new_flows(c: &mut Criterion) {
    let shape = Shape::udp(16, 1);
    let build = || {
        let cap = shape.sessions() + NEW_FLOW_HEADROOM;
        let mut sc = Scenario::new(shape, cap as u32, 41).expect("scenario");
        sc.fill_all(131_072).expect("fill");
        sc
    };
    let mut sc = build();
    let mut used = 0u64;
    let mut next = 0u64;
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    g.bench_function("new_flows/live=1M", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if used >= NEW_FLOW_HEADROOM {
                    // Untimed: a fresh core at 1 M live sessions.
                    sc = build();
                    used = 0;
                    next = 0;
                }
                let n = left.min(NEW_FLOW_HEADROOM - used).min(1 << 16);
                let mut s = FrameStream::with_capacity(n as usize);
                for k in next..next + n {
                    s.push(&shape.fresh_flow(k, Protocol::Udp).in2out(TcpFlags::SYN))
                        .expect("frame");
                }
                let before = sc.core.session_count();
                let st = Replay::new(&[(Side::Inside, &s)]).nat(&mut sc.core, &mut sc.now, n);
                assert_eq!(
                    (sc.core.session_count() - before) as u64,
                    n,
                    "new flows refused: {:?}",
                    st.first_other
                );
                total += st.elapsed;
                used += n;
                next += n;
                left -= n;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_established, bench_new_flows);
criterion_main!(benches);
