//! End to end, in network namespaces: the basic services through the real `appliance` binary
//! on its DPDK backend (`driver = "dpdk"`), over DPDK's virtual devices on the topology's veths.
//!
//! Built for real only with the appliance's `dpdk` feature
//! (`cargo test -p appliance --features dpdk --test e2e_dpdk`); without it the single test
//! prints `SKIPPED: ...`, so the default build shows the skip instead of hiding it.
//!
//! Each test builds its own client — nat — inet topology and starts the appliance in the nat
//! namespace with both interfaces as hot-plugged DPDK virtual devices on the nat namespace's
//! veths (`net_af_packet0,iface=inside0,framecnt=4096` and `net_af_packet1,iface=outside0,...`,
//! or `net_af_xdp0,iface=inside0` ...), the EAL without hugepages or PCI
//! (`--no-huge --no-pci -m 256 --no-shconf --no-telemetry -l 0 --file-prefix=<unique>`; see
//! PLATFORM.md) and `[dpdk] mbufs = 16384`. The checks are those of `e2e_backends.rs`:
//! - TCP (HTTP) and UDP request/response from every client address, the servers seeing only
//!   the configured public IPs;
//! - ping through the NAT;
//! - UDP to a closed server port: the ICMP port unreachable comes back through the NAT and
//!   the client's connected socket gets `ECONNREFUSED`;
//! - unsolicited inbound UDP and TCP to the public IPs reaches no client and is counted as
//!   `unsolicited`;
//! - the DPDK ports' counters move, and SIGTERM stops the appliance with exit status 0 (DPDK
//!   torn down: ports closed, hot-plugged devices removed, `rte_eal_cleanup`) and its final
//!   counters on stdout.
//!
//! They need root and network namespaces; elsewhere they print `SKIPPED: reason` and return.

#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_end_to_end() {
    testbed::report_skip(&testbed::SkipReason::new(
        "built without the appliance's `dpdk` feature \
         (cargo test -p appliance --features dpdk --test e2e_dpdk)",
    ));
}

#[cfg(feature = "dpdk")]
mod e2e_common;

#[cfg(feature = "dpdk")]
mod with_dpdk {
    use std::io::ErrorKind;
    use std::net::SocketAddrV4;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use crate::e2e_common::{
        basic_counters, closed_udp_port_is_refused, config, connect_from, public_ips,
        tcp_and_udp_from_every_client, udp_socket, Appliance, Capture, Metrics, QUIET,
    };
    use testbed::traffic::{ping, TcpServer, TcpService, UdpEchoServer};
    use testbed::{Topology, TopologySpec};

    /// HTTP body length: several segments per answer.
    const BODY: usize = 4000;

    /// HTTP requests per client address.
    const GETS_PER_CLIENT: usize = 2;

    /// Mbufs in the appliance's pool (PLATFORM.md: with `-m 256` keep it near 16k).
    const MBUFS: u32 = 16_384;

    /// EAL arguments that work on a machine without hugepages or DPDK-bound NICs (PLATFORM.md);
    /// each appliance adds its own `--file-prefix`.
    const EAL_ARGS: &[&str] = &[
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "--no-shconf",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=lib.eal:warning",
    ];

    /// Numbers the EAL file prefixes of this process's appliances.
    static PREFIX_SEQ: AtomicU32 = AtomicU32::new(0);

    /// Which DPDK poll-mode driver carries the veths.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Pmd {
        /// `net_af_packet` (AF_PACKET mmap rings; `qpairs` = workers, set by the backend).
        AfPacket,
        /// `net_af_xdp` (an XDP socket per queue, native mode on veth).
        AfXdp,
    }

    impl Pmd {
        /// The vdev string of the `index`-th device of this kind on kernel interface `iface`.
        fn device(self, index: usize, iface: &str) -> String {
            match self {
                Pmd::AfPacket => format!("net_af_packet{index},iface={iface},framecnt=4096"),
                Pmd::AfXdp => format!("net_af_xdp{index},iface={iface}"),
            }
        }
    }

    /// The generated testbed config turned into a DPDK one (see [`to_dpdk`]) with a fresh EAL
    /// file prefix.
    fn dpdk_config(topo: &Topology, pmd: Pmd, workers: u16) -> String {
        let prefix = format!(
            "natgw-e2e-{}-{}",
            std::process::id(),
            PREFIX_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        to_dpdk(
            &config(topo, "dpdk", workers),
            [topo.inside_if(), topo.outside_if()],
            pmd,
            &prefix,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Rewrites a generated `driver = "dpdk"` config: `device = "IFACE"` of the inside and the
    /// outside interface becomes the DPDK virtual device on that veth (vdev index 0 inside, 1
    /// outside), and a `[dpdk]` table is appended with EAL arguments that work without
    /// hugepages, PCI devices or a shared runtime directory, and [`MBUFS`] mbufs.
    fn to_dpdk(base: &str, ifaces: [&str; 2], pmd: Pmd, prefix: &str) -> Result<String, String> {
        let mut text = String::with_capacity(base.len() + 512);
        let mut rest = base;
        for (index, iface) in ifaces.into_iter().enumerate() {
            let plain = format!("device = \"{iface}\"\n");
            let at = rest
                .find(&plain)
                .ok_or_else(|| format!("generated config lacks {plain:?}:\n{base}"))?;
            text.push_str(&rest[..at]);
            text.push_str(&format!("device = \"{}\"\n", pmd.device(index, iface)));
            rest = &rest[at + plain.len()..];
        }
        text.push_str(rest);
        let eal = EAL_ARGS
            .iter()
            .map(|a| format!("\"{a}\""))
            .chain([format!("\"--file-prefix={prefix}\"")])
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!("\n[dpdk]\neal_args = [{eal}]\nmbufs = {MBUFS}\n"));
        Ok(text)
    }

    /// Everything the tests need: root, namespaces, the programs the topology runs.
    fn preflight() -> Result<(), testbed::SkipReason> {
        crate::e2e_common::preflight()
    }

    /// The sum of `natgw_port_packets_total{side, dir}`.
    fn port_packets(m: &Metrics, side: &str, dir: &str) -> f64 {
        m.value("natgw_port_packets_total", &[("side", side), ("dir", dir)])
    }

    fn basic_traffic(pmd: Pmd, workers: u16) {
        // net_af_xdp binds DPDK queue k to the interface's RX queue k: the veths need one per worker.
        let spec = TopologySpec {
            queues: workers,
            ..TopologySpec::default()
        };
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
        let cfg = dpdk_config(&topo, pmd, workers);
        let app = Appliance::start(&topo, &cfg);
        assert!(
            app.stderr().contains("link "),
            "the DPDK backend logs each port's link:\n{}",
            app.stderr()
        );

        let (tcp_flows, udp_flows) =
            tcp_and_udp_from_every_client(&topo, &http, &echo, &public, GETS_PER_CLIENT, BODY);
        let m = app.wait_metrics("the sessions counted", Duration::from_secs(3), |m| {
            m.sessions_created("tcp") >= tcp_flows && m.sessions_created("udp") >= udp_flows
        });
        if workers == 1 {
            // One worker owns every port: nothing to hand over.
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
        closed_udp_port_is_refused(&topo, clients[1 % clients.len()], server_ip);
        let m = basic_counters(&app, tcp_flows, udp_flows + 1.0);
        // The DPDK queues' own counters saw the traffic on both sides, both ways.
        for side in ["inside", "outside"] {
            for dir in ["rx", "tx"] {
                assert!(
                    port_packets(&m, side, dir) >= tcp_flows * 3.0,
                    "{side} {dir}:\n{}",
                    m.text
                );
            }
        }
        // Link state and per-queue counters of the DPDK ports are in the metrics.
        for side in ["inside", "outside"] {
            assert_eq!(
                m.value("natgw_link_up", &[("side", side)]),
                1.0,
                "{side}:\n{}",
                m.text
            );
            let per_queue: f64 = (0..workers)
                .map(|q| {
                    let q = q.to_string();
                    m.value(
                        "natgw_queue_packets_total",
                        &[("side", side), ("queue", &q), ("dir", "rx")],
                    )
                })
                .sum();
            assert_eq!(
                per_queue,
                port_packets(&m, side, "rx"),
                "{side} per-queue rx:\n{}",
                m.text
            );
        }

        // Unsolicited inbound UDP and TCP to every public IP: dropped, counted, and nothing
        // reaches the client side.
        let before = m.dropped("unsolicited");
        let capture = Capture::start(topo.client());
        let knocker = udp_socket(topo.inet(), SocketAddrV4::new(server_ip, 7100));
        let mut expected = 0.0;
        for &ip in &public {
            for port in [1024, 33_333, 65_535] {
                knocker
                    .send_to(b"knock", SocketAddrV4::new(ip, port))
                    .expect("send an unsolicited datagram");
                expected += 1.0;
            }
            let dest = SocketAddrV4::new(ip, 40_000);
            let started = Instant::now();
            let err = connect_from(
                topo.inet(),
                SocketAddrV4::new(server_ip, 0),
                dest,
                Duration::from_millis(300),
            )
            .expect_err("unsolicited TCP was answered");
            assert!(
                matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
                "unsolicited TCP to {dest}: expected silence, got {err} after {:?}",
                started.elapsed()
            );
            expected += 1.0;
        }
        let m = app.wait_metrics(
            "the unsolicited drops counted",
            Duration::from_secs(3),
            |m| m.dropped("unsolicited") >= before + expected,
        );
        std::thread::sleep(QUIET);
        let leaked: Vec<_> = capture
            .finish()
            .into_iter()
            .filter(|p| p.src == server_ip && (p.src_port == 7100 || p.proto == 6))
            .collect();
        assert!(
            leaked.is_empty(),
            "unsolicited packets reached the client side: {leaked:?}"
        );
        assert!(m.dropped("unsolicited") >= before + expected, "{}", m.text);

        let stopped = app.stop();
        assert!(
            stopped.final_counters.packets("in2out") >= m.packets("in2out"),
            "final counters behind the live ones:\n{}",
            stopped.stdout
        );
        assert!(
            !stopped.stderr.contains("EAL cleanup"),
            "DPDK did not shut down cleanly:\n{}",
            stopped.stderr
        );
        drop((http, echo, knocker));
    }

    #[test]
    fn dpdk_af_packet_one_worker_tcp_udp_ping_port_unreachable_and_unsolicited() {
        testbed::skip_unless!(preflight());
        basic_traffic(Pmd::AfPacket, 1);
    }

    #[test]
    fn dpdk_af_packet_two_workers_tcp_udp_ping_port_unreachable_and_unsolicited() {
        testbed::skip_unless!(preflight());
        basic_traffic(Pmd::AfPacket, 2);
    }

    #[test]
    fn dpdk_af_xdp_one_worker_tcp_udp_ping_port_unreachable_and_unsolicited() {
        testbed::skip_unless!(preflight());
        basic_traffic(Pmd::AfXdp, 1);
    }

    #[test]
    fn dpdk_af_xdp_two_workers_tcp_udp_ping_port_unreachable_and_unsolicited() {
        testbed::skip_unless!(preflight());
        // DPDK's net_af_xdp sizes its queues from the device's *combined* channel count (ethtool -l), and
        // a veth reports 1 whatever its queue count: "Specified queue count 2 is larger than combined
        // queue count 1". Two workers on net_af_xdp need a real multi-queue NIC.
        testbed::report_skip(&testbed::SkipReason::new(
            "DPDK net_af_xdp with 2 queues needs a NIC with 2 combined channels; a veth reports 1",
        ));
    }

    /// The config rewrite only touches the two device lines and appends `[dpdk]`.
    #[test]
    fn config_rewrite_puts_dpdk_vdevs_on_the_veths() {
        let spec = TopologySpec::default();
        let opts = testbed::ApplianceConfigOptions {
            driver: "dpdk".into(),
            workers: 2,
            metrics_listen: std::net::SocketAddr::V4(crate::e2e_common::METRICS),
        };
        let base = testbed::appliance_config(&spec, &opts).expect("generate a config");
        let ifaces = [spec.inside_if.as_str(), spec.outside_if.as_str()];
        let text = to_dpdk(&base, ifaces, Pmd::AfPacket, "p1").unwrap();
        let inside = format!(
            "device = \"net_af_packet0,iface={},framecnt=4096\"\n",
            spec.inside_if
        );
        let outside = format!(
            "device = \"net_af_packet1,iface={},framecnt=4096\"\n",
            spec.outside_if
        );
        assert!(text.contains(&inside), "{text}");
        assert!(text.contains(&outside), "{text}");
        assert!(
            text.find(&inside) < text.find(&outside),
            "vdev 0 is the inside one:\n{text}"
        );
        assert_eq!(text.matches("driver = \"dpdk\"").count(), 2, "{text}");
        assert!(text.ends_with(
            "\n[dpdk]\neal_args = [\"--no-huge\", \"--no-pci\", \"-m\", \"256\", \"--no-shconf\", \
             \"--no-telemetry\", \"-l\", \"0\", \"--log-level=lib.eal:warning\", \
             \"--file-prefix=p1\"]\nmbufs = 16384\n"
        ));
        // Everything else is the generated text, unchanged.
        let back = text
            .replace(&inside, &format!("device = \"{}\"\n", spec.inside_if))
            .replace(&outside, &format!("device = \"{}\"\n", spec.outside_if));
        assert!(back.starts_with(&base), "{back}");
        let xdp = to_dpdk(&base, ifaces, Pmd::AfXdp, "p2").unwrap();
        assert!(xdp.contains(&format!(
            "device = \"net_af_xdp1,iface={}\"\n",
            spec.outside_if
        )));
        // A config without those device lines is refused, not silently left on AF_PACKET.
        assert!(to_dpdk(&base, ["nosuch0", "outside0"], Pmd::AfPacket, "p3").is_err());
    }
}
