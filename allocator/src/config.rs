//! The allocator's own configuration, independent of the TOML file.
//!
//! Layer: allocator, slow path (read once by [`Inventory::new`](crate::Inventory::new)). The
//! appliance maps `natgw_config::Config` onto [`AllocatorConfig`]; validation of the numbers
//! happens in [`Inventory::new`](crate::Inventory::new), which returns a typed error instead of
//! panicking.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::types::CloseKind;

/// Everything the allocator needs to know. [`Default`] gives the seeds' values with no public IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Public addresses, in order; 1 to [`MAX_PUBLIC_IPS`](crate::MAX_PUBLIC_IPS), no duplicates.
    pub public_ips: Vec<Ipv4Addr>,
    /// First and last SNAT port, inclusive (default 1024–65535: 64,512 ports). Port 0 is refused.
    pub port_range: (u16, u16),
    /// Port ranges (inclusive) kept for inbound rules. Each is widened to whole ranges of 8
    /// (`start` rounded down, `end` rounded up to a multiple of 8) and taken out of every inventory.
    pub reserved: Vec<(u16, u16)>,
    /// Dynamic (shared) or preallocated (exclusive ranges per instance).
    pub policy: Policy,
    /// How public IPs are chosen for a host.
    pub pooling: Pooling,
    /// Paired pooling only: when the host's IP has no port for the destination, try the other IPs
    /// instead of failing. Off by default (a host then never shows two source IPs).
    pub paired_fallback: bool,
    /// Maximum live leases in total (default 2,000,000). Enforced per shard as
    /// `ceil(max_sessions / shards)`.
    pub max_sessions: u32,
    /// Maximum live leases per public IP per destination (default 50,000). Enforced per shard as
    /// `ceil(max_per_destination / shards)`. A destination is the remote IP:port for TCP and the
    /// remote IP for UDP and ICMP (the port-reuse key).
    pub max_per_destination: u32,
    /// Cool-down durations after release.
    pub cooldown: Cooldowns,
    /// Ports per ownership block (default 64). In preallocated mode the block size actually used
    /// is the largest divisor of the per-instance range not above this (and small enough to give
    /// every shard a block of each instance where possible), so blocks never straddle instances.
    pub block_size: u16,
    /// Watermarks that make shards ask for, or give back, idle blocks (dynamic policy only).
    pub rebalance: Rebalance,
    /// Secret that keys the hashes (paired IP choice, table hashing). Give a random value in
    /// production; fixed values give reproducible runs.
    pub seed: u64,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            public_ips: Vec::new(),
            port_range: (1024, 65535),
            reserved: Vec::new(),
            policy: Policy::Dynamic {
                max_ports_per_host: None,
            },
            pooling: Pooling::Paired,
            paired_fallback: false,
            max_sessions: 2_000_000,
            max_per_destination: 50_000,
            cooldown: Cooldowns::default(),
            block_size: 64,
            rebalance: Rebalance::default(),
            seed: 0x6e61_7467_7721_2024,
        }
    }
}

/// Port allocation policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// One shared inventory, ports handed out on demand (NAT-gateway style).
    Dynamic {
        /// Optional cap on live leases per private host, enforced per shard as
        /// `ceil(cap / shards)`.
        max_ports_per_host: Option<u32>,
    },
    /// Each listed instance gets an exclusive range of every public IP (load-balancer outbound
    /// rule style). Instance `k` owns usable ports `[k * n, (k + 1) * n)` in port order, reserved
    /// ports skipped.
    Preallocated {
        /// The backend instances, in order. At most 1,000 when `ports_per_instance` is 0.
        instances: Vec<Ipv4Addr>,
        /// Ports per instance, a multiple of 8; 0 selects the default tier table
        /// ([`default_ports_per_instance`]).
        ports_per_instance: u16,
    },
}

/// How a host's public IP is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// A host always uses the same public IP: a keyed hash of the host over the public IPs, so all
    /// shards agree without sharing state.
    Paired,
    /// Any public IP; the shard picks the less loaded of two random IPs.
    Arbitrary,
}

/// Cool-down durations, by how the flow ended (seeds' NAT gateway defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cooldowns {
    /// After a FIN close (default 65 s).
    pub tcp_fin: Duration,
    /// After a RST close, and after a TCP idle timeout (default 16 s).
    pub tcp_rst: Duration,
    /// After a half-open SYN timed out (default 30 s).
    pub tcp_half_open: Duration,
    /// After a UDP or ICMP idle timeout (default 65 s).
    pub udp: Duration,
}

impl Default for Cooldowns {
    fn default() -> Self {
        Cooldowns {
            tcp_fin: Duration::from_secs(65),
            tcp_rst: Duration::from_secs(16),
            tcp_half_open: Duration::from_secs(30),
            udp: Duration::from_secs(65),
        }
    }
}

impl Cooldowns {
    /// No cool-down at all (tests and benches).
    pub const ZERO: Cooldowns = Cooldowns {
        tcp_fin: Duration::ZERO,
        tcp_rst: Duration::ZERO,
        tcp_half_open: Duration::ZERO,
        udp: Duration::ZERO,
    };

    /// The cool-down that follows a close of this kind.
    pub const fn for_close(&self, how: CloseKind) -> Duration {
        match how {
            CloseKind::TcpFin => self.tcp_fin,
            CloseKind::TcpRst | CloseKind::TcpIdle => self.tcp_rst,
            CloseKind::TcpHalfOpen => self.tcp_half_open,
            CloseKind::UdpIdle | CloseKind::IcmpIdle => self.udp,
        }
    }
}

/// Rebalancing watermarks, counted in idle blocks (no live lease, no cool-down) of one public IP
/// and protocol held by one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rebalance {
    /// Below this many idle blocks a shard reports [`ShardEvent::LowOnPorts`](crate::ShardEvent).
    /// 0 disables automatic rebalancing.
    pub low_idle_blocks: u32,
    /// Above this many idle blocks a shard reports a surplus; `None` derives it as twice the
    /// shard's initial share of blocks (so it only fires on a shard that received blocks).
    pub high_idle_blocks: Option<u32>,
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance {
            low_idle_blocks: 2,
            high_idle_blocks: None,
        }
    }
}

/// Ports per instance from the default tier table, by pool size: 1–50: 1,024; 51–100: 512;
/// 101–200: 256; 201–400: 128; 401–800: 64; 801–1,000: 32. `None` for 0 or more than 1,000.
pub const fn default_ports_per_instance(pool_size: usize) -> Option<u16> {
    match pool_size {
        1..=50 => Some(1024),
        51..=100 => Some(512),
        101..=200 => Some(256),
        201..=400 => Some(128),
        401..=800 => Some(64),
        801..=1000 => Some(32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_table_matches_the_seeds() {
        assert_eq!(default_ports_per_instance(0), None);
        assert_eq!(default_ports_per_instance(1), Some(1024));
        assert_eq!(default_ports_per_instance(50), Some(1024));
        assert_eq!(default_ports_per_instance(51), Some(512));
        assert_eq!(default_ports_per_instance(100), Some(512));
        assert_eq!(default_ports_per_instance(101), Some(256));
        assert_eq!(default_ports_per_instance(200), Some(256));
        assert_eq!(default_ports_per_instance(201), Some(128));
        assert_eq!(default_ports_per_instance(400), Some(128));
        assert_eq!(default_ports_per_instance(401), Some(64));
        assert_eq!(default_ports_per_instance(800), Some(64));
        assert_eq!(default_ports_per_instance(801), Some(32));
        assert_eq!(default_ports_per_instance(1000), Some(32));
        assert_eq!(default_ports_per_instance(1001), None);
    }

    #[test]
    fn close_kinds_map_to_cooldowns() {
        let c = Cooldowns::default();
        assert_eq!(c.for_close(CloseKind::TcpFin), Duration::from_secs(65));
        assert_eq!(c.for_close(CloseKind::TcpRst), Duration::from_secs(16));
        assert_eq!(c.for_close(CloseKind::TcpIdle), Duration::from_secs(16));
        assert_eq!(c.for_close(CloseKind::TcpHalfOpen), Duration::from_secs(30));
        assert_eq!(c.for_close(CloseKind::UdpIdle), Duration::from_secs(65));
        assert_eq!(c.for_close(CloseKind::IcmpIdle), Duration::from_secs(65));
    }
}
