//! DPDK backend: poll-mode drivers through our own thin binding (`natgw-dpdk-sys`, DPDK 22.11).
//!
//! Layer: packet I/O; fast path (`rx_burst`/`tx_burst`), slow path (EAL set-up, `open`,
//! teardown). Only built with the cargo feature `dpdk`.
//!
//! Life cycle. [`init_eal`] starts DPDK's Environment Abstraction Layer once per process from the
//! config's `[dpdk].eal_args` (later calls are no-ops; DPDK cannot start twice). [`open_with`]
//! (or [`super::open`] with [`super::Driver::Dpdk`]) then finds the device: a port the EAL
//! already probed (a PCI address, or a `--vdev` from the EAL arguments), or else a virtual
//! device it hot-plugs from the device string (`net_ring0`, `net_null0`,
//! `net_af_packet0,iface=out0`, `net_af_xdp0,iface=out0`). Hot-plugged `net_af_packet` devices
//! get `qpairs` = the queue count and `framecnt` = the ring size unless the string sets them (its
//! default ring of 512 frames drops bursts). The port gets one RX and one TX queue per worker,
//! an mbuf pool ([`MbufPool`], sized from `[dpdk].mbufs` or from the rings), is started and put
//! in promiscuous mode. Teardown is RAII: when the last queue handle and the last
//! [`DpdkControl`] are dropped, the port is stopped and closed (a hot-plugged device is also
//! removed), then its pool is freed. [`cleanup_eal`] (`rte_eal_cleanup`) ends DPDK at exit once
//! every port and pool is gone.
//!
//! Spreading frames over workers. With more than one queue, RSS is enabled with the hash types
//! the device reports (`flow_type_rss_offloads`): by default IPv4/IPv6 addresses plus TCP/UDP
//! ports, so inside traffic spreads over the workers by 5-tuple ([`RssMode::FiveTuple`]). For
//! the outside port, [`RssMode::L4DstPort`] hashes TCP/UDP on the destination port only
//! (`RTE_ETH_RSS_L4_DST_ONLY`) where the PMD reports it, so all frames to one SNAT port land on
//! one queue. Neither Toeplitz hash knows which shard owns a flow or a SNAT port, so a frame that
//! arrives on another worker's queue is handed over by the NAT core's software steering step,
//! which counts it (`handoffs_out`); rte_flow rules matching port ranges are a later
//! optimisation. Devices without RSS (`net_ring`, `net_null`, `net_af_packet`, `net_af_xdp`)
//! spread frames their own way (`net_af_packet`: the kernel's `PACKET_FANOUT` hash) and the
//! software step does the rest.
//!
//! Offloads. RX checksum validation (IPv4, UDP, TCP) is requested only where the device reports
//! it; a frame the device marks `RTE_MBUF_F_RX_L4_CKSUM_NONE` (checksum not filled in, data
//! verified: the sender left it to offload) is delivered flagged [`RxFlags::CSUM_NOT_READY`]
//! and counted, as AF_PACKET does. No TX checksum offload: the NAT core keeps every checksum
//! right in software (incremental updates). `RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE` is enabled where
//! reported (all our mbufs come from one pool with reference count 1).
//!
//! Frames are copied between mbufs and [`super::PacketBuf`]s (as AF_PACKET does); zero-copy is
//! a later optimisation. RX: `rte_eth_rx_burst` into a small array, copy,
//! `rte_pktmbuf_free_bulk`. TX: `rte_pktmbuf_alloc_bulk`, copy, `rte_eth_tx_burst`; frames the
//! device does not take (queue full), an empty pool or an oversized frame are counted in
//! `tx_dropped`, never retried.
//!
//! Threads. A queue is used by one thread at a time (DPDK's rule, and ours: handles are `Send`,
//! not `Sync`). Workers need not be EAL threads; [`register_thread`] gives one an lcore id so
//! its mbuf allocations use the pool's per-lcore cache instead of the shared ring. `wait` has no
//! interrupt to sleep on (poll-mode drivers): it polls the queue every 50 µs until frames
//! arrive or the timeout passes, keeping what it received for the next `rx_burst`.
//!
//! Counters: each queue's software counters are its [`QueueStats`] (the port's
//! [`PortStatsHandle`]); the device's own counters (hardware drops `imissed`, `rx_nombuf`,
//! per-queue packets) and the link status are read on the slow path through [`DpdkControl`].
//!
//! References: DPDK 22.11 Programmer's Guide, "Poll Mode Driver" (RSS, offloads, queue rules),
//! "Mbuf Library", "Mempool Library" (per-lcore caches), "Environment Abstraction Layer".

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use natgw_dpdk_sys::sys;

use super::{
    Burst, Counter, MacAddr, Port, PortConfig, PortError, PortInfo, PortStats, PortStatsHandle,
    QueueId, QueueStats, RxFlags, RxQueue, TxQueue, FRAME_CAPACITY,
};

/// Mbufs handled per `rte_eth_rx_burst`/`rte_eth_tx_burst` call (a burst is split into chunks).
const CHUNK: usize = 64;
/// How often an idle `wait` polls the queue.
const WAIT_POLL: Duration = Duration::from_micros(50);
/// Per-lcore cache of a pool we create (DPDK allows at most 512 and at most 2/3 of the pool).
const POOL_CACHE: u32 = 256;
/// Mbufs added to a pool we size ourselves, beyond the rings and bursts (caches, in flight).
const POOL_SLACK: u32 = 1024;
/// Fallback MTU for devices that do not report one (most virtual devices).
const DEFAULT_MTU: u32 = 1500;
/// Name prefix of the program in the EAL's argv.
const PROGRAM: &str = "natgw";

/// Why DPDK itself (rather than one port) could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// An EAL argument contains a NUL byte and cannot be passed to C.
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// `rte_eal_init` failed (bad arguments, not enough memory, no permission, ...).
    #[error("rte_eal_init failed: {message} (rte_errno {errno})")]
    EalInit {
        /// DPDK's `rte_errno`.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// [`cleanup_eal`] already ran in this process; DPDK cannot be started again.
    #[error("the DPDK EAL was cleaned up in this process and cannot start again")]
    CleanedUp,
    /// [`init_eal`] has not run (successfully) yet.
    #[error("the DPDK EAL is not initialised (call port::dpdk::init_eal first)")]
    NotInitialised,
    /// [`cleanup_eal`] was called while ports or pools are still open.
    #[error("cannot clean up the DPDK EAL: {ports} port(s) and {pools} mbuf pool(s) still open")]
    StillInUse {
        /// Ports not yet closed.
        ports: usize,
        /// Pools not yet freed.
        pools: usize,
    },
    /// `rte_eal_cleanup` failed.
    #[error("rte_eal_cleanup failed: {0}")]
    Cleanup(String),
    /// `rte_thread_register` failed (no free lcore id).
    #[error("rte_thread_register failed: {0}")]
    RegisterThread(String),
    /// `rte_pktmbuf_pool_create` failed.
    #[error("cannot create a pool of {mbufs} mbufs: {message}")]
    Pool {
        /// The requested number of mbufs.
        mbufs: u32,
        /// `rte_strerror(rte_errno)`.
        message: String,
    },
}

/// Where the process stands with the EAL.
enum EalState {
    Uninit,
    Ready { args: Vec<String> },
    Failed { errno: i32, message: String },
    CleanedUp,
}

static EAL: Mutex<EalState> = Mutex::new(EalState::Uninit);
/// Ports opened by us and not yet closed (their ids).
static OPEN_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());
/// Pools created by us and not yet freed.
static LIVE_POOLS: AtomicUsize = AtomicUsize::new(0);
/// Numbers the pools we create ("natgw_mp_N": mempool names are global in DPDK).
static POOL_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Serialises DPDK's control path (probe, configure, start, stop, close, remove), which is not
/// thread-safe across ports: held by [`open_with`] and by a device's teardown.
static CONTROL: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds [`CONTROL`] (a failed `open_with` tears its device down while
    /// holding it).
    static HOLDS_CONTROL: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain assignments).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`CONTROL`], taken unless this thread already holds it (a reentrant lock, by hand).
struct ControlGuard(Option<MutexGuard<'static, ()>>);

fn control_lock() -> ControlGuard {
    if HOLDS_CONTROL.try_with(Cell::get).unwrap_or(false) {
        return ControlGuard(None);
    }
    let g = lock(&CONTROL);
    let _ = HOLDS_CONTROL.try_with(|h| h.set(true));
    ControlGuard(Some(g))
}

impl Drop for ControlGuard {
    fn drop(&mut self) {
        if self.0.is_some() {
            let _ = HOLDS_CONTROL.try_with(|h| h.set(false));
        }
    }
}

/// DPDK's constants that bindgen cannot evaluate, from our C shim.
fn consts() -> &'static sys::natgw_constants {
    // SAFETY: natgw_constants returns a pointer to a static, immutable, initialised table.
    unsafe { &*sys::natgw_constants() }
}

/// `rte_strerror(errnum)` as a string (`errnum` positive, as in `rte_errno`).
fn strerror(errnum: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string (static or per-thread)
    // that stays valid until the next call on this thread; we copy it at once.
    unsafe {
        let p = sys::rte_strerror(errnum);
        if p.is_null() {
            format!("error {errnum}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// The calling thread's `rte_errno`.
fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer; no preconditions.
    unsafe { sys::natgw_errno() }
}

/// Starts the EAL with `args` (the config's `[dpdk].eal_args`; the program name is prepended).
///
/// Runs `rte_eal_init` once per process; later calls return `Ok(())` without doing anything (a
/// warning is logged when their arguments differ: the first call's win). A failed start is
/// remembered and returned again, since DPDK cannot retry. The calling thread's CPU affinity is
/// restored afterwards, so the EAL's pinning of its main lcore does not leak into threads the
/// caller spawns (workers pin themselves). Slow path.
///
/// Arguments that work without hugepages or NICs: `--no-huge --no-pci -m 256 --no-shconf -l 0
/// --no-telemetry`, plus `--vdev=...` for virtual devices (see `PLATFORM.md`).
pub fn init_eal(args: &[String]) -> Result<(), DpdkError> {
    let mut state = lock(&EAL);
    match &*state {
        EalState::Ready { args: first } => {
            if first.as_slice() != args {
                log::warn!(
                    "DPDK EAL already initialised with {first:?}; ignoring the new arguments \
                     {args:?}"
                );
            }
            return Ok(());
        }
        EalState::Failed { errno, message } => {
            return Err(DpdkError::EalInit {
                errno: *errno,
                message: message.clone(),
            })
        }
        EalState::CleanedUp => return Err(DpdkError::CleanedUp),
        EalState::Uninit => {}
    }
    let mut owned = Vec::with_capacity(args.len() + 1);
    owned.push(CString::new(PROGRAM).map_err(|_| DpdkError::NulInArgument(PROGRAM.into()))?);
    for a in args {
        owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::NulInArgument(a.clone()))?);
    }
    // The EAL may keep pointers into argv (it permutes it and remembers some values), so argv
    // and its strings live for the rest of the process: leaked once, on purpose.
    let owned: &'static [CString] = Vec::leak(owned);
    let argv: &'static mut [*mut libc::c_char] = Vec::leak(
        owned
            .iter()
            .map(|s| s.as_ptr() as *mut libc::c_char)
            .chain(std::iter::once(ptr::null_mut()))
            .collect(),
    );
    let argc = (argv.len() - 1) as libc::c_int;
    let affinity = CpuAffinity::save();
    // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all living forever;
    // the EAL lock (our mutex) guarantees a single call per process.
    let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if let Some(a) = affinity {
        a.restore();
    }
    if rc < 0 {
        let errno = rte_errno();
        let message = strerror(errno);
        *state = EalState::Failed {
            errno,
            message: message.clone(),
        };
        return Err(DpdkError::EalInit { errno, message });
    }
    log::info!(
        "DPDK {} EAL initialised ({args:?})",
        natgw_dpdk_sys::DPDK_VERSION
    );
    *state = EalState::Ready {
        args: args.to_vec(),
    };
    Ok(())
}

/// Whether [`init_eal`] has succeeded and [`cleanup_eal`] has not run.
pub fn eal_ready() -> bool {
    matches!(*lock(&EAL), EalState::Ready { .. })
}

/// Ends DPDK (`rte_eal_cleanup`) at process exit, after every port and pool is closed.
///
/// Returns [`DpdkError::StillInUse`] (and does nothing) while a port or pool made here is still
/// open. A no-op when the EAL never started or was already cleaned up. Afterwards no DPDK call
/// may be made in this process; [`init_eal`] and [`open_with`] fail. Slow path.
pub fn cleanup_eal() -> Result<(), DpdkError> {
    let _control = control_lock();
    let mut state = lock(&EAL);
    if !matches!(*state, EalState::Ready { .. }) {
        return Ok(());
    }
    let ports = lock(&OPEN_PORTS).len();
    let pools = LIVE_POOLS.load(Ordering::Acquire);
    if ports > 0 || pools > 0 {
        return Err(DpdkError::StillInUse { ports, pools });
    }
    // SAFETY: the EAL is initialised and nothing we created is still using it.
    let rc = unsafe { sys::rte_eal_cleanup() };
    *state = EalState::CleanedUp;
    if rc < 0 {
        return Err(DpdkError::Cleanup(strerror(-rc)));
    }
    Ok(())
}

/// Makes the calling thread an EAL thread (`rte_thread_register`) unless it already is one, so
/// that mbuf allocation and freeing on it use the pool's per-lcore cache. Optional: queues work
/// from any thread. Call once at the start of each worker thread; the lcore id is held until
/// the thread exits. Slow path.
pub fn register_thread() -> Result<(), DpdkError> {
    if !eal_ready() {
        return Err(DpdkError::NotInitialised);
    }
    // SAFETY: reads the calling thread's lcore id; no preconditions.
    if unsafe { sys::natgw_lcore_id() } != consts().lcore_id_any {
        return Ok(());
    }
    // SAFETY: the EAL is initialised; registering the calling thread has no other precondition.
    if unsafe { sys::rte_thread_register() } < 0 {
        return Err(DpdkError::RegisterThread(strerror(rte_errno())));
    }
    Ok(())
}

/// The calling thread's CPU affinity, to put back after `rte_eal_init` pinned it.
struct CpuAffinity(libc::cpu_set_t);

impl CpuAffinity {
    fn save() -> Option<CpuAffinity> {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a writable cpu_set_t of the size we pass; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        (rc == 0).then_some(CpuAffinity(set))
    }

    fn restore(&self) {
        // SAFETY: self.0 is a valid cpu_set_t read by sched_getaffinity; pid 0 = calling thread.
        let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&self.0), &self.0) };
    }
}

/// A DPDK packet buffer pool (`rte_pktmbuf_pool_create`), shared by the ports that use it and
/// freed when the last user drops it (after their ports are closed).
pub struct MbufPool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    data_room: u32,
}

// SAFETY: DPDK mempools created with default flags use multi-producer/multi-consumer rings and
// per-lcore caches, so any thread may allocate and free; the pointer itself is never mutated.
unsafe impl Send for MbufPool {}
// SAFETY: as above: every operation we expose is thread-safe in DPDK.
unsafe impl Sync for MbufPool {}

impl MbufPool {
    /// Creates a pool of `mbufs` buffers of DPDK's default size (2,048 data bytes after a
    /// 128-byte headroom: a [`FRAME_CAPACITY`] frame fits in one) on NUMA socket `socket`
    /// (`None`: any). Size it from `[dpdk].mbufs`. Slow path; needs [`init_eal`].
    pub fn create(mbufs: u32, socket: Option<i32>) -> Result<Arc<MbufPool>, DpdkError> {
        if !eal_ready() {
            return Err(DpdkError::NotInitialised);
        }
        let c = consts();
        let name = format!("natgw_mp_{}", POOL_SEQ.fetch_add(1, Ordering::Relaxed));
        let cname =
            CString::new(name.as_str()).map_err(|_| DpdkError::NulInArgument(name.clone()))?;
        // DPDK refuses a cache larger than 2/3 of the pool (its flush threshold is 1.5x).
        let cache = POOL_CACHE.min(c.mempool_cache_max_size).min(mbufs / 2);
        let buf_size = c.mbuf_default_buf_size;
        let data_room = u16::try_from(buf_size).unwrap_or(u16::MAX);
        // SAFETY: cname is a valid C string; the other arguments are plain values DPDK checks.
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                mbufs,
                cache,
                0,
                data_room,
                socket.unwrap_or(c.socket_id_any),
            )
        };
        let ptr = NonNull::new(p).ok_or_else(|| DpdkError::Pool {
            mbufs,
            message: strerror(rte_errno()),
        })?;
        LIVE_POOLS.fetch_add(1, Ordering::AcqRel);
        Ok(Arc::new(MbufPool {
            ptr,
            name,
            size: mbufs,
            data_room: buf_size.saturating_sub(c.pktmbuf_headroom),
        }))
    }

    /// The pool's DPDK name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bytes of frame data one mbuf holds after its headroom.
    pub fn data_room(&self) -> u32 {
        self.data_room
    }

    /// Mbufs free right now (in the ring and the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while self is.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs taken right now (in device rings, in flight, or leaked).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive while self is.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    fn raw(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for MbufPool {
    fn drop(&mut self) {
        // SAFETY: every port using the pool holds an Arc to it and closes its device first, so no
        // queue or descriptor refers to the pool any more.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        LIVE_POOLS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for MbufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufPool")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

/// Which RSS hash a multi-queue port asks the device for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RssMode {
    /// IPv4/IPv6 addresses and TCP/UDP ports (the inside port: spreads flows over workers).
    #[default]
    FiveTuple,
    /// TCP/UDP destination port only (`RTE_ETH_RSS_L4_DST_ONLY`; the outside port: frames to one
    /// SNAT port land on one queue). Falls back to [`RssMode::FiveTuple`] where the device does
    /// not report the hash type.
    L4DstPort,
    /// No RSS even with several queues.
    Off,
}

/// Options of a DPDK port beyond [`PortConfig`].
#[derive(Clone, Debug, Default)]
pub struct DpdkOptions {
    /// The mbuf pool to use (one pool shared by all ports, sized from `[dpdk].mbufs`). `None`:
    /// the port creates its own pool of [`DpdkOptions::mbufs`] buffers.
    pub pool: Option<Arc<MbufPool>>,
    /// Size of the port's own pool when `pool` is `None`; `None`: enough for the rings and
    /// bursts (`queues * (rx ring + tx ring + 2 * burst) + 1024`).
    pub mbufs: Option<u32>,
    /// The RSS hash to request when the port has more than one queue.
    pub rss: RssMode,
}

/// A port's link as the device reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown or down).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.up {
            return write!(f, "down");
        }
        write!(
            f,
            "up {} Mbit/s {}-duplex",
            self.speed_mbps,
            if self.full_duplex { "full" } else { "half" }
        )
    }
}

/// The device's own counters (`rte_eth_stats_get`), in [`PortStats`] terms plus the extras.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Port totals: `ipackets`, `ibytes`, `imissed + rx_nombuf` as `rx_dropped`, `opackets`,
    /// `obytes`, `oerrors` as `tx_dropped`.
    pub total: PortStats,
    /// Per queue (packets and bytes; only the first 16 queues have device counters).
    pub per_queue: Vec<PortStats>,
    /// Frames the device dropped because no RX descriptor was free (the workers were too slow).
    pub imissed: u64,
    /// Erroneous received frames.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures (the pool ran dry).
    pub rx_nombuf: u64,
}

/// The device behind an open port: stops and closes it when the last handle goes.
struct Device {
    port_id: u16,
    name: String,
    queues: u16,
    /// The rte_device to remove at teardown when we hot-plugged it.
    hotplugged: Option<NonNull<sys::rte_device>>,
    started: bool,
    /// Freed after the device is closed (field order: dropped after `Drop::drop` runs).
    pool: Option<Arc<MbufPool>>,
}

// SAFETY: the device pointer is only used in Drop (once, under the CONTROL lock, which serialises
// DPDK's control path); the other calls made through a shared Device (link and stats queries from
// DpdkControl) are ones DPDK allows concurrently with the data path.
unsafe impl Send for Device {}
// SAFETY: as above; &Device only exposes the port id for read-only ethdev queries.
unsafe impl Sync for Device {}

impl Drop for Device {
    fn drop(&mut self) {
        let _control = control_lock();
        // SAFETY: the port id is valid until we close it here; no queue handle exists any more
        // (each holds an Arc<Device>), so nothing polls the port while it stops.
        unsafe {
            if self.started {
                let rc = sys::rte_eth_dev_stop(self.port_id);
                if rc < 0 {
                    log::warn!("{}: rte_eth_dev_stop: {}", self.name, strerror(-rc));
                }
            }
            let rc = sys::rte_eth_dev_close(self.port_id);
            if rc < 0 {
                log::warn!("{}: rte_eth_dev_close: {}", self.name, strerror(-rc));
            }
            if let Some(dev) = self.hotplugged {
                let rc = sys::rte_dev_remove(dev.as_ptr());
                if rc < 0 {
                    log::warn!("{}: rte_dev_remove: {}", self.name, strerror(-rc));
                }
            }
        }
        lock(&OPEN_PORTS).retain(|&p| p != self.port_id);
        // self.pool drops after this body: the pool outlives the closed device.
    }
}

/// Slow-path access to an open DPDK port: link status and device counters. Holding one keeps
/// the port open. Cheap to clone.
#[derive(Clone)]
pub struct DpdkControl {
    dev: Arc<Device>,
}

impl DpdkControl {
    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.dev.port_id
    }

    /// The ethdev name (e.g. "net_ring0", "0000:3b:00.1").
    pub fn name(&self) -> &str {
        &self.dev.name
    }

    /// The pool the port's queues use.
    pub fn pool(&self) -> Option<&Arc<MbufPool>> {
        self.dev.pool.as_ref()
    }

    /// The link right now (`rte_eth_link_get_nowait`; never waits for autonegotiation).
    pub fn link(&self) -> LinkStatus {
        link_status(self.dev.port_id)
    }

    /// The device's counters (`rte_eth_stats_get`). Call from one slow-path thread: some PMDs
    /// accumulate clear-on-read registers when read.
    pub fn device_stats(&self) -> Result<DeviceStats, PortError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: the port is open while self.dev lives; s is a writable rte_eth_stats.
        let rc = unsafe { sys::rte_eth_stats_get(self.dev.port_id, &mut s) };
        if rc < 0 {
            return Err(dpdk_err(&self.dev.name, "rte_eth_stats_get", rc));
        }
        let per_queue = (0..usize::from(self.dev.queues).min(s.q_ipackets.len()))
            .map(|q| PortStats {
                rx_packets: s.q_ipackets[q],
                rx_bytes: s.q_ibytes[q],
                tx_packets: s.q_opackets[q],
                tx_bytes: s.q_obytes[q],
                ..PortStats::default()
            })
            .collect();
        Ok(DeviceStats {
            total: PortStats {
                rx_packets: s.ipackets,
                rx_bytes: s.ibytes,
                rx_dropped: s.imissed.saturating_add(s.rx_nombuf),
                tx_packets: s.opackets,
                tx_bytes: s.obytes,
                tx_dropped: s.oerrors,
                ..PortStats::default()
            },
            per_queue,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

impl fmt::Debug for DpdkControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkControl")
            .field("port_id", &self.dev.port_id)
            .field("name", &self.dev.name)
            .finish()
    }
}

fn link_status(port_id: u16) -> LinkStatus {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: l is a writable rte_eth_link; an invalid port id only yields an error code.
    let rc = unsafe { sys::rte_eth_link_get_nowait(port_id, &mut l) };
    if rc < 0 {
        return LinkStatus::default();
    }
    LinkStatus {
        up: l.link_status() == consts().eth_link_up,
        speed_mbps: l.link_speed,
        full_duplex: l.link_duplex() == sys::RTE_ETH_LINK_FULL_DUPLEX as u16,
        autoneg: l.link_autoneg() != 0,
    }
}

/// An opened DPDK port: the generic [`Port`] plus its slow-path control handle.
#[derive(Debug)]
pub struct DpdkPort {
    /// Queues, facts and software counters, as every backend returns them.
    pub port: Port,
    /// Link status and device counters.
    pub control: DpdkControl,
}

/// A `PortError::Io` from a negative DPDK return code (`-errno`).
fn dpdk_err(device: &str, op: &'static str, rc: libc::c_int) -> PortError {
    PortError::Io {
        device: device.to_string(),
        op,
        source: io::Error::from_raw_os_error(rc.saturating_neg()),
    }
}

fn invalid(device: &str, reason: impl Into<String>) -> PortError {
    PortError::Invalid {
        device: device.to_string(),
        reason: reason.into(),
    }
}

/// The ethdev name in a device string: everything before the first ','.
fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device).trim()
}

/// The devargs to hot-plug `device` with: `net_af_packet` gets `qpairs` and `framecnt`, `net_af_xdp`
/// gets `queue_count`, unless the string sets them.
fn hotplug_devargs(device: &str, queues: usize, ring_frames: usize) -> String {
    let mut s = device.trim().to_string();
    let has = |key: &str| {
        device
            .split(',')
            .skip(1)
            .any(|kv| kv.trim().starts_with(key))
    };
    if device_name(device).starts_with("net_af_xdp") && !has("queue_count=") {
        s.push_str(&format!(",queue_count={queues}"));
    }
    if device_name(device).starts_with("net_af_packet") {
        if !has("qpairs=") {
            s.push_str(&format!(",qpairs={queues}"));
        }
        if !has("framecnt=") {
            let frames = ring_frames.clamp(512, 1 << 16).next_power_of_two();
            s.push_str(&format!(",framecnt={frames}"));
        }
    }
    s
}

fn port_by_name(name: &str) -> Option<u16> {
    let cname = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: cname is a valid C string; id is writable.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    (rc == 0).then_some(id)
}

/// Finds the port for `cfg.device`, hot-plugging a virtual device when no port has its name.
/// Returns the port id and whether we hot-plugged it.
fn find_or_probe(cfg: &PortConfig, queues: usize) -> Result<(u16, bool), PortError> {
    let dev = cfg.device.as_str();
    let name = device_name(dev);
    if name.is_empty() {
        return Err(invalid(dev, "empty DPDK device name"));
    }
    if let Some(id) = port_by_name(name) {
        return Ok((id, false));
    }
    let devargs = hotplug_devargs(dev, queues, cfg.ring_frames);
    let c = CString::new(devargs.as_str())
        .map_err(|_| invalid(dev, "device string contains a NUL byte"))?;
    // SAFETY: c is a valid C string; the EAL is initialised (checked by the caller).
    let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
    if rc < 0 {
        return Err(PortError::Io {
            device: dev.to_string(),
            op: "rte_dev_probe (no port of this name; hot-plugging it failed)",
            source: io::Error::from_raw_os_error(-rc),
        });
    }
    port_by_name(name)
        .map(|id| (id, true))
        .ok_or_else(|| PortError::NoSuchInterface(dev.to_string()))
}

/// Opens `cfg.device` as a DPDK port with `queues` queues, its own mbuf pool sized from the
/// rings, and 5-tuple RSS. See [`open_with`].
pub fn open(cfg: &PortConfig, queues: usize) -> Result<Port, PortError> {
    open_with(cfg, queues, &DpdkOptions::default()).map(|p| p.port)
}

/// Opens `cfg.device` as a DPDK port with `queues` RX and TX queues (see the module docs):
/// `cfg.ring_frames` descriptors per ring (as the device adjusts them), mbufs from
/// `opts.pool` or a pool of its own, RSS as `opts.rss` where the device has it. Needs
/// [`init_eal`]. Slow path.
pub fn open_with(
    cfg: &PortConfig,
    queues: usize,
    opts: &DpdkOptions,
) -> Result<DpdkPort, PortError> {
    let devstr = cfg.device.as_str();
    if queues == 0 || queues > usize::from(u16::MAX) {
        return Err(invalid(
            devstr,
            format!("queue count {queues} out of range"),
        ));
    }
    // Declared before `dev` below, so a failed open tears the device down under the lock.
    let _control = control_lock();
    match &*lock(&EAL) {
        EalState::Ready { .. } => {}
        EalState::CleanedUp => return Err(invalid(devstr, "the DPDK EAL was already cleaned up")),
        _ => {
            return Err(invalid(
                devstr,
                "the DPDK EAL is not initialised (port::dpdk::init_eal)",
            ))
        }
    }
    let (port_id, hotplugged) = find_or_probe(cfg, queues)?;
    {
        let mut open = lock(&OPEN_PORTS);
        if open.contains(&port_id) {
            return Err(invalid(
                devstr,
                format!("DPDK port {port_id} is already open"),
            ));
        }
        open.push(port_id);
    }
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: port_id names a probed port; info is writable.
    let rc = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
    // From here on, `dev` stops/closes/removes the port (and unlists it) on every error path.
    let mut dev = Device {
        port_id,
        name: device_name(devstr).to_string(),
        queues: queues as u16,
        hotplugged: if hotplugged {
            NonNull::new(info.device)
        } else {
            None
        },
        started: false,
        pool: None,
    };
    if rc < 0 {
        return Err(dpdk_err(devstr, "rte_eth_dev_info_get", rc));
    }
    let q = queues as u16;
    if q > info.max_rx_queues || q > info.max_tx_queues {
        return Err(invalid(
            devstr,
            format!(
                "{queues} queues asked, the device offers {} rx / {} tx (for a net_af_packet \
                 vdev set qpairs=N, for net_af_xdp queue_count=N)",
                info.max_rx_queues, info.max_tx_queues
            ),
        ));
    }
    let c = consts();
    // SAFETY: driver_name is NULL or a static C string owned by the driver.
    let driver = unsafe {
        if info.driver_name.is_null() {
            "?".to_string()
        } else {
            CStr::from_ptr(info.driver_name)
                .to_string_lossy()
                .into_owned()
        }
    };

    let mut conf = sys::rte_eth_conf::default();
    let (rss_hf, rss_desc) = choose_rss(opts.rss, queues, info.flow_type_rss_offloads);
    if rss_hf != 0 {
        conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = ptr::null_mut(); // the device's default key
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    } else {
        conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_NONE;
    }
    let rx_cksum = (c.rx_offload_ipv4_cksum | c.rx_offload_udp_cksum | c.rx_offload_tcp_cksum)
        & info.rx_offload_capa;
    conf.rxmode.offloads = rx_cksum;
    let fast_free = c.tx_offload_mbuf_fast_free & info.tx_offload_capa;
    conf.txmode.offloads = fast_free;
    // SAFETY: port_id is a probed, stopped port; conf is a valid, initialised rte_eth_conf.
    let rc = unsafe { sys::rte_eth_dev_configure(port_id, q, q, &conf) };
    if rc < 0 {
        return Err(dpdk_err(devstr, "rte_eth_dev_configure", rc));
    }

    let ring = u16::try_from(cfg.ring_frames.clamp(64, 1 << 15)).unwrap_or(4096);
    let (mut nb_rxd, mut nb_txd) = (ring, ring);
    // SAFETY: the port is configured; both pointers are writable u16s.
    let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rxd, &mut nb_txd) };
    if rc < 0 {
        return Err(dpdk_err(devstr, "rte_eth_dev_adjust_nb_rx_tx_desc", rc));
    }
    let needed = u32::from(q)
        .saturating_mul(u32::from(nb_rxd) + u32::from(nb_txd) + 2 * cfg.burst.min(4096) as u32)
        .saturating_add(POOL_SLACK);
    // SAFETY: port_id is a valid port.
    let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
    let pool = match &opts.pool {
        Some(p) => {
            if p.size() < needed {
                log::warn!(
                    "{devstr}: mbuf pool {} has {} mbufs, the rings and bursts of this port alone \
                     may hold {needed}",
                    p.name(),
                    p.size()
                );
            }
            p.clone()
        }
        None => {
            let n = opts.mbufs.unwrap_or(needed);
            MbufPool::create(n, (socket >= 0).then_some(socket)).map_err(|e| PortError::Io {
                device: devstr.to_string(),
                op: "rte_pktmbuf_pool_create",
                source: io::Error::other(e.to_string()),
            })?
        }
    };
    dev.pool = Some(pool.clone());
    let socket_u = socket as libc::c_uint; // SOCKET_ID_ANY (-1) is passed through as DPDK expects
    for k in 0..q {
        let mut rxconf = info.default_rxconf;
        // Port-level offloads apply to every queue.
        rxconf.offloads = 0;
        // SAFETY: the port is configured with q queues, k < q; rxconf and the pool are valid.
        let rc = unsafe {
            sys::rte_eth_rx_queue_setup(port_id, k, nb_rxd, socket_u, &rxconf, pool.raw())
        };
        if rc < 0 {
            return Err(dpdk_err(devstr, "rte_eth_rx_queue_setup", rc));
        }
        let mut txconf = info.default_txconf;
        txconf.offloads = 0;
        // SAFETY: as above, for the TX queue.
        let rc = unsafe { sys::rte_eth_tx_queue_setup(port_id, k, nb_txd, socket_u, &txconf) };
        if rc < 0 {
            return Err(dpdk_err(devstr, "rte_eth_tx_queue_setup", rc));
        }
    }
    // SAFETY: every queue is set up.
    let rc = unsafe { sys::rte_eth_dev_start(port_id) };
    if rc < 0 {
        return Err(dpdk_err(devstr, "rte_eth_dev_start", rc));
    }
    dev.started = true;
    // SAFETY: the port is started. Some virtual devices cannot do it (they see everything
    // anyway); that is not an error.
    let promisc = unsafe { sys::rte_eth_promiscuous_enable(port_id) } == 0;

    let mut mac = sys::rte_ether_addr::default();
    // SAFETY: mac is writable.
    let mac = if unsafe { sys::rte_eth_macaddr_get(port_id, &mut mac) } == 0 {
        MacAddr(mac.addr_bytes)
    } else {
        MacAddr::default()
    };
    let mut mtu = 0u16;
    // SAFETY: mtu is writable.
    let mtu = if unsafe { sys::rte_eth_dev_get_mtu(port_id, &mut mtu) } == 0 && mtu > 0 {
        u32::from(mtu)
    } else {
        DEFAULT_MTU
    };
    let link = link_status(port_id);
    let mode =
        format!(
        "dpdk port {port_id} ({driver}{}), {q} queue(s), {nb_rxd} rx / {nb_txd} tx descriptors, \
         rss {rss_desc}, rx checksum offload {}, tx fast-free {}, {}, pool {} ({} mbufs), \
         link {link}",
        if hotplugged { ", hot-plugged" } else { "" },
        if rx_cksum != 0 { "on" } else { "not offered" },
        if fast_free != 0 { "on" } else { "off" },
        if promisc { "promiscuous" } else { "not promiscuous" },
        pool.name(),
        pool.size(),
    );
    log::info!("{devstr}: {mode}");

    let dev = Arc::new(dev);
    let csum = CsumFlags {
        l4_mask: c.rx_l4_cksum_mask,
        l4_none: c.rx_l4_cksum_none,
    };
    let mut rx: Vec<Box<dyn RxQueue>> = Vec::with_capacity(queues);
    let mut tx: Vec<Box<dyn TxQueue>> = Vec::with_capacity(queues);
    let mut all_stats = Vec::with_capacity(queues);
    for k in 0..q {
        let stats = Arc::new(QueueStats::default());
        all_stats.push(stats.clone());
        rx.push(Box::new(DpdkRx {
            _dev: dev.clone(),
            port_id,
            queue: QueueId(k),
            mbufs: [ptr::null_mut(); CHUNK],
            stash: RefCell::new(Stash {
                mbufs: [ptr::null_mut(); CHUNK],
                len: 0,
                pos: 0,
            }),
            csum,
            stats: stats.clone(),
        }));
        tx.push(Box::new(DpdkTx {
            _dev: dev.clone(),
            pool: pool.clone(),
            port_id,
            queue: QueueId(k),
            mbufs: [ptr::null_mut(); CHUNK],
            lens: [0; CHUNK],
            stats,
        }));
    }
    Ok(DpdkPort {
        port: Port {
            info: PortInfo {
                name: devstr.to_string(),
                ifindex: info.if_index,
                mac,
                mtu,
                mode,
            },
            rx,
            tx,
            stats: PortStatsHandle::new(all_stats),
        },
        control: DpdkControl { dev },
    })
}

/// The RSS hash types to request, and a description for logs. `offered` is the device's
/// `flow_type_rss_offloads`; 0 means no RSS (single queue, or the device has none).
fn choose_rss(mode: RssMode, queues: usize, offered: u64) -> (u64, String) {
    if queues <= 1 {
        return (0, "off (one queue)".into());
    }
    if mode == RssMode::Off {
        return (0, "off (as configured)".into());
    }
    if offered == 0 {
        return (
            0,
            "off (the device has none; it spreads frames itself, the core's steering hands \
             frames to their owner)"
                .into(),
        );
    }
    let c = consts();
    if mode == RssMode::L4DstPort && offered & c.rss_l4_dst_only != 0 {
        let l4 = (c.rss_tcp | c.rss_udp) & offered;
        if l4 != 0 {
            return (l4 | c.rss_l4_dst_only, "tcp/udp destination port".into());
        }
    }
    let hf = (c.rss_ip | c.rss_tcp | c.rss_udp) & offered;
    if hf == 0 {
        return (0, "off (no ip/tcp/udp hash offered)".into());
    }
    let what = if mode == RssMode::L4DstPort {
        "ip+tcp+udp 5-tuple (destination-port-only hash not offered)"
    } else {
        "ip+tcp+udp 5-tuple"
    };
    (hf, what.into())
}

/// Offload flag values that matter on receive.
#[derive(Clone, Copy, Debug)]
struct CsumFlags {
    l4_mask: u64,
    l4_none: u64,
}

/// Mbufs `wait` received ahead of the next `rx_burst`.
struct Stash {
    mbufs: [*mut sys::rte_mbuf; CHUNK],
    len: usize,
    pos: usize,
}

/// The RX half of one DPDK queue.
pub struct DpdkRx {
    /// Keeps the device open while this queue exists.
    _dev: Arc<Device>,
    port_id: u16,
    queue: QueueId,
    mbufs: [*mut sys::rte_mbuf; CHUNK],
    stash: RefCell<Stash>,
    csum: CsumFlags,
    stats: Arc<QueueStats>,
}

// SAFETY: the raw mbuf pointers are owned by this handle alone (received and not yet freed);
// DPDK allows a queue to be polled from any one thread at a time, which `&mut self` on
// `rx_burst` and `!Sync` (RefCell) guarantee.
unsafe impl Send for DpdkRx {}

/// Per-burst RX tallies.
#[derive(Default)]
struct RxTally {
    got: usize,
    bytes: u64,
    csum_not_ready: u64,
    truncated: u64,
}

/// Copies `mbufs` into spare buffers of `burst` (the caller made sure they fit) and frees them.
fn deliver(mbufs: &mut [*mut sys::rte_mbuf], burst: &mut Burst, csum: CsumFlags, t: &mut RxTally) {
    for &m in mbufs.iter() {
        let Some(buf) = burst.spare_mut() else {
            t.truncated += 1; // cannot happen: callers never take more than burst.free()
            continue;
        };
        let mut ol = 0u64;
        // SAFETY: m is a valid mbuf we own; the destination is FRAME_CAPACITY writable bytes.
        let len = unsafe {
            sys::natgw_mbuf_copy_out(
                m,
                buf.buffer_mut().as_mut_ptr(),
                FRAME_CAPACITY as u32,
                &mut ol,
            )
        };
        if len < 0 {
            t.truncated += 1;
            continue;
        }
        buf.set_len(len as usize);
        if ol & csum.l4_mask == csum.l4_none {
            buf.set_rx_flags(RxFlags::CSUM_NOT_READY);
            t.csum_not_ready += 1;
        } else {
            buf.set_rx_flags(RxFlags::NONE);
        }
        burst.commit();
        t.got += 1;
        t.bytes += len as u64;
    }
    if !mbufs.is_empty() {
        // SAFETY: every pointer is a valid mbuf we own, freed exactly once here.
        unsafe { sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), mbufs.len() as libc::c_uint) };
    }
}

impl RxQueue for DpdkRx {
    fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let mut t = RxTally::default();
        let csum = self.csum;
        let stash = self.stash.get_mut();
        if stash.pos < stash.len {
            let take = (stash.len - stash.pos).min(burst.free());
            let (from, to) = (stash.pos, stash.pos + take);
            deliver(&mut stash.mbufs[from..to], burst, csum, &mut t);
            stash.pos = to;
        }
        while burst.free() > 0 {
            let want = burst.free().min(CHUNK);
            // SAFETY: the queue is set up and started; self.mbufs has room for `want` pointers.
            let n = usize::from(unsafe {
                sys::natgw_eth_rx_burst(
                    self.port_id,
                    self.queue.0,
                    self.mbufs.as_mut_ptr(),
                    want as u16,
                )
            });
            deliver(&mut self.mbufs[..n], burst, csum, &mut t);
            if n < want {
                break;
            }
        }
        self.stats.add(Counter::RxPackets, t.got as u64);
        self.stats.add(Counter::RxBytes, t.bytes);
        self.stats.add(Counter::RxCsumNotReady, t.csum_not_ready);
        self.stats.add(Counter::RxTruncated, t.truncated);
        t.got
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut stash = self.stash.borrow_mut();
        if stash.pos < stash.len {
            return Ok(true);
        }
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: as in rx_burst; the stash is empty, so its array is free to fill.
            let n = usize::from(unsafe {
                sys::natgw_eth_rx_burst(
                    self.port_id,
                    self.queue.0,
                    stash.mbufs.as_mut_ptr(),
                    CHUNK as u16,
                )
            });
            if n > 0 {
                stash.len = n;
                stash.pos = 0;
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(WAIT_POLL.min(deadline - now));
        }
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

impl Drop for DpdkRx {
    fn drop(&mut self) {
        let stash = self.stash.get_mut();
        if stash.pos < stash.len {
            // SAFETY: the stashed mbufs are valid and ours; the port is still open (self._dev is
            // dropped after this body).
            unsafe {
                sys::rte_pktmbuf_free_bulk(
                    stash.mbufs[stash.pos..stash.len].as_mut_ptr(),
                    (stash.len - stash.pos) as libc::c_uint,
                )
            };
            self.stats
                .add(Counter::RxDropped, (stash.len - stash.pos) as u64);
        }
        stash.len = 0;
        stash.pos = 0;
    }
}

/// The TX half of one DPDK queue.
pub struct DpdkTx {
    /// Keeps the device open while this queue exists.
    _dev: Arc<Device>,
    pool: Arc<MbufPool>,
    port_id: u16,
    queue: QueueId,
    mbufs: [*mut sys::rte_mbuf; CHUNK],
    lens: [u16; CHUNK],
    stats: Arc<QueueStats>,
}

// SAFETY: the mbuf array only holds pointers between allocation and hand-over within one
// tx_burst call; the queue is used by one thread at a time (`&mut self`).
unsafe impl Send for DpdkTx {}

impl TxQueue for DpdkTx {
    fn tx_burst(&mut self, frames: &mut Burst) -> usize {
        let total = frames.len();
        let mut sent = 0usize;
        let mut bytes = 0u64;
        for chunk in frames.frames().chunks(CHUNK) {
            let n = chunk.len();
            // SAFETY: the pool is alive; self.mbufs has room for n pointers.
            let rc = unsafe {
                sys::natgw_pktmbuf_alloc_bulk(
                    self.pool.raw(),
                    self.mbufs.as_mut_ptr(),
                    n as libc::c_uint,
                )
            };
            if rc != 0 {
                continue; // pool empty: the whole chunk counts as dropped below
            }
            let mut ready = 0usize;
            for (i, f) in chunk.iter().enumerate() {
                let m = self.mbufs[i];
                let len = f.len();
                // SAFETY: m is a fresh mbuf we own; f.data() is len readable bytes; the shim
                // checks len against the mbuf's tailroom.
                let ok = len <= usize::from(u16::MAX)
                    && unsafe { sys::natgw_mbuf_fill(m, f.data().as_ptr(), len as u16) } == 0;
                if ok {
                    self.mbufs[ready] = m;
                    self.lens[ready] = len as u16;
                    ready += 1;
                } else {
                    // SAFETY: m is ours and not handed to the device.
                    unsafe { sys::natgw_pktmbuf_free(m) };
                }
            }
            // SAFETY: the queue is set up and started; the first `ready` pointers are filled
            // mbufs whose ownership passes to the device for those it accepts.
            let accepted = usize::from(unsafe {
                sys::natgw_eth_tx_burst(
                    self.port_id,
                    self.queue.0,
                    self.mbufs.as_mut_ptr(),
                    ready as u16,
                )
            });
            if accepted < ready {
                // SAFETY: the device did not take these; they are still ours, freed once.
                unsafe {
                    sys::rte_pktmbuf_free_bulk(
                        self.mbufs[accepted..ready].as_mut_ptr(),
                        (ready - accepted) as libc::c_uint,
                    )
                };
            }
            sent += accepted;
            bytes += self.lens[..accepted]
                .iter()
                .map(|&l| u64::from(l))
                .sum::<u64>();
        }
        frames.clear();
        self.stats.add(Counter::TxPackets, sent as u64);
        self.stats.add(Counter::TxBytes, bytes);
        self.stats.add(Counter::TxDropped, (total - sent) as u64);
        sent
    }

    fn flush(&mut self) {
        // rte_eth_tx_burst hands frames to the device at once; nothing is held back.
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_name_strips_arguments() {
        assert_eq!(device_name("net_af_packet0,iface=vta"), "net_af_packet0");
        assert_eq!(device_name("net_ring0"), "net_ring0");
        assert_eq!(device_name("0000:3b:00.1"), "0000:3b:00.1");
        assert_eq!(device_name(""), "");
    }

    #[test]
    fn af_packet_devargs_get_queues_and_frames() {
        assert_eq!(
            hotplug_devargs("net_af_packet0,iface=vta", 2, 4096),
            "net_af_packet0,iface=vta,qpairs=2,framecnt=4096"
        );
        assert_eq!(
            hotplug_devargs("net_af_packet1,iface=x,qpairs=4,framecnt=1024", 2, 4096),
            "net_af_packet1,iface=x,qpairs=4,framecnt=1024"
        );
        assert_eq!(
            hotplug_devargs("net_af_packet0,iface=vta", 1, 3000),
            "net_af_packet0,iface=vta,qpairs=1,framecnt=4096"
        );
        assert_eq!(hotplug_devargs("net_ring3", 4, 4096), "net_ring3");
        assert_eq!(
            hotplug_devargs("net_af_xdp0,iface=x", 2, 4096),
            "net_af_xdp0,iface=x,queue_count=2"
        );
    }

    #[test]
    fn rss_follows_what_the_device_offers() {
        let c = consts();
        let all = c.rss_ip | c.rss_tcp | c.rss_udp | c.rss_l4_dst_only;
        assert_eq!(choose_rss(RssMode::FiveTuple, 1, all).0, 0);
        assert_eq!(choose_rss(RssMode::FiveTuple, 4, 0).0, 0);
        assert_eq!(choose_rss(RssMode::Off, 4, all).0, 0);
        assert_eq!(
            choose_rss(RssMode::FiveTuple, 4, all).0,
            c.rss_ip | c.rss_tcp | c.rss_udp
        );
        let (hf, _) = choose_rss(RssMode::L4DstPort, 4, all);
        assert_eq!(hf, c.rss_tcp | c.rss_udp | c.rss_l4_dst_only);
        // Never ask for a hash type the device did not offer (rte_eth_dev_configure refuses).
        let some = c.rss_nonfrag_ipv4_udp;
        let (hf, desc) = choose_rss(RssMode::L4DstPort, 4, some);
        assert_eq!(hf, some);
        assert!(desc.contains("not offered"), "{desc}");
    }

    #[test]
    fn link_status_display() {
        assert_eq!(LinkStatus::default().to_string(), "down");
        let l = LinkStatus {
            up: true,
            speed_mbps: 10000,
            full_duplex: true,
            autoneg: false,
        };
        assert_eq!(l.to_string(), "up 10000 Mbit/s full-duplex");
    }

    #[test]
    fn nothing_works_before_the_eal() {
        // Unit tests never start the EAL (the integration test binary does).
        assert!(!eal_ready());
        assert!(matches!(
            MbufPool::create(1024, None),
            Err(DpdkError::NotInitialised)
        ));
        let cfg = PortConfig::new(super::super::Driver::Dpdk, "net_null0");
        match open(&cfg, 1) {
            Err(PortError::Invalid { reason, .. }) => assert!(reason.contains("not initialised")),
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(cleanup_eal().is_ok(), "cleanup without init is a no-op");
    }
}
