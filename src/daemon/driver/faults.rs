//! Fault and penalty inputs: link, checks, VIPs that could not be added, and what
//! the sync-group coordinator hears about them.

use std::net::IpAddr;
use std::time::Instant;

use crate::proto::DropReason;
use crate::track::{self, TrackEvent};
use crate::vrrp::Condition;

use super::{Driver, MemberReport, VIP_RETRY};

impl Driver {
    /// Whether the VIPs should be on the interface now: the router holds them and, with
    /// the arbiter, the arbiter key is held too.
    pub(super) fn vips_should_be_on(&self) -> bool {
        self.router.holds_vips() && self.arb.as_ref().is_none_or(|a| a.gate.vips_on())
    }

    /// The router holds the VIPs but one may be gone (deleted by hand, by another tool,
    /// or with its primary address): put back what is missing.
    pub(super) async fn restore_vips(&mut self) {
        if !self.vips_should_be_on() || self.inst.address_owner {
            return;
        }
        let (nl, ifindex) = (self.ctx.netlink.clone(), self.ctx.link.index);
        for vip in self.inst.vips.clone() {
            match nl.address_owner(ifindex, vip.addr()).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("cannot check {vip}: {e}");
                    continue;
                }
            }
            tracing::warn!(
                "{vip} disappeared from {} while MASTER: adding it again",
                self.ctx.link.name
            );
            self.ctx.metrics.repairs.vip_restored(&self.inst.name);
            if let Err(e) = nl.add_address(ifindex, vip).await {
                self.vip_add_failed(vip, &e);
            }
        }
    }

    /// A VIP could not be added: the router must not believe it holds it. The instance
    /// is in fault (a backup takes over) and tries again after [`VIP_RETRY`].
    pub(super) fn vip_add_failed(&mut self, vip: ipnet::IpNet, e: &crate::net::NetError) {
        tracing::error!(
            "cannot add {vip}: {e}; in fault, retrying in {} s",
            VIP_RETRY.as_secs()
        );
        let now = Instant::now();
        self.vip_retry_at = Some(now + VIP_RETRY);
        let fault = Some(format!("cannot add {vip}: {e}"));
        self.router.set_condition(now, Condition::VipAdd(fault));
        self.report_group();
    }

    pub(super) fn dropped(&mut self, reason: DropReason, from: IpAddr) {
        let reason = reason.label();
        self.ctx
            .metrics
            .adverts
            .dropped(&self.inst.interface, reason);
        if let Some(n) = self.log_limiter.hit(reason, Instant::now()) {
            tracing::warn!("dropped advert from {from}: {reason} ({n} since the last such line)");
        }
    }

    pub(super) fn handle_track(&mut self, ev: TrackEvent) {
        self.track_gen = self.track_gen.wrapping_add(1);
        let now = Instant::now();
        if let Some(h) = self.track_healthy.get_mut(ev.check) {
            *h = ev.healthy;
        }
        if let Some(v) = self.track_value.get_mut(ev.check) {
            *v = ev.value;
        }
        if let Some(l) = self.track_latency.get_mut(ev.check) {
            *l = Some(ev.latency);
        }
        if let Some(e) = self.track_error.get_mut(ev.check) {
            e.clone_from(&ev.error);
        }
        self.ctx
            .metrics
            .checks
            .record(&self.inst.name, &ev.name, ev.healthy, ev.latency);
        if ev.changed {
            tracing::info!(
                "check {} is now {}",
                ev.name,
                if ev.healthy { "healthy" } else { "failing" }
            );
        }
        let (penalty, fault) = self.track_penalty();
        self.router
            .set_condition(now, Condition::Checks { penalty, fault });
        self.report_group();
    }

    /// Penalty and fault reason of the instance's checks (track::penalty_with_values).
    pub(super) fn track_penalty(&self) -> (u32, Option<String>) {
        track::penalty_with_values(&self.inst.tracks, &self.track_healthy, &self.track_value)
    }

    /// The link's fault text while it is down.
    pub(super) fn link_fault(&self) -> Option<String> {
        (!self.link_up).then(|| format!("link down on {}", self.inst.interface))
    }

    /// Tells the sync-group coordinator what changed (every check result lands here, so
    /// repeats are skipped).
    pub(super) fn report_group(&mut self) {
        let c = self.router.conditions();
        let now = (
            c.own_fault().map(str::to_owned),
            c.own_penalty(),
            self.router.state(),
        );
        if self.last_report.as_ref() == Some(&now) {
            return;
        }
        self.last_report = Some(now.clone());
        let (own_fault, own_penalty, state) = now;
        let _ = self.ctx.reports.send(MemberReport {
            instance: self.inst.name.clone(),
            own_fault,
            own_penalty,
            state,
        });
    }
}
