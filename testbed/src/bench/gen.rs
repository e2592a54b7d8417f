//! Our own paced UDP generator on an AF_PACKET socket: the default bench sender.
//!
//! Layer: test harness; the send loop is a hot loop but runs in the client namespace only. Why not
//! `trafgen` alone: its `-b` rate limit sends each second's quota at full speed and then sleeps, so a
//! "100 kpps" run is a burst at the sender's full rate, which makes a zero-loss search meaningless. This
//! generator paces instead: packet *i* is due at `start + i / rate`; it spins until a whole batch of
//! [`BATCH`] frames is due and sends it with one `sendmmsg(2)` (microbursts of 32 frames, e.g. one every
//! 160 µs at 200 kpps). Without a rate it sends full batches back to back.
//!
//! Frames are those of a [`FlowPlan`]: 60-byte Ethernet/IPv4/UDP frames (64 on the wire), templates sent
//! round robin, inside a template the source address and port advance together on every packet (the
//! same sequence as `trafgen`'s counters), with correct IPv4 and UDP checksums. The socket is bound with
//! protocol 0 (it receives nothing) and `PACKET_QDISC_BYPASS`. A frame the veth could not hand to its
//! peer (peer backlog full) fails with `ENOBUFS`; it is counted as sent and dropped (the veth counts it
//! in `tx_dropped`), never retried, so the sender is never slowed by the forwarder.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};
use crate::netns::Netns;
use crate::shutdown::Shutdown;

use super::flows::{FlowPlan, MacAddr, Template, FIRST_PORT, SINK_PORT};
use super::sender::SendReport;

/// Frames per `sendmmsg` call.
pub const BATCH: usize = 32;

/// Bytes of one frame (without the FCS).
pub const FRAME_LEN: usize = 60;

const PACKET_QDISC_BYPASS: libc::c_int = 20;

fn csum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds the frames of a flow plan, in the order they are sent.
#[derive(Debug, Clone)]
pub struct FrameSource {
    templates: Vec<(Template, [u8; FRAME_LEN])>,
    next: u64,
}

impl FrameSource {
    /// Frames from `src_mac` to `dst_mac` for `plan`.
    pub fn new(plan: &FlowPlan, src_mac: MacAddr, dst_mac: MacAddr) -> FrameSource {
        let templates = plan
            .templates()
            .iter()
            .map(|t| {
                let mut f = [0u8; FRAME_LEN];
                f[0..6].copy_from_slice(&dst_mac.0);
                f[6..12].copy_from_slice(&src_mac.0);
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                f[14] = 0x45;
                f[16..18].copy_from_slice(&((FRAME_LEN - 14) as u16).to_be_bytes());
                f[22] = 64;
                f[23] = 17;
                f[30..34].copy_from_slice(&t.dest.octets());
                f[36..38].copy_from_slice(&SINK_PORT.to_be_bytes());
                f[38..40].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
                (t.clone(), f)
            })
            .collect();
        FrameSource { templates, next: 0 }
    }

    /// Writes the next frame into `out`.
    pub fn fill(&mut self, out: &mut [u8; FRAME_LEN]) {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        let count = self.templates.len().max(1) as u64;
        let Some((t, base)) = self.templates.get((n % count) as usize) else {
            return;
        };
        let k = n / count;
        let host = u32::from(t.first_host) + (k % u64::from(t.hosts.max(1))) as u32;
        let port = u32::from(FIRST_PORT) + (k % u64::from(t.ports.max(1))) as u32;
        *out = *base;
        out[26..30].copy_from_slice(&host.to_be_bytes());
        out[34..36].copy_from_slice(&(port as u16).to_be_bytes());
        let ip = csum_fold(csum_add(0, &out[14..34]));
        out[24..26].copy_from_slice(&ip.to_be_bytes());
        // UDP checksum: pseudo header (addresses, protocol, length) + header + payload.
        let mut sum = csum_add(0, &out[26..34]);
        sum += 17 + (FRAME_LEN - 34) as u32;
        sum = csum_add(sum, &out[34..FRAME_LEN]);
        let udp = match csum_fold(sum) {
            0 => 0xffff,
            c => c,
        };
        out[40..42].copy_from_slice(&udp.to_be_bytes());
    }
}

/// An AF_PACKET socket bound to one interface for sending only.
#[derive(Debug)]
struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens it on `ifname` of the calling thread's network namespace.
    fn open(ifname: &str) -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: the option value points to a live c_int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let name =
            CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: the address points to a live sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }

    /// Sends `frames`; returns how many left this socket (sent or dropped by the device), at least 1
    /// unless an unexpected error occurs.
    fn send(&self, frames: &mut [[u8; FRAME_LEN]]) -> io::Result<usize> {
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let n = frames.len().min(BATCH);
        for i in 0..n {
            iov[i].iov_base = frames[i].as_mut_ptr().cast();
            iov[i].iov_len = FRAME_LEN;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` point to `iov[..n]`, which point into `frames`; all live for the call.
        let rc = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // The device dropped the first frame (veth peer backlog full): it is gone, count it.
            Some(libc::ENOBUFS) => Ok(1),
            Some(libc::EINTR) | Some(libc::EAGAIN) => Ok(0),
            _ => Err(err),
        }
    }
}

/// Sends `packets` frames of `frames` on `ifname` in namespace `ns` from CPU `cpu`, paced at `rate`
/// packets per second (None: as fast as possible). Stops early when `shutdown` is raised.
pub fn send(
    ns: &Netns,
    ifname: &str,
    frames: &mut FrameSource,
    packets: u64,
    rate: Option<u64>,
    cpu: usize,
    shutdown: &Shutdown,
) -> Result<SendReport> {
    let started = Instant::now();
    let outcome = ns.run_in(|| -> io::Result<(u64, f64)> {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        let sock = PacketSocket::open(ifname)?;
        let mut batch = [[0u8; FRAME_LEN]; BATCH];
        let mut pending = 0usize; // frames built in `batch` but not yet sent
        let mut done = 0u64;
        let t0 = Instant::now();
        let ns_per_pkt = rate.map(|r| 1e9 / r.max(1) as f64);
        let mut rounds = 0u32;
        while done < packets {
            let due = match ns_per_pkt {
                None => packets,
                Some(gap) => {
                    let elapsed = t0.elapsed().as_nanos() as f64;
                    ((elapsed / gap) as u64 + 1).min(packets)
                }
            };
            // Wait for a whole batch to be due (or the last, shorter one): one syscall per 32 frames.
            if due < packets && due < done + BATCH as u64 {
                std::hint::spin_loop();
                continue;
            }
            let want = ((due - done) as usize).min(BATCH);
            while pending < want {
                frames.fill(&mut batch[pending]);
                pending += 1;
            }
            let sent = sock.send(&mut batch[..want])?;
            // Unsent frames move to the front, to go first next time.
            batch.copy_within(sent..pending, 0);
            pending -= sent;
            done += sent as u64;
            rounds = rounds.wrapping_add(1);
            if rounds % 4096 == 0 && shutdown.requested() {
                break;
            }
        }
        Ok((done, t0.elapsed().as_secs_f64()))
    })?;
    let (done, secs) = outcome.map_err(|e| TestbedError::io(format!("sending on {ifname}"), e))?;
    Ok(SendReport {
        packets: Some(done),
        seconds: Some(secs),
        wall: started.elapsed().max(Duration::from_nanos(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn plan(n: u64) -> FlowPlan {
        let hosts: Vec<Ipv4Addr> = (2..40).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let dests = [
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 11),
        ];
        FlowPlan::new(n, &hosts, &dests).unwrap()
    }

    fn verify(f: &[u8; FRAME_LEN]) {
        assert_eq!(csum_fold(csum_add(0, &f[14..34])), 0, "ip checksum");
        let mut sum = csum_add(0, &f[26..34]);
        sum += 17 + 26;
        sum = csum_add(sum, &f[34..]);
        assert_eq!(csum_fold(sum), 0, "udp checksum");
    }

    #[test]
    fn frames_follow_the_plan_with_valid_checksums() {
        let src = MacAddr([2, 0, 0, 0, 0, 2]);
        let dst = MacAddr([2, 0, 0, 0, 0, 1]);
        let p = plan(1000);
        let mut g = FrameSource::new(&p, src, dst);
        let mut f = [0u8; FRAME_LEN];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..p.flows() {
            g.fill(&mut f);
            verify(&f);
            assert_eq!(&f[0..6], &dst.0);
            assert_eq!(&f[6..12], &src.0);
            assert_eq!(&f[12..14], &[8, 0]);
            assert_eq!(&f[30..34], &[198, 51, 100, 10]);
            assert_eq!(u16::from_be_bytes([f[36], f[37]]), SINK_PORT);
            seen.insert((f[26..30].to_vec(), u16::from_be_bytes([f[34], f[35]])));
        }
        assert_eq!(seen.len() as u64, p.flows());
        g.fill(&mut f);
        assert_eq!(
            u16::from_be_bytes([f[34], f[35]]),
            FIRST_PORT,
            "wraps to the first flow"
        );
    }

    #[test]
    fn million_flow_plan_alternates_destinations_and_covers_every_flow() {
        let p = plan(1_000_000);
        let mut g = FrameSource::new(&p, MacAddr([2; 6]), MacAddr([4; 6]));
        let mut f = [0u8; FRAME_LEN];
        let mut seen = std::collections::HashSet::new();
        for i in 0..p.flows() {
            g.fill(&mut f);
            assert_eq!(f[33], if i % 2 == 0 { 10 } else { 11 });
            seen.insert(u64::from_be_bytes([0, 0, f[29], f[33], f[34], f[35], 0, 0]));
        }
        verify(&f);
        assert_eq!(seen.len() as u64, p.flows());
    }

    #[test]
    fn checksum_helpers() {
        // RFC 1071 example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(csum_fold(csum_add(0, &data)), !0xddf2u16);
        assert_eq!(csum_add(0, &[0xab]), 0xab00);
    }
}
