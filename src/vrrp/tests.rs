//! Unit tests of the state machine, one rule each, named by RFC section.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::proto::{Advert, Centis, Version};

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const PEER_HI: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
const PEER_LO: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
const SEC: Centis = Centis(100);

fn cfg(priority: u8) -> RouterConfig {
    RouterConfig {
        vrid: 51,
        version: Version::V3,
        priority,
        advert_interval: SEC,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_addr: ME,
        vips: vec![VIP],
        unicast_peers: vec![],
    }
}

fn adv(priority: u8, interval: Centis) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval,
        addrs: vec![VIP],
    }
}

/// `r` hears a valid advert from `from` at `priority` (1 s, TTL 255) and accepts it.
fn hear(r: &mut Router, at: Instant, from: IpAddr, priority: u8) {
    r.handle_advert(at, from, 255, &adv(priority, SEC))
        .expect("accepted");
}

fn drain(r: &mut Router) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn changed(from: State, to: State, reason: Reason) -> Action {
    Action::StateChanged { from, to, reason }
}

fn takeover_actions(priority: u8, reason: Reason, from: State) -> Vec<Action> {
    vec![
        Action::SendAdvert(adv(priority, SEC)),
        Action::AddVips,
        Action::Announce {
            reason: AnnounceReason::Takeover,
        },
        changed(from, State::Master, reason),
    ]
}

/// A started backup at `priority`.
fn backup(priority: u8, t0: Instant) -> Router {
    let mut r = Router::new(cfg(priority));
    r.start(t0);
    let _ = drain(&mut r);
    assert_eq!(r.state(), State::Backup);
    r
}

/// A master at `priority` (became master by timeout at t0 + MDI); returns the instant.
fn master(priority: u8, t0: Instant) -> (Router, Instant) {
    let mut r = backup(priority, t0);
    let t = r.poll_timeout().expect("master-down timer");
    r.handle_timeout(t);
    let _ = drain(&mut r);
    assert_eq!(r.state(), State::Master);
    (r, t)
}

// ----- §6.1 timers --------------------------------------------------------------

#[test]
fn rfc5798_6_1_skew_time_is_computed_in_microseconds_rounded_down() {
    // (256 - 100) * 1 s / 256 = 0.609375 s exactly.
    assert_eq!(skew_time(Version::V3, 100, SEC), us(609_375));
    // (256 - 255) * 1 s / 256 = 3906.25 us -> 3906 us.
    assert_eq!(skew_time(Version::V3, 255, SEC), us(3_906));
    // (256 - 1) * 40.95 s / 256 = 40_790_039.0625 us -> 40_790_039 us.
    assert_eq!(skew_time(Version::V3, 1, Centis(4095)), us(40_790_039));
    // Neighbouring priorities keep distinct skews even at 10 ms (whole centiseconds would not).
    assert_ne!(
        skew_time(Version::V3, 200, Centis(1)),
        skew_time(Version::V3, 201, Centis(1))
    );
}

#[test]
fn rfc5798_6_1_master_down_interval_is_three_intervals_plus_skew() {
    assert_eq!(master_down_interval(Version::V3, 100, SEC), us(3_609_375));
    assert_eq!(
        master_down_interval(Version::V3, 200, Centis(10)),
        ms(300) + us(21_875)
    );
}

#[test]
fn rfc3768_6_1_v2_skew_time_is_seconds_independent_of_interval() {
    // RFC 3768: Skew_Time = (256 - Priority) / 256 seconds.
    assert_eq!(skew_time(Version::V2, 100, Centis(300)), us(609_375));
    assert_eq!(skew_time(Version::V2, 100, SEC), us(609_375));
    assert_eq!(
        master_down_interval(Version::V2, 100, Centis(300)),
        us(9_609_375)
    );
}

// ----- §6.4.1 startup -------------------------------------------------------------

#[test]
fn rfc5798_6_4_1_new_router_does_nothing_until_started() {
    let mut r = Router::new(cfg(100));
    assert_eq!(r.state(), State::Init);
    assert_eq!(r.poll_action(), None);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn rfc5798_6_4_1_address_owner_becomes_master_at_once() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(255));
    r.start(t0);
    assert_eq!(
        drain(&mut r),
        takeover_actions(255, Reason::AddressOwner, State::Init)
    );
    assert_eq!(r.state(), State::Master);
    assert_eq!(r.master_addr(), Some(ME));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(1000)));
}

#[test]
fn rfc5798_6_4_1_startup_below_255_enters_backup_with_master_down_timer() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100));
    r.start(t0);
    assert_eq!(
        drain(&mut r),
        vec![changed(State::Init, State::Backup, Reason::Startup)]
    );
    assert_eq!(r.master_adver_interval(), SEC);
    assert_eq!(r.poll_timeout(), Some(t0 + us(3_609_375)));
    assert_eq!(r.master_addr(), None);
    // start() twice is a no-op.
    r.start(t0 + ms(5));
    assert_eq!(r.poll_action(), None);
}

#[test]
fn rfc5798_6_4_3_master_sends_an_advert_every_advertisement_interval() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(255));
    r.start(t0);
    let _ = drain(&mut r);
    for k in 1..=5u64 {
        let t = r.poll_timeout().expect("adver timer");
        assert_eq!(t, t0 + ms(1000 * k));
        // Early calls do nothing.
        r.handle_timeout(t - ms(1));
        assert_eq!(r.poll_action(), None);
        r.handle_timeout(t);
        assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(255, SEC))]);
    }
}

// ----- §6.4.2 backup --------------------------------------------------------------

#[test]
fn rfc5798_6_4_2_backup_master_down_expiry_becomes_master() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    let t1 = t0 + ms(500);
    assert_eq!(r.handle_advert(t1, PEER_HI, 255, &adv(200, SEC)), Ok(()));
    assert_eq!(r.master_addr(), Some(PEER_HI));
    let expiry = t1 + us(3_609_375);
    assert_eq!(r.poll_timeout(), Some(expiry));
    r.handle_timeout(expiry - us(1));
    assert_eq!(r.poll_action(), None);
    r.handle_timeout(expiry);
    let reason = Reason::MasterDown {
        master: Some(PEER_HI),
        silent_for: us(3_609_375),
    };
    assert_eq!(reason.to_string(), "no advert from 192.0.2.12 for 3.61 s");
    assert_eq!(drain(&mut r), takeover_actions(100, reason, State::Backup));
    assert_eq!(r.master_addr(), Some(ME));
}

#[test]
fn rfc5798_6_4_2_backup_priority_zero_sets_skew_timer() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    hear(&mut r, t0 + ms(100), PEER_HI, 200);
    let t1 = t0 + ms(700);
    hear(&mut r, t1, PEER_HI, 0);
    assert_eq!(r.poll_timeout(), Some(t1 + us(609_375)));
    r.handle_timeout(t1 + us(609_375));
    let acts = drain(&mut r);
    assert_eq!(
        acts.last(),
        Some(&changed(
            State::Backup,
            State::Master,
            Reason::MasterReleased { master: PEER_HI }
        ))
    );
    assert_eq!(
        Reason::MasterReleased { master: PEER_HI }.to_string(),
        "priority 0 from master 192.0.2.12"
    );
}

#[test]
fn rfc5798_6_4_2_backup_adopts_the_advertised_interval_v3() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    r.handle_advert(t0, PEER_HI, 255, &adv(200, Centis(200)))
        .expect("accepted");
    assert_eq!(r.master_adver_interval(), Centis(200));
    // 3 * 2 s + 156 * 2 s / 256 = 6 s + 1.21875 s
    assert_eq!(r.master_down_interval(), ms(7_218) + us(750));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(7_218) + us(750)));
    assert_eq!(r.skew_time(), ms(1_218) + us(750));
}

#[test]
fn rfc3768_7_1_v2_advert_with_another_interval_is_dropped() {
    let t0 = Instant::now();
    let mut c = cfg(100);
    c.version = Version::V2;
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    let before = r.poll_timeout();
    let mut a = adv(200, Centis(200));
    a.version = Version::V2;
    let e = r.handle_advert(t0 + ms(10), PEER_HI, 255, &a);
    assert_eq!(
        e,
        Err(RecvDrop::IntervalMismatch {
            ours: SEC,
            theirs: Centis(200)
        })
    );
    assert_eq!(e.map_err(|d| d.label()), Err("interval_mismatch"));
    assert_eq!(r.poll_timeout(), before);
    // The same interval is accepted; v2 keeps its own interval.
    a.interval = SEC;
    assert_eq!(r.handle_advert(t0 + ms(10), PEER_HI, 255, &a), Ok(()));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(10) + us(3_609_375)));
}

#[test]
fn rfc5798_6_4_2_preempt_off_accepts_a_lower_priority_master() {
    let t0 = Instant::now();
    let mut c = cfg(200);
    c.preempt = false;
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    for k in 0..20u64 {
        let t = t0 + ms(1000 * k);
        hear(&mut r, t, PEER_LO, 100);
        if let Some(due) = r.poll_timeout() {
            if due <= t {
                r.handle_timeout(t);
            }
        }
    }
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.master_addr(), Some(PEER_LO));
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + ms(19_000) + us(3_000_000 + 218_750))
    );
}

#[test]
fn rfc5798_6_4_2_preempt_ignores_a_lower_priority_master_and_takes_over() {
    let t0 = Instant::now();
    let mut r = backup(200, t0);
    let first = t0 + us(3_218_750); // our Master_Down_Interval at priority 200
                                    // The lower master's adverts do not reset the timer.
    for k in 0..3u64 {
        hear(&mut r, t0 + ms(1000 * k), PEER_LO, 100);
    }
    assert_eq!(r.poll_timeout(), Some(first));
    r.handle_timeout(first);
    let reason = Reason::Preempting {
        master: PEER_LO,
        priority: 100,
    };
    assert_eq!(
        reason.to_string(),
        "preempting lower priority 100 from 192.0.2.10"
    );
    // The old master drops the VIPs as soon as it hears our advert (a backup must not
    // accept packets for them, §6.4.2). So we claim and announce them first, and send
    // our first advert RELEASE_GRACE later, when clients have followed the announcement:
    // make-before-break, as on a release.
    assert_eq!(
        drain(&mut r),
        vec![
            Action::AddVips,
            Action::Announce {
                reason: AnnounceReason::Takeover,
            },
            changed(State::Backup, State::Master, reason),
        ]
    );
    assert_eq!(r.poll_timeout(), Some(first + RELEASE_GRACE));
    // The old master's adverts meanwhile are expected: no advert out of turn.
    hear(&mut r, first + ms(50), PEER_LO, 100);
    assert_eq!(r.poll_action(), None);
    r.handle_timeout(first + RELEASE_GRACE);
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(200, SEC))]);
    assert_eq!(r.poll_timeout(), Some(first + RELEASE_GRACE + ms(1000)));
    // From then on a lower-priority master is answered at once (RFC 9568).
    hear(&mut r, first + RELEASE_GRACE + ms(10), PEER_LO, 100);
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(200, SEC))]);
}

#[test]
fn a_higher_priority_heard_while_claiming_a_preemption_steps_down() {
    let t0 = Instant::now();
    let mut r = backup(200, t0);
    hear(&mut r, t0, PEER_LO, 100);
    let first = t0 + us(3_218_750);
    r.handle_timeout(first);
    let _ = drain(&mut r);
    hear(&mut r, first + ms(20), PEER_HI, 250);
    let acts = drain(&mut r);
    assert!(acts.contains(&Action::RemoveVips), "{acts:?}");
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.master_addr(), Some(PEER_HI));
}

#[test]
fn rfc5798_6_4_2_preempt_delay_accepts_lower_master_until_it_has_passed() {
    let t0 = Instant::now();
    let mut c = cfg(200);
    c.preempt_delay = Duration::from_secs(10);
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    let mut t = t0;
    let mut last_accepted = t0;
    while r.state() == State::Backup {
        t += ms(1000);
        if r.poll_timeout().is_some_and(|d| d <= t) {
            r.handle_timeout(r.poll_timeout().expect("timer"));
            break;
        }
        let before = r.poll_timeout();
        hear(&mut r, t, PEER_LO, 100);
        if r.poll_timeout() != before {
            last_accepted = t;
        }
    }
    // Accepted while less than 10 s since entering Backup (t0 + 1 s ..= t0 + 9 s).
    assert_eq!(last_accepted, t0 + ms(9_000));
    assert_eq!(r.state(), State::Master);
    let acts = drain(&mut r);
    assert!(acts.contains(&changed(
        State::Backup,
        State::Master,
        Reason::Preempting {
            master: PEER_LO,
            priority: 100
        }
    )));
}

#[test]
fn rfc5798_6_4_2_backup_whose_priority_rises_preempts() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    hear(&mut r, t0, PEER_HI, 150);
    let t1 = t0 + ms(1000);
    hear(&mut r, t1, PEER_HI, 150);
    assert_eq!(r.poll_timeout(), Some(t1 + us(3_609_375)));
    r.set_base_priority(t1, 180);
    assert_eq!(r.effective_priority(), 180);
    assert_eq!(
        r.poll_action(),
        None,
        "no StateChanged for a priority change"
    );
    // The master's adverts are now lower: ignored, so the timer set at t1 runs out.
    hear(&mut r, t1 + ms(1000), PEER_HI, 150);
    hear(&mut r, t1 + ms(2000), PEER_HI, 150);
    assert_eq!(r.poll_timeout(), Some(t1 + us(3_609_375)));
    r.handle_timeout(t1 + us(3_609_375));
    assert_eq!(r.state(), State::Master);
}

// ----- §6.4.3 master --------------------------------------------------------------

#[test]
fn rfc5798_6_4_3_master_priority_zero_sends_advert_at_once() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    let t1 = tm + ms(300);
    hear(&mut r, t1, PEER_HI, 0);
    // The advert at once (§6.4.3), and (ours) a re-announcement: the router that left
    // may have claimed the VIPs without ever advertising (a preemption stopped between
    // its claim and its first advert), pulling clients to a host that drops them.
    assert_eq!(
        drain(&mut r),
        vec![
            Action::SendAdvert(adv(100, SEC)),
            Action::Announce {
                reason: AnnounceReason::PeerLeft
            }
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t1 + ms(1000)));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn master_answers_a_flood_of_priority_zero_once_per_advert_interval() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    let t1 = tm + ms(300);
    let mut adverts = 0;
    let mut announces = 0;
    // 65,000 packets a second for 5 s, as a stranger's flood would be.
    for k in 0..325_000u64 {
        let t = t1 + us(k * 1_000_000 / 65_000);
        hear(&mut r, t, PEER_HI, 0);
        for a in drain(&mut r) {
            match a {
                Action::SendAdvert(_) => adverts += 1,
                Action::Announce { .. } => announces += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // One answer per advert interval (1 s) over 5 s; the Adver_Timer (not fired here)
    // would add its own. One re-announcement per Master_Down_Interval (3.6 s).
    assert_eq!(adverts, 5, "out-of-turn adverts");
    assert_eq!(announces, 2, "re-announcements");
    assert_eq!(r.state(), State::Master);
}

#[test]
fn master_answers_a_flood_of_lower_priority_once_per_advert_interval() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    let t1 = tm + r.master_down_interval() + ms(1);
    let mut adverts = 0;
    for k in 0..65_000u64 {
        let t = t1 + us(k * 1_000_000 / 65_000);
        hear(&mut r, t, PEER_HI, 100);
        adverts += drain(&mut r)
            .iter()
            .filter(|a| matches!(a, Action::SendAdvert(_)))
            .count();
    }
    assert_eq!(adverts, 1, "one answer in one advert interval");
    assert_eq!(r.state(), State::Master);
}

#[test]
fn master_hearing_priority_zero_while_claiming_does_not_reannounce() {
    // Preempting a live master: its last adverts before it hears ours are expected, and
    // so is its priority 0 if it is stopping; our own takeover announcement just went out.
    let t0 = Instant::now();
    let mut r = backup(200, t0);
    hear(&mut r, t0, PEER_LO, 100);
    let due = r.poll_timeout().expect("timer");
    r.handle_timeout(due);
    let _ = drain(&mut r);
    hear(&mut r, due + ms(10), PEER_LO, 0);
    assert!(!drain(&mut r)
        .iter()
        .any(|a| matches!(a, Action::Announce { .. })));
}

#[test]
fn rfc5798_6_4_3_master_steps_down_on_higher_priority() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    let t1 = tm + ms(300);
    r.handle_advert(t1, PEER_LO, 255, &adv(101, Centis(50)))
        .expect("ok");
    let reason = Reason::HigherPriority {
        from: PEER_LO,
        priority: 101,
    };
    assert_eq!(reason.to_string(), "192.0.2.10 has higher priority 101");
    assert_eq!(
        drain(&mut r),
        vec![
            // vipd's last advert on stepping down (see Router::master_rx).
            Action::SendAdvert(adv(100, Centis(100))),
            Action::RemoveVips,
            changed(State::Master, State::Backup, reason)
        ]
    );
    // §6.4.3: Master_Adver_Interval = the advert's; Master_Down_Timer armed with it.
    assert_eq!(r.master_adver_interval(), Centis(50));
    assert_eq!(r.poll_timeout(), Some(t1 + ms(1500) + us(304_687)));
    assert_eq!(r.master_addr(), Some(PEER_LO));
}

#[test]
fn rfc5798_6_4_3_equal_priority_higher_primary_address_wins() {
    let t0 = Instant::now();
    // Equal priority from a higher address: step down.
    let (mut r, tm) = master(100, t0);
    hear(&mut r, tm, PEER_HI, 100);
    assert_eq!(r.state(), State::Backup);
    assert!(drain(&mut r).contains(&changed(
        State::Master,
        State::Backup,
        Reason::HigherAddress {
            from: PEER_HI,
            priority: 100
        }
    )));
    // Equal priority from a lower address: stay, advertise.
    let (mut r, tm) = master(100, t0);
    hear(&mut r, tm, PEER_LO, 100);
    assert_eq!(r.state(), State::Master);
}

#[test]
fn rfc5798_6_4_3_addresses_compare_as_unsigned_big_endian_ipv6() {
    let t0 = Instant::now();
    let me: IpAddr = "fe80::9".parse::<Ipv6Addr>().expect("addr").into();
    let hi: IpAddr = "fe80::1:0".parse::<Ipv6Addr>().expect("addr").into();
    let mut c = cfg(100);
    c.primary_addr = me;
    c.vips = vec!["fe80::100".parse::<Ipv6Addr>().expect("addr").into()];
    let mut r = Router::new(c);
    r.start(t0);
    let t = r.poll_timeout().expect("timer");
    r.handle_timeout(t);
    let _ = drain(&mut r);
    let mut a = adv(100, SEC);
    a.addrs = vec!["fe80::100".parse::<Ipv6Addr>().expect("addr").into()];
    r.handle_advert(t, hi, 255, &a).expect("ok");
    assert_eq!(r.state(), State::Backup);
    // A v4 source on a v6 router is dropped.
    assert_eq!(
        r.handle_advert(t, PEER_HI, 255, &a),
        Err(RecvDrop::FamilyMismatch)
    );
}

#[test]
fn rfc9568_6_4_3_master_hearing_lower_priority_advertises_and_reannounces() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    // Right after the takeover a lower priority is the old master stepping down: an
    // advert at once (RFC 9568), but no re-announcement (ours just went out).
    hear(&mut r, tm + ms(1), PEER_HI, 100);
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(200, SEC))]);
    // A master of standing (>= Master_Down_Interval) hearing a lower priority is
    // healing a split brain: advert at once and re-announce.
    let t1 = tm + r.master_down_interval() + ms(420);
    hear(&mut r, t1, PEER_HI, 100);
    assert_eq!(
        drain(&mut r),
        vec![
            Action::SendAdvert(adv(200, SEC)),
            Action::Announce {
                reason: AnnounceReason::SplitBrainHealed
            },
        ]
    );
    assert_eq!(r.state(), State::Master);
    assert_eq!(r.poll_timeout(), Some(t1 + ms(1000)));
    // One-way loss: the other master keeps advertising. At most one advert out of
    // turn per advert interval, and one re-announcement per Master_Down_Interval.
    let t2 = t1 + ms(100);
    hear(&mut r, t2, PEER_HI, 100);
    assert_eq!(drain(&mut r), vec![]);
    let t2b = t1 + ms(1000);
    hear(&mut r, t2b, PEER_HI, 100);
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(200, SEC))]);
    let t3 = t1 + r.master_down_interval();
    hear(&mut r, t3, PEER_HI, 100);
    assert!(drain(&mut r).contains(&Action::Announce {
        reason: AnnounceReason::SplitBrainHealed
    }));
}

// ----- §7.1 receive checks -----------------------------------------------------------

#[test]
fn rfc5798_7_1_ttl_other_than_255_is_dropped_without_effect() {
    let t0 = Instant::now();
    for state_master in [false, true] {
        let mut r = if state_master {
            master(100, t0).0
        } else {
            backup(100, t0)
        };
        let before = (r.state(), r.poll_timeout());
        for ttl in [0u8, 1, 64, 254] {
            let e = r.handle_advert(t0, PEER_HI, ttl, &adv(250, SEC));
            assert_eq!(e, Err(RecvDrop::TtlNot255 { ttl }));
            assert_eq!(e.map_err(|d| d.label()), Err("ttl_not_255"));
        }
        assert_eq!((r.state(), r.poll_timeout()), before);
        assert_eq!(r.poll_action(), None);
    }
}

#[test]
fn unicast_peers_only_configured_sources_take_part() {
    let t0 = Instant::now();
    let mut c = cfg(100);
    c.unicast_peers = vec![PEER_LO];
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    let before = r.poll_timeout();
    // A forged priority-255 advert from a host that is not a peer changes nothing.
    let e = r.handle_advert(t0 + ms(10), PEER_HI, 255, &adv(255, SEC));
    assert_eq!(e, Err(RecvDrop::UnknownPeer));
    assert_eq!(e.map_err(|d| d.label()), Err("unknown_peer"));
    assert_eq!((r.state(), r.poll_timeout()), (State::Backup, before));
    // The peer is heard as usual: its advert resets the master-down timer.
    r.handle_advert(t0 + ms(20), PEER_LO, 255, &adv(200, SEC))
        .expect("a peer's advert is accepted");
    assert_eq!(r.master_addr(), Some(PEER_LO));
    assert_ne!(r.poll_timeout(), before);
}

#[test]
fn rfc5798_7_1_other_vrid_and_version_are_dropped() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    let mut a = adv(250, SEC);
    a.vrid = 52;
    assert_eq!(
        r.handle_advert(tm, PEER_HI, 255, &a),
        Err(RecvDrop::OtherVrid { vrid: 52 })
    );
    let mut a = adv(250, SEC);
    a.version = Version::V2;
    assert_eq!(
        r.handle_advert(tm, PEER_HI, 255, &a),
        Err(RecvDrop::VersionMismatch)
    );
    assert_eq!(
        r.handle_advert(tm, ME, 255, &adv(250, SEC)),
        Err(RecvDrop::FromSelf)
    );
    // A zero interval never reaches the router: Advert::parse drops it as
    // `interval_zero` (tests/proto_vrrp.rs rfc5798_5_2_7_interval_zero).
    assert_eq!(r.state(), State::Master);
    assert_eq!(r.poll_action(), None);
    assert_eq!(RecvDrop::OtherVrid { vrid: 1 }.label(), "other_vrid");
    assert_eq!(RecvDrop::VersionMismatch.label(), "version_mismatch");
}

#[test]
fn rfc5798_7_1_address_list_mismatch_is_counted_not_dropped() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    let mut a = adv(200, SEC);
    a.addrs.push(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101)));
    assert_eq!(r.handle_advert(t0, PEER_HI, 255, &a), Ok(()));
    assert_eq!(r.address_list_mismatches(), 1);
    assert_eq!(r.master_addr(), Some(PEER_HI));
}

// ----- priorities ---------------------------------------------------------------------

#[test]
fn rfc5798_6_1_address_owner_priority_cannot_be_moved() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(255));
    r.set_override(t0, Some(10));
    r.set_penalty(t0, 500);
    r.set_maintenance(t0, true);
    assert_eq!(r.effective_priority(), 255);
    assert_eq!(r.base_priority(), 255);
}

#[test]
fn effective_priority_override_penalty_and_maintenance() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100));
    assert_eq!(r.effective_priority(), 100);
    r.set_penalty(t0, 30);
    assert_eq!(r.effective_priority(), 70);
    r.set_override(t0, Some(250));
    assert_eq!(r.effective_priority(), 220);
    r.set_override(t0, Some(255)); // clamped to 254
    assert_eq!(r.override_priority(), Some(254));
    r.set_penalty(t0, 0);
    assert_eq!(r.effective_priority(), 254);
    r.set_penalty(t0, u32::MAX);
    assert_eq!(r.effective_priority(), 1);
    r.set_penalty(t0, 0);
    r.set_maintenance(t0, true);
    assert_eq!(r.effective_priority(), 1);
    r.set_maintenance(t0, false);
    r.set_override(t0, None);
    assert_eq!(r.effective_priority(), 100);
    r.set_base_priority(t0, 0);
    assert_eq!(r.base_priority(), 1);
}

#[test]
fn master_priority_change_takes_effect_in_the_next_advert() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    r.set_base_priority(tm, 100);
    r.set_penalty(tm, 40);
    assert_eq!(r.poll_action(), None);
    r.handle_timeout(tm + ms(1000));
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(60, SEC))]);
}

// ----- fault ------------------------------------------------------------------------

#[test]
fn fault_from_master_sends_priority_zero_and_removes_vips() {
    let t0 = Instant::now();
    let (mut r, tm) = master(100, t0);
    r.set_fault(tm, Some("eth0 down".into()));
    let reason = Reason::Fault("eth0 down".into());
    assert_eq!(reason.to_string(), "fault: eth0 down");
    assert_eq!(
        drain(&mut r),
        vec![
            Action::SendAdvert(adv(0, SEC)),
            Action::RemoveVips,
            changed(State::Master, State::Fault, reason),
        ]
    );
    assert_eq!(r.poll_timeout(), None);
    // Adverts are ignored; staying in Fault emits nothing.
    assert_eq!(r.handle_advert(tm, PEER_LO, 255, &adv(1, SEC)), Ok(()));
    r.set_fault(tm, Some("still down".into()));
    assert_eq!(r.poll_action(), None);
    assert_eq!(r.fault(), Some("still down"));
    // Leaving Fault: Init, then the startup rules.
    let t2 = tm + ms(5000);
    r.set_fault(t2, None);
    assert_eq!(
        drain(&mut r),
        vec![
            changed(State::Fault, State::Init, Reason::FaultCleared),
            changed(State::Init, State::Backup, Reason::Startup),
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t2 + us(3_609_375)));
}

#[test]
fn fault_before_start_waits_for_start() {
    let t0 = Instant::now();
    let mut r = Router::new(cfg(100));
    r.set_fault(t0, Some("no link".into()));
    r.start(t0);
    assert_eq!(r.state(), State::Fault);
    r.set_fault(t0, None);
    assert_eq!(r.state(), State::Backup);
}

// ----- shutdown (make-before-break) --------------------------------------------------

#[test]
fn rfc5798_6_4_3_shutdown_master_keeps_vips_until_new_master_heard() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    r.shutdown(tm);
    // Pending announcement rounds stop first: a gratuitous ARP sent after the new
    // master's would pull clients back to us just before we drop the VIPs.
    assert_eq!(
        drain(&mut r),
        vec![Action::StopAnnouncing, Action::SendAdvert(adv(0, SEC))]
    );
    assert_eq!(r.state(), State::Master);
    assert!(r.is_releasing());
    // Priority-0 adverts continue every interval, VIPs kept.
    r.handle_timeout(tm + ms(1000));
    assert_eq!(drain(&mut r), vec![Action::SendAdvert(adv(0, SEC))]);
    // Another router leaving (priority 0) is not a new master.
    hear(&mut r, tm + ms(1100), PEER_HI, 0);
    assert_eq!(r.poll_action(), None);
    // The new master is heard (any priority above 0): VIPs kept for RELEASE_GRACE
    // more, so that its announcement reaches clients first.
    hear(&mut r, tm + ms(1200), PEER_LO, 100);
    assert_eq!(r.poll_action(), None);
    assert_eq!(r.poll_timeout(), Some(tm + ms(1200) + RELEASE_GRACE));
    r.handle_timeout(tm + ms(1200) + RELEASE_GRACE);
    assert_eq!(
        drain(&mut r),
        vec![
            Action::RemoveVips,
            changed(State::Master, State::Init, Reason::Shutdown),
            Action::Released
        ]
    );
    assert_eq!(r.poll_timeout(), None);
    // Nothing more after Released.
    hear(&mut r, tm + ms(1300), PEER_LO, 100);
    r.handle_timeout(tm + ms(100_000));
    r.set_fault(tm, Some("x".into()));
    r.set_maintenance(tm, true);
    r.shutdown(tm);
    r.start(tm);
    assert_eq!(r.poll_action(), None);
}

#[test]
fn shutdown_master_releases_after_master_down_interval_without_new_master() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    r.shutdown(tm);
    let _ = drain(&mut r);
    let deadline = tm + us(3_218_750);
    let mut sent = 0;
    while let Some(t) = r.poll_timeout() {
        r.handle_timeout(t);
        for a in drain(&mut r) {
            match a {
                Action::SendAdvert(Advert { priority: 0, .. }) => {
                    assert!(t < deadline);
                    sent += 1;
                }
                Action::RemoveVips => assert_eq!(t, deadline),
                Action::Released => assert_eq!(t, deadline),
                Action::StateChanged { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(sent, 3, "priority-0 adverts at +1 s, +2 s, +3 s");
    assert!(r.is_released());
}

#[test]
fn release_limit_bounds_every_release_the_supervisor_waits_for() {
    // Lowest priority (longest Skew_Time), new master heard just before the deadline.
    let t0 = Instant::now();
    let (mut r, tm) = master(1, t0);
    r.shutdown(tm);
    let _ = drain(&mut r);
    let late = tm + r.master_down_interval() - ms(1);
    hear(&mut r, late, PEER_HI, 100);
    let _ = drain(&mut r);
    let mut released_at = None;
    while let Some(t) = r.poll_timeout() {
        r.handle_timeout(t);
        if drain(&mut r).contains(&Action::Released) {
            released_at = Some(t);
            break;
        }
    }
    let released_at = released_at.expect("released");
    assert!(released_at - tm <= release_limit(Version::V3, SEC));
    assert!(released_at - tm > release_limit(Version::V3, SEC) - ms(5));
}

#[test]
fn shutdown_from_backup_init_and_fault_is_released_at_once() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    r.shutdown(t0);
    assert_eq!(
        drain(&mut r),
        vec![
            changed(State::Backup, State::Init, Reason::Shutdown),
            Action::Released
        ]
    );
    let mut r = Router::new(cfg(100));
    r.shutdown(t0);
    assert_eq!(drain(&mut r), vec![Action::Released]);
    let mut r = backup(100, t0);
    r.set_fault(t0, Some("x".into()));
    let _ = drain(&mut r);
    r.shutdown(t0);
    assert_eq!(
        drain(&mut r),
        vec![
            changed(State::Fault, State::Init, Reason::Shutdown),
            Action::Released
        ]
    );
}

// ----- maintenance ------------------------------------------------------------------

#[test]
fn maintenance_hands_over_make_before_break_then_stays_backup_at_priority_1() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    r.set_maintenance(tm, true);
    assert_eq!(
        drain(&mut r),
        vec![Action::StopAnnouncing, Action::SendAdvert(adv(0, SEC))]
    );
    assert_eq!(r.state(), State::Master);
    let heard = tm + ms(700);
    hear(&mut r, heard, PEER_LO, 100);
    assert_eq!(r.poll_action(), None, "VIPs kept for the grace period");
    let t1 = heard + RELEASE_GRACE;
    r.handle_timeout(t1);
    assert_eq!(
        drain(&mut r),
        vec![
            Action::RemoveVips,
            changed(State::Master, State::Backup, Reason::Maintenance)
        ]
    );
    assert_eq!(r.effective_priority(), 1);
    assert_eq!(r.master_addr(), Some(PEER_LO));
    // The new master's adverts are accepted at priority 1.
    for k in 1..10u64 {
        hear(&mut r, t1 + ms(1000 * k), PEER_LO, 100);
    }
    assert_eq!(r.state(), State::Backup);
    // Maintenance off: priority 200 again, preempt: the lower master is ignored.
    let t2 = t1 + ms(9000);
    r.set_maintenance(t2, false);
    assert_eq!(r.effective_priority(), 200);
    hear(&mut r, t2 + ms(1000), PEER_LO, 100);
    // The timer still runs from the last advert accepted at priority 1 (at t2).
    assert_eq!(r.poll_timeout(), Some(t2 + us(3_996_093)));
    r.handle_timeout(t2 + us(3_996_093));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn maintenance_off_during_handover_cancels_it() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    r.set_maintenance(tm, true);
    let _ = drain(&mut r);
    r.set_maintenance(tm + ms(10), false);
    // Our real priority again, and the VIPs announced again: a backup may already
    // have taken over and pulled the clients to itself.
    assert_eq!(
        drain(&mut r),
        vec![
            Action::SendAdvert(adv(200, SEC)),
            Action::Announce {
                reason: AnnounceReason::HandoverCancelled
            }
        ]
    );
    assert!(!r.is_releasing());
    assert_eq!(r.state(), State::Master);
}

#[test]
fn no_state_changed_without_a_transition() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    r.set_base_priority(t0, 100);
    r.set_override(t0, None);
    r.set_penalty(t0, 0);
    r.set_maintenance(t0, false);
    r.set_fault(t0, None);
    assert_eq!(r.poll_action(), None);
}

#[test]
fn display_strings() {
    assert_eq!(State::Master.to_string(), "master");
    assert_eq!(State::Init.to_string(), "init");
    assert_eq!(State::Backup.to_string(), "backup");
    assert_eq!(State::Fault.to_string(), "fault");
    assert_eq!(Reason::Startup.to_string(), "startup");
    assert_eq!(
        Reason::AddressOwner.to_string(),
        "address owner (priority 255)"
    );
    assert_eq!(Reason::FaultCleared.to_string(), "fault cleared");
    assert_eq!(Reason::Shutdown.to_string(), "shutdown");
    assert_eq!(Reason::Maintenance.to_string(), "maintenance");
    assert_eq!(
        Reason::MasterDown {
            master: Some(PEER_LO),
            silent_for: ms(3350)
        }
        .to_string(),
        "no advert from 192.0.2.10 for 3.35 s"
    );
}

// ----- BFD: master death detected by BFD (ours, docs/architecture.md) ------------

fn unicast_backup(priority: u8, peers: Vec<IpAddr>, t0: Instant) -> Router {
    let mut c = cfg(priority);
    c.unicast_peers = peers;
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    r
}

#[test]
fn bfd_single_unicast_peer_backup_takes_over_at_once() {
    let t0 = Instant::now();
    let mut r = unicast_backup(100, vec![PEER_HI], t0);
    hear(&mut r, t0 + ms(10), PEER_HI, 200);
    let t = t0 + ms(500);
    assert!(r.master_down_detected(t, PEER_HI, ms(30)));
    let reason = Reason::BfdDown {
        master: PEER_HI,
        detect: ms(30),
    };
    assert_eq!(drain(&mut r), takeover_actions(100, reason, State::Backup));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn bfd_verdict_about_another_router_than_the_master_is_ignored() {
    let t0 = Instant::now();
    let mut r = unicast_backup(100, vec![PEER_HI, PEER_LO], t0);
    hear(&mut r, t0, PEER_HI, 200);
    assert!(!r.master_down_detected(t0 + ms(5), PEER_LO, ms(30)));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.state(), State::Backup);
    // No master heard yet: nothing to declare dead.
    let mut fresh = unicast_backup(100, vec![PEER_HI], t0);
    assert!(!fresh.master_down_detected(t0 + ms(5), PEER_HI, ms(30)));
    assert_eq!(fresh.state(), State::Backup);
}

#[test]
fn bfd_several_backups_wait_a_priority_ranked_fraction_of_detection_time() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    hear(&mut r, t0, PEER_HI, 200);
    let _ = drain(&mut r);
    // (255 - 100) * 30 ms / 128 = 36.328125 ms.
    assert_eq!(r.bfd_wait(ms(30)), Duration::from_nanos(36_328_125));
    let t = t0 + ms(100);
    assert!(r.master_down_detected(t, PEER_HI, ms(30)));
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(t + Duration::from_nanos(36_328_125)));
    r.handle_timeout(t + Duration::from_nanos(36_328_124));
    assert_eq!(r.state(), State::Backup);
    r.handle_timeout(t + Duration::from_nanos(36_328_125));
    assert_eq!(r.state(), State::Master);
    // A higher priority waits less.
    let hi = backup(250, t0);
    assert!(hi.bfd_wait(ms(30)) < r.bfd_wait(ms(30)));
}

#[test]
fn bfd_pending_takeover_is_cancelled_by_an_advert_of_the_new_master() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    hear(&mut r, t0, PEER_HI, 200);
    let t = t0 + ms(100);
    assert!(r.master_down_detected(t, PEER_HI, ms(30)));
    // Another backup took over first and advertises.
    hear(&mut r, t + ms(5), PEER_LO, 150);
    r.handle_timeout(t + ms(50));
    assert_eq!(r.state(), State::Backup);
    assert_eq!(r.master_addr(), Some(PEER_LO));
    // The master-down timer runs from the new master's advert.
    assert!(r.poll_timeout().unwrap() > t + ms(3000));
}

#[test]
fn bfd_false_takeover_undone_by_adverts_holds_bfd_down() {
    let t0 = Instant::now();
    let mut r = unicast_backup(100, vec![PEER_HI], t0);
    hear(&mut r, t0, PEER_HI, 200);
    let t = t0 + ms(100);
    assert!(r.master_down_detected(t, PEER_HI, ms(30)));
    assert_eq!(r.state(), State::Master);
    let _ = drain(&mut r);
    // The master is alive (only BFD was lost): its advert makes us step down.
    hear(&mut r, t + ms(2), PEER_HI, 200);
    assert_eq!(r.state(), State::Backup);
    let _ = drain(&mut r);
    // BFD up and down again soon after: ignored, no second takeover.
    assert!(r.bfd_held_down(t + ms(500)));
    assert!(!r.master_down_detected(t + ms(500), PEER_HI, ms(30)));
    assert_eq!(r.state(), State::Backup);
    // After the hold-down (at least BFD_HOLD_DOWN_MIN, extended by the ignored verdict)
    // BFD counts again.
    assert!(r.bfd_hold_down() >= BFD_HOLD_DOWN_MIN);
    assert!(r.bfd_held_down(t + ms(500) + r.bfd_hold_down() - ms(1)));
    let later = t + ms(500) + r.bfd_hold_down();
    hear(&mut r, later - ms(1), PEER_HI, 200);
    assert!(!r.bfd_held_down(later));
    assert!(r.master_down_detected(later, PEER_HI, ms(30)));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn bfd_genuine_takeover_does_not_hold_bfd_down() {
    let t0 = Instant::now();
    let mut r = unicast_backup(100, vec![PEER_HI], t0);
    hear(&mut r, t0, PEER_HI, 200);
    let t = t0 + ms(100);
    assert!(r.master_down_detected(t, PEER_HI, ms(30)));
    // The old master comes back a minute later and preempts: not a false verdict.
    let back = t + Duration::from_secs(60);
    hear(&mut r, back, PEER_HI, 200);
    assert_eq!(r.state(), State::Backup);
    assert!(!r.bfd_held_down(back + ms(1)));
    assert!(r.master_down_detected(back + ms(500), PEER_HI, ms(30)));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn backup_ignores_priority_zero_from_a_router_that_is_not_its_master() {
    let t0 = Instant::now();
    let mut r = backup(100, t0);
    hear(&mut r, t0, PEER_HI, 150);
    let due = r.poll_timeout();
    // A stranger's priority 0 neither moves the timer nor the master.
    r.handle_advert(t0 + ms(10), PEER_LO, 255, &adv(0, SEC))
        .expect("valid, ignored");
    assert_eq!(r.poll_timeout(), due);
    assert_eq!(r.master_addr(), Some(PEER_HI));
    // A lower-priority stranger we ignore (preempt) does not become "the master" either.
    hear(&mut r, t0 + ms(20), PEER_LO, 50);
    assert_eq!(r.master_addr(), Some(PEER_HI));
    // The master's own priority 0 still counts (§6.4.2).
    hear(&mut r, t0 + ms(30), PEER_HI, 0);
    assert_eq!(r.poll_timeout(), Some(t0 + ms(30) + r.skew_time()));
}

/// `Action::SendAdvert` carries the whole advert: VRID, version, interval and addresses
/// are the router's own (the driver only encodes it), the priority the one it decided.
#[test]
fn send_advert_carries_the_configured_vrid_version_interval_and_addresses() {
    let t0 = Instant::now();
    let ll = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0x200, 0x5eff, 0xfe00, 0x207));
    let global = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100));
    let mut c6 = cfg(255);
    c6.vrid = 7;
    c6.advert_interval = Centis(50);
    c6.primary_addr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11));
    c6.vips = vec![ll, global];
    let mut v2 = cfg(255);
    v2.version = Version::V2;
    v2.vrid = 9;
    v2.advert_interval = Centis(200);
    for c in [c6, v2] {
        let mut r = Router::new(c.clone());
        r.start(t0);
        let sent: Vec<Advert> = drain(&mut r)
            .into_iter()
            .filter_map(|a| match a {
                Action::SendAdvert(adv) => Some(adv),
                _ => None,
            })
            .collect();
        assert_eq!(
            sent,
            vec![Advert {
                version: c.version,
                vrid: c.vrid,
                priority: 255,
                interval: c.advert_interval,
                addrs: c.vips.clone(),
            }]
        );
    }
}
