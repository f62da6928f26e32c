//! Shutdown and maintenance: make-before-break releases (RFC 5798 §6.4.3 and ours).

use super::*;

/// What a shutdown's release ends with: the VIPs go, Init, released.
fn released_on_shutdown() -> Vec<Action> {
    vec![
        Action::RemoveVips,
        changed(State::Master, State::Init, Reason::Shutdown),
        Action::Released,
    ]
}

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
    assert_eq!(drain(&mut r), released_on_shutdown());
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
fn release_sends_no_priority_zero_once_the_new_master_is_heard() {
    // 100 ms adverts: the release's grace (RELEASE_GRACE, 100 ms) spans an Adver_Timer.
    let fast = Centis(10);
    let t0 = Instant::now();
    let mut r = Router::new(RouterConfig {
        advert_interval: fast,
        ..cfg(200)
    });
    r.start(t0);
    let tm = r.poll_timeout().expect("master-down timer");
    r.handle_timeout(tm);
    assert_eq!(r.state(), State::Master);
    start_release(&mut r, tm);
    // The backup takes over after its Skew_Time and is heard before our next advert.
    let heard = tm + ms(61);
    r.handle_advert(heard, PEER_LO, 255, &adv(100, fast))
        .expect("accepted");
    // Only the grace's end is due: a priority 0 at the Adver_Timer (tm + 100 ms) would
    // make the new master answer and re-announce every VIP in its takeover.
    assert_eq!(r.poll_timeout(), Some(heard + RELEASE_GRACE));
    r.handle_timeout(tm + ms(100));
    assert_eq!(drain(&mut r), vec![]);
    r.handle_timeout(heard + RELEASE_GRACE);
    assert_eq!(drain(&mut r), released_on_shutdown());
}

#[test]
fn shutdown_master_releases_after_master_down_interval_without_new_master() {
    let t0 = Instant::now();
    let (mut r, tm) = master(200, t0);
    start_release(&mut r, tm);
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
    start_release(&mut r, tm);
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
    assert_takes_over_at(&mut r, t2 + us(3_996_093));
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
        advert_and_announce(200, AnnounceReason::HandoverCancelled)
    );
    assert!(!r.is_releasing());
    assert_eq!(r.state(), State::Master);
}
