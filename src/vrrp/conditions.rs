//! Where a fault or a priority penalty comes from, and how they combine: the
//! arbitration the driver used to do, as plain values the router owns.
//!
//! Every source is set on its own ([`Condition`], one event = one source), so a change
//! in one never passes through an intermediate state of the others.
//!
//! * **Fault**: the first of link down, failing `weight = 0` check, VIP that could not
//!   be added (the instance's own faults, in that order), then the sync group's (another
//!   member is in fault). Any of them puts the router in Fault.
//! * **Penalty**: the larger of the checks' penalty and the sync group's (the group
//!   applies its largest member penalty to every member), plus [`NO_LEASE_PENALTY`]
//!   while the arbiter has no live etcd lease: priority 1, so that a peer that reaches
//!   etcd takes over VRRP mastership and can claim the key once our lease expired.

/// Priority penalty while the arbiter has no live lease: any priority minus this is
/// clamped to 1.
pub const NO_LEASE_PENALTY: u32 = 254;

/// One source's new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The interface's link: `Some(text)` while down.
    Link(Option<String>),
    /// The instance's health checks: the sum of the failing weights and the fault of a
    /// failing `weight = 0` check.
    Checks {
        /// Sum of the weights of the failing checks.
        penalty: u32,
        /// A failing check that puts the instance in Fault.
        fault: Option<String>,
    },
    /// A VIP could not be added (`Some`); `None` once the retry may go ahead.
    VipAdd(Option<String>),
    /// The sync group: another member is in fault.
    GroupFault(Option<String>),
    /// The sync group: the largest penalty among its members.
    GroupPenalty(u32),
    /// The arbiter: `true` while there is no live etcd lease and our VIPs are not kept
    /// by `on-loss = hold` (advertise priority 1).
    NoLease(bool),
}

/// The current value of every source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    link: Option<String>,
    pub(super) checks_penalty: u32,
    pub(super) checks_fault: Option<String>,
    vip_add: Option<String>,
    group_fault: Option<String>,
    group_penalty: u32,
    no_lease: bool,
}

impl Conditions {
    /// Apply one source's new value.
    pub fn set(&mut self, c: Condition) {
        match c {
            Condition::Link(f) => self.link = f,
            Condition::Checks { penalty, fault } => {
                self.checks_penalty = penalty;
                self.checks_fault = fault;
            }
            Condition::VipAdd(f) => self.vip_add = f,
            Condition::GroupFault(f) => self.group_fault = f,
            Condition::GroupPenalty(p) => self.group_penalty = p,
            Condition::NoLease(on) => self.no_lease = on,
        }
    }

    /// The instance's own fault (what its sync group hears): link, checks, VIP add.
    pub fn own_fault(&self) -> Option<&str> {
        self.link
            .as_deref()
            .or(self.checks_fault.as_deref())
            .or(self.vip_add.as_deref())
    }

    /// The fault the router is in: its own, else the sync group's.
    pub fn fault(&self) -> Option<&str> {
        self.own_fault().or(self.group_fault.as_deref())
    }

    /// The instance's own penalty (what its sync group hears): its checks'.
    pub fn own_penalty(&self) -> u32 {
        self.checks_penalty
    }

    /// The penalty the router applies: max(checks, group), plus [`NO_LEASE_PENALTY`]
    /// without a live lease.
    pub fn penalty(&self) -> u32 {
        let lease = if self.no_lease { NO_LEASE_PENALTY } else { 0 };
        self.checks_penalty
            .max(self.group_penalty)
            .saturating_add(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Option<String> {
        Some(t.to_owned())
    }

    #[test]
    fn own_faults_come_first_in_order_link_checks_vip_then_the_group() {
        let mut c = Conditions::default();
        assert_eq!(c.fault(), None);
        c.set(Condition::GroupFault(s("sync group g: b is in fault")));
        assert_eq!(c.fault(), Some("sync group g: b is in fault"));
        assert_eq!(c.own_fault(), None);
        c.set(Condition::VipAdd(s("cannot add 192.0.2.100/24")));
        assert_eq!(c.fault(), Some("cannot add 192.0.2.100/24"));
        c.set(Condition::Checks {
            penalty: 0,
            fault: s("check web failing"),
        });
        assert_eq!(c.fault(), Some("check web failing"));
        c.set(Condition::Link(s("link down on eth0")));
        assert_eq!(c.fault(), Some("link down on eth0"));
        assert_eq!(c.own_fault(), Some("link down on eth0"));
        c.set(Condition::Link(None));
        assert_eq!(c.fault(), Some("check web failing"));
        c.set(Condition::Checks {
            penalty: 0,
            fault: None,
        });
        c.set(Condition::VipAdd(None));
        assert_eq!(c.own_fault(), None);
        assert_eq!(c.fault(), Some("sync group g: b is in fault"));
        c.set(Condition::GroupFault(None));
        assert_eq!(c.fault(), None);
    }

    #[test]
    fn penalty_is_the_larger_of_checks_and_group_plus_the_lease() {
        let mut c = Conditions::default();
        c.set(Condition::Checks {
            penalty: 20,
            fault: None,
        });
        c.set(Condition::GroupPenalty(30));
        assert_eq!(c.penalty(), 30);
        assert_eq!(c.own_penalty(), 20);
        c.set(Condition::GroupPenalty(10));
        assert_eq!(c.penalty(), 20);
        c.set(Condition::NoLease(true));
        assert_eq!(c.penalty(), 20 + NO_LEASE_PENALTY);
        c.set(Condition::NoLease(false));
        assert_eq!(c.penalty(), 20);
    }
}
