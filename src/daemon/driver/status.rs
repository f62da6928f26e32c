//! Publishing the instance's status: status board and metrics.

use std::net::IpAddr;
use std::time::Instant;

use crate::control::message::{InstanceStatus, TrackStatus};
use crate::track;
use crate::vrrp::State;

use super::{unix_ms, BoardEntry, Driver};

/// What the published status depends on, cheap to compare. Instances with BFD or the
/// arbiter, whose status also changes outside the driver's view, publish every time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PublishKey {
    state: State,
    priority: u8,
    base_priority: u8,
    master: Option<IpAddr>,
    priority_override: Option<u8>,
    maintenance: bool,
    fault: Option<String>,
    entered: Instant,
    last_transition_at: Option<u64>,
    track_gen: u64,
}

impl Driver {
    /// Publishes the status (board and instance gauges) when it changed since the last
    /// time: under a steady stream of adverts nothing is rebuilt and no lock is taken.
    pub(super) fn publish(&mut self) {
        let key = PublishKey {
            state: self.router.state(),
            priority: self.router.effective_priority(),
            base_priority: self.router.base_priority(),
            master: self.router.master_addr(),
            priority_override: self.priority_override,
            maintenance: self.maintenance,
            fault: self.router.conditions().fault().map(str::to_owned),
            entered: self.entered_state_mono,
            last_transition_at: self.last_transition.as_ref().map(|t| t.at_unix_ms),
            track_gen: self.track_gen,
        };
        let volatile = self.bfd.is_some() || self.arb.is_some();
        if !volatile && self.published.as_ref() == Some(&key) {
            return;
        }
        self.published = Some(key);
        let master = self.router.master_addr();
        if master != self.last_master {
            if master.is_some() {
                self.ctx.metrics.instance.master_changed(&self.inst.name);
            }
            self.last_master = master;
        }
        let prio = self.router.effective_priority();
        let state = self.router.state().to_string();
        let m = &self.ctx.metrics.instance;
        m.set_priority(&self.inst.name, prio);
        m.set_state(&self.inst.name, &state);
        m.set_state_since(&self.inst.name, self.entered_state_at);
        m.set_operator(&self.inst.name, self.priority_override, self.maintenance);
        let vips: Vec<String> = self.inst.vips.iter().map(|v| v.to_string()).collect();
        let family = match self.ctx.source {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        };
        m.set_identity(
            &self.inst.name,
            &self.inst.interface,
            self.inst.vrid,
            family,
            &crate::daemon::metrics::vips_label(&vips),
        );
        let tracks = self
            .inst
            .tracks
            .iter()
            .enumerate()
            .map(|(i, spec)| TrackStatus {
                name: spec.name.clone(),
                healthy: self.track_healthy.get(i).copied().unwrap_or(false),
                weight: i32::from(spec.weight),
                last_latency_ms: self
                    .track_latency
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|d| d.as_millis() as u64),
                detail: self.track_error.get(i).cloned().flatten().or_else(|| {
                    matches!(spec.kind, track::CheckKind::File { .. })
                        .then(|| format!("value {}", self.track_value.get(i).copied().unwrap_or(0)))
                }),
            })
            .collect();
        let st = InstanceStatus {
            name: self.inst.name.clone(),
            vrid: self.inst.vrid,
            interface: self.inst.interface.clone(),
            state,
            priority: prio,
            base_priority: self.router.base_priority(),
            priority_override: self.priority_override,
            maintenance: self.maintenance,
            vips,
            master: master.map(|a| a.to_string()),
            version: match self.inst.version {
                crate::proto::Version::V2 => 2,
                crate::proto::Version::V3 => 3,
            },
            advert_interval_ms: u32::from(self.inst.advert_interval.0) * 10,
            since_unix_ms: Some(unix_ms(self.entered_state_at)),
            in_state_ms: None, // counted when read (BoardEntry::snapshot)
            last_transition: self.last_transition.clone(),
            tracks,
            sync_group: None, // filled in by the supervisor, which knows the groups
            fault: self.router.conditions().fault().map(str::to_owned),
            restarts: 0, // filled in by the supervisor
            bfd: self.bfd.as_ref().map(|b| b.status()).unwrap_or_default(),
            arbiter: self.arbiter_status(),
        };
        self.ctx
            .board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                self.inst.name.clone(),
                BoardEntry {
                    status: st,
                    entered: self.entered_state_mono,
                },
            );
    }
}
