//! Notify hooks: programs run on state changes, one at a time, in order, off
//! the caller's task.
//!
//! ```text
//!   driver ── notify() ──> queue (bounded, drop-oldest) ──> worker task ──> hook, hook, ...
//! ```
//!
//! Each [`Notifier`] (one per instance, one per sync group) owns a queue and a
//! worker task. [`Notifier::notify`] only pushes onto the queue, so it never
//! blocks and never fails. The worker runs each hook without a shell, with
//! `VIPD_INSTANCE`, `VIPD_STATE` and `VIPD_REASON` added to the environment and
//! without the daemon's capabilities (unless [`NotifySpec::keep_capabilities`]),
//! kills what it left running in its process group when it exits, kills it
//! (and its process group) after [`NotifySpec::timeout`], and logs a
//! failure (cannot start, non-zero exit, timeout) at WARN naming the program.
//!
//! For one state change the state's own hook runs first, then the `any` hook
//! with `INSTANCE STATE REASON` appended to its arguments. When an instance
//! stops, its `stop` hook runs (last, after the hooks of its final transition).
//!
//! The queue holds at most [`QUEUE_CAP`] hooks; when hooks are slower than
//! state changes for that long, the *oldest* pending hook is dropped (with a
//! WARN), so the hooks of the latest state always run.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::process::{self, Capabilities, RunError};
use super::spec::NotifySpec;

/// Most hooks waiting to run per notifier.
pub const QUEUE_CAP: usize = 64;

/// One hook to run.
#[derive(Debug)]
struct Job {
    /// `master`, `backup`, `fault` or `any` (for logs).
    hook: &'static str,
    program: String,
    args: Vec<String>,
    instance: String,
    state: String,
    reason: String,
    /// `VIPD_FENCING_TOKEN` (arbiter instances).
    fencing_token: Option<i64>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Job>,
    fencing_token: Option<i64>,
    running: bool,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the worker: a job was queued or the notifier was dropped.
    wake: Notify,
    /// Wakes [`Notifier::idle`] waiters: the queue ran empty.
    idle: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the notify hooks of one instance or sync group. Dropping it lets the
/// hooks already queued finish (each still bounded by its timeout), then the
/// worker ends.
pub struct Notifier {
    spec: NotifySpec,
    shared: Arc<Shared>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start the worker for `spec`. Must be called inside a tokio runtime.
    pub fn new(spec: NotifySpec) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(worker(
            Arc::clone(&shared),
            spec.timeout,
            Capabilities::keep_if(spec.keep_capabilities),
        ));
        Notifier { spec, shared }
    }

    /// The hooks this notifier runs (for comparing configs on reload).
    pub fn spec(&self) -> &NotifySpec {
        &self.spec
    }

    /// Queue the hooks for `state` (`"master"`, `"backup"` or `"fault"`; any
    /// other state runs only the `any` hook): the state's hook, then `any` with
    /// `instance state reason` appended. Returns at once. `"stop"` (the instance
    /// stops) runs only the `stop` hook, with `VIPD_STATE=stop`.
    ///
    /// When a split brain heals and this node stays master, call it again with
    /// `"master"` and a reason that says so (e.g. `"split brain healed: still
    /// master"`).
    pub fn notify(&self, instance: &str, state: &str, reason: &str) {
        let own = match state {
            "master" => self.spec.master.as_ref().map(|h| ("master", h)),
            "backup" => self.spec.backup.as_ref().map(|h| ("backup", h)),
            "fault" => self.spec.fault.as_ref().map(|h| ("fault", h)),
            "stop" => self.spec.stop.as_ref().map(|h| ("stop", h)),
            _ => None,
        };
        let fencing_token = self.shared.lock().fencing_token;
        let mut jobs = Vec::with_capacity(2);
        let mut job = |hook: &'static str, cmd: &[String], extra: &[&str]| {
            if let Some((program, args)) = cmd.split_first() {
                let mut args = args.to_vec();
                args.extend(extra.iter().map(|s| s.to_string()));
                jobs.push(Job {
                    hook,
                    program: program.clone(),
                    args,
                    instance: instance.to_string(),
                    state: state.to_string(),
                    reason: reason.to_string(),
                    fencing_token,
                });
            }
        };
        if let Some((hook, cmd)) = own {
            job(hook, cmd, &[]);
        }
        // Stopping is not a state change: `any` does not run for it.
        if let (Some(cmd), false) = (&self.spec.any, state == "stop") {
            job("any", cmd, &[instance, state, reason]);
        }
        if jobs.is_empty() {
            return;
        }
        {
            let mut inner = self.shared.lock();
            for job in jobs {
                if inner.queue.len() >= QUEUE_CAP {
                    if let Some(old) = inner.queue.pop_front() {
                        tracing::warn!(
                            "{}: notify queue full: dropping the {} hook {} for state {}",
                            old.instance,
                            old.hook,
                            old.program,
                            old.state
                        );
                    }
                }
                inner.queue.push_back(job);
            }
        }
        self.shared.wake.notify_one();
    }

    /// The arbiter's fencing token, passed to hooks queued from now on as
    /// `VIPD_FENCING_TOKEN` (None: not set).
    pub fn set_fencing_token(&self, token: Option<i64>) {
        self.shared.lock().fencing_token = token;
    }

    /// Wait until every queued hook has finished. Bound it with a timeout on
    /// shutdown (`tokio::time::timeout(d, notifier.idle())`).
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.shared.lock();
                if inner.queue.is_empty() && !inner.running {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

async fn worker(shared: Arc<Shared>, timeout: std::time::Duration, caps: Capabilities) {
    loop {
        let next = {
            let mut inner = shared.lock();
            let job = inner.queue.pop_front();
            inner.running = job.is_some();
            if job.is_none() {
                shared.idle.notify_waiters();
                if inner.closed {
                    return;
                }
            }
            job
        };
        match next {
            Some(job) => run(&job, timeout, caps).await,
            None => shared.wake.notified().await,
        }
    }
}

async fn run(job: &Job, timeout: std::time::Duration, caps: Capabilities) {
    let token = job.fencing_token.map(|t| t.to_string());
    let mut env = vec![
        ("VIPD_INSTANCE", job.instance.as_str()),
        ("VIPD_STATE", job.state.as_str()),
        ("VIPD_REASON", job.reason.as_str()),
    ];
    if let Some(t) = &token {
        env.push(("VIPD_FENCING_TOKEN", t.as_str()));
    }
    let who = format!("{}: notify {} hook {}", job.instance, job.hook, job.program);
    match process::run(OsStr::new(&job.program), &job.args, &env, timeout, caps).await {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                tracing::debug!(stdout = %stdout.trim_end(), stderr = %stderr.trim_end(), "{who} finished");
            } else {
                tracing::warn!(
                    stdout = %stdout.trim_end(),
                    stderr = %stderr.trim_end(),
                    "{who} failed: {}",
                    out.status
                );
            }
        }
        Err(RunError::Spawn(e)) => tracing::warn!("{who} could not start: {e}"),
        Err(e @ (RunError::Wait(_) | RunError::Timeout(_))) => {
            tracing::warn!("{who} failed: {e}")
        }
    }
}
