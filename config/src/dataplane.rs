//! `[dataplane]`: how many fast-path workers, where they run, and the sizes of their bursts and
//! rings.
//!
//! Layer: config (slow path). Invariants after validation: `workers >= 1`; `cores`, when set, has
//! exactly one distinct core per worker and does not contain `slowpath_core`; `burst` is in
//! `1..=256`; ring sizes are powers of two.

use crate::check::{self, span};
use crate::error::{ErrorKind, Located};
use crate::raw::RawDataplane;

/// Default number of fast-path workers.
pub const DEFAULT_WORKERS: usize = 2;
/// Default packets per rx/tx burst.
pub const DEFAULT_BURST: usize = 32;
/// Default rx descriptors per queue.
pub const DEFAULT_RX_RING: usize = 1024;
/// Default tx descriptors per queue.
pub const DEFAULT_TX_RING: usize = 1024;
/// Default capacity of each cross-core handoff ring, in packets.
pub const DEFAULT_HANDOFF_RING: usize = 4096;
/// Most fast-path workers.
pub const MAX_WORKERS: usize = 128;
/// Most packets per burst.
pub const MAX_BURST: usize = 256;
/// Highest core id accepted.
pub const MAX_CORE: usize = 4095;

/// The fast-path layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    workers: usize,
    cores: Option<Vec<usize>>,
    slowpath_core: Option<usize>,
    burst: usize,
    rx_ring: usize,
    tx_ring: usize,
    handoff_ring: usize,
}

impl DataplaneConfig {
    /// Number of fast-path workers (shards), at least 1.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The core each worker is pinned to (`cores()[k]` for worker `k`), or `None` to leave
    /// placement to the operating system.
    pub fn cores(&self) -> Option<&[usize]> {
        self.cores.as_deref()
    }

    /// The core the slow path is pinned to, if any.
    pub fn slowpath_core(&self) -> Option<usize> {
        self.slowpath_core
    }

    /// Packets per rx/tx burst, `1..=256`.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// Receive descriptors per queue (a power of two).
    pub fn rx_ring(&self) -> usize {
        self.rx_ring
    }

    /// Transmit descriptors per queue (a power of two).
    pub fn tx_ring(&self) -> usize {
        self.tx_ring
    }

    /// Capacity of each cross-core handoff ring, in packets (a power of two).
    pub fn handoff_ring(&self) -> usize {
        self.handoff_ring
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawDataplane) -> Result<Self, Located> {
        let workers = check::opt_int(
            "dataplane.workers",
            &raw.workers,
            DEFAULT_WORKERS as i64,
            1,
            MAX_WORKERS as i64,
        )? as usize;
        let burst = check::opt_int(
            "dataplane.burst",
            &raw.burst,
            DEFAULT_BURST as i64,
            1,
            MAX_BURST as i64,
        )? as usize;
        let rx_ring = check::opt_pow2(
            "dataplane.rx_ring",
            &raw.rx_ring,
            DEFAULT_RX_RING,
            64,
            32768,
        )?;
        let tx_ring = check::opt_pow2(
            "dataplane.tx_ring",
            &raw.tx_ring,
            DEFAULT_TX_RING,
            64,
            32768,
        )?;
        let handoff_ring = check::opt_pow2(
            "dataplane.handoff_ring",
            &raw.handoff_ring,
            DEFAULT_HANDOFF_RING,
            64,
            1 << 20,
        )?;
        let slowpath_core = match &raw.slowpath_core {
            None => None,
            Some(l) => {
                Some(check::int_in("dataplane.slowpath_core", l, 0, MAX_CORE as i64)? as usize)
            }
        };
        let cores = match &raw.cores {
            None => None,
            Some(list) => {
                let mut cores: Vec<usize> = Vec::with_capacity(list.get_ref().len());
                for (i, item) in list.get_ref().iter().enumerate() {
                    let key = format!("dataplane.cores[{i}]");
                    let core = check::int_in(&key, item, 0, MAX_CORE as i64)? as usize;
                    if let Some(j) = cores.iter().position(|&c| c == core) {
                        return Err(Located::at(
                            key,
                            span(item),
                            ErrorKind::Duplicate {
                                value: format!("core {core}"),
                                first_line: 0,
                            },
                        )
                        .with_first(span(&list.get_ref()[j]).start));
                    }
                    if Some(core) == slowpath_core {
                        return Err(Located::at(
                            key,
                            span(item),
                            ErrorKind::Conflict {
                                message: format!(
                                    "core {core} is also dataplane.slowpath_core; valid: a core \
                                     used by one worker only, not the slow path's"
                                ),
                            },
                        ));
                    }
                    cores.push(core);
                }
                if cores.len() != workers {
                    return Err(Located::at(
                        "dataplane.cores",
                        span(list),
                        ErrorKind::LengthMismatch {
                            len: cores.len(),
                            expected: workers,
                            reason: "one core per worker, dataplane.workers".to_string(),
                        },
                    ));
                }
                Some(cores)
            }
        };
        Ok(DataplaneConfig {
            workers,
            cores,
            slowpath_core,
            burst,
            rx_ring,
            tx_ring,
            handoff_ring,
        })
    }
}
