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
