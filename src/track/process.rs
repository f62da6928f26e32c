//! Running a program without a shell, bounded by a timeout (exec checks and
//! notify hooks share this).
//!
//! - The program starts without the daemon's capabilities unless the caller
//!   asks to keep them ([`Capabilities`]): the bounding, ambient and inheritable
//!   sets are emptied in the child before `exec` (see [`super::sys`]), so a hook
//!   run by a vipd holding CAP_NET_ADMIN and CAP_NET_RAW (or by a root vipd)
//!   cannot change addresses or send raw packets.
//! - The child is put in a process group of its own, and when it ends, on
//!   timeout, or when the caller's future is dropped the whole group gets
//!   SIGKILL: a check script that backgrounds `curl` or `sleep` does not leave
//!   its grandchildren running or holding the output pipes open. (A program
//!   that wants something to outlive it must detach on purpose: `setsid`, or
//!   better `systemd-run`.) The group is killed while the exited child is still
//!   unreaped, learned from a pidfd, so its pid (the group id) cannot have been
//!   reused by then.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::sys;

/// Whether a program keeps the daemon's capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capabilities {
    /// Start it with empty bounding, ambient and inheritable sets (the default).
    Drop,
    /// Start it with the daemon's sets (`keep-capabilities = true`).
    Keep,
}

impl Capabilities {
    /// `Keep` when `keep` is true.
    pub(crate) fn keep_if(keep: bool) -> Self {
        if keep {
            Capabilities::Keep
        } else {
            Capabilities::Drop
        }
    }
}

/// Keep at most this much of each of stdout and stderr (the rest is read and
/// discarded so the child never blocks on a full pipe).
const OUTPUT_CAP: usize = 4096;

/// After the child exits (or is killed), wait this long at most for its
/// output pipes to reach end of file.
const DRAIN_GRACE: Duration = Duration::from_millis(100);

/// Bound on reaping a child that was just sent SIGKILL.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// What a finished program left behind.
#[derive(Debug)]
pub(crate) struct RunOutput {
    /// How it exited.
    pub(crate) status: ExitStatus,
    /// The first [`OUTPUT_CAP`] bytes of stdout.
    pub(crate) stdout: Vec<u8>,
    /// The first [`OUTPUT_CAP`] bytes of stderr.
    pub(crate) stderr: Vec<u8>,
}

/// Why a program could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The program could not be started.
    #[error("cannot start: {0}")]
    Spawn(#[source] std::io::Error),
    /// Waiting for the program failed.
    #[error("cannot wait for it: {0}")]
    Wait(#[source] std::io::Error),
    /// It ran past its timeout and was killed.
    #[error("killed after the {0:?} timeout")]
    Timeout(Duration),
}

/// Sends SIGKILL to the child's process group when dropped while armed. Armed
/// only while the child is not yet reaped, so its pid (= the group id) cannot
/// have been reused.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pid) = self.0 {
            // ESRCH (group already gone) is fine.
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_capped<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    r: Option<R>,
) -> Option<JoinHandle<Vec<u8>>> {
    r.map(|r| tokio::spawn(read_capped(r)))
}

async fn collect(h: Option<JoinHandle<Vec<u8>>>, until: Instant) -> Vec<u8> {
    let Some(mut h) = h else { return Vec::new() };
    match tokio::time::timeout_at(until, &mut h).await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            // A process outside the group still holds the pipe: give up on it.
            h.abort();
            Vec::new()
        }
    }
}

/// Run `program args...` (no shell) with `env` added to the inherited
/// environment and stdin from /dev/null, without the daemon's capabilities unless
/// `caps` is [`Capabilities::Keep`]. Returns when it exits (its process group is
/// then killed); after `timeout` the group is killed and [`RunError::Timeout`]
/// returned.
pub(crate) async fn run(
    program: &OsStr,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
    caps: Capabilities,
) -> Result<RunOutput, RunError> {
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if caps == Capabilities::Drop {
        sys::drop_capabilities_before_exec(&mut cmd);
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) && caps == Capabilities::Drop {
            RunError::Spawn(std::io::Error::new(
                e.kind(),
                format!("{e}: cannot drop capabilities (a root vipd needs CAP_SETPCAP to empty the bounding set); set keep-capabilities = true to run it with the daemon's capabilities"),
            ))
        } else {
            RunError::Spawn(e)
        }
    })?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    // Declared after `child`, so dropped (group killed) before it.
    let mut group = GroupKill(pid);
    // Readable once the child has exited, before it is reaped. Without one (a kernel
    // before 5.3), the group is killed just after reaping instead.
    let pidfd = pid.and_then(|p| {
        sys::pidfd_open(p.as_raw())
            .and_then(sys::register_pidfd)
            .ok()
    });
    let out = spawn_reader(child.stdout.take());
    let err = spawn_reader(child.stderr.take());

    let ended = tokio::time::timeout_at(deadline, exited(&mut child, pidfd.as_ref())).await;
    // Whatever the child left behind in its group goes now: on timeout the child
    // too, after a normal exit its background processes.
    group.kill();
    let status = match ended {
        Ok(Ok(())) => child.wait().await.map_err(RunError::Wait),
        Ok(Err(e)) => Err(RunError::Wait(e)),
        Err(_) => {
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            Err(RunError::Timeout(timeout))
        }
    };
    group.disarm();
    let until = Instant::now() + DRAIN_GRACE;
    let (stdout, stderr) = tokio::join!(collect(out, until), collect(err, until));
    Ok(RunOutput {
        status: status?,
        stdout,
        stderr,
    })
}

/// Returns once `child` has exited: without reaping it when there is a pidfd.
async fn exited(
    child: &mut Child,
    pidfd: Option<&AsyncFd<std::os::fd::OwnedFd>>,
) -> std::io::Result<()> {
    if let Some(fd) = pidfd {
        if fd.readable().await.is_ok() {
            return Ok(());
        }
    }
    child.wait().await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with `/bin/sh -c`.
    async fn sh(
        script: &str,
        env: &[(&str, &str)],
        timeout: Duration,
        caps: Capabilities,
    ) -> Result<RunOutput, RunError> {
        run(
            OsStr::new("/bin/sh"),
            &["-c".into(), script.into()],
            env,
            timeout,
            caps,
        )
        .await
    }

    /// Runs `script` with the environment `env`, 5 s and no capabilities; it must start.
    async fn sh_ok(script: &str, env: &[(&str, &str)]) -> RunOutput {
        sh(script, env, Duration::from_secs(5), Capabilities::Drop)
            .await
            .expect("runs")
    }

    /// A file into which a test script writes the pid of a background child.
    struct PidFile {
        dir: std::path::PathBuf,
    }

    impl PidFile {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("vipd-track-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            PidFile { dir }
        }

        /// `sleep SECS` in the background, its pid written here.
        fn background_sleep(&self, secs: u32) -> String {
            format!(
                "sleep {secs} & echo $! > '{}'",
                self.dir.join("pid").display()
            )
        }

        /// The pid written; removes the directory.
        fn take(self) -> i32 {
            let pid = std::fs::read_to_string(self.dir.join("pid"))
                .expect("pid written")
                .trim()
                .parse()
                .expect("a pid");
            let _ = std::fs::remove_dir_all(&self.dir);
            pid
        }
    }

    /// Whether `pid` is still running (gone, or a zombie waiting for its parent, is not).
    fn running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(s) => !s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
        }
    }

    /// Whether `pid` is still running after up to a second of waiting for it to end.
    fn still_running_after_a_second(pid: i32) -> bool {
        for _ in 0..50 {
            if !running(pid) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        running(pid)
    }

    /// Asserts that less than `bound` passed since `start`.
    fn assert_took_less_than(start: std::time::Instant, bound: Duration) {
        let took = start.elapsed();
        assert!(took < bound, "took {took:?}, more than {bound:?}");
    }

    #[tokio::test]
    async fn captures_output_and_status() {
        let out = sh_ok("echo out; echo err >&2; exit 3", &[]).await;
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = sh_ok("head -c 100000 /dev/zero", &[]).await;
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
    }

    #[tokio::test]
    async fn timeout_returns_promptly_when_a_grandchild_holds_the_pipes() {
        let start = std::time::Instant::now();
        // The shell forks `sleep` (not exec: two commands), which inherits stdout.
        let r = sh(
            "sleep 10; echo late",
            &[],
            Duration::from_millis(200),
            Capabilities::Drop,
        )
        .await;
        assert!(matches!(r, Err(RunError::Timeout(_))), "{r:?}");
        assert_took_less_than(start, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn timeout_kills_background_members_of_the_group() {
        let pidfile = PidFile::new("pg");
        let script = format!("{}; wait", pidfile.background_sleep(30));
        let r = sh(&script, &[], Duration::from_millis(300), Capabilities::Drop).await;
        assert!(matches!(r, Err(RunError::Timeout(_))), "{r:?}");
        let pid = pidfile.take();
        // Gone, or a zombie waiting for init: either way no longer running.
        assert!(
            !still_running_after_a_second(pid),
            "background sleep {pid} survived the timeout"
        );
    }

    /// The `Cap*:` lines of the program's own /proc/self/status, as numbers.
    async fn caps_seen_by_a_program(caps: Capabilities) -> Result<Vec<(String, u64)>, RunError> {
        let out = sh(
            "grep ^Cap /proc/self/status",
            &[],
            Duration::from_secs(5),
            caps,
        )
        .await?;
        assert!(out.status.success(), "{out:?}");
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?))
            })
            .collect())
    }

    fn set_of(caps: &[(String, u64)], name: &str) -> u64 {
        caps.iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name} in {caps:?}"))
            .1
    }

    const CAP_SETPCAP: u32 = 8;
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    /// As root with ambient CAP_NET_ADMIN + CAP_NET_RAW on top of root's full sets (like
    /// the packaged unit), the capability sets of a program started with `caps`; `None`
    /// (the test is skipped) when not root.
    async fn caps_under_the_packaged_unit(caps: Capabilities) -> Option<Vec<(String, u64)>> {
        if !is_root() {
            eprintln!("skipped: needs root (capabilities to drop or keep)");
            return None;
        }
        sys::testing::raise_ambient(&[CAP_NET_ADMIN, CAP_NET_RAW]).expect("raise ambient");
        Some(caps_seen_by_a_program(caps).await.expect("runs"))
    }

    // Without the fix the program shows all of root's capabilities.
    #[tokio::test]
    async fn programs_start_without_the_daemons_capabilities() {
        let Some(caps) = caps_under_the_packaged_unit(Capabilities::Drop).await else {
            return;
        };
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(set_of(&caps, set), 0, "{set} in {caps:?}");
        }
    }

    #[tokio::test]
    async fn keep_capabilities_passes_them_on() {
        let Some(caps) = caps_under_the_packaged_unit(Capabilities::Keep).await else {
            return;
        };
        let net = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);
        assert_eq!(set_of(&caps, "CapAmb") & net, net, "{caps:?}");
        assert_eq!(set_of(&caps, "CapEff") & net, net, "{caps:?}");
    }

    // A root daemon without CAP_SETPCAP cannot empty the bounding set, so the program
    // would get every capability in it: it is not started.
    #[tokio::test]
    async fn a_root_daemon_that_cannot_empty_the_bounding_set_starts_nothing() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        sys::testing::lower_effective(CAP_SETPCAP).expect("lower CAP_SETPCAP");
        let refused = caps_seen_by_a_program(Capabilities::Drop).await;
        let kept = caps_seen_by_a_program(Capabilities::Keep).await;
        sys::testing::raise_effective(CAP_SETPCAP).expect("raise CAP_SETPCAP");
        match refused {
            Err(RunError::Spawn(e)) => {
                assert!(e.to_string().contains("keep-capabilities = true"), "{e}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(kept.is_ok(), "{kept:?}");
    }

    #[tokio::test]
    async fn background_children_are_killed_when_the_program_exits() {
        let pidfile = PidFile::new("bg");
        // Exits at once, leaving `sleep 1000` behind (holding stdout too).
        let script = pidfile.background_sleep(1000);
        let start = std::time::Instant::now();
        let out = sh(&script, &[], Duration::from_secs(20), Capabilities::Drop)
            .await
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        let pid = pidfile.take();
        let alive = still_running_after_a_second(pid);
        if alive {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        assert!(!alive, "background sleep {pid} outlived its parent");
        assert_took_less_than(start, Duration::from_secs(10));
    }

    #[tokio::test]
    async fn env_is_passed() {
        let out = sh_ok("printf %s \"$VIPD_X\"", &[("VIPD_X", "a b")]).await;
        assert_eq!(out.stdout, b"a b");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let r = run(
            OsStr::new("/nonexistent/vipd-test"),
            &[],
            &[],
            Duration::from_secs(1),
            Capabilities::Drop,
        )
        .await;
        assert!(matches!(r, Err(RunError::Spawn(_))), "{r:?}");
    }
}
