//! Health checks (http, tcp, exec, interface, process, file) and notify hooks.
//!
//! Checks run on their own tasks and only ever produce events for the router;
//! they never touch addresses themselves. A check that hangs never stalls the
//! protocol: every probe runs under its timeout.
//!
//! - [`Health`]: pure rise/fall hysteresis (a check starts unknown, which counts
//!   as unhealthy; see [`health`] for why and how it interacts with the election).
//! - [`probe()`]: one probe of a [`CheckKind`].
//! - [`spawn_checks`]: the check tasks of an instance, reporting [`TrackEvent`]s;
//!   [`penalty`] turns verdicts into a priority penalty or a Fault reason.
//! - [`Notifier`]: notify hooks, queued and run one at a time off the caller's task.

pub mod health;
mod notify;
mod probe;
mod process;
pub mod procscan;
mod runner;
mod spec;
mod sys;

pub use health::{Health, Verdict};
pub use notify::{Notifier, QUEUE_CAP};
pub use probe::{probe, probe_value, read_value_file, HttpUrl, ProbeError, UrlError};
pub use runner::{
    penalty, penalty_with_values, spawn_checks, CheckSet, TrackEvent, MAX_FILE_PENALTY,
};
pub use spec::{ArgsMatch, CheckKind, CheckSpec, NotifySpec, ProcessMatch};
