//! Interface packet counters of a namespace, read from the kernel's `/proc/net/dev`.
//!
//! Layer: test harness, slow path. [`NetdevCounters::open`] opens `/proc/thread-self/net/dev` on a thread
//! that has entered the namespace; the open file keeps showing that namespace's interfaces, so it can be
//! re-read (from offset 0) from any thread, cheaply, as often as needed. These are the counters the bench
//! takes its numbers from: what the client's veth sent (and dropped at the veth) and what the inet side's
//! veth received.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// Packet counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Packets dropped on transmit (a veth counts here what its peer could not take).
    pub tx_dropped: u64,
}

impl IfStats {
    /// What this interface was asked to send: transmitted plus dropped on transmit.
    pub fn offered(&self) -> u64 {
        self.tx_packets + self.tx_dropped
    }

    /// The counter deltas from `before` to `self` (saturating: counters never go back).
    pub fn since(&self, before: &IfStats) -> IfStats {
        IfStats {
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            rx_dropped: self.rx_dropped.saturating_sub(before.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(before.tx_dropped),
        }
    }
}

/// Parses `/proc/net/dev` text and returns the counters of `ifname`.
pub fn parse_proc_net_dev(text: &str, ifname: &str) -> Option<IfStats> {
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
        if f.len() < 16 {
            return None;
        }
        return Some(IfStats {
            rx_packets: f[1],
            rx_dropped: f[3],
            tx_packets: f[9],
            tx_dropped: f[11],
        });
    }
    None
}

/// A reader of one interface's counters in one namespace.
#[derive(Debug)]
pub struct NetdevCounters {
    file: File,
    ifname: String,
    buf: String,
}

impl NetdevCounters {
    /// Opens the counters of `ifname` as seen in `ns`; fails if the interface is not there.
    pub fn open(ns: &Netns, ifname: &str) -> Result<Self> {
        let file = ns.run_in(|| File::open("/proc/thread-self/net/dev"))?;
        let file = file.map_err(|e| TestbedError::io("open /proc/thread-self/net/dev", e))?;
        let mut c = NetdevCounters {
            file,
            ifname: ifname.to_owned(),
            buf: String::new(),
        };
        c.read()?;
        Ok(c)
    }

    /// Reads the current counters.
    pub fn read(&mut self) -> Result<IfStats> {
        self.buf.clear();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_string(&mut self.buf))
            .map_err(|e| TestbedError::io("read /proc/net/dev", e))?;
        parse_proc_net_dev(&self.buf, &self.ifname).ok_or_else(|| TestbedError::InvalidArgument {
            name: "interface",
            why: format!("{} is not in /proc/net/dev of its namespace", self.ifname),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
    c0: 120000000 2000000    0    7    0     0          0         0 60000 1000    0    3    0     0       0          0
";

    #[test]
    fn parses_the_right_interface() {
        let s = parse_proc_net_dev(SAMPLE, "c0").unwrap();
        assert_eq!(
            s,
            IfStats {
                rx_packets: 2_000_000,
                rx_dropped: 7,
                tx_packets: 1000,
                tx_dropped: 3
            }
        );
        assert_eq!(s.offered(), 1003);
        assert_eq!(parse_proc_net_dev(SAMPLE, "lo").unwrap().rx_packets, 0);
        assert!(parse_proc_net_dev(SAMPLE, "c").is_none());
        assert!(parse_proc_net_dev("x0: 1 2 3\n", "x0").is_none());
        assert!(parse_proc_net_dev("x0: a b c d e f g h i j k l m n o p\n", "x0").is_none());
    }

    #[test]
    fn deltas_saturate() {
        let a = IfStats {
            rx_packets: 10,
            tx_packets: 5,
            ..IfStats::default()
        };
        let b = IfStats {
            rx_packets: 25,
            tx_packets: 4,
            ..IfStats::default()
        };
        let d = b.since(&a);
        assert_eq!((d.rx_packets, d.tx_packets), (15, 0));
    }

    #[test]
    fn reads_loopback_of_this_namespace() {
        // Works unprivileged: the root namespace's own file.
        let mut f = File::open("/proc/thread-self/net/dev").unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert!(parse_proc_net_dev(&s, "lo").is_some());
    }
}
