//! NAT core: SNAT port exhaustion and the other limits. New flows fail with the right reason and
//! counters; existing flows never suffer; `icmp_prohibited` answers with ICMP 3/13.

mod nat_common;

use nat_common::*;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::{Side, Verdict};
use natgw_dataplane::wire::TcpFlags;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

const RANGE: (u16, u16) = (2048, 2048 + 63);

/// One shard, one public IP, 64 ports.
fn small_net(icmp_prohibited: bool) -> Net {
    let mut p = params(1);
    p.public_ips = vec![PUBLIC_IPS[0]];
    p.icmp_prohibited = icmp_prohibited;
    let mut cfg = alloc_config();
    cfg.public_ips = vec![PUBLIC_IPS[0]];
    cfg.port_range = RANGE;
    Net::new(p, cfg)
}

fn host(i: u32) -> SocketAddrV4 {
    ep(
        Ipv4Addr::new(10, 2, (i / 250) as u8, (i % 250) as u8 + 1),
        30000 + i as u16,
    )
}

/// Opens 64 TCP flows to one destination; returns (private, public) pairs.
fn fill(net: &mut Net, r: SocketAddrV4) -> Vec<(SocketAddrV4, SocketAddrV4)> {
    let mut flows = Vec::new();
    let mut ports = HashSet::new();
    for i in 0..64 {
        let a = host(i);
        let out = net
            .send(Side::Inside, &tcp_in(a, r, TcpFlags::SYN))
            .forwarded(Side::Outside);
        assert_snat(&out, RANGE);
        assert!(ports.insert(out.src_ep().port()), "port leased twice");
        flows.push((a, out.src_ep()));
    }
    flows
}

#[test]
fn the_65th_flow_to_one_destination_fails_and_the_64_keep_working() {
    let mut net = small_net(false);
    let r = ep(REMOTE, 443);
    let flows = fill(&mut net, r);
    let late = host(64);
    let d = net.send(Side::Inside, &tcp_in(late, r, TcpFlags::SYN));
    assert_eq!(d.dropped(), DropReason::PortsExhausted);
    // Retries fail the same way, and create nothing.
    let d = net.send(Side::Inside, &tcp_in(late, r, TcpFlags::SYN));
    assert_eq!(d.dropped(), DropReason::PortsExhausted);
    let c = net.counters();
    assert_eq!(c.snat_attempts, 66);
    assert_eq!(c.snat_failures, 2);
    assert_eq!(c.drops_of(DropReason::PortsExhausted), 2);
    assert_eq!(c.total_drops(), 2);
    assert_eq!(net.sessions(), 64);
    let stats = net.cores[0].allocator_ref().stats();
    assert_eq!(
        stats.failures_for(natgw_allocator::AllocError::PortsExhausted),
        2
    );
    // Every existing flow keeps its translation both ways.
    for (a, public) in &flows {
        let back = net
            .send(
                Side::Outside,
                &tcp_out(r, *public, TcpFlags::SYN | TcpFlags::ACK),
            )
            .forwarded(Side::Inside);
        assert_eq!(back.dst_ep(), *a);
        let out = net
            .send(Side::Inside, &tcp_in(*a, r, TcpFlags::ACK))
            .forwarded(Side::Outside);
        assert_eq!(out.src_ep(), *public);
    }
    // Another destination still has every port (TCP ports are reused per destination).
    let out = net
        .send(Side::Inside, &tcp_in(late, ep(REMOTE, 444), TcpFlags::SYN))
        .forwarded(Side::Outside);
    assert_snat(&out, RANGE);
    // When one flow ends (RST, no cool-down left), a new one fits again.
    let (a0, p0) = flows[0];
    net.send(Side::Outside, &tcp_out(r, p0, TcpFlags::RST))
        .forwarded(Side::Inside);
    net.advance(std::time::Duration::from_secs(5));
    assert_eq!(
        net.send(Side::Inside, &tcp_in(late, r, TcpFlags::SYN))
            .dropped(),
        DropReason::PortsExhausted,
        "the RST cool-down (16 s) still holds the port for this destination"
    );
    net.advance(std::time::Duration::from_secs(15));
    let out = net
        .send(Side::Inside, &tcp_in(late, r, TcpFlags::SYN))
        .forwarded(Side::Outside);
    assert_eq!(out.src_ep(), p0, "the only free port");
    let _ = a0;
}

#[test]
fn udp_exhausts_per_destination_ip() {
    let mut net = small_net(false);
    for i in 0..64 {
        net.send(Side::Inside, &udp_in(host(i), ep(REMOTE, 1000 + i as u16)))
            .forwarded(Side::Outside);
    }
    // Any port of the same remote address: exhausted (port-restricted cone reuse).
    let d = net.send(Side::Inside, &udp_in(host(64), ep(REMOTE, 9)));
    assert_eq!(d.dropped(), DropReason::PortsExhausted);
    // Another remote address is fine.
    net.send(
        Side::Inside,
        &udp_in(host(64), ep(Ipv4Addr::new(198, 51, 100, 8), 9)),
    )
    .forwarded(Side::Outside);
    assert_eq!(net.counters().snat_failures, 1);
}

#[test]
fn exhaustion_is_answered_with_admin_prohibited_when_configured() {
    let mut net = small_net(true);
    let r = ep(REMOTE, 443);
    fill(&mut net, r);
    let late = host(64);
    let syn = tcp_in(late, r, TcpFlags::SYN);
    let d = net.send(Side::Inside, &syn);
    let p = d.forwarded(Side::Inside);
    assert_eq!((p.src, p.dst), (INSIDE_IP, *late.ip()));
    assert_eq!((p.src_mac, p.dst_mac), (INSIDE_MAC, host_mac(*late.ip())));
    let L4::IcmpError { kind, code, .. } = p.l4 else {
        panic!("{p:?}")
    };
    assert_eq!((kind, code), (3, 13));
    let inner = p.inner();
    assert_eq!((inner.src, inner.sport), (*late.ip(), late.port()));
    assert_eq!((inner.dst, inner.dport), (REMOTE, 443));
    let c = net.counters();
    assert_eq!(c.snat_failures, 1);
    assert_eq!(c.drops_of(DropReason::PortsExhausted), 1);
    assert_eq!(c.icmp_generated, 1);
    // Policy refusals are answered the same way.
    let d = net.send(Side::Inside, &tcp_in(late, ep(REMOTE, 25), TcpFlags::SYN));
    let p = d.forwarded(Side::Inside);
    assert!(matches!(
        p.l4,
        L4::IcmpError {
            kind: 3,
            code: 13,
            ..
        }
    ));
    assert_eq!(net.counters().drops_of(DropReason::PolicyDenied), 1);
}

#[test]
fn destination_limit_and_host_limit_and_table_size() {
    // Per-destination cap of 10.
    let mut p = params(1);
    p.max_sessions = 8;
    let mut cfg = alloc_config();
    cfg.max_per_destination = 10;
    let mut net = Net::new(p.clone(), cfg);
    let r = ep(REMOTE, 443);
    for i in 0..8 {
        net.send(Side::Inside, &tcp_in(host(i), r, TcpFlags::SYN))
            .forwarded(Side::Outside);
    }
    // The shard's table holds 8 sessions.
    assert_eq!(
        net.send(Side::Inside, &tcp_in(host(8), r, TcpFlags::SYN))
            .dropped(),
        DropReason::SessionTableFull
    );

    let mut p = params(1);
    p.public_ips = vec![PUBLIC_IPS[0]];
    let mut cfg = alloc_config();
    cfg.public_ips = vec![PUBLIC_IPS[0]];
    cfg.max_per_destination = 10;
    let mut net = Net::new(p, cfg);
    for i in 0..10 {
        net.send(Side::Inside, &tcp_in(host(i), r, TcpFlags::SYN))
            .forwarded(Side::Outside);
    }
    assert_eq!(
        net.send(Side::Inside, &tcp_in(host(10), r, TcpFlags::SYN))
            .dropped(),
        DropReason::DestinationLimit
    );
    assert_eq!(net.counters().snat_failures, 1);

    // Per-host cap of 3.
    let mut cfg = alloc_config();
    cfg.policy = natgw_allocator::Policy::Dynamic {
        max_ports_per_host: Some(3),
    };
    let mut net = Net::new(params(1), cfg);
    for port in 0..3 {
        net.send(
            Side::Inside,
            &udp_in(ep(HOST_A, 100 + port), ep(REMOTE, 53)),
        )
        .forwarded(Side::Outside);
    }
    assert_eq!(
        net.send(Side::Inside, &udp_in(ep(HOST_A, 200), ep(REMOTE, 53)))
            .dropped(),
        DropReason::HostLimit
    );
    // Another host is not affected.
    net.send(Side::Inside, &udp_in(ep(HOST_B, 200), ep(REMOTE, 53)))
        .forwarded(Side::Outside);
}

#[test]
fn exhaustion_never_disturbs_established_flows_under_churn() {
    // Many hosts keep hammering a full destination while the 64 flows exchange data.
    let mut net = small_net(false);
    let r = ep(REMOTE, 443);
    let flows = fill(&mut net, r);
    for round in 0..20u32 {
        for i in 0..20 {
            let v = net
                .send(
                    Side::Inside,
                    &tcp_in(host(100 + round * 20 + i), r, TcpFlags::SYN),
                )
                .verdict;
            assert_eq!(v, Verdict::Drop(DropReason::PortsExhausted));
        }
        for (a, public) in &flows {
            let out = net
                .send(Side::Inside, &tcp_in(*a, r, TcpFlags::ACK))
                .forwarded(Side::Outside);
            assert_eq!(out.src_ep(), *public);
        }
    }
    assert_eq!(net.counters().snat_failures, 400);
}
