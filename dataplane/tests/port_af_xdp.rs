//! AF_XDP backend on a veth pair between two network namespaces the test creates; the peer
//! side uses the AF_PACKET backend.
//!
//! Needs root and `ip netns`; prints "SKIPPED: <reason>" where it cannot run.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{frame_seq, skip, udp_frame, VethPair, MAC_A, MAC_B};
use natgw_dataplane::port::{self, Burst, Driver, MacAddr, Port, PortConfig, RxQueue, XdpMode};

fn open_in(ns: &common::Netns, cfg: PortConfig, queues: usize) -> Port {
    ns.enter(move || port::open(&cfg, queues))
        .expect("enter namespace")
        .expect("open port")
}

fn collect(rxs: &mut [Box<dyn RxQueue>], src: [u8; 6], want: usize) -> Vec<Vec<u32>> {
    let mut per_queue = vec![Vec::new(); rxs.len()];
    let mut burst = Burst::new(32);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut total = 0;
    while total < want && Instant::now() < deadline {
        let mut idle = true;
        for (q, rx) in rxs.iter_mut().enumerate() {
            burst.clear();
            if rx.rx_burst(&mut burst) > 0 {
                idle = false;
            }
            for f in burst.frames() {
                if let Some(seq) = frame_seq(f.data(), src) {
                    per_queue[q].push(seq);
                    total += 1;
                }
            }
        }
        if idle {
            let _ = rxs[0].wait(Duration::from_millis(2));
        }
    }
    per_queue
}

fn check_all_once(per_queue: &[Vec<u32>], n: u32) {
    let mut seen = HashSet::new();
    for q in per_queue {
        for &s in q {
            assert!(seen.insert(s), "frame {s} received twice");
        }
    }
    let missing: Vec<u32> = (0..n).filter(|s| !seen.contains(s)).take(10).collect();
    assert!(missing.is_empty(), "frames missing, first: {missing:?}");
}

/// Sends `n` frames over `tx_queues` (round robin per burst), receiving on `rx` in between.
fn send_recv(tx: &mut Port, rx: &mut Port, dst: [u8; 6], src: [u8; 6], n: u32) -> Vec<Vec<u32>> {
    let mut burst = Burst::new(32);
    let mut sent = 0;
    let mut got: Vec<Vec<u32>> = vec![Vec::new(); rx.rx.len()];
    for seq in 0..n {
        let len = 60 + (seq as usize * 37) % (1514 - 60 + 1);
        assert!(burst.push_copy(&udp_frame(dst, src, (seq % 64) as u16, seq, len)));
        if burst.is_full() || seq + 1 == n {
            let q = (seq / 32) as usize % tx.tx.len();
            sent += tx.tx[q].tx_burst(&mut burst);
            tx.tx[q].flush();
            // Drain as we go so no ring overflows.
            let part = collect_quick(&mut rx.rx, src);
            for (all, p) in got.iter_mut().zip(part) {
                all.extend(p);
            }
        }
    }
    for t in tx.tx.iter_mut() {
        t.flush();
    }
    assert_eq!(sent, n as usize);
    let have: usize = got.iter().map(Vec::len).sum();
    let rest = collect(&mut rx.rx, src, n as usize - have);
    for (all, p) in got.iter_mut().zip(rest) {
        all.extend(p);
    }
    got
}

fn collect_quick(rxs: &mut [Box<dyn RxQueue>], src: [u8; 6]) -> Vec<Vec<u32>> {
    let mut per_queue = vec![Vec::new(); rxs.len()];
    let mut burst = Burst::new(64);
    for (q, rx) in rxs.iter_mut().enumerate() {
        loop {
            burst.clear();
            if rx.rx_burst(&mut burst) == 0 {
                break;
            }
            for f in burst.frames() {
                if let Some(seq) = frame_seq(f.data(), src) {
                    per_queue[q].push(seq);
                }
            }
        }
    }
    per_queue
}

fn both_directions(test: &str, mode: XdpMode) {
    let Some(topo) = VethPair::new(1).map_err(|e| skip(test, &e)).ok() else {
        return;
    };
    let mut pa = open_in(&topo.a, PortConfig::new(Driver::AfPacket, &topo.dev_a), 1);
    let mut cfg = PortConfig::new(Driver::AfXdp, &topo.dev_b);
    cfg.xdp_mode = mode;
    cfg.ring_frames = 1024;
    let mut pb = open_in(&topo.b, cfg, 1);
    assert_eq!(pb.info.mac, MacAddr(MAC_B));
    let want_mode = match mode {
        XdpMode::Generic => "generic",
        _ => "native",
    };
    assert!(pb.info.mode.contains(want_mode), "{}", pb.info.mode);

    const N: u32 = 3000;
    let got = send_recv(&mut pa, &mut pb, MAC_B, MAC_A, N);
    check_all_once(&got, N);
    let got = send_recv(&mut pb, &mut pa, MAC_A, MAC_B, N);
    check_all_once(&got, N);
    let sb = pb.stats.total();
    assert!(sb.rx_packets >= u64::from(N), "{sb:?}");
    assert_eq!(sb.tx_packets, u64::from(N), "{sb:?}");
    assert_eq!(sb.tx_dropped, 0);
}

#[test]
fn af_xdp_generic_both_directions() {
    both_directions("af_xdp_generic_both_directions", XdpMode::Generic);
}

#[test]
fn af_xdp_native_both_directions() {
    both_directions("af_xdp_native_both_directions", XdpMode::Auto);
}

/// A Linux host in namespace A sends UDP datagrams from 64 sockets (so its transmit queue
/// choice, and with it the veth RX queue on B, varies by flow) to B's AF_XDP port with 2 queues.
#[test]
fn af_xdp_two_queues_share_all_frames() {
    let test = "af_xdp_two_queues_share_all_frames";
    let Some(topo) = VethPair::new(2).map_err(|e| skip(test, &e)).ok() else {
        return;
    };
    for cmd in [
        vec!["ip", "addr", "add", "198.18.0.1/24", "dev", "vta"],
        vec![
            "ip",
            "neigh",
            "add",
            "198.18.0.2",
            "lladdr",
            "02:00:00:00:0b:01",
            "dev",
            "vta",
        ],
    ] {
        if let Err(e) = common::run_in(&topo.a.name, &cmd) {
            skip(test, &e);
            return;
        }
    }
    let mut pb = open_in(&topo.b, PortConfig::new(Driver::AfXdp, &topo.dev_b), 2);
    const FLOWS: u32 = 64;
    const N: u32 = 4096;
    let sender = topo
        .a
        .spawn(|| {
            let socks: Vec<std::net::UdpSocket> = (0..FLOWS)
                .map(|_| std::net::UdpSocket::bind("198.18.0.1:0").expect("bind"))
                .collect();
            for seq in 0..N {
                let mut payload = [0u8; 32];
                payload[..4].copy_from_slice(&seq.to_be_bytes());
                socks[(seq % FLOWS) as usize]
                    .send_to(&payload, "198.18.0.2:9")
                    .expect("send");
                if seq % 32 == 31 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        })
        .expect("spawn sender");
    let got = collect(&mut pb.rx, MAC_A, N as usize);
    sender.join().expect("sender thread").expect("namespace");
    check_all_once(&got, N);
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "64 flows over a 2-queue veth must reach both sockets: {} / {}",
        got[0].len(),
        got[1].len()
    );
}

#[test]
fn af_xdp_more_queues_than_device_is_an_error() {
    let test = "af_xdp_more_queues_than_device_is_an_error";
    let Some(topo) = VethPair::new(1).map_err(|e| skip(test, &e)).ok() else {
        return;
    };
    let cfg = PortConfig::new(Driver::AfXdp, &topo.dev_b);
    let r = topo
        .b
        .enter(move || port::open(&cfg, 2).map(|p| p.info))
        .expect("enter");
    assert!(
        r.is_err(),
        "queue 1 does not exist on a 1-queue veth: {r:?}"
    );
}
