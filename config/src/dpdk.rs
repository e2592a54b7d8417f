//! `[dpdk]`: arguments for DPDK's Environment Abstraction Layer and the size of the packet buffer
//! pool. Only read when an interface uses `driver = "dpdk"`.
//!
//! Layer: config (slow path). Invariant after validation: `mbufs` is in `1024..=16777216`; the
//! cross-check that the pool can fill every rx ring is done in [`crate::Config`], which knows the
//! workers and rings.

use crate::check::{self, span};
use crate::error::{ErrorKind, Located};
use crate::raw::RawDpdk;

/// Default number of packet buffers (mbufs) in the pool.
pub const DEFAULT_MBUFS: u32 = 65536;
/// Fewest mbufs accepted.
pub const MIN_MBUFS: u32 = 1024;
/// Most mbufs accepted.
pub const MAX_MBUFS: u32 = 1 << 24;

/// DPDK settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    eal_args: Vec<String>,
    mbufs: u32,
}

impl DpdkConfig {
    /// Extra EAL arguments (`["-m", "1024"]`; `"--no-huge"`, `"--no-shconf"` in a testbed).
    pub fn eal_args(&self) -> &[String] {
        &self.eal_args
    }

    /// Packet buffers in the mbuf pool.
    pub fn mbufs(&self) -> u32 {
        self.mbufs
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawDpdk) -> Result<Self, Located> {
        let mut eal_args = Vec::new();
        if let Some(list) = &raw.eal_args {
            for (i, a) in list.get_ref().iter().enumerate() {
                if a.get_ref().contains('\0') {
                    return Err(Located::at(
                        format!("dpdk.eal_args[{i}]"),
                        span(a),
                        ErrorKind::BadValue {
                            value: check::quoted(a.get_ref()),
                            valid: "a string without NUL characters".to_string(),
                        },
                    ));
                }
                eal_args.push(a.get_ref().clone());
            }
        }
        let mbufs = check::opt_int(
            "dpdk.mbufs",
            &raw.mbufs,
            i64::from(DEFAULT_MBUFS),
            i64::from(MIN_MBUFS),
            i64::from(MAX_MBUFS),
        )? as u32;
        Ok(DpdkConfig { eal_args, mbufs })
    }
}
