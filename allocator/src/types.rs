//! The vocabulary shared by the data path and the allocator: requests, leases, close kinds and
//! typed failures.
//!
//! Layer: allocator, used on the fast path. Every type here is small, `Copy` and `Send`; none
//! allocates.

use std::fmt;
use std::net::Ipv4Addr;

pub use natgw_config::Protocol;

/// A fast-path worker (one shard of the port inventory). `u16::MAX` is never a valid shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard{}", self.0)
    }
}

/// An IPv4 address and a transport port (the ICMP echo identifier for ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 address.
    pub addr: Ipv4Addr,
    /// Port (or ICMP echo identifier).
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its parts.
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// What a new outbound flow asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowRequest {
    /// Transport protocol; selects the inventory.
    pub proto: Protocol,
    /// The private host opening the flow.
    pub host: Ipv4Addr,
    /// The remote endpoint. For UDP and ICMP only the address matters to port reuse.
    pub dest: Endpoint,
}

/// A granted translation. `Copy` and small; hand the same value back to
/// [`ShardAllocator::release`](crate::ShardAllocator::release) exactly once when the flow ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Transport protocol.
    pub proto: Protocol,
    /// The public (translated) source address.
    pub public_ip: Ipv4Addr,
    /// The public (translated) source port or ICMP identifier.
    pub public_port: u16,
    /// The private host the lease belongs to.
    pub host: Ipv4Addr,
    /// The remote endpoint of the flow.
    pub dest: Endpoint,
}

impl Lease {
    /// The request this lease answered (same protocol, host and destination).
    pub const fn request(&self) -> FlowRequest {
        FlowRequest {
            proto: self.proto,
            host: self.host,
            dest: self.dest,
        }
    }
}

/// How a flow ended; selects the cool-down before its (port, destination) pair may be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// TCP closed with FIN in both directions: `tcp_fin` cool-down (default 65 s).
    TcpFin,
    /// TCP closed by RST: `tcp_rst` cool-down (default 16 s).
    TcpRst,
    /// TCP never finished its handshake (SYN without answer): `tcp_half_open` (default 30 s).
    TcpHalfOpen,
    /// Established TCP flow idle past its timeout. Cools down like [`CloseKind::TcpRst`]: the flow
    /// ended without a handshake, so the peer may still hold state for it; a short quarantine keeps
    /// a new SYN on the same 4-tuple from meeting that state at once, and it costs little since the
    /// port keeps serving every other destination meanwhile.
    TcpIdle,
    /// UDP flow idle past its timeout: `udp` cool-down (default 65 s).
    UdpIdle,
    /// ICMP echo flow idle past its timeout: uses the `udp` cool-down.
    IcmpIdle,
}

impl CloseKind {
    /// Every close kind.
    pub const ALL: [CloseKind; 6] = [
        CloseKind::TcpFin,
        CloseKind::TcpRst,
        CloseKind::TcpHalfOpen,
        CloseKind::TcpIdle,
        CloseKind::UdpIdle,
        CloseKind::IcmpIdle,
    ];
}

/// Why an allocation failed. Failures never disturb existing leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AllocError {
    /// No port is free for this destination among the ports the requester may use.
    #[error("SNAT ports exhausted for this destination")]
    PortsExhausted,
    /// The public IP already holds the maximum leases towards this destination.
    #[error("per-destination lease limit reached")]
    DestinationLimit,
    /// The private host holds its maximum number of leases.
    #[error("per-host lease limit reached")]
    HostLimit,
    /// The shard holds its maximum number of leases.
    #[error("session limit reached")]
    SessionLimit,
    /// Preallocated policy: the host is not a listed instance.
    #[error("host is not in the preallocated pool")]
    NotInPool,
}

impl AllocError {
    /// Every failure reason, in a fixed order (index with [`AllocError::index`]).
    pub const ALL: [AllocError; 5] = [
        AllocError::PortsExhausted,
        AllocError::DestinationLimit,
        AllocError::HostLimit,
        AllocError::SessionLimit,
        AllocError::NotInPool,
    ];

    /// snake_case name, used as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            AllocError::PortsExhausted => "ports_exhausted",
            AllocError::DestinationLimit => "destination_limit",
            AllocError::HostLimit => "host_limit",
            AllocError::SessionLimit => "session_limit",
            AllocError::NotInPool => "not_in_pool",
        }
    }

    /// Position in [`AllocError::ALL`].
    pub const fn index(self) -> usize {
        match self {
            AllocError::PortsExhausted => 0,
            AllocError::DestinationLimit => 1,
            AllocError::HostLimit => 2,
            AllocError::SessionLimit => 3,
            AllocError::NotInPool => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_and_indices_are_consistent() {
        for (i, e) in AllocError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(e.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(AllocError::PortsExhausted.name(), "ports_exhausted");
    }
}
