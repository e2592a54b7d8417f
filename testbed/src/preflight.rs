//! Can this machine run namespace tests? Root, the tools, and a namespace that really works.
//!
//! Layer: test harness, slow path. Tests that need namespaces call
//! [`require_root_and_netns`] first and, when it fails, print `SKIPPED: reason` to stderr and
//! return (the [`crate::skip_unless!`] macro does both), so a machine without root never
//! passes such a test silently. The namespace probe runs once per process; its result is
//! cached.

use std::fmt;
use std::sync::OnceLock;

use crate::names::{NsName, Prefix, Role, RunId};
use crate::netns::Netns;
use crate::process::find_program;

/// Why a test cannot run here; printed as `SKIPPED: {reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason(String);

impl SkipReason {
    /// A reason with this text.
    pub fn new(reason: impl Into<String>) -> Self {
        SkipReason(reason.into())
    }

    /// The reason text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Programs every topology needs.
pub const TOPOLOGY_PROGRAMS: [&str; 2] = ["ip", "ethtool"];

/// Checks that we are root, that `ip` and `ethtool` exist, and that a network namespace can
/// be created, entered (`setns`) and deleted. Cached after the first call.
pub fn require_root_and_netns() -> Result<(), SkipReason> {
    static PROBE: OnceLock<Result<(), SkipReason>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

/// Checks that each program exists (in `PATH` or the sbin directories).
pub fn require_programs(programs: &[&str]) -> Result<(), SkipReason> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SkipReason::new(format!(
            "missing program(s): {} (see PLATFORM.md for the packages)",
            missing.join(", ")
        )))
    }
}

fn probe() -> Result<(), SkipReason> {
    // SAFETY: geteuid(2) has no arguments, cannot fail and touches no memory of ours.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(SkipReason::new(format!(
            "needs root for network namespaces (euid is {euid})"
        )));
    }
    require_programs(&TOPOLOGY_PROGRAMS)?;
    let name = NsName::new(&Prefix::default(), RunId::next(), Role::Probe);
    let ns = Netns::create(name)
        .map_err(|e| SkipReason::new(format!("cannot create a network namespace: {e}")))?;
    ns.run_in(|| ())
        .map_err(|e| SkipReason::new(format!("cannot enter a network namespace: {e}")))?;
    drop(ns);
    Ok(())
}

/// Writes `SKIPPED: reason` (with the current test's thread name) straight to the stderr
/// file descriptor. Unlike `eprintln!`, this is not swallowed by the test harness's output
/// capture, so skips show up in every `cargo test` log.
pub fn report_skip(reason: &SkipReason) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    // One write, so lines of parallel tests do not interleave. Nothing sensible to do if
    // stderr is closed.
    let line = format!("SKIPPED: {test}: {reason}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Returns from the calling test after printing `SKIPPED: reason` to stderr when `$check`
/// (a `Result<(), SkipReason>`) is an error. With a second argument, returns that value
/// (for tests that return `Result`).
///
/// ```no_run
/// #[test]
/// fn needs_namespaces() {
///     testbed::skip_unless!(testbed::require_root_and_netns());
///     // ... build a Topology ...
/// }
/// ```
#[macro_export]
macro_rules! skip_unless {
    ($check:expr) => {
        $crate::skip_unless!($check, ())
    };
    ($check:expr, $ret:expr) => {
        if let ::std::result::Result::Err(reason) = $check {
            $crate::report_skip(&reason);
            return $ret;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_named() {
        let err = require_programs(&["sh", "no-such-program-natgw"]).unwrap_err();
        assert!(err.as_str().contains("no-such-program-natgw"));
        assert!(!err.as_str().contains("sh,"));
        assert!(require_programs(&["sh"]).is_ok());
    }

    fn returns_early(check: Result<(), SkipReason>) -> u32 {
        skip_unless!(check, 1);
        2
    }

    #[test]
    fn skip_macro_returns_on_error_only() {
        assert_eq!(
            returns_early(Err(SkipReason::new("expected: unit test of skip_unless!"))),
            1
        );
        assert_eq!(returns_early(Ok(())), 2);
    }
}
