//! config: TOML configuration: schema, defaults, validation into domain types.
//!
//! The file is TOML with kebab-case keys; unknown keys are rejected. [`parse`] turns
//! text into a [`Config`] whose values are all checked: a `Config` that exists is one
//! the daemon can run. Errors say where: `FILE:LINE:COL: what is wrong and what is
//! allowed`. A TOML syntax error or a value of the wrong type stops at the first one;
//! every validation error after that (ranges, families, cross-references) is reported
//! at once.
//!
//! The full key reference is `docs/configuration.md`.
//!
//! # Decisions
//! - **IPv6 link-local VIP** (RFC 5798 §5.2.9: the first address of an IPv6 advert is
//!   the virtual router's link-local address). An IPv6 instance may list one link-local
//!   VIP, which must then be first in `vips`; when it lists none, the config derives
//!   `fe80::200:5eff:fe00:2XX/64` (XX = the VRID in hex: the EUI-64 interface identifier
//!   of the VRRP virtual MAC `00-00-5E-00-02-XX`, RFC 5798 §7.3) and puts it first. So
//!   for [`Family::V6`], `vips[0]` is always link-local. Peers running other
//!   implementations must use the same link-local address (give it explicitly then).
//! - **Announcements**: 5 gratuitous ARPs / unsolicited NAs 200 ms apart on becoming
//!   master; no periodic refresh unless `announce-refresh` is set.
//! - **Track timeout** must be strictly shorter than the interval, so a probe always ends
//!   before the next one starts.

mod arbiter;
pub mod defaults;
mod duration;
mod raw;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use arbiter::{Arbiter, ArbiterTls, OnLoss, DEFAULT_KEY_PREFIX, DEFAULT_LEASE_TTL};
pub use duration::{format_duration, parse_duration, DurationError};

pub use crate::proto::Family;
use crate::proto::{Centis, Version};
use crate::track::{CheckSpec, NotifySpec};

/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = defaults::CONTROL_SOCKET;
/// Default state directory (persisted operator overrides).
pub const DEFAULT_STATE_DIR: &str = defaults::STATE_DIR;
/// Default configuration file of the daemon.
pub const DEFAULT_CONFIG_PATH: &str = defaults::CONFIG_PATH;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The control socket, the metrics endpoint and the state directory: set up once at
    /// start-up, kept by a reload.
    pub process: Process,
    /// Instances take no part in elections until this long after vipd started
    /// (`startup-delay`, default 0; keepalived `vrrp_startup_delay`).
    pub startup_delay: Duration,
    /// The virtual routers, in file order. May be empty.
    pub instances: Vec<Instance>,
    /// Groups of instances that change state together.
    pub sync_groups: Vec<SyncGroup>,
    /// The etcd lease arbiter (`[arbiter]`); `None` = no arbiter.
    pub arbiter: Option<Arbiter>,
}

/// What the process sets up once at start-up. A reload keeps the running values and
/// names the keys that changed ([`Process::changed_keys`]): they take effect at the next
/// restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Path of the control socket (`control-socket`, default `/run/vipd/vipd.sock`).
    pub control_socket: PathBuf,
    /// Group allowed to use the control socket besides root (`control-group`). The name
    /// is only checked for form here; the daemon resolves it at start-up.
    pub control_group: Option<String>,
    /// Where to serve Prometheus metrics (`metrics-listen`); `None` = no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for persisted operator overrides (`state-dir`, default `/var/lib/vipd`).
    pub state_dir: PathBuf,
}

impl Process {
    /// The keys whose value differs in `new`, as the configuration file names them.
    pub fn changed_keys(&self, new: &Process) -> Vec<&'static str> {
        [
            (self.control_socket != new.control_socket, "control-socket"),
            (self.control_group != new.control_group, "control-group"),
            (self.metrics_listen != new.metrics_listen, "metrics-listen"),
            (self.state_dir != new.state_dir, "state-dir"),
        ]
        .into_iter()
        .filter_map(|(changed, key)| changed.then_some(key))
        .collect()
    }
}

/// Gratuitous ARP / unsolicited Neighbour Advertisement settings of a new master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// How many announcements per VIP on becoming master (`announce-count`, default 5,
    /// 0..=100; 0 = none).
    pub count: u32,
    /// Time between them (`announce-spacing`, default 200 ms, 0..=10 s; the first is sent
    /// at once).
    pub spacing: Duration,
    /// While master, repeat one announcement this often (`announce-refresh`, >= 1 s);
    /// `None` (default) = never.
    pub refresh: Option<Duration>,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            count: defaults::ANNOUNCE_COUNT,
            spacing: defaults::ANNOUNCE_SPACING,
            refresh: None,
        }
    }
}

/// One virtual router (`[[instance]]`): a VRID on an interface for one address family.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Unique name, used by vipctl, logs, metrics and notify hooks
    /// (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// Interface the router runs on (a Linux interface name).
    pub interface: String,
    /// Virtual Router Identifier, 1..=255.
    pub vrid: u8,
    /// Priority: 1..=254, or 255 for the address owner.
    pub priority: u8,
    /// This router owns the VIPs (priority 255, RFC 5798 §6.1): it becomes master at once
    /// and trackers cannot move it. The config only checks that priority and this flag
    /// agree; the daemon checks at run time that the VIPs are the interface's own addresses.
    pub address_owner: bool,
    /// Advertisement interval. v3: 1..=4095 centiseconds; v2: whole seconds, stored as
    /// seconds * 100.
    pub advert_interval: Centis,
    /// Protocol version (v2 only with IPv4).
    pub version: Version,
    /// Whether a higher-priority backup preempts a lower-priority master (RFC 5798 §6.1
    /// Preempt_Mode). Always true for an address owner.
    pub preempt: bool,
    /// How long to wait before preempting (0 = at once).
    pub preempt_delay: Duration,
    /// The virtual addresses with their prefix length, all of [`Instance::family`].
    /// For IPv6 the first is always the link-local VIP (configured or derived; see the
    /// module docs).
    pub vips: Vec<ipnet::IpNet>,
    /// Address family of the VIPs, the peers and the adverts.
    pub family: Family,
    /// Send adverts to these addresses instead of the multicast group (224.0.0.18 /
    /// ff02::12). Empty = multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// Source address of adverts; `None` = the interface's primary address (IPv6: its
    /// link-local address), chosen at run time.
    pub source_address: Option<IpAddr>,
    /// VRRPv3 over IPv4: include the IPv4 pseudo-header in the checksum when sending
    /// (default true, as keepalived and FRR; false = the RFC 9568 form of Cisco and
    /// Juniper). Both forms are accepted on receive. Always false for v2 (no
    /// pseudo-header) and true for IPv6 (always one).
    pub checksum_pseudo_header: bool,
    /// Gratuitous ARP / NA behaviour.
    pub announce: Announce,
    /// Health checks.
    pub tracks: Vec<CheckSpec>,
    /// Notify hooks.
    pub notify: NotifySpec,
    /// Hold the VIPs only while holding this instance's key in etcd (`arbiter`, default
    /// false; needs `[arbiter]`).
    pub arbiter: bool,
    /// The etcd key (`arbiter-key`); `None` = `<key-prefix>/<name>`.
    pub arbiter_key: Option<String>,
    /// Virtual MAC mode (`virtual-mac`, default false; RFC 5798 §7.3): the VIPs live on
    /// a macvlan with the virtual router MAC `00:00:5e:00:01:XX` (IPv6:
    /// `00:00:5e:00:02:XX`), from which adverts and gratuitous ARPs (unsolicited NAs) are
    /// sent, so clients never have to relearn the VIP's MAC.
    pub virtual_mac: bool,
    /// Peer BFD (`[instance.bfd]`): a backup whose session to the master goes down
    /// takes over at once.
    pub bfd: Option<BfdSpec>,
}

/// `[instance.bfd]`: BFD sessions (RFC 5880 / 5881) to the other routers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdSpec {
    /// The routers to run sessions with (default: `unicast-peers`; required with
    /// multicast). Addresses the adverts come from (IPv6: link-local).
    pub peers: Vec<IpAddr>,
    /// Desired Min TX = Required Min RX (`interval`, default 10 ms, at least 1 ms).
    pub interval: Duration,
    /// Detect Mult (`multiplier`, default 3, 1..=255).
    pub multiplier: u8,
}

/// Instances that change state together (`[[sync-group]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncGroup {
    /// Unique group name.
    pub name: String,
    /// Member instance names (each exists and is in no other group).
    pub instances: Vec<String>,
    /// Hooks run on the group's state changes.
    pub notify: NotifySpec,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name (or whatever `origin` was passed to [`parse`]).
    pub origin: String,
    /// 1-based line; 0 when the problem has no place in the text (file unreadable).
    pub line: usize,
    /// 1-based column in characters; 0 with `line` 0.
    pub col: usize,
    /// Where in the document, e.g. `instance[0].vrid` (empty when unknown).
    pub key_path: String,
    /// What is wrong and what is allowed (one line).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, self.line, self.col, self.message
            )
        }
    }
}

/// All problems found in a configuration file (never empty when returned as an error),
/// in order of position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &origin),
        Err(e) => Err(ConfigErrors(vec![Diagnostic {
            origin,
            line: 0,
            col: 0,
            key_path: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])),
    }
}

/// Parses and validates configuration text; `origin` names it in diagnostics.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    validate::parse(text, origin)
}

/// What `vipd --check` prints: `(true, summary)` for a valid file, `(false, diagnostics)`
/// otherwise. The text ends with a newline.
pub fn check_report(path: &Path) -> (bool, String) {
    match load(path) {
        Ok(config) => {
            let mut out = format!(
                "{}: OK: {} instance(s), {} sync group(s)\n",
                path.display(),
                config.instances.len(),
                config.sync_groups.len()
            );
            for line in config.summary() {
                out.push_str("  ");
                out.push_str(&line);
                out.push('\n');
            }
            for g in &config.sync_groups {
                out.push_str(&format!(
                    "  sync-group {}: {}\n",
                    g.name,
                    g.instances.join(", ")
                ));
            }
            if let Some(a) = &config.arbiter {
                out.push_str(&format!(
                    "  arbiter: etcd {} lease-ttl {} on-loss {}{}{}\n",
                    a.etcd_endpoints.join(","),
                    format_duration(a.lease_ttl),
                    a.on_loss.as_str(),
                    if a.tls.is_some() { " tls" } else { "" },
                    if a.auth.is_some() { " auth" } else { "" },
                ));
                for i in config.instances.iter().filter(|i| i.arbiter) {
                    out.push_str(&format!(
                        "  arbiter {}: key {}\n",
                        i.name,
                        a.key_for(&i.name, i.arbiter_key.as_deref())
                    ));
                }
            }
            (true, out)
        }
        Err(errors) => {
            let n = errors.0.len();
            let mut out = format!("{errors}\n");
            out.push_str(&format!(
                "{}: {n} error{}\n",
                path.display(),
                if n == 1 { "" } else { "s" }
            ));
            (false, out)
        }
    }
}

impl Config {
    /// One line per instance, for `vipd --check`, e.g.
    /// `web: eth0 vrid 51 IPv4 v3 priority 150 interval 100ms preempt multicast vips 192.0.2.100/24 tracks 0`.
    pub fn summary(&self) -> Vec<String> {
        self.instances.iter().map(Instance::summary).collect()
    }
}

impl Instance {
    /// A one-line description (see [`Config::summary`]).
    pub fn summary(&self) -> String {
        let version = match self.version {
            Version::V2 => "v2",
            Version::V3 => "v3",
        };
        let priority = if self.address_owner {
            "priority 255 (address owner)".to_owned()
        } else {
            format!("priority {}", self.priority)
        };
        let preempt = if !self.preempt {
            "no-preempt".to_owned()
        } else if self.preempt_delay.is_zero() {
            "preempt".to_owned()
        } else {
            format!("preempt after {}", format_duration(self.preempt_delay))
        };
        let peers = if self.unicast_peers.is_empty() {
            "multicast".to_owned()
        } else {
            let p: Vec<String> = self.unicast_peers.iter().map(|a| a.to_string()).collect();
            format!("unicast to {}", p.join(","))
        };
        let vips: Vec<String> = self.vips.iter().map(|v| v.to_string()).collect();
        format!(
            "{}: {} vrid {} {} {} {} interval {} {} {} vips {} tracks {}",
            self.name,
            self.interface,
            self.vrid,
            self.family,
            version,
            priority,
            format_duration(self.advert_interval.as_duration()),
            preempt,
            peers,
            vips.join(","),
            self.tracks.len()
        )
    }
}
