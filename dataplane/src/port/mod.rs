//! Packet I/O.
