//! AF_PACKET backend on a veth pair between two network namespaces the test creates.
//!
//! Needs root and `ip netns`; prints "SKIPPED: <reason>" where it cannot run.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{frame_seq, skip, udp_frame, VethPair, MAC_A, MAC_B};
use natgw_dataplane::port::{
    self, Burst, Driver, FanoutMode, MacAddr, Port, PortConfig, RxFlags, RxQueue, TxQueue,
};

const FOREIGN_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x99, 0x99];

fn topo_or_skip(test: &str, queues: u32) -> Option<VethPair> {
    match VethPair::new(queues) {
        Ok(t) => Some(t),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

fn open_in(ns: &common::Netns, cfg: PortConfig, queues: usize) -> Port {
    ns.enter(move || port::open(&cfg, queues))
        .expect("enter namespace")
        .expect("open port")
}

/// Receives on all `rxs` until `want` frames from `src` arrived or `timeout` passed; returns the
/// sequence numbers seen per queue (other frames are ignored).
fn collect_for(
    rxs: &mut [Box<dyn RxQueue>],
    src: [u8; 6],
    want: usize,
    timeout: Duration,
) -> Vec<Vec<u32>> {
    let mut per_queue = vec![Vec::new(); rxs.len()];
    let mut burst = Burst::new(32);
    let deadline = Instant::now() + timeout;
    let mut total = 0;
    while total < want && Instant::now() < deadline {
        let mut idle = true;
        for (q, rx) in rxs.iter_mut().enumerate() {
            burst.clear();
            if rx.rx_burst(&mut burst) > 0 {
                idle = false;
            }
            for f in burst.frames() {
                assert!(!f.rx_flags().contains(RxFlags::CSUM_NOT_READY));
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

/// Sends `n` frames (64 flows, sizes 60..=1514) from `src` to `dst` in bursts of 32, draining
/// `drain` after each burst so no kernel backlog overflows.
fn send(
    tx: &mut dyn TxQueue,
    dst: [u8; 6],
    src: [u8; 6],
    n: u32,
    mut drain: impl FnMut(),
) -> usize {
    let mut burst = Burst::new(32);
    let mut sent = 0;
    for seq in 0..n {
        let len = 60 + (seq as usize * 37) % (1514 - 60 + 1);
        assert!(burst.push_copy(&udp_frame(dst, src, (seq % 64) as u16, seq, len)));
        if burst.is_full() || seq + 1 == n {
            sent += tx.tx_burst(&mut burst);
            assert!(burst.is_empty(), "tx_burst empties the burst");
            drain();
        }
    }
    tx.flush();
    sent
}

fn collect(rxs: &mut [Box<dyn RxQueue>], src: [u8; 6], want: usize) -> Vec<Vec<u32>> {
    collect_for(rxs, src, want, Duration::from_secs(5))
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

#[test]
fn veth_both_directions_one_queue() {
    let test = "veth_both_directions_one_queue";
    let Some(topo) = topo_or_skip(test, 1) else {
        return;
    };
    let mut pa = open_in(&topo.a, PortConfig::new(Driver::AfPacket, &topo.dev_a), 1);
    let mut pb = open_in(&topo.b, PortConfig::new(Driver::AfPacket, &topo.dev_b), 1);
    assert_eq!(pa.info.mac, MacAddr(MAC_A));
    assert_eq!(pb.info.mac, MacAddr(MAC_B));
    assert_eq!(pa.info.mtu, 1500);
    assert!(pa.info.ifindex > 0);

    const N: u32 = 3000;
    // A -> B, to a MAC that is not B's: promiscuous mode must deliver it.
    let sent = send(pa.tx[0].as_mut(), FOREIGN_MAC, MAC_A, N, || {});
    assert_eq!(sent, N as usize);
    let got = collect(&mut pb.rx, MAC_A, N as usize);
    check_all_once(&got, N);
    // A's own socket never sees what A sent (PACKET_OUTGOING skipped).
    let echo = collect_for(&mut pa.rx, MAC_A, 1, Duration::from_millis(300));
    assert!(
        echo[0].is_empty(),
        "own frames came back: {}",
        echo[0].len()
    );

    // B -> A, to A's MAC.
    let sent = send(pb.tx[0].as_mut(), MAC_A, MAC_B, N, || {});
    assert_eq!(sent, N as usize);
    let got = collect(&mut pa.rx, MAC_B, N as usize);
    check_all_once(&got, N);

    let sa = pa.stats.total();
    let sb = pb.stats.total();
    assert_eq!(sa.tx_packets, u64::from(N));
    assert_eq!(sb.tx_packets, u64::from(N));
    assert_eq!(sa.tx_dropped, 0);
    assert!(sb.rx_packets >= u64::from(N), "{sb:?}");
    assert!(sa.rx_packets >= u64::from(N), "{sa:?}");
    assert_eq!(sb.rx_truncated, 0);
    assert_eq!(sb.rx_csum_not_ready, 0);
    assert!(sb.rx_bytes >= u64::from(N) * 60);
}

#[test]
fn veth_fanout_two_queues_share_all_frames() {
    let test = "veth_fanout_two_queues_share_all_frames";
    let Some(topo) = topo_or_skip(test, 1) else {
        return;
    };
    let mut pa = open_in(&topo.a, PortConfig::new(Driver::AfPacket, &topo.dev_a), 2);
    let mut cfg_b = PortConfig::new(Driver::AfPacket, &topo.dev_b);
    cfg_b.fanout = FanoutMode::Hash;
    let mut pb = open_in(&topo.b, cfg_b, 2);
    assert!(pb.info.mode.contains("fanout"), "{}", pb.info.mode);

    const N: u32 = 4000;
    // Both TX queues of A send (half each); both RX queues of B share the frames.
    let mut burst = Burst::new(32);
    let mut sent = 0;
    for seq in 0..N {
        assert!(burst.push_copy(&udp_frame(MAC_B, MAC_A, (seq % 64) as u16, seq, 60)));
        if burst.is_full() || seq + 1 == N {
            let q = (seq / 32 % 2) as usize;
            sent += pa.tx[q].tx_burst(&mut burst);
        }
    }
    assert_eq!(sent, N as usize);
    let got = collect(&mut pb.rx, MAC_A, N as usize);
    check_all_once(&got, N);
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "hash fanout over 64 flows must use both queues: {} / {}",
        got[0].len(),
        got[1].len()
    );
    let per_q = pb.stats.per_queue();
    assert_eq!(per_q.len(), 2);
    assert!(per_q[0].rx_packets >= got[0].len() as u64);
    assert!(per_q[1].rx_packets >= got[1].len() as u64);
    // A flow stays on one queue.
    for q in 0..2 {
        let flows: HashSet<u32> = got[q].iter().map(|s| s % 64).collect();
        let other: HashSet<u32> = got[1 - q].iter().map(|s| s % 64).collect();
        assert!(flows.is_disjoint(&other), "a flow was split between queues");
    }
}

#[test]
fn veth_unfinished_checksums_are_counted_not_dropped() {
    let test = "veth_unfinished_checksums_are_counted_not_dropped";
    let Some(topo) = topo_or_skip(test, 1) else {
        return;
    };
    // The A side is a Linux host with checksum offload on: its UDP frames leave the veth with an
    // unfinished L4 checksum.
    let setup = [
        vec!["ethtool", "-K", "vta", "tx", "on"],
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
    ];
    for cmd in setup {
        if let Err(e) = common::run_in(&topo.a.name, &cmd) {
            skip(test, &e);
            return;
        }
    }
    let mut pb = open_in(&topo.b, PortConfig::new(Driver::AfPacket, &topo.dev_b), 1);
    topo.a
        .enter(|| {
            let s = std::net::UdpSocket::bind("198.18.0.1:0").expect("bind");
            for _ in 0..10 {
                s.send_to(&[0u8; 100], "198.18.0.2:9").expect("send");
            }
        })
        .expect("enter");
    let mut burst = Burst::new(32);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut flagged = 0;
    while flagged < 10 && Instant::now() < deadline {
        burst.clear();
        pb.rx[0].rx_burst(&mut burst);
        flagged += burst
            .frames()
            .iter()
            .filter(|f| f.rx_flags().contains(RxFlags::CSUM_NOT_READY) && f.len() == 142)
            .count();
        if burst.is_empty() {
            let _ = pb.rx[0].wait(Duration::from_millis(2));
        }
    }
    assert_eq!(
        flagged, 10,
        "frames with unfinished checksums are delivered and flagged"
    );
    assert!(pb.stats.total().rx_csum_not_ready >= 10);
}

/// A lone frame must reach `rx_burst` at once, not when a ring block is retired by a timer
/// (TPACKET_V3 held every frame up to its ~1 ms block timeout under light load).
#[test]
fn veth_lone_frames_arrive_without_timer_delay() {
    let test = "veth_lone_frames_arrive_without_timer_delay";
    let Some(topo) = topo_or_skip(test, 1) else {
        return;
    };
    let mut pa = open_in(&topo.a, PortConfig::new(Driver::AfPacket, &topo.dev_a), 1);
    let mut pb = open_in(&topo.b, PortConfig::new(Driver::AfPacket, &topo.dev_b), 1);
    const N: u32 = 21;
    let mut latencies = Vec::with_capacity(N as usize);
    let mut tx = Burst::new(1);
    let mut rx = Burst::new(32);
    for seq in 0..N {
        // Light load: the ring is idle when each frame arrives.
        std::thread::sleep(Duration::from_millis(3));
        assert!(tx.push_copy(&udp_frame(MAC_B, MAC_A, 1, seq, 60)));
        let start = Instant::now();
        assert_eq!(pa.tx[0].tx_burst(&mut tx), 1);
        let deadline = start + Duration::from_millis(100);
        let mut seen = false;
        while !seen && Instant::now() < deadline {
            rx.clear();
            pb.rx[0].rx_burst(&mut rx);
            seen = rx
                .frames()
                .iter()
                .any(|f| frame_seq(f.data(), MAC_A) == Some(seq));
        }
        assert!(seen, "frame {seq} not received within 100 ms");
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "{test}: median {median:?}, max {:?}",
        latencies[latencies.len() - 1]
    );
    assert!(
        median < Duration::from_micros(400),
        "median send-to-receive latency {median:?}: frames wait for a timer"
    );
}

/// Reads a veth's kernel RX packet counter inside `ns`.
fn sink_rx_packets(ns: &str, dev: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/rx_packets"))
        .output()
        .expect("read counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Blasts 64-byte frames (64 flows) from `tx` for `secs` seconds on a new thread.
fn spawn_generator(mut tx: Box<dyn TxQueue>, secs: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let frames: Vec<Vec<u8>> = (0..64u16)
            .map(|flow| udp_frame(MAC_B, MAC_A, flow, u32::from(flow), 60))
            .collect();
        let mut burst = Burst::new(32);
        let end = Instant::now() + Duration::from_secs(secs);
        let mut sent = 0u64;
        let mut i = 0usize;
        while Instant::now() < end {
            while !burst.is_full() {
                burst.push_copy(&frames[i % 64]);
                i += 1;
            }
            sent += tx.tx_burst(&mut burst) as u64;
        }
        sent
    })
}

/// Rough AF_PACKET forwarding rate: generator namespace -> forwarder (this backend, RX on one
/// veth, TX on another, one queue, one thread) -> sink namespace, counted at the sink's veth;
/// then the Linux kernel's own forwarding on the same topology with the same generator.
/// Run with `cargo test --release -p natgw-dataplane --test port_af_packet -- --ignored
/// --nocapture`.
#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn bench_forward_rate() {
    const SECS: u64 = 5;
    let test = "bench_forward_rate";
    let (topo, sink) = match (VethPair::new(1), common::Netns::new()) {
        (Ok(g), Ok(s)) => (g, s),
        (Err(e), _) | (_, Err(e)) => {
            skip(test, &e);
            return;
        }
    };
    // Second veth: forwarder namespace (B) "vfo" <-> sink namespace "vsk".
    common::run_in(
        &topo.b.name,
        &[
            "ip",
            "link",
            "add",
            "vfo",
            "type",
            "veth",
            "peer",
            "name",
            "vsk",
            "address",
            "02:00:00:00:0c:01",
            "netns",
            &sink.name,
        ],
    )
    .expect("second veth");
    common::prepare_dev(&topo.b.name, "vfo").expect("vfo");
    common::prepare_dev(&sink.name, "vsk").expect("vsk");

    // 1. Our forwarder, with each kernel-socket backend.
    for driver in [Driver::AfPacket, Driver::AfXdp] {
        let gen = open_in(&topo.a, PortConfig::new(Driver::AfPacket, "vta"), 1);
        let mut fin = open_in(&topo.b, PortConfig::new(driver, "vtb"), 1);
        let mut fout = open_in(&topo.b, PortConfig::new(driver, "vfo"), 1);
        let before = sink_rx_packets(&sink.name, "vsk");
        let tx_gen = gen.tx.into_iter().next().expect("gen tx");
        let handle = spawn_generator(tx_gen, SECS);
        let start = Instant::now();
        let mut burst = Burst::new(32);
        while start.elapsed() < Duration::from_secs(SECS + 1) {
            if fin.rx[0].rx_burst(&mut burst) == 0 {
                continue;
            }
            fout.tx[0].tx_burst(&mut burst);
        }
        let generated = handle.join().expect("generator");
        let _ = fin.rx[0].wait(Duration::ZERO);
        let forwarded = sink_rx_packets(&sink.name, "vsk") - before;
        let fs = fin.stats.total();
        let os = fout.stats.total();
        eprintln!(
            "{:<40} generated {:.0} pps, received {:.0} pps, forwarded {:.0} pps \
             (rx ring drops {}, tx drops {})",
            fin.info.mode,
            generated as f64 / SECS as f64,
            fs.rx_packets as f64 / SECS as f64,
            forwarded as f64 / SECS as f64,
            fs.rx_dropped,
            os.tx_dropped
        );
        assert!(forwarded > 0);
    }

    // 2. Linux forwarding on the same topology, same generator.
    for cmd in [
        vec!["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        vec!["ip", "addr", "add", "198.18.0.254/24", "dev", "vtb"],
        vec!["ip", "addr", "add", "198.18.1.254/24", "dev", "vfo"],
        vec![
            "ip",
            "neigh",
            "add",
            "198.18.1.1",
            "lladdr",
            "02:00:00:00:0c:01",
            "dev",
            "vfo",
        ],
    ] {
        common::run_in(&topo.b.name, &cmd).expect("kernel forwarding set-up");
    }
    let gen = open_in(&topo.a, PortConfig::new(Driver::AfPacket, "vta"), 1);
    let before = sink_rx_packets(&sink.name, "vsk");
    let generated = spawn_generator(gen.tx.into_iter().next().expect("tx"), SECS)
        .join()
        .expect("generator");
    std::thread::sleep(Duration::from_millis(200));
    let forwarded = sink_rx_packets(&sink.name, "vsk") - before;
    eprintln!(
        "{:<40} generated {:.0} pps, forwarded {:.0} pps",
        "linux ip forwarding (same generator)",
        generated as f64 / SECS as f64,
        forwarded as f64 / SECS as f64
    );
    assert!(forwarded > 0);
}
