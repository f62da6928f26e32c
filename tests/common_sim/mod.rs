//! A simulated LAN of VRRP routers on a virtual clock.
//!
//! Time is a base `Instant` plus an offset; nothing sleeps. Adverts travel through a
//! priority queue with a per-link delay, optional random loss (a seeded xorshift, so
//! every run is identical) and partitions. The sim drives each `Router` exactly as a
//! daemon would (`handle_advert` / `handle_timeout` / `poll_action`), records every
//! action with its instant, and tracks which routers hold the VIPs.
//!
//! After every step it checks the invariant "a router holds the VIPs if and only if
//! it is Master" (during a make-before-break release the router is still Master).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vipd::proto::{Advert, Centis, Version};
use vipd::vrrp::{Action, Router, RouterConfig, State};

/// A simulator's next step on its virtual clock (offsets from its base instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Deliver the packet at the head of the queue, due at this offset.
    Deliver(Duration),
    /// Fire the timer of participant `.1` (a router, a BFD session end), due at `.0`.
    Timer(Duration, usize),
}

impl Step {
    /// Whichever comes first: the queue head due at `delivery`, or the earliest of the
    /// `timers` (participant index, deadline); a delivery first when they tie. `None` when
    /// nothing is pending.
    pub fn next(
        base: Instant,
        delivery: Option<Duration>,
        timers: impl Iterator<Item = (usize, Option<Instant>)>,
    ) -> Option<Step> {
        let timer = timers
            .filter_map(|(i, t)| Some((t?.saturating_duration_since(base), i)))
            .min();
        match (delivery, timer) {
            (Some(d), Some((tm, _))) if d <= tm => Some(Step::Deliver(d)),
            (Some(d), None) => Some(Step::Deliver(d)),
            (_, Some((tm, i))) => Some(Step::Timer(tm, i)),
            (None, None) => None,
        }
    }

    /// When it is due.
    pub fn at(self) -> Duration {
        match self {
            Step::Deliver(at) | Step::Timer(at, _) => at,
        }
    }
}

/// Tiny deterministic RNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `per_million` / 1e6.
    pub fn chance(&mut self, per_million: u32) -> bool {
        (self.next_u64() % 1_000_000) < u64::from(per_million)
    }
}

/// One router on the LAN.
pub struct Node {
    /// Its configuration (kept to restart it).
    pub cfg: RouterConfig,
    /// The state machine.
    pub router: Router,
    /// False while crashed: receives nothing, fires no timers.
    pub up: bool,
    /// Whether it holds the VIPs (from AddVips / RemoveVips).
    pub holds: bool,
    /// Partition group: adverts flow only within a group.
    pub group: u32,
}

/// One action, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Offset from the sim's base instant.
    pub at: Duration,
    /// Node index.
    pub node: usize,
    /// The action.
    pub action: Action,
}

/// An advert delivered to a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Delivery instant.
    pub at: Duration,
    /// Sender index.
    pub from: usize,
    /// Receiver index.
    pub to: usize,
    /// Advertised priority.
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Duration,
    seq: u64,
    to: usize,
    from: usize,
    priority: u8,
    interval: u16,
}

/// The simulated LAN.
pub struct Sim {
    /// The instant that offset 0 stands for.
    pub base: Instant,
    /// The current offset.
    pub now: Duration,
    /// The routers.
    pub nodes: Vec<Node>,
    /// One-way delay from `[from][to]`.
    pub delay: Vec<Vec<Duration>>,
    /// Random loss per delivery, in parts per million.
    pub loss_ppm: u32,
    /// Every action taken, in order.
    pub log: Vec<Logged>,
    /// Every advert delivered.
    pub heard: Vec<Heard>,
    /// Instants at which no router held the VIPs although one had before.
    pub gaps: Vec<Duration>,
    /// Adverts lost to random loss.
    pub lost: u64,
    queue: BinaryHeap<Reverse<Delivery>>,
    seq: u64,
    rng: XorShift,
    ever_held: bool,
}

/// `192.0.2.<last>`.
pub fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

/// The shared VIP, 192.0.2.100.
pub fn vip() -> IpAddr {
    v4(100)
}

/// A VRRPv3 config: VRID 51, 1 s interval, preempt on, primary 192.0.2.<last>.
pub fn config(priority: u8, last: u8) -> RouterConfig {
    RouterConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: Centis(100),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: v4(last),
        vips: vec![vip()],
        unicast_peers: vec![],
    }
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Microseconds.
pub fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl Sim {
    /// A LAN of these routers (not started), 1 ms links, no loss.
    pub fn new(cfgs: Vec<RouterConfig>, seed: u64) -> Self {
        let n = cfgs.len();
        Sim {
            base: Instant::now(),
            now: Duration::ZERO,
            nodes: cfgs
                .into_iter()
                .map(|cfg| Node {
                    router: Router::new(cfg.clone()),
                    cfg,
                    up: true,
                    holds: false,
                    group: 0,
                })
                .collect(),
            delay: vec![vec![ms(1); n]; n],
            loss_ppm: 0,
            log: Vec::new(),
            heard: Vec::new(),
            gaps: Vec::new(),
            lost: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: XorShift::new(seed),
            ever_held: false,
        }
    }

    /// The current instant.
    pub fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Asserts that router `i` alone is Master and alone holds the VIPs.
    #[track_caller]
    pub fn assert_sole_master(&self, i: usize) {
        assert_eq!(self.masters(), vec![i]);
        assert_eq!(self.holders(), vec![i]);
    }

    /// A sim of `cfgs` (loss and order from `seed`), every router started, run until `t`.
    pub fn started(cfgs: Vec<RouterConfig>, seed: u64, t: Duration) -> Self {
        let mut sim = Sim::new(cfgs, seed);
        sim.start_all();
        sim.run_until(t);
        sim
    }

    /// Start every router now.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Start router `i` now.
    pub fn start(&mut self, i: usize) {
        self.command(i, |r, now| r.start(now));
    }

    /// Run a command on router `i` now, then process its actions.
    pub fn command(&mut self, i: usize, f: impl FnOnce(&mut Router, Instant)) {
        let now = self.instant();
        f(&mut self.nodes[i].router, now);
        self.drain(i);
    }

    /// Crash router `i`: it vanishes with its VIPs, without a word.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.up = false;
        node.holds = false;
        node.router = Router::new(node.cfg.clone());
    }

    /// Bring a crashed router back (a fresh process) and start it.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.up = true;
        node.router = Router::new(node.cfg.clone());
        self.start(i);
    }

    /// Split the LAN: nodes in the same slice hear each other; the rest are group 0.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                self.nodes[i].group = u32::try_from(g).unwrap_or(0) + 1;
            }
        }
    }

    /// Join all partitions.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    /// The routers' next deadlines (those of routers that are up).
    fn timers(&self) -> impl Iterator<Item = (usize, Option<Instant>)> + '_ {
        let up = self.nodes.iter().enumerate().filter(|(_, n)| n.up);
        up.map(|(i, n)| (i, n.router.poll_timeout()))
    }

    /// Run until offset `t` (inclusive of events at `t`).
    pub fn run_until(&mut self, t: Duration) {
        let mut same_instant = 0u32;
        loop {
            let delivery = self.queue.peek().map(|Reverse(d)| d.at);
            let Some(step) = Step::next(self.base, delivery, self.timers()) else {
                break;
            };
            let at = step.at();
            if at > t {
                break;
            }
            if at == self.now {
                same_instant += 1;
                assert!(same_instant < 10_000, "sim stuck at {:?}", self.now);
            } else {
                same_instant = 0;
            }
            assert!(at >= self.now, "time went backwards");
            self.now = at;
            match step {
                Step::Deliver(_) => {
                    let Some(Reverse(d)) = self.queue.pop() else {
                        break;
                    };
                    self.deliver(d);
                }
                Step::Timer(_, i) => {
                    let now = self.instant();
                    self.nodes[i].router.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
        self.now = t;
    }

    /// Run for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    fn deliver(&mut self, d: Delivery) {
        let to = &self.nodes[d.to];
        if !to.up || to.group != self.nodes[d.from].group {
            return;
        }
        let from_cfg = &self.nodes[d.from].cfg;
        let adv = Advert {
            version: from_cfg.version,
            vrid: from_cfg.vrid,
            priority: d.priority,
            interval: Centis(d.interval),
            addrs: from_cfg.vips.clone(),
        };
        let from = from_cfg.primary_addr;
        let now = self.instant();
        let res = self.nodes[d.to].router.handle_advert(now, from, 255, &adv);
        assert_eq!(res, Ok(()), "sim adverts always pass the receive checks");
        self.heard.push(Heard {
            at: self.now,
            from: d.from,
            to: d.to,
            priority: d.priority,
        });
        self.drain(d.to);
    }

    fn drain(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].router.poll_action() {
            match &action {
                Action::SendAdvert(Advert {
                    priority, interval, ..
                }) => {
                    for j in 0..self.nodes.len() {
                        if j == i || !self.nodes[j].up || self.nodes[j].group != self.nodes[i].group
                        {
                            continue;
                        }
                        if self.loss_ppm > 0 && self.rng.chance(self.loss_ppm) {
                            self.lost += 1;
                            continue;
                        }
                        self.seq += 1;
                        self.queue.push(Reverse(Delivery {
                            at: self.now + self.delay[i][j],
                            seq: self.seq,
                            to: j,
                            from: i,
                            priority: *priority,
                            interval: interval.0,
                        }));
                    }
                }
                Action::AddVips => {
                    assert!(!self.nodes[i].holds, "node {i}: AddVips twice");
                    self.nodes[i].holds = true;
                    self.ever_held = true;
                }
                Action::RemoveVips => {
                    assert!(self.nodes[i].holds, "node {i}: RemoveVips without VIPs");
                    self.nodes[i].holds = false;
                    if self.ever_held && self.holders().is_empty() {
                        self.gaps.push(self.now);
                    }
                }
                Action::Announce { .. } => {
                    assert!(
                        self.nodes[i].holds,
                        "node {i}: announcing VIPs it does not hold"
                    );
                }
                Action::StateChanged { from, .. } => {
                    let prev = self
                        .log
                        .iter()
                        .rev()
                        .find_map(|l| match &l.action {
                            Action::StateChanged { to, .. } if l.node == i => Some(*to),
                            _ => None,
                        })
                        .unwrap_or(State::Init);
                    // A restarted node begins again in Init.
                    assert!(
                        *from == prev || *from == State::Init,
                        "node {i}: transition from {from} but was {prev}"
                    );
                }
                Action::StopAnnouncing => {
                    assert!(
                        self.nodes[i].holds,
                        "node {i}: stops announcing VIPs it does not hold"
                    );
                }
                Action::Released => {}
            }
            self.log.push(Logged {
                at: self.now,
                node: i,
                action,
            });
        }
        let n = &self.nodes[i];
        assert_eq!(
            n.holds,
            n.router.state() == State::Master,
            "node {i}: holds VIPs = {} in state {} at {:?}",
            n.holds,
            n.router.state(),
            self.now
        );
    }

    /// Indices of the routers in Master (up ones only).
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up && self.nodes[i].router.state() == State::Master)
            .collect()
    }

    /// Indices of the routers holding the VIPs.
    pub fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].holds)
            .collect()
    }

    /// State of router `i`.
    pub fn state(&self, i: usize) -> State {
        self.nodes[i].router.state()
    }

    /// Instants at which router `i` became Master, from offset `after` on.
    pub fn became_master(&self, i: usize, after: Duration) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|l| l.node == i && l.at >= after)
            .filter(|l| {
                matches!(
                    l.action,
                    Action::StateChanged {
                        to: State::Master,
                        ..
                    }
                )
            })
            .map(|l| l.at)
            .collect()
    }

    /// Number of transitions into Master by any router from offset `after` on.
    pub fn master_transitions(&self, after: Duration) -> usize {
        (0..self.nodes.len())
            .map(|i| self.became_master(i, after).len())
            .sum()
    }

    /// Actions of router `i` from offset `after` on.
    pub fn actions_of(&self, i: usize, after: Duration) -> Vec<(Duration, Action)> {
        self.log
            .iter()
            .filter(|l| l.node == i && l.at >= after)
            .map(|l| (l.at, l.action.clone()))
            .collect()
    }

    /// The last instant router `to` heard an advert from `from` at or before now.
    pub fn last_heard(&self, to: usize, from: usize) -> Option<Duration> {
        self.heard
            .iter()
            .rev()
            .find(|h| h.to == to && h.from == from)
            .map(|h| h.at)
    }
}
