//! The natgw data plane: wire formats, sessions, translation and packet I/O.
//!
//! - [`wire`]: zero-copy views of the headers we parse and rewrite (fast path).
//! - [`nat`]: the sans-IO NAT core: sessions, in2out, out2in, timers, counters (fast path).
//! - [`port`]: packet I/O backends behind one trait (AF_PACKET, AF_XDP, in-memory).

pub mod nat;
pub mod port;
pub mod wire;
