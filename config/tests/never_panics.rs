//! Property tests: no input, however broken, makes the parser panic; every refusal is one line
//! with a position inside the document; every accepted input round-trips through its effective
//! TOML.

use natgw_config::Config;
use proptest::prelude::*;

const TESTBED: &str = include_str!("../examples/testbed.toml");
const BARE_METAL: &str = include_str!("../examples/bare-metal-dpdk.toml");

/// Fragments that make up TOML-ish text: structure, keys of our schema, values of every type.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "#",
    "\n",
    "\n",
    " ",
    "\t",
    "dataplane",
    "interfaces",
    "inside",
    "outside",
    "nat",
    "timeouts",
    "static",
    "preallocated",
    "policy",
    "deny",
    "metrics",
    "dpdk",
    "workers",
    "cores",
    "burst",
    "driver",
    "device",
    "address",
    "gateway",
    "mac",
    "public_ips",
    "public_prefixes",
    "private_prefixes",
    "port_range",
    "reserved_ports",
    "allocation",
    "instances",
    "ports_per_instance",
    "tcp_idle",
    "listen",
    "protocol",
    "destination",
    "port",
    "ports",
    "mbufs",
    "eal_args",
    "0",
    "1",
    "-1",
    "8",
    "25",
    "1024",
    "65535",
    "65536",
    "99999999999999999999",
    "1.5",
    "true",
    "false",
    "nan",
    "inf",
    "1979-05-27T07:32:00Z",
    "\"4m\"",
    "\"0s\"",
    "\"1h30m\"",
    "\"10.0.0.0/8\"",
    "\"10.0.0.1/24\"",
    "\"203.0.113.10\"",
    "\"0.0.0.0/0\"",
    "\"198.51.100.0/27\"",
    "\"::1\"",
    "\"tcp\"",
    "\"any\"",
    "\"af_packet\"",
    "\"dpdk\"",
    "\"preallocated\"",
    "\"02:00:00:00:00:01\"",
    "é",
    "\u{0}",
    "\u{feff}",
    "\\",
    "\\u",
];

fn check(input: &str) {
    match Config::from_toml_str(input) {
        Ok(config) => {
            let text = config.effective_toml();
            let back = Config::from_toml_str(&text).unwrap_or_else(|e| {
                panic!("effective TOML refused: {e}\ninput:\n{input}\neffective:\n{text}")
            });
            assert_eq!(
                back, config,
                "round trip changed the config for input:\n{input}"
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "multi-line message: {message:?}");
            let lines = input.split('\n').count() as u32;
            let line = e.line().expect("a located error");
            assert!(
                line >= 1 && line <= lines,
                "line {line} outside 1..={lines}: {message}"
            );
            assert!(e.column().unwrap_or(0) >= 1, "{message}");
            assert!(!e.key().unwrap_or("").is_empty(), "no key: {message}");
        }
    }
}

/// One edit of a document: replace, insert or delete a character or a token at a position.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, String),
    Replace(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        prop::sample::select(TOKENS).prop_map(str::to_string),
        any::<char>().prop_map(String::from)
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), token.clone()).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), token).prop_map(|(i, t)| Edit::Replace(i, t)),
    ]
}

fn apply(doc: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = doc.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match e {
            Edit::Delete(i) => {
                if !chars.is_empty() {
                    chars.remove(i % len);
                }
            }
            Edit::Insert(i, t) => {
                let at = i % (chars.len() + 1);
                chars.splice(at..at, t.chars());
            }
            Edit::Replace(i, t) => {
                if !chars.is_empty() {
                    let at = i % len;
                    chars.splice(at..=at, t.chars());
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_tokens_never_panic(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..80)) {
        check(&tokens.concat());
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*") {
        check(&s);
    }

    #[test]
    fn edited_examples_never_panic(which in any::<bool>(), edits in prop::collection::vec(edit(), 1..6)) {
        let doc = if which { TESTBED } else { BARE_METAL };
        check(&apply(doc, &edits));
    }

    #[test]
    fn edited_lines_of_examples_never_panic(
        which in any::<bool>(),
        line in any::<usize>(),
        replacement in prop::collection::vec(prop::sample::select(TOKENS), 0..8),
    ) {
        // Replace one whole line by random tokens: reaches validation far more often than
        // character edits, which mostly produce syntax errors.
        let doc = if which { TESTBED } else { BARE_METAL };
        let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
        let n = lines.len();
        lines[line % n] = replacement.concat();
        check(&lines.join("\n"));
    }
}

#[test]
fn known_tricky_inputs() {
    for input in [
        "",
        "\u{feff}",
        "[",
        "[[nat.static]]",
        "nat.public_prefixes = [\"0.0.0.0/0\"]",
        "[nat]\npublic_prefixes = [\"0.0.0.0/0\"]\nallocation = \"preallocated\"\n[nat.preallocated]\ninstances = [\"10.0.0.0/8\"]\nports_per_instance = 8",
        "[nat.preallocated]\ninstances = [\"0.0.0.0/0\"]",
        "nat = 5",
        "nat.timeouts = []",
        "[nat]\nreserved_ports = [[1], [1,2,3], \"x\", 1.5, -1, 70000]",
        "[dataplane]\ncores = [-1]",
        "[nat.timeouts]\ntcp_idle = \"18446744073709551615h\"",
        "[interfaces.inside]\naddress = \"10.0.0.1/24\"\ndevice = \"\"",
    ] {
        check(input);
    }
}

/// The knobs of a generated valid config.
#[derive(Debug, Clone)]
struct Knobs {
    workers: usize,
    pin: bool,
    burst: u32,
    ring_log2: u32,
    dpdk: bool,
    mac: Option<[u8; 6]>,
    public_count: usize,
    public_prefix_len: Option<u8>,
    port_lo: u16,
    port_extra: u16,
    reserved: Vec<u16>,
    preallocated: bool,
    explicit_ppi: Option<u16>,
    max_ports_per_host: Option<u16>,
    durations_ms: [u64; 8],
    statics: usize,
    deny: Vec<(u8, Option<(u16, u16)>)>,
    no_nat: bool,
    flags: [bool; 4],
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        (
            1usize..=8,
            any::<bool>(),
            1u32..=256,
            6u32..=10,
            any::<bool>(),
            proptest::option::of(any::<[u8; 6]>()),
        ),
        (
            1usize..=4,
            proptest::option::of(30u8..=32),
            1024u16..=20000,
            0u16..=15535,
            prop::collection::vec(0u16..=30, 0..4),
        ),
        (
            any::<bool>(),
            proptest::option::of(1u16..=16),
            proptest::option::of(1u16..=1000),
        ),
        (prop::collection::vec(0u64..=600_000, 8), 0usize..=3),
        (
            prop::collection::vec(
                (0u8..4, proptest::option::of((1u16..=65535, 0u16..=100))),
                0..3,
            ),
            any::<bool>(),
            any::<[bool; 4]>(),
        ),
    )
        .prop_map(|(a, b, c, d, e)| Knobs {
            workers: a.0,
            pin: a.1,
            burst: a.2,
            ring_log2: a.3,
            dpdk: a.4,
            mac: a.5.map(|mut m| {
                m[0] &= 0xfe;
                m[5] |= 1;
                m
            }),
            public_count: b.0,
            public_prefix_len: b.1,
            port_lo: b.2,
            port_extra: b.3,
            reserved: b.4,
            preallocated: c.0,
            explicit_ppi: c.1,
            max_ports_per_host: c.2,
            durations_ms: d.0.try_into().unwrap(),
            statics: d.1,
            deny: e
                .0
                .into_iter()
                .map(|(p, r)| (p, r.map(|(lo, w)| (lo, lo.saturating_add(w)))))
                .collect(),
            no_nat: e.1,
            flags: e.2,
        })
}

/// Writes `ms` in a unit that represents it exactly, picked by `style`.
fn dur(ms: u64, style: bool) -> String {
    if style && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn render(k: &Knobs) -> String {
    let mut t = String::new();
    let ring = 1u32 << k.ring_log2;
    t.push_str(&format!(
        "[dataplane]\nworkers = {}\nburst = {}\nrx_ring = {ring}\ntx_ring = {ring}\n",
        k.workers, k.burst
    ));
    if k.pin {
        let cores: Vec<String> = (0..k.workers).map(|i| (i + 2).to_string()).collect();
        t.push_str(&format!(
            "cores = [{}]\nslowpath_core = 1\n",
            cores.join(", ")
        ));
    }
    let driver = if k.dpdk { "dpdk" } else { "af_packet" };
    t.push_str(&format!(
        "[interfaces.inside]\ndriver = \"{driver}\"\ndevice = \"in0\"\naddress = \"10.0.0.1/24\"\n"
    ));
    if let Some(m) = k.mac {
        let m: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        t.push_str(&format!("mac = \"{}\"\n", m.join(":")));
    }
    t.push_str("[interfaces.outside]\ndevice = \"out0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\n");
    t.push_str("[nat]\n");
    let ips: Vec<String> = (0..k.public_count)
        .map(|i| format!("\"203.0.113.{}\"", 10 + i))
        .collect();
    t.push_str(&format!("public_ips = [{}]\n", ips.join(", ")));
    if let Some(len) = k.public_prefix_len {
        t.push_str(&format!("public_prefixes = [\"198.51.100.0/{len}\"]\n"));
    }
    if k.flags[0] {
        t.push_str("private_prefixes = [\"10.0.0.0/8\"]\n");
    }
    let hi = k.port_lo + 30000 + k.port_extra;
    t.push_str(&format!("port_range = [{}, {hi}]\n", k.port_lo));
    // Reserved ports 64 apart, so that entries never overlap.
    let mut slots: Vec<u16> = k.reserved.clone();
    slots.sort_unstable();
    slots.dedup();
    let reserved: Vec<String> = slots
        .iter()
        .map(|s| (k.port_lo + 64 * s + s % 8).to_string())
        .collect();
    t.push_str(&format!("reserved_ports = [{}]\n", reserved.join(", ")));
    if k.preallocated {
        t.push_str("allocation = \"preallocated\"\n");
    } else if let Some(n) = k.max_ports_per_host {
        t.push_str(&format!("max_ports_per_host = {n}\n"));
    }
    t.push_str(&format!(
        "pooling = \"{}\"\n",
        if k.flags[1] { "arbitrary" } else { "paired" }
    ));
    t.push_str(&format!(
        "exhaustion = \"{}\"\n",
        if k.flags[2] { "fallback" } else { "fail" }
    ));
    t.push_str(&format!("icmp_prohibited = {}\n", k.flags[3]));
    if k.no_nat {
        t.push_str("no_nat = [\"192.0.2.0/24\", \"198.18.0.0/15\"]\n");
    }
    let d = &k.durations_ms;
    t.push_str("[nat.timeouts]\n");
    t.push_str(&format!("tcp_idle = \"{}m\"\n", 4 + d[0] % 117));
    t.push_str(&format!(
        "tcp_transitory = \"{}\"\n",
        dur(1000 + d[1], k.flags[0])
    ));
    t.push_str(&format!(
        "udp_idle = \"{}\"\n",
        dur(1000 + d[2], k.flags[1])
    ));
    t.push_str(&format!(
        "icmp_idle = \"{}\"\n",
        dur(1000 + d[3], k.flags[2])
    ));
    t.push_str(&format!(
        "tcp_fin_cooldown = \"{}\"\n",
        dur(d[4], k.flags[3])
    ));
    t.push_str(&format!(
        "tcp_rst_cooldown = \"{}\"\n",
        dur(d[5], k.flags[0])
    ));
    t.push_str(&format!(
        "tcp_halfopen_cooldown = \"{}\"\n",
        dur(d[6], k.flags[1])
    ));
    t.push_str(&format!("udp_cooldown = \"{}\"\n", dur(d[7], k.flags[2])));
    if k.preallocated {
        t.push_str(
            "[nat.preallocated]\ninstances = [\"10.1.0.0/28\", \"10.2.0.5\", \"10.1.0.16/30\"]\n",
        );
        if let Some(p) = k.explicit_ppi {
            t.push_str(&format!("ports_per_instance = {}\n", p * 8));
        }
    }
    for i in 0..k.statics {
        t.push_str(&format!(
            "[[nat.static]]\nprivate = \"10.0.0.{}\"\npublic = \"203.0.113.{}\"\n",
            50 + i,
            100 + i
        ));
    }
    t.push_str(&format!("[policy]\nallow_smtp = {}\n", k.flags[1]));
    for (p, ports) in &k.deny {
        let proto = ["tcp", "udp", "icmp", "any"][*p as usize];
        t.push_str(&format!(
            "[[policy.deny]]\nprotocol = \"{proto}\"\ndestination = \"198.51.100.0/24\"\n"
        ));
        if let (Some((lo, hi)), true) = (ports, *p < 2) {
            t.push_str(&format!("ports = [{lo}, {hi}]\n"));
        }
    }
    t.push_str(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{}\"\n",
        k.port_lo
    ));
    if k.dpdk {
        t.push_str("[dpdk]\neal_args = [\"--no-huge\", \"-m\", \"256\"]\nmbufs = 65536\n");
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Valid configs over the whole schema are accepted, and each round-trips through its
    /// effective TOML (the examples alone leave many keys at fixed values).
    #[test]
    fn generated_valid_configs_round_trip(k in knobs()) {
        let text = render(&k);
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(config.dataplane().workers(), k.workers);
        prop_assert_eq!(config.nat().public_ips().len(), k.public_count + k.public_prefix_len.map_or(0, |l| 1usize << (32 - l)));
        check(&text);
    }
}
