//! Agents under test: vipd or keepalived, started, stopped, crashed and restarted alike.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::process::Proc;
use super::topology::Topology;
use super::wait_until;

/// Which agent.
#[derive(Debug, Clone)]
pub enum AgentKind {
    /// vipd, run as `BIN -c CONF` (TOML config text from the test).
    Vipd {
        /// Path of the vipd binary.
        bin: PathBuf,
    },
    /// keepalived 2.x, run as `keepalived -n -P -l -D -G -f CONF -p PID -r VRRP_PID`.
    Keepalived,
}

impl AgentKind {
    /// vipd from this crate's build: `$VIPD_BIN`, else `CARGO_BIN_EXE_vipd` (set for
    /// integration tests), else next to the running executable (examples, e.g. the demo).
    pub fn vipd() -> AgentKind {
        AgentKind::Vipd {
            bin: super::crate_bin("vipd", "VIPD_BIN", option_env!("CARGO_BIN_EXE_vipd")),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            AgentKind::Vipd { .. } => "vipd",
            AgentKind::Keepalived => "keepalived",
        }
    }
}

/// A running (or stopped) agent on one host.
pub struct Agent {
    host: String,
    kind: AgentKind,
    conf: PathBuf,
    pidfile: PathBuf,
    vrrp_pidfile: PathBuf,
    log_name: String,
    proc: Proc,
    starts: u32,
}

impl Topology {
    /// Writes `config` to the run directory and starts the agent on `host`.
    pub fn start_agent(&self, host: &str, kind: AgentKind, config: &str) -> Agent {
        let label = kind.label();
        let conf = self.path(&format!(
            "{host}-{label}.{}",
            if matches!(kind, AgentKind::Vipd { .. }) {
                "toml"
            } else {
                "conf"
            }
        ));
        if let Err(e) = std::fs::write(&conf, config) {
            panic!("harness: writing {}: {e}", conf.display());
        }
        let pidfile = self.path(&format!("{host}-{label}.pid"));
        let vrrp_pidfile = self.path(&format!("{host}-{label}-vrrp.pid"));
        let log_name = format!("{host}-{label}.log");
        let proc = spawn_agent(self, host, &kind, &conf, &pidfile, &vrrp_pidfile, &log_name);
        Agent {
            host: host.to_string(),
            kind,
            conf,
            pidfile,
            vrrp_pidfile,
            log_name,
            proc,
            starts: 1,
        }
    }
}

fn spawn_agent(
    topo: &Topology,
    host: &str,
    kind: &AgentKind,
    conf: &std::path::Path,
    pidfile: &std::path::Path,
    vrrp_pidfile: &std::path::Path,
    log_name: &str,
) -> Proc {
    let conf_s = conf.to_string_lossy().into_owned();
    match kind {
        AgentKind::Vipd { bin } => {
            let bin_s = bin.to_string_lossy().into_owned();
            topo.spawn(host, &[&bin_s, "-c", &conf_s], log_name)
        }
        AgentKind::Keepalived => {
            // A crashed run leaves its pid files; keepalived would refuse to start if a
            // recycled pid were alive, so start clean.
            let _ = std::fs::remove_file(pidfile);
            let _ = std::fs::remove_file(vrrp_pidfile);
            let bin = super::which("keepalived")
                .unwrap_or_else(|| panic!("harness: keepalived not found in PATH"));
            let bin_s = bin.to_string_lossy().into_owned();
            let p = pidfile.to_string_lossy().into_owned();
            let r = vrrp_pidfile.to_string_lossy().into_owned();
            topo.spawn(
                host,
                &[
                    &bin_s, "-n", "-P", "-l", "-D", "-G", "-f", &conf_s, "-p", &p, "-r", &r,
                ],
                log_name,
            )
        }
    }
}

/// Pids of the direct children of `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid ...: comm may contain spaces; split after ')'.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Whether `pid` is gone (or a zombie).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X"),
    }
}

impl Agent {
    /// Host it runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The main process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Path of its configuration file (rewrite it, then [`Agent::reload`]).
    pub fn conf_path(&self) -> &std::path::Path {
        &self.conf
    }

    /// Log text since the latest (re)start.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// How many lines of the log since the latest start contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the log since the latest start contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, Duration::from_millis(20), || {
            self.log().contains(needle)
        })
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        if let Err(e) = self.proc.signal(Signal::SIGHUP) {
            panic!("harness: reload {}: {e}", self.describe());
        }
    }

    /// Graceful stop: SIGTERM, then waits up to `timeout` for the exit (a master hands over:
    /// priority-0 advert, VIPs removed). Returns the exit status; on timeout it SIGKILLs and
    /// panics with the log.
    pub fn stop(&self, timeout: Duration) -> ExitStatus {
        if let Err(e) = self.proc.signal(Signal::SIGTERM) {
            panic!(
                "harness: stop {}: {e}\nlog:\n{}",
                self.describe(),
                self.log()
            );
        }
        match self.proc.wait_timeout(timeout) {
            Some(st) => st,
            None => {
                let _ = self.proc.signal(Signal::SIGKILL);
                panic!(
                    "harness: {} did not exit within {timeout:?} of SIGTERM\nlog:\n{}",
                    self.describe(),
                    self.log()
                );
            }
        }
    }

    /// Crash: the agent ends without any chance to hand over (VIPs stay configured).
    /// vipd: SIGKILL. keepalived: SIGSTOP the parent (so it cannot react), SIGKILL the VRRP
    /// child (pid file, and any other child), then SIGKILL the parent — SIGKILL of the parent
    /// alone is not a crash, its VRRP child notices and hands over.
    pub fn kill(&self) {
        let pid = self.proc.pid();
        match self.kind {
            AgentKind::Vipd { .. } => {
                let _ = self.proc.signal(Signal::SIGKILL);
            }
            AgentKind::Keepalived => {
                if self.proc.signal(Signal::SIGSTOP).is_err() {
                    panic!(
                        "harness: crash {}: already exited\nlog:\n{}",
                        self.describe(),
                        self.log()
                    );
                }
                let mut victims = children_of(pid);
                if let Some(p) = std::fs::read_to_string(&self.vrrp_pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                {
                    if !victims.contains(&p) {
                        victims.push(p);
                    }
                }
                for v in &victims {
                    let _ = kill(Pid::from_raw(*v as i32), Signal::SIGKILL);
                }
                let all_gone = wait_until(Duration::from_secs(3), Duration::from_millis(5), || {
                    victims.iter().all(|v| gone(*v))
                });
                assert!(
                    all_gone,
                    "harness: crash {}: children {victims:?} still alive after SIGKILL",
                    self.describe()
                );
                let _ = self.proc.signal(Signal::SIGKILL);
            }
        }
        if self.proc.wait_timeout(Duration::from_secs(5)).is_none() {
            panic!("harness: {} survived SIGKILL", self.describe());
        }
    }

    /// Starts the agent again with the same configuration file (after stop or kill). The log
    /// file is appended to; [`Agent::log`] then shows the new run only.
    pub fn restart(&mut self, topo: &Topology) {
        if self.proc.is_running() {
            panic!(
                "harness: restart {}: still running (stop or kill it first)",
                self.describe()
            );
        }
        self.proc = spawn_agent(
            topo,
            &self.host,
            &self.kind,
            &self.conf,
            &self.pidfile,
            &self.vrrp_pidfile,
            &self.log_name,
        );
        self.starts += 1;
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Panics, with its exit status and log, unless the agent's process is still running.
    #[track_caller]
    pub fn assert_running(&self) {
        assert!(
            self.proc.is_running(),
            "{} exited ({:?}); log:\n{}",
            self.describe(),
            self.proc.exit_status(),
            self.log()
        );
    }

    /// For messages.
    pub fn describe(&self) -> String {
        format!(
            "{} on {}: {}",
            self.kind.label(),
            self.host,
            self.proc.describe()
        )
    }
}
