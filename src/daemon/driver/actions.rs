//! Carrying out the router's actions: adverts, VIPs, announcements, state changes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::control::message::{Event, Transition};
use crate::proto::{arp, ndp, Advert, ChecksumForm};
use crate::vrrp::{Action, AnnounceReason, State};

use super::{unix_ms, Driver};

impl Driver {
    /// Carries out the router's actions, in order.
    pub(super) async fn execute(&mut self) {
        self.execute_actions().await;
        // Early announcements are for the Announce of the same batch only.
        self.early_announced.clear();
    }

    async fn execute_actions(&mut self) {
        // The router decided just before this batch; a takeover's batch is SendAdvert,
        // AddVips, Announce, StateChanged.
        let decided = Instant::now();
        let mut announced: Option<Instant> = None;
        while let Some(action) = self.router.poll_action() {
            match action {
                Action::SendAdvert(advert) => self.send_advert(&advert).await,
                Action::AddVips => {
                    if !self.arbiter_router_add() {
                        self.change_vips(true).await;
                    }
                }
                Action::Announce { reason } => {
                    if !self.arbiter_allows_announce() {
                        // Master-elect: announced when the arbiter key is held.
                        continue;
                    }
                    self.announce(reason);
                    announced = Some(Instant::now());
                    if reason == AnnounceReason::HandoverCancelled {
                        tracing::info!("handover cancelled, still MASTER: re-announcing VIPs");
                    }
                    if reason == AnnounceReason::PeerLeft {
                        tracing::info!(
                            "another router sent priority 0 while we are MASTER: re-announcing VIPs"
                        );
                    }
                    if reason == AnnounceReason::SplitBrainHealed {
                        tracing::info!(
                            "still MASTER after a split brain healed: re-announcing VIPs"
                        );
                        self.notifier.notify(
                            &self.inst.name,
                            "master",
                            "split brain healed, still master",
                        );
                    }
                }
                Action::StopAnnouncing => self.stop_announcing(),
                Action::RemoveVips => {
                    self.stop_announcing();
                    if !self.arbiter_router_remove() {
                        self.change_vips(false).await;
                    }
                }
                Action::StateChanged { from, to, reason } => {
                    tracing::info!(
                        from = %from,
                        to = %to,
                        "{}: {} -> {} ({reason})",
                        self.inst.name,
                        from.to_string().to_uppercase(),
                        to.to_string().to_uppercase()
                    );
                    if to == State::Master && from == State::Backup {
                        if let Some(t) = announced {
                            self.ctx
                                .metrics
                                .takeover
                                .announce(&self.inst.name, t.duration_since(decided));
                        }
                        if let Some(heard) = self.last_advert_at {
                            self.ctx
                                .metrics
                                .takeover
                                .detect(&self.inst.name, decided.duration_since(heard));
                        }
                    }
                    if to == State::Backup {
                        // Time to detect counts from adverts heard in this Backup spell.
                        self.last_advert_at = None;
                    }
                    let (f, t) = (from.to_string(), to.to_string());
                    self.ctx
                        .metrics
                        .instance
                        .transition(&self.inst.name, &f, &t);
                    self.ctx.metrics.instance.set_state(&self.inst.name, &t);
                    let at = SystemTime::now();
                    self.entered_state_at = at;
                    self.entered_state_mono = Instant::now();
                    self.last_transition = Some(Transition {
                        from: f.clone(),
                        to: t.clone(),
                        reason: reason.to_string(),
                        at_unix_ms: unix_ms(at),
                    });
                    let _ = self.ctx.events.send(Event {
                        instance: self.inst.name.clone(),
                        from: f,
                        to: t.clone(),
                        reason: reason.to_string(),
                        at_unix_ms: unix_ms(at),
                    });
                    // Init runs only the `any` hook (there is no init hook). A master-elect's
                    // `master` hook waits for the arbiter key.
                    if self.arbiter_hook_now(to, &reason.to_string()) {
                        self.notifier
                            .notify(&self.inst.name, &t, &reason.to_string());
                    }
                    self.report_group();
                }
                Action::Released => {
                    self.released = true;
                }
            }
        }
    }

    /// Adds (or removes) every VIP through the netlink pipeline (`net::addr_pipe`),
    /// which sends the requests of every instance to the kernel as one stream.
    ///
    /// Every VIP is queued at once, the first as an urgent request (it goes before any
    /// instance's remaining VIPs): when many instances take over together, each one's
    /// first VIP is usable before anyone's whole list is added. When an Announce follows
    /// (no arbiter), each VIP's announcement goes out from the pipeline as soon as the
    /// kernel added it, and the Announce leaves those VIPs out of its first round.
    pub(super) async fn change_vips(&mut self, add: bool) {
        if self.inst.address_owner {
            // The owner's VIPs are the host's own addresses: never added or removed here.
            return;
        }
        let (nl, ifindex) = (self.ctx.netlink.clone(), self.ctx.link.index);
        let vips = self.inst.vips.clone();
        // IPv6 virtual MAC: the macvlan is down before the addresses go (the kernel
        // drops them, and no MLD report leaves from the virtual MAC); up before they are
        // added (the takeover's first advert brought it up already).
        self.set_vmac_up(add).await;
        if !add {
            for (vip, r) in vips.iter().zip(nl.del_addresses(ifindex, &vips).await) {
                if let Err(e) = r {
                    // Not ours (the operator's own address) or a netlink failure: left alone.
                    tracing::error!("not removing {vip}: {e}");
                }
            }
            return;
        }
        let results = if self.arb.is_none() && self.inst.announce.count > 0 {
            let frames = vips.iter().map(|v| self.announce_frame(*v)).collect();
            nl.add_and_announce(ifindex, &vips, &self.ctx.frames, frames)
                .await
        } else {
            nl.add_addresses(ifindex, &vips, true)
                .await
                .into_iter()
                .map(|r| r.map(|()| false))
                .collect()
        };
        self.early_announced = results.iter().map(|r| matches!(r, Ok(true))).collect();
        for (vip, r) in vips.iter().zip(results) {
            if let Err(e) = r {
                self.vip_add_failed(*vip, &e);
            }
        }
    }

    /// IPv6 virtual MAC mode: sets the macvlan up or down unless it already is (a
    /// failure is logged; the next change tries again).
    async fn set_vmac_up(&mut self, up: bool) {
        let link = &self.ctx.link;
        if !link.follows_master || self.vmac_up == up {
            return;
        }
        match self
            .ctx
            .netlink
            .set_vmac_up(link.index, &link.name, up)
            .await
        {
            Ok(()) => self.vmac_up = up,
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Encodes the router's advert for each destination and sends it.
    pub(super) async fn send_advert(&mut self, advert: &Advert) {
        // Only a master sends adverts: in IPv6 virtual MAC mode they leave through the
        // macvlan, which is down while backup. A takeover's batch sends its first advert
        // before it adds the VIPs.
        self.set_vmac_up(true).await;
        let form = if self.inst.checksum_pseudo_header {
            ChecksumForm::WithPseudoHeader
        } else {
            ChecksumForm::WithoutPseudoHeader
        };
        let group = match self.ctx.source {
            IpAddr::V4(_) => IpAddr::V4(crate::proto::vrrp::IPV4_GROUP),
            IpAddr::V6(_) => IpAddr::V6(crate::proto::vrrp::IPV6_GROUP),
        };
        // The group, or each unicast peer.
        for i in 0..self.inst.unicast_peers.len().max(1) {
            let dst = self.inst.unicast_peers.get(i).copied().unwrap_or(group);
            // The checksum's pseudo-header uses the real destination (keepalived #642).
            let bytes = match advert.to_bytes(self.ctx.source, dst, form) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!("cannot encode advert: {e}");
                    continue;
                }
            };
            if let Some(batch) = &self.ctx.batch {
                // A release's priority 0 goes with the others of the same wake-up: when
                // the daemon stops, every instance's goes out in one sendmmsg, and the
                // backups' decisions (Skew_Time after it) are not spread over the
                // drivers' turns.
                let now = !self.periodic && !self.router.is_releasing();
                batch.push(&self.name, dst, bytes, &self.counters.sent, now);
                continue;
            }
            match self.ctx.socket.send(dst, &bytes).await {
                Ok(()) => {
                    self.counters.sent.inc();
                }
                Err(e) => {
                    if self.log_limiter.hit("send_error", Instant::now()).is_some() {
                        tracing::warn!("cannot send advert to {dst}: {e}");
                    }
                }
            }
        }
    }

    /// Cancels pending announcement rounds and the periodic refresh.
    pub(super) fn stop_announcing(&mut self) {
        if let Some(a) = self.announcer.take() {
            a.abort();
        }
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
    }

    /// The gratuitous ARP (IPv4) or unsolicited NA (IPv6) frame of one VIP.
    fn announce_frame(&self, vip: ipnet::IpNet) -> Vec<u8> {
        match (vip.addr(), self.ctx.source) {
            (IpAddr::V4(v4), _) => arp::gratuitous_arp(self.ctx.link.mac, v4),
            (IpAddr::V6(v6), IpAddr::V6(src)) => ndp::unsolicited_na(self.ctx.link.mac, src, v6),
            (IpAddr::V6(v6), IpAddr::V4(_)) => {
                ndp::unsolicited_na(self.ctx.link.mac, std::net::Ipv6Addr::UNSPECIFIED, v6)
            }
        }
    }

    /// Gratuitous ARP / unsolicited NA for every VIP: `count` rounds, `spacing` apart,
    /// the first at once; then, if configured, one round every `refresh` while master.
    /// Each round goes out in `sendmmsg` batches. The VIPs `change_vips` announced right
    /// after adding them are left out of this first round (only).
    pub(super) fn announce(&mut self, _reason: AnnounceReason) {
        let frames: Vec<Vec<u8>> = self
            .inst
            .vips
            .iter()
            .map(|vip| self.announce_frame(*vip))
            .collect();
        let early = std::mem::take(&mut self.early_announced);
        // First round synchronously, so that the decision-to-announce time is real.
        let first: Vec<&[u8]> = frames
            .iter()
            .enumerate()
            .filter(|(i, _)| !early.get(*i).copied().unwrap_or(false))
            .map(|(_, f)| f.as_slice())
            .collect();
        if !first.is_empty() {
            if let (_, Some(e)) = self.ctx.frames.send_batch(&first) {
                tracing::warn!("cannot send announcement: {e}");
            }
        }
        if let Some(a) = self.announcer.take() {
            a.abort();
        }
        let sender = self.ctx.frames.clone();
        let count = self.inst.announce.count;
        let spacing = self.inst.announce.spacing;
        let refresh = self.inst.announce.refresh;
        let frames = Arc::new(frames);
        let rounds = frames.clone();
        self.announcer = Some(tokio::spawn(async move {
            let all: Vec<&[u8]> = rounds.iter().map(|f| f.as_slice()).collect();
            for _ in 1..count {
                tokio::time::sleep(spacing).await;
                let _ = sender.send_batch(&all);
            }
        }));
        if let Some(every) = refresh {
            if self.refresher.is_none() {
                let sender = self.ctx.frames.clone();
                self.refresher = Some(tokio::spawn(async move {
                    let all: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let _ = sender.send_batch(&all);
                    }
                }));
            }
        }
    }
}
