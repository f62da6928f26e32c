//! The router's transitions (RFC 5798 §6.4): into Master, into Backup, the
//! make-before-break release, and the advert that goes with them.

use std::net::IpAddr;
use std::time::Instant;

use super::phase::{Backup, Heard, Master, Phase, Release, ReleaseKind, Role};
use super::{Router, RELEASE_GRACE};
use crate::proto::{Centis, Version};
use crate::vrrp::{Action, AnnounceReason, Reason, State};

impl Router {
    /// Send one advert (priority 0 while releasing) and reset the Adver_Timer. Master
    /// only.
    pub(super) fn send_advert(&mut self, now: Instant) {
        let eff = self.effective_priority();
        let on_grid = self.next_advert(now);
        let interval = self.cfg.advert_interval.as_duration();
        let Phase::Master(m) = &mut self.phase else {
            return;
        };
        let (p, next) = match m.role {
            // Priority 0 adverts a full interval apart, off the grid: each one restarts
            // the backups' Master_Down_Timer at Skew_Time (§6.4.2), so one sent at a
            // grid point half an interval later would delay the handover.
            Role::Releasing(_) => (0, now + interval),
            Role::Claiming | Role::Advertising => {
                m.role = Role::Advertising;
                (eff, on_grid)
            }
        };
        m.adver_timer = next;
        self.push_advert(p);
    }

    /// An advert sent because of one we heard, not because the Adver_Timer fired: at
    /// most one per advert interval, so that a flood of lower-priority or priority-0
    /// adverts (from a stranger, or a peer stuck in a loop) costs one advert per
    /// interval, not one per packet.
    pub(super) fn answer_out_of_turn(&mut self, now: Instant) {
        let interval = self.cfg.advert_interval.as_duration();
        if self
            .last_answer
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            return;
        }
        self.last_answer = Some(now);
        self.send_advert(now);
    }

    /// Enter `phase`: the VIPs go when leaving Master, and a change of state is
    /// reported once.
    pub(super) fn enter(&mut self, phase: Phase, reason: Reason) {
        let from = self.state();
        let to = phase.state();
        if from == State::Master && to != State::Master {
            self.push(Action::RemoveVips);
        }
        self.phase = phase;
        if from != to {
            self.push(Action::StateChanged { from, to, reason });
        }
    }

    pub(super) fn finish_released(&mut self) {
        self.released = true;
        self.push(Action::Released);
    }

    /// RFC 5798 §6.4.1: the Startup event.
    pub(super) fn startup(&mut self, now: Instant) {
        if self.effective_priority() == 255 {
            // §6.4.1: priority 255: advert, announce, Adver_Timer, Master.
            self.become_master(now, Reason::AddressOwner);
        } else {
            // §6.4.1: Master_Adver_Interval = Advertisement_Interval, Master_Down_Timer, Backup.
            self.become_backup(now, Reason::Startup, None, self.cfg.advert_interval);
        }
    }

    /// From Init or Backup (never from Master: the VIPs are claimed here).
    pub(super) fn become_master(&mut self, now: Instant, reason: Reason) {
        let bfd_takeover_at = matches!(reason, Reason::BfdDown { .. }).then_some(now);
        let claiming = matches!(reason, Reason::Preempting { .. });
        let mut master = Master {
            since: now,
            adver_timer: now,
            role: Role::Advertising,
            last_heal: None,
            bfd_takeover_at,
        };
        if claiming {
            // Preempting a live master, which drops the VIPs the moment it hears our
            // advert (§6.4.2: a backup must not accept packets for them). Make before
            // break: claim and announce the VIPs now, and send our first advert
            // RELEASE_GRACE later, once clients have followed the announcement. The old
            // master keeps answering until then; nobody else is waiting to take over,
            // since the old master's adverts still reach them.
            master.role = Role::Claiming;
            master.adver_timer = now + RELEASE_GRACE;
        } else {
            // §6.4.1 / §6.4.2: send an ADVERTISEMENT, set the Adver_Timer, ... (the
            // advert first: it stops other backups' timers as early as possible).
            master.adver_timer = self.next_advert(now);
            self.push_advert(self.effective_priority());
        }
        self.push(Action::AddVips);
        // ... broadcast gratuitous ARP / unsolicited NA, transition to Master.
        self.push(Action::Announce {
            reason: AnnounceReason::Takeover,
        });
        self.enter(Phase::Master(master), reason);
    }

    pub(super) fn become_backup(
        &mut self,
        now: Instant,
        reason: Reason,
        master: Option<IpAddr>,
        interval: Centis,
    ) {
        // §6.4.3 (v3): Master_Adver_Interval = the advert's interval; v2 uses ours.
        let master_adver_interval = match self.cfg.version {
            Version::V3 => interval,
            Version::V2 => self.cfg.advert_interval,
        };
        // §6.4.3 / §6.4.1: Master_Down_Timer = Master_Down_Interval.
        let master_down_timer = now + self.master_down_interval_for(master_adver_interval);
        let backup = Backup {
            since: now,
            master,
            master_adver_interval,
            master_down_timer,
            last_accepted: master.map(|m| (now, m)),
            heard: Heard::Accepted,
            bfd_pending: None,
        };
        self.enter(Phase::Backup(backup), reason);
    }

    pub(super) fn begin_release(&mut self, now: Instant, kind: ReleaseKind) {
        let deadline = now + self.master_down_interval();
        let Phase::Master(m) = &mut self.phase else {
            return;
        };
        m.role = Role::Releasing(Release {
            kind,
            deadline,
            new_master: None,
        });
        self.push(Action::StopAnnouncing);
        // RFC 5798 §6.4.3 Shutdown: send an ADVERTISEMENT with Priority = 0 (VIPs kept).
        self.send_advert(now);
    }

    /// The release is over: a new master was heard (`Some`) or the deadline passed.
    pub(super) fn finish_release(&mut self, now: Instant, r: Release) {
        match r.kind {
            ReleaseKind::Shutdown => {
                let master = r.new_master.map(|(a, _)| a);
                self.enter(Phase::Init { master }, Reason::Shutdown);
                self.finish_released();
            }
            ReleaseKind::Maintenance => {
                let (master, interval) = match r.new_master {
                    Some((a, i)) => (Some(a), i),
                    None => (None, self.cfg.advert_interval),
                };
                self.become_backup(now, Reason::Maintenance, master, interval);
            }
        }
    }
}
