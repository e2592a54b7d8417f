//! The timed loops: replay prebuilt frames in bursts through the NAT core, through a plain forwarder,
//! or through nothing (benches only).
//!
//! Every loop does the same per-burst work around what it measures, so that ratios between them are
//! meaningful: take the next [`BURST`] frames of one stream (streams take turns burst by burst), copy
//! each into a reused [`PacketBuf`] of a preallocated [`Burst`] (the stand-in for the NIC writing the
//! frame; its cost is in every figure and measured alone by [`Replay::copy`]), process, count the
//! verdicts. The NAT loop also advances the virtual clock once per burst and calls
//! [`NatCore::handle_timeout`], as the appliance's worker loop does.
//!
//! [`PacketBuf`]: natgw_dataplane::port::PacketBuf

use std::hint::black_box;
use std::time::{Duration, Instant};

use natgw_allocator::Timestamp;
use natgw_dataplane::nat::counters::DropReason;
use natgw_dataplane::nat::parse::{self, L2};
use natgw_dataplane::nat::{rewrite, NatCore, Punt, Side, Verdict};
use natgw_dataplane::port::Burst;
use natgw_dataplane::wire::icmp::Endpoint;
use natgw_dataplane::wire::MacAddr;

use crate::scenario::{GATEWAY_MAC, HOST_MAC, INSIDE_MAC, NANOS_PER_PACKET, OUTSIDE_MAC};
use crate::stream::{Cursor, FrameStream};

/// Frames per burst (DESIGN §4 default).
pub const BURST: usize = 32;

/// What one timed loop did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Frames processed.
    pub packets: u64,
    /// Frames whose verdict was "forward".
    pub forwarded: u64,
    /// Wall-clock time of the loop.
    pub elapsed: Duration,
    /// The first verdict that was not a forward, if any (diagnostics).
    pub first_other: Option<Verdict>,
}

impl RunStats {
    /// Millions of frames per second.
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// Frames per second.
    pub fn per_s(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nanoseconds per frame.
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e9 / (self.packets.max(1) as f64)
    }

    fn count(&mut self, verdicts: &[Verdict]) {
        for v in verdicts {
            if matches!(v, Verdict::Forward { .. }) {
                self.forwarded += 1;
            } else if self.first_other.is_none() {
                self.first_other = Some(*v);
            }
        }
    }
}

/// Replays streams burst by burst, keeping each stream's position between calls.
pub struct Replay<'a> {
    streams: Vec<(Side, &'a FrameStream, Cursor)>,
    turn: usize,
    burst: Burst,
    verdicts: Vec<Verdict>,
}

impl<'a> Replay<'a> {
    /// A replay of `streams`, taking turns burst by burst. Each stream must hold at least one frame.
    pub fn new(streams: &[(Side, &'a FrameStream)]) -> Replay<'a> {
        Replay {
            streams: streams
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|&(side, s)| (side, s, Cursor::default()))
                .collect(),
            turn: 0,
            burst: Burst::new(BURST),
            verdicts: Vec::with_capacity(BURST),
        }
    }

    /// Copy the next burst of up to `n` frames into the burst buffers; the side they came from.
    #[inline]
    fn load(&mut self, n: usize) -> Side {
        let turn = self.turn;
        self.turn = if turn + 1 == self.streams.len() {
            0
        } else {
            turn + 1
        };
        let (side, s, cur) = &mut self.streams[turn];
        self.burst.clear();
        for _ in 0..n {
            let i = cur.next(s);
            self.burst.push_copy(s.frame(i));
        }
        *side
    }

    /// Run `packets` frames through the NAT core.
    pub fn nat(&mut self, core: &mut NatCore, now: &mut Timestamp, packets: u64) -> RunStats {
        let mut st = RunStats::default();
        if self.streams.is_empty() {
            return st;
        }
        let t = Instant::now();
        let mut left = packets;
        while left > 0 {
            let n = (BURST as u64).min(left) as usize;
            let side = self.load(n);
            core.process_burst(*now, side, self.burst.frames_mut(), &mut self.verdicts);
            st.count(&self.verdicts);
            core.handle_timeout(*now);
            *now = Timestamp::from_nanos(now.as_nanos() + n as u64 * NANOS_PER_PACKET);
            left -= n as u64;
        }
        st.elapsed = t.elapsed();
        st.packets = packets;
        st
    }

    /// Run `packets` frames through [`plain_forward`] (no NAT).
    pub fn forward(&mut self, packets: u64) -> RunStats {
        let mut st = RunStats::default();
        if self.streams.is_empty() {
            return st;
        }
        let t = Instant::now();
        let mut left = packets;
        while left > 0 {
            let n = (BURST as u64).min(left) as usize;
            let side = self.load(n);
            self.verdicts.clear();
            for f in self.burst.frames_mut() {
                let len = f.len();
                let v = plain_forward(&mut f.buffer_mut()[..], len, side);
                self.verdicts.push(v);
            }
            st.count(&self.verdicts);
            left -= n as u64;
        }
        st.elapsed = t.elapsed();
        st.packets = packets;
        st
    }

    /// Only copy `packets` frames into the burst buffers (the harness's own cost); every frame counts as
    /// forwarded.
    pub fn copy(&mut self, packets: u64) -> RunStats {
        let mut st = RunStats::default();
        if self.streams.is_empty() {
            return st;
        }
        let t = Instant::now();
        let mut left = packets;
        while left > 0 {
            let n = (BURST as u64).min(left) as usize;
            self.load(n);
            black_box(&mut self.burst);
            st.forwarded += n as u64;
            left -= n as u64;
        }
        st.elapsed = t.elapsed();
        st.packets = packets;
        st
    }
}

/// Run `packets` frames of `streams` (taking turns burst by burst) through `core`.
pub fn run_nat(
    core: &mut NatCore,
    now: &mut Timestamp,
    streams: &[(Side, &FrameStream)],
    packets: u64,
) -> RunStats {
    Replay::new(streams).nat(core, now, packets)
}

/// Forwarding without NAT, for the ratio: the NAT core's own Ethernet and IPv4 checks (header checksum
/// verified, transport header checked), TTL decrement with its incremental checksum update, and the
/// MAC rewrite towards the other side's next hop. No table lookup, no translation.
#[inline]
pub fn plain_forward(buf: &mut [u8], len: usize, from: Side) -> Verdict {
    let len = len.min(buf.len());
    let (ours, egress, next_hop, to): (MacAddr, MacAddr, MacAddr, Side) = match from {
        Side::Inside => (INSIDE_MAC, OUTSIDE_MAC, GATEWAY_MAC, Side::Outside),
        Side::Outside => (OUTSIDE_MAC, INSIDE_MAC, HOST_MAC, Side::Inside),
    };
    match parse::ethernet(&buf[..len], ours) {
        Err(r) => return Verdict::Drop(r),
        Ok(L2::Arp) => return Verdict::Punt(Punt::Arp),
        Ok(L2::Ipv4) => {}
    }
    let p = match parse::ipv4(&buf[..len]) {
        Ok(p) => p,
        Err(r) => return Verdict::Drop(r),
    };
    if p.ttl <= 1 {
        return Verdict::Drop(DropReason::TtlExpired);
    }
    rewrite::ip_header(buf, &p, Endpoint::Source, None);
    rewrite::set_macs(buf, egress, next_hop);
    Verdict::Forward {
        side: to,
        len: len as u16,
    }
}

/// The median of some samples (0 for none).
pub fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Flow;
    use natgw_config::Protocol;
    use natgw_dataplane::wire::{Ipv4Packet, TcpFlags};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn flow() -> Flow {
        Flow {
            proto: Protocol::Udp,
            private: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 1024),
            remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53),
        }
    }

    #[test]
    fn plain_forward_decrements_ttl_with_a_valid_checksum() {
        let mut f = flow().in2out(TcpFlags::ACK).build();
        let len = f.len();
        let v = plain_forward(&mut f, len, Side::Inside);
        assert_eq!(
            v,
            Verdict::Forward {
                side: Side::Outside,
                len: len as u16
            }
        );
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        assert_eq!(&f[..6], &GATEWAY_MAC.0);
        // A frame for someone else's MAC is dropped.
        let mut g = flow().out2in(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1), TcpFlags::ACK);
        g.dst_mac = MacAddr([2, 9, 9, 9, 9, 9]);
        let mut g = g.build();
        let len = g.len();
        assert_eq!(
            plain_forward(&mut g, len, Side::Outside),
            Verdict::Drop(DropReason::NotForUs)
        );
    }

    #[test]
    fn copy_and_forward_loops_count_every_frame() {
        let mut s = FrameStream::default();
        for _ in 0..5 {
            s.push(&flow().in2out(TcpFlags::ACK)).unwrap();
        }
        let mut r = Replay::new(&[(Side::Inside, &s)]);
        let st = r.forward(100);
        assert_eq!((st.packets, st.forwarded), (100, 100));
        assert_eq!(st.first_other, None);
        let st = r.copy(70);
        assert_eq!((st.packets, st.forwarded), (70, 70));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
