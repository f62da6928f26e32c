//! Wiring: the runtime, one driver per instance, signals, reload, control socket,
//! sync groups, sd_notify and metrics.
//!
//! ```text
//!  signals (TERM/INT/HUP) ---+
//!  control socket calls -----+--> [ supervisor ] --spawn into JoinSet, Input::*--> drivers
//!  link / address watchers --+       ^      ^                          (one per instance)
//!                                    |      +--- MemberReport (sync groups) ------+
//!                                    +---------- Ended (JoinSet::join_next) ------+
//!  receivers (one per interface+source) --Input::Advert--> drivers
//! ```
//!
//! The supervisor owns every kernel handle that instances share (VRRP sockets,
//! packet sockets, the netlink handle) and routes events to drivers; it never
//! touches an address itself except to clean up after a crashed earlier run, and after
//! handovers that did not finish when vipd stops.
//!
//! Files: this one holds the supervisor's state, start-up, event loop and shutdown;
//! `instances` is the instance lifecycle (one slot per name, the JoinSet of driver
//! tasks; link, address and crash events); `start` the kernel side of starting one;
//! `reload` plans and applies a new configuration; `sync_group` propagates faults
//! and penalties between members; `requests` answers control-socket calls; `driver`
//! runs one instance; `receiver` reads adverts; `metrics` serves Prometheus.

pub mod bfd;
pub mod driver;
mod instances;
pub mod lock;
pub mod metrics;
mod ratelimit;
mod receiver;
mod reload;
mod requests;
mod start;
mod sync_group;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, Stream, StreamExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::config::{self, Config, ConfigErrors, Instance};
use crate::control::message::Event;
use crate::control::overrides::OverrideStore;
use crate::control::server::{serve, ControlCall, ControlError, ControlListener};
use crate::net::{
    AddressChange, AddressWatcher, FrameSender, LinkEvent, LinkWatcher, NetError, Netlink,
    VrrpSocket,
};
use crate::vrrp;

use driver::{Input, MemberReport, StatusBoard};
use instances::Instances;
use metrics::Metrics;
use receiver::Dispatch;
use sync_group::SyncGroups;

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
    Control(#[source] ControlError),
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
    /// The operator overrides in the state directory cannot be read: vipd will not
    /// guess whether a host was drained.
    #[error("cannot read operator overrides in {}: {source} (fix or remove the file; vipd will not guess whether a host was drained)", dir.display())]
    Overrides {
        /// The state directory.
        dir: PathBuf,
        /// Cause.
        source: crate::control::overrides::OverrideError,
    },
    /// The async runtime could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The instance's VRID on its interface is still handing over under another name
    /// (a rename, or a remove-and-add in one reload): it starts once that ended.
    #[error("{instance}: VRID {vrid} on {interface} is still handing over as {by}")]
    HandingOver {
        /// The instance that waits.
        instance: String,
        /// Its VRID.
        vrid: u8,
        /// Its interface.
        interface: String,
        /// The instance handing over.
        by: String,
    },
    /// The interface has no address to send adverts from (yet).
    #[error("{instance}: interface {interface} has no {family} address to send adverts from; add one or set source-address")]
    NoSourceAddress {
        /// The instance.
        instance: String,
        /// Its interface.
        interface: String,
        /// `IPv4` or `IPv6 link-local`.
        family: &'static str,
    },
}

impl DaemonError {
    /// Whether waiting cannot fix this: missing privileges and an address owner without
    /// its address make vipd exit at start-up; anything else (a missing interface or
    /// address, a VRID still handing over) is retried every second.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DaemonError::Net(NetError::NeedsCapNetAdmin { .. })
                | DaemonError::Net(NetError::NeedsCapNetRaw { .. })
                | DaemonError::OwnerWithoutAddress(_)
        )
    }
}

/// Loads the configuration at `path` and runs the daemon until SIGTERM/SIGINT.
pub fn run(path: &Path) -> Result<(), DaemonError> {
    let config = config::load(path).map_err(DaemonError::Config)?;
    // Before any change to the kernel: a second vipd started by mistake must exit
    // having touched nothing.
    let lock = lock::InstanceLock::acquire(Some(&config.process.state_dir))?;
    // One thread runs every task. The work is small and bursty (a timer tick, a batch of
    // adverts); a multi-thread runtime wakes a second worker (a futex) whenever one task
    // wakes another, which cost more CPU at idle than all the work itself
    // (integration/bench/scale.sh). Blocking work goes to `spawn_blocking` (process
    // checks), the BFD engine and the address pipeline have threads of their own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
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
    /// The masters' periodic adverts on this socket, and the task that sends them.
    batch: Arc<driver::AdvertBatch>,
    sender: JoinHandle<()>,
}

impl Drop for SocketEntry {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

struct Supervisor {
    path: PathBuf,
    config: Config,
    netlink: Netlink,
    metrics: Metrics,
    board: StatusBoard,
    events: broadcast::Sender<Event>,
    /// Every instance's lifecycle slot and the driver tasks.
    instances: Instances,
    sockets: HashMap<(String, IpAddr), SocketEntry>,
    frames: HashMap<String, Arc<FrameSender>>,
    store: OverrideStore,
    group_tx: mpsc::UnboundedSender<MemberReport>,
    group_rx: mpsc::UnboundedReceiver<MemberReport>,
    /// Sync groups: member reports and what was decided from them.
    groups: SyncGroups,
    /// How often each instance was restarted after a panic.
    restarts: HashMap<String, u32>,
    /// The liveness probe last sent to every driver (see `feed_watchdog`).
    ping: u64,
    /// ifindex of each interface in use, to notice an interface that was re-created.
    ifindex: HashMap<String, u32>,
    /// Virtual MAC mode: the macvlan (index) of each running instance that has one.
    vmacs: HashMap<String, u32>,
    calls_rx: mpsc::Receiver<ControlCall>,
    link_rx: mpsc::Receiver<LinkEvent>,
    addr_rx: mpsc::Receiver<AddressChange>,
    background: Vec<JoinHandle<()>>,
    /// The single-instance lock, held until the process ends.
    _lock: lock::InstanceLock,
    /// When this vipd started (`startup-delay` counts from here).
    started_at: Instant,
    /// The advert grid's timers (`driver::GridClocks`), shared by the masters.
    grid: Arc<driver::GridClocks>,
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
        // Likewise the virtual MAC links (macvlans with vipd's alias) a crashed run left:
        // they would be reused with stale settings, or linger for instances now gone.
        remove_owned_vmacs(&netlink, "left there by an earlier run").await?;

        let store = OverrideStore::load(&config.process.state_dir).map_err(|source| {
            DaemonError::Overrides {
                dir: config.process.state_dir.clone(),
                source,
            }
        })?;

        let listener = ControlListener::bind(
            &config.process.control_socket,
            config.process.control_group.as_deref(),
        )
        .map_err(DaemonError::Control)?;
        let (calls_tx, calls_rx) = mpsc::channel(64);
        let mut background = vec![tokio::spawn(serve(listener, calls_tx, events.clone()))];

        if let Some(addr) = config.process.metrics_listen {
            let l = metrics::bind(addr)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
            background.push(tokio::spawn(metrics.clone().serve(l)));
        }

        let links = LinkWatcher::open()?;
        let (link_tx, link_rx) = mpsc::channel(256);
        background.push(forward(
            stream::unfold(links, |mut w| async move { Some((w.next().await?, w)) }),
            link_tx,
        ));

        let addresses = AddressWatcher::open()?;
        let (addr_tx, addr_rx) = mpsc::channel(1024);
        background.push(forward(
            stream::unfold(addresses, |mut w| async move { Some((w.next().await?, w)) }),
            addr_tx,
        ));

        let (group_tx, group_rx) = mpsc::unbounded_channel();
        let mut sup = Supervisor {
            path,
            config: config.clone(),
            netlink,
            metrics,
            board,
            events,
            instances: Instances::default(),
            sockets: HashMap::new(),
            frames: HashMap::new(),
            store,
            group_tx,
            group_rx,
            groups: SyncGroups::new(config.sync_groups.clone()),
            restarts: HashMap::new(),
            ping: 0,
            ifindex: HashMap::new(),
            vmacs: HashMap::new(),
            calls_rx,
            link_rx,
            addr_rx,
            background,
            _lock: lock,
            started_at,
            grid: Arc::new(driver::GridClocks::new(started_at)),
        };
        // Start-up is not all-or-nothing: an instance that cannot start yet (missing
        // interface, an operator's address in the way) waits and is retried every
        // second; the others run.
        for inst in config.instances {
            match sup.start_instance(inst.clone()).await {
                Ok(()) => {}
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot start yet: {e}; retrying every second",
                        inst.name
                    );
                    sup.instances.wait(inst, Some(e.to_string()));
                }
            }
        }
        Ok(sup)
    }

    async fn run(&mut self) {
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            "vipd {} running {} instance(s) from {}",
            env!("CARGO_PKG_VERSION"),
            self.instances.drivers().count(),
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
                Some(report) = self.group_rx.recv() => self.handle_member(report),
                Some((id, ended)) = self.instances.next_ended(), if self.instances.has_tasks() => {
                    self.handle_ended(id, ended).await;
                }
                _ = tick.tick() => {
                    self.retry_waiting().await;
                    self.send_group_inputs();
                    self.watch_group_splits();
                    self.notify_status();
                    self.feed_watchdog(watchdog);
                }
            }
        }
        self.shutdown(&mut term, &mut int).await;
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
        self.stop_all();
        // Wait until the driver tasks drain: every handover, including those a reload
        // started earlier, and the hooks of the last transitions, which a driver waits
        // for (at most 10 s) before it ends. How long a release can take is the router's
        // to say (vrrp::release_limit); more than a minute is not waited for.
        let limit = self
            .instances
            .stopping()
            .map(|i| {
                vrrp::release_limit(i.version, i.advert_interval).min(Duration::from_secs(60))
                    + i.notify.timeout.min(driver::HOOK_WAIT_ON_STOP)
            })
            .max()
            .unwrap_or_default()
            + Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + limit;
        let mut hurried = false;
        while self.instances.has_tasks() {
            tokio::select! {
                got = tokio::time::timeout_at(deadline, self.instances.next_ended()) => match got {
                    Ok(Some((id, _))) => {
                        if let Some((_, instances::Slot::Stopping { vmac: Some(spec), .. })) =
                            self.instances.take_task(id)
                        {
                            remove_vmac(&self.netlink, &spec).await;
                        }
                    }
                    _ => break,
                },
                _ = recv_signal(term) => { hurried = true; break; }
                _ = recv_signal(int) => { hurried = true; break; }
            }
        }
        let left: Vec<Instance> = self.instances.stopping().cloned().collect();
        if !left.is_empty() {
            if hurried {
                tracing::warn!(
                    "second stop signal: not waiting for {} handover(s); removing their VIPs and exiting",
                    left.len()
                );
            } else {
                tracing::warn!(
                    "{} instance(s) did not finish their handover in time; removing their VIPs",
                    left.len()
                );
            }
            for inst in left.iter().filter(|i| !i.address_owner) {
                if let Ok(link) = self.netlink.link(&inst.interface).await {
                    for vip in &inst.vips {
                        let _ = self.netlink.del_address(link.index, *vip).await;
                    }
                }
            }
        }
        // Every virtual MAC link still there (a handover that did not finish).
        let _ = remove_owned_vmacs(&self.netlink, "at stop").await;
        for b in self.background.drain(..) {
            b.abort();
        }
        for s in self.sockets.values() {
            s.receiver.abort();
        }
        let _ = std::fs::remove_file(&self.config.process.control_socket);
        tracing::info!("stopped");
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
            .instances
            .drivers()
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
        for d in self.instances.drivers() {
            let _ = d.ctl.send(Input::Ping(self.ping));
        }
    }
}

/// Forwards a watcher's events to the supervisor, until the watcher ends or the
/// supervisor is gone.
fn forward<E: Send + 'static>(
    events: impl Stream<Item = E> + Send + 'static,
    to: mpsc::Sender<E>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            if to.send(ev).await.is_err() {
                break;
            }
        }
    })
}

/// The virtual MAC link `inst` has on the interface with index `parent`.
fn vmac_spec(inst: &Instance, parent: u32) -> crate::net::VmacSpec {
    crate::net::VmacSpec {
        parent,
        parent_name: inst.interface.clone(),
        vrid: inst.vrid,
        v6: inst.family == config::Family::V6,
    }
}

/// Removes an instance's virtual MAC link (if it is vipd's), logging the outcome.
async fn remove_vmac(netlink: &Netlink, spec: &crate::net::VmacSpec) {
    match netlink.remove_vmac(spec).await {
        Ok(()) => tracing::info!("removed {} (virtual MAC link)", spec.name()),
        Err(e) => tracing::warn!("not removing {}: {e}", spec.name()),
    }
}

/// Removes every macvlan that carries vipd's mark, logging each with `why`.
async fn remove_owned_vmacs(netlink: &Netlink, why: &str) -> Result<Vec<String>, NetError> {
    let owned = netlink.owned_vmacs().await?;
    let mut removed = Vec::new();
    for v in &owned {
        tracing::warn!("removing virtual MAC link {}, {why}", v.name);
        netlink.del_owned_vmac(v).await?;
        removed.push(v.name.clone());
    }
    Ok(removed)
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
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async {
        let netlink = Netlink::connect().await?;
        let owned = netlink.owned_addresses().await?;
        let mut removed = Vec::new();
        for a in owned {
            netlink.del_marked_address(a.ifindex, a.addr).await?;
            removed.push(format!("{} (interface index {})", a.addr, a.ifindex));
        }
        for v in netlink.owned_vmacs().await? {
            netlink.del_owned_vmac(&v).await?;
            removed.push(format!("virtual MAC link {}", v.name));
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
