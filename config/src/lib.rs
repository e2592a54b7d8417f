//! The natgw configuration file: TOML parsed into raw structs, then validated.
#![forbid(unsafe_code)]

mod protocol;

pub use protocol::Protocol;
