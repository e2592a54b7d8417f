//! The command line (DESIGN.md §5): `appliance --config FILE` runs the appliance,
//! `appliance check --config FILE` validates a config and prints the effective configuration with
//! its derived numbers.
//!
//! Layer: appliance (the binary's edge; slow path). Exit status 0 on success, 1 on a refused or
//! unreadable config (one line: `FILE:LINE:COL: \`key\`: what is wrong; valid: ...`), 2 on a
//! command-line usage error (clap's own convention).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use natgw_config::Config;

/// natgw: a poll-mode SNAT appliance.
#[derive(Debug, Parser)]
#[command(name = "appliance", version, about)]
pub struct Cli {
    /// The TOML config file to run with (see docs/config.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do instead of running the appliance.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and print the effective configuration, with its derived numbers.
    Check {
        /// The TOML config file to check.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { config }) => check(&config),
        None => match cli.config {
            Some(config) => run(&config),
            None => {
                eprintln!(
                    "appliance: --config FILE is required (or: appliance check --config FILE)"
                );
                ExitCode::from(2)
            }
        },
    }
}

/// `appliance check --config FILE`.
fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "# {}: valid", path.display());
            let _ = write!(out, "{}", config.effective_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `appliance --config FILE`: run the appliance until SIGINT/SIGTERM.
fn run(path: &Path) -> ExitCode {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    match crate::runtime::run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
