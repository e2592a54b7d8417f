//! A table of invalid configs. Each must be refused with the specific error kind, the dotted key,
//! and the line marked `# <-` in its text (the line is computed from the marker, so the table
//! stays readable); the message must name the key and that line.

use natgw_config::{Config, ConfigError, ErrorKind};

const INTERFACES: &str = r#"
[interfaces.inside]
device = "inside0"
address = "10.0.0.1/24"

[interfaces.outside]
device = "outside0"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
"#;

/// A valid config with `nat_extra` appended to `[nat]` and `rest` after it.
fn with(nat_extra: &str, rest: &str) -> String {
    format!(
        "{INTERFACES}\n[nat]\npublic_ips = [\"203.0.113.10\", \"203.0.113.11\"]\n{nat_extra}\n{rest}"
    )
}

/// A valid config with `dataplane` as its `[dataplane]` body.
fn dataplane(body: &str) -> String {
    format!("[dataplane]\n{body}\n{}", with("", ""))
}

/// A config with the given interfaces text instead of the default one.
fn interfaces(text: &str) -> String {
    format!("{text}\n[nat]\npublic_ips = [\"203.0.113.10\"]\n")
}

struct Case {
    name: &'static str,
    toml: String,
    key: &'static str,
    kind: fn(&ErrorKind) -> bool,
}

fn case(name: &'static str, toml: String, key: &'static str, kind: fn(&ErrorKind) -> bool) -> Case {
    Case {
        name,
        toml,
        key,
        kind,
    }
}

fn cases() -> Vec<Case> {
    use ErrorKind as K;
    let seventeen: Vec<String> = (10..27).map(|i| format!("\"203.0.113.{i}\"")).collect();
    let fifteen: Vec<String> = (10..25).map(|i| format!("\"203.0.113.{i}\"")).collect();
    vec![
        case("unknown top-level key", format!("bogus = 1 # <-\n{}", with("", "")), "bogus", |k| {
            matches!(k, K::UnknownKey { valid } if valid.contains("dataplane"))
        }),
        case("unknown key in nat (typo)", with("public_ip = [\"203.0.113.12\"] # <-", ""), "nat.public_ip", |k| {
            matches!(k, K::UnknownKey { valid } if valid.contains("public_ips"))
        }),
        case(
            "unknown key in nat.timeouts",
            with("", "[nat.timeouts]\ntcp_idel = \"4m\" # <-"),
            "nat.timeouts.tcp_idel",
            |k| matches!(k, K::UnknownKey { .. }),
        ),
        case(
            "unknown key in a static mapping",
            with("", "[[nat.static]]\nprivat = \"10.0.0.5\" # <-\npublic = \"203.0.113.50\""),
            "nat.static[0].privat",
            |k| matches!(k, K::UnknownKey { valid } if valid.contains("private")),
        ),
        case("unknown section", with("", "[nta] # <-\nx = 1"), "nta", |k| {
            matches!(k, K::UnknownKey { .. })
        }),
        case("wrong type: string for an integer", with("max_sessions = \"lots\" # <-", ""), "nat.max_sessions", |k| {
            matches!(k, K::WrongType { expected, .. } if expected.contains("integer"))
        }),
        case("wrong type: float workers", dataplane("workers = 1.5 # <-"), "dataplane.workers", |k| {
            matches!(k, K::WrongType { found, .. } if found.contains("1.5"))
        }),
        case(
            "wrong type: string for an array",
            interfaces("").replace("public_ips = [\"203.0.113.10\"]", "public_ips = \"203.0.113.10\" # <-") + INTERFACES,
            "nat.public_ips",
            |k| matches!(k, K::WrongType { .. }),
        ),
        case("wrong type: string for a bool", with("icmp_prohibited = \"yes\" # <-", ""), "nat.icmp_prohibited", |k| {
            matches!(k, K::WrongType { .. })
        }),
        case(
            "bad duration: words",
            with("", "[nat.timeouts]\ntcp_idle = \"4 minutes\" # <-"),
            "nat.timeouts.tcp_idle",
            |k| matches!(k, K::BadDuration { .. }),
        ),
        case(
            "bad duration: fraction",
            with("", "[nat.timeouts]\nudp_idle = \"1.5m\" # <-"),
            "nat.timeouts.udp_idle",
            |k| matches!(k, K::BadDuration { reason, .. } if reason.contains("fraction")),
        ),
        case(
            "bad duration: no unit",
            with("", "[nat.timeouts]\nicmp_idle = \"60\" # <-"),
            "nat.timeouts.icmp_idle",
            |k| matches!(k, K::BadDuration { .. }),
        ),
        case("bad CIDR length", with("private_prefixes = [\"10.0.0.0/33\"] # <-", ""), "nat.private_prefixes[0]", |k| {
            matches!(k, K::BadPrefix { .. })
        }),
        case("CIDR with host bits", with("no_nat = [\"192.0.2.1/24\"] # <-", ""), "nat.no_nat[0]", |k| {
            matches!(k, K::BadPrefix { reason, .. } if reason.contains("192.0.2.0/24"))
        }),
        case(
            "bad address",
            interfaces("").replace("[\"203.0.113.10\"]", "[\"203.0.113.300\"] # <-") + INTERFACES,
            "nat.public_ips[0]",
            |k| matches!(k, K::BadAddress { .. }),
        ),
        case(
            "17 public IPs",
            format!("{INTERFACES}\n[nat]\npublic_ips = [{}] # <-\n", seventeen.join(", ")),
            "nat.public_ips",
            |k| matches!(k, K::TooManyPublicIps { count: 17 }),
        ),
        case("public prefix of 32 addresses", with("public_prefixes = [\"198.51.100.0/27\"] # <-", ""), "nat.public_prefixes[0]", |k| {
            matches!(k, K::TooManyPublicIps { count: 34 })
        }),
        case(
            "15 IPs plus a /30",
            format!(
                "{INTERFACES}\n[nat]\npublic_ips = [{}]\npublic_prefixes = [\"198.51.100.0/30\"] # <-\n",
                fifteen.join(", ")
            ),
            "nat.public_prefixes[0]",
            |k| matches!(k, K::TooManyPublicIps { count: 19 }),
        ),
        case("no public IP", interfaces("").replace("[\"203.0.113.10\"]", "[] # <-") + INTERFACES, "nat.public_ips", |k| {
            matches!(k, K::NoPublicIps)
        }),
        case(
            "duplicate public IP via a prefix",
            with("public_prefixes = [\"203.0.113.10/32\"] # <-", ""),
            "nat.public_prefixes[0]",
            |k| matches!(k, K::Duplicate { value, .. } if value == "203.0.113.10"),
        ),
        case(
            "public IP inside the private prefixes",
            with("private_prefixes = [\"203.0.113.0/24\"]", "").replace("\"203.0.113.11\"]\n", "\"203.0.113.11\"] # <-\n"),
            "nat.public_ips[0]", |k| {
            matches!(k, K::Conflict { .. })
        }),
        case("port range reversed", with("port_range = [60000, 2000] # <-", ""), "nat.port_range", |k| {
            matches!(k, K::PortRangeReversed { low: 60000, high: 2000 })
        }),
        case("port range below 1024", with("port_range = [80, 65535] # <-", ""), "nat.port_range[0]", |k| {
            matches!(k, K::OutOfRange { valid, .. } if valid.contains("1024"))
        }),
        case("port range above 65535", with("port_range = [1024, 70000] # <-", ""), "nat.port_range[1]", |k| {
            matches!(k, K::OutOfRange { .. })
        }),
        case("port range of one element", with("port_range = [1024] # <-", ""), "nat.port_range", |k| {
            matches!(k, K::BadValue { .. })
        }),
        case("TCP idle of 3 minutes", with("", "[nat.timeouts]\ntcp_idle = \"3m\" # <-"), "nat.timeouts.tcp_idle", |k| {
            matches!(k, K::OutOfRange { valid, .. } if valid.contains("\"4m\"") && valid.contains("\"120m\""))
        }),
        case("TCP idle of 121 minutes", with("", "[nat.timeouts]\ntcp_idle = \"121m\" # <-"), "nat.timeouts.tcp_idle", |k| {
            matches!(k, K::OutOfRange { .. })
        }),
        case(
            "cool-down too long",
            with("", "[nat.timeouts]\ntcp_fin_cooldown = \"11m\" # <-"),
            "nat.timeouts.tcp_fin_cooldown",
            |k| matches!(k, K::OutOfRange { .. }),
        ),
        case(
            "ports_per_instance 100",
            with(
                "allocation = \"preallocated\"",
                "[nat.preallocated]\ninstances = [\"10.0.1.0/28\"]\nports_per_instance = 100 # <-",
            ),
            "nat.preallocated.ports_per_instance",
            |k| matches!(k, K::NotMultipleOf8 { value: 100 }),
        ),
        case(
            "pool above 1000 with the default table",
            with("allocation = \"preallocated\"", "[nat.preallocated]\ninstances = [\"10.1.0.0/22\"] # <-"),
            "nat.preallocated.instances",
            |k| matches!(k, K::PoolTooLarge { instances: 1024 }),
        ),
        case(
            "pool does not fit the public IPs",
            with(
                "allocation = \"preallocated\"",
                "[nat.preallocated]\ninstances = [\"10.0.1.0/30\"]\nports_per_instance = 40000 # <-",
            ),
            "nat.preallocated.ports_per_instance",
            |k| matches!(k, K::PoolDoesNotFit { instances: 4, capacity: 2, .. }),
        ),
        case(
            "duplicate instance",
            with(
                "allocation = \"preallocated\"",
                "[nat.preallocated]\ninstances = [\"10.0.1.0/28\",\n  \"10.0.1.5\"] # <-",
            ),
            "nat.preallocated.instances[1]",
            |k| matches!(k, K::Duplicate { value, first_line, .. } if value == "10.0.1.5" && *first_line > 0),
        ),
        case(
            "preallocated without instances",
            with("allocation = \"preallocated\" # <-", ""),
            "nat.preallocated.instances",
            |k| matches!(k, K::MissingKey { .. }),
        ),
        case(
            "preallocated table with dynamic allocation",
            with("allocation = \"dynamic\" # <-", "[nat.preallocated]\ninstances = [\"10.0.1.0/28\"]"),
            "nat.allocation",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "max_ports_per_host with preallocated",
            with("allocation = \"preallocated\"\nmax_ports_per_host = 64 # <-", "[nat.preallocated]\ninstances = [\"10.0.1.0/28\"]"),
            "nat.max_ports_per_host",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case("unknown allocation", with("allocation = \"random\" # <-", ""), "nat.allocation", |k| {
            matches!(k, K::BadValue { valid, .. } if valid.contains("preallocated"))
        }),
        case("unknown exhaustion behaviour", with("exhaustion = \"retry\" # <-", ""), "nat.exhaustion", |k| {
            matches!(k, K::BadValue { valid, .. } if valid.contains("fallback"))
        }),
        case(
            "duplicate static private address",
            with(
                "",
                "[[nat.static]]\nprivate = \"10.0.0.50\"\npublic = \"203.0.113.50\"\n\
                 [[nat.static]]\nprivate = \"10.0.0.50\" # <-\npublic = \"203.0.113.51\"",
            ),
            "nat.static[1].private",
            |k| matches!(k, K::Duplicate { first_line, .. } if *first_line > 0),
        ),
        case(
            "duplicate static public address",
            with(
                "",
                "[[nat.static]]\nprivate = \"10.0.0.50\"\npublic = \"203.0.113.50\"\n\
                 [[nat.static]]\nprivate = \"10.0.0.51\"\npublic = \"203.0.113.50\" # <-",
            ),
            "nat.static[1].public",
            |k| matches!(k, K::Duplicate { .. }),
        ),
        case(
            "static colliding with a SNAT public IP",
            with("", "[[nat.static]]\nprivate = \"10.0.0.50\"\npublic = \"203.0.113.11\" # <-"),
            "nat.static[0].public",
            |k| matches!(k, K::StaticCollidesWithPublic { .. }),
        ),
        case(
            "static without a public address",
            with("", "[[nat.static]] # <-\nprivate = \"10.0.0.50\""),
            "nat.static[0].public",
            |k| matches!(k, K::MissingKey { .. }),
        ),
        case(
            "static private outside the private prefixes",
            with("", "[[nat.static]]\nprivate = \"192.0.2.5\" # <-\npublic = \"203.0.113.50\""),
            "nat.static[0].private",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "reserved ports overlapping",
            with("reserved_ports = [[8000, 8010],\n  8005] # <-", ""),
            "nat.reserved_ports[1]",
            |k| matches!(k, K::Overlap { .. }),
        ),
        case(
            "reserved port outside the port range",
            with("port_range = [2000, 3000]\nreserved_ports = [80] # <-", ""),
            "nat.reserved_ports[0]",
            |k| matches!(k, K::OutOfRange { .. }),
        ),
        case(
            "reserved ports take every port",
            with("port_range = [8000, 8007]\nreserved_ports = [8003] # <-", ""),
            "nat.reserved_ports",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "overlapping private prefixes",
            with("private_prefixes = [\"10.0.0.0/8\",\n  \"10.1.0.0/16\"] # <-", ""),
            "nat.private_prefixes[1]",
            |k| matches!(k, K::Overlap { .. }),
        ),
        case("cores length differs from workers", dataplane("workers = 2\ncores = [2, 3, 4] # <-"), "dataplane.cores", |k| {
            matches!(k, K::LengthMismatch { len: 3, expected: 2, .. })
        }),
        case("duplicate core", dataplane("workers = 2\ncores = [2, 2] # <-"), "dataplane.cores[1]", |k| {
            matches!(k, K::Duplicate { .. })
        }),
        case("slow path on a worker core", dataplane("workers = 2\nslowpath_core = 3\ncores = [2, 3] # <-"), "dataplane.cores[1]", |k| {
            matches!(k, K::Conflict { .. })
        }),
        case("burst 0", dataplane("burst = 0 # <-"), "dataplane.burst", |k| {
            matches!(k, K::OutOfRange { valid, .. } if valid.contains("256"))
        }),
        case("burst 257", dataplane("burst = 257 # <-"), "dataplane.burst", |k| matches!(k, K::OutOfRange { .. })),
        case("workers 0", dataplane("workers = 0 # <-"), "dataplane.workers", |k| matches!(k, K::OutOfRange { .. })),
        case("rx ring not a power of two", dataplane("rx_ring = 1000 # <-"), "dataplane.rx_ring", |k| {
            matches!(k, K::OutOfRange { valid, .. } if valid.contains("power of two"))
        }),
        case(
            "more workers than 8-port blocks",
            format!("[dataplane]\nworkers = 2 # <-\n{}", with("port_range = [1024, 1031]", "")),
            "dataplane.workers",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "missing outside gateway",
            interfaces(
                "[interfaces.inside]\ndevice = \"in0\"\naddress = \"10.0.0.1/24\"\n\
                 [interfaces.outside] # <-\ndevice = \"out0\"\naddress = \"203.0.113.1/24\"",
            ),
            "interfaces.outside.gateway",
            |k| matches!(k, K::MissingKey { .. }),
        ),
        case(
            "missing inside device",
            interfaces(
                "[interfaces.inside] # <-\naddress = \"10.0.0.1/24\"\n\
                 [interfaces.outside]\ndevice = \"out0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"",
            ),
            "interfaces.inside.device",
            |k| matches!(k, K::MissingKey { .. }),
        ),
        case(
            "unknown driver",
            INTERFACES.replace("device = \"inside0\"", "driver = \"pcap\" # <-\ndevice = \"inside0\"")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.inside.driver",
            |k| matches!(k, K::BadValue { valid, .. } if valid.contains("af_xdp")),
        ),
        case(
            "kernel interface name too long",
            INTERFACES.replace("device = \"inside0\"", "device = \"a-very-long-interface-name\" # <-")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.inside.device",
            |k| matches!(k, K::BadValue { .. }),
        ),
        case(
            "gateway outside the subnet",
            INTERFACES.replace("gateway = \"203.0.113.254\"", "gateway = \"198.51.100.1\" # <-")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.outside.gateway",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "interface address is the network address",
            INTERFACES.replace("address = \"10.0.0.1/24\"", "address = \"10.0.0.0/24\" # <-")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.inside.address",
            |k| matches!(k, K::BadPrefix { .. }),
        ),
        case(
            "inside and outside subnets overlap",
            INTERFACES
                .replace("address = \"203.0.113.1/24\"", "address = \"10.0.0.2/16\" # <-")
                .replace("gateway = \"203.0.113.254\"", "gateway = \"10.0.0.254\"")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.outside.address",
            |k| matches!(k, K::Overlap { .. }),
        ),
        case(
            "multicast MAC",
            INTERFACES.replace("device = \"inside0\"", "device = \"inside0\"\nmac = \"01:00:5e:00:00:01\" # <-")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n",
            "interfaces.inside.mac",
            |k| matches!(k, K::BadValue { .. }),
        ),
        case(
            "deny rule with a port on ICMP",
            with("", "[[policy.deny]]\nprotocol = \"icmp\"\ndestination = \"0.0.0.0/0\"\nport = 7 # <-"),
            "policy.deny[0].port",
            |k| matches!(k, K::Conflict { .. }),
        ),
        case(
            "deny rule with an unknown protocol",
            with("", "[[policy.deny]]\nprotocol = \"sctp\" # <-\ndestination = \"0.0.0.0/0\""),
            "policy.deny[0].protocol",
            |k| matches!(k, K::BadValue { valid, .. } if valid.contains("any")),
        ),
        case(
            "deny rule port range reversed",
            with("", "[[policy.deny]]\nprotocol = \"udp\"\nports = [9000, 8000] # <-"),
            "policy.deny[0].ports",
            |k| matches!(k, K::PortRangeReversed { .. }),
        ),
        case("metrics listen without a port", with("", "[metrics]\nlisten = \"localhost\" # <-"), "metrics.listen", |k| {
            matches!(k, K::BadValue { .. })
        }),
        case(
            "too few mbufs for DPDK rings",
            INTERFACES.replace("device = \"inside0\"", "driver = \"dpdk\"\ndevice = \"0000:3b:00.0\"")
                + "[nat]\npublic_ips = [\"203.0.113.10\"]\n[dpdk]\nmbufs = 2048 # <-\n",
            "dpdk.mbufs",
            |k| matches!(k, K::OutOfRange { valid, .. } if valid.contains("at least")),
        ),
        case("TOML syntax error", dataplane("workers = = 2 # <-"), "dataplane.workers", |k| {
            matches!(k, K::Syntax { .. })
        }),
        case("duplicate TOML key", dataplane("workers = 2\nworkers = 3 # <-"), "dataplane.workers", |k| {
            matches!(k, K::Syntax { .. })
        }),
    ]
}

/// The 1-based line carrying the `# <-` marker.
fn marked_line(toml: &str) -> u32 {
    let lines: Vec<usize> = toml
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("# <-"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "exactly one marker expected in:\n{toml}");
    lines[0] as u32
}

#[test]
fn base_configs_are_valid() {
    // The table only means something if its starting points are accepted.
    for text in [
        with("", ""),
        dataplane("workers = 2"),
        interfaces(INTERFACES),
    ] {
        Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

#[test]
fn every_bad_config_is_refused_with_its_key_kind_and_line() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "at least 25 bad configs, have {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for c in &cases {
        let line = marked_line(&c.toml);
        let err = match Config::from_toml_str(&c.toml) {
            Ok(_) => {
                failures.push(format!("{}: accepted", c.name));
                continue;
            }
            Err(e) => e,
        };
        let message = err.to_string();
        // Shown with `cargo test -- --nocapture`, to review the wording.
        println!("{:<45} {message}", c.name);
        let kind = err.kind().expect("an invalid-config error");
        let mut problems = Vec::new();
        if !(c.kind)(kind) {
            problems.push(format!("unexpected kind {kind:?}"));
        }
        if err.key() != Some(c.key) {
            problems.push(format!("key {:?}, expected {:?}", err.key(), c.key));
        }
        if err.line() != Some(line) {
            problems.push(format!("line {:?}, expected {line}", err.line()));
        }
        if !message.contains(&format!("`{}`", c.key)) || !message.contains(&format!("line {line},"))
        {
            problems.push("message does not name the key and the line".to_string());
        }
        if message.contains('\n') {
            problems.push("message spans several lines".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    message: {message}",
                c.name,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_from_a_file_read_file_line_column() {
    let dir = std::env::temp_dir().join(format!("natgw-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, with("", "[nat.timeouts]\ntcp_idle = \"3m\"")).unwrap();
    let err = Config::load(&path).unwrap_err();
    let line = err.line().unwrap();
    let col = err.column().unwrap();
    assert_eq!(col, 12, "the value starts at column 12");
    let expected = format!("{}:{line}:{col}: `nat.timeouts.tcp_idle`:", path.display());
    assert!(err.to_string().starts_with(&expected), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = Config::load(dir.join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
    assert!(missing.to_string().contains("nope.toml"));
}
