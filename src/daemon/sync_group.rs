//! Sync groups: fault and penalty propagation between members, the group's state and
//! notify hooks, and split detection.
//!
//! [`SyncGroups`] decides on plain values (member reports, the group list, the time
//! passed in) and is unit-tested without drivers; the supervisor glue at the end of
//! this file sends its decisions to the drivers, logs them and runs the hooks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::SyncGroup;
use crate::track::Notifier;
use crate::vrrp::State;

use super::driver::{Input, MemberReport};
use super::Supervisor;

/// What a member is told by its group: a fault reason (another member's own fault) and
/// the largest check penalty of any member.
pub(super) type GroupInputs = (Option<String>, u32);

/// The group's state changed: its notify hooks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupChange {
    /// Group name.
    pub(super) group: String,
    /// The group's new state.
    pub(super) state: State,
    /// Why (the members' states).
    pub(super) reason: String,
}

/// What split detection has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SplitNotice {
    /// The group has been split across hosts for longer than a takeover takes.
    Split {
        /// Group name.
        group: String,
        /// Each member with its state, e.g. `web MASTER`.
        detail: String,
    },
    /// A split that was warned about is over.
    Together {
        /// Group name.
        group: String,
    },
}

/// The sync groups' state: the configured groups, the last report of each member, and
/// what was decided from them.
#[derive(Default)]
pub(super) struct SyncGroups {
    groups: Vec<SyncGroup>,
    /// The last report of each member (also of instances in no group: membership can
    /// change on reload without a rebuild).
    members: HashMap<String, MemberReport>,
    /// Each group's state as last computed (hooks run when it changes).
    states: HashMap<String, State>,
    notifiers: HashMap<String, Notifier>,
    /// What each driver was last told (fault, penalty).
    sent: HashMap<String, GroupInputs>,
    /// Groups with members both master and backup here: since when, and whether warned.
    split: HashMap<String, (Instant, bool)>,
}

/// A group is master when every member is, fault when any member is, init while all
/// are, else backup; `None` while a member has not reported yet.
pub(super) fn group_state(states: &[Option<State>]) -> Option<State> {
    if states.iter().any(|s| s.is_none()) {
        return None;
    }
    Some(if states.iter().all(|s| *s == Some(State::Master)) {
        State::Master
    } else if states.contains(&Some(State::Fault)) {
        State::Fault
    } else if states.iter().all(|s| *s == Some(State::Init)) {
        State::Init
    } else {
        State::Backup
    })
}

impl SyncGroups {
    pub(super) fn new(groups: Vec<SyncGroup>) -> Self {
        SyncGroups {
            groups,
            ..SyncGroups::default()
        }
    }

    /// The group `instance` belongs to.
    pub(super) fn group_of(&self, instance: &str) -> Option<&SyncGroup> {
        self.groups
            .iter()
            .find(|g| g.instances.iter().any(|m| m == instance))
    }

    /// Records a member's report; returns the change of its group's state, if any.
    pub(super) fn record(&mut self, report: MemberReport) -> Option<GroupChange> {
        let name = report.instance.clone();
        self.members.insert(name.clone(), report);
        let group = self.group_of(&name)?.clone();
        let states: Vec<Option<State>> = group
            .instances
            .iter()
            .map(|m| self.members.get(m).map(|r| r.state))
            .collect();
        let state = group_state(&states)?;
        let previous = self.states.insert(group.name.clone(), state);
        if previous == Some(state) || state == State::Init {
            return None;
        }
        let detail: Vec<String> = group
            .instances
            .iter()
            .zip(&states)
            .map(|(m, s)| format!("{m} {}", s.map(|s| s.to_string()).unwrap_or_default()))
            .collect();
        Some(GroupChange {
            group: group.name.clone(),
            state,
            reason: format!("members: {}", detail.join(", ")),
        })
    }

    /// What `name` should be told: another member's own fault puts it in fault; the
    /// largest check penalty of any member applies to it, so the group moves as one.
    /// An instance in no group gets neither (it may have left a group in a reload).
    pub(super) fn inputs_for(&self, name: &str) -> GroupInputs {
        let Some(group) = self.group_of(name) else {
            return (None, 0);
        };
        let fault = group.instances.iter().filter(|o| *o != name).find_map(|o| {
            self.members.get(o).and_then(|r| {
                r.own_fault
                    .as_ref()
                    .map(|f| format!("sync group {}: {o} is in fault ({f})", group.name))
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

    /// The inputs of each of `running` that differ from what it was last told.
    pub(super) fn changed_inputs<'a>(
        &self,
        running: impl Iterator<Item = &'a str>,
    ) -> Vec<(String, GroupInputs)> {
        running
            .filter_map(|name| {
                let want = self.inputs_for(name);
                // A driver starts with neither (see `driver_started`).
                let told = self.sent.get(name).cloned().unwrap_or_default();
                (told != want).then(|| (name.to_string(), want))
            })
            .collect()
    }

    /// `name`'s driver has been told `inputs`.
    pub(super) fn told(&mut self, name: String, inputs: GroupInputs) {
        self.sent.insert(name, inputs);
    }

    /// A new driver for `name` starts without a group's fault or penalty.
    pub(super) fn driver_started(&mut self, name: &str) {
        self.sent.remove(name);
    }

    /// `name`'s driver is gone (it crashed): its report no longer holds.
    pub(super) fn forget_member(&mut self, name: &str) {
        self.members.remove(name);
    }

    /// A reload: the new groups and the instances that are still configured. Changed
    /// groups start over (their state and hooks); reports of removed instances go.
    pub(super) fn reconfigure(&mut self, groups: Vec<SyncGroup>, instances: &[&str]) {
        if self.groups != groups {
            self.notifiers.clear();
            self.states.clear();
        }
        self.groups = groups;
        self.members
            .retain(|name, _| instances.contains(&name.as_str()));
        let names: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        self.split.retain(|name, _| names.contains(name));
    }

    /// A group whose members here are partly master and partly backup for longer than
    /// `patience(group)` is split across hosts: one member lost an election the others
    /// did not (members with different priorities on a peer, say). vipd cannot tell
    /// which side is right, so it says so once per split, and once when it is over.
    pub(super) fn watch_splits(
        &mut self,
        now: Instant,
        patience: impl Fn(&SyncGroup) -> Duration,
    ) -> Vec<SplitNotice> {
        let mut notices = Vec::new();
        for g in &self.groups {
            let states: Vec<(&String, State)> = g
                .instances
                .iter()
                .filter_map(|m| self.members.get(m).map(|r| (m, r.state)))
                .collect();
            let split = states.iter().any(|(_, s)| *s == State::Master)
                && states.iter().any(|(_, s)| *s == State::Backup);
            if !split {
                if let Some((_, true)) = self.split.remove(&g.name) {
                    notices.push(SplitNotice::Together {
                        group: g.name.clone(),
                    });
                }
                continue;
            }
            let (since, warned) = self.split.entry(g.name.clone()).or_insert((now, false));
            if !*warned && now.duration_since(*since) >= patience(g) {
                *warned = true;
                let detail: Vec<String> = states.iter().map(|(m, s)| format!("{m} {s}")).collect();
                notices.push(SplitNotice::Split {
                    group: g.name.clone(),
                    detail: detail.join(", "),
                });
            }
        }
        notices
    }

    /// Runs the group's notify hooks for `change`.
    pub(super) fn run_hooks(&mut self, change: &GroupChange) {
        let Some(group) = self.groups.iter().find(|g| g.name == change.group) else {
            return;
        };
        let notifier = self
            .notifiers
            .entry(group.name.clone())
            .or_insert_with(|| Notifier::new(group.notify.clone()));
        notifier.notify(&group.name, &change.state.to_string(), &change.reason);
    }
}

// ----- supervisor glue ----------------------------------------------------------------

impl Supervisor {
    /// A member reported its state, own fault or own penalty.
    pub(super) fn handle_member(&mut self, report: MemberReport) {
        if let Some(change) = self.groups.record(report) {
            tracing::info!(
                "sync group {}: now {} ({})",
                change.group,
                change.state.to_string().to_uppercase(),
                change.reason
            );
            self.groups.run_hooks(&change);
        }
        self.send_group_inputs();
    }

    /// Sends each running driver its group's fault and penalty when they changed. A
    /// driver whose queue is closed gets them on a later call (every member report, and
    /// every supervisor tick).
    pub(super) fn send_group_inputs(&mut self) {
        let changed = self.groups.changed_inputs(self.instances.running_names());
        for (name, want) in changed {
            if let Some(d) = self.instances.running(&name) {
                let ok1 = d.ctl.send(Input::GroupFault(want.0.clone())).is_ok();
                let ok2 = d.ctl.send(Input::GroupPenalty(want.1)).is_ok();
                if ok1 && ok2 {
                    self.groups.told(name, want);
                }
            }
        }
    }

    /// Logs what split detection finds. Patience: two takeovers' worth of the slowest
    /// running member, plus the tick.
    pub(super) fn watch_group_splits(&mut self) {
        let instances = &self.instances;
        let notices = self.groups.watch_splits(Instant::now(), |g| {
            g.instances
                .iter()
                .filter_map(|m| instances.running(m))
                .map(|d| 8 * d.instance.advert_interval.as_duration())
                .max()
                .unwrap_or_default()
                + Duration::from_secs(1)
        });
        for n in notices {
            match n {
                SplitNotice::Together { group } => {
                    tracing::info!("sync group {group}: members are together again");
                }
                SplitNotice::Split { group, detail } => tracing::warn!(
                    "sync group {group} is split across hosts ({detail}): a member lost an election the others did not; give the members the same priorities on each host"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, members: &[&str]) -> SyncGroup {
        SyncGroup {
            name: name.into(),
            instances: members.iter().map(|m| m.to_string()).collect(),
            notify: Default::default(),
        }
    }

    fn report(name: &str, state: State, fault: Option<&str>, penalty: u32) -> MemberReport {
        MemberReport {
            instance: name.into(),
            own_fault: fault.map(String::from),
            own_penalty: penalty,
            state,
        }
    }

    fn groups() -> SyncGroups {
        SyncGroups::new(vec![group("g", &["web", "db"])])
    }

    #[test]
    fn a_members_own_fault_puts_the_other_members_in_fault_but_not_itself() {
        let mut g = groups();
        g.record(report("web", State::Fault, Some("link down on eth0"), 0));
        g.record(report("db", State::Master, None, 0));
        assert_eq!(
            g.inputs_for("db"),
            (
                Some("sync group g: web is in fault (link down on eth0)".into()),
                0
            )
        );
        assert_eq!(g.inputs_for("web"), (None, 0));
    }

    #[test]
    fn the_largest_penalty_of_any_member_applies_to_every_member() {
        let mut g = groups();
        g.record(report("web", State::Backup, None, 30));
        g.record(report("db", State::Backup, None, 10));
        assert_eq!(g.inputs_for("web"), (None, 30));
        assert_eq!(g.inputs_for("db"), (None, 30));
    }

    #[test]
    fn an_instance_in_no_group_gets_neither_fault_nor_penalty() {
        let mut g = groups();
        g.record(report("web", State::Fault, Some("x"), 50));
        assert_eq!(g.inputs_for("other"), (None, 0));
    }

    #[test]
    fn only_changed_inputs_are_sent_and_a_new_driver_is_told_again() {
        let mut g = groups();
        g.record(report("web", State::Backup, None, 20));
        let names = ["web", "db"];
        let changed = g.changed_inputs(names.iter().copied());
        assert_eq!(changed.len(), 2);
        for (n, i) in changed {
            g.told(n, i);
        }
        assert!(g.changed_inputs(names.iter().copied()).is_empty());
        g.driver_started("db");
        assert_eq!(
            g.changed_inputs(names.iter().copied()),
            vec![("db".to_string(), (None, 20))]
        );
    }

    #[test]
    fn group_state_is_master_only_when_every_member_is() {
        use State::*;
        assert_eq!(group_state(&[Some(Master), Some(Master)]), Some(Master));
        assert_eq!(group_state(&[Some(Master), Some(Backup)]), Some(Backup));
        assert_eq!(group_state(&[Some(Master), Some(Fault)]), Some(Fault));
        assert_eq!(group_state(&[Some(Init), Some(Init)]), Some(Init));
        assert_eq!(group_state(&[Some(Master), None]), None);
    }

    #[test]
    fn hooks_run_once_per_group_state_change_and_not_for_init() {
        let mut g = groups();
        assert_eq!(g.record(report("web", State::Init, None, 0)), None);
        assert_eq!(g.record(report("db", State::Init, None, 0)), None);
        assert_eq!(
            g.record(report("web", State::Master, None, 0))
                .map(|c| c.state),
            Some(State::Backup)
        );
        let c = g
            .record(report("db", State::Master, None, 0))
            .expect("change");
        assert_eq!(c.state, State::Master);
        assert_eq!(c.reason, "members: web master, db master");
        // The same state again: no hook.
        assert_eq!(g.record(report("db", State::Master, None, 5)), None);
        // An instance in no group never changes a group.
        assert_eq!(g.record(report("other", State::Master, None, 0)), None);
    }

    /// `web` master and `db` backup from `t0`; patience 2 s.
    fn split_from_t0() -> (
        SyncGroups,
        impl Fn(&mut SyncGroups, u64) -> Vec<SplitNotice>,
    ) {
        let mut g = groups();
        g.record(report("web", State::Master, None, 0));
        g.record(report("db", State::Backup, None, 0));
        let t0 = Instant::now();
        let at = move |g: &mut SyncGroups, secs: u64| {
            g.watch_splits(t0 + Duration::from_secs(secs), |_| Duration::from_secs(2))
        };
        (g, at)
    }

    #[test]
    fn a_split_is_reported_once_after_patience_and_once_when_over() {
        let (mut g, at) = split_from_t0();
        assert!(at(&mut g, 0).is_empty());
        assert!(at(&mut g, 1).is_empty());
        assert_eq!(
            at(&mut g, 2),
            vec![SplitNotice::Split {
                group: "g".into(),
                detail: "web master, db backup".into()
            }]
        );
        assert!(at(&mut g, 3).is_empty());
        g.record(report("db", State::Master, None, 0));
        assert_eq!(
            at(&mut g, 4),
            vec![SplitNotice::Together { group: "g".into() }]
        );
        assert!(at(&mut g, 5).is_empty());
    }

    #[test]
    fn a_short_split_during_a_takeover_is_not_reported() {
        let (mut g, at) = split_from_t0();
        assert!(at(&mut g, 0).is_empty());
        g.record(report("db", State::Master, None, 0));
        assert!(at(&mut g, 1).is_empty());
        g.record(report("db", State::Backup, None, 0));
        // The split starts over: patience counts from here.
        assert!(at(&mut g, 2).is_empty());
        assert!(at(&mut g, 3).is_empty());
        assert_eq!(at(&mut g, 4).len(), 1);
    }

    #[test]
    fn reconfigure_forgets_removed_instances_and_restarts_changed_groups() {
        let mut g = groups();
        g.record(report("web", State::Master, None, 0));
        g.record(report("db", State::Master, None, 0));
        g.reconfigure(vec![group("g", &["web", "db"])], &["web"]);
        // db's report is gone: the group's state is unknown until it reports again.
        assert_eq!(g.record(report("web", State::Master, None, 0)), None);
        g.reconfigure(vec![group("g", &["web"])], &["web"]);
        // A changed group starts over: its state is computed (and hooked) again.
        assert_eq!(
            g.record(report("web", State::Master, None, 0))
                .map(|c| c.state),
            Some(State::Master)
        );
    }
}
