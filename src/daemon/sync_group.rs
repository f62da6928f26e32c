//! Sync groups: fault and penalty propagation between members, group hooks and
//! split detection.

use std::time::{Duration, Instant};

use crate::config;
use crate::track::Notifier;
use crate::vrrp::State;

use super::driver::{Input, MemberReport};
use super::Supervisor;

impl Supervisor {
    pub(super) fn group_of(&self, instance: &str) -> Option<&config::SyncGroup> {
        self.config
            .sync_groups
            .iter()
            .find(|g| g.instances.iter().any(|m| m == instance))
    }

    /// A member reported its state, own fault or own penalty.
    pub(super) fn handle_member(&mut self, report: MemberReport) {
        let group = self.group_of(&report.instance).cloned();
        self.members.insert(report.instance.clone(), report);
        if let Some(group) = group {
            self.group_state_hooks(&group);
        }
        self.send_group_inputs();
    }

    /// Sync groups: a member's own fault puts every other member in fault; a member's
    /// check penalty applies to every member, so the group moves as one. An instance in
    /// no group gets no fault and no penalty from one (it may have left a group in a
    /// reload). Only changes are sent; a driver whose queue is full gets them on a later
    /// call (every member report, and every supervisor tick).
    pub(super) fn send_group_inputs(&mut self) {
        let names: Vec<String> = self.drivers.keys().cloned().collect();
        for name in names {
            let want = match self.group_of(&name) {
                Some(group) => {
                    let fault = group
                        .instances
                        .iter()
                        .filter(|o| **o != name)
                        .find_map(|o| {
                            self.members.get(o).and_then(|r| {
                                r.own_fault.as_ref().map(|f| {
                                    format!("sync group {}: {o} is in fault ({f})", group.name)
                                })
                            })
                        });
                    let penalty = group
                        .instances
                        .iter()
                        .filter_map(|o| self.members.get(o).map(|r| r.own_penalty))
                        .max()
                        .unwrap_or(0);
                    (fault, penalty)
                }
                None => (None, 0),
            };
            // A driver starts with neither (see `start_instance`).
            if self.group_sent.get(&name).cloned().unwrap_or_default() == want {
                continue;
            }
            if let Some(d) = self.drivers.get(&name) {
                let ok1 = d.ctl.send(Input::GroupFault(want.0.clone())).is_ok();
                let ok2 = d.ctl.send(Input::GroupPenalty(want.1)).is_ok();
                if ok1 && ok2 {
                    self.group_sent.insert(name, want);
                }
            }
        }
    }

    /// A group whose members here are partly master and partly backup for longer than a
    /// takeover takes is split across hosts: one member lost an election the others did
    /// not (members with different priorities on a peer, say). vipd cannot tell which
    /// side is right, so it says so once per split, and once when it is over.
    pub(super) fn watch_group_splits(&mut self) {
        let now = Instant::now();
        let groups = self.config.sync_groups.clone();
        for g in &groups {
            let states: Vec<(String, State)> = g
                .instances
                .iter()
                .filter_map(|m| self.members.get(m).map(|r| (m.clone(), r.state)))
                .collect();
            let split = states.iter().any(|(_, s)| *s == State::Master)
                && states.iter().any(|(_, s)| *s == State::Backup);
            if !split {
                if let Some((_, true)) = self.group_split.remove(&g.name) {
                    tracing::info!("sync group {}: members are together again", g.name);
                }
                continue;
            }
            // Two takeovers' worth of the slowest member, plus the tick.
            let patience = g
                .instances
                .iter()
                .filter_map(|m| self.drivers.get(m))
                .map(|d| 8 * d.instance.advert_interval.as_duration())
                .max()
                .unwrap_or_default()
                + Duration::from_secs(1);
            let (since, warned) = self
                .group_split
                .entry(g.name.clone())
                .or_insert((now, false));
            if !*warned && now.duration_since(*since) >= patience {
                *warned = true;
                let detail: Vec<String> = states.iter().map(|(m, s)| format!("{m} {s}")).collect();
                tracing::warn!(
                    "sync group {} is split across hosts ({}): a member lost an election the others did not; give the members the same priorities on each host",
                    g.name,
                    detail.join(", ")
                );
            }
        }
        self.group_split
            .retain(|name, _| groups.iter().any(|g| &g.name == name));
    }

    /// A group is master when every member is, fault when any member is, else backup;
    /// the group's notify hooks run when that changes.
    pub(super) fn group_state_hooks(&mut self, group: &config::SyncGroup) {
        let states: Vec<Option<State>> = group
            .instances
            .iter()
            .map(|m| self.members.get(m).map(|r| r.state))
            .collect();
        if states.iter().any(|s| s.is_none()) {
            return;
        }
        let state = if states.iter().all(|s| *s == Some(State::Master)) {
            State::Master
        } else if states.contains(&Some(State::Fault)) {
            State::Fault
        } else if states.iter().all(|s| *s == Some(State::Init)) {
            State::Init
        } else {
            State::Backup
        };
        let previous = self.group_states.insert(group.name.clone(), state);
        if previous == Some(state) || state == State::Init {
            return;
        }
        let detail: Vec<String> = group
            .instances
            .iter()
            .zip(&states)
            .map(|(m, s)| format!("{m} {}", s.map(|s| s.to_string()).unwrap_or_default()))
            .collect();
        let reason = format!("members: {}", detail.join(", "));
        tracing::info!(
            "sync group {}: now {} ({reason})",
            group.name,
            state.to_string().to_uppercase()
        );
        let notifier = self
            .group_notifiers
            .entry(group.name.clone())
            .or_insert_with(|| Notifier::new(group.notify.clone()));
        notifier.notify(&group.name, &state.to_string(), &reason);
    }
}
