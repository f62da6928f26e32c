//! The network-namespace harness: proves takeovers from a client's point of view.
//!
//! Each integration test that needs real kernels includes it with `mod harness;`. It builds a
//! small LAN out of network namespaces (see `integration/README.md` for the picture):
//!
//! ```text
//!            sw (bridge br0 [+ br1 for the optional second LAN])
//!      p-lb1 /    p-lb2 |     p-client \      p-rogue (optional)
//!    lb1:eth0      lb2:eth0       client:eth0      rogue:eth0
//!   192.0.2.11    192.0.2.12      192.0.2.50       192.0.2.66
//! ```
//!
//! * [`Topology`] creates and tears down the namespaces (Drop, also on panic), runs processes
//!   inside them ([`Topology::spawn`]), and controls the switch: cut a link, partition VRRP
//!   between two ports, random loss (nftables `bridge` table in `sw`).
//! * [`Agent`] starts, stops (SIGTERM), crashes and restarts an agent: vipd or keepalived.
//! * [`Probe`] / [`ProbeReport`] run `examples/vipnet.rs` on the client against the VIP and
//!   measure outages, who answered, and when.
//! * [`keepalived_conf`] writes keepalived configurations for interop tests and benchmarks.
//!
//! * [`pair::Pair`]: the smallest topology (two namespaces, one veth), for socket tests.
//! * [`VipdInstance`] / [`vipd_conf`]: the one vipd configuration builder.
//! * Waiters, bounded in count and time: [`wait_until`], [`Topology::wait_sole_holder`],
//!   [`Topology::wait_holds`], [`wait_vipd_state`], [`Agent::wait_log`].
//! * [`timers`]: RFC 5798 §6.1 timers, from `vipd::vrrp` (not recomputed here).
//! * [`tcpdump`]: [`Topology::start_tcpdump`] and readers of its text (a takeover as the
//!   wire shows it: the old master's priority-0 adverts, the new one's gratuitous ARPs).
//! * [`bench`]: what the scenario runners under `integration/bench` share (their start,
//!   a scenario that may panic).
//!
//! A namespace test starts with `let _g = netns_test!();` (or [`netns_guard`] when the name
//! is not the test function's; `let (_g, test) = netns_test!(@name);` when the test uses its
//! own name in messages): it skips the test when namespaces cannot be used (not root),
//! panics instead when `VIPD_REQUIRE_NETNS=1`, and otherwise holds the test binary's
//! [`serial`] lock so that only one topology runs at a time.
#![allow(dead_code, unused_imports, unused_macros)]

/// Builder methods of the configuration builders that each set one field of the same name:
/// `setters! { /// Sets the version.\n version: u8, }` is `pub fn version(mut self, v: u8)
/// -> Self` (the value converted with `Into`, so `&str` fills a `String`).
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $t:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, v: $t) -> Self {
                self.$field = v.into();
                self
            }
        )*
    };
}

pub mod agent;
pub mod bench;
pub mod etcd;
pub mod frr;
pub mod keepalived;
pub mod pair;
pub mod prelude;
pub mod probe;
pub mod process;
pub mod tcpdump;
pub mod timers;
pub mod topology;
pub mod vipd;
mod wait;

pub use agent::{Agent, AgentKind};
pub use keepalived::{keepalived_conf, keepalived_config_complaints, KeepalivedInstance};
pub use probe::{Outage, Probe, ProbeOpts, ProbeReport, Record, RESPONDER_PORT};
pub use process::{clk_tck, proc_usage, process_family, run_cmd, CmdOutput, Proc, Sleeper};
pub use topology::{cleanup_on_sigint, Host, Lan, Topology, TopologyOpts, NS_PREFIX};

pub use self::vipd::{
    craft, craft_spawn, dropped, drops_by_reason, expect_vipd_state, flood_args, instance_field,
    instance_status, metric_sum, metrics_text, text_contains, tshark_fields, vipctl, vipctl_ok,
    vipd_conf, vipd_socket, vipd_state, vipd_status, wait_vipd_state, Capture, VipdConfig,
    VipdInstance, METRICS_PORT,
};

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Namespace tests of one test binary run one at a time: short VRRP timers on a loaded
/// machine should not compete with another test's topology.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the test binary's serial lock (a panicked holder does not poison it for the rest).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The preamble of a namespace test named `test`: `None` when it must skip (see
/// [`require_netns`]), else the [`serial`] guard, to hold until the test ends.
pub fn netns_guard(test: &str) -> Option<MutexGuard<'static, ()>> {
    require_netns(test).then(serial)
}

/// The last path segment of `type_name` with the trailing `::here` (the probe function
/// [`netns_test!`] declares) removed: the name of the test function.
pub fn test_fn_name(type_name: &'static str) -> &'static str {
    let path = type_name.strip_suffix("::here").unwrap_or(type_name);
    path.rsplit("::").next().unwrap_or(path)
}

/// `let _g = netns_test!();` at the top of a namespace test: returns from the test (skip)
/// when namespaces cannot be used, else holds the serial lock (see [`netns_guard`]). The
/// test's own function name is used in the skip message. `netns_test!("name")` names it;
/// `let (_g, test) = netns_test!(@name);` also gives the test its own name (for messages).
macro_rules! netns_test {
    () => {
        $crate::harness::netns_test!(@name).0
    };
    (@name) => {{
        fn here() {}
        let name = $crate::harness::test_fn_name(std::any::type_name_of_val(&here));
        ($crate::harness::netns_test!(name), name)
    }};
    ($name:expr) => {
        match $crate::harness::netns_guard($name) {
            Some(guard) => guard,
            None => return,
        }
    };
}
pub(crate) use netns_test;

/// Returns `true` when namespace tests can run (we are root). When they cannot, prints why
/// and returns `false` so the test can return early; under `VIPD_REQUIRE_NETNS=1` it panics
/// instead, so CI never mistakes a skip for a pass.
pub fn require_netns(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let why = if euid != 0 {
        Some(format!("not root (euid {euid})"))
    } else if which("ip").is_none() || which("nft").is_none() {
        Some("`ip` or `nft` not found in PATH".to_string())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            if std::env::var("VIPD_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("{test}: namespace test cannot run ({why}) but VIPD_REQUIRE_NETNS=1");
            }
            eprintln!("SKIP {test}: namespace test needs root ({why}); set VIPD_REQUIRE_NETNS=1 to make this a failure");
            false
        }
    }
}

/// Finds an executable in `PATH` (also `/usr/sbin`, `/sbin`, where iproute2 and keepalived live).
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| std::path::Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

/// The last `n` lines of `s` (of a log, for a failure message).
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `CLOCK_MONOTONIC` now, as a duration since boot: the time axis the probe's records use
/// (every network namespace shares this clock), so a test can place its events on it.
pub fn mono_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Polls `cond` every `step` until it returns true or `timeout` passes. Bounded in time and in
/// count (at most `timeout / step + 2` calls). Returns whether the condition became true.
pub fn wait_until(timeout: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let step = step.max(Duration::from_millis(1));
    let max_iters = (timeout.as_nanos() / step.as_nanos()) as u64 + 2;
    let deadline = Instant::now() + timeout;
    for _ in 0..max_iters {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(step.min(deadline - now));
    }
    cond()
}

/// `target/<profile>` of the running executable: tests are
/// `target/<profile>/deps/<name>-<hash>`, examples `target/<profile>/examples/<name>`.
fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|d| d.parent())
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

/// The `vipnet` example binary (responder and probe), next to the test executable:
/// `target/<profile>/examples/vipnet` (`cargo test` builds examples).
pub fn vipnet_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("VIPNET_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = profile_dir();
    let candidates = [
        profile_dir.join("examples").join("vipnet"),
        exe.parent().unwrap_or(&profile_dir).join("vipnet"),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "vipnet example binary not found (looked at {candidates:?}); build it with \
         `cargo build --example vipnet` or set VIPNET_BIN"
    );
}

/// A binary of this crate (`vipd`, `vipctl`): `$<env_var>` if set, else `compiled_in` (pass
/// `option_env!("CARGO_BIN_EXE_<name>")`: set when building integration tests, not examples),
/// else `target/<profile>/<name>` next to the running test or example executable.
pub fn crate_bin(name: &str, env_var: &str, compiled_in: Option<&str>) -> std::path::PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return p.into();
    }
    if let Some(p) = compiled_in {
        return p.into();
    }
    let p = profile_dir().join(name);
    if !p.is_file() {
        panic!(
            "{name} binary not found at {}; build it with `cargo build --bins` or set {env_var}",
            p.display()
        );
    }
    p
}
