//! DPDK backend over DPDK's virtual devices (`--features dpdk`).
//!
//! The EAL starts once per process, so every case runs in one test function, in order:
//! refusals before the EAL, `net_ring` loopback (EAL-probed, two queues, exact bytes, no mbuf
//! leak), a hot-plugged `net_ring` (reopen after close, double open refused), `net_null` to
//! `net_null` forwarding (a rough pps figure), `net_af_packet` on a veth pair in network
//! namespaces this test creates (both directions, two queues), and finally `rte_eal_cleanup`.
//! EAL flags: `--no-huge --no-pci -m 256 --no-shconf` (no hugepages here). Prints
//! "SKIPPED: <reason>" where DPDK or namespaces cannot be used.

mod common;

#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_backend() {
    common::skip(
        "dpdk_backend",
        "built without the `dpdk` feature \
         (cargo test -p natgw-dataplane --features dpdk --test port_dpdk)",
    );
}

#[cfg(feature = "dpdk")]
mod with_dpdk {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::common::{frame_seq, skip, udp_frame, VethPair, MAC_A, MAC_B};
    use natgw_dataplane::port::dpdk::{self, DpdkError, DpdkOptions, MbufPool};
    use natgw_dataplane::port::{
        self, Burst, Driver, MacAddr, PortConfig, PortError, RxQueue, TxQueue,
    };

    const TEST: &str = "dpdk_backend";

    fn eal_args() -> Vec<String> {
        [
            "--no-huge",
            "--no-pci",
            "-m",
            "256",
            "--no-shconf",
            "--no-telemetry",
            "-l",
            "0",
            "--log-level=lib.eal:warning",
            "--vdev=net_ring0",
            "--vdev=net_null0",
            "--vdev=net_null1",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--file-prefix=natgw-t-{}", std::process::id())])
        .collect()
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Sends `n` frames (sizes 60..=1514, 64 flows) on `tx` in bursts of 32, calling `drain`
    /// after each burst. Returns how many the queue accepted.
    fn send(
        tx: &mut dyn TxQueue,
        dst: [u8; 6],
        src: [u8; 6],
        seqs: std::ops::Range<u32>,
        mut drain: impl FnMut(),
    ) -> usize {
        let mut burst = Burst::new(32);
        let mut sent = 0;
        let last = seqs.end;
        for seq in seqs {
            let len = 60 + (seq as usize * 37) % (1514 - 60 + 1);
            assert!(burst.push_copy(&udp_frame(dst, src, (seq % 64) as u16, seq, len)));
            if burst.is_full() || seq + 1 == last {
                sent += tx.tx_burst(&mut burst);
                assert!(burst.is_empty(), "tx_burst empties the burst");
                drain();
            }
        }
        tx.flush();
        sent
    }

    /// Receives on every queue until `want` frames from `src` arrived or `timeout` passed;
    /// returns the sequence numbers per queue. Checks each frame's bytes against `udp_frame`.
    fn collect(
        rxs: &mut [Box<dyn RxQueue>],
        dst: [u8; 6],
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
                    if let Some(seq) = frame_seq(f.data(), src) {
                        let len = 60 + (seq as usize * 37) % (1514 - 60 + 1);
                        let expect = udp_frame(dst, src, (seq % 64) as u16, seq, len);
                        assert_eq!(f.data(), &expect[..], "frame {seq} changed on the way");
                        per_queue[q].push(seq);
                        total += 1;
                    }
                }
            }
            if idle {
                let _ = rxs[0].wait(Duration::from_millis(1));
            }
        }
        per_queue
    }

    fn check_all_once(per_queue: &[Vec<u32>], seqs: std::ops::Range<u32>) {
        let mut seen = HashSet::new();
        for q in per_queue {
            for &s in q {
                assert!(seen.insert(s), "frame {s} received twice");
            }
        }
        let missing: Vec<u32> = seqs.filter(|s| !seen.contains(s)).take(10).collect();
        assert!(missing.is_empty(), "frames missing, first: {missing:?}");
    }

    #[test]
    fn dpdk_backend() {
        before_the_eal();
        if let Err(e) = dpdk::init_eal(&eal_args()) {
            assert!(!is_root(), "rte_eal_init failed although we are root: {e}");
            skip(TEST, &format!("DPDK EAL unusable here: {e}"));
            return;
        }
        assert!(dpdk::eal_ready());
        // A second start is a no-op (DPDK cannot start twice).
        dpdk::init_eal(&eal_args()).expect("second init_eal is a no-op");

        ring_loopback_two_queues();
        hotplugged_ring_reopens();
        null_forwarding_rate();
        af_packet_on_veth();
        cleanup();
    }

    fn before_the_eal() {
        assert!(!dpdk::eal_ready());
        let cfg = PortConfig::new(Driver::Dpdk, "net_ring0");
        match port::open(&cfg, 1) {
            Err(PortError::Invalid { reason, .. }) => {
                assert!(reason.contains("not initialised"), "{reason}")
            }
            other => panic!("open before the EAL must fail, got {other:?}"),
        }
        assert!(matches!(
            MbufPool::create(2048, None),
            Err(DpdkError::NotInitialised)
        ));
        assert!(matches!(
            dpdk::register_thread(),
            Err(DpdkError::NotInitialised)
        ));
        assert!(matches!(
            dpdk::init_eal(&["bad\0arg".to_string()]),
            Err(DpdkError::NulInArgument(_))
        ));
    }

    /// `net_ring0` without arguments loops each TX queue back to the RX queue of the same index.
    fn ring_loopback_two_queues() {
        let pool = MbufPool::create(8192, None).expect("mbuf pool");
        assert_eq!(pool.size(), 8192);
        assert!(pool.data_room() as usize >= port::FRAME_CAPACITY);
        let mut cfg = PortConfig::new(Driver::Dpdk, "net_ring0");
        cfg.ring_frames = 1024;
        let opts = DpdkOptions {
            pool: Some(pool.clone()),
            ..DpdkOptions::default()
        };
        let p = dpdk::open_with(&cfg, 2, &opts).expect("open net_ring0");
        let (mut port, control) = (p.port, p.control);
        assert_eq!(port.rx.len(), 2);
        assert_eq!(port.tx.len(), 2);
        assert_eq!(control.name(), "net_ring0");
        assert!(port.info.mode.contains("rss off"), "{}", port.info.mode);
        assert!(control.link().up, "net_ring link: {}", control.link());
        assert_eq!(port.info.mtu, 1500);

        // Queue 0 and queue 1 each send 1,000 frames; each comes back on its own queue only.
        const N: u32 = 1000;
        let (src, dst) = (MAC_A, MAC_B);
        {
            let (tx, rx) = (&mut port.tx, &mut port.rx);
            let mut got = vec![Vec::new(), Vec::new()];
            for (q, txq) in tx.iter_mut().enumerate() {
                let range = (q as u32 * N)..((q as u32 + 1) * N);
                let mut echo = Vec::new();
                let sent = send(txq.as_mut(), dst, src, range, || {
                    // net_ring's rings hold 1,024 frames: drain after each burst.
                    let part = collect(&mut rx[..], dst, src, 32, Duration::from_millis(50));
                    echo.push(part);
                });
                assert_eq!(sent, N as usize);
                for part in echo {
                    for (k, seqs) in part.into_iter().enumerate() {
                        got[k].extend(seqs);
                    }
                }
                let so_far = got[0].len() + got[1].len();
                let want = ((q as u32 + 1) * N) as usize - so_far;
                let rest = collect(&mut rx[..], dst, src, want, Duration::from_secs(2));
                for (k, seqs) in rest.into_iter().enumerate() {
                    got[k].extend(seqs);
                }
            }
            check_all_once(&got, 0..2 * N);
            assert!(
                got[0].iter().all(|&s| s < N),
                "queue 0 saw queue 1's frames"
            );
            assert!(
                got[1].iter().all(|&s| s >= N),
                "queue 1 saw queue 0's frames"
            );
        }
        let per_q = port.stats.per_queue();
        assert_eq!(per_q.len(), 2);
        for s in &per_q {
            assert_eq!(s.tx_packets, u64::from(N));
            assert_eq!(s.rx_packets, u64::from(N));
            assert_eq!(s.tx_dropped, 0);
            assert_eq!(s.rx_truncated, 0);
            assert_eq!(s.rx_bytes, s.tx_bytes);
        }
        let dev = control.device_stats().expect("device stats");
        assert_eq!(dev.total.rx_packets, 2 * u64::from(N), "{dev:?}");
        assert_eq!(dev.total.tx_packets, 2 * u64::from(N), "{dev:?}");
        assert_eq!(dev.per_queue.len(), 2);

        // wait(): nothing pending -> times out; one frame sent -> true, and rx_burst gets it.
        let t0 = Instant::now();
        assert!(!port.rx[0].wait(Duration::from_millis(5)).unwrap());
        assert!(t0.elapsed() >= Duration::from_millis(5));
        let mut b = Burst::new(4);
        assert!(b.push_copy(&udp_frame(dst, src, 1, 7777, 100)));
        assert_eq!(port.tx[0].tx_burst(&mut b), 1);
        assert!(port.rx[0].wait(Duration::from_secs(1)).unwrap());
        assert!(
            port.rx[0].wait(Duration::ZERO).unwrap(),
            "stashed frame still pending"
        );
        assert_eq!(port.rx[0].rx_burst(&mut b), 1);
        assert_eq!(frame_seq(b.frames()[0].data(), src), Some(7777));

        // A frame stashed by wait() and never received is freed at teardown (no leak).
        b.clear();
        assert!(b.push_copy(&udp_frame(dst, src, 1, 8888, 60)));
        assert_eq!(port.tx[1].tx_burst(&mut b), 1);
        assert!(port.rx[1].wait(Duration::from_secs(1)).unwrap());

        drop(port);
        drop(control);
        drop(opts);
        assert_eq!(pool.in_use(), 0, "mbufs leaked after the port closed");
        assert_eq!(
            Arc::strong_count(&pool),
            1,
            "the closed port let go of the pool"
        );
        // The EAL-probed net_ring0 is closed for good: opening it again is a clear error.
        assert!(port::open(&cfg, 1).is_err());
    }

    /// A device that is not in the EAL arguments is hot-plugged, and removed at close, so it can
    /// be opened again; opening an open port twice is refused.
    fn hotplugged_ring_reopens() {
        let cfg = PortConfig::new(Driver::Dpdk, "net_ring7");
        for round in 0..2 {
            let mut port = port::open(&cfg, 1).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(port.info.mode.contains("hot-plugged"), "{}", port.info.mode);
            match port::open(&cfg, 1) {
                Err(PortError::Invalid { reason, .. }) => {
                    assert!(reason.contains("already open"), "{reason}")
                }
                other => panic!("double open must fail, got {other:?}"),
            }
            let sent = send(port.tx[0].as_mut(), MAC_B, MAC_A, 0..100, || {});
            assert_eq!(sent, 100);
            let got = collect(&mut port.rx, MAC_B, MAC_A, 100, Duration::from_secs(2));
            check_all_once(&got, 0..100);
        }
        // Too many queues for the device: a clear error, and the device is released again.
        let err = port::open(&cfg, 64).expect_err("net_ring has 16 queues");
        assert!(matches!(err, PortError::Invalid { .. }), "{err}");
        port::open(&cfg, 1).expect("released after the failed open");
        // Not a device at all.
        let bad = PortConfig::new(Driver::Dpdk, "no_such_driver0");
        assert!(port::open(&bad, 1).is_err());
    }

    /// Forwards from `net_null0` (an endless source of 64-byte frames) to `net_null1` (a sink)
    /// through our queues for a short while: all received frames are sent, and the rate is
    /// printed (debug builds are slow; the lead's figure uses a release build).
    fn null_forwarding_rate() {
        let mut src = port::open(&PortConfig::new(Driver::Dpdk, "net_null0"), 1).expect("null0");
        let mut dst = port::open(&PortConfig::new(Driver::Dpdk, "net_null1"), 1).expect("null1");
        assert!(
            src.info.mode.contains("rss off (one queue)"),
            "{}",
            src.info.mode
        );
        // The worker runs on its own thread, registered with the EAL (mempool cache).
        let worker = std::thread::spawn(move || {
            dpdk::register_thread().expect("rte_thread_register");
            dpdk::register_thread().expect("a registered thread registers again as a no-op");
            let mut burst = Burst::new(32);
            let t0 = Instant::now();
            let mut frames = 0u64;
            while t0.elapsed() < Duration::from_millis(300) {
                burst.clear();
                src.rx[0].rx_burst(&mut burst);
                frames += dst.tx[0].tx_burst(&mut burst) as u64;
            }
            (src, dst, frames, t0.elapsed().as_secs_f64())
        });
        let (src, dst, frames, secs) = worker.join().expect("forwarding thread");
        let s = src.stats.total();
        let d = dst.stats.total();
        assert!(s.rx_packets > 0);
        assert_eq!(d.tx_packets, s.rx_packets, "net_null takes every frame");
        assert_eq!(d.tx_packets, frames);
        assert_eq!(d.tx_dropped, 0);
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "dpdk backend net_null0 -> net_null1 (copy in and out): {:.2} Mpps ({} build)",
            frames as f64 / secs / 1e6,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
    }

    /// `net_af_packet` on one end of a veth pair (namespace a), our AF_PACKET backend on the
    /// other (namespace b); frames both ways, DPDK with two queues.
    fn af_packet_on_veth() {
        let topo = match VethPair::new(1) {
            Ok(t) => t,
            Err(reason) => {
                skip(TEST, &format!("net_af_packet case: {reason}"));
                return;
            }
        };
        let dev = format!("net_af_packet0,iface={}", topo.dev_a);
        let p = topo
            .a
            .enter(move || {
                dpdk::open_with(
                    &PortConfig::new(Driver::Dpdk, dev),
                    2,
                    &DpdkOptions::default(),
                )
            })
            .expect("enter namespace a")
            .expect("open net_af_packet0 in namespace a");
        let (mut pa, control) = (p.port, p.control);
        let peer_cfg = PortConfig::new(Driver::AfPacket, &topo.dev_b);
        let mut pb = topo
            .b
            .enter(move || port::open(&peer_cfg, 1))
            .expect("enter namespace b")
            .expect("open af_packet peer");
        assert_eq!(pa.info.mac, MacAddr(MAC_A));
        assert!(
            pa.info.ifindex > 0,
            "net_af_packet reports its kernel interface"
        );
        assert!(control.link().up, "veth link: {}", control.link());
        assert!(pa.info.mode.contains("hot-plugged"), "{}", pa.info.mode);

        const N: u32 = 1000;
        // DPDK -> peer, half on each TX queue.
        let mut sent = send(pa.tx[0].as_mut(), MAC_B, MAC_A, 0..N / 2, || {});
        sent += send(pa.tx[1].as_mut(), MAC_B, MAC_A, N / 2..N, || {});
        assert_eq!(sent, N as usize);
        let got = collect(&mut pb.rx, MAC_B, MAC_A, N as usize, Duration::from_secs(5));
        check_all_once(&got, 0..N);

        // Peer -> DPDK: 64 flows spread over the two queues by the kernel's fanout hash.
        let sent = send(pb.tx[0].as_mut(), MAC_A, MAC_B, 0..N, || {});
        assert_eq!(sent, N as usize);
        let got = collect(&mut pa.rx, MAC_A, MAC_B, N as usize, Duration::from_secs(5));
        check_all_once(&got, 0..N);
        assert!(
            !got[0].is_empty() && !got[1].is_empty(),
            "64 flows must reach both queues: {} / {}",
            got[0].len(),
            got[1].len()
        );
        let sa = pa.stats.total();
        assert_eq!(sa.tx_packets, u64::from(N));
        assert!(sa.rx_packets >= u64::from(N), "{sa:?}");
        assert_eq!(sa.rx_truncated, 0);
        let dev = control.device_stats().expect("device stats");
        assert!(dev.total.rx_packets >= u64::from(N), "{dev:?}");
        drop(pa);
        drop(control);
        drop(pb);
        drop(topo);
    }

    fn cleanup() {
        let pool = MbufPool::create(1024, None).expect("pool");
        match dpdk::cleanup_eal() {
            Err(DpdkError::StillInUse { ports: 0, pools: 1 }) => {}
            other => panic!("cleanup with a live pool must be refused, got {other:?}"),
        }
        drop(pool);
        dpdk::cleanup_eal().expect("rte_eal_cleanup");
        assert!(!dpdk::eal_ready());
        assert!(matches!(
            dpdk::init_eal(&eal_args()),
            Err(DpdkError::CleanedUp)
        ));
        assert!(port::open(&PortConfig::new(Driver::Dpdk, "net_null0"), 1).is_err());
        dpdk::cleanup_eal().expect("a second cleanup is a no-op");
    }
}
