//! arbiter: an etcd lease that decides which host *may* hold an instance's VIPs.
//!
//! VRRP still decides quickly who *should* be master; with `arbiter = true` the master
//! adds its VIPs only while it holds the instance's key in etcd under a live lease
//! (docs/architecture.md, "The arbiter").
//!
//! - [`lease`]: the sans-IO core that says whether the VIPs may be held now and until
//!   when (no I/O, time passed in).
//! - [`gate`]: the sans-IO rules between the router's `AddVips` / `RemoveVips` and the
//!   kernel (master-elect, deadline, hold, hand-over).
//! - [`etcd`]: the task that grants and keeps the lease, claims, watches and gives up
//!   the key through etcd-client, and tells the driver what [`lease`] says.

pub mod etcd;
pub mod gate;
pub mod lease;

pub use etcd::{ArbiterHandle, View};
pub use gate::{Gate, GateAction};
pub use lease::LeaseClock;
