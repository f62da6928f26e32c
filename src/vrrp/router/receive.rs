//! What an accepted advert does in each state (RFC 5798 §6.4.2, §6.4.3, RFC 9568).

use std::net::IpAddr;
use std::time::Instant;

use super::phase::{Heard, Master, Phase, Role};
use super::{Router, RELEASE_GRACE};
use crate::proto::{Advert, Version};
use crate::vrrp::{timers, Action, AnnounceReason, Reason};

impl Router {
    pub(super) fn backup_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        let eff = self.effective_priority();
        let skew = self.skew_time();
        let version = self.cfg.version;
        let preempt = self.cfg.preempt || eff == 255;
        let preempt_delay = self.cfg.preempt_delay;
        let mdi = |i| timers::master_down_interval(version, eff, i);
        let Phase::Backup(b) = &mut self.phase else {
            return;
        };
        // An advert while a BFD takeover waits: somebody is master (a higher-priority
        // backup that took over first, or the master itself): the advert rules decide.
        b.bfd_pending = None;
        if adv.priority == 0 {
            // RFC 5798 §6.4.2: priority 0: set the Master_Down_Timer to Skew_Time.
            b.master = Some(from);
            b.master_down_timer = now + skew;
            b.heard = Heard::Zero(from);
        } else {
            // RFC 5798 §6.1: the address owner always preempts; preempt delay is ours.
            let preempting = preempt && now.saturating_duration_since(b.since) >= preempt_delay;
            if !preempting || adv.priority >= eff {
                // RFC 5798 §6.4.2: adopt the interval, reset the Master_Down_Timer.
                if version == Version::V3 {
                    b.master_adver_interval = adv.interval;
                }
                b.master = Some(from);
                b.master_down_timer = now + mdi(b.master_adver_interval);
                b.last_accepted = Some((now, from));
                b.heard = Heard::Accepted;
            } else {
                // RFC 5798 §6.4.2: discard: the timer runs out and we preempt.
                b.heard = Heard::Ignored(from, adv.priority);
            }
        }
    }

    pub(super) fn master_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        let mdi = self.master_down_interval();
        let Phase::Master(m) = &self.phase else {
            return;
        };
        let claiming = matches!(m.role, Role::Claiming);
        let since = m.since;
        let bfd_takeover_at = m.bfd_takeover_at;
        let last_heal = m.last_heal;
        if adv.priority == 0 {
            // RFC 5798 §6.4.3: priority 0: send an ADVERTISEMENT, reset the Adver_Timer
            // (at most one such answer per advert interval: a stranger's flood must not
            // become ours).
            self.answer_out_of_turn(now);
            // Ours: another router leaving while we are master may be a preempting
            // backup stopped between its claim and its first advert; clients followed
            // its announcement to a host that drops the VIPs a moment later. Re-announce
            // (at most once per Master_Down_Interval) so they come back.
            let quiet = self
                .last_zero_announce
                .is_none_or(|t| now.saturating_duration_since(t) >= mdi);
            if quiet && !claiming {
                self.last_zero_announce = Some(now);
                self.push(Action::Announce {
                    reason: AnnounceReason::PeerLeft,
                });
            }
            return;
        }
        let eff = self.effective_priority();
        let loses =
            adv.priority > eff || (adv.priority == eff && addr_gt(from, self.cfg.primary_addr));
        if loses {
            // Ours, beyond RFC 5798: a master that steps down sends one last advert at
            // its own priority. After a partition heals, the winner may never have heard
            // us (our adverts were lost while partitioned); this one makes it run the
            // RFC 9568 rule below and re-announce, so clients that followed us come back
            // at once instead of after their own ARP timeout.
            self.push_advert(eff);
        }
        if loses && bfd_takeover_at.is_some_and(|t| now.saturating_duration_since(t) < mdi) {
            // A BFD takeover undone by adverts: BFD failed while the master lived. Hold
            // BFD down so that a flapping session cannot make the pair flap.
            self.bfd_hold_until = Some(now + self.bfd_hold_down());
        }
        if adv.priority > eff {
            // RFC 5798 §6.4.3: higher priority: step down to Backup.
            let reason = Reason::HigherPriority {
                from,
                priority: adv.priority,
            };
            self.become_backup(now, reason, Some(from), adv.interval);
        } else if adv.priority == eff && addr_gt(from, self.cfg.primary_addr) {
            // RFC 5798 §6.4.3: equal priority and higher primary address: step down.
            let reason = Reason::HigherAddress {
                from,
                priority: adv.priority,
            };
            self.become_backup(now, reason, Some(from), adv.interval);
        } else if claiming {
            // The master we are preempting, still advertising until our first advert
            // (sent when the claim's grace is over): expected, nothing to do.
        } else {
            // RFC 9568 §6.4.3: discard, but advertise at once so the other master
            // steps down (at most once per advert interval); re-announce so clients
            // that followed it come back.
            self.answer_out_of_turn(now);
            // Only a master of some standing is healing a split brain. Right after a
            // takeover (preemption), a lower priority is the old master's last advert
            // as it steps down, and our takeover announcement has just gone out.
            let standing = now.saturating_duration_since(since) >= mdi;
            // At most once per Master_Down_Interval: with one-way loss the other master
            // keeps advertising, and each advert must not cost a burst of announcements,
            // a hook run and a log line.
            let quiet = last_heal.is_none_or(|t| now.saturating_duration_since(t) >= mdi);
            if standing && quiet {
                if let Phase::Master(m) = &mut self.phase {
                    m.last_heal = Some(now);
                }
                self.push(Action::Announce {
                    reason: AnnounceReason::SplitBrainHealed,
                });
            }
        }
    }

    pub(super) fn release_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        if adv.priority == 0 {
            // Another router leaving too: not a new master.
            return;
        }
        if let Phase::Master(Master {
            role: Role::Releasing(r),
            ..
        }) = &mut self.phase
        {
            if r.new_master.is_none() {
                r.new_master = Some((from, adv.interval));
                r.deadline = now + RELEASE_GRACE;
            }
        }
    }
}

/// RFC 5798 §6.4.3: primary addresses compare as unsigned big-endian integers.
pub(super) fn addr_gt(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets() > b.octets(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets() > b.octets(),
        _ => false,
    }
}

pub(super) fn same_addr_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    a.dedup();
    b.sort_unstable();
    b.dedup();
    a == b
}
