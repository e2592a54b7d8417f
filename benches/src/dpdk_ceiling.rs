//! The DPDK ceiling figure (`dpdk_vs_testpmd_ratio`, issue 7): how close the appliance's fast path on
//! its DPDK backend comes to `dpdk-testpmd` io forwarding, on the same virtual device, with the same
//! number of forwarding cores, in the same run.
//!
//! Layer: benches (measurement only, never on the product's path); needs the cargo feature `dpdk`.
//! Included by `src/bin/dpdk_ceiling.rs` as a module of that program.
//!
//! What is measured, each on one pinned forwarding core over DPDK's `net_null` device (a port whose
//! RX conjures 64-byte mbufs from the pool and whose TX frees them: no kernel, no wire, one port
//! looped back to itself as testpmd's `--port-topology=loop` does):
//! - [`run_appliance`] starts our EAL and opens `net_null0` through the appliance's DPDK backend
//!   ([`natgw_dataplane::port::dpdk`]: the same `open_with`, `rx_burst`, `tx_burst` the appliance
//!   uses), then runs two loops in turn:
//!   - *io*: `rx_burst` → `tx_burst`, nothing else: the cost of the backend alone (it copies each
//!     frame mbuf → [`PacketBuf`] on RX and [`PacketBuf`] → fresh mbuf on TX);
//!   - *nat*: the appliance worker's round (`appliance/src/worker.rs`): the clock read once, `rx_burst`,
//!     each received frame overwritten with the next prebuilt 64-byte frame of an established UDP flow
//!     (the in-process generator: 64,512 flows of the CSIT layout whose sessions were created up front
//!     through the core, bursts alternating in2out / out2in in random flow order),
//!     [`NatCore::process_burst`], forwarded frames swapped into the TX burst, `tx_burst`, `flush`,
//!     [`NatCore::handle_timeout`], allocator events drained. A frame the core does not forward is
//!     counted and fails the figure.
//! - [`run_testpmd`] runs `dpdk-testpmd` (io forwarding, `net_null0`, one forwarding lcore pinned to
//!   the same CPU, the same mbuf count) as a child process with its own `--file-prefix`, reads the
//!   `Tx-pps` it prints every second, and stops it with SIGINT.
//!
//! Invariants: the EAL starts once per process, so the appliance loops share one EAL session and
//! testpmd runs as a separate process before our EAL starts and after it is cleaned up; every pps is
//! frames the device accepted for transmission, counted after a warm-up.
//!
//! [`PacketBuf`]: natgw_dataplane::port::PacketBuf

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benches::harness::{median, BURST};
use benches::scenario::{Scenario, ScenarioError, Shape};
use benches::stream::{Cursor, FrameStream};
use natgw_allocator::Timestamp;
use natgw_dataplane::nat::{NatCore, Side, Verdict};
use natgw_dataplane::port::dpdk::{self, DpdkError, DpdkOptions, MbufPool};
use natgw_dataplane::port::{Burst, Driver, PortConfig, PortError, RxQueue, TxQueue};

/// The DPDK virtual device both sides forward on.
pub const DEVICE: &str = "net_null0";

/// Mbufs in our pool and in testpmd's (`--total-num-mbufs`); PLATFORM.md: with `-m 256` keep it near
/// 16k.
pub const MBUFS: u32 = 16_384;

/// Seed of the scenario (sessions and flow order).
const SEED: u64 = 71;

/// Why a measurement could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    /// The NAT scenario could not be built.
    #[error("scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// DPDK itself (EAL, pool, thread registration) failed.
    #[error("DPDK: {0}")]
    Dpdk(#[from] DpdkError),
    /// The port could not be opened.
    #[error("port: {0}")]
    Port(#[from] PortError),
    /// The opened port has no queue.
    #[error("{0} opened without a queue")]
    NoQueue(&'static str),
    /// The NAT core did not forward every frame of established flows.
    #[error("{count} frames not forwarded (first verdict: {first:?})")]
    NotForwarded {
        /// Frames whose verdict was not a forward.
        count: u64,
        /// The first such verdict.
        first: Option<Verdict>,
    },
    /// The forwarding thread panicked.
    #[error("the forwarding thread panicked")]
    WorkerPanicked,
    /// `dpdk-testpmd` could not be run or printed no statistics.
    #[error("dpdk-testpmd: {0}")]
    Testpmd(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Timing of one measurement: a warm-up that is not counted, then the counted window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Not counted.
    pub warmup: Duration,
    /// Counted.
    pub measure: Duration,
}

/// What one forwarding loop did in its counted window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoopStats {
    /// Frames received from the device.
    pub received: u64,
    /// Frames the device accepted for transmission.
    pub sent: u64,
    /// Frames whose NAT verdict was not a forward (0 for the io loop).
    pub not_forwarded: u64,
    /// The first verdict that was not a forward.
    pub first_other: Option<Verdict>,
    /// Rounds of the loop (bursts polled).
    pub rounds: u64,
    /// Length of the counted window.
    pub elapsed: Duration,
}

impl LoopStats {
    /// Transmitted frames per second.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Received frames per round (how full the bursts were).
    pub fn frames_per_round(&self) -> f64 {
        self.received as f64 / self.rounds.max(1) as f64
    }

    fn minus(&self, earlier: &LoopStats) -> LoopStats {
        LoopStats {
            received: self.received - earlier.received,
            sent: self.sent - earlier.sent,
            not_forwarded: self.not_forwarded - earlier.not_forwarded,
            first_other: self.first_other,
            rounds: self.rounds - earlier.rounds,
            elapsed: self.elapsed,
        }
    }
}

/// The appliance side of the figure.
#[derive(Clone, Debug)]
pub struct ApplianceResult {
    /// The backend alone: `rx_burst` → `tx_burst`.
    pub io: LoopStats,
    /// The appliance's fast path: generator, NAT core, backend.
    pub nat: LoopStats,
    /// Live sessions the frames rotate over.
    pub sessions: usize,
    /// Bytes the core's session state takes ([`NatCore::memory_bytes`]).
    pub session_memory_bytes: usize,
    /// The EAL arguments used.
    pub eal_args: Vec<String>,
}

/// The EAL arguments of our process: no hugepages, no PCI, one `net_null` device, the main lcore on
/// `main_cpu` (the forwarding thread is an ordinary thread, registered with DPDK and pinned).
pub fn eal_args(main_cpu: usize, prefix: &str) -> Vec<String> {
    [
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "--no-shconf",
        "--no-telemetry",
        "--log-level=lib.eal:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--lcores=0@{main_cpu}"),
        format!("--file-prefix={prefix}"),
        format!("--vdev={DEVICE}"),
    ])
    .collect()
}

/// Pins the calling thread to `cpu`. Fails where the CPU does not exist or is not allowed.
pub fn pin_to(cpu: usize) -> Result<(), CeilingError> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(CeilingError::Io {
            what: "pinning the forwarding thread",
            source: io::Error::from(io::ErrorKind::InvalidInput),
        });
    }
    // SAFETY: cpu is below CPU_SETSIZE (checked above); set is a valid cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size we pass; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(CeilingError::Io {
            what: "pinning the forwarding thread",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The NAT core and its traffic: 64,512 live UDP sessions (one public IP of the CSIT layout) and the
/// in2out and out2in frames of those flows, each in a random flow order.
pub struct Traffic {
    /// The core, its sessions created by first packets.
    pub scenario: Scenario,
    /// Frames from the inside hosts.
    pub inside: FrameStream,
    /// Replies from the servers to the public endpoints.
    pub outside: FrameStream,
}

impl Traffic {
    /// Builds the core and fills it (well under a second in a release build).
    pub fn build() -> Result<Traffic, CeilingError> {
        let shape = Shape::udp(1, 1);
        let mut scenario = Scenario::new(shape, shape.sessions() as u32, SEED)?;
        scenario.fill_all(16_384)?;
        let (inside, outside) = scenario.established_streams(SEED + 1)?;
        Ok(Traffic {
            scenario,
            inside,
            outside,
        })
    }
}

/// Runs `f` on a new thread pinned to `cpu` and registered with the EAL; returns its result.
fn on_forwarding_thread<T: Send>(
    cpu: usize,
    f: impl FnOnce() -> Result<T, CeilingError> + Send,
) -> Result<T, CeilingError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to(cpu)?;
            dpdk::register_thread()?;
            f()
        })
        .join()
        .map_err(|_| CeilingError::WorkerPanicked)?
    })
}

/// Counts a loop's progress and takes the snapshot at the end of the warm-up.
struct Meter {
    started: Instant,
    warm_end: Instant,
    end: Instant,
    now: LoopStats,
    at_warm: Option<(Instant, LoopStats)>,
}

impl Meter {
    fn new(w: Window) -> Meter {
        let started = Instant::now();
        Meter {
            started,
            warm_end: started + w.warmup,
            end: started + w.warmup + w.measure,
            now: LoopStats::default(),
            at_warm: None,
        }
    }

    /// Called at the top of each round with the clock read of that round; `false` once time is up.
    #[inline]
    fn tick(&mut self, t: Instant) -> bool {
        if self.at_warm.is_none() && t >= self.warm_end {
            self.at_warm = Some((t, self.now));
        }
        t < self.end
    }

    fn finish(self, t: Instant) -> LoopStats {
        let (from, base) = self.at_warm.unwrap_or((self.started, LoopStats::default()));
        let mut st = self.now.minus(&base);
        st.elapsed = t.saturating_duration_since(from);
        st
    }
}

/// The backend alone: receive a burst, send it back out, for `w`.
fn io_loop(rx: &mut dyn RxQueue, tx: &mut dyn TxQueue, w: Window) -> LoopStats {
    let mut burst = Burst::new(BURST);
    let mut m = Meter::new(w);
    loop {
        let t = Instant::now();
        if !m.tick(t) {
            return m.finish(t);
        }
        m.now.rounds += 1;
        burst.clear();
        let n = rx.rx_burst(&mut burst);
        if n > 0 {
            m.now.received += n as u64;
            m.now.sent += tx.tx_burst(&mut burst) as u64;
        }
        tx.flush();
    }
}

/// The appliance worker's round on one side-less looped port, for `w` (see the module docs).
fn nat_loop(
    rx: &mut dyn RxQueue,
    tx: &mut dyn TxQueue,
    traffic: &mut Traffic,
    w: Window,
) -> LoopStats {
    let Traffic {
        scenario,
        inside,
        outside,
    } = traffic;
    let core: &mut NatCore = &mut scenario.core;
    let base = scenario.now;
    let mut streams = [
        (Side::Inside, &*inside, Cursor::default()),
        (Side::Outside, &*outside, Cursor::default()),
    ];
    let mut turn = 0usize;
    let mut rx_burst = Burst::new(BURST);
    let mut tx_burst = Burst::new(BURST);
    let mut verdicts = Vec::with_capacity(BURST);
    let mut m = Meter::new(w);
    let origin = m.started;
    let mut now = base;
    loop {
        let t = Instant::now();
        if !m.tick(t) {
            scenario.now = now;
            return m.finish(t);
        }
        now = Timestamp::from_nanos(base.as_nanos() + t.duration_since(origin).as_nanos() as u64);
        m.now.rounds += 1;
        rx_burst.clear();
        if rx.rx_burst(&mut rx_burst) > 0 {
            // The generator: the device's frame becomes the next frame of an established flow.
            let (side, stream, cursor) = &mut streams[turn];
            turn ^= 1;
            for f in rx_burst.frames_mut() {
                f.copy_from(stream.frame(cursor.next(stream)));
            }
            m.now.received += rx_burst.len() as u64;
            core.process_burst(now, *side, rx_burst.frames_mut(), &mut verdicts);
            for (frame, v) in rx_burst.frames_mut().iter_mut().zip(&verdicts) {
                match (v, tx_burst.spare_mut()) {
                    (Verdict::Forward { .. }, Some(spare)) => {
                        std::mem::swap(spare, frame);
                        tx_burst.commit();
                    }
                    (other, _) => {
                        m.now.not_forwarded += 1;
                        m.now.first_other.get_or_insert(*other);
                    }
                }
            }
            m.now.sent += tx.tx_burst(&mut tx_burst) as u64;
        }
        tx.flush();
        core.handle_timeout(now);
        while core.allocator().poll_event().is_some() {}
    }
}

/// Starts the EAL, opens [`DEVICE`] through the appliance's DPDK backend with one queue and a pool of
/// [`MBUFS`], runs the io loop for `io` and the NAT loop for `nat` on a thread pinned to `cpu`, closes
/// everything and cleans the EAL up (so that a later testpmd run shares nothing with us).
pub fn run_appliance(
    traffic: &mut Traffic,
    main_cpu: usize,
    cpu: usize,
    prefix: &str,
    io: Window,
    nat: Window,
) -> Result<ApplianceResult, CeilingError> {
    let args = eal_args(main_cpu, prefix);
    dpdk::init_eal(&args)?;
    let result = (|| {
        let pool = MbufPool::create(MBUFS, None)?;
        let opts = DpdkOptions {
            pool: Some(pool),
            ..DpdkOptions::default()
        };
        let mut cfg = PortConfig::new(Driver::Dpdk, DEVICE);
        cfg.burst = BURST;
        cfg.ring_frames = 1024;
        let mut port = dpdk::open_with(&cfg, 1, &opts)?;
        let mut rx = port.port.rx.pop().ok_or(CeilingError::NoQueue(DEVICE))?;
        let mut tx = port.port.tx.pop().ok_or(CeilingError::NoQueue(DEVICE))?;
        let (io_st, nat_st) = on_forwarding_thread(cpu, || {
            let io_st = io_loop(rx.as_mut(), tx.as_mut(), io);
            let nat_st = nat_loop(rx.as_mut(), tx.as_mut(), traffic, nat);
            Ok((io_st, nat_st))
        })?;
        drop((rx, tx, port));
        Ok::<_, CeilingError>((io_st, nat_st))
    })();
    // Every port and pool is closed once the closure returns; the EAL can end.
    let cleanup = dpdk::cleanup_eal();
    let (io_st, nat_st) = result?;
    cleanup?;
    if nat_st.not_forwarded > 0 {
        return Err(CeilingError::NotForwarded {
            count: nat_st.not_forwarded,
            first: nat_st.first_other,
        });
    }
    Ok(ApplianceResult {
        io: io_st,
        nat: nat_st,
        sessions: traffic.scenario.core.session_count(),
        session_memory_bytes: traffic.scenario.core.memory_bytes(),
        eal_args: args,
    })
}

/// What testpmd reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TestpmdResult {
    /// `Tx-pps` of each counted report.
    pub samples: Vec<f64>,
    /// The median of `samples`.
    pub pps: f64,
    /// `TX-packets` of its final accumulated statistics, when it printed them.
    pub total_tx: Option<u64>,
    /// The command line it ran with.
    pub command: Vec<String>,
}

/// `dpdk-testpmd` on `PATH`, if any.
pub fn find_testpmd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("dpdk-testpmd"))
        .find(|p| p.is_file())
}

/// testpmd's arguments: io forwarding on [`DEVICE`] looped to itself, its main lcore on `main_cpu`
/// and one forwarding lcore on `fwd_cpu`, [`MBUFS`] mbufs, statistics every second.
pub fn testpmd_args(main_cpu: usize, fwd_cpu: usize, prefix: &str) -> Vec<String> {
    [
        format!("--lcores=0@{main_cpu},1@{fwd_cpu}"),
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "256".into(),
        "--no-shconf".into(),
        "--no-telemetry".into(),
        format!("--file-prefix={prefix}"),
        format!("--vdev={DEVICE}"),
        "--".into(),
        "--forward-mode=io".into(),
        "--port-topology=loop".into(),
        "--auto-start".into(),
        "--stats-period=1".into(),
        format!("--total-num-mbufs={MBUFS}"),
        "--nb-cores=1".into(),
    ]
    .into()
}

/// A `Tx-pps:` value from one line of testpmd's periodic statistics.
pub fn parse_tx_pps(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("Tx-pps:")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The `TX-packets:` value from the accumulated statistics testpmd prints when it stops.
pub fn parse_total_tx(output: &[String]) -> Option<u64> {
    let at = output
        .iter()
        .position(|l| l.contains("Accumulated forward statistics"))?;
    output[at..].iter().find_map(|l| {
        l.trim()
            .strip_prefix("TX-packets:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Stops a child with SIGINT (testpmd then prints its totals and releases the device), waiting at
/// most `grace` before SIGKILL.
fn interrupt(child: &mut Child, grace: Duration) -> Result<(), CeilingError> {
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| CeilingError::Io {
        what: "signalling dpdk-testpmd",
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: kill(2) with a pid of our own, still unreaped child and a valid signal number.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
        }
    }
}

/// How long testpmd gets to start (EAL, port, pool) before its warm-up counts.
const TESTPMD_STARTUP: Duration = Duration::from_secs(3);

/// Reports of a testpmd run that are not counted: the one printed as forwarding starts (0 pps) and
/// the first one covering forwarding, which includes its ramp-up.
const TESTPMD_SKIPPED_REPORTS: usize = 2;

/// The `Tx-pps` values of a testpmd run's reports after the first `skip`.
pub fn counted_samples(output: &[String], skip: usize) -> Vec<f64> {
    output
        .iter()
        .filter_map(|l| parse_tx_pps(l))
        .skip(skip)
        .map(|p| p as f64)
        .collect()
}

/// Runs `binary` (dpdk-testpmd) with [`testpmd_args`] for its start-up, the warm-up and the measured
/// window, stops it with SIGINT, and returns the median of the `Tx-pps` values it reported, less the
/// first [`TESTPMD_SKIPPED_REPORTS`].
///
/// testpmd's output to a pipe is block-buffered, so its reports are parsed once it has exited rather
/// than timed as they arrive; each report's rate is testpmd's own (TSC cycles since the previous
/// report). `--stats-period=1` asks for a report a second; testpmd 22.11 sleeps a second between
/// checks, so here they come about every two seconds.
pub fn run_testpmd(
    binary: &Path,
    main_cpu: usize,
    fwd_cpu: usize,
    prefix: &str,
    w: Window,
) -> Result<TestpmdResult, CeilingError> {
    let args = testpmd_args(main_cpu, fwd_cpu, prefix);
    let mut child = Command::new(binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| CeilingError::Io {
            what: "starting dpdk-testpmd",
            source,
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CeilingError::Testpmd("no stdout pipe".into()))?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + TESTPMD_STARTUP + w.warmup + w.measure;
    let mut early_exit = None;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => {
                early_exit = Some(status);
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CeilingError::Io {
                    what: "waiting for dpdk-testpmd",
                    source,
                });
            }
        }
    }
    if early_exit.is_none() {
        interrupt(&mut child, Duration::from_secs(10))?;
    }
    let output = reader
        .join()
        .map_err(|_| CeilingError::Testpmd("the output reader panicked".into()))?;
    let samples = counted_samples(&output, TESTPMD_SKIPPED_REPORTS);
    if let Some(status) = early_exit {
        let tail: Vec<&str> = output
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(String::as_str)
            .collect();
        return Err(CeilingError::Testpmd(format!(
            "exited ({status}) before the measurement ended; last output:\n{}",
            tail.join("\n")
        )));
    }
    if samples.is_empty() {
        let tail: Vec<&str> = output
            .iter()
            .rev()
            .take(20)
            .rev()
            .map(String::as_str)
            .collect();
        return Err(CeilingError::Testpmd(format!(
            "no Tx-pps report after the warm-up; last output:\n{}",
            tail.join("\n")
        )));
    }
    let mut command = vec![binary.display().to_string()];
    command.extend(args);
    Ok(TestpmdResult {
        pps: median(&samples),
        samples,
        total_tx: parse_total_tx(&output),
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two periods of testpmd 22.11's periodic statistics and its final totals, as printed here.
    const TESTPMD_OUTPUT: &str = "\u{1b}[2J\u{1b}[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 87847968   RX-missed: 0          RX-bytes:  0
  RX-errors: 0
  RX-nombuf:  0         
  TX-packets: 87595040   TX-errors: 0          TX-bytes:  0

  Throughput (since last show)
  Rx-pps:     43633076          Rx-bps:            0
  Tx-pps:     43633076          Tx-bps:            0
  ############################################################################
Telling cores to stop...
  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 225143968      RX-dropped: 0             RX-total: 225143968
  TX-packets: 225143960      TX-dropped: 0             TX-total: 225143960
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++
";

    #[test]
    fn testpmd_statistics_are_parsed() {
        let lines: Vec<String> = TESTPMD_OUTPUT.lines().map(str::to_string).collect();
        let pps: Vec<u64> = lines.iter().filter_map(|l| parse_tx_pps(l)).collect();
        assert_eq!(pps, [43_633_076]);
        assert_eq!(parse_total_tx(&lines), Some(225_143_960));
        assert_eq!(
            parse_tx_pps("  Rx-pps:     43633076          Rx-bps: 0"),
            None
        );
        assert_eq!(parse_tx_pps("  Tx-pps:   garbage"), None);
        assert_eq!(parse_total_tx(&lines[..5]), None);
        // Reports: the start (0), the ramp-up, then the counted ones.
        let reports: Vec<String> = [0u64, 5, 40, 41, 42]
            .iter()
            .map(|p| format!("  Tx-pps:  {p}   Tx-bps: 0"))
            .collect();
        assert_eq!(
            counted_samples(&reports, TESTPMD_SKIPPED_REPORTS),
            [40.0, 41.0, 42.0]
        );
        assert!(counted_samples(&reports, 5).is_empty());
    }

    #[test]
    fn both_sides_use_the_same_device_mbufs_and_one_forwarding_cpu() {
        let ours = eal_args(0, "a");
        let theirs = testpmd_args(0, 1, "b");
        for a in [
            format!("--vdev={DEVICE}"),
            "--no-huge".into(),
            "--no-pci".into(),
        ] {
            assert!(ours.contains(&a) && theirs.contains(&a), "{a}");
        }
        assert!(theirs.contains(&"--lcores=0@0,1@1".to_string()));
        assert!(theirs.contains(&"--nb-cores=1".to_string()));
        assert!(theirs.contains(&format!("--total-num-mbufs={MBUFS}")));
        assert!(ours.contains(&"--file-prefix=a".to_string()));
        assert!(theirs.contains(&"--file-prefix=b".to_string()));
    }

    #[test]
    fn the_meter_counts_only_after_the_warm_up() {
        let w = Window {
            warmup: Duration::from_millis(30),
            measure: Duration::from_millis(30),
        };
        let mut m = Meter::new(w);
        let t0 = m.started;
        assert!(m.tick(t0));
        m.now.sent = 100; // during the warm-up
        assert!(m.tick(t0 + Duration::from_millis(30)));
        m.now.sent = 160;
        m.now.received = 10;
        let end = t0 + Duration::from_millis(60);
        assert!(!m.tick(end));
        let st = m.finish(end);
        assert_eq!(st.sent, 60);
        assert_eq!(st.elapsed, Duration::from_millis(30));
        assert!((st.pps() - 2000.0).abs() < 1e-6);
    }

    /// The whole appliance side on `net_null0`, briefly: every frame of established flows is
    /// forwarded and the device takes them. The EAL starts once per process, so this is the only
    /// test here that starts it.
    #[test]
    fn the_appliance_loops_forward_on_net_null() {
        let mut traffic = Traffic::build().expect("build the scenario");
        let w = Window {
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(200),
        };
        let cpu = 0;
        let prefix = format!("natgw-ceil-test-{}", std::process::id());
        let r = match run_appliance(&mut traffic, 0, cpu, &prefix, w, w) {
            Err(CeilingError::Dpdk(DpdkError::EalInit { message, .. })) => {
                // Straight to the stderr descriptor: the test harness does not capture it.
                use std::io::Write as _;
                let _ = std::io::stderr().lock().write_all(
                    format!("SKIPPED: the_appliance_loops_forward_on_net_null: EAL: {message}\n")
                        .as_bytes(),
                );
                return;
            }
            other => other.expect("run the appliance loops"),
        };
        assert_eq!(r.sessions, 64_512);
        for st in [r.io, r.nat] {
            assert!(st.sent > 1000, "{st:?}");
            assert_eq!(st.sent, st.received, "{st:?}");
            assert!(st.elapsed >= Duration::from_millis(150), "{st:?}");
        }
        assert_eq!(r.nat.not_forwarded, 0);
        assert!(!dpdk::eal_ready(), "the EAL was cleaned up");
    }
}
