//! Peer BFD (the logic is in daemon::bfd and Router::master_down_detected).

use std::time::{Duration, Instant};

use crate::track::{self, TrackEvent};
use crate::vrrp::State;

use super::Driver;

impl Driver {
    pub(super) fn start_bfd(&mut self) {
        let tracks: Vec<crate::daemon::bfd::PeerSpec> = self
            .inst
            .tracks
            .iter()
            .filter_map(|t| match t.kind {
                track::CheckKind::Bfd { peer, multiplier } => Some(crate::daemon::bfd::PeerSpec {
                    ifname: self.inst.interface.clone(),
                    ifindex: self.ctx.link.index,
                    source: crate::daemon::bfd::bfd_source(self.ctx.source, peer),
                    peer,
                    interval: t.interval,
                    multiplier,
                }),
                _ => None,
            })
            .collect();
        if !tracks.is_empty() {
            match crate::daemon::bfd::engine(&self.ctx.metrics) {
                Ok(engine) => {
                    let mut sub = engine.subscribe(&self.inst.name, tracks);
                    self.bfd_track_rx = sub.events.take();
                    self.bfd_track = Some(sub);
                }
                Err(e) => {
                    tracing::error!("{e}; bfd tracks stay unhealthy");
                }
            }
        }
        let Some(spec) = &self.inst.bfd else {
            return;
        };
        match crate::daemon::bfd::engine(&self.ctx.metrics) {
            Ok(engine) => {
                let peers = crate::daemon::bfd::peer_specs(
                    spec,
                    &self.inst.interface,
                    self.ctx.link.index,
                    self.ctx.source,
                );
                let mut sub = engine.subscribe(&self.inst.name, peers);
                self.bfd_rx = sub.events.take();
                self.bfd = Some(sub);
            }
            Err(e) => {
                tracing::error!("{e}; running without BFD");
            }
        }
    }

    /// A `kind = "bfd"` track's session changed state: healthy while Up.
    pub(super) fn handle_bfd_track(&mut self, ev: crate::daemon::bfd::BfdEvent) {
        let checks: Vec<usize> = self
            .inst
            .tracks
            .iter()
            .enumerate()
            .filter(
                |(_, t)| matches!(t.kind, track::CheckKind::Bfd { peer, .. } if peer == ev.peer),
            )
            .map(|(i, _)| i)
            .collect();
        for check in checks {
            let healthy = ev.to == crate::bfd::SessionState::Up;
            let was = self.track_healthy.get(check).copied().unwrap_or(false);
            let event = TrackEvent {
                instance: self.inst.name.clone(),
                check,
                name: self.inst.tracks[check].name.clone(),
                healthy,
                probe_ok: healthy,
                error: (!healthy).then(|| format!("BFD session {} ({})", ev.to, ev.diag)),
                latency: Duration::ZERO,
                changed: healthy != was,
                value: 0,
            };
            self.handle_track(event);
        }
    }

    pub(super) fn handle_bfd(&mut self, ev: crate::daemon::bfd::BfdEvent) {
        let now = Instant::now();
        if !crate::daemon::bfd::is_failure(&ev) {
            return;
        }
        let detect = ev.detect.unwrap_or_default();
        let follows =
            self.router.state() == State::Backup && self.router.master_addr() == Some(ev.peer);
        if self.router.master_down_detected(now, ev.peer, detect) {
            let wait = self.router.bfd_wait(detect);
            if !wait.is_zero() && self.router.state() == State::Backup {
                tracing::info!(
                    "BFD says master {} is down: taking over in {:.1} ms unless another backup does",
                    ev.peer,
                    wait.as_secs_f64() * 1000.0
                );
            }
        } else if follows && self.router.bfd_held_down(now) {
            tracing::info!(
                "BFD session to master {} down, ignored: BFD is held down after a takeover that adverts undid",
                ev.peer
            );
        }
    }
}
