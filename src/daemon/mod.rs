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
use crate::control::message::{Event, Request, Response, Status};
use crate::control::overrides::{Change, OverrideStore};
use crate::control::server::{serve, ControlCall, ControlListener};
use crate::net::{FrameSender, LinkEvent, LinkWatcher, NetError, Netlink, VrrpSocket};
use crate::track::Notifier;
use crate::vrrp::State;

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
    /// Anything else at start-up.
    #[error("{0}")]
    Startup(String),
}

/// Loads the configuration at `path` and runs the daemon until SIGTERM/SIGINT.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let config = config::load(path).map_err(DaemonError::Config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Startup(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut sup = Supervisor::start(path.to_path_buf(), config).await?;
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
    /// Instances handing over before they stop (by name), until their driver ends.
    stopping: HashMap<String, Instance>,
    /// ifindex of each interface in use, to notice an interface that was re-created.
    ifindex: HashMap<String, u32>,
    calls_rx: mpsc::Receiver<ControlCall>,
    link_rx: mpsc::Receiver<LinkEvent>,
    background: Vec<JoinHandle<()>>,
    /// When this vipd started (`startup-delay` counts from here).
    started_at: Instant,
}

impl Supervisor {
    async fn start(path: PathBuf, config: Config) -> Result<Self, DaemonError> {
        let started_at = Instant::now();
        let netlink = Netlink::connect().await?;
        let metrics = Metrics::new();
        let (events, _) = broadcast::channel(1024);
        let board: StatusBoard = Arc::new(Mutex::new(BTreeMap::new()));

        // Before anything else: a crashed earlier run may have left VIPs behind; a
        // restarted host must never answer for a VIP it does not own.
        for inst in &config.instances {
            let link = netlink.link(&inst.interface).await?;
            let present = netlink.addresses(link.index).await?;
            if inst.address_owner {
                // The owner's VIPs are the host's own addresses (checked in start_instance).
                continue;
            }
            for vip in &inst.vips {
                if present.iter().any(|a| a.addr() == vip.addr()) {
                    tracing::warn!(
                        "{}: removing {vip} from {}, left there by an earlier run",
                        inst.name,
                        inst.interface
                    );
                    netlink.del_address(link.index, *vip).await?;
                }
            }
        }

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
            stopping: HashMap::new(),
            ifindex: HashMap::new(),
            calls_rx,
            link_rx,
            background,
            started_at,
        };
        for inst in config.instances {
            sup.start_instance(inst).await?;
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
        if inst.address_owner {
            // An address owner's VIPs are the interface's own addresses (RFC 5798 §1):
            // vipd neither adds nor removes them, and they must be there.
            let present = self.netlink.addresses(link.index).await?;
            if let Some(vip) = inst
                .vips
                .iter()
                .find(|v| !present.iter().any(|a| a.addr() == v.addr()))
            {
                return Err(DaemonError::Startup(format!(
                    "{}: address-owner = true but {} is not an address of {}; an owner's VIPs must be the interface's own addresses",
                    inst.name,
                    vip.addr(),
                    inst.interface
                )));
            }
        }
        self.ifindex.insert(inst.interface.clone(), link.index);
        let v6 = matches!(inst.family, config::Family::V6);
        let source = match inst.source_address {
            Some(a) => a,
            None => self
                .netlink
                .primary_address(link.index, v6)
                .await?
                .ok_or_else(|| {
                    DaemonError::Startup(format!(
                        "{}: interface {} has no {} address to send adverts from; add one or set source-address",
                        inst.name,
                        inst.interface,
                        if v6 { "IPv6 link-local" } else { "IPv4" }
                    ))
                })?,
        };
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
        let handle = driver::spawn(inst, ctx);
        entry
            .dispatch
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vrid, handle.tx.clone());
        self.drivers.insert(name, handle);
        Ok(())
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
        let released = self.released_tx.clone();
        let name = name.to_string();
        let sockets: Vec<Dispatch> = self.sockets.values().map(|s| s.dispatch.clone()).collect();
        let vrid = handle.instance.vrid;
        tokio::spawn(async move {
            let _ = tx.send(Input::Shutdown).await;
            let _ = handle.task.await;
            for d in sockets {
                let mut d = d.write().unwrap_or_else(|e| e.into_inner());
                if d.get(&vrid).is_some_and(|t| t.same_channel(&tx)) {
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
        let mut tick = tokio::time::interval(Duration::from_secs(1));
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
                }
            }
        }
        self.shutdown().await;
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
            if first {
                tracing::warn!("{name}: cannot start yet: {e}; retrying every second");
            }
            self.waiting.insert(name, inst);
        } else if !first {
            tracing::info!("{name}: started");
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

    async fn shutdown(&mut self) {
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
        while !self.stopping.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.released_rx.recv()).await {
                Ok(Some(name)) => {
                    self.stopping.remove(&name);
                }
                _ => break,
            }
        }
        if !self.stopping.is_empty() {
            tracing::warn!(
                "{} instance(s) did not finish their handover in time; removing their VIPs",
                self.stopping.len()
            );
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
                        let _ = d.tx.send(Input::BasePriority(inst.priority)).await;
                        d.instance = inst.clone();
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                Some(_) => {
                    tracing::info!("{}: settings changed: rebuilding the instance", inst.name);
                    if self.drivers.contains_key(&inst.name) {
                        self.stop_instance(&inst.name);
                        self.pending.insert(inst.name.clone(), inst.clone());
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                None => {
                    self.restart_instance(inst.clone(), true).await;
                    added += 1;
                }
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
        Ok(msg)
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
                let _ = d.tx.send(Input::Link { up }).await;
            }
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
                let ok1 = d.tx.try_send(Input::GroupFault(want.0.clone())).is_ok();
                let ok2 = d.tx.try_send(Input::GroupPenalty(want.1)).is_ok();
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
                Some(d) => d.tx.send(input).await.is_ok(),
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

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
