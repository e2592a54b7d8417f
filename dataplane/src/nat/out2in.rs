//! out2in: internet → private host (fast path; never creates a session).
//!
//! Address-and-port-dependent filtering (RFC 4787 §5): a packet passes only if its full 5-tuple matches a
//! session a private host opened, so a reply must come from exactly the destination the flow went to.
//! Static 1:1 addresses pass statelessly. Everything else addressed to a public IP is unsolicited and
//! dropped. Steering uses the allocator's owner map: the shard that leased a public port owns its return
//! traffic. The map is consulted only when the session lookup misses, since a session in this shard's
//! table already proves that this shard leased the port. The inside neighbour's MAC comes through the
//! position the session remembers, not a hash lookup.

use super::counters::DropReason;
use super::flow::FlowKey;
use super::frag::FragKey;
use super::parse::{self, icmp_type, Fragment, Parsed, L2, L4};
use super::rewrite;
use super::session::{clock_ms, Session, SessionId};
use super::{NatCore, Punt, Side, Verdict};
use crate::wire::icmp::Endpoint;
use crate::wire::MacAddr;
use natgw_allocator::Timestamp;
use natgw_config::Protocol;
use std::net::Ipv4Addr;

impl NatCore {
    /// `hint`: the session the frame most likely belongs to (checked before use), from a staged burst.
    pub(super) fn out2in(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        hint: Option<SessionId>,
    ) -> Verdict {
        match parse::ethernet(&buf[..len], self.params.outside_mac) {
            Err(r) => Verdict::Drop(r),
            Ok(L2::Arp) => Verdict::Punt(Punt::Arp),
            Ok(L2::Ipv4) => self.out2in_l3(now, buf, len, true, hint),
        }
    }

    /// A packet about to be forwarded inward with TTL 1: answered with time exceeded (once we know it
    /// belongs to a flow or mapping, so that scans of unused ports are filtered, not answered).
    pub(super) fn out2in_ttl_expired(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        p: &Parsed,
    ) -> Option<Verdict> {
        if !p.hop || p.ttl > 1 {
            return None;
        }
        let from = self.params.outside_ip;
        let mac = self.params.outside_mac;
        Some(self.icmp_reply(
            now,
            buf,
            p,
            (icmp_type::TIME_EXCEEDED, 0),
            from,
            Side::Outside,
            mac,
            DropReason::TtlExpired,
        ))
    }

    /// out2in from the IPv4 header on; `hop` is false for the second half of hairpinning (the in2out half
    /// already counted the hop).
    pub(super) fn out2in_l3(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        hop: bool,
        hint: Option<SessionId>,
    ) -> Verdict {
        let mut p = match parse::ipv4(&buf[..len]) {
            Ok(p) => p,
            Err(r) => return Verdict::Drop(r),
        };
        p.hop = hop;
        if self.is_own_address(p.dst) {
            return Verdict::Punt(Punt::Local);
        }
        if let Some(private) = self.static_private_of(p.dst) {
            if let Some(v) = self.out2in_ttl_expired(now, buf, &p) {
                return v;
            }
            rewrite::ip_header(buf, &p, Endpoint::Destination, Some(private));
            rewrite::transport_addr_only(buf, &p, p.dst, private);
            self.counters.out2in.packets += 1;
            self.counters.out2in.bytes += len as u64;
            return self.forward_inside(buf, len, private);
        }
        if self.params.policy.is_no_nat(p.src) && self.params.policy.is_private(p.dst) {
            if let Some(v) = self.out2in_ttl_expired(now, buf, &p) {
                return v;
            }
            rewrite::ip_header(buf, &p, Endpoint::Destination, None);
            self.counters.no_nat.packets += 1;
            self.counters.no_nat.bytes += len as u64;
            return self.forward_inside(buf, len, p.dst);
        }
        if !self.is_snat_address(p.dst) {
            return Verdict::Drop(DropReason::NotForUs);
        }
        if p.frag == Fragment::Later {
            return self.out2in_later_fragment(now, buf, len, &p);
        }
        let (proto, sport, dport, flags) = match p.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => (Protocol::Tcp, sport, dport, flags),
            L4::Udp { sport, dport } => (Protocol::Udp, sport, dport, 0),
            L4::Echo {
                kind: icmp_type::ECHO_REPLY,
                ident,
            } => (Protocol::Icmp, 0, ident, 0),
            L4::IcmpError { .. } => return self.out2in_icmp_error(now, buf, len, &p),
            L4::Echo { .. } => return Verdict::Drop(DropReason::Unsolicited),
            L4::IcmpOther => return Verdict::Drop(DropReason::IcmpUnsupportedType),
            L4::Opaque => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let key = FlowKey {
            proto,
            local_ip: p.dst,
            local_port: dport,
            remote_ip: p.src,
            remote_port: sport,
        };
        // A session in this shard's table proves that this shard leased the port: only a miss needs the
        // owner map (another shard's flow, or nobody's).
        let Some(id) = self.sessions.lookup_out2in_hinted(&key, hint) else {
            return match self.owner_of(p.dst, proto, dport) {
                Some(s) if s != self.shard => Verdict::Handoff {
                    shard: s,
                    side: Side::Outside,
                },
                _ => Verdict::Drop(DropReason::Unsolicited),
            };
        };
        if let Some(v) = self.out2in_ttl_expired(now, buf, &p) {
            return v;
        }
        let s = self.translate_session(
            now,
            buf,
            &p,
            id,
            (proto == Protocol::Tcp).then_some(flags),
            Side::Outside,
        );
        self.counters.out2in.packets += 1;
        self.counters.out2in.bytes += len as u64;
        self.forward_to_session_host(buf, len, &s)
    }

    fn out2in_later_fragment(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
    ) -> Verdict {
        let fk = FragKey::of(p);
        let Some(private) = self.frags.lookup(&fk, clock_ms(now)) else {
            return match self.frag_steer.owner(&fk) {
                Some(s) if s != self.shard.0 => Verdict::Handoff {
                    shard: natgw_allocator::ShardId(s),
                    side: Side::Outside,
                },
                _ => Verdict::Drop(DropReason::FragmentOutOfOrder),
            };
        };
        if let Some(v) = self.out2in_ttl_expired(now, buf, p) {
            return v;
        }
        rewrite::ip_header(buf, p, Endpoint::Destination, Some(private));
        self.counters.out2in.packets += 1;
        self.counters.out2in.bytes += len as u64;
        self.forward_inside(buf, len, private)
    }

    /// Send a translated frame to the private host of a session: through the neighbour entry the session
    /// remembers, without a hash lookup.
    #[inline]
    fn forward_to_session_host(&mut self, buf: &mut [u8], len: usize, s: &Session) -> Verdict {
        // A session created while the neighbour table was full has no position: it falls back to the
        // lookup.
        let mac = self
            .neighbors
            .at(s.neighbor, s.private_ip)
            .or_else(|| self.neighbors.get(s.private_ip));
        self.forward_inside_to(buf, len, s.private_ip, mac)
    }

    /// Send a translated frame to a private host (or the inside router it came through).
    pub(super) fn forward_inside(&mut self, buf: &mut [u8], len: usize, host: Ipv4Addr) -> Verdict {
        let mac = self.neighbors.get(host);
        self.forward_inside_to(buf, len, host, mac)
    }

    /// Send a translated frame to `host`, whose MAC is `mac` if known.
    #[inline]
    fn forward_inside_to(
        &mut self,
        buf: &mut [u8],
        len: usize,
        host: Ipv4Addr,
        mac: Option<MacAddr>,
    ) -> Verdict {
        let src = self.params.inside_mac;
        match mac {
            Some(mac) => {
                rewrite::set_macs(buf, src, mac);
                Verdict::Forward {
                    side: Side::Inside,
                    len: len as u16,
                }
            }
            None => {
                rewrite::set_macs(buf, src, crate::wire::MacAddr::BROADCAST);
                Verdict::Punt(Punt::Resolve {
                    side: Side::Inside,
                    next_hop: host,
                })
            }
        }
    }
}
