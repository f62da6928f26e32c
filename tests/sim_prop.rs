//! Property tests: random inputs never panic, never leave VIPs held outside Master,
//! and a LAN always converges to one master once the faults are undone.

mod common_sim;

use std::time::{Duration, Instant};

use common_sim::{config, ms, secs, v4, Sim};
use proptest::prelude::*;
use vipd::proto::{Advert, Centis, Version};
use vipd::vrrp::{Action, Router, State};

#[derive(Debug, Clone)]
enum Input {
    Advert {
        from: u8,
        ttl: u8,
        other_vrid: bool,
        v2: bool,
        priority: u8,
        interval: u16,
        extra_addr: bool,
    },
    Advance(u16),
    Timeout,
    Start,
    Base(u8),
    Override(Option<u8>),
    Penalty(u32),
    Fault(Option<bool>),
    Maintenance(bool),
    Shutdown,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (
            10u8..14,
            prop_oneof![4 => Just(255u8), 1 => any::<u8>()],
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop_oneof![1 => Just(0u8), 1 => Just(255u8), 6 => any::<u8>()],
            prop_oneof![4 => Just(100u16), 1 => 0u16..500],
            prop::bool::weighted(0.1),
        )
            .prop_map(|(from, ttl, other_vrid, v2, priority, interval, extra_addr)| {
                Input::Advert { from, ttl, other_vrid, v2, priority, interval, extra_addr }
            }),
        6 => (0u16..5000).prop_map(Input::Advance),
        4 => Just(Input::Timeout),
        1 => Just(Input::Start),
        1 => any::<u8>().prop_map(Input::Base),
        1 => proptest::option::of(any::<u8>()).prop_map(Input::Override),
        1 => prop_oneof![Just(0u32), any::<u32>(), 0u32..300].prop_map(Input::Penalty),
        1 => proptest::option::of(any::<bool>()).prop_map(Input::Fault),
        1 => any::<bool>().prop_map(Input::Maintenance),
        1 => prop::bool::weighted(0.2).prop_filter_map("rare", |b| b.then_some(Input::Shutdown)),
    ]
}

/// Checks the action stream of one router against its state.
struct Checker {
    held: bool,
    state: State,
    released: bool,
}

impl Checker {
    fn drain(&mut self, r: &mut Router, now: Instant) -> Result<(), TestCaseError> {
        while let Some(a) = r.poll_action() {
            prop_assert!(!self.released, "action after Released: {:?}", a);
            match a {
                Action::AddVips => {
                    prop_assert!(!self.held, "AddVips twice");
                    self.held = true;
                }
                Action::RemoveVips => {
                    prop_assert!(self.held, "RemoveVips without VIPs");
                    self.held = false;
                }
                Action::Announce { .. } => prop_assert!(self.held, "announce without VIPs"),
                Action::StopAnnouncing => prop_assert!(self.held, "stop announcing without VIPs"),
                Action::StateChanged { from, to, .. } => {
                    prop_assert_eq!(from, self.state);
                    prop_assert_ne!(from, to);
                    self.state = to;
                }
                Action::Released => self.released = true,
                Action::SendAdvert(a) => prop_assert_eq!(a.interval, Centis(100)),
            }
        }
        prop_assert_eq!(self.state, r.state());
        prop_assert_eq!(self.released, r.is_released());
        // VIPs are held exactly while Master (a make-before-break release stays Master).
        prop_assert_eq!(self.held, r.state() == State::Master);
        let timer_expected = !self.released && matches!(r.state(), State::Backup | State::Master);
        prop_assert_eq!(r.poll_timeout().is_some(), timer_expected);
        let p = r.effective_priority();
        prop_assert!(p >= 1);
        prop_assert_eq!(p == 255, r.base_priority() == 255);
        let _ = now;
        Ok(())
    }
}

fn run_inputs(base_priority: u8, inputs: Vec<Input>) -> Result<(), TestCaseError> {
    let mut cfg = config(base_priority, 11);
    cfg.preempt_delay = Duration::from_millis(1500);
    let mut r = Router::new(cfg);
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = Checker {
        held: false,
        state: State::Init,
        released: false,
    };
    for inp in inputs {
        match inp {
            Input::Advert {
                from,
                ttl,
                other_vrid,
                v2,
                priority,
                interval,
                extra_addr,
            } => {
                let mut addrs = vec![common_sim::vip()];
                if extra_addr {
                    addrs.push(v4(101));
                }
                let adv = Advert {
                    version: if v2 { Version::V2 } else { Version::V3 },
                    vrid: if other_vrid { 52 } else { 51 },
                    priority,
                    interval: Centis(interval),
                    addrs,
                };
                let before = (r.state(), r.poll_timeout());
                let res = r.handle_advert(now, v4(from), ttl, &adv);
                if res.is_err() {
                    // A dropped advert changes nothing.
                    prop_assert_eq!((r.state(), r.poll_timeout()), before);
                    prop_assert!(r.poll_action().is_none());
                }
                if ttl != 255 {
                    prop_assert!(res.is_err());
                }
            }
            Input::Advance(d) => now += Duration::from_millis(u64::from(d)),
            Input::Timeout => {
                if let Some(t) = r.poll_timeout() {
                    now = now.max(t);
                    r.handle_timeout(now);
                    c.drain(&mut r, now)?;
                    if let Some(next) = r.poll_timeout() {
                        prop_assert!(next > now, "timer stuck at {:?}", next - t0);
                    }
                }
            }
            Input::Start => r.start(now),
            Input::Base(p) => r.set_base_priority(now, p),
            Input::Override(p) => r.set_override(now, p),
            Input::Penalty(w) => r.set_penalty(now, w),
            Input::Fault(f) => r.set_fault(now, f.map(|b| format!("check {b}"))),
            Input::Maintenance(on) => r.set_maintenance(now, on),
            Input::Shutdown => r.shutdown(now),
        }
        c.drain(&mut r, now)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_panic_and_vips_only_in_master(
        base in prop_oneof![Just(255u8), Just(100u8), any::<u8>()],
        inputs in prop::collection::vec(input(), 1..120),
    ) {
        run_inputs(base, inputs)?;
    }
}

#[derive(Debug, Clone)]
enum LanOp {
    Run(u16),
    Crash(usize),
    Restart(usize),
    Partition(usize),
    Heal,
    Penalty(usize, u32),
    Maintenance(usize, bool),
    Fault(usize, bool),
    Shutdown(usize),
    Loss(u32),
}

fn lan_op() -> impl Strategy<Value = LanOp> {
    prop_oneof![
        6 => (0u16..6000).prop_map(LanOp::Run),
        1 => (0usize..3).prop_map(LanOp::Crash),
        1 => (0usize..3).prop_map(LanOp::Restart),
        1 => (0usize..3).prop_map(LanOp::Partition),
        1 => Just(LanOp::Heal),
        1 => ((0usize..3), 0u32..250).prop_map(|(i, w)| LanOp::Penalty(i, w)),
        1 => ((0usize..3), any::<bool>()).prop_map(|(i, b)| LanOp::Maintenance(i, b)),
        1 => ((0usize..3), any::<bool>()).prop_map(|(i, b)| LanOp::Fault(i, b)),
        1 => (0usize..3).prop_map(LanOp::Shutdown),
        1 => prop_oneof![Just(0u32), 0u32..300_000].prop_map(LanOp::Loss),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever happened, once every fault is undone the LAN converges to exactly one
    /// master, the highest priority, within 20 s (the sim checks VIPs <=> Master at
    /// every step).
    #[test]
    fn lan_converges_to_the_highest_priority_after_faults_are_undone(
        prios in prop::sample::subsequence((1u8..=254).collect::<Vec<_>>(), 3)
            .prop_shuffle(),
        ops in prop::collection::vec(lan_op(), 0..40),
        seed in any::<u64>(),
    ) {
        let cfgs = vec![config(prios[0], 11), config(prios[1], 12), config(prios[2], 13)];
        let mut sim = Sim::new(cfgs, seed);
        sim.start_all();
        for op in ops {
            match op {
                LanOp::Run(d) => sim.run_for(ms(u64::from(d))),
                LanOp::Crash(i) => sim.crash(i),
                LanOp::Restart(i) => {
                    if !sim.nodes[i].up || sim.nodes[i].router.is_released() {
                        sim.restart(i);
                    }
                }
                LanOp::Partition(i) => sim.partition(&[&[i]]),
                LanOp::Heal => sim.heal(),
                LanOp::Penalty(i, w) => sim.command(i, |r, now| r.set_penalty(now, w)),
                LanOp::Maintenance(i, on) => sim.command(i, |r, now| r.set_maintenance(now, on)),
                LanOp::Fault(i, on) => sim.command(i, |r, now| {
                    r.set_fault(now, on.then(|| "check failed".to_string()));
                }),
                LanOp::Shutdown(i) => sim.command(i, |r, now| r.shutdown(now)),
                LanOp::Loss(ppm) => sim.loss_ppm = ppm,
            }
        }
        // Undo everything (a shutdown in progress finishes first: it is terminal).
        sim.loss_ppm = 0;
        sim.heal();
        sim.run_for(secs(5));
        for i in 0..3 {
            if !sim.nodes[i].up || sim.nodes[i].router.is_released() {
                sim.restart(i);
            }
            sim.command(i, |r, now| {
                r.set_penalty(now, 0);
                r.set_maintenance(now, false);
                r.set_fault(now, None);
            });
        }
        sim.run_for(secs(20));
        let best = (0..3).max_by_key(|&i| prios[i]).unwrap_or(0);
        prop_assert_eq!(sim.masters(), vec![best]);
        prop_assert_eq!(sim.holders(), vec![best]);
    }
}
