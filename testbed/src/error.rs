//! Errors of the testbed library.
//!
//! Layer: test harness (slow path only; nothing here is on a packet path). Every fallible
//! operation of the library returns [`TestbedError`]; the `testbed` binary wraps it in
//! `anyhow` at its edge. Errors carry the command line or the address involved so that a
//! failing end-to-end test says what went wrong without a rerun.

use std::io;
use std::process::ExitStatus;

/// Result alias used throughout the testbed library.
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;

/// Everything that can go wrong while building a topology or driving traffic through it.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A helper program (`ip`, `ethtool`, `nft`, `ping`, ...) could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line that was attempted.
        command: String,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// A helper program ran and reported failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line that failed.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr (trimmed).
        stderr: String,
    },
    /// A required program is not installed (not found in `PATH` or the sbin directories).
    #[error("program `{0}` not found (install it, see PLATFORM.md)")]
    MissingProgram(String),
    /// Entering a network namespace (`open` + `setns`) failed.
    #[error("cannot enter network namespace {namespace}: {source}")]
    EnterNamespace {
        /// The namespace name.
        namespace: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A name (namespace, interface, prefix) is not acceptable.
    #[error("invalid {kind} name {name:?}: {why}")]
    InvalidName {
        /// What kind of name it is.
        kind: &'static str,
        /// The offending name.
        name: String,
        /// Why it is rejected.
        why: &'static str,
    },
    /// A [`crate::TopologySpec`] field is inconsistent.
    #[error("invalid topology spec, field `{field}`: {why}")]
    InvalidSpec {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// An argument of a traffic helper is out of its bounds.
    #[error("invalid argument `{name}`: {why}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A socket or file operation of a traffic helper failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (with addresses).
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The appliance under test did not start, or misbehaved (the message carries its output).
    #[error("appliance: {0}")]
    Appliance(String),
    /// A helper program's output did not have the expected shape.
    #[error("cannot parse output of `{program}`: {output:?}")]
    UnexpectedOutput {
        /// The program whose output was parsed.
        program: &'static str,
        /// The output (truncated).
        output: String,
    },
}

impl TestbedError {
    /// The [`io::ErrorKind`] behind this error, if it wraps an I/O error.
    ///
    /// Lets a test assert, for example, that a UDP exchange ended in
    /// `ConnectionRefused` (an ICMP port unreachable reached the socket).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            TestbedError::Io { source, .. }
            | TestbedError::Spawn { source, .. }
            | TestbedError::EnterNamespace { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        TestbedError::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kind_is_exposed_for_io_errors_only() {
        let e = TestbedError::io(
            "udp 1.2.3.4",
            io::Error::from(io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(e.io_kind(), Some(io::ErrorKind::ConnectionRefused));
        assert!(e.to_string().starts_with("udp 1.2.3.4: "));
        let e = TestbedError::MissingProgram("nft".into());
        assert_eq!(e.io_kind(), None);
    }
}
