//! End to end, in network namespaces: what the appliance lets in and out.
//!
//! - Unsolicited inbound TCP and UDP from the internet namespace — to random ports of the
//!   public IPs, to the ports the client listens on, and to a live flow's public port from
//!   another address or port — reaches no client: a capture on the client side sees only the
//!   one packet of the flow's own peer (the positive control), the client's sockets receive
//!   nothing, and the metrics count the drops as `unsolicited`.
//! - Outbound TCP to port 25 is refused by the default policy: silently (the connect times
//!   out) or, with `icmp_prohibited = true`, with ICMP "administratively prohibited" that the
//!   client sees at once; UDP to port 25 and TCP to other ports still work.
//! - A static 1:1 mapping works both ways: outbound from its private address shows its public
//!   address with the *same* source port, and inbound TCP and UDP to the public address reach
//!   listeners on the private address.
//!
//! They need root; elsewhere they print `SKIPPED: reason` and return.

mod e2e_common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use e2e_common::{
    accept_within, config, connect_from, public_ips, set_nat_key, tcp_listener, udp_socket, whoami,
    Appliance, Capture, UdpWhoami, IO_TIMEOUT, QUIET,
};
use testbed::traffic::{http_get, udp_exchange, TcpServer, TcpService, UdpEchoServer};
use testbed::{Topology, TopologySpec};

const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

#[test]
fn unsolicited_inbound_tcp_and_udp_reach_no_client() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let public = public_ips(&topo);
    let clients = topo.client_addrs().to_vec();
    let (s1, s2) = (topo.servers()[0], topo.servers()[1]);
    let app = Appliance::start(&topo, &config(&topo, "af_packet", 1));

    // Client-side listeners that would take anything that got through.
    const PROBE_TCP: u16 = 8081;
    const PROBE_UDP: u16 = 5001;
    let tcp_trap = tcp_listener(topo.client(), SocketAddrV4::new(ANY, PROBE_TCP));
    let udp_trap = udp_socket(topo.client(), SocketAddrV4::new(ANY, PROBE_UDP));

    // A live UDP flow from the client (an unconnected socket: it would take any datagram).
    let peer = udp_socket(topo.inet(), SocketAddrV4::new(s1, 7001));
    let client = udp_socket(topo.client(), SocketAddrV4::new(clients[0], 0));
    let client_addr = match client.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("client socket address: {other:?}"),
    };
    let mut buf = [0u8; 256];
    client
        .send_to(b"open", SocketAddrV4::new(s1, 7001))
        .expect("send");
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("the peer gets the first datagram");
    assert_eq!(&buf[..n], b"open");
    let SocketAddr::V4(mapped) = from else {
        panic!("v4 expected")
    };
    assert!(
        public.contains(mapped.ip()),
        "peer saw {mapped}, not a public IP"
    );
    peer.send_to(b"reply", mapped).expect("send");
    let (n, from) = client
        .recv_from(&mut buf)
        .expect("the reply reaches the client");
    assert_eq!(
        (&buf[..n], from),
        (&b"reply"[..], SocketAddr::from((s1, 7001)))
    );

    let before = app.metrics().dropped("unsolicited");
    let capture = Capture::start(topo.client());

    // Same public IP and port, but another remote address, then another remote port
    // (address-and-port-dependent filtering).
    let other_addr = udp_socket(topo.inet(), SocketAddrV4::new(s2, 7001));
    let other_port = udp_socket(topo.inet(), SocketAddrV4::new(s1, 7002));
    other_addr.send_to(b"knock", mapped).expect("send");
    other_port.send_to(b"knock", mapped).expect("send");
    let mut expected_drops = 2;
    // UDP to every public IP: the client's listening port, the live flow's port, others.
    for &ip in &public {
        for port in [PROBE_UDP, mapped.port(), 1024, 33_333, 65_535] {
            if (ip, port) == (*mapped.ip(), mapped.port()) {
                continue;
            }
            other_addr
                .send_to(b"knock", SocketAddrV4::new(ip, port))
                .expect("send");
            expected_drops += 1;
        }
    }
    // TCP SYNs to every public IP: nobody answers, the connects time out.
    for &ip in &public {
        for port in [PROBE_TCP, mapped.port(), 40_000] {
            let dest = SocketAddrV4::new(ip, port);
            let started = Instant::now();
            let r = connect_from(
                topo.inet(),
                SocketAddrV4::new(s1, 0),
                dest,
                Duration::from_millis(300),
            );
            let err = r.expect_err(&format!("unsolicited TCP to {dest} was answered"));
            assert!(
                matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
                "unsolicited TCP to {dest}: expected silence, got {err} after {:?}",
                started.elapsed()
            );
            expected_drops += 1;
        }
    }
    // The positive control: the flow's own peer still gets through, and the capture sees it.
    peer.send_to(b"still here", mapped).expect("send");
    let (n, from) = client
        .recv_from(&mut buf)
        .expect("the flow's peer still reaches the client");
    assert_eq!(
        (&buf[..n], from),
        (&b"still here"[..], SocketAddr::from((s1, 7001)))
    );
    std::thread::sleep(QUIET);
    let seen = capture.finish();

    let from_outside: Vec<_> = seen
        .iter()
        .filter(|p| !clients.contains(&p.src) && !p.src.is_loopback())
        .collect();
    assert_eq!(
        from_outside.len(),
        1,
        "the client side saw packets from outside other than the live flow's: {from_outside:?}"
    );
    let only = from_outside[0];
    assert_eq!(
        (only.src, only.src_port, only.dst, only.dst_port),
        (s1, 7001, *client_addr.ip(), client_addr.port()),
        "{only:?}"
    );
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let leak = client.recv_from(&mut buf);
    assert!(leak.is_err(), "the client socket received {leak:?}");
    let leak = udp_trap
        .set_nonblocking(true)
        .and_then(|()| udp_trap.recv_from(&mut buf));
    assert!(leak.is_err(), "the client's UDP listener received {leak:?}");
    assert!(
        accept_within(&tcp_trap, Duration::from_millis(10)).is_none(),
        "the client's TCP listener accepted a connection"
    );

    let m = app.wait_metrics(
        &format!("at least {expected_drops} unsolicited drops"),
        Duration::from_secs(3),
        |m| m.dropped("unsolicited") >= before + f64::from(expected_drops),
    );
    assert!(m.packets("out2in") >= 2.0, "{}", m.text);
    app.stop();
}

#[test]
fn tcp_to_port_25_is_refused_by_policy_silently_or_with_icmp_prohibited() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let client = topo.client_addrs()[0];
    let s1 = topo.servers()[0];
    let smtp = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(s1, 25),
        TcpService::Http { body_len: 0 },
    )
    .expect("start a listener on port 25");
    let web = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(s1, 8080),
        TcpService::Http { body_len: 0 },
    )
    .expect("start the HTTP server");
    let udp25 = UdpEchoServer::start(topo.inet(), SocketAddrV4::new(s1, 25)).expect("udp 25");
    let base = config(&topo, "af_packet", 1);

    // Default: the SYN is dropped, the client's connect times out.
    let app = Appliance::start(&topo, &base);
    http_get(
        topo.client(),
        Some(client),
        web.local_addr(),
        "/",
        IO_TIMEOUT,
    )
    .expect("TCP to port 8080 is allowed");
    let err = connect_from(
        topo.client(),
        SocketAddrV4::new(client, 0),
        smtp.local_addr(),
        Duration::from_millis(1500),
    )
    .expect_err("TCP to port 25 must be refused");
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
        "without icmp_prohibited the SYN is dropped silently, got {err}"
    );
    let answer = udp_exchange(
        topo.client(),
        Some(SocketAddrV4::new(client, 0)),
        udp25.local_addr(),
        b"udp 25 is not smtp",
        IO_TIMEOUT,
    )
    .expect("UDP to port 25 is not covered by the TCP rule");
    assert_eq!(answer, b"udp 25 is not smtp");
    let m = app.wait_metrics("policy_denied", Duration::from_secs(3), |m| {
        m.dropped("policy_denied") >= 1.0
    });
    assert_eq!(
        m.value("natgw_icmp_generated_total", &[]),
        0.0,
        "{}",
        m.text
    );
    app.stop();

    // icmp_prohibited = true: the client gets "administratively prohibited" at once, which
    // Linux reports to connect() as EHOSTUNREACH.
    let app = Appliance::start(&topo, &set_nat_key(&base, "icmp_prohibited", "true"));
    let started = Instant::now();
    let err = connect_from(
        topo.client(),
        SocketAddrV4::new(client, 0),
        smtp.local_addr(),
        IO_TIMEOUT,
    )
    .expect_err("TCP to port 25 must be refused");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EHOSTUNREACH),
        "with icmp_prohibited the client should get ICMP prohibited (EHOSTUNREACH), got {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the ICMP error should end the connect at once, took {:?}",
        started.elapsed()
    );
    let m = app.wait_metrics(
        "policy_denied and an ICMP error",
        Duration::from_secs(3),
        |m| m.dropped("policy_denied") >= 1.0 && m.value("natgw_icmp_generated_total", &[]) >= 1.0,
    );
    assert_eq!(m.snat_connections("failed"), 0.0, "{}", m.text);
    http_get(
        topo.client(),
        Some(client),
        web.local_addr(),
        "/",
        IO_TIMEOUT,
    )
    .expect("TCP to port 8080 is still allowed");
    app.stop();

    assert_eq!(
        smtp.connections(),
        0,
        "a connection to port 25 reached the server"
    );
    drop((smtp, web, udp25));
}

/// Sends an HTTP/1.0 GET on `stream` and returns the `peer IP:PORT` the testbed's HTTP server
/// reports having seen.
fn http_peer(mut stream: std::net::TcpStream) -> SocketAddrV4 {
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("not HTTP: {text}"));
    body.strip_prefix("peer ")
        .and_then(|b| b.lines().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no peer line in {body:?}"))
}

#[test]
fn static_one_to_one_mapping_works_both_ways() {
    testbed::skip_unless!(e2e_common::preflight());
    let topo = Topology::new(TopologySpec::default()).expect("build the topology");
    let private: Ipv4Addr = "10.0.0.3".parse().expect("address");
    let mapped: Ipv4Addr = "203.0.113.50".parse().expect("address");
    let snat_host = topo.client_addrs()[0];
    assert!(topo.client_addrs().contains(&private));
    assert_ne!(snat_host, private);
    let pool = public_ips(&topo);
    assert!(!pool.contains(&mapped));
    let s1 = topo.servers()[0];
    let web = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(s1, 8080),
        TcpService::Http { body_len: 0 },
    )
    .expect("start the HTTP server");
    let who = UdpWhoami::start(topo.inet(), SocketAddrV4::new(s1, 7000));
    let mut cfg = config(&topo, "af_packet", 1);
    cfg.push_str(&format!(
        "\n[[nat.static]]\nprivate = \"{private}\"\npublic = \"{mapped}\"\n"
    ));
    let app = Appliance::start(&topo, &cfg);

    // Outbound TCP and UDP from the mapped host: its public address, the same port.
    let stream = connect_from(
        topo.client(),
        SocketAddrV4::new(private, 41_000),
        web.local_addr(),
        IO_TIMEOUT,
    )
    .expect("outbound TCP from the mapped host");
    assert_eq!(http_peer(stream), SocketAddrV4::new(mapped, 41_000));
    let sock = udp_socket(topo.client(), SocketAddrV4::new(private, 41_001));
    assert_eq!(
        whoami(&sock, who.addr()).expect("outbound UDP from the mapped host"),
        SocketAddrV4::new(mapped, 41_001)
    );
    // Another host still goes through SNAT.
    let r = http_get(
        topo.client(),
        Some(snat_host),
        web.local_addr(),
        "/",
        IO_TIMEOUT,
    )
    .expect("outbound TCP from an SNAT host");
    let seen = r.seen_peer().expect("peer line");
    assert!(
        pool.contains(seen.ip()),
        "{snat_host} should use the SNAT pool, the server saw {seen}"
    );

    // Inbound TCP to the mapped public address reaches a listener on the private address.
    let listener = tcp_listener(topo.client(), SocketAddrV4::new(private, 9090));
    let mut outside = connect_from(
        topo.inet(),
        SocketAddrV4::new(s1, 0),
        SocketAddrV4::new(mapped, 9090),
        IO_TIMEOUT,
    )
    .expect("inbound TCP to the mapped address");
    let (mut inside, remote) =
        accept_within(&listener, IO_TIMEOUT).expect("the private listener accepts");
    assert_eq!(
        remote.ip(),
        std::net::IpAddr::V4(s1),
        "the remote is not translated"
    );
    outside.write_all(b"hello inside").expect("send inbound");
    let mut buf = [0u8; 64];
    inside
        .read_exact(&mut buf[..12])
        .expect("receive on the private host");
    assert_eq!(&buf[..12], b"hello inside");
    inside.write_all(b"hi outside").expect("answer");
    outside.read_exact(&mut buf[..10]).expect("receive outside");
    assert_eq!(&buf[..10], b"hi outside");
    drop((outside, inside));

    // A closed port on the mapped host: its RST comes back through the NAT.
    let err = connect_from(
        topo.inet(),
        SocketAddrV4::new(s1, 0),
        SocketAddrV4::new(mapped, 9099),
        IO_TIMEOUT,
    )
    .expect_err("nothing listens on 9099");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // Inbound UDP, and the answer goes out from the mapped address and port.
    let inside_udp = udp_socket(topo.client(), SocketAddrV4::new(private, 9091));
    let outside_udp = udp_socket(topo.inet(), SocketAddrV4::new(s1, 7100));
    outside_udp
        .send_to(b"inbound", SocketAddrV4::new(mapped, 9091))
        .expect("send");
    let (n, from) = inside_udp
        .recv_from(&mut buf)
        .expect("the private host gets inbound UDP");
    assert_eq!(
        (&buf[..n], from),
        (&b"inbound"[..], SocketAddr::from((s1, 7100)))
    );
    inside_udp.send_to(b"answer", from).expect("send");
    let (n, from) = outside_udp.recv_from(&mut buf).expect("the answer arrives");
    assert_eq!(
        (&buf[..n], from),
        (&b"answer"[..], SocketAddr::from((mapped, 9091)))
    );

    let m = app.metrics();
    assert_eq!(m.dropped("unsolicited"), 0.0, "{}", m.text);
    app.stop();
    drop((web, who));
}
