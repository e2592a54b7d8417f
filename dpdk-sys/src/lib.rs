//! Thin FFI binding to DPDK 22.11 for natgw's DPDK port backend.
//!
//! Layer: FFI, below `natgw_dataplane::port::dpdk`; used on the fast path (burst functions) and
//! the slow path (EAL, device set-up). Everything lives behind the cargo feature `dpdk`: without
//! it this crate is empty and its build script does nothing, so the default build needs no DPDK.
//!
//! With `dpdk`, `sys` holds bindgen's declarations for an allowlist of `rte_eal.h`,
//! `rte_ethdev.h`, `rte_mbuf.h`, `rte_mempool.h` and `rte_dev.h`, plus our C shim
//! (`shim/natgw_shim.c`), which makes DPDK's `static inline` functions linkable
//! (`natgw_eth_rx_burst`, `natgw_eth_tx_burst`, `natgw_pktmbuf_alloc`, `natgw_pktmbuf_free`,
//! `natgw_pktmbuf_append`, `natgw_pktmbuf_mtod`, `natgw_errno`, ...) and exports the constants
//! bindgen cannot evaluate (`sys::natgw_constants()`). `rte_mbuf` and `rte_mempool` are opaque:
//! the shim does every field access, so Rust never depends on their layout.
//!
//! Safety: everything in `sys` is a raw C function; the caller upholds DPDK's rules (EAL
//! initialised once, a queue used by one thread at a time, mbufs freed exactly once).

/// Whether this build carries the DPDK binding (the `dpdk` feature).
pub const ENABLED: bool = cfg!(feature = "dpdk");

/// bindgen's declarations (generated at build time; see `build.rs` for the allowlist).
#[cfg(feature = "dpdk")]
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

/// The libdpdk version pkg-config reported at build time (e.g. "22.11.11").
#[cfg(feature = "dpdk")]
pub const DPDK_VERSION: &str = env!("NATGW_DPDK_VERSION");

#[cfg(all(test, feature = "dpdk"))]
mod tests {
    use super::sys;

    #[test]
    fn constants_match_dpdk_22_11() {
        // SAFETY: natgw_constants returns a pointer to a static, immutable table.
        let c = unsafe { &*sys::natgw_constants() };
        assert_eq!(c.rss_l4_dst_only, 1u64 << 60);
        assert_eq!(c.rx_l4_cksum_none, (1u64 << 3) | (1u64 << 8));
        assert_eq!(c.pktmbuf_headroom, 128);
        assert_eq!(c.mbuf_default_buf_size, 2048 + 128);
        assert_eq!(c.eth_link_up, 1);
        assert_ne!(c.rss_ip & c.rss_tcp & c.rss_udp, u64::MAX);
        assert!(c.max_lcore >= 2);
    }

    #[test]
    fn version_is_at_least_22_11() {
        let mut parts = super::DPDK_VERSION
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        assert!((major, minor) >= (22, 11), "{}", super::DPDK_VERSION);
    }
}
