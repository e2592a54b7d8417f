//! AF_XDP backend: one XDP socket per device RX queue, copy mode, rings driven by hand.
//!
//! Layer: packet I/O, fast path (`rx_burst`/`tx_burst`), slow path (`open`). Kernel interface:
//! `Documentation/networking/af_xdp.rst` and `<linux/if_xdp.h>`. No libbpf/libxdp: the socket,
//! UMEM and rings are set up with `libc`, and the redirect program is our own
//! (module `xdp_prog`), attached native where the driver allows and generic otherwise.
//!
//! Queue `k` of the port is an AF_XDP socket bound to device RX queue `k` (so the device needs at
//! least as many RX queues as the port has queues; a veth gets them with `numrxqueues`). The
//! socket's UMEM is split in two disjoint halves: the RX half owns the fill and RX rings and the
//! first `n` frames, the TX half owns the TX and completion rings and the other frames. Each half
//! is one handle, so the worker that owns it is the only user of its rings (single producer,
//! single consumer with the kernel).
//!
//! RX: frames the kernel wrote (RX ring descriptors) are copied into burst buffers and their
//! UMEM frames go straight back on the fill ring, so the fill ring never runs dry while the
//! worker keeps up. TX: free TX frames (a stack, refilled from the completion ring) receive a
//! copy of each frame, descriptors go on the TX ring, and one `sendto(MSG_DONTWAIT)` per burst
//! wakes the kernel (copy mode needs it).
//!
//! Ring protocol: the producer index is published with release ordering after the descriptors
//! are written; the consumer index is read with acquire ordering before descriptors are read.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sys::{self, Mmap};
use super::xdp_prog::XdpAttachment;
use super::{
    Burst, Counter, Port, PortConfig, PortError, PortInfo, PortStatsHandle, QueueId, QueueStats,
    RxFlags, RxQueue, TxQueue, FRAME_CAPACITY,
};

/// Constants and layouts from `<linux/if_xdp.h>` (UAPI, stable).
mod uapi {
    pub const SOL_XDP: libc::c_int = 283;
    pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
    pub const XDP_RX_RING: libc::c_int = 2;
    pub const XDP_TX_RING: libc::c_int = 3;
    pub const XDP_UMEM_REG: libc::c_int = 4;
    pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
    pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
    pub const XDP_STATISTICS: libc::c_int = 7;

    pub const XDP_COPY: u16 = 1 << 1;
    pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
    pub const XDP_RING_NEED_WAKEUP: u32 = 1;

    pub const XDP_PGOFF_RX_RING: libc::off_t = 0;
    pub const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
    pub const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
    pub const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

    /// `struct xdp_umem_reg` (with `flags`; the kernel accepts this size since 5.4).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct UmemReg {
        pub addr: u64,
        pub len: u64,
        pub chunk_size: u32,
        pub headroom: u32,
        pub flags: u32,
        pub pad: u32,
    }

    /// `struct xdp_ring_offset`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct RingOffset {
        pub producer: u64,
        pub consumer: u64,
        pub desc: u64,
        pub flags: u64,
    }

    /// `struct xdp_mmap_offsets`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct MmapOffsets {
        pub rx: RingOffset,
        pub tx: RingOffset,
        pub fr: RingOffset,
        pub cr: RingOffset,
    }

    /// `struct sockaddr_xdp`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct SockaddrXdp {
        pub family: u16,
        pub flags: u16,
        pub ifindex: u32,
        pub queue_id: u32,
        pub shared_umem_fd: u32,
    }

    /// `struct xdp_statistics`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub struct XdpStatistics {
        pub rx_dropped: u64,
        pub rx_invalid_descs: u64,
        pub tx_invalid_descs: u64,
        pub rx_ring_full: u64,
        pub rx_fill_ring_empty_descs: u64,
        pub tx_ring_empty_descs: u64,
    }

    /// `struct xdp_desc` size (addr u64, len u32, options u32).
    pub const DESC_SIZE: usize = 16;
}

/// UMEM chunk size: one frame per chunk.
const CHUNK: usize = FRAME_CAPACITY;
/// Ring sizes are powers of two within these bounds.
const MIN_RING: usize = 64;
const MAX_RING: usize = 1 << 15;
/// TX needs fewer slots: the kernel drains them at every kick.
const MAX_TX_RING: usize = 2048;

/// One mmapped AF_XDP ring (fill, completion, RX or TX).
struct Ring {
    map: Mmap,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    mask: u32,
}

impl Ring {
    fn map(
        fd: &OwnedFd,
        off: &uapi::RingOffset,
        entries: usize,
        entry_size: usize,
        pgoff: libc::off_t,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + entries * entry_size;
        let map = Mmap::socket_ring(fd.as_raw_fd(), len, pgoff)?;
        let ring = Ring {
            map,
            producer: off.producer as usize,
            consumer: off.consumer as usize,
            flags: off.flags as usize,
            desc: off.desc as usize,
            mask: (entries - 1) as u32,
        };
        let in_map = |o: usize| o % 4 == 0 && o + 4 <= len;
        if !(in_map(ring.producer) && in_map(ring.consumer) && in_map(ring.flags)) {
            return Err(io::Error::other("XDP ring offsets outside the mapping"));
        }
        Ok(ring)
    }

    #[inline]
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` was checked to be a 4-aligned offset inside the mapping at construction,
        // and the mapping lives as long as `self`.
        unsafe { &*self.map.ptr().add(off).cast::<AtomicU32>() }
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        self.word(self.producer)
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        self.word(self.consumer)
    }

    #[inline]
    fn needs_wakeup(&self) -> bool {
        self.word(self.flags).load(Ordering::Relaxed) & uapi::XDP_RING_NEED_WAKEUP != 0
    }

    /// Pointer to descriptor slot `index` (masked) of `size` bytes.
    #[inline]
    fn slot(&self, index: u32, size: usize) -> *mut u8 {
        let i = (index & self.mask) as usize;
        // SAFETY: i <= mask < entries, and the mapping holds `entries * size` bytes from `desc`.
        unsafe { self.map.ptr().add(self.desc + i * size) }
    }
}

/// What both halves of a queue share: the socket, its UMEM and the port's XDP program.
struct Xsk {
    fd: OwnedFd,
    umem: Mmap,
    _prog: Arc<XdpAttachment>,
}

impl Xsk {
    /// Frame bytes `[addr, addr + len)` of the UMEM, if inside it.
    #[inline]
    fn frame_ptr(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let a = usize::try_from(addr).ok()?;
        if a.checked_add(len)? > self.umem.len() {
            return None;
        }
        // SAFETY: a + len <= umem length, checked above.
        Some(unsafe { self.umem.ptr().add(a) })
    }
}

/// The RX half of one AF_XDP queue.
pub struct AfXdpRx {
    xsk: Arc<Xsk>,
    rx: Ring,
    fill: Ring,
    last_kernel_drops: std::cell::Cell<u64>,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl AfXdpRx {
    fn refresh_kernel_stats(&self) {
        if let Ok(s) = sys::getsockopt::<uapi::XdpStatistics>(
            self.xsk.fd.as_raw_fd(),
            uapi::SOL_XDP,
            uapi::XDP_STATISTICS,
        ) {
            let total = s.rx_dropped + s.rx_ring_full + s.rx_invalid_descs;
            let prev = self.last_kernel_drops.replace(total);
            self.stats
                .add(Counter::RxDropped, total.saturating_sub(prev));
        }
    }
}

impl RxQueue for AfXdpRx {
    fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        let prod = self.rx.producer().load(Ordering::Acquire);
        let avail = prod.wrapping_sub(cons) as usize;
        let n = avail.min(burst.free());
        if n == 0 {
            if self.fill.needs_wakeup() {
                // SAFETY: zero-length recvfrom with null buffers reads and writes no memory.
                unsafe {
                    libc::recvfrom(
                        self.xsk.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    );
                }
            }
            return 0;
        }
        let fill_prod = self.fill.producer().load(Ordering::Relaxed);
        let mut bytes = 0u64;
        let mut got = 0usize;
        let mut truncated = 0u64;
        for i in 0..n as u32 {
            let d = self.rx.slot(cons.wrapping_add(i), uapi::DESC_SIZE);
            // SAFETY: `d` is a 16-byte descriptor slot the kernel published (acquired above).
            let (addr, len) = unsafe {
                (
                    d.cast::<u64>().read_volatile(),
                    d.add(8).cast::<u32>().read_volatile(),
                )
            };
            let len = len as usize;
            match (len <= FRAME_CAPACITY, self.xsk.frame_ptr(addr, len)) {
                (true, Some(src)) => {
                    if let Some(buf) = burst.spare_mut() {
                        // SAFETY: `src..src+len` is inside the UMEM (checked) and the frame is ours
                        // until we put it back on the fill ring below.
                        let data = unsafe { std::slice::from_raw_parts(src, len) };
                        buf.buffer_mut()[..len].copy_from_slice(data);
                        buf.set_len(len);
                        buf.set_rx_flags(RxFlags::NONE);
                        burst.commit();
                        got += 1;
                        bytes += len as u64;
                    }
                }
                _ => truncated += 1,
            }
            // Give the chunk back (aligned mode: the kernel masks the offset inside the chunk).
            let f = self.fill.slot(fill_prod.wrapping_add(i), 8);
            // SAFETY: the fill ring has room: it holds as many slots as the RX half has frames.
            unsafe { f.cast::<u64>().write_volatile(addr & !(CHUNK as u64 - 1)) };
        }
        self.rx
            .consumer()
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        self.fill
            .producer()
            .store(fill_prod.wrapping_add(n as u32), Ordering::Release);
        self.stats.add(Counter::RxPackets, got as u64);
        self.stats.add(Counter::RxBytes, bytes);
        self.stats.add(Counter::RxTruncated, truncated);
        got
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        self.refresh_kernel_stats();
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        if self.rx.producer().load(Ordering::Acquire) != cons {
            return Ok(true);
        }
        sys::poll_in(self.xsk.fd.as_raw_fd(), timeout)
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

/// The TX half of one AF_XDP queue.
pub struct AfXdpTx {
    xsk: Arc<Xsk>,
    tx: Ring,
    comp: Ring,
    /// UMEM addresses of TX frames not in flight.
    free: Vec<u64>,
    pending: bool,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl AfXdpTx {
    /// Moves completed frames back to the free stack.
    #[inline]
    fn reclaim(&mut self) {
        let cons = self.comp.consumer().load(Ordering::Relaxed);
        let prod = self.comp.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            let c = self.comp.slot(cons.wrapping_add(i), 8);
            // SAFETY: a completion entry the kernel published (acquired above).
            let addr = unsafe { c.cast::<u64>().read_volatile() };
            if self.free.len() < self.free.capacity() {
                self.free.push(addr);
            }
        }
        self.comp
            .consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
    }

    #[inline]
    fn kick(&mut self) {
        // SAFETY: zero-length sendto with null buffer and address reads no memory.
        let rc = unsafe {
            libc::sendto(
                self.xsk.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        self.pending = rc < 0;
    }
}

impl TxQueue for AfXdpTx {
    fn tx_burst(&mut self, frames: &mut Burst) -> usize {
        self.reclaim();
        let n = frames.len();
        let prod = self.tx.producer().load(Ordering::Relaxed);
        let mut sent = 0u32;
        let mut bytes = 0u64;
        for f in frames.frames() {
            let len = f.len();
            let Some(addr) = self.free.pop() else {
                break;
            };
            let Some(dst) = self.xsk.frame_ptr(addr, len) else {
                continue;
            };
            // SAFETY: the frame is a free TX frame of our half, inside the UMEM (checked); the
            // descriptor slot is free because the TX ring has as many slots as TX frames.
            unsafe {
                std::ptr::copy_nonoverlapping(f.data().as_ptr(), dst, len);
                let d = self.tx.slot(prod.wrapping_add(sent), uapi::DESC_SIZE);
                d.cast::<u64>().write_volatile(addr);
                d.add(8).cast::<u32>().write_volatile(len as u32);
                d.add(12).cast::<u32>().write_volatile(0);
            }
            sent += 1;
            bytes += len as u64;
        }
        frames.clear();
        if sent > 0 {
            self.tx
                .producer()
                .store(prod.wrapping_add(sent), Ordering::Release);
            self.kick();
        }
        self.stats.add(Counter::TxPackets, u64::from(sent));
        self.stats.add(Counter::TxBytes, bytes);
        self.stats
            .add(Counter::TxDropped, (n - sent as usize) as u64);
        sent as usize
    }

    fn flush(&mut self) {
        if self.pending || self.tx.needs_wakeup() {
            self.kick();
        }
        self.reclaim();
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

fn ring_size(frames: usize, max: usize) -> usize {
    frames.clamp(MIN_RING, max).next_power_of_two()
}

/// Opens one AF_XDP socket for device queue `q` and splits it into its two halves.
fn open_queue(
    cfg: &PortConfig,
    ifindex: u32,
    q: u32,
    prog: &Arc<XdpAttachment>,
) -> Result<(AfXdpRx, AfXdpTx), PortError> {
    let dev = cfg.device.as_str();
    let err = |op: &'static str| {
        move |source| PortError::Io {
            device: dev.to_string(),
            op,
            source,
        }
    };
    let n_rx = ring_size(cfg.ring_frames, MAX_RING);
    let n_tx = ring_size(cfg.ring_frames.min(MAX_TX_RING), MAX_TX_RING);
    let fd = sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0).map_err(err("socket(AF_XDP)"))?;
    let umem = Mmap::anonymous((n_rx + n_tx) * CHUNK).map_err(err("mmap(UMEM)"))?;
    let reg = uapi::UmemReg {
        addr: umem.ptr() as u64,
        len: umem.len() as u64,
        chunk_size: CHUNK as u32,
        headroom: 0,
        flags: 0,
        pad: 0,
    };
    sys::setsockopt(&fd, uapi::SOL_XDP, uapi::XDP_UMEM_REG, &reg).map_err(err("XDP_UMEM_REG"))?;
    let sizes = [
        (uapi::XDP_UMEM_FILL_RING, n_rx, "XDP_UMEM_FILL_RING"),
        (
            uapi::XDP_UMEM_COMPLETION_RING,
            n_tx,
            "XDP_UMEM_COMPLETION_RING",
        ),
        (uapi::XDP_RX_RING, n_rx, "XDP_RX_RING"),
        (uapi::XDP_TX_RING, n_tx, "XDP_TX_RING"),
    ];
    for (opt, n, name) in sizes {
        let v = n as libc::c_int;
        sys::setsockopt(&fd, uapi::SOL_XDP, opt, &v).map_err(err(name))?;
    }
    let off: uapi::MmapOffsets =
        sys::getsockopt(fd.as_raw_fd(), uapi::SOL_XDP, uapi::XDP_MMAP_OFFSETS)
            .map_err(err("XDP_MMAP_OFFSETS"))?;
    let fill = Ring::map(&fd, &off.fr, n_rx, 8, uapi::XDP_UMEM_PGOFF_FILL_RING)
        .map_err(err("mmap(fill ring)"))?;
    let comp = Ring::map(&fd, &off.cr, n_tx, 8, uapi::XDP_UMEM_PGOFF_COMPLETION_RING)
        .map_err(err("mmap(completion ring)"))?;
    let rx = Ring::map(&fd, &off.rx, n_rx, uapi::DESC_SIZE, uapi::XDP_PGOFF_RX_RING)
        .map_err(err("mmap(RX ring)"))?;
    let tx = Ring::map(&fd, &off.tx, n_tx, uapi::DESC_SIZE, uapi::XDP_PGOFF_TX_RING)
        .map_err(err("mmap(TX ring)"))?;

    // Hand every RX frame to the kernel before binding.
    for i in 0..n_rx {
        let f = fill.slot(i as u32, 8);
        // SAFETY: slot i < n_rx of the fill ring, which nobody else uses yet.
        unsafe { f.cast::<u64>().write_volatile((i * CHUNK) as u64) };
    }
    fill.producer().store(n_rx as u32, Ordering::Release);

    let sxdp = uapi::SockaddrXdp {
        family: libc::AF_XDP as u16,
        flags: uapi::XDP_COPY | uapi::XDP_USE_NEED_WAKEUP,
        ifindex,
        queue_id: q,
        shared_umem_fd: 0,
    };
    // SAFETY: `sxdp` is a valid sockaddr_xdp and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sxdp as *const uapi::SockaddrXdp).cast(),
            size_of::<uapi::SockaddrXdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(PortError::Io {
            device: dev.to_string(),
            op: "bind(AF_XDP) (does the device have this many RX queues?)",
            source: io::Error::last_os_error(),
        });
    }
    prog.register(q, fd.as_raw_fd())
        .map_err(err("BPF_MAP_UPDATE_ELEM(XSKMAP)"))?;

    let xsk = Arc::new(Xsk {
        fd,
        umem,
        _prog: prog.clone(),
    });
    let stats = Arc::new(QueueStats::default());
    let free: Vec<u64> = (0..n_tx)
        .rev()
        .map(|i| ((n_rx + i) * CHUNK) as u64)
        .collect();
    let queue = QueueId(q as u16);
    Ok((
        AfXdpRx {
            xsk: xsk.clone(),
            rx,
            fill,
            last_kernel_drops: std::cell::Cell::new(0),
            stats: stats.clone(),
            queue,
        },
        AfXdpTx {
            xsk,
            tx,
            comp,
            free,
            pending: false,
            stats,
            queue,
        },
    ))
}

/// Opens `cfg.device` as an AF_XDP port with `queues` queues (device RX queues `0..queues`).
pub fn open(cfg: &PortConfig, queues: usize) -> Result<Port, PortError> {
    let dev = cfg.device.as_str();
    let io = |op: &'static str| {
        move |source| PortError::Io {
            device: dev.to_string(),
            op,
            source,
        }
    };
    let ifindex = sys::ifindex(dev).ok_or_else(|| PortError::NoSuchInterface(dev.to_string()))?;
    let (mac, mtu) = sys::mac_and_mtu(dev).map_err(io("SIOCGIFHWADDR/SIOCGIFMTU"))?;
    let prog = Arc::new(XdpAttachment::load(queues as u32).map_err(io("load XDP program"))?);
    // Sockets are bound and registered before the program is attached, so no frame is
    // redirected to a queue without a socket.
    let mut rxs: Vec<Box<dyn RxQueue>> = Vec::with_capacity(queues);
    let mut txs: Vec<Box<dyn TxQueue>> = Vec::with_capacity(queues);
    let mut stats = Vec::with_capacity(queues);
    for q in 0..queues {
        let (rx, tx) = open_queue(cfg, ifindex, q as u32, &prog)?;
        stats.push(rx.stats.clone());
        rxs.push(Box::new(rx));
        txs.push(Box::new(tx));
    }
    prog.attach(ifindex, cfg.xdp_mode)
        .map_err(io("BPF_LINK_CREATE(XDP)"))?;
    Ok(Port {
        info: PortInfo {
            name: dev.to_string(),
            ifindex,
            mac,
            mtu,
            mode: format!("af_xdp {} copy, {} queue(s)", prog.mode(), queues),
        },
        rx: rxs,
        tx: txs,
        stats: PortStatsHandle::new(stats),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::Driver;

    #[test]
    fn uapi_layouts() {
        assert_eq!(size_of::<uapi::UmemReg>(), 32);
        assert_eq!(size_of::<uapi::MmapOffsets>(), 128);
        assert_eq!(size_of::<uapi::SockaddrXdp>(), 16);
        assert_eq!(size_of::<uapi::XdpStatistics>(), 48);
        assert_eq!(ring_size(1, MAX_RING), MIN_RING);
        assert_eq!(ring_size(1000, MAX_RING), 1024);
        assert_eq!(ring_size(1 << 20, MAX_RING), MAX_RING);
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let cfg = PortConfig::new(Driver::AfXdp, "natgw-nope1");
        assert!(matches!(open(&cfg, 1), Err(PortError::NoSuchInterface(_))));
    }
}
