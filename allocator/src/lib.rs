//! SNAT port inventory and allocation (sans-IO).
#![forbid(unsafe_code)]
