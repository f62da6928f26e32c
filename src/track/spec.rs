//! Validated descriptions of health checks and notify hooks (built by `config`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// HTTP GET of `url` (http:// only); healthy when the status is in `expect_status`.
    Http {
        /// The URL, e.g. `http://127.0.0.1:8080/health`.
        url: String,
        /// Accepted status codes (inclusive ranges); default 200..=299.
        expect_status: Vec<(u16, u16)>,
    },
    /// TCP connect to `address`; healthy when it connects within the timeout.
    Tcp {
        /// Address to connect to.
        address: SocketAddr,
    },
    /// Run `program` with `args` (no shell); healthy on exit status 0.
    Exec {
        /// Program path.
        program: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// Run it with the daemon's capabilities (`keep-capabilities = true`);
        /// by default it gets none.
        keep_capabilities: bool,
    },
    /// Another interface's link is up.
    Interface {
        /// Interface name.
        name: String,
    },
    /// Running processes (keepalived `track_process`): healthy while the number of
    /// processes that match is within `min_count..=max_count`.
    Process(ProcessMatch),
    /// A file holding an integer (keepalived `track_file`): the value times the
    /// check's weight is subtracted from the priority; a file that does not hold a
    /// number puts the instance in Fault.
    File {
        /// The file.
        path: PathBuf,
    },
    /// A BFD session (RFC 5880 / 5881) to `peer` on the instance's interface, at the
    /// check's `interval` (the BFD interval): healthy while the session is Up. Run by
    /// the BFD engine (`daemon::bfd`), not probed: rise, fall and timeout do not apply.
    Bfd {
        /// The gateway or backend.
        peer: IpAddr,
        /// Detect Mult.
        multiplier: u8,
    },
}

/// Which processes a `process` check counts (see [`crate::track::procscan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMatch {
    /// Executable name: matches the process name (`/proc/PID/comm`), `argv[0]`, or the
    /// file name of `argv[0]`.
    pub name: String,
    /// Arguments to match after `argv[0]` (`None`: any arguments).
    pub args: Option<Vec<String>>,
    /// How `args` are compared.
    pub args_match: ArgsMatch,
    /// Fewest matching processes for a healthy verdict (keepalived `quorum`).
    pub min_count: u32,
    /// Most matching processes for a healthy verdict (keepalived `quorum_max`);
    /// `None` = no upper bound.
    pub max_count: Option<u32>,
}

/// How the arguments of a `process` check are compared (keepalived `param_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArgsMatch {
    /// The process has exactly these arguments.
    #[default]
    Exact,
    /// The process's first arguments are these (it may have more).
    Partial,
    /// Like `Partial`, and the last configured argument may be a prefix of the
    /// process's argument at that place.
    Initial,
}

/// One `[[instance.track]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Name shown in status and metrics (defaults to the kind and target).
    pub name: String,
    /// What to probe.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// A probe that takes longer fails (and an exec probe is killed).
    pub timeout: Duration,
    /// Consecutive successes to turn healthy.
    pub rise: u32,
    /// Consecutive failures to turn unhealthy.
    pub fall: u32,
    /// Priority subtracted while unhealthy; 0 = unhealthy puts the instance in Fault.
    pub weight: u8,
}

/// Notify hooks of an instance or a sync group. Each hook is a program and its
/// arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifySpec {
    /// Run on entering Master (and again when a split brain heals and we stay master).
    pub master: Option<Vec<String>>,
    /// Run on entering Backup.
    pub backup: Option<Vec<String>>,
    /// Run on entering Fault.
    pub fault: Option<Vec<String>>,
    /// Run on every state change with arguments `INSTANCE STATE REASON` appended.
    pub any: Option<Vec<String>>,
    /// Run once when the instance stops (vipd shuts down, or a reload removes or
    /// rebuilds it), after it handed over (keepalived `notify_stop`). Instances only.
    pub stop: Option<Vec<String>>,
    /// Each hook is killed after this long.
    pub timeout: Duration,
    /// Run the hooks with the daemon's capabilities (`keep-capabilities = true`);
    /// by default they get none.
    pub keep_capabilities: bool,
}
