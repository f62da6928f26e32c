//! The [`Router`]: one virtual router's state machine (RFC 5798 §6).
//!
//! What the router knows depends on its state, and the types say so (the shape of
//! quinn-proto's connection `State`): [`Phase`] carries each state's own data, so a
//! master-down timer exists only in Backup, an advert timer, a release or a claim
//! only in Master, and a fault text only in Fault. Leaving a state drops its timers.
//!
//! The transitions are in `transitions.rs`, what an advert does in each state in
//! `receive.rs`, the per-state data in `phase.rs`; this file has the inputs, outputs
//! and getters.
//!
//! Longer than 600 lines on purpose: it is the one public face of the core (every input,
//! output and getter of [`Router`], each a few lines with its RFC reference); the logic
//! behind them is in the three files above.

mod phase;
mod receive;
mod transitions;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::conditions::{Condition, Conditions};
use super::timers;
use super::{Action, AnnounceReason, Reason, RecvDrop, RecvFilter, RouterConfig, State};
use crate::proto::{Advert, Centis, Version};
use phase::takeover_reason;
use phase::{BfdPending, Master, Phase, ReleaseKind, Role};
use receive::same_addr_set;

/// How long a releasing master keeps its VIPs after hearing the new master. The new
/// master sends its advert before it adds the VIPs and announces them; clients move
/// only when the announcement reaches them, so the old master keeps answering a little
/// longer than that. Also how long a preempting backup holds and announces the VIPs
/// before its first advert makes the old master drop them. Not an RFC timer: it is what
/// makes planned handovers lossless.
pub const RELEASE_GRACE: Duration = Duration::from_millis(100);

/// The longest a make-before-break release (shutdown or maintenance) can last for a
/// master that advertises every `advert_interval`: the deadline set when it begins
/// (Master_Down_Interval, longest at the lowest priority), plus [`RELEASE_GRACE`] when
/// the new master is heard just before it. The supervisor waits this long for the
/// handovers when vipd stops.
pub fn release_limit(version: Version, advert_interval: Centis) -> Duration {
    timers::master_down_interval(version, 1, advert_interval) + RELEASE_GRACE
}

/// The shortest hold-down of BFD verdicts after a BFD takeover was undone by adverts
/// (the hold-down is the larger of this and 3 x Master_Down_Interval).
pub const BFD_HOLD_DOWN_MIN: Duration = Duration::from_secs(10);

/// One virtual router (one VRID, one address family): RFC 5798 §6, sans-IO.
///
/// Inputs are the `handle_*` and `set_*` methods, which all take `now`; outputs are
/// pulled with [`Router::poll_action`] and [`Router::poll_timeout`].
///
/// # Readings of the RFC that are ours
///
/// * **Preempt delay.** With `preempt` on, a backup still *accepts* adverts from a
///   lower-priority master (resetting its master-down timer, as if preempt were off)
///   until `preempt_delay` has passed since it entered Backup. After that it ignores
///   them, so it takes over `Master_Down_Interval` after the last advert it accepted.
/// * **Address owner.** A base priority of 255 always gives effective priority 255,
///   whatever the override, penalty or maintenance, and it always preempts
///   (RFC 5798 §6.1, note on Preempt_Mode). Maintenance is therefore a no-op for it.
/// * **Maintenance.** Turning it on while Master starts the make-before-break
///   release and ends in Backup at priority 1. Priority 1 is still a priority: if no
///   other router is there, the master-down timer makes us Master again
///   (RFC 5798 §6.4.2), so the service is never abandoned for good.
/// * **Address list mismatch** (RFC 5798 §7.1, a MAY check) does not drop the
///   advert: a rolling reload that adds a VIP would otherwise give two masters. It is
///   counted in [`Router::address_list_mismatches`] for the driver to log.
/// * The §7.1 rule that an address owner discards all adverts is not applied: the
///   owner answers a lower-priority master at once (RFC 9568), which heals faster.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    filter: RecvFilter,
    /// The state and what it knows.
    phase: Phase,
    /// The Startup event happened (a fault that clears runs startup again).
    started: bool,
    /// [`Action::Released`] was emitted: the router does nothing more.
    released: bool,
    base: u8,
    override_priority: Option<u8>,
    /// The sources of fault and penalty; the priority and the Fault phase follow them.
    conditions: Conditions,
    maintenance: bool,
    addr_mismatches: u64,
    // Rate limits and the BFD hold-down outlive a state on purpose: a pair that flaps
    // between states must not answer, announce or trust BFD more often for it.
    /// When we last answered another router's advert out of turn (a lower priority or
    /// priority 0 heard while master): at most once per advert interval.
    last_answer: Option<Instant>,
    /// When we last re-announced because another router sent priority 0 while we
    /// were master: at most once per Master_Down_Interval.
    last_zero_announce: Option<Instant>,
    /// BFD verdicts are ignored until then (a BFD takeover was undone by adverts).
    bfd_hold_until: Option<Instant>,
    /// The advert grid's epoch ([`Router::set_advert_grid`]); `None`: every periodic
    /// advert one interval after the previous one was sent.
    advert_epoch: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Router {
    /// A router in Init; nothing happens until [`Router::start`].
    pub fn new(cfg: RouterConfig) -> Self {
        let base = cfg.priority.max(1);
        Router {
            filter: RecvFilter::new(&cfg),
            cfg,
            phase: Phase::Init { master: None },
            started: false,
            released: false,
            base,
            override_priority: None,
            conditions: Conditions::default(),
            maintenance: false,
            addr_mismatches: 0,
            last_answer: None,
            last_zero_announce: None,
            bfd_hold_until: None,
            advert_epoch: None,
            actions: VecDeque::new(),
        }
    }

    /// Puts the master's periodic adverts on a grid: `epoch + k * Advertisement_Interval`
    /// (see [`crate::vrrp::next_on_grid`]). Routers given the same epoch and interval send
    /// on the same instants, so one wake-up (and one batch of sends) serves them all.
    ///
    /// RFC 5798 §6.4.3 wants an advert every Advertisement_Interval: once on the grid
    /// that is what happens. Only the first periodic advert after one sent off the grid
    /// (a takeover, an answer out of turn) moves, to between half an interval and one
    /// and a half intervals after it (Master_Down_Interval is over three intervals).
    /// A backup's timers are never touched. `None` turns the grid off.
    pub fn set_advert_grid(&mut self, epoch: Option<Instant>) {
        self.advert_epoch = epoch;
    }

    // ----- inputs -------------------------------------------------------------

    /// RFC 5798 §6.4.1: the Startup event. Ignored if already started, after
    /// shutdown, or (until the fault clears) while in Fault.
    pub fn start(&mut self, now: Instant) {
        if self.released || self.started {
            return;
        }
        self.started = true;
        if matches!(self.phase, Phase::Init { .. }) {
            self.startup(now);
        }
    }

    /// A received advert. `ttl` is the IPv4 TTL / IPv6 hop limit it arrived with.
    ///
    /// Returns `Err` when the advert is dropped by a receive check (count it);
    /// `Ok` when it passed them, whether or not it changed anything.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        from: IpAddr,
        ttl: u8,
        adv: &Advert,
    ) -> Result<(), RecvDrop> {
        self.filter.check(from, ttl, adv)?;
        if self.released {
            return Ok(());
        }
        // RFC 5798 §7.1: MAY verify the address list; we count, we do not drop.
        if !same_addr_set(&adv.addrs, &self.cfg.vips) {
            self.addr_mismatches = self.addr_mismatches.saturating_add(1);
        }
        match &self.phase {
            Phase::Init { .. } | Phase::Fault => {}
            Phase::Backup(b) => {
                // Ours: only the master we follow can leave. A priority 0 from anyone
                // else (a stranger, or a router that was never master) would make us
                // take over after Skew_Time while the master still advertises.
                // Not a receive-check failure (it is a valid advert), so not a drop.
                if adv.priority == 0 && b.master.is_some_and(|m| m != from) {
                    return Ok(());
                }
                self.backup_rx(now, from, adv);
            }
            Phase::Master(m) if matches!(m.role, Role::Releasing(_)) => {
                self.release_rx(now, from, adv)
            }
            Phase::Master(_) => self.master_rx(now, from, adv),
        }
        Ok(())
    }

    /// Fire the timers that are due at `now` (call when `now >= poll_timeout()`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.released {
            return;
        }
        match &self.phase {
            Phase::Master(m) => {
                if let Role::Releasing(r) = m.role {
                    if now >= r.deadline {
                        // Make-before-break: the grace after the new master was heard is
                        // over, or Master_Down_Interval passed and nobody took over.
                        self.finish_release(now, r);
                        return;
                    }
                    if r.new_master.is_some() {
                        // Ours: no priority 0 once the new master is heard. It has
                        // taken over; another one would only make it answer and
                        // re-announce every VIP (§6.4.3) in the middle of its takeover.
                        return;
                    }
                }
                if now >= m.adver_timer {
                    // RFC 5798 §6.4.3: Adver_Timer fires: send an advert, reset the timer.
                    self.send_advert(now);
                }
            }
            Phase::Backup(b) => {
                if let Some(p) = b.bfd_pending {
                    if now >= p.at {
                        // BFD (ours, see `master_down_detected`): the master is dead.
                        let reason = Reason::BfdDown {
                            master: p.master,
                            detect: p.detect,
                        };
                        self.become_master(now, reason);
                        return;
                    }
                }
                if now >= b.master_down_timer {
                    // RFC 5798 §6.4.2: Master_Down_Timer fires: become Master.
                    let reason = takeover_reason(b, now);
                    self.become_master(now, reason);
                }
            }
            Phase::Init { .. } | Phase::Fault => {}
        }
    }

    /// BFD: the session to `peer` went from Up to Down because its detection time
    /// (`detect`) passed in silence. If we are Backup and `peer` is the master we follow,
    /// we take over without waiting for Master_Down_Interval: at once when `peer` is our
    /// only unicast peer, else after [`Router::bfd_wait`] (a priority-ranked fraction of
    /// `detect`, as Skew_Time ranks backups for adverts), unless an advert arrives first.
    ///
    /// Returns whether the verdict was taken. It is ignored when not Backup, when
    /// `peer` is not the current master, and during the hold-down that follows a BFD
    /// takeover undone by adverts within Master_Down_Interval (BFD failing while adverts
    /// still arrive): see [`Router::bfd_hold_down`]. A verdict during the hold-down
    /// extends it.
    pub fn master_down_detected(&mut self, now: Instant, peer: IpAddr, detect: Duration) -> bool {
        if self.released {
            return false;
        }
        let Phase::Backup(b) = &self.phase else {
            return false;
        };
        if b.master != Some(peer) {
            return false;
        }
        if self.bfd_hold_until.is_some_and(|t| now < t) {
            // A verdict during the hold-down extends it: a session that keeps flapping
            // while adverts arrive never triggers a second takeover.
            self.bfd_hold_until = Some(now + self.bfd_hold_down());
            return false;
        }
        let wait = self.bfd_wait(detect);
        let Phase::Backup(b) = &mut self.phase else {
            return false;
        };
        let pending = *b.bfd_pending.get_or_insert(BfdPending {
            at: now + wait,
            master: peer,
            detect,
        });
        if now >= pending.at {
            self.become_master(
                now,
                Reason::BfdDown {
                    master: peer,
                    detect,
                },
            );
        }
        true
    }
    /// How long a backup waits after BFD declared the master dead before taking over:
    /// zero with a single unicast peer (nobody else can take over); otherwise
    /// `(255 - priority) * detect / 128`, so a higher-priority backup goes first and its
    /// advert stops the others.
    pub fn bfd_wait(&self, detect: Duration) -> Duration {
        if self.cfg.unicast_peers.len() == 1 {
            return Duration::ZERO;
        }
        let rank = 255 - u32::from(self.effective_priority());
        detect * rank / 128
    }

    /// The hold-down of BFD verdicts after a BFD takeover undone by adverts: the larger
    /// of [`BFD_HOLD_DOWN_MIN`] and 3 x Master_Down_Interval.
    pub fn bfd_hold_down(&self) -> Duration {
        BFD_HOLD_DOWN_MIN.max(self.master_down_interval() * 3)
    }

    /// Whether BFD verdicts are ignored at `now` (hold-down after a false BFD takeover).
    pub fn bfd_held_down(&self, now: Instant) -> bool {
        self.bfd_hold_until.is_some_and(|t| now < t)
    }

    /// Reload of the base priority (0 is taken as 1). Takes effect in our next
    /// advert when Master, and in the next election decision when Backup.
    pub fn set_base_priority(&mut self, _now: Instant, p: u8) {
        self.base = p.max(1);
    }

    /// Operator override of the base priority (clamped to 1..=254); `None` clears it.
    /// No effect on an address owner.
    pub fn set_override(&mut self, _now: Instant, p: Option<u8>) {
        self.override_priority = p.map(|p| p.clamp(1, 254));
    }

    /// One source of fault or penalty changed (see [`Conditions`] for how they
    /// combine). The router enters Fault while any source has a fault, leaves it
    /// through Init (and the startup rules, if [`Router::start`] was called) when none
    /// has, and subtracts the combined penalty from its priority.
    pub fn set_condition(&mut self, now: Instant, c: Condition) {
        self.conditions.set(c);
        self.apply_fault(now);
    }

    /// The health checks' penalty (the sum of the weights of failing checks), keeping
    /// their fault: [`Condition::Checks`].
    pub fn set_penalty(&mut self, now: Instant, weight_sum: u32) {
        let fault = self.conditions.checks_fault.clone();
        self.set_condition(
            now,
            Condition::Checks {
                penalty: weight_sum,
                fault,
            },
        );
    }

    /// The health checks' fault, keeping their penalty: [`Condition::Checks`].
    /// `Some(reason)`: enter (or stay in) Fault. `None`: leave Fault through Init and
    /// run the startup rules (if [`Router::start`] was called), unless another source
    /// still has a fault.
    pub fn set_fault(&mut self, now: Instant, fault: Option<String>) {
        let penalty = self.conditions.checks_penalty;
        self.set_condition(now, Condition::Checks { penalty, fault });
    }

    /// The sources of fault and penalty.
    pub fn conditions(&self) -> &Conditions {
        &self.conditions
    }

    /// Enter (or stay in) Fault while [`Conditions::fault`] has one, or leave it.
    fn apply_fault(&mut self, now: Instant) {
        if self.released {
            return;
        }
        match self.conditions.fault().map(str::to_owned) {
            Some(text) => {
                if matches!(self.phase, Phase::Fault) {
                    return;
                }
                let release = match &self.phase {
                    Phase::Master(m) => match m.role {
                        Role::Releasing(r) => Some(r),
                        _ => {
                            // Like §6.4.3 Shutdown: tell the backups at once with priority 0.
                            self.push_advert(0);
                            None
                        }
                    },
                    _ => None,
                };
                self.enter(Phase::Fault, Reason::Fault(text));
                if release.is_some_and(|r| r.kind == ReleaseKind::Shutdown) {
                    self.finish_released();
                }
            }
            None => {
                if !matches!(self.phase, Phase::Fault) {
                    return;
                }
                self.enter(Phase::Init { master: None }, Reason::FaultCleared);
                if self.started {
                    self.startup(now);
                }
            }
        }
    }

    /// Maintenance (drain). On while Master: make-before-break handover, then Backup
    /// at priority 1. Off: the normal priority again (a preempting router takes over
    /// as usual). No effect on an address owner's priority.
    pub fn set_maintenance(&mut self, now: Instant, on: bool) {
        if self.maintenance == on {
            return;
        }
        self.maintenance = on;
        if self.released || self.is_owner() {
            return;
        }
        let Phase::Master(m) = &mut self.phase else {
            return;
        };
        match (on, m.role) {
            (true, Role::Releasing(_)) => {}
            (true, _) => self.begin_release(now, ReleaseKind::Maintenance),
            (false, Role::Releasing(r)) if r.kind == ReleaseKind::Maintenance => {
                // Cancel the handover: advertise our real priority again at once, and
                // announce the VIPs again in case a backup took over meanwhile.
                m.role = Role::Advertising;
                self.send_advert(now);
                self.push(Action::Announce {
                    reason: AnnounceReason::HandoverCancelled,
                });
            }
            (false, _) => {}
        }
    }

    /// Stop. A master hands over make-before-break (priority-0 adverts, VIPs kept
    /// until a new master is heard or Master_Down_Interval passes); any other state
    /// is released at once. [`Action::Released`] says when the driver may exit.
    pub fn shutdown(&mut self, now: Instant) {
        if self.released {
            return;
        }
        match &mut self.phase {
            Phase::Master(m) => match &mut m.role {
                Role::Releasing(r) => r.kind = ReleaseKind::Shutdown,
                _ => self.begin_release(now, ReleaseKind::Shutdown),
            },
            Phase::Backup(_) | Phase::Fault => {
                // RFC 5798 §6.4.2: Shutdown: cancel the Master_Down_Timer, go to Initialize.
                let master = self.master_addr();
                self.enter(Phase::Init { master }, Reason::Shutdown);
                self.finish_released();
            }
            Phase::Init { .. } => self.finish_released(),
        }
    }

    // ----- outputs ------------------------------------------------------------

    /// The next thing to do, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Router::handle_timeout`] must be called next (`None`: no timer runs).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.released {
            return None;
        }
        match &self.phase {
            Phase::Master(m) => Some(match m.role {
                Role::Releasing(r) if r.new_master.is_some() => r.deadline,
                Role::Releasing(r) => m.adver_timer.min(r.deadline),
                _ => m.adver_timer,
            }),
            Phase::Backup(b) => Some(match b.bfd_pending {
                Some(p) => b.master_down_timer.min(p.at),
                None => b.master_down_timer,
            }),
            Phase::Init { .. } | Phase::Fault => None,
        }
    }

    // ----- getters ------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.phase.state()
    }
    /// The priority we use now: 255 for an address owner; else 1 in maintenance;
    /// else (override or base) minus the penalty, clamped to 1..=254.
    pub fn effective_priority(&self) -> u8 {
        if self.is_owner() {
            return 255;
        }
        if self.maintenance {
            return 1;
        }
        let p = i64::from(self.override_priority.unwrap_or(self.base))
            - i64::from(self.conditions.penalty());
        u8::try_from(p.clamp(1, 254)).unwrap_or(1)
    }

    /// The base priority from the configuration (after reloads).
    pub fn base_priority(&self) -> u8 {
        self.base
    }

    /// The operator override, if any.
    pub fn override_priority(&self) -> Option<u8> {
        self.override_priority
    }

    /// The penalty subtracted from the priority now: every source combined (checks,
    /// sync group, arbiter lease; see [`Conditions::penalty`]).
    pub fn penalty(&self) -> u32 {
        self.conditions.penalty()
    }

    /// Whether maintenance is on.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    /// The current fault text, if in Fault.
    pub fn fault(&self) -> Option<&str> {
        match self.phase {
            Phase::Fault => self.conditions.fault(),
            _ => None,
        }
    }

    /// Whether a make-before-break release (shutdown or maintenance) is running.
    pub fn is_releasing(&self) -> bool {
        matches!(
            &self.phase,
            Phase::Master(Master {
                role: Role::Releasing(_),
                ..
            })
        )
    }

    /// Whether [`Action::Released`] has been emitted.
    pub fn is_released(&self) -> bool {
        self.released
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Adverts whose address list differed from our VIPs (RFC 5798 §7.1 MAY check).
    pub fn address_list_mismatches(&self) -> u64 {
        self.addr_mismatches
    }

    /// Whether the router holds the VIPs now (it asked for them to be added and not yet
    /// removed): a VIP that disappears now must be put back. The VIPs are held exactly
    /// while Master.
    pub fn holds_vips(&self) -> bool {
        matches!(self.phase, Phase::Master(_))
    }

    /// The current master as last seen: ourselves when Master, `None` when unknown.
    pub fn master_addr(&self) -> Option<IpAddr> {
        match &self.phase {
            Phase::Init { master } => *master,
            Phase::Backup(b) => b.master,
            Phase::Master(_) => Some(self.cfg.primary_addr),
            Phase::Fault => None,
        }
    }

    /// Master_Adver_Interval: the master's (v3) when Backup, ours otherwise.
    pub fn master_adver_interval(&self) -> Centis {
        match &self.phase {
            Phase::Backup(b) => b.master_adver_interval,
            _ => self.cfg.advert_interval,
        }
    }

    /// Skew_Time from Master_Adver_Interval and our effective priority (RFC 5798 §6.1).
    pub fn skew_time(&self) -> Duration {
        timers::skew_time(
            self.cfg.version,
            self.effective_priority(),
            self.master_adver_interval(),
        )
    }

    /// Master_Down_Interval (RFC 5798 §6.1).
    pub fn master_down_interval(&self) -> Duration {
        self.master_down_interval_for(self.master_adver_interval())
    }

    // ----- internals ----------------------------------------------------------

    fn master_down_interval_for(&self, master_adver_interval: Centis) -> Duration {
        timers::master_down_interval(
            self.cfg.version,
            self.effective_priority(),
            master_adver_interval,
        )
    }

    fn is_owner(&self) -> bool {
        self.base == 255
    }

    /// When the Adver_Timer fires after an advert sent at `now` (RFC 5798 §6.4.3),
    /// on the grid when there is one ([`Router::set_advert_grid`]).
    fn next_advert(&self, now: Instant) -> Instant {
        let interval = self.cfg.advert_interval.as_duration();
        match self.advert_epoch {
            Some(epoch) => timers::next_on_grid(epoch, interval, now),
            None => now + interval,
        }
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn push_advert(&mut self, priority: u8) {
        self.push(Action::SendAdvert(Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval: self.cfg.advert_interval,
            addrs: self.cfg.vips.clone(),
        }));
    }
}
