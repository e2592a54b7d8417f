//! `testbed bench`: packets per second through the appliance and through the Linux kernel's nftables SNAT
//! on the same topology with the same sender, in one run.

use std::process::ExitCode;

/// Options of `testbed bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Small counts and short runs, to prove the harness works (CI).
    #[arg(long)]
    pub quick: bool,
}

/// Run the benchmark.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    eprintln!("testbed bench: not built yet");
    Ok(ExitCode::from(2))
}
