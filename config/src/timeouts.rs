//! `[nat.timeouts]`: idle timers of sessions and cool-down of SNAT ports before reuse.
//!
//! Layer: config (slow path). The defaults are the NAT-gateway values of the seed documents: TCP
//! idle 4 min (configurable 4–120 min), UDP idle 4 min, ICMP 60 s, and after a flow ends its port
//! cools down before reuse to the same destination: FIN 65 s, RST 16 s, half-open SYN 30 s,
//! UDP 65 s. `tcp_transitory` is the idle timer of TCP flows that are not established (half-open
//! or closing), as in RFC 7857 §2.1 and VPP's `tcp_transitory` (240 s, the RFC 793 2·MSL).

use std::time::Duration;

use crate::check;
use crate::error::Located;
use crate::raw::RawTimeouts;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Shortest TCP idle timeout (4 minutes).
pub const TCP_IDLE_MIN: Duration = secs(4 * 60);
/// Longest TCP idle timeout (120 minutes).
pub const TCP_IDLE_MAX: Duration = secs(120 * 60);
/// Range of the other idle timers.
const IDLE_MIN: Duration = secs(1);
const IDLE_MAX: Duration = secs(2 * 3600);
/// Range of the cool-down timers.
const COOLDOWN_MAX: Duration = secs(10 * 60);

/// Session idle timers and port cool-downs. Fields are public so that other crates can build one
/// for their own tests; a [`crate::Config`] only ever holds validated values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Idle timer of an established TCP flow (default 4 min, 4–120 min).
    pub tcp_idle: Duration,
    /// Idle timer of a TCP flow that is half-open or closing (default 240 s).
    pub tcp_transitory: Duration,
    /// Idle timer of a UDP flow (default 4 min).
    pub udp_idle: Duration,
    /// Idle timer of an ICMP echo flow (default 60 s).
    pub icmp_idle: Duration,
    /// Cool-down of a TCP port after a FIN close, before reuse to the same destination (65 s).
    pub tcp_fin_cooldown: Duration,
    /// Cool-down of a TCP port after a RST (16 s).
    pub tcp_rst_cooldown: Duration,
    /// Cool-down of a TCP port after a half-open flow (SYN without answer) expires (30 s).
    pub tcp_halfopen_cooldown: Duration,
    /// Cool-down of a UDP port after its flow expires (65 s).
    pub udp_cooldown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_idle: secs(240),
            tcp_transitory: secs(240),
            udp_idle: secs(240),
            icmp_idle: secs(60),
            tcp_fin_cooldown: secs(65),
            tcp_rst_cooldown: secs(16),
            tcp_halfopen_cooldown: secs(30),
            udp_cooldown: secs(65),
        }
    }
}

impl Timeouts {
    /// Every timer with its key name, in file order.
    pub fn named(&self) -> [(&'static str, Duration); 8] {
        [
            ("tcp_idle", self.tcp_idle),
            ("tcp_transitory", self.tcp_transitory),
            ("udp_idle", self.udp_idle),
            ("icmp_idle", self.icmp_idle),
            ("tcp_fin_cooldown", self.tcp_fin_cooldown),
            ("tcp_rst_cooldown", self.tcp_rst_cooldown),
            ("tcp_halfopen_cooldown", self.tcp_halfopen_cooldown),
            ("udp_cooldown", self.udp_cooldown),
        ]
    }

    /// Validates the section.
    pub(crate) fn from_raw(raw: &RawTimeouts) -> Result<Self, Located> {
        let d = Timeouts::default();
        let idle = |name: &str, leaf, default| {
            check::duration_in(
                &format!("nat.timeouts.{name}"),
                leaf,
                default,
                IDLE_MIN,
                IDLE_MAX,
            )
        };
        let cool = |name: &str, leaf, default| {
            check::duration_in(
                &format!("nat.timeouts.{name}"),
                leaf,
                default,
                Duration::ZERO,
                COOLDOWN_MAX,
            )
        };
        Ok(Timeouts {
            tcp_idle: check::duration_in(
                "nat.timeouts.tcp_idle",
                &raw.tcp_idle,
                d.tcp_idle,
                TCP_IDLE_MIN,
                TCP_IDLE_MAX,
            )?,
            tcp_transitory: idle("tcp_transitory", &raw.tcp_transitory, d.tcp_transitory)?,
            udp_idle: idle("udp_idle", &raw.udp_idle, d.udp_idle)?,
            icmp_idle: idle("icmp_idle", &raw.icmp_idle, d.icmp_idle)?,
            tcp_fin_cooldown: cool(
                "tcp_fin_cooldown",
                &raw.tcp_fin_cooldown,
                d.tcp_fin_cooldown,
            )?,
            tcp_rst_cooldown: cool(
                "tcp_rst_cooldown",
                &raw.tcp_rst_cooldown,
                d.tcp_rst_cooldown,
            )?,
            tcp_halfopen_cooldown: cool(
                "tcp_halfopen_cooldown",
                &raw.tcp_halfopen_cooldown,
                d.tcp_halfopen_cooldown,
            )?,
            udp_cooldown: cool("udp_cooldown", &raw.udp_cooldown, d.udp_cooldown)?,
        })
    }
}
