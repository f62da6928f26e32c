//! vipd: a virtual-IP failover agent speaking VRRPv3 (RFC 5798) and VRRPv2 (RFC 3768).
//!
//! # The determinism contract
//!
//! [`proto`] (wire formats), [`vrrp`] (the RFC 5798 state machine) and [`bfd`] (the
//! RFC 5880 session state machine) never perform I/O
//! and never read a clock. Every input that depends on time carries a `now: Instant`
//! supplied by the caller, and every output is pulled with `poll_action()` /
//! `poll_timeout()`. Given the same sequence of inputs, the core produces the same
//! sequence of outputs. This is what lets the simulated-LAN tests check exact RFC
//! timings in milliseconds of CPU time.
//!
//! Everything that touches the kernel lives in [`net`]; [`daemon`] wires the core to it.
#![warn(missing_docs, unreachable_pub)]

pub mod arbiter;
pub mod bfd;
pub mod config;
pub mod control;
pub mod daemon;
pub mod import;
pub mod net;
pub mod proto;
pub mod track;
pub mod vrrp;
