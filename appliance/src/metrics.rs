//! Metrics over HTTP in the Prometheus text format (slow path, its own thread).
//!
//! The slow path writes a [`MetricsState`] about ten times a second; the HTTP thread (tiny_http, no
//! hand-written parsing) renders it on `GET /metrics`. Metric names follow the seeds' NAT gateway metrics:
//! packets, bytes, dropped packets by reason, SNAT connection count (attempted / failed), total SNAT
//! connection count, ports in use per public IP, datapath availability, plus handoffs.

use natgw_dataplane::nat::counters::{Counters, DropReason};
use natgw_dataplane::port::PortStats;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters of the slow path itself.
#[derive(Clone, Debug, Default)]
pub struct SlowCounters {
    /// ARP frames received.
    pub arp_received: u64,
    /// ARP frames that did not parse.
    pub arp_malformed: u64,
    /// ARP replies sent for our addresses.
    pub arp_replies: u64,
    /// ARP requests sent (next-hop resolution).
    pub arp_requests: u64,
    /// Frames dropped because their next hop never answered or the wait queue was full.
    pub unresolved_drops: u64,
    /// Pings of the appliance's own addresses answered.
    pub local_echo_replies: u64,
    /// Other frames addressed to the appliance, ignored.
    pub local_ignored: u64,
    /// Frames the slow path transmitted.
    pub transmitted: u64,
    /// Frames the slow path could not hand to a worker for transmission.
    pub transmit_drops: u64,
    /// Successful reloads.
    pub reloads: u64,
    /// Reloads refused (bad file).
    pub reload_failures: u64,
}

/// Everything the metrics endpoint shows.
#[derive(Clone, Debug, Default)]
pub struct MetricsState {
    /// Sum of the workers' NAT counters.
    pub counters: Counters,
    /// Live sessions.
    pub sessions: usize,
    /// Bytes of session and allocator memory.
    pub memory_bytes: usize,
    /// Frames workers received from other workers.
    pub handoffs_in: u64,
    /// Slow-path counters.
    pub slow: SlowCounters,
    /// Leases per public IP (all protocols).
    pub ports_in_use: Vec<(Ipv4Addr, u64)>,
    /// Ports per public IP (all protocol inventories).
    pub ports_total: Vec<(Ipv4Addr, u64)>,
    /// Workers that have reported.
    pub workers_reporting: usize,
    /// Workers started.
    pub workers: usize,
    /// Whether the outside gateway's MAC is known.
    pub gateway_resolved: bool,
    /// Inside port counters.
    pub inside_port: PortStats,
    /// Outside port counters.
    pub outside_port: PortStats,
    /// Inside port counters per queue (worker).
    pub inside_queues: Vec<PortStats>,
    /// Outside port counters per queue (worker).
    pub outside_queues: Vec<PortStats>,
    /// Link state by side, where the backend reports one (DPDK): (side, up, speed in Mbit/s).
    pub links: Vec<(&'static str, bool, u32)>,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP natgw_{name} {help}");
    let _ = writeln!(out, "# TYPE natgw_{name} {kind}");
}

impl MetricsState {
    /// Render in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let mut o = String::with_capacity(8192);
        metric(
            &mut o,
            "packets_total",
            "counter",
            "Packets translated, by direction.",
        );
        for (dir, t) in [
            ("in2out", c.in2out),
            ("out2in", c.out2in),
            ("no_nat", c.no_nat),
            ("hairpin", c.hairpin),
        ] {
            let _ = writeln!(
                o,
                "natgw_packets_total{{direction=\"{dir}\"}} {}",
                t.packets
            );
        }
        metric(
            &mut o,
            "bytes_total",
            "counter",
            "Bytes translated, by direction.",
        );
        for (dir, t) in [
            ("in2out", c.in2out),
            ("out2in", c.out2in),
            ("no_nat", c.no_nat),
            ("hairpin", c.hairpin),
        ] {
            let _ = writeln!(o, "natgw_bytes_total{{direction=\"{dir}\"}} {}", t.bytes);
        }
        metric(
            &mut o,
            "dropped_packets_total",
            "counter",
            "Packets dropped, by reason.",
        );
        for r in DropReason::ALL {
            let _ = writeln!(
                o,
                "natgw_dropped_packets_total{{reason=\"{}\"}} {}",
                r.name(),
                c.drops_of(*r)
            );
        }
        metric(
            &mut o,
            "snat_connections_total",
            "counter",
            "SNAT connection count: new flows that asked for a port, by result.",
        );
        let _ = writeln!(
            o,
            "natgw_snat_connections_total{{result=\"attempted\"}} {}",
            c.snat_attempts
        );
        let _ = writeln!(
            o,
            "natgw_snat_connections_total{{result=\"failed\"}} {}",
            c.snat_failures
        );
        metric(
            &mut o,
            "total_snat_connections",
            "gauge",
            "Total SNAT connection count: live sessions.",
        );
        let _ = writeln!(o, "natgw_total_snat_connections {}", self.sessions);
        metric(
            &mut o,
            "sessions_created_total",
            "counter",
            "Sessions created, by protocol.",
        );
        for (i, p) in ["tcp", "udp", "icmp"].iter().enumerate() {
            let _ = writeln!(
                o,
                "natgw_sessions_created_total{{protocol=\"{p}\"}} {}",
                c.sessions_created[i]
            );
        }
        metric(
            &mut o,
            "sessions_expired_total",
            "counter",
            "Sessions ended, by protocol.",
        );
        for (i, p) in ["tcp", "udp", "icmp"].iter().enumerate() {
            let _ = writeln!(
                o,
                "natgw_sessions_expired_total{{protocol=\"{p}\"}} {}",
                c.sessions_expired[i]
            );
        }
        metric(
            &mut o,
            "snat_ports_in_use",
            "gauge",
            "SNAT ports leased (live), per public IP, all protocols.",
        );
        for (ip, n) in &self.ports_in_use {
            let _ = writeln!(o, "natgw_snat_ports_in_use{{public_ip=\"{ip}\"}} {n}");
        }
        metric(
            &mut o,
            "snat_ports_total",
            "gauge",
            "SNAT ports per public IP, summed over the TCP, UDP and ICMP inventories.",
        );
        for (ip, n) in &self.ports_total {
            let _ = writeln!(o, "natgw_snat_ports_total{{public_ip=\"{ip}\"}} {n}");
        }
        metric(
            &mut o,
            "handoffs_total",
            "counter",
            "Frames handed from one worker to another (should stay near 0).",
        );
        let _ = writeln!(o, "natgw_handoffs_total {}", c.handoffs_out);
        metric(
            &mut o,
            "punted_total",
            "counter",
            "Frames handed to the slow path.",
        );
        let _ = writeln!(o, "natgw_punted_total {}", c.punted);
        metric(
            &mut o,
            "icmp_generated_total",
            "counter",
            "ICMP errors generated by the appliance.",
        );
        let _ = writeln!(o, "natgw_icmp_generated_total {}", c.icmp_generated);
        metric(
            &mut o,
            "session_memory_bytes",
            "gauge",
            "Bytes held by session tables and port allocators.",
        );
        let _ = writeln!(o, "natgw_session_memory_bytes {}", self.memory_bytes);
        metric(
            &mut o,
            "datapath_available",
            "gauge",
            "1 when every worker reports and the gateway is resolved.",
        );
        let up =
            self.workers > 0 && self.workers_reporting == self.workers && self.gateway_resolved;
        let _ = writeln!(o, "natgw_datapath_available {}", u8::from(up));
        let s = &self.slow;
        metric(
            &mut o,
            "slowpath_events_total",
            "counter",
            "Slow-path events, by kind.",
        );
        for (k, v) in [
            ("arp_received", s.arp_received),
            ("arp_malformed", s.arp_malformed),
            ("arp_replies", s.arp_replies),
            ("arp_requests", s.arp_requests),
            ("unresolved_drops", s.unresolved_drops),
            ("local_echo_replies", s.local_echo_replies),
            ("local_ignored", s.local_ignored),
            ("transmitted", s.transmitted),
            ("transmit_drops", s.transmit_drops),
            ("reloads", s.reloads),
            ("reload_failures", s.reload_failures),
        ] {
            let _ = writeln!(o, "natgw_slowpath_events_total{{event=\"{k}\"}} {v}");
        }
        metric(
            &mut o,
            "port_packets_total",
            "counter",
            "Frames through the interfaces, by side and direction.",
        );
        for (side, p) in [
            ("inside", &self.inside_port),
            ("outside", &self.outside_port),
        ] {
            let _ = writeln!(
                o,
                "natgw_port_packets_total{{side=\"{side}\",dir=\"rx\"}} {}",
                p.rx_packets
            );
            let _ = writeln!(
                o,
                "natgw_port_packets_total{{side=\"{side}\",dir=\"tx\"}} {}",
                p.tx_packets
            );
            let _ = writeln!(
                o,
                "natgw_port_packets_total{{side=\"{side}\",dir=\"rx_dropped\"}} {}",
                p.rx_dropped
            );
            let _ = writeln!(
                o,
                "natgw_port_packets_total{{side=\"{side}\",dir=\"tx_dropped\"}} {}",
                p.tx_dropped
            );
        }
        metric(
            &mut o,
            "queue_packets_total",
            "counter",
            "Frames through each queue (one per worker), by side and direction.",
        );
        for (side, queues) in [
            ("inside", &self.inside_queues),
            ("outside", &self.outside_queues),
        ] {
            for (q, p) in queues.iter().enumerate() {
                for (dir, v) in [
                    ("rx", p.rx_packets),
                    ("tx", p.tx_packets),
                    ("rx_dropped", p.rx_dropped),
                    ("tx_dropped", p.tx_dropped),
                ] {
                    let _ = writeln!(
                        o,
                        "natgw_queue_packets_total{{side=\"{side}\",queue=\"{q}\",dir=\"{dir}\"}} {v}"
                    );
                }
            }
        }
        if !self.links.is_empty() {
            metric(
                &mut o,
                "link_up",
                "gauge",
                "1 when the interface's link is up (DPDK ports).",
            );
            for (side, up, _) in &self.links {
                let _ = writeln!(o, "natgw_link_up{{side=\"{side}\"}} {}", u8::from(*up));
            }
            metric(
                &mut o,
                "link_speed_mbps",
                "gauge",
                "Link speed in Mbit/s (DPDK ports).",
            );
            for (side, _, speed) in &self.links {
                let _ = writeln!(o, "natgw_link_speed_mbps{{side=\"{side}\"}} {speed}");
            }
        }
        o
    }
}

/// The HTTP endpoint: serves until `stop` is set.
pub fn serve(
    listen: SocketAddr,
    state: Arc<Mutex<MetricsState>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let server = tiny_http::Server::http(listen)
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {listen}: {e}"))?;
    log::info!("metrics on http://{listen}/metrics");
    Ok(std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let req = match server.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        log::warn!("metrics: {e}");
                        continue;
                    }
                };
                let resp = if req.url() == "/metrics" || req.url() == "/" {
                    let body = match state.lock() {
                        Ok(s) => s.render(),
                        Err(p) => p.into_inner().render(),
                    };
                    let ct = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4"[..],
                    )
                    .expect("static header");
                    tiny_http::Response::from_string(body)
                        .with_header(ct)
                        .with_status_code(200)
                } else {
                    tiny_http::Response::from_string("not found\n").with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        })?)
}
