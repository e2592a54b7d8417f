//! `appliance --config FILE`: open the ports, start the pinned workers, run the slow path on the main
//! thread until SIGINT/SIGTERM, reload on SIGHUP, print the final counters.

use crate::clock::Clock;
use crate::metrics::{self, MetricsState};
use crate::params;
use crate::ports::Backends;
use crate::rings::WorkerRings;
use crate::slowpath::SlowPath;
use crate::worker::{SideQueues, Worker};
use anyhow::Context as _;
use natgw_allocator::{Inventory, Ownership};
use natgw_config::Config;
use natgw_dataplane::nat::frag::FragSteer;
use natgw_dataplane::nat::NatCore;
use natgw_dataplane::port::{steer::SteerRule, FanoutMode};
use natgw_dataplane::wire::MacAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Run the appliance with the config at `path` until a stop signal.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let mut cfg = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let workers = cfg.dataplane().workers().max(1);
    // Seeds for port choice (RFC 6056: unpredictable) and table hashing, from the OS.
    let seed = {
        use rand::{RngCore, SeedableRng};
        rand::rngs::SmallRng::from_entropy().next_u64()
    };
    let (inventory, shard_allocs) = Inventory::new(
        params::allocator_config(&cfg, seed),
        workers as u16,
        Ownership::Blocks,
    )
    .map_err(|e| anyhow::anyhow!("port inventory: {e}"))?;

    // Steering in the kernel: inside frames to their flow's owner, outside frames to their port block's.
    let mut inside_pc = params::port_config(&cfg, cfg.inside())?;
    let mut outside_pc = params::port_config(&cfg, cfg.outside())?;
    inside_pc.fanout = FanoutMode::Steer(SteerRule::Flow);
    outside_pc.fanout = FanoutMode::Steer(SteerRule::DstPortBlock {
        range_start: cfg.nat().port_range().0,
        block: u16::try_from(inventory.stats().block_size).unwrap_or(u16::MAX),
    });
    let mut backends = Backends::start(&cfg)?;
    let inside = backends
        .open("inside", cfg.inside().driver(), &inside_pc, workers)
        .context("the inside interface")?;
    let outside = backends
        .open("outside", cfg.outside().driver(), &outside_pc, workers)
        .context("the outside interface")?;
    let inside_mac = cfg
        .inside()
        .mac()
        .map(|m| MacAddr(m.0))
        .unwrap_or(inside.info.mac);
    let outside_mac = cfg
        .outside()
        .mac()
        .map(|m| MacAddr(m.0))
        .unwrap_or(outside.info.mac);
    log::info!(
        "inside {} ({}, {}), outside {} ({}, {}), {} worker(s)",
        inside.info.name,
        inside_mac,
        inside.info.mode,
        outside.info.name,
        outside_mac,
        outside.info.mode,
        workers
    );
    let core_params = params::core_params(&cfg, inside_mac, outside_mac);
    let owners = inventory.owners();
    let frag_steer = FragSteer::default();
    let clock = Clock::start();
    let stop = Arc::new(AtomicBool::new(false));
    let rings: Vec<Arc<WorkerRings>> = (0..workers)
        .map(|_| WorkerRings::new(cfg.dataplane().handoff_ring()))
        .collect();

    // Pinning: the configured cores, or spread over the available cores, the slow path on another one.
    let available = core_affinity::get_core_ids().unwrap_or_default();
    let pins: Vec<Option<core_affinity::CoreId>> = match cfg.dataplane().cores() {
        Some(cores) => cores
            .iter()
            .map(|&id| Some(core_affinity::CoreId { id }))
            .collect(),
        None if available.len() > 1 => (0..workers)
            .map(|i| Some(available[(i + 1) % available.len()]))
            .collect(),
        None => vec![None; workers],
    };
    if let Some(id) = cfg.dataplane().slowpath_core() {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }

    let inside_stats = inside.stats.clone();
    let outside_stats = outside.stats.clone();
    let mut handles = Vec::with_capacity(workers);
    let queues = inside
        .rx
        .into_iter()
        .zip(inside.tx)
        .zip(outside.rx.into_iter().zip(outside.tx));
    for (i, (((irx, itx), (orx, otx)), alloc)) in queues.zip(shard_allocs).enumerate() {
        let core = NatCore::new(
            core_params.clone(),
            alloc,
            owners.clone(),
            frag_steer.clone(),
            seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            clock.now(),
        );
        let w = Worker {
            core,
            inside: SideQueues { rx: irx, tx: itx },
            outside: SideQueues { rx: orx, tx: otx },
            rings: rings[i].clone(),
            peers: rings.clone(),
            burst: cfg.dataplane().burst(),
            stop: stop.clone(),
            clock,
            pin: pins.get(i).copied().flatten(),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || w.run())?,
        );
    }

    let state = Arc::new(Mutex::new(MetricsState::default()));
    let metrics_thread = metrics::serve(cfg.metrics().listen(), state.clone(), stop.clone())?;
    let mut slow = SlowPath::new(core_params, inventory, rings.clone(), state.clone());

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    log::info!(
        "running; SIGHUP reloads {}, SIGINT/SIGTERM stop",
        path.display()
    );

    let mut last_publish = clock.now();
    while !term.load(Ordering::Relaxed) {
        let now = clock.now();
        let busy = slow.poll(now);
        if hup.swap(false, Ordering::Relaxed) {
            cfg = reload(path, cfg, &mut slow, inside_mac, outside_mac);
        }
        if now.saturating_duration_since(last_publish) >= Duration::from_millis(100) {
            last_publish = now;
            slow.publish();
            if let Ok(mut m) = state.lock() {
                m.inside_port = inside_stats.total();
                m.outside_port = outside_stats.total();
                m.inside_queues = inside_stats.per_queue();
                m.outside_queues = outside_stats.per_queue();
                m.links = backends.links();
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    log::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    let mut cores = Vec::new();
    for h in handles {
        match h.join() {
            Ok(core) => cores.push(core),
            Err(_) => log::error!("a worker panicked"),
        }
    }
    slow.poll(clock.now());
    slow.publish();
    let _ = metrics_thread.join();
    let m = match state.lock() {
        Ok(m) => m.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let mut final_state = m;
    final_state.inside_port = inside_stats.total();
    final_state.outside_port = outside_stats.total();
    drop(inside_stats);
    drop(outside_stats);
    backends.shutdown();
    println!("# final counters");
    print!("{}", final_state.render());
    Ok(())
}

/// SIGHUP: re-read the file; a valid one applies to new flows (a new port inventory when the SNAT
/// addresses or port rules changed), an invalid one changes nothing. Returns the config now in force.
fn reload(
    path: &Path,
    running: Config,
    slow: &mut SlowPath,
    inside_mac: MacAddr,
    outside_mac: MacAddr,
) -> Config {
    let new = match Config::load(path) {
        Ok(new) => new,
        Err(e) => {
            log::error!("reload refused, the running config stays: {e}");
            slow.reload_failed();
            return running;
        }
    };
    if new.dataplane() != running.dataplane()
        || new.inside() != running.inside()
        || new.outside() != running.outside()
        || new.metrics() != running.metrics()
    {
        log::warn!("reload: [dataplane], [interfaces] and [metrics] changes need a restart; applying the rest");
    }
    let workers = running.dataplane().workers().max(1) as u16;
    let ports = if params::allocator_config(&new, 0) != params::allocator_config(&running, 0) {
        let seed = {
            use rand::{RngCore, SeedableRng};
            rand::rngs::SmallRng::from_entropy().next_u64()
        };
        match Inventory::new(
            params::allocator_config(&new, seed),
            workers,
            Ownership::Blocks,
        ) {
            Ok(inv) => Some(inv),
            Err(e) => {
                log::error!("reload refused, the running config stays: port inventory: {e}");
                slow.reload_failed();
                return running;
            }
        }
    } else {
        None
    };
    let mut core = params::core_params(&new, inside_mac, outside_mac);
    // Interfaces and workers stay as started.
    core.shards = workers;
    let new_inventory = ports.is_some();
    slow.reload(core, ports);
    log::info!(
        "reloaded {}{}",
        path.display(),
        if new_inventory {
            " (new SNAT port inventory for new flows)"
        } else {
            ""
        }
    );
    new
}
