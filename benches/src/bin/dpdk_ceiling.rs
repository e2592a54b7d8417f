//! The DPDK ceiling figure: `cargo run --release -p benches --features dpdk --bin dpdk_ceiling --
//! [--quick] [--no-testpmd] [--cpu N] [--main-cpu N]`.
//!
//! In one run: `dpdk-testpmd` io forwarding on `net_null0` (one forwarding lcore), then the appliance's
//! fast path on its DPDK backend over `net_null0` fed by the in-process generator (one forwarding
//! thread on the same CPU), then testpmd again; the testpmd figure is the mean of the two runs that
//! bracket ours, so slow drift on a shared machine biases neither side. See `benches/src/dpdk_ceiling.rs`
//! for exactly what each loop does.
//!
//! Prints one JSON object per line, like the `figures` report: `dpdk_vs_testpmd_ratio` (target ≥ 0.5,
//! with both pps beside it), `dpdk_appliance_pps_1core`, `dpdk_testpmd_pps_1core` and the context
//! figure `dpdk_backend_io_pps_1core` (the backend's copy path without NAT). Progress goes to stderr.
//! `--quick` measures 3 s per loop (about 20 s in all); the default 10 s.
//!
//! Needs DPDK 22.11 (`dpdk-dev` for testpmd) and root or the capabilities DPDK's EAL wants; without
//! `dpdk-testpmd` on `PATH` (or with `--no-testpmd`, for profiling the appliance side alone) it reports
//! the appliance figures only and exits 3. `--cpu` is the forwarding CPU of both sides (default 1),
//! `--main-cpu` the CPU of the EAL main lcores (default 0).

#[path = "../dpdk_ceiling.rs"]
mod dpdk_ceiling;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use benches::report::{Reporter, Target};
use dpdk_ceiling::{Traffic, Window, DEVICE, MBUFS};
use serde_json::json;

/// The figure's target (issue 7).
const TARGET_RATIO: f64 = 0.5;

struct Opts {
    quick: bool,
    no_testpmd: bool,
    cpu: usize,
    main_cpu: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut o = Opts {
            quick: false,
            no_testpmd: false,
            cpu: usize::from(cpus > 1),
            main_cpu: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut num = |what: &str| -> anyhow::Result<usize> {
                args.next()
                    .with_context(|| format!("{what} needs a CPU number"))?
                    .parse()
                    .with_context(|| format!("{what} needs a CPU number"))
            };
            match a.as_str() {
                "--quick" => o.quick = true,
                "--no-testpmd" => o.no_testpmd = true,
                "--cpu" => o.cpu = num("--cpu")?,
                "--main-cpu" => o.main_cpu = num("--main-cpu")?,
                "-h" | "--help" => {
                    eprintln!(
                        "usage: dpdk_ceiling [--quick] [--no-testpmd] [--cpu N] [--main-cpu N]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(o)
    }

    fn window(&self) -> Window {
        if self.quick {
            Window {
                warmup: Duration::from_millis(1000),
                measure: Duration::from_secs(3),
            }
        } else {
            Window {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(10),
            }
        }
    }
}

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dpdk_ceiling: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dpdk_ceiling: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Opts) -> anyhow::Result<ExitCode> {
    let rep = Reporter::new(opts.quick);
    let w = opts.window();
    let pid = std::process::id();
    let t0 = Instant::now();
    let testpmd = if opts.no_testpmd {
        None
    } else {
        dpdk_ceiling::find_testpmd()
    };
    let mut testpmd_runs = Vec::new();
    if let Some(bin) = &testpmd {
        eprintln!(
            "testpmd (1/2): {} on {DEVICE}, CPU {}",
            bin.display(),
            opts.cpu
        );
        let r = dpdk_ceiling::run_testpmd(
            bin,
            opts.main_cpu,
            opts.cpu,
            &format!("natgw-tp-{pid}-1"),
            w,
        )?;
        eprintln!("  {:.0} pps (samples {:?})", r.pps, r.samples);
        testpmd_runs.push(r);
    } else {
        eprintln!("dpdk-testpmd not found on PATH (Debian: apt-get install dpdk-dev)");
    }

    let t = Instant::now();
    let mut traffic = Traffic::build().context("building the NAT scenario")?;
    eprintln!(
        "scenario: {} live UDP sessions in {:.1} s",
        traffic.scenario.core.session_count(),
        t.elapsed().as_secs_f64()
    );
    let io = Window {
        warmup: w.warmup / 2,
        measure: w.measure / 2,
    };
    let ours = dpdk_ceiling::run_appliance(
        &mut traffic,
        opts.main_cpu,
        opts.cpu,
        &format!("natgw-ceil-{pid}"),
        io,
        w,
    )
    .context("the appliance on DPDK")?;
    eprintln!(
        "appliance on {DEVICE}, CPU {}: backend io {:.0} pps, NAT fast path {:.0} pps \
         ({:.1} frames per burst)",
        opts.cpu,
        ours.io.pps(),
        ours.nat.pps(),
        ours.nat.frames_per_round()
    );

    if let Some(bin) = &testpmd {
        eprintln!("testpmd (2/2)");
        let r = dpdk_ceiling::run_testpmd(
            bin,
            opts.main_cpu,
            opts.cpu,
            &format!("natgw-tp-{pid}-2"),
            w,
        )?;
        eprintln!("  {:.0} pps (samples {:?})", r.pps, r.samples);
        testpmd_runs.push(r);
    }

    let common = json!({
        "device": DEVICE,
        "forwarding_cores": 1,
        "cpu": opts.cpu,
        "frame_bytes": 64,
        "burst": benches::harness::BURST,
        "mbufs": MBUFS,
        "measure_s": w.measure.as_secs_f64(),
    });
    let with = |extra: serde_json::Value| {
        let mut v = common.clone();
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    rep.emit(
        "dpdk_appliance_pps_1core",
        ours.nat.pps(),
        "pps",
        Target::None,
        with(json!({
            "path": "net_null rx_burst -> generator overwrite -> NatCore::process_burst -> tx_burst",
            "sessions": ours.sessions,
            "session_memory_bytes": ours.session_memory_bytes,
            "frames": ours.nat.sent,
            "frames_per_burst": ours.nat.frames_per_round(),
            "eal_args": ours.eal_args,
        })),
    );
    rep.emit(
        "dpdk_backend_io_pps_1core",
        ours.io.pps(),
        "pps",
        Target::None,
        with(json!({
            "path": "net_null rx_burst -> tx_burst through the DPDK backend (mbuf copies, no NAT)",
            "frames": ours.io.sent,
        })),
    );
    if testpmd_runs.is_empty() {
        eprintln!(
            "no dpdk_vs_testpmd_ratio without dpdk-testpmd ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::from(3));
    }
    let runs: Vec<f64> = testpmd_runs.iter().map(|r| r.pps).collect();
    let testpmd_pps = runs.iter().sum::<f64>() / runs.len() as f64;
    rep.emit(
        "dpdk_testpmd_pps_1core",
        testpmd_pps,
        "pps",
        Target::None,
        with(json!({
            "runs_pps": runs,
            "command": testpmd_runs[0].command.join(" "),
        })),
    );
    let ratio = ours.nat.pps() / testpmd_pps.max(1.0);
    let ns = |pps: f64| 1e9 / pps.max(1.0);
    rep.emit(
        "dpdk_vs_testpmd_ratio",
        ratio,
        "ratio",
        Target::AtLeast(TARGET_RATIO),
        with(json!({
            "appliance_pps": benches::report::round(ours.nat.pps()),
            "testpmd_pps": benches::report::round(testpmd_pps),
            "backend_io_pps": benches::report::round(ours.io.pps()),
            "backend_io_vs_testpmd": benches::report::round(ours.io.pps() / testpmd_pps.max(1.0)),
            // Where a frame's time goes: testpmd's io forwarding, plus our backend's copies, plus the
            // generator and the NAT core.
            "ns_per_frame": {
                "testpmd": benches::report::round(ns(testpmd_pps)),
                "backend_io": benches::report::round(ns(ours.io.pps())),
                "appliance": benches::report::round(ns(ours.nat.pps())),
            },
        })),
    );
    eprintln!(
        "dpdk_vs_testpmd_ratio {ratio:.3} (target {TARGET_RATIO}) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
