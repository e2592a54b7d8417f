//! Running helper programs (`ip`, `ethtool`, `nft`, `ping`) and guarding spawned children.
//!
//! Layer: test harness, slow path. Programs are looked up once in `PATH` and in the sbin
//! directories (root's tools live there, and `cargo test` may run with a user's `PATH`).
//! Invariant of [`ChildGuard`]: a child is signalled only while it is not yet reaped, so its
//! pid cannot have been reused; dropping the guard kills and reaps the child.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};

const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds `program` in `PATH` or in the usual system directories.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A [`Command`] for `program`, resolved through [`find_program`] (falling back to the bare
/// name, so that a missing program surfaces as a spawn error naming it).
pub fn command(program: &str) -> Command {
    Command::new(find_program(program).unwrap_or_else(|| PathBuf::from(program)))
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, feeding `stdin` if given, and returns its output whatever the
/// exit status.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output> {
    let line = describe(cmd);
    log::debug!("run: {line}");
    let spawn_err = |source| TestbedError::Spawn {
        command: line.clone(),
        source,
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        None => {
            cmd.stdin(Stdio::null());
            cmd.output().map_err(spawn_err)
        }
        Some(input) => {
            cmd.stdin(Stdio::piped());
            let mut child = cmd.spawn().map_err(spawn_err)?;
            if let Some(mut pipe) = child.stdin.take() {
                // A program that exits early closes the pipe; its status tells the story.
                let _ = pipe.write_all(input);
            }
            child.wait_with_output().map_err(spawn_err)
        }
    }
}

/// Runs `cmd` like [`run`] and fails unless it exits successfully; returns its stdout.
pub fn run_checked(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String> {
    let out = run(cmd, stdin)?;
    if !out.status.success() {
        return Err(TestbedError::CommandFailed {
            command: describe(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A signal the testbed may send to a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGINT` (Ctrl-C).
    Interrupt,
    /// `SIGTERM`: clean stop.
    Terminate,
    /// `SIGHUP`: the appliance reloads its config.
    Hangup,
    /// `SIGKILL`.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
            Signal::Hangup => libc::SIGHUP,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// Sends `sig` to process `pid`.
pub(crate) fn send_signal(pid: u32, sig: Signal) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where a spawned child's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum ChildOutput {
    /// Discarded.
    Null,
    /// Shared with this process (visible with `cargo test -- --nocapture`).
    Inherit,
    /// Both appended to this file (created if missing); read it after the child stops.
    File(PathBuf),
}

impl ChildOutput {
    pub(crate) fn apply(&self, cmd: &mut Command) -> Result<()> {
        match self {
            ChildOutput::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            ChildOutput::Inherit => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            ChildOutput::File(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| TestbedError::io(format!("open {}", path.display()), e))
                };
                cmd.stdout(open()?).stderr(open()?);
            }
        }
        Ok(())
    }
}

/// A spawned child process that is killed (SIGKILL) and reaped when the guard drops.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    command: String,
    reaped: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` (its stdin is set to null unless the caller chose otherwise before).
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        let command = describe(cmd);
        log::debug!("spawn: {command}");
        let child = cmd.spawn().map_err(|source| TestbedError::Spawn {
            command: command.clone(),
            source,
        })?;
        Ok(ChildGuard {
            child,
            command,
            reaped: None,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// The underlying [`Child`], for example to take a piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `sig` unless the child has already exited (and been reaped).
    pub fn signal(&mut self, sig: Signal) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        send_signal(self.id(), sig)
            .map_err(|e| TestbedError::io(format!("signal {sig:?} to `{}`", self.command), e))
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.reaped.is_some() {
            return Ok(self.reaped);
        }
        let st = self
            .child
            .try_wait()
            .map_err(|e| TestbedError::io(format!("wait for `{}`", self.command), e))?;
        self.reaped = st;
        Ok(st)
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the child: `SIGTERM`, then `SIGKILL` if it has not exited after `grace`.
    pub fn stop(mut self, grace: Duration) -> Result<ExitStatus> {
        self.signal(Signal::Terminate)?;
        if let Some(st) = self.wait_timeout(grace)? {
            return Ok(st);
        }
        log::warn!("`{}` ignored SIGTERM for {grace:?}; killing", self.command);
        self.signal(Signal::Kill)?;
        let st = self
            .child
            .wait()
            .map_err(|e| TestbedError::io(format!("wait for `{}`", self.command), e))?;
        self.reaped = Some(st);
        Ok(st)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_with_args<const N: usize>(program: &str, args: [&str; N]) -> Command {
        let mut cmd = command(program);
        cmd.args(args);
        cmd
    }

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-natgw").is_none());
    }

    #[test]
    fn run_checked_reports_failure_with_stderr() {
        let mut cmd = command_with_args("sh", ["-c", "echo oops >&2; exit 3"]);
        let err = run_checked(&mut cmd, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("oops"), "{msg}");
        assert!(matches!(err, TestbedError::CommandFailed { .. }));
    }

    #[test]
    fn run_feeds_stdin() {
        let mut cmd = command("cat");
        assert_eq!(run_checked(&mut cmd, Some(b"hello")).unwrap(), "hello");
    }

    #[test]
    fn guard_kills_on_drop_and_stop_terminates() {
        let mut cmd = command_with_args("sleep", ["30"]);
        let guard = ChildGuard::spawn(&mut cmd).unwrap();
        let pid = guard.id();
        drop(guard);
        // Reaped, so the pid is gone (or reused by an unrelated process, which is unlikely
        // within this instant; /proc/PID/cmdline would then not be `sleep 30`).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmdline).contains("sleep\u{0}30"));

        let mut cmd = command_with_args("sleep", ["30"]);
        let guard = ChildGuard::spawn(&mut cmd).unwrap();
        let st = guard.stop(Duration::from_secs(2)).unwrap();
        assert!(!st.success());
    }
}
