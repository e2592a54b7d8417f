//! What each key of the config file may hold, in words, for error messages.
//!
//! Layer: config (slow path). The table mirrors `docs/config.md`; a unit test checks that every key
//! the effective config prints has an entry here, so the two cannot drift silently.

/// Every key of the schema and a description of its valid values.
const KEYS: &[(&str, &str)] = &[
    ("dataplane", "a table"),
    ("dataplane.workers", "an integer from 1 to 128"),
    (
        "dataplane.cores",
        "an array of distinct core ids (integers 0 to 4095), one per worker",
    ),
    (
        "dataplane.slowpath_core",
        "a core id, an integer from 0 to 4095, not one of dataplane.cores",
    ),
    ("dataplane.burst", "an integer from 1 to 256"),
    ("dataplane.rx_ring", "a power of two from 64 to 32768"),
    ("dataplane.tx_ring", "a power of two from 64 to 32768"),
    (
        "dataplane.handoff_ring",
        "a power of two from 64 to 1048576",
    ),
    (
        "interfaces",
        "a table with the tables `inside` and `outside`",
    ),
    (
        "interfaces.inside",
        "a table with driver, device, address, and optionally gateway and mac",
    ),
    (
        "interfaces.outside",
        "a table with driver, device, address, gateway, and optionally mac",
    ),
    (
        "interfaces.*.driver",
        "one of \"af_packet\", \"af_xdp\", \"dpdk\", \"memory\"",
    ),
    (
        "interfaces.*.device",
        "a string: a kernel interface name (at most 15 characters) for af_packet and af_xdp, a \
         PCI address or DPDK vdev for dpdk, any name for memory",
    ),
    (
        "interfaces.*.address",
        "the appliance's own address with its prefix, like \"10.0.0.1/24\"",
    ),
    (
        "interfaces.*.gateway",
        "an IPv4 address inside the interface's subnet, like \"203.0.113.254\"",
    ),
    (
        "interfaces.*.mac",
        "a unicast MAC address like \"02:00:00:00:00:01\"",
    ),
    ("nat", "a table"),
    (
        "nat.public_ips",
        "an array of IPv4 addresses, like [\"203.0.113.10\"]",
    ),
    (
        "nat.public_prefixes",
        "an array of IPv4 prefixes, like [\"198.51.100.0/30\"]",
    ),
    (
        "nat.private_prefixes",
        "a non-empty array of IPv4 prefixes, like [\"10.0.0.0/8\"]",
    ),
    (
        "nat.port_range",
        "an array [low, high] with 1024 <= low <= high <= 65535",
    ),
    (
        "nat.reserved_ports",
        "an array of ports or [low, high] ranges inside nat.port_range, like [8080, [9000, 9007]]",
    ),
    ("nat.allocation", "\"dynamic\" or \"preallocated\""),
    ("nat.pooling", "\"paired\" or \"arbitrary\""),
    ("nat.max_sessions", "an integer from 1 to 268435456"),
    ("nat.max_per_destination", "an integer from 1 to 64512"),
    (
        "nat.max_ports_per_host",
        "an integer from 1 to the SNAT ports a host can reach",
    ),
    ("nat.exhaustion", "\"fail\" or \"fallback\""),
    ("nat.icmp_prohibited", "true or false"),
    (
        "nat.no_nat",
        "an array of IPv4 prefixes, like [\"192.0.2.0/24\"]",
    ),
    ("nat.timeouts", "a table of durations"),
    (
        "nat.timeouts.tcp_idle",
        "a duration from \"4m\" to \"120m\"",
    ),
    (
        "nat.timeouts.tcp_transitory",
        "a duration from \"1s\" to \"2h\"",
    ),
    ("nat.timeouts.udp_idle", "a duration from \"1s\" to \"2h\""),
    ("nat.timeouts.icmp_idle", "a duration from \"1s\" to \"2h\""),
    (
        "nat.timeouts.tcp_fin_cooldown",
        "a duration from \"0s\" to \"10m\"",
    ),
    (
        "nat.timeouts.tcp_rst_cooldown",
        "a duration from \"0s\" to \"10m\"",
    ),
    (
        "nat.timeouts.tcp_halfopen_cooldown",
        "a duration from \"0s\" to \"10m\"",
    ),
    (
        "nat.timeouts.udp_cooldown",
        "a duration from \"0s\" to \"10m\"",
    ),
    (
        "nat.static",
        "an array of tables [[nat.static]] with `private` and `public`",
    ),
    (
        "nat.static.private",
        "the private IPv4 address, inside nat.private_prefixes",
    ),
    (
        "nat.static.public",
        "the public IPv4 address, not a SNAT address",
    ),
    (
        "nat.preallocated",
        "a table with `instances` and optionally `ports_per_instance`",
    ),
    (
        "nat.preallocated.instances",
        "an array of IPv4 addresses or prefixes inside nat.private_prefixes",
    ),
    (
        "nat.preallocated.ports_per_instance",
        "a multiple of 8, from 8 to the SNAT ports per IP",
    ),
    ("policy", "a table"),
    ("policy.allow_smtp", "true or false"),
    ("policy.deny", "an array of tables [[policy.deny]]"),
    (
        "policy.deny.protocol",
        "one of \"tcp\", \"udp\", \"icmp\", \"any\"",
    ),
    (
        "policy.deny.destination",
        "an IPv4 prefix like \"0.0.0.0/0\"",
    ),
    ("policy.deny.port", "a port from 1 to 65535"),
    (
        "policy.deny.ports",
        "an array [low, high] with 1 <= low <= high <= 65535",
    ),
    ("metrics", "a table"),
    ("metrics.listen", "a socket address like \"127.0.0.1:9464\""),
    ("dpdk", "a table"),
    (
        "dpdk.eal_args",
        "an array of strings passed to the DPDK EAL",
    ),
    ("dpdk.mbufs", "an integer from 1024 to 16777216"),
];

/// Normalizes a key path for lookup: drops array indices and names the interfaces `*`.
fn normalize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut depth = 0u32;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    for side in ["interfaces.inside.", "interfaces.outside."] {
        if let Some(rest) = out.strip_prefix(side) {
            return format!("interfaces.*.{rest}");
        }
    }
    out
}

/// What `key` may hold, in words; a pointer to the documentation for keys outside the schema.
pub(crate) fn expected(key: &str) -> String {
    let key = normalize(key);
    KEYS.iter().find(|(k, _)| *k == key).map_or_else(
        || "a value described in docs/config.md".to_string(),
        |(_, d)| d.to_string(),
    )
}

/// Whether `key` is part of the schema (for tests).
#[cfg(test)]
pub(crate) fn knows(key: &str) -> bool {
    let key = normalize(key);
    KEYS.iter().any(|(k, _)| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_interface_names_are_normalized() {
        assert_eq!(normalize("nat.static[3].public"), "nat.static.public");
        assert_eq!(normalize("dataplane.cores[1]"), "dataplane.cores");
        assert_eq!(
            normalize("interfaces.outside.gateway"),
            "interfaces.*.gateway"
        );
        assert!(expected("interfaces.inside.driver").contains("af_xdp"));
        assert!(expected("nat.timeouts.tcp_idle").contains("120m"));
        assert!(expected("no.such.key").contains("docs/config.md"));
    }
}
