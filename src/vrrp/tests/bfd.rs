//! A master death detected by BFD (ours: docs/architecture.md).

use super::*;

fn unicast_backup(priority: u8, peers: Vec<IpAddr>, t0: Instant) -> Router {
    let mut c = cfg(priority);
    c.unicast_peers = peers;
    let mut r = Router::new(c);
    r.start(t0);
    let _ = drain(&mut r);
    r
}

/// BFD tells `r` at `at` that PEER_HI (its master) died, detected in 30 ms; whether
/// `r` took the verdict.
fn bfd_says_master_died(r: &mut Router, at: Instant) -> bool {
    r.master_down_detected(at, PEER_HI, ms(30))
}

/// A unicast backup (priority 100) of PEER_HI (200) that took over at the returned
/// instant, 100 ms after the master's last advert, on BFD's verdict.
fn bfd_takeover() -> (Router, Instant) {
    let t0 = Instant::now();
    let mut r = following(unicast_backup(100, vec![PEER_HI], t0), t0, PEER_HI, 200);
    let t = t0 + ms(100);
    assert!(bfd_says_master_died(&mut r, t));
    (r, t)
}

#[test]
fn bfd_single_unicast_peer_backup_takes_over_at_once() {
    let t0 = Instant::now();
    let mut r = unicast_backup(100, vec![PEER_HI], t0);
    hear(&mut r, t0 + ms(10), PEER_HI, 200);
    let t = t0 + ms(500);
    assert!(bfd_says_master_died(&mut r, t));
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
    let mut r = following(
        unicast_backup(100, vec![PEER_HI, PEER_LO], t0),
        t0,
        PEER_HI,
        200,
    );
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
    let mut r = following(backup(100, t0), t0, PEER_HI, 200);
    let _ = drain(&mut r);
    // (255 - 100) * 30 ms / 128 = 36.328125 ms.
    assert_eq!(r.bfd_wait(ms(30)), Duration::from_nanos(36_328_125));
    let t = t0 + ms(100);
    assert!(bfd_says_master_died(&mut r, t));
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
    let mut r = following(backup(100, t0), t0, PEER_HI, 200);
    let t = t0 + ms(100);
    assert!(bfd_says_master_died(&mut r, t));
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
    let (mut r, t) = bfd_takeover();
    assert_eq!(r.state(), State::Master);
    let _ = drain(&mut r);
    // The master is alive (only BFD was lost): its advert makes us step down.
    hear(&mut r, t + ms(2), PEER_HI, 200);
    assert_eq!(r.state(), State::Backup);
    let _ = drain(&mut r);
    // BFD up and down again soon after: ignored, no second takeover.
    assert!(r.bfd_held_down(t + ms(500)));
    assert!(!bfd_says_master_died(&mut r, t + ms(500)));
    assert_eq!(r.state(), State::Backup);
    // After the hold-down (at least BFD_HOLD_DOWN_MIN, extended by the ignored verdict)
    // BFD counts again.
    assert!(r.bfd_hold_down() >= BFD_HOLD_DOWN_MIN);
    assert!(r.bfd_held_down(t + ms(500) + r.bfd_hold_down() - ms(1)));
    let later = t + ms(500) + r.bfd_hold_down();
    hear(&mut r, later - ms(1), PEER_HI, 200);
    assert!(!r.bfd_held_down(later));
    assert!(bfd_says_master_died(&mut r, later));
    assert_eq!(r.state(), State::Master);
}

#[test]
fn bfd_genuine_takeover_does_not_hold_bfd_down() {
    let (mut r, t) = bfd_takeover();
    // The old master comes back a minute later and preempts: not a false verdict.
    let back = t + Duration::from_secs(60);
    hear(&mut r, back, PEER_HI, 200);
    assert_eq!(r.state(), State::Backup);
    assert!(!r.bfd_held_down(back + ms(1)));
    assert!(bfd_says_master_died(&mut r, back + ms(500)));
    assert_eq!(r.state(), State::Master);
}
