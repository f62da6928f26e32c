//! Feed arbitrary bytes to every decoder: the first byte picks the address family of
//! the made-up source/destination, the rest is an IPv4 packet, a bare VRRP payload and a BFD Control packet.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vipd::proto::bfd::ControlPacket;
use vipd::proto::parse_ipv4;
use vipd::proto::vrrp::{Advert, ChecksumForm, Family, VrrpPacket};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if let Ok((h, payload)) = parse_ipv4(rest) {
        let _ = Advert::parse(payload, h.src.into(), h.dst.into());
    }
    let (src, dst, family) = if sel & 1 == 0 {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
            IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
            Family::Ipv4,
        )
    } else {
        (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
            Family::Ipv6,
        )
    };
    if let Ok((advert, form)) = Advert::parse(rest, src, dst) {
        // What decodes re-encodes, and decodes to the same advert.
        let bytes = advert.to_bytes(src, dst, form).expect("re-encode");
        assert_eq!(Advert::parse(&bytes, src, dst).map(|r| r.0), Ok(advert));
    }
    if let Ok(p) = ControlPacket::parse(rest) {
        let q = ControlPacket::parse(&p.to_bytes()).expect("re-encoded BFD packet decodes");
        assert_eq!(q.my_discr, p.my_discr);
    }
    if let Ok(view) = VrrpPacket::new_checked(rest, family) {
        assert_eq!(view.addrs().count(), usize::from(view.addr_count()));
        let _ = view.verify_checksum(src, dst, ChecksumForm::WithPseudoHeader);
    }
});
