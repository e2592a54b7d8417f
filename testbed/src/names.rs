//! Names of the things a topology creates: namespaces and interfaces.
//!
//! Layer: test harness, slow path. Invariant: every namespace this crate creates is named
//! `{prefix}-{pid}-{counter}-{role}` — the prefix marks it as ours (so `testbed down` can
//! find leftovers), the pid of the creating process tells whether its owner still lives, and
//! the per-process counter keeps two topologies of one process apart. Interfaces are created
//! directly inside their namespaces (never in the root namespace), so their names only need
//! to be unique within one namespace and can stay short and fixed (`c0`, `inside0`, ...),
//! well under the kernel's 15-character limit (`IFNAMSIZ` - 1).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Result, TestbedError};

/// The prefix of every namespace the testbed creates unless told otherwise.
pub const DEFAULT_PREFIX: &str = "ntb";

/// Longest interface name the kernel accepts (`IFNAMSIZ` is 16 including the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest prefix we accept; keeps namespace names short and readable.
pub const MAX_PREFIX_LEN: usize = 12;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace-name prefix: lowercase ASCII letters and digits, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Checks and wraps a prefix.
    pub fn new(prefix: &str) -> Result<Self> {
        let bad = |why| TestbedError::InvalidName {
            kind: "prefix",
            name: prefix.to_owned(),
            why,
        };
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(bad("must be 1 to 12 characters"));
        }
        if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad("must start with a lowercase letter"));
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(bad("only lowercase letters and digits are allowed"));
        }
        Ok(Prefix(prefix.to_owned()))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix(DEFAULT_PREFIX.to_owned())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a namespace is for; the last component of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The private hosts behind the NAT.
    Client,
    /// The NAT itself: the appliance, or the Linux kernel as baseline.
    Nat,
    /// The internet: gateway and servers.
    Inet,
    /// A throw-away namespace used to check that namespaces work at all.
    Probe,
}

impl Role {
    /// The role's name as used in namespace names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Nat => "nat",
            Role::Inet => "inet",
            Role::Probe => "probe",
        }
    }
}

/// One topology instance: the creating process and a per-process counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId {
    /// Process id of the creator.
    pub pid: u32,
    /// Sequence number within that process.
    pub seq: u32,
}

impl RunId {
    /// A fresh id, unique within this process (and, through the pid, on the machine
    /// among live processes).
    pub fn next() -> Self {
        RunId {
            pid: std::process::id(),
            seq: COUNTER.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The name of a network namespace (an entry of `/var/run/netns`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NsName(String);

impl NsName {
    /// The name of the namespace with `role` of run `id`.
    pub fn new(prefix: &Prefix, id: RunId, role: Role) -> Self {
        NsName(format!(
            "{}-{}-{}-{}",
            prefix.as_str(),
            id.pid,
            id.seq,
            role.as_str()
        ))
    }

    /// Wraps an existing namespace name (for example one found by `testbed down`).
    pub fn existing(name: &str) -> Result<Self> {
        if name.is_empty()
            || name.len() > 200
            || name == "."
            || name == ".."
            || name.contains(['/', '\0'])
            || name.chars().any(char::is_whitespace)
        {
            return Err(TestbedError::InvalidName {
                kind: "namespace",
                name: name.to_owned(),
                why: "not a plain file name",
            });
        }
        Ok(NsName(name.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// If this name follows our scheme under `prefix`, the pid of the process that made it.
    pub fn owner_pid(&self, prefix: &Prefix) -> Option<u32> {
        let rest = self.0.strip_prefix(prefix.as_str())?.strip_prefix('-')?;
        let mut parts = rest.split('-');
        let pid = parts.next()?.parse().ok()?;
        let _seq: u32 = parts.next()?.parse().ok()?;
        let _role = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        Some(pid)
    }

    /// Whether this name carries `prefix` followed by a dash.
    pub fn has_prefix(&self, prefix: &Prefix) -> bool {
        self.0
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A kernel interface name: 1 to 15 bytes of ASCII letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfName(String);

impl IfName {
    /// Checks and wraps an interface name.
    pub fn new(name: &str) -> Result<Self> {
        let bad = |why| TestbedError::InvalidName {
            kind: "interface",
            name: name.to_owned(),
            why,
        };
        if name.is_empty() || name.len() > MAX_IFNAME_LEN {
            return Err(bad("must be 1 to 15 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "only ASCII letters, digits, '-', '_' and '.' are allowed",
            ));
        }
        if name == "." || name == ".." || name == "lo" {
            return Err(bad("reserved name"));
        }
        Ok(IfName(name.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps one of the crate's built-in default names (checked by the spec's unit tests).
    pub(crate) fn from_static(name: &'static str) -> Self {
        debug_assert!(
            IfName::new(name).is_ok(),
            "bad built-in interface name {name}"
        );
        IfName(name.to_owned())
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_unique_and_parse_back() {
        let p = Prefix::default();
        let a = RunId::next();
        let b = RunId::next();
        assert_ne!(a, b);
        let na = NsName::new(&p, a, Role::Nat);
        let nb = NsName::new(&p, b, Role::Nat);
        assert_ne!(na, nb);
        assert_eq!(na.owner_pid(&p), Some(std::process::id()));
        assert!(na.has_prefix(&p));
        assert!(na.as_str().ends_with("-nat"));
    }

    #[test]
    fn prefixes_do_not_shadow_each_other() {
        let short = Prefix::new("ntb").unwrap();
        let long = Prefix::new("ntbleak").unwrap();
        let n = NsName::new(&long, RunId { pid: 7, seq: 1 }, Role::Client);
        assert!(!n.has_prefix(&short));
        assert_eq!(n.owner_pid(&short), None);
        assert_eq!(n.owner_pid(&long), Some(7));
    }

    #[test]
    fn foreign_names_have_no_owner() {
        let p = Prefix::default();
        for name in [
            "ntb",
            "ntb-",
            "ntb-x-1-nat",
            "ntb-1-x-nat",
            "ntb-1-2",
            "ntb-1-2-nat-z",
        ] {
            assert_eq!(
                NsName::existing(name).unwrap().owner_pid(&p),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn bad_names_are_rejected() {
        assert!(Prefix::new("").is_err());
        assert!(Prefix::new("Ntb").is_err());
        assert!(Prefix::new("n-b").is_err());
        assert!(Prefix::new("1ab").is_err());
        assert!(Prefix::new("abcdefghijklm").is_err());
        assert!(IfName::new("inside0").is_ok());
        assert!(IfName::new("abcdefghijklmno").is_ok());
        assert!(IfName::new("abcdefghijklmnop").is_err());
        assert!(IfName::new("a b").is_err());
        assert!(IfName::new("a/b").is_err());
        assert!(IfName::new("lo").is_err());
        assert!(NsName::existing("../etc").is_err());
        assert!(NsName::existing("a b").is_err());
    }
}
