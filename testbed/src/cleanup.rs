//! Removing leftovers: namespaces with our prefix whose owner process is gone.
//!
//! Layer: test harness, slow path. Used by `testbed down` and at the start of `testbed up`.
//! Invariant: only namespaces whose name starts with `{prefix}-` are ever touched; by default
//! only those whose creating process (the pid in the name) no longer exists, so a running
//! test or `testbed up` in another terminal keeps its topology.

use std::path::Path;

use crate::error::{Result, TestbedError};
use crate::names::{NsName, Prefix};
use crate::netns::{Netns, NETNS_DIR};

/// Which of our namespaces to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftoverScope {
    /// Only namespaces whose creating process no longer runs (safe while tests run).
    DeadOwners,
    /// Every namespace with the prefix, whoever made it.
    All,
}

/// Our namespaces (by `prefix`) that `scope` selects, sorted by name.
pub fn find_leftovers(prefix: &Prefix, scope: LeftoverScope) -> Result<Vec<NsName>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TestbedError::io(format!("list {NETNS_DIR}"), e)),
    };
    let mut out: Vec<NsName> = dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = NsName::existing(entry.file_name().to_str()?).ok()?;
            name.has_prefix(prefix).then_some(name)
        })
        .filter(|name| match scope {
            LeftoverScope::All => true,
            LeftoverScope::DeadOwners => name
                .owner_pid(prefix)
                .is_some_and(|pid| !process_alive(pid)),
        })
        .collect();
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(out)
}

/// Whether `pid` names a live process (a zombie, whose exit is only not yet collected,
/// counts as dead: its namespaces are already released).
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return false;
    };
    // Format: `pid (comm) state ...`; comm may contain anything, so split at the last ')'.
    match stat.rsplit_once(')') {
        Some((_, rest)) => !matches!(rest.trim_start().chars().next(), Some('Z' | 'X') | None),
        None => false,
    }
}

/// Kills what runs in each selected namespace and deletes it; returns the names removed.
pub fn remove_leftovers(prefix: &Prefix, scope: LeftoverScope) -> Result<Vec<NsName>> {
    let found = find_leftovers(prefix, scope)?;
    for name in &found {
        log::info!("removing leftover namespace {name}");
        drop(Netns::adopt(name.clone()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_of_pids() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: after it exits it is a zombie, which counts as dead.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
    }
}
