//! Wiring: the runtime, one driver per instance, signals, reload, control socket,
//! sync groups, sd_notify and metrics.
//!
//! ```text
//!  signals (TERM/INT/HUP) --+
//!  control socket calls ----+--> [ supervisor ] --spawn/stop--> drivers (one per instance)
//!  link watcher (netlink) --+        |   ^                           ^
//!  sync-group reports ------+        |   +---- MemberReport ---------+
//!  released notices --------+        v
//!                            receivers (one per interface+source) --Input::Advert--> drivers
//! ```
//!
//! The supervisor owns every kernel handle that instances share (VRRP sockets,
//! packet sockets, the netlink handle) and routes events to drivers; it never
//! touches an address itself except to clean up after a crashed earlier run.

pub mod bfd;
pub mod driver;
pub mod lock;
pub mod metrics;
mod ratelimit;
mod receiver;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::config::{self, Config, ConfigErrors, Instance};
use crate::control::message::{Event, InstanceStatus, Request, Response, Status};
use crate::control::overrides::{Change, OverrideStore};
use crate::control::server::{serve, ControlCall, ControlListener};
use crate::net::{
    AddressChange, AddressWatcher, FrameSender, LinkEvent, LinkWatcher, NetError, Netlink,
    VrrpSocket,
};
use crate::track::Notifier;
use crate::vrrp::{RecvFilter, State};

use driver::{DriverContext, DriverHandle, Input, MemberReport, StatusBoard};
use metrics::Metrics;
use receiver::Dispatch;

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A kernel facility is missing or refused.
    #[error("{0}")]
    Net(#[from] NetError),
    /// The control socket could not be set up.
    #[error("control socket: {0}")]
    Control(String),
    /// The metrics listener could not be bound.
    #[error("metrics listener on {addr}: {source}")]
    Metrics {
        /// Address from `metrics-listen`.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// An address owner whose VIPs are not the interface's own addresses: a
    /// configuration mistake that waiting will not fix.
    #[error("{0}")]
    OwnerWithoutAddress(String),
    /// Another vipd runs here: nothing was changed.
    #[error("{0}")]
    Lock(#[from] lock::LockError),
    /// Anything else at start-up.
    #[error("{0}")]
    Startup(String),
}

/// Loads the configuration at `path` and runs the daemon until SIGTERM/SIGINT.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let config = config::load(path).map_err(DaemonError::Config)?;
    // Before any change to the kernel: a second vipd started by mistake must exit
    // having touched nothing.
    let lock = lock::InstanceLock::acquire(Some(&config.state_dir))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Startup(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut sup = Supervisor::start(path.to_path_buf(), config, lock).await?;
        sup.run().await;
        Ok(())
    })
}

struct SocketEntry {
    socket: Arc<VrrpSocket>,
    dispatch: Dispatch,
    receiver: JoinHandle<()>,
}

struct Supervisor {
    path: PathBuf,
    config: Config,
    netlink: Netlink,
    metrics: Metrics,
    board: StatusBoard,
    events: broadcast::Sender<Event>,
    drivers: HashMap<String, DriverHandle>,
    sockets: HashMap<(String, IpAddr), SocketEntry>,
    frames: HashMap<String, Arc<FrameSender>>,
    store: OverrideStore,
    group_tx: mpsc::UnboundedSender<MemberReport>,
    group_rx: mpsc::UnboundedReceiver<MemberReport>,
    members: HashMap<String, MemberReport>,
    group_states: HashMap<String, State>,
    group_notifiers: HashMap<String, Notifier>,
    group_sent: HashMap<String, (Option<String>, u32)>,
    /// Groups with members both master and backup here: since when, and whether warned.
    group_split: HashMap<String, (Instant, bool)>,
    released_tx: mpsc::UnboundedSender<String>,
    released_rx: mpsc::UnboundedReceiver<String>,
    /// Instances waiting for their old driver to finish its release before starting.
    pending: HashMap<String, Instance>,
    /// Rebuilt instances whose interface or address is missing, retried every second.
    waiting: HashMap<String, Instance>,
    /// Why each instance that is not running could not start (shown in status).
    not_started: HashMap<String, String>,
    /// Drivers that panicked, and how often each instance was restarted for it.
    crashed_tx: mpsc::UnboundedSender<driver::Crash>,
    crashed_rx: mpsc::UnboundedReceiver<driver::Crash>,
    restarts: HashMap<String, u32>,
    /// The liveness probe last sent to every driver (see `feed_watchdog`).
    ping: u64,
    /// Instances handing over before they stop (by name), until their driver ends.
    stopping: HashMap<String, Instance>,
    /// ifindex of each interface in use, to notice an interface that was re-created.
    ifindex: HashMap<String, u32>,
    calls_rx: mpsc::Receiver<ControlCall>,
    link_rx: mpsc::Receiver<LinkEvent>,
    addr_rx: mpsc::Receiver<AddressChange>,
    background: Vec<JoinHandle<()>>,
    /// The single-instance lock, held until the process ends.
    _lock: lock::InstanceLock,
    /// When this vipd started (`startup-delay` counts from here).
    started_at: Instant,
}

impl Supervisor {
    async fn start(
        path: PathBuf,
        config: Config,
        lock: lock::InstanceLock,
    ) -> Result<Self, DaemonError> {
        let started_at = Instant::now();
        let netlink = Netlink::connect().await?;
        let metrics = Metrics::new();
        let (events, _) = broadcast::channel(1024);
        let board: StatusBoard = Arc::new(Mutex::new(BTreeMap::new()));

        // Before anything else (and only now that we hold the lock): a crashed or
        // killed earlier run may have left addresses behind, also of instances no longer
        // configured. A restarted host must never answer for a VIP it does not hold.
        // Only addresses that carry vipd's mark are removed.
        remove_marked_addresses(&netlink, "left there by an earlier run").await?;

        let store = match OverrideStore::load(&config.state_dir) {
            Ok(s) => s,
            Err(e) => {
                return Err(DaemonError::Startup(format!(
                    "cannot read operator overrides in {}: {e} (fix or remove the file; vipd will not guess whether a host was drained)",
                    config.state_dir.display()
                )))
            }
        };

        let listener =
            ControlListener::bind(&config.control_socket, config.control_group.as_deref())
                .map_err(|e| DaemonError::Control(e.to_string()))?;
        let (calls_tx, calls_rx) = mpsc::channel(64);
        let mut background = vec![tokio::spawn(serve(listener, calls_tx, events.clone()))];

        if let Some(addr) = config.metrics_listen {
            let l = metrics::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            background.push(tokio::spawn(metrics.clone().serve(l)));
        }

        let mut watcher = LinkWatcher::open()?;
        let (link_tx, link_rx) = mpsc::channel(256);
        background.push(tokio::spawn(async move {
            while let Some(ev) = watcher.next().await {
                if link_tx.send(ev).await.is_err() {
                    break;
                }
            }
        }));

        let mut addr_watcher = AddressWatcher::open()?;
        let (addr_tx, addr_rx) = mpsc::channel(1024);
        background.push(tokio::spawn(async move {
            while let Some(ev) = addr_watcher.next().await {
                if addr_tx.send(ev).await.is_err() {
                    break;
                }
            }
        }));

        let (crashed_tx, crashed_rx) = mpsc::unbounded_channel();
        let (group_tx, group_rx) = mpsc::unbounded_channel();
        let (released_tx, released_rx) = mpsc::unbounded_channel();
        let mut sup = Supervisor {
            path,
            config: config.clone(),
            netlink,
            metrics,
            board,
            events,
            drivers: HashMap::new(),
            sockets: HashMap::new(),
            frames: HashMap::new(),
            store,
            group_tx,
            group_rx,
            members: HashMap::new(),
            group_states: HashMap::new(),
            group_notifiers: HashMap::new(),
            group_split: HashMap::new(),
            group_sent: HashMap::new(),
            released_tx,
            released_rx,
            pending: HashMap::new(),
            waiting: HashMap::new(),
            not_started: HashMap::new(),
            crashed_tx,
            crashed_rx,
            restarts: HashMap::new(),
            ping: 0,
            stopping: HashMap::new(),
            ifindex: HashMap::new(),
            calls_rx,
            link_rx,
            addr_rx,
            background,
            _lock: lock,
            started_at,
        };
        // Start-up is not all-or-nothing: an instance that cannot start yet (missing
        // interface, an operator's address in the way) waits and is retried every
        // second; the others run.
        for inst in config.instances {
            match sup.start_instance(inst.clone()).await {
                Ok(()) => {}
                // Missing privileges and an owner without its address will not fix
                // themselves: exit with the reason.
                Err(e @ DaemonError::Net(NetError::NeedsCapNetAdmin { .. }))
                | Err(e @ DaemonError::Net(NetError::NeedsCapNetRaw { .. }))
                | Err(e @ DaemonError::OwnerWithoutAddress(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot start yet: {e}; retrying every second",
                        inst.name
                    );
                    sup.not_started.insert(inst.name.clone(), e.to_string());
                    sup.waiting.insert(inst.name.clone(), inst);
                }
            }
        }
        Ok(sup)
    }

    fn group_of(&self, instance: &str) -> Option<&config::SyncGroup> {
        self.config
            .sync_groups
            .iter()
            .find(|g| g.instances.iter().any(|m| m == instance))
    }

    async fn start_instance(&mut self, inst: Instance) -> Result<(), DaemonError> {
        // An instance handing over on the same interface and VRID (a rename or a
        // remove-and-add in one reload) must finish first: two drivers for one virtual
        // router would remove each other's VIPs. The caller retries.
        if let Some(busy) = self.stopping.values().find(|o| {
            o.interface == inst.interface && o.vrid == inst.vrid && o.family == inst.family
        }) {
            return Err(DaemonError::Startup(format!(
                "{}: VRID {} on {} is still handing over as {}",
                inst.name, inst.vrid, inst.interface, busy.name
            )));
        }
        // A new driver starts without a group's fault or penalty: send them again.
        self.group_sent.remove(&inst.name);
        let link = self.netlink.link(&inst.interface).await?;
        self.check_vip_addresses(&inst, link.index).await?;
        warn_promote_secondaries(&inst);
        self.ifindex.insert(inst.interface.clone(), link.index);
        let source = self.source_address(&inst, link.index).await?;
        let key = (inst.interface.clone(), source);
        if !self.sockets.contains_key(&key) {
            let socket = Arc::new(open_socket(&inst.interface, link.index, source).await?);
            let dispatch: Dispatch = Arc::new(RwLock::new(HashMap::new()));
            let receiver = tokio::spawn(receiver::run(
                socket.clone(),
                inst.interface.clone(),
                dispatch.clone(),
                self.metrics.clone(),
            ));
            self.sockets.insert(
                key.clone(),
                SocketEntry {
                    socket,
                    dispatch,
                    receiver,
                },
            );
        }
        let frames = match self.frames.get(&inst.interface) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(FrameSender::open(link.index)?);
                self.frames.insert(inst.interface.clone(), f.clone());
                f
            }
        };
        let Some(entry) = self.sockets.get(&key) else {
            return Err(DaemonError::Startup("socket table corrupted".into()));
        };
        let saved = self.store.get(&inst.name);
        let ctx = DriverContext {
            netlink: self.netlink.clone(),
            socket: entry.socket.clone(),
            frames,
            ifindex: link.index,
            mac: link.mac,
            source,
            link_up: link.up,
            metrics: self.metrics.clone(),
            board: self.board.clone(),
            events: self.events.clone(),
            reports: self.group_tx.clone(),
            priority_override: saved.priority,
            maintenance: saved.maintenance,
            start_at: Some(self.started_at + self.config.startup_delay),
            arbiter: if inst.arbiter {
                self.config.arbiter.clone()
            } else {
                None
            },
        };
        if saved.priority.is_some() || saved.maintenance {
            tracing::info!(
                "{}: restored operator state: priority override {:?}, maintenance {}",
                inst.name,
                saved.priority,
                saved.maintenance
            );
        }
        let vrid = inst.vrid;
        let name = inst.name.clone();
        let filter = Arc::new(RecvFilter::new(&driver::router_config(&inst, source)));
        let handle = driver::spawn(inst, ctx, self.crashed_tx.clone());
        // A new driver counts as having answered the pings sent before it existed.
        handle
            .alive
            .store(self.ping, std::sync::atomic::Ordering::Relaxed);
        entry
            .dispatch
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                vrid,
                receiver::Route {
                    tx: handle.tx.clone(),
                    filter,
                },
            );
        self.drivers.insert(name, handle);
        Ok(())
    }

    /// An address owner's VIPs must be the interface's own addresses; anyone else's
    /// VIPs must not be addresses vipd did not add (the operator's own).
    async fn check_vip_addresses(&self, inst: &Instance, ifindex: u32) -> Result<(), DaemonError> {
        let present = self.netlink.addresses(ifindex).await?;
        if inst.address_owner {
            // An address owner's VIPs are the interface's own addresses (RFC 5798 §1):
            // vipd neither adds nor removes them, and they must be there.
            if let Some(vip) = inst
                .vips
                .iter()
                .find(|v| !present.iter().any(|a| a.addr() == v.addr()))
            {
                return Err(DaemonError::OwnerWithoutAddress(format!(
                    "{}: address-owner = true but {} is not an address of {}; an owner's VIPs must be the interface's own addresses",
                    inst.name,
                    vip.addr(),
                    inst.interface
                )));
            }
            return Ok(());
        }
        // An address equal to a VIP that vipd did not add is the operator's: vipd would
        // remove it when it leaves Master. Refuse the instance until it is gone.
        for vip in inst
            .vips
            .iter()
            .filter(|v| present.iter().any(|a| a.addr() == v.addr()))
        {
            if self.netlink.address_owner(ifindex, vip.addr()).await? == Some(false) {
                return Err(DaemonError::Net(NetError::AddressNotOurs {
                    ifindex,
                    addr: *vip,
                    proto: crate::net::ADDRESS_PROTO,
                }));
            }
        }
        Ok(())
    }

    /// The address `inst` sends adverts from.
    async fn source_address(&self, inst: &Instance, ifindex: u32) -> Result<IpAddr, DaemonError> {
        let v6 = matches!(inst.family, config::Family::V6);
        match inst.source_address {
            Some(a) => Ok(a),
            None => self
                .netlink
                .primary_address(ifindex, v6)
                .await?
                .ok_or_else(|| {
                    DaemonError::Startup(format!(
                        "{}: interface {} has no {} address to send adverts from; add one or set source-address",
                        inst.name,
                        inst.interface,
                        if v6 { "IPv6 link-local" } else { "IPv4" }
                    ))
                }),
        }
    }

    /// Asks the driver of `name` to hand over and stop; the supervisor hears about it
    /// on `released_rx` once the router is released.
    fn stop_instance(&mut self, name: &str) {
        let Some(handle) = self.drivers.remove(name) else {
            return;
        };
        self.stopping
            .insert(name.to_string(), handle.instance.clone());
        let tx = handle.tx.clone();
        let ctl = handle.ctl.clone();
        let released = self.released_tx.clone();
        let name = name.to_string();
        let sockets: Vec<Dispatch> = self.sockets.values().map(|s| s.dispatch.clone()).collect();
        let vrid = handle.instance.vrid;
        tokio::spawn(async move {
            let _ = ctl.send(Input::Shutdown);
            let _ = handle.task.await;
            for d in sockets {
                let mut d = d.write().unwrap_or_else(|e| e.into_inner());
                if d.get(&vrid).is_some_and(|r| r.tx.same_channel(&tx)) {
                    d.remove(&vrid);
                }
            }
            let _ = released.send(name);
        });
    }

    async fn run(&mut self) {
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            "vipd {} running {} instance(s) from {}",
            env!("CARGO_PKG_VERSION"),
            self.drivers.len(),
            self.path.display()
        );
        // systemd's watchdog (WatchdogSec=): fed from this loop, at least twice per period.
        let watchdog = sd_notify::watchdog_enabled();
        let period = watchdog
            .map(|w| (w / 2).clamp(Duration::from_millis(100), Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = recv_signal(&mut term) => break,
                _ = recv_signal(&mut int) => break,
                _ = recv_signal(&mut hup) => {
                    tracing::info!("SIGHUP: reloading {}", self.path.display());
                    let _ = self.reload().await;
                }
                Some(call) = self.calls_rx.recv() => {
                    let resp = self.handle_request(call.request).await;
                    let _ = call.reply.send(resp);
                }
                Some(ev) = self.link_rx.recv() => self.handle_link(ev).await,
                Some(ev) = self.addr_rx.recv() => self.handle_address(ev),
                Some(crash) = self.crashed_rx.recv() => self.handle_crash(crash),
                Some(report) = self.group_rx.recv() => self.handle_member(report),
                Some(name) = self.released_rx.recv() => {
                    self.stopping.remove(&name);
                    if let Some(inst) = self.pending.remove(&name) {
                        self.restart_instance(inst, true).await;
                    }
                    // Instances that waited for this one's VRID to be free.
                    let waiting: Vec<Instance> = self.waiting.drain().map(|(_, i)| i).collect();
                    for inst in waiting {
                        self.restart_instance(inst, false).await;
                    }
                    self.close_unused_sockets();
                }
                _ = tick.tick() => {
                    let waiting: Vec<Instance> = self.waiting.drain().map(|(_, i)| i).collect();
                    for inst in waiting {
                        self.restart_instance(inst, false).await;
                    }
                    self.send_group_inputs();
                    self.watch_group_splits();
                    self.notify_status();
                    self.feed_watchdog(watchdog);
                }
            }
        }
        self.shutdown(&mut term, &mut int).await;
    }

    /// Closes the VRRP sockets (leaving their multicast groups) and packet sockets that
    /// no instance uses any more, after the last instance on them was removed.
    fn close_unused_sockets(&mut self) {
        self.sockets.retain(|(ifname, source), s| {
            let used = !s
                .dispatch
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if !used {
                tracing::info!("{ifname}: no instance left on {source}: closing its VRRP socket");
                s.receiver.abort();
            }
            used
        });
        let drivers = &self.drivers;
        let stopping = &self.stopping;
        self.frames.retain(|ifname, _| {
            drivers.values().any(|d| d.instance.interface == *ifname)
                || stopping.values().any(|i| i.interface == *ifname)
        });
    }

    /// A reload changed an instance that has no running driver: it is waiting to be
    /// rebuilt (pending) or for its interface (waiting); the new settings take its place.
    fn replace_not_running(&mut self, inst: &Instance) {
        if let Some(p) = self.pending.get_mut(&inst.name) {
            *p = inst.clone();
        } else {
            self.waiting.insert(inst.name.clone(), inst.clone());
        }
    }

    /// Starts a rebuilt instance (after a reload or a re-created interface). If its
    /// interface or source address is not there (yet), it waits and is retried every
    /// second rather than being lost.
    async fn restart_instance(&mut self, inst: Instance, first: bool) {
        let name = inst.name.clone();
        if let Err(e) = self.start_instance(inst.clone()).await {
            let why = e.to_string();
            if first || self.not_started.get(&name) != Some(&why) {
                tracing::warn!("{name}: cannot start yet: {why}; retrying every second");
            }
            self.not_started.insert(name.clone(), why);
            self.waiting.insert(name, inst);
        } else {
            if !first {
                tracing::info!("{name}: started");
            }
            self.not_started.remove(&name);
        }
    }

    fn notify_status(&self) {
        let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let line: Vec<String> = board
            .values()
            .map(|e| format!("{} {}", e.status.name, e.status.state))
            .collect();
        let status = if line.is_empty() {
            "no instances".to_string()
        } else {
            line.join(", ")
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
    }

    /// Hands over every master and waits for the handovers; a second SIGTERM or
    /// SIGINT stops waiting (the VIPs still held are removed before exiting).
    async fn shutdown(
        &mut self,
        term: &mut Option<tokio::signal::unix::Signal>,
        int: &mut Option<tokio::signal::unix::Signal>,
    ) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("shutting down: handing over every master");
        let names: Vec<String> = self.drivers.keys().cloned().collect();
        for n in &names {
            self.stop_instance(n);
        }
        // Wait for every handover, including those a reload started earlier, and for the
        // hooks of the last transitions, which a driver waits for (at most 10 s) before it
        // ends.
        let limit = self
            .stopping
            .values()
            .map(|i| {
                (4 * i.advert_interval.as_duration()).min(Duration::from_secs(60))
                    + i.notify.timeout.min(driver::HOOK_WAIT_ON_STOP)
            })
            .max()
            .unwrap_or_default()
            + Duration::from_secs(1);
        let deadline = Instant::now() + limit;
        let mut hurried = false;
        while !self.stopping.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                got = tokio::time::timeout(left, self.released_rx.recv()) => match got {
                    Ok(Some(name)) => {
                        self.stopping.remove(&name);
                    }
                    _ => break,
                },
                _ = recv_signal(term) => { hurried = true; break; }
                _ = recv_signal(int) => { hurried = true; break; }
            }
        }
        if !self.stopping.is_empty() {
            if hurried {
                tracing::warn!(
                    "second stop signal: not waiting for {} handover(s); removing their VIPs and exiting",
                    self.stopping.len()
                );
            } else {
                tracing::warn!(
                    "{} instance(s) did not finish their handover in time; removing their VIPs",
                    self.stopping.len()
                );
            }
            let left: Vec<Instance> = self.stopping.drain().map(|(_, i)| i).collect();
            for inst in left.iter().filter(|i| !i.address_owner) {
                if let Ok(link) = self.netlink.link(&inst.interface).await {
                    for vip in &inst.vips {
                        let _ = self.netlink.del_address(link.index, *vip).await;
                    }
                }
            }
        }
        for b in self.background.drain(..) {
            b.abort();
        }
        for s in self.sockets.values() {
            s.receiver.abort();
        }
        let _ = std::fs::remove_file(&self.config.control_socket);
        tracing::info!("stopped");
    }

    async fn reload(&mut self) -> Result<String, String> {
        let new = match config::load(&self.path) {
            Ok(c) => c,
            Err(errs) => {
                for d in &errs.0 {
                    tracing::error!("reload rejected, keeping the running configuration: {d}");
                }
                return Err(format!(
                    "reload rejected, running configuration kept: {}",
                    errs.0.first().map(|d| d.to_string()).unwrap_or_default()
                ));
            }
        };
        if new.control_socket != self.config.control_socket
            || new.metrics_listen != self.config.metrics_listen
            || new.state_dir != self.config.state_dir
            || new.control_group != self.config.control_group
        {
            tracing::warn!("reload: control-socket, control-group, metrics-listen and state-dir changes take effect at the next restart");
        }
        let old: HashMap<String, Instance> = self
            .config
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.clone()))
            .collect();
        let mut new = new;
        let mut failed: Vec<String> = Vec::new();
        let mut kept_old: Vec<String> = Vec::new();
        let mut kept = 0;
        let mut changed = 0;
        let mut added = 0;
        let mut removed = 0;
        for name in old.keys() {
            if !new.instances.iter().any(|i| &i.name == name) {
                tracing::info!("{name}: removed from the configuration: handing over");
                self.stop_instance(name);
                self.pending.remove(name);
                self.waiting.remove(name);
                self.not_started.remove(name);
                removed += 1;
            }
        }
        if self.config.sync_groups != new.sync_groups {
            self.group_notifiers.clear();
            self.group_states.clear();
        }
        self.config.sync_groups = new.sync_groups.clone();
        self.members
            .retain(|name, _| new.instances.iter().any(|i| &i.name == name));
        // A changed [arbiter] section rebuilds the instances that use it.
        let arbiter_changed = self.config.arbiter != new.arbiter;
        for inst in &new.instances {
            let rebuild_arbiter = inst.arbiter && arbiter_changed;
            match old.get(&inst.name) {
                Some(o) if o == inst && !rebuild_arbiter => kept += 1,
                Some(o)
                    if !rebuild_arbiter
                        && Instance {
                            priority: inst.priority,
                            ..o.clone()
                        } == *inst =>
                {
                    // Only the priority changed: no rebuild, no transition of its own.
                    if let Some(d) = self.drivers.get_mut(&inst.name) {
                        let _ = d.ctl.send(Input::BasePriority(inst.priority));
                        d.instance = inst.clone();
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                Some(_) => {
                    if self.drivers.contains_key(&inst.name) {
                        // Pre-flight before anything stops: a change that cannot start
                        // leaves the running instance as it is.
                        if let Err(e) = self.preflight(inst).await {
                            tracing::error!(
                                "{}: reload: the new settings cannot start ({e}); the running instance is kept",
                                inst.name
                            );
                            failed.push(format!("{}: {e} (running instance kept)", inst.name));
                            kept_old.push(inst.name.clone());
                            continue;
                        }
                        tracing::info!("{}: settings changed: rebuilding the instance", inst.name);
                        self.stop_instance(&inst.name);
                        self.pending.insert(inst.name.clone(), inst.clone());
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                None => {
                    if let Err(e) = self.preflight(inst).await {
                        failed.push(format!(
                            "{}: {e} (not started; retried every second)",
                            inst.name
                        ));
                    }
                    self.restart_instance(inst.clone(), true).await;
                    added += 1;
                }
            }
        }
        // What runs is what the configuration says, except where the new settings
        // could not start: those keep their old ones.
        for name in &kept_old {
            if let (Some(slot), Some(o)) = (
                new.instances.iter_mut().find(|i| &i.name == name),
                old.get(name),
            ) {
                *slot = o.clone();
            }
        }
        let (cs, cg, ml, sd) = (
            self.config.control_socket.clone(),
            self.config.control_group.clone(),
            self.config.metrics_listen,
            self.config.state_dir.clone(),
        );
        self.config = new;
        self.config.control_socket = cs;
        self.config.control_group = cg;
        self.config.metrics_listen = ml;
        self.config.state_dir = sd;
        // Members that joined or left a group get the group's fault and penalty, or lose them.
        self.send_group_inputs();
        let msg = format!(
            "reloaded: {kept} unchanged, {changed} changed, {added} added, {removed} removed"
        );
        tracing::info!("{msg}");
        if failed.is_empty() {
            Ok(msg)
        } else {
            Err(format!("{msg}; failed: {}", failed.join("; ")))
        }
    }

    /// Checks that `inst` can start here and now (interface, addresses, source address,
    /// socket), without stopping or starting anything.
    async fn preflight(&mut self, inst: &Instance) -> Result<(), DaemonError> {
        let link = self.netlink.link(&inst.interface).await?;
        self.check_vip_addresses(inst, link.index).await?;
        let source = self.source_address(inst, link.index).await?;
        if !self.sockets.contains_key(&(inst.interface.clone(), source)) {
            drop(open_socket(&inst.interface, link.index, source).await?);
        }
        Ok(())
    }

    async fn handle_link(&mut self, ev: LinkEvent) {
        let known = self.ifindex.get(&ev.name).copied();
        if !ev.removed && known.is_some_and(|i| i != ev.index) {
            // The interface was deleted and created again: its sockets are dead.
            self.ifindex.insert(ev.name.clone(), ev.index);
            tracing::warn!(
                "{}: interface re-created (index {} -> {}): rebuilding its instances",
                ev.name,
                known.unwrap_or(0),
                ev.index
            );
            let names: Vec<String> = self
                .drivers
                .values()
                .filter(|d| d.instance.interface == ev.name)
                .map(|d| d.instance.name.clone())
                .collect();
            self.sockets.retain(|(ifname, _), s| {
                if *ifname == ev.name {
                    s.receiver.abort();
                    false
                } else {
                    true
                }
            });
            self.frames.remove(&ev.name);
            for n in names {
                if let Some(inst) = self.drivers.get(&n).map(|d| d.instance.clone()) {
                    self.stop_instance(&n);
                    self.pending.insert(n, inst);
                }
            }
            return;
        }
        let up = ev.up && !ev.removed;
        for d in self.drivers.values() {
            if d.instance.interface == ev.name {
                let _ = d.ctl.send(Input::Link { up });
            }
        }
    }

    /// A driver panicked (and removed its VIPs): forget it, and start the instance again
    /// from the waiting list (at the next tick, so a driver that panics at once does not
    /// spin). The other instances are not touched.
    fn handle_crash(&mut self, crash: driver::Crash) {
        let Some(handle) = self.drivers.remove(&crash.instance) else {
            return;
        };
        for s in self.sockets.values() {
            let mut d = s.dispatch.write().unwrap_or_else(|e| e.into_inner());
            if d.get(&handle.instance.vrid)
                .is_some_and(|r| r.tx.same_channel(&handle.tx))
            {
                d.remove(&handle.instance.vrid);
            }
        }
        let n = self.restarts.entry(crash.instance.clone()).or_insert(0);
        *n += 1;
        self.metrics.repairs.instance_restarted(&crash.instance);
        tracing::error!(
            "{}: restarting the instance after a panic ({}); restart {n}",
            crash.instance,
            crash.message
        );
        self.members.remove(&crash.instance);
        self.not_started.insert(
            crash.instance.clone(),
            format!("restarting after a panic: {}", crash.message),
        );
        self.waiting.insert(crash.instance, handle.instance);
    }

    /// Feeds systemd's watchdog only while every driver answers: each tick sends a
    /// numbered ping to every driver and checks that each answered the previous one. A
    /// hung driver (or a hung supervisor, which then sends nothing) stops the feeding,
    /// and systemd restarts the daemon.
    fn feed_watchdog(&mut self, watchdog: Option<Duration>) {
        if watchdog.is_none() {
            return;
        }
        let last = self.ping;
        let stuck: Vec<&str> = self
            .drivers
            .values()
            .filter(|d| d.alive.load(std::sync::atomic::Ordering::Relaxed) < last)
            .map(|d| d.instance.name.as_str())
            .collect();
        if stuck.is_empty() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(
                "driver(s) not answering: {}; not feeding the watchdog",
                stuck.join(", ")
            );
        }
        self.ping += 1;
        for d in self.drivers.values() {
            let _ = d.ctl.send(Input::Ping(self.ping));
        }
    }

    /// An address was removed: the drivers on that interface check their VIPs (a master
    /// puts back one that was deleted under it). Lost events: every driver checks.
    fn handle_address(&mut self, change: AddressChange) {
        let (ifindex, addr) = match change {
            AddressChange::Event(ev) if ev.removed => (Some(ev.ifindex), Some(ev.addr)),
            AddressChange::Event(_) => return,
            AddressChange::Overrun => (None, None),
        };
        for d in self.drivers.values() {
            let on_it = match ifindex {
                Some(i) => self.ifindex.get(&d.instance.interface) == Some(&i),
                None => true,
            };
            if !on_it {
                continue;
            }
            let input = match addr {
                Some(a) => Input::AddressRemoved(a),
                None => Input::CheckVips,
            };
            let _ = d.ctl.send(input);
        }
    }

    /// A member reported its state, own fault or own penalty.
    fn handle_member(&mut self, report: MemberReport) {
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
    fn send_group_inputs(&mut self) {
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
    fn watch_group_splits(&mut self) {
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
    fn group_state_hooks(&mut self, group: &config::SyncGroup) {
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

    async fn handle_request(&mut self, req: Request) -> Response {
        match req {
            Request::Status => {
                let mut instances: Vec<_> = {
                    let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
                    let now = std::time::Instant::now();
                    board.values().map(|e| e.snapshot(now)).collect()
                };
                // Instances that could not start yet are shown too, with the reason.
                for inst in self.waiting.values() {
                    if instances.iter().any(|i| i.name == inst.name) {
                        continue;
                    }
                    instances.push(InstanceStatus {
                        name: inst.name.clone(),
                        vrid: inst.vrid,
                        interface: inst.interface.clone(),
                        state: State::Init.to_string(),
                        priority: inst.priority,
                        base_priority: inst.priority,
                        vips: inst.vips.iter().map(|v| v.to_string()).collect(),
                        fault: Some(format!(
                            "not started: {}",
                            self.not_started
                                .get(&inst.name)
                                .map(String::as_str)
                                .unwrap_or("waiting for its previous driver")
                        )),
                        ..InstanceStatus::default()
                    });
                }
                instances.sort_by(|a, b| a.name.cmp(&b.name));
                for i in &mut instances {
                    i.restarts = self.restarts.get(&i.name).copied().unwrap_or(0);
                }
                // Group membership can change on reload without a rebuild.
                for i in &mut instances {
                    i.sync_group = self.group_of(&i.name).map(|g| g.name.clone());
                }
                Response::Status(Status { instances })
            }
            Request::Reload => match self.reload().await {
                Ok(m) => Response::Ok { message: m },
                Err(m) => Response::Error { message: m },
            },
            Request::PrioritySet { instance, value } => {
                self.operator(&instance, OperatorChange::Priority(Some(value)))
                    .await
            }
            Request::PriorityClear { instance } => {
                self.operator(&instance, OperatorChange::Priority(None))
                    .await
            }
            Request::Maintenance { instance, on } => {
                self.operator(&instance, OperatorChange::Maintenance(on))
                    .await
            }
            Request::Events => Response::Error {
                message: "events are served by the control server".into(),
            },
        }
    }

    async fn operator(&mut self, instance: &str, change: OperatorChange) -> Response {
        if !self.drivers.contains_key(instance) {
            let mut known: Vec<&str> = self.drivers.keys().map(|s| s.as_str()).collect();
            known.sort_unstable();
            return Response::Error {
                message: format!(
                    "unknown instance {instance:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            };
        }
        // Maintenance and priority overrides apply to a whole sync group: moving one member
        // alone would split the group across hosts, which is what a sync group exists to
        // prevent.
        let targets: Vec<String> = match self.group_of(instance) {
            Some(g) => g.instances.clone(),
            None => vec![instance.to_string()],
        };
        let names = targets.join(", ");
        let msg = match change {
            OperatorChange::Priority(Some(v)) => {
                format!("{names}: priority override {v} set (saved in the state directory)")
            }
            OperatorChange::Priority(None) => format!("{names}: priority override cleared"),
            OperatorChange::Maintenance(true) => {
                format!("{names}: maintenance on: handing over if master, then staying backup")
            }
            OperatorChange::Maintenance(false) => format!("{names}: maintenance off"),
        };
        // Saved before anything is applied, in one atomic write for the whole group: a
        // failed write applies nothing, and a crash cannot leave half a group changed.
        let stored = match change {
            OperatorChange::Priority(p) => Change::Priority(p),
            OperatorChange::Maintenance(on) => Change::Maintenance(on),
        };
        let changes: Vec<(&str, Change)> = targets.iter().map(|t| (t.as_str(), stored)).collect();
        if let Err(e) = self.store.apply(&changes) {
            return Response::Error {
                message: format!(
                    "cannot save the change under {}: {e}; not applied",
                    self.config.state_dir.display()
                ),
            };
        }
        tracing::info!("operator: {msg}");
        for t in &targets {
            let input = match change {
                OperatorChange::Priority(p) => Input::Override(p),
                OperatorChange::Maintenance(on) => Input::Maintenance(on),
            };
            let sent = match self.drivers.get(t) {
                Some(d) => d.ctl.send(input).is_ok(),
                None => false,
            };
            if !sent {
                return Response::Error {
                    message: format!("{t}: instance is stopping"),
                };
            }
        }
        Response::Ok { message: msg }
    }
}

#[derive(Clone, Copy)]
enum OperatorChange {
    Priority(Option<u8>),
    Maintenance(bool),
}

/// Opens the VRRP sockets, waiting out IPv6 duplicate address detection: right after
/// boot or link-up the link-local source is tentative for a second or two.
async fn open_socket(ifname: &str, ifindex: u32, source: IpAddr) -> Result<VrrpSocket, NetError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match VrrpSocket::open(ifname, ifindex, source) {
            Err(NetError::SourceNotAvailable { .. })
                if source.is_ipv6() && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// IPv4 VIPs in the subnet of the interface's primary address are secondaries: with
/// `promote_secondaries` off (the kernel default), deleting the primary deletes them too.
/// vipd puts them back (address events), but a moment without the VIP is avoidable:
/// say so. vipd does not write sysctls itself (the unit forbids it).
fn warn_promote_secondaries(inst: &Instance) {
    if inst.family != config::Family::V4 {
        return;
    }
    let path = format!(
        "/proc/sys/net/ipv4/conf/{}/promote_secondaries",
        inst.interface
    );
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0") {
        tracing::warn!(
            "{}: net.ipv4.conf.{}.promote_secondaries is 0: deleting the interface's primary address would delete the VIPs in its subnet with it (vipd adds them back); set it to 1 (docs/operations.md)",
            inst.name,
            inst.interface
        );
    }
}

/// Removes every address that carries vipd's mark, logging each with `why`.
async fn remove_marked_addresses(netlink: &Netlink, why: &str) -> Result<usize, NetError> {
    let owned = netlink.owned_addresses().await?;
    for a in &owned {
        tracing::warn!(
            "removing {} from interface index {}, {why}",
            a.addr,
            a.ifindex
        );
        netlink.del_marked_address(a.ifindex, a.addr).await?;
    }
    Ok(owned.len())
}

/// `vipd cleanup`: removes every address vipd added in this network namespace (those
/// marked `proto 86`) and no other. Refused while a vipd runs here: a running daemon
/// removes its own addresses when it stops. The systemd unit runs it as
/// `ExecStopPost=`, so that a killed daemon leaves no VIP behind for longer than
/// systemd takes to notice.
pub fn cleanup() -> Result<Vec<String>, DaemonError> {
    let _lock = lock::InstanceLock::acquire(None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Startup(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let netlink = Netlink::connect().await?;
        let owned = netlink.owned_addresses().await?;
        let mut removed = Vec::new();
        for a in owned {
            netlink.del_marked_address(a.ifindex, a.addr).await?;
            removed.push(format!("{} (interface index {})", a.addr, a.ifindex));
        }
        Ok(removed)
    })
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
