//! The BFD session state machine (RFC 5880 §6, single hop RFC 5881): sans-IO, time
//! passed in, like [`crate::vrrp::Router`].
//!
//! One [`Session`] is one BFD session with one peer. It never reads a clock and never
//! touches a socket: [`Session::handle_packet`] and [`Session::handle_timeout`] take
//! `now`, and the driver pulls [`Session::poll_action`] (send this packet, the state
//! changed) and [`Session::poll_timeout`] (when to call `handle_timeout` next).
//!
//! ```text
//!  driver ──select_session / handle_packet / handle_timeout / admin_*──▶ Session
//!  driver ◀─────────────── poll_action / poll_timeout ────────────────── Session
//! ```
//!
//! # Readings of the RFC that are ours
//!
//! * Asynchronous mode only; no Demand mode, no Echo function (we send Required Min
//!   Echo RX Interval 0), no authentication (a packet with the A bit is dropped, §6.8.6).
//! * While not Up we advertise (and use) a Desired Min TX Interval of at least one
//!   second (§6.8.3); on reaching Up we switch to the configured interval with a Poll
//!   Sequence (§6.5), and back to one second on leaving Up.
//! * We send a packet at once when the session comes Up (it carries the Poll for the
//!   faster interval) and when answering a Poll (§6.8.6: "as soon as practicable");
//!   otherwise only periodically, so while not Up at most one packet a second leaves.
//! * Periodic transmissions are scheduled from the previous *deadline*, not from the
//!   instant the driver got round to it: a driver that wakes a little late does not add
//!   its lateness to every interval.
//! * Jitter (§6.8.7) comes from a small xorshift generator seeded by the caller, so the
//!   core stays deterministic.
//! * Single-hop demultiplexing ([`select_session`]): a nonzero Your Discriminator selects
//!   the session (§6.8.6), and the packet must also come from that session's peer
//!   (RFC 5881 §3 binds a single-hop session to the peer's address); a zero one selects
//!   by source address.

mod session;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use crate::proto::bfd::{ControlPacket, DecodeError, Diag, SessionState};
pub use session::Session;

/// The slowest Desired Min TX Interval used while a session is not Up (§6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// Static configuration of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.LocalDiscr: nonzero and unique among our sessions (the caller allocates it).
    pub local_discr: u32,
    /// bfd.DesiredMinTxInterval once Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult (1..=255).
    pub detect_mult: u8,
    /// Seed of the jitter generator (any value; 0 is replaced).
    pub jitter_seed: u64,
}

/// Something the driver must do now, pulled with [`Session::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this Control packet to the peer now.
    Send(ControlPacket),
    /// The session state changed.
    StateChanged {
        /// Old state.
        from: SessionState,
        /// New state.
        to: SessionState,
        /// bfd.LocalDiag after the change (why it went down).
        diag: Diag,
    },
}

/// Why a received, well-formed packet was dropped: the receive checks of RFC 5880 §6.8.6
/// that need a session, and the TTL rule of RFC 5881 §5. Each has a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvDrop {
    /// The bytes failed a check of [`ControlPacket::parse`].
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// RFC 5881 §5: the TTL / hop limit was not 255 (GTSM).
    #[error("TTL/hop limit {0}, expected 255")]
    TtlNot255(u8),
    /// §6.8.6: Your Discriminator selects no session.
    #[error("Your Discriminator {0:#x} selects no session")]
    UnknownDiscriminator(u32),
    /// RFC 5881 §3: the discriminator's session belongs to another peer.
    #[error("Your Discriminator {discr:#x} belongs to another peer than {from}")]
    WrongPeer {
        /// Your Discriminator.
        discr: u32,
        /// The source address.
        from: IpAddr,
    },
    /// §6.8.6 / RFC 5881 §3: Your Discriminator zero and no session with that source.
    #[error("no session for source {0}")]
    NoSessionForSource(IpAddr),
    /// §6.8.6: the A bit is set and no authentication is in use.
    #[error("authentication present but not in use")]
    AuthNotInUse,
    /// §6.8.6: "If bfd.SessionState is AdminDown: Discard the packet."
    #[error("session is AdminDown")]
    AdminDown,
}

impl RecvDrop {
    /// A stable snake_case label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RecvDrop::Decode(e) => e.label(),
            RecvDrop::TtlNot255(_) => "ttl_not_255",
            RecvDrop::UnknownDiscriminator(_) => "unknown_discriminator",
            RecvDrop::WrongPeer { .. } => "wrong_peer",
            RecvDrop::NoSessionForSource(_) => "no_session_for_source",
            RecvDrop::AuthNotInUse => "auth_not_in_use",
            RecvDrop::AdminDown => "admin_down",
        }
    }

    /// Every label [`RecvDrop::label`] can return (for pre-registering metrics).
    pub const LABELS: &'static [&'static str] = &[
        "truncated",
        "bad_version",
        "length_too_small",
        "length_exceeds_payload",
        "zero_detect_mult",
        "multipoint",
        "zero_my_discriminator",
        "zero_your_discriminator",
        "ttl_not_255",
        "unknown_discriminator",
        "wrong_peer",
        "no_session_for_source",
        "auth_not_in_use",
        "admin_down",
    ];
}

/// Decode received bytes and find their session (RFC 5880 §6.8.6, RFC 5881 §3, §5).
///
/// `sessions` lists `(key, peer address, local discriminator)` of the sessions on the
/// interface the packet arrived on. Returns the key and the packet for
/// [`Session::handle_packet`].
pub fn select_session<K: Copy>(
    bytes: &[u8],
    from: IpAddr,
    ttl: u8,
    sessions: impl IntoIterator<Item = (K, IpAddr, u32)>,
) -> Result<(K, ControlPacket), RecvDrop> {
    let pkt = ControlPacket::parse(bytes)?;
    // RFC 5881 §5: without authentication, the TTL / hop limit MUST be 255.
    if ttl != crate::proto::bfd::TTL {
        return Err(RecvDrop::TtlNot255(ttl));
    }
    let from = canonical(from);
    if pkt.your_discr != 0 {
        // §6.8.6: a nonzero Your Discriminator MUST select the session.
        let (key, peer, _) = sessions
            .into_iter()
            .find(|(_, _, d)| *d == pkt.your_discr)
            .ok_or(RecvDrop::UnknownDiscriminator(pkt.your_discr))?;
        if canonical(peer) != from {
            return Err(RecvDrop::WrongPeer {
                discr: pkt.your_discr,
                from,
            });
        }
        Ok((key, pkt))
    } else {
        // §6.8.6 / RFC 5881 §3: select by source address (and interface: the caller's list).
        let (key, _, _) = sessions
            .into_iter()
            .find(|(_, p, _)| canonical(*p) == from)
            .ok_or(RecvDrop::NoSessionForSource(from))?;
        Ok((key, pkt))
    }
}

/// IPv4-mapped IPv6 addresses compare as their IPv4 address.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// A session state change, formatted for the one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Old state.
    pub from: SessionState,
    /// New state.
    pub to: SessionState,
    /// Diagnostic after the change.
    pub diag: Diag,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({})", self.from, self.to, self.diag)
    }
}
