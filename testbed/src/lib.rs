//! Network-namespace testbed for natgw.
//!
//! Layer: on top of everything (it drives the `appliance` binary from outside; it never links
//! the data path). Slow path only. It builds the client — NAT — internet topology out of three
//! network namespaces joined by two veth pairs ([`Topology`], shaped by [`TopologySpec`];
//! [`Topology::kernel_nat`] builds the Linux nftables baseline), runs programs and Rust
//! closures inside those namespaces ([`Netns`]), drives small bounded traffic through them
//! ([`traffic`]), and always cleans up: dropping a topology kills what runs inside and deletes
//! its namespaces, and `testbed down` removes leftovers ([`remove_leftovers`]).
//!
//! Everything here needs root; tests call [`require_root_and_netns`] (or [`skip_unless!`])
//! first and print `SKIPPED: reason` where it fails, never passing silently.
//!
//! ```no_run
//! use std::net::SocketAddrV4;
//! use std::time::Duration;
//! use testbed::{traffic, KernelNatSpec, Topology, TopologySpec};
//!
//! # fn main() -> testbed::Result<()> {
//! let topo = Topology::kernel_nat(TopologySpec::default(), KernelNatSpec::default())?;
//! let server_addr = SocketAddrV4::new(topo.servers()[0], 8080);
//! let server = traffic::TcpServer::start(
//!     topo.inet(),
//!     server_addr,
//!     traffic::TcpService::Http { body_len: 0 },
//! )?;
//! let answer = traffic::http_get(
//!     topo.client(),
//!     Some(topo.client_addrs()[0]),
//!     server_addr,
//!     "/",
//!     Duration::from_secs(5),
//! )?;
//! assert_eq!(answer.seen_peer().map(|p| *p.ip()), Some("203.0.113.10".parse().unwrap()));
//! drop(server);
//! # Ok(())
//! # }
//! ```

mod appliance;
mod appliance_config;
pub mod bench;
mod cleanup;
pub mod demo;
mod error;
mod names;
mod netns;
mod preflight;
mod process;
mod shutdown;
mod spec;
mod topology;
pub mod traffic;

pub use appliance::{Appliance, Metrics, METRICS_ADDR};
pub use appliance_config::{appliance_config, ApplianceConfigOptions};
pub use cleanup::{find_leftovers, remove_leftovers, LeftoverScope};
pub use error::{Result, TestbedError};
pub use names::{IfName, NsName, Prefix, Role, RunId, DEFAULT_PREFIX, MAX_IFNAME_LEN};
pub use netns::{Netns, NETNS_DIR};
pub use preflight::{
    report_skip, require_programs, require_root_and_netns, SkipReason, TOPOLOGY_PROGRAMS,
};
pub use process::{find_program, ChildGuard, ChildOutput, Signal};
pub use shutdown::{Shutdown, FORCED_EXIT_CODE};
pub use spec::{KernelNatSpec, Offloads, TopologySpec};
pub use topology::{kernel_nat_ruleset, NatMode, Topology, KERNEL_NAT_TABLE};
