//! control: the control socket between vipd and vipctl.
//!
//! - [`message`]: the versioned line-delimited JSON protocol (shared by both sides);
//! - [`server`]: the listener inside vipd, handing requests to the daemon over a channel;
//! - [`client`]: the blocking client used by vipctl;
//! - [`overrides`]: the operator's persisted priority overrides and maintenance flags.

pub mod client;
pub mod message;
pub mod overrides;
pub mod server;

pub use message::{
    Event, InstanceStatus, Request, Response, Status, TrackStatus, Transition, PROTOCOL_VERSION,
};
pub use overrides::{InstanceOverrides, OverrideError, OverrideStore};
pub use server::{serve, serve_with, ControlCall, ControlError, ControlListener, ServerOptions};
