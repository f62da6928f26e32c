//! Priorities (owner, override, penalty, maintenance) and faults.

use super::*;

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
