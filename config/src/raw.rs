//! The config file as serde reads it, before any validation.
//!
//! Layer: config (slow path). Every struct denies unknown keys; every leaf is optional and wrapped
//! in [`Spanned`] so that validation can name the line of a bad value. Numbers are read as `i64`
//! (TOML's integer type) and range-checked during validation, which gives better messages than
//! serde's own integer conversions. Tables themselves carry no span: `toml` has none to give for
//! tables created implicitly by dotted keys.

use serde::Deserialize;
use toml::Spanned;

/// An optional leaf with its position in the file.
pub(crate) type Leaf<T> = Option<Spanned<T>>;

/// A list of leaves, each with its position.
pub(crate) type List<T> = Leaf<Vec<Spanned<T>>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) dataplane: RawDataplane,
    #[serde(default)]
    pub(crate) interfaces: RawInterfaces,
    #[serde(default)]
    pub(crate) nat: RawNat,
    #[serde(default)]
    pub(crate) policy: RawPolicy,
    #[serde(default)]
    pub(crate) metrics: RawMetrics,
    #[serde(default)]
    pub(crate) dpdk: RawDpdk,
}

/// `[dataplane]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataplane {
    pub(crate) workers: Leaf<i64>,
    pub(crate) cores: List<i64>,
    pub(crate) slowpath_core: Leaf<i64>,
    pub(crate) burst: Leaf<i64>,
    pub(crate) rx_ring: Leaf<i64>,
    pub(crate) tx_ring: Leaf<i64>,
    pub(crate) handoff_ring: Leaf<i64>,
}

/// `[interfaces]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInterfaces {
    pub(crate) inside: Option<RawInterface>,
    pub(crate) outside: Option<RawInterface>,
}

/// `[interfaces.inside]` or `[interfaces.outside]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInterface {
    pub(crate) driver: Leaf<String>,
    pub(crate) device: Leaf<String>,
    pub(crate) address: Leaf<String>,
    pub(crate) gateway: Leaf<String>,
    pub(crate) mac: Leaf<String>,
}

/// `[nat]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNat {
    pub(crate) public_ips: List<String>,
    pub(crate) public_prefixes: List<String>,
    pub(crate) private_prefixes: List<String>,
    pub(crate) port_range: List<i64>,
    pub(crate) reserved_ports: List<toml::Value>,
    pub(crate) allocation: Leaf<String>,
    pub(crate) pooling: Leaf<String>,
    pub(crate) max_sessions: Leaf<i64>,
    pub(crate) max_per_destination: Leaf<i64>,
    pub(crate) max_ports_per_host: Leaf<i64>,
    pub(crate) exhaustion: Leaf<String>,
    pub(crate) icmp_prohibited: Leaf<bool>,
    pub(crate) no_nat: List<String>,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    #[serde(default, rename = "static")]
    pub(crate) statics: Vec<RawStatic>,
    pub(crate) preallocated: Option<RawPreallocated>,
}

/// `[nat.timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) tcp_idle: Leaf<String>,
    pub(crate) tcp_transitory: Leaf<String>,
    pub(crate) udp_idle: Leaf<String>,
    pub(crate) icmp_idle: Leaf<String>,
    pub(crate) tcp_fin_cooldown: Leaf<String>,
    pub(crate) tcp_rst_cooldown: Leaf<String>,
    pub(crate) tcp_halfopen_cooldown: Leaf<String>,
    pub(crate) udp_cooldown: Leaf<String>,
}

/// One `[[nat.static]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatic {
    pub(crate) private: Leaf<String>,
    pub(crate) public: Leaf<String>,
}

/// `[nat.preallocated]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPreallocated {
    pub(crate) instances: List<String>,
    pub(crate) ports_per_instance: Leaf<i64>,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) allow_smtp: Leaf<bool>,
    #[serde(default)]
    pub(crate) deny: Vec<RawDeny>,
}

/// One `[[policy.deny]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeny {
    pub(crate) protocol: Leaf<String>,
    pub(crate) destination: Leaf<String>,
    pub(crate) port: Leaf<i64>,
    pub(crate) ports: List<i64>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Leaf<String>,
}

/// `[dpdk]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDpdk {
    pub(crate) eal_args: List<String>,
    pub(crate) mbufs: Leaf<i64>,
}

/// Reads `src` into a [`RawConfig`], with the key path of any serde error.
pub(crate) fn parse(src: &str) -> Result<RawConfig, crate::error::Located> {
    let de = toml::Deserializer::new(src);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().clone();
        crate::error::from_toml(&path, &e.into_inner(), src)
    })
}
