//! Metrics over HTTP in the Prometheus text format (slow path, its own thread).
//!
//! The slow path writes a [`MetricsState`] about ten times a second; the HTTP thread (tiny_http, no
//! hand-written parsing) renders it on `GET /metrics`. Metric names follow the seeds' NAT gateway metrics:
//! packets, bytes, dropped packets by reason, SNAT connection count (attempted / failed), total SNAT
//! connection count, ports in use per public IP, datapath availability, plus handoffs.

use natgw_dataplane::nat::counters::{Counters, DropReason};
use natgw_dataplane::port::PortStats;
use std::fmt::{self, Write as _};
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

/// A Prometheus text exposition being written: metric families, each a `# HELP` / `# TYPE` header and its
/// samples, every name prefixed with `natgw_`.
struct Exposition(String);

impl Exposition {
    /// A family with no labels and one value.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl fmt::Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.0, "natgw_{name} {value}");
    }

    /// A family with one label, one sample per `(label value, value)`.
    fn labelled<K: fmt::Display, V: fmt::Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (K, V)>,
    ) {
        self.header(name, kind, help);
        for (k, v) in samples {
            self.sample(name, &format!("{label}=\"{k}\""), v);
        }
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP natgw_{name} {help}");
        let _ = writeln!(self.0, "# TYPE natgw_{name} {kind}");
    }

    /// One sample; `labels` is the text between the braces.
    fn sample(&mut self, name: &str, labels: &str, value: impl fmt::Display) {
        let _ = writeln!(self.0, "natgw_{name}{{{labels}}} {value}");
    }
}

impl MetricsState {
    /// Render in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let mut o = Exposition(String::with_capacity(8192));
        let directions = [
            ("in2out", c.in2out),
            ("out2in", c.out2in),
            ("no_nat", c.no_nat),
            ("hairpin", c.hairpin),
        ];
        let protocols = ["tcp", "udp", "icmp"];
        o.labelled(
            "packets_total",
            "counter",
            "Packets translated, by direction.",
            "direction",
            directions.map(|(d, t)| (d, t.packets)),
        );
        o.labelled(
            "bytes_total",
            "counter",
            "Bytes translated, by direction.",
            "direction",
            directions.map(|(d, t)| (d, t.bytes)),
        );
        o.labelled(
            "dropped_packets_total",
            "counter",
            "Packets dropped, by reason.",
            "reason",
            DropReason::ALL.iter().map(|r| (r.name(), c.drops_of(*r))),
        );
        o.labelled(
            "snat_connections_total",
            "counter",
            "SNAT connection count: new flows that asked for a port, by result.",
            "result",
            [("attempted", c.snat_attempts), ("failed", c.snat_failures)],
        );
        o.single(
            "total_snat_connections",
            "gauge",
            "Total SNAT connection count: live sessions.",
            self.sessions,
        );
        o.labelled(
            "sessions_created_total",
            "counter",
            "Sessions created, by protocol.",
            "protocol",
            protocols.into_iter().zip(c.sessions_created),
        );
        o.labelled(
            "sessions_expired_total",
            "counter",
            "Sessions ended, by protocol.",
            "protocol",
            protocols.into_iter().zip(c.sessions_expired),
        );
        o.labelled(
            "snat_ports_in_use",
            "gauge",
            "SNAT ports leased (live), per public IP, all protocols.",
            "public_ip",
            self.ports_in_use.iter().copied(),
        );
        o.labelled(
            "snat_ports_total",
            "gauge",
            "SNAT ports per public IP, summed over the TCP, UDP and ICMP inventories.",
            "public_ip",
            self.ports_total.iter().copied(),
        );
        o.single(
            "handoffs_total",
            "counter",
            "Frames handed from one worker to another (should stay near 0).",
            c.handoffs_out,
        );
        o.single(
            "punted_total",
            "counter",
            "Frames handed to the slow path.",
            c.punted,
        );
        o.single(
            "icmp_generated_total",
            "counter",
            "ICMP errors generated by the appliance.",
            c.icmp_generated,
        );
        o.single(
            "session_memory_bytes",
            "gauge",
            "Bytes held by session tables and port allocators.",
            self.memory_bytes,
        );
        let up =
            self.workers > 0 && self.workers_reporting == self.workers && self.gateway_resolved;
        o.single(
            "datapath_available",
            "gauge",
            "1 when every worker reports and the gateway is resolved.",
            u8::from(up),
        );
        let s = &self.slow;
        o.labelled(
            "slowpath_events_total",
            "counter",
            "Slow-path events, by kind.",
            "event",
            [
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
            ],
        );
        let dirs = |p: &PortStats| {
            [
                ("rx", p.rx_packets),
                ("tx", p.tx_packets),
                ("rx_dropped", p.rx_dropped),
                ("tx_dropped", p.tx_dropped),
            ]
        };
        o.header(
            "port_packets_total",
            "counter",
            "Frames through the interfaces, by side and direction.",
        );
        for (side, p) in [
            ("inside", &self.inside_port),
            ("outside", &self.outside_port),
        ] {
            for (dir, v) in dirs(p) {
                o.sample(
                    "port_packets_total",
                    &format!("side=\"{side}\",dir=\"{dir}\""),
                    v,
                );
            }
        }
        o.header(
            "queue_packets_total",
            "counter",
            "Frames through each queue (one per worker), by side and direction.",
        );
        for (side, queues) in [
            ("inside", &self.inside_queues),
            ("outside", &self.outside_queues),
        ] {
            for (q, p) in queues.iter().enumerate() {
                for (dir, v) in dirs(p) {
                    let labels = format!("side=\"{side}\",queue=\"{q}\",dir=\"{dir}\"");
                    o.sample("queue_packets_total", &labels, v);
                }
            }
        }
        if !self.links.is_empty() {
            o.labelled(
                "link_up",
                "gauge",
                "1 when the interface's link is up (DPDK ports).",
                "side",
                self.links.iter().map(|(side, up, _)| (side, u8::from(*up))),
            );
            o.labelled(
                "link_speed_mbps",
                "gauge",
                "Link speed in Mbit/s (DPDK ports).",
                "side",
                self.links.iter().map(|(side, _, speed)| (side, speed)),
            );
        }
        o.0
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn renders_every_family_with_its_header() {
        let mut m = MetricsState::default();
        m.counters.in2out.packets = 11;
        m.counters.out2in.bytes = 22;
        m.counters.drop(DropReason::Unsolicited);
        m.counters.snat_attempts = 5;
        m.counters.snat_failures = 1;
        m.counters.sessions_created[1] = 3;
        m.counters.sessions_expired[2] = 4;
        m.counters.handoffs_out = 6;
        m.sessions = 7;
        m.ports_in_use = vec![("203.0.113.10".parse().unwrap(), 8)];
        m.ports_total = vec![("203.0.113.10".parse().unwrap(), 9)];
        m.workers = 1;
        m.workers_reporting = 1;
        m.gateway_resolved = true;
        m.slow.reloads = 2;
        m.inside_port.rx_packets = 12;
        m.outside_queues = vec![PortStats {
            tx_dropped: 13,
            ..PortStats::default()
        }];
        m.links = vec![("inside", true, 10000)];
        let text = m.render();
        for line in [
            "natgw_packets_total{direction=\"in2out\"} 11",
            "natgw_bytes_total{direction=\"out2in\"} 22",
            "natgw_dropped_packets_total{reason=\"unsolicited\"} 1",
            "natgw_snat_connections_total{result=\"failed\"} 1",
            "natgw_total_snat_connections 7",
            "natgw_sessions_created_total{protocol=\"udp\"} 3",
            "natgw_sessions_expired_total{protocol=\"icmp\"} 4",
            "natgw_snat_ports_in_use{public_ip=\"203.0.113.10\"} 8",
            "natgw_handoffs_total 6",
            "natgw_datapath_available 1",
            "natgw_slowpath_events_total{event=\"reloads\"} 2",
            "natgw_port_packets_total{side=\"inside\",dir=\"rx\"} 12",
            "natgw_queue_packets_total{side=\"outside\",queue=\"0\",dir=\"tx_dropped\"} 13",
            "natgw_link_speed_mbps{side=\"inside\"} 10000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family announced by HELP and TYPE lines.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP line"
            );
        }
    }
}
