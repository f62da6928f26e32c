//! The advert grid (`Router::set_advert_grid`): masters that share an epoch and an
//! interval send on common instants (shared wake-ups), and RFC 5798 §6.4.3 still holds.

use super::*;

/// A master on the grid of `epoch`, taken over at `t0` + its Master_Down_Interval.
fn master_on_grid(priority: u8, t0: Instant, epoch: Instant) -> (Router, Instant) {
    let mut r = backup(priority, t0);
    r.set_advert_grid(Some(epoch));
    let t = r.poll_timeout().expect("master-down timer");
    r.handle_timeout(t);
    assert_eq!(
        drain(&mut r).first(),
        Some(&Action::SendAdvert(adv(priority, SEC)))
    );
    (r, t)
}

/// Whether `t` is a grid point of `epoch` for one-second adverts.
fn on_grid(t: Instant, epoch: Instant) -> bool {
    t.duration_since(epoch).as_nanos() % SEC.as_duration().as_nanos() == 0
}

#[test]
fn grid_next_point_is_at_least_half_an_interval_away() {
    let epoch = Instant::now();
    let i = ms(100);
    // On time, or late by less than half an interval: exactly one interval after the
    // grid point that fired.
    assert_eq!(next_on_grid(epoch, i, epoch + ms(300)), epoch + ms(400));
    assert_eq!(next_on_grid(epoch, i, epoch + ms(349)), epoch + ms(400));
    // Off the grid: between half an interval and one and a half intervals away.
    assert_eq!(next_on_grid(epoch, i, epoch + ms(350)), epoch + ms(400));
    assert_eq!(next_on_grid(epoch, i, epoch + ms(351)), epoch + ms(500));
    for off in 0..1000u64 {
        let now = epoch + us(off * 997);
        let next = next_on_grid(epoch, i, now);
        assert!(next >= now + ms(50) && next < now + ms(150), "{off}");
        assert_eq!(next.duration_since(epoch).as_nanos() % i.as_nanos(), 0);
    }
    // An epoch later than half an interval from now: the epoch itself.
    assert_eq!(next_on_grid(epoch + ms(500), i, epoch), epoch + ms(500));
}

#[test]
fn rfc5798_6_4_3_on_the_grid_adverts_are_one_interval_apart_even_when_woken_late() {
    let epoch = Instant::now();
    let (mut r, tm) = master_on_grid(200, epoch + ms(123), epoch);
    // The first periodic advert moves onto the grid: at least half an interval and
    // less than one and a half intervals after the takeover's advert.
    let first = r.poll_timeout().expect("adver timer");
    assert!(first >= tm + ms(500) && first < tm + ms(1500));
    assert!(on_grid(first, epoch));
    // From then on exactly one interval apart, however late the driver wakes.
    let mut due = first;
    for (k, late) in [0u64, 3, 40, 499, 7].into_iter().enumerate() {
        r.handle_timeout(due + ms(late));
        assert_eq!(
            drain(&mut r),
            vec![Action::SendAdvert(adv(200, SEC))],
            "{k}"
        );
        let next = r.poll_timeout().expect("adver timer");
        assert_eq!(next, due + SEC.as_duration(), "{k}");
        due = next;
    }
}

#[test]
fn rfc5798_6_4_3_masters_sharing_an_epoch_advertise_at_the_same_instants() {
    let epoch = Instant::now();
    // Two virtual routers that took over 0.37 s apart.
    let (mut a, _) = master_on_grid(200, epoch + ms(10), epoch);
    let (mut b, _) = master_on_grid(150, epoch + ms(380), epoch);
    // Their first periodic adverts are on the grid, a whole number of intervals apart.
    let (fa, fb) = (a.poll_timeout().expect("a"), b.poll_timeout().expect("b"));
    assert!(on_grid(fa, epoch) && on_grid(fb, epoch));
    assert_eq!(fb.duration_since(fa), SEC.as_duration());
    a.handle_timeout(fa);
    assert_eq!(drain(&mut a).len(), 1);
    // From then on, at the same instants.
    for _ in 0..3 {
        let (ta, tb) = (a.poll_timeout(), b.poll_timeout());
        assert_eq!(ta, tb);
        let t = ta.expect("adver timer");
        a.handle_timeout(t);
        b.handle_timeout(t);
        assert_eq!(drain(&mut a).len(), 1);
        assert_eq!(drain(&mut b).len(), 1);
    }
}

#[test]
fn rfc9568_6_4_3_an_answer_out_of_turn_keeps_the_next_advert_on_the_grid() {
    let epoch = Instant::now();
    let (mut r, tm) = master_on_grid(200, epoch, epoch);
    let t1 = tm + r.master_down_interval() + ms(420);
    r.handle_advert(t1, PEER_LO, 255, &adv(100, SEC))
        .expect("ok");
    assert_eq!(drain(&mut r)[0], Action::SendAdvert(adv(200, SEC)));
    let next = r.poll_timeout().expect("adver timer");
    assert!(on_grid(next, epoch));
    assert!(next >= t1 + ms(500) && next < t1 + ms(1500));
}

#[test]
fn rfc5798_6_4_2_the_grid_never_moves_a_backups_master_down_timer() {
    let t0 = Instant::now();
    let mut plain = backup(100, t0);
    let mut gridded = backup(100, t0);
    gridded.set_advert_grid(Some(t0 - ms(3)));
    assert_eq!(gridded.poll_timeout(), plain.poll_timeout());
    let t1 = t0 + ms(777);
    for r in [&mut plain, &mut gridded] {
        r.handle_advert(t1, PEER_HI, 255, &adv(200, SEC))
            .expect("ok");
    }
    assert_eq!(gridded.poll_timeout(), Some(t1 + us(3_609_375)));
    assert_eq!(gridded.poll_timeout(), plain.poll_timeout());
    // A priority-0 advert: Skew_Time, not a grid point.
    for r in [&mut plain, &mut gridded] {
        r.handle_advert(t1 + ms(5), PEER_HI, 255, &adv(0, SEC))
            .expect("ok");
    }
    assert_eq!(gridded.poll_timeout(), Some(t1 + ms(5) + us(609_375)));
}

#[test]
fn rfc5798_6_4_2_priority_zero_adverts_of_a_release_stay_one_interval_apart_off_the_grid() {
    let epoch = Instant::now();
    let (mut r, tm) = master_on_grid(200, epoch + ms(123), epoch);
    drain(&mut r);
    // Shut down off the grid: priority 0 now, and the next one a whole interval later
    // (a grid point half an interval away would restart the backups' Skew_Time early).
    let t = tm + ms(1777);
    r.shutdown(t);
    assert!(drain(&mut r).contains(&Action::SendAdvert(adv(0, SEC))));
    assert_eq!(r.poll_timeout(), Some(t + SEC.as_duration()));
}
