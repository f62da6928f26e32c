//! Check tasks: one per `[[instance.track]]` entry, each probing every
//! `interval` under its `timeout` and reporting to the instance's driver.
//!
//! ```text
//!   check task 0 ──┐
//!   check task 1 ──┼── mpsc<TrackEvent> ──> daemon (priority = base - penalty(), or Fault)
//!   check task N ──┘
//! ```
//!
//! Every probe result is reported, with `changed` set on a verdict flip: the
//! daemon acts on flips, status and metrics show the last latency and error.
//! A flip is sent with `send().await` (never lost; the check waits for room);
//! any other result with `try_send` (dropped when the channel is full: only a
//! latency sample is lost, and a stalled daemon never piles up probes).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::health::Health;
use super::probe::probe_value;
use super::spec::{CheckKind, CheckSpec};

/// Probes never start closer together than this, whatever the config says.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The result of one probe of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackEvent {
    /// The instance (or sync group) the check belongs to.
    pub instance: String,
    /// Index of the check in the `specs` given to [`spawn_checks`].
    pub check: usize,
    /// The check's name.
    pub name: String,
    /// The check's verdict after this probe (rise/fall applied; a check with
    /// no verdict yet reports `false`).
    pub healthy: bool,
    /// The raw outcome of this probe.
    pub probe_ok: bool,
    /// Why this probe failed (`None` when it succeeded).
    pub error: Option<String>,
    /// How long the probe took (the timeout, when it timed out).
    pub latency: Duration,
    /// `true` when this probe flipped the verdict (including the first verdict), or
    /// changed a `file` check's value.
    pub changed: bool,
    /// The value a `file` check read on its last successful probe (0 for other kinds,
    /// and while the check is unhealthy).
    pub value: i64,
}

/// The running check tasks of one instance. Dropping it aborts them (an exec
/// probe in progress is killed with its process group).
#[derive(Debug)]
pub struct CheckSet {
    tasks: JoinSet<()>,
}

impl CheckSet {
    /// Number of check tasks started.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// `true` when there are no checks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for CheckSet {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Start one task per check, each sending a [`TrackEvent`] per probe on `tx`.
/// The first probe runs at once. A task ends when `tx`'s receiver is dropped
/// or the returned [`CheckSet`] is dropped. Must be called inside a tokio
/// runtime.
pub fn spawn_checks(instance: &str, specs: &[CheckSpec], tx: mpsc::Sender<TrackEvent>) -> CheckSet {
    let mut tasks = JoinSet::new();
    for (index, spec) in specs.iter().enumerate() {
        if matches!(spec.kind, CheckKind::Bfd { .. }) {
            // Its verdict is the BFD session's state, reported by the BFD engine.
            continue;
        }
        let span = tracing::info_span!("check", instance = %instance, check = %spec.name);
        tasks.spawn(
            run_check(instance.to_string(), index, spec.clone(), tx.clone()).instrument(span),
        );
    }
    CheckSet { tasks }
}

async fn run_check(instance: String, index: usize, spec: CheckSpec, tx: mpsc::Sender<TrackEvent>) {
    let mut health = Health::new(spec.rise, spec.fall);
    let interval = spec.interval.max(MIN_INTERVAL);
    let mut value = 0i64;
    loop {
        let start = Instant::now();
        let result = probe_value(&spec.kind, spec.timeout).await;
        let latency = start.elapsed();
        let probe_ok = result.is_ok();
        let read = *result.as_ref().unwrap_or(&0);
        let error = result.err().map(|e| e.to_string());
        let flip = health.record(probe_ok);
        // A file check's value counts while the check is healthy.
        let new_value = if health.is_healthy() && probe_ok {
            read
        } else if health.is_healthy() {
            value
        } else {
            0
        };
        let value_changed = new_value != value;
        if value_changed && flip.is_none() {
            tracing::info!("{instance}: check {} now reads {new_value}", spec.name);
        }
        value = new_value;
        match (&flip, &error) {
            (Some(true), _) => tracing::info!(
                "{instance}: check {} is now healthy ({} consecutive successes)",
                spec.name,
                spec.rise.max(1)
            ),
            (Some(false), e) => tracing::info!(
                "{instance}: check {} is now unhealthy ({})",
                spec.name,
                e.as_deref().unwrap_or("probe failed")
            ),
            (None, Some(e)) => tracing::debug!(latency = ?latency, "probe failed: {e}"),
            (None, None) => tracing::trace!(latency = ?latency, "probe ok"),
        }
        let event = TrackEvent {
            instance: instance.clone(),
            check: index,
            name: spec.name.clone(),
            healthy: health.is_healthy(),
            probe_ok,
            error,
            latency,
            changed: flip.is_some() || value_changed,
            value,
        };
        if flip.is_some() || value_changed {
            if tx.send(event).await.is_err() {
                return;
            }
        } else {
            match tx.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        tokio::time::sleep_until(start + interval).await;
    }
}

/// Priority penalty of an instance's checks given their current verdicts
/// (`healthy[i]` for `specs[i]`; a missing entry counts as unhealthy).
///
/// Returns the sum of the weights of the unhealthy checks with weight > 0, and,
/// when an unhealthy check has weight 0, the reason to put the instance in
/// Fault (naming every such check). Clamping the effective priority (at least
/// 1; an address owner at 255 is not moved by trackers) is the caller's job.
pub fn penalty(specs: &[CheckSpec], healthy: &[bool]) -> (u32, Option<String>) {
    penalty_with_values(specs, healthy, &[])
}

/// Largest penalty one `file` check may impose; beyond it the instance goes to Fault
/// (keepalived: a track_file result below -253 is a fault).
pub const MAX_FILE_PENALTY: i64 = 253;

/// [`penalty`] with the values of `file` checks (`values[i]` for `specs[i]`; missing
/// entries are 0). A healthy `file` check with value `v` costs `weight * v` (a
/// negative `v` costs nothing: vipd never raises a priority above `priority`); with
/// weight 0 any non-zero value is a Fault, as is a cost above [`MAX_FILE_PENALTY`].
/// An unhealthy `file` check (unreadable, not a number) is a Fault whatever its
/// weight.
pub fn penalty_with_values(
    specs: &[CheckSpec],
    healthy: &[bool],
    values: &[i64],
) -> (u32, Option<String>) {
    let mut sum = 0u32;
    let mut faults = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let is_file = matches!(spec.kind, CheckKind::File { .. });
        if healthy.get(i).copied().unwrap_or(false) {
            let v = values.get(i).copied().unwrap_or(0);
            if !is_file || v <= 0 {
                continue;
            }
            let cost = i64::from(spec.weight).saturating_mul(v);
            if spec.weight == 0 || cost > MAX_FILE_PENALTY {
                faults.push(format!("'{}'", spec.name));
            } else {
                sum = sum.saturating_add(u32::try_from(cost).unwrap_or(u32::MAX));
            }
            continue;
        }
        if spec.weight == 0 || is_file {
            faults.push(format!("'{}'", spec.name));
        } else {
            sum = sum.saturating_add(u32::from(spec.weight));
        }
    }
    let reason = match faults.len() {
        0 => None,
        1 => Some(format!("track check {} is unhealthy", faults.join(""))),
        _ => Some(format!("track checks {} are unhealthy", faults.join(", "))),
    };
    (sum, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::spec::CheckKind;

    fn spec(name: &str, weight: u8) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            kind: CheckKind::Interface { name: "lo".into() },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
            weight,
        }
    }

    #[test]
    fn penalty_all_healthy_is_zero() {
        let specs = [spec("a", 10), spec("b", 0)];
        assert_eq!(penalty(&specs, &[true, true]), (0, None));
    }

    #[test]
    fn penalty_sums_weights_of_unhealthy_weighted_checks() {
        let specs = [spec("a", 10), spec("b", 20), spec("c", 40)];
        assert_eq!(penalty(&specs, &[false, true, false]), (50, None));
    }

    #[test]
    fn penalty_weight_zero_unhealthy_is_a_fault_naming_the_check() {
        let specs = [spec("a", 10), spec("db", 0)];
        let (sum, reason) = penalty(&specs, &[false, false]);
        assert_eq!(sum, 10);
        assert_eq!(reason.as_deref(), Some("track check 'db' is unhealthy"));
    }

    #[test]
    fn penalty_names_every_faulting_check() {
        let specs = [spec("x", 0), spec("y", 0), spec("z", 0)];
        let (_, reason) = penalty(&specs, &[false, true, false]);
        assert_eq!(
            reason.as_deref(),
            Some("track checks 'x', 'z' are unhealthy")
        );
    }

    #[test]
    fn penalty_missing_verdicts_count_as_unhealthy() {
        let specs = [spec("a", 5), spec("b", 7)];
        assert_eq!(penalty(&specs, &[true]), (7, None));
        assert_eq!(penalty(&specs, &[]), (12, None));
    }

    #[test]
    fn penalty_does_not_overflow() {
        let specs: Vec<CheckSpec> = (0..100).map(|i| spec(&i.to_string(), 255)).collect();
        assert_eq!(penalty(&specs, &[]).0, 25_500);
    }

    fn file(name: &str, weight: u8) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::File {
                path: "/run/x".into(),
            },
            ..spec(name, weight)
        }
    }

    #[test]
    fn file_value_times_weight_is_the_penalty() {
        let specs = [file("f", 10), spec("a", 5)];
        assert_eq!(
            penalty_with_values(&specs, &[true, true], &[0, 0]),
            (0, None)
        );
        assert_eq!(
            penalty_with_values(&specs, &[true, true], &[3, 0]),
            (30, None)
        );
        assert_eq!(
            penalty_with_values(&specs, &[true, false], &[3, 0]),
            (35, None)
        );
        // A value never raises the priority.
        assert_eq!(
            penalty_with_values(&specs, &[true, true], &[-4, 0]),
            (0, None)
        );
        // Values only count for file checks.
        assert_eq!(
            penalty_with_values(&specs, &[true, true], &[0, 9]),
            (0, None)
        );
    }

    #[test]
    fn file_not_a_number_is_a_fault_whatever_the_weight() {
        let specs = [file("f", 10)];
        let (sum, reason) = penalty_with_values(&specs, &[false], &[0]);
        assert_eq!(sum, 0);
        assert_eq!(reason.as_deref(), Some("track check 'f' is unhealthy"));
    }

    #[test]
    fn file_weight_zero_faults_on_non_zero_and_big_costs_fault() {
        let zero = [file("f", 0)];
        assert_eq!(penalty_with_values(&zero, &[true], &[0]), (0, None));
        assert!(penalty_with_values(&zero, &[true], &[1]).1.is_some());
        let ten = [file("f", 10)];
        assert_eq!(penalty_with_values(&ten, &[true], &[25]), (250, None));
        assert!(penalty_with_values(&ten, &[true], &[26]).1.is_some());
        assert!(penalty_with_values(&ten, &[true], &[i64::MAX]).1.is_some());
    }

    #[test]
    fn penalty_no_checks() {
        assert_eq!(penalty(&[], &[]), (0, None));
    }
}
