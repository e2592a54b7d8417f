//! End-to-end tests of the testbed itself, in real network namespaces (root needed; each test
//! prints `SKIPPED: reason` and returns where namespaces are unavailable).
//!
//! The kernel-NAT topology is the known-good NAT here: if TCP, UDP, ping and ICMP errors pass
//! through it and the servers see the SNAT address, the harness and the traffic helpers work,
//! so an appliance test that fails on the same helpers points at the appliance.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use testbed::traffic::{self, TcpBurst, TcpServer, TcpService, UdpBurst, UdpEchoServer};
use testbed::{
    find_leftovers, remove_leftovers, ApplianceConfigOptions, ChildOutput, KernelNatSpec,
    LeftoverScope, Prefix, Topology, TopologySpec,
};

const T: Duration = Duration::from_secs(5);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn netns_list() -> String {
    let out = Command::new(testbed::find_program("ip").expect("ip exists after the preflight"))
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn listed(list: &str, name: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn skip_unless_nft() -> Result<(), testbed::SkipReason> {
    testbed::require_root_and_netns()?;
    testbed::require_programs(&["nft", "ping"])
}

#[test]
fn kernel_nat_passes_tcp_udp_ping_and_icmp_errors_with_the_public_source() {
    testbed::skip_unless!(skip_unless_nft());
    let topo = Topology::kernel_nat(TopologySpec::default(), KernelNatSpec::default()).unwrap();
    let public = ip("203.0.113.10");
    let server_ip = topo.servers()[0];
    let [c0, c1, c2] = [0, 1, 2].map(|i| topo.client_addrs()[i]);

    // TCP: one HTTP-ish request, then a burst of short connections from another host.
    let http = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(server_ip, 8080),
        TcpService::Http { body_len: 4096 },
    )
    .unwrap();
    traffic::wait_for_tcp(topo.client(), http.local_addr(), T).unwrap();
    let resp = traffic::http_get(topo.client(), Some(c0), http.local_addr(), "/", T).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 4096);
    assert_eq!(resp.seen_peer().map(|p| *p.ip()), Some(public));
    let burst = traffic::tcp_burst(
        topo.client(),
        &TcpBurst {
            source: Some(c1),
            dest: http.local_addr(),
            count: 20,
            request: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            timeout: T,
        },
    )
    .unwrap();
    assert_eq!(burst.succeeded, 20, "{burst:?}");
    assert!(http.wait_for_connections(21, T));
    assert_eq!(http.peer_ips(), BTreeSet::from([public]));

    // TCP echo through run_in with plain std sockets, as appliance tests will do.
    let echo = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(server_ip, 7),
        TcpService::Echo,
    )
    .unwrap();
    let echo_addr = echo.local_addr();
    let answer = topo
        .client()
        .run_in(move || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect_timeout(&echo_addr.into(), T)?;
            s.set_read_timeout(Some(T))?;
            s.write_all(b"ping over tcp")?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut v = Vec::new();
            s.read_to_end(&mut v)?;
            Ok(v)
        })
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"ping over tcp");
    assert_eq!(echo.peer_ips(), BTreeSet::from([public]));

    // UDP: one exchange, then a burst of fresh flows.
    let udp = UdpEchoServer::start(topo.inet(), SocketAddrV4::new(server_ip, 5353)).unwrap();
    let got = traffic::udp_exchange(
        topo.client(),
        Some(SocketAddrV4::new(c0, 0)),
        udp.local_addr(),
        b"hello",
        T,
    )
    .unwrap();
    assert_eq!(got, b"hello");
    let burst = traffic::udp_burst(
        topo.client(),
        &UdpBurst {
            source: Some(c2),
            dest: udp.local_addr(),
            count: 10,
            payload: b"x".to_vec(),
            timeout: T,
        },
    )
    .unwrap();
    assert_eq!(burst.succeeded, 10, "{burst:?}");
    assert!(udp.datagrams() >= 11);
    assert_eq!(udp.source_ips(), BTreeSet::from([public]));

    // ICMP port unreachable comes back to the client's socket.
    let err = traffic::udp_exchange(
        topo.client(),
        None,
        SocketAddrV4::new(server_ip, 9),
        b"anyone?",
        T,
    )
    .unwrap_err();
    assert_eq!(err.io_kind(), Some(ErrorKind::ConnectionRefused), "{err}");

    // Ping, from the primary and from an extra address.
    let r = traffic::ping(topo.client(), server_ip, None, 3, T).unwrap();
    assert_eq!((r.transmitted, r.received), (3, 3));
    let r = traffic::ping(topo.client(), server_ip, Some(c1), 2, T).unwrap();
    assert_eq!(r.received, 2);
    // Nothing answers an address that exists nowhere.
    let r = traffic::ping(
        topo.client(),
        ip("198.51.100.99"),
        None,
        1,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(r.received, 0);
}

#[test]
fn kernel_nat_pool_keeps_each_host_on_one_public_ip() {
    testbed::skip_unless!(skip_unless_nft());
    let spec = TopologySpec {
        extra_client_addrs: 7,
        ..TopologySpec::default()
    };
    let pool = vec![ip("203.0.113.10"), ip("203.0.113.11")];
    let topo = Topology::kernel_nat(
        spec,
        KernelNatSpec {
            snat_to: pool.clone(),
        },
    )
    .unwrap();
    let server = TcpServer::start(
        topo.inet(),
        SocketAddrV4::new(topo.servers()[1], 80),
        TcpService::Http { body_len: 0 },
    )
    .unwrap();
    let mut seen: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for &host in topo.client_addrs() {
        for _ in 0..3 {
            let r =
                traffic::http_get(topo.client(), Some(host), server.local_addr(), "/", T).unwrap();
            let public = *r.seen_peer().unwrap().ip();
            assert!(pool.contains(&public), "{public}");
            seen.entry(host).or_default().insert(public);
        }
    }
    assert_eq!(seen.len(), 8);
    for (host, publics) in &seen {
        assert_eq!(publics.len(), 1, "{host} used {publics:?}");
    }
}

#[test]
fn appliance_mode_leaves_the_nat_namespace_bare_and_silent() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    testbed::skip_unless!(testbed::require_programs(&["ping"]));
    let topo = Topology::new(TopologySpec::default()).unwrap();
    let nat = topo.nat();

    let addrs = nat
        .exec_checked(&["ip", "-4", "-o", "addr", "show"])
        .unwrap();
    assert!(addrs.lines().all(|l| l.contains(" lo ")), "{addrs}");
    assert_eq!(nat.sysctl("net/ipv4/ip_forward").unwrap(), "0");
    assert_eq!(nat.sysctl("net/ipv6/conf/all/disable_ipv6").unwrap(), "1");
    for dev in [topo.inside_if(), topo.outside_if()] {
        let link = nat.ip(&["link", "show", dev]).unwrap();
        assert!(link.contains("NOARP") && link.contains(",UP"), "{link}");
        let k = nat.exec_checked(&["ethtool", "-k", dev]).unwrap();
        for feature in [
            "tx-checksumming: off",
            "rx-checksumming: off",
            "tcp-segmentation-offload: off",
            "generic-segmentation-offload: off",
            "generic-receive-offload: off",
        ] {
            assert!(k.contains(feature), "{dev}: {feature} missing in\n{k}");
        }
    }
    // The client is configured and routes via the appliance's address.
    let route = topo
        .client()
        .ip(&["-4", "route", "show", "default"])
        .unwrap();
    assert!(route.contains("via 10.0.0.1 dev c0"), "{route}");

    // Nobody answers for the gateway or the public IPs until the appliance runs.
    let r = traffic::ping(
        topo.client(),
        ip("10.0.0.1"),
        None,
        1,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(r.received, 0);
    let r = traffic::ping(
        topo.inet(),
        ip("203.0.113.10"),
        None,
        1,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(r.received, 0);

    // A config for the appliance that points at these interfaces.
    let cfg = topo
        .appliance_config(&ApplianceConfigOptions::default())
        .unwrap();
    assert!(cfg.contains("device = \"inside0\""), "{cfg}");
    assert!(cfg.contains("device = \"outside0\""), "{cfg}");
    assert!(cfg.contains(topo.nat().name()), "{cfg}");
}

#[test]
fn teardown_removes_the_namespaces_and_kills_what_runs_inside() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    let topo = Topology::new(TopologySpec::default()).unwrap();
    let names = topo.namespaces().map(str::to_owned);
    let list = netns_list();
    for n in &names {
        assert!(listed(&list, n), "{n} missing in {list}");
    }

    // One process without a guard (as if a test forgot it), one with.
    let mut loose = topo.nat().command("sleep").arg("60").spawn().unwrap();
    let guarded = topo
        .client()
        .spawn(&["sleep", "60"], ChildOutput::Null)
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    // `ip netns exec` enters the namespace, then execs: wait until both have.
    while !(topo.nat().pids().contains(&loose.id()) && topo.client().pids().contains(&guarded.id()))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep never entered the namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    drop(topo);
    let list = netns_list();
    for n in &names {
        assert!(!listed(&list, n), "{n} survived teardown: {list}");
    }
    let status = loose.wait().unwrap();
    assert!(!status.success(), "sleep 60 should have been killed");
    drop(guarded);
}

#[test]
fn two_topologies_at_once_do_not_collide() {
    testbed::skip_unless!(skip_unless_nft());
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Topology::kernel_nat(TopologySpec::default(), KernelNatSpec::default()));
        let b = s.spawn(|| Topology::new(TopologySpec::default()));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    let c = Topology::kernel_nat(TopologySpec::default(), KernelNatSpec::default()).unwrap();
    let mut all: Vec<&str> = Vec::new();
    for t in [&a, &b, &c] {
        all.extend(t.namespaces());
    }
    let distinct: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 9, "{all:?}");

    // Same server address in both kernel-NAT topologies; each client reaches its own.
    let addr = SocketAddrV4::new(a.servers()[0], 8080);
    let sa = TcpServer::start(a.inet(), addr, TcpService::Http { body_len: 0 }).unwrap();
    let sc = TcpServer::start(c.inet(), addr, TcpService::Http { body_len: 0 }).unwrap();
    for _ in 0..3 {
        traffic::http_get(a.client(), None, addr, "/", T).unwrap();
    }
    traffic::http_get(c.client(), None, addr, "/", T).unwrap();
    assert_eq!((sa.connections(), sc.connections()), (3, 1));

    // Tearing one down leaves the other working.
    drop(sa);
    drop(a);
    traffic::http_get(c.client(), None, addr, "/", T).unwrap();
    assert_eq!(sc.connections(), 2);
    let list = netns_list();
    for n in c.namespaces().into_iter().chain(b.namespaces()) {
        assert!(listed(&list, n), "{n} missing in {list}");
    }
}

#[test]
fn leftovers_are_found_and_removed_by_prefix() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    // A prefix of its own, so removing "all" cannot touch the other tests' namespaces.
    let prefix = Prefix::new("ntbleak").unwrap();
    let topo = Topology::new(TopologySpec {
        prefix: prefix.clone(),
        ..TopologySpec::default()
    })
    .unwrap();
    let names = topo.namespaces().map(str::to_owned);
    std::mem::forget(topo); // a crashed run: nothing tears it down

    // Our own process is alive, so these are not leftovers of a dead owner.
    assert!(find_leftovers(&prefix, LeftoverScope::DeadOwners)
        .unwrap()
        .is_empty());
    let removed: BTreeSet<String> = remove_leftovers(&prefix, LeftoverScope::All)
        .unwrap()
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(removed, names.iter().cloned().collect());
    let list = netns_list();
    for n in &names {
        assert!(!listed(&list, n), "{n} survived: {list}");
    }
}
