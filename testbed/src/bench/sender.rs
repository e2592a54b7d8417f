//! The sender: `trafgen` (netsniff-ng) in the client namespace, one process pinned to one CPU.
//!
//! Layer: test harness, slow path. `trafgen` sends prebuilt frames from an mmap TX ring with the qdisc
//! bypassed; its run-time counters vary the source address and port (see [`super::flows`]). Each run sends
//! a fixed number of packets (`-n`), optionally at a fixed rate (`-b Npps`), and exits; its own report
//! (packets sent and the seconds it spent sending) is parsed from its output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// What one `trafgen` run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendReport {
    /// Packets trafgen says it sent (None: not found in its output).
    pub packets: Option<u64>,
    /// Seconds trafgen says it spent sending (None: not found).
    pub seconds: Option<f64>,
    /// Wall time of the whole process, start-up included.
    pub wall: Duration,
}

/// Parses trafgen's exit report: `N packets outgoing` and `S sec, U usec on CPUk (N packets)`.
pub fn parse_trafgen_report(text: &str) -> (Option<u64>, Option<f64>) {
    let mut packets = None;
    let mut seconds = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_suffix("packets outgoing") {
            packets = n.trim().parse().ok().or(packets);
        }
        if let Some((s, rest)) = line.split_once(" sec, ") {
            if let Some((u, _)) = rest.split_once(" usec") {
                if let (Ok(s), Ok(u)) = (s.trim().parse::<u64>(), u.trim().parse::<u64>()) {
                    seconds = Some(s as f64 + u as f64 / 1e6);
                }
            }
        }
    }
    (packets, seconds)
}

/// A trafgen sender bound to one config file, interface and CPU.
#[derive(Debug, Clone)]
pub struct Trafgen {
    config: PathBuf,
    device: String,
    cpu: usize,
}

impl Trafgen {
    /// Writes `config` (a `trafgen --cpp` packet config) to `path`, for sending on `device` from `cpu`.
    pub fn new(path: &Path, config: &str, device: &str, cpu: usize) -> Result<Self> {
        std::fs::write(path, config)
            .map_err(|e| TestbedError::io(format!("write {}", path.display()), e))?;
        Ok(Trafgen {
            config: path.to_owned(),
            device: device.to_owned(),
            cpu,
        })
    }

    /// Sends `packets` frames from namespace `ns` at `rate` packets per second (None: full speed) and
    /// waits for trafgen to exit.
    pub fn send(&self, ns: &Netns, packets: u64, rate: Option<u64>) -> Result<SendReport> {
        let cfg = self.config.to_string_lossy().into_owned();
        let cpu = self.cpu.to_string();
        let n = packets.max(1).to_string();
        let mut argv = vec![
            "taskset",
            "-c",
            &cpu,
            "trafgen",
            "-P",
            "1",
            "--cpp",
            "-i",
            &cfg,
            "-o",
            &self.device,
            "-n",
            &n,
        ];
        let rate_s = rate.map(|r| format!("{}pps", r.max(1)));
        if let Some(r) = &rate_s {
            argv.extend(["-b", r.as_str()]);
        }
        let started = Instant::now();
        let out = ns.exec(&argv)?;
        let wall = started.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(TestbedError::CommandFailed {
                command: argv.join(" "),
                status: out.status,
                stderr: text.trim().to_owned(),
            });
        }
        let (packets, seconds) = parse_trafgen_report(&text);
        Ok(SendReport {
            packets,
            seconds,
            wall,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_exit_report() {
        let text =
            "     2 packets to schedule\n   120 bytes in total\nRunning! Hang up with ^C!\n\n\
                    \n      500000 packets outgoing\n    30000000 bytes outgoing\n           \
                    2 sec, 257497 usec on CPU0 (500000 packets)\n";
        let (p, s) = parse_trafgen_report(text);
        assert_eq!(p, Some(500_000));
        assert!((s.unwrap() - 2.257_497).abs() < 1e-9);
        assert_eq!(parse_trafgen_report("nothing here"), (None, None));
        assert_eq!(
            parse_trafgen_report("x sec, y usec on CPU0\nabc packets outgoing"),
            (None, None)
        );
    }
}
