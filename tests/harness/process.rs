//! Processes inside namespaces: spawning, signals, bounded waits, log capture.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// One process started by the harness, kept so teardown can end it without guessing pids.
pub(crate) struct Tracked {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) label: String,
    pub(crate) log: PathBuf,
    pub(crate) child: Child,
    pub(crate) exited: Option<ExitStatus>,
}

/// The registry of every process a topology started. Owning the `Child` means a pid is never
/// reaped behind our back, so signalling a tracked pid can never hit a recycled one.
#[derive(Clone, Default)]
pub struct Procs(pub(crate) Arc<Mutex<Vec<Tracked>>>);

impl Procs {
    fn with<R>(&self, pid: u32, f: impl FnOnce(&mut Tracked) -> R) -> Option<R> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter_mut().find(|t| t.pid == pid).map(f)
    }

    /// Polls the child once; records and returns its exit status when it has ended.
    fn poll(&self, pid: u32) -> Option<ExitStatus> {
        self.with(pid, |t| {
            if t.exited.is_none() {
                if let Ok(Some(st)) = t.child.try_wait() {
                    t.exited = Some(st);
                }
            }
            t.exited
        })
        .flatten()
    }

    /// SIGKILLs every tracked process still running and reaps it (bounded).
    pub(crate) fn kill_all(&self) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for t in g.iter_mut() {
            if t.exited.is_none() {
                if let Ok(Some(st)) = t.child.try_wait() {
                    t.exited = Some(st);
                    continue;
                }
                let _ = t.child.kill();
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    if let Ok(Some(st)) = t.child.try_wait() {
                        t.exited = Some(st);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// Pids of tracked processes that have not been seen to exit.
    pub(crate) fn live_pids(&self) -> Vec<u32> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .filter(|t| t.exited.is_none())
            .map(|t| t.pid)
            .collect()
    }

    /// (host, label, log) of every process, for printing logs on failure.
    pub(crate) fn logs(&self) -> Vec<(String, String, PathBuf)> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = g
            .iter()
            .map(|t| (t.host.clone(), t.label.clone(), t.log.clone()))
            .collect();
        v.dedup_by(|a, b| a.2 == b.2);
        v
    }

    /// Spawns `argv` in namespace `ns` via `ip netns exec` (which execs, so the pid is the
    /// program's own), stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        &self,
        ns: &str,
        host: &str,
        label: &str,
        argv: &[String],
        log: &Path,
    ) -> Result<Proc, String> {
        if argv.is_empty() {
            return Err(format!("{host}: spawn with an empty argv"));
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let start_offset = out.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own process group: a terminal's Ctrl-C reaches the harness, which cleans up.
            .process_group(0);
        // The child starts with no blocked signal: `cleanup_on_sigint` blocks SIGINT/SIGTERM
        // in the caller, and a blocked mask survives fork and exec (SIGTERM to an agent or a
        // probe would then never arrive).
        // SAFETY: only async-signal-safe calls (sigemptyset, pthread_sigmask) between fork and
        // exec, on a sigset_t owned by the closure.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("{host}: cannot spawn {argv:?}: {e}"))?;
        let pid = child.id();
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.push(Tracked {
            pid,
            host: host.to_string(),
            label: label.to_string(),
            log: log.to_path_buf(),
            child,
            exited: None,
        });
        Ok(Proc {
            pid,
            host: host.to_string(),
            label: label.to_string(),
            log: log.to_path_buf(),
            start_offset,
            procs: self.clone(),
        })
    }
}

/// A handle on a process the harness started in a namespace. Dropping it does not end the
/// process; the topology's teardown does.
pub struct Proc {
    pid: u32,
    host: String,
    label: String,
    log: PathBuf,
    start_offset: u64,
    procs: Procs,
}

impl Proc {
    /// The process id (as seen from the root pid namespace: the harness shares it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Host (namespace short name) the process runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Log file receiving its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log written since this process started (the file may be shared with earlier runs).
    pub fn log(&self) -> String {
        read_from(&self.log, self.start_offset)
    }

    /// Whether it still runs (it has not been reaped).
    pub fn is_running(&self) -> bool {
        self.procs.poll(self.pid).is_none()
    }

    /// Exit status if it has ended.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.procs.poll(self.pid)
    }

    /// Sends `sig`. Fails (and sends nothing) when the process was already reaped.
    pub fn signal(&self, sig: Signal) -> Result<(), String> {
        if let Some(st) = self.procs.poll(self.pid) {
            return Err(format!(
                "{}/{} (pid {}): cannot send {sig}: already exited ({st})",
                self.host, self.label, self.pid
            ));
        }
        kill(Pid::from_raw(self.pid as i32), sig).map_err(|e| {
            format!(
                "{}/{} (pid {}): kill({sig}): {e}",
                self.host, self.label, self.pid
            )
        })
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.procs.poll(self.pid) {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} (pid {}, log {})",
            self.host,
            self.label,
            self.pid,
            self.log.display()
        )
    }
}

/// Reads a file from `offset` (lossy UTF-8); empty when missing.
pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The result of a short command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status (`None`: killed after the timeout).
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl CmdOutput {
    /// Exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a short command to completion, killing it after `timeout`. Never blocks longer.
pub fn run_cmd(argv: &[&str], stdin: Option<&str>, timeout: Duration) -> CmdOutput {
    let Some((prog, args)) = argv.split_first() else {
        return CmdOutput {
            status: None,
            stdout: String::new(),
            stderr: "empty argv".into(),
        };
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CmdOutput {
                status: None,
                stdout: String::new(),
                stderr: format!("cannot run {argv:?}: {e}"),
            }
        }
    };
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = w.write_all(text.as_bytes());
    }
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = so.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = se.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    CmdOutput {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// `/bin/sh -c 'sleep 300; :' MARKER`: a shell whose argv carries the marker (the `; :`
/// keeps sh from exec-ing sleep in its place), with a sleep child, for process tracks to
/// find. The harness's namespaces share the PID namespace, so every host's vipd sees it.
/// Killed on drop with its `sleep` (its own process group), and with no inherited output:
/// an orphaned `sleep` holding the test's stdout kept `integration/test.sh`'s `tee`
/// waiting five minutes after the last test.
pub struct Sleeper(Child);

impl Sleeper {
    /// Starts one with `marker` in its argv.
    pub fn start(marker: &str) -> Sleeper {
        Sleeper(
            Command::new("/bin/sh")
                .args(["-c", "sleep 300; :", marker])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start sh"),
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0.id()) {
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `pid` and its direct children (keepalived: parent + VRRP child).
pub fn process_family(pid: u32) -> Vec<u32> {
    let mut v = vec![pid];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 1..].to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if ppid == Some(pid) {
                v.push(p);
            }
        }
    }
    v
}

/// Clock ticks per second (`/proc/PID/stat` times are in these).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (utime + stime) in clock ticks and VmRSS in KiB of one process.
pub fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}
