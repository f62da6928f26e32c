//! The smallest topology, for the socket-level `net` tests: two namespaces joined by a
//! veth pair (no switch, no agents), deleted again on drop, and a way to run async code
//! inside one of them ([`spawn_in`], [`run_in`]). Formerly `tests/netns_util`.
//!
//! Only documentation addresses are used (192.0.2.0/24, 2001:db8::/64).

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::topology::{destroy_ns, NS_PREFIX};
use super::wait_until;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The interface name of the veth end in each namespace.
pub const IF: &str = "veth0";

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces `a` and `b`, each with a `veth0`, joined to each other.
/// `a` has 192.0.2.1/24 and 2001:db8::1/64, `b` has 192.0.2.2/24 and 2001:db8::2/64.
pub struct Pair {
    pub a: String,
    pub b: String,
}

impl Pair {
    /// Creates the namespaces and waits (bounded) until both link-local addresses have
    /// finished duplicate address detection.
    pub fn create() -> Pair {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Under the harness prefix, so a later run removes them if this one is killed.
        let a = format!("{NS_PREFIX}{pid}-pair{n}-a");
        let b = format!("{NS_PREFIX}{pid}-pair{n}-b");
        ip(&["netns", "add", &a]);
        // From here on, Drop cleans up whatever was created.
        let pair = Pair { a, b };
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "-n", &pair.a, "link", "add", IF, "type", "veth", "peer", "name", IF, "netns", &pair.b,
        ]);
        for (ns, v4, v6) in [
            (&pair.a, "192.0.2.1/24", "2001:db8::1/64"),
            (&pair.b, "192.0.2.2/24", "2001:db8::2/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", IF]);
            ip(&["-n", ns, "addr", "add", v6, "dev", IF, "nodad"]);
            ip(&["-n", ns, "link", "set", IF, "up"]);
        }
        for ns in [&pair.a, &pair.b] {
            let ready = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                let out = ip(&["-n", ns, "-6", "addr", "show", "dev", IF, "scope", "link"]);
                out.contains("fe80::") && !out.contains("tentative")
            });
            assert!(ready, "link-local address in {ns} stayed tentative");
        }
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // `ip netns del` does not end processes inside: destroy_ns ends them first, by pid.
        for ns in [&self.a, &self.b] {
            destroy_ns(ns);
        }
    }
}

/// Runs `f` on a new thread that has entered namespace `ns`, inside a current-thread
/// tokio runtime built on that thread (so every socket it opens lives in `ns`).
pub fn spawn_in<F, Fut, R>(ns: &str, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R>,
    R: Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        // SAFETY: plain system call on a descriptor we own; it affects this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        drop(file);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a tokio runtime");
        rt.block_on(f())
    })
}

/// [`spawn_in`] and wait for the result (re-raising a panic of the thread).
pub fn run_in<F, Fut, R>(ns: &str, f: F) -> R
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R>,
    R: Send + 'static,
{
    match spawn_in(ns, f).join() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}
