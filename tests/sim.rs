//! Elections on a simulated LAN (virtual clock, deterministic loss), with the exact
//! instants RFC 5798 fixes. All links have a 1 ms delay; the advert interval is 1 s.
//!
//! Timer values used below (RFC 5798 §6.1, microseconds, rounded down):
//! priority 200: Skew 218_750, Master_Down_Interval 3_218_750;
//! priority 150: Skew 414_062, MDI 3_414_062; priority 100: Skew 609_375, MDI 3_609_375.

mod common_sim;

use std::time::Duration;

use common_sim::{config, ms, secs, us, v4, Sim};
use vipd::vrrp::{master_down_interval, Action, AnnounceReason, Reason, State, RELEASE_GRACE};

const MDI_200: u64 = 3_218_750;
const MDI_100: u64 = 3_609_375;
const SKEW_150: u64 = 414_062;
const LINK: u64 = 1_000; // µs

#[test]
fn rfc5798_6_4_2_two_routers_elect_the_highest_priority() {
    let sim = Sim::started(vec![config(100, 11), config(200, 12)], 1, secs(30));
    // §6.4.1 / §6.4.2: nobody is heard, so the higher priority's shorter timer fires first.
    assert_eq!(sim.became_master(1, secs(0)), vec![us(MDI_200)]);
    assert!(sim.became_master(0, secs(0)).is_empty());
    sim.assert_sole_master(1);
    assert_eq!(sim.nodes[0].router.master_addr(), Some(v4(12)));
    assert_eq!(sim.nodes[1].router.master_addr(), Some(v4(12)));
}

#[test]
fn rfc5798_6_4_2_three_routers_elect_the_highest_priority() {
    let sim = Sim::started(
        vec![config(100, 11), config(150, 13), config(200, 12)],
        2,
        secs(30),
    );
    assert_eq!(sim.became_master(2, secs(0)), vec![us(MDI_200)]);
    assert_eq!(sim.master_transitions(secs(0)), 1);
    sim.assert_sole_master(2);
}

#[test]
fn rfc5798_6_4_3_equal_priorities_the_higher_address_wins() {
    let sim = Sim::started(
        vec![config(100, 11), config(100, 12), config(100, 5)],
        3,
        secs(30),
    );
    // All three fire together at MDI and hear each other 1 ms later.
    for i in 0..3 {
        assert_eq!(sim.became_master(i, secs(0)), vec![us(MDI_100)], "node {i}");
    }
    assert_eq!(sim.masters(), vec![1], "192.0.2.12 is the highest address");
    assert_eq!(sim.holders(), vec![1]);
    let step_down = sim
        .actions_of(0, secs(0))
        .into_iter()
        .find(|(_, a)| {
            matches!(
                a,
                Action::StateChanged {
                    to: State::Backup,
                    reason: Reason::HigherAddress { .. },
                    ..
                }
            )
        })
        .map(|(t, _)| t);
    assert_eq!(step_down, Some(us(MDI_100 + LINK)));
}

#[test]
fn rfc5798_6_4_2_master_disappears_next_takes_over_after_master_down_interval() {
    let mut sim = Sim::started(vec![config(100, 11), config(200, 12)], 4, ms(10_500));
    assert_eq!(sim.masters(), vec![1]);
    sim.crash(1);
    sim.run_until(secs(30));
    let last = sim.last_heard(0, 1).expect("heard the master");
    // The master advertised at 3.21875 s + k s; the last one (10.21875 s) arrived 1 ms later.
    assert_eq!(last, us(10_218_750 + LINK));
    let mdi = master_down_interval(vipd::proto::Version::V3, 100, vipd::proto::Centis(100));
    assert_eq!(mdi, us(MDI_100));
    assert_eq!(sim.became_master(0, secs(0)), vec![last + mdi]);
    assert_eq!(sim.masters(), vec![0]);
    let reason = sim
        .actions_of(0, secs(0))
        .into_iter()
        .find_map(|(_, a)| match a {
            Action::StateChanged {
                to: State::Master,
                reason,
                ..
            } => Some(reason),
            _ => None,
        })
        .expect("takeover");
    assert_eq!(reason.to_string(), "no advert from 192.0.2.12 for 3.61 s");
}

#[test]
fn rfc5798_6_4_3_graceful_shutdown_is_make_before_break() {
    // 0: priority 200 (master), 1: 150, 2: 100.
    let mut sim = Sim::started(
        vec![config(200, 12), config(150, 13), config(100, 11)],
        5,
        ms(10_500),
    );
    assert_eq!(sim.masters(), vec![0]);
    sim.command(0, |r, now| r.shutdown(now));
    sim.run_until(secs(30));
    // §6.4.2: the priority-0 advert arrives at 10.501 s; the backup fires Skew_Time later.
    let zero_heard = us(10_500_000 + LINK);
    assert_eq!(
        sim.became_master(1, secs(10)),
        vec![zero_heard + us(SKEW_150)]
    );
    assert!(sim.became_master(2, secs(10)).is_empty());
    // The old master removes its VIPs only after it hears the new master (1 ms later)
    // and the grace period that lets the new master's announcement go first.
    let released = zero_heard + us(SKEW_150 + LINK) + RELEASE_GRACE;
    let old: Vec<_> = sim
        .actions_of(0, ms(10_500))
        .into_iter()
        .filter(|(_, a)| !matches!(a, Action::SendAdvert(_)))
        .collect();
    assert_eq!(
        old,
        vec![
            (ms(10_500), Action::StopAnnouncing),
            (released, Action::RemoveVips),
            (
                released,
                Action::StateChanged {
                    from: State::Master,
                    to: State::Init,
                    reason: Reason::Shutdown
                }
            ),
            (released, Action::Released),
        ]
    );
    assert!(
        sim.gaps.is_empty(),
        "no instant without VIPs: {:?}",
        sim.gaps
    );
    sim.assert_sole_master(1);
}

/// Routers 0 (priority 200, master) and 1 (100), settled for 10.5 s, then partitioned
/// from each other until `t`.
fn partitioned_until(seed: u64, t: Duration) -> Sim {
    let mut sim = Sim::started(vec![config(200, 12), config(100, 11)], seed, ms(10_500));
    sim.partition(&[&[0], &[1]]);
    sim.run_until(t);
    sim
}

#[test]
fn rfc9568_partition_heal_leaves_one_master_and_reannounces() {
    let mut sim = partitioned_until(6, ms(20_500));
    // The backup's takeover is exact: last advert heard (10.21975 s) + MDI.
    assert_eq!(
        sim.became_master(1, secs(0)),
        vec![us(10_218_750 + LINK + MDI_100)]
    );
    assert_eq!(sim.masters(), vec![0, 1], "split brain");
    assert_eq!(sim.holders(), vec![0, 1]);
    let heal = sim.now;
    sim.heal();
    sim.run_for(secs(1));
    assert_eq!(
        sim.masters(),
        vec![0],
        "one master within one advert interval"
    );
    assert_eq!(sim.holders(), vec![0]);
    // The loser (adverts at x.829125 s) is heard by the winner, which advertises at
    // once and re-announces; the loser steps down on that advert 1 ms later.
    let loser_advert = us(20_829_125);
    let healed: Vec<_> = sim
        .actions_of(0, heal)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Announce { .. }))
        .collect();
    // Not again for the loser's last advert as it steps down 2 ms later: at most one
    // re-announcement per Master_Down_Interval.
    let announce = Action::Announce {
        reason: AnnounceReason::SplitBrainHealed,
    };
    assert_eq!(healed, vec![(loser_advert + us(LINK), announce)]);
    let loser: Vec<_> = sim
        .actions_of(1, heal)
        .into_iter()
        .filter(|(_, a)| !matches!(a, Action::SendAdvert(_)))
        .collect();
    assert_eq!(loser.len(), 2, "{loser:?}");
    assert_eq!(loser[0], (loser_advert + us(2 * LINK), Action::RemoveVips));
    assert!(matches!(
        &loser[1].1,
        Action::StateChanged {
            from: State::Master,
            to: State::Backup,
            reason: Reason::HigherPriority { priority: 200, .. }
        }
    ));
    sim.run_for(secs(30));
    assert_eq!(sim.masters(), vec![0]);
}

#[test]
fn rfc5798_6_4_2_preempt_off_returning_higher_priority_stays_backup() {
    let mut hi = config(200, 12);
    hi.preempt = false;
    let mut sim = Sim::new(vec![hi, config(100, 11)], 7);
    sim.start(1);
    sim.run_until(ms(10_500));
    assert_eq!(sim.masters(), vec![1]);
    sim.start(0);
    sim.run_until(secs(60));
    assert_eq!(sim.state(0), State::Backup);
    assert_eq!(sim.masters(), vec![1]);
    assert_eq!(sim.nodes[0].router.master_addr(), Some(v4(11)));
}

#[test]
fn rfc5798_6_4_2_preempt_on_returning_higher_priority_takes_over() {
    let mut sim = Sim::new(vec![config(200, 12), config(100, 11)], 8);
    sim.start(1);
    sim.run_until(ms(10_500));
    assert_eq!(sim.masters(), vec![1]);
    sim.start(0);
    sim.run_until(secs(60));
    // It ignores the lower master's adverts, so its startup timer runs out.
    let preempted = us(10_500_000 + MDI_200);
    assert_eq!(sim.became_master(0, secs(0)), vec![preempted]);
    // Make before break: node 0 claims and announces at once, advertises RELEASE_GRACE
    // later, and the old master drops the VIPs when that advert arrives (LINK later).
    let first_advert = sim
        .actions_of(0, preempted)
        .into_iter()
        .find(|(_, a)| matches!(a, Action::SendAdvert(_)))
        .map(|(t, _)| t);
    assert_eq!(first_advert, Some(preempted + RELEASE_GRACE));
    let dropped = sim
        .actions_of(1, preempted)
        .into_iter()
        .find(|(_, a)| *a == Action::RemoveVips)
        .map(|(t, _)| t);
    assert_eq!(dropped, Some(preempted + RELEASE_GRACE + us(LINK)));
    sim.assert_sole_master(0);
    assert!(sim.gaps.is_empty());
}

#[test]
fn maintenance_hands_over_without_gap_and_comes_back_with_preempt() {
    let mut sim = Sim::started(vec![config(200, 12), config(150, 13)], 9, ms(10_500));
    assert_eq!(sim.masters(), vec![0]);
    sim.command(0, |r, now| r.set_maintenance(now, true));
    sim.run_until(ms(20_500));
    let takeover = us(10_500_000 + LINK + SKEW_150);
    assert_eq!(sim.became_master(1, secs(10)), vec![takeover]);
    assert_eq!(sim.masters(), vec![1]);
    assert_eq!(sim.state(0), State::Backup);
    assert_eq!(sim.nodes[0].router.effective_priority(), 1);
    sim.command(0, |r, now| r.set_maintenance(now, false));
    sim.run_until(secs(40));
    // Back at 200 it ignores the 150 master; its timer was last reset at priority 1
    // by the advert heard at 19.916062 s: MDI(priority 1) = 3 s + 255/256 s.
    let last_accepted = takeover + secs(9) + us(LINK);
    assert_eq!(
        sim.became_master(0, ms(20_500)),
        vec![last_accepted + us(3_996_093)]
    );
    assert_eq!(sim.masters(), vec![0]);
    assert!(sim.gaps.is_empty(), "gaps: {:?}", sim.gaps);
}

#[test]
fn random_loss_ten_percent_three_routers_ten_thousand_intervals() {
    // Bound: a backup takes over only when it misses the master's adverts for
    // Master_Down_Interval > 3 intervals, i.e. 3 consecutive losses: p = 0.1^3 =
    // 0.001 per interval per backup. With 2 backups over 10,000 intervals we expect
    // about 2 * 10,000 * 0.001 = 20 spurious takeovers (somewhat fewer, as a run of
    // losses must start with a delivered advert). Each is undone within about one
    // interval (the master hears the usurper, or the usurper hears the master).
    let mut sim = Sim::new(
        vec![config(200, 12), config(150, 13), config(100, 11)],
        0x5eed,
    );
    sim.start_all();
    sim.run_until(secs(5));
    assert_eq!(sim.masters(), vec![0]);
    sim.loss_ppm = 100_000;
    let t_loss = sim.now;
    sim.run_for(secs(10_000));
    let transitions = sim.master_transitions(t_loss);
    println!(
        "10% loss, 10,000 intervals: {transitions} transitions to master, {} adverts lost",
        sim.lost
    );
    assert!(sim.lost > 1_000, "loss is applied");
    assert!(
        (3..=60).contains(&transitions),
        "{transitions} transitions to master"
    );
    sim.loss_ppm = 0;
    sim.run_for(secs(10));
    sim.assert_sole_master(0);
}

/// The other order: after the heal the winner's advert crosses first, so the loser
/// steps down without the winner ever having heard it during the split. The loser's
/// last advert on stepping down makes the winner re-announce anyway.
#[test]
fn rfc9568_partition_heal_winner_first_still_reannounces() {
    let mut sim = partitioned_until(8, ms(20_000));
    assert_eq!(sim.masters(), vec![0, 1], "split brain");
    // Heal 1 ms before the winner's next advert, long after the loser's last one.
    let last_advert = |node: usize| {
        let sent = sim.actions_of(node, ms(19_000)).into_iter();
        let adverts = sent.filter(|(_, a)| matches!(a, Action::SendAdvert(_)));
        adverts.map(|(t, _)| t).next_back()
    };
    let winner_last = last_advert(0).expect("the winner advertises");
    let loser_last = last_advert(1).expect("the loser advertises");
    let next_winner = winner_last + secs(1);
    let next_loser = loser_last + secs(1);
    assert!(next_winner < next_loser, "the winner must advertise first");
    sim.run_until(next_winner - ms(1));
    let heal = sim.now;
    sim.heal();
    sim.run_for(secs(1));
    sim.assert_sole_master(0);
    let healed: Vec<_> = sim
        .actions_of(0, heal)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Announce { .. }))
        .collect();
    // Winner advertises at next_winner; the loser hears it (+1 ms), steps down with a
    // last advert that the winner hears (+2 ms) and re-announces.
    assert_eq!(
        healed,
        vec![(
            next_winner + us(2 * LINK),
            Action::Announce {
                reason: AnnounceReason::SplitBrainHealed
            }
        )]
    );
}
