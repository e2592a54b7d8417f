//! ICMPv4 messages (RFC 792): echo, the error types, and building errors (RFC 1812 §4.3.2).
//!
//! Layer: wire. Fast path for translation: echo requests and replies are translated by their identifier
//! ([`Icmpv4Packet::rewrite_echo_ident`]); errors coming back carry the offending datagram's IPv4 header and at
//! least its first 8 bytes, reached with [`Icmpv4Packet::embedded_ip`] and [`QuotedL4`], and translated with
//! [`Icmpv4Packet::rewrite_embedded`], which keeps the embedded IPv4 checksum, the embedded transport checksum
//! (when quoted) and the outer ICMP checksum consistent, all incrementally. Slow path for generation:
//! [`Icmpv4ErrorRepr`] builds an error quoting an original datagram, and [`error_allowed_for`] applies the
//! RFC 1812 §4.3.2.7 rules on when not to send one.
//!
//! The view is built over the whole ICMP message (the IPv4 payload): the checksum covers all of it.
//! `new_checked` requires the 8-byte header; nothing panics afterwards.

use core::fmt;
use std::net::Ipv4Addr;

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::checksum::{self, Delta};
use super::ipv4::{ip_proto, Ipv4Packet, Ipv4Repr, IPV4_MIN_HEADER_LEN};
use super::WireError;

/// Byte offsets of the ICMP header.
mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
    pub(super) const ECHO_IDENT: usize = 4;
    pub(super) const ECHO_SEQNO: usize = 6;
    pub(super) const POINTER: usize = 4;
    pub(super) const NEXT_HOP_MTU: usize = 6;
    pub(super) const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const ICMP_HEADER_LEN: usize = 8;

/// How many bytes of the original datagram's payload an ICMP error quotes at least (RFC 792: 64 bits).
pub const QUOTED_PAYLOAD_MIN: usize = 8;

/// Largest IPv4 datagram carrying an ICMP error (RFC 1812 §4.3.2.3).
pub const ICMP_ERROR_MAX_DATAGRAM: usize = 576;

/// An ICMPv4 message type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Type(pub u8);

impl Icmpv4Type {
    /// Echo reply.
    pub const ECHO_REPLY: Icmpv4Type = Icmpv4Type(0);
    /// Destination unreachable (error).
    pub const DEST_UNREACHABLE: Icmpv4Type = Icmpv4Type(3);
    /// Source quench (error, deprecated by RFC 6633 but still recognised).
    pub const SOURCE_QUENCH: Icmpv4Type = Icmpv4Type(4);
    /// Redirect (error).
    pub const REDIRECT: Icmpv4Type = Icmpv4Type(5);
    /// Echo request.
    pub const ECHO_REQUEST: Icmpv4Type = Icmpv4Type(8);
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: Icmpv4Type = Icmpv4Type(11);
    /// Parameter problem (error).
    pub const PARAM_PROBLEM: Icmpv4Type = Icmpv4Type(12);
    /// Timestamp request.
    pub const TIMESTAMP: Icmpv4Type = Icmpv4Type(13);
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: Icmpv4Type = Icmpv4Type(14);

    /// An error message, which quotes the datagram that caused it.
    #[inline]
    pub fn is_error(self) -> bool {
        matches!(self.0, 3 | 4 | 5 | 11 | 12)
    }

    /// An echo request or reply (translated by identifier).
    #[inline]
    pub fn is_echo(self) -> bool {
        self == Icmpv4Type::ECHO_REQUEST || self == Icmpv4Type::ECHO_REPLY
    }
}

impl fmt::Debug for Icmpv4Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Icmpv4Type::ECHO_REPLY => "EchoReply",
            Icmpv4Type::DEST_UNREACHABLE => "DestUnreachable",
            Icmpv4Type::SOURCE_QUENCH => "SourceQuench",
            Icmpv4Type::REDIRECT => "Redirect",
            Icmpv4Type::ECHO_REQUEST => "EchoRequest",
            Icmpv4Type::TIME_EXCEEDED => "TimeExceeded",
            Icmpv4Type::PARAM_PROBLEM => "ParamProblem",
            Icmpv4Type::TIMESTAMP => "Timestamp",
            Icmpv4Type::TIMESTAMP_REPLY => "TimestampReply",
            Icmpv4Type(other) => return write!(f, "Icmpv4Type({other})"),
        };
        f.write_str(name)
    }
}

/// Codes of [`Icmpv4Type::DEST_UNREACHABLE`] (RFC 792, RFC 1122, RFC 1812).
pub mod dest_unreachable_code {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; the next-hop MTU is in bytes 6..8 (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Destination host unknown.
    pub const HOST_UNKNOWN: u8 = 7;
    /// Communication administratively prohibited (RFC 1812): what the appliance answers on SNAT exhaustion.
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of [`Icmpv4Type::TIME_EXCEEDED`].
pub mod time_exceeded_code {
    /// TTL exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

/// Which end of a flow a rewrite applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The source address and port.
    Source,
    /// The destination address and port.
    Destination,
}

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < ICMP_HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes 4..8 as one number (identifier and sequence, pointer, gateway, or unused and MTU).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST)
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" error (RFC 1191; 0 from pre-RFC 1191 routers).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Pointer of a parameter problem.
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// An error message (its data quotes the offending datagram).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// What follows the 8-byte header: echo data, or for errors the quoted IPv4 header and payload start.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// The quoted datagram's IPv4 header (and what is quoted of its payload), for error messages. Its
    /// `total_len` describes the original datagram, so it is checked with
    /// [`Ipv4Packet::new_checked_embedded`]. `Unsupported` if this is not an error message.
    #[inline]
    pub fn embedded_ip(&self) -> Result<Ipv4Packet<&[u8]>, WireError> {
        if !self.is_error() {
            return Err(WireError::Unsupported);
        }
        Ipv4Packet::new_checked_embedded(self.data())
    }

    /// Whether the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::sum(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, t: Icmpv4Type) {
        self.buffer.as_mut()[field::TYPE] = t.0;
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::REST, v);
    }

    /// Sets the echo identifier (checksum untouched).
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    /// Sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, v);
    }

    /// What follows the header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let start = field::DATA.min(data.len());
        &mut data[start..]
    }

    /// The quoted IPv4 datagram of an error message, writable (see [`embedded_ip`](Self::embedded_ip)).
    /// Changing it invalidates the ICMP checksum; [`rewrite_embedded`](Self::rewrite_embedded) does it all.
    #[inline]
    pub fn embedded_ip_mut(&mut self) -> Result<Ipv4Packet<&mut [u8]>, WireError> {
        if !self.is_error() {
            return Err(WireError::Unsupported);
        }
        Ipv4Packet::new_checked_embedded(self.data_mut())
    }

    /// Recomputes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::compute(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Applies an incremental checksum change. RFC 1624's update can yield `0x0000` where a recomputation
    /// gives `0xffff` only for an all-zero message; that result is rare (1 in 65,536), so it is simply
    /// recomputed.
    #[inline]
    pub fn apply_checksum_delta(&mut self, delta: Delta) {
        let c = delta.apply(self.checksum());
        if c == 0 {
            self.fill_checksum();
        } else {
            self.set_checksum(c);
        }
    }

    /// Sets the echo identifier and updates the checksum incrementally; returns the old identifier.
    #[inline]
    pub fn rewrite_echo_ident(&mut self, ident: u16) -> u16 {
        let old = self.echo_ident();
        self.set_echo_ident(ident);
        self.apply_checksum_delta(Delta::ZERO.u16(old, ident));
        old
    }

    /// Translates the datagram quoted in an error message: sets the embedded header's `which` address to
    /// `addr` and its port (TCP/UDP) or echo identifier (ICMP echo) to `port`, updating the embedded IPv4
    /// checksum, the embedded transport checksum when it is quoted (UDP's always is, TCP's only when at least 18
    /// bytes are, an embedded echo's always is) and this message's checksum, all incrementally.
    ///
    /// This is what a NAT does to an error coming back for a translated flow (RFC 5508 §7, RFC 3022 §4.3):
    /// out2in rewrites the embedded *source* back to the private endpoint; an error sent by a private host about
    /// an inbound packet has its embedded *destination* rewritten to the public endpoint. Returns the old address
    /// and port. Errors (nothing is modified): `Unsupported` if this is not an error message or the embedded
    /// protocol is not TCP, UDP or ICMP echo, `Truncated` if fewer than 8 bytes of it are quoted, the
    /// embedded-header errors of [`Ipv4Packet::new_checked_embedded`]; `Malformed` for an embedded non-first
    /// fragment (no transport header to translate).
    pub fn rewrite_embedded(
        &mut self,
        which: Endpoint,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<(Ipv4Addr, u16), WireError> {
        let mut ip = self.embedded_ip_mut()?;
        if ip.is_non_first_fragment() {
            return Err(WireError::Malformed);
        }
        let kind = QuotedL4::new_checked(ip.payload())?.kind(ip.protocol())?;
        let old_addr = match which {
            Endpoint::Source => ip.src_addr(),
            Endpoint::Destination => ip.dst_addr(),
        };
        // Validation is over: from here on nothing fails. The embedded transport header first...
        let mut l4 = QuotedL4::new_unchecked(ip.payload_mut());
        let old_port = l4.port_or_ident(kind, which);
        let l4_csum = l4.rewrite(kind, which, old_addr, addr, port);
        // ...then the embedded IPv4 header.
        let old_ip_csum = ip.checksum();
        match which {
            Endpoint::Source => ip.rewrite_src_addr(addr),
            Endpoint::Destination => ip.rewrite_dst_addr(addr),
        };
        // Every 16-bit word that changed in the quote is aligned in this message (8-byte ICMP header, IHL a
        // multiple of 4, fields at even offsets), so the outer checksum follows them word for word.
        let mut outer = Delta::ZERO
            .u16(old_port, port)
            .addr(old_addr, addr)
            .u16(old_ip_csum, ip.checksum());
        if let Some((o, n)) = l4_csum {
            outer = outer.u16(o, n);
        }
        let old = (old_addr, old_port);
        self.apply_checksum_delta(outer);
        Ok(old)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// What kind of transport header a [`QuotedL4`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotedKind {
    /// TCP: ports at 0..4, checksum at 16..18 (quoted only if at least 18 bytes are).
    Tcp,
    /// UDP: ports at 0..4, checksum at 6..8 (0 = none).
    Udp,
    /// ICMP echo request or reply: checksum at 2..4, identifier at 4..6.
    IcmpEcho,
}

/// The start of the transport header quoted in an ICMP error: at least 8 bytes (RFC 792), enough for the TCP and
/// UDP ports, the UDP checksum, and an ICMP echo's identifier and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotedL4<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> QuotedL4<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> QuotedL4<T> {
        QuotedL4 { buffer }
    }

    /// Wraps a buffer of at least 8 bytes (`Truncated` otherwise).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<QuotedL4<T>, WireError> {
        if buffer.as_ref().len() < QUOTED_PAYLOAD_MIN {
            return Err(WireError::Truncated);
        }
        Ok(QuotedL4 { buffer })
    }

    /// The quoted bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Which header this is, given the embedded IPv4 protocol: `Unsupported` unless TCP, UDP or ICMP echo.
    #[inline]
    pub fn kind(&self, protocol: u8) -> Result<QuotedKind, WireError> {
        match protocol {
            ip_proto::TCP => Ok(QuotedKind::Tcp),
            ip_proto::UDP => Ok(QuotedKind::Udp),
            ip_proto::ICMP
                if self
                    .buffer
                    .as_ref()
                    .first()
                    .is_some_and(|&t| Icmpv4Type(t).is_echo()) =>
            {
                Ok(QuotedKind::IcmpEcho)
            }
            _ => Err(WireError::Unsupported),
        }
    }

    /// Source port (TCP, UDP).
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    /// Destination port (TCP, UDP).
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// Identifier of a quoted ICMP echo.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }

    /// The port (or echo identifier) of endpoint `which`; an echo has one identifier for both ends.
    #[inline]
    pub fn port_or_ident(&self, kind: QuotedKind, which: Endpoint) -> u16 {
        match (kind, which) {
            (QuotedKind::IcmpEcho, _) => self.echo_ident(),
            (_, Endpoint::Source) => self.src_port(),
            (_, Endpoint::Destination) => self.dst_port(),
        }
    }

    /// Offset of the quoted transport checksum, if it is quoted.
    #[inline]
    fn checksum_at(&self, kind: QuotedKind) -> Option<usize> {
        let at = match kind {
            QuotedKind::Tcp => 16,
            QuotedKind::Udp => 6,
            QuotedKind::IcmpEcho => 2,
        };
        (self.buffer.as_ref().len() >= at + 2).then_some(at)
    }

    /// The quoted transport checksum, if quoted.
    #[inline]
    pub fn checksum(&self, kind: QuotedKind) -> Option<u16> {
        self.checksum_at(kind)
            .map(|at| read_u16(self.buffer.as_ref(), at))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QuotedL4<T> {
    /// Sets the source port (checksums untouched).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), 0, port);
    }

    /// Sets the destination port (checksums untouched).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), 2, port);
    }

    /// Sets a quoted echo's identifier (checksums untouched).
    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), 4, ident);
    }

    /// Rewrites endpoint `which` (address change `old_addr -> new_addr` in the pseudo-header, port or
    /// identifier to `port`) and updates the quoted checksum if present; returns its old and new values.
    fn rewrite(
        &mut self,
        kind: QuotedKind,
        which: Endpoint,
        old_addr: Ipv4Addr,
        new_addr: Ipv4Addr,
        port: u16,
    ) -> Option<(u16, u16)> {
        let old_port = self.port_or_ident(kind, which);
        match (kind, which) {
            (QuotedKind::IcmpEcho, _) => self.set_echo_ident(port),
            (_, Endpoint::Source) => self.set_src_port(port),
            (_, Endpoint::Destination) => self.set_dst_port(port),
        }
        let at = self.checksum_at(kind)?;
        let old = read_u16(self.buffer.as_ref(), at);
        let new = match kind {
            // ICMP has no pseudo-header: only the identifier changes. The quoted message is never all zero
            // here unless the identifier is, and then a 0 result is equivalent; keep it as computed.
            QuotedKind::IcmpEcho => Delta::ZERO.u16(old_port, port).apply(old),
            QuotedKind::Tcp => Delta::ZERO
                .addr(old_addr, new_addr)
                .u16(old_port, port)
                .apply(old),
            QuotedKind::Udp if old == 0 => 0,
            QuotedKind::Udp => {
                let c = Delta::ZERO
                    .addr(old_addr, new_addr)
                    .u16(old_port, port)
                    .apply(old);
                if c == 0 {
                    0xffff
                } else {
                    c
                }
            }
        };
        write_u16(self.buffer.as_mut(), at, new);
        Some((old, new))
    }
}

/// How much of the original datagram an ICMP error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuoteLen {
    /// The IPv4 header and the first 8 bytes of payload (RFC 792).
    #[default]
    HeaderPlus8,
    /// As much as fits in a 576-byte datagram (RFC 1812 §4.3.2.3).
    UpTo576,
}

/// An ICMP error to build: type, code, and the 4 rest-of-header bytes (next-hop MTU, pointer, or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4ErrorRepr {
    /// An error type ([`Icmpv4Type::is_error`]).
    pub msg_type: Icmpv4Type,
    /// The code.
    pub code: u8,
    /// Bytes 4..8 of the header.
    pub rest_of_header: u32,
}

impl Icmpv4ErrorRepr {
    /// Time exceeded in transit (TTL reached 0 at the appliance).
    pub const fn time_exceeded() -> Icmpv4ErrorRepr {
        Icmpv4ErrorRepr {
            msg_type: Icmpv4Type::TIME_EXCEEDED,
            code: time_exceeded_code::TTL,
            rest_of_header: 0,
        }
    }

    /// Destination unreachable with `code` (see [`dest_unreachable_code`]).
    pub const fn dest_unreachable(code: u8) -> Icmpv4ErrorRepr {
        Icmpv4ErrorRepr {
            msg_type: Icmpv4Type::DEST_UNREACHABLE,
            code,
            rest_of_header: 0,
        }
    }

    /// Fragmentation needed and DF set, announcing `next_hop_mtu` (RFC 1191).
    pub const fn frag_needed(next_hop_mtu: u16) -> Icmpv4ErrorRepr {
        Icmpv4ErrorRepr {
            msg_type: Icmpv4Type::DEST_UNREACHABLE,
            code: dest_unreachable_code::FRAG_NEEDED,
            rest_of_header: next_hop_mtu as u32,
        }
    }

    /// How many bytes of `original` (an IPv4 datagram, header first) the error quotes: never more than the
    /// datagram (up to its total length) or the buffer holds. `original` must pass
    /// [`Ipv4Packet::new_checked_embedded`], else the error is returned.
    pub fn quote_len(original: &[u8], quote: QuoteLen) -> Result<usize, WireError> {
        let ip = Ipv4Packet::new_checked_embedded(original)?;
        let present = original.len().min(usize::from(ip.total_len()));
        let wanted = match quote {
            QuoteLen::HeaderPlus8 => ip.header_len() + QUOTED_PAYLOAD_MIN,
            QuoteLen::UpTo576 => ICMP_ERROR_MAX_DATAGRAM - IPV4_MIN_HEADER_LEN - ICMP_HEADER_LEN,
        };
        Ok(present.min(wanted))
    }

    /// Length of the ICMP message (header and quote).
    pub fn icmp_len(original: &[u8], quote: QuoteLen) -> Result<usize, WireError> {
        Ok(ICMP_HEADER_LEN + Self::quote_len(original, quote)?)
    }

    /// Writes the ICMP message (header, quote, checksum) at the start of `buf`; returns its length.
    /// `BufferTooSmall` if it does not fit.
    pub fn emit(
        &self,
        original: &[u8],
        quote: QuoteLen,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let q = Self::quote_len(original, quote)?;
        let len = ICMP_HEADER_LEN + q;
        let Some(out) = buf.get_mut(..len) else {
            return Err(WireError::BufferTooSmall);
        };
        let mut p = Icmpv4Packet::new_unchecked(out);
        p.set_msg_type(self.msg_type);
        p.set_code(self.code);
        p.set_rest_of_header(self.rest_of_header);
        p.data_mut().copy_from_slice(&original[..q]);
        p.fill_checksum();
        Ok(len)
    }

    /// Writes a whole IPv4 datagram carrying this error from `src` to `dst` (20-byte header, TTL `ttl`, DSCP
    /// CS6 as RFC 1812 §4.3.2.5 asks, checksums filled) at the start of `buf`; returns its length.
    pub fn emit_ipv4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        original: &[u8],
        quote: QuoteLen,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let icmp_len = Self::icmp_len(original, quote)?;
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ip_proto::ICMP,
            payload_len: icmp_len,
            ttl,
            ident: 0,
            dscp_ecn: 0xc0,
            dont_frag: false,
        };
        let total = repr.buffer_len();
        let Some(out) = buf.get_mut(..total) else {
            return Err(WireError::BufferTooSmall);
        };
        let (hdr, rest) = out.split_at_mut(IPV4_MIN_HEADER_LEN);
        repr.emit(&mut Ipv4Packet::new_unchecked(hdr))?;
        self.emit(original, quote, rest)?;
        Ok(total)
    }
}

/// Whether an ICMP error may be sent about `original` (RFC 1812 §4.3.2.7, RFC 1122 §3.2.2): not about an ICMP
/// error (or an ICMP message too short to tell), not about a non-first fragment, not about a datagram sent to a
/// broadcast or multicast address, nor one whose source does not name a single host (0.0.0.0, loopback,
/// broadcast, multicast, class E).
pub fn error_allowed_for<T: AsRef<[u8]>>(original: &Ipv4Packet<T>) -> bool {
    if original.is_non_first_fragment() {
        return false;
    }
    let dst = original.dst_addr();
    if dst.is_broadcast() || dst.is_multicast() {
        return false;
    }
    let src = original.src_addr();
    if src.is_unspecified()
        || src.is_loopback()
        || src.is_broadcast()
        || src.is_multicast()
        || src.octets()[0] >= 240
    {
        return false;
    }
    if original.protocol() == ip_proto::ICMP {
        return match original.payload().first() {
            Some(&t) => !Icmpv4Type(t).is_error(),
            None => false,
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo request, ident 0x1234, seq 1, data "abcd".
    static ECHO: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    /// The IPv4 datagram of the ipv4.rs golden test (10.0.0.2 -> 198.51.100.7, UDP, 30 bytes).
    static ORIGINAL: [u8; 30] = [
        0x45, 0x00, 0x00, 0x1e, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xf4, 0x5e, 0x0a, 0x00, 0x00,
        0x02, 0xc6, 0x33, 0x64, 0x07, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    ];

    /// Time exceeded quoting ORIGINAL's header and first 8 payload bytes.
    static TIME_EXCEEDED: [u8; 36] = [
        0x0b, 0x00, 0xe4, 0xeb, 0x00, 0x00, 0x00, 0x00, // type 11 code 0, checksum, unused
        0x45, 0x00, 0x00, 0x1e, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xf4, 0x5e, 0x0a, 0x00, 0x00,
        0x02, 0xc6, 0x33, 0x64, 0x07, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    ];

    #[test]
    fn deconstruct_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert!(p.msg_type().is_echo());
        assert!(!p.is_error());
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x2104);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcd");
        assert!(p.verify_checksum());
        assert_eq!(p.embedded_ip().map(|_| ()), Err(WireError::Unsupported));
    }

    #[test]
    fn construct_echo() {
        let mut buf = [0xffu8; 12];
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv4Type::ECHO_REQUEST);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcd");
        p.fill_checksum();
        assert_eq!(buf, ECHO);
    }

    #[test]
    fn deconstruct_error() {
        let p = Icmpv4Packet::new_checked(&TIME_EXCEEDED[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::TIME_EXCEEDED);
        assert_eq!(p.code(), time_exceeded_code::TTL);
        assert!(p.is_error());
        assert!(p.verify_checksum());
        let ip = p.embedded_ip().unwrap();
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(ip.total_len(), 30);
        assert_eq!(ip.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        let l4 = QuotedL4::new_checked(ip.payload()).unwrap();
        assert_eq!(l4.kind(ip.protocol()), Ok(QuotedKind::Udp));
        assert_eq!(l4.src_port(), 0x0102);
        assert_eq!(l4.dst_port(), 0x0304);
        assert_eq!(l4.checksum(QuotedKind::Udp), Some(0x0708));
        assert_eq!(l4.checksum(QuotedKind::Tcp), None);
    }

    #[test]
    fn construct_error() {
        let mut buf = [0u8; 64];
        let n = Icmpv4ErrorRepr::time_exceeded()
            .emit(&ORIGINAL, QuoteLen::HeaderPlus8, &mut buf)
            .unwrap();
        assert_eq!(buf[..n], TIME_EXCEEDED);
        // UpTo576 quotes the whole (short) datagram.
        let n = Icmpv4ErrorRepr::time_exceeded()
            .emit(&ORIGINAL, QuoteLen::UpTo576, &mut buf)
            .unwrap();
        assert_eq!(n, 8 + 30);
        assert!(Icmpv4Packet::new_checked(&buf[..n])
            .unwrap()
            .verify_checksum());
        assert_eq!(
            Icmpv4ErrorRepr::time_exceeded().emit(&ORIGINAL, QuoteLen::HeaderPlus8, &mut buf[..35]),
            Err(WireError::BufferTooSmall)
        );
        assert_eq!(
            Icmpv4ErrorRepr::time_exceeded().emit(&ORIGINAL[..19], QuoteLen::HeaderPlus8, &mut buf),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn frag_needed_and_ipv4_emit() {
        let mut buf = [0u8; 128];
        let src = Ipv4Addr::new(203, 0, 113, 1);
        let n = Icmpv4ErrorRepr::frag_needed(1500)
            .emit_ipv4(
                src,
                Ipv4Addr::new(10, 0, 0, 2),
                64,
                &ORIGINAL,
                QuoteLen::HeaderPlus8,
                &mut buf,
            )
            .unwrap();
        assert_eq!(n, 20 + 36);
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), ip_proto::ICMP);
        assert_eq!(ip.src_addr(), src);
        assert_eq!(ip.dscp_ecn(), 0xc0);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Type::DEST_UNREACHABLE);
        assert_eq!(icmp.code(), dest_unreachable_code::FRAG_NEEDED);
        assert_eq!(icmp.next_hop_mtu(), 1500);
        assert_eq!(icmp.checksum(), 0xe70b);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn quote_is_limited_to_576_bytes() {
        let mut big = vec![0u8; 1500];
        let mut ip = Ipv4Packet::new_unchecked(&mut big[..]);
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 2),
            dst_addr: Ipv4Addr::new(1, 1, 1, 1),
            protocol: ip_proto::UDP,
            payload_len: 1480,
            ttl: 1,
            ident: 7,
            dscp_ecn: 0,
            dont_frag: true,
        }
        .emit(&mut ip)
        .unwrap();
        let mut out = [0u8; 1600];
        let n = Icmpv4ErrorRepr::time_exceeded()
            .emit_ipv4(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                64,
                &big,
                QuoteLen::UpTo576,
                &mut out,
            )
            .unwrap();
        assert_eq!(n, 576);
        // A Ethernet-padded original: the quote stops at the original's total length.
        let mut padded = [0u8; 46];
        padded[..30].copy_from_slice(&ORIGINAL);
        assert_eq!(
            Icmpv4ErrorRepr::quote_len(&padded, QuoteLen::UpTo576),
            Ok(30)
        );
    }

    #[test]
    fn echo_ident_rewrite_matches_recompute() {
        let mut b = ECHO;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.rewrite_echo_ident(0xbeef), 0x1234);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
        // The all-zero corner: an echo reply with ident, seq and data all zero after the rewrite.
        let mut z = [0u8, 0, 0, 0, 0, 5, 0, 0];
        let mut p = Icmpv4Packet::new_checked(&mut z[..]).unwrap();
        p.fill_checksum();
        p.rewrite_echo_ident(0);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum());
    }

    #[test]
    fn rewrite_embedded_udp_keeps_every_checksum_correct() {
        // The private host 10.0.0.2:40000 sent UDP to 198.51.100.7:53; the NAT made it 203.0.113.10:1024.
        let private = Ipv4Addr::new(10, 0, 0, 2);
        let public = Ipv4Addr::new(203, 0, 113, 10);
        let remote = Ipv4Addr::new(198, 51, 100, 7);
        let mut dgram = [0u8; 32];
        let mut ip = Ipv4Packet::new_unchecked(&mut dgram[..]);
        Ipv4Repr {
            src_addr: public,
            dst_addr: remote,
            protocol: ip_proto::UDP,
            payload_len: 12,
            ttl: 1,
            ident: 99,
            dscp_ecn: 0,
            dont_frag: false,
        }
        .emit(&mut ip)
        .unwrap();
        {
            let mut udp = super::super::udp::UdpPacket::new_unchecked(ip.payload_mut());
            udp.set_src_port(1024);
            udp.set_dst_port(53);
            udp.set_len(12);
            udp.payload_mut().copy_from_slice(b"ping");
            udp.fill_checksum(public, remote);
        }
        // A router answers with time exceeded quoting the whole datagram.
        let mut msg = [0u8; 64];
        let n = Icmpv4ErrorRepr::time_exceeded()
            .emit(&dgram, QuoteLen::UpTo576, &mut msg)
            .unwrap();
        let mut icmp = Icmpv4Packet::new_checked(&mut msg[..n]).unwrap();
        let old = icmp
            .rewrite_embedded(Endpoint::Source, private, 40000)
            .unwrap();
        assert_eq!(old, (public, 1024));
        assert!(icmp.verify_checksum());
        let c = icmp.checksum();
        icmp.fill_checksum();
        assert_eq!(icmp.checksum(), c);
        let inner = icmp.embedded_ip().unwrap();
        assert_eq!(inner.src_addr(), private);
        assert!(inner.verify_checksum());
        let udp = super::super::udp::UdpPacket::new_checked(inner.payload()).unwrap();
        assert_eq!(udp.src_port(), 40000);
        assert!(udp.verify_checksum(private, remote));
    }

    #[test]
    fn rewrite_embedded_refuses_what_it_cannot_translate() {
        let mut echo = ECHO;
        let mut p = Icmpv4Packet::new_checked(&mut echo[..]).unwrap();
        assert_eq!(
            p.rewrite_embedded(Endpoint::Source, Ipv4Addr::LOCALHOST, 1),
            Err(WireError::Unsupported)
        );
        // Only 4 bytes of the embedded payload quoted.
        let mut short = TIME_EXCEEDED;
        let mut p = Icmpv4Packet::new_checked(&mut short[..32]).unwrap();
        let before = p.as_bytes().to_vec();
        assert_eq!(
            p.rewrite_embedded(Endpoint::Source, Ipv4Addr::LOCALHOST, 1),
            Err(WireError::Truncated)
        );
        assert_eq!(p.as_bytes(), &before[..]);
        // Embedded GRE.
        let mut gre = TIME_EXCEEDED;
        gre[8 + 9] = 47;
        let mut p = Icmpv4Packet::new_checked(&mut gre[..]).unwrap();
        assert_eq!(
            p.rewrite_embedded(Endpoint::Source, Ipv4Addr::LOCALHOST, 1),
            Err(WireError::Unsupported)
        );
    }

    #[test]
    fn when_errors_may_be_sent() {
        let ok = Ipv4Packet::new_checked(&ORIGINAL[..]).unwrap();
        assert!(error_allowed_for(&ok));
        let variant = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut b = ORIGINAL;
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            f(&mut p);
            error_allowed_for(&Ipv4Packet::new_unchecked(&b[..]))
        };
        assert!(!variant(&|p| p.set_frag_offset(8)));
        assert!(variant(&|p| p.set_more_frags(true)));
        assert!(!variant(&|p| p.set_dst_addr(Ipv4Addr::BROADCAST)));
        assert!(!variant(&|p| p.set_dst_addr(Ipv4Addr::new(224, 0, 0, 5))));
        assert!(!variant(&|p| p.set_src_addr(Ipv4Addr::UNSPECIFIED)));
        assert!(!variant(&|p| p.set_src_addr(Ipv4Addr::new(240, 0, 0, 1))));
        assert!(!variant(&|p| p.set_src_addr(Ipv4Addr::new(127, 0, 0, 1))));
        // ICMP: echo yes, error no.
        assert!(variant(&|p| {
            p.set_protocol(ip_proto::ICMP);
            p.payload_mut()[0] = 8;
        }));
        assert!(!variant(&|p| {
            p.set_protocol(ip_proto::ICMP);
            p.payload_mut()[0] = 3;
        }));
    }
}
