//! [`Config`]: the whole validated configuration, the checks that span several sections, and the
//! numbers derived from it.
//!
//! Layer: config (slow path; read at start-up and on reload). A `Config` only comes out of
//! [`Config::from_toml_str`] or [`Config::load`], so it always satisfies the invariants listed in
//! each section's module, plus: the inside and outside subnets do not overlap and the two sides do
//! not share a device; every worker gets at least one 8-port block of every public address; with
//! a DPDK interface the mbuf pool can fill every ring.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::check::span;
use crate::dataplane::DataplaneConfig;
use crate::dpdk::DpdkConfig;
use crate::effective;
use crate::error::{ConfigError, ErrorKind, Located};
use crate::interface::{Driver, InterfaceConfig, Side};
use crate::metrics::MetricsConfig;
use crate::nat::{Allocation, NatConfig};
use crate::policy::PolicyConfig;
use crate::raw::{self, RawConfig};

/// A validated natgw configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    dataplane: DataplaneConfig,
    inside: InterfaceConfig,
    outside: InterfaceConfig,
    nat: NatConfig,
    policy: PolicyConfig,
    metrics: MetricsConfig,
    dpdk: DpdkConfig,
}

impl Config {
    /// Parses and validates a configuration from TOML text. Errors carry the key, the line and
    /// column, and what would be valid; no input makes this panic.
    pub fn from_toml_str(src: &str) -> Result<Config, ConfigError> {
        let raw = raw::parse(src).map_err(|e| e.into_error(src))?;
        Config::try_from(raw).map_err(|e| e.into_error(src))
    }

    /// Reads, parses and validates a configuration file; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&src).map_err(|e| e.with_file(path))
    }

    /// The fast-path layout.
    pub fn dataplane(&self) -> &DataplaneConfig {
        &self.dataplane
    }

    /// The private side.
    pub fn inside(&self) -> &InterfaceConfig {
        &self.inside
    }

    /// The public side.
    pub fn outside(&self) -> &InterfaceConfig {
        &self.outside
    }

    /// Translation settings.
    pub fn nat(&self) -> &NatConfig {
        &self.nat
    }

    /// Outbound deny rules.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The metrics endpoint.
    pub fn metrics(&self) -> &MetricsConfig {
        &self.metrics
    }

    /// DPDK settings (used only by DPDK interfaces).
    pub fn dpdk(&self) -> &DpdkConfig {
        &self.dpdk
    }

    /// Whether either interface uses DPDK.
    pub fn uses_dpdk(&self) -> bool {
        self.inside.driver() == Driver::Dpdk || self.outside.driver() == Driver::Dpdk
    }

    /// The numbers that follow from the configuration.
    pub fn derived(&self) -> Derived {
        let ports_per_ip = self.nat.ports_per_ip();
        let public_ips = self.nat.public_ips().len();
        let preallocated = match self.nat.allocation() {
            Allocation::Dynamic { .. } => None,
            Allocation::Preallocated {
                instances,
                ports_per_instance,
            } => Some(PreallocatedNumbers {
                instances: instances.len(),
                ports_per_instance: *ports_per_instance,
                capacity: (ports_per_ip / u32::from(*ports_per_instance)) as usize * public_ips,
            }),
        };
        Derived {
            public_ips,
            ports_per_ip,
            reserved_ports_per_ip: self
                .nat
                .reserved_ranges()
                .iter()
                .map(|&(lo, hi)| u32::from(hi) - u32::from(lo) + 1)
                .sum(),
            workers: self.dataplane.workers(),
            ports_per_worker: ports_per_ip / self.dataplane.workers() as u32,
            snat_ports_per_protocol: u64::from(ports_per_ip) * public_ips as u64,
            preallocated,
            static_mappings: self.nat.statics().len(),
        }
    }

    /// The effective configuration as a TOML document: every default filled in, prefixes
    /// expanded, reserved ports widened to their 8-port blocks, derived numbers in comments. It
    /// parses back to an equal `Config`.
    pub fn effective_toml(&self) -> String {
        effective::render(self)
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Config::from_toml_str(s)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.effective_toml())
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = Located;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let dataplane = DataplaneConfig::from_raw(&raw.dataplane)?;
        let inside = InterfaceConfig::from_raw(Side::Inside, raw.interfaces.inside.as_ref())?;
        let outside = InterfaceConfig::from_raw(Side::Outside, raw.interfaces.outside.as_ref())?;
        let nat = NatConfig::from_raw(&raw.nat)?;
        let policy = PolicyConfig::from_raw(&raw.policy)?;
        let metrics = MetricsConfig::from_raw(&raw.metrics)?;
        let dpdk = DpdkConfig::from_raw(&raw.dpdk)?;
        let config = Config {
            dataplane,
            inside,
            outside,
            nat,
            policy,
            metrics,
            dpdk,
        };
        config.cross_check(&raw)?;
        Ok(config)
    }
}

impl Config {
    /// Checks between sections. `raw` gives the spans.
    fn cross_check(&self, raw: &RawConfig) -> Result<(), Located> {
        let out_raw = raw.interfaces.outside.as_ref();
        let out_span =
            |f: fn(&raw::RawInterface) -> Option<std::ops::Range<usize>>| out_raw.and_then(f);
        let (inside, outside) = (self.inside.address(), self.outside.address());
        if inside.contains(&outside.network()) || outside.contains(&inside.network()) {
            return Err(Located {
                key: "interfaces.outside.address".to_string(),
                span: out_span(|r| r.address.as_ref().map(span)),
                kind: ErrorKind::Overlap {
                    value: outside.trunc().to_string(),
                    other: format!("interfaces.inside.address's subnet {}", inside.trunc()),
                },
                first: None,
            });
        }
        if self.inside.driver() == self.outside.driver()
            && self.inside.device() == self.outside.device()
        {
            return Err(Located {
                key: "interfaces.outside.device".to_string(),
                span: out_span(|r| r.device.as_ref().map(span)),
                kind: ErrorKind::Conflict {
                    message: format!(
                        "both sides use device {:?}; valid: a different device for each side",
                        self.outside.device()
                    ),
                },
                first: None,
            });
        }

        let workers = self.dataplane.workers();
        let ports_per_ip = self.nat.ports_per_ip();
        if (ports_per_ip as usize) / workers < 8 {
            return Err(Located {
                key: "dataplane.workers".to_string(),
                span: raw.dataplane.workers.as_ref().map(span),
                kind: ErrorKind::Conflict {
                    message: format!(
                        "{workers} workers cannot each get an 8-port block of the {ports_per_ip} \
                         SNAT ports per address; valid: at most {} workers, or a wider \
                         nat.port_range",
                        (ports_per_ip / 8).max(1)
                    ),
                },
                first: None,
            });
        }

        if self.uses_dpdk() {
            let dpdk_ifaces = [&self.inside, &self.outside]
                .iter()
                .filter(|i| i.driver() == Driver::Dpdk)
                .count();
            let d = &self.dataplane;
            let needed = dpdk_ifaces * workers * (d.rx_ring() + d.tx_ring()) + workers * d.burst();
            if (self.dpdk.mbufs() as usize) < needed {
                return Err(Located {
                    key: "dpdk.mbufs".to_string(),
                    span: raw.dpdk.mbufs.as_ref().map(span),
                    kind: ErrorKind::OutOfRange {
                        value: self.dpdk.mbufs().to_string(),
                        valid: format!(
                            "at least {needed} to fill the rx and tx rings of {dpdk_ifaces} DPDK \
                             interface(s) x {workers} workers (or smaller dataplane.rx_ring / \
                             tx_ring)"
                        ),
                    },
                    first: None,
                });
            }
        }
        Ok(())
    }
}

/// Numbers that follow from a configuration, for `appliance check` and for sizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// SNAT public addresses.
    pub public_ips: usize,
    /// SNAT ports per public address and protocol (port range minus reserved blocks).
    pub ports_per_ip: u32,
    /// Ports per public address kept out for inbound rules.
    pub reserved_ports_per_ip: u32,
    /// Fast-path workers.
    pub workers: usize,
    /// SNAT ports per public address and protocol that each worker owns at start
    /// (`ports_per_ip / workers`, rounded down).
    pub ports_per_worker: u32,
    /// SNAT ports per protocol over all public addresses.
    pub snat_ports_per_protocol: u64,
    /// Preallocated mode only.
    pub preallocated: Option<PreallocatedNumbers>,
    /// Static 1:1 mappings.
    pub static_mappings: usize,
}

/// Derived numbers of preallocated mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreallocatedNumbers {
    /// Backend instances in the pool.
    pub instances: usize,
    /// SNAT ports per instance and protocol.
    pub ports_per_instance: u16,
    /// How many instances of that size the public addresses could hold.
    pub capacity: usize,
}

impl fmt::Display for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "public addresses (SNAT):          {}", self.public_ips)?;
        writeln!(
            f,
            "SNAT ports per public IP:         {} ({} reserved for inbound rules)",
            self.ports_per_ip, self.reserved_ports_per_ip
        )?;
        writeln!(
            f,
            "SNAT ports per worker per IP:     {} ({} workers)",
            self.ports_per_worker, self.workers
        )?;
        writeln!(
            f,
            "SNAT ports per protocol, all IPs: {}",
            self.snat_ports_per_protocol
        )?;
        if let Some(p) = &self.preallocated {
            writeln!(
                f,
                "preallocated:                     {} instances x {} ports per instance (room for {})",
                p.instances, p.ports_per_instance, p.capacity
            )?;
        }
        writeln!(
            f,
            "static 1:1 mappings:              {}",
            self.static_mappings
        )
    }
}
