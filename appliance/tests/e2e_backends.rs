//! End to end, in network namespaces: the basic services through the real `appliance` binary
//! for each packet I/O backend (AF_PACKET, AF_XDP) with one and with two workers.
//!
//! Each test builds its own client — nat — inet topology, runs an HTTP server, a UDP echo
//! server and nothing on one UDP port in the inet namespace, and checks from both ends:
//! - TCP (HTTP) and UDP request/response work from every client address, and the servers
//!   only ever see the configured public IPs (never a private address);
//! - ping works through the NAT;
//! - a UDP datagram to a closed server port brings the ICMP port unreachable back through the
//!   NAT: the client's connected socket gets `ECONNREFUSED`;
//! - the metrics count the sessions, and SIGTERM stops the appliance with exit status 0 and
//!   its final counters on stdout.
//!
//! They need root; elsewhere they print `SKIPPED: reason` and return.

mod e2e_common;

use std::net::SocketAddrV4;
use std::time::Duration;

use e2e_common::{
    basic_counters, closed_udp_port_is_refused, config, public_ips, tcp_and_udp_from_every_client,
    Appliance,
};
use testbed::traffic::{ping, TcpServer, TcpService, UdpEchoServer};
use testbed::{Topology, TopologySpec};

/// HTTP body length: several segments per answer.
const BODY: usize = 4000;

/// HTTP requests per client address.
const GETS_PER_CLIENT: usize = 2;

fn basic_traffic(spec: TopologySpec, driver: &str, workers: u16) {
    let topo = Topology::new(spec).expect("build the topology");
    let public = public_ips(&topo);
    let clients = topo.client_addrs().to_vec();
    let server_ip = topo.servers()[0];
    let http = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(server_ip, 8080),
        TcpService::Http { body_len: BODY },
    )
    .expect("start the HTTP server");
    let echo = UdpEchoServer::start(topo.inet(), SocketAddrV4::new(server_ip, 7000))
        .expect("start the UDP echo server");
    let app = Appliance::start(&topo, &config(&topo, driver, workers));

    let (tcp_flows, udp_flows) =
        tcp_and_udp_from_every_client(&topo, &http, &echo, &public, GETS_PER_CLIENT, BODY);
    let m = app.wait_metrics("the sessions counted", Duration::from_secs(3), |m| {
        m.sessions_created("tcp") >= tcp_flows && m.sessions_created("udp") >= udp_flows
    });
    // Kernel steering (AF_PACKET fanout) puts both directions of a TCP or UDP flow on the
    // worker that owns its port (docs/operations.md); one worker never hands off.
    let steered = driver == "af_packet" || workers == 1;
    if steered {
        assert_eq!(m.value("natgw_handoffs_total", &[]), 0.0, "{}", m.text);
    }

    // ICMP echo through the NAT.
    let report = ping(
        topo.client(),
        server_ip,
        Some(clients[0]),
        3,
        Duration::from_secs(5),
    )
    .expect("run ping");
    assert_eq!(report.transmitted, 3, "{report:?}");
    assert!(report.received >= 2, "ping through the NAT: {report:?}");

    // A closed UDP port: the server's port unreachable comes back to the client's socket.
    closed_udp_port_is_refused(&topo, clients[1], server_ip);
    let m = basic_counters(&app, tcp_flows, udp_flows + 1.0);
    if steered {
        // Only ICMP frames (3 echo replies, 1 port unreachable) may land on the wrong worker:
        // the fanout program reads no echo identifier or embedded header.
        let handoffs = m.value("natgw_handoffs_total", &[]);
        assert!(handoffs <= 4.0, "{handoffs} handoffs:\n{}", m.text);
    }

    let stopped = app.stop();
    assert!(
        stopped.final_counters.packets("in2out") >= m.packets("in2out"),
        "final counters behind the live ones:\n{}",
        stopped.stdout
    );
    drop((http, echo));
}

#[test]
fn af_packet_one_worker_tcp_udp_ping_and_port_unreachable() {
    testbed::skip_unless!(e2e_common::preflight());
    basic_traffic(TopologySpec::default(), "af_packet", 1);
}

#[test]
fn af_packet_two_workers_tcp_udp_ping_and_port_unreachable() {
    testbed::skip_unless!(e2e_common::preflight());
    basic_traffic(TopologySpec::default(), "af_packet", 2);
}

#[test]
fn af_xdp_one_worker_tcp_udp_ping_and_port_unreachable() {
    testbed::skip_unless!(e2e_common::preflight());
    basic_traffic(TopologySpec::default(), "af_xdp", 1);
}

#[test]
fn af_xdp_two_workers_tcp_udp_ping_and_port_unreachable() {
    testbed::skip_unless!(e2e_common::preflight());
    // AF_XDP binds worker k to device RX queue k: both veths need two queues.
    basic_traffic(
        TopologySpec {
            queues: 2,
            ..TopologySpec::default()
        },
        "af_xdp",
        2,
    );
}
