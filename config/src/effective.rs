//! The effective configuration as TOML: what `appliance check` prints.
//!
//! Layer: config (slow path). The output has every key with its value (defaults filled in), public
//! prefixes expanded into `public_ips`, reserved ports widened to their 8-port blocks, the
//! preallocated pool written as the smallest set of prefixes, and the derived numbers as comments.
//! Invariant (tested): `Config::from_toml_str(&c.effective_toml()) == Ok(c)`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::Config;
use crate::duration;
use crate::interface::InterfaceConfig;
use crate::nat::{default_ports_per_instance, Allocation};

/// A TOML string literal, escaped.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list<T>(items: impl IntoIterator<Item = T>, f: impl Fn(T) -> String) -> String {
    let inner: Vec<String> = items.into_iter().map(f).collect();
    format!("[{}]", inner.join(", "))
}

/// Renders `config`. Writing to a `String` cannot fail, so the `fmt::Result`s are dropped.
pub(crate) fn render(c: &Config) -> String {
    let mut o = String::new();
    let d = c.derived();
    o.push_str("# natgw effective configuration: every default filled in, prefixes expanded.\n#\n");
    o.push_str("# Derived numbers:\n");
    for line in d.to_string().lines() {
        let _ = writeln!(o, "#   {line}");
    }

    let dp = c.dataplane();
    o.push_str("\n[dataplane]\n");
    let _ = writeln!(o, "workers = {}", dp.workers());
    match dp.cores() {
        Some(cores) => {
            let _ = writeln!(o, "cores = {}", list(cores, |c| c.to_string()));
        }
        None => o.push_str("# cores: not pinned\n"),
    }
    match dp.slowpath_core() {
        Some(core) => {
            let _ = writeln!(o, "slowpath_core = {core}");
        }
        None => o.push_str("# slowpath_core: not pinned\n"),
    }
    let _ = writeln!(o, "burst = {}", dp.burst());
    let _ = writeln!(o, "rx_ring = {}", dp.rx_ring());
    let _ = writeln!(o, "tx_ring = {}", dp.tx_ring());
    let _ = writeln!(o, "handoff_ring = {}", dp.handoff_ring());

    interface(&mut o, "inside", c.inside());
    interface(&mut o, "outside", c.outside());

    let nat = c.nat();
    o.push_str("\n[nat]\n");
    let _ = writeln!(
        o,
        "public_ips = {}",
        list(nat.public_ips(), |a| quote(&a.to_string()))
    );
    let _ = writeln!(
        o,
        "private_prefixes = {}",
        list(nat.private_prefixes(), |p| quote(&p.to_string()))
    );
    let (lo, hi) = nat.port_range();
    let _ = writeln!(o, "port_range = [{lo}, {hi}]");
    let _ = writeln!(
        o,
        "reserved_ports = {}",
        list(nat.reserved_ranges(), |(a, b)| format!("[{a}, {b}]"))
    );
    let _ = writeln!(o, "allocation = {}", quote(nat.allocation().name()));
    let _ = writeln!(o, "pooling = {}", quote(nat.pooling().name()));
    let _ = writeln!(o, "max_sessions = {}", nat.max_sessions());
    let _ = writeln!(o, "max_per_destination = {}", nat.max_per_destination());
    match nat.allocation() {
        Allocation::Dynamic {
            max_ports_per_host: Some(n),
        } => {
            let _ = writeln!(o, "max_ports_per_host = {n}");
        }
        Allocation::Dynamic {
            max_ports_per_host: None,
        } => {
            o.push_str("# max_ports_per_host: no per-host cap\n");
        }
        Allocation::Preallocated { .. } => {}
    }
    let _ = writeln!(o, "exhaustion = {}", quote(nat.exhaustion().name()));
    let _ = writeln!(o, "icmp_prohibited = {}", nat.icmp_prohibited());
    let _ = writeln!(
        o,
        "no_nat = {}",
        list(nat.no_nat(), |p| quote(&p.to_string()))
    );

    o.push_str("\n[nat.timeouts]\n");
    for (name, value) in nat.timeouts().named() {
        let _ = writeln!(o, "{name} = {}", quote(&duration::format(value)));
    }

    if let Allocation::Preallocated {
        instances,
        ports_per_instance,
    } = nat.allocation()
    {
        o.push_str("\n[nat.preallocated]\n");
        let _ = writeln!(
            o,
            "instances = {}",
            list(summarize(instances), |p| {
                if p.prefix_len() == 32 {
                    quote(&p.addr().to_string())
                } else {
                    quote(&p.to_string())
                }
            })
        );
        if default_ports_per_instance(instances.len()) == Some(*ports_per_instance) {
            let _ = writeln!(
                o,
                "# the default table gives {ports_per_instance} for {} instances",
                instances.len()
            );
        }
        let _ = writeln!(o, "ports_per_instance = {ports_per_instance}");
    }

    for m in nat.statics() {
        o.push_str("\n[[nat.static]]\n");
        let _ = writeln!(o, "private = {}", quote(&m.private.to_string()));
        let _ = writeln!(o, "public = {}", quote(&m.public.to_string()));
    }

    let policy = c.policy();
    o.push_str("\n[policy]\n");
    let _ = writeln!(o, "allow_smtp = {}", policy.allow_smtp());
    if !policy.allow_smtp() {
        o.push_str(
            "# implicit first rule: deny tcp to 0.0.0.0/0 port 25 (lifted by allow_smtp = true)\n",
        );
    }
    for r in policy.configured_rules() {
        o.push_str("\n[[policy.deny]]\n");
        let _ = writeln!(o, "protocol = {}", quote(r.protocol().name()));
        let _ = writeln!(o, "destination = {}", quote(&r.destination().to_string()));
        match r.ports() {
            Some((a, b)) if a == b => {
                let _ = writeln!(o, "port = {a}");
            }
            Some((a, b)) => {
                let _ = writeln!(o, "ports = [{a}, {b}]");
            }
            None => {}
        }
    }

    o.push_str("\n[metrics]\n");
    let _ = writeln!(o, "listen = {}", quote(&c.metrics().listen().to_string()));

    o.push_str("\n[dpdk]\n");
    let _ = writeln!(o, "eal_args = {}", list(c.dpdk().eal_args(), |a| quote(a)));
    let _ = writeln!(o, "mbufs = {}", c.dpdk().mbufs());
    o
}

fn interface(o: &mut String, side: &str, i: &InterfaceConfig) {
    let _ = writeln!(o, "\n[interfaces.{side}]");
    let _ = writeln!(o, "driver = {}", quote(i.driver().name()));
    let _ = writeln!(o, "device = {}", quote(i.device()));
    let _ = writeln!(o, "address = {}", quote(&i.address().to_string()));
    match i.gateway() {
        Some(g) => {
            let _ = writeln!(o, "gateway = {}", quote(&g.to_string()));
        }
        None => o.push_str("# gateway: none\n"),
    }
    match i.mac() {
        Some(m) => {
            let _ = writeln!(o, "mac = {}", quote(&m.to_string()));
        }
        None => o.push_str("# mac: the device's own\n"),
    }
}

/// The smallest list of prefixes covering exactly the sorted, distinct `addrs`.
fn summarize(addrs: &[Ipv4Addr]) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        // The run of consecutive addresses starting at i.
        let start = u32::from(addrs[i]);
        let mut j = i;
        while j + 1 < addrs.len()
            && u32::from(addrs[j + 1]) == u32::from(addrs[j]).wrapping_add(1)
            && u32::from(addrs[j + 1]) != 0
        {
            j += 1;
        }
        let end = u64::from(u32::from(addrs[j]));
        let mut a = u64::from(start);
        while a <= end {
            // Largest aligned block starting at a that stays inside the run.
            let mut size: u64 = 1;
            while size < (1 << 32) && a % (size * 2) == 0 && a + size * 2 - 1 <= end {
                size *= 2;
            }
            let len = 32 - size.trailing_zeros() as u8;
            out.push(Ipv4Net::new_assert(Ipv4Addr::from(a as u32), len));
            a += size;
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(range: std::ops::RangeInclusive<u32>) -> Vec<Ipv4Addr> {
        range.map(Ipv4Addr::from).collect()
    }

    #[test]
    fn summarize_finds_the_fewest_prefixes() {
        let base = u32::from(Ipv4Addr::new(10, 0, 1, 0));
        let nets = summarize(&addrs(base..=base + 15));
        assert_eq!(nets, vec!["10.0.1.0/28".parse::<Ipv4Net>().unwrap()]);
        let nets = summarize(&addrs(base + 1..=base + 8));
        let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            ["10.0.1.1/32", "10.0.1.2/31", "10.0.1.4/30", "10.0.1.8/32"]
        );
        let mut gap = addrs(base..=base + 1);
        gap.push(Ipv4Addr::from(base + 5));
        assert_eq!(summarize(&gap).len(), 2);
        assert!(summarize(&[]).is_empty());
    }

    /// Every key of `table` (dotted, arrays of tables included).
    fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => keys(&key, t, out),
                toml::Value::Array(items)
                    if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
                {
                    for item in items {
                        if let toml::Value::Table(t) = item {
                            keys(&key, t, out);
                        }
                    }
                }
                _ => {}
            }
            out.push(key);
        }
    }

    #[test]
    fn every_printed_key_is_described_in_the_schema() {
        for src in [
            include_str!("../examples/testbed.toml"),
            include_str!("../examples/bare-metal-dpdk.toml"),
        ] {
            let config = Config::from_toml_str(src).unwrap();
            let table: toml::Table = toml::from_str(&config.effective_toml()).unwrap();
            let mut all = Vec::new();
            keys("", &table, &mut all);
            assert!(all.len() > 40, "{all:?}");
            for key in all {
                assert!(
                    crate::schema::knows(&key),
                    "{key} is missing from schema.rs"
                );
            }
        }
    }

    #[test]
    fn summarize_covers_exactly_the_input() {
        let base = u32::from(Ipv4Addr::new(10, 9, 0, 0));
        let input: Vec<Ipv4Addr> = (0..300u32)
            .filter(|i| i % 7 != 3)
            .map(|i| Ipv4Addr::from(base + i))
            .collect();
        let mut back: Vec<Ipv4Addr> = summarize(&input)
            .iter()
            .flat_map(|n| {
                (0..(1u64 << (32 - n.prefix_len())))
                    .map(move |k| Ipv4Addr::from(u32::from(n.network()) + k as u32))
            })
            .collect();
        back.sort();
        assert_eq!(back, input);
    }
}
