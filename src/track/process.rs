//! Running a program without a shell, bounded by a timeout (exec checks and
//! notify hooks share this).
//!
//! The child is put in a process group of its own, and on timeout (or when the
//! caller's future is dropped) the whole group gets SIGKILL: a check script
//! that forks `curl` or `sleep` does not leave its grandchildren running or
//! holding the output pipes open.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
/// environment and stdin from /dev/null. Returns when it exits; after
/// `timeout` its process group is killed and [`RunError::Timeout`] returned.
pub(crate) async fn run(
    program: &OsStr,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
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
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    // Declared after `child`, so dropped (group killed) before it.
    let mut group = GroupKill(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let out = spawn_reader(child.stdout.take());
    let err = spawn_reader(child.stderr.take());

    let status = tokio::select! {
        status = child.wait() => {
            group.disarm();
            status.map_err(RunError::Wait)
        }
        () = tokio::time::sleep_until(deadline) => {
            group.kill();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            group.disarm();
            Err(RunError::Timeout(timeout))
        }
    };
    let until = Instant::now() + DRAIN_GRACE;
    let (stdout, stderr) = tokio::join!(collect(out, until), collect(err, until));
    Ok(RunOutput {
        status: status?,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_output_and_status() {
        let out = run(
            OsStr::new("/bin/sh"),
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            &[],
            Duration::from_secs(5),
        )
        .await
        .expect("runs");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = run(
            OsStr::new("/bin/sh"),
            &["-c".into(), "head -c 100000 /dev/zero".into()],
            &[],
            Duration::from_secs(5),
        )
        .await
        .expect("runs");
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
    }

    #[tokio::test]
    async fn timeout_returns_promptly_when_a_grandchild_holds_the_pipes() {
        let start = std::time::Instant::now();
        // The shell forks `sleep` (not exec: two commands), which inherits stdout.
        let r = run(
            OsStr::new("/bin/sh"),
            &["-c".into(), "sleep 10; echo late".into()],
            &[],
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(r, Err(RunError::Timeout(_))), "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn timeout_kills_background_members_of_the_group() {
        let dir = std::env::temp_dir().join(format!("vipd-track-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidfile = dir.join("pid");
        let script = format!("sleep 30 & echo $! > '{}'; wait", pidfile.display());
        let r = run(
            OsStr::new("/bin/sh"),
            &["-c".into(), script],
            &[],
            Duration::from_millis(300),
        )
        .await;
        assert!(matches!(r, Err(RunError::Timeout(_))), "{r:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid written")
            .trim()
            .parse()
            .expect("a pid");
        let _ = std::fs::remove_dir_all(&dir);
        // Gone, or a zombie waiting for init: either way no longer running.
        let mut running = true;
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => running = false,
                Ok(s) => {
                    running = !s
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                }
            }
            if !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running, "background sleep {pid} survived the timeout");
    }

    #[tokio::test]
    async fn env_is_passed() {
        let out = run(
            OsStr::new("/bin/sh"),
            &["-c".into(), "printf %s \"$VIPD_X\"".into()],
            &[("VIPD_X", "a b")],
            Duration::from_secs(5),
        )
        .await
        .expect("runs");
        assert_eq!(out.stdout, b"a b");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let r = run(
            OsStr::new("/nonexistent/vipd-test"),
            &[],
            &[],
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(r, Err(RunError::Spawn(_))), "{r:?}");
    }
}
