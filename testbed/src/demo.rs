//! `testbed demo`: the appliance working, end to end, on a fresh machine.
//!
//! Builds the client — appliance — internet topology, starts the real `appliance` binary in the nat
//! namespace with `config/examples/testbed.toml`, drives real traffic through it (HTTP downloads, UDP
//! request/response, pings, thousands of short TCP connections from many private addresses, SMTP that
//! policy blocks, unsolicited inbound traffic, a static 1:1 host), then prints what the internet side saw,
//! the SNAT ports in use, the appliance's counters and the checks. Exits non-zero when any check fails.
//! Everything is torn down at the end, on failure, and on Ctrl-C.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::appliance::{Appliance, Metrics};
use crate::traffic::{self, TcpBurst, TcpServer, TcpService, UdpEchoServer};
use crate::{require_root_and_netns, Shutdown, Topology, TopologySpec};

/// Options of `testbed demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The appliance config to run (its interfaces and addresses must be the testbed's).
    #[arg(long, default_value = default_config())]
    pub config: PathBuf,
    /// The appliance binary (default: beside this program, or `$NATGW_APPLIANCE`).
    #[arg(long)]
    pub appliance: Option<PathBuf>,
    /// Short TCP connections to open, spread over the private addresses.
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Private addresses on the client (besides the static 1:1 host).
    #[arg(long, default_value_t = 16)]
    pub hosts: u16,
}

fn default_config() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/testbed.toml"
    )
}

/// The static 1:1 mapping of `config/examples/testbed.toml`.
const STATIC_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const STATIC_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);

struct Checks {
    rows: Vec<(bool, String)>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("  {} {what}", if ok { "PASS" } else { "FAIL" });
        self.rows.push((ok, what));
    }

    fn failed(&self) -> usize {
        self.rows.iter().filter(|(ok, _)| !ok).count()
    }
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::install()?;
    if let Err(skip) = require_root_and_netns() {
        anyhow::bail!(
            "the demo needs root and network namespaces: {}",
            skip.as_str()
        );
    }
    let binary = match &args.appliance {
        Some(p) => p.clone(),
        None => Appliance::find_or_build()?,
    };
    let config = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let spec = TopologySpec {
        extra_client_addrs: args.hosts.saturating_sub(1),
        ..TopologySpec::default()
    };
    let mut topo = Topology::new(spec).context("building the topology")?;
    topo.add_client_addr(STATIC_PRIVATE)?;
    let [c, n, i] = topo.namespaces();
    println!("topology: client {c} — appliance {n} — internet {i}");
    let workdir = std::env::temp_dir().join(format!("natgw-demo-{}", std::process::id()));
    let started = Instant::now();
    let app = Appliance::start(&topo, &binary, &config, &workdir, Duration::from_secs(10))
        .context("starting the appliance")?;
    println!(
        "appliance: {} --config {} (ready in {:.1} s)",
        binary.display(),
        args.config.display(),
        started.elapsed().as_secs_f64()
    );
    let mut checks = Checks { rows: Vec::new() };
    let result = drive(&topo, &app, args, &mut checks, &shutdown);
    let metrics = app.metrics(&topo).unwrap_or_default();
    let (status, output) = app.stop(Duration::from_secs(5))?;
    checks.check(
        status.success(),
        format!("appliance stopped cleanly on SIGTERM ({status})"),
    );
    checks.check(
        output.contains("# final counters"),
        "appliance printed its final counters",
    );
    if let Err(e) = result {
        checks.check(false, format!("traffic ran to the end: {e:#}"));
    }
    report(&metrics);
    let _ = std::fs::remove_dir_all(&workdir);
    let failed = checks.failed();
    println!(
        "\n{} checks, {} passed, {} failed",
        checks.rows.len(),
        checks.rows.len() - failed,
        failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn drive(
    topo: &Topology,
    app: &Appliance,
    args: &DemoArgs,
    checks: &mut Checks,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let publics: BTreeSet<Ipv4Addr> = topo.spec().public_ips.iter().copied().collect();
    let hosts: Vec<Ipv4Addr> = topo
        .client_addrs()
        .iter()
        .copied()
        .filter(|a| *a != STATIC_PRIVATE)
        .collect();
    let web = SocketAddrV4::new(topo.servers()[0], 80);
    let dns = SocketAddrV4::new(topo.servers()[1 % topo.servers().len()], 53);
    let t = Duration::from_secs(5);
    let http = TcpServer::start(topo.inet(), web, TcpService::Http { body_len: 1 << 20 })?;
    let small = SocketAddrV4::new(topo.servers()[0], 8080);
    let short = TcpServer::start(topo.inet(), small, TcpService::Http { body_len: 64 })?;
    let udp = UdpEchoServer::start(topo.inet(), dns)?;

    println!(
        "\nHTTP downloads (1 MiB each) from {} private hosts to {web}:",
        hosts.len()
    );
    let mut seen = BTreeSet::new();
    let mut ok = 0;
    for h in &hosts {
        if let Ok(r) = traffic::http_get(topo.client(), Some(*h), web, "/", t) {
            if r.status == 200 && r.body.len() == 1 << 20 {
                ok += 1;
            }
            if let Some(p) = r.seen_peer() {
                seen.insert(*p.ip());
            }
        }
    }
    checks.check(
        ok == hosts.len(),
        format!("{ok}/{} downloads complete", hosts.len()),
    );
    checks.check(
        !seen.is_empty() && seen.is_subset(&publics),
        format!("the web server saw only public IPs: {}", join(&seen)),
    );
    if shutdown.requested() {
        anyhow::bail!("interrupted");
    }

    println!("\nUDP request/response to {dns}:");
    let mut ok = 0;
    for h in &hosts {
        let src = SocketAddrV4::new(*h, 0);
        if traffic::udp_exchange(topo.client(), Some(src), dns, b"natgw demo", t)
            .is_ok_and(|a| a == b"natgw demo")
        {
            ok += 1;
        }
    }
    checks.check(
        ok == hosts.len(),
        format!("{ok}/{} UDP exchanges answered", hosts.len()),
    );
    checks.check(
        udp.source_ips().is_subset(&publics) && !udp.source_ips().is_empty(),
        format!(
            "the UDP server saw only public IPs: {}",
            join(&udp.source_ips())
        ),
    );
    let refused = traffic::udp_exchange(
        topo.client(),
        None,
        SocketAddrV4::new(dns.ip().to_owned(), 9),
        b"closed port",
        Duration::from_secs(2),
    );
    checks.check(
        refused.as_ref().err().and_then(|e| e.io_kind()) == Some(std::io::ErrorKind::ConnectionRefused),
        "UDP to a closed port: the ICMP port unreachable came back through the NAT to the client's socket",
    );

    println!("\nping {}:", topo.servers()[0]);
    let p = traffic::ping(
        topo.client(),
        topo.servers()[0],
        None,
        5,
        Duration::from_secs(5),
    )?;
    checks.check(
        p.received == p.transmitted && p.received > 0,
        format!("{}/{} echo replies", p.received, p.transmitted),
    );
    if shutdown.requested() {
        anyhow::bail!("interrupted");
    }

    println!(
        "\n{} short TCP connections from {} private hosts to {small}:",
        args.connections,
        hosts.len()
    );
    let per_host = args.connections.div_ceil(hosts.len().max(1));
    let started = Instant::now();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let burst = TcpBurst {
                    source: Some(*h),
                    dest: small,
                    count: per_host,
                    request: b"GET /small HTTP/1.0\r\n\r\n".to_vec(),
                    timeout: t,
                };
                s.spawn(move || traffic::tcp_burst(topo.client(), &burst))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let (mut good, mut tried) = (0, 0);
    let mut first_error = None;
    for r in reports {
        match r {
            Ok(Ok(b)) => {
                good += b.succeeded;
                tried += b.attempted;
                first_error = first_error.or(b.first_error);
            }
            Ok(Err(e)) => first_error = first_error.or(Some(e.to_string())),
            Err(_) => first_error = first_error.or(Some("a client thread panicked".into())),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    checks.check(
        good == tried && tried >= args.connections,
        format!(
            "{good}/{tried} connections completed in {secs:.1} s ({:.0}/s){}",
            good as f64 / secs.max(1e-3),
            first_error
                .map(|e| format!("; first error: {e}"))
                .unwrap_or_default()
        ),
    );
    let peers = short.peer_ips();
    checks.check(
        short.connections() >= good && peers.is_subset(&publics),
        format!(
            "the server counted {} connections, all from public IPs: {}",
            short.connections(),
            join(&peers)
        ),
    );

    println!("\npolicy, static 1:1 and filtering:");
    let smtp = traffic::tcp_request(
        topo.client(),
        Some(hosts[0]),
        SocketAddrV4::new(topo.servers()[0], 25),
        b"HELO",
        Duration::from_secs(1),
    );
    checks.check(
        smtp.is_err(),
        "outbound TCP 25 is blocked by the default policy",
    );
    let r = traffic::http_get(topo.client(), Some(STATIC_PRIVATE), web, "/", t)?;
    checks.check(
        r.seen_peer().map(|p| *p.ip()) == Some(STATIC_PUBLIC),
        format!(
            "static host {STATIC_PRIVATE} appears as {STATIC_PUBLIC} (seen {:?})",
            r.seen_peer()
        ),
    );
    let unsolicited: Vec<_> = publics
        .iter()
        .map(|ip| SocketAddrV4::new(*ip, 40_000))
        .collect();
    for dest in &unsolicited {
        let _ = traffic::udp_exchange(
            topo.inet(),
            None,
            *dest,
            b"knock",
            Duration::from_millis(300),
        );
    }
    let m = app.metrics_when(topo, Duration::from_secs(2), |m| {
        m.get("natgw_dropped_packets_total{reason=\"unsolicited\"}") >= unsolicited.len() as f64
            && m.get("natgw_dropped_packets_total{reason=\"policy_denied\"}") >= 1.0
    })?;
    checks.check(
        m.get("natgw_dropped_packets_total{reason=\"unsolicited\"}") >= unsolicited.len() as f64,
        "unsolicited inbound UDP to the public IPs was dropped and counted",
    );
    checks.check(
        m.get("natgw_dropped_packets_total{reason=\"policy_denied\"}") >= 1.0,
        "the blocked SMTP attempt was counted as policy_denied",
    );
    println!(
        "\nwhat the internet saw: {}",
        join(&http.peer_ips().union(&udp.source_ips()).copied().collect())
    );
    Ok(())
}

fn join(set: &BTreeSet<Ipv4Addr>) -> String {
    if set.is_empty() {
        return "nothing".into();
    }
    set.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(m: &Metrics) {
    println!("\nappliance counters:");
    for (k, v) in m.with_prefix("natgw_packets_total") {
        println!("  {k} {v}");
    }
    for key in [
        "natgw_snat_connections_total{result=\"attempted\"}",
        "natgw_snat_connections_total{result=\"failed\"}",
        "natgw_total_snat_connections",
        "natgw_handoffs_total",
    ] {
        println!("  {key} {}", m.get(key));
    }
    for (k, v) in m.with_prefix("natgw_snat_ports_in_use") {
        println!("  {k} {v}");
    }
    for (k, v) in m.with_prefix("natgw_dropped_packets_total") {
        if v > 0.0 {
            println!("  {k} {v}");
        }
    }
}
