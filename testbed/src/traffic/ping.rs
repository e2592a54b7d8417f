//! `ping` from a namespace, with the summary line parsed.
//!
//! Layer: test harness, slow path. Uses iputils `ping` (`-q` summary only). Exit status 1
//! (no reply) is a normal result here — the report says how many answers came back.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{check_count, check_timeout};
use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// What `ping` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReport {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

/// Pings `dest` `count` times (0.2 s apart) from namespace `ns`, optionally from source
/// address `source`, giving up after `timeout` overall.
pub fn ping(
    ns: &Netns,
    dest: Ipv4Addr,
    source: Option<Ipv4Addr>,
    count: u32,
    timeout: Duration,
) -> Result<PingReport> {
    check_count(count as usize)?;
    check_timeout(timeout)?;
    let count_s = count.max(1).to_string();
    let deadline_s = timeout.as_secs().max(1).to_string();
    let dest_s = dest.to_string();
    let src_s = source.map(|s| s.to_string());
    let mut argv = vec![
        "ping",
        "-n",
        "-q",
        "-c",
        &count_s,
        "-i",
        "0.2",
        "-W",
        "1",
        "-w",
        &deadline_s,
    ];
    if let Some(src) = &src_s {
        argv.extend(["-I", src.as_str()]);
    }
    argv.push(&dest_s);
    let out = ns.exec(&argv)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_ping_summary(&stdout).ok_or_else(|| TestbedError::UnexpectedOutput {
        program: "ping",
        output: format!(
            "{} {}",
            stdout.chars().take(500).collect::<String>(),
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(500)
                .collect::<String>()
        ),
    })
}

/// Parses iputils' `N packets transmitted, M received, ...` line.
pub fn parse_ping_summary(output: &str) -> Option<PingReport> {
    output.lines().find_map(|line| {
        let (tx, rest) = line.split_once(" packets transmitted, ")?;
        let transmitted = tx.trim().parse().ok()?;
        let received = rest.split_once(" received")?.0.trim().parse().ok()?;
        Some(PingReport {
            transmitted,
            received,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iputils_summaries() {
        let ok = "PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n\n\
                  --- 198.51.100.10 ping statistics ---\n\
                  3 packets transmitted, 3 received, 0% packet loss, time 402ms\n\
                  rtt min/avg/max/mdev = 0.040/0.050/0.060/0.008 ms\n";
        assert_eq!(
            parse_ping_summary(ok),
            Some(PingReport {
                transmitted: 3,
                received: 3
            })
        );
        let lost = "--- 10.9.9.9 ping statistics ---\n\
                    4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3050ms\n";
        assert_eq!(
            parse_ping_summary(lost),
            Some(PingReport {
                transmitted: 4,
                received: 0
            })
        );
        assert_eq!(
            parse_ping_summary("ping: connect: Network is unreachable\n"),
            None
        );
        assert_eq!(
            parse_ping_summary("x packets transmitted, 1 received"),
            None
        );
    }
}
