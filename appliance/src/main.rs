//! The natgw appliance binary: parses the command line (see `cli`) and runs the chosen command.
//!
//! Layer: appliance, the top of the workspace; the only crate (with `testbed`) that owns threads,
//! sockets, NICs, the clock and signals.

mod cli;
mod clock;
mod metrics;
mod params;
mod ports;
mod rings;
mod runtime;
mod slowpath;
mod worker;

fn main() -> std::process::ExitCode {
    cli::main()
}
