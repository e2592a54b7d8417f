//! The `testbed` command: bring the namespace topology up or down; `demo` and `bench` arrive
//! with the appliance runtime.
//!
//! Layer: binary edge (anyhow errors, signal handling). Invariant: whatever `up` builds is torn
//! down on exit — on Ctrl-C / SIGTERM through the [`testbed::Shutdown`] flag, on error
//! through `Drop`; a second Ctrl-C exits at once and `testbed down` removes what is left.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use testbed::{
    remove_leftovers, ApplianceConfigOptions, KernelNatSpec, LeftoverScope, NatMode, Prefix,
    Shutdown, Topology, TopologySpec,
};

/// natgw's network-namespace testbed (needs root).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build client — nat — inet namespaces, print their names, wait for Ctrl-C, tear down.
    Up {
        /// Make the nat namespace a Linux router with nftables SNAT (the baseline) instead of
        /// leaving its interfaces bare for the appliance.
        #[arg(long)]
        kernel_nat: bool,
        /// Extra private addresses on the client after 10.0.0.2.
        #[arg(long, default_value_t = 4)]
        extra_clients: u16,
        /// Namespace name prefix.
        #[arg(long, default_value = testbed::DEFAULT_PREFIX)]
        prefix: String,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
        /// Also write an appliance config file (DESIGN §4) for this topology here.
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
    /// Remove leftover namespaces with our prefix (by default only those whose creator died).
    Down {
        /// Remove every namespace with the prefix, including ones of running processes.
        #[arg(long)]
        all: bool,
        /// Namespace name prefix.
        #[arg(long, default_value = testbed::DEFAULT_PREFIX)]
        prefix: String,
    },
    /// Build the topology, run the appliance from config/examples/testbed.toml, drive real traffic
    /// through it, and report what the internet saw and which checks passed.
    Demo(testbed::demo::DemoArgs),
    /// Packets per second at zero loss: the appliance against the kernel's nftables SNAT.
    Bench(testbed::bench::BenchArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testbed: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up {
            kernel_nat,
            extra_clients,
            prefix,
            json,
            write_config,
        } => {
            let shutdown = Shutdown::install()?;
            let prefix = Prefix::new(&prefix)?;
            let stale = remove_leftovers(&prefix, LeftoverScope::DeadOwners)?;
            if !stale.is_empty() {
                log::info!("removed {} leftover namespace(s) first", stale.len());
            }
            let spec = TopologySpec {
                prefix,
                extra_client_addrs: extra_clients,
                ..TopologySpec::default()
            };
            let mode = if kernel_nat {
                NatMode::KernelNat(KernelNatSpec::default())
            } else {
                NatMode::Appliance
            };
            let topo = Topology::build(spec, mode).context("building the topology")?;
            if let Some(path) = &write_config {
                let text = topo.appliance_config(&ApplianceConfigOptions::default())?;
                std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print_topology(&topo, json)?;
            if let Some(path) = &write_config {
                println!("appliance config written to {}", path.display());
            }
            println!("up; press Ctrl-C to tear down");
            shutdown.wait();
            let names = topo.namespaces().map(str::to_owned);
            drop(topo);
            println!("torn down: {}", names.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { all, prefix } => {
            let prefix = Prefix::new(&prefix)?;
            let scope = if all {
                LeftoverScope::All
            } else {
                LeftoverScope::DeadOwners
            };
            let removed = remove_leftovers(&prefix, scope)?;
            if removed.is_empty() {
                println!("nothing to remove");
            }
            for name in removed {
                println!("removed {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => testbed::demo::run(&args),
        Command::Bench(args) => testbed::bench::run(&args),
    }
}

fn print_topology(topo: &Topology, json: bool) -> anyhow::Result<()> {
    let d = topo.describe();
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let s = topo.spec();
    let [client, nat, inet] = topo.namespaces();
    let addrs: Vec<String> = topo
        .client_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let servers: Vec<String> = topo.servers().iter().map(ToString::to_string).collect();
    let publics: Vec<String> = s.public_ips.iter().map(ToString::to_string).collect();
    let mode = match topo.mode() {
        NatMode::Appliance => {
            "appliance (bare interfaces; start the appliance in the nat namespace)".to_owned()
        }
        NatMode::KernelNat(k) => format!(
            "kernel nftables SNAT to {}",
            k.snat_to
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!("mode:   {mode}");
    println!(
        "client: netns {client}  {} {} /{}  default via {}",
        s.client_if,
        addrs.join(" "),
        s.client_addr.prefix_len(),
        s.inside_gateway.addr()
    );
    let public = match topo.mode() {
        NatMode::Appliance => format!("  public {}", publics.join(" ")),
        NatMode::KernelNat(_) => String::new(),
    };
    println!(
        "nat:    netns {nat}  inside {} [{}]  outside {} [{}]{public}",
        s.inside_if, s.inside_gateway, s.outside_if, s.outside_addr,
    );
    println!(
        "inet:   netns {inet}  {} {}  servers {}",
        s.inet_if,
        s.inet_gateway,
        servers.join(" ")
    );
    println!(
        "try:    ip netns exec {client} ping {}",
        s.servers
            .first()
            .map_or("198.51.100.10".into(), ToString::to_string)
    );
    Ok(())
}
