//! Small, bounded traffic helpers for tests and the demo.
//!
//! Layer: test harness, slow path. Every helper creates its sockets inside one of our
//! namespaces (through [`crate::Netns::run_in`]), so traffic only ever reaches addresses of
//! namespaces the caller built. Every helper is bounded in count ([`MAX_COUNT`]) and time
//! (each socket operation has a timeout of at most [`MAX_TIMEOUT`]); servers run until
//! dropped, and each connection they serve is bounded in bytes and time.
//!
//! Servers record the peer address they saw for every connection or datagram — that is what
//! proves the NAT rewrote the source.

mod ping;
mod tcp;
mod udp;

use std::time::Duration;

pub use ping::{parse_ping_summary, ping, PingReport};
pub use tcp::{
    http_get, tcp_burst, tcp_request, wait_for_tcp, HttpResponse, TcpBurst, TcpServer, TcpService,
};
pub use udp::{udp_burst, udp_exchange, UdpBurst, UdpEchoServer};

use crate::error::{Result, TestbedError};

/// Most operations (connections, datagrams, pings) one helper call may perform.
pub const MAX_COUNT: usize = 100_000;

/// Longest timeout one socket operation may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes a server sends or echoes on one connection, and a client reads.
pub const MAX_BYTES: usize = 64 << 20;

/// How many records (peers, sources) a server keeps; later ones are only counted.
pub const MAX_RECORDS: usize = 1 << 20;

/// Outcome of a burst of short exchanges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BurstReport {
    /// Exchanges started.
    pub attempted: usize,
    /// Exchanges that completed with a non-empty answer.
    pub succeeded: usize,
    /// Exchanges that failed (connect, send, receive or empty answer).
    pub failed: usize,
    /// The first failure, for the test's message.
    pub first_error: Option<String>,
    /// Wall time of the whole burst.
    pub elapsed: Duration,
}

impl BurstReport {
    fn record(&mut self, outcome: Result<bool>) {
        self.attempted += 1;
        match outcome {
            Ok(true) => self.succeeded += 1,
            Ok(false) => {
                self.failed += 1;
                self.first_error
                    .get_or_insert_with(|| "empty answer".to_owned());
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn check_count(count: usize) -> Result<()> {
    if count > MAX_COUNT {
        return Err(TestbedError::InvalidArgument {
            name: "count",
            why: format!("{count} exceeds the bound {MAX_COUNT}"),
        });
    }
    Ok(())
}

fn check_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(TestbedError::InvalidArgument {
            name: "timeout",
            why: format!("{timeout:?} is not within (0, {MAX_TIMEOUT:?}]"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert!(check_count(MAX_COUNT).is_ok());
        assert!(check_count(MAX_COUNT + 1).is_err());
        assert!(check_timeout(Duration::ZERO).is_err());
        assert!(check_timeout(MAX_TIMEOUT + Duration::from_millis(1)).is_err());
        assert!(check_timeout(Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn burst_report_counts_and_keeps_first_error() {
        let mut r = BurstReport::default();
        r.record(Ok(true));
        r.record(Ok(false));
        r.record(Err(TestbedError::MissingProgram("x".into())));
        assert_eq!((r.attempted, r.succeeded, r.failed), (3, 1, 2));
        assert_eq!(r.first_error.as_deref(), Some("empty answer"));
    }
}
