//! TCP: an echo / HTTP-ish server that records every peer it sees, and bounded clients.
//!
//! Layer: test harness, slow path. The listening socket is created inside the namespace;
//! the accept loop then runs on an ordinary thread (a socket stays in its namespace). Each
//! connection is served on its own thread (up to [`MAX_HANDLERS`] at once, beyond that
//! inline) with read/write timeouts, a byte cap and a lifetime cap, so a stuck client can
//! hold nothing forever. Clients bind their private source address before connecting
//! (`socket2`), which is how one client namespace plays many private hosts.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{check_count, check_timeout, BurstReport, MAX_BYTES, MAX_RECORDS};
use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// Most connections served concurrently on their own threads.
pub const MAX_HANDLERS: usize = 128;

/// Per-operation timeout on the server side.
const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a server keeps one connection.
const SERVER_CONN_LIFETIME: Duration = Duration::from_secs(120);

/// Longest HTTP request head the server reads.
const MAX_REQUEST_HEAD: usize = 16 << 10;

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpService {
    /// Echoes every byte until the client closes its side.
    Echo,
    /// Reads a request head (up to an empty line or the client's half-close) and answers
    /// `HTTP/1.0 200 OK` with a body that starts with `peer IP:PORT\n` (the address the
    /// server saw), padded with `x` to `body_len` bytes, then closes.
    Http {
        /// Body length in bytes (at least the peer line; capped at 64 MiB).
        body_len: usize,
    },
}

#[derive(Debug, Default)]
struct ServerState {
    stop: AtomicBool,
    peers: Mutex<Vec<SocketAddrV4>>,
    connections: AtomicUsize,
    active: AtomicUsize,
}

/// A TCP server in a namespace; stops (and joins its accept thread) when dropped.
#[derive(Debug)]
pub struct TcpServer {
    addr: SocketAddrV4,
    state: Arc<ServerState>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// Listens on `bind` inside `ns` (port 0 picks a free port; see [`TcpServer::local_addr`]).
    pub fn start(ns: &Netns, bind: SocketAddrV4, service: TcpService) -> Result<Self> {
        let listener = ns
            .run_in(|| TcpListener::bind(bind))?
            .map_err(|e| TestbedError::io(format!("listen on tcp {bind} in {}", ns.name()), e))?;
        let addr = match listener.local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            Ok(SocketAddr::V6(_)) => bind,
            Err(e) => return Err(TestbedError::io("tcp listener address", e)),
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| TestbedError::io("tcp listener nonblocking", e))?;
        let state = Arc::new(ServerState::default());
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tcp-server-{addr}"))
            .spawn(move || accept_loop(&listener, &st, service))
            .map_err(|e| TestbedError::io("spawn tcp server thread", e))?;
        Ok(TcpServer {
            addr,
            state,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// Every peer address seen so far, in accept order (the first [`MAX_RECORDS`]).
    pub fn peers(&self) -> Vec<SocketAddrV4> {
        self.state
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The distinct peer IP addresses seen so far.
    pub fn peer_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.peers().iter().map(|p| *p.ip()).collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until at least `n` connections were accepted.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.connections() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<ServerState>, service: TcpService) {
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let peer = match peer {
                    SocketAddr::V4(p) => p,
                    SocketAddr::V6(p) => match p.ip().to_ipv4_mapped() {
                        Some(ip) => SocketAddrV4::new(ip, p.port()),
                        None => continue,
                    },
                };
                {
                    let mut peers = state.peers.lock().unwrap_or_else(PoisonError::into_inner);
                    if peers.len() < MAX_RECORDS {
                        peers.push(peer);
                    }
                }
                if state.active.fetch_add(1, Ordering::SeqCst) < MAX_HANDLERS {
                    let st = state.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("tcp-conn".into())
                            .spawn(move || {
                                serve(stream, peer, service);
                                st.active.fetch_sub(1, Ordering::SeqCst);
                            });
                    if let Err(e) = spawned {
                        log::warn!("tcp server: cannot spawn a handler: {e}");
                        state.active.fetch_sub(1, Ordering::SeqCst);
                    }
                } else {
                    serve(stream, peer, service);
                    state.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                log::debug!("tcp server accept: {e}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn serve(stream: TcpStream, peer: SocketAddrV4, service: TcpService) {
    if let Err(e) = serve_inner(stream, peer, service) {
        log::debug!("tcp server, peer {peer}: {e}");
    }
}

fn serve_inner(
    mut stream: TcpStream,
    peer: SocketAddrV4,
    service: TcpService,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(SERVER_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(SERVER_IO_TIMEOUT))?;
    let started = Instant::now();
    let mut buf = vec![0u8; 16 << 10];
    match service {
        TcpService::Echo => {
            let mut total = 0usize;
            while total < MAX_BYTES && started.elapsed() < SERVER_CONN_LIFETIME {
                let n = match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                stream.write_all(&buf[..n])?;
                total += n;
            }
        }
        TcpService::Http { body_len } => {
            let mut head = Vec::new();
            while head.len() < MAX_REQUEST_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(e),
                }
            }
            let body = http_body(peer, body_len);
            let header = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(header.as_bytes())?;
            stream.write_all(&body)?;
        }
    }
    stream.shutdown(Shutdown::Write)
}

fn http_body(peer: SocketAddrV4, body_len: usize) -> Vec<u8> {
    let mut body = format!("peer {peer}\n").into_bytes();
    let want = body_len.min(MAX_BYTES);
    if body.len() < want {
        body.resize(want, b'x');
    }
    body
}

/// Opens a TCP connection from inside the current namespace, optionally from `source`.
fn connect(source: Option<Ipv4Addr>, dest: SocketAddrV4, timeout: Duration) -> Result<TcpStream> {
    let what = |step: &str| match source {
        Some(s) => format!("tcp {step} {s} -> {dest}"),
        None => format!("tcp {step} -> {dest}"),
    };
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| TestbedError::io(what("socket"), e))?;
    if let Some(src) = source {
        socket
            .bind(&SocketAddrV4::new(src, 0).into())
            .map_err(|e| TestbedError::io(what("bind"), e))?;
    }
    socket
        .connect_timeout(&dest.into(), timeout)
        .map_err(|e| TestbedError::io(what("connect"), e))?;
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| TestbedError::io(what("timeouts"), e))?;
    Ok(stream)
}

/// One exchange on an open connection: send, half-close, read to EOF (capped).
fn exchange(mut stream: TcpStream, request: &[u8], dest: SocketAddrV4) -> Result<Vec<u8>> {
    let err = |step: &str, e| TestbedError::io(format!("tcp {step} -> {dest}"), e);
    stream.write_all(request).map_err(|e| err("send", e))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| err("shutdown", e))?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_BYTES as u64)
        .read_to_end(&mut response)
        .map_err(|e| err("receive", e))?;
    Ok(response)
}

/// Connects from namespace `ns` (optionally from private address `source`) to `dest`,
/// sends `request`, half-closes, and returns everything the server sent back.
pub fn tcp_request(
    ns: &Netns,
    source: Option<Ipv4Addr>,
    dest: SocketAddrV4,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    check_timeout(timeout)?;
    ns.run_in(|| exchange(connect(source, dest, timeout)?, request, dest))?
}

/// Waits until a TCP connection from namespace `ns` to `dest` succeeds — for example until
/// the appliance's metrics endpoint (in the nat namespace) or a server is up — polling for
/// at most `timeout`. The probe connection is closed at once.
pub fn wait_for_tcp(ns: &Netns, dest: SocketAddrV4, timeout: Duration) -> Result<()> {
    check_timeout(timeout)?;
    ns.run_in(|| wait_for_tcp_here(dest, timeout))?
}

fn wait_for_tcp_here(dest: SocketAddrV4, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left
            .min(Duration::from_millis(250))
            .max(Duration::from_millis(1));
        match TcpStream::connect_timeout(&dest.into(), attempt) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(TestbedError::io(
                    format!("tcp {dest} not reachable within {timeout:?}"),
                    e,
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A parsed answer of [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The `peer IP:PORT` a [`TcpService::Http`] server reported seeing, if present.
    pub fn seen_peer(&self) -> Option<SocketAddrV4> {
        let text = std::str::from_utf8(self.body.get(..self.body.len().min(64))?).ok()?;
        text.strip_prefix("peer ")?.split('\n').next()?.parse().ok()
    }
}

/// An HTTP/1.0 GET of `path` from `dest`, from namespace `ns` (optionally from `source`).
pub fn http_get(
    ns: &Netns,
    source: Option<Ipv4Addr>,
    dest: SocketAddrV4,
    path: &str,
    timeout: Duration,
) -> Result<HttpResponse> {
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TestbedError::InvalidArgument {
            name: "path",
            why: format!("{path:?} is not an absolute path without spaces"),
        });
    }
    let request = format!("GET {path} HTTP/1.0\r\nHost: {dest}\r\n\r\n");
    let raw = tcp_request(ns, source, dest, request.as_bytes(), timeout)?;
    parse_http_response(&raw).ok_or_else(|| TestbedError::UnexpectedOutput {
        program: "http server",
        output: String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned(),
    })
}

fn parse_http_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(HttpResponse {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

/// A burst of short TCP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpBurst {
    /// Private source address to bind (None: the kernel picks).
    pub source: Option<Ipv4Addr>,
    /// Where to connect.
    pub dest: SocketAddrV4,
    /// How many connections, one after the other (at most [`super::MAX_COUNT`]).
    pub count: usize,
    /// What to send on each; the exchange succeeds when a non-empty answer comes back
    /// (use a non-empty request with an echo server, anything with an HTTP server).
    pub request: Vec<u8>,
    /// Per-operation timeout.
    pub timeout: Duration,
}

/// Runs a [`TcpBurst`] from namespace `ns`, each connection a separate flow.
pub fn tcp_burst(ns: &Netns, burst: &TcpBurst) -> Result<BurstReport> {
    check_count(burst.count)?;
    check_timeout(burst.timeout)?;
    ns.run_in(|| {
        let started = Instant::now();
        let mut report = BurstReport::default();
        for _ in 0..burst.count {
            let outcome = connect(burst.source, burst.dest, burst.timeout)
                .and_then(|s| exchange(s, &burst.request, burst.dest))
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

    #[test]
    fn http_body_reports_the_peer_and_pads() {
        let peer: SocketAddrV4 = "203.0.113.10:40000".parse().unwrap();
        let b = http_body(peer, 0);
        assert_eq!(b, b"peer 203.0.113.10:40000\n");
        let b = http_body(peer, 1000);
        assert_eq!(b.len(), 1000);
        assert!(b.ends_with(b"xx"));
        let r = HttpResponse {
            status: 200,
            body: b,
        };
        assert_eq!(r.seen_peer(), Some(peer));
    }

    #[test]
    fn wait_for_tcp_sees_a_listener_and_times_out_without_one() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let Ok(SocketAddr::V4(addr)) = l.local_addr() else {
            panic!("v4 expected")
        };
        wait_for_tcp_here(addr, Duration::from_secs(2)).unwrap();
        drop(l);
        let started = Instant::now();
        let err = wait_for_tcp_here(addr, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.io_kind(), Some(ErrorKind::ConnectionRefused), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn parses_http_responses() {
        let r = parse_http_response(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abc");
        assert_eq!(r.seen_peer(), None);
        assert!(parse_http_response(b"HTTP/1.0 200 OK\r\n").is_none());
        assert!(parse_http_response(b"SSH-2.0\r\n\r\n").is_none());
        assert!(parse_http_response(b"HTTP/1.1 abc\r\n\r\n").is_none());
    }
}
