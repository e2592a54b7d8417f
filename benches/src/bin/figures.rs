//! The figures report: `cargo run --release -p benches --bin figures -- [--quick] [--only SECTION,...]`.
//!
//! Prints one JSON object per line (`{"figure", "value", "unit", "target", "machine", "quick", ...}`) for
//! the numbers DESIGN §6 holds us to, each measured through the real NAT core and allocator on one core
//! (see `benches::scenario` for the CSIT layout and `benches::harness` for the loops). Progress and
//! timings go to stderr. `--quick` runs fewer iterations and smaller ladder steps (under a minute on the
//! 2-core development machine); the default (full) mode takes a few minutes and about 3 GiB.
//!
//! Sections (all by default): `established_4k`, `established_64k`, `established`, `tcp` (full mode
//! only unless named), `new_flows`, `new_flows_16m`, `alloc`, `handoff`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use benches::harness::{median, Replay, RunStats};
use benches::report::{Reporter, Target};
use benches::scenario::{core_params, public_ip, Flow, Scenario, Shape, GATEWAY_MAC};
use benches::stream::FrameStream;
use natgw_allocator::{
    AllocatorConfig, CloseKind, Cooldowns, Endpoint, FlowRequest, Inventory, Lease, Ownership,
    Protocol, ShardAllocator, Timestamp,
};
use natgw_dataplane::nat::flow::flow_shard;
use natgw_dataplane::nat::frag::FragSteer;
use natgw_dataplane::nat::{NatCore, Side, Verdict};
use natgw_dataplane::wire::TcpFlags;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde_json::json;

const SECTIONS: &[&str] = &[
    "established_4k",
    "established_64k",
    "established",
    "tcp",
    "new_flows",
    "new_flows_16m",
    "alloc",
    "handoff",
];

struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts {
            quick: false,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--only" => {
                    let list = args.next().context("--only needs a list of sections")?;
                    let v: Vec<String> = list.split(',').map(str::to_string).collect();
                    for s in &v {
                        if !SECTIONS.contains(&s.as_str()) {
                            bail!("unknown section {s:?}; sections: {}", SECTIONS.join(", "));
                        }
                    }
                    o.only = Some(v);
                }
                "-h" | "--help" => {
                    eprintln!("usage: figures [--quick] [--only {}]", SECTIONS.join(","));
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(o)
    }

    fn wants(&self, section: &str) -> bool {
        match &self.only {
            Some(v) => v.iter().any(|s| s == section),
            // TCP established repeats the established setup with a handshake: full mode only.
            None => !(self.quick && section == "tcp"),
        }
    }

    /// Pick the quick or the full value.
    fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("figures: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rep = Reporter::new(opts.quick);
    let t0 = Instant::now();
    type Section = fn(&Opts, &Reporter) -> anyhow::Result<()>;
    let sections: [(&str, Section); 9] = [
        ("established_4k", established_4k),
        ("established_64k", established_64k),
        ("established", established),
        ("tcp", established_tcp),
        ("new_flows", new_flows_1m),
        ("new_flows_16m", new_flows_16m),
        ("alloc", alloc),
        ("handoff", handoff),
        ("dpdk", dpdk_ceiling),
    ];
    for (name, f) in sections {
        if !opts.wants(name) {
            continue;
        }
        let t = Instant::now();
        if let Err(e) = f(&opts, &rep) {
            eprintln!("figures: section {name}: {e:#}");
            return ExitCode::FAILURE;
        }
        eprintln!("[{name}: {:.1} s]", t.elapsed().as_secs_f64());
    }
    eprintln!("[total: {:.1} s]", t0.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

/// Resident memory of this process, from /proc/self/status (0 where unavailable).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn check_all_forwarded(what: &str, st: &RunStats) -> anyhow::Result<()> {
    if st.forwarded != st.packets {
        bail!(
            "{what}: {} of {} frames forwarded (first other verdict: {:?})",
            st.forwarded,
            st.packets,
            st.first_other
        );
    }
    Ok(())
}

/// Established traffic figures for one filled scenario: NAT mixed, in2out only, out2in only, plain
/// forwarding and copy only, interleaved round by round so that ratios come from the same moments.
struct Established {
    nat: Vec<f64>,
    in2out: Vec<f64>,
    out2in: Vec<f64>,
    forward: Vec<f64>,
    copy: Vec<f64>,
    ratio: Vec<f64>,
}

fn measure_established(
    sc: &mut Scenario,
    inside: &FrameStream,
    outside: &FrameStream,
    rounds: usize,
    packets: u64,
) -> anyhow::Result<Established> {
    let mut mixed = Replay::new(&[(Side::Inside, inside), (Side::Outside, outside)]);
    let mut ins = Replay::new(&[(Side::Inside, inside)]);
    let mut outs = Replay::new(&[(Side::Outside, outside)]);
    let mut fwd = Replay::new(&[(Side::Inside, inside), (Side::Outside, outside)]);
    let mut copy = Replay::new(&[(Side::Inside, inside), (Side::Outside, outside)]);
    // Warm-up: one pass over both streams (page faults of fresh buffers, caches, branch predictors).
    let warm = (inside.len() + outside.len()) as u64;
    check_all_forwarded("warm-up", &mixed.nat(&mut sc.core, &mut sc.now, warm))?;
    let mut e = Established {
        nat: vec![],
        in2out: vec![],
        out2in: vec![],
        forward: vec![],
        copy: vec![],
        ratio: vec![],
    };
    for r in 0..rounds {
        let n = mixed.nat(&mut sc.core, &mut sc.now, packets);
        check_all_forwarded("established mixed", &n)?;
        let f = fwd.forward(packets);
        check_all_forwarded("plain forward", &f)?;
        let i = ins.nat(&mut sc.core, &mut sc.now, packets / 2);
        check_all_forwarded("established in2out", &i)?;
        let o = outs.nat(&mut sc.core, &mut sc.now, packets / 2);
        check_all_forwarded("established out2in", &o)?;
        let c = copy.copy(packets);
        eprintln!(
            "  round {r}: nat {:.2} Mpps (in2out {:.2}, out2in {:.2}), forward {:.2}, copy {:.2}",
            n.mpps(),
            i.mpps(),
            o.mpps(),
            f.mpps(),
            c.mpps()
        );
        e.nat.push(n.mpps());
        e.in2out.push(i.mpps());
        e.out2in.push(o.mpps());
        e.forward.push(f.mpps());
        e.copy.push(c.mpps());
        e.ratio.push(n.mpps() / f.mpps());
    }
    Ok(e)
}

/// The same measurement on small working sets: 4,096 sessions (the session table fits the L2 cache:
/// what the per-packet code costs without cache misses) and one public IP's 64,512 sessions.
fn established_4k(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    established_small(o, rep, "established_mpps_1core_4k", 4_096)
}

fn established_64k(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    established_small(o, rep, "established_mpps_1core_64k", 64_512)
}

fn established_small(o: &Opts, rep: &Reporter, name: &str, n: u64) -> anyhow::Result<()> {
    let rounds = o.pick(3, 5);
    let packets = o.pick(2_000_000, 8_000_000);
    {
        let shape = Shape::udp(1, 1);
        let mut sc = Scenario::new(shape, n as u32, 11)?;
        sc.fill(|i| shape.flow(i), 0, n, 65_536)?;
        let (i, out) = sc.established_streams_over(n, 12)?;
        let e = measure_established(&mut sc, &i, &out, rounds, packets)?;
        rep.emit(
            name,
            median(&e.nat),
            "Mpps",
            Target::None,
            json!({"sessions": sc.core.session_count(), "proto": "udp", "mix": "50% in2out, 50% out2in (alternating bursts of 32)",
                   "frame_bytes": 64, "burst": 32, "rounds": rounds, "packets_per_round": packets, "samples": e.nat,
                   "in2out_mpps": median(&e.in2out), "out2in_mpps": median(&e.out2in),
                   "plain_forward_mpps": median(&e.forward), "ratio": median(&e.ratio),
                   "ns_per_packet": 1e3 / median(&e.nat)}),
        );
    }
    Ok(())
}

fn established(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    let rounds = o.pick(3, 5);
    let packets = o.pick(2_000_000, 8_000_000);

    let shape = Shape::udp(16, 1);
    let t = Instant::now();
    let mut sc = Scenario::new(shape, shape.sessions() as u32, 21)?;
    let fill = sc.fill_all(131_072)?;
    let (inside, outside) = sc.established_streams(22)?;
    eprintln!(
        "  setup: {} sessions in {:.1} s (NAT {:.2} s, frame building {:.2} s); streams {} MiB",
        sc.core.session_count(),
        t.elapsed().as_secs_f64(),
        fill.nat_time.as_secs_f64(),
        fill.build_time.as_secs_f64(),
        (inside.memory_bytes() + outside.memory_bytes()) >> 20
    );
    let sessions = sc.core.session_count();
    let mem = sc.core.memory_bytes();
    let alloc_mem = sc.core.allocator_ref().memory_bytes();
    let leases = sc.core.allocator_ref().live_leases();
    let ctx = json!({
        "sessions": sessions, "public_ips": 16, "proto": "udp",
        "mix": "50% in2out, 50% out2in (alternating bursts of 32)",
        "flow_order": "random permutation of all sessions per direction",
        "frame_bytes": 64, "burst": 32, "rounds": rounds, "packets_per_round": packets,
        "buffers": "prebuilt frames copied into 32 reused 2 KiB buffers per burst (copy included)",
    });
    let e = measure_established(&mut sc, &inside, &outside, rounds, packets)?;
    let with = |extra: serde_json::Value| {
        let mut c = ctx.clone();
        if let (Some(c), serde_json::Value::Object(x)) = (c.as_object_mut(), extra) {
            c.extend(x);
        }
        c
    };
    rep.emit(
        "established_mpps_1core",
        median(&e.nat),
        "Mpps",
        Target::AtLeast(20.0),
        with(json!({"samples": e.nat, "ns_per_packet": 1e3 / median(&e.nat)})),
    );
    rep.emit(
        "established_in2out_mpps_1core",
        median(&e.in2out),
        "Mpps",
        Target::None,
        with(json!({"samples": e.in2out})),
    );
    rep.emit(
        "established_out2in_mpps_1core",
        median(&e.out2in),
        "Mpps",
        Target::None,
        with(json!({"samples": e.out2in})),
    );
    rep.emit(
        "plain_forward_mpps_1core",
        median(&e.forward),
        "Mpps",
        Target::None,
        with(json!({"samples": e.forward,
                    "what": "same harness and streams; Ethernet+IPv4 checks, TTL decrement, MAC rewrite; no NAT"})),
    );
    rep.emit(
        "established_vs_forward_ratio",
        median(&e.ratio),
        "ratio",
        Target::None,
        with(json!({"samples": e.ratio, "what": "established_mpps / plain_forward_mpps, per round, same run"})),
    );
    rep.emit(
        "harness_copy_only_mpps_1core",
        median(&e.copy),
        "Mpps",
        Target::None,
        with(json!({"samples": e.copy, "what": "the harness alone: copying frames into the burst buffers"})),
    );
    let table = mem - alloc_mem;
    rep.emit(
        "bytes_per_session",
        mem as f64 / sessions as f64,
        "bytes",
        Target::AtMost(96.0),
        json!({"sessions": sessions, "table_capacity": sessions,
               "session_table_bytes_per_session": table as f64 / sessions as f64,
               "allocator_bytes_per_session": alloc_mem as f64 / sessions as f64,
               "what": "NatCore::memory_bytes() (slab, both indexes, wheel, allocator) / live sessions, table sized for exactly these sessions",
               "process_rss_mib": rss_bytes() >> 20}),
    );
    rep.emit(
        "alloc_bytes_per_lease",
        alloc_mem as f64 / leases as f64,
        "bytes",
        Target::AtMost(32.0),
        json!({"leases": leases, "public_ips": 16, "mix": "the NAT scenario's UDP leases (63 per public IP per destination)"}),
    );
    rep.emit(
        "new_flows_per_s_1core_ramp_1m",
        fill.rate(),
        "flows/s",
        Target::None,
        json!({"sessions": sessions, "what": "CSIT-style: creating all sessions from an empty table (UDP first packets)",
               "chunk_rates": fill.chunk_rates.iter().map(|r| benches::report::round(*r)).collect::<Vec<_>>()}),
    );
    Ok(())
}

fn established_tcp(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    let rounds = o.pick(3, 5);
    let packets = o.pick(2_000_000, 8_000_000);
    let shape = Shape {
        public_ips: 16,
        dests: 1,
        proto: Protocol::Tcp,
    };
    let mut sc = Scenario::new(shape, shape.sessions() as u32, 31)?;
    sc.fill_all(131_072)?;
    let (inside, outside) = sc.established_streams(32)?;
    let e = measure_established(&mut sc, &inside, &outside, rounds, packets)?;
    rep.emit(
        "established_mpps_1core_tcp",
        median(&e.nat),
        "Mpps",
        Target::AtLeast(20.0),
        json!({"sessions": sc.core.session_count(), "public_ips": 16, "proto": "tcp (ACK segments, sessions established by SYN / SYN-ACK)",
               "mix": "50% in2out, 50% out2in (alternating bursts of 32)", "frame_bytes": 64, "burst": 32,
               "samples": e.nat, "plain_forward_mpps": median(&e.forward), "ratio": median(&e.ratio)}),
    );
    Ok(())
}

/// New-flow rates on top of a filled scenario: `chunks` chunks of `chunk` fresh flows, protocols
/// alternating as given. Returns the chunk rates per protocol.
fn fresh_chunks(
    sc: &mut Scenario,
    protos: &[Protocol],
    chunks: usize,
    chunk: u64,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let shape = sc.shape;
    let (mut udp, mut tcp) = (vec![], vec![]);
    for c in 0..chunks {
        let proto = protos[c % protos.len()];
        let first = c as u64 * chunk;
        let rep = sc.fill(|k| shape.fresh_flow(k, proto), first, chunk, chunk)?;
        let rate = rep.chunk_rates[0];
        eprintln!(
            "  chunk {c} ({proto:?}): {:.2} M new flows/s at {} live",
            rate / 1e6,
            sc.core.session_count()
        );
        match proto {
            Protocol::Tcp => tcp.push(rate),
            _ => udp.push(rate),
        }
    }
    Ok((udp, tcp))
}

fn new_flows_1m(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    let chunk = o.pick(32_768u64, 65_536);
    let chunks = o.pick(6usize, 12);
    let shape = Shape::udp(16, 1);
    let cap = shape.sessions() + chunk * chunks as u64;
    let mut sc = Scenario::new(shape, cap as u32, 41)?;
    sc.fill_all(131_072)?;
    let live = sc.core.session_count();
    let (udp, tcp) = fresh_chunks(&mut sc, &[Protocol::Udp, Protocol::Tcp], chunks, chunk)?;
    let ctx = |samples: &Vec<f64>, what: &str| {
        json!({"live_sessions_before": live, "live_sessions_after": sc.core.session_count(),
               "chunk_flows": chunk, "samples": samples, "what": what,
               "includes": "parse, policy, port allocation (paired pooling, random port), session insert in both indexes and the wheel, translation, forward"})
    };
    rep.emit(
        "new_flows_per_s_1core",
        median(&udp),
        "flows/s",
        Target::AtLeast(5e6),
        ctx(&udp, "UDP first packets, each creating a session"),
    );
    rep.emit(
        "new_tcp_flows_per_s_1core",
        median(&tcp),
        "flows/s",
        Target::AtLeast(5e6),
        ctx(&tcp, "TCP SYNs, each creating a session"),
    );
    Ok(())
}

fn new_flows_16m(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    // 16 public IPs x 1,024 hosts x 63 ports x 16 destination groups = 16,515,072 sessions. The quick
    // run stops at CSIT's previous ladder step (4,128,768) to stay under a minute.
    let dests = o.pick(4, 16);
    let name = o.pick("new_flows_per_s_1core_4m", "new_flows_per_s_1core_16m");
    let chunk = 65_536u64;
    let chunks = o.pick(2usize, 4);
    let shape = Shape::udp(16, dests);
    let cap = shape.sessions() + chunk * chunks as u64;
    let rss0 = rss_bytes();
    let t = Instant::now();
    let mut sc = Scenario::new(shape, cap as u32, 51)?;
    let fill = sc.fill_all(262_144)?;
    let sessions = sc.core.session_count();
    let mem = sc.core.memory_bytes();
    let alloc_mem = sc.core.allocator_ref().memory_bytes();
    let rss = rss_bytes().saturating_sub(rss0);
    eprintln!(
        "  setup: {sessions} sessions in {:.1} s (NAT {:.1} s), core memory {} MiB, RSS +{} MiB",
        t.elapsed().as_secs_f64(),
        fill.nat_time.as_secs_f64(),
        mem >> 20,
        rss >> 20
    );
    let (udp, _) = fresh_chunks(&mut sc, &[Protocol::Udp], chunks, chunk)?;
    let tail: Vec<f64> = fill.chunk_rates.iter().rev().take(4).copied().collect();
    rep.emit(
        name,
        median(&udp),
        "flows/s",
        Target::AtLeast(2e6),
        json!({"live_sessions_before": sessions, "public_ips": 16, "destination_groups": dests,
               "chunk_flows": chunk, "samples": udp, "what": "UDP first packets, each creating a session",
               "ramp_rate_flows_per_s": benches::report::round(fill.rate()),
               "ramp_last_chunks_flows_per_s": tail.iter().map(|r| benches::report::round(*r)).collect::<Vec<_>>(),
               "memory_bytes": mem, "process_rss_growth_mib": rss >> 20}),
    );
    rep.emit(
        o.pick("bytes_per_session_4m", "bytes_per_session_16m"),
        mem as f64 / sessions as f64,
        "bytes",
        Target::AtMost(96.0),
        json!({"sessions": sessions, "table_capacity": cap,
               "allocator_bytes_per_session": alloc_mem as f64 / sessions as f64,
               "memory_mib": mem >> 20, "process_rss_growth_mib": rss >> 20}),
    );
    Ok(())
}

/// The allocator bench's request mixes (benches/benches/allocator.rs): 16,384 hosts; "popular": 4,096
/// destinations on port 443; "unique": every lease towards its own destination.
fn alloc_request(rng: &mut SmallRng, unique: bool) -> FlowRequest {
    let r = rng.next_u64();
    let host = Ipv4Addr::from(0x0a00_0000 | (r as u32 & 0x3fff));
    let dest = if unique {
        Endpoint::new(Ipv4Addr::from((r >> 32) as u32), (r >> 16) as u16 | 1)
    } else {
        Endpoint::new(
            Ipv4Addr::from(0xc633_0000 | ((r >> 32) as u32 & 0xfff)),
            443,
        )
    };
    FlowRequest {
        proto: Protocol::Tcp,
        host,
        dest,
    }
}

struct AllocRun {
    per_s: Vec<f64>,
    bytes_per_lease: f64,
    leases: usize,
}

fn alloc_run(
    unique: bool,
    cooldown: Cooldowns,
    live: usize,
    ops: usize,
    rounds: usize,
) -> anyhow::Result<AllocRun> {
    let cfg = AllocatorConfig {
        public_ips: (0..16).map(public_ip).collect(),
        max_sessions: 4_000_000,
        cooldown,
        ..AllocatorConfig::default()
    };
    let (_inv, mut shards) = Inventory::new(cfg, 1, Ownership::Blocks)?;
    let mut shard: ShardAllocator = shards.remove(0);
    let mut rng = SmallRng::seed_from_u64(42);
    let mut t = Timestamp::from_secs(1);
    let mut leases: Vec<Lease> = Vec::with_capacity(live);
    let mut failures = 0u64;
    while leases.len() < live {
        match shard.allocate(&alloc_request(&mut rng, unique), t, &mut rng) {
            Ok(l) => leases.push(l),
            Err(_) => failures += 1,
        }
        if failures > live as u64 {
            bail!("allocator setup: too many failures");
        }
    }
    let bytes_per_lease = shard.memory_bytes() as f64 / shard.live_leases() as f64;
    let mut per_s = Vec::new();
    let mut i = 0usize;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..ops {
            // Virtual clock: 50 ns per allocate + release.
            t = Timestamp::from_nanos(t.as_nanos() + 50);
            if i % 1024 == 0 {
                shard.handle_timeout(t);
            }
            let slot = i % live;
            shard.release(&leases[slot], CloseKind::TcpFin, t);
            loop {
                if let Ok(l) = shard.allocate(&alloc_request(&mut rng, unique), t, &mut rng) {
                    leases[slot] = l;
                    break;
                }
            }
            i += 1;
        }
        per_s.push(ops as f64 / start.elapsed().as_secs_f64());
    }
    Ok(AllocRun {
        per_s,
        bytes_per_lease,
        leases: shard.live_leases(),
    })
}

fn alloc(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    let live = 1 << 20;
    let ops = o.pick(300_000, 2_000_000);
    let rounds = o.pick(3, 5);
    let fin_1ms = Cooldowns {
        tcp_fin: Duration::from_millis(1),
        ..Cooldowns::ZERO
    };
    let variants: [(&str, bool, Cooldowns, Target, &str); 3] = [
        ("alloc_per_s_1core", false, Cooldowns::ZERO, Target::AtLeast(20e6),
         "popular mix: 16,384 hosts, 4,096 destinations on port 443; release without cool-down (allocator bench alloc_release/leases=1M/popular)"),
        ("alloc_per_s_1core_unique", true, Cooldowns::ZERO, Target::AtLeast(20e6),
         "every lease towards its own destination; release without cool-down"),
        ("alloc_per_s_1core_fin_cooldown", false, fin_1ms, Target::AtLeast(20e6),
         "popular mix; every release goes through the FIN cool-down queue (1 ms virtual) and its expiry"),
    ];
    for (name, unique, cd, target, what) in variants {
        let r = alloc_run(unique, cd, live, ops, rounds)?;
        eprintln!("  {name}: {:?}", r.per_s);
        rep.emit(
            name,
            median(&r.per_s),
            "ops/s",
            target,
            json!({"live_leases": r.leases, "public_ips": 16, "ops_per_round": ops, "samples": r.per_s,
                   "op": "one release + one allocate", "what": what,
                   "allocator_bytes_per_lease": r.bytes_per_lease}),
        );
        if name == "alloc_per_s_1core" {
            rep.emit(
                "alloc_bytes_per_lease_popular",
                r.bytes_per_lease,
                "bytes",
                Target::AtMost(32.0),
                json!({"live_leases": r.leases, "what": what}),
            );
        }
    }
    Ok(())
}

/// Two shards with software steering: inside frames go to the shard `flow_shard` names, outside frames
/// to the owner of their public port. Counts handoff verdicts (DESIGN §6: at most 1%), and what plain
/// 5-tuple RSS on the outside would give instead.
fn handoff(o: &Opts, rep: &Reporter) -> anyhow::Result<()> {
    let shape = Shape::udp(1, 1);
    let flows = o.pick(16_384u64, shape.sessions());
    let cfg = shape.allocator_config(1 << 20);
    let ips = cfg.public_ips.clone();
    let (inv, allocs) = Inventory::new(cfg, 2, Ownership::Blocks)?;
    let owners = inv.owners();
    let now = Timestamp::from_secs(1_000);
    let mut cores: Vec<NatCore> = allocs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut c = NatCore::new(
                core_params(&ips, 2, flows as u32),
                a,
                owners.clone(),
                FragSteer::default(),
                60 + i as u64,
                now,
            );
            c.set_gateway_mac(Some(GATEWAY_MAC));
            c
        })
        .collect();
    let mut verdicts = Vec::new();
    let mut bursts = [
        natgw_dataplane::port::Burst::new(1),
        natgw_dataplane::port::Burst::new(1),
    ];
    let mut one = |cores: &mut Vec<NatCore>, shard: usize, side: Side, frame: &[u8]| {
        let b = &mut bursts[shard];
        b.clear();
        b.push_copy(frame);
        cores[shard].process_burst(now, side, b.frames_mut(), &mut verdicts);
        verdicts[0]
    };
    let (mut packets, mut handoffs, mut naive_handoffs, mut forwarded) = (0u64, 0u64, 0u64, 0u64);
    let mut publics: Vec<(Flow, SocketAddrV4, usize)> = Vec::with_capacity(flows as usize);
    for i in 0..flows {
        let f = shape.flow(i);
        let p = f.private;
        let r = f.remote;
        let s = usize::from(flow_shard(*p.ip(), *r.ip(), p.port(), r.port(), 17, 2));
        let v = one(
            &mut cores,
            s,
            Side::Inside,
            &f.in2out(TcpFlags::ACK).build(),
        );
        packets += 1;
        match v {
            Verdict::Handoff { .. } => handoffs += 1,
            Verdict::Forward { .. } => forwarded += 1,
            _ => {}
        }
        let sess = cores[s]
            .find_in2out(&f.key())
            .context("handoff: session not created on its flow shard")?;
        publics.push((f, SocketAddrV4::new(sess.public_ip, sess.public_port), s));
    }
    for (f, public, _) in &publics {
        let frame = f.out2in(*public, TcpFlags::ACK).build();
        let s = owners
            .owner(*public.ip(), Protocol::Udp, public.port())
            .context("no owner")?
            .0 as usize;
        let v = one(&mut cores, s, Side::Outside, &frame);
        packets += 1;
        match v {
            Verdict::Handoff { .. } => handoffs += 1,
            Verdict::Forward { .. } => forwarded += 1,
            _ => {}
        }
        // What 5-tuple RSS on the reply would have picked.
        let r = f.remote;
        let naive = usize::from(flow_shard(
            *r.ip(),
            *public.ip(),
            r.port(),
            public.port(),
            17,
            2,
        ));
        if naive != s {
            naive_handoffs += 1;
        }
    }
    let replies = publics.len() as f64;
    rep.emit(
        "handoff_fraction",
        handoffs as f64 / packets as f64,
        "fraction",
        Target::AtMost(0.01),
        json!({"shards": 2, "flows": flows, "packets": packets, "forwarded": forwarded,
               "steering": "inside: flow_shard(5-tuple); outside: OwnerMap(public ip, port) (what the NIC or fanout program programs)",
               "naive_rss_outside_handoff_fraction": naive_handoffs as f64 / replies,
               "sessions_per_shard": [cores[0].session_count(), cores[1].session_count()]}),
    );
    Ok(())
}

/// `dpdk_vs_testpmd_ratio`: the appliance's fast path on its DPDK backend over `net_null` against
/// `dpdk-testpmd` io forwarding, in one run. DPDK's EAL starts once per process, so the `dpdk_ceiling`
/// program (built beside this one with `--features dpdk`) measures it and its lines are passed through.
fn dpdk_ceiling(opts: &Opts, _rep: &Reporter) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?.with_file_name("dpdk_ceiling");
    if !cfg!(feature = "dpdk") || !exe.is_file() {
        eprintln!(
            "figures: dpdk_vs_testpmd_ratio not measured: build with the dpdk feature \
             (cargo run --release -p benches --features dpdk --bin figures)"
        );
        return Ok(());
    }
    let mut cmd = std::process::Command::new(&exe);
    if opts.quick {
        cmd.arg("--quick");
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        eprintln!("figures: {} exited with {}", exe.display(), out.status);
    }
    Ok(())
}
