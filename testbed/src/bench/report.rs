//! What a bench run found, and its three renderings: a terminal table, a JSON file and an SVG plot.
//!
//! Layer: test harness, slow path, no network. The JSON file is [`BenchReport`] serialized as is (its
//! field names are the documented format, see docs/testbed.md); the plot draws packets per second at zero
//! loss against the flow count (log scale) with one line per NAT and worker count.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::search::SearchOutcome;

/// Which NAT forwarded the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The natgw appliance in the nat namespace.
    Appliance,
    /// The Linux kernel's nftables SNAT in the nat namespace.
    Kernel,
}

impl Mode {
    /// The label used in tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Appliance => "appliance",
            Mode::Kernel => "kernel nft",
        }
    }
}

/// The UDP result of one (mode, workers, flows) case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UdpResult {
    /// The NAT.
    pub mode: Mode,
    /// Appliance workers; for the kernel, the CPUs its receive processing is spread over (RPS).
    pub workers: u16,
    /// The flow count asked for.
    pub flows_requested: u64,
    /// The distinct flows actually sent (a few more where counts had to be made coprime).
    pub flows: u64,
    /// Client addresses used.
    pub hosts: u32,
    /// Destination addresses used.
    pub destinations: usize,
    /// Live sessions (appliance) or conntrack entries (kernel) after priming.
    pub sessions: u64,
    /// Packets per second forwarded at zero loss (0: no probe passed).
    pub zero_loss_pps: f64,
    /// The search with every run.
    pub search: SearchOutcome,
    /// Nonzero drop counters of the appliance after the case (empty for the kernel).
    pub drops: BTreeMap<String, f64>,
}

/// New TCP connections per second through one NAT.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpResult {
    /// The NAT.
    pub mode: Mode,
    /// Appliance workers (kernel: RPS CPUs).
    pub workers: u16,
    /// Client threads connecting in parallel.
    pub threads: usize,
    /// Connections tried.
    pub attempted: usize,
    /// Connections that completed (connect, request, answer, close).
    pub succeeded: usize,
    /// Wall time of the whole burst.
    pub seconds: f64,
    /// `succeeded / seconds`.
    pub connections_per_second: f64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// CPUs available to this process.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Memory in GiB.
    pub memory_gib: f64,
}

impl Machine {
    /// Reads `/proc` (fields it cannot read stay empty or 0).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            memory_gib: (kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
        }
    }
}

/// How the run was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// `--quick`.
    pub quick: bool,
    /// Build profile of the testbed binary (`debug` / `release`).
    pub testbed_profile: &'static str,
    /// The appliance binary.
    pub appliance: String,
    /// Target seconds of one measured run.
    pub run_seconds: f64,
    /// Rate-limited probes after the full-speed run.
    pub probes: usize,
    /// Loss threshold of "zero loss" (fraction).
    pub max_loss: f64,
    /// The traffic generator.
    pub sender: String,
    /// The sender's CPU.
    pub sender_cpu: usize,
    /// The appliance's packet I/O driver.
    pub driver: String,
    /// Appliance `[dataplane] burst`.
    pub burst: u16,
    /// Appliance `[dataplane] rx_ring`.
    pub rx_ring: u32,
    /// Appliance `[dataplane] tx_ring`.
    pub tx_ring: u32,
    /// Appliance `[nat] pooling`.
    pub pooling: String,
    /// Public IPs of both NATs.
    pub public_ips: usize,
    /// What happens to the traffic at the inet side.
    pub sink: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub settings: Settings,
    /// UDP packets per second, one entry per case.
    pub udp: Vec<UdpResult>,
    /// TCP connections per second.
    pub tcp: Vec<TcpResult>,
    /// appliance ÷ kernel zero-loss pps per (workers, flows), where both were measured.
    pub ratios: Vec<Ratio>,
}

/// The appliance's zero-loss pps over the kernel's, for one case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Workers.
    pub workers: u16,
    /// Flows asked for.
    pub flows_requested: u64,
    /// appliance ÷ kernel.
    pub ratio: f64,
    /// True when the appliance was sender-bound: the real ratio is at least this.
    pub lower_bound: bool,
}

/// The ratio of one case, if both NATs were measured and the kernel forwarded something.
pub fn ratio_of(udp: &[UdpResult], workers: u16, flows: u64) -> Option<Ratio> {
    let find = |m| {
        udp.iter()
            .find(|r| r.mode == m && r.workers == workers && r.flows_requested == flows)
    };
    let (a, k) = (find(Mode::Appliance)?, find(Mode::Kernel)?);
    (k.zero_loss_pps > 0.0).then(|| Ratio {
        workers,
        flows_requested: flows,
        ratio: a.zero_loss_pps / k.zero_loss_pps,
        lower_bound: a.search.sender_bound,
    })
}

/// All ratios of a set of results, in (workers, flows) order.
pub fn ratios(udp: &[UdpResult]) -> Vec<Ratio> {
    let mut keys: Vec<(u16, u64)> = udp.iter().map(|r| (r.workers, r.flows_requested)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(w, f)| ratio_of(udp, w, f))
        .collect()
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.max(0.0).round() as u64;
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cell(r: Option<&UdpResult>) -> (String, String) {
    match r {
        None => ("-".into(), "-".into()),
        Some(r) => {
            let z = if r.search.zero_loss.is_some() {
                format!(
                    "{}{}",
                    thousands(r.zero_loss_pps),
                    if r.search.sender_bound { " s" } else { "" }
                )
            } else {
                "none".into()
            };
            let m = format!(
                "{} ({:.2}%)",
                thousands(r.search.at_max.forwarded_pps),
                r.search.at_max.loss * 100.0
            );
            (z, m)
        }
    }
}

impl BenchReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let s = &self.settings;
        let _ = writeln!(
            t,
            "64-byte UDP: packets/s at zero loss (loss <= {}%), sender {} on CPU {}; \
             @max = forwarded at the sender's full rate (its loss); s = sender-bound",
            s.max_loss * 100.0,
            s.sender,
            s.sender_cpu
        );
        let _ = writeln!(
            t,
            "{:>9} {:>7} | {:>13} {:>20} | {:>13} {:>20} | {:>7}",
            "flows", "workers", "appliance", "@max (loss)", "kernel nft", "@max (loss)", "ratio"
        );
        let mut keys: Vec<(u16, u64)> = self
            .udp
            .iter()
            .map(|r| (r.workers, r.flows_requested))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for (w, f) in keys {
            let find = |m: Mode| {
                self.udp
                    .iter()
                    .find(|r| r.mode == m && r.workers == w && r.flows_requested == f)
            };
            let (az, am) = cell(find(Mode::Appliance));
            let (kz, km) = cell(find(Mode::Kernel));
            let ratio = ratio_of(&self.udp, w, f).map_or("-".into(), |r| {
                format!("{}{:.2}x", if r.lower_bound { ">=" } else { "" }, r.ratio)
            });
            let _ = writeln!(
                t,
                "{:>9} {:>7} | {az:>13} {am:>20} | {kz:>13} {km:>20} | {ratio:>7}",
                thousands(f as f64),
                w
            );
        }
        if !self.tcp.is_empty() {
            let _ = writeln!(
                t,
                "\nnew TCP connections per second (connect, request, answer, close):"
            );
            for r in &self.tcp {
                let _ = writeln!(
                    t,
                    "  {:<10} workers {}: {:>8}/s  ({}/{} in {:.1} s, {} threads){}",
                    r.mode.label(),
                    r.workers,
                    thousands(r.connections_per_second),
                    r.succeeded,
                    r.attempted,
                    r.seconds,
                    r.threads,
                    r.first_error
                        .as_deref()
                        .map(|e| format!("; first error: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        if !self.ratios.is_empty() {
            let min = self
                .ratios
                .iter()
                .map(|r| r.ratio)
                .fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                t,
                "\nappliance / kernel at zero loss: lowest {min:.2}x over {} cases (target >= 1.5x): {}",
                self.ratios.len(),
                if min >= 1.5 { "met" } else { "NOT met" }
            );
        }
        t
    }

    /// Writes the JSON file.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")?;
        Ok(())
    }

    /// Draws packets per second at zero loss against flows, one line per (mode, workers), as SVG.
    pub fn write_svg(&self, path: &Path) -> anyhow::Result<()> {
        let mut series: BTreeMap<(Mode, u16), Vec<(f64, f64)>> = BTreeMap::new();
        for r in &self.udp {
            series
                .entry((r.mode, r.workers))
                .or_default()
                .push((r.flows_requested.max(1) as f64, r.zero_loss_pps));
        }
        for pts in series.values_mut() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let x_max = self
            .udp
            .iter()
            .map(|r| r.flows_requested as f64)
            .fold(10.0, f64::max)
            * 2.0;
        let y_max = self
            .udp
            .iter()
            .map(|r| r.zero_loss_pps)
            .fold(1000.0, f64::max)
            * 1.15;
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "natgw vs Linux nftables SNAT: 64-byte UDP at zero loss ({} CPUs)",
                        self.machine.cpus
                    ),
                    ("sans-serif", 20),
                )
                .margin(20)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d((0.7f64..x_max).log_scale(), 0f64..y_max)?;
            chart
                .configure_mesh()
                .x_desc("flows (distinct source ip:port)")
                .y_desc("packets per second")
                .x_label_formatter(&|v| thousands(*v))
                .y_label_formatter(&|v| thousands(*v))
                .draw()?;
            for (i, ((mode, workers), pts)) in series.iter().enumerate() {
                let color = match (mode, i % 2) {
                    (Mode::Appliance, 0) => RGBColor(31, 119, 180),
                    (Mode::Appliance, _) => RGBColor(23, 190, 207),
                    (Mode::Kernel, 0) => RGBColor(214, 39, 40),
                    (Mode::Kernel, _) => RGBColor(255, 127, 14),
                };
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                    .label(format!(
                        "{} ({workers} worker{})",
                        mode.label(),
                        if *workers == 1 { "" } else { "s" }
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.9))
                .draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::Step;
    use super::*;

    fn result(mode: Mode, workers: u16, flows: u64, pps: f64, sender_bound: bool) -> UdpResult {
        let step = Step::from_counts(None, pps as u64, pps as u64, 1.0);
        UdpResult {
            mode,
            workers,
            flows_requested: flows,
            flows,
            hosts: 1,
            destinations: 1,
            sessions: flows,
            zero_loss_pps: pps,
            search: SearchOutcome {
                at_max: step,
                zero_loss: Some(step),
                sender_bound,
                steps: vec![step],
            },
            drops: BTreeMap::new(),
        }
    }

    fn sample() -> BenchReport {
        let udp = vec![
            result(Mode::Appliance, 1, 1, 300_000.0, true),
            result(Mode::Kernel, 1, 1, 150_000.0, false),
            result(Mode::Appliance, 1, 1000, 250_000.0, false),
            result(Mode::Kernel, 1, 1000, 200_000.0, false),
            result(Mode::Appliance, 2, 1000, 280_000.0, false),
        ];
        BenchReport {
            started_unix: 0,
            machine: Machine::detect(),
            settings: Settings {
                quick: true,
                testbed_profile: "debug",
                appliance: "appliance".into(),
                run_seconds: 1.0,
                probes: 2,
                max_loss: 0.001,
                sender: "own".into(),
                sender_cpu: 0,
                driver: "af_packet".into(),
                burst: 32,
                rx_ring: 1024,
                tx_ring: 1024,
                pooling: "paired".into(),
                public_ips: 16,
                sink: "drop".into(),
            },
            ratios: ratios(&udp),
            udp,
            tcp: vec![],
        }
    }

    #[test]
    fn ratios_pair_the_same_case() {
        let r = sample();
        assert_eq!(r.ratios.len(), 2);
        assert_eq!(r.ratios[0].ratio, 2.0);
        assert!(r.ratios[0].lower_bound);
        assert_eq!(r.ratios[1].ratio, 1.25);
        assert!(ratio_of(&r.udp, 2, 1000).is_none());
    }

    #[test]
    fn table_shows_every_case_and_the_verdict() {
        let t = sample().table();
        assert!(t.contains("300,000 s"), "{t}");
        assert!(t.contains(">=2.00x"), "{t}");
        assert!(t.contains("1.25x"), "{t}");
        assert!(
            t.contains("lowest 1.25x over 2 cases (target >= 1.5x): NOT met"),
            "{t}"
        );
        assert_eq!(t.lines().filter(|l| l.contains(" | ")).count(), 4, "{t}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_000_016.0), "1,000,016");
        assert_eq!(thousands(-5.0), "0");
    }

    #[test]
    fn json_and_svg_are_written() {
        let dir = std::env::temp_dir().join(format!("natgw-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = sample();
        r.write_json(&dir.join("b.json")).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("b.json")).unwrap()).unwrap();
        assert_eq!(v["udp"][0]["mode"], "appliance");
        assert_eq!(v["udp"][1]["search"]["sender_bound"], false);
        assert_eq!(v["ratios"][1]["ratio"], 1.25);
        r.write_svg(&dir.join("b.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("b.svg")).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("kernel nft (1 worker)"));
        assert!(svg.contains("appliance (2 workers)"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
