//! Frame buffers and bursts: the unit of work between the ports and the NAT core.
//!
//! Layer: packet I/O, fast path. A [`PacketBuf`] is an owned, fixed-capacity frame buffer
//! ([`FRAME_CAPACITY`] bytes) allocated once, when its [`Burst`] is built. A [`Burst`] is a
//! preallocated vector of buffers whose first [`Burst::len`] slots hold frames; the others are
//! spare buffers ready to be filled. Receiving fills spare slots, transmitting empties the burst,
//! and moving a frame between bursts swaps two buffers (a pointer swap). Nothing here allocates
//! after construction, and no buffer is ever lost: every buffer lives in exactly one burst slot or
//! one backend ring, which is the RAII guarantee the NAT core relies on.
//!
//! Invariants: `len() <= FRAME_CAPACITY` for every buffer; `Burst::len() <= Burst::capacity()`.
//! The NAT core rewrites frames in place through [`PacketBuf::data_mut`]; a frame's length does
//! not change in place.

/// Bytes one [`PacketBuf`] can hold: a 1,500-byte MTU frame with Ethernet and two VLAN tags fits.
pub const FRAME_CAPACITY: usize = 2048;

/// Flags a backend attaches to a received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxFlags(u8);

impl RxFlags {
    /// No flag set.
    pub const NONE: RxFlags = RxFlags(0);
    /// The L4 checksum is not finished (the sender left it to offload: `TP_STATUS_CSUMNOTREADY`).
    /// The frame is delivered as is; the NAT core must not trust its L4 checksum.
    pub const CSUM_NOT_READY: RxFlags = RxFlags(1);

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub fn contains(self, other: RxFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the flags of `other` added.
    #[inline]
    pub fn with(self, other: RxFlags) -> RxFlags {
        RxFlags(self.0 | other.0)
    }
}

/// An owned, reusable frame buffer of [`FRAME_CAPACITY`] bytes.
///
/// Dropping one frees its memory; on the fast path buffers are never dropped, only swapped
/// between bursts and rings.
pub struct PacketBuf {
    data: Box<[u8; FRAME_CAPACITY]>,
    len: u16,
    flags: RxFlags,
}

impl PacketBuf {
    /// A new, empty buffer (allocates: slow path only).
    pub fn new() -> PacketBuf {
        PacketBuf {
            data: Box::new([0u8; FRAME_CAPACITY]),
            len: 0,
            flags: RxFlags::NONE,
        }
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The frame bytes, writable in place (same length).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data[..usize::from(self.len)]
    }

    /// The frame length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the buffer holds no frame bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole buffer, for a backend or a frame builder to write a frame into before
    /// [`PacketBuf::set_len`].
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut [u8; FRAME_CAPACITY] {
        &mut self.data
    }

    /// Sets the frame length; lengths above [`FRAME_CAPACITY`] are clamped to it.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        // FRAME_CAPACITY fits in u16, so after the clamp the cast is lossless.
        self.len = len.min(FRAME_CAPACITY) as u16;
    }

    /// Copies `frame` in (flags cleared). Returns `false`, leaving the buffer unchanged, when the
    /// frame is longer than [`FRAME_CAPACITY`].
    #[inline]
    pub fn copy_from(&mut self, frame: &[u8]) -> bool {
        if frame.len() > FRAME_CAPACITY {
            return false;
        }
        self.data[..frame.len()].copy_from_slice(frame);
        self.set_len(frame.len());
        self.flags = RxFlags::NONE;
        true
    }

    /// Flags the receiving backend attached.
    #[inline]
    pub fn rx_flags(&self) -> RxFlags {
        self.flags
    }

    /// Replaces the flags (backends set them on receive).
    #[inline]
    pub fn set_rx_flags(&mut self, flags: RxFlags) {
        self.flags = flags;
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        PacketBuf::new()
    }
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len)
            .field("flags", &self.flags)
            .finish()
    }
}

/// A preallocated burst of frame buffers: slots `0..len()` hold frames, the rest are spare.
///
/// The capacity is fixed at construction (the configured burst size); receive, transmit and
/// moving frames between bursts never allocate.
#[derive(Debug)]
pub struct Burst {
    bufs: Box<[PacketBuf]>,
    len: usize,
}

impl Burst {
    /// A burst of `capacity` buffers (at least one), all spare. Allocates: call at start-up.
    pub fn new(capacity: usize) -> Burst {
        let bufs: Vec<PacketBuf> = (0..capacity.max(1)).map(|_| PacketBuf::new()).collect();
        Burst {
            bufs: bufs.into_boxed_slice(),
            len: 0,
        }
    }

    /// The number of buffers (filled and spare).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// The number of frames held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every buffer holds a frame.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// The number of spare buffers.
    #[inline]
    pub fn free(&self) -> usize {
        self.bufs.len() - self.len
    }

    /// Forgets every frame (the buffers become spare).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps only the first `len` frames (no-op when `len >= self.len()`).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The frames held.
    #[inline]
    pub fn frames(&self) -> &[PacketBuf] {
        &self.bufs[..self.len]
    }

    /// The frames held, writable in place.
    #[inline]
    pub fn frames_mut(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs[..self.len]
    }

    /// The next spare buffer, to be filled and then committed with [`Burst::commit`]; `None` when
    /// the burst is full.
    #[inline]
    pub fn spare_mut(&mut self) -> Option<&mut PacketBuf> {
        self.bufs.get_mut(self.len)
    }

    /// Marks the spare buffer returned by [`Burst::spare_mut`] as holding a frame.
    #[inline]
    pub fn commit(&mut self) {
        if self.len < self.bufs.len() {
            self.len += 1;
        }
    }

    /// Copies `frame` into the next spare buffer. Returns `false` when the burst is full or the
    /// frame is longer than [`FRAME_CAPACITY`].
    #[inline]
    pub fn push_copy(&mut self, frame: &[u8]) -> bool {
        let ok = match self.spare_mut() {
            Some(buf) => buf.copy_from(frame),
            None => false,
        };
        if ok {
            self.len += 1;
        }
        ok
    }

    /// Swaps frame slot `index` (filled or spare) with `buf`.
    ///
    /// Backends that exchange buffers with a ring (the in-memory port) use it; returns `false`
    /// when `index` is out of range.
    #[inline]
    pub fn swap_slot(&mut self, index: usize, buf: &mut PacketBuf) -> bool {
        match self.bufs.get_mut(index) {
            Some(slot) => {
                std::mem::swap(slot, buf);
                true
            }
            None => false,
        }
    }

    /// Moves the frames for which `keep` returns `false` into `dst` (appended, in order) and
    /// compacts the kept frames (in order). Buffers are swapped, never copied or allocated.
    ///
    /// Returns the number of frames that had to move but found `dst` full: they are discarded
    /// (their buffers become spare) and the caller counts them as drops.
    pub fn split_off_into<F>(&mut self, dst: &mut Burst, mut keep: F) -> usize
    where
        F: FnMut(&mut PacketBuf) -> bool,
    {
        let n = self.len;
        let mut write = 0;
        let mut overflow = 0;
        for read in 0..n {
            if keep(&mut self.bufs[read]) {
                self.bufs.swap(write, read);
                write += 1;
            } else if dst.len < dst.bufs.len() {
                std::mem::swap(&mut self.bufs[read], &mut dst.bufs[dst.len]);
                dst.len += 1;
            } else {
                overflow += 1;
            }
        }
        // Slots write..n now hold spare buffers (swapped in from `dst`) or discarded frames.
        self.len = write;
        overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let mut b = Burst::new(2);
        assert!(b.push_copy(&[1, 2, 3]));
        assert!(b.push_copy(&[4]));
        assert!(!b.push_copy(&[5]), "full burst must refuse");
        assert_eq!(b.len(), 2);
        assert_eq!(b.frames()[0].data(), &[1, 2, 3]);
        assert_eq!(b.frames()[1].data(), &[4]);
        b.frames_mut()[0].data_mut()[0] = 9;
        assert_eq!(b.frames()[0].data(), &[9, 2, 3]);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.free(), 2);
    }

    #[test]
    fn oversized_frame_refused() {
        let mut b = Burst::new(1);
        let big = vec![0u8; FRAME_CAPACITY + 1];
        assert!(!b.push_copy(&big));
        assert!(b.is_empty());
        let max = vec![7u8; FRAME_CAPACITY];
        assert!(b.push_copy(&max));
        assert_eq!(b.frames()[0].len(), FRAME_CAPACITY);
    }

    #[test]
    fn set_len_clamps() {
        let mut p = PacketBuf::new();
        p.set_len(usize::MAX);
        assert_eq!(p.len(), FRAME_CAPACITY);
    }

    #[test]
    fn split_keeps_order_and_moves_without_loss() {
        let mut a = Burst::new(6);
        for i in 0..6u8 {
            assert!(a.push_copy(&[i]));
        }
        let mut odd = Burst::new(2);
        let overflow = a.split_off_into(&mut odd, |p| p.data()[0] % 2 == 0);
        assert_eq!(overflow, 1, "three odd frames, room for two");
        let kept: Vec<u8> = a.frames().iter().map(|p| p.data()[0]).collect();
        assert_eq!(kept, vec![0, 2, 4]);
        let moved: Vec<u8> = odd.frames().iter().map(|p| p.data()[0]).collect();
        assert_eq!(moved, vec![1, 3]);
        // Every buffer still exists: capacities unchanged.
        assert_eq!(a.capacity(), 6);
        assert_eq!(odd.capacity(), 2);
    }

    #[test]
    fn rx_flags_roundtrip() {
        let mut p = PacketBuf::new();
        assert!(!p.rx_flags().contains(RxFlags::CSUM_NOT_READY));
        p.set_rx_flags(RxFlags::NONE.with(RxFlags::CSUM_NOT_READY));
        assert!(p.rx_flags().contains(RxFlags::CSUM_NOT_READY));
        assert!(p.copy_from(&[1]));
        assert_eq!(p.rx_flags(), RxFlags::NONE);
    }
}
