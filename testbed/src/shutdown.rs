//! Ctrl-C handling for the `testbed` binary: the first SIGINT/SIGTERM asks for a clean
//! teardown, a second one exits at once.
//!
//! Layer: binary edge, slow path. The handler only sets an atomic flag (async-signal-safe,
//! via `signal-hook`); the main loop polls [`Shutdown::requested`] and then drops its
//! topology, which deletes the namespaces. If the user presses Ctrl-C again before that
//! completes, the process exits with status 130 and `testbed down` cleans what is left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Result, TestbedError};

/// Exit status used when a second signal interrupts the teardown (128 + SIGINT).
pub const FORCED_EXIT_CODE: i32 = 130;

/// A flag raised by SIGINT or SIGTERM.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// Installs the handlers. Call once, early in `main`.
    pub fn install() -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            let err = |e| TestbedError::io(format!("install handler for signal {sig}"), e);
            // Registered first, so it sees the flag before the second handler sets it:
            // exits only when the flag was already raised by an earlier signal.
            signal_hook::flag::register_conditional_shutdown(sig, FORCED_EXIT_CODE, flag.clone())
                .map_err(err)?;
            signal_hook::flag::register(sig, flag.clone()).map_err(err)?;
        }
        Ok(Shutdown { flag })
    }

    /// A flag that no signal raises (for library callers and tests).
    pub fn never() -> Self {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Raises the flag by hand.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Sleeps up to `d`, waking early on a stop request; returns whether one came.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        while !self.requested() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
        true
    }

    /// Blocks until a stop is requested.
    pub fn wait(&self) {
        while !self.sleep(Duration::from_secs(1)) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_wakes_on_request() {
        let s = Shutdown::never();
        assert!(!s.sleep(Duration::from_millis(10)));
        let t = s.clone();
        let h = std::thread::spawn(move || t.sleep(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        s.request();
        assert!(h.join().unwrap());
        assert!(s.requested());
    }
}
