//! From the validated config to the parameters of each layer (slow path, start-up and reload).
//!
//! The config crate knows nothing of the allocator or the data path; this is where its checked values
//! become an [`AllocatorConfig`], the NAT cores' [`CoreParams`] and the ports' [`PortConfig`].

use natgw_allocator::{AllocatorConfig, Cooldowns, Policy, Pooling};
use natgw_config::{Allocation, Config, Driver, Exhaustion, InterfaceConfig};
use natgw_dataplane::nat::policy::Policy as NatPolicy;
use natgw_dataplane::nat::{CoreParams, CoreTimeouts};
use natgw_dataplane::port::{self, PortConfig};
use natgw_dataplane::wire::MacAddr;

/// The allocator's parameters.
pub fn allocator_config(cfg: &Config, seed: u64) -> AllocatorConfig {
    let nat = cfg.nat();
    let t = nat.timeouts();
    let policy = match nat.allocation() {
        Allocation::Dynamic { max_ports_per_host } => Policy::Dynamic {
            max_ports_per_host: *max_ports_per_host,
        },
        Allocation::Preallocated {
            instances,
            ports_per_instance,
        } => Policy::Preallocated {
            instances: instances.clone(),
            ports_per_instance: *ports_per_instance,
        },
    };
    AllocatorConfig {
        public_ips: nat.public_ips().to_vec(),
        port_range: nat.port_range(),
        reserved: nat.reserved_ranges().to_vec(),
        policy,
        pooling: match nat.pooling() {
            natgw_config::Pooling::Paired => Pooling::Paired,
            natgw_config::Pooling::Arbitrary => Pooling::Arbitrary,
        },
        paired_fallback: nat.exhaustion() == Exhaustion::Fallback,
        max_sessions: nat.max_sessions(),
        max_per_destination: nat.max_per_destination(),
        cooldown: Cooldowns {
            tcp_fin: t.tcp_fin_cooldown,
            tcp_rst: t.tcp_rst_cooldown,
            tcp_half_open: t.tcp_halfopen_cooldown,
            udp: t.udp_cooldown,
        },
        block_size: block_size(nat.ports_per_ip(), cfg.dataplane().workers()),
        seed,
        ..AllocatorConfig::default()
    }
}

/// Ports per block: 64, or smaller (a multiple of 8, at least 8) so that every worker starts with at least
/// four blocks of each public IP even with a narrow port range — a worker without ports for an IP would
/// fail every flow steered to it.
pub fn block_size(ports_per_ip: u32, workers: usize) -> u16 {
    let per_worker = ports_per_ip / (workers.max(1) as u32 * 4);
    (per_worker / 8 * 8).clamp(8, 64) as u16
}

/// The NAT cores' parameters, given the interfaces' MAC addresses.
pub fn core_params(cfg: &Config, inside_mac: MacAddr, outside_mac: MacAddr) -> CoreParams {
    let nat = cfg.nat();
    let t = nat.timeouts();
    let workers = cfg.dataplane().workers().max(1);
    CoreParams {
        shards: workers as u16,
        inside_ip: cfg.inside().address().addr(),
        inside_mac,
        outside_ip: cfg.outside().address().addr(),
        outside_mac,
        outside_gateway: cfg
            .outside()
            .gateway()
            .unwrap_or_else(|| cfg.outside().address().network()),
        public_ips: nat.public_ips().to_vec(),
        statics: nat
            .statics()
            .iter()
            .map(|s| (s.private, s.public))
            .collect(),
        policy: NatPolicy {
            deny: cfg.policy().deny_rules().to_vec(),
            no_nat: nat.no_nat().to_vec(),
            private: nat.private_prefixes().to_vec(),
        },
        timeouts: CoreTimeouts {
            tcp_idle: t.tcp_idle,
            tcp_transitory: t.tcp_transitory,
            udp_idle: t.udp_idle,
            icmp_idle: t.icmp_idle,
        },
        icmp_prohibited: nat.icmp_prohibited(),
        max_sessions: nat.max_sessions().div_ceil(workers as u32).max(1),
        max_neighbors: 65_536,
    }
}

/// How to open one interface.
pub fn port_config(cfg: &Config, iface: &InterfaceConfig) -> anyhow::Result<PortConfig> {
    let driver = match iface.driver() {
        Driver::AfPacket => port::Driver::AfPacket,
        Driver::AfXdp => port::Driver::AfXdp,
        Driver::Memory => port::Driver::Memory,
        #[cfg(feature = "dpdk")]
        Driver::Dpdk => port::Driver::Dpdk,
        #[cfg(not(feature = "dpdk"))]
        Driver::Dpdk => anyhow::bail!(
            "interface {}: driver \"dpdk\" needs an appliance built with the dpdk feature \
             (cargo build --release -p appliance --features dpdk)",
            iface.device()
        ),
    };
    let mut pc = PortConfig::new(driver, iface.device());
    pc.burst = cfg.dataplane().burst();
    pc.ring_frames = cfg.dataplane().rx_ring().max(cfg.dataplane().tx_ring());
    Ok(pc)
}
