//! arbiter: an etcd lease that decides which host *may* hold an instance's VIPs.
//!
//! VRRP still decides quickly who *should* be master; with `arbiter = true` the master
//! adds its VIPs only while it holds the instance's key in etcd under a live lease
//! (docs/architecture.md, "The arbiter").
//!
//! - [`lease`]: the sans-IO core that says whether the VIPs may be held now and until
//!   when (no I/O, time passed in).

pub mod lease;

pub use lease::LeaseClock;
