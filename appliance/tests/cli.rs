//! The `appliance` binary's command line, run as a user would: `check` on the example configs and
//! on broken ones, and the run command, which must not pretend to run before the data path exists.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn appliance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the appliance binary runs")
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let dir =
            std::env::temp_dir().join(format!("natgw-cli-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn check_accepts_the_examples_and_prints_the_effective_config() {
    for name in ["testbed.toml", "bare-metal-dpdk.toml"] {
        let path = example(name);
        let out = appliance(&["check", "--config", path.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {:?}\n{}",
            out.status,
            text(&out.stderr)
        );
        for needle in [
            "valid",
            "SNAT ports per public IP:",
            "SNAT ports per worker per IP:",
            "[nat.timeouts]",
            "tcp_idle = ",
        ] {
            assert!(
                stdout.contains(needle),
                "{name}: no {needle:?} in\n{stdout}"
            );
        }
        // What check prints is itself a config file that passes check.
        let printed = TempFile::new(&format!("effective-{name}"), &stdout);
        let again = appliance(&["check", "--config", printed.path()]);
        assert!(
            again.status.success(),
            "{name}: effective config refused: {}",
            text(&again.stderr)
        );
    }
}

#[test]
fn check_prints_the_derived_numbers() {
    let out = appliance(&[
        "check",
        "--config",
        example("testbed.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("SNAT ports per public IP:         64512"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SNAT ports per worker per IP:     32256 (2 workers)"),
        "{stdout}"
    );
    let out = appliance(&[
        "check",
        "--config",
        example("bare-metal-dpdk.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("321 instances x 128 ports per instance"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_a_bad_config_with_file_line_column_and_key() {
    let testbed = std::fs::read_to_string(example("testbed.toml")).unwrap();
    let bad = testbed.replace("tcp_idle = \"4m\"", "tcp_idle = \"3m\"");
    assert_ne!(bad, testbed, "the example still has tcp_idle = \"4m\"");
    let line = bad
        .lines()
        .position(|l| l.starts_with("tcp_idle = \"3m\""))
        .unwrap()
        + 1;
    let file = TempFile::new("bad.toml", &bad);
    let out = appliance(&["check", "--config", file.path()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a refused config"
    );
    let expected = format!("{}:{line}:12: `nat.timeouts.tcp_idle`:", file.path());
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in {stderr:?}"
    );
    assert!(stderr.contains("\"4m\" to \"120m\""), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
}

#[test]
fn check_refuses_unknown_keys_and_missing_files() {
    let file = TempFile::new("typo.toml", "[dataplane]\nwrokers = 2\n");
    let out = appliance(&["check", "--config", file.path()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(":2:1: `dataplane.wrokers`: unknown key"),
        "{stderr}"
    );

    let out = appliance(&["check", "--config", "/nonexistent/natgw.toml"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/natgw.toml"));
}

#[test]
fn check_needs_a_config_argument() {
    let out = appliance(&["check"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(text(&out.stderr).contains("--config"));
}

#[test]
fn run_refuses_a_bad_config_before_touching_any_interface() {
    let file = TempFile::new("run-bad.toml", "[dataplane]\nburst = 0\n");
    let out = appliance(&["--config", file.path()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:2:9: `dataplane.burst`", file.path())),
        "{stderr}"
    );
}

#[test]
fn no_arguments_is_a_usage_error() {
    let out = appliance(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}
