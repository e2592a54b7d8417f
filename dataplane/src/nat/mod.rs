//! The sans-IO NAT core.
