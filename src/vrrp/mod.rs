//! The RFC 5798 virtual router state machine: sans-IO, time passed in.
//!
//! One [`Router`] runs one virtual router (one VRID, one address family). It never
//! reads a clock and never touches a socket: every input carries `now: Instant`, and
//! every output is pulled by the driver with [`Router::poll_action`] (things to do now)
//! and [`Router::poll_timeout`] (when to call [`Router::handle_timeout`] next).
//!
//! ```text
//!  driver ──handle_advert / handle_timeout / set_* / shutdown──▶ Router
//!  driver ◀──────────── poll_action / poll_timeout ───────────── Router
//! ```
//!
//! # Timers (RFC 5798 §6.1, RFC 3768 §6.1)
//!
//! Timers are computed with integer arithmetic in **microseconds**, rounding down
//! once at the end, exactly as keepalived does:
//!
//! * VRRPv3: `Skew_Time = floor((256 - Priority) * Master_Adver_Interval_us / 256)`,
//!   with `Master_Adver_Interval_us = centiseconds * 10_000`.
//! * VRRPv2: `Skew_Time = floor((256 - Priority) * 1_000_000 / 256)` µs (RFC 3768:
//!   `(256 - Priority) / 256` seconds, independent of the interval).
//! * both: `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`.
//!
//! Computing in whole centiseconds (the RFC's unit) would round 0.609375 s down to
//! 0.60 s and make neighbouring priorities share a skew; microseconds keep every
//! priority distinct and match keepalived to the microsecond.
//!
//! # Make-before-break release
//!
//! On [`Router::shutdown`] or [`Router::set_maintenance`] while Master, the router
//! stays Master and keeps its VIPs while it sends priority-0 adverts every advert
//! interval. It removes the VIPs only when it hears another router advertise with a
//! priority above 0 (the new master) and [`RELEASE_GRACE`] more has passed (so that
//! the new master's announcement reaches clients first), or when
//! `Master_Down_Interval` has passed without one. So at every instant at least one
//! router holds the VIPs. The state is
//! `Master` during the whole release (the router still holds the VIPs); the
//! transition (to `Init` for shutdown, to `Backup` for maintenance) is reported
//! when the VIPs are removed. A release starts with [`Action::StopAnnouncing`], so no
//! leftover announcement of ours follows the new master's.
//!
//! # Make-before-break preemption
//!
//! A backup that preempts a live lower-priority master becomes Master, claims and
//! announces the VIPs at once, and sends its first advert [`RELEASE_GRACE`] later; the
//! old master, which drops the VIPs when it hears that advert, answers until then.

mod conditions;
mod filter;
mod router;
mod timers;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::proto::{Advert, Centis, DropReason, Version};

pub use conditions::{Condition, Conditions, NO_LEASE_PENALTY};
pub use filter::RecvFilter;
pub use router::{release_limit, Router, BFD_HOLD_DOWN_MIN, RELEASE_GRACE};
pub use timers::{master_down_interval, next_on_grid, skew_time};

/// Static configuration of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Virtual Router Identifier, 1..=255.
    pub vrid: u8,
    /// Protocol version: VRRPv3 (RFC 5798) or VRRPv2 (RFC 3768).
    pub version: Version,
    /// Base priority from the configuration, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Our Advertisement_Interval (v2: whole seconds stored as centiseconds).
    pub advert_interval: Centis,
    /// Preempt_Mode: a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// How long after entering Backup a router waits before it may preempt a
    /// lower-priority master (see [`Router`] for the exact reading).
    pub preempt_delay: Duration,
    /// Our own address on the link: source of our adverts, used in the tie-break.
    pub primary_addr: IpAddr,
    /// The virtual addresses carried in our adverts (IPv6: link-local first).
    pub vips: Vec<IpAddr>,
    /// Unicast mode: adverts are accepted only from these addresses. Empty: multicast,
    /// adverts from any source.
    pub unicast_peers: Vec<IpAddr>,
}

/// The state of a virtual router (RFC 5798 §6.4, plus Fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running the protocol (before startup, after shutdown).
    Init,
    /// Watching the master (RFC 5798 §6.4.2).
    Backup,
    /// Holding the VIPs and advertising (RFC 5798 §6.4.3).
    Master,
    /// Out of service because of a fault (interface down, failing check).
    Fault,
}

impl State {
    /// The lowercase name used in status output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the driver should announce the VIPs (gratuitous ARP / unsolicited NA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnounceReason {
    /// We just became master.
    Takeover,
    /// We are master and heard a lower-priority master: re-announce so that clients
    /// which followed the other master come back (RFC 9568 §6.4.3, keepalived #166).
    SplitBrainHealed,
    /// A maintenance handover was cancelled while we were still master: announce
    /// again, since a backup may already have taken over and pulled the clients.
    HandoverCancelled,
    /// Another router sent priority 0 while we are master: it may have claimed and
    /// announced the VIPs (a preemption stopped before its first advert), so clients
    /// may point at it; announce again so they come back.
    PeerLeft,
}

impl fmt::Display for AnnounceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnnounceReason::Takeover => "takeover",
            AnnounceReason::SplitBrainHealed => "split brain healed",
            AnnounceReason::HandoverCancelled => "handover cancelled",
            AnnounceReason::PeerLeft => "another router left",
        })
    }
}

/// Why a state transition happened. `Display` gives a sentence for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// §6.4.1 startup with a priority below 255.
    Startup,
    /// §6.4.1 startup as the address owner.
    AddressOwner,
    /// §6.4.2 the master-down timer ran out without an advert.
    MasterDown {
        /// The master we last heard, if any since entering Backup.
        master: Option<IpAddr>,
        /// How long we heard nothing (since its last advert, or since entering Backup).
        silent_for: Duration,
    },
    /// §6.4.2 the master sent priority 0 and the skew timer ran out.
    MasterReleased {
        /// The master that left.
        master: IpAddr,
    },
    /// §6.4.2 preempt: we ignored a lower-priority master until the timer ran out.
    Preempting {
        /// The lower-priority master.
        master: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// §6.4.3 another router advertises a higher priority.
    HigherPriority {
        /// The other router.
        from: IpAddr,
        /// Its priority.
        priority: u8,
    },
    /// §6.4.3 another router advertises our priority from a higher primary address.
    HigherAddress {
        /// The other router.
        from: IpAddr,
        /// Its (and our) priority.
        priority: u8,
    },
    /// BFD: the session to the master went Down (detection time expired).
    BfdDown {
        /// The master whose session went down.
        master: IpAddr,
        /// The BFD detection time.
        detect: Duration,
    },
    /// Entered Fault.
    Fault(String),
    /// The fault cleared.
    FaultCleared,
    /// Shutdown requested.
    Shutdown,
    /// Maintenance (drain) requested.
    Maintenance,
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::AddressOwner => f.write_str("address owner (priority 255)"),
            Reason::MasterDown {
                master: Some(m),
                silent_for,
            } => write!(f, "no advert from {m} for {}", fmt_secs(*silent_for)),
            Reason::MasterDown {
                master: None,
                silent_for,
            } => write!(f, "no advert for {}", fmt_secs(*silent_for)),
            Reason::MasterReleased { master } => write!(f, "priority 0 from master {master}"),
            Reason::Preempting { master, priority } => {
                write!(f, "preempting lower priority {priority} from {master}")
            }
            Reason::HigherPriority { from, priority } => {
                write!(f, "{from} has higher priority {priority}")
            }
            Reason::HigherAddress { from, priority } => {
                write!(
                    f,
                    "{from} has equal priority {priority} and a higher address"
                )
            }
            Reason::BfdDown { master, detect } => write!(
                f,
                "BFD session to master {master} down (no packet for {:.1} ms)",
                detect.as_secs_f64() * 1000.0
            ),
            Reason::Fault(text) => write!(f, "fault: {text}"),
            Reason::FaultCleared => f.write_str("fault cleared"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Maintenance => f.write_str("maintenance"),
        }
    }
}

/// Something the driver must do now, pulled with [`Router::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert now (to the multicast group, or to each unicast peer). Its
    /// priority is 0 when we are leaving; VRID, version, interval and addresses are
    /// ours ([`RouterConfig`]).
    SendAdvert(Advert),
    /// Claim the VIPs (add them to the interface) before announcing them.
    AddVips,
    /// Send gratuitous ARP / unsolicited NA for all VIPs.
    Announce {
        /// Why.
        reason: AnnounceReason,
    },
    /// A handover starts: cancel any announcement rounds still pending (and the
    /// periodic refresh) but keep the VIPs. A gratuitous ARP sent after the new
    /// master's would pull clients back to a host that is about to drop the VIPs.
    StopAnnouncing,
    /// Remove the VIPs from the interface.
    RemoveVips,
    /// The state changed (emitted once per real transition).
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// Shutdown finished (VIPs released): the driver may exit. Nothing follows.
    Released,
}

/// Why a received advert was dropped by the checks that need the configuration
/// (RFC 5798 §7.1, RFC 3768 §7.1). The checks on the bytes alone are
/// [`crate::proto::DecodeError`]; both map onto [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RecvDrop {
    /// §7.1: the TTL / hop limit was not 255.
    #[error("TTL/hop limit {ttl}, expected 255")]
    TtlNot255 {
        /// The TTL it arrived with.
        ttl: u8,
    },
    /// §7.1: the advert is for another virtual router.
    #[error("advert for VRID {vrid}, not ours")]
    OtherVrid {
        /// Its VRID.
        vrid: u8,
    },
    /// §7.1: the version differs from ours.
    #[error("advert of another VRRP version")]
    VersionMismatch,
    /// RFC 3768 §7.1: a VRRPv2 advert whose interval differs from ours.
    #[error("VRRPv2 advert interval {theirs:?} differs from ours {ours:?}")]
    IntervalMismatch {
        /// Our configured interval.
        ours: Centis,
        /// The advertised one.
        theirs: Centis,
    },
    /// The source address is of the other address family.
    #[error("source address of another address family")]
    FamilyMismatch,
    /// The advert came from our own primary address (looped back).
    #[error("our own advert")]
    FromSelf,
    /// Unicast mode: the source is not one of the configured peers.
    #[error("source is not a configured unicast peer")]
    UnknownPeer,
}

impl RecvDrop {
    /// The receive-drop reason this drop counts as (one reason per variant).
    pub fn reason(&self) -> DropReason {
        match self {
            RecvDrop::TtlNot255 { .. } => DropReason::TtlNot255,
            RecvDrop::OtherVrid { .. } => DropReason::OtherVrid,
            RecvDrop::VersionMismatch => DropReason::VersionMismatch,
            RecvDrop::IntervalMismatch { .. } => DropReason::IntervalMismatch,
            RecvDrop::FamilyMismatch => DropReason::FamilyMismatch,
            RecvDrop::FromSelf => DropReason::FromSelf,
            RecvDrop::UnknownPeer => DropReason::UnknownPeer,
        }
    }

    /// The metric label (`reason="..."`): that of [`RecvDrop::reason`].
    pub fn label(&self) -> &'static str {
        self.reason().label()
    }
}
