//! A named network namespace that this process owns, and ways to run things inside it.
//!
//! Layer: test harness, slow path. A [`Netns`] is created with `ip netns add` (which bind-mounts
//! the namespace at `/var/run/netns/NAME`) and deleted when dropped: first every process
//! inside it is killed (found by comparing `/proc/PID/ns/net` with the namespace's inode —
//! never by name), then `ip netns del` unmounts it, which destroys the namespace and its
//! interfaces once nothing else holds it. Sockets created inside (see [`Netns::run_in`])
//! keep the namespace alive until they close, so drop servers before topologies.
//!
//! Three ways in: [`Netns::exec`] / [`Netns::command`] run a program through
//! `ip netns exec`; [`Netns::spawn`] keeps it running under a [`ChildGuard`]; and
//! [`Netns::run_in`] runs a Rust closure on a fresh thread that has `setns(2)`-ed into the
//! namespace, so tests can use `std::net` sockets there (a socket stays in the namespace it
//! was created in, whichever thread later uses it).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};
use crate::names::NsName;
use crate::process::{self, ChildGuard, ChildOutput, Signal};

/// Where `ip netns` keeps its bind mounts.
pub const NETNS_DIR: &str = "/var/run/netns";

/// How long teardown waits for killed processes to leave a namespace.
const KILL_WAIT: Duration = Duration::from_secs(3);

/// A network namespace created by this process; dropping it deletes it.
#[derive(Debug)]
pub struct Netns {
    name: NsName,
    owned: bool,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`) and brings its loopback up.
    ///
    /// A stale namespace of the same name can only be a leftover of a dead process that had
    /// our pid (names embed pid and a per-process counter), so it is removed and the creation
    /// retried once.
    pub fn create(name: NsName) -> Result<Self> {
        let add = || {
            process::run_checked(
                process::command("ip").args(["netns", "add", name.as_str()]),
                None,
            )
        };
        if let Err(first) = add() {
            if !ns_path(&name).exists() {
                return Err(first);
            }
            log::warn!("namespace {name} exists already (leftover); removing it");
            teardown(&name);
            add()?;
        }
        let ns = Netns { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle to an existing namespace that deletes it on drop (used to clean leftovers).
    pub fn adopt(name: NsName) -> Self {
        Netns { name, owned: true }
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The bind-mount path, `/var/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        ns_path(&self.name)
    }

    /// A [`Command`] running `program` inside the namespace (`ip netns exec NAME program`).
    /// `ip` execs the program, so the child's pid is the program's own.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let program = program.as_ref();
        let resolved = program
            .to_str()
            .and_then(process::find_program)
            .map(PathBuf::into_os_string)
            .unwrap_or_else(|| program.to_owned());
        let mut cmd = process::command("ip");
        cmd.args(["netns", "exec", self.name.as_str()])
            .arg(resolved);
        cmd
    }

    /// Runs `argv` inside the namespace to completion and returns its output, whatever the
    /// exit status (check `status` yourself, or use [`Netns::exec_checked`]).
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        let (program, args) = split_argv(argv)?;
        process::run(self.command(program).args(args), None)
    }

    /// Runs `argv` inside the namespace; fails unless it exits 0; returns its stdout.
    pub fn exec_checked(&self, argv: &[&str]) -> Result<String> {
        let (program, args) = split_argv(argv)?;
        process::run_checked(self.command(program).args(args), None)
    }

    /// Runs `argv` inside the namespace with `stdin` fed to it; fails unless it exits 0.
    pub fn exec_with_stdin(&self, argv: &[&str], stdin: &[u8]) -> Result<String> {
        let (program, args) = split_argv(argv)?;
        process::run_checked(self.command(program).args(args), Some(stdin))
    }

    /// Starts `argv` inside the namespace and keeps it running until the guard drops
    /// (SIGKILL) or [`ChildGuard::stop`] is called. Stdin is null.
    pub fn spawn(&self, argv: &[&str], output: ChildOutput) -> Result<ChildGuard> {
        let (program, args) = split_argv(argv)?;
        let mut cmd = self.command(program);
        cmd.args(args).stdin(Stdio::null());
        output.apply(&mut cmd)?;
        ChildGuard::spawn(&mut cmd)
    }

    /// Runs one `ip` command in the namespace (`ip -n NAME ...`).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        process::run_checked(
            process::command("ip")
                .args(["-n", self.name.as_str()])
                .args(args),
            None,
        )
    }

    /// Runs several `ip` commands in the namespace with one process (`ip -n NAME -batch -`).
    /// Stops at the first failing line and reports it.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut script = lines.join("\n");
        script.push('\n');
        log::debug!("ip -n {} -batch:\n{script}", self.name);
        process::run_checked(
            process::command("ip").args(["-n", self.name.as_str(), "-batch", "-"]),
            Some(script.as_bytes()),
        )
        .map(drop)
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and returns its result.
    ///
    /// Sockets `f` creates belong to the namespace for their whole life, so they can be
    /// returned and used from any thread afterwards. A panic in `f` is propagated.
    pub fn run_in<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let file = File::open(self.path()).map_err(|source| TestbedError::EnterNamespace {
            namespace: self.name.to_string(),
            source,
        })?;
        let name = &self.name;
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name(format!("netns-{}", name.as_str()))
                .spawn_scoped(scope, move || -> Result<T> {
                    enter(&file, name)?;
                    Ok(f())
                })
                .map_err(|e| TestbedError::io("spawn namespace thread", e))?;
            match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Writes `value` to `/proc/sys/<key>` as seen from inside the namespace, e.g.
    /// `set_sysctl("net/ipv4/ip_forward", "1")`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.set_sysctls(&[(key, value)])
    }

    /// Like [`Netns::set_sysctl`] for several keys, in order, on one thread.
    pub fn set_sysctls(&self, pairs: &[(&str, &str)]) -> Result<()> {
        self.run_in(|| {
            for (key, value) in pairs {
                let path = Path::new("/proc/sys").join(key);
                std::fs::write(&path, value).map_err(|e| {
                    TestbedError::io(format!("write {value:?} to {}", path.display()), e)
                })?;
            }
            Ok(())
        })?
    }

    /// Reads `/proc/sys/<key>` as seen from inside the namespace (trimmed).
    pub fn sysctl(&self, key: &str) -> Result<String> {
        self.run_in(|| {
            let path = Path::new("/proc/sys").join(key);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| TestbedError::io(format!("read {}", path.display()), e))
        })?
    }

    /// Pids of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.path())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            teardown(&self.name);
        }
    }
}

fn ns_path(name: &NsName) -> PathBuf {
    Path::new(NETNS_DIR).join(name.as_str())
}

fn split_argv<'a>(argv: &'a [&'a str]) -> Result<(&'a str, &'a [&'a str])> {
    argv.split_first()
        .map(|(p, a)| (*p, a))
        .ok_or_else(|| TestbedError::InvalidName {
            kind: "command",
            name: String::new(),
            why: "empty argument vector",
        })
}

/// Moves the calling thread into the namespace open as `file`.
fn enter(file: &File, name: &NsName) -> Result<()> {
    // SAFETY: setns(2) takes a file descriptor that `file` keeps open for the duration of
    // the call and a flag; it changes only the calling thread's namespace membership.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(TestbedError::EnterNamespace {
            namespace: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Pids of processes living in the namespace mounted at `path` (empty if it is gone).
fn pids_in(path: &Path) -> Vec<u32> {
    let Ok(ns) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
        })
        .collect()
}

/// Kills every process in namespace `name` (never this process) and deletes the namespace.
/// Best effort: failures are logged, never raised (this runs from `Drop`).
pub(crate) fn teardown(name: &NsName) {
    let path = ns_path(name);
    if !path.exists() {
        return;
    }
    let me = std::process::id();
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let pids: Vec<u32> = pids_in(&path).into_iter().filter(|&p| p != me).collect();
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            log::warn!("namespace {name}: processes {pids:?} survived SIGKILL; deleting anyway");
            break;
        }
        for pid in pids {
            log::debug!("namespace {name}: killing pid {pid}");
            if let Err(e) = process::send_signal(pid, Signal::Kill) {
                log::debug!("kill {pid}: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = process::run_checked(
        process::command("ip").args(["netns", "del", name.as_str()]),
        None,
    ) {
        if path.exists() {
            log::error!("cannot delete namespace {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_argv_is_an_error_not_a_panic() {
        assert!(split_argv(&[]).is_err());
        assert_eq!(split_argv(&["a", "b"]).unwrap(), ("a", &["b"][..]));
    }

    #[test]
    fn pids_of_a_missing_namespace_are_none() {
        assert!(pids_in(Path::new("/var/run/netns/does-not-exist-natgw")).is_empty());
    }
}
