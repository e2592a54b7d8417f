//! Running the real `appliance` binary in a topology's nat namespace, and reading its metrics.
//!
//! Layer: test harness, slow path. [`Appliance::start`] writes the config to a file, starts the binary in
//! the nat namespace, and waits until its metrics endpoint (on the nat namespace's loopback) reports
//! `natgw_datapath_available 1`. [`Metrics`] is a parsed Prometheus text scrape. [`Appliance::stop`] sends
//! SIGTERM and returns the exit status and everything the appliance printed (its final counters included).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};
use crate::process::{ChildGuard, ChildOutput, Signal};
use crate::topology::Topology;
use crate::traffic;

/// The metrics endpoint the generated configs and the example config use (nat namespace loopback).
pub const METRICS_ADDR: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464);

/// One scrape of the metrics endpoint: `name{labels}` → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    /// Parse Prometheus text: `# ` lines skipped, `series value` lines kept.
    pub fn parse(text: &str) -> Metrics {
        let mut m = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.trim().parse::<f64>() {
                    m.insert(series.trim().to_owned(), v);
                }
            }
        }
        Metrics(m)
    }

    /// The value of one series, written exactly as exposed (e.g.
    /// `natgw_dropped_packets_total{reason="unsolicited"}`); 0 when absent.
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// Every series whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), *v))
    }
}

/// A running appliance.
pub struct Appliance {
    child: ChildGuard,
    log: PathBuf,
    config: PathBuf,
}

impl Appliance {
    /// Where the `appliance` binary is: `$NATGW_APPLIANCE`, or beside the running executable (cargo puts
    /// `testbed` and `appliance` in the same target directory; test binaries sit one level deeper).
    pub fn find_binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("NATGW_APPLIANCE") {
            return Some(PathBuf::from(p));
        }
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        [dir.join("appliance"), dir.parent()?.join("appliance")]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// [`Appliance::find_binary`], or else build the appliance with the profile this program was built
    /// with (`cargo build [--release] -p appliance` in this workspace) and return its path.
    pub fn find_or_build() -> Result<PathBuf> {
        if let Some(p) = Appliance::find_binary() {
            return Ok(p);
        }
        let release = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.ends_with("release")))
            .unwrap_or(false);
        eprintln!(
            "building the appliance (cargo build{} -p appliance)",
            if release { " --release" } else { "" }
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(&cargo);
        cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["build", "-p", "appliance"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .map_err(|e| TestbedError::io("running cargo to build the appliance", e))?;
        if !status.success() {
            return Err(TestbedError::Appliance(format!(
                "building the appliance failed ({status})"
            )));
        }
        Appliance::find_binary().ok_or_else(|| {
            TestbedError::Appliance("the appliance was built but is not beside testbed".into())
        })
    }

    /// Write `config` into `workdir`, start `binary --config FILE` in the nat namespace of `topo`, and wait
    /// (at most `timeout`) until it reports its data path available.
    pub fn start(
        topo: &Topology,
        binary: &Path,
        config: &str,
        workdir: &Path,
        timeout: Duration,
    ) -> Result<Appliance> {
        std::fs::create_dir_all(workdir)
            .map_err(|e| TestbedError::io("creating the work dir", e))?;
        let cfg = workdir.join("appliance.toml");
        let log = workdir.join("appliance.log");
        std::fs::write(&cfg, config)
            .map_err(|e| TestbedError::io("writing the appliance config", e))?;
        let _ = std::fs::remove_file(&log);
        let bin = binary.to_string_lossy().into_owned();
        let cfg_s = cfg.to_string_lossy().into_owned();
        let child = topo
            .nat()
            .spawn(&[&bin, "--config", &cfg_s], ChildOutput::File(log.clone()))?;
        let mut app = Appliance {
            child,
            log,
            config: cfg,
        };
        app.wait_ready(topo, timeout)?;
        Ok(app)
    }

    /// Wait until the metrics say the data path is available (all workers up, gateway resolved).
    pub fn wait_ready(&mut self, topo: &Topology, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(TestbedError::Appliance(format!(
                    "the appliance exited ({status}) before it was ready:\n{}",
                    self.output()
                )));
            }
            if let Ok(m) = self.metrics(topo) {
                if m.get("natgw_datapath_available") == 1.0 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(TestbedError::Appliance(format!(
                    "the appliance was not ready within {timeout:?}:\n{}",
                    self.output()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrape the metrics endpoint.
    pub fn metrics(&self, topo: &Topology) -> Result<Metrics> {
        let r = traffic::http_get(
            topo.nat(),
            None,
            METRICS_ADDR,
            "/metrics",
            Duration::from_secs(2),
        )?;
        Ok(Metrics::parse(&String::from_utf8_lossy(&r.body)))
    }

    /// Scrape the metrics until `pred` holds (the slow path aggregates about ten times a second), at most
    /// `timeout`; returns the last scrape either way.
    pub fn metrics_when(
        &self,
        topo: &Topology,
        timeout: Duration,
        pred: impl Fn(&Metrics) -> bool,
    ) -> Result<Metrics> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics(topo)?;
            if pred(&m) || Instant::now() >= deadline {
                return Ok(m);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config file the appliance runs with (rewrite it, then [`Appliance::reload`]).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// SIGHUP: reload the config file.
    pub fn reload(&mut self) -> Result<()> {
        self.child.signal(Signal::Hangup)
    }

    /// What the appliance printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait at most `grace` (then SIGKILL); the exit status and everything it printed.
    pub fn stop(self, grace: Duration) -> Result<(ExitStatus, String)> {
        let Appliance { child, log, .. } = self;
        let status = child.stop(grace)?;
        Ok((status, std::fs::read_to_string(&log).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let m = Metrics::parse(
            "# HELP x y\n# TYPE x counter\nnatgw_a 3\nnatgw_b{reason=\"unsolicited\"} 7\n\nbad line\n",
        );
        assert_eq!(m.get("natgw_a"), 3.0);
        assert_eq!(m.get("natgw_b{reason=\"unsolicited\"}"), 7.0);
        assert_eq!(m.get("natgw_c"), 0.0);
        assert_eq!(m.with_prefix("natgw_").count(), 2);
    }
}
