//! Helpers shared by the notify-hook tests: a temp dir, `/bin/sh` hooks, and the `Cap*:`
//! lines a hook or check wrote (also read by `operate`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vipd::track::{Notifier, NotifySpec};

/// A temp dir removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "vipd-notify-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn file(&self) -> PathBuf {
        self.0.join("log")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `/bin/sh -c '{ SCRIPT; } >> FILE' ARGS...` (the log file's path is quoted
/// into the script).
pub fn sh(script: &str, file: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("{{ {script}; }} >> '{}'", file.display()),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// Waits (bounded) until every queued hook has run.
pub async fn settle(n: &Notifier) {
    tokio::time::timeout(Duration::from_secs(10), n.idle())
        .await
        .expect("hooks finish within 10 s");
}

/// The `Cap*:` lines a program copied from its own /proc/self/status, as (set, value).
pub fn cap_sets(lines: &[String]) -> Vec<(String, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?))
        })
        .collect()
}

/// Whether process `pid` still runs: its `/proc/PID/stat` exists and its state (the field
/// after the `)` that closes the command name) is not `Z` (zombie).
pub fn pid_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Hooks for `(state, script)` pairs (`master`, `backup`, `fault`, `any` or `stop`), each a
/// `/bin/sh` script appending to `log` (see [`sh`]), with a 5 s timeout.
pub fn hooks(log: &Path, scripts: &[(&str, &str)]) -> NotifySpec {
    let mut spec = NotifySpec {
        timeout: Duration::from_secs(5),
        ..NotifySpec::default()
    };
    for (state, script) in scripts {
        let hook = Some(sh(script, log, &[]));
        match *state {
            "master" => spec.master = hook,
            "backup" => spec.backup = hook,
            "fault" => spec.fault = hook,
            "any" => spec.any = hook,
            "stop" => spec.stop = hook,
            other => panic!("no hook for the state {other:?}"),
        }
    }
    spec
}
