//! Session unit tests, named by RFC 5880 / RFC 5881 section.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;
use SessionState::{AdminDown, Down, Init, Up};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66));
const MS: Duration = Duration::from_millis(1);

fn cfg(discr: u32, interval_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        local_discr: discr,
        desired_min_tx: MS * interval_ms as u32,
        required_min_rx: MS * interval_ms as u32,
        detect_mult: mult,
        jitter_seed: u64::from(discr),
    }
}

fn sends(s: &mut Session) -> Vec<ControlPacket> {
    let mut v = Vec::new();
    while let Some(a) = s.poll_action() {
        if let Action::Send(p) = a {
            v.push(p);
        }
    }
    v
}

fn changes(s: &mut Session) -> Vec<(SessionState, SessionState, Diag)> {
    let mut v = Vec::new();
    while let Some(a) = s.poll_action() {
        if let Action::StateChanged { from, to, diag } = a {
            v.push((from, to, diag));
        }
    }
    v
}

/// Asserts that the session's state changes since the last look are exactly one.
fn assert_changed(s: &mut Session, from: SessionState, to: SessionState, diag: Diag) {
    assert_eq!(changes(s), vec![(from, to, diag)]);
}

/// The session receives `p` at `at`, which it must accept.
fn hear(s: &mut Session, at: Instant, p: &ControlPacket) {
    s.handle_packet(at, p).unwrap();
}

/// A packet from the remote system in `state`.
fn remote(state: SessionState, my: u32, your: u32, tx_ms: u32, rx_ms: u32) -> ControlPacket {
    ControlPacket {
        diag: Diag::NONE,
        state,
        poll: false,
        final_bit: false,
        cpi: false,
        auth_present: false,
        demand: false,
        detect_mult: 3,
        my_discr: my,
        your_discr: your,
        desired_min_tx: tx_ms * 1000,
        required_min_rx: rx_ms * 1000,
        required_min_echo_rx: 0,
    }
}

/// The remote's answer to our Poll: Up, Final set, `interval_ms` both ways.
fn final_up(your: u32, interval_ms: u32) -> ControlPacket {
    ControlPacket {
        final_bit: true,
        ..remote(Up, 77, your, interval_ms, interval_ms)
    }
}

/// A session started at `t0` whose timer at `t0` has run (its first packet is queued).
fn started(t0: Instant, interval_ms: u64) -> Session {
    let mut s = Session::new(cfg(1, interval_ms, 3));
    s.start(t0);
    s.handle_timeout(t0);
    s
}

/// Bring a session Up with a remote whose discriminator is 77: Down -> Init -> Up.
fn up(t0: Instant) -> Session {
    up_with(t0, 10)
}

fn up_with(t0: Instant, interval_ms: u64) -> Session {
    let mut s = started(t0, interval_ms);
    hear(&mut s, t0, &remote(Down, 77, 0, 1000, 10));
    hear(&mut s, t0, &remote(Up, 77, 1, 1000, 10));
    assert_eq!(s.state(), Up);
    while s.poll_action().is_some() {}
    s
}

#[test]
fn section_6_2_three_way_handshake_down_init_up() {
    let t0 = Instant::now();
    let mut s = started(t0, 10);
    let first = sends(&mut s);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].state, Down);
    assert_eq!(first[0].your_discr, 0);
    hear(&mut s, t0, &remote(Down, 77, 0, 1000, 10));
    assert_changed(&mut s, Down, Init, Diag::NONE);
    assert_eq!(s.remote_discr(), 77);
    hear(&mut s, t0, &remote(Init, 77, 1, 1000, 10));
    assert_changed(&mut s, Init, Up, Diag::NONE);
}

#[test]
fn section_6_8_6_down_receiving_init_goes_up() {
    let t0 = Instant::now();
    let mut s = Session::new(cfg(1, 10, 3));
    s.start(t0);
    hear(&mut s, t0, &remote(Init, 77, 1, 1000, 10));
    assert_eq!(s.state(), Up);
}

#[test]
fn section_6_8_6_up_receiving_down_goes_down_with_diag_3() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0 + MS, &remote(Down, 77, 1, 1000, 10));
    assert_changed(&mut s, Up, Down, Diag::NEIGHBOR_DOWN);
}

#[test]
fn section_6_8_6_received_admin_down_goes_down_with_diag_3() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0 + MS, &remote(AdminDown, 77, 1, 1000, 10));
    assert_eq!(s.state(), Down);
    assert_eq!(s.local_diag(), Diag::NEIGHBOR_DOWN);
}

#[test]
fn section_6_8_6_admin_down_session_discards_packets() {
    let t0 = Instant::now();
    let mut s = up(t0);
    s.admin_down(t0);
    let p = sends(&mut s);
    assert_eq!(p[0].state, AdminDown);
    assert_eq!(p[0].diag, Diag::ADMIN_DOWN);
    assert_eq!(
        s.handle_packet(t0, &remote(Up, 77, 1, 10, 10)),
        Err(RecvDrop::AdminDown)
    );
    s.admin_up(t0);
    assert_eq!(s.state(), Down);
}

#[test]
fn section_6_8_6_auth_bit_without_auth_in_use_is_discarded() {
    let t0 = Instant::now();
    let mut s = Session::new(cfg(1, 10, 3));
    let p = ControlPacket {
        auth_present: true,
        ..remote(Down, 77, 0, 1000, 10)
    };
    assert_eq!(s.handle_packet(t0, &p), Err(RecvDrop::AuthNotInUse));
    assert_eq!(s.state(), Down);
    assert_eq!(s.remote_discr(), 0);
}

#[test]
fn section_6_8_4_detection_time_is_remote_mult_times_agreed_interval() {
    let t0 = Instant::now();
    let mut s = up(t0);
    // The remote still advertises 1 s (not Up when it sent); 3 x max(10 ms, 1 s).
    assert_eq!(s.detection_time(), Some(Duration::from_secs(3)));
    let p = ControlPacket {
        detect_mult: 5,
        ..remote(Up, 77, 1, 10, 10)
    };
    hear(&mut s, t0, &p);
    assert_eq!(s.detection_time(), Some(MS * 50));
    // Our own Required Min RX bounds it from below.
    let p = ControlPacket {
        detect_mult: 3,
        ..remote(Up, 77, 1, 2, 2)
    };
    hear(&mut s, t0, &p);
    assert_eq!(s.detection_time(), Some(MS * 30));
}

#[test]
fn section_6_8_4_detection_timeout_goes_down_with_diag_1() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0, &remote(Up, 77, 1, 10, 10));
    while s.poll_action().is_some() {}
    // 29 ms of silence: still Up (timer restarted by the last packet at t0).
    s.handle_timeout(t0 + MS * 29);
    assert_eq!(s.state(), Up);
    s.handle_timeout(t0 + MS * 30);
    assert_changed(&mut s, Up, Down, Diag::DETECTION_TIME_EXPIRED);
    // §6.8.1: bfd.RemoteDiscr reset when the detection time passes.
    assert_eq!(s.remote_discr(), 0);
}

#[test]
fn section_6_8_4_every_packet_restarts_the_detection_timer() {
    let t0 = Instant::now();
    let mut s = up(t0);
    for k in 0..20u32 {
        hear(&mut s, t0 + MS * 9 * k, &remote(Up, 77, 1, 10, 10));
        s.handle_timeout(t0 + MS * 9 * k + MS * 8);
    }
    assert_eq!(s.state(), Up);
}

#[test]
fn section_6_8_3_at_most_one_packet_a_second_while_not_up() {
    let t0 = Instant::now();
    let mut s = Session::new(cfg(1, 3, 3));
    s.start(t0);
    let mut sent = Vec::new();
    let mut now = t0;
    // 10 s of a session whose peer answers Down every 300 ms but never Init.
    for step in 0..10_000u32 {
        now = t0 + MS * step;
        if step % 300 == 299 {
            // A remote whose Down packets carry no Your Discriminator keeps us in Init.
            hear(&mut s, now, &remote(Down, 77, 0, 1000, 3));
        }
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        for p in sends(&mut s) {
            sent.push((now, p));
        }
    }
    assert!(s.state() != Up);
    assert!(sent.len() <= 11, "{} packets in 10 s", sent.len());
    assert!(sent.len() >= 9, "{} packets in 10 s", sent.len());
    for (_, p) in &sent {
        // §6.8.3: Desired Min TX at least one second while not Up.
        assert!(p.desired_min_tx >= 1_000_000);
        assert_eq!(p.required_min_rx, 3_000);
    }
    for w in sent.windows(2) {
        assert!(w[1].0 - w[0].0 >= MS * 750, "{:?}", w[1].0 - w[0].0);
    }
    let _ = now;
}

#[test]
fn section_6_8_3_coming_up_switches_to_the_fast_interval_with_a_poll() {
    let t0 = Instant::now();
    let mut s = started(t0, 10);
    sends(&mut s);
    hear(&mut s, t0, &remote(Init, 77, 1, 1000, 10));
    let p = sends(&mut s);
    // Sent at once on coming Up, with Poll and the fast interval.
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].state, Up);
    assert!(p[0].poll);
    assert_eq!(p[0].desired_min_tx, 10_000);
    assert!(s.is_polling());
    // §6.5: every periodic packet carries Poll until the Final arrives.
    let t = s.poll_timeout().unwrap();
    assert!(t <= t0 + MS * 10);
    s.handle_timeout(t);
    assert!(sends(&mut s)[0].poll);
    let fin = final_up(1, 10);
    hear(&mut s, t, &fin);
    assert!(!s.is_polling());
    let t2 = s.poll_timeout().unwrap();
    s.handle_timeout(t2);
    assert!(!sends(&mut s)[0].poll);
}

#[test]
fn section_6_8_3_leaving_up_goes_back_to_one_second() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0, &remote(Down, 77, 1, 1000, 10));
    assert_eq!(s.state(), Down);
    let mut now = t0;
    let mut sent = Vec::new();
    for step in 1..3000u32 {
        now = t0 + MS * step;
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        sent.extend(sends(&mut s));
    }
    assert!(sent.len() <= 4, "{} packets in 3 s while Down", sent.len());
    assert!(sent.iter().all(|p| p.desired_min_tx == 1_000_000));
    let _ = now;
}

#[test]
fn section_6_8_3_increase_while_up_waits_for_the_final() {
    let t0 = Instant::now();
    let mut s = up(t0);
    let fin = final_up(1, 10);
    hear(&mut s, t0, &fin);
    assert_eq!(s.tx_interval(), MS * 10);
    s.set_timers(t0, MS * 50, MS * 50, 3);
    let p = sends(&mut s);
    assert!(p[0].poll);
    assert_eq!(p[0].desired_min_tx, 50_000);
    // Not yet in use: still 10 ms until the Final.
    assert_eq!(s.tx_interval(), MS * 10);
    hear(&mut s, t0 + MS, &fin);
    assert_eq!(s.tx_interval(), MS * 50);
}

#[test]
fn section_6_8_6_poll_is_answered_at_once_with_final() {
    let t0 = Instant::now();
    let mut s = up(t0);
    let p = ControlPacket {
        poll: true,
        ..remote(Up, 77, 1, 10, 10)
    };
    hear(&mut s, t0 + MS, &p);
    let out = sends(&mut s);
    assert_eq!(out.len(), 1);
    assert!(out[0].final_bit);
    assert!(!out[0].poll, "P and F never together");
}

#[test]
fn section_6_8_7_transmit_interval_is_the_larger_of_ours_and_remote_min_rx() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0, &remote(Up, 77, 1, 10, 50));
    assert_eq!(s.tx_interval(), MS * 50);
}

#[test]
fn section_6_8_7_jitter_is_0_to_25_percent_and_10_to_25_with_mult_1() {
    for mult in [3u8, 1] {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(9, 10, mult));
        s.start(t0);
        hear(&mut s, t0, &remote(Init, 77, 9, 10, 10));
        let fin = final_up(9, 10);
        hear(&mut s, t0, &fin);
        sends(&mut s);
        let mut last = t0;
        let mut gaps = Vec::new();
        for _ in 0..2000 {
            let t = s.poll_timeout().unwrap();
            // Keep the session up.
            hear(&mut s, t, &remote(Up, 77, 9, 10, 10));
            s.handle_timeout(t);
            if !sends(&mut s).is_empty() {
                gaps.push(t - last);
                last = t;
            }
        }
        let (lo, hi) = if mult == 1 {
            (7500, 9000)
        } else {
            (7500, 10_000)
        };
        let min = gaps.iter().min().unwrap().as_micros();
        let max = gaps.iter().max().unwrap().as_micros();
        assert!(min >= lo && max <= hi, "mult {mult}: {min}..{max} µs");
        // Actually random: both ends of the range are visited.
        assert!(
            min < lo + 500 && max > hi - 500,
            "mult {mult}: {min}..{max} µs"
        );
    }
}

#[test]
fn section_6_8_7_a_late_driver_does_not_add_its_lateness_to_every_interval() {
    let t0 = Instant::now();
    let mut s = up_with(t0, 3);
    let fin = final_up(1, 3);
    hear(&mut s, t0, &fin);
    let mut n = 0u32;
    let mut now = t0;
    // The driver wakes 1 ms after every deadline (a millisecond timer wheel).
    while now < t0 + Duration::from_secs(1) {
        let t = s.poll_timeout().unwrap();
        now = t + MS;
        hear(&mut s, now, &remote(Up, 77, 1, 3, 3));
        s.handle_timeout(now);
        n += sends(&mut s).len() as u32;
    }
    // Mean jittered interval 2.625 ms: ~380 packets a second. With the lateness added to
    // each interval it would be ~275.
    assert!(
        n >= 330,
        "{n} packets in 1 s at 3 ms with a 1 ms late driver"
    );
}

#[test]
fn section_6_8_7_no_periodic_transmission_when_remote_min_rx_is_zero() {
    let t0 = Instant::now();
    let mut s = up(t0);
    hear(&mut s, t0, &remote(Up, 77, 1, 10, 0));
    sends(&mut s);
    for k in 1..100u32 {
        s.handle_timeout(t0 + MS * k);
        assert!(sends(&mut s).is_empty());
    }
}

#[test]
fn section_4_1_sent_packets_carry_our_variables() {
    let t0 = Instant::now();
    let mut s = up(t0);
    s.handle_timeout(s.poll_timeout().unwrap());
    let p = sends(&mut s).pop().unwrap();
    assert_eq!(p.my_discr, 1);
    assert_eq!(p.your_discr, 77);
    assert_eq!(p.detect_mult, 3);
    assert_eq!(p.required_min_echo_rx, 0);
    assert!(!p.demand && !p.auth_present && !p.cpi);
    let bytes = p.to_bytes();
    assert_eq!(ControlPacket::parse(&bytes), Ok(p));
}

// ----- demultiplexing (RFC 5880 §6.8.6, RFC 5881 §3, §5) ---------------------------

fn bytes(p: &ControlPacket) -> Vec<u8> {
    p.to_bytes().to_vec()
}

#[test]
fn rfc5881_section_5_ttl_must_be_255() {
    let p = remote(Down, 77, 0, 1000, 10);
    let r = select_session(&bytes(&p), PEER, 254, [(0usize, PEER, 1u32)]);
    assert_eq!(r, Err(RecvDrop::TtlNot255(254)));
    assert!(select_session(&bytes(&p), PEER, 255, [(0usize, PEER, 1u32)]).is_ok());
}

#[test]
fn section_6_8_6_nonzero_your_discriminator_selects_the_session() {
    let p = remote(Up, 77, 2, 10, 10);
    let list = [(0usize, OTHER, 1u32), (1usize, PEER, 2u32)];
    let (k, _) = select_session(&bytes(&p), PEER, 255, list).unwrap();
    assert_eq!(k, 1);
    let p = remote(Up, 77, 3, 10, 10);
    assert_eq!(
        select_session(&bytes(&p), PEER, 255, list),
        Err(RecvDrop::UnknownDiscriminator(3))
    );
}

#[test]
fn rfc5881_section_3_discriminator_of_another_peer_is_dropped() {
    let p = remote(Up, 77, 1, 10, 10);
    let list = [(0usize, OTHER, 1u32), (1usize, PEER, 2u32)];
    assert!(matches!(
        select_session(&bytes(&p), PEER, 255, list),
        Err(RecvDrop::WrongPeer { discr: 1, .. })
    ));
}

#[test]
fn section_6_8_6_zero_your_discriminator_selects_by_source() {
    let p = remote(Down, 77, 0, 1000, 10);
    let list = [(0usize, OTHER, 1u32), (1usize, PEER, 2u32)];
    assert_eq!(select_session(&bytes(&p), PEER, 255, list).unwrap().0, 1);
    let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
    assert_eq!(
        select_session(&bytes(&p), stranger, 255, list),
        Err(RecvDrop::NoSessionForSource(stranger))
    );
}

#[test]
fn section_6_8_6_zero_your_discriminator_outside_down_is_dropped() {
    let p = remote(Up, 77, 0, 10, 10);
    assert_eq!(
        select_session(&bytes(&p), PEER, 255, [(0usize, PEER, 1u32)]),
        Err(RecvDrop::Decode(DecodeError::ZeroYourDiscriminator(Up)))
    );
}

#[test]
fn every_drop_label_is_listed() {
    let drops = [
        RecvDrop::Decode(DecodeError::Truncated { len: 0 }),
        RecvDrop::Decode(DecodeError::BadVersion(0)),
        RecvDrop::Decode(DecodeError::LengthTooSmall { length: 0, min: 24 }),
        RecvDrop::Decode(DecodeError::LengthExceedsPayload { length: 0, len: 0 }),
        RecvDrop::Decode(DecodeError::ZeroDetectMult),
        RecvDrop::Decode(DecodeError::Multipoint),
        RecvDrop::Decode(DecodeError::ZeroMyDiscriminator),
        RecvDrop::Decode(DecodeError::ZeroYourDiscriminator(Up)),
        RecvDrop::TtlNot255(1),
        RecvDrop::UnknownDiscriminator(1),
        RecvDrop::WrongPeer {
            discr: 1,
            from: PEER,
        },
        RecvDrop::NoSessionForSource(PEER),
        RecvDrop::AuthNotInUse,
        RecvDrop::AdminDown,
    ];
    let labels: Vec<_> = drops.iter().map(|d| d.label()).collect();
    assert_eq!(labels, RecvDrop::LABELS);
}
