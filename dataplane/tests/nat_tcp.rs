//! NAT core: TCP state tracking and every idle timer. Sessions must end after the timeout their
//! state calls for (transitory for half-open and half-closed, `tcp_idle` when established, a
//! short linger after FINs both ways or a RST, `udp_idle`, `icmp_idle`), never before, release
//! their port to the allocator (with the cool-down of the close kind), and any packet must
//! refresh the idle timer.

mod nat_common;

use nat_common::*;
use natgw_allocator::Protocol;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::{Side, TCP_CLOSED_LINGER, TCP_RESET_LINGER};
use natgw_dataplane::wire::TcpFlags;
use std::net::SocketAddrV4;
use std::time::Duration;

/// Slack for the expiry wheel (slots of about 1.07 s, checked one slot late at most).
const SLACK: Duration = Duration::from_secs(3);

fn a() -> SocketAddrV4 {
    ep(HOST_A, 40000)
}
fn r() -> SocketAddrV4 {
    ep(REMOTE, 443)
}

/// Opens a TCP flow with a SYN; returns the public endpoint.
fn syn(net: &mut Net) -> SocketAddrV4 {
    net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::SYN))
        .forwarded(Side::Outside)
        .src_ep()
}

/// SYN, SYN-ACK, ACK.
fn establish(net: &mut Net) -> SocketAddrV4 {
    let public = syn(net);
    net.send(
        Side::Outside,
        &tcp_out(r(), public, TcpFlags::SYN | TcpFlags::ACK),
    )
    .forwarded(Side::Inside);
    net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::ACK))
        .forwarded(Side::Outside);
    public
}

/// Asserts the single session is still there after `alive_for` more seconds, and gone within
/// `SLACK` after `gone_after` (both counted from now), and that its port was released.
fn expect_expiry(net: &mut Net, alive_for: Duration, gone_after: Duration) {
    assert_eq!(net.sessions(), 1);
    net.advance(alive_for);
    assert_eq!(net.sessions(), 1, "expired before {alive_for:?}");
    assert_eq!(net.live_leases(), 1);
    net.advance(gone_after - alive_for + SLACK);
    assert_eq!(
        net.sessions(),
        0,
        "still alive {:?} after",
        gone_after + SLACK
    );
    assert_eq!(net.live_leases(), 0, "port not released");
}

#[test]
fn non_syn_first_packet_is_dropped_without_a_session() {
    let mut net = Net::standard();
    for flags in [
        TcpFlags::ACK,
        TcpFlags::SYN | TcpFlags::ACK,
        TcpFlags::RST,
        TcpFlags::FIN | TcpFlags::ACK,
        TcpFlags::SYN | TcpFlags::RST,
        TcpFlags::PSH | TcpFlags::ACK,
    ] {
        let d = net.send(Side::Inside, &tcp_in(a(), r(), flags));
        assert_eq!(d.dropped(), DropReason::TcpNonSyn, "{flags:?}");
    }
    let c = net.counters();
    assert_eq!(c.drops_of(DropReason::TcpNonSyn), 6);
    assert_eq!((c.snat_attempts, c.created(Protocol::Tcp)), (0, 0));
    assert_eq!(net.sessions(), 0);
    assert_eq!(net.live_leases(), 0);
}

#[test]
fn half_open_expires_after_the_transitory_timeout() {
    let mut net = Net::standard();
    syn(&mut net);
    expect_expiry(&mut net, Duration::from_secs(29), Duration::from_secs(30));
    let c = net.counters();
    assert_eq!(c.sessions_expired[Protocol::Tcp as usize], 1);
    // Half-open close kind: cool-down (30 s by default) applies to the port pair.
    assert_eq!(net.cooling(), 1);
    net.advance(Duration::from_secs(31));
    assert_eq!(net.cooling(), 0);
}

#[test]
fn established_expires_after_tcp_idle_and_packets_refresh_it() {
    let mut net = Net::standard();
    let public = establish(&mut net);
    // Keep-alives every 200 s in either direction keep it for 1000 s (tcp_idle is 300 s).
    for i in 0..5 {
        net.advance(Duration::from_secs(200));
        assert_eq!(net.sessions(), 1, "expired despite traffic at round {i}");
        if i % 2 == 0 {
            net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::ACK))
                .forwarded(Side::Outside);
        } else {
            let back = net
                .send(Side::Outside, &tcp_out(r(), public, TcpFlags::ACK))
                .forwarded(Side::Inside);
            assert_eq!(back.dst_ep(), a());
        }
    }
    expect_expiry(&mut net, Duration::from_secs(299), Duration::from_secs(300));
    assert_eq!(net.counters().sessions_expired[Protocol::Tcp as usize], 1);
    // Idle expiry of an established flow: RST cool-down (16 s).
    assert_eq!(net.cooling(), 1);
    // Traffic after expiry is no longer translated.
    let d = net.send(Side::Outside, &tcp_out(r(), public, TcpFlags::ACK));
    assert_eq!(d.dropped(), DropReason::Unsolicited);
    let d = net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::ACK));
    assert_eq!(d.dropped(), DropReason::TcpNonSyn);
}

#[test]
fn fin_both_ways_lingers_briefly_then_releases_with_fin_cooldown() {
    let mut net = Net::standard();
    let public = establish(&mut net);
    net.send(
        Side::Inside,
        &tcp_in(a(), r(), TcpFlags::FIN | TcpFlags::ACK),
    )
    .forwarded(Side::Outside);
    // Half-closed: transitory timeout now applies, not tcp_idle.
    net.advance(Duration::from_secs(10));
    assert_eq!(net.sessions(), 1);
    net.send(
        Side::Outside,
        &tcp_out(r(), public, TcpFlags::FIN | TcpFlags::ACK),
    )
    .forwarded(Side::Inside);
    // The last ACK still passes during the linger.
    net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::ACK))
        .forwarded(Side::Outside);
    assert!(TCP_CLOSED_LINGER < Duration::from_secs(10));
    expect_expiry(&mut net, Duration::ZERO, TCP_CLOSED_LINGER);
    assert_eq!(net.cooling(), 1, "FIN cool-down");
    net.advance(Duration::from_secs(60));
    assert_eq!(net.cooling(), 1, "FIN cool-down is 65 s");
    net.advance(Duration::from_secs(10));
    assert_eq!(net.cooling(), 0);
}

#[test]
fn half_closed_by_the_server_uses_the_transitory_timeout() {
    let mut net = Net::standard();
    let public = establish(&mut net);
    net.send(
        Side::Outside,
        &tcp_out(r(), public, TcpFlags::FIN | TcpFlags::ACK),
    )
    .forwarded(Side::Inside);
    expect_expiry(&mut net, Duration::from_secs(29), Duration::from_secs(30));
}

#[test]
fn half_closed_by_the_client_uses_the_transitory_timeout() {
    let mut net = Net::standard();
    establish(&mut net);
    net.send(
        Side::Inside,
        &tcp_in(a(), r(), TcpFlags::FIN | TcpFlags::ACK),
    )
    .forwarded(Side::Outside);
    expect_expiry(&mut net, Duration::from_secs(29), Duration::from_secs(30));
}

#[test]
fn rst_from_either_side_ends_the_session_quickly() {
    for from_inside in [true, false] {
        let mut net = Net::standard();
        let public = establish(&mut net);
        if from_inside {
            net.send(Side::Inside, &tcp_in(a(), r(), TcpFlags::RST))
                .forwarded(Side::Outside);
        } else {
            net.send(Side::Outside, &tcp_out(r(), public, TcpFlags::RST))
                .forwarded(Side::Inside);
        }
        expect_expiry(&mut net, Duration::ZERO, TCP_RESET_LINGER);
        assert_eq!(net.cooling(), 1);
        net.advance(Duration::from_secs(17));
        assert_eq!(net.cooling(), 0, "RST cool-down is 16 s");
    }
}

#[test]
fn rst_to_a_half_open_flow_ends_it() {
    let mut net = Net::standard();
    let public = syn(&mut net);
    net.send(
        Side::Outside,
        &tcp_out(r(), public, TcpFlags::RST | TcpFlags::ACK),
    )
    .forwarded(Side::Inside);
    expect_expiry(&mut net, Duration::ZERO, TCP_RESET_LINGER);
}

#[test]
fn a_new_syn_after_close_reopens_the_flow() {
    let mut net = Net::new(params(1), alloc_config_no_cooldown());
    let public = establish(&mut net);
    net.send(Side::Outside, &tcp_out(r(), public, TcpFlags::RST))
        .forwarded(Side::Inside);
    // A fresh SYN on the same 4-tuple during the linger reuses the session for a new connection:
    // it is half-open again, so the transitory timeout applies, not the short linger.
    let again = syn(&mut net);
    assert_eq!(again, public);
    expect_expiry(&mut net, Duration::from_secs(29), Duration::from_secs(30));
}

#[test]
fn udp_expires_after_udp_idle_and_traffic_refreshes_it() {
    let mut net = Net::standard();
    let a = ep(HOST_A, 5000);
    let r = ep(REMOTE, 53);
    let public = net
        .send(Side::Inside, &udp_in(a, r))
        .forwarded(Side::Outside)
        .src_ep();
    net.advance(Duration::from_secs(100));
    // An inbound packet refreshes too.
    net.send(Side::Outside, &udp_out(r, public))
        .forwarded(Side::Inside);
    net.advance(Duration::from_secs(100));
    assert_eq!(net.sessions(), 1);
    expect_expiry(&mut net, Duration::from_secs(19), Duration::from_secs(20));
    let c = net.counters();
    assert_eq!(c.sessions_expired[Protocol::Udp as usize], 1);
    assert_eq!(net.cooling(), 1, "UDP cool-down");
}

#[test]
fn icmp_expires_after_icmp_idle() {
    let mut net = Net::standard();
    net.send(Side::Inside, &echo_in(HOST_A, REMOTE, 9, 1))
        .forwarded(Side::Outside);
    net.advance(Duration::from_secs(50));
    net.send(Side::Inside, &echo_in(HOST_A, REMOTE, 9, 2))
        .forwarded(Side::Outside);
    expect_expiry(&mut net, Duration::from_secs(59), Duration::from_secs(60));
    assert_eq!(net.counters().sessions_expired[Protocol::Icmp as usize], 1);
}

#[test]
fn many_sessions_expire_in_bounded_slices_but_all_expire() {
    let mut net = Net::new(params(1), alloc_config_no_cooldown());
    for i in 0..2000u16 {
        net.send(Side::Inside, &udp_in(ep(HOST_A, 1024 + i), ep(REMOTE, 53)))
            .forwarded(Side::Outside);
    }
    assert_eq!(net.sessions(), 2000);
    // One timer call after a long silence does a bounded amount of work...
    net.now = net.now.saturating_add(Duration::from_secs(500));
    net.tick();
    let left = net.sessions();
    assert!(left > 0 && left < 2000, "{left} left");
    // ...and repeated calls finish the job.
    for _ in 0..20 {
        net.tick();
    }
    assert_eq!(net.sessions(), 0);
    assert_eq!(net.live_leases(), 0);
    assert_eq!(
        net.counters().sessions_expired[Protocol::Udp as usize],
        2000
    );
}

#[test]
fn clear_ends_every_session_and_releases_every_port() {
    let mut net = Net::standard();
    establish(&mut net);
    net.send(Side::Inside, &udp_in(ep(HOST_A, 1), ep(REMOTE, 53)))
        .forwarded(Side::Outside);
    let now = net.now;
    assert_eq!(net.cores[0].clear(now), 2);
    assert_eq!(net.sessions(), 0);
    assert_eq!(net.live_leases(), 0);
}
