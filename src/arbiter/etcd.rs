//! The etcd side of the arbiter: one task per instance with `arbiter = true`.
//!
//! ```text
//!   driver --want (bool)--> [ etcd task ] --grant / keep-alive / txn / watch--> etcd members
//!   driver <--View--------- (LeaseClock: may we hold, until when, fencing token)
//! ```
//!
//! - A fresh lease at start (never one from an earlier run), kept alive every quarter
//!   TTL, one request at a time, each bounded by [`lease::request_timeout`]; a request
//!   that fails or times out moves to the next endpoint.
//! - While the driver wants the key: a create-if-absent transaction on the key under our
//!   lease, retried every [`CLAIM_RETRY`] and at once when the watch sees it deleted. A
//!   key that exists under another lease is someone else's, whatever its value says.
//! - When the driver no longer wants it: delete it (only if its create revision is still
//!   our fencing token), so the next claimer is granted at once.
//! - On stop: delete the key and revoke the lease.
//!
//! The driver never trusts this task's timing: the [`View`] carries the deadline, and the
//! driver drops the VIPs at it on its own timer even if this task is stuck.

use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::lease;
use crate::config::Arbiter as ArbiterConfig;

mod agent;

use agent::Agent;

/// A claimer retries this often while the key is held by someone else (besides at once
/// when the watch sees the key deleted).
pub const CLAIM_RETRY: Duration = Duration::from_millis(200);

/// Grant retries while no lease can be had.
const GRANT_RETRY: Duration = Duration::from_millis(250);

/// A broken watch is re-created after this long.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// What the driver sees of the arbiter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// We hold the key: its fencing token (create revision) and the instant the right to
    /// hold ends unless renewed.
    pub held: Option<(i64, Instant)>,
    /// Our lease is alive by our reckoning (etcd answered in time).
    pub reachable: bool,
    /// The key is held by someone else: its value (who), as last seen.
    pub other_holder: Option<String>,
    /// Why we do not hold, or the last etcd error (for status and logs).
    pub detail: Option<String>,
    /// The lease TTL etcd granted.
    pub ttl: Option<Duration>,
}

impl View {
    /// The fencing token if we may hold at `now`.
    pub fn holds(&self, now: Instant) -> Option<i64> {
        self.held.filter(|(_, d)| now < *d).map(|(t, _)| t)
    }
}

/// The driver's handle on its instance's etcd task.
pub struct ArbiterHandle {
    want: watch::Sender<bool>,
    view: watch::Receiver<View>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    key: String,
}

impl std::fmt::Debug for ArbiterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArbiterHandle")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ArbiterHandle {
    /// Starts the etcd task of `instance` for `key`. `identity` goes into the key's value
    /// (who holds it). Never fails: unreachable endpoints or unreadable files show up as
    /// [`View::detail`].
    ///
    /// The task logs in the span current here, which names the instance (the driver's
    /// `driver{instance=…}`); called outside any span, in an `arbiter{instance=…}` of its
    /// own.
    pub fn spawn(cfg: &ArbiterConfig, instance: &str, key: String, identity: String) -> Self {
        let (want_tx, want_rx) = watch::channel(false);
        let (view_tx, view_rx) = watch::channel(View {
            detail: Some("connecting to etcd".to_owned()),
            ..View::default()
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let agent = Agent::new(cfg, key.clone(), identity, view_tx, want_rx);
        let span = match tracing::Span::current() {
            none if none.is_none() => tracing::info_span!("arbiter", instance = %instance),
            current => current,
        };
        let task = tokio::spawn(tracing::Instrument::instrument(agent.run(stop_rx), span));
        ArbiterHandle {
            want: want_tx,
            view: view_rx,
            stop: Some(stop_tx),
            task: Some(task),
            key,
        }
    }

    /// The etcd key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether we campaign for the key (true) or give it up (false).
    pub fn set_want(&self, on: bool) {
        self.want.send_if_modified(|w| {
            let changed = *w != on;
            *w = on;
            changed
        });
    }

    /// The latest view.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// Resolves when the view changed since it was last seen (never, once the task ended).
    pub async fn changed(&mut self) {
        if self.view.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Gives up the key and revokes the lease, waiting at most `wait`.
    pub async fn stop(mut self, wait: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            if tokio::time::timeout(wait, t).await.is_err() {
                tracing::warn!("arbiter {}: etcd did not confirm the release in time; the lease expires by itself", self.key);
            }
        }
    }
}

impl Drop for ArbiterHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
