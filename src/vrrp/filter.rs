//! The stateless receive checks of RFC 5798 §7.1: those that depend only on the
//! configuration, not on the router's state.
//!
//! They run twice: in the receiver, before a packet may take a slot in the driver's
//! queue (so that a flood of packets that would be dropped anyway cannot delay an
//! advert, a takeover, or the real peer's adverts), and again in
//! [`crate::vrrp::Router::handle_advert`], so the core never depends on its caller.

use std::net::IpAddr;

use crate::proto::{Advert, Centis, Version};

use super::{RecvDrop, RouterConfig};

/// What a receiver needs to know of one virtual router to drop what it would drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvFilter {
    vrid: u8,
    version: Version,
    primary_addr: IpAddr,
    unicast_peers: Vec<IpAddr>,
    advert_interval: Centis,
}

impl RecvFilter {
    /// The checks of the virtual router configured by `cfg`.
    pub fn new(cfg: &RouterConfig) -> Self {
        RecvFilter {
            vrid: cfg.vrid,
            version: cfg.version,
            primary_addr: cfg.primary_addr,
            unicast_peers: cfg.unicast_peers.clone(),
            advert_interval: cfg.advert_interval,
        }
    }

    /// `Ok` when an advert from `from`, received with TTL / hop limit `ttl`, passes
    /// every stateless check; the first failing check otherwise.
    pub fn check(&self, from: IpAddr, ttl: u8, adv: &Advert) -> Result<(), RecvDrop> {
        // RFC 5798 §7.1: MUST verify that the TTL / hop limit is 255.
        if ttl != 255 {
            return Err(RecvDrop::TtlNot255 { ttl });
        }
        // RFC 5798 §7.1: MUST verify that the VRID is configured on this interface.
        if adv.vrid != self.vrid {
            return Err(RecvDrop::OtherVrid { vrid: adv.vrid });
        }
        // RFC 5798 §7.1: MUST verify the VRRP version.
        if adv.version != self.version {
            return Err(RecvDrop::VersionMismatch);
        }
        if from.is_ipv4() != self.primary_addr.is_ipv4() {
            return Err(RecvDrop::FamilyMismatch);
        }
        if from == self.primary_addr {
            return Err(RecvDrop::FromSelf);
        }
        // Unicast mode: only the configured peers take part (a source check multicast
        // VRRP cannot make; see docs/security.md).
        if !self.unicast_peers.is_empty() && !self.unicast_peers.contains(&from) {
            return Err(RecvDrop::UnknownPeer);
        }
        // RFC 3768 §7.1: MUST verify that the Adver Interval is the locally configured one.
        if self.version == Version::V2 && adv.interval != self.advert_interval {
            return Err(RecvDrop::IntervalMismatch {
                ours: self.advert_interval,
                theirs: adv.interval,
            });
        }
        Ok(())
    }
}
