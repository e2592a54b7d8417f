//! Preparing one bench case: the topology (appliance or kernel NAT), the traffic sink, the appliance
//! config, the NAT's MAC address, and the host's conntrack limits.
//!
//! Layer: test harness, slow path. Both NATs get the same 16 public IPs and the same client addresses; the
//! kernel's ruleset is replaced by one that pairs each client address with one public IP through an
//! exact map (the appliance's default "paired" pooling, without the uneven hash of the generic kernel-NAT
//! ruleset), so that 1 M flows fit: each client address carries at most 62,500 flows. The inet namespace
//! drops the bench's UDP port at `netdev` ingress (after the veth counted it), so no ICMP port
//! unreachable or other return traffic crosses the NAT during a UDP run.
//!
//! The kernel's conntrack table limit (`nf_conntrack_max`, read-only inside a network namespace) and its
//! hash size are global: [`ConntrackLimits::raise`] raises them in the root namespace for the run when
//! they are too small for the largest flow count, and restores them when dropped.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, TestbedError};
use crate::spec::{KernelNatSpec, TopologySpec};
use crate::topology::{Topology, KERNEL_NAT_TABLE};
use crate::traffic;

use super::flows::{MacAddr, SINK_PORT};
use super::report::Mode;

/// The public IPs of both NATs: 203.0.113.10 – 203.0.113.25 (the most the appliance takes).
pub fn public_ips() -> Vec<Ipv4Addr> {
    (10..26).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect()
}

/// The server (destination) addresses in the inet namespace.
pub fn servers() -> Vec<Ipv4Addr> {
    vec![
        Ipv4Addr::new(198, 51, 100, 10),
        Ipv4Addr::new(198, 51, 100, 11),
    ]
}

/// The topology spec of a case that needs `hosts` client addresses.
pub fn spec_for(hosts: usize) -> TopologySpec {
    TopologySpec {
        extra_client_addrs: u16::try_from(hosts.max(4) - 1).unwrap_or(u16::MAX),
        public_ips: public_ips(),
        servers: servers(),
        ..TopologySpec::default()
    }
}

/// The kernel ruleset that pairs client address *i* with public IP *i mod n* (input to `nft -f -`;
/// it replaces the kernel-NAT topology's own table).
pub fn kernel_paired_ruleset(
    spec: &TopologySpec,
    clients: &[Ipv4Addr],
    publics: &[Ipv4Addr],
) -> String {
    let entries: Vec<String> = clients
        .iter()
        .zip(publics.iter().cycle())
        .map(|(c, p)| format!("{c} : {p}"))
        .collect();
    format!(
        "delete table ip {KERNEL_NAT_TABLE}\n\
         table ip {KERNEL_NAT_TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{}\" ip saddr {} snat to ip saddr map {{ {} }}\n\
         \t}}\n\
         }}\n",
        spec.outside_if,
        spec.client_addr.trunc(),
        entries.join(", ")
    )
}

/// The inet namespace's sink: drop the bench's UDP port at ingress of `inet_if`.
pub fn sink_ruleset(inet_if: &str) -> String {
    format!(
        "table netdev natgw_bench_sink {{\n\
         \tchain ingress {{\n\
         \t\ttype filter hook ingress device \"{inet_if}\" priority 0; policy accept;\n\
         \t\tudp dport {SINK_PORT} counter drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Builds the topology of one case: `mode`, `hosts` client addresses, `rps_cpus` CPUs for the kernel's
/// receive processing on the inside interface (0 or 1: none, the sender's CPU does it all).
pub fn build(mode: Mode, hosts: usize, rps_cpus: usize) -> Result<Topology> {
    let spec = spec_for(hosts);
    let topo = match mode {
        // One veth queue per worker: AF_XDP binds a socket per device queue (harmless elsewhere).
        Mode::Appliance => Topology::new(TopologySpec {
            queues: rps_cpus.clamp(1, 64) as u16,
            ..spec
        })?,
        Mode::Kernel => {
            let topo = Topology::kernel_nat(
                spec,
                KernelNatSpec {
                    snat_to: public_ips(),
                },
            )?;
            let rules = kernel_paired_ruleset(topo.spec(), topo.client_addrs(), &public_ips());
            topo.nat()
                .exec_with_stdin(&["nft", "-f", "-"], rules.as_bytes())?;
            if rps_cpus > 1 {
                let mask = format!("{:x}", (1u64 << rps_cpus.min(63)) - 1);
                let path = format!("/sys/class/net/{}/queues/rx-0/rps_cpus", topo.inside_if());
                topo.nat()
                    .exec_checked(&["sh", "-c", &format!("echo {mask} > {path}")])?;
            }
            topo
        }
    };
    let sink = sink_ruleset(topo.spec().inet_if.as_str());
    topo.inet()
        .exec_with_stdin(&["nft", "-f", "-"], sink.as_bytes())?;
    Ok(topo)
}

/// Options of the appliance config a case runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceKnobs {
    /// `interfaces.*.driver`.
    pub driver: &'static str,
    /// `[dataplane] workers`.
    pub workers: u16,
    /// `[dataplane] burst`.
    pub burst: u16,
    /// `[dataplane] rx_ring`.
    pub rx_ring: u32,
    /// `[dataplane] tx_ring`.
    pub tx_ring: u32,
    /// `[nat] pooling`.
    pub pooling: &'static str,
    /// `[nat] max_sessions`.
    pub max_sessions: u64,
}

/// The `device` of an interface: the veth itself, or for DPDK a `net_af_packet` virtual device on it.
fn device(driver: &str, index: u8, ifname: &str) -> String {
    if driver == "dpdk" {
        format!("net_af_packet{index},iface={ifname},framecnt=4096")
    } else {
        ifname.to_owned()
    }
}

/// The appliance config (DESIGN §4) for a bench topology.
pub fn appliance_config(spec: &TopologySpec, k: &ApplianceKnobs) -> String {
    let publics: Vec<String> = spec
        .public_ips
        .iter()
        .map(|ip| format!("\"{ip}\""))
        .collect();
    let exhaustion = if k.pooling == "paired" {
        "exhaustion = \"fallback\"\n"
    } else {
        ""
    };
    format!(
        "# Generated by testbed bench.\n\
         [dataplane]\n\
         workers = {workers}\n\
         burst = {burst}\n\
         rx_ring = {rx_ring}\n\
         tx_ring = {tx_ring}\n\
         \n\
         [interfaces.inside]\n\
         driver = \"{driver}\"\n\
         device = \"{inside}\"\n\
         address = \"{inside_addr}\"\n\
         \n\
         [interfaces.outside]\n\
         driver = \"{driver}\"\n\
         device = \"{outside}\"\n\
         address = \"{outside_addr}\"\n\
         gateway = \"{gateway}\"\n\
         \n\
         [nat]\n\
         public_ips = [{publics}]\n\
         private_prefixes = [\"{private}\"]\n\
         port_range = [1024, 65535]\n\
         pooling = \"{pooling}\"\n\
         {exhaustion}\
         max_sessions = {max_sessions}\n\
         max_per_destination = 64512\n\
         \n\
         [metrics]\n\
         listen = \"{metrics}\"\n\
         {dpdk}",
        workers = k.workers,
        burst = k.burst,
        rx_ring = k.rx_ring,
        tx_ring = k.tx_ring,
        driver = k.driver,
        dpdk = if k.driver == "dpdk" {
            "\n[dpdk]\neal_args = [\"--no-huge\", \"--no-pci\", \"-m\", \"256\", \"--no-shconf\", \
             \"--no-telemetry\", \"-l\", \"0\"]\nmbufs = 16384\n"
        } else {
            ""
        },
        inside = device(k.driver, 0, &spec.inside_if.to_string()),
        inside_addr = spec.inside_gateway,
        outside = device(k.driver, 1, &spec.outside_if.to_string()),
        outside_addr = spec.outside_addr,
        gateway = spec.inet_gateway.addr(),
        publics = publics.join(", "),
        private = spec.client_addr.trunc(),
        pooling = k.pooling,
        max_sessions = k.max_sessions,
        metrics = crate::appliance::METRICS_ADDR,
    )
}

/// The MAC address the client namespace resolved for its gateway (the NAT's inside MAC): pings a server
/// so the client ARPs, then reads its neighbour table.
pub fn gateway_mac(topo: &Topology) -> Result<MacAddr> {
    let gw = topo.spec().inside_gateway.addr().to_string();
    let dev = topo.spec().client_if.as_str();
    for _ in 0..5 {
        let _ = traffic::ping(
            topo.client(),
            topo.servers()[0],
            None,
            1,
            Duration::from_secs(2),
        );
        let out = topo
            .client()
            .ip(&["-j", "neigh", "show", &gw, "dev", dev])?;
        if let Some(mac) = parse_neigh_json(&out) {
            return Ok(mac);
        }
    }
    Err(TestbedError::InvalidArgument {
        name: "gateway",
        why: format!("the client namespace never resolved {gw}'s MAC address"),
    })
}

/// The MAC address of interface `ifname` in namespace `ns`.
pub fn if_mac(ns: &crate::netns::Netns, ifname: &str) -> Result<MacAddr> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname])?;
    let v: Option<MacAddr> = serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v.get(0)?.get("address")?.as_str()?.parse().ok());
    v.ok_or_else(|| TestbedError::InvalidArgument {
        name: "interface",
        why: format!("no MAC address for {ifname} in `ip -j link` output"),
    })
}

/// The `lladdr` of the first entry of `ip -j neigh show` output.
pub fn parse_neigh_json(text: &str) -> Option<MacAddr> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.as_array()?
        .iter()
        .find_map(|e| e.get("lladdr")?.as_str()?.parse().ok())
}

const CT_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const CT_HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// The host's conntrack limits as they were before the run; dropping this restores them.
#[derive(Debug)]
pub struct ConntrackLimits {
    saved: Vec<(PathBuf, String)>,
}

impl ConntrackLimits {
    /// Raises `nf_conntrack_max` to at least `2 × flows + 65,536` and the hash size to at least the
    /// next power of two of `flows` (never lowers either). Returns what was changed, as a message.
    pub fn raise(flows: u64) -> Result<(ConntrackLimits, Vec<String>)> {
        let mut saved = Vec::new();
        let mut changed = Vec::new();
        let want_max = flows.saturating_mul(2).saturating_add(65_536);
        let want_hash = flows.next_power_of_two().min(1 << 22);
        for (path, want) in [(CT_MAX, want_max), (CT_HASHSIZE, want_hash)] {
            let Ok(old) = std::fs::read_to_string(path) else {
                continue;
            };
            let old = old.trim().to_owned();
            if old.parse::<u64>().is_ok_and(|v| v >= want) {
                continue;
            }
            std::fs::write(path, want.to_string())
                .map_err(|e| TestbedError::io(format!("write {want} to {path}"), e))?;
            changed.push(format!("{path}: {old} -> {want}"));
            saved.push((PathBuf::from(path), old));
        }
        Ok((ConntrackLimits { saved }, changed))
    }
}

impl Drop for ConntrackLimits {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            if let Err(e) = std::fs::write(path, old) {
                log::warn!("could not restore {} to {old}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_ruleset_pairs_each_client_with_one_public_ip() {
        let spec = spec_for(18);
        let clients = spec.client_addrs().unwrap();
        assert_eq!(clients.len(), 18);
        let r = kernel_paired_ruleset(&spec, &clients, &public_ips());
        assert!(r.starts_with("delete table ip natgw_testbed\n"), "{r}");
        assert!(r.contains("oifname \"outside0\" ip saddr 10.0.0.0/24 snat to ip saddr map { 10.0.0.2 : 203.0.113.10, 10.0.0.3 : 203.0.113.11,"), "{r}");
        assert!(
            r.contains(
                "10.0.0.17 : 203.0.113.25, 10.0.0.18 : 203.0.113.10, 10.0.0.19 : 203.0.113.11 }"
            ),
            "{r}"
        );
    }

    #[test]
    fn spec_validates_with_sixteen_public_ips() {
        let s = spec_for(1);
        s.validate().unwrap();
        assert_eq!(s.public_ips.len(), 16);
        assert_eq!(s.client_addrs().unwrap().len(), 4);
    }

    #[test]
    fn appliance_config_sets_the_bench_knobs() {
        let k = ApplianceKnobs {
            driver: "af_packet",
            workers: 2,
            burst: 64,
            rx_ring: 4096,
            tx_ring: 1024,
            pooling: "paired",
            max_sessions: 2_000_000,
        };
        let c = appliance_config(&spec_for(4), &k);
        for want in [
            "workers = 2\nburst = 64\nrx_ring = 4096\ntx_ring = 1024\n",
            "device = \"inside0\"\naddress = \"10.0.0.1/24\"\n",
            "gateway = \"203.0.113.254\"\n",
            "\"203.0.113.10\", \"203.0.113.11\"",
            "\"203.0.113.25\"]",
            "pooling = \"paired\"\nexhaustion = \"fallback\"\nmax_sessions = 2000000\nmax_per_destination = 64512\n",
            "listen = \"127.0.0.1:9464\"",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        let c = appliance_config(
            &spec_for(4),
            &ApplianceKnobs {
                pooling: "arbitrary",
                ..k
            },
        );
        assert!(!c.contains("exhaustion"));
    }

    #[test]
    fn sink_drops_the_bench_port_at_ingress() {
        let s = sink_ruleset("i0");
        assert!(s.contains("type filter hook ingress device \"i0\" priority 0;"));
        assert!(s.contains("udp dport 9 counter drop"));
    }

    #[test]
    fn neighbour_json_gives_the_mac() {
        let j =
            r#"[{"dst":"10.0.0.1","dev":"c0","lladdr":"4e:1c:02:aa:bb:cc","state":["REACHABLE"]}]"#;
        assert_eq!(
            parse_neigh_json(j).unwrap().to_string(),
            "4e:1c:02:aa:bb:cc"
        );
        assert!(parse_neigh_json("[]").is_none());
        assert!(parse_neigh_json(r#"[{"dst":"10.0.0.1","state":["FAILED"]}]"#).is_none());
        assert!(parse_neigh_json("not json").is_none());
    }
}
