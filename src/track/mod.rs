//! Health checks (http, tcp, exec, interface) and notify hooks.
//!
//! Checks run on their own tasks and only ever produce events for the router;
//! they never touch addresses themselves. A check that hangs never stalls the
//! protocol: every probe runs under its timeout.

mod spec;

pub use spec::{CheckKind, CheckSpec, NotifySpec};
