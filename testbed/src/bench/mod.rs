//! `testbed bench`: packets per second at zero loss through the appliance and through the Linux kernel's
//! nftables SNAT, on the same topology with the same sender, in one run; plus new TCP connections per
//! second through each.
//!
//! Layer: binary edge (anyhow errors, progress output), slow path. For every (NAT, workers, flows) case it
//! builds a fresh topology ([`setup`]), starts the appliance (or installs the kernel's paired SNAT rules),
//! learns the NAT's inside MAC from the client's ARP entry, prepares the sender for the flows
//! ([`flows`]; our paced AF_PACKET generator [`gen`], or `trafgen` at full speed), primes the sessions (every flow once, until the NAT holds them all), then searches the
//! highest offered rate with loss ≤ the threshold ([`search`]). Counts come from the kernel's interface
//! counters ([`counters`]): sent = the client veth's transmitted + transmit-dropped packets, received =
//! the inet veth's received packets, read after the pipeline drained. Results go to a table, a JSON file
//! and an SVG plot under `target/testbed/` ([`report`]).
//!
//! Invariants: every topology is dropped (namespaces deleted) before the next is built, on error and on
//! Ctrl-C (checked between runs and inside the send loop; the appliance gets the terminal's SIGINT too); the host's
//! conntrack limits are restored at the end; traffic only goes to addresses of our own namespaces.

pub mod counters;
pub mod flows;
pub mod gen;
pub mod report;
pub mod search;
pub mod sender;
pub mod setup;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};

use crate::appliance::Appliance;
use crate::topology::Topology;
use crate::traffic::{self, TcpBurst, TcpServer, TcpService};
use crate::{require_programs, require_root_and_netns, Shutdown};

use counters::NetdevCounters;
use flows::FlowPlan;
use report::{BenchReport, Machine, Mode, Settings, TcpResult, UdpResult};
use search::Step;
use sender::Trafgen;
use setup::{ApplianceKnobs, ConntrackLimits};

/// The traffic generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SenderArg {
    /// Our paced AF_PACKET generator (`sendmmsg`, batches of 32): full zero-loss search.
    Own,
    /// netsniff-ng's `trafgen` at full speed only (its `-b` limit sends each second's quota in one
    /// burst, so no rate search): forwarded pps and loss at the sender's maximum offered load.
    Trafgen,
}

/// Which NATs to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// The natgw appliance.
    Appliance,
    /// The Linux kernel's nftables SNAT.
    Kernel,
}

/// The appliance's packet I/O driver in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverArg {
    /// TPACKET_V2 mmap rings.
    #[value(name = "af_packet")]
    AfPacket,
    /// AF_XDP sockets with our XDP program.
    #[value(name = "af_xdp")]
    AfXdp,
    /// DPDK over `net_af_packet` virtual devices on the veths (needs an appliance built with
    /// `--features dpdk`).
    #[value(name = "dpdk")]
    Dpdk,
}

impl DriverArg {
    fn name(self) -> &'static str {
        match self {
            DriverArg::AfPacket => "af_packet",
            DriverArg::AfXdp => "af_xdp",
            DriverArg::Dpdk => "dpdk",
        }
    }
}

/// The appliance's address pooling in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolingArg {
    /// A host keeps one public IP (with `exhaustion = "fallback"` so a crowded IP spills over).
    Paired,
    /// Any public IP for any flow.
    Arbitrary,
}

/// Options of `testbed bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Small counts and short runs, to prove the harness works (CI): flows 1 and 1,000, 0.25 s runs,
    /// two probes, 200 TCP connections.
    #[arg(long)]
    pub quick: bool,
    /// Appliance worker counts to measure (the kernel: CPUs its receive processing is spread over).
    #[arg(long, value_delimiter = ',')]
    pub workers: Option<Vec<u16>>,
    /// Flow counts (distinct source ip:port pairs) to measure.
    #[arg(long, value_delimiter = ',')]
    pub flows: Option<Vec<u64>>,
    /// Target seconds of one measured run (a run always covers every flow at least once).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Rate-limited probes of the zero-loss search after the full-speed run.
    #[arg(long)]
    pub probes: Option<usize>,
    /// Loss that still counts as zero loss, in percent.
    #[arg(long, default_value_t = 0.1)]
    pub max_loss_percent: f64,
    /// NATs to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "appliance,kernel"
    )]
    pub modes: Vec<ModeArg>,
    /// The appliance's packet I/O driver.
    #[arg(long, value_enum, default_value = "af_packet")]
    pub driver: DriverArg,
    /// Appliance `[dataplane] burst`.
    #[arg(long, default_value_t = 32)]
    pub burst: u16,
    /// Appliance `[dataplane] rx_ring`.
    #[arg(long, default_value_t = 1024)]
    pub rx_ring: u32,
    /// Appliance `[dataplane] tx_ring`.
    #[arg(long, default_value_t = 1024)]
    pub tx_ring: u32,
    /// Appliance `[nat] pooling`.
    #[arg(long, value_enum, default_value = "paired")]
    pub pooling: PoolingArg,
    /// The traffic generator.
    #[arg(long, value_enum, default_value = "own")]
    pub sender: SenderArg,
    /// The CPU the sender runs on.
    #[arg(long, default_value_t = 0)]
    pub sender_cpu: usize,
    /// New TCP connections per NAT and worker count for the connections-per-second figure (0: skip).
    #[arg(long)]
    pub tcp_connections: Option<usize>,
    /// The appliance binary (default: beside this program, or `$NATGW_APPLIANCE`, else built).
    #[arg(long)]
    pub appliance: Option<PathBuf>,
    /// Where the JSON and SVG go (default: `<cargo target dir>/testbed`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Suffix of the output file names (`bench-TAG.json`), for comparing variations.
    #[arg(long)]
    pub tag: Option<String>,
}

/// The settings a run actually uses, after `--quick` and the defaults.
#[derive(Debug, Clone)]
struct Plan {
    modes: Vec<Mode>,
    workers: Vec<u16>,
    flows: Vec<u64>,
    run_seconds: f64,
    probes: usize,
    max_loss: f64,
    tcp_connections: usize,
    tcp_threads: usize,
}

impl Plan {
    fn from_args(a: &BenchArgs) -> anyhow::Result<Plan> {
        let (flows, workers, secs, probes, tcp) = if a.quick {
            (vec![1, 1000], vec![1, 2], 0.25, 2, 200)
        } else {
            (vec![1, 1000, 65_536, 1_000_000], vec![1, 2], 2.0, 6, 4000)
        };
        let mut modes: Vec<Mode> = a
            .modes
            .iter()
            .map(|m| match m {
                ModeArg::Appliance => Mode::Appliance,
                ModeArg::Kernel => Mode::Kernel,
            })
            .collect();
        modes.sort();
        modes.dedup();
        let plan = Plan {
            modes,
            workers: a.workers.clone().unwrap_or(workers),
            flows: a.flows.clone().unwrap_or(flows),
            run_seconds: a.duration.unwrap_or(secs),
            probes: if a.sender == SenderArg::Trafgen {
                0
            } else {
                a.probes.unwrap_or(probes)
            },
            max_loss: a.max_loss_percent / 100.0,
            tcp_connections: a.tcp_connections.unwrap_or(tcp),
            tcp_threads: 4,
        };
        if plan.modes.is_empty() || plan.workers.is_empty() || plan.flows.is_empty() {
            bail!("nothing to measure: --modes, --workers and --flows need at least one value");
        }
        if plan.workers.iter().any(|&w| w == 0 || w > 64) {
            bail!("--workers: each count must be 1..=64");
        }
        if plan.flows.iter().any(|&f| f == 0 || f > 4_000_000) {
            bail!("--flows: each count must be 1..=4,000,000");
        }
        if !(plan.run_seconds > 0.0 && plan.run_seconds <= 60.0) {
            bail!("--duration must be within (0, 60] seconds");
        }
        if !(0.0..100.0).contains(&a.max_loss_percent) {
            bail!("--max-loss-percent must be within [0, 100)");
        }
        if plan.tcp_connections > traffic::MAX_COUNT {
            bail!("--tcp-connections is at most {}", traffic::MAX_COUNT);
        }
        Ok(plan)
    }

    fn units_per_udp_case(&self) -> u64 {
        2 + self.probes as u64
    }
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else two levels above this executable (`target/<profile>/testbed`,
/// one more for `deps/`), else `./target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let mut dir = exe.parent()?;
        if dir.ends_with("deps") {
            dir = dir.parent()?;
        }
        dir.parent().map(Path::to_path_buf)
    });
    from_exe.unwrap_or_else(|| PathBuf::from("target"))
}

/// Shared state of one bench run.
struct Ctx<'a> {
    args: &'a BenchArgs,
    plan: &'a Plan,
    shutdown: &'a Shutdown,
    pb: &'a ProgressBar,
    workdir: &'a Path,
    binary: Option<&'a Path>,
    conntrack: Option<ConntrackLimits>,
    /// Full-speed sender rate seen last, per mode (sizes the next full-speed run).
    last_max_pps: BTreeMap<Mode, f64>,
}

impl Ctx<'_> {
    fn say(&self, line: impl AsRef<str>) {
        if self.pb.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            self.pb.println(line.as_ref());
        }
    }

    fn check_stop(&self) -> anyhow::Result<()> {
        if self.shutdown.requested() {
            bail!("interrupted");
        }
        Ok(())
    }

    fn knobs(&self, workers: u16) -> ApplianceKnobs {
        let max_flows = self.plan.flows.iter().copied().max().unwrap_or(1);
        ApplianceKnobs {
            driver: self.args.driver.name(),
            workers,
            burst: self.args.burst,
            rx_ring: self.args.rx_ring,
            tx_ring: self.args.tx_ring,
            pooling: match self.args.pooling {
                PoolingArg::Paired => "paired",
                PoolingArg::Arbitrary => "arbitrary",
            },
            max_sessions: max_flows.saturating_mul(2).max(2_000_000),
        }
    }

    /// Builds the case's topology and starts what forwards in it.
    fn bring_up(&mut self, mode: Mode, workers: u16, hosts: usize) -> anyhow::Result<Running> {
        let topo = setup::build(mode, hosts, usize::from(workers))
            .with_context(|| format!("building the {} topology", mode.label()))?;
        let app = match mode {
            Mode::Appliance => {
                let binary = self.binary.context("no appliance binary")?;
                let config = setup::appliance_config(topo.spec(), &self.knobs(workers));
                let app = Appliance::start(
                    &topo,
                    binary,
                    &config,
                    self.workdir,
                    Duration::from_secs(20),
                )
                .context("starting the appliance")?;
                Some(app)
            }
            Mode::Kernel => {
                if self.conntrack.is_none() {
                    let max_flows = self.plan.flows.iter().copied().max().unwrap_or(1);
                    let (guard, changed) = ConntrackLimits::raise(max_flows)
                        .context("raising the host's conntrack limits")?;
                    for c in changed {
                        self.say(format!(
                            "conntrack limit raised for the run (restored at the end): {c}"
                        ));
                    }
                    self.conntrack = Some(guard);
                }
                None
            }
        };
        Ok(Running { topo, app })
    }
}

/// A case's topology with its appliance (None for the kernel).
struct Running {
    topo: Topology,
    app: Option<Appliance>,
}

impl Running {
    fn sessions(&self) -> u64 {
        match &self.app {
            Some(app) => app
                .metrics(&self.topo)
                .map_or(0, |m| m.get("natgw_total_snat_connections") as u64),
            None => self
                .topo
                .nat()
                .sysctl("net/netfilter/nf_conntrack_count")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    /// Waits (briefly) until the NAT reports at least `n` sessions; returns the last count.
    fn wait_sessions(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.sessions();
            if s >= n || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn drops(&self) -> BTreeMap<String, f64> {
        let Some(app) = &self.app else {
            return BTreeMap::new();
        };
        let Ok(m) = app.metrics(&self.topo) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for prefix in ["natgw_dropped_packets_total", "natgw_port_packets_total"] {
            for (k, v) in m.with_prefix(prefix) {
                if v > 0.0 && (prefix != "natgw_port_packets_total" || k.contains("dropped")) {
                    out.insert(k.to_owned(), v);
                }
            }
        }
        for k in [
            "natgw_snat_connections_total{result=\"failed\"}",
            "natgw_handoffs_total",
        ] {
            if m.get(k) > 0.0 {
                out.insert(k.to_owned(), m.get(k));
            }
        }
        out
    }

    fn stop(self) -> anyhow::Result<()> {
        if let Some(app) = self.app {
            let (status, output) = app.stop(Duration::from_secs(5))?;
            if !status.success() {
                bail!("the appliance exited with {status}:\n{output}");
            }
        }
        drop(self.topo);
        Ok(())
    }
}

/// The sender of a case.
enum Sender {
    Own(gen::FrameSource),
    Trafgen(Trafgen),
}

impl Sender {
    fn send(
        &mut self,
        topo: &Topology,
        cpu: usize,
        packets: u64,
        rate: Option<u64>,
        shutdown: &Shutdown,
    ) -> crate::Result<sender::SendReport> {
        match self {
            Sender::Own(frames) => gen::send(
                topo.client(),
                topo.spec().client_if.as_str(),
                frames,
                packets,
                rate,
                cpu,
                shutdown,
            ),
            Sender::Trafgen(t) => t.send(topo.client(), packets, rate),
        }
    }
}

/// How long to wait after a sender run for frames in rings and queues to come out.
const DRAIN: Duration = Duration::from_millis(200);

fn udp_case(ctx: &mut Ctx<'_>, mode: Mode, workers: u16, flows: u64) -> anyhow::Result<UdpResult> {
    let dests = setup::servers();
    let hosts = FlowPlan::hosts_needed(flows, dests.len());
    let label = format!(
        "{} w{workers} {} flows",
        mode.label(),
        report::thousands(flows as f64)
    );
    ctx.pb.set_message(format!("{label}: setting up"));
    let running = ctx.bring_up(mode, workers, hosts)?;
    let result = measure_udp(ctx, &running, mode, workers, flows, &label);
    let drops = running.drops();
    let stopped = running.stop();
    let mut r = result?;
    stopped?;
    r.drops = drops;
    Ok(r)
}

fn measure_udp(
    ctx: &mut Ctx<'_>,
    running: &Running,
    mode: Mode,
    workers: u16,
    flows: u64,
    label: &str,
) -> anyhow::Result<UdpResult> {
    let topo = &running.topo;
    let plan = FlowPlan::new(flows, topo.client_addrs(), topo.servers())?;
    let mac = setup::gateway_mac(topo)?;
    let client_if = topo.spec().client_if.as_str().to_owned();
    let mut sender = match ctx.args.sender {
        SenderArg::Own => {
            let src = setup::if_mac(topo.client(), &client_if)?;
            Sender::Own(gen::FrameSource::new(&plan, src, mac))
        }
        SenderArg::Trafgen => Sender::Trafgen(Trafgen::new(
            &ctx.workdir.join("trafgen.cfg"),
            &plan.trafgen_config(mac),
            &client_if,
            ctx.args.sender_cpu,
        )?),
    };
    let cpu = ctx.args.sender_cpu;
    let mut tx = NetdevCounters::open(topo.client(), &client_if)?;
    let mut rx = NetdevCounters::open(topo.inet(), topo.spec().inet_if.as_str())?;
    let n_flows = plan.flows();

    // Prime: every flow once, until the NAT holds them all (at most three passes).
    ctx.pb
        .set_message(format!("{label}: priming {n_flows} flows"));
    let base = running.sessions();
    let mut sessions = base;
    for _ in 0..3 {
        ctx.check_stop()?;
        sender.send(topo, cpu, n_flows, None, ctx.shutdown)?;
        sessions = running.wait_sessions(base + n_flows, Duration::from_secs(2));
        if sessions >= base + n_flows {
            break;
        }
    }
    ctx.pb.inc(1);

    let run_secs = ctx.plan.run_seconds;
    let est_max = ctx.last_max_pps.get(&mode).copied().unwrap_or(400_000.0);
    let shutdown = ctx.shutdown.clone();
    let pb = ctx.pb.clone();
    let mut measure = |rate: Option<u64>| -> anyhow::Result<Step> {
        if shutdown.requested() {
            bail!("interrupted");
        }
        let per_sec = rate.map_or(est_max, |r| r as f64);
        let packets = ((per_sec * run_secs) as u64).max(n_flows);
        pb.set_message(format!(
            "{label}: {} pps offered",
            rate.map_or("full speed".to_owned(), |r| report::thousands(r as f64))
        ));
        let t0 = tx.read()?;
        let r0 = rx.read()?;
        let rep = sender.send(topo, cpu, packets, rate, &shutdown)?;
        std::thread::sleep(DRAIN);
        let sent = tx
            .read()?
            .since(&t0)
            .offered()
            .max(rep.packets.unwrap_or(0));
        let received = rx.read()?.since(&r0).rx_packets;
        let seconds = rep
            .seconds
            .filter(|s| *s > 0.0)
            .unwrap_or(rep.wall.as_secs_f64());
        pb.inc(1);
        Ok(Step::from_counts(rate, sent, received, seconds))
    };
    let outcome = search::search(ctx.plan.probes, ctx.plan.max_loss, &mut measure)?;
    let used = outcome.steps.len() as u64;
    ctx.pb
        .inc((1 + ctx.plan.probes as u64).saturating_sub(used));
    ctx.last_max_pps.insert(mode, outcome.at_max.offered_pps);
    Ok(UdpResult {
        mode,
        workers,
        flows_requested: flows,
        flows: n_flows,
        hosts: plan.hosts(),
        destinations: plan.templates().len(),
        sessions: sessions.saturating_sub(base),
        zero_loss_pps: outcome.zero_loss_pps(),
        search: outcome,
        drops: BTreeMap::new(),
    })
}

fn tcp_case(ctx: &mut Ctx<'_>, mode: Mode, workers: u16) -> anyhow::Result<TcpResult> {
    let threads = ctx.plan.tcp_threads;
    ctx.pb.set_message(format!(
        "{} w{workers}: {} TCP connections",
        mode.label(),
        ctx.plan.tcp_connections
    ));
    let running = ctx.bring_up(mode, workers, threads)?;
    let result = measure_tcp(ctx, &running, mode, workers);
    let stopped = running.stop();
    let r = result?;
    stopped?;
    ctx.pb.inc(1);
    Ok(r)
}

fn measure_tcp(
    ctx: &Ctx<'_>,
    running: &Running,
    mode: Mode,
    workers: u16,
) -> anyhow::Result<TcpResult> {
    let topo = &running.topo;
    let dest = SocketAddrV4::new(topo.servers()[0], 8080);
    let server = TcpServer::start(topo.inet(), dest, TcpService::Http { body_len: 0 })?;
    traffic::wait_for_tcp(topo.client(), dest, Duration::from_secs(5))
        .context("the TCP server is not reachable through the NAT")?;
    ctx.check_stop()?;
    let threads = ctx.plan.tcp_threads;
    let per = ctx.plan.tcp_connections.div_ceil(threads);
    let started = Instant::now();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = topo
            .client_addrs()
            .iter()
            .take(threads)
            .map(|h| {
                let burst = TcpBurst {
                    source: Some(*h),
                    dest,
                    count: per,
                    request: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
                    timeout: Duration::from_secs(5),
                };
                s.spawn(move || traffic::tcp_burst(topo.client(), &burst))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    drop(server);
    let (mut attempted, mut succeeded, mut first_error) = (0, 0, None);
    for r in reports {
        match r {
            Ok(Ok(b)) => {
                attempted += b.attempted;
                succeeded += b.succeeded;
                first_error = first_error.or(b.first_error);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e.to_string())),
            Err(_) => first_error = first_error.or(Some("a client thread panicked".into())),
        }
    }
    Ok(TcpResult {
        mode,
        workers,
        threads,
        attempted,
        succeeded,
        seconds,
        connections_per_second: succeeded as f64 / seconds.max(1e-3),
        first_error,
    })
}

/// Run the benchmark.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::install()?;
    let plan = Plan::from_args(args)?;
    if let Err(skip) = require_root_and_netns() {
        bail!(
            "the bench needs root and network namespaces: {}",
            skip.as_str()
        );
    }
    let mut programs = vec!["nft", "ethtool", "ip", "ping"];
    if args.sender == SenderArg::Trafgen {
        programs.extend(["trafgen", "taskset"]);
    }
    if let Err(skip) = require_programs(&programs) {
        bail!(
            "the bench needs: {} (see scripts/install-deps)",
            skip.as_str()
        );
    }
    if args.sender_cpu >= std::thread::available_parallelism().map_or(1, |n| n.get()) {
        bail!(
            "--sender-cpu {} is not a CPU of this machine",
            args.sender_cpu
        );
    }
    let binary = if plan.modes.contains(&Mode::Appliance) {
        Some(match &args.appliance {
            Some(p) => p.clone(),
            None => Appliance::find_or_build()?,
        })
    } else {
        None
    };
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("testbed"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let workdir = std::env::temp_dir().join(format!("natgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;

    let udp_cases = (plan.modes.len() * plan.workers.len() * plan.flows.len()) as u64;
    let tcp_cases = if plan.tcp_connections > 0 {
        (plan.modes.len() * plan.workers.len()) as u64
    } else {
        0
    };
    let pb = ProgressBar::new(udp_cases * plan.units_per_udp_case() + tcp_cases);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut ctx = Ctx {
        args,
        plan: &plan,
        shutdown: &shutdown,
        pb: &pb,
        workdir: &workdir,
        binary: binary.as_deref(),
        conntrack: None,
        last_max_pps: BTreeMap::new(),
    };
    ctx.say(format!(
        "bench: {} x workers {:?} x flows {:?}, {} s runs, {} probes, zero loss = loss <= {}%",
        plan.modes
            .iter()
            .map(|m| m.label())
            .collect::<Vec<_>>()
            .join(" + "),
        plan.workers,
        plan.flows,
        plan.run_seconds,
        plan.probes,
        args.max_loss_percent
    ));
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut errors = Vec::new();
    'all: for &mode in &plan.modes {
        for &workers in &plan.workers {
            for &flows in &plan.flows {
                if shutdown.requested() {
                    break 'all;
                }
                match udp_case(&mut ctx, mode, workers, flows) {
                    Ok(r) => {
                        ctx.say(format!(
                            "{:<10} w{workers} {:>9} flows: {:>9} pps at zero loss{}; {} pps at full speed ({:.2}% loss); {} sessions",
                            mode.label(),
                            report::thousands(flows as f64),
                            report::thousands(r.zero_loss_pps),
                            if r.search.sender_bound { " (sender-bound)" } else { "" },
                            report::thousands(r.search.at_max.forwarded_pps),
                            r.search.at_max.loss * 100.0,
                            r.sessions,
                        ));
                        udp.push(r);
                    }
                    Err(e) => {
                        let msg = format!("{} w{workers} {flows} flows: {e:#}", mode.label());
                        ctx.say(format!("FAILED {msg}"));
                        errors.push(msg);
                        pb.inc(plan.units_per_udp_case());
                    }
                }
            }
            if plan.tcp_connections > 0 && !shutdown.requested() {
                match tcp_case(&mut ctx, mode, workers) {
                    Ok(r) => {
                        ctx.say(format!(
                            "{:<10} w{workers}: {:.0} new TCP connections/s ({}/{})",
                            mode.label(),
                            r.connections_per_second,
                            r.succeeded,
                            r.attempted
                        ));
                        tcp.push(r);
                    }
                    Err(e) => {
                        let msg = format!("{} w{workers} TCP: {e:#}", mode.label());
                        ctx.say(format!("FAILED {msg}"));
                        errors.push(msg);
                        pb.inc(1);
                    }
                }
            }
        }
    }
    drop(ctx.conntrack.take());
    pb.finish_and_clear();

    let report = BenchReport {
        started_unix,
        machine: Machine::detect(),
        settings: Settings {
            quick: args.quick,
            testbed_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            appliance: binary.map(|b| b.display().to_string()).unwrap_or_default(),
            run_seconds: plan.run_seconds,
            probes: plan.probes,
            max_loss: plan.max_loss,
            sender: match args.sender {
                SenderArg::Own => "paced AF_PACKET generator (sendmmsg, 32 per call)".to_owned(),
                SenderArg::Trafgen => "trafgen (full speed only)".to_owned(),
            },
            sender_cpu: args.sender_cpu,
            driver: args.driver.name().to_owned(),
            burst: args.burst,
            rx_ring: args.rx_ring,
            tx_ring: args.tx_ring,
            pooling: ctx_pooling(args).to_owned(),
            public_ips: setup::public_ips().len(),
            sink: format!(
                "UDP port {} dropped at the inet veth's netdev ingress (no return traffic)",
                flows::SINK_PORT
            ),
        },
        ratios: report::ratios(&udp),
        udp,
        tcp,
    };
    println!("{}", report.table());
    let stem = match &args.tag {
        Some(t) => format!("bench-{}", sanitize(t)),
        None => "bench".to_owned(),
    };
    let json = out_dir.join(format!("{stem}.json"));
    let svg = out_dir.join(format!("{stem}.svg"));
    report.write_json(&json)?;
    report.write_svg(&svg)?;
    println!("report: {}\nplot:   {}", json.display(), svg.display());
    let _ = std::fs::remove_dir_all(&workdir);
    if shutdown.requested() {
        eprintln!("interrupted; partial results written");
        return Ok(ExitCode::from(130));
    }
    if !errors.is_empty() {
        eprintln!("{} case(s) failed:", errors.len());
        for e in &errors {
            eprintln!("  {e}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn ctx_pooling(args: &BenchArgs) -> &'static str {
    match args.pooling {
        PoolingArg::Paired => "paired (exhaustion = fallback)",
        PoolingArg::Arbitrary => "arbitrary",
    }
}

/// Keeps letters, digits, `-` and `_` of a file-name tag.
fn sanitize(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn full_and_quick_plans() {
        let p = Plan::from_args(&parse(&[])).unwrap();
        assert_eq!(p.flows, [1, 1000, 65_536, 1_000_000]);
        assert_eq!(p.workers, [1, 2]);
        assert_eq!(p.modes, [Mode::Appliance, Mode::Kernel]);
        assert_eq!(p.max_loss, 0.001);
        let q = Plan::from_args(&parse(&["--quick"])).unwrap();
        assert_eq!(q.flows, [1, 1000]);
        assert!(q.run_seconds < 1.0);
        let c = Plan::from_args(&parse(&[
            "--workers",
            "2",
            "--flows",
            "10,20",
            "--modes",
            "kernel",
            "--driver",
            "af_xdp",
            "--duration",
            "1.5",
        ]))
        .unwrap();
        assert_eq!(
            (c.workers, c.flows, c.modes),
            (vec![2], vec![10, 20], vec![Mode::Kernel])
        );
        assert_eq!(c.run_seconds, 1.5);
    }

    #[test]
    fn bad_plans_are_refused() {
        for bad in [
            &["--workers", "0"][..],
            &["--flows", "0"],
            &["--flows", "5000000"],
            &["--duration", "0"],
            &["--max-loss-percent", "100"],
            &["--tcp-connections", "1000000"],
        ] {
            assert!(Plan::from_args(&parse(bad)).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["bench", "--driver", "pcap"]).is_err());
    }

    #[test]
    fn target_dir_and_tags() {
        assert!(!target_dir().as_os_str().is_empty());
        assert_eq!(sanitize("burst 8/x"), "burst_8_x");
    }
}
