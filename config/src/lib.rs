//! The natgw configuration file: TOML parsed into raw structs, then validated into a [`Config`].
//!
//! Layer: config, the bottom of the workspace (`config` <- `allocator` <- `dataplane` <-
//! `appliance`). Slow path only: the file is read at start-up and on reload, never per packet.
//!
//! Two steps, as in DESIGN.md §4 and STYLE.md §14: serde reads the text into `raw` structs that
//! deny unknown keys and keep the span of every value; `TryFrom<RawConfig> for Config` then checks
//! every range and every combination, so that a [`Config`] cannot hold an invalid state (its fields
//! are private and only validated constructors exist). Every [`ConfigError`] names the dotted key,
//! the 1-based line and column, and what would be valid; no input makes the parser panic.
//!
//! ```
//! let config = natgw_config::Config::from_toml_str(r#"
//!     [interfaces.inside]
//!     device = "inside0"
//!     address = "10.0.0.1/24"
//!     [interfaces.outside]
//!     device = "outside0"
//!     address = "203.0.113.1/24"
//!     gateway = "203.0.113.254"
//!     [nat]
//!     public_ips = ["203.0.113.10"]
//! "#).unwrap();
//! assert_eq!(config.nat().port_range(), (1024, 65535));
//! assert_eq!(config.derived().ports_per_ip, 64512);
//! ```
#![forbid(unsafe_code)]

mod check;
mod config;
mod dataplane;
mod dpdk;
mod duration;
mod effective;
mod error;
mod interface;
mod metrics;
mod nat;
mod policy;
mod protocol;
mod raw;
mod schema;
mod timeouts;

pub use config::{Config, Derived, PreallocatedNumbers};
pub use dataplane::DataplaneConfig;
pub use dpdk::DpdkConfig;
pub use error::{ConfigError, Diagnostic, ErrorKind};
pub use interface::{Driver, InterfaceConfig, MacAddr, MacParseError};
pub use metrics::MetricsConfig;
pub use nat::{
    default_ports_per_instance, Allocation, Exhaustion, NatConfig, Pooling, StaticMapping,
    DEFAULT_PRIVATE_PREFIXES, MAX_DEFAULT_POOL, MAX_PUBLIC_IPS, MIN_PORT,
};
pub use policy::{DenyProtocol, DenyRule, PolicyConfig};
pub use protocol::Protocol;
pub use timeouts::{Timeouts, TCP_IDLE_MAX, TCP_IDLE_MIN};
