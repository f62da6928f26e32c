//! The BFD engine: one OS thread that runs every BFD session of the process.
//!
//! ```text
//!   drivers / bfd tracks --subscribe(PeerSpec)--> [cmd queue + wake socket + unpark]
//!                                                        |
//!   BfdRxSocket (one per interface+family, :3784) ---> [ engine thread ] --BfdTxSocket--> peers
//!                                    ppoll / park_timeout(deadline, ns)  |  (one per session)
//!      drivers <--BfdEvent (state changes)-- subscribers <--------------+
//!      status  <--Arc<Mutex<Vec<BfdPeerStatus>>>-- (per subscription)
//! ```
//!
//! Why a thread and not a tokio task: tokio's timers have a resolution of one
//! millisecond, and a 3 ms session would send a tick late every time. The thread waits
//! with a nanosecond deadline (`ppoll(2)` or a futex: hrtimers), so it wakes at the
//! session's deadline; and the core schedules each transmission from the previous
//! deadline, so a late wake-up does not accumulate. The thread does no work between
//! deadlines and packets.
//!
//! What one wake-up costs (measured with `integration/bench/bfd-cpu.sh`, beside the
//! kernel's floor `integration/bench/bfd-floor`, which only sleeps, sends and receives
//! one datagram per tick at the same rate): while every session on a receive socket is
//! Up and fast (transmitting at least every [`DEFER_MAX`]), the socket is not polled:
//! the peer's packets wait in its queue for the thread's next transmission, which reads
//! them first, each as of its kernel receive timestamp (detection stays exact). With
//! every socket deferring, nothing but a command can come before the deadline, so the
//! thread waits in `park_timeout` (a futex; `Engine::send` unparks it), not `ppoll`. One
//! Up session then costs one wake-up per transmission, one `recvmmsg` that reads the
//! queue and learns that it is empty, and one `send` on the session's connected socket
//! (no route lookup per packet); nothing is allocated, locked, looked up by name or
//! republished per packet. 3 ms x 3 costs 1.82 % of a core per side, the floor 1.70 %
//! and keepalived 1.69 % (at 621 instead of 760 packets/s); 10 ms x 3: 1.06 %,
//! 0.91 %, 1.06 % (medians of 5 runs x 30 s on this loaded 2-core machine, results of
//! 2026-12-08; before, with a `ppoll`, two `recvmsg` and an unconnected `sendto` per
//! transmission: 1.94 % and 1.13 %). In these namespaces the floor alone is above the
//! issue's 1 % goal: a send runs the bridge and the peer's whole receive path in the
//! sender's softirq, which this kernel (no IRQ time accounting) charges to the sender;
//! vipd is 0.1-0.15 points above the floor. Junk (any dropped
//! datagram, or a full batch) makes the socket wake the thread for every datagram
//! again for [`NOISY_HOLD`], so a flood is read as fast as it comes.
//!
//! Sessions are keyed by (interface, peer): two users of the same peer on one interface
//! share one session (RFC 5881 allows one session per peer and interface); the first
//! subscriber's timers are used. When the last subscriber goes, the session is held
//! AdminDown (one packet says so, RFC 5880 §6.8.16) and removed.
//!
//! Longer than 600 lines on purpose: the engine is one loop whose timing (deadlines,
//! deferred reads, the noisy hold) must be read together; the session core itself is
//! sans-IO in `src/bfd`.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::bfd::{select_session, Action, Diag, Session, SessionConfig, SessionState};
use crate::control::message::BfdPeerStatus;
use crate::net::{wait_readable, BfdRxSocket, BfdTxSocket, RecvBatch};

use super::metrics::Metrics;
use super::ratelimit::LogLimiter;

/// One BFD peer a subscriber wants a session with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Interface name (the session is bound to it).
    pub ifname: String,
    /// Interface index.
    pub ifindex: u32,
    /// Our source address (IPv4: the instance's primary address); `None`: the kernel's
    /// choice on the interface.
    pub source: Option<IpAddr>,
    /// The peer's address.
    pub peer: IpAddr,
    /// Desired Min TX = Required Min RX once Up.
    pub interval: Duration,
    /// Detect Mult.
    pub multiplier: u8,
}

/// A session state change, sent to every subscriber of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdEvent {
    /// The peer.
    pub peer: IpAddr,
    /// Old state.
    pub from: SessionState,
    /// New state.
    pub to: SessionState,
    /// Local diagnostic after the change.
    pub diag: Diag,
    /// The detection time in use when the change happened.
    pub detect: Option<Duration>,
}

type StatusList = Arc<Mutex<Vec<BfdPeerStatus>>>;

enum Cmd {
    Subscribe {
        id: u64,
        owner: String,
        specs: Vec<PeerSpec>,
        events: mpsc::UnboundedSender<BfdEvent>,
        status: StatusList,
    },
    Unsubscribe {
        id: u64,
    },
}

/// Handle to the process's BFD engine thread.
#[derive(Debug)]
pub struct Engine {
    cmds: Mutex<std_mpsc::Sender<Cmd>>,
    /// Wakes the thread from `ppoll` (while it polls a receive socket).
    wake: UnixDatagram,
    /// Wakes it from `park_timeout` (while every receive socket defers).
    thread: std::thread::Thread,
    next_id: Mutex<u64>,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the BFD engine: {0}")]
pub struct EngineError(#[from] io::Error);

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// The process's engine, started on first use with these metrics.
pub fn engine(metrics: &Metrics) -> Result<&'static Engine, EngineError> {
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let e = Engine::start(metrics.clone())?;
    // Two first users at once: the loser's thread exits when its queue closes.
    Ok(ENGINE.get_or_init(|| e))
}

impl Engine {
    fn start(metrics: Metrics) -> Result<Self, EngineError> {
        let (wake_tx, wake_rx) = UnixDatagram::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vipd-bfd".into())
            .spawn(move || {
                realtime();
                Runner::new(rx, wake_rx, metrics).run()
            })?
            .thread()
            .clone();
        Ok(Engine {
            cmds: Mutex::new(tx),
            wake: wake_tx,
            thread,
            next_id: Mutex::new(1),
        })
    }

    fn send(&self, cmd: Cmd) {
        let _ = self
            .cmds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(cmd);
        let _ = self.wake.send(&[1]);
        self.thread.unpark();
    }

    /// Sessions to `specs` for `owner` (used in log lines). Dropping the subscription
    /// ends them (when nobody else uses them).
    pub fn subscribe(&'static self, owner: &str, specs: Vec<PeerSpec>) -> Subscription {
        let id = {
            let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let status: StatusList = Arc::new(Mutex::new(
            specs
                .iter()
                .map(|s| BfdPeerStatus {
                    peer: s.peer.to_string(),
                    state: SessionState::Down.as_str().to_owned(),
                    detect_ms: None,
                })
                .collect(),
        ));
        self.send(Cmd::Subscribe {
            id,
            owner: owner.to_owned(),
            specs,
            events: tx,
            status: status.clone(),
        });
        Subscription {
            id,
            engine: self,
            events: Some(rx),
            status,
        }
    }
}

/// A subscriber's sessions: state changes arrive on `events`; `status()` is current.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    engine: &'static Engine,
    /// State changes of the subscribed sessions (taken by the user's select loop).
    pub events: Option<mpsc::UnboundedReceiver<BfdEvent>>,
    status: StatusList,
}

impl Subscription {
    /// The subscribed sessions now, in the order of the specs.
    pub fn status(&self) -> Vec<BfdPeerStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.engine.send(Cmd::Unsubscribe { id: self.id });
    }
}

// ----- the thread --------------------------------------------------------------

/// Real-time priority of the engine thread (SCHED_FIFO, low in the 1..=99 range).
const RT_PRIORITY: i32 = 10;

/// Runs the calling thread under SCHED_FIFO when allowed (root or CAP_SYS_NICE): a
/// session at 10 ms x 3 must not go down because compilers or a busy host kept the
/// thread off the CPU for 30 ms. The thread sleeps in `ppoll` between deadlines and does
/// bounded work per wake-up (at most 256 datagrams per socket), so it cannot starve the
/// host. Without the privilege it runs at normal priority (logged once).
fn realtime() {
    let param = libc::sched_param {
        sched_priority: RT_PRIORITY,
    };
    // SAFETY: sched_setscheduler with pid 0 changes the calling thread only; `param` is a
    // valid, initialised struct that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        tracing::info!(
            "BFD engine: runs at normal priority (SCHED_FIFO refused: {})",
            io::Error::last_os_error()
        );
    }
}

struct Subscriber {
    id: u64,
    owner: String,
    events: mpsc::UnboundedSender<BfdEvent>,
    status: StatusList,
    /// Index of this session in the subscriber's status list.
    slot: usize,
}

struct Sess {
    spec: PeerSpec,
    session: Session,
    /// Its own send socket (connected to the peer when it has a source address).
    tx: BfdTxSocket,
    /// Id of its receive socket in `Runner::rx`.
    rx: u64,
    subs: Vec<Subscriber>,
    /// What the subscribers' status lists show (republished only when it changes).
    shown: (SessionState, Option<Duration>),
    /// Packet counters of the interface, looked up once (not per packet).
    sent: prometheus_client::metrics::counter::Counter,
    received: prometheus_client::metrics::counter::Counter,
}

/// The receive socket of one interface and address family, and its users.
struct Rx {
    id: u64,
    ifname: String,
    v6: bool,
    sock: BfdRxSocket,
    users: u32,
    /// Until then every datagram wakes the thread: junk arrived (see [`NOISY_HOLD`]).
    noisy_until: Option<Instant>,
    /// When a read last found it empty: whatever it holds now arrived after that.
    drained: Instant,
    /// Not polled in this round: its datagrams waited for a timer (see
    /// [`Runner::defers`]).
    deferred: bool,
}

/// A session whose transmissions are at most this far apart may leave its received
/// packets queued until the thread wakes for its next transmission (see
/// [`Runner::defers`]).
const DEFER_MAX: Duration = Duration::from_millis(50);

/// After a dropped datagram or a full batch, a receive socket wakes the thread for every
/// datagram again for this long (a flood is read as fast as it comes, as before).
const NOISY_HOLD: Duration = Duration::from_secs(1);

/// At most this many datagrams per socket and wake-up, so a flood cannot starve the
/// timers.
const BATCH: usize = 256;

/// Datagrams read per `recvmmsg` (a BFD Control packet is 24 bytes, 52 with the longest
/// authentication section; a larger datagram is dropped anyway).
const RECV_SLOTS: usize = 32;
/// Bytes kept of each datagram.
const RECV_SLOT_SIZE: usize = 128;

struct Runner {
    cmds: std_mpsc::Receiver<Cmd>,
    wake: UnixDatagram,
    metrics: Metrics,
    sessions: Vec<Sess>,
    rx: Vec<Rx>,
    /// Reused by every read: a wake-up allocates nothing.
    batch: RecvBatch,
    next_rx_id: u64,
    discr_seed: u32,
    limiter: LogLimiter,
    closed: bool,
}

fn family_name(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// When a datagram read at `now` arrived: `now` less the age the kernel's receive
/// timestamp gives it (a wall-clock time, compared with the wall clock `real_now`), but
/// never before `floor` (the last time its socket was found empty: it arrived after
/// that, whatever a wall-clock step says) nor after `now`.
fn arrival(
    now: Instant,
    real_now: SystemTime,
    stamp: Option<SystemTime>,
    floor: Instant,
) -> Instant {
    let Some(stamp) = stamp else {
        return now;
    };
    let age = real_now.duration_since(stamp).unwrap_or(Duration::ZERO);
    now.checked_sub(age)
        .unwrap_or(floor)
        .clamp(floor.min(now), now)
}

fn pollfd(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Runner {
    fn new(cmds: std_mpsc::Receiver<Cmd>, wake: UnixDatagram, metrics: Metrics) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(1);
        Runner {
            cmds,
            wake,
            metrics,
            sessions: Vec::new(),
            rx: Vec::new(),
            batch: RecvBatch::new(RECV_SLOTS, RECV_SLOT_SIZE),
            next_rx_id: 1,
            discr_seed: t ^ std::process::id().rotate_left(16),
            limiter: LogLimiter::new(Duration::from_secs(10)),
            closed: false,
        }
    }

    /// Whether datagrams on `rx` may wait in its queue for the thread's next timer
    /// instead of waking it: every session on it is Up and transmits at least every
    /// [`DEFER_MAX`] (so the thread wakes that often anyway and reads the socket then),
    /// and no junk arrived lately. Each datagram still restarts the detection timer from
    /// its arrival (kernel timestamp, see [`arrival`]), and every wake-up reads the
    /// sockets before it fires timers, so detection is as exact as before; what waits
    /// (at most one transmit interval) is only the reaction to what the peer says: a
    /// Poll is answered, or its Down seen, with the next periodic packet. This halves
    /// the wake-ups of an Up session (the peer's packets no longer wake the thread
    /// between its own transmissions) and the peer's send path (no waiter to wake).
    fn defers(&self, rx: &Rx, now: Instant) -> bool {
        rx.noisy_until.is_none_or(|t| now >= t)
            && self.sessions.iter().filter(|s| s.rx == rx.id).all(|s| {
                s.session.state() == SessionState::Up
                    && s.session.next_transmit().is_some()
                    && s.session.tx_interval() <= DEFER_MAX
            })
    }

    fn run(mut self) {
        // Reused between wake-ups: a wake-up allocates nothing.
        let mut fds: Vec<libc::pollfd> = Vec::new();
        // Ids of the receive sockets polled but found without input.
        let mut idle: Vec<u64> = Vec::new();
        loop {
            if self.closed && self.sessions.is_empty() {
                return;
            }
            let now = Instant::now();
            let deadline = self
                .sessions
                .iter()
                .filter_map(|s| s.session.poll_timeout())
                .min();
            fds.clear();
            fds.push(pollfd(self.wake.as_raw_fd()));
            for k in 0..self.rx.len() {
                let deferred = self.defers(&self.rx[k], now);
                self.rx[k].deferred = deferred;
                if !deferred {
                    fds.push(pollfd(self.rx[k].sock.as_fd().as_raw_fd()));
                }
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            if fds.len() == 1 {
                // Every receive socket defers (or there is none): only a command can come
                // before the deadline, and `Engine::send` unparks the thread for it. A
                // futex wait costs less than a `ppoll` of the wake socket, and nothing
                // else is waited for.
                match timeout {
                    Some(t) => std::thread::park_timeout(t),
                    None => std::thread::park(),
                }
                if self.commands() {
                    self.drain_wake();
                }
            } else {
                if let Err(e) = wait_readable(&mut fds, timeout) {
                    tracing::error!("BFD engine: ppoll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                if fds[0].revents != 0 {
                    self.drain_wake();
                    self.commands();
                }
            }
            idle.clear();
            for f in &fds[1..] {
                if f.revents == 0 {
                    if let Some(rx) = self.rx.iter().find(|r| r.sock.as_fd().as_raw_fd() == f.fd) {
                        idle.push(rx.id);
                    }
                }
            }
            // Read every socket with input, and every deferring one (its datagrams
            // waited for this wake-up), before any timer fires.
            for k in 0..self.rx.len() {
                if !idle.contains(&self.rx[k].id) {
                    self.receive(k);
                }
            }
            let now = Instant::now();
            for i in 0..self.sessions.len() {
                if self.sessions[i]
                    .session
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                {
                    self.sessions[i].session.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
    }

    /// Empties the wake socket (its bytes only say that commands are queued).
    fn drain_wake(&self) {
        let mut buf = [0u8; 64];
        while self.wake.recv(&mut buf).is_ok() {}
    }

    /// Carries out the queued commands; whether there were any.
    fn commands(&mut self) -> bool {
        let mut any = false;
        loop {
            let cmd = self.cmds.try_recv();
            any |= cmd.is_ok();
            match cmd {
                Ok(Cmd::Subscribe {
                    id,
                    owner,
                    specs,
                    events,
                    status,
                }) => {
                    for (slot, spec) in specs.into_iter().enumerate() {
                        self.add(id, &owner, spec, &events, &status, slot);
                    }
                }
                Ok(Cmd::Unsubscribe { id }) => self.remove(id),
                Err(std_mpsc::TryRecvError::Empty) => return any,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return any;
                }
            }
        }
    }

    fn add(
        &mut self,
        id: u64,
        owner: &str,
        spec: PeerSpec,
        events: &mpsc::UnboundedSender<BfdEvent>,
        status: &StatusList,
        slot: usize,
    ) {
        let sub = Subscriber {
            id,
            owner: owner.to_owned(),
            events: events.clone(),
            status: status.clone(),
            slot,
        };
        if let Some(s) = self
            .sessions
            .iter_mut()
            .find(|s| s.spec.ifindex == spec.ifindex && s.spec.peer == spec.peer)
        {
            if s.spec.interval != spec.interval || s.spec.multiplier != spec.multiplier {
                tracing::warn!(
                    "{owner}: BFD session to {} on {} is shared and keeps the timers it started with ({:?} x {})",
                    spec.peer,
                    spec.ifname,
                    s.spec.interval,
                    s.spec.multiplier
                );
            }
            Self::publish(&sub, &s.session);
            s.subs.push(sub);
            return;
        }
        let v6 = spec.peer.is_ipv6();
        let rx_id = if let Some(rx) = self
            .rx
            .iter_mut()
            .find(|r| r.ifname == spec.ifname && r.v6 == v6)
        {
            rx.users += 1;
            rx.id
        } else {
            match BfdRxSocket::open(&spec.ifname, v6) {
                Ok(sock) => {
                    let id = self.next_rx_id;
                    self.next_rx_id += 1;
                    self.rx.push(Rx {
                        id,
                        ifname: spec.ifname.clone(),
                        v6,
                        sock,
                        users: 1,
                        noisy_until: None,
                        drained: Instant::now(),
                        deferred: false,
                    });
                    id
                }
                Err(e) => {
                    tracing::error!(
                        "{owner}: BFD to {} on {}: cannot open the {} receive socket: {e}",
                        spec.peer,
                        spec.ifname,
                        family_name(v6)
                    );
                    return;
                }
            }
        };
        self.discr_seed = self
            .discr_seed
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12345);
        let port_seed = u16::try_from(self.discr_seed >> 16).unwrap_or(0);
        let tx = match BfdTxSocket::open(
            &spec.ifname,
            spec.ifindex,
            spec.source,
            spec.peer,
            port_seed,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "{owner}: BFD to {} on {}: cannot open the send socket: {e}",
                    spec.peer,
                    spec.ifname
                );
                self.release_rx(rx_id);
                return;
            }
        };
        let discr = self.new_discr();
        let mut session = Session::new(SessionConfig {
            local_discr: discr,
            desired_min_tx: spec.interval,
            required_min_rx: spec.interval,
            detect_mult: spec.multiplier,
            jitter_seed: u64::from(discr) << 1 | 1,
        });
        let now = Instant::now();
        session.start(now);
        tracing::info!(
            "{owner}: BFD session to {} on {} started ({:?} x {}, discriminator {discr:#x}, source port {}{})",
            spec.peer,
            spec.ifname,
            spec.interval,
            spec.multiplier,
            tx.port(),
            if tx.is_connected() { ", connected" } else { "" }
        );
        self.metrics
            .bfd
            .set_state(&spec.ifname, &spec.peer.to_string(), SessionState::Down);
        Self::publish(&sub, &session);
        let (sent, received) = self.metrics.bfd.packet_counters(&spec.ifname);
        self.sessions.push(Sess {
            shown: (session.state(), session.detection_time()),
            spec,
            session,
            tx,
            rx: rx_id,
            subs: vec![sub],
            sent,
            received,
        });
        let i = self.sessions.len() - 1;
        self.sessions[i].session.handle_timeout(now);
        self.drain(i);
    }

    fn new_discr(&mut self) -> u32 {
        loop {
            self.discr_seed = self
                .discr_seed
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12345);
            let d = self.discr_seed;
            if d != 0 && !self.sessions.iter().any(|s| s.session.local_discr() == d) {
                return d;
            }
        }
    }

    fn release_rx(&mut self, id: u64) {
        if let Some(k) = self.rx.iter().position(|r| r.id == id) {
            self.rx[k].users -= 1;
            if self.rx[k].users == 0 {
                self.rx.remove(k);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.sessions.len() {
            self.sessions[i].subs.retain(|s| s.id != id);
            if !self.sessions[i].subs.is_empty() {
                i += 1;
                continue;
            }
            // RFC 5880 §6.8.16: tell the peer the session is administratively down.
            self.sessions[i].session.admin_down(now);
            self.drain(i);
            let s = self.sessions.remove(i);
            self.release_rx(s.rx);
            self.metrics
                .bfd
                .remove(&s.spec.ifname, &s.spec.peer.to_string());
        }
    }

    /// Reads the `k`th receive socket until it is empty (or [`BATCH`] datagrams), in
    /// batches of one `recvmmsg` each (the common case, one datagram queued, is one call
    /// that also learns the queue is empty), and hands each datagram to its session: as
    /// of its arrival if the socket deferred its datagrams to this wake-up (they waited
    /// at most one transmit interval, and were all read), else as of now. A socket that
    /// wakes the thread per datagram may hold a deep queue under a flood; its datagrams'
    /// arrival times would let the detection timer of a session whose packets are still
    /// queued behind the junk expire, so there, as before, a packet counts when it is
    /// read.
    fn receive(&mut self, k: usize) {
        let started = Instant::now();
        let id = self.rx[k].id;
        let floor = self.rx[k].drained;
        let deferred = self.rx[k].deferred;
        let mut junk = false;
        let mut emptied = false;
        let mut read = 0;
        while read < BATCH {
            let n = match self.rx[k].sock.recv_batch(&mut self.batch) {
                Ok(n) => n,
                Err(e) => {
                    if self.limiter.hit("recv_error", Instant::now()).is_some() {
                        tracing::warn!("BFD: receive error on {}: {e}", self.rx[k].ifname);
                    }
                    break;
                }
            };
            read += n;
            let now = Instant::now();
            let real_now = SystemTime::now();
            for (bytes, meta) in self.batch.iter() {
                let at = match meta.stamp {
                    Some(_) if deferred => arrival(now, real_now, meta.stamp, floor),
                    _ => now,
                };
                let from = meta
                    .from
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
                let result = if meta.truncated {
                    Err(crate::bfd::RecvDrop::Decode(
                        crate::bfd::DecodeError::LengthExceedsPayload {
                            length: u8::MAX,
                            len: meta.len,
                        },
                    ))
                } else {
                    let candidates = self
                        .sessions
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.rx == id)
                        .map(|(i, s)| (i, s.spec.peer, s.session.local_discr()));
                    let ttl = meta.ttl.unwrap_or(0);
                    select_session(bytes, from, ttl, candidates).and_then(|(i, pkt)| {
                        self.sessions[i].session.handle_packet(at, &pkt)?;
                        Ok(i)
                    })
                };
                match result {
                    Ok(i) => {
                        self.sessions[i].received.inc();
                        Self::drain_session(
                            &mut self.sessions[i],
                            &self.metrics,
                            &mut self.limiter,
                        );
                    }
                    Err(drop) => {
                        junk = true;
                        let label = drop.label();
                        let ifname = self.rx[k].ifname.as_str();
                        self.metrics.bfd.dropped(ifname, label);
                        if let Some(n) = self.limiter.hit(label, now) {
                            tracing::warn!(
                                "BFD: dropped packet from {from} on {ifname}: {drop} ({n} since the last such line)"
                            );
                        }
                    }
                }
            }
            if n < self.batch.capacity() {
                emptied = true;
                break;
            }
        }
        let rx = &mut self.rx[k];
        if emptied {
            rx.drained = started;
        }
        if junk || !emptied {
            rx.noisy_until = Some(Instant::now() + NOISY_HOLD);
        }
    }

    fn publish(sub: &Subscriber, session: &Session) {
        let mut list = sub.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = list.get_mut(sub.slot) {
            st.state = session.state().as_str().to_owned();
            st.detect_ms = session
                .detection_time()
                .map(|d| d.as_micros().div_ceil(1000) as u64);
        }
    }

    fn drain(&mut self, i: usize) {
        if let Some(s) = self.sessions.get_mut(i) {
            Self::drain_session(s, &self.metrics, &mut self.limiter);
        }
    }

    /// Carries out the session's actions: sends its packets, reports its state changes.
    fn drain_session(s: &mut Sess, metrics: &Metrics, limiter: &mut LogLimiter) {
        while let Some(a) = s.session.poll_action() {
            match a {
                Action::Send(p) => match s.tx.send(&p.to_bytes()) {
                    Ok(()) => {
                        s.sent.inc();
                    }
                    Err(e) => {
                        if limiter.hit("send_error", Instant::now()).is_some() {
                            tracing::warn!(
                                "BFD: cannot send to {} on {}: {e}",
                                s.spec.peer,
                                s.spec.ifname
                            );
                        }
                    }
                },
                Action::StateChanged { from, to, diag } => {
                    let detect = s.session.detection_time();
                    let owners: Vec<&str> = s.subs.iter().map(|x| x.owner.as_str()).collect();
                    // One line per session state change, with its diagnostic.
                    tracing::info!(
                        peer = %s.spec.peer,
                        "{}: BFD session to {} on {}: {from} -> {to} ({diag})",
                        owners.join(","),
                        s.spec.peer,
                        s.spec.ifname,
                    );
                    let peer = s.spec.peer.to_string();
                    metrics.bfd.set_state(&s.spec.ifname, &peer, to);
                    metrics
                        .bfd
                        .transition(&s.spec.ifname, &peer, from.as_str(), to.as_str());
                    for sub in &s.subs {
                        let _ = sub.events.send(BfdEvent {
                            peer: s.spec.peer,
                            from,
                            to,
                            diag,
                            detect,
                        });
                    }
                }
            }
        }
        let now = (s.session.state(), s.session.detection_time());
        if now != s.shown {
            s.shown = now;
            for sub in &s.subs {
                Self::publish(sub, &s.session);
            }
        }
    }
}

/// The source address of a session to `peer` for an instance whose own address is
/// `source` (IPv4: its primary address; IPv6: its link-local address, or
/// `source-address`). Binding it matters: left to the kernel, a master's packets could
/// leave from a VIP (a link-local VIP on the same interface was chosen in testing), and
/// the peer, which knows us by our own address, drops them. IPv6 with a source of the
/// other scope than the peer (link-local vs global): the kernel's choice.
pub fn bfd_source(source: IpAddr, peer: IpAddr) -> Option<IpAddr> {
    let ll = |a: &IpAddr| matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
    match (source, peer) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(source),
        (IpAddr::V6(_), IpAddr::V6(_)) if ll(&source) == ll(&peer) => Some(source),
        _ => None,
    }
}

/// The next event of an optional receiver (pending forever without one), for `select!`.
pub async fn next_event(rx: &mut Option<mpsc::UnboundedReceiver<BfdEvent>>) -> Option<BfdEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether a state change means the peer is dead: Up -> Down because the detection time
/// passed in silence. A peer that says it is (administratively) down is not a failure
/// of the path (RFC 5882 §3.2): a graceful stop hands over with priority-0 adverts.
pub fn is_failure(ev: &BfdEvent) -> bool {
    ev.from == SessionState::Up
        && ev.to == SessionState::Down
        && ev.diag == Diag::DETECTION_TIME_EXPIRED
}

/// The sessions of an instance's `[instance.bfd]`, sent from the instance's own source
/// address (see [`bfd_source`]).
pub fn peer_specs(
    spec: &crate::config::BfdSpec,
    ifname: &str,
    ifindex: u32,
    source: IpAddr,
) -> Vec<PeerSpec> {
    spec.peers
        .iter()
        .map(|&peer| PeerSpec {
            ifname: ifname.to_owned(),
            ifindex,
            source: bfd_source(source, peer),
            peer,
            interval: spec.interval,
            multiplier: spec.multiplier,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Now, the last empty read 3 ms ago, and a wall-clock time.
    fn clocks() -> (Instant, Instant, SystemTime) {
        let now = Instant::now();
        let real = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        (now, now - Duration::from_millis(3), real)
    }

    #[test]
    fn arrival_is_now_less_the_age_of_the_kernel_timestamp() {
        let (now, floor, real) = clocks();
        let stamp = real - Duration::from_micros(1200);
        assert_eq!(
            arrival(now, real, Some(stamp), floor),
            now - Duration::from_micros(1200)
        );
        // No timestamp: read now is all we know.
        assert_eq!(arrival(now, real, None, floor), now);
    }

    #[test]
    fn arrival_stays_between_the_last_empty_read_and_now_whatever_the_wall_clock_says() {
        let (now, floor, real) = clocks();
        // The wall clock stepped forward since the datagram was queued (it looks an hour
        // old): it cannot have arrived before the socket was last found empty, so the
        // detection timer does not start early.
        let old = real - Duration::from_secs(3600);
        assert_eq!(arrival(now, real, Some(old), floor), floor);
        // Stepped back (the stamp is in the future): taken as arrived now.
        let future = real + Duration::from_secs(5);
        assert_eq!(arrival(now, real, Some(future), floor), now);
    }
}
