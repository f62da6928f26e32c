//! What the router knows in each state ([`Phase`]) and the pieces of it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::super::{Reason, State};
use crate::proto::Centis;

/// What a make-before-break release ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReleaseKind {
    Shutdown,
    Maintenance,
}

/// A make-before-break release in progress (we are Master, advertising priority 0).
#[derive(Debug, Clone, Copy)]
pub(super) struct Release {
    pub(super) kind: ReleaseKind,
    /// Give up waiting for a new master at this instant; once a new master is heard,
    /// the end of the grace period.
    pub(super) deadline: Instant,
    /// The new master, once heard (its address and advertised interval).
    pub(super) new_master: Option<(IpAddr, Centis)>,
}

/// The last thing a backup learnt from an advert; names the reason of a takeover.
#[derive(Debug, Clone, Copy)]
pub(super) enum Heard {
    /// An advert was accepted: the master-down timer was reset.
    Accepted,
    /// A priority-0 advert from this master: the timer is Skew_Time.
    Zero(IpAddr),
    /// A lower-priority advert we ignore because we preempt.
    Ignored(IpAddr, u8),
}

/// A BFD verdict waiting for its moment: take over at `at` unless an advert comes first.
#[derive(Debug, Clone, Copy)]
pub(super) struct BfdPending {
    pub(super) at: Instant,
    pub(super) master: IpAddr,
    pub(super) detect: Duration,
}

/// What a router knows in each state.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// Not running the protocol: before startup, between a fault and startup, after
    /// shutdown.
    Init {
        /// The master as last seen (after a shutdown handover: the new master).
        master: Option<IpAddr>,
    },
    /// RFC 5798 §6.4.2.
    Backup(Backup),
    /// RFC 5798 §6.4.3.
    Master(Master),
    /// Out of service. Why is [`crate::vrrp::Conditions::fault`]'s (one source of truth:
    /// [`crate::vrrp::Router::fault`] reads it there).
    Fault,
}

/// Backup: watching a master (RFC 5798 §6.4.2).
#[derive(Debug, Clone)]
pub(super) struct Backup {
    /// When we entered Backup (the preempt delay counts from here).
    pub(super) since: Instant,
    /// The master we follow, once heard.
    pub(super) master: Option<IpAddr>,
    /// Master_Adver_Interval: the master's advertised one (v3), ours (v2).
    pub(super) master_adver_interval: Centis,
    /// RFC 5798 §6.2 Master_Down_Timer.
    pub(super) master_down_timer: Instant,
    /// The last accepted advert: when and from whom.
    pub(super) last_accepted: Option<(Instant, IpAddr)>,
    /// The latest advert's effect.
    pub(super) heard: Heard,
    /// BFD said the master died: take over then, unless an advert comes first.
    pub(super) bfd_pending: Option<BfdPending>,
}

/// What a master is doing besides advertising.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// Preempting a live master: VIPs claimed and announced, first advert not sent yet
    /// (it goes out when the Adver_Timer fires, [`RELEASE_GRACE`] after the takeover).
    Claiming,
    /// Advertising at our priority.
    Advertising,
    /// Handing over make-before-break: advertising priority 0, VIPs kept.
    Releasing(Release),
}

/// Master: holding the VIPs and advertising (RFC 5798 §6.4.3).
#[derive(Debug, Clone)]
pub(super) struct Master {
    /// When we became Master.
    pub(super) since: Instant,
    /// RFC 5798 §6.2 Adver_Timer.
    pub(super) adver_timer: Instant,
    pub(super) role: Role,
    /// When we last re-announced for a healed split brain.
    pub(super) last_heal: Option<Instant>,
    /// When we took over because of BFD (`None`: not a BFD takeover).
    pub(super) bfd_takeover_at: Option<Instant>,
}

impl Phase {
    pub(super) fn state(&self) -> State {
        match self {
            Phase::Init { .. } => State::Init,
            Phase::Backup(_) => State::Backup,
            Phase::Master(_) => State::Master,
            Phase::Fault => State::Fault,
        }
    }
}

/// The reason of a backup's takeover when its Master_Down_Timer fires.
pub(super) fn takeover_reason(b: &Backup, now: Instant) -> Reason {
    match b.heard {
        Heard::Zero(master) => Reason::MasterReleased { master },
        Heard::Ignored(master, priority) => Reason::Preempting { master, priority },
        Heard::Accepted => {
            let (since, master) = match b.last_accepted {
                Some((t, m)) => (t, Some(m)),
                None => (b.since, None),
            };
            Reason::MasterDown {
                master,
                silent_for: now.saturating_duration_since(since),
            }
        }
    }
}
