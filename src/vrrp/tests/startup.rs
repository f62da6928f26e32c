//! RFC 5798 §6.4.1: what a router does when it starts.

use super::*;

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
    let mut r = started(255, t0);
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
    let mut r = started(100, t0);
    assert_eq!(r.master_adver_interval(), SEC);
    assert_eq!(
        drain(&mut r),
        vec![changed(State::Init, State::Backup, Reason::Startup)]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + us(3_609_375)));
    assert_eq!(r.master_addr(), None);
    // start() twice is a no-op.
    r.start(t0 + ms(5));
    assert_eq!(r.poll_action(), None);
}

#[test]
fn rfc5798_6_4_3_master_sends_an_advert_every_advertisement_interval() {
    let t0 = Instant::now();
    let mut r = started(255, t0);
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
