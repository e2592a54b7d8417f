//! End to end, in network namespaces: SIGHUP reloads the config file.
//!
//! - A valid file with another public IP: flows open before the reload keep their old public
//!   IP and port (a capture in the internet namespace sees their further data still come from
//!   the old address; the echo would break if the translation changed mid-flow), while new
//!   flows use the new IP.
//! - The old public IP keeps being answered by ARP while open flows use it (ignored until its
//!   bug is fixed, see its `ignore` reason).
//! - A broken file changes nothing: the appliance keeps running, counts one
//!   `reload_failures`, logs the refusal, and old and new flows keep using the running config;
//!   SIGINT then stops it cleanly.
//!
//! They need root; elsewhere they print `SKIPPED: reason` and return.

mod e2e_common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use e2e_common::{
    config, connect_from, echo_roundtrip, set_nat_key, udp_socket, whoami, Appliance, Capture,
    UdpWhoami, IO_TIMEOUT,
};
use testbed::traffic::{http_get, TcpServer, TcpService};
use testbed::{Signal, Topology, TopologySpec};

const OLD: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const NEW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);

fn with_public_ip(cfg: &str, ip: Ipv4Addr) -> String {
    set_nat_key(cfg, "public_ips", &format!("[\"{ip}\"]"))
}

/// Servers of the reload tests, in the inet namespace.
struct Servers {
    echo: TcpServer,
    web: TcpServer,
    who: UdpWhoami,
}

fn servers(topo: &Topology) -> Servers {
    let s1 = topo.servers()[0];
    Servers {
        echo: TcpServer::start(topo.inet(), SocketAddrV4::new(s1, 9000), TcpService::Echo)
            .expect("start the echo server"),
        web: TcpServer::start(
            topo.inet(),
            SocketAddrV4::new(s1, 8080),
            TcpService::Http { body_len: 0 },
        )
        .expect("start the HTTP server"),
        who: UdpWhoami::start(topo.inet(), SocketAddrV4::new(s1, 7000)),
    }
}

/// The public IP a fresh HTTP connection from `client` shows to the server.
fn new_tcp_flow_ip(topo: &Topology, s: &Servers, client: Ipv4Addr) -> Ipv4Addr {
    let r = http_get(
        topo.client(),
        Some(client),
        s.web.local_addr(),
        "/",
        IO_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("new TCP flow from {client}: {e}"));
    *r.seen_peer().expect("peer line").ip()
}

/// The public IP a fresh UDP flow from `client` shows to the server.
fn new_udp_flow_ip(topo: &Topology, s: &Servers, client: Ipv4Addr) -> Ipv4Addr {
    let sock = udp_socket(topo.client(), SocketAddrV4::new(client, 0));
    *whoami(&sock, s.who.addr())
        .unwrap_or_else(|e| panic!("new UDP flow from {client}: {e}"))
        .ip()
}

/// Flows opened under the old config, with the public address the servers saw for them.
struct OpenFlows {
    tcp: TcpStream,
    tcp_public: SocketAddrV4,
    udp: UdpSocket,
    udp_public: SocketAddrV4,
}

/// Opens one TCP (echo) and one UDP flow from `client`; both must show [`OLD`].
fn open_flows(topo: &Topology, s: &Servers, client: Ipv4Addr) -> OpenFlows {
    let mut tcp = connect_from(
        topo.client(),
        SocketAddrV4::new(client, 0),
        s.echo.local_addr(),
        IO_TIMEOUT,
    )
    .expect("TCP before the reload");
    echo_roundtrip(&mut tcp, b"before the reload").expect("echo before the reload");
    assert!(s.echo.wait_for_connections(1, IO_TIMEOUT));
    let tcp_public = s.echo.peers()[0];
    assert_eq!(*tcp_public.ip(), OLD);
    let udp = udp_socket(topo.client(), SocketAddrV4::new(client, 0));
    let udp_public = whoami(&udp, s.who.addr()).expect("UDP before the reload");
    assert_eq!(*udp_public.ip(), OLD);
    OpenFlows {
        tcp,
        tcp_public,
        udp,
        udp_public,
    }
}

/// The open flows still work and keep their public address and port: a capture in the
/// internet namespace sees their further data come from the old address.
fn check_open_flows_keep_their_address(topo: &Topology, s: &Servers, flows: &mut OpenFlows) {
    let capture = Capture::start(topo.inet());
    echo_roundtrip(&mut flows.tcp, b"after the reload")
        .expect("the open TCP flow survives the reload");
    assert_eq!(
        whoami(&flows.udp, s.who.addr()).expect("the open UDP flow survives the reload"),
        flows.udp_public,
        "the open UDP flow changed its public address"
    );
    std::thread::sleep(Duration::from_millis(100));
    let seen = capture.finish();
    let to_echo: Vec<_> = seen
        .iter()
        .filter(|p| p.dst_port == s.echo.local_addr().port())
        .collect();
    assert!(
        !to_echo.is_empty(),
        "the capture saw no data of the open TCP flow"
    );
    for p in &to_echo {
        assert_eq!(
            SocketAddr::from((p.src, p.src_port)),
            SocketAddr::V4(flows.tcp_public),
            "further data of the open flow came from another address: {p:?}"
        );
    }
    assert_eq!(s.echo.connections(), 1);
}

#[test]
fn sighup_with_a_new_public_ip_keeps_open_flows_and_moves_new_ones() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let clients = topo.client_addrs().to_vec();
    let s = servers(&topo);
    let base = config(&topo, "af_packet", 1);
    let mut app = Appliance::start(&topo, &with_public_ip(&base, OLD));
    let mut flows = open_flows(&topo, &s, clients[0]);
    assert_eq!(new_tcp_flow_ip(&topo, &s, clients[1]), OLD);

    app.write_config(&with_public_ip(&base, NEW));
    let m = app.reload();
    assert_eq!(m.slowpath_event("reloads"), 1.0, "{}", m.text);
    assert_eq!(m.slowpath_event("reload_failures"), 0.0, "{}", m.text);

    // New flows, from a host with open flows and from others, use the new IP.
    for &c in &clients[..3] {
        assert_eq!(new_tcp_flow_ip(&topo, &s, c), NEW, "new TCP flow from {c}");
        assert_eq!(new_udp_flow_ip(&topo, &s, c), NEW, "new UDP flow from {c}");
    }
    check_open_flows_keep_their_address(&topo, &s, &mut flows);

    let m = app.metrics();
    assert_eq!(m.snat_connections("failed"), 0.0, "{}", m.text);
    assert!(app.stderr().contains("reloaded"), "{}", app.stderr());
    drop(flows);
    app.stop();
}

#[test]
fn after_a_reload_the_old_public_ip_still_answers_arp_for_its_open_flows() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let clients = topo.client_addrs().to_vec();
    let s = servers(&topo);
    let base = config(&topo, "af_packet", 1);
    let mut app = Appliance::start(&topo, &with_public_ip(&base, OLD));
    let mut flows = open_flows(&topo, &s, clients[0]);

    app.write_config(&with_public_ip(&base, NEW));
    let m = app.reload();
    assert_eq!(m.slowpath_event("reloads"), 1.0, "{}", m.text);

    // The internet side forgets its neighbours (as it would after its ARP entry expired) and
    // has to ask again for the old public IP, which the appliance must keep answering while
    // flows use it (docs/operations.md, "Reload").
    topo.inet()
        .ip(&["neigh", "flush", "all"])
        .expect("flush the inet namespace's neighbour cache");
    check_open_flows_keep_their_address(&topo, &s, &mut flows);
    drop(flows);
    app.stop();
}

#[test]
fn sighup_with_a_broken_file_changes_nothing() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let clients = topo.client_addrs().to_vec();
    let s = servers(&topo);
    let base = config(&topo, "af_packet", 1);
    let mut app = Appliance::start(&topo, &with_public_ip(&base, OLD));

    let mut tcp = connect_from(
        topo.client(),
        SocketAddrV4::new(clients[0], 0),
        s.echo.local_addr(),
        IO_TIMEOUT,
    )
    .expect("TCP before the reload");
    echo_roundtrip(&mut tcp, b"before the reload").expect("echo before the reload");
    assert_eq!(new_tcp_flow_ip(&topo, &s, clients[1]), OLD);

    // Would move new flows to NEW if any part of it were applied; the port range is invalid.
    let broken = set_nat_key(&with_public_ip(&base, NEW), "port_range", "[70000, 1]");
    app.write_config(&broken);
    let m = app.reload();
    assert_eq!(m.slowpath_event("reload_failures"), 1.0, "{}", m.text);
    assert_eq!(m.slowpath_event("reloads"), 0.0, "{}", m.text);
    assert!(app.is_running(), "the appliance stopped on a broken file");
    assert!(
        app.stderr().contains("reload refused"),
        "no refusal in the log:\n{}",
        app.stderr()
    );

    // Everything works as before.
    echo_roundtrip(&mut tcp, b"after the reload").expect("the open TCP flow survives");
    for &c in &clients[..3] {
        assert_eq!(new_tcp_flow_ip(&topo, &s, c), OLD, "new TCP flow from {c}");
        assert_eq!(new_udp_flow_ip(&topo, &s, c), OLD, "new UDP flow from {c}");
    }
    let m = app.metrics();
    assert_eq!(m.snat_connections("failed"), 0.0, "{}", m.text);
    assert_eq!(m.slowpath_event("reload_failures"), 1.0, "{}", m.text);
    drop(tcp);
    // SIGINT stops it as cleanly as SIGTERM.
    let stopped = app.stop_with(Signal::Interrupt);
    assert_eq!(
        stopped.final_counters.value(
            "natgw_slowpath_events_total",
            &[("event", "reload_failures")]
        ),
        1.0,
        "{}",
        stopped.stdout
    );
}
