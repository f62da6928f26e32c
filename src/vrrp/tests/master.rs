//! RFC 5798 §6.4.3 and RFC 9568: a master: adverts, stepping down, split-brain heal.

use super::*;

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
        advert_and_announce(100, AnnounceReason::PeerLeft)
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
    let mut r = following(backup(200, t0), t0, PEER_LO, 100);
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
        advert_and_announce(200, AnnounceReason::SplitBrainHealed)
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
