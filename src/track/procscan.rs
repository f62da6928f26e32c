//! `process` checks: count the running processes that match a [`ProcessMatch`].
//!
//! One probe reads `/proc/[0-9]*/{stat,cmdline}` once (a bounded scan: at most
//! [`MAX_PROCS`] entries), skipping zombies and processes that exit while being
//! read. The probe runs on a blocking thread under the check's timeout, so a slow
//! `/proc` never stalls the runtime. The check is polled at its `interval` (choose
//! a short one, e.g. 500 ms, for a fast reaction): keepalived listens to the
//! kernel's process-events connector instead, which needs `CAP_NET_ADMIN` and a
//! netlink multicast subscription per daemon; a scan of a few hundred processes
//! costs well under a millisecond, so polling was chosen for simplicity.
//!
//! Matching ([`matches`]) is pure and unit-tested:
//! - the name matches the process name (`comm`, which the kernel truncates to 15
//!   bytes: a longer name must also equal the file name of `argv[0]`), or
//!   `argv[0]`, or the file name of `argv[0]` (`/usr/sbin/haproxy` matches
//!   `haproxy`). It is an exact comparison, not a pattern: `ssh` does not match
//!   `sshd` (as keepalived, unlike `pgrep`);
//! - with `args`, the arguments after `argv[0]` are compared as [`ArgsMatch`]
//!   says.

use std::path::Path;

use super::spec::{ArgsMatch, ProcessMatch};

/// Most `/proc` entries one probe looks at.
pub const MAX_PROCS: usize = 100_000;

/// What one process looks like to a `process` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// `/proc/PID/comm` (the kernel's process name, at most 15 bytes).
    pub comm: String,
    /// `/proc/PID/cmdline` split at NUL (empty for kernel threads).
    pub argv: Vec<String>,
}

/// Whether process `p` matches `m` (the count bounds are not looked at).
pub fn matches(m: &ProcessMatch, p: &ProcInfo) -> bool {
    let argv0 = p.argv.first().map(String::as_str).unwrap_or("");
    let base = Path::new(argv0)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    let comm_ok = if m.name.len() > 15 {
        // comm is truncated: it only confirms what argv[0] says.
        m.name.as_bytes().get(..15) == Some(p.comm.as_bytes()) && base == m.name
    } else {
        p.comm == m.name
    };
    let name_ok = comm_ok || (!argv0.is_empty() && (argv0 == m.name || base == m.name));
    if !name_ok {
        return false;
    }
    let Some(want) = &m.args else {
        return true;
    };
    let have = p.argv.get(1..).unwrap_or(&[]);
    match m.args_match {
        ArgsMatch::Exact => have == want.as_slice(),
        ArgsMatch::Partial => have.len() >= want.len() && have[..want.len()] == want[..],
        ArgsMatch::Initial => {
            if have.len() < want.len() {
                return false;
            }
            match want.split_last() {
                None => true,
                Some((last, first)) => {
                    have[..first.len()] == *first && have[first.len()].starts_with(last.as_str())
                }
            }
        }
    }
}

/// Whether `count` matching processes make the check healthy.
pub fn count_ok(m: &ProcessMatch, count: u32) -> bool {
    count >= m.min_count && m.max_count.is_none_or(|max| count <= max)
}

/// Reads one process; `None` for a zombie or one that vanished.
fn read_proc(dir: &Path) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // pid (comm) state ...: comm may contain ')' and spaces; the state follows the last ')'.
    let close = stat.rfind(')')?;
    let state = stat[close + 1..].split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
    let argv = cmdline
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Some(ProcInfo {
        comm: comm.trim_end_matches('\n').to_string(),
        argv,
    })
}

/// Counts the running processes under `proc_root` (normally `/proc`) that match `m`.
pub fn count(m: &ProcessMatch, proc_root: &Path) -> std::io::Result<u32> {
    let mut n = 0u32;
    for entry in std::fs::read_dir(proc_root)?.take(MAX_PROCS) {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let is_pid = name
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        if let Some(p) = read_proc(&entry.path()) {
            if matches(m, &p) {
                n = n.saturating_add(1);
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, args: Option<&[&str]>, how: ArgsMatch) -> ProcessMatch {
        ProcessMatch {
            name: name.into(),
            args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
            args_match: how,
            min_count: 1,
            max_count: None,
        }
    }

    fn p(comm: &str, argv: &[&str]) -> ProcInfo {
        ProcInfo {
            comm: comm.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn name_matches_comm_argv0_or_its_file_name() {
        let h = m("haproxy", None, ArgsMatch::Exact);
        assert!(matches(&h, &p("haproxy", &[])));
        assert!(matches(
            &h,
            &p("haproxy", &["/usr/sbin/haproxy", "-f", "x"])
        ));
        // A renamed thread (comm changed) still matches by argv[0].
        assert!(matches(&h, &p("worker", &["/usr/sbin/haproxy"])));
        assert!(matches(
            &m("/usr/sbin/haproxy", None, ArgsMatch::Exact),
            &p("haproxy", &["/usr/sbin/haproxy"])
        ));
    }

    #[test]
    fn name_is_exact_not_a_pattern() {
        let ssh = m("ssh", None, ArgsMatch::Exact);
        assert!(!matches(&ssh, &p("sshd", &["/usr/sbin/sshd", "-D"])));
        assert!(!matches(&ssh, &p("sshx", &[])));
    }

    #[test]
    fn long_names_need_argv0_because_comm_is_truncated() {
        let long = m("a-very-long-daemon-name", None, ArgsMatch::Exact);
        assert!(matches(
            &long,
            &p("a-very-long-dae", &["/opt/a-very-long-daemon-name"])
        ));
        // Same 15-byte prefix, another program.
        assert!(!matches(
            &long,
            &p("a-very-long-dae", &["/opt/a-very-long-daemon-other"])
        ));
    }

    #[test]
    fn exact_args() {
        let w = m("nginx", Some(&["-c", "/etc/a.conf"]), ArgsMatch::Exact);
        assert!(matches(&w, &p("nginx", &["nginx", "-c", "/etc/a.conf"])));
        assert!(!matches(
            &w,
            &p("nginx", &["nginx", "-c", "/etc/a.conf", "-g"])
        ));
        assert!(!matches(&w, &p("nginx", &["nginx", "-c"])));
        // No arguments wanted: a process with arguments does not match.
        let none = m("nginx", Some(&[]), ArgsMatch::Exact);
        assert!(matches(&none, &p("nginx", &["nginx"])));
        assert!(!matches(&none, &p("nginx", &["nginx", "-t"])));
    }

    #[test]
    fn partial_args_are_a_prefix_of_the_arguments() {
        let w = m("nginx", Some(&["-c", "/etc/a.conf"]), ArgsMatch::Partial);
        assert!(matches(
            &w,
            &p("nginx", &["nginx", "-c", "/etc/a.conf", "-g", "x"])
        ));
        assert!(!matches(&w, &p("nginx", &["nginx", "-c", "/etc/a.conf2"])));
    }

    #[test]
    fn initial_args_let_the_last_one_be_longer() {
        let w = m("nginx", Some(&["-c", "/etc/a"]), ArgsMatch::Initial);
        assert!(matches(&w, &p("nginx", &["nginx", "-c", "/etc/a.conf"])));
        assert!(!matches(&w, &p("nginx", &["nginx", "-x", "/etc/a.conf"])));
        assert!(!matches(&w, &p("nginx", &["nginx", "-c"])));
    }

    #[test]
    fn count_bounds() {
        let mut w = m("x", None, ArgsMatch::Exact);
        assert!(!count_ok(&w, 0));
        assert!(count_ok(&w, 1));
        assert!(count_ok(&w, 100));
        w.min_count = 2;
        w.max_count = Some(3);
        assert!(!count_ok(&w, 1));
        assert!(count_ok(&w, 2));
        assert!(count_ok(&w, 3));
        assert!(!count_ok(&w, 4));
        // "Not running at all" (keepalived quorum_max 0).
        w.min_count = 0;
        w.max_count = Some(0);
        assert!(count_ok(&w, 0));
        assert!(!count_ok(&w, 1));
    }

    #[test]
    fn scan_finds_this_test_process_and_not_a_made_up_one() {
        let me = std::fs::read_to_string("/proc/self/comm").expect("comm");
        let mine = m(me.trim_end(), None, ArgsMatch::Exact);
        assert!(count(&mine, Path::new("/proc")).expect("scan") >= 1);
        let nobody = m("vipd-no-such-process-xyz", None, ArgsMatch::Exact);
        assert_eq!(count(&nobody, Path::new("/proc")).expect("scan"), 0);
    }

    #[test]
    fn scan_of_a_missing_root_is_an_error() {
        let w = m("x", None, ArgsMatch::Exact);
        assert!(count(&w, Path::new("/nonexistent/vipd-proc")).is_err());
    }
}
