//! in2out: private host → internet (fast path, with session creation on a miss).
//!
//! Order of decisions, as in VPP's nat44-ed in2out node: Ethernet/IPv4 checks; frames for the appliance
//! itself go to the slow path; sources outside the private prefixes are dropped; TTL expiry is answered;
//! no-NAT destinations pass untranslated; static 1:1 hosts are translated statelessly; later fragments
//! follow their first fragment; otherwise the packet's flow is looked up on the shard that owns it and, on
//! a miss, policy is checked and a port is leased (only a TCP SYN may open a TCP flow). A translated packet
//! whose destination is one of our own public addresses is hairpinned through out2in.

use super::counters::DropReason;
use super::flow::{flow_shard, FlowKey};
use super::frag::FragKey;
use super::parse::{self, icmp_type, Fragment, Parsed, L2, L4};
use super::rewrite;
use super::session::{clock_ms, Session, SessionId, SessionState};
use super::{protocol_of, timeout_of, NatCore, Punt, Side, Verdict};
use crate::wire::icmp::Endpoint;
use natgw_allocator::{FlowRequest, ShardId, Timestamp};
use natgw_config::Protocol;
use std::net::Ipv4Addr;

/// TCP flag bits.
pub(super) const FIN: u8 = 0x01;
pub(super) const SYN: u8 = 0x02;
pub(super) const RST: u8 = 0x04;
pub(super) const ACK: u8 = 0x10;

impl NatCore {
    /// `hint`: the session the frame most likely belongs to (checked before use), from a staged burst.
    pub(super) fn in2out(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        hint: Option<SessionId>,
    ) -> Verdict {
        match parse::ethernet(&buf[..len], self.params.inside_mac) {
            Err(r) => return Verdict::Drop(r),
            Ok(L2::Arp) => return Verdict::Punt(Punt::Arp),
            Ok(L2::Ipv4) => {}
        }
        let p = match parse::ipv4(&buf[..len]) {
            Ok(p) => p,
            Err(r) => return Verdict::Drop(r),
        };
        if self.is_own_address(p.dst) {
            return Verdict::Punt(Punt::Local);
        }
        if !self.params.policy.is_private(p.src) {
            return Verdict::Drop(DropReason::SourceNotPrivate);
        }
        if p.ttl <= 1 {
            let from = self.params.inside_ip;
            let mac = self.params.inside_mac;
            return self.icmp_reply(
                now,
                buf,
                &p,
                (icmp_type::TIME_EXCEEDED, 0),
                from,
                Side::Inside,
                mac,
                DropReason::TtlExpired,
            );
        }
        if self.params.policy.is_no_nat(p.dst) {
            rewrite::ip_header(buf, &p, Endpoint::Source, None);
            self.counters.no_nat.packets += 1;
            self.counters.no_nat.bytes += len as u64;
            return self.forward_outside(buf, len);
        }
        if let Some(public) = self.static_public_of(p.src) {
            return self.in2out_static(now, buf, len, &p, public);
        }
        if p.frag == Fragment::Later {
            return self.in2out_later_fragment(now, buf, len, &p);
        }
        let (proto, sport, dport, flags) = match p.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => (Protocol::Tcp, sport, dport, flags),
            L4::Udp { sport, dport } => (Protocol::Udp, sport, dport, 0),
            L4::Echo {
                kind: icmp_type::ECHO_REQUEST,
                ident,
            } => (Protocol::Icmp, ident, 0, 0),
            L4::IcmpError { .. } => return self.in2out_icmp_error(now, buf, len, &p),
            L4::Echo { .. } | L4::IcmpOther => {
                return Verdict::Drop(DropReason::IcmpUnsupportedType)
            }
            L4::Opaque => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let (hs, hd) = if proto == Protocol::Icmp {
            (0, 0)
        } else {
            (sport, dport)
        };
        let owner = flow_shard(p.src, p.dst, hs, hd, p.proto, self.params.shards);
        if owner != self.shard.0 {
            return Verdict::Handoff {
                shard: ShardId(owner),
                side: Side::Inside,
            };
        }
        let key = FlowKey {
            proto,
            local_ip: p.src,
            local_port: sport,
            remote_ip: p.dst,
            remote_port: dport,
        };
        let id = match self.sessions.lookup_in2out_hinted(&key, hint) {
            Some(id) => id,
            None => match self.new_flow(now, buf, &p, &key, flags) {
                Ok(id) => id,
                Err(v) => return v,
            },
        };
        self.translate_session(
            now,
            buf,
            &p,
            id,
            (proto == Protocol::Tcp).then_some(flags),
            Side::Inside,
        );
        self.counters.in2out.packets += 1;
        self.counters.in2out.bytes += len as u64;
        if self.is_public(p.dst) {
            return self.hairpin(now, buf, len);
        }
        self.forward_outside(buf, len)
    }

    /// Create the session of a new outbound flow, or say why not.
    fn new_flow(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        p: &Parsed,
        key: &FlowKey,
        tcp_flags: u8,
    ) -> Result<SessionId, Verdict> {
        if key.proto == Protocol::Tcp && (tcp_flags & (SYN | ACK | RST)) != SYN {
            return Err(Verdict::Drop(DropReason::TcpNonSyn));
        }
        if self
            .params
            .policy
            .denied(Some(key.proto), key.remote_ip, key.remote_port)
        {
            return Err(self.refuse(now, buf, p, DropReason::PolicyDenied));
        }
        if self.sessions.len() >= self.sessions.capacity() {
            return Err(self.refuse(now, buf, p, DropReason::SessionTableFull));
        }
        self.counters.snat_attempts += 1;
        let req = FlowRequest {
            proto: key.proto,
            host: key.local_ip,
            dest: natgw_allocator::Endpoint {
                addr: key.remote_ip,
                port: key.remote_port,
            },
        };
        let lease = match self.alloc.allocate(&req, now, &mut self.rng) {
            Ok(l) => l,
            Err(e) => {
                self.counters.snat_failures += 1;
                return Err(self.refuse(now, buf, p, DropReason::from_alloc(e)));
            }
        };
        let session = Session::new(
            key.proto,
            key.local_ip,
            key.local_port,
            lease.public_ip,
            lease.public_port,
            key.remote_ip,
            key.remote_port,
            self.generation,
        );
        let deadline = now.saturating_add(timeout_of(&self.params.timeouts, session.state));
        match self.sessions.insert(session, now, deadline) {
            Ok(id) => {
                self.counters.sessions_created[key.proto as usize] += 1;
                // The session's host is `p.src`: remember where its MAC sits, for the return traffic.
                self.sessions.get_mut(id).neighbor = self.neighbors.learn(p.src, p.src_mac);
                Ok(id)
            }
            Err(_) => {
                self.alloc
                    .release(&lease, natgw_allocator::CloseKind::TcpRst, now);
                Err(Verdict::Drop(DropReason::SessionTableFull))
            }
        }
    }

    /// Refuse a new flow: drop it under `reason`, and answer with ICMP administratively prohibited when
    /// configured.
    fn refuse(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        p: &Parsed,
        reason: DropReason,
    ) -> Verdict {
        if !self.params.icmp_prohibited {
            return Verdict::Drop(reason);
        }
        let from = self.params.inside_ip;
        let mac = self.params.inside_mac;
        self.icmp_reply(
            now,
            buf,
            p,
            (icmp_type::DEST_UNREACHABLE, 13),
            from,
            Side::Inside,
            mac,
            reason,
        )
    }

    /// Follow the TCP state machine far enough for the timers.
    pub(super) fn tcp_track(&mut self, id: SessionId, flags: u8, from: Side, now: Timestamp) {
        let old = self.sessions.get(id).state;
        let new = if flags & RST != 0 {
            SessionState::TcpReset
        } else {
            match (old, from) {
                (SessionState::TcpClosed | SessionState::TcpReset, Side::Inside)
                    if flags & (SYN | ACK) == SYN =>
                {
                    SessionState::TcpSynSent
                }
                (SessionState::TcpSynSent, Side::Outside) => SessionState::TcpEstablished,
                (SessionState::TcpEstablished, Side::Inside) if flags & FIN != 0 => {
                    SessionState::TcpFinIn2out
                }
                (SessionState::TcpEstablished, Side::Outside) if flags & FIN != 0 => {
                    SessionState::TcpFinOut2in
                }
                (SessionState::TcpFinIn2out, Side::Outside) if flags & FIN != 0 => {
                    SessionState::TcpClosed
                }
                (SessionState::TcpFinOut2in, Side::Inside) if flags & FIN != 0 => {
                    SessionState::TcpClosed
                }
                (s, _) => s,
            }
        };
        if new != old {
            self.sessions.get_mut(id).state = new;
            let t = &self.params.timeouts;
            if timeout_of(t, new) < timeout_of(t, old) {
                self.sessions
                    .reschedule(id, now.saturating_add(timeout_of(t, new)));
            }
        }
    }

    /// Translate a packet of a known session received from `from`: TCP state (`tcp_flags` for TCP), idle
    /// timer, the rewrite, and for a first fragment the memory that lets the later ones follow.
    pub(super) fn translate_session(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        p: &Parsed,
        id: SessionId,
        tcp_flags: Option<u8>,
        from: Side,
    ) -> Session {
        if let Some(flags) = tcp_flags {
            self.tcp_track(id, flags, from, now);
        }
        self.sessions.touch(id, now);
        let s = *self.sessions.get(id);
        let (end, addr, port) = match from {
            Side::Inside => (Endpoint::Source, s.public_ip, s.public_port),
            Side::Outside => (Endpoint::Destination, s.private_ip, s.private_port),
        };
        rewrite::translate(buf, p, end, addr, port);
        if p.frag == Fragment::First {
            let fk = FragKey::of(p);
            self.frags.insert(fk, addr, clock_ms(now));
            self.frag_steer.publish(&fk, self.shard.0);
        }
        s
    }

    fn in2out_static(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
        public: Ipv4Addr,
    ) -> Verdict {
        let (proto, dport) = match p.l4 {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => (protocol_of(p.proto), dport),
            _ => (protocol_of(p.proto), 0),
        };
        if p.frag != Fragment::Later && self.params.policy.denied(proto, p.dst, dport) {
            return self.refuse(now, buf, p, DropReason::PolicyDenied);
        }
        rewrite::ip_header(buf, p, Endpoint::Source, Some(public));
        rewrite::transport_addr_only(buf, p, p.src, public);
        self.counters.in2out.packets += 1;
        self.counters.in2out.bytes += len as u64;
        if self.is_public(p.dst) {
            return self.hairpin(now, buf, len);
        }
        self.forward_outside(buf, len)
    }

    fn in2out_later_fragment(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
        p: &Parsed,
    ) -> Verdict {
        let fk = FragKey::of(p);
        let Some(public) = self.frags.lookup(&fk, clock_ms(now)) else {
            return match self.frag_steer.owner(&fk) {
                Some(s) if s != self.shard.0 => Verdict::Handoff {
                    shard: ShardId(s),
                    side: Side::Inside,
                },
                _ => Verdict::Drop(DropReason::FragmentOutOfOrder),
            };
        };
        rewrite::ip_header(buf, p, Endpoint::Source, Some(public));
        self.counters.in2out.packets += 1;
        self.counters.in2out.bytes += len as u64;
        if self.is_public(p.dst) {
            return self.hairpin(now, buf, len);
        }
        self.forward_outside(buf, len)
    }

    /// A translated packet addressed to one of our public addresses: deliver it through out2in, on the
    /// shard that owns the destination port.
    fn hairpin(&mut self, now: Timestamp, buf: &mut [u8], len: usize) -> Verdict {
        self.counters.hairpin.packets += 1;
        self.counters.hairpin.bytes += len as u64;
        // The frame now looks as if it arrived from outside.
        let outside_mac = self.params.outside_mac;
        rewrite::set_macs(buf, outside_mac, outside_mac);
        self.out2in_l3(now, buf, len, false, None)
    }

    /// Send a translated frame to the internet gateway.
    pub(super) fn forward_outside(&mut self, buf: &mut [u8], len: usize) -> Verdict {
        let src = self.params.outside_mac;
        match self.gateway_mac {
            Some(gw) => {
                rewrite::set_macs(buf, src, gw);
                Verdict::Forward {
                    side: Side::Outside,
                    len: len as u16,
                }
            }
            None => {
                rewrite::set_macs(buf, src, crate::wire::MacAddr::BROADCAST);
                Verdict::Punt(Punt::Resolve {
                    side: Side::Outside,
                    next_hop: self.params.outside_gateway,
                })
            }
        }
    }

    #[inline]
    pub(super) fn is_public(&self, ip: Ipv4Addr) -> bool {
        self.public_filter.may_contain(ip)
            && (self.is_snat_address(ip) || self.static_private_of(ip).is_some())
    }
}
