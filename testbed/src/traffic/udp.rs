//! UDP: an echo server that records every source address, and bounded clients.
//!
//! Layer: test harness, slow path. The server socket is created inside the namespace and
//! served on an ordinary thread that polls a stop flag between short receive timeouts.
//! Clients use a *connected* socket so that an ICMP port unreachable coming back through the
//! NAT surfaces as `ConnectionRefused` (see [`crate::TestbedError::io_kind`]).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{check_count, check_timeout, BurstReport, MAX_RECORDS};
use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// How often the server checks its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Sends per exchange before giving up (the first datagram of a flow may wait on ARP).
const ATTEMPTS: u32 = 3;

#[derive(Debug, Default)]
struct ServerState {
    stop: AtomicBool,
    sources: Mutex<Vec<SocketAddrV4>>,
    datagrams: AtomicUsize,
}

/// A UDP echo server in a namespace; stops when dropped.
#[derive(Debug)]
pub struct UdpEchoServer {
    addr: SocketAddrV4,
    state: Arc<ServerState>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEchoServer {
    /// Binds `bind` inside `ns` (port 0 picks one) and echoes every datagram to its sender.
    pub fn start(ns: &Netns, bind: SocketAddrV4) -> Result<Self> {
        let socket = ns
            .run_in(|| UdpSocket::bind(bind))?
            .map_err(|e| TestbedError::io(format!("bind udp {bind} in {}", ns.name()), e))?;
        let addr = match socket.local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            Ok(SocketAddr::V6(_)) => bind,
            Err(e) => return Err(TestbedError::io("udp socket address", e)),
        };
        socket
            .set_read_timeout(Some(POLL))
            .map_err(|e| TestbedError::io("udp server timeout", e))?;
        let state = Arc::new(ServerState::default());
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("udp-echo-{addr}"))
            .spawn(move || echo_loop(&socket, &st))
            .map_err(|e| TestbedError::io("spawn udp server thread", e))?;
        Ok(UdpEchoServer {
            addr,
            state,
            thread: Some(thread),
        })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// The source of every datagram so far, in arrival order (the first [`MAX_RECORDS`]).
    pub fn sources(&self) -> Vec<SocketAddrV4> {
        self.state
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The distinct source IP addresses seen so far.
    pub fn source_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.sources().iter().map(|s| *s.ip()).collect()
    }

    /// Datagrams received so far.
    pub fn datagrams(&self) -> usize {
        self.state.datagrams.load(Ordering::SeqCst)
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo_loop(socket: &UdpSocket, state: &ServerState) {
    let mut buf = vec![0u8; 65536];
    while !state.stop.load(Ordering::SeqCst) {
        match socket.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(src))) => {
                state.datagrams.fetch_add(1, Ordering::SeqCst);
                {
                    let mut s = state.sources.lock().unwrap_or_else(PoisonError::into_inner);
                    if s.len() < MAX_RECORDS {
                        s.push(src);
                    }
                }
                if let Err(e) = socket.send_to(&buf[..n], src) {
                    log::debug!("udp echo to {src}: {e}");
                }
            }
            Ok((_, SocketAddr::V6(_))) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                // e.g. ECONNREFUSED left by an ICMP error for an earlier echo; keep serving.
                log::debug!("udp echo receive: {e}");
            }
        }
    }
}

/// The body of one exchange; runs inside the namespace.
fn exchange_here(
    source: Option<SocketAddrV4>,
    dest: SocketAddrV4,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let bind = source.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let what = |step: &str| format!("udp {step} {bind} -> {dest}");
    let socket = UdpSocket::bind(bind).map_err(|e| TestbedError::io(what("bind"), e))?;
    socket
        .connect(dest)
        .map_err(|e| TestbedError::io(what("connect"), e))?;
    let per_try = (timeout / ATTEMPTS).max(Duration::from_millis(1));
    socket
        .set_read_timeout(Some(per_try))
        .map_err(|e| TestbedError::io(what("timeout"), e))?;
    let mut buf = vec![0u8; 65536];
    let mut last = std::io::Error::from(ErrorKind::TimedOut);
    for _ in 0..ATTEMPTS {
        socket
            .send(payload)
            .map_err(|e| TestbedError::io(what("send"), e))?;
        let deadline = Instant::now() + per_try;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    last = e;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted && Instant::now() < deadline => {}
                // ConnectionRefused (an ICMP error came back) and friends: final.
                Err(e) => return Err(TestbedError::io(what("receive"), e)),
            }
        }
    }
    Err(TestbedError::io(what("receive"), last))
}

/// Sends `payload` from namespace `ns` (from `source`, or an address and port the kernel
/// picks) to `dest` and returns the first answer. Retries twice within `timeout` when no
/// answer comes; an ICMP error coming back ends it with `ConnectionRefused` or similar.
pub fn udp_exchange(
    ns: &Netns,
    source: Option<SocketAddrV4>,
    dest: SocketAddrV4,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    check_timeout(timeout)?;
    ns.run_in(|| exchange_here(source, dest, payload, timeout))?
}

/// A burst of UDP request/response exchanges, each from a fresh socket (a new flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpBurst {
    /// Private source address (None: the kernel picks); the port is always fresh.
    pub source: Option<Ipv4Addr>,
    /// Where to send.
    pub dest: SocketAddrV4,
    /// How many exchanges (at most [`super::MAX_COUNT`]).
    pub count: usize,
    /// Payload of each datagram (non-empty, so an echo is non-empty).
    pub payload: Vec<u8>,
    /// Timeout of each exchange.
    pub timeout: Duration,
}

/// Runs a [`UdpBurst`] from namespace `ns`.
pub fn udp_burst(ns: &Netns, burst: &UdpBurst) -> Result<BurstReport> {
    check_count(burst.count)?;
    check_timeout(burst.timeout)?;
    ns.run_in(|| {
        let started = Instant::now();
        let mut report = BurstReport::default();
        let source = burst.source.map(|ip| SocketAddrV4::new(ip, 0));
        for _ in 0..burst.count {
            let outcome = exchange_here(source, burst.dest, &burst.payload, burst.timeout)
                .map(|answer| !answer.is_empty());
            report.record(outcome);
        }
        report.elapsed = started.elapsed();
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback in this process's own namespace: no topology needed.
    #[test]
    fn exchange_and_refusal_on_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = server.local_addr().unwrap() else {
            panic!("v4 expected")
        };
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let echo = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, src) = server.recv_from(&mut b).unwrap();
            server.send_to(&b[..n], src).unwrap();
        });
        let answer = exchange_here(None, addr, b"hi", Duration::from_secs(2)).unwrap();
        assert_eq!(answer, b"hi");
        echo.join().unwrap();

        // Nobody listens on the now-closed port: the kernel answers port unreachable.
        let err = exchange_here(None, addr, b"hi", Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.io_kind(), Some(ErrorKind::ConnectionRefused), "{err}");
    }
}
