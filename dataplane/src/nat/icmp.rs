//! ICMP: translating error messages both ways, and generating our own (fast path).
//!
//! An ICMP error (destination unreachable, time exceeded, parameter problem, source quench) carries the IP
//! header and at least 8 bytes of the datagram that caused it (RFC 792; RFC 1812 §4.3.2.3 lets routers send
//! more). It is matched to its session through that embedded datagram, whose addresses run the other way,
//! and translated per RFC 5508 §4: the outer address, the embedded address and port (or echo identifier),
//! the embedded IPv4 checksum and, when present, the embedded transport checksum; the outer ICMP checksum is
//! then recomputed over the message (errors are rare, the full sum is simplest and always right).
//!
//! Generated messages (time exceeded, administratively prohibited) reuse the offending frame's buffer: the
//! quoted header moves back behind fresh Ethernet, IPv4 and ICMP headers. They are rate limited, never sent
//! about an ICMP error or a non-first fragment (RFC 1812 §4.3.2.7).

use super::counters::DropReason;
use super::flow::{flow_shard, FlowKey};
use super::parse::{self, Fragment, Parsed, IP_ICMP, L4};
use super::rewrite;
use super::session::clock_ms;
use super::{NatCore, Side, Verdict};
use crate::wire::icmp::Endpoint;
use crate::wire::{checksum, Icmpv4Packet, MacAddr};
use natgw_allocator::{ShardId, Timestamp};
use natgw_config::Protocol;
use std::net::Ipv4Addr;

/// Translate the datagram embedded in the ICMP error at `p.l4_off` (wire's RFC 5508 rewrite: embedded
/// address and port or echo identifier, embedded IPv4 and transport checksums, outer ICMP checksum).
fn rewrite_embedded(
    frame: &mut [u8],
    p: &Parsed,
    which: Endpoint,
    addr: Ipv4Addr,
    port: u16,
) -> bool {
    let msg = &mut frame[p.l4_off..p.ip_off + p.ip_len];
    Icmpv4Packet::new_unchecked(msg)
        .rewrite_embedded(which, addr, port)
        .is_ok()
}

impl NatCore {
    /// An ICMP error sent by a private host (or an inside router) about a packet we delivered inward.
    pub(super) fn in2out_icmp_error(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
    ) -> Verdict {
        let e = match parse::embedded(&buf[..len], p) {
            Ok(e) => e,
            Err(r) => return Verdict::Drop(r),
        };
        let Some(proto) = Protocol::from_ip_number(e.proto) else {
            return Verdict::Drop(DropReason::IcmpErrorMalformed);
        };
        // The embedded datagram went remote → private: its destination is the private end.
        let (local_port, remote_port, hs, hd) = match proto {
            Protocol::Icmp => (e.sport, 0, 0, 0),
            _ => (e.dport, e.sport, e.dport, e.sport),
        };
        let owner = flow_shard(e.dst, e.src, hs, hd, e.proto, self.params.shards);
        if owner != self.shard.0 {
            return Verdict::Handoff {
                shard: ShardId(owner),
                side: Side::Inside,
            };
        }
        let key = FlowKey {
            proto,
            local_ip: e.dst,
            local_port,
            remote_ip: e.src,
            remote_port,
        };
        let Some(id) = self.sessions.lookup_in2out(&key) else {
            return Verdict::Drop(DropReason::IcmpErrorNoSession);
        };
        self.sessions.touch(id, now);
        let s = *self.sessions.get(id);
        if !rewrite_embedded(buf, p, Endpoint::Destination, s.public_ip, s.public_port) {
            return Verdict::Drop(DropReason::IcmpErrorMalformed);
        }
        rewrite::ip_header(buf, p, Endpoint::Source, Some(s.public_ip));
        self.counters.in2out.packets += 1;
        self.counters.in2out.bytes += len as u64;
        self.forward_outside(buf, len)
    }

    /// An ICMP error from the internet about a packet of one of our flows.
    pub(super) fn out2in_icmp_error(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
    ) -> Verdict {
        let e = match parse::embedded(&buf[..len], p) {
            Ok(e) => e,
            Err(r) => return Verdict::Drop(r),
        };
        let Some(proto) = Protocol::from_ip_number(e.proto) else {
            return Verdict::Drop(DropReason::IcmpErrorMalformed);
        };
        // The embedded datagram went public → remote: its source is our public end.
        let (local_port, remote_port) = match proto {
            Protocol::Icmp => (e.sport, 0),
            _ => (e.sport, e.dport),
        };
        if e.src != p.dst {
            return Verdict::Drop(DropReason::IcmpErrorNoSession);
        }
        match self.owner_of(e.src, proto, local_port) {
            None => return Verdict::Drop(DropReason::IcmpErrorNoSession),
            Some(s) if s != self.shard => {
                return Verdict::Handoff {
                    shard: s,
                    side: Side::Outside,
                }
            }
            Some(_) => {}
        }
        let key = FlowKey {
            proto,
            local_ip: e.src,
            local_port,
            remote_ip: e.dst,
            remote_port,
        };
        let Some(id) = self.sessions.lookup_out2in(&key) else {
            return Verdict::Drop(DropReason::IcmpErrorNoSession);
        };
        if let Some(v) = self.out2in_ttl_expired(now, buf, p) {
            return v;
        }
        self.sessions.touch(id, now);
        let s = *self.sessions.get(id);
        if !rewrite_embedded(buf, p, Endpoint::Source, s.private_ip, s.private_port) {
            return Verdict::Drop(DropReason::IcmpErrorMalformed);
        }
        rewrite::ip_header(buf, p, Endpoint::Destination, Some(s.private_ip));
        self.counters.out2in.packets += 1;
        self.counters.out2in.bytes += len as u64;
        self.forward_inside(buf, len, s.private_ip)
    }

    /// Answer the frame in `buf` with an ICMP error `(type, code)` from `from`, sent back on `side` to the
    /// frame's sender; the original is counted as dropped under `reason`. Falls back to a plain drop when
    /// the rate limit is spent, the original is itself an ICMP error or a later fragment, or the buffer is
    /// too small.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp_reply(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        p: &Parsed,
        (kind, code): (u8, u8),
        from: Ipv4Addr,
        side: Side,
        our_mac: MacAddr,
        reason: DropReason,
    ) -> Verdict {
        if p.frag == Fragment::Later || matches!(p.l4, L4::IcmpError { .. }) {
            return Verdict::Drop(reason);
        }
        let quote = p.ip_len.min(p.l4_off - p.ip_off + 8);
        let total = 14 + 20 + 8 + quote;
        if total > buf.len() || !self.icmp_limit.allow(clock_ms(now)) {
            return Verdict::Drop(reason);
        }
        buf.copy_within(p.ip_off..p.ip_off + quote, 42);
        // Ethernet: back to the sender.
        rewrite::set_macs(buf, our_mac, p.src_mac);
        // IPv4 header.
        let ip = &mut buf[14..34];
        ip.fill(0);
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 8 + quote) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = IP_ICMP;
        ip[12..16].copy_from_slice(&from.octets());
        ip[16..20].copy_from_slice(&p.src.octets());
        let sum = checksum::compute(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        // ICMP header and the quote.
        let icmp = &mut buf[34..42 + quote];
        icmp[..8].fill(0);
        icmp[0] = kind;
        icmp[1] = code;
        let sum = checksum::compute(icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        self.counters.drop(reason);
        self.counters.icmp_generated += 1;
        Verdict::Forward {
            side,
            len: total as u16,
        }
    }
}
