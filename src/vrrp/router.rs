//! The [`Router`]: one virtual router's state machine (RFC 5798 §6).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::timers;
use super::{Action, AnnounceReason, Reason, RecvDrop, RecvFilter, RouterConfig, State};
use crate::proto::{Advert, Centis, Version};

/// What a make-before-break release ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseKind {
    Shutdown,
    Maintenance,
}

/// A make-before-break release in progress (we are Master, advertising priority 0).
#[derive(Debug, Clone, Copy)]
struct Release {
    kind: ReleaseKind,
    /// Give up waiting for a new master at this instant; once a new master is heard,
    /// the end of the grace period.
    deadline: Instant,
    /// The new master, once heard (its address and advertised interval).
    new_master: Option<(IpAddr, Centis)>,
}

/// How long a releasing master keeps its VIPs after hearing the new master. The new
/// master sends its advert before it adds the VIPs and announces them; clients move
/// only when the announcement reaches them, so the old master keeps answering a little
/// longer than that. Also how long a preempting backup holds and announces the VIPs
/// before its first advert makes the old master drop them. Not an RFC timer: it is what
/// makes planned handovers lossless.
pub const RELEASE_GRACE: Duration = Duration::from_millis(100);

/// The shortest hold-down of BFD verdicts after a BFD takeover was undone by adverts
/// (the hold-down is the larger of this and 3 x Master_Down_Interval).
pub const BFD_HOLD_DOWN_MIN: Duration = Duration::from_secs(10);

/// The last thing a backup learnt from an advert; names the reason of a takeover.
#[derive(Debug, Clone, Copy)]
enum Heard {
    /// An advert was accepted: the master-down timer was reset.
    Accepted,
    /// A priority-0 advert from this master: the timer is Skew_Time.
    Zero(IpAddr),
    /// A lower-priority advert we ignore because we preempt.
    Ignored(IpAddr, u8),
}

/// What a backup watches, for the takeover reason and the preempt delay.
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// When we entered Backup.
    since: Instant,
    /// The last accepted advert: when and from whom.
    last_accepted: Option<(Instant, IpAddr)>,
    /// The latest advert's effect.
    heard: Heard,
}

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
    state: State,
    started: bool,
    released: bool,
    fault: Option<String>,
    base: u8,
    override_priority: Option<u8>,
    penalty: u32,
    maintenance: bool,
    master_adver_interval: Centis,
    master_addr: Option<IpAddr>,
    adver_timer: Option<Instant>,
    master_down_timer: Option<Instant>,
    release: Option<Release>,
    watch: Option<Watch>,
    vips_held: bool,
    /// When we last became Master.
    master_since: Option<Instant>,
    /// Preempting a live master: VIPs claimed and announced, first advert not sent yet.
    claiming: bool,
    /// When we last re-announced for a healed split brain.
    last_heal: Option<Instant>,
    /// When we last answered another router's advert out of turn (a lower priority or
    /// priority 0 heard while master): at most once per advert interval.
    last_answer: Option<Instant>,
    /// When we last re-announced because another router sent priority 0 while we
    /// were master: at most once per Master_Down_Interval.
    last_zero_announce: Option<Instant>,
    addr_mismatches: u64,
    /// BFD said the master died: take over at this instant unless an advert comes first.
    bfd_pending: Option<(Instant, IpAddr, Duration)>,
    /// When we last took over because of BFD.
    bfd_takeover_at: Option<Instant>,
    /// BFD verdicts are ignored until then (a BFD takeover was undone by adverts).
    bfd_hold_until: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Router {
    /// A router in Init; nothing happens until [`Router::start`].
    pub fn new(cfg: RouterConfig) -> Self {
        let base = cfg.priority.max(1);
        let interval = cfg.advert_interval;
        Router {
            filter: RecvFilter::new(&cfg),
            cfg,
            state: State::Init,
            started: false,
            released: false,
            fault: None,
            base,
            override_priority: None,
            penalty: 0,
            maintenance: false,
            master_adver_interval: interval,
            master_addr: None,
            adver_timer: None,
            master_down_timer: None,
            release: None,
            watch: None,
            vips_held: false,
            master_since: None,
            claiming: false,
            last_heal: None,
            last_answer: None,
            last_zero_announce: None,
            addr_mismatches: 0,
            bfd_pending: None,
            bfd_takeover_at: None,
            bfd_hold_until: None,
            actions: VecDeque::new(),
        }
    }

    // ----- inputs -------------------------------------------------------------

    /// RFC 5798 §6.4.1: the Startup event. Ignored if already started, after
    /// shutdown, or (until the fault clears) while in Fault.
    pub fn start(&mut self, now: Instant) {
        if self.released || self.started {
            return;
        }
        self.started = true;
        if self.state == State::Init {
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
        if self.state == State::Backup && adv.priority == 0 {
            // Ours: only the master we follow can leave. A priority 0 from anyone else
            // (a stranger, or a router that was never master) would make us take over
            // after Skew_Time while the master still advertises.
            // Not a receive-check failure (it is a valid advert), so not a drop.
            if self.master_addr.is_some_and(|m| m != from) {
                return Ok(());
            }
        }
        match self.state {
            State::Init | State::Fault => {}
            State::Backup => self.backup_rx(now, from, adv),
            State::Master if self.release.is_some() => self.release_rx(now, from, adv),
            State::Master => self.master_rx(now, from, adv),
        }
        Ok(())
    }

    /// Fire the timers that are due at `now` (call when `now >= poll_timeout()`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.released {
            return;
        }
        match self.state {
            State::Master => {
                if let Some(r) = self.release {
                    if now >= r.deadline {
                        // Make-before-break: the grace after the new master was heard is
                        // over, or Master_Down_Interval passed and nobody took over.
                        self.finish_release(now, r.new_master);
                        return;
                    }
                }
                if self.adver_timer.is_some_and(|t| now >= t) {
                    // RFC 5798 §6.4.3: Adver_Timer fires: send an advert, reset the timer.
                    self.send_advert(now);
                }
            }
            State::Backup => {
                if let Some((at, master, detect)) = self.bfd_pending {
                    if now >= at {
                        // BFD (ours, see `master_down_detected`): the master is dead.
                        self.become_master(now, Reason::BfdDown { master, detect });
                        return;
                    }
                }
                if self.master_down_timer.is_some_and(|t| now >= t) {
                    // RFC 5798 §6.4.2: Master_Down_Timer fires: become Master.
                    let reason = self.takeover_reason(now);
                    self.become_master(now, reason);
                }
            }
            State::Init | State::Fault => {}
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
        if self.released || self.state != State::Backup || self.master_addr != Some(peer) {
            return false;
        }
        if self.bfd_hold_until.is_some_and(|t| now < t) {
            // A verdict during the hold-down extends it: a session that keeps flapping
            // while adverts arrive never triggers a second takeover.
            self.bfd_hold_until = Some(now + self.bfd_hold_down());
            return false;
        }
        if self.bfd_pending.is_none() {
            self.bfd_pending = Some((now + self.bfd_wait(detect), peer, detect));
        }
        if self.bfd_pending.is_some_and(|(at, _, _)| now >= at) {
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

    /// The sum of the weights of failing health checks, subtracted from the priority.
    pub fn set_penalty(&mut self, _now: Instant, weight_sum: u32) {
        self.penalty = weight_sum;
    }

    /// `Some(reason)`: enter (or stay in) Fault. `None`: leave Fault through Init and
    /// run the startup rules (if [`Router::start`] was called).
    pub fn set_fault(&mut self, now: Instant, fault: Option<String>) {
        if self.released {
            return;
        }
        match fault {
            Some(text) => {
                if self.state == State::Fault {
                    self.fault = Some(text);
                    return;
                }
                self.fault = Some(text.clone());
                let release = self.release.take();
                if self.state == State::Master && release.is_none() {
                    // Like §6.4.3 Shutdown: tell the backups at once with priority 0.
                    self.push_advert(0);
                }
                self.remove_vips();
                self.clear_timers();
                self.watch = None;
                self.master_addr = None;
                self.transition(State::Fault, Reason::Fault(text));
                if release.is_some_and(|r| r.kind == ReleaseKind::Shutdown) {
                    self.finish_released();
                }
            }
            None => {
                if self.state != State::Fault {
                    return;
                }
                self.fault = None;
                self.transition(State::Init, Reason::FaultCleared);
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
        if self.released || self.is_owner() || self.state != State::Master {
            return;
        }
        if on {
            if self.release.is_none() {
                self.begin_release(now, ReleaseKind::Maintenance);
            }
        } else if self
            .release
            .is_some_and(|r| r.kind == ReleaseKind::Maintenance)
        {
            // Cancel the handover: advertise our real priority again at once, and
            // announce the VIPs again in case a backup took over meanwhile.
            self.release = None;
            self.send_advert(now);
            self.push(Action::Announce {
                reason: AnnounceReason::HandoverCancelled,
            });
        }
    }

    /// Stop. A master hands over make-before-break (priority-0 adverts, VIPs kept
    /// until a new master is heard or Master_Down_Interval passes); any other state
    /// is released at once. [`Action::Released`] says when the driver may exit.
    pub fn shutdown(&mut self, now: Instant) {
        if self.released {
            return;
        }
        match self.state {
            State::Master => match &mut self.release {
                Some(r) => r.kind = ReleaseKind::Shutdown,
                None => self.begin_release(now, ReleaseKind::Shutdown),
            },
            State::Backup | State::Fault => {
                // RFC 5798 §6.4.2: Shutdown: cancel the Master_Down_Timer, go to Initialize.
                self.clear_timers();
                self.watch = None;
                self.transition(State::Init, Reason::Shutdown);
                self.finish_released();
            }
            State::Init => self.finish_released(),
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
        [
            self.adver_timer,
            self.master_down_timer,
            self.release.map(|r| r.deadline),
            self.bfd_pending.map(|(t, _, _)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- getters ------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.state
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
        let p = i64::from(self.override_priority.unwrap_or(self.base)) - i64::from(self.penalty);
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

    /// The current health-check penalty.
    pub fn penalty(&self) -> u32 {
        self.penalty
    }

    /// Whether maintenance is on.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    /// The current fault text, if in Fault.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// Whether a make-before-break release (shutdown or maintenance) is running.
    pub fn is_releasing(&self) -> bool {
        self.release.is_some()
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
    /// removed): a VIP that disappears now must be put back.
    pub fn holds_vips(&self) -> bool {
        self.vips_held
    }

    /// The current master as last seen: ourselves when Master, `None` when unknown.
    pub fn master_addr(&self) -> Option<IpAddr> {
        self.master_addr
    }

    /// Master_Adver_Interval: ours when Master, the master's (v3) when Backup.
    pub fn master_adver_interval(&self) -> Centis {
        self.master_adver_interval
    }

    /// Skew_Time from Master_Adver_Interval and our effective priority (RFC 5798 §6.1).
    pub fn skew_time(&self) -> Duration {
        timers::skew_time(
            self.cfg.version,
            self.effective_priority(),
            self.master_adver_interval,
        )
    }

    /// Master_Down_Interval (RFC 5798 §6.1).
    pub fn master_down_interval(&self) -> Duration {
        timers::master_down_interval(
            self.cfg.version,
            self.effective_priority(),
            self.master_adver_interval,
        )
    }

    // ----- internals ----------------------------------------------------------

    fn is_owner(&self) -> bool {
        self.base == 255
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn push_advert(&mut self, priority: u8) {
        self.push(Action::SendAdvert {
            priority,
            interval: self.cfg.advert_interval,
        });
    }

    /// Send one advert (priority 0 while releasing) and reset the Adver_Timer.
    fn send_advert(&mut self, now: Instant) {
        self.claiming = false;
        let p = if self.release.is_some() {
            0
        } else {
            self.effective_priority()
        };
        self.push_advert(p);
        self.adver_timer = Some(now + self.cfg.advert_interval.as_duration());
    }

    /// An advert sent because of one we heard, not because the Adver_Timer fired: at
    /// most one per advert interval, so that a flood of lower-priority or priority-0
    /// adverts (from a stranger, or a peer stuck in a loop) costs one advert per
    /// interval, not one per packet.
    fn answer_out_of_turn(&mut self, now: Instant) {
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

    fn transition(&mut self, to: State, reason: Reason) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            self.push(Action::StateChanged { from, to, reason });
        }
    }

    fn clear_timers(&mut self) {
        self.adver_timer = None;
        self.master_down_timer = None;
        self.bfd_pending = None;
        self.claiming = false;
    }

    fn remove_vips(&mut self) {
        if self.vips_held {
            self.vips_held = false;
            self.push(Action::RemoveVips);
        }
    }

    fn finish_released(&mut self) {
        self.clear_timers();
        self.release = None;
        self.released = true;
        self.push(Action::Released);
    }

    /// RFC 5798 §6.4.1: the Startup event.
    fn startup(&mut self, now: Instant) {
        if self.effective_priority() == 255 {
            // §6.4.1: priority 255: advert, announce, Adver_Timer, Master.
            self.become_master(now, Reason::AddressOwner);
        } else {
            // §6.4.1: Master_Adver_Interval = Advertisement_Interval, Master_Down_Timer, Backup.
            self.become_backup(now, Reason::Startup, None, self.cfg.advert_interval);
        }
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        self.watch = None;
        self.master_down_timer = None;
        self.bfd_pending = None;
        self.bfd_takeover_at = matches!(reason, Reason::BfdDown { .. }).then_some(now);
        self.master_adver_interval = self.cfg.advert_interval;
        self.master_addr = Some(self.cfg.primary_addr);
        self.master_since = Some(now);
        if matches!(reason, Reason::Preempting { .. }) {
            // Preempting a live master, which drops the VIPs the moment it hears our
            // advert (§6.4.2: a backup must not accept packets for them). Make before
            // break: claim and announce the VIPs now, and send our first advert
            // RELEASE_GRACE later, once clients have followed the announcement. The old
            // master keeps answering until then; nobody else is waiting to take over,
            // since the old master's adverts still reach them.
            self.claiming = true;
            self.adver_timer = Some(now + RELEASE_GRACE);
        } else {
            // §6.4.1 / §6.4.2: send an ADVERTISEMENT, set the Adver_Timer, ... (the
            // advert first: it stops other backups' timers as early as possible).
            self.send_advert(now);
        }
        self.claim_vips();
        // ... broadcast gratuitous ARP / unsolicited NA, transition to Master.
        self.push(Action::Announce {
            reason: AnnounceReason::Takeover,
        });
        self.transition(State::Master, reason);
    }

    fn claim_vips(&mut self) {
        if !self.vips_held {
            self.vips_held = true;
            self.push(Action::AddVips);
        }
    }

    fn become_backup(
        &mut self,
        now: Instant,
        reason: Reason,
        master: Option<IpAddr>,
        interval: Centis,
    ) {
        self.remove_vips();
        self.release = None;
        self.adver_timer = None;
        self.claiming = false;
        // §6.4.3 (v3): Master_Adver_Interval = the advert's interval; v2 uses ours.
        self.master_adver_interval = match self.cfg.version {
            Version::V3 => interval,
            Version::V2 => self.cfg.advert_interval,
        };
        self.master_addr = master;
        self.watch = Some(Watch {
            since: now,
            last_accepted: master.map(|m| (now, m)),
            heard: Heard::Accepted,
        });
        // §6.4.3 / §6.4.1: Master_Down_Timer = Master_Down_Interval.
        self.master_down_timer = Some(now + self.master_down_interval());
        self.transition(State::Backup, reason);
    }

    fn backup_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        let eff = self.effective_priority();
        let Some(mut watch) = self.watch else {
            return;
        };
        // An advert while a BFD takeover waits: somebody is master (a higher-priority
        // backup that took over first, or the master itself): the advert rules decide.
        self.bfd_pending = None;
        if adv.priority == 0 {
            // RFC 5798 §6.4.2: priority 0: set the Master_Down_Timer to Skew_Time.
            self.master_addr = Some(from);
            self.master_down_timer = Some(now + self.skew_time());
            watch.heard = Heard::Zero(from);
        } else {
            // RFC 5798 §6.1: the address owner always preempts; preempt delay is ours.
            let preempting = (self.cfg.preempt || eff == 255)
                && now.saturating_duration_since(watch.since) >= self.cfg.preempt_delay;
            if !preempting || adv.priority >= eff {
                // RFC 5798 §6.4.2: adopt the interval, reset the Master_Down_Timer.
                if self.cfg.version == Version::V3 {
                    self.master_adver_interval = adv.interval;
                }
                self.master_addr = Some(from);
                self.master_down_timer = Some(now + self.master_down_interval());
                watch.last_accepted = Some((now, from));
                watch.heard = Heard::Accepted;
            } else {
                // RFC 5798 §6.4.2: discard: the timer runs out and we preempt.
                watch.heard = Heard::Ignored(from, adv.priority);
            }
        }
        self.watch = Some(watch);
    }

    fn takeover_reason(&self, now: Instant) -> Reason {
        let Some(w) = self.watch else {
            return Reason::MasterDown {
                master: None,
                silent_for: Duration::ZERO,
            };
        };
        match w.heard {
            Heard::Zero(master) => Reason::MasterReleased { master },
            Heard::Ignored(master, priority) => Reason::Preempting { master, priority },
            Heard::Accepted => {
                let (since, master) = match w.last_accepted {
                    Some((t, m)) => (t, Some(m)),
                    None => (w.since, None),
                };
                Reason::MasterDown {
                    master,
                    silent_for: now.saturating_duration_since(since),
                }
            }
        }
    }

    fn master_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        if adv.priority == 0 {
            // RFC 5798 §6.4.3: priority 0: send an ADVERTISEMENT, reset the Adver_Timer
            // (at most one such answer per advert interval: a stranger's flood must not
            // become ours).
            let claiming = self.claiming;
            self.answer_out_of_turn(now);
            // Ours: another router leaving while we are master may be a preempting
            // backup stopped between its claim and its first advert; clients followed
            // its announcement to a host that drops the VIPs a moment later. Re-announce
            // (at most once per Master_Down_Interval) so they come back.
            let quiet = self
                .last_zero_announce
                .is_none_or(|t| now.saturating_duration_since(t) >= self.master_down_interval());
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
        if loses
            && self
                .bfd_takeover_at
                .is_some_and(|t| now.saturating_duration_since(t) < self.master_down_interval())
        {
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
        } else if self.claiming {
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
            let standing = self
                .master_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.master_down_interval());
            // At most once per Master_Down_Interval: with one-way loss the other master
            // keeps advertising, and each advert must not cost a burst of announcements,
            // a hook run and a log line.
            let quiet = self
                .last_heal
                .is_none_or(|t| now.saturating_duration_since(t) >= self.master_down_interval());
            if standing && quiet {
                self.last_heal = Some(now);
                self.push(Action::Announce {
                    reason: AnnounceReason::SplitBrainHealed,
                });
            }
        }
    }

    fn begin_release(&mut self, now: Instant, kind: ReleaseKind) {
        let deadline = now + self.master_down_interval();
        self.release = Some(Release {
            kind,
            deadline,
            new_master: None,
        });
        self.push(Action::StopAnnouncing);
        // RFC 5798 §6.4.3 Shutdown: send an ADVERTISEMENT with Priority = 0 (VIPs kept).
        self.send_advert(now);
    }

    fn release_rx(&mut self, now: Instant, from: IpAddr, adv: &Advert) {
        if adv.priority == 0 {
            // Another router leaving too: not a new master.
            return;
        }
        if let Some(r) = &mut self.release {
            if r.new_master.is_none() {
                r.new_master = Some((from, adv.interval));
                r.deadline = now + RELEASE_GRACE;
            }
        }
    }

    /// The release is over: a new master was heard (`Some`) or the deadline passed.
    fn finish_release(&mut self, now: Instant, new_master: Option<(IpAddr, Centis)>) {
        let Some(r) = self.release.take() else {
            return;
        };
        match r.kind {
            ReleaseKind::Shutdown => {
                self.remove_vips();
                self.master_addr = new_master.map(|(a, _)| a);
                self.transition(State::Init, Reason::Shutdown);
                self.finish_released();
            }
            ReleaseKind::Maintenance => {
                let (master, interval) = match new_master {
                    Some((a, i)) => (Some(a), i),
                    None => (None, self.cfg.advert_interval),
                };
                self.become_backup(now, Reason::Maintenance, master, interval);
            }
        }
    }
}

/// RFC 5798 §6.4.3: primary addresses compare as unsigned big-endian integers.
fn addr_gt(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets() > b.octets(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets() > b.octets(),
        _ => false,
    }
}

fn same_addr_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    a.dedup();
    b.sort_unstable();
    b.dedup();
    a == b
}
