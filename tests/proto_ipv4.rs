//! IPv4 header parsing as a raw socket delivers it (RFC 791 §3.1).

use std::net::Ipv4Addr;

use proptest::prelude::*;
use vipd::proto::ipv4::{parse_ipv4, Ipv4Header};
use vipd::proto::vrrp::{Advert, ChecksumForm, DecodeError};

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// A 20-byte header + payload, with the given IHL words, options and total length.
fn packet(ihl: u8, options: &[u8], total_len: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x40 | ihl,
        0xc0,
        0,
        0,
        0,
        1,
        0,
        0,
        255,
        112,
        0,
        0,
        192,
        0,
        2,
        11,
        224,
        0,
        0,
        18,
    ];
    p[2..4].copy_from_slice(&total_len.to_be_bytes());
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    p
}

#[test]
fn keepalived_capture_splits_into_header_and_vrrp() {
    let pkt = hex(include_str!("fixtures/keepalived_v3_ipv4.hex"));
    let (h, payload) = parse_ipv4(&pkt).unwrap();
    assert_eq!(
        h,
        Ipv4Header {
            src: Ipv4Addr::new(192, 0, 2, 11),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 255,
            protocol: 112,
        }
    );
    assert_eq!(payload, &pkt[20..32]);
    let (advert, form) = Advert::parse(payload, h.src.into(), h.dst.into()).unwrap();
    assert_eq!(advert.vrid, 51);
    assert_eq!(form, ChecksumForm::WithPseudoHeader);
}

#[test]
fn rfc791_header_length_is_ihl_times_4_with_options() {
    // IHL 6: one 4-byte option (Router Alert, RFC 2113: 94 04 00 00).
    let payload = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let p = packet(6, &[0x94, 0x04, 0, 0], 32, &payload);
    let (h, got) = parse_ipv4(&p).unwrap();
    assert_eq!(got, &payload);
    assert_eq!((h.ttl, h.protocol), (255, 112));
    // IHL 15 (60 bytes of header).
    let p = packet(15, &[1u8; 40], 60 + 8, &payload);
    assert_eq!(parse_ipv4(&p).unwrap().1, &payload);
}

#[test]
fn rfc791_total_length_drops_trailing_padding() {
    let p = packet(5, &[], 24, &[9, 9, 9, 9, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse_ipv4(&p).unwrap().1, &[9, 9, 9, 9]);
    // Header only, empty payload.
    let p = packet(5, &[], 20, &[]);
    assert_eq!(parse_ipv4(&p).unwrap().1, &[] as &[u8]);
}

#[test]
fn truncated_header() {
    let p = packet(5, &[], 20, &[]);
    let err = parse_ipv4(&p[..19]).unwrap_err();
    assert_eq!(err, DecodeError::Ipv4TooShort { len: 19 });
    assert_eq!(err.label(), "ipv4_too_short");
    assert_eq!(
        parse_ipv4(&[]).unwrap_err(),
        DecodeError::Ipv4TooShort { len: 0 }
    );
}

#[test]
fn version_not_4() {
    let mut p = packet(5, &[], 20, &[]);
    p[0] = 0x65;
    let err = parse_ipv4(&p).unwrap_err();
    assert_eq!(err, DecodeError::Ipv4BadVersion(6));
    assert_eq!(err.label(), "ipv4_bad_version");
}

#[test]
fn bad_header_length() {
    let cases = [
        // IHL 4 (< 5).
        (packet(4, &[], 24, &[0; 4]), 16, 24),
        // IHL 6 but only 20 bytes.
        (packet(6, &[], 20, &[]), 24, 20),
    ];
    for (p, header_len, len) in cases {
        let err = parse_ipv4(&p).unwrap_err();
        assert_eq!(err, DecodeError::Ipv4BadHeaderLength { header_len, len });
        assert_eq!(err.label(), "ipv4_bad_header_length");
    }
}

#[test]
fn bad_total_length() {
    let cases = [
        // Total Length beyond the bytes received.
        (packet(5, &[], 40, &[0; 10]), 40, 20, 30),
        // Total Length below the header length (options make the header 24 bytes).
        (packet(6, &[0; 4], 22, &[0; 4]), 22, 24, 28),
    ];
    for (p, total_len, header_len, len) in cases {
        let err = parse_ipv4(&p).unwrap_err();
        let want = DecodeError::Ipv4BadTotalLength {
            total_len,
            header_len,
            len,
        };
        assert_eq!(err, want);
        assert_eq!(err.label(), "ipv4_bad_total_length");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_ipv4_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok((h, payload)) = parse_ipv4(&bytes) {
            let ihl = usize::from(bytes[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert_eq!(payload.len(), total - ihl);
            prop_assert_eq!(h.ttl, bytes[8]);
            // And the VRRP decoder on what follows does not panic either.
            let _ = Advert::parse(payload, h.src.into(), h.dst.into());
        }
    }

    #[test]
    fn parse_ipv4_never_panics_on_plausible_headers(
        ihl in 0u8..16, total in 0u16..200,
        rest in proptest::collection::vec(any::<u8>(), 0..150),
    ) {
        let mut p = packet(ihl, &[], total, &[]);
        p.extend_from_slice(&rest);
        if let Ok((_, payload)) = parse_ipv4(&p) {
            prop_assert!(ihl >= 5);
            prop_assert_eq!(payload.len(), usize::from(total) - usize::from(ihl) * 4);
        }
    }
}
