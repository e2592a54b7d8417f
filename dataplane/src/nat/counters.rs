//! Per-shard counters and the named reason of every drop (fast path).
//!
//! Every frame the NAT core does not forward, punt or hand off is counted under exactly one [`DropReason`],
//! as VPP's `foreach_nat_in2out_ed_error` does. A frame that disappears without a counter is a bug. The
//! counters are plain integers owned by the shard; the runtime publishes snapshots to the slow path.

use natgw_allocator::AllocError;
use natgw_config::Protocol;

macro_rules! drop_reasons {
    ($($variant:ident = $name:literal : $doc:literal,)*) => {
        /// Why a frame was dropped. Indexes the per-shard drop counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// snake_case name, used as the metrics label.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// One line on what the reason means.
            pub const fn description(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }
        }
    };
}

drop_reasons! {
    EthernetTruncated = "ethernet_truncated": "Frame shorter than an Ethernet header.",
    NotForUs = "not_for_us": "Destination MAC or IP is not the appliance's (seen in promiscuous mode).",
    VlanTagged = "vlan_tagged": "802.1Q/802.1ad tagged frame; VLANs are not configured.",
    NotIpv4 = "not_ipv4": "Ethertype other than IPv4 or ARP (e.g. IPv6).",
    Ipv4Malformed = "ipv4_malformed": "IPv4 header truncated, bad version, IHL or total length.",
    Ipv4BadChecksum = "ipv4_bad_checksum": "IPv4 header checksum wrong.",
    L4Truncated = "l4_truncated": "TCP/UDP/ICMP header truncated or malformed.",
    UnsupportedProtocol = "unsupported_protocol": "IP protocol other than TCP, UDP, ICMP (and no 1:1 mapping).",
    IcmpUnsupportedType = "icmp_unsupported_type": "ICMP type neither echo nor a translatable error.",
    IcmpErrorNoSession = "icmp_error_no_session": "ICMP error whose embedded packet matches no session.",
    IcmpErrorMalformed = "icmp_error_malformed": "ICMP error with a truncated or malformed embedded packet.",
    SourceNotPrivate = "source_not_private": "Inside packet whose source is outside private_prefixes.",
    TcpNonSyn = "tcp_non_syn": "TCP packet of an unknown flow that is not a SYN; no session is created.",
    Unsolicited = "unsolicited": "Inbound packet matching no session and no 1:1 mapping (filtered).",
    PolicyDenied = "policy_denied": "New flow denied by a [[policy.deny]] rule (TCP 25 by default).",
    PortsExhausted = "ports_exhausted": "No SNAT port left for this destination (SNAT exhaustion).",
    DestinationLimit = "destination_limit": "Per public IP per destination connection limit reached.",
    HostLimit = "host_limit": "Per-host SNAT port cap reached.",
    SessionLimit = "session_limit": "Total session limit reached.",
    NotInPool = "not_in_pool": "Preallocated mode: source host is not a listed instance.",
    SessionTableFull = "session_table_full": "The shard's session table is full.",
    TtlExpired = "ttl_expired": "TTL would reach 0; ICMP time exceeded sent (rate limited).",
    FragmentOutOfOrder = "fragment_out_of_order": "Non-first fragment with no known first fragment.",
    NeighborUnresolved = "neighbor_unresolved": "Next hop MAC unknown and the resolution queue is full.",
    HandoffRingFull = "handoff_ring_full": "Frame for another shard, but its handoff ring was full.",
    SlowPathRingFull = "slowpath_ring_full": "Frame for the slow path, but its ring was full.",
    TxFull = "tx_full": "The transmit ring was full.",
}

impl DropReason {
    /// The drop reason matching an allocation failure.
    pub const fn from_alloc(e: AllocError) -> DropReason {
        match e {
            AllocError::PortsExhausted => DropReason::PortsExhausted,
            AllocError::DestinationLimit => DropReason::DestinationLimit,
            AllocError::HostLimit => DropReason::HostLimit,
            AllocError::SessionLimit => DropReason::SessionLimit,
            AllocError::NotInPool => DropReason::NotInPool,
        }
    }
}

/// Packet and byte counts of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames forwarded.
    pub packets: u64,
    /// Bytes forwarded (Ethernet frame length).
    pub bytes: u64,
}

/// All counters of one shard. Plain integers: only the owning worker writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Translated private → public.
    pub in2out: Traffic,
    /// Translated public → private.
    pub out2in: Traffic,
    /// Forwarded untranslated (no-NAT destinations).
    pub no_nat: Traffic,
    /// Hairpinned (inside → own public address → inside).
    pub hairpin: Traffic,
    /// Frames handed to the slow path (ARP, frames for the appliance, unresolved next hops).
    pub punted: u64,
    /// Frames this shard handed to another shard.
    pub handoffs_out: u64,
    /// ICMP errors generated (time exceeded, admin prohibited).
    pub icmp_generated: u64,
    /// Sessions created, by protocol.
    pub sessions_created: [u64; 3],
    /// Sessions ended (idle, closed, reset), by protocol.
    pub sessions_expired: [u64; 3],
    /// New flows that asked the allocator for a port (SNAT connection attempts).
    pub snat_attempts: u64,
    /// Failed SNAT attempts (the allocator said no), also counted in `drops`.
    pub snat_failures: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            in2out: Traffic::default(),
            out2in: Traffic::default(),
            no_nat: Traffic::default(),
            hairpin: Traffic::default(),
            punted: 0,
            handoffs_out: 0,
            icmp_generated: 0,
            sessions_created: [0; 3],
            sessions_expired: [0; 3],
            snat_attempts: 0,
            snat_failures: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Count a drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops under one reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Sessions created for one protocol.
    pub fn created(&self, proto: Protocol) -> u64 {
        self.sessions_created[proto as usize]
    }

    /// Add another shard's counters into this one (slow-path aggregation).
    pub fn accumulate(&mut self, other: &Counters) {
        fn add(a: &mut Traffic, b: &Traffic) {
            a.packets += b.packets;
            a.bytes += b.bytes;
        }
        add(&mut self.in2out, &other.in2out);
        add(&mut self.out2in, &other.out2in);
        add(&mut self.no_nat, &other.no_nat);
        add(&mut self.hairpin, &other.hairpin);
        self.punted += other.punted;
        self.handoffs_out += other.handoffs_out;
        self.icmp_generated += other.icmp_generated;
        for i in 0..3 {
            self.sessions_created[i] += other.sessions_created[i];
            self.sessions_expired[i] += other.sessions_expired[i];
        }
        self.snat_attempts += other.snat_attempts;
        self.snat_failures += other.snat_failures;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_unique_names_and_dense_indexes() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(!r.description().is_empty());
        }
    }

    #[test]
    fn accumulate_adds_everything() {
        let mut a = Counters::default();
        let mut b = Counters::default();
        b.drop(DropReason::Unsolicited);
        b.in2out.packets = 3;
        b.sessions_created[Protocol::Udp as usize] = 2;
        a.accumulate(&b);
        a.accumulate(&b);
        assert_eq!(a.drops_of(DropReason::Unsolicited), 2);
        assert_eq!(a.in2out.packets, 6);
        assert_eq!(a.created(Protocol::Udp), 4);
        assert_eq!(a.total_drops(), 2);
    }
}
