//! The `testbed` binary: `up` tears down on SIGINT/SIGTERM, `down` removes what a killed run
//! left, `demo`/`bench` say they are not there yet. Root tests print `SKIPPED: reason` and
//! return where namespaces are unavailable.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testbed::{find_leftovers, LeftoverScope, Prefix, Signal};

const BIN: &str = env!("CARGO_BIN_EXE_testbed");

/// Starts `testbed up --prefix PREFIX ARGS...` and waits until it says it is up; returns
/// the child and its stdout so far.
fn start_up(prefix: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["up", "--prefix", prefix])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("up;") {
                    return (child, seen);
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("testbed up did not come up ({e}); output:\n{seen}");
            }
        }
    }
}

fn ours(prefix: &Prefix) -> Vec<String> {
    find_leftovers(prefix, LeftoverScope::All)
        .unwrap()
        .into_iter()
        .map(|n| n.to_string())
        .collect()
}

fn signal(child: &Child, sig: Signal) {
    // With the `kill` program, so the raw `Child` stays ours to wait on.
    let flag = match sig {
        Signal::Interrupt => "-INT",
        Signal::Terminate => "-TERM",
        Signal::Hangup => "-HUP",
        Signal::Kill => "-KILL",
    };
    let st = Command::new("kill")
        .args([flag, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn up_then(sig: Signal, prefix_text: &str, extra: &[&str]) {
    let prefix = Prefix::new(prefix_text).unwrap();
    let (mut child, out) = start_up(prefix_text, extra);
    assert_eq!(ours(&prefix).len(), 3, "{out}");
    assert!(out.contains("client: netns"), "{out}");
    signal(&child, sig);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{out}");
    assert!(ours(&prefix).is_empty(), "left behind: {:?}", ours(&prefix));
}

#[test]
fn up_tears_down_on_sigint() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    up_then(Signal::Interrupt, "ntbcliint", &[]);
}

#[test]
fn up_kernel_nat_tears_down_on_sigterm() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    testbed::skip_unless!(testbed::require_programs(&["nft"]));
    up_then(Signal::Terminate, "ntbcliterm", &["--kernel-nat"]);
}

#[test]
fn down_removes_what_a_killed_up_left() {
    testbed::skip_unless!(testbed::require_root_and_netns());
    let prefix = Prefix::new("ntbclikill").unwrap();
    let (mut child, _) = start_up(prefix.as_str(), &[]);
    signal(&child, Signal::Kill);
    child.wait().unwrap();
    assert_eq!(ours(&prefix).len(), 3);
    let out = Command::new(BIN)
        .args(["down", "--prefix", prefix.as_str()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("removed ").count(), 3, "{text}");
    assert!(ours(&prefix).is_empty());
}

#[test]
fn demo_refuses_a_missing_config_before_building_anything() {
    let out = Command::new(BIN)
        .args(["demo", "--config", "/nonexistent/natgw.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/natgw.toml") || err.contains("root"),
        "{err}"
    );
}

#[test]
fn bench_rejects_unknown_arguments() {
    let out = Command::new(BIN)
        .args(["bench", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
