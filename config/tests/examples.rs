//! Every example config under `config/examples/` parses, and its effective TOML parses back to an
//! equal config (and renders identically a second time).

use std::path::PathBuf;

use natgw_config::{Allocation, Config, Driver, Pooling};

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/examples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn there_are_examples() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"testbed.toml".to_string()), "{names:?}");
    assert!(
        names.contains(&"bare-metal-dpdk.toml".to_string()),
        "{names:?}"
    );
}

#[test]
fn every_example_parses_and_round_trips() {
    for path in examples() {
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = config.effective_toml();
        let back = Config::from_toml_str(&text).unwrap_or_else(|e| {
            panic!(
                "{}: effective TOML does not parse: {e}\n{text}",
                path.display()
            )
        });
        assert_eq!(
            back,
            config,
            "{}: round trip changed the config\n{text}",
            path.display()
        );
        assert_eq!(
            back.effective_toml(),
            text,
            "{}: rendering is not stable",
            path.display()
        );
    }
}

#[test]
fn testbed_example_matches_design_section_4() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let c = Config::load(dir.join("testbed.toml")).unwrap();
    assert_eq!(c.inside().driver(), Driver::AfPacket);
    assert_eq!(c.inside().device(), "inside0");
    assert_eq!(c.inside().address().to_string(), "10.0.0.1/24");
    assert_eq!(c.outside().device(), "outside0");
    assert_eq!(c.outside().address().to_string(), "203.0.113.1/24");
    assert_eq!(
        c.outside().gateway(),
        Some("203.0.113.254".parse().unwrap())
    );
    let ips: Vec<String> = c
        .nat()
        .public_ips()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ips, ["203.0.113.10", "203.0.113.11"]);
    assert_eq!(c.nat().statics().len(), 1);
    assert_eq!(c.nat().statics()[0].private.to_string(), "10.0.0.50");
    assert_eq!(c.nat().statics()[0].public.to_string(), "203.0.113.50");
    assert_eq!(c.metrics().listen().to_string(), "127.0.0.1:9464");
    assert_eq!(c.nat().pooling(), Pooling::Paired);
    assert!(matches!(
        c.nat().allocation(),
        Allocation::Dynamic {
            max_ports_per_host: None
        }
    ));
    let d = c.derived();
    assert_eq!(d.ports_per_ip, 64512);
    assert_eq!(d.ports_per_worker, 32256);
    assert_eq!(d.snat_ports_per_protocol, 2 * 64512);
}

#[test]
fn bare_metal_example_derives_the_preallocation() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let c = Config::load(dir.join("bare-metal-dpdk.toml")).unwrap();
    assert!(c.uses_dpdk());
    assert_eq!(c.nat().public_ips().len(), 9);
    assert_eq!(c.nat().reserved_ranges(), &[(8000, 8007), (9440, 9447)]);
    let Allocation::Preallocated {
        instances,
        ports_per_instance,
    } = c.nat().allocation()
    else {
        panic!("preallocated expected");
    };
    assert_eq!(instances.len(), 321);
    assert_eq!(
        *ports_per_instance, 128,
        "201-400 instances: 128 ports from the default table"
    );
    let d = c.derived();
    assert_eq!(d.ports_per_ip, 64512 - 16);
    assert_eq!(d.ports_per_worker, (64512 - 16) / 4);
    let p = d.preallocated.unwrap();
    assert_eq!(p.capacity, ((64512 - 16) / 128) * 9);
}
