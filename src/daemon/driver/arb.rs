//! The driver's side of the etcd arbiter: the [`Gate`] between the router's VIP actions
//! and the kernel, fed by the instance's etcd task (src/arbiter).

use std::time::{Duration, Instant};

use crate::arbiter::{ArbiterHandle, Gate, GateAction, View};
use crate::config::OnLoss;
use crate::control::message::ArbiterStatus;
use crate::vrrp::{AnnounceReason, Condition, State};

use super::Driver;

/// How long a stopping driver waits for etcd to confirm the release and the revoke.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The arbiter of one instance, as the driver holds it.
pub(super) struct Arb {
    pub(super) handle: ArbiterHandle,
    pub(super) gate: Gate,
    /// The master-elect episode has been logged.
    elect_logged: bool,
    /// No live lease, and `on-loss = hold` does not keep our VIPs: the router
    /// advertises priority 1 ([`Condition::NoLease`]), so a peer that reaches etcd takes
    /// over VRRP mastership and can claim the key once our lease has expired.
    pub(super) no_lease: bool,
    on_loss: crate::config::OnLoss,
}

impl Arb {
    pub(super) fn new(handle: ArbiterHandle, on_loss: crate::config::OnLoss) -> Self {
        Arb {
            handle,
            gate: Gate::new(on_loss),
            elect_logged: false,
            // Until the first lease is granted.
            no_lease: true,
            on_loss,
        }
    }
}

impl Driver {
    /// After the router's actions: tell the etcd task whether to campaign, and bring the
    /// VIPs in line with what the gate says. Returns whether the router's priority
    /// changed (the caller runs the router's actions again).
    pub(super) async fn arbiter_reconcile(&mut self) -> bool {
        let releasing = self.router.is_releasing();
        let now = Instant::now();
        let Some(a) = self.arb.as_mut() else {
            return false;
        };
        a.handle.set_want(a.gate.want_key(releasing));
        let view = a.handle.view();
        let actions = a.gate.update(now, &view, releasing);
        let key = a.handle.key().to_owned();
        let elect = a.gate.master_elect();
        let log_elect = elect && !a.elect_logged;
        a.elect_logged = elect;
        self.notifier.set_fencing_token(view.holds(now));
        if log_elect {
            tracing::info!(
                "MASTER-ELECT: VRRP master, VIPs not added until the arbiter key {key} is held ({})",
                view.detail.as_deref().unwrap_or("claiming")
            );
        }
        let no_lease = !(view.reachable || (a.on_loss == OnLoss::Hold && a.gate.vips_on()));
        let penalty_changed = no_lease != a.no_lease;
        if penalty_changed {
            a.no_lease = no_lease;
            if no_lease {
                tracing::warn!(
                    "arbiter: no live etcd lease ({}): advertising priority 1 so that a peer reaching etcd takes over",
                    view.detail.as_deref().unwrap_or("unreachable")
                );
            } else {
                tracing::info!("arbiter: etcd lease alive: advertising our own priority again");
            }
            self.router.set_condition(now, Condition::NoLease(no_lease));
        }
        for act in actions {
            match act {
                GateAction::AddVips { token } => {
                    tracing::info!(
                        "arbiter key {key} held (fencing token {}): adding VIPs",
                        token.map_or("-".to_owned(), |t| t.to_string())
                    );
                    self.change_vips(true).await;
                }
                GateAction::Announce => self.announce(AnnounceReason::Takeover),
                GateAction::MasterHook { reason, token } => {
                    self.notifier.set_fencing_token(token);
                    self.notifier.notify(&self.inst.name, "master", &reason);
                }
                GateAction::RemoveVips { why } => {
                    tracing::warn!("removing VIPs: {why}");
                    if self.router.state() == State::Master {
                        self.ctx.metrics.arbiter.vips_dropped(&self.inst.name);
                    }
                    self.stop_announcing();
                    self.change_vips(false).await;
                }
            }
        }
        penalty_changed
    }

    /// When the arbiter needs the driver to look again (lease deadline, step-down hold).
    pub(super) fn arbiter_timeout(&self) -> Option<Instant> {
        let a = self.arb.as_ref()?;
        a.gate.poll_timeout(&a.handle.view())
    }

    /// The router said AddVips.
    pub(super) fn arbiter_router_add(&mut self) -> bool {
        match self.arb.as_mut() {
            Some(a) => {
                a.gate.router_add();
                true
            }
            None => false,
        }
    }

    /// The router said RemoveVips.
    pub(super) fn arbiter_router_remove(&mut self) -> bool {
        // Stepping down on hearing a better master (not a fault, not a shutdown's end:
        // those leave the router in Fault or Init).
        let stepping_down = self.router.state() == State::Backup;
        match self.arb.as_mut() {
            Some(a) => {
                a.gate.router_remove(Instant::now(), stepping_down);
                true
            }
            None => false,
        }
    }

    /// Whether the router's Announce goes out now (without the arbiter: always).
    pub(super) fn arbiter_allows_announce(&self) -> bool {
        self.arb.as_ref().is_none_or(|a| a.gate.router_announce())
    }

    /// The router entered `to`: whether its hook runs now (a `master` hook waits for the
    /// key while master-elect).
    pub(super) fn arbiter_hook_now(&mut self, to: State, reason: &str) -> bool {
        let now = Instant::now();
        let Some(a) = self.arb.as_mut() else {
            return true;
        };
        self.notifier.set_fencing_token(a.handle.view().holds(now));
        if to == State::Master {
            a.gate.router_master(reason)
        } else {
            a.gate.router_not_master();
            true
        }
    }

    /// For `vipctl status`, and the metrics.
    pub(super) fn arbiter_status(&self) -> Option<ArbiterStatus> {
        let a = self.arb.as_ref()?;
        let now = Instant::now();
        let view: View = a.handle.view();
        let token = view.holds(now);
        let st = ArbiterStatus {
            holder: token.is_some(),
            reachable: view.reachable,
            fencing_token: token,
            key: a.handle.key().to_owned(),
            master_elect: a.gate.master_elect(),
            vips_held: a.gate.vips_on(),
            other_holder: view.other_holder.clone(),
            detail: view.detail.clone(),
            lease_ttl_ms: view.ttl.map(|d| d.as_millis() as u64),
        };
        self.ctx.metrics.arbiter.set(
            &self.inst.name,
            st.holder,
            st.reachable,
            st.master_elect,
            st.fencing_token,
        );
        Some(st)
    }

    /// On stop: give the key up and revoke the lease (bounded).
    pub(super) async fn arbiter_stop(&mut self) {
        if let Some(a) = self.arb.take() {
            a.handle.stop(STOP_WAIT).await;
        }
    }
}
