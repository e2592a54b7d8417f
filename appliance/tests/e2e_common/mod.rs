//! Shared harness of the end-to-end tests (`tests/e2e_*.rs`): the real `appliance` binary in the
//! nat namespace of a [`testbed::Topology`], real sockets in the client and inet namespaces.
//!
//! Layer: test harness on top of the `testbed` crate, slow path only. What lives here:
//! - [`preflight`]: root, namespaces and the programs the tests call; where it fails the test
//!   prints `SKIPPED: reason` (through `testbed::skip_unless!`) and returns;
//! - [`Appliance`]: writes a config file to a fresh temporary directory, starts the binary in
//!   the nat namespace, waits until `natgw_datapath_available 1`, reloads it with SIGHUP, stops
//!   it with SIGTERM and checks that it exits 0 after printing its final counters; if a test
//!   panics while it runs, its log and config are printed;
//! - [`Metrics`]: a tiny parser of the Prometheus text format, for assertions;
//! - [`Capture`]: an `AF_PACKET` capture in a namespace, to prove that nothing reached the
//!   client, and small socket helpers (fixed source ports, echo round trips, a UDP "who am I"
//!   server that answers with the source address it saw).
//!
//! Invariants: every socket is created inside a namespace the test built (traffic never leaves
//! them); every wait is bounded; the appliance process is killed when its guard drops.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testbed::traffic::{http_get, udp_exchange, TcpServer, UdpEchoServer};
use testbed::{ApplianceConfigOptions, ChildGuard, Netns, Signal, SkipReason, Topology};

/// Where the appliance's metrics endpoint listens, inside the nat namespace.
pub const METRICS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464);

/// How long the appliance may take to open its ports and resolve the outside gateway.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Timeout of one client operation through the NAT (connect, exchange).
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// How long we wait before concluding that something did *not* arrive.
pub const QUIET: Duration = Duration::from_millis(700);

/// Checks everything the end-to-end tests need: root, working network namespaces, and the
/// programs the topology and the tests run.
pub fn preflight() -> Result<(), SkipReason> {
    testbed::require_root_and_netns()?;
    testbed::require_programs(&["ip", "ethtool", "ping"])
}

/// An appliance config for `topo` with this driver and worker count (metrics on [`METRICS`]).
pub fn config(topo: &Topology, driver: &str, workers: u16) -> String {
    topo.appliance_config(&ApplianceConfigOptions {
        driver: driver.to_owned(),
        workers,
        metrics_listen: SocketAddr::V4(METRICS),
    })
    .expect("testbed generates an appliance config")
}

/// Sets `key = value` in the `[nat]` table of `config`: replaces the line of that key if the
/// table has one, inserts it right after the `[nat]` header otherwise.
pub fn set_nat_key(config: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(config.len() + 64);
    let mut in_nat = false;
    let mut done = false;
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_nat = trimmed.starts_with("[nat]");
            out.push_str(line);
            out.push('\n');
            if in_nat && !done {
                out.push_str(&format!("{key} = {value}\n"));
                done = true;
            }
            continue;
        }
        let is_key = trimmed
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key);
        if in_nat && is_key {
            continue; // replaced by the line inserted after the header
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "config has no [nat] table:\n{config}");
    out
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parsed metrics text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Every sample, in text order.
    pub samples: Vec<Sample>,
    /// The raw text, for failure messages.
    pub text: String,
}

impl Metrics {
    /// Parses the Prometheus text format (comments skipped; labels with quoted, escaped
    /// values; an optional timestamp after the value is ignored).
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut samples = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("metrics line {}: {why}: {raw:?}", n + 1);
            let name_end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .ok_or_else(|| bad("no value"))?;
            let name = &line[..name_end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(bad("bad metric name"));
            }
            let mut labels = BTreeMap::new();
            let mut rest = &line[name_end..];
            if let Some(after) = rest.strip_prefix('{') {
                let (parsed, tail) = parse_labels(after).map_err(|why| bad(&why))?;
                labels = parsed;
                rest = tail;
            }
            let value_text = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| bad("no value"))?;
            let value = match value_text {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse::<f64>().map_err(|_| bad("bad value"))?,
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Ok(Metrics {
            samples,
            text: text.to_owned(),
        })
    }

    /// The value of the sample with exactly these labels, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// Like [`Metrics::get`], but a missing sample fails the test (with the whole text).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("metric {name}{labels:?} missing from:\n{}", self.text))
    }

    /// `natgw_dropped_packets_total{reason}`.
    pub fn dropped(&self, reason: &str) -> f64 {
        self.value("natgw_dropped_packets_total", &[("reason", reason)])
    }

    /// `natgw_packets_total{direction}`.
    pub fn packets(&self, direction: &str) -> f64 {
        self.value("natgw_packets_total", &[("direction", direction)])
    }

    /// `natgw_snat_connections_total{result}`.
    pub fn snat_connections(&self, result: &str) -> f64 {
        self.value("natgw_snat_connections_total", &[("result", result)])
    }

    /// `natgw_slowpath_events_total{event}`.
    pub fn slowpath_event(&self, event: &str) -> f64 {
        self.value("natgw_slowpath_events_total", &[("event", event)])
    }

    /// `natgw_sessions_created_total{protocol}`.
    pub fn sessions_created(&self, protocol: &str) -> f64 {
        self.value("natgw_sessions_created_total", &[("protocol", protocol)])
    }
}

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and the text after
/// the closing brace.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(tail) = rest.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim();
        if key.is_empty() {
            return Err("empty label name".into());
        }
        let after = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..].trim_start();
        if let Some(tail) = rest.strip_prefix(',') {
            rest = tail.trim_start();
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

/// Fetches `/metrics` from inside `ns` (HTTP/1.0, so the server closes after the answer).
pub fn fetch_metrics(ns: &Netns, addr: SocketAddrV4) -> Result<Metrics, String> {
    let raw = ns
        .run_in(|| -> io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.set_write_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: natgw\r\nConnection: close\r\n\r\n")?;
            let mut out = Vec::new();
            s.take(16 << 20).read_to_end(&mut out)?;
            Ok(out)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("GET http://{addr}/metrics: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("metrics answer without a header end: {text:.200}"))?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(format!("metrics answer is not 200 OK: {head:.200}"));
    }
    Metrics::parse(body)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// How a stopped appliance ended.
#[derive(Debug)]
pub struct Stopped {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr (the log).
    pub stderr: String,
    /// The final counters it printed.
    pub final_counters: Metrics,
}

/// The `appliance` binary running in the nat namespace of a topology.
pub struct Appliance<'t> {
    topo: &'t Topology,
    child: Option<ChildGuard>,
    dir: PathBuf,
    config_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl<'t> Appliance<'t> {
    /// Writes `config` to a fresh temporary directory, starts the appliance with it in the
    /// nat namespace, and waits until its data path is available. Fails the test (with the
    /// appliance's log) if it exits or is not ready within [`READY_TIMEOUT`].
    pub fn start(topo: &'t Topology, config: &str) -> Appliance<'t> {
        let dir = std::env::temp_dir().join(format!(
            "natgw-e2e-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the test's temporary directory");
        let config_path = dir.join("natgw.toml");
        let stdout_path = dir.join("stdout");
        let stderr_path = dir.join("stderr");
        std::fs::write(&config_path, config).expect("write the config file");
        let file = |p: &PathBuf| std::fs::File::create(p).expect("create an output file");
        let mut cmd = topo.nat().command(env!("CARGO_BIN_EXE_appliance"));
        cmd.arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file(&stdout_path))
            .stderr(file(&stderr_path));
        let child = ChildGuard::spawn(&mut cmd).expect("spawn the appliance");
        let mut app = Appliance {
            topo,
            child: Some(child),
            dir,
            config_path,
            stdout_path,
            stderr_path,
        };
        app.wait_ready();
        app
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child().try_wait().expect("wait for the appliance") {
                panic!(
                    "the appliance exited during start-up ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            let last = match fetch_metrics(self.topo.nat(), METRICS) {
                Ok(m) if m.get("natgw_datapath_available", &[]) == Some(1.0) => return,
                Ok(m) => format!(
                    "natgw_datapath_available = {:?}",
                    m.get("natgw_datapath_available", &[])
                ),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "the appliance was not ready within {READY_TIMEOUT:?} ({last}); stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child(&mut self) -> &mut ChildGuard {
        self.child.as_mut().expect("the appliance runs")
    }

    /// The topology it runs in.
    pub fn topo(&self) -> &'t Topology {
        self.topo
    }

    /// Its current metrics; fails the test if the endpoint does not answer.
    pub fn metrics(&self) -> Metrics {
        fetch_metrics(self.topo.nat(), METRICS)
            .unwrap_or_else(|e| panic!("metrics: {e}; stderr:\n{}", self.stderr()))
    }

    /// Polls the metrics (they are published about ten times a second) until `ok` holds;
    /// fails the test after `timeout`, naming `what`.
    pub fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics();
            if ok(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never showed {what} within {timeout:?}:\n{}",
                m.text
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the config file's contents (takes effect on [`Appliance::reload`]).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("rewrite the config file");
    }

    /// Sends SIGHUP and waits until the slow path counted the reload as done or refused
    /// (`natgw_slowpath_events_total{event="reloads"|"reload_failures"}` grew); returns the
    /// metrics seen then.
    pub fn reload(&mut self) -> Metrics {
        let before = self.metrics();
        let count = |m: &Metrics| m.slowpath_event("reloads") + m.slowpath_event("reload_failures");
        let n = count(&before);
        self.child()
            .signal(Signal::Hangup)
            .expect("send SIGHUP to the appliance");
        self.wait_metrics("the reload counted", Duration::from_secs(5), |m| {
            count(m) > n
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child()
            .try_wait()
            .expect("wait for the appliance")
            .is_none()
    }

    /// What it wrote on stderr so far (its log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Stops it with SIGTERM and checks the clean shutdown the operations guide promises:
    /// exit status 0 within ten seconds, and the final counters printed on stdout.
    pub fn stop(self) -> Stopped {
        self.stop_with(Signal::Terminate)
    }

    /// Like [`Appliance::stop`] with another stop signal (SIGINT stops it the same way).
    pub fn stop_with(mut self, signal: Signal) -> Stopped {
        let mut child = self.child.take().expect("the appliance runs");
        child.signal(signal).expect("signal the appliance");
        let status = match child
            .wait_timeout(Duration::from_secs(10))
            .expect("wait for the appliance")
        {
            Some(status) => status,
            None => {
                let _ = child.stop(Duration::from_millis(10));
                panic!(
                    "the appliance ignored {signal:?} for 10 s; stderr:\n{}",
                    self.stderr()
                );
            }
        };
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let stderr = self.stderr();
        assert!(
            status.success(),
            "the appliance did not exit 0 on {signal:?} ({status}); stderr:\n{stderr}"
        );
        let (_, counters) = stdout
            .split_once("# final counters")
            .unwrap_or_else(|| panic!("no final counters on stdout:\n{stdout}\nstderr:\n{stderr}"));
        let final_counters =
            Metrics::parse(counters).unwrap_or_else(|e| panic!("final counters: {e}"));
        assert!(
            final_counters
                .get("natgw_packets_total", &[("direction", "in2out")])
                .is_some(),
            "the final counters lack the packet counters:\n{stdout}"
        );
        Stopped {
            status,
            stdout,
            stderr,
            final_counters,
        }
    }
}

impl Drop for Appliance<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.stderr();
            let tail: String = {
                let skip = log.chars().count().saturating_sub(8000);
                log.chars().skip(skip).collect()
            };
            let config = std::fs::read_to_string(&self.config_path).unwrap_or_default();
            eprintln!(
                "--- appliance config ({}):\n{config}\n--- appliance stderr (tail):\n{tail}\n---",
                self.config_path.display()
            );
        }
        drop(self.child.take()); // SIGKILL if still running
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An IPv4 packet seen by a [`Capture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenPacket {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// TCP/UDP source port (0 for other protocols).
    pub src_port: u16,
    /// TCP/UDP destination port (0 for other protocols).
    pub dst_port: u16,
}

/// Parses an Ethernet frame carrying IPv4; `None` for anything else.
pub fn parse_ipv4_frame(frame: &[u8]) -> Option<SeenPacket> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    if ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let proto = ip[9];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let (src_port, dst_port) = match (proto, ip.get(ihl..ihl + 4)) {
        (6 | 17, Some(p)) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    };
    Some(SeenPacket {
        src,
        dst,
        proto,
        src_port,
        dst_port,
    })
}

/// A packet capture (`AF_PACKET`, every interface, both directions) in one namespace.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<SeenPacket>>>,
}

impl Capture {
    /// Starts capturing every IPv4 frame on every interface of `ns`.
    pub fn start(ns: &Netns) -> Capture {
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let socket = ns
            .run_in(|| Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all))))
            .expect("enter the namespace")
            .expect("open an AF_PACKET socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("capture timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            let mut reader = &socket;
            while !flag.load(Ordering::SeqCst) {
                match reader.read(&mut buf) {
                    Ok(n) => seen.extend(parse_ipv4_frame(&buf[..n])),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("capture: {e}"),
                }
            }
            // Drain what is already queued.
            while let Ok(n) = reader.read(&mut buf) {
                seen.extend(parse_ipv4_frame(&buf[..n]));
            }
            seen
        });
        Capture {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the capture and returns what it saw.
    pub fn finish(mut self) -> Vec<SeenPacket> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("capture running")
            .join()
            .expect("capture thread")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens a TCP connection from namespace `ns`, from exactly `src` (address and port; port 0:
/// the kernel picks), to `dst`.
pub fn connect_from(
    ns: &Netns,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    timeout: Duration,
) -> io::Result<TcpStream> {
    ns.run_in(|| -> io::Result<TcpStream> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&src.into())?;
        s.connect_timeout(&dst.into(), timeout)?;
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(stream)
    })
    .map_err(io::Error::other)?
}

/// Binds a UDP socket in `ns` at `bind` with a read timeout of [`IO_TIMEOUT`].
pub fn udp_socket(ns: &Netns, bind: SocketAddrV4) -> UdpSocket {
    let s = ns
        .run_in(|| UdpSocket::bind(bind))
        .expect("enter the namespace")
        .unwrap_or_else(|e| panic!("bind udp {bind}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("udp timeout");
    s
}

/// Binds a TCP listener in `ns` at `bind`, non-blocking (poll it with `accept`).
pub fn tcp_listener(ns: &Netns, bind: SocketAddrV4) -> std::net::TcpListener {
    let l = ns
        .run_in(|| std::net::TcpListener::bind(bind))
        .expect("enter the namespace")
        .unwrap_or_else(|e| panic!("listen on tcp {bind}: {e}"));
    l.set_nonblocking(true).expect("nonblocking listener");
    l
}

/// Accepts one connection within `timeout`, or `None`.
pub fn accept_within(
    listener: &std::net::TcpListener,
    timeout: Duration,
) -> Option<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).expect("blocking stream");
                s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
                return Some((s, peer));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Writes `payload` and reads the same number of bytes back; they must be equal.
pub fn echo_roundtrip(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    stream.write_all(payload)?;
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back)?;
    if back != payload {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("echo returned {back:?} for {payload:?}"),
        ));
    }
    Ok(())
}

/// A UDP server that answers every datagram with the text `IP:PORT` of the source it saw.
pub struct UdpWhoami {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpWhoami {
    /// Binds `bind` in `ns` and serves until dropped.
    pub fn start(ns: &Netns, bind: SocketAddrV4) -> UdpWhoami {
        let socket = udp_socket(ns, bind);
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("udp timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::SeqCst) {
                if let Ok((_, SocketAddr::V4(src))) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(src.to_string().as_bytes(), src);
                }
            }
        });
        UdpWhoami {
            addr: bind,
            stop,
            thread: Some(thread),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }
}

impl Drop for UdpWhoami {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks a [`UdpWhoami`] at `server` through `socket` (an unconnected socket) which source it
/// sees; three tries, each waiting up to a third of [`IO_TIMEOUT`].
pub fn whoami(socket: &UdpSocket, server: SocketAddrV4) -> io::Result<SocketAddrV4> {
    socket.set_read_timeout(Some(IO_TIMEOUT / 3))?;
    let mut buf = [0u8; 128];
    let mut last = io::Error::from(ErrorKind::TimedOut);
    for _ in 0..3 {
        socket.send_to(b"who am i", server)?;
        match socket.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(from))) if from == server => {
                let text = std::str::from_utf8(&buf[..n])
                    .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                return text
                    .parse()
                    .map_err(|e| io::Error::new(ErrorKind::InvalidData, e));
            }
            Ok((_, from)) => {
                last = io::Error::new(ErrorKind::InvalidData, format!("answer from {from}"))
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The public addresses in the topology's spec.
pub fn public_ips(topo: &Topology) -> Vec<Ipv4Addr> {
    topo.spec().public_ips.clone()
}

/// HTTP (`gets` requests of `body` bytes each) and a UDP exchange from every private address, through
/// the NAT: every answer is complete and both servers saw only public IPs. Returns the TCP and UDP flow
/// counts for the session counters.
pub fn tcp_and_udp_from_every_client(
    topo: &Topology,
    http: &TcpServer,
    echo: &UdpEchoServer,
    public: &[Ipv4Addr],
    gets: usize,
    body: usize,
) -> (f64, f64) {
    let clients = topo.client_addrs().to_vec();
    // TCP: HTTP from every private address; the answer names the peer the server saw.
    for &client in &clients {
        for _ in 0..gets {
            let r = http_get(
                topo.client(),
                Some(client),
                http.local_addr(),
                "/",
                IO_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("HTTP GET from {client}: {e}"));
            assert_eq!(r.status, 200, "HTTP status for {client}");
            assert_eq!(r.body.len(), body, "HTTP body length for {client}");
            let seen = r.seen_peer().expect("the server names the peer it saw");
            assert!(
                public.contains(seen.ip()),
                "client {client}: the server saw {seen}, not one of the public IPs {public:?}"
            );
            assert!(seen.port() >= 1024, "SNAT port {} below 1024", seen.port());
        }
    }
    assert_eq!(http.connections(), clients.len() * gets);
    for peer in http.peers() {
        assert!(
            public.contains(peer.ip()),
            "the HTTP server saw {peer}: not a public IP of {public:?}"
        );
    }

    // UDP request/response from every private address.
    for &client in &clients {
        let payload = format!("hello from {client}");
        let answer = udp_exchange(
            topo.client(),
            Some(SocketAddrV4::new(client, 0)),
            echo.local_addr(),
            payload.as_bytes(),
            IO_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("UDP exchange from {client}: {e}"));
        assert_eq!(answer, payload.as_bytes(), "UDP echo for {client}");
    }
    assert!(echo.datagrams() >= clients.len());
    for src in echo.sources() {
        assert!(
            public.contains(src.ip()),
            "the UDP server saw {src}: not a public IP of {public:?}"
        );
    }

    ((clients.len() * gets) as f64, clients.len() as f64)
}

/// UDP from `client` to a closed port of `server`: the server's port unreachable must come back through
/// the NAT to the client's socket as ECONNREFUSED.
pub fn closed_udp_port_is_refused(topo: &Topology, client: Ipv4Addr, server: Ipv4Addr) {
    let closed = SocketAddrV4::new(server, 7999);
    let err = udp_exchange(
        topo.client(),
        Some(SocketAddrV4::new(client, 0)),
        closed,
        b"anyone there?",
        IO_TIMEOUT,
    )
    .expect_err("nobody listens on the closed port");
    assert_eq!(
        err.io_kind(),
        Some(ErrorKind::ConnectionRefused),
        "the client should see ECONNREFUSED from the translated ICMP error: {err}"
    );
}

/// The counters after `tcp_flows` HTTP flows, `udp_flows` UDP flows and a ping: every session created,
/// every flow an attempted SNAT connection, none failed, traffic both ways, nothing unsolicited.
pub fn basic_counters(app: &Appliance<'_>, tcp_flows: f64, udp_flows: f64) -> Metrics {
    let m = app.wait_metrics("the ICMP session counted", Duration::from_secs(3), |m| {
        m.sessions_created("udp") >= udp_flows && m.sessions_created("icmp") >= 1.0
    });
    assert!(
        m.snat_connections("attempted") >= tcp_flows + udp_flows + 1.0,
        "{}",
        m.text
    );
    assert_eq!(m.snat_connections("failed"), 0.0, "{}", m.text);
    assert!(m.packets("in2out") >= tcp_flows * 3.0, "{}", m.text);
    assert!(m.packets("out2in") >= tcp_flows * 3.0, "{}", m.text);
    assert_eq!(m.dropped("unsolicited"), 0.0, "{}", m.text);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let text = "# HELP natgw_x X.\n# TYPE natgw_x counter\n\
                    natgw_packets_total{direction=\"in2out\"} 12\n\
                    natgw_dropped_packets_total{reason=\"unsolicited\"} 3 1700000000\n\
                    natgw_datapath_available 1\n\
                    natgw_port_packets_total{side=\"inside\",dir=\"rx\"} 7\n\
                    odd{a=\"x\\\"y,}\", b = \"z\" } 2.5\n";
        let m = Metrics::parse(text).unwrap();
        assert_eq!(m.samples.len(), 5);
        assert_eq!(m.packets("in2out"), 12.0);
        assert_eq!(m.dropped("unsolicited"), 3.0);
        assert_eq!(m.get("natgw_datapath_available", &[]), Some(1.0));
        assert_eq!(
            m.get(
                "natgw_port_packets_total",
                &[("dir", "rx"), ("side", "inside")]
            ),
            Some(7.0)
        );
        assert_eq!(
            m.get("natgw_port_packets_total", &[("side", "inside")]),
            None
        );
        assert_eq!(m.get("odd", &[("a", "x\"y,}"), ("b", "z")]), Some(2.5));
        for bad in [
            "natgw_x{a=\"1\" 2\n",
            "natgw_x{a=1} 2\n",
            "natgw_x\n",
            "natgw_x abc\n",
            "na-me 1\n",
        ] {
            assert!(Metrics::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn nat_keys_are_replaced_or_inserted_in_the_nat_table() {
        let cfg = "[dataplane]\nworkers = 1\n\n[nat]\npublic_ips = [\"203.0.113.10\"]\n\
                   private_prefixes = [\"10.0.0.0/24\"]\n\n[metrics]\nlisten = \"127.0.0.1:9464\"\n";
        let out = set_nat_key(cfg, "port_range", "[1024, 1087]");
        assert!(
            out.contains("[nat]\nport_range = [1024, 1087]\npublic_ips"),
            "{out}"
        );
        let out = set_nat_key(&out, "public_ips", "[\"203.0.113.11\"]");
        assert!(!out.contains("203.0.113.10"), "{out}");
        assert!(
            out.contains("[nat]\npublic_ips = [\"203.0.113.11\"]\n"),
            "{out}"
        );
        assert!(out.contains("port_range = [1024, 1087]"), "{out}");
        assert!(
            out.ends_with("[metrics]\nlisten = \"127.0.0.1:9464\"\n"),
            "{out}"
        );
    }

    #[test]
    fn parses_ipv4_frames() {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 12..14 + 16].copy_from_slice(&[198, 51, 100, 10]);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 2]);
        f[34..38].copy_from_slice(&[0x1f, 0x90, 0x9c, 0x40]);
        let p = parse_ipv4_frame(&f).unwrap();
        assert_eq!(p.src, Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(p.dst, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((p.proto, p.src_port, p.dst_port), (17, 8080, 40000));
        f[12] = 0x86;
        assert_eq!(parse_ipv4_frame(&f), None);
    }
}
