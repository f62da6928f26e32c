//! The BFD engine: one OS thread that runs every BFD session of the process.
//!
//! ```text
//!   drivers / bfd tracks --subscribe(PeerSpec)--> [cmd queue + wake socket]
//!                                                        |
//!   BfdRxSocket (one per interface+family, :3784) ---> [ engine thread ] --BfdTxSocket--> peers
//!                                                   ppoll(deadline, ns)     |
//!      drivers <--BfdEvent (state changes)-- subscribers <------------------+
//!      status  <--Arc<Mutex<Vec<BfdPeerStatus>>>-- (per subscription)
//! ```
//!
//! Why a thread and not a tokio task: tokio's timers have a resolution of one
//! millisecond, and a 3 ms session would send a tick late every time. `ppoll(2)` takes a
//! nanosecond timeout (an hrtimer), so the thread wakes at the session's deadline; and
//! the core schedules each transmission from the previous deadline, so a late wake-up
//! does not accumulate. The thread does no work between deadlines and packets.
//!
//! Sessions are keyed by (interface, peer): two users of the same peer on one interface
//! share one session (RFC 5881 allows one session per peer and interface); the first
//! subscriber's timers are used. When the last subscriber goes, the session is held
//! AdminDown (one packet says so, RFC 5880 §6.8.16) and removed.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use tokio::sync::mpsc;

use crate::bfd::{select_session, Action, Diag, Session, SessionConfig, SessionState};
use crate::control::message::BfdPeerStatus;
use crate::net::{BfdRxSocket, BfdTxSocket};

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
    wake: UnixDatagram,
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
        std::thread::Builder::new()
            .name("vipd-bfd".into())
            .spawn(move || {
                realtime();
                Runner::new(rx, wake_rx, metrics).run()
            })?;
        Ok(Engine {
            cmds: Mutex::new(tx),
            wake: wake_tx,
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
    tx: (u32, bool, Option<IpAddr>),
    subs: Vec<Subscriber>,
    /// What the subscribers' status lists show (republished only when it changes).
    shown: (SessionState, Option<Duration>),
    /// Packet counters of the interface, looked up once (not per packet).
    sent: prometheus_client::metrics::counter::Counter,
    received: prometheus_client::metrics::counter::Counter,
}

struct Runner {
    cmds: std_mpsc::Receiver<Cmd>,
    wake: UnixDatagram,
    metrics: Metrics,
    sessions: Vec<Sess>,
    rx: HashMap<(String, bool), (BfdRxSocket, u32)>,
    tx: HashMap<(u32, bool, Option<IpAddr>), BfdTxSocket>,
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
            rx: HashMap::new(),
            tx: HashMap::new(),
            discr_seed: t ^ std::process::id().rotate_left(16),
            limiter: LogLimiter::new(Duration::from_secs(10)),
            closed: false,
        }
    }

    fn run(mut self) {
        let mut buf = [0u8; 2048];
        loop {
            if self.closed && self.sessions.is_empty() {
                return;
            }
            let deadline = self
                .sessions
                .iter()
                .filter_map(|s| s.session.poll_timeout())
                .min();
            let timeout = deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                TimeSpec::from_duration(left)
            });
            let keys: Vec<_> = self.rx.keys().cloned().collect();
            let ready: Vec<bool> = {
                let mut fds = Vec::with_capacity(1 + self.rx.len());
                fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
                for k in &keys {
                    if let Some((s, _)) = self.rx.get(k) {
                        fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
                    }
                }
                match ppoll(&mut fds, timeout, None) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        tracing::error!("BFD engine: ppoll failed: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                fds.iter()
                    .map(|f| {
                        f.revents()
                            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
                    })
                    .collect()
            };
            if ready.first().copied().unwrap_or(false) {
                while self.wake.recv(&mut buf).is_ok() {}
            }
            self.commands();
            for (i, k) in keys.iter().enumerate() {
                if ready.get(i + 1).copied().unwrap_or(false) {
                    self.receive(k, &mut buf);
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

    fn commands(&mut self) {
        loop {
            match self.cmds.try_recv() {
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
                Err(std_mpsc::TryRecvError::Empty) => return,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
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
        let rx_key = (spec.ifname.clone(), v6);
        if let Some((_, n)) = self.rx.get_mut(&rx_key) {
            *n += 1;
        } else {
            match BfdRxSocket::open(&spec.ifname, v6) {
                Ok(s) => {
                    self.rx.insert(rx_key, (s, 1));
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
        }
        let source = spec.source;
        let tx_key = (spec.ifindex, v6, source);
        if !self.tx.contains_key(&tx_key) {
            self.discr_seed = self
                .discr_seed
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12345);
            match BfdTxSocket::open(
                &spec.ifname,
                spec.ifindex,
                v6,
                source,
                (self.discr_seed >> 8) as u16,
            ) {
                Ok(s) => {
                    self.tx.insert(tx_key, s);
                }
                Err(e) => {
                    tracing::error!(
                        "{owner}: BFD to {} on {}: cannot open the send socket: {e}",
                        spec.peer,
                        spec.ifname
                    );
                    self.release_rx(&spec.ifname, v6);
                    return;
                }
            }
        }
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
            "{owner}: BFD session to {} on {} started ({:?} x {}, discriminator {discr:#x})",
            spec.peer,
            spec.ifname,
            spec.interval,
            spec.multiplier
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
            tx: tx_key,
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

    fn release_rx(&mut self, ifname: &str, v6: bool) {
        let key = (ifname.to_owned(), v6);
        if let Some((_, n)) = self.rx.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.rx.remove(&key);
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
            let v6 = s.spec.peer.is_ipv6();
            self.release_rx(&s.spec.ifname, v6);
            if !self.sessions.iter().any(|x| x.tx == s.tx) {
                self.tx.remove(&s.tx);
            }
            self.metrics
                .bfd
                .remove(&s.spec.ifname, &s.spec.peer.to_string());
        }
    }

    fn receive(&mut self, key: &(String, bool), buf: &mut [u8]) {
        // At most this many datagrams per wake-up, so a flood cannot starve the timers.
        for _ in 0..256 {
            let Some((sock, _)) = self.rx.get(key) else {
                return;
            };
            let dg = match sock.recv(buf) {
                Ok(Some(dg)) => dg,
                Ok(None) => return,
                Err(e) => {
                    if self.limiter.hit("recv_error", Instant::now()).is_some() {
                        tracing::warn!("BFD: receive error on {}: {e}", key.0);
                    }
                    return;
                }
            };
            let now = Instant::now();
            let ifname = key.0.as_str();
            let bytes = &buf[..dg.len.min(buf.len())];
            let candidates: Vec<(usize, IpAddr, u32)> = self
                .sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| s.spec.ifname == ifname && s.spec.peer.is_ipv6() == key.1)
                .map(|(i, s)| (i, s.spec.peer, s.session.local_discr()))
                .collect();
            let result = if dg.len > buf.len() {
                Err(crate::bfd::RecvDrop::Decode(
                    crate::bfd::DecodeError::LengthExceedsPayload {
                        length: u8::MAX,
                        len: dg.len,
                    },
                ))
            } else {
                select_session(bytes, dg.from, dg.ttl, candidates).and_then(|(i, pkt)| {
                    self.sessions[i].session.handle_packet(now, &pkt)?;
                    Ok(i)
                })
            };
            match result {
                Ok(i) => {
                    self.sessions[i].received.inc();
                    self.drain(i);
                }
                Err(drop) => {
                    let label = drop.label();
                    self.metrics.bfd.dropped(ifname, label);
                    if let Some(n) = self.limiter.hit(label, now) {
                        tracing::warn!(
                            "BFD: dropped packet from {} on {ifname}: {drop} ({n} since the last such line)",
                            dg.from
                        );
                    }
                }
            }
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
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        while let Some(a) = s.session.poll_action() {
            match a {
                Action::Send(p) => {
                    let Some(tx) = self.tx.get(&s.tx) else {
                        continue;
                    };
                    match tx.send(s.spec.peer, &p.to_bytes()) {
                        Ok(()) => {
                            s.sent.inc();
                        }
                        Err(e) => {
                            if self.limiter.hit("send_error", Instant::now()).is_some() {
                                tracing::warn!(
                                    "BFD: cannot send to {} on {}: {e}",
                                    s.spec.peer,
                                    s.spec.ifname
                                );
                            }
                        }
                    }
                }
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
                    self.metrics.bfd.set_state(&s.spec.ifname, &peer, to);
                    self.metrics
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
