//! One driver per instance: owns the sans-IO [`Router`] and carries out its actions.
//!
//! ```text
//!   receiver (per interface+source) --Input::Advert--+
//!   link watcher -------------------Input::Link------+
//!   supervisor (control, reload) ---Input::*---------+--> [ driver task ] --> VrrpSocket::send (adverts)
//!   health checks ------------------TrackEvent-------+        |   Router       --> Netlink add/del VIPs
//!   sync group coordinator ---------Input::Group*----+        |   (sans-IO)    --> FrameSender (GARP / NA)
//!   BFD engine thread (daemon::bfd) -BfdEvent---------+        |
//!                                                             +--> status board, events, metrics, notify hooks
//! ```
//!
//! The driver never decides anything about the protocol: it turns inputs into
//! `Router` calls with `now = Instant::now()` and executes `poll_action()` in order.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::config::Instance;
use crate::control::message::{Event, InstanceStatus, TrackStatus, Transition};
use crate::net::{FrameSender, Netlink, VrrpSocket};
use crate::proto::{arp, ndp, Advert, ChecksumForm};
use crate::track::{self, CheckSet, Notifier, TrackEvent};
use crate::vrrp::{Action, AnnounceReason, Router, RouterConfig, State};

use super::metrics::Metrics;

mod arb;

/// Something that happened that the instance's router must hear about.
#[derive(Debug)]
pub enum Input {
    /// A decoded advert for this VRID, with its IP-level facts.
    Advert {
        /// Sender's address.
        from: IpAddr,
        /// IPv4 TTL or IPv6 hop limit as received.
        ttl: u8,
        /// The advert.
        advert: Advert,
    },
    /// The instance's interface went up or down (or disappeared).
    Link {
        /// Link usable.
        up: bool,
    },
    /// The configured base priority changed on reload.
    BasePriority(u8),
    /// Operator priority override (None clears it).
    Override(Option<u8>),
    /// Operator maintenance (drain).
    Maintenance(bool),
    /// A sync-group peer is in fault (Some(reason)) or no longer is (None).
    GroupFault(Option<String>),
    /// The penalty imposed by failing checks of other sync-group members.
    GroupPenalty(u32),
    /// An address was removed from the instance's interface (netlink event).
    AddressRemoved(ipnet::IpNet),
    /// Address events were lost: check that every VIP the router holds is there.
    CheckVips,
    /// The supervisor's liveness probe: answer by storing the number in
    /// [`DriverHandle::alive`] (the systemd watchdog is fed only while every driver does).
    Ping(u64),
    /// Hand over (make-before-break) and stop.
    Shutdown,
}

/// A driver that ended without being asked to (a panic): its VIPs were removed.
#[derive(Debug, Clone)]
pub struct Crash {
    /// Instance name.
    pub instance: String,
    /// The panic message.
    pub message: String,
}

/// Adverts handled in one go before the driver executes the router's actions, publishes
/// its status and looks at its timers again.
const ADVERT_BATCH: usize = 64;

/// How long a VIP that could not be added keeps the instance in fault before it tries
/// again.
pub const VIP_RETRY: Duration = Duration::from_secs(1);

/// How long a stopping driver waits, at most, for the hooks of its last transitions.
pub const HOOK_WAIT_ON_STOP: Duration = Duration::from_secs(10);

/// What the driver tells the sync-group coordinator.
#[derive(Debug, Clone)]
pub struct MemberReport {
    /// Instance name.
    pub instance: String,
    /// Own fault reason (link or check), not counting faults imposed by the group.
    pub own_fault: Option<String>,
    /// Own check penalty.
    pub own_penalty: u32,
    /// The member's state now.
    pub state: State,
}

/// Shared, read-mostly view of every instance for `vipctl status`.
pub type StatusBoard = Arc<Mutex<BTreeMap<String, BoardEntry>>>;

/// One instance on the [`StatusBoard`]: its status as last published, and when (on the
/// monotonic clock) it entered its state, so that `in_state_ms` is current when read.
#[derive(Debug, Clone)]
pub struct BoardEntry {
    /// The status as the driver last published it (`in_state_ms` not filled in).
    pub status: InstanceStatus,
    /// When the instance entered its current state.
    pub entered: Instant,
}

impl BoardEntry {
    /// The status with `in_state_ms` counted up to `now`.
    pub fn snapshot(&self, now: Instant) -> InstanceStatus {
        let mut s = self.status.clone();
        s.in_state_ms = Some(now.saturating_duration_since(self.entered).as_millis() as u64);
        s
    }
}

/// Everything a driver needs from the outside world.
pub struct DriverContext {
    /// Netlink handle for VIPs.
    pub netlink: Netlink,
    /// Socket to send adverts on (shared with the receiver).
    pub socket: Arc<VrrpSocket>,
    /// AF_PACKET sender for announcements.
    pub frames: Arc<FrameSender>,
    /// Interface index.
    pub ifindex: u32,
    /// Interface MAC address.
    pub mac: [u8; 6],
    /// Our source address for adverts (IPv6: link-local).
    pub source: IpAddr,
    /// Link state at start.
    pub link_up: bool,
    /// Metrics.
    pub metrics: Metrics,
    /// Status board.
    pub board: StatusBoard,
    /// State-change events for `vipctl events`.
    pub events: broadcast::Sender<Event>,
    /// Reports to the sync-group coordinator (sent whether or not the instance is in a
    /// group today: membership can change on reload without a rebuild).
    pub reports: mpsc::UnboundedSender<MemberReport>,
    /// Overrides restored from the state dir.
    pub priority_override: Option<u8>,
    /// Maintenance restored from the state dir.
    pub maintenance: bool,
    /// Take part in elections (RFC 5798 §6.4.1 Startup) only from this instant on
    /// (`startup-delay` after vipd started; `None` or past = at once).
    pub start_at: Option<Instant>,
    /// The `[arbiter]` section when the instance has `arbiter = true`.
    pub arbiter: Option<crate::config::Arbiter>,
}

/// Handle to a running driver.
pub struct DriverHandle {
    /// Adverts from the receivers (bounded: a flood is dropped and counted, never
    /// queued without limit).
    pub tx: mpsc::Sender<Input>,
    /// Everything else, from the supervisor: few, trusted, and never blocking the
    /// supervisor on a driver whose advert queue is full.
    pub ctl: mpsc::UnboundedSender<Input>,
    /// The task; it ends after the router is released.
    pub task: JoinHandle<()>,
    /// The configuration it runs.
    pub instance: Instance,
    /// The last [`Input::Ping`] the driver answered.
    pub alive: Arc<AtomicU64>,
}

/// Starts the driver task of `inst`. A panic inside it is caught: the VIPs it may hold
/// are removed and `crashed` hears of it (the supervisor restarts the instance); the
/// other instances are not touched.
pub fn spawn(
    inst: Instance,
    ctx: DriverContext,
    crashed: mpsc::UnboundedSender<Crash>,
) -> DriverHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let instance = inst.clone();
    let alive = Arc::new(AtomicU64::new(0));
    let answered = alive.clone();
    let task = tokio::spawn(async move {
        let mut d = Driver::new(inst, ctx, answered);
        let run = std::panic::AssertUnwindSafe(d.run(ctl_rx, rx));
        if let Err(panic) = futures::FutureExt::catch_unwind(run).await {
            let message = panic_message(&panic);
            tracing::error!(
                instance = %d.inst.name,
                "{}: driver panicked ({message}): removing its VIPs; the supervisor restarts it",
                d.inst.name
            );
            d.stop_announcing();
            if !d.inst.address_owner {
                for vip in &d.inst.vips {
                    let _ = d.ctx.netlink.del_address(d.ctx.ifindex, *vip).await;
                }
            }
            d.ctx
                .board
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.inst.name);
            let _ = crashed.send(Crash {
                instance: d.inst.name.clone(),
                message,
            });
        }
    });
    DriverHandle {
        tx,
        ctl,
        task,
        instance,
        alive,
    }
}

/// The text of a panic payload.
pub(super) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".to_string())
}

struct Driver {
    inst: Instance,
    ctx: DriverContext,
    router: Router,
    checks: Option<CheckSet>,
    track_rx: mpsc::Receiver<TrackEvent>,
    track_healthy: Vec<bool>,
    /// Values of `file` checks (0 for other kinds).
    track_value: Vec<i64>,
    track_latency: Vec<Option<Duration>>,
    track_error: Vec<Option<String>>,
    link_up: bool,
    own_fault: Option<String>,
    own_penalty: u32,
    group_fault: Option<String>,
    group_penalty: u32,
    /// The last report sent to the sync-group coordinator.
    last_report: Option<(Option<String>, u32, State)>,
    priority_override: Option<u8>,
    maintenance: bool,
    notifier: Notifier,
    announcer: Option<JoinHandle<()>>,
    refresher: Option<JoinHandle<()>>,
    last_advert_at: Option<Instant>,
    last_master: Option<IpAddr>,
    entered_state_at: SystemTime,
    /// The same instant on the monotonic clock (for `in_state_ms`).
    entered_state_mono: Instant,
    last_transition: Option<Transition>,
    released: bool,
    log_limiter: super::ratelimit::LogLimiter,
    /// A VIP could not be added: the instance is in fault until `vip_retry_at`.
    vip_fault: Option<String>,
    vip_retry_at: Option<Instant>,
    /// A VIP may have disappeared while the router holds them: check and re-add.
    check_vips: bool,
    /// Where the answer to the supervisor's [`Input::Ping`] goes.
    alive: Arc<AtomicU64>,
    /// Peer BFD (`[instance.bfd]`): the sessions and their state changes.
    bfd: Option<super::bfd::Subscription>,
    bfd_rx: Option<mpsc::UnboundedReceiver<super::bfd::BfdEvent>>,
    /// `kind = "bfd"` tracks: their sessions and state changes.
    bfd_track: Option<super::bfd::Subscription>,
    bfd_track_rx: Option<mpsc::UnboundedReceiver<super::bfd::BfdEvent>>,
    /// The etcd arbiter (`arbiter = true`).
    arb: Option<arb::Arb>,
}

/// Fault injection for the namespace tests, compiled into debug builds only: with
/// `VIPD_TEST_PANIC_DRIVER=<instance>` the driver panics on a maintenance command; with
/// `VIPD_TEST_HANG_DRIVER=<instance>` it stops answering the supervisor's pings (it
/// blocks its thread) once maintenance is on. Release builds ignore both.
#[cfg(debug_assertions)]
fn test_fault_injection(instance: &str, on_ping: bool) {
    use std::sync::atomic::AtomicBool;
    static HANG: AtomicBool = AtomicBool::new(false);
    let is = |var: &str| std::env::var(var).ok().as_deref() == Some(instance);
    if on_ping {
        if HANG.load(Ordering::Relaxed) && is("VIPD_TEST_HANG_DRIVER") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        return;
    }
    if is("VIPD_TEST_PANIC_DRIVER") {
        panic!("test-induced panic in {instance}");
    }
    if is("VIPD_TEST_HANG_DRIVER") {
        HANG.store(true, Ordering::Relaxed);
    }
}

#[cfg(not(debug_assertions))]
fn test_fault_injection(_instance: &str, _on_ping: bool) {}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The router configuration of `inst`, sending from `source`.
pub fn router_config(inst: &Instance, source: IpAddr) -> RouterConfig {
    RouterConfig {
        vrid: inst.vrid,
        version: inst.version,
        priority: inst.priority,
        advert_interval: inst.advert_interval,
        preempt: inst.preempt,
        preempt_delay: inst.preempt_delay,
        primary_addr: source,
        vips: inst.vips.iter().map(|n| n.addr()).collect(),
        unicast_peers: inst.unicast_peers.clone(),
    }
}

impl Driver {
    fn new(inst: Instance, ctx: DriverContext, alive: Arc<AtomicU64>) -> Self {
        let cfg = router_config(&inst, ctx.source);
        let (track_tx, track_rx) = mpsc::channel(256);
        let checks = if inst.tracks.is_empty() {
            None
        } else {
            Some(track::spawn_checks(&inst.name, &inst.tracks, track_tx))
        };
        let n = inst.tracks.len();
        let notifier = Notifier::new(inst.notify.clone());
        Driver {
            link_up: ctx.link_up,
            priority_override: ctx.priority_override,
            maintenance: ctx.maintenance,
            router: Router::new(cfg),
            checks,
            track_rx,
            // A check counts as unhealthy until `rise` successes (track::health), so a
            // restarting host cannot preempt on checks it has not run yet.
            track_healthy: vec![false; n],
            track_value: vec![0; n],
            track_latency: vec![None; n],
            track_error: vec![None; n],
            own_fault: None,
            own_penalty: 0,
            group_fault: None,
            group_penalty: 0,
            last_report: None,
            notifier,
            announcer: None,
            refresher: None,
            last_advert_at: None,
            last_master: None,
            entered_state_at: SystemTime::now(),
            entered_state_mono: Instant::now(),
            last_transition: None,
            released: false,
            log_limiter: super::ratelimit::LogLimiter::new(Duration::from_secs(10)),
            vip_fault: None,
            vip_retry_at: None,
            check_vips: false,
            alive,
            bfd: None,
            bfd_rx: None,
            bfd_track: None,
            bfd_track_rx: None,
            arb: ctx.arbiter.as_ref().map(|a| {
                let key = a.key_for(&inst.name, inst.arbiter_key.as_deref());
                let identity = format!("{} {}", hostname(), ctx.source);
                arb::Arb::new(
                    crate::arbiter::ArbiterHandle::spawn(a, &inst.name, key, identity),
                    a.on_loss,
                )
            }),
            inst,
            ctx,
        }
    }

    async fn run(
        &mut self,
        mut ctl: mpsc::UnboundedReceiver<Input>,
        mut adverts: mpsc::Receiver<Input>,
    ) {
        self.ctx.metrics.ensure_instance(&self.inst.name);
        let now = Instant::now();
        if let Some(p) = self.priority_override {
            self.router.set_override(now, Some(p));
        }
        if self.maintenance {
            self.router.set_maintenance(now, true);
        }
        // Checks start unhealthy until they rise (track::health): start at the reduced
        // priority rather than preempting on checks that have not run yet.
        let (penalty, _) = self.track_penalty();
        self.own_penalty = penalty;
        self.router.set_penalty(now, self.penalty_now());
        self.recompute_fault(now);
        self.start_bfd();
        // startup-delay: stay in Init (no adverts, no VIPs) until it has passed.
        let mut start_at = self.ctx.start_at.filter(|t| *t > now);
        match start_at {
            Some(t) => tracing::info!(
                instance = %self.inst.name,
                "{}: waiting {:.1} s (startup-delay) before taking part",
                self.inst.name,
                t.duration_since(now).as_secs_f64()
            ),
            // Held in Fault if the link is down at start: startup runs when it clears.
            None => self.router.start(now),
        }
        self.execute().await;
        if self.arbiter_reconcile().await {
            self.execute().await;
        }
        self.publish();
        let mut track_open = self.checks.is_some();
        let mut ctl_open = true;
        let mut adverts_open = true;
        loop {
            if self.released {
                break;
            }
            let arb_deadline = self.arbiter_timeout();
            let deadline = [self.router.poll_timeout(), start_at, arb_deadline]
                .into_iter()
                .flatten()
                .min();
            let arb_changed = async {
                match self.arb.as_mut() {
                    Some(a) => a.handle.changed().await,
                    None => std::future::pending().await,
                }
            };
            let sleep = sleep_until(deadline);
            let retry = sleep_until(self.vip_retry_at);
            // In this order: timers that are due, the supervisor, BFD, checks, then
            // adverts. However many packets wait, an advert or a takeover that is due
            // goes first.
            tokio::select! {
                biased;
                _ = sleep => {
                    let now = Instant::now();
                    if start_at.is_some_and(|t| t <= now) {
                        start_at = None;
                        tracing::info!(instance = %self.inst.name, "{}: startup-delay over: starting", self.inst.name);
                        self.router.start(now);
                    }
                    self.router.handle_timeout(now);
                }
                _ = retry => {
                    // The VIP that could not be added gets another chance.
                    self.vip_retry_at = None;
                    self.vip_fault = None;
                    self.recompute_fault(Instant::now());
                }
                input = ctl.recv(), if ctl_open => {
                    match input {
                        Some(input) => self.handle_input(input),
                        // The supervisor is gone: release as on shutdown.
                        None => {
                            ctl_open = false;
                            self.router.shutdown(Instant::now());
                        }
                    }
                }
                Some(ev) = super::bfd::next_event(&mut self.bfd_rx) => {
                    self.handle_bfd(ev);
                }
                Some(ev) = super::bfd::next_event(&mut self.bfd_track_rx) => {
                    self.handle_bfd_track(ev);
                }
                ev = self.track_rx.recv(), if track_open => {
                    match ev {
                        Some(ev) => self.handle_track(ev),
                        None => track_open = false,
                    }
                }
                input = adverts.recv(), if adverts_open => {
                    match input {
                        Some(input) => {
                            self.handle_input(input);
                            // Take what else is queued (bounded) before executing and
                            // publishing once: under a flood, status and metrics are
                            // rebuilt once per batch, not once per packet.
                            for _ in 0..ADVERT_BATCH {
                                match adverts.try_recv() {
                                    Ok(more) => self.handle_input(more),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => adverts_open = false,
                    }
                }
                _ = arb_changed => {}
            }
            self.execute().await;
            if self.check_vips {
                self.check_vips = false;
                self.restore_vips().await;
                self.execute().await;
            }
            if self.arbiter_reconcile().await {
                // The arbiter changed our priority: the router may act on it.
                self.execute().await;
                self.arbiter_reconcile().await;
            }
            self.publish();
        }
        self.stop_announcing();
        self.arbiter_stop().await;
        self.checks = None;
        // keepalived notify_stop: after the handover and the hooks of the last transition.
        self.notifier
            .notify(&self.inst.name, "stop", "instance stopped");
        // Let the hooks of the last transitions run before the runtime goes away.
        let _ = tokio::time::timeout(
            self.inst.notify.timeout.min(HOOK_WAIT_ON_STOP),
            self.notifier.idle(),
        )
        .await;
        self.ctx
            .board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.inst.name);
        // A driver of the same name starts only after this one ended (the supervisor's
        // `pending`), so nothing of a successor is removed here.
        let checks: Vec<String> = self.inst.tracks.iter().map(|t| t.name.clone()).collect();
        self.ctx.metrics.forget_instance(&self.inst.name, &checks);
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Advert { from, ttl, advert } => {
                let mismatches = self.router.address_list_mismatches();
                match self.router.handle_advert(now, from, ttl, &advert) {
                    Ok(()) => {
                        self.ctx.metrics.advert_received(&self.inst.name);
                        if self.router.address_list_mismatches() > mismatches
                            && self.log_limiter.hit("address_list_mismatch", now).is_some()
                        {
                            // RFC 5798 §7.1: a mismatch is logged, not dropped (a rolling
                            // reload that adds a VIP would otherwise make two masters).
                            tracing::warn!(
                                instance = %self.inst.name,
                                "{}: advert from {from} lists {:?}, we list {:?}: check that both routers configure the same VIPs",
                                self.inst.name,
                                advert.addrs,
                                self.inst.vips.iter().map(|v| v.addr()).collect::<Vec<_>>()
                            );
                        }
                        if advert.priority > 0 {
                            self.last_advert_at = Some(now);
                        }
                    }
                    Err(drop) => self.dropped(drop.label(), from),
                }
            }
            Input::Link { up } => {
                self.link_up = up;
                self.recompute_fault(now);
            }
            Input::BasePriority(p) => self.router.set_base_priority(now, p),
            Input::Override(p) => {
                self.priority_override = p;
                self.router.set_override(now, p);
            }
            Input::Maintenance(on) => {
                test_fault_injection(&self.inst.name, false);
                self.maintenance = on;
                self.router.set_maintenance(now, on);
            }
            Input::GroupFault(f) => {
                self.group_fault = f;
                self.recompute_fault(now);
            }
            Input::GroupPenalty(p) => {
                self.group_penalty = p;
                self.router.set_penalty(now, self.penalty_now());
            }
            Input::AddressRemoved(addr) => {
                if self.vips_should_be_on()
                    && self.inst.vips.iter().any(|v| v.addr() == addr.addr())
                {
                    self.check_vips = true;
                }
            }
            Input::CheckVips => self.check_vips = self.vips_should_be_on(),
            Input::Ping(n) => {
                test_fault_injection(&self.inst.name, true);
                self.alive.store(n, Ordering::Relaxed);
            }
            Input::Shutdown => self.router.shutdown(now),
        }
    }

    /// Whether the VIPs should be on the interface now: the router holds them and, with
    /// the arbiter, the arbiter key is held too.
    fn vips_should_be_on(&self) -> bool {
        self.router.holds_vips() && self.arb.as_ref().is_none_or(|a| a.gate.vips_on())
    }

    /// The router holds the VIPs but one may be gone (deleted by hand, by another tool,
    /// or with its primary address): put back what is missing.
    async fn restore_vips(&mut self) {
        if !self.vips_should_be_on() || self.inst.address_owner {
            return;
        }
        let (nl, ifindex) = (self.ctx.netlink.clone(), self.ctx.ifindex);
        for vip in self.inst.vips.clone() {
            match nl.address_owner(ifindex, vip.addr()).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(instance = %self.inst.name, "{}: cannot check {vip}: {e}", self.inst.name);
                    continue;
                }
            }
            tracing::warn!(
                instance = %self.inst.name,
                "{}: {vip} disappeared from {} while MASTER: adding it again",
                self.inst.name,
                self.inst.interface
            );
            self.ctx.metrics.repairs.vip_restored(&self.inst.name);
            if let Err(e) = nl.add_address(ifindex, vip).await {
                self.vip_add_failed(vip, &e);
            }
        }
    }

    /// A VIP could not be added: the router must not believe it holds it. The instance
    /// is in fault (a backup takes over) and tries again after [`VIP_RETRY`].
    fn vip_add_failed(&mut self, vip: ipnet::IpNet, e: &crate::net::NetError) {
        tracing::error!(
            instance = %self.inst.name,
            "{}: cannot add {vip}: {e}; in fault, retrying in {} s",
            self.inst.name,
            VIP_RETRY.as_secs()
        );
        let now = Instant::now();
        self.vip_fault = Some(format!("cannot add {vip}: {e}"));
        self.vip_retry_at = Some(now + VIP_RETRY);
        self.recompute_fault(now);
    }

    fn dropped(&mut self, reason: &str, from: IpAddr) {
        self.ctx
            .metrics
            .advert_dropped(&self.inst.interface, reason);
        if let Some(n) = self.log_limiter.hit(reason, Instant::now()) {
            tracing::warn!(
                instance = %self.inst.name,
                "{}: dropped advert from {from}: {reason} ({n} since the last such line)",
                self.inst.name
            );
        }
    }

    fn handle_track(&mut self, ev: TrackEvent) {
        let now = Instant::now();
        if let Some(h) = self.track_healthy.get_mut(ev.check) {
            *h = ev.healthy;
        }
        if let Some(v) = self.track_value.get_mut(ev.check) {
            *v = ev.value;
        }
        if let Some(l) = self.track_latency.get_mut(ev.check) {
            *l = Some(ev.latency);
        }
        if let Some(e) = self.track_error.get_mut(ev.check) {
            e.clone_from(&ev.error);
        }
        self.ctx
            .metrics
            .check(&self.inst.name, &ev.name, ev.healthy, ev.latency);
        if ev.changed {
            tracing::info!(
                instance = %self.inst.name,
                "{}: check {} is now {}",
                self.inst.name,
                ev.name,
                if ev.healthy { "healthy" } else { "failing" }
            );
        }
        let (penalty, _) = self.track_penalty();
        self.own_penalty = penalty;
        self.router.set_penalty(now, self.penalty_now());
        self.recompute_fault(now);
    }

    /// Penalty and fault reason of the instance's checks (track::penalty_with_values).
    fn track_penalty(&self) -> (u32, Option<String>) {
        track::penalty_with_values(&self.inst.tracks, &self.track_healthy, &self.track_value)
    }

    fn recompute_fault(&mut self, now: Instant) {
        let link_fault = (!self.link_up).then(|| format!("link down on {}", self.inst.interface));
        let (_, track_fault) = self.track_penalty();
        self.own_fault = link_fault
            .or(track_fault)
            .or_else(|| self.vip_fault.clone());
        let fault = self.own_fault.clone().or_else(|| self.group_fault.clone());
        self.router.set_fault(now, fault);
        self.report_group();
    }

    /// Tells the sync-group coordinator what changed (every check result lands here, so
    /// repeats are skipped).
    fn report_group(&mut self) {
        let now = (
            self.own_fault.clone(),
            self.own_penalty,
            self.router.state(),
        );
        if self.last_report.as_ref() == Some(&now) {
            return;
        }
        self.last_report = Some(now.clone());
        let (own_fault, own_penalty, state) = now;
        let _ = self.ctx.reports.send(MemberReport {
            instance: self.inst.name.clone(),
            own_fault,
            own_penalty,
            state,
        });
    }

    /// Carries out the router's actions, in order.
    async fn execute(&mut self) {
        // The router decided just before this batch; a takeover's batch is SendAdvert,
        // AddVips, Announce, StateChanged.
        let decided = Instant::now();
        let mut announced: Option<Instant> = None;
        while let Some(action) = self.router.poll_action() {
            match action {
                Action::SendAdvert { priority, interval } => {
                    self.send_advert(priority, interval).await;
                }
                Action::AddVips => {
                    if !self.arbiter_router_add() {
                        self.change_vips(true).await;
                    }
                }
                Action::Announce { reason } => {
                    if !self.arbiter_allows_announce() {
                        // Master-elect: announced when the arbiter key is held.
                        continue;
                    }
                    self.announce(reason);
                    announced = Some(Instant::now());
                    if reason == AnnounceReason::HandoverCancelled {
                        tracing::info!(
                            instance = %self.inst.name,
                            "{}: handover cancelled, still MASTER: re-announcing VIPs",
                            self.inst.name
                        );
                    }
                    if reason == AnnounceReason::PeerLeft {
                        tracing::info!(
                            instance = %self.inst.name,
                            "{}: another router sent priority 0 while we are MASTER: re-announcing VIPs",
                            self.inst.name
                        );
                    }
                    if reason == AnnounceReason::SplitBrainHealed {
                        tracing::info!(
                            instance = %self.inst.name,
                            "{}: still MASTER after a split brain healed: re-announcing VIPs",
                            self.inst.name
                        );
                        self.notifier.notify(
                            &self.inst.name,
                            "master",
                            "split brain healed, still master",
                        );
                    }
                }
                Action::StopAnnouncing => self.stop_announcing(),
                Action::RemoveVips => {
                    self.stop_announcing();
                    if !self.arbiter_router_remove() {
                        self.change_vips(false).await;
                    }
                }
                Action::StateChanged { from, to, reason } => {
                    tracing::info!(
                        instance = %self.inst.name,
                        from = %from,
                        to = %to,
                        "{}: {} -> {} ({reason})",
                        self.inst.name,
                        from.to_string().to_uppercase(),
                        to.to_string().to_uppercase()
                    );
                    if to == State::Master && from == State::Backup {
                        if let Some(t) = announced {
                            self.ctx
                                .metrics
                                .takeover_announce(&self.inst.name, t.duration_since(decided));
                        }
                        if let Some(heard) = self.last_advert_at {
                            self.ctx
                                .metrics
                                .takeover_detect(&self.inst.name, decided.duration_since(heard));
                        }
                    }
                    if to == State::Backup {
                        // Time to detect counts from adverts heard in this Backup spell.
                        self.last_advert_at = None;
                    }
                    let (f, t) = (from.to_string(), to.to_string());
                    self.ctx.metrics.transition(&self.inst.name, &f, &t);
                    self.ctx.metrics.set_state(&self.inst.name, &t);
                    let at = SystemTime::now();
                    self.entered_state_at = at;
                    self.entered_state_mono = Instant::now();
                    self.last_transition = Some(Transition {
                        from: f.clone(),
                        to: t.clone(),
                        reason: reason.to_string(),
                        at_unix_ms: unix_ms(at),
                    });
                    let _ = self.ctx.events.send(Event {
                        instance: self.inst.name.clone(),
                        from: f,
                        to: t.clone(),
                        reason: reason.to_string(),
                        at_unix_ms: unix_ms(at),
                    });
                    // Init runs only the `any` hook (there is no init hook). A master-elect's
                    // `master` hook waits for the arbiter key.
                    if self.arbiter_hook_now(to, &reason.to_string()) {
                        self.notifier
                            .notify(&self.inst.name, &t, &reason.to_string());
                    }
                    self.report_group();
                }
                Action::Released => {
                    self.released = true;
                }
            }
        }
    }

    /// Adds (or removes) every VIP, all netlink requests in flight at once: with many
    /// VIPs the takeover waits for one round trip to the kernel, not one per VIP.
    async fn change_vips(&mut self, add: bool) {
        if self.inst.address_owner {
            // The owner's VIPs are the host's own addresses: never added or removed here.
            return;
        }
        let (nl, ifindex) = (&self.ctx.netlink, self.ctx.ifindex);
        let results = futures::future::join_all(self.inst.vips.iter().map(|vip| async move {
            let r = if add {
                nl.add_address(ifindex, *vip).await
            } else {
                nl.del_address(ifindex, *vip).await
            };
            (vip, r)
        }))
        .await;
        let failed: Vec<(ipnet::IpNet, crate::net::NetError)> = results
            .into_iter()
            .filter_map(|(vip, r)| r.err().map(|e| (*vip, e)))
            .collect();
        for (vip, e) in failed {
            if add {
                self.vip_add_failed(vip, &e);
            } else {
                // Not ours (the operator's own address) or a netlink failure: left alone.
                tracing::error!(instance = %self.inst.name, "{}: not removing {vip}: {e}", self.inst.name);
            }
        }
    }

    async fn send_advert(&mut self, priority: u8, interval: crate::proto::Centis) {
        let advert = Advert {
            version: self.inst.version,
            vrid: self.inst.vrid,
            priority,
            interval,
            addrs: self.inst.vips.iter().map(|n| n.addr()).collect(),
        };
        let form = if self.inst.checksum_pseudo_header {
            ChecksumForm::WithPseudoHeader
        } else {
            ChecksumForm::WithoutPseudoHeader
        };
        let dsts: Vec<IpAddr> = if self.inst.unicast_peers.is_empty() {
            vec![match self.ctx.source {
                IpAddr::V4(_) => IpAddr::V4(crate::net::VRRP_V4_GROUP),
                IpAddr::V6(_) => IpAddr::V6(crate::net::VRRP_V6_GROUP),
            }]
        } else {
            self.inst.unicast_peers.clone()
        };
        for dst in dsts {
            // The checksum's pseudo-header uses the real destination (keepalived #642).
            let bytes = advert.to_bytes(self.ctx.source, dst, form);
            match bytes {
                Ok(bytes) => match self.ctx.socket.send(dst, &bytes).await {
                    Ok(()) => self.ctx.metrics.advert_sent(&self.inst.name),
                    Err(e) => {
                        if self.log_limiter.hit("send_error", Instant::now()).is_some() {
                            tracing::warn!(instance = %self.inst.name, "{}: cannot send advert to {dst}: {e}", self.inst.name);
                        }
                    }
                },
                Err(e) => {
                    tracing::error!(instance = %self.inst.name, "{}: cannot encode advert: {e}", self.inst.name);
                }
            }
        }
    }

    /// Cancels pending announcement rounds and the periodic refresh.
    fn stop_announcing(&mut self) {
        if let Some(a) = self.announcer.take() {
            a.abort();
        }
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
    }

    /// Gratuitous ARP / unsolicited NA for every VIP: `count` rounds, `spacing` apart,
    /// the first at once; then, if configured, one round every `refresh` while master.
    fn announce(&mut self, _reason: AnnounceReason) {
        let frames: Vec<Vec<u8>> = self
            .inst
            .vips
            .iter()
            .map(|vip| match (vip.addr(), self.ctx.source) {
                (IpAddr::V4(v4), _) => arp::gratuitous_arp(self.ctx.mac, v4),
                (IpAddr::V6(v6), IpAddr::V6(src)) => ndp::unsolicited_na(self.ctx.mac, src, v6),
                (IpAddr::V6(v6), IpAddr::V4(_)) => {
                    ndp::unsolicited_na(self.ctx.mac, std::net::Ipv6Addr::UNSPECIFIED, v6)
                }
            })
            .collect();
        // First round synchronously, so that the decision-to-announce time is real.
        for f in &frames {
            if let Err(e) = self.ctx.frames.send(f) {
                tracing::warn!(instance = %self.inst.name, "{}: cannot send announcement: {e}", self.inst.name);
            }
        }
        if let Some(a) = self.announcer.take() {
            a.abort();
        }
        let sender = self.ctx.frames.clone();
        let count = self.inst.announce.count;
        let spacing = self.inst.announce.spacing;
        let refresh = self.inst.announce.refresh;
        let frames = Arc::new(frames);
        let rounds = frames.clone();
        self.announcer = Some(tokio::spawn(async move {
            for _ in 1..count {
                tokio::time::sleep(spacing).await;
                for f in rounds.iter() {
                    let _ = sender.send(f);
                }
            }
        }));
        if let Some(every) = refresh {
            if self.refresher.is_none() {
                let sender = self.ctx.frames.clone();
                self.refresher = Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        for f in frames.iter() {
                            let _ = sender.send(f);
                        }
                    }
                }));
            }
        }
    }

    fn publish(&mut self) {
        let master = self.router.master_addr();
        if master != self.last_master {
            if master.is_some() {
                self.ctx.metrics.master_changed(&self.inst.name);
            }
            self.last_master = master;
        }
        let prio = self.router.effective_priority();
        let state = self.router.state().to_string();
        let m = &self.ctx.metrics.instance;
        m.set_priority(&self.inst.name, prio);
        m.set_state(&self.inst.name, &state);
        m.set_state_since(&self.inst.name, self.entered_state_at);
        m.set_operator(&self.inst.name, self.priority_override, self.maintenance);
        let vips: Vec<String> = self.inst.vips.iter().map(|v| v.to_string()).collect();
        let family = match self.ctx.source {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        };
        m.set_identity(
            &self.inst.name,
            &self.inst.interface,
            self.inst.vrid,
            family,
            &super::metrics::vips_label(&vips),
        );
        let tracks = self
            .inst
            .tracks
            .iter()
            .enumerate()
            .map(|(i, spec)| TrackStatus {
                name: spec.name.clone(),
                healthy: self.track_healthy.get(i).copied().unwrap_or(false),
                weight: i32::from(spec.weight),
                last_latency_ms: self
                    .track_latency
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|d| d.as_millis() as u64),
                detail: self.track_error.get(i).cloned().flatten().or_else(|| {
                    matches!(spec.kind, track::CheckKind::File { .. })
                        .then(|| format!("value {}", self.track_value.get(i).copied().unwrap_or(0)))
                }),
            })
            .collect();
        let st = InstanceStatus {
            name: self.inst.name.clone(),
            vrid: self.inst.vrid,
            interface: self.inst.interface.clone(),
            state,
            priority: prio,
            base_priority: self.router.base_priority(),
            priority_override: self.priority_override,
            maintenance: self.maintenance,
            vips,
            master: master.map(|a| a.to_string()),
            version: match self.inst.version {
                crate::proto::Version::V2 => 2,
                crate::proto::Version::V3 => 3,
            },
            advert_interval_ms: u32::from(self.inst.advert_interval.0) * 10,
            since_unix_ms: Some(unix_ms(self.entered_state_at)),
            in_state_ms: None, // counted when read (BoardEntry::snapshot)
            last_transition: self.last_transition.clone(),
            tracks,
            sync_group: None, // filled in by the supervisor, which knows the groups
            fault: self.own_fault.clone().or_else(|| self.group_fault.clone()),
            restarts: 0, // filled in by the supervisor
            bfd: self.bfd.as_ref().map(|b| b.status()).unwrap_or_default(),
            arbiter: self.arbiter_status(),
        };
        self.ctx
            .board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                self.inst.name.clone(),
                BoardEntry {
                    status: st,
                    entered: self.entered_state_mono,
                },
            );
    }
}

// ----- peer BFD (the logic is in daemon::bfd and Router::master_down_detected) --------

impl Driver {
    fn start_bfd(&mut self) {
        let tracks: Vec<super::bfd::PeerSpec> = self
            .inst
            .tracks
            .iter()
            .filter_map(|t| match t.kind {
                track::CheckKind::Bfd { peer, multiplier } => Some(super::bfd::PeerSpec {
                    ifname: self.inst.interface.clone(),
                    ifindex: self.ctx.ifindex,
                    source: super::bfd::bfd_source(self.ctx.source, peer),
                    peer,
                    interval: t.interval,
                    multiplier,
                }),
                _ => None,
            })
            .collect();
        if !tracks.is_empty() {
            match super::bfd::engine(&self.ctx.metrics) {
                Ok(engine) => {
                    let mut sub = engine.subscribe(&self.inst.name, tracks);
                    self.bfd_track_rx = sub.events.take();
                    self.bfd_track = Some(sub);
                }
                Err(e) => {
                    tracing::error!(instance = %self.inst.name, "{}: {e}; bfd tracks stay unhealthy", self.inst.name);
                }
            }
        }
        let Some(spec) = &self.inst.bfd else {
            return;
        };
        match super::bfd::engine(&self.ctx.metrics) {
            Ok(engine) => {
                let peers = super::bfd::peer_specs(
                    spec,
                    &self.inst.interface,
                    self.ctx.ifindex,
                    self.ctx.source,
                );
                let mut sub = engine.subscribe(&self.inst.name, peers);
                self.bfd_rx = sub.events.take();
                self.bfd = Some(sub);
            }
            Err(e) => {
                tracing::error!(instance = %self.inst.name, "{}: {e}; running without BFD", self.inst.name);
            }
        }
    }

    /// A `kind = "bfd"` track's session changed state: healthy while Up.
    fn handle_bfd_track(&mut self, ev: super::bfd::BfdEvent) {
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

    fn handle_bfd(&mut self, ev: super::bfd::BfdEvent) {
        let now = Instant::now();
        if !super::bfd::is_failure(&ev) {
            return;
        }
        let detect = ev.detect.unwrap_or_default();
        let follows =
            self.router.state() == State::Backup && self.router.master_addr() == Some(ev.peer);
        if self.router.master_down_detected(now, ev.peer, detect) {
            let wait = self.router.bfd_wait(detect);
            if !wait.is_zero() && self.router.state() == State::Backup {
                tracing::info!(
                    instance = %self.inst.name,
                    "{}: BFD says master {} is down: taking over in {:.1} ms unless another backup does",
                    self.inst.name,
                    ev.peer,
                    wait.as_secs_f64() * 1000.0
                );
            }
        } else if follows && self.router.bfd_held_down(now) {
            tracing::info!(
                instance = %self.inst.name,
                "{}: BFD session to master {} down, ignored: BFD is held down after a takeover that adverts undid",
                self.inst.name,
                ev.peer
            );
        }
    }
}

/// The host name, for the arbiter key's value (who holds it).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned())
}
