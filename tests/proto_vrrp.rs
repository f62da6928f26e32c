//! VRRP codec tests: bytes captured from keepalived 2.2.7, one test per decode error,
//! encode errors, and property tests (round trip, no panic on arbitrary bytes).
//!
//! # The keepalived fixtures
//!
//! `tests/fixtures/keepalived_*.hex` are whole IP packets (Ethernet header stripped) captured
//! once, by hand, with `tests/fixtures/capture_keepalived.sh` (run as root:
//! `sh tests/fixtures/capture_keepalived.sh /tmp/out`). The script creates two namespaces
//! joined by a veth pair; in the first, on `ka0` with 192.0.2.11/24 and 2001:db8::11/64, it
//! runs `keepalived -n -P -l -D -G -f CONF -p PIDFILE -r VRRP_PIDFILE` with
//!
//! ```text
//! global_defs { router_id vipd_fixture; vrrp_version 3 }      # 2 for the v2 capture
//! vrrp_instance VI_1 {
//!     state BACKUP; interface ka0; virtual_router_id 51; priority 150; advert_int 1
//!     virtual_ipaddress { 192.0.2.100/24 }                      # 2001:db8::100/64 for IPv6
//! }
//! ```
//!
//! and in the second runs `tcpdump -i cap0 -c 1 -w FILE 'ip proto 112'` (`ip6 proto 112`),
//! then kills keepalived's VRRP child and parent by pid and deletes both namespaces. The
//! exact configs are kept next to the hex files (`keepalived_*.conf`).
//!
//! Longer than 600 lines on purpose: one test per decode error and encode error, each on
//! fixed bytes, and the property tests; every test is a few lines, independent of the
//! others.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vipd::proto::vrrp::{
    Advert, Centis, ChecksumForm, DecodeError, EncodeError, Family, Version, VrrpPacket,
};

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

const KA_V3_IPV4: &str = include_str!("fixtures/keepalived_v3_ipv4.hex");
const KA_V2_IPV4: &str = include_str!("fixtures/keepalived_v2_ipv4.hex");
const KA_V3_IPV6: &str = include_str!("fixtures/keepalived_v3_ipv6.hex");

const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const GROUP4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
const GROUP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));
const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(
    0xfe80, 0, 0, 0, 0xdc19, 0x45ff, 0xfe99, 0x5e34,
));

/// Independent RFC 1071 checksum: returns the one's-complement of the one's-complement
/// sum of `data` (padded to even length).
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u32::from(chunk[0]) << 8 | u32::from(chunk[1])
        } else {
            u32::from(chunk[0]) << 8
        };
        sum += word;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The bytes the checksum covers: optional pseudo-header, then the message.
fn checksum_input(msg: &[u8], src: IpAddr, dst: IpAddr, pseudo: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if pseudo {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                v.extend_from_slice(&s.octets());
                v.extend_from_slice(&d.octets());
                v.push(0);
                v.push(112);
                v.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                v.extend_from_slice(&s.octets());
                v.extend_from_slice(&d.octets());
                v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, 112]);
            }
            _ => panic!("mixed families"),
        }
    }
    v.extend_from_slice(msg);
    v
}

/// Whether `msg` (checksum field included) verifies.
fn verifies(msg: &[u8], src: IpAddr, dst: IpAddr, pseudo: bool) -> bool {
    inet_checksum(&checksum_input(msg, src, dst, pseudo)) == 0
}

/// Write a correct checksum into hand-built `msg`.
fn seal(mut msg: Vec<u8>, src: IpAddr, dst: IpAddr, pseudo: bool) -> Vec<u8> {
    msg[6] = 0;
    msg[7] = 0;
    let c = inet_checksum(&checksum_input(&msg, src, dst, pseudo));
    msg[6..8].copy_from_slice(&c.to_be_bytes());
    msg
}

/// The error parsing `m` (sent from SRC4 to the IPv4 group) gives; panics if it parses.
#[track_caller]
fn parse_err(m: &[u8]) -> DecodeError {
    Advert::parse(m, SRC4, GROUP4).unwrap_err()
}

/// Asserts that `m` (sent from SRC4 to the IPv4 group) is rejected with `want`, counted
/// under the drop label `label`.
#[track_caller]
fn rejected(m: &[u8], want: DecodeError, label: &str) {
    let err = parse_err(m);
    assert_eq!(err, want);
    assert_eq!(err.label(), label);
}

/// A hand-built v3 IPv4 advert: vrid 51, prio 150, 100 cs, addresses as given.
fn v3_ipv4(count_field: u8, addrs: &[[u8; 4]], interval: u16) -> Vec<u8> {
    let [hi, lo] = interval.to_be_bytes();
    let mut m = vec![0x31, 51, 150, count_field, hi, lo, 0, 0];
    for a in addrs {
        m.extend_from_slice(a);
    }
    m
}

/// A hand-built v2 advert: vrid 51, prio 150, auth type and interval as given.
fn v2(addrs: &[[u8; 4]], auth: u8, secs: u8) -> Vec<u8> {
    let mut m = vec![0x21, 51, 150, addrs.len() as u8, auth, secs, 0, 0];
    for a in addrs {
        m.extend_from_slice(a);
    }
    m.extend_from_slice(&[0; 8]);
    m
}

// ---------------------------------------------------------------- keepalived fixtures

/// Split an IPv4 packet by hand (independent of parse_ipv4): (src, dst, ttl, payload).
fn split_ipv4(pkt: &[u8]) -> (IpAddr, IpAddr, u8, &[u8]) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    (src.into(), dst.into(), pkt[8], &pkt[ihl..total])
}

/// Split an IPv6 packet without extension headers: (src, dst, hop limit, payload).
fn split_ipv6(pkt: &[u8]) -> (IpAddr, IpAddr, u8, &[u8]) {
    assert_eq!(pkt[0] >> 4, 6);
    assert_eq!(pkt[6], 112, "next header VRRP");
    let plen = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[24..40]).unwrap());
    (src.into(), dst.into(), pkt[7], &pkt[40..40 + plen])
}

/// One of keepalived's captured IP packets, split by hand, its VRRP payload copied out.
struct Captured {
    src: IpAddr,
    dst: IpAddr,
    payload: Vec<u8>,
    family: Family,
}

/// Splits keepalived's capture `hex_text` of `family` and checks it: sent from keepalived's
/// address to the VRRP group with TTL (hop limit) 255; a VRRP payload of `len` bytes with
/// the fields the three captures share and its own `version` and `checksum`.
#[track_caller]
fn captured(hex_text: &str, family: Family, len: usize, version: u8, checksum: u16) -> Captured {
    let pkt = hex(hex_text);
    let ((src, dst, ttl, payload), want) = match family {
        Family::V4 => (split_ipv4(&pkt), (SRC4, GROUP4)),
        Family::V6 => (split_ipv6(&pkt), (SRC6, GROUP6)),
    };
    assert_eq!((src, dst, ttl), (want.0, want.1, 255));
    assert_eq!(payload.len(), len);
    let c = Captured {
        src,
        dst,
        payload: payload.to_vec(),
        family,
    };
    assert_keepalived_fields(&c.view(), version, checksum);
    c
}

impl Captured {
    /// The checked view of the VRRP payload.
    fn view(&self) -> VrrpPacket<&[u8]> {
        VrrpPacket::new_checked(&self.payload[..], self.family).expect("view")
    }
}

/// The fields keepalived's three captured adverts share (VRID 51, priority 150, one
/// address, 1 s = 100 cs), and each capture's own version and checksum.
#[track_caller]
fn assert_keepalived_fields(view: &VrrpPacket<&[u8]>, version: u8, checksum: u16) {
    assert_eq!(view.version_field(), version);
    assert_eq!(view.vrid(), 51);
    assert_eq!(view.priority(), 150);
    assert_eq!(view.addr_count(), 1);
    assert_eq!(view.interval(), Centis(100));
    assert_eq!(view.checksum(), checksum);
}

#[test]
fn keepalived_v3_ipv4_advert_decodes_with_pseudo_header() {
    // Raw field check against the wire layout of RFC 5798 §5.1.
    let c = captured(KA_V3_IPV4, Family::V4, 12, 3, 0xd367);
    let view = c.view();
    assert_eq!(view.msg_type(), 1);
    assert_eq!(view.reserved(), 0);
    assert_eq!(view.auth_type(), None);
    // keepalived's default (no v3_checksum_as_v2): the IPv4 pseudo-header is included.
    assert!(verifies(&c.payload, c.src, c.dst, true));
    assert!(!verifies(&c.payload, c.src, c.dst, false));

    // Golden emit: re-encoding gives keepalived's bytes exactly.
    golden_round_trip(&c, ChecksumForm::WithPseudoHeader, Version::V3, VIP4);
}

#[test]
fn keepalived_v2_ipv4_advert_decodes() {
    // RFC 3768 §5.1: 8 fixed bytes, one address, 8 bytes of authentication data.
    let c = captured(KA_V2_IPV4, Family::V4, 20, 2, 0x8665);
    let view = c.view();
    assert_eq!(view.auth_type(), Some(0));
    assert_eq!(view.auth_data(), Some(&[0u8; 8][..]));
    // RFC 3768 §5.3.8: checksum over the VRRP message only.
    assert!(verifies(&c.payload, c.src, c.dst, false));

    golden_round_trip(&c, ChecksumForm::WithoutPseudoHeader, Version::V2, VIP4);
}

#[test]
fn keepalived_v3_ipv6_advert_decodes() {
    let c = captured(KA_V3_IPV6, Family::V6, 24, 3, 0x8ca8);
    // RFC 5798 §5.2.8: IPv6 pseudo-header always.
    assert!(verifies(&c.payload, c.src, c.dst, true));

    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    // keepalived sends the configured global VIP first, not a link-local one
    // (RFC 5798 §5.2.9 is a sender rule; vipd accepts this on receive).
    golden_round_trip(&c, ChecksumForm::WithPseudoHeader, Version::V3, vip);
}

/// keepalived's advert (VRID 51, priority 150, 1 s, one address `vip`) parses with the
/// checksum `form` and `version`, and re-encodes to the very same bytes.
#[track_caller]
fn golden_round_trip(c: &Captured, form: ChecksumForm, version: Version, vip: IpAddr) {
    let (payload, src, dst) = (&c.payload[..], c.src, c.dst);

    let (advert, got_form) = Advert::parse(payload, src, dst).expect("parse");
    assert_eq!(got_form, form);
    assert_eq!(
        advert,
        Advert {
            version,
            vrid: 51,
            priority: 150,
            interval: Centis(100),
            addrs: vec![vip],
        }
    );
    assert_eq!(advert.to_bytes(src, dst, form).unwrap(), payload);
}

#[test]
fn trailing_padding_is_ignored() {
    let pkt = hex(KA_V3_IPV4);
    let (src, dst, _, payload) = split_ipv4(&pkt);
    let mut padded = payload.to_vec();
    padded.extend_from_slice(&[0u8; 6]);
    let plain = Advert::parse(payload, src, dst).unwrap();
    assert_eq!(Advert::parse(&padded, src, dst).unwrap(), plain);

    let pkt = hex(KA_V2_IPV4);
    let (src, dst, _, payload) = split_ipv4(&pkt);
    let mut padded = payload.to_vec();
    padded.extend_from_slice(&[0xaa; 26]);
    assert_eq!(
        Advert::parse(&padded, src, dst).unwrap(),
        Advert::parse(payload, src, dst).unwrap()
    );
}

// ---------------------------------------------------------------- one test per DecodeError

#[test]
fn rfc5798_7_1_too_short() {
    let err = Advert::parse(&[0x31, 51, 150, 1, 0, 100, 0], SRC4, GROUP4).unwrap_err();
    assert_eq!(err, DecodeError::TooShort { len: 7, need: 8 });
    assert_eq!(err.label(), "too_short");
    assert!(matches!(
        Advert::parse(&[], SRC4, GROUP4),
        Err(DecodeError::TooShort { len: 0, .. })
    ));
    // RFC 3768 §5.1: a v2 packet includes 8 bytes of authentication data.
    let short_v2 = [0x21, 51, 150, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        Advert::parse(&short_v2, SRC4, GROUP4).unwrap_err(),
        DecodeError::TooShort { len: 12, need: 16 }
    );
}

#[test]
fn rfc5798_7_1_bad_version() {
    for first in [0x11u8, 0x41, 0x01, 0xf1] {
        let m = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 100), SRC4, GROUP4, true);
        let mut m = m;
        m[0] = first;
        rejected(&m, DecodeError::BadVersion(first >> 4), "bad_version");
    }
}

#[test]
fn rfc5798_5_2_2_unknown_type_discarded() {
    let mut m = v3_ipv4(1, &[[192, 0, 2, 100]], 100);
    m[0] = 0x32;
    let m = seal(m, SRC4, GROUP4, true);
    rejected(&m, DecodeError::BadType(2), "bad_type");
}

#[test]
fn rfc5798_7_1_address_count_mismatch() {
    // Count 2, one address present.
    let m = seal(v3_ipv4(2, &[[192, 0, 2, 100]], 100), SRC4, GROUP4, true);
    let want = DecodeError::AddressCountMismatch {
        count: 2,
        need: 16,
        len: 12,
    };
    rejected(&m, want, "address_count_mismatch");
    // IPv6: 16 bytes per address, so 12 bytes of IPv4-sized payload do not fit count 1.
    let m1 = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 100), SRC4, GROUP4, true);
    let err = Advert::parse(&m1, SRC6, GROUP6).unwrap_err();
    assert!(
        matches!(err, DecodeError::AddressCountMismatch { need: 24, .. }),
        "{err:?}"
    );
    // v2: the authentication data must follow the addresses.
    let mut m = v2(&[[192, 0, 2, 100], [192, 0, 2, 101]], 0, 1);
    m[3] = 3;
    let err = Advert::parse(&seal(m, SRC4, GROUP4, false), SRC4, GROUP4).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::AddressCountMismatch {
            count: 3,
            need: 28,
            len: 24
        }
    ));
}

#[test]
fn rfc5798_7_1_bad_checksum() {
    let pkt = hex(KA_V3_IPV4);
    let (src, dst, _, payload) = split_ipv4(&pkt);
    let mut m = payload.to_vec();
    m[11] ^= 1;
    let err = Advert::parse(&m, src, dst).unwrap_err();
    assert_eq!(err, DecodeError::BadChecksum);
    assert_eq!(err.label(), "bad_checksum");
    // A different source changes the pseudo-header, so the same bytes no longer verify.
    let other: IpAddr = "192.0.2.12".parse().unwrap();
    assert_eq!(
        Advert::parse(payload, other, dst).unwrap_err(),
        DecodeError::BadChecksum
    );
}

#[test]
fn rfc3768_5_3_8_v2_checksum_never_includes_pseudo_header() {
    let m = seal(v2(&[[192, 0, 2, 100]], 0, 1), SRC4, GROUP4, true);
    assert!(!verifies(&m, SRC4, GROUP4, false));
    assert_eq!(parse_err(&m), DecodeError::BadChecksum);
}

#[test]
fn rfc5798_5_2_8_v3_ipv6_checksum_requires_pseudo_header() {
    let mut m = vec![0x31, 51, 150, 1, 0, 100, 0, 0];
    m.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
    let without = seal(m.clone(), SRC6, GROUP6, false);
    assert_eq!(
        Advert::parse(&without, SRC6, GROUP6).unwrap_err(),
        DecodeError::BadChecksum
    );
    let with = seal(m, SRC6, GROUP6, true);
    assert_eq!(
        Advert::parse(&with, SRC6, GROUP6).unwrap().1,
        ChecksumForm::WithPseudoHeader
    );
}

#[test]
fn rfc5798_5_2_8_v3_ipv4_accepts_both_checksum_forms() {
    let m = v3_ipv4(1, &[[192, 0, 2, 100]], 100);
    let with = seal(m.clone(), SRC4, GROUP4, true);
    let without = seal(m, SRC4, GROUP4, false);
    assert_ne!(with, without);
    assert_eq!(
        Advert::parse(&with, SRC4, GROUP4).unwrap().1,
        ChecksumForm::WithPseudoHeader
    );
    assert_eq!(
        Advert::parse(&without, SRC4, GROUP4).unwrap().1,
        ChecksumForm::WithoutPseudoHeader
    );
}

#[test]
fn rfc5798_5_2_8_pseudo_header_uses_real_unicast_destination() {
    let peer: IpAddr = "192.0.2.12".parse().unwrap();
    let advert = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval: Centis(100),
        addrs: vec![VIP4],
    };
    let bytes = advert
        .to_bytes(SRC4, peer, ChecksumForm::WithPseudoHeader)
        .unwrap();
    assert!(verifies(&bytes, SRC4, peer, true));
    assert_eq!(
        Advert::parse(&bytes, SRC4, peer).unwrap(),
        (advert, ChecksumForm::WithPseudoHeader)
    );
    // Checked against the multicast group instead, it must not verify.
    assert_eq!(
        Advert::parse(&bytes, SRC4, GROUP4).unwrap_err(),
        DecodeError::BadChecksum
    );
}

#[test]
fn rfc5798_5_2_7_interval_zero() {
    let m = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 0), SRC4, GROUP4, true);
    rejected(&m, DecodeError::IntervalZero, "interval_zero");
    // The 4 reserved bits are not part of the interval: rsvd set, interval 0 is still 0.
    let m = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 0xf000), SRC4, GROUP4, true);
    assert_eq!(parse_err(&m), DecodeError::IntervalZero);
}

#[test]
fn rfc3768_5_3_7_v2_adver_int_zero() {
    let m = seal(v2(&[[192, 0, 2, 100]], 0, 0), SRC4, GROUP4, false);
    assert_eq!(parse_err(&m), DecodeError::IntervalZero);
}

#[test]
fn rfc5798_5_2_6_reserved_bits_ignored_on_reception() {
    // "MUST be set to zero on transmission and ignored on reception."
    let m = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 0xa064), SRC4, GROUP4, true);
    let view = VrrpPacket::new_checked(&m[..], Family::V4).unwrap();
    assert_eq!(view.reserved(), 0xa);
    assert_eq!(view.interval(), Centis(100));
    let (advert, _) = Advert::parse(&m, SRC4, GROUP4).unwrap();
    assert_eq!(advert.interval, Centis(100));
    // And on transmission they are zero.
    let out = advert
        .to_bytes(SRC4, GROUP4, ChecksumForm::WithPseudoHeader)
        .unwrap();
    assert_eq!(out[4] >> 4, 0);
}

#[test]
fn rfc3768_7_1_auth_type_not_zero() {
    // Auth Type 1 (simple text password, RFC 2338) with a valid checksum.
    let mut m = v2(&[[192, 0, 2, 100]], 1, 1);
    m[12..20].copy_from_slice(b"secret\0\0");
    let m = seal(m, SRC4, GROUP4, false);
    rejected(&m, DecodeError::UnsupportedAuthType(1), "auth_type");
}

#[test]
fn family_mismatch() {
    let m = seal(v3_ipv4(1, &[[192, 0, 2, 100]], 100), SRC4, GROUP4, true);
    let err = Advert::parse(&m, SRC4, GROUP6).unwrap_err();
    assert_eq!(err, DecodeError::FamilyMismatch);
    assert_eq!(err.label(), "family_mismatch");
    assert_eq!(
        Advert::parse(&m, SRC6, GROUP4).unwrap_err(),
        DecodeError::FamilyMismatch
    );
    // RFC 3768 is IPv4 only: a v2 header over IPv6 is rejected.
    let mut v2_over_v6 = vec![0x21, 51, 150, 1, 0, 1, 0, 0];
    v2_over_v6.extend_from_slice(&[0; 16 + 8]);
    assert_eq!(
        Advert::parse(&v2_over_v6, SRC6, GROUP6).unwrap_err(),
        DecodeError::FamilyMismatch
    );
}

#[test]
fn rfc5798_5_2_5_v3_count_zero() {
    let m = seal(v3_ipv4(0, &[], 100), SRC4, GROUP4, true);
    rejected(&m, DecodeError::NoAddresses, "no_addresses");
    let m6 = seal(vec![0x31, 51, 150, 0, 0, 100, 0, 0], SRC6, GROUP6, true);
    assert_eq!(
        Advert::parse(&m6, SRC6, GROUP6).unwrap_err(),
        DecodeError::NoAddresses
    );
    // RFC 3768 states no minimum: a v2 advert without addresses is accepted.
    let m = seal(v2(&[], 0, 1), SRC4, GROUP4, false);
    assert!(Advert::parse(&m, SRC4, GROUP4).unwrap().0.addrs.is_empty());
}

#[test]
fn carp_advert_is_told_apart_by_length() {
    // ucarp / OpenBSD CARP: ver 2 type 1 (0x21), vhid, advskew, authlen 7, demote,
    // advbase, checksum, 8-byte counter, 20-byte HMAC-SHA1: 36 bytes.
    let mut carp = vec![0x21, 51, 0, 7, 0, 1, 0, 0];
    carp.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    carp.extend_from_slice(&[0x5a; 20]);
    let carp = seal(carp, SRC4, GROUP4, false);
    assert_eq!(carp.len(), 36);
    let err = Advert::parse(&carp, SRC4, GROUP4).unwrap_err();
    assert_eq!(err, DecodeError::Carp);
    assert_eq!(err.label(), "carp");
    // A genuine 36-byte VRRPv2 advert (5 addresses) is still VRRP.
    let addrs: Vec<[u8; 4]> = (100..105).map(|i| [192, 0, 2, i]).collect();
    let m = seal(v2(&addrs, 0, 1), SRC4, GROUP4, false);
    assert_eq!(m.len(), 36);
    assert_eq!(Advert::parse(&m, SRC4, GROUP4).unwrap().0.addrs.len(), 5);
}

/// The TTL / hop limit is not in the bytes the codec sees (IPv6 delivers it as a control
/// message): the receive filter checks it, and counts it as `ttl_not_255`.
#[test]
fn rfc5798_7_1_ttl_must_be_255() {
    let filter = vipd::vrrp::RecvFilter::new(&vipd::vrrp::RouterConfig {
        vrid: 51,
        version: Version::V3,
        priority: 100,
        advert_interval: Centis(100),
        preempt: true,
        preempt_delay: std::time::Duration::ZERO,
        primary_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
        vips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))],
        unicast_peers: vec![],
    });
    let adv = advert(
        Version::V3,
        100,
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))],
    );
    let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
    assert_eq!(filter.check(from, 255, &adv), Ok(()));
    for ttl in [0u8, 1, 64, 254] {
        let err = filter.check(from, ttl, &adv).unwrap_err();
        assert_eq!(err, vipd::vrrp::RecvDrop::TtlNot255 { ttl });
        assert_eq!(err.label(), "ttl_not_255");
    }
}

#[test]
fn labels_are_distinct_snake_case() {
    let all = [
        DecodeError::TooShort { len: 0, need: 8 },
        DecodeError::BadVersion(1),
        DecodeError::BadType(2),
        DecodeError::AddressCountMismatch {
            count: 1,
            need: 12,
            len: 8,
        },
        DecodeError::BadChecksum,
        DecodeError::IntervalZero,
        DecodeError::UnsupportedAuthType(1),
        DecodeError::FamilyMismatch,
        DecodeError::NoAddresses,
        DecodeError::Carp,
        DecodeError::Ipv4TooShort { len: 0 },
        DecodeError::Ipv4BadVersion(6),
        DecodeError::Ipv4BadHeaderLength {
            header_len: 0,
            len: 0,
        },
        DecodeError::Ipv4BadTotalLength {
            total_len: 0,
            header_len: 20,
            len: 20,
        },
    ];
    // Each error is its own drop reason, and its label is that reason's (whose labels
    // are checked snake_case and distinct in src/proto/drop.rs).
    for e in &all {
        assert_eq!(e.label(), e.reason().label(), "{e:?}");
        assert!(vipd::proto::DropReason::ALL.contains(&e.reason()), "{e:?}");
    }
    let mut labels: Vec<&str> = all.iter().map(|e| e.label()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
}

// ---------------------------------------------------------------- encode

fn advert(version: Version, interval: u16, addrs: Vec<IpAddr>) -> Advert {
    Advert {
        version,
        vrid: 51,
        priority: 150,
        interval: Centis(interval),
        addrs,
    }
}

#[test]
fn rfc3768_5_3_7_v2_interval_whole_seconds_only() {
    let w = ChecksumForm::WithoutPseudoHeader;
    for bad in [0u16, 150, 99, 25600, 65535] {
        assert_eq!(
            advert(Version::V2, bad, vec![VIP4]).to_bytes(SRC4, GROUP4, w),
            Err(EncodeError::V2Interval(Centis(bad)))
        );
    }
    for (cs, secs) in [(100u16, 1u8), (25500, 255), (300, 3)] {
        let b = advert(Version::V2, cs, vec![VIP4])
            .to_bytes(SRC4, GROUP4, w)
            .unwrap();
        assert_eq!(b[5], secs);
        assert_eq!(b[4], 0, "auth type 0");
    }
}

#[test]
fn rfc5798_5_2_7_v3_interval_12_bits() {
    let f = ChecksumForm::WithPseudoHeader;
    for bad in [0u16, 4096, 65535] {
        assert_eq!(
            advert(Version::V3, bad, vec![VIP4]).to_bytes(SRC4, GROUP4, f),
            Err(EncodeError::V3Interval(Centis(bad)))
        );
    }
    let b = advert(Version::V3, 4095, vec![VIP4])
        .to_bytes(SRC4, GROUP4, f)
        .unwrap();
    assert_eq!((b[4], b[5]), (0x0f, 0xff));
    let b = advert(Version::V3, 1, vec![VIP4])
        .to_bytes(SRC4, GROUP4, f)
        .unwrap();
    assert_eq!((b[4], b[5]), (0x00, 0x01));
}

#[test]
fn encode_errors() {
    let with = ChecksumForm::WithPseudoHeader;
    let without = ChecksumForm::WithoutPseudoHeader;
    let a = advert(Version::V3, 100, vec![VIP4]);
    let mut small = [0u8; 11];
    assert_eq!(
        a.emit(&mut small, SRC4, GROUP4, with),
        Err(EncodeError::BufferTooSmall { need: 12, have: 11 })
    );
    let mut big = [0xeeu8; 20];
    assert_eq!(a.emit(&mut big, SRC4, GROUP4, with), Ok(12));
    assert_eq!(&big[12..], &[0xee; 8], "nothing written past buffer_len");
    assert_eq!(a.buffer_len(), 12);

    assert_eq!(
        a.to_bytes(SRC4, GROUP6, with),
        Err(EncodeError::FamilyMismatch)
    );
    assert_eq!(
        advert(Version::V3, 100, vec![VIP4]).to_bytes(SRC6, GROUP6, with),
        Err(EncodeError::FamilyMismatch)
    );
    assert_eq!(
        advert(Version::V2, 100, vec!["2001:db8::100".parse().unwrap()])
            .to_bytes(SRC6, GROUP6, without),
        Err(EncodeError::FamilyMismatch)
    );
    let many: Vec<IpAddr> = (0..256u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i)))
        .collect();
    assert_eq!(
        advert(Version::V3, 100, many).to_bytes(SRC4, GROUP4, with),
        Err(EncodeError::TooManyAddresses(256))
    );
    assert_eq!(
        advert(Version::V3, 100, vec![]).to_bytes(SRC4, GROUP4, with),
        Err(EncodeError::NoAddresses)
    );
    assert!(matches!(
        advert(Version::V2, 100, vec![VIP4]).to_bytes(SRC4, GROUP4, with),
        Err(EncodeError::ChecksumFormNotAllowed { .. })
    ));
    assert!(matches!(
        advert(Version::V3, 100, vec!["fe80::1".parse().unwrap()]).to_bytes(SRC6, GROUP6, without),
        Err(EncodeError::ChecksumFormNotAllowed { .. })
    ));
}

#[test]
fn unchecked_view_of_short_buffer_does_not_panic() {
    let view = VrrpPacket::new_unchecked(&[0x21u8, 1, 2, 9][..], Family::V6);
    assert_eq!(view.checksum(), 0);
    assert_eq!(view.addr(0), None);
    assert_eq!(view.addrs().count(), 0);
    assert_eq!(view.auth_data(), None);
    assert!(!view.verify_checksum(SRC6, GROUP6, ChecksumForm::WithPseudoHeader));
}

// ---------------------------------------------------------------- properties

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![ipv4().prop_map(IpAddr::V4), ipv6().prop_map(IpAddr::V6)]
}

fn form() -> impl Strategy<Value = ChecksumForm> {
    prop_oneof![
        Just(ChecksumForm::WithPseudoHeader),
        Just(ChecksumForm::WithoutPseudoHeader)
    ]
}

/// Encodes `a` in checksum `form`, checks that the checksum verifies in that form, and
/// parses the bytes back: the bytes, the advert and the form the parser found.
fn encode_and_parse(
    a: &Advert,
    src: IpAddr,
    dst: IpAddr,
    form: ChecksumForm,
) -> Result<(Vec<u8>, Advert, ChecksumForm), TestCaseError> {
    let bytes = a.to_bytes(src, dst, form).unwrap();
    prop_assert!(verifies(
        &bytes,
        src,
        dst,
        form == ChecksumForm::WithPseudoHeader
    ));
    let (b, parsed) = Advert::parse(&bytes, src, dst).unwrap();
    Ok((bytes, b, parsed))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip_v2(
        vrid in any::<u8>(), priority in any::<u8>(), secs in 1u16..=255,
        addrs in proptest::collection::vec(ipv4(), 0..=20), src in ipv4(), dst in ipv4(),
    ) {
        let a = Advert {
            version: Version::V2, vrid, priority, interval: Centis(secs * 100),
            addrs: addrs.into_iter().map(IpAddr::V4).collect(),
        };
        let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
        let (bytes, b, form) = encode_and_parse(&a, src, dst, ChecksumForm::WithoutPseudoHeader)?;
        prop_assert_eq!(bytes.len(), a.buffer_len());
        prop_assert_eq!(b, a);
        prop_assert_eq!(form, ChecksumForm::WithoutPseudoHeader);
    }

    #[test]
    fn roundtrip_v3_ipv4(
        vrid in any::<u8>(), priority in any::<u8>(), interval in 1u16..=4095,
        addrs in proptest::collection::vec(ipv4(), 1..=20), src in ipv4(), dst in ipv4(),
        form in form(),
    ) {
        let a = Advert {
            version: Version::V3, vrid, priority, interval: Centis(interval),
            addrs: addrs.into_iter().map(IpAddr::V4).collect(),
        };
        let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
        let (bytes, b, parsed_form) = encode_and_parse(&a, src, dst, form)?;
        prop_assert_eq!(&b, &a);
        if parsed_form != form {
            // Only possible when the pseudo-header sums to 0 (one's complement): then the
            // two forms are the same bytes.
            prop_assert_eq!(a.to_bytes(src, dst, parsed_form).unwrap(), bytes);
        }
    }

    #[test]
    fn roundtrip_v3_ipv6(
        vrid in any::<u8>(), priority in any::<u8>(), interval in 1u16..=4095,
        addrs in proptest::collection::vec(ipv6(), 1..=10), src in ipv6(), dst in ipv6(),
    ) {
        let a = Advert {
            version: Version::V3, vrid, priority, interval: Centis(interval),
            addrs: addrs.into_iter().map(IpAddr::V6).collect(),
        };
        let (src, dst) = (IpAddr::V6(src), IpAddr::V6(dst));
        let (_, b, form) = encode_and_parse(&a, src, dst, ChecksumForm::WithPseudoHeader)?;
        prop_assert_eq!(b, a);
        prop_assert_eq!(form, ChecksumForm::WithPseudoHeader);
    }

    #[test]
    fn parse_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        src in any_ip(), dst in any_ip(),
    ) {
        if let Ok((a, form)) = Advert::parse(&bytes, src, dst) {
            // Whatever is accepted is consistent with the view, and re-encodes.
            prop_assert!(a.buffer_len() <= bytes.len());
            let again = a.to_bytes(src, dst, form).unwrap();
            prop_assert_eq!(Advert::parse(&again, src, dst).unwrap().0, a);
        }
    }

    #[test]
    fn parse_never_panics_on_vrrp_like_bytes(
        first in prop_oneof![Just(0x21u8), Just(0x31u8), any::<u8>()],
        count in 0u8..8,
        rest in proptest::collection::vec(any::<u8>(), 0..160),
        src in any_ip(), dst in any_ip(),
    ) {
        let mut bytes = vec![first, 51, 150, count];
        bytes.extend_from_slice(&rest);
        if let Ok((a, form)) = Advert::parse(&bytes, src, dst) {
            let again = a.to_bytes(src, dst, form).unwrap();
            prop_assert_eq!(Advert::parse(&again, src, dst).unwrap().0, a);
        }
    }

    #[test]
    fn mutated_valid_adverts_decode_or_fail_cleanly(
        v6 in any::<bool>(), v2_ in any::<bool>(), n in 1usize..4,
        at in any::<prop::sample::Index>(), value in any::<u8>(), reseal in any::<bool>(),
        pseudo in any::<bool>(),
    ) {
        let (src, dst, addrs): (IpAddr, IpAddr, Vec<IpAddr>) = if v6 {
            (SRC6, GROUP6, (0..n).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))).collect())
        } else {
            (SRC4, GROUP4, (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i as u8))).collect())
        };
        let version = if v2_ && !v6 { Version::V2 } else { Version::V3 };
        let form = match (version, v6) {
            (Version::V2, _) => ChecksumForm::WithoutPseudoHeader,
            (_, true) => ChecksumForm::WithPseudoHeader,
            _ if pseudo => ChecksumForm::WithPseudoHeader,
            _ => ChecksumForm::WithoutPseudoHeader,
        };
        let a = Advert { version, vrid: 51, priority: 150, interval: Centis(100), addrs };
        let mut bytes = a.to_bytes(src, dst, form).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = value;
        if reseal {
            bytes = seal(bytes, src, dst, form == ChecksumForm::WithPseudoHeader);
        }
        match Advert::parse(&bytes, src, dst) {
            Ok((b, f)) => {
                let again = b.to_bytes(src, dst, f).unwrap();
                prop_assert_eq!(Advert::parse(&again, src, dst).unwrap().0, b);
            }
            Err(e) => prop_assert!(!e.label().is_empty()),
        }
    }

    #[test]
    fn view_accessors_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        v6 in any::<bool>(), src in any_ip(), dst in any_ip(), f in form(),
    ) {
        let family = if v6 { Family::V6 } else { Family::V4 };
        let check = |view: &VrrpPacket<&[u8]>| {
            let _ = (view.version_field(), view.version(), view.msg_type(), view.vrid());
            let _ = (view.priority(), view.reserved(), view.auth_type(), view.interval());
            let _ = (view.checksum(), view.packet_len(), view.auth_data());
            let _ = view.verify_checksum(src, dst, f);
            for i in 0..300 {
                let _ = view.addr(i);
            }
            view.addrs().count()
        };
        let unchecked = VrrpPacket::new_unchecked(&bytes[..], family);
        check(&unchecked);
        if let Ok(view) = VrrpPacket::new_checked(&bytes[..], family) {
            // After the checks every announced address is present.
            prop_assert_eq!(check(&view), usize::from(view.addr_count()));
            prop_assert!(view.packet_len() <= bytes.len());
            if view.version() == Version::V2 {
                prop_assert!(view.auth_data().is_some());
            }
        }
    }
}
