//! RFC 5798 §6.4.2: a backup: the master-down timer, priority 0, preemption.

use super::*;

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
    let mut r = following(backup(200, t0), t0, PEER_LO, 100);
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
    let mut r = following(backup(100, t0), t0, PEER_HI, 150);
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
    assert_takes_over_at(&mut r, t1 + us(3_609_375));
}

#[test]
fn backup_ignores_priority_zero_from_a_router_that_is_not_its_master() {
    let t0 = Instant::now();
    let mut r = following(backup(100, t0), t0, PEER_HI, 150);
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
