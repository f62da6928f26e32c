//! Health checks (http, tcp, exec, interface) and notify hooks.
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
mod runner;
mod spec;
mod sys;

pub use health::{Health, Verdict};
pub use notify::{Notifier, QUEUE_CAP};
pub use probe::{probe, HttpUrl, ProbeError, UrlError};
pub use runner::{penalty, spawn_checks, CheckSet, TrackEvent};
pub use spec::{CheckKind, CheckSpec, NotifySpec};
