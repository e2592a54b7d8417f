//! AF_PACKET backend: TPACKET_V2 mmap RX and TX rings, `PACKET_FANOUT`.
//!
//! Layer: packet I/O, fast path (`rx_burst`/`tx_burst`), slow path (`open`). Kernel interface:
//! `packet(7)` and `Documentation/networking/packet_mmap.rst`.
//!
//! Per queue we open two sockets, each owned by one handle:
//! - RX: a TPACKET_V2 socket bound to the interface for `ETH_P_ALL`, promiscuous
//!   (`PACKET_MR_PROMISC`), `PACKET_IGNORE_OUTGOING`, member of a `PACKET_FANOUT` group whose id
//!   the kernel picks (`PACKET_FANOUT_FLAG_UNIQUEID`), so the queues of one port split the traffic
//!   and ports never collide. The ring is a sequence of fixed-size slots, each with its own status
//!   word: the kernel hands a slot over (`TP_STATUS_USER`) as soon as the frame is in it, we copy
//!   the frame into a burst buffer and give the slot back (`TP_STATUS_KERNEL`) at once. A burst
//!   walks slots in ring order until one is not ours or the burst is full.
//!
//!   Why not TPACKET_V3: a V3 block reaches user space only when it is full or when the block
//!   retire timer fires (at least 1 ms, rounded up to the timer tick), so under light load every
//!   frame waited 1–2 ms; the V3 ABI gives no way to read a block while the kernel still fills
//!   it. With per-slot status the added latency is the polling interval (about 10 µs send to
//!   receive on a veth, against 0.9 ms with V3), and the forwarding rate measured with the
//!   ignored `bench_forward_rate` test and `testbed bench` was no lower. The ring has
//!   `ring_frames` slots (at least 64, rounded up to whole blocks), one frame each: unlike V3,
//!   which packed small frames densely into its blocks, it does not hold more minimum-size frames
//!   than that.
//! - TX: a TPACKET_V2 socket bound with protocol 0 (so it receives nothing), with
//!   `PACKET_QDISC_BYPASS` and `PACKET_LOSS`, and a ring of fixed 2 KiB slots. `tx_burst` copies
//!   frames into free slots (`TP_STATUS_AVAILABLE`), marks them `TP_STATUS_SEND_REQUEST` and
//!   makes one `send(MSG_DONTWAIT)` per burst, which transmits every marked slot.
//!
//! While the sockets of a port are set up, each carries a drop-all classic BPF filter, so no
//! frame is received twice before all of them have joined the fanout group; the filters are
//! removed once the group is complete.
//!
//! Frames with an unfinished checksum (`TP_STATUS_CSUMNOTREADY`) are delivered, flagged
//! [`RxFlags::CSUM_NOT_READY`] and counted; frames longer than a [`super::PacketBuf`] (GSO
//! super-frames, which the kernel truncates to the slot) are dropped and counted as truncated;
//! outgoing frames (`PACKET_OUTGOING`) are skipped. Kernel ring drops (`PACKET_STATISTICS`) are
//! added to `rx_dropped` every 4096 released slots and in `wait`.
//!
//! Ring invariants: a slot belongs to user space exactly while its status word says so;
//! we read the status with acquire ordering before touching the contents and write it with
//! release ordering after we are done, which pairs with the kernel's barriers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sys::{self, Mmap};
use super::{
    Burst, Counter, FanoutMode, Port, PortConfig, PortError, PortInfo, PortStatsHandle, QueueId,
    QueueStats, RxFlags, RxQueue, TxQueue, FRAME_CAPACITY,
};

/// Constants and layouts from `<linux/if_packet.h>` (UAPI, stable).
mod uapi {
    pub const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
    pub const PACKET_RX_RING: libc::c_int = 5;
    pub const PACKET_STATISTICS: libc::c_int = 6;
    pub const PACKET_VERSION: libc::c_int = 10;
    pub const PACKET_TX_RING: libc::c_int = 13;
    pub const PACKET_LOSS: libc::c_int = 14;
    pub const PACKET_FANOUT: libc::c_int = 18;
    pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
    pub const PACKET_FANOUT_DATA: libc::c_int = 22;
    pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

    pub const PACKET_MR_PROMISC: libc::c_ushort = 1;
    pub const PACKET_OUTGOING: u8 = 4;

    pub const TPACKET_V2: libc::c_int = 1;

    pub const PACKET_FANOUT_HASH: u32 = 0;
    pub const PACKET_FANOUT_LB: u32 = 1;
    pub const PACKET_FANOUT_CPU: u32 = 2;
    pub const PACKET_FANOUT_QM: u32 = 5;
    pub const PACKET_FANOUT_CBPF: u32 = 6;
    pub const PACKET_FANOUT_EBPF: u32 = 7;
    pub const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

    // RX status bits.
    pub const TP_STATUS_KERNEL: u32 = 0;
    pub const TP_STATUS_USER: u32 = 1;
    pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
    // TX status values.
    pub const TP_STATUS_AVAILABLE: u32 = 0;
    pub const TP_STATUS_SEND_REQUEST: u32 = 1;
    pub const TP_STATUS_WRONG_FORMAT: u32 = 1 << 2;

    /// `struct tpacket_req` (V2 rings).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct TpacketReq {
        pub block_size: u32,
        pub block_nr: u32,
        pub frame_size: u32,
        pub frame_nr: u32,
    }

    /// `struct tpacket_stats` (what `PACKET_STATISTICS` returns for V1/V2 sockets).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct TpacketStats {
        pub packets: u32,
        pub drops: u32,
    }

    /// `struct packet_mreq`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct PacketMreq {
        pub ifindex: libc::c_int,
        pub mr_type: libc::c_ushort,
        pub alen: libc::c_ushort,
        pub address: [u8; 8],
    }

    // `struct tpacket2_hdr` (32 bytes): tp_status u32, tp_len u32, tp_snaplen u32, tp_mac u16,
    // tp_net u16, tp_sec u32, tp_nsec u32, tp_vlan_tci u16, tp_vlan_tpid u16, tp_padding[4];
    // then `struct sockaddr_ll` at TPACKET_ALIGN(32) = 32.
    pub const P2_STATUS: usize = 0;
    pub const P2_LEN: usize = 4;
    pub const P2_SNAPLEN: usize = 8;
    pub const P2_MAC: usize = 12;
    pub const P2_PKTTYPE: usize = 32 + 10;
    /// Header bytes we read at the start of each RX slot (through `sll_pkttype`).
    pub const P2_HDR_READ: usize = P2_PKTTYPE + 1;
    /// Where TX frame data starts in a V2 slot: TPACKET2_HDRLEN - sizeof(sockaddr_ll)
    /// = TPACKET_ALIGN(sizeof(tpacket2_hdr)) = 32.
    pub const P2_DATA: usize = 32;
}

/// RX ring block size (a multiple of the page size); slots never straddle blocks.
const RX_BLOCK_SIZE: usize = 1 << 17;
/// RX slot size: the V2 header and `sockaddr_ll` put the frame at offset 66 (`tp_mac`), so 128
/// bytes of headroom plus one [`FRAME_CAPACITY`] buffer; a multiple of `TPACKET_ALIGNMENT` (16)
/// and of the cache line.
const RX_FRAME_SIZE: usize = FRAME_CAPACITY + 128;
/// RX slots per block (the kernel fits whole slots into each block).
const RX_FRAMES_PER_BLOCK: usize = RX_BLOCK_SIZE / RX_FRAME_SIZE;
/// TX slot size: one [`FRAME_CAPACITY`] buffer plus the V2 header fits.
const TX_FRAME_SIZE: usize = 4096;
/// TX ring block size (a multiple of the page size and of [`TX_FRAME_SIZE`]).
const TX_BLOCK_SIZE: usize = 1 << 16;
/// Refresh kernel drop counters every this many released RX slots.
const STATS_EVERY_FRAMES: u32 = 4096;
/// Upper bound on TX ring slots per queue (the ring only buffers between kicks).
const TX_RING_MAX_FRAMES: usize = 2048;
/// Max transmit bytes per frame.
const TX_MAX_FRAME: usize = TX_FRAME_SIZE - uapi::P2_DATA;

#[inline]
fn io_err<'a>(device: &'a str, op: &'static str) -> impl FnOnce(io::Error) -> PortError + 'a {
    move |source| PortError::Io {
        device: device.to_string(),
        op,
        source,
    }
}

/// Reads a native-endian u32 at `base + off`.
///
/// # Safety
/// `base + off .. base + off + 4` must lie in a live mapping and be 4-byte aligned.
#[inline]
unsafe fn rd32(base: *const u8, off: usize) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe { base.add(off).cast::<u32>().read_volatile() }
}

/// Reads a native-endian u16 at `base + off`.
///
/// # Safety
/// `base + off .. base + off + 2` must lie in a live mapping and be 2-byte aligned.
#[inline]
unsafe fn rd16(base: *const u8, off: usize) -> u16 {
    // SAFETY: guaranteed by the caller.
    unsafe { base.add(off).cast::<u16>().read_volatile() }
}

/// The status word at `base + off` as an atomic shared with the kernel.
///
/// # Safety
/// `base + off` must be a 4-byte aligned address inside a mapping that outlives `'a`.
#[inline]
unsafe fn status_word<'a>(base: *mut u8, off: usize) -> &'a AtomicU32 {
    // SAFETY: guaranteed by the caller; AtomicU32 has the layout of u32.
    unsafe { &*base.add(off).cast::<AtomicU32>() }
}

/// The RX half of one AF_PACKET queue.
pub struct AfPacketRx {
    fd: OwnedFd,
    ring: Mmap,
    frame_nr: usize,
    /// The next slot to look at (the kernel fills slots in ring order).
    frame: usize,
    frames_released: u32,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl AfPacketRx {
    #[inline]
    fn frame_base(&self, frame: usize) -> *mut u8 {
        let off = (frame / RX_FRAMES_PER_BLOCK) * RX_BLOCK_SIZE
            + (frame % RX_FRAMES_PER_BLOCK) * RX_FRAME_SIZE;
        // SAFETY: frame < frame_nr = block_nr * RX_FRAMES_PER_BLOCK, so the slot lies inside its
        // block, and the mapping is block_nr * RX_BLOCK_SIZE bytes long.
        unsafe { self.ring.ptr().add(off) }
    }

    #[inline]
    fn frame_status(&self, frame: usize) -> &AtomicU32 {
        // SAFETY: the slot's status word is at its 4-byte aligned start inside the mapping,
        // which lives as long as `self`.
        unsafe { status_word(self.frame_base(frame), uapi::P2_STATUS) }
    }

    /// Gives the current slot back to the kernel and moves to the next one.
    #[inline]
    fn release_frame(&mut self) {
        self.frame_status(self.frame)
            .store(uapi::TP_STATUS_KERNEL, Ordering::Release);
        self.frame += 1;
        if self.frame == self.frame_nr {
            self.frame = 0;
        }
        self.frames_released = self.frames_released.wrapping_add(1);
        if self.frames_released % STATS_EVERY_FRAMES == 0 {
            self.refresh_kernel_stats();
        }
    }

    /// Adds the kernel's ring drops since the last call to `rx_dropped` (the kernel resets its
    /// counters on each read).
    fn refresh_kernel_stats(&self) {
        if let Ok(s) = sys::getsockopt::<uapi::TpacketStats>(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            uapi::PACKET_STATISTICS,
        ) {
            self.stats.add(Counter::RxDropped, u64::from(s.drops));
        }
    }
}

impl RxQueue for AfPacketRx {
    fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let mut got = 0usize;
        let mut bytes = 0u64;
        let mut csum_not_ready = 0u64;
        let mut truncated = 0u64;
        while !burst.is_full() {
            let status = self.frame_status(self.frame).load(Ordering::Acquire);
            if status & uapi::TP_STATUS_USER == 0 {
                break;
            }
            let base = self.frame_base(self.frame);
            // SAFETY: the slot is ours (status USER, acquired); the header fields are aligned
            // and lie inside the slot (P2_HDR_READ < RX_FRAME_SIZE).
            let (len, snaplen, mac, pkttype) = unsafe {
                (
                    rd32(base, uapi::P2_LEN) as usize,
                    rd32(base, uapi::P2_SNAPLEN) as usize,
                    usize::from(rd16(base, uapi::P2_MAC)),
                    base.add(uapi::P2_PKTTYPE).read_volatile(),
                )
            };
            if pkttype != uapi::PACKET_OUTGOING {
                if len > snaplen
                    || snaplen > FRAME_CAPACITY
                    || mac < uapi::P2_HDR_READ
                    || mac + snaplen > RX_FRAME_SIZE
                {
                    truncated += 1;
                } else if let Some(buf) = burst.spare_mut() {
                    // SAFETY: the frame bytes lie inside the slot (checked above) and do not
                    // overlap the buffer, which is ordinary heap memory.
                    let src = unsafe { std::slice::from_raw_parts(base.add(mac), snaplen) };
                    buf.buffer_mut()[..snaplen].copy_from_slice(src);
                    buf.set_len(snaplen);
                    if status & uapi::TP_STATUS_CSUMNOTREADY != 0 {
                        buf.set_rx_flags(RxFlags::CSUM_NOT_READY);
                        csum_not_ready += 1;
                    } else {
                        buf.set_rx_flags(RxFlags::NONE);
                    }
                    burst.commit();
                    got += 1;
                    bytes += snaplen as u64;
                }
            }
            self.release_frame();
        }
        self.stats.add(Counter::RxPackets, got as u64);
        self.stats.add(Counter::RxBytes, bytes);
        self.stats.add(Counter::RxCsumNotReady, csum_not_ready);
        self.stats.add(Counter::RxTruncated, truncated);
        got
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        self.refresh_kernel_stats();
        if self.frame_status(self.frame).load(Ordering::Acquire) & uapi::TP_STATUS_USER != 0 {
            return Ok(true);
        }
        sys::poll_in(self.fd.as_raw_fd(), timeout)
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

/// The TX half of one AF_PACKET queue.
pub struct AfPacketTx {
    fd: OwnedFd,
    ring: Mmap,
    frame_nr: usize,
    /// Next slot to fill.
    slot: usize,
    /// Slots marked SEND_REQUEST whose kick failed (retry in `flush`).
    pending: bool,
    stats: Arc<QueueStats>,
    queue: QueueId,
}

impl AfPacketTx {
    #[inline]
    fn slot_base(&self, slot: usize) -> *mut u8 {
        // SAFETY: slot < frame_nr and the mapping holds frame_nr contiguous TX_FRAME_SIZE slots
        // (TX_BLOCK_SIZE is a multiple of TX_FRAME_SIZE, so blocks leave no gaps).
        unsafe { self.ring.ptr().add(slot * TX_FRAME_SIZE) }
    }

    #[inline]
    fn kick(&mut self) {
        self.pending = sys::kick(self.fd.as_raw_fd()).is_err();
    }
}

impl TxQueue for AfPacketTx {
    fn tx_burst(&mut self, frames: &mut Burst) -> usize {
        let n = frames.len();
        let mut sent = 0usize;
        let mut bytes = 0u64;
        for f in frames.frames() {
            let len = f.len();
            if len > TX_MAX_FRAME {
                continue;
            }
            let base = self.slot_base(self.slot);
            // SAFETY: the status word is at the 4-aligned start of a slot inside the mapping.
            let status = unsafe { status_word(base, uapi::P2_STATUS) };
            let st = status.load(Ordering::Acquire);
            if st != uapi::TP_STATUS_AVAILABLE {
                if st & uapi::TP_STATUS_WRONG_FORMAT != 0 {
                    // The kernel refused an earlier frame in this slot (PACKET_LOSS makes it skip
                    // it); the slot is free again.
                    status.store(uapi::TP_STATUS_AVAILABLE, Ordering::Release);
                    self.stats.add(Counter::TxDropped, 1);
                } else {
                    break; // ring full: the rest is dropped below
                }
            }
            // SAFETY: the slot is ours (AVAILABLE, acquired); the data area is TX_MAX_FRAME bytes
            // at P2_DATA inside the slot and len <= TX_MAX_FRAME; the tp_len word is aligned.
            unsafe {
                std::ptr::copy_nonoverlapping(f.data().as_ptr(), base.add(uapi::P2_DATA), len);
                base.add(uapi::P2_LEN)
                    .cast::<u32>()
                    .write_volatile(len as u32);
            }
            status.store(uapi::TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.slot += 1;
            if self.slot == self.frame_nr {
                self.slot = 0;
            }
            sent += 1;
            bytes += len as u64;
        }
        frames.clear();
        if sent > 0 {
            self.kick();
        }
        self.stats.add(Counter::TxPackets, sent as u64);
        self.stats.add(Counter::TxBytes, bytes);
        self.stats.add(Counter::TxDropped, (n - sent) as u64);
        sent
    }

    fn flush(&mut self) {
        if self.pending {
            self.kick();
        }
    }

    fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn queue_id(&self) -> QueueId {
        self.queue
    }
}

/// Classic BPF "drop everything": one `ret #0` instruction.
fn attach_drop_all(fd: &OwnedFd) -> io::Result<()> {
    let mut insn = libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    };
    let prog = libc::sock_fprog {
        len: 1,
        filter: &mut insn,
    };
    sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

fn detach_filter(fd: &OwnedFd) -> io::Result<()> {
    let zero: libc::c_int = 0;
    sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &zero)
}

fn fanout_type(mode: FanoutMode) -> u32 {
    match mode {
        FanoutMode::Hash => uapi::PACKET_FANOUT_HASH,
        FanoutMode::Cpu => uapi::PACKET_FANOUT_CPU,
        FanoutMode::QueueMapping => uapi::PACKET_FANOUT_QM,
        FanoutMode::RoundRobin => uapi::PACKET_FANOUT_LB,
        FanoutMode::Ebpf { .. } => uapi::PACKET_FANOUT_EBPF,
        FanoutMode::Steer(_) => uapi::PACKET_FANOUT_CBPF,
    }
}

/// Opens one RX socket with its ring, bound and promiscuous, carrying a drop-all filter.
fn open_rx(cfg: &PortConfig, ifindex: u32, q: usize) -> Result<AfPacketRx, PortError> {
    let dev = cfg.device.as_str();
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        .map_err(io_err(dev, "socket(AF_PACKET)"))?;
    attach_drop_all(&fd).map_err(io_err(dev, "SO_ATTACH_FILTER"))?;
    sys::setsockopt(
        &fd,
        libc::SOL_PACKET,
        uapi::PACKET_VERSION,
        &uapi::TPACKET_V2,
    )
    .map_err(io_err(dev, "PACKET_VERSION(TPACKET_V2)"))?;
    let block_nr = cfg
        .ring_frames
        .max(64)
        .div_ceil(RX_FRAMES_PER_BLOCK)
        .clamp(4, 1 << 14);
    let frame_nr = block_nr * RX_FRAMES_PER_BLOCK;
    let req = uapi::TpacketReq {
        block_size: RX_BLOCK_SIZE as u32,
        block_nr: block_nr as u32,
        frame_size: RX_FRAME_SIZE as u32,
        frame_nr: frame_nr as u32,
    };
    sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_RX_RING, &req)
        .map_err(io_err(dev, "PACKET_RX_RING"))?;
    let ring = Mmap::socket_ring(fd.as_raw_fd(), block_nr * RX_BLOCK_SIZE, 0)
        .map_err(io_err(dev, "mmap(RX ring)"))?;
    // Older kernels (< 4.20) lack PACKET_IGNORE_OUTGOING; the pkttype check covers them.
    let one: libc::c_int = 1;
    let _ = sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_IGNORE_OUTGOING, &one);
    sys::bind_packet(&fd, ifindex, (libc::ETH_P_ALL as u16).to_be())
        .map_err(io_err(dev, "bind(AF_PACKET RX)"))?;
    let mreq = uapi::PacketMreq {
        ifindex: ifindex as libc::c_int,
        mr_type: uapi::PACKET_MR_PROMISC,
        alen: 0,
        address: [0; 8],
    };
    sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_ADD_MEMBERSHIP, &mreq)
        .map_err(io_err(dev, "PACKET_ADD_MEMBERSHIP(PROMISC)"))?;
    Ok(AfPacketRx {
        fd,
        ring,
        frame_nr,
        frame: 0,
        frames_released: 0,
        stats: Arc::new(QueueStats::default()),
        queue: QueueId(q as u16),
    })
}

/// Joins the RX socket to the port's fanout group; the first call creates it (`group == None`)
/// and returns the id the kernel picked.
fn join_fanout(cfg: &PortConfig, rx: &AfPacketRx, group: Option<u16>) -> Result<u16, PortError> {
    let dev = cfg.device.as_str();
    let ty = fanout_type(cfg.fanout);
    let arg: u32 = match group {
        None => (ty | uapi::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        Some(id) => u32::from(id) | (ty << 16),
    };
    sys::setsockopt(&rx.fd, libc::SOL_PACKET, uapi::PACKET_FANOUT, &arg)
        .map_err(io_err(dev, "PACKET_FANOUT"))?;
    if let Some(id) = group {
        return Ok(id);
    }
    if let FanoutMode::Ebpf { prog_fd } = cfg.fanout {
        sys::setsockopt(&rx.fd, libc::SOL_PACKET, uapi::PACKET_FANOUT_DATA, &prog_fd)
            .map_err(io_err(dev, "PACKET_FANOUT_DATA(eBPF program)"))?;
    }
    if let FanoutMode::Steer(rule) = cfg.fanout {
        let prog = super::steer::program(rule);
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            // The kernel copies the program during the call; `prog` outlives it.
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        sys::setsockopt(&rx.fd, libc::SOL_PACKET, uapi::PACKET_FANOUT_DATA, &fprog).map_err(
            io_err(dev, "PACKET_FANOUT_DATA(classic BPF steering program)"),
        )?;
    }
    let val: u32 = sys::getsockopt(rx.fd.as_raw_fd(), libc::SOL_PACKET, uapi::PACKET_FANOUT)
        .map_err(io_err(dev, "getsockopt(PACKET_FANOUT)"))?;
    Ok((val & 0xffff) as u16)
}

/// Opens one TX socket with its ring.
fn open_tx(
    cfg: &PortConfig,
    ifindex: u32,
    stats: Arc<QueueStats>,
    q: usize,
) -> Result<AfPacketTx, PortError> {
    let dev = cfg.device.as_str();
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        .map_err(io_err(dev, "socket(AF_PACKET)"))?;
    sys::setsockopt(
        &fd,
        libc::SOL_PACKET,
        uapi::PACKET_VERSION,
        &uapi::TPACKET_V2,
    )
    .map_err(io_err(dev, "PACKET_VERSION(TPACKET_V2)"))?;
    let one: libc::c_int = 1;
    sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_QDISC_BYPASS, &one)
        .map_err(io_err(dev, "PACKET_QDISC_BYPASS"))?;
    sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_LOSS, &one)
        .map_err(io_err(dev, "PACKET_LOSS"))?;
    let per_block = TX_BLOCK_SIZE / TX_FRAME_SIZE;
    // The kernel drains the ring at every kick, so a few bursts' worth of slots is plenty.
    let block_nr = cfg
        .ring_frames
        .min(TX_RING_MAX_FRAMES)
        .max(cfg.burst.saturating_mul(4))
        .max(per_block)
        .div_ceil(per_block)
        .min(1 << 10);
    let frame_nr = block_nr * per_block;
    let req = uapi::TpacketReq {
        block_size: TX_BLOCK_SIZE as u32,
        block_nr: block_nr as u32,
        frame_size: TX_FRAME_SIZE as u32,
        frame_nr: frame_nr as u32,
    };
    sys::setsockopt(&fd, libc::SOL_PACKET, uapi::PACKET_TX_RING, &req)
        .map_err(io_err(dev, "PACKET_TX_RING"))?;
    let ring = Mmap::socket_ring(fd.as_raw_fd(), block_nr * TX_BLOCK_SIZE, 0)
        .map_err(io_err(dev, "mmap(TX ring)"))?;
    sys::bind_packet(&fd, ifindex, 0).map_err(io_err(dev, "bind(AF_PACKET TX)"))?;
    Ok(AfPacketTx {
        fd,
        ring,
        frame_nr,
        slot: 0,
        pending: false,
        stats,
        queue: QueueId(q as u16),
    })
}

/// Opens `cfg.device` as an AF_PACKET port with `queues` queues (see the module docs).
pub fn open(cfg: &PortConfig, queues: usize) -> Result<Port, PortError> {
    let dev = cfg.device.as_str();
    let ifindex = sys::ifindex(dev).ok_or_else(|| PortError::NoSuchInterface(dev.to_string()))?;
    let (mac, mtu) = sys::mac_and_mtu(dev).map_err(io_err(dev, "SIOCGIFHWADDR/SIOCGIFMTU"))?;

    let mut rxs = Vec::with_capacity(queues);
    let mut group = None;
    for q in 0..queues {
        let rx = open_rx(cfg, ifindex, q)?;
        if queues > 1 {
            group = Some(join_fanout(cfg, &rx, group)?);
        }
        rxs.push(rx);
    }
    // Every socket is in the group now: start receiving.
    for rx in &rxs {
        detach_filter(&rx.fd).map_err(io_err(dev, "SO_DETACH_FILTER"))?;
        // Frames counted before the filter went away were dropped by it, not by a full ring.
        let _ = sys::getsockopt::<uapi::TpacketStats>(
            rx.fd.as_raw_fd(),
            libc::SOL_PACKET,
            uapi::PACKET_STATISTICS,
        );
    }
    let mut txs = Vec::with_capacity(queues);
    for (q, rx) in rxs.iter().enumerate() {
        txs.push(open_tx(cfg, ifindex, rx.stats.clone(), q)?);
    }
    let stats = PortStatsHandle::new(rxs.iter().map(|r| r.stats.clone()).collect());
    let mode = match group {
        Some(id) => format!(
            "af_packet tpacket_v2 rx+tx, fanout {:?} group {id}",
            cfg.fanout
        ),
        None => "af_packet tpacket_v2 rx+tx".to_string(),
    };
    Ok(Port {
        info: PortInfo {
            name: dev.to_string(),
            ifindex,
            mac,
            mtu,
            mode,
        },
        rx: rxs
            .into_iter()
            .map(|r| Box::new(r) as Box<dyn RxQueue>)
            .collect(),
        tx: txs
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn TxQueue>)
            .collect(),
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::Driver;
    use std::mem::size_of;

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let cfg = PortConfig::new(Driver::AfPacket, "natgw-nope0");
        match open(&cfg, 1) {
            Err(PortError::NoSuchInterface(name)) => assert_eq!(name, "natgw-nope0"),
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }
    }

    #[test]
    fn layout_constants_match_the_uapi() {
        assert_eq!(size_of::<uapi::TpacketReq>(), 16);
        assert_eq!(size_of::<uapi::TpacketStats>(), 8);
        assert_eq!(size_of::<uapi::PacketMreq>(), 16);
        // sll_pkttype sits 10 bytes into sockaddr_ll.
        assert_eq!(std::mem::offset_of!(libc::sockaddr_ll, sll_pkttype), 10);
        const { assert!(TX_MAX_FRAME >= FRAME_CAPACITY) };
        assert_eq!(TX_BLOCK_SIZE % TX_FRAME_SIZE, 0);
        // RX slots: 16-byte aligned, room for the header, sockaddr_ll and a full buffer at the
        // kernel's tp_mac (TPACKET_ALIGN(52 + 16) - 14 = 66 without tp_reserve).
        assert_eq!(RX_FRAME_SIZE % 64, 0);
        const { assert!(66 + FRAME_CAPACITY <= RX_FRAME_SIZE) };
        const { assert!(RX_FRAMES_PER_BLOCK > 0) };
        assert_eq!(RX_BLOCK_SIZE % 4096, 0);
    }
}
