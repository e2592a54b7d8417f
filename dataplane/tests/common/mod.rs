//! Network-namespace helpers for the port tests (root only).
//!
//! Each test builds its own namespaces with unique names (`natgw-t-<pid>-<n>`), veth pairs with
//! offloads off and no kernel IP address, and removes everything in `Drop` (also on panic).
//! Where the tests cannot run (not root, no `ip netns`), [`skip`] prints "SKIPPED: <reason>" to
//! stderr so the skip is visible in the test output.

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Reports a skipped test visibly: written straight to the process's stderr, which the test
/// harness does not capture (unlike `eprintln!`), so it shows in every `cargo test` run.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command inside namespace `ns` (`ip netns exec`).
pub fn run_in(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all)
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace with a unique name.
    pub fn new() -> Result<Netns, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to create network namespaces".into());
        }
        let name = format!(
            "natgw-t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        run_in(&ns.name, &["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `f` on a fresh thread that has entered this namespace; sockets it opens belong to
    /// the namespace and may be used from any thread afterwards.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        std::thread::spawn(move || {
            // SAFETY: `file` is an open namespace file; setns only changes this thread's
            // network namespace, and this thread is ours alone.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "thread in namespace panicked".to_string())?
    }
}

impl Netns {
    /// Like [`Netns::enter`] but returns at once; join the handle for `f`'s result.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, String>>, String> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        Ok(std::thread::spawn(move || {
            // SAFETY: as in `enter`: only this thread's network namespace changes.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        }))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Brings up `dev` in `ns` as the tests want it: offloads off, IPv6 off (no router
/// solicitations or neighbour discovery noise), no address, up.
pub fn prepare_dev(ns: &str, dev: &str) -> Result<(), String> {
    run_in(
        ns,
        &[
            "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
        ],
    )?;
    let _ = run_in(
        ns,
        &[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
        ],
    );
    run_in(ns, &["ip", "link", "set", dev, "up"])
}

/// Two namespaces joined by a veth pair: `a.dev` (MAC `02:00:00:00:0a:01`) in `a`,
/// `b.dev` (MAC `02:00:00:00:0b:01`) in `b`.
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub dev_a: String,
    pub dev_b: String,
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];

impl VethPair {
    /// Builds the topology; `rx_queues` is the number of queues each veth end gets.
    pub fn new(rx_queues: u32) -> Result<VethPair, String> {
        let a = Netns::new()?;
        let b = Netns::new()?;
        let q = rx_queues.to_string();
        run_in(
            &a.name,
            &[
                "ip",
                "link",
                "add",
                "vta",
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "address",
                "02:00:00:00:0a:01",
                "type",
                "veth",
                "peer",
                "name",
                "vtb",
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "address",
                "02:00:00:00:0b:01",
                "netns",
                &b.name,
            ],
        )?;
        prepare_dev(&a.name, "vta")?;
        prepare_dev(&b.name, "vtb")?;
        Ok(VethPair {
            a,
            b,
            dev_a: "vta".into(),
            dev_b: "vtb".into(),
        })
    }
}

/// Builds test frames: Ethernet + IPv4 + UDP, `len` bytes in all (>= 60), with `seq` in the
/// payload and the UDP source port set by `flow` so the kernel's flow hash varies.
pub fn udp_frame(dst: [u8; 6], src: [u8; 6], flow: u16, seq: u32, len: usize) -> Vec<u8> {
    let len = len.max(60);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 1, 1]);
    let mut sum = 0u32;
    for pair in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(10000 + flow).to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The sequence number of a frame built by [`udp_frame`] from `src`, if it is one.
pub fn frame_seq(frame: &[u8], src: [u8; 6]) -> Option<u32> {
    if frame.len() < 46 || frame[6..12] != src || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    Some(u32::from_be_bytes([
        frame[42], frame[43], frame[44], frame[45],
    ]))
}
