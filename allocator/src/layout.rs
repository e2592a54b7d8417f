//! The immutable shape of the inventory: usable ports ("slots"), blocks, public IPs and
//! preallocated instance ranges.
//!
//! Layer: allocator, built once on the slow path and shared read-only (`Arc`) by the inventory,
//! the owner map and every shard. Invariants: slots are the usable ports (the port range minus
//! reserved ranges) in increasing port order; block `b` is slots `[b*bs, (b+1)*bs)` (the last one
//! may be short); a preallocated instance `k` owns slots `[k*ppi, (k+1)*ppi)` and, since `bs`
//! divides `ppi`, whole blocks.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use crate::config::{default_ports_per_instance, AllocatorConfig, Policy};
use crate::inventory::InventoryError;
use crate::types::Protocol;

/// Most public IPs one inventory can hold.
pub const MAX_PUBLIC_IPS: usize = 4096;
/// Most shards (`u16::MAX` is the "no owner" marker).
pub const MAX_SHARDS: u16 = 1024;

pub(crate) const NO_SLOT: u16 = u16::MAX;

#[derive(Debug)]
pub(crate) struct Layout {
    pub ips: Vec<Ipv4Addr>,
    ip_index: HashMap<u32, u16>,
    /// slot -> port.
    pub ports: Vec<u16>,
    /// port -> slot, `NO_SLOT` for ports outside the inventory.
    pub slot_of: Vec<u16>,
    pub block_size: u32,
    pub n_blocks: u32,
    /// Preallocated: instance -> index, and ports per instance (0 when dynamic).
    pub instances: HashMap<u32, u32>,
    pub ppi: u32,
}

impl Layout {
    pub fn new(cfg: &AllocatorConfig, shards: u16) -> Result<Layout, InventoryError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(InventoryError::BadShardCount(shards));
        }
        if cfg.public_ips.is_empty() {
            return Err(InventoryError::NoPublicIps);
        }
        if cfg.public_ips.len() > MAX_PUBLIC_IPS {
            return Err(InventoryError::TooManyPublicIps(cfg.public_ips.len()));
        }
        let mut ip_index = HashMap::with_capacity(cfg.public_ips.len());
        for (i, ip) in cfg.public_ips.iter().enumerate() {
            if ip_index.insert(u32::from(*ip), i as u16).is_some() {
                return Err(InventoryError::DuplicatePublicIp(*ip));
            }
        }
        let (lo, hi) = cfg.port_range;
        if lo == 0 || lo > hi {
            return Err(InventoryError::BadPortRange(lo, hi));
        }
        let mut usable = vec![false; 65536];
        for p in lo..=hi {
            usable[usize::from(p)] = true;
        }
        for &(s, e) in &cfg.reserved {
            if s > e {
                return Err(InventoryError::BadReservedRange(s, e));
            }
            let s = usize::from(s) & !7;
            let e = (usize::from(e) | 7).min(65535);
            for u in &mut usable[s..=e] {
                *u = false;
            }
        }
        let ports: Vec<u16> = (1..=65535u16).filter(|&p| usable[usize::from(p)]).collect();
        if ports.is_empty() {
            return Err(InventoryError::NoUsablePorts);
        }
        let mut slot_of = vec![NO_SLOT; 65536];
        for (s, &p) in ports.iter().enumerate() {
            slot_of[usize::from(p)] = s as u16;
        }
        if cfg.block_size == 0 {
            return Err(InventoryError::BadBlockSize(0));
        }
        let n_slots = ports.len() as u32;
        let mut instances = HashMap::new();
        let (block_size, ppi) = match &cfg.policy {
            Policy::Dynamic { .. } => (u32::from(cfg.block_size), 0),
            Policy::Preallocated {
                instances: list,
                ports_per_instance,
            } => {
                if list.is_empty() {
                    return Err(InventoryError::EmptyPool);
                }
                let ppi = if *ports_per_instance == 0 {
                    default_ports_per_instance(list.len())
                        .ok_or(InventoryError::PoolTooLarge(list.len()))?
                } else {
                    *ports_per_instance
                };
                if ppi % 8 != 0 {
                    return Err(InventoryError::PortsPerInstanceNotMultipleOf8(ppi));
                }
                let ppi = u32::from(ppi);
                let need = u64::from(ppi) * list.len() as u64;
                if need > u64::from(n_slots) {
                    return Err(InventoryError::NotEnoughPorts {
                        need,
                        have: n_slots,
                    });
                }
                for (k, inst) in list.iter().enumerate() {
                    if instances.insert(u32::from(*inst), k as u32).is_some() {
                        return Err(InventoryError::DuplicateInstance(*inst));
                    }
                }
                (
                    preallocated_block_size(u32::from(cfg.block_size), ppi, u32::from(shards)),
                    ppi,
                )
            }
        };
        let n_blocks = n_slots.div_ceil(block_size);
        Ok(Layout {
            ips: cfg.public_ips.clone(),
            ip_index,
            ports,
            slot_of,
            block_size,
            n_blocks,
            instances,
            ppi,
        })
    }

    #[inline]
    pub fn n_slots(&self) -> u32 {
        self.ports.len() as u32
    }

    #[inline]
    pub fn n_pools(&self) -> usize {
        self.ips.len() * 3
    }

    #[inline]
    pub fn ip_index(&self, ip: Ipv4Addr) -> Option<u16> {
        self.ip_index.get(&u32::from(ip)).copied()
    }

    #[inline]
    pub fn pool_index(ip_idx: u16, proto: Protocol) -> usize {
        usize::from(ip_idx) * 3 + proto as usize
    }

    #[inline]
    pub fn pool_parts(&self, pool: usize) -> (Ipv4Addr, Protocol) {
        (self.ips[pool / 3], Protocol::ALL[pool % 3])
    }

    /// Slots `[start, end)` of block `b`.
    #[inline]
    pub fn block_slots(&self, b: u32) -> (u32, u32) {
        let start = b * self.block_size;
        (start, (start + self.block_size).min(self.n_slots()))
    }

    /// The slot range a host may use: everything (dynamic) or its instance's range.
    pub fn host_range(&self, host: Ipv4Addr) -> Option<(u32, u32)> {
        if self.ppi == 0 {
            return Some((0, self.n_slots()));
        }
        let k = *self.instances.get(&u32::from(host))?;
        Some((k * self.ppi, (k + 1) * self.ppi))
    }
}

/// Largest divisor of `ppi` not above `max`, preferring one that leaves every shard a block of
/// each instance.
fn preallocated_block_size(max: u32, ppi: u32, shards: u32) -> u32 {
    let top = max.min(ppi).max(1);
    // Fewer ports per instance than shards ends at 1: one port per block, and some shards get
    // none of an instance's range.
    (1..=top)
        .rev()
        .find(|&d| ppi % d == 0 && ppi / d >= shards)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AllocatorConfig {
        AllocatorConfig {
            public_ips: vec![Ipv4Addr::new(203, 0, 113, 10)],
            ..Default::default()
        }
    }

    #[test]
    fn default_range_has_64512_slots_and_reserved_ranges_take_eights() {
        let l = Layout::new(&cfg(), 1).unwrap();
        assert_eq!(l.n_slots(), 64_512);
        assert_eq!(l.n_blocks, 1008);
        let mut c = cfg();
        c.reserved = vec![(8080, 8080), (2000, 2009)];
        let l = Layout::new(&c, 1).unwrap();
        // 8080..=8087 and 2000..=2015.
        assert_eq!(l.n_slots(), 64_512 - 8 - 16);
        assert_eq!(l.slot_of[8087], NO_SLOT);
        assert_ne!(l.slot_of[8088], NO_SLOT);
        assert_eq!(l.ports[usize::from(l.slot_of[8088])], 8088);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut c = cfg();
        c.port_range = (0, 10);
        assert!(matches!(
            Layout::new(&c, 1),
            Err(InventoryError::BadPortRange(0, 10))
        ));
        assert!(matches!(
            Layout::new(&cfg(), 0),
            Err(InventoryError::BadShardCount(0))
        ));
        let mut c = cfg();
        c.public_ips.clear();
        assert!(matches!(
            Layout::new(&c, 1),
            Err(InventoryError::NoPublicIps)
        ));
        let mut c = cfg();
        c.policy = Policy::Preallocated {
            instances: vec![Ipv4Addr::new(10, 0, 0, 1)],
            ports_per_instance: 100,
        };
        assert!(matches!(
            Layout::new(&c, 1),
            Err(InventoryError::PortsPerInstanceNotMultipleOf8(100))
        ));
        c.policy = Policy::Preallocated {
            instances: (0..1001).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect(),
            ports_per_instance: 0,
        };
        assert!(matches!(
            Layout::new(&c, 1),
            Err(InventoryError::PoolTooLarge(1001))
        ));
    }

    #[test]
    fn preallocated_blocks_divide_the_instance_range() {
        assert_eq!(preallocated_block_size(64, 6400, 2), 64);
        assert_eq!(preallocated_block_size(64, 1024, 16), 64);
        assert_eq!(preallocated_block_size(64, 32, 16), 2);
        assert_eq!(preallocated_block_size(64, 32, 1), 32);
        assert_eq!(preallocated_block_size(64, 8, 16), 1);
        assert_eq!(preallocated_block_size(64, 6400, 3), 64);
        assert_eq!(preallocated_block_size(48, 6400, 1), 40);
    }
}
