//! NAT core: translation round trips (TCP, UDP, ICMP echo), session reuse, filtering, policy
//! (deny rules, SMTP, no-NAT), static 1:1 and hairpinning. Every frame that comes out is checked
//! by the independent decoder of `nat_common` (etherparse + checksums recomputed from scratch).

mod nat_common;

use nat_common::*;
use natgw_allocator::Protocol;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::flow::FlowKey;
use natgw_dataplane::nat::{Punt, Side, Verdict};
use natgw_dataplane::wire::{FrameBuilder, TcpFlags};
use std::net::Ipv4Addr;

#[test]
fn tcp_round_trip_restores_the_tuple_and_reuses_the_session() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 40000);
    let r = ep(REMOTE, 443);
    let syn = tcp_in(a, r, TcpFlags::SYN);
    let d = net.send(Side::Inside, &syn);
    let out = d.forwarded(Side::Outside);
    assert_snat(&out, PORT_RANGE);
    assert_eq!(out.dst_ep(), r);
    assert_eq!(out.ttl, 63, "TTL decremented");
    assert!(matches!(out.l4, L4::Tcp { flags: 0x02, .. }));
    let public = out.src_ep();
    // The session is visible and says the same thing.
    let s = net.cores[0]
        .find_in2out(&FlowKey {
            proto: Protocol::Tcp,
            local_ip: HOST_A,
            local_port: 40000,
            remote_ip: REMOTE,
            remote_port: 443,
        })
        .expect("session");
    assert_eq!((s.public_ip, s.public_port), (*public.ip(), public.port()));

    // The reply comes back to the private endpoint, to the host's MAC.
    let synack = tcp_out(r, public, TcpFlags::SYN | TcpFlags::ACK);
    let back = net.send(Side::Outside, &synack).forwarded(Side::Inside);
    assert_eq!(back.src_ep(), r);
    assert_eq!(back.dst_ep(), a);
    assert_eq!((back.src_mac, back.dst_mac), (INSIDE_MAC, host_mac(HOST_A)));
    assert_eq!(back.ttl, 63);

    // Later packets reuse the session: same public endpoint, no new session.
    for _ in 0..3 {
        let ack = tcp_in(a, r, TcpFlags::ACK);
        let out2 = net.send(Side::Inside, &ack).forwarded(Side::Outside);
        assert_eq!(out2.src_ep(), public);
        let data =
            outside(FrameBuilder::tcp(r, public, TcpFlags::ACK | TcpFlags::PSH).payload_len(100));
        let back2 = net.send(Side::Outside, &data).forwarded(Side::Inside);
        assert_eq!(back2.dst_ep(), a);
    }
    let c = net.counters();
    assert_eq!(c.created(Protocol::Tcp), 1);
    assert_eq!(c.snat_attempts, 1);
    assert_eq!((c.in2out.packets, c.out2in.packets), (4, 4));
    assert_eq!(c.total_drops(), 0);
    assert_eq!(net.sessions(), 1);
    assert_eq!(net.live_leases(), 1);
}

#[test]
fn udp_round_trip_with_payload_and_zero_checksum() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5353);
    let r = ep(REMOTE, 53);
    let q = inside(FrameBuilder::udp(a, r).payload_len(333));
    let out = net.send(Side::Inside, &q).forwarded(Side::Outside);
    assert_snat(&out, PORT_RANGE);
    assert_eq!(out.dst_ep(), r);
    // Payload untouched.
    assert_eq!(&ip_of(&out_frame(&mut net, &q))[28..], &ip_of(&q)[28..]);
    let public = out.src_ep();
    let back = net
        .send(
            Side::Outside,
            &outside(FrameBuilder::udp(r, public).payload_len(999)),
        )
        .forwarded(Side::Inside);
    assert_eq!((back.src_ep(), back.dst_ep()), (r, a));

    // A datagram without checksum stays without one.
    let mut nock = inside(FrameBuilder::udp(a, r).payload_len(20));
    nock[14 + 20 + 6] = 0;
    nock[14 + 20 + 7] = 0;
    let out = net.send(Side::Inside, &nock).forwarded(Side::Outside);
    assert_eq!(out.src_ep(), public);
    assert!(matches!(out.l4, L4::Udp { checksum: 0, .. }));
    assert_eq!(net.counters().created(Protocol::Udp), 1);
}

/// Sends `frame` once more on the inside and returns the translated bytes.
fn out_frame(net: &mut Net, frame: &[u8]) -> Vec<u8> {
    net.send(Side::Inside, frame).frame
}

#[test]
fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 6000);
    let r = ep(REMOTE, 7000);
    let first = net
        .send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside);
    let public = first.src_ep();
    // Choose two payload bytes so that the translated datagram sums to 0xffff, i.e. its
    // checksum is 0, which UDP must send as 0xffff (RFC 768).
    let mut f = inside(FrameBuilder::udp(a, r).payload_len(2));
    let l4 = 14 + 20;
    let mut translated = f[l4..l4 + 10].to_vec();
    translated[0..2].copy_from_slice(&public.port().to_be_bytes());
    translated[6..10].fill(0);
    let s = ones_sum(pseudo_sum(*public.ip(), REMOTE, 17, 10), &translated);
    let x = !s;
    f[l4 + 8..l4 + 10].copy_from_slice(&x.to_be_bytes());
    f[l4 + 6..l4 + 8].fill(0);
    let mut sum = internet_checksum_with_pseudo(HOST_A, REMOTE, &f[l4..l4 + 10]);
    if sum == 0 {
        sum = 0xffff;
    }
    f[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
    assert!(l4_verifies(HOST_A, REMOTE, 17, &f[l4..l4 + 10]));
    let out = net.send(Side::Inside, &f).forwarded(Side::Outside);
    assert_eq!(out.src_ep(), public);
    assert!(
        matches!(
            out.l4,
            L4::Udp {
                checksum: 0xffff,
                ..
            }
        ),
        "{:?}",
        out.l4
    );
}

fn internet_checksum_with_pseudo(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
    !ones_sum(pseudo_sum(src, dst, 17, seg.len()), seg)
}

#[test]
fn icmp_echo_translates_the_identifier_both_ways() {
    let mut net = Net::standard();
    let out = net
        .send(Side::Inside, &echo_in(HOST_A, REMOTE, 0x1234, 1))
        .forwarded(Side::Outside);
    assert!(PUBLIC_IPS.contains(&out.src));
    assert_eq!(out.dst, REMOTE);
    let L4::Echo {
        kind: 8,
        ident,
        seq: 1,
    } = out.l4
    else {
        panic!("{out:?}")
    };
    assert!((PORT_RANGE.0..=PORT_RANGE.1).contains(&ident));
    let back = net
        .send(Side::Outside, &echo_reply_out(REMOTE, out.src, ident, 1))
        .forwarded(Side::Inside);
    assert_eq!((back.src, back.dst), (REMOTE, HOST_A));
    assert_eq!(
        back.l4,
        L4::Echo {
            kind: 0,
            ident: 0x1234,
            seq: 1
        }
    );
    // The next ping reuses the identifier mapping.
    let out2 = net
        .send(Side::Inside, &echo_in(HOST_A, REMOTE, 0x1234, 2))
        .forwarded(Side::Outside);
    assert_eq!(out2.ports().0, ident);
    assert_eq!(net.counters().created(Protocol::Icmp), 1);
    // A reply with another identifier, or from another address, is unsolicited.
    let d = net.send(
        Side::Outside,
        &echo_reply_out(REMOTE, out.src, ident ^ 1, 1),
    );
    assert_eq!(d.dropped(), DropReason::Unsolicited);
    let d = net.send(
        Side::Outside,
        &echo_reply_out(Ipv4Addr::new(198, 51, 100, 8), out.src, ident, 1),
    );
    assert_eq!(d.dropped(), DropReason::Unsolicited);
    // An echo request from outside to a public address is not answered or forwarded.
    let d = net.send(
        Side::Outside,
        &outside(FrameBuilder::icmp_echo_request(REMOTE, out.src, ident, 1)),
    );
    assert_eq!(d.dropped(), DropReason::Unsolicited);
}

#[test]
fn paired_pooling_keeps_a_host_on_one_public_ip() {
    let mut net = Net::standard();
    let mut ips = Vec::new();
    for i in 0..20u16 {
        let out = net
            .send(
                Side::Inside,
                &udp_in(
                    ep(HOST_A, 2000 + i),
                    ep(Ipv4Addr::new(198, 51, 100, 20 + i as u8), 53),
                ),
            )
            .forwarded(Side::Outside);
        ips.push(out.src);
    }
    ips.dedup();
    assert_eq!(ips.len(), 1, "{ips:?}");
    assert_eq!(ips[0], net.cores[0].allocator_ref().paired_ip(HOST_A));
}

#[test]
fn gateway_and_host_macs_must_be_known_to_forward() {
    let mut net = Net::standard();
    net.cores[0].set_gateway_mac(None);
    let d = net.send(Side::Inside, &udp_in(ep(HOST_A, 1), ep(REMOTE, 53)));
    assert_eq!(
        d.verdict,
        Verdict::Punt(Punt::Resolve {
            side: Side::Outside,
            next_hop: GATEWAY_IP
        })
    );
    // The frame is translated all the same (the slow path only fills in the MAC).
    let p = check(&d.frame);
    assert!(PUBLIC_IPS.contains(&p.src));
    net.cores[0].set_gateway_mac(Some(GW_MAC));
    // A static host that never sent anything has no known MAC: resolve.
    let d = net.send(
        Side::Outside,
        &udp_out(ep(REMOTE, 53), ep(STATIC_PUBLIC, 9999)),
    );
    assert_eq!(
        d.verdict,
        Verdict::Punt(Punt::Resolve {
            side: Side::Inside,
            next_hop: STATIC_PRIVATE
        })
    );
    assert_eq!(net.counters().punted, 2);
}

#[test]
fn out2in_unsolicited_is_filtered_by_address_and_port() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let out = net
        .send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside);
    let public = out.src_ep();
    let cases = [
        // Unknown public port.
        udp_out(r, ep(*public.ip(), public.port() ^ 1)),
        // Right port, wrong remote port (address-and-port-dependent filtering).
        udp_out(ep(REMOTE, 54), public),
        // Right port, wrong remote address.
        udp_out(ep(Ipv4Addr::new(198, 51, 100, 99), 53), public),
        // Port outside the SNAT range.
        udp_out(r, ep(*public.ip(), 80)),
        // TCP to the UDP mapping.
        tcp_out(r, public, TcpFlags::SYN),
        // The other public IP.
        udp_out(r, ep(other_public(*public.ip()), public.port())),
    ];
    for f in &cases {
        let d = net.send(Side::Outside, f);
        assert_eq!(d.dropped(), DropReason::Unsolicited, "{:?}", check(f));
    }
    // Not one of our addresses at all.
    let d = net.send(
        Side::Outside,
        &udp_out(r, ep(Ipv4Addr::new(203, 0, 113, 99), 5000)),
    );
    assert_eq!(d.dropped(), DropReason::NotForUs);
    // The right reply still passes.
    net.send(Side::Outside, &udp_out(r, public))
        .forwarded(Side::Inside);
    let c = net.counters();
    assert_eq!(c.drops_of(DropReason::Unsolicited), cases.len() as u64);
    assert_eq!(c.drops_of(DropReason::NotForUs), 1);
    assert_eq!(c.sessions_created, [0, 1, 0]);
}

fn other_public(ip: Ipv4Addr) -> Ipv4Addr {
    if ip == PUBLIC_IPS[0] {
        PUBLIC_IPS[1]
    } else {
        PUBLIC_IPS[0]
    }
}

#[test]
fn smtp_is_denied_by_default_and_no_session_is_created() {
    let mut net = Net::standard();
    let d = net.send(
        Side::Inside,
        &tcp_in(ep(HOST_A, 1234), ep(REMOTE, 25), TcpFlags::SYN),
    );
    assert_eq!(d.dropped(), DropReason::PolicyDenied);
    // UDP 25 and TCP 26 are fine.
    net.send(Side::Inside, &udp_in(ep(HOST_A, 1234), ep(REMOTE, 25)))
        .forwarded(Side::Outside);
    net.send(
        Side::Inside,
        &tcp_in(ep(HOST_A, 1234), ep(REMOTE, 26), TcpFlags::SYN),
    )
    .forwarded(Side::Outside);
    // A static host is denied too.
    let d = net.send(
        Side::Inside,
        &tcp_in(ep(STATIC_PRIVATE, 1234), ep(REMOTE, 25), TcpFlags::SYN),
    );
    assert_eq!(d.dropped(), DropReason::PolicyDenied);
    let c = net.counters();
    assert_eq!(c.drops_of(DropReason::PolicyDenied), 2);
    assert_eq!(c.snat_attempts, 2);
    assert_eq!(net.sessions(), 2);
}

#[test]
fn configured_deny_rules_apply_to_new_flows() {
    let cfg = natgw_config::Config::from_toml_str(
        r#"
        [interfaces.inside]
        device = "in0"
        address = "10.0.0.1/24"
        [interfaces.outside]
        device = "out0"
        address = "203.0.113.1/24"
        gateway = "203.0.113.254"
        [nat]
        public_ips = ["203.0.113.10"]
        [[policy.deny]]
        protocol = "udp"
        destination = "198.18.0.0/15"
        port = 53
        [[policy.deny]]
        protocol = "any"
        destination = "198.51.100.128/25"
    "#,
    )
    .expect("config");
    let mut p = params(1);
    p.policy.deny = cfg.policy().deny_rules().to_vec();
    let mut net = Net::new(p, alloc_config());
    let denied = [
        udp_in(ep(HOST_A, 1), ep(Ipv4Addr::new(198, 19, 1, 1), 53)),
        tcp_in(ep(HOST_A, 1), ep(REMOTE, 25), TcpFlags::SYN),
        tcp_in(
            ep(HOST_A, 1),
            ep(Ipv4Addr::new(198, 51, 100, 200), 443),
            TcpFlags::SYN,
        ),
        echo_in(HOST_A, Ipv4Addr::new(198, 51, 100, 129), 7, 1),
    ];
    for f in &denied {
        assert_eq!(
            net.send(Side::Inside, f).dropped(),
            DropReason::PolicyDenied,
            "{:?}",
            check(f)
        );
    }
    let allowed = [
        udp_in(ep(HOST_A, 1), ep(Ipv4Addr::new(198, 20, 1, 1), 53)),
        udp_in(ep(HOST_A, 1), ep(Ipv4Addr::new(198, 19, 1, 1), 54)),
        tcp_in(
            ep(HOST_A, 1),
            ep(Ipv4Addr::new(198, 19, 1, 1), 53),
            TcpFlags::SYN,
        ),
        echo_in(HOST_A, Ipv4Addr::new(198, 51, 100, 127), 7, 1),
    ];
    for f in &allowed {
        net.send(Side::Inside, f).forwarded(Side::Outside);
    }
    assert_eq!(net.counters().drops_of(DropReason::PolicyDenied), 4);
    assert_eq!(net.sessions(), 4);
}

#[test]
fn no_nat_destinations_pass_untranslated_both_ways() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let n = ep(NO_NAT_HOST, 80);
    let out = net
        .send(Side::Inside, &tcp_in(a, n, TcpFlags::ACK))
        .forwarded(Side::Outside);
    assert_eq!((out.src_ep(), out.dst_ep()), (a, n));
    assert_eq!(out.ttl, 63);
    assert_eq!((out.src_mac, out.dst_mac), (OUTSIDE_MAC, GW_MAC));
    net.cores[0].learn_neighbor(HOST_A, host_mac(HOST_A));
    let back = net
        .send(Side::Outside, &tcp_out(n, a, TcpFlags::ACK))
        .forwarded(Side::Inside);
    assert_eq!((back.src_ep(), back.dst_ep()), (n, a));
    assert_eq!(back.dst_mac, host_mac(HOST_A));
    let c = net.counters();
    assert_eq!(c.no_nat.packets, 2);
    assert_eq!(net.sessions(), 0);
    assert_eq!(c.snat_attempts, 0);
}

#[test]
fn static_one_to_one_keeps_ports_for_any_protocol_both_ways() {
    let mut net = Net::standard();
    net.cores[0].learn_neighbor(STATIC_PRIVATE, host_mac(STATIC_PRIVATE));
    let s = ep(STATIC_PRIVATE, 4444);
    let r = ep(REMOTE, 8080);
    let out = net
        .send(Side::Inside, &tcp_in(s, r, TcpFlags::ACK))
        .forwarded(Side::Outside);
    assert_eq!((out.src_ep(), out.dst_ep()), (ep(STATIC_PUBLIC, 4444), r));
    let out = net
        .send(Side::Inside, &udp_in(s, r))
        .forwarded(Side::Outside);
    assert_eq!(out.src_ep(), ep(STATIC_PUBLIC, 4444));
    // Unsolicited inbound reaches the host: no filtering for 1:1.
    let back = net
        .send(
            Side::Outside,
            &tcp_out(
                ep(Ipv4Addr::new(192, 0, 0, 9), 999),
                ep(STATIC_PUBLIC, 22),
                TcpFlags::SYN,
            ),
        )
        .forwarded(Side::Inside);
    assert_eq!(back.dst_ep(), ep(STATIC_PRIVATE, 22));
    assert_eq!(back.dst_mac, host_mac(STATIC_PRIVATE));
    // Another protocol (GRE, 47) both ways, and an echo keeps its identifier.
    let gre = inside(FrameBuilder::raw(STATIC_PRIVATE, REMOTE, 47).payload_len(24));
    let out = net.send(Side::Inside, &gre).forwarded(Side::Outside);
    assert_eq!((out.src, out.proto), (STATIC_PUBLIC, 47));
    assert_eq!(
        &ip_of(&out_frame_raw(&mut net, &gre))[20..],
        &ip_of(&gre)[20..]
    );
    let gre_back = outside(FrameBuilder::raw(REMOTE, STATIC_PUBLIC, 47).payload_len(24));
    let back = net.send(Side::Outside, &gre_back).forwarded(Side::Inside);
    assert_eq!(
        (back.src, back.dst, back.proto),
        (REMOTE, STATIC_PRIVATE, 47)
    );
    let out = net
        .send(Side::Inside, &echo_in(STATIC_PRIVATE, REMOTE, 77, 1))
        .forwarded(Side::Outside);
    assert_eq!(out.ports().0, 77);
    // Stateless: no session, no port.
    assert_eq!(net.sessions(), 0);
    assert_eq!(net.counters().snat_attempts, 0);
}

fn out_frame_raw(net: &mut Net, frame: &[u8]) -> Vec<u8> {
    net.send(Side::Inside, frame).frame
}

#[test]
fn other_protocols_from_dynamic_hosts_are_dropped() {
    let mut net = Net::standard();
    let gre = inside(FrameBuilder::raw(HOST_A, REMOTE, 47).payload_len(24));
    assert_eq!(
        net.send(Side::Inside, &gre).dropped(),
        DropReason::UnsupportedProtocol
    );
    let ts = inside(FrameBuilder::icmp_echo_request(HOST_A, REMOTE, 1, 1));
    let mut ts = ts;
    // Turn it into a timestamp request (type 13), fixing the ICMP checksum.
    ts[34] = 13;
    ts[36] = 0;
    ts[37] = 0;
    let sum = internet_checksum(&ts[34..]);
    ts[36..38].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        net.send(Side::Inside, &ts).dropped(),
        DropReason::IcmpUnsupportedType
    );
    let foreign = inside(FrameBuilder::udp(
        ep(Ipv4Addr::new(172, 16, 0, 1), 1),
        ep(REMOTE, 53),
    ));
    assert_eq!(
        net.send(Side::Inside, &foreign).dropped(),
        DropReason::SourceNotPrivate
    );
    // Frames for the appliance itself go to the slow path.
    let ping_gw = echo_in(HOST_A, INSIDE_IP, 1, 1);
    assert_eq!(
        net.send(Side::Inside, &ping_gw).verdict,
        Verdict::Punt(Punt::Local)
    );
    let ping_out = outside(FrameBuilder::icmp_echo_request(REMOTE, OUTSIDE_IP, 1, 1));
    assert_eq!(
        net.send(Side::Outside, &ping_out).verdict,
        Verdict::Punt(Punt::Local)
    );
}

#[test]
fn hairpin_to_a_static_host_shows_the_senders_public_address() {
    let mut net = Net::standard();
    net.cores[0].learn_neighbor(STATIC_PRIVATE, host_mac(STATIC_PRIVATE));
    let a = ep(HOST_A, 5555);
    let b_pub = ep(STATIC_PUBLIC, 7000);
    let d = net.send(Side::Inside, &udp_in(a, b_pub));
    let at_b = d.forwarded(Side::Inside);
    assert_eq!(at_b.dst_ep(), ep(STATIC_PRIVATE, 7000));
    assert_eq!(at_b.dst_mac, host_mac(STATIC_PRIVATE));
    assert!(PUBLIC_IPS.contains(&at_b.src), "source {}", at_b.src);
    assert_ne!(at_b.src_ep().port(), 0);
    assert!(at_b.ttl == 63 || at_b.ttl == 62, "ttl {}", at_b.ttl);
    let a_pub = at_b.src_ep();
    // B answers A's public endpoint from its own address: A sees B's public address.
    let d = net.send(Side::Inside, &udp_in(ep(STATIC_PRIVATE, 7000), a_pub));
    let at_a = d.forwarded(Side::Inside);
    assert_eq!(at_a.src_ep(), b_pub);
    assert_eq!(at_a.dst_ep(), a);
    assert_eq!(at_a.dst_mac, host_mac(HOST_A));
    let c = net.counters();
    assert_eq!(c.hairpin.packets, 2);
    assert_eq!(c.total_drops(), 0);
}

#[test]
fn hairpin_between_two_dynamic_hosts() {
    // One port per public IP: every lease uses port 1024, so a host's public endpoint is known in
    // advance (its paired IP, port 1024), and the two hosts can open sessions towards each other.
    let mut p = params(1);
    p.statics.clear();
    let mut cfg = alloc_config();
    cfg.port_range = (1024, 1024);
    let mut net = Net::new(p, cfg);
    let alloc = net.cores[0].allocator_ref();
    // Two hosts paired with different public IPs.
    let a_ip = HOST_A;
    let b_ip = (3..250u8)
        .map(|i| Ipv4Addr::new(10, 0, 1, i))
        .find(|h| alloc.paired_ip(*h) != alloc.paired_ip(a_ip))
        .expect("a host on the other public IP");
    let a_pub = ep(alloc.paired_ip(a_ip), 1024);
    let b_pub = ep(alloc.paired_ip(b_ip), 1024);
    let a = ep(a_ip, 5000);
    let b = ep(b_ip, 6000);
    // A → B's public endpoint: A's session is created, but B never asked: filtered.
    let d = net.send(Side::Inside, &udp_in(a, b_pub));
    assert_eq!(d.dropped(), DropReason::Unsolicited);
    // B → A's public endpoint: B's session is created, and A's session lets it in.
    let at_a = net
        .send(Side::Inside, &udp_in(b, a_pub))
        .forwarded(Side::Inside);
    assert_eq!((at_a.src_ep(), at_a.dst_ep()), (b_pub, a));
    assert_eq!(at_a.dst_mac, host_mac(a_ip));
    // And now A → B's public endpoint reaches B, showing A's public endpoint.
    let at_b = net
        .send(Side::Inside, &udp_in(a, b_pub))
        .forwarded(Side::Inside);
    assert_eq!((at_b.src_ep(), at_b.dst_ep()), (a_pub, b));
    assert_eq!(at_b.dst_mac, host_mac(b_ip));
    assert_eq!(net.sessions(), 2);
}

#[test]
fn hairpin_is_one_hop_for_the_ttl() {
    let mut net = Net::standard();
    net.cores[0].learn_neighbor(STATIC_PRIVATE, host_mac(STATIC_PRIVATE));
    let f = inside(FrameBuilder::udp(ep(HOST_A, 5555), ep(STATIC_PUBLIC, 7000)).ttl(2));
    let d = net.send(Side::Inside, &f);
    let at_b = d.forwarded(Side::Inside);
    assert_eq!(at_b.dst_ep(), ep(STATIC_PRIVATE, 7000));
    assert_eq!(at_b.ttl, 1);
}

#[test]
fn hairpin_across_shards_reaches_the_owner_of_the_public_port() {
    // Two shards: B's reply to A's public endpoint is translated by B's shard, then belongs to
    // the shard that owns A's public port; it is handed over as an outside frame.
    let mut net = Net::new(params(2), alloc_config());
    for c in &mut net.cores {
        c.learn_neighbor(STATIC_PRIVATE, host_mac(STATIC_PRIVATE));
    }
    let mut crossed = 0;
    for port in 5000..5040u16 {
        let a = ep(HOST_A, port);
        let d = net.send(Side::Inside, &udp_in(a, ep(STATIC_PUBLIC, 7000)));
        let at_b = d.forwarded(Side::Inside);
        let a_pub = at_b.src_ep();
        let owner = net
            .owners
            .owner(*a_pub.ip(), Protocol::Udp, a_pub.port())
            .unwrap()
            .0;
        let reply = udp_in(ep(STATIC_PRIVATE, 7000), a_pub);
        let b_shard = natgw_dataplane::nat::flow::flow_shard(
            STATIC_PRIVATE,
            *a_pub.ip(),
            7000,
            a_pub.port(),
            17,
            2,
        );
        let (v, bytes) = net.process_on(b_shard, Side::Inside, &reply);
        let (v, bytes) = match v {
            Verdict::Handoff { shard, side } => {
                assert_eq!(shard.0, owner);
                assert_eq!(side, Side::Outside, "translated half continues as out2in");
                crossed += 1;
                net.process_on(shard.0, side, &bytes)
            }
            v => (v, bytes),
        };
        let d = Delivery {
            verdict: v,
            frame: bytes,
            shard: owner,
            handoffs: 0,
        };
        let at_a = d.forwarded(Side::Inside);
        assert_eq!((at_a.src_ep(), at_a.dst_ep()), (ep(STATIC_PUBLIC, 7000), a));
    }
    assert!(crossed > 0, "no flow crossed shards");
}

#[test]
fn reload_keeps_existing_translations() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let public = net
        .send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside)
        .src_ep();
    let mut p = params(1);
    p.public_ips.retain(|ip| ip != public.ip());
    p.statics.clear();
    net.cores[0].set_params(p);
    net.send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside);
    let back = net
        .send(Side::Outside, &udp_out(r, public))
        .forwarded(Side::Inside);
    assert_eq!(back.dst_ep(), a);
}
