//! The VIP gate: between the VRRP router's wish to hold the VIPs and the kernel. Sans-IO.
//!
//! The router still elects and still says `AddVips` / `RemoveVips`; with the arbiter on,
//! the driver hands those to a [`Gate`], which decides when the VIPs really go on and
//! off:
//!
//! - **Claim**: VIPs go on only while the router wants them *and* we hold the key under
//!   a live lease ([`View::holds`]). A master without the key is *master-elect*: it
//!   advertises, adds nothing, and its announcements and `master` hook wait until the
//!   key is held (then the VIPs are added and announced at once).
//! - **Keep**: the VIPs come off at the lease deadline unless renewed (`on-loss =
//!   release`); with `on-loss = hold` they stay while etcd is unreachable and nobody else
//!   is seen holding the key.
//! - **Hand over**: a planned release (the router's make-before-break handover) gives up
//!   the key at its start but keeps the VIPs until the router removes them, as without
//!   the arbiter. A master that steps down on hearing a better master gives up the key
//!   at once and keeps the VIPs until the new holder's key appears (or
//!   [`STEP_DOWN_HOLD`]): the only overlap is on one link, agreed over VRRP.

use std::time::{Duration, Instant};

use super::etcd::View;
use crate::config::OnLoss;

/// Longest time a master that stepped down keeps its VIPs waiting for the new master to
/// hold the key.
pub const STEP_DOWN_HOLD: Duration = Duration::from_millis(500);

/// Once the new holder's key is seen, the old master keeps answering this much longer,
/// so that the new master's gratuitous ARP reaches clients first (as the router's own
/// make-before-break release does).
pub const HANDOVER_GRACE: Duration = crate::vrrp::RELEASE_GRACE;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAction {
    /// Add the VIPs: we hold the key.
    AddVips {
        /// The fencing token (always set: VIPs are only added while holding the key).
        token: Option<i64>,
    },
    /// Send the announcements that were held back while master-elect.
    Announce,
    /// Run the `master` hook that was held back while master-elect.
    MasterHook {
        /// The reason of the transition to master.
        reason: String,
        /// The fencing token.
        token: Option<i64>,
    },
    /// Remove the VIPs.
    RemoveVips {
        /// Why (for the log line).
        why: &'static str,
    },
}

/// The gate of one instance.
#[derive(Debug, Clone)]
pub struct Gate {
    on_loss: OnLoss,
    /// The router wants the VIPs on (between its AddVips and RemoveVips).
    router_wants: bool,
    /// The VIPs are on the interface.
    vips_on: bool,
    /// After a step-down: keep the VIPs until then, or until someone else holds.
    step_down_until: Option<Instant>,
    /// A `master` hook held back while master-elect.
    pending_master_hook: Option<String>,
    /// During a step-down hold: the new holder has been seen.
    new_holder_seen: bool,
    /// When [`Gate::update`] last ran: a deadline at or before it has been acted on.
    updated_at: Option<Instant>,
}

impl Gate {
    /// A gate with the VIPs off.
    pub fn new(on_loss: OnLoss) -> Self {
        Gate {
            on_loss,
            router_wants: false,
            vips_on: false,
            step_down_until: None,
            pending_master_hook: None,
            new_holder_seen: false,
            updated_at: None,
        }
    }

    /// Whether the VIPs are on.
    pub fn vips_on(&self) -> bool {
        self.vips_on
    }

    /// Whether the router wants the VIPs (it is master) but does not have them: the
    /// instance is master-elect.
    pub fn master_elect(&self) -> bool {
        self.router_wants && !self.vips_on
    }

    /// The router said `AddVips`.
    pub fn router_add(&mut self) {
        self.router_wants = true;
        self.step_down_until = None;
    }

    /// The router said `RemoveVips`. `stepping_down`: it became backup on hearing a
    /// better master (not a fault, not the end of a shutdown).
    pub fn router_remove(&mut self, now: Instant, stepping_down: bool) {
        self.router_wants = false;
        self.pending_master_hook = None;
        self.step_down_until = (stepping_down && self.vips_on).then(|| now + STEP_DOWN_HOLD);
        self.new_holder_seen = false;
    }

    /// The router said `Announce`: whether to announce now (false: held back until the
    /// VIPs are added, which announces them).
    pub fn router_announce(&self) -> bool {
        self.vips_on
    }

    /// The router became master for `reason`: whether to run the `master` hook now
    /// (false: held back until the VIPs are added).
    pub fn router_master(&mut self, reason: &str) -> bool {
        if self.vips_on {
            true
        } else {
            self.pending_master_hook = Some(reason.to_owned());
            false
        }
    }

    /// The router left master.
    pub fn router_not_master(&mut self) {
        self.pending_master_hook = None;
    }

    /// Whether to campaign for the key: the router wants the VIPs and is not handing
    /// over (`releasing`).
    pub fn want_key(&self, releasing: bool) -> bool {
        self.router_wants && !releasing
    }

    /// Brings the VIPs in line with the router and the arbiter at `now`.
    pub fn update(&mut self, now: Instant, view: &View, releasing: bool) -> Vec<GateAction> {
        self.updated_at = Some(now);
        let token = view.holds(now);
        if let Some(until) = self.step_down_until {
            if view.other_holder.is_some() && !self.new_holder_seen {
                self.new_holder_seen = true;
                self.step_down_until = Some(until.min(now + HANDOVER_GRACE));
            }
        }
        let target = if self.router_wants {
            token.is_some()
                || (self.vips_on && releasing)
                || (self.vips_on && self.on_loss == OnLoss::Hold && view.other_holder.is_none())
        } else {
            self.vips_on && self.step_down_until.is_some_and(|t| now < t)
        };
        let mut out = Vec::new();
        if target && !self.vips_on {
            self.vips_on = true;
            out.push(GateAction::AddVips { token });
            out.push(GateAction::Announce);
            if let Some(reason) = self.pending_master_hook.take() {
                out.push(GateAction::MasterHook { reason, token });
            }
        } else if !target && self.vips_on {
            self.vips_on = false;
            let why = if self.router_wants {
                if view.other_holder.is_some() {
                    "the arbiter key is held by another host"
                } else {
                    "the arbiter lease could not be renewed before its deadline"
                }
            } else if self.new_holder_seen {
                "the new master holds the arbiter key"
            } else if self.step_down_until.is_some() {
                "the new master did not take the arbiter key in time"
            } else {
                "VRRP released them"
            };
            self.step_down_until = None;
            out.push(GateAction::RemoveVips { why });
        }
        if !self.vips_on {
            self.step_down_until = None;
        }
        out
    }

    /// When [`Gate::update`] must run again at the latest (the lease deadline while the
    /// VIPs are on, the end of a step-down hold).
    pub fn poll_timeout(&self, view: &View) -> Option<Instant> {
        if !self.vips_on {
            return None;
        }
        // A deadline that an update at or after it has acted on is not returned again:
        // with `on-loss = "hold"` the VIPs stay after the lease deadline, and until etcd
        // answers the view still shows that past deadline; returning it would wake the
        // driver again at once, forever.
        let pending = |d: &Instant| self.updated_at.is_none_or(|u| *d > u);
        let deadline = view.held.map(|(_, d)| d).filter(pending);
        let step_down = self.step_down_until.filter(pending);
        match (deadline, step_down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn held(token: i64, until: Instant) -> View {
        View {
            held: Some((token, until)),
            reachable: true,
            ..View::default()
        }
    }

    fn none() -> View {
        View {
            reachable: true,
            ..View::default()
        }
    }

    fn other(who: &str) -> View {
        View {
            reachable: true,
            other_holder: Some(who.to_owned()),
            ..View::default()
        }
    }

    fn unreachable() -> View {
        View::default()
    }

    /// A gate whose router is master and whose key is held (token 3) until `until`.
    fn holding(on_loss: OnLoss, t0: Instant, until: Instant) -> Gate {
        let mut g = Gate::new(on_loss);
        g.router_add();
        g.update(t0, &held(3, until), false);
        g
    }

    /// The gate's answer when it removes the VIPs, for `why`.
    fn removes(why: &'static str) -> Vec<GateAction> {
        vec![GateAction::RemoveVips { why }]
    }

    /// Nothing up to just before `at`, then `then` at `at`: a deadline, checked on both
    /// sides.
    fn assert_deadline(g: &mut Gate, at: Instant, v: &View, then: Vec<GateAction>) {
        assert_eq!(g.update(at - ms(1), v, false), vec![]);
        assert_eq!(g.update(at, v, false), then);
    }

    const DROPPED_FOR_NEW_HOLDER: GateAction = GateAction::RemoveVips {
        why: "the new master holds the arbiter key",
    };

    #[test]
    fn semantics_1_master_elect_adds_nothing_until_the_key_is_held() {
        let t0 = Instant::now();
        let mut g = Gate::new(OnLoss::Release);
        g.router_add();
        assert!(!g.router_announce(), "announcements wait for the key");
        assert!(!g.router_master("preempting"));
        assert!(g.want_key(false));
        assert_eq!(g.update(t0, &other("lb1"), false), vec![]);
        assert!(g.master_elect());
        let acts = g.update(t0 + ms(5), &held(7, t0 + ms(900)), false);
        assert_eq!(
            acts,
            vec![
                GateAction::AddVips { token: Some(7) },
                GateAction::Announce,
                GateAction::MasterHook {
                    reason: "preempting".into(),
                    token: Some(7)
                }
            ]
        );
        assert!(!g.master_elect());
        assert!(g.router_announce());
    }

    #[test]
    fn semantics_2_release_drops_at_the_deadline() {
        let t0 = Instant::now();
        let mut g = Gate::new(OnLoss::Release);
        g.router_add();
        let v = held(3, t0 + ms(880));
        g.update(t0, &v, false);
        assert_eq!(g.poll_timeout(&v), Some(t0 + ms(880)));
        assert_deadline(
            &mut g,
            t0 + ms(880),
            &v,
            removes("the arbiter lease could not be renewed before its deadline"),
        );
        assert!(g.master_elect());
    }

    #[test]
    fn semantics_2_hold_keeps_while_etcd_is_unreachable_and_drops_for_another_holder() {
        let t0 = Instant::now();
        let mut g = holding(OnLoss::Hold, t0, t0 + ms(880));
        assert_eq!(g.update(t0 + ms(5000), &unreachable(), false), vec![]);
        assert!(g.vips_on());
        // etcd back, a fresh lease, the key not yet re-claimed: still kept.
        assert_eq!(g.update(t0 + ms(6000), &none(), false), vec![]);
        // Someone else holds it: now they go.
        assert_eq!(
            g.update(t0 + ms(6100), &other("lb2"), false),
            removes("the arbiter key is held by another host")
        );
    }

    #[test]
    fn hold_past_the_lease_deadline_asks_for_no_wake_up_it_has_already_had() {
        let t0 = Instant::now();
        let until = t0 + ms(880);
        let mut g = holding(OnLoss::Hold, t0, until);
        let view = held(3, until);
        assert_eq!(g.poll_timeout(&view), Some(until));
        // Woken at the deadline: hold keeps the VIPs, and the view (etcd unreachable, so
        // not refreshed) still shows the deadline. It must not be asked for again: the
        // driver would wake at once, over and over (it starved its runtime in CI).
        assert_eq!(g.update(until, &view, false), vec![]);
        assert!(g.vips_on());
        assert_eq!(g.poll_timeout(&view), None);
        // A renewed lease gives a new deadline ahead.
        let later = until + ms(2000);
        assert_eq!(g.poll_timeout(&held(3, later)), Some(later));
    }

    #[test]
    fn hold_never_adds_without_the_key() {
        let t0 = Instant::now();
        let mut g = Gate::new(OnLoss::Hold);
        g.router_add();
        assert_eq!(g.update(t0, &unreachable(), false), vec![]);
        assert!(!g.vips_on());
    }

    #[test]
    fn semantics_3_planned_release_keeps_the_vips_without_the_key() {
        let t0 = Instant::now();
        let mut g = holding(OnLoss::Release, t0, t0 + ms(880));
        // Handover starts: the key is given up...
        assert!(!g.want_key(true));
        // ... and the VIPs stay, past the old deadline too, until the router removes them.
        assert_eq!(g.update(t0 + ms(10), &none(), true), vec![]);
        assert_eq!(g.update(t0 + ms(2000), &other("lb2"), true), vec![]);
        g.router_remove(t0 + ms(2100), true);
        // The router already waited for the new master and its grace; ours follows.
        assert_eq!(g.update(t0 + ms(2100), &other("lb2"), false), vec![]);
        assert_eq!(
            g.update(t0 + ms(2100) + HANDOVER_GRACE, &other("lb2"), false),
            vec![DROPPED_FOR_NEW_HOLDER]
        );
    }

    #[test]
    fn semantics_3_step_down_keeps_until_the_new_holder_appears() {
        let t0 = Instant::now();
        let mut g = holding(OnLoss::Release, t0, t0 + ms(880));
        g.router_remove(t0 + ms(100), true);
        assert!(!g.want_key(false), "the key is given up at once");
        assert_eq!(g.update(t0 + ms(100), &none(), false), vec![]);
        assert_eq!(g.poll_timeout(&none()), Some(t0 + ms(100) + STEP_DOWN_HOLD));
        // The new holder appears: we keep answering HANDOVER_GRACE more, then drop.
        assert_eq!(g.update(t0 + ms(120), &other("lb2"), false), vec![]);
        assert_eq!(
            g.poll_timeout(&other("lb2")),
            Some(t0 + ms(120) + HANDOVER_GRACE)
        );
        let grace_end = t0 + ms(120) + HANDOVER_GRACE;
        assert_deadline(
            &mut g,
            grace_end,
            &other("lb2"),
            vec![DROPPED_FOR_NEW_HOLDER],
        );
    }

    #[test]
    fn step_down_hold_is_bounded() {
        let t0 = Instant::now();
        let mut g = holding(OnLoss::Release, t0, t0 + ms(5000));
        g.router_remove(t0, true);
        assert_deadline(
            &mut g,
            t0 + STEP_DOWN_HOLD,
            &none(),
            removes("the new master did not take the arbiter key in time"),
        );
    }

    #[test]
    fn fault_or_shutdown_removes_at_once() {
        let t0 = Instant::now();
        let mut g = holding(OnLoss::Hold, t0, t0 + ms(880));
        g.router_remove(t0 + ms(1), false);
        assert_eq!(
            g.update(t0 + ms(1), &held(3, t0 + ms(880)), false),
            removes("VRRP released them")
        );
    }

    #[test]
    fn a_backup_never_adds() {
        let t0 = Instant::now();
        let mut g = Gate::new(OnLoss::Release);
        assert_eq!(g.update(t0, &held(3, t0 + ms(880)), false), vec![]);
        assert!(!g.want_key(false));
    }

    #[test]
    fn leaving_master_drops_a_held_back_hook() {
        let t0 = Instant::now();
        let mut g = Gate::new(OnLoss::Release);
        g.router_add();
        assert!(!g.router_master("master down"));
        g.router_remove(t0, true);
        g.router_not_master();
        g.router_add();
        let acts = g.update(t0 + ms(1), &held(9, t0 + ms(900)), false);
        assert!(!acts
            .iter()
            .any(|a| matches!(a, GateAction::MasterHook { .. })));
    }
}
