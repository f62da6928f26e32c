//! What the scenario runners under `integration/bench` share: their start (namespaces
//! usable, cleanup on Ctrl-C, the versions compared) and running one scenario that may
//! panic without ending the whole run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::{cleanup_on_sigint, crate_bin, require_netns, run_cmd};

/// The start of the runner `name`: `None` when namespaces cannot be used (the runner then
/// returns); else installs the Ctrl-C cleanup, prints `header`, the vipd binary and the
/// keepalived version it compares, and returns the start time.
pub fn start(name: &str, header: &str) -> Option<Instant> {
    if !require_netns(&format!("{name} bench")) {
        return None;
    }
    if let Err(e) = cleanup_on_sigint() {
        eprintln!("{name}: {e}");
    }
    println!("{header}");
    println!(
        "vipd: {}   keepalived: {}",
        crate_bin("vipd", "VIPD_BIN", option_env!("CARGO_BIN_EXE_vipd")).display(),
        run_cmd(&["keepalived", "--version"], None, Duration::from_secs(5))
            .stderr
            .lines()
            .next()
            .unwrap_or("?")
    );
    Some(Instant::now())
}

/// A bad command line: says why (prefixed by the runner's `name`) and exits with status 2.
pub fn usage_error(name: &str, why: &str) -> ! {
    eprintln!("{name}: {why}");
    std::process::exit(2)
}

/// Runs one scenario; a panic in it (its message is already printed) becomes an error.
pub fn guarded<T>(scenario: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(scenario))
        .unwrap_or_else(|_| Err("panicked (see the message above)".to_string()))
}

/// The median, the minimum and the maximum of `v`; `None` when it is empty.
pub fn median_min_max(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let med = match n {
        0 => return None,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    };
    Some((med, s[0], s[n - 1]))
}
