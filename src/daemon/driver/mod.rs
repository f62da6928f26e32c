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
//!
//! Files: this one holds the types and the task's start; `run` the event loop and
//! inputs; `actions` carries out the router's actions; `faults` the fault and penalty
//! sources; `status` publishes status and metrics; `peer_bfd` and `arb` the BFD and
//! arbiter glue; `test_hooks` the debug-only fault injection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Instance;
use crate::control::message::{Event, InstanceStatus, Transition};
use crate::net::{DeadlineTimer, FrameSender, Netlink, VrrpSocket};
use crate::proto::Advert;
use crate::track::{self, CheckSet, Notifier, TrackEvent};
use crate::vrrp::{Router, RouterConfig, State};

use super::metrics::{AdvertCounters, Metrics};
pub use batch::{AdvertBatch, BatchMember};
pub use grid::GridClocks;

mod actions;
mod arb;
mod batch;
mod faults;
mod grid;
mod peer_bfd;
mod run;
mod status;
mod test_hooks;

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

/// How a driver task ended: what the supervisor's `JoinSet` yields.
#[derive(Debug, Clone)]
pub struct Ended {
    /// `Some(panic message)` when the driver panicked (its VIPs were removed); `None`
    /// when it ended after its router was released.
    pub crash: Option<String>,
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

/// The link that carries an instance's VIPs and announcements: its interface, or in
/// virtual MAC mode (RFC 5798 §7.3) the instance's macvlan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipLink {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC address, the announcements' sender.
    pub mac: [u8; 6],
    /// Virtual MAC mode, IPv6: the macvlan is up only while master (see
    /// [`crate::net::Netlink::set_vmac_up`]).
    pub follows_master: bool,
}

/// Everything a driver needs from the outside world.
pub struct DriverContext {
    /// Netlink handle for VIPs.
    pub netlink: Netlink,
    /// Socket to send adverts on (shared with the receiver).
    pub socket: Arc<VrrpSocket>,
    /// AF_PACKET sender for announcements.
    pub frames: Arc<FrameSender>,
    /// The link that carries the VIPs and the announcements.
    pub link: VipLink,
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
    /// The epoch of the advert grid (`Router::set_advert_grid`), the same for every
    /// instance: masters with the same interval send at the same instants.
    pub advert_epoch: Instant,
    /// The driver's own timer, for the router's deadlines off the advert grid.
    pub timer: DeadlineTimer,
    /// The timers of the advert grid, one per interval, shared by the masters.
    pub grid: Arc<GridClocks>,
    /// The queue of periodic adverts sent together on `socket` (`None`: each advert is
    /// sent on its own, as on a virtual MAC link's socket of its own).
    pub batch: Option<BatchMember>,
}

/// Handle to a running driver.
pub struct DriverHandle {
    /// Adverts from the receivers (bounded: a flood is dropped and counted, never
    /// queued without limit).
    pub tx: mpsc::Sender<Input>,
    /// Everything else, from the supervisor: few, trusted, and never blocking the
    /// supervisor on a driver whose advert queue is full.
    pub ctl: mpsc::UnboundedSender<Input>,
    /// The task (in the supervisor's `JoinSet`); it ends after the router is released.
    pub task: tokio::task::Id,
    /// The configuration it runs.
    pub instance: Instance,
    /// The last [`Input::Ping`] the driver answered.
    pub alive: Arc<AtomicU64>,
}

/// Starts the driver task of `inst` in `tasks`. A panic inside it is caught: the VIPs it
/// may hold are removed and the task ends with [`Ended::crash`] set (the supervisor
/// restarts the instance); the other instances are not touched.
pub fn spawn(inst: Instance, ctx: DriverContext, tasks: &mut JoinSet<Ended>) -> DriverHandle {
    let (tx, rx) = mpsc::channel(1024);
    let (ctl, ctl_rx) = mpsc::unbounded_channel();
    let instance = inst.clone();
    let alive = Arc::new(AtomicU64::new(0));
    let answered = alive.clone();
    // Every line the driver logs carries the instance in this span (`driver{instance=web}`
    // in text logs, `"span": {"instance": "web", ...}` in JSON). The state-change line keeps
    // the name in its text too: `web: BACKUP -> MASTER (...)` is part of the contract.
    let span = tracing::info_span!("driver", instance = %inst.name);
    let run = async move {
        let mut d = Driver::new(inst, ctx, answered);
        let run = std::panic::AssertUnwindSafe(d.run(ctl_rx, rx));
        if let Err(panic) = futures::FutureExt::catch_unwind(run).await {
            let message = panic_message(&panic);
            tracing::error!(
                "driver panicked ({message}): removing its VIPs; the supervisor restarts it"
            );
            d.stop_announcing();
            if !d.inst.address_owner {
                for vip in &d.inst.vips {
                    let _ = d.ctx.netlink.del_address(d.ctx.link.index, *vip).await;
                }
            }
            d.ctx
                .board
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.inst.name);
            return Ended {
                crash: Some(message),
            };
        }
        Ended { crash: None }
    };
    let task = tasks.spawn(tracing::Instrument::instrument(run, span));
    DriverHandle {
        tx,
        ctl,
        task: task.id(),
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
    /// A VIP could not be added: the instance is in fault (the router's
    /// [`crate::vrrp::Condition::VipAdd`]) until then.
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
    /// Per VIP (in `inst.vips` order): `change_vips` announced it right after adding it,
    /// so the Announce that follows leaves it out of its first round (cleared after every
    /// batch of actions).
    early_announced: Vec<bool>,
    /// IPv6 virtual MAC mode: whether the macvlan was last set up (see
    /// [`VipLink::follows_master`]).
    vmac_up: bool,
    /// What the status board and the instance gauges last showed: `publish` rebuilds
    /// them only when this changed.
    published: Option<status::PublishKey>,
    /// Bumped on every health-check result (tracks are part of the published status).
    track_gen: u64,
    /// The instance's advert counters, looked up once (not by name on every advert).
    counters: AdvertCounters,
    /// The adverts of this batch of actions are periodic (the Adver_Timer fired while
    /// master): they go through [`DriverContext::batch`]. A takeover's advert goes out
    /// at once, before the VIPs are added.
    periodic: bool,
    /// While master on the advert grid: the grid's timer of its interval.
    grid_clock: Option<Arc<DeadlineTimer>>,
    /// The instance name, shared with the adverts queued in the batch.
    name: Arc<str>,
}

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
        let counters = ctx.metrics.adverts.counters(&inst.name);
        let name: Arc<str> = Arc::from(inst.name.as_str());
        let mut router = Router::new(cfg);
        router.set_advert_grid(Some(ctx.advert_epoch));
        Driver {
            link_up: ctx.link_up,
            priority_override: ctx.priority_override,
            maintenance: ctx.maintenance,
            router,
            checks,
            track_rx,
            // A check counts as unhealthy until `rise` successes (track::health), so a
            // restarting host cannot preempt on checks it has not run yet.
            track_healthy: vec![false; n],
            track_value: vec![0; n],
            track_latency: vec![None; n],
            track_error: vec![None; n],
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
            log_limiter: crate::daemon::ratelimit::LogLimiter::new(Duration::from_secs(10)),
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
            early_announced: Vec::new(),
            vmac_up: false,
            published: None,
            track_gen: 0,
            counters,
            periodic: false,
            grid_clock: None,
            name,
        }
    }
}

/// The host name, for the arbiter key's value (who holds it).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned())
}
