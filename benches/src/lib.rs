//! Benchmarks and the figures report (layer: benches, on top of every other crate; measurement code,
//! never on the product's path).
//!
//! The library holds what the `figures` program (`src/bin/figures.rs`) and the criterion benches
//! (`benches/*.rs`) share, so that both measure exactly the same thing:
//! - [`scenario`]: the FD.io CSIT NAT44 layout (63 ports per inside host, 1,024 inside hosts per public
//!   IP) turned into a real [`natgw_dataplane::nat::NatCore`] with its real allocator, filled with live
//!   sessions by sending first packets through the core;
//! - [`stream`]: prebuilt 64-byte frames laid out back to back in a random flow order, which the harness
//!   copies into reused burst buffers (the stand-in for a NIC's DMA);
//! - [`harness`]: the timed loops (NAT, plain forwarding, copy only) over bursts of 32;
//! - [`report`]: the machine description and the one-JSON-object-per-line output.
//!
//! Invariant: every figure is produced by the same code path the appliance runs (`process_burst`,
//! `handle_timeout` once per burst); the harness checks that every packet it counts was forwarded.

pub mod harness;
pub mod report;
pub mod scenario;
pub mod stream;
