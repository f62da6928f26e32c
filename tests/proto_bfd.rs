//! BFD Control packet codec (RFC 5880 §4.1): fixed bytes laid out by hand from the
//! RFC's figure, one test per §6.8.6 byte check (in the RFC's order), and properties:
//! round trip, and no panic on any bytes.

use proptest::prelude::*;
use vipd::proto::bfd::{BfdPacket, ControlPacket, DecodeError, Diag, SessionState};

/// Version 1, diag 0, state Down, no flags, Detect Mult 3, Length 24, My Discriminator
/// 0x01020304, Your Discriminator 0, Desired Min TX 1 s, Required Min RX 10 ms,
/// Required Min Echo RX 0.
const DOWN: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, // vers 1 | diag 0, sta 1 (Down), mult 3, length 24
    0x01, 0x02, 0x03, 0x04, // my discriminator
    0x00, 0x00, 0x00, 0x00, // your discriminator
    0x00, 0x0f, 0x42, 0x40, // desired min tx 1,000,000 µs
    0x00, 0x00, 0x27, 0x10, // required min rx 10,000 µs
    0x00, 0x00, 0x00, 0x00, // required min echo rx
];

/// Version 1, diag 1 (detection time expired), state Up, Poll, Detect Mult 5, ...
const UP_POLL: [u8; 24] = [
    0x21, 0xe0, 0x05, 0x18, // vers 1 | diag 1, sta 3 | P, mult 5, length 24
    0xde, 0xad, 0xbe, 0xef, // my
    0x00, 0x00, 0x00, 0x07, // your
    0x00, 0x00, 0x0b, 0xb8, // 3,000 µs
    0x00, 0x00, 0x0b, 0xb8, // 3,000 µs
    0x00, 0x00, 0x00, 0x00,
];

#[test]
fn section_4_1_fixed_bytes_decode_field_by_field() {
    let p = ControlPacket::parse(&DOWN).unwrap();
    assert_eq!(p.diag, Diag::NONE);
    assert_eq!(p.state, SessionState::Down);
    assert!(!p.poll && !p.final_bit && !p.cpi && !p.auth_present && !p.demand);
    assert_eq!(p.detect_mult, 3);
    assert_eq!(p.my_discr, 0x0102_0304);
    assert_eq!(p.your_discr, 0);
    assert_eq!(p.desired_min_tx, 1_000_000);
    assert_eq!(p.required_min_rx, 10_000);
    assert_eq!(p.required_min_echo_rx, 0);
    let q = ControlPacket::parse(&UP_POLL).unwrap();
    assert_eq!(q.diag, Diag::DETECTION_TIME_EXPIRED);
    assert_eq!(q.state, SessionState::Up);
    assert!(q.poll && !q.final_bit);
    assert_eq!(
        (q.detect_mult, q.my_discr, q.your_discr),
        (5, 0xdead_beef, 7)
    );
    assert_eq!((q.desired_min_tx, q.required_min_rx), (3000, 3000));
}

#[test]
fn section_4_1_encode_gives_the_same_bytes() {
    assert_eq!(ControlPacket::parse(&DOWN).unwrap().to_bytes(), DOWN);
    assert_eq!(ControlPacket::parse(&UP_POLL).unwrap().to_bytes(), UP_POLL);
    let p = ControlPacket::parse(&DOWN).unwrap();
    assert_eq!(p.buffer_len(), 24);
    let mut small = [0u8; 23];
    assert_eq!(p.emit(&mut small), None);
}

#[test]
fn section_4_1_flags_each_have_their_bit() {
    for (bit, check) in [
        (
            0x20u8,
            (|p: &ControlPacket| p.poll) as fn(&ControlPacket) -> bool,
        ),
        (0x10, |p| p.final_bit),
        (0x08, |p| p.cpi),
        (0x02, |p| p.demand),
    ] {
        let mut b = DOWN;
        b[1] |= bit;
        let p = ControlPacket::parse(&b).unwrap();
        assert!(check(&p), "bit {bit:#x}");
        assert_eq!(p.to_bytes(), b);
    }
}

#[test]
fn section_6_8_6_short_datagram_is_truncated() {
    for n in 0..4 {
        assert_eq!(
            ControlPacket::parse(&DOWN[..n]),
            Err(DecodeError::Truncated { len: n })
        );
    }
}

#[test]
fn section_6_8_6_version_must_be_1() {
    for v in [0u8, 2, 3, 7] {
        let mut b = DOWN;
        b[0] = (v << 5) | (b[0] & 0x1f);
        assert_eq!(ControlPacket::parse(&b), Err(DecodeError::BadVersion(v)));
    }
}

#[test]
fn section_6_8_6_length_below_24_or_26_with_auth_is_discarded() {
    // (flags added, length, the minimum that length is below)
    for (flags, length, min) in [(0, 23, 24), (0x04 /* A bit */, 25, 26)] {
        let mut b = DOWN;
        b[1] |= flags;
        b[3] = length;
        assert_eq!(
            ControlPacket::parse(&b),
            Err(DecodeError::LengthTooSmall { length, min })
        );
    }
}

#[test]
fn section_6_8_6_length_beyond_the_payload_is_discarded() {
    assert_eq!(
        ControlPacket::parse(&DOWN[..23]),
        Err(DecodeError::LengthExceedsPayload {
            length: 24,
            len: 23
        })
    );
    let mut b = DOWN.to_vec();
    b[3] = 30;
    b.extend_from_slice(&[0; 5]);
    assert_eq!(
        ControlPacket::parse(&b),
        Err(DecodeError::LengthExceedsPayload {
            length: 30,
            len: 29
        })
    );
}

#[test]
fn section_6_8_6_trailing_bytes_beyond_length_are_ignored() {
    let mut b = DOWN.to_vec();
    b.extend_from_slice(&[0xff; 8]);
    assert_eq!(
        ControlPacket::parse(&b),
        Ok(ControlPacket::parse(&DOWN).unwrap())
    );
}

#[test]
fn section_6_8_6_zero_detect_mult_is_discarded() {
    let mut b = DOWN;
    b[2] = 0;
    assert_eq!(ControlPacket::parse(&b), Err(DecodeError::ZeroDetectMult));
}

#[test]
fn section_6_8_6_multipoint_bit_is_discarded() {
    let mut b = DOWN;
    b[1] |= 0x01;
    assert_eq!(ControlPacket::parse(&b), Err(DecodeError::Multipoint));
}

#[test]
fn section_6_8_6_zero_my_discriminator_is_discarded() {
    let mut b = DOWN;
    b[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(
        ControlPacket::parse(&b),
        Err(DecodeError::ZeroMyDiscriminator)
    );
}

#[test]
fn section_6_8_6_zero_your_discriminator_needs_down_or_admin_down() {
    for (sta, ok) in [(0u8, true), (1, true), (2, false), (3, false)] {
        let mut b = DOWN;
        b[1] = sta << 6;
        let r = ControlPacket::parse(&b);
        if ok {
            assert!(r.is_ok(), "state {sta}");
        } else {
            assert_eq!(
                r,
                Err(DecodeError::ZeroYourDiscriminator(SessionState::from_bits(
                    sta
                )))
            );
        }
    }
}

#[test]
fn section_6_8_6_checks_apply_in_the_rfc_order() {
    // Version wrong and Detect Mult zero: the version check comes first.
    let mut b = DOWN;
    b[0] = 0x40;
    b[2] = 0;
    assert_eq!(ControlPacket::parse(&b), Err(DecodeError::BadVersion(2)));
    // Detect Mult zero and M bit: Detect Mult first.
    let mut b = DOWN;
    b[2] = 0;
    b[1] |= 1;
    assert_eq!(ControlPacket::parse(&b), Err(DecodeError::ZeroDetectMult));
}

#[test]
fn checked_view_reads_fields_and_unchecked_view_never_panics() {
    let v = BfdPacket::new_checked(&DOWN[..]).unwrap();
    assert_eq!(v.version(), 1);
    assert_eq!(v.length(), 24);
    assert_eq!(v.my_discr(), 0x0102_0304);
    let short = BfdPacket::new_unchecked(&DOWN[..5]);
    assert_eq!(short.your_discr(), 0);
    assert_eq!(short.required_min_echo_rx(), 0);
}

fn packet() -> impl Strategy<Value = ControlPacket> {
    (
        0u8..32,
        0u8..4,
        any::<[bool; 4]>(),
        1u8..=255,
        1u32..,
        any::<u32>(),
        any::<[u32; 3]>(),
    )
        .prop_map(|(diag, sta, f, mult, my, your, iv)| ControlPacket {
            diag: Diag(diag),
            state: SessionState::from_bits(sta),
            poll: f[0],
            final_bit: f[1],
            cpi: f[2],
            auth_present: false,
            demand: f[3],
            detect_mult: mult,
            my_discr: my,
            // A zero Your Discriminator is valid only in Down / AdminDown.
            your_discr: if sta >= 2 { your.max(1) } else { your },
            desired_min_tx: iv[0],
            required_min_rx: iv[1],
            required_min_echo_rx: iv[2],
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip(p in packet()) {
        let b = p.to_bytes();
        prop_assert_eq!(ControlPacket::parse(&b), Ok(p));
    }

    #[test]
    fn never_panics_and_what_decodes_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = ControlPacket::parse(&bytes) {
            // The authentication section is not kept: the A bit is written clear.
            let again = ControlPacket::parse(&p.to_bytes());
            prop_assert_eq!(again, Ok(ControlPacket { auth_present: false, ..p }));
        }
        let v = BfdPacket::new_unchecked(&bytes[..]);
        let _ = (v.version(), v.diag(), v.state(), v.my_discr(), v.required_min_echo_rx());
    }

    #[test]
    fn mutated_valid_packets_never_panic(p in packet(), i in 0usize..24, x in any::<u8>(), cut in 0usize..=24) {
        let mut b = p.to_bytes().to_vec();
        b[i] ^= x;
        b.truncate(cut.max(1));
        let _ = ControlPacket::parse(&b);
    }
}
