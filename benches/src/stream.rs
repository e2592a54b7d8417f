//! Prebuilt frame streams: frames stored back to back, one per [`STRIDE`] bytes (benches only).
//!
//! A bench that replays traffic must not pay for building frames in its timed loop, nor for a cache miss
//! on a randomly chosen template: the frames are built once, already in the order they will be sent, so
//! the timed loop reads memory sequentially (as a NIC's DMA would write it) while the flows it touches
//! are in random order. Invariant: every frame of a stream has the same length, at most [`STRIDE`].

use natgw_dataplane::wire::{FrameBuilder, WireError};

/// Bytes per stored frame (one cache line).
pub const STRIDE: usize = 64;

/// Why a frame could not be added to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The builder refused the frame.
    #[error("frame builder: {0}")]
    Build(#[from] WireError),
    /// The frame is longer than [`STRIDE`].
    #[error("frame of {0} bytes does not fit a {STRIDE}-byte slot")]
    TooLong(usize),
    /// The frame's length differs from the stream's.
    #[error("frame of {got} bytes in a stream of {want}-byte frames")]
    LengthMismatch {
        /// The stream's frame length.
        want: usize,
        /// The new frame's length.
        got: usize,
    },
}

/// Frames of one length, stored back to back.
#[derive(Debug, Default, Clone)]
pub struct FrameStream {
    data: Vec<u8>,
    frame_len: usize,
}

impl FrameStream {
    /// An empty stream with room for `frames` frames.
    pub fn with_capacity(frames: usize) -> FrameStream {
        FrameStream {
            data: Vec::with_capacity(frames * STRIDE),
            frame_len: 0,
        }
    }

    /// Build a frame and append it.
    pub fn push(&mut self, builder: &FrameBuilder) -> Result<(), StreamError> {
        let len = builder.frame_len()?;
        if len > STRIDE {
            return Err(StreamError::TooLong(len));
        }
        if !self.is_empty() && len != self.frame_len {
            return Err(StreamError::LengthMismatch {
                want: self.frame_len,
                got: len,
            });
        }
        let at = self.data.len();
        self.data.resize(at + STRIDE, 0);
        match builder.build_into(&mut self.data[at..at + STRIDE]) {
            Ok(_) => {
                self.frame_len = len;
                Ok(())
            }
            Err(e) => {
                self.data.truncate(at);
                Err(e.into())
            }
        }
    }

    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len() / STRIDE
    }

    /// Whether the stream holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Length of every frame.
    #[inline]
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Frame `i` (`i < len()`).
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.data[i * STRIDE..i * STRIDE + self.frame_len]
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity()
    }
}

/// A position in a stream that wraps around.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cursor(usize);

impl Cursor {
    /// The next frame index of `stream` (wrapping), advancing the cursor.
    #[inline]
    pub fn next(&mut self, stream: &FrameStream) -> usize {
        let i = self.0;
        self.0 += 1;
        if self.0 >= stream.len() {
            self.0 = 0;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natgw_dataplane::wire::TcpFlags;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn udp(port: u16) -> FrameBuilder {
        FrameBuilder::udp(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53),
        )
        .pad_to(60)
    }

    #[test]
    fn frames_are_stored_and_read_back() {
        let mut s = FrameStream::with_capacity(2);
        s.push(&udp(1000)).unwrap();
        s.push(&udp(1001)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.frame_len(), 60);
        assert_eq!(s.frame(0), &udp(1000).build()[..]);
        assert_eq!(s.frame(1), &udp(1001).build()[..]);
        let mut c = Cursor::default();
        assert_eq!([c.next(&s), c.next(&s), c.next(&s)], [0, 1, 0]);
    }

    #[test]
    fn mismatched_and_oversized_frames_are_refused() {
        let mut s = FrameStream::default();
        s.push(&udp(1)).unwrap();
        let tcp = FrameBuilder::tcp(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80),
            TcpFlags::SYN,
        );
        assert_eq!(
            s.push(&tcp),
            Err(StreamError::LengthMismatch { want: 60, got: 54 })
        );
        assert_eq!(
            FrameStream::default().push(&udp(1).payload_len(100)),
            Err(StreamError::TooLong(142))
        );
        assert_eq!(s.len(), 1);
    }
}
