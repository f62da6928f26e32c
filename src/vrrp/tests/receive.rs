//! RFC 5798 §7.1: receive checks of adverts.

use super::*;

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
