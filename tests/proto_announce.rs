//! Announcement frames: gratuitous ARP (RFC 5798 §6.4.1, RFC 5227 §3) and unsolicited
//! Neighbour Advertisement (RFC 5798 §6.4.1, RFC 4861 §7.2.6), decoded byte by byte
//! without pnet.

use std::net::{Ipv4Addr, Ipv6Addr};

use vipd::proto::{gratuitous_arp, unsolicited_na};

const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[test]
fn rfc5798_6_4_1_gratuitous_arp_frame() {
    let vip = Ipv4Addr::new(192, 0, 2, 100);
    let f = gratuitous_arp(MAC, vip);
    assert_eq!(f.len(), 42);
    // Ethernet: broadcast destination, our source, ethertype ARP.
    assert_eq!(&f[0..6], &[0xff; 6]);
    assert_eq!(&f[6..12], &MAC);
    assert_eq!(be16(&f, 12), 0x0806);
    let arp = &f[14..];
    assert_eq!(be16(arp, 0), 1, "hardware type Ethernet");
    assert_eq!(be16(arp, 2), 0x0800, "protocol type IPv4");
    assert_eq!((arp[4], arp[5]), (6, 4), "address lengths");
    assert_eq!(be16(arp, 6), 1, "operation request");
    assert_eq!(&arp[8..14], &MAC, "sender MAC");
    assert_eq!(&arp[14..18], &vip.octets(), "sender IP = VIP");
    assert_eq!(&arp[18..24], &[0; 6], "target MAC zero");
    assert_eq!(&arp[24..28], &vip.octets(), "target IP = VIP");
}

/// Independent RFC 1071 sum over the IPv6 pseudo-header (RFC 8200 §8.1) and `msg`.
fn icmpv6_sum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(msg);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn rfc4861_7_2_6_unsolicited_na_frame() {
    let src: Ipv6Addr = "fe80::5e:10ff:fe20:3000".parse().unwrap();
    let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let f = unsolicited_na(MAC, src, vip);
    assert_eq!(f.len(), 14 + 40 + 32);
    // Ethernet: 33:33:00:00:00:01 (RFC 2464 §7), our source, ethertype IPv6.
    assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(&f[6..12], &MAC);
    assert_eq!(be16(&f, 12), 0x86dd);
    let ip = &f[14..54];
    assert_eq!(ip[0] >> 4, 6, "version");
    assert_eq!(be16(ip, 4), 32, "payload length");
    assert_eq!(ip[6], 58, "next header ICMPv6");
    assert_eq!(ip[7], 255, "RFC 4861 §7.1.2: hop limit 255");
    assert_eq!(&ip[8..24], &src.octets());
    assert_eq!(&ip[24..40], &all_nodes.octets());
    let na = &f[54..];
    assert_eq!((na[0], na[1]), (136, 0), "type NA, code 0");
    // Flags: R (0x80) clear, S (0x40) clear, O (0x20) set; reserved zero.
    assert_eq!(na[4], 0x20);
    assert_eq!(&na[5..8], &[0, 0, 0]);
    assert_eq!(&na[8..24], &vip.octets(), "target");
    // Target Link-Layer Address option: type 2, length 1 (8 bytes), our MAC.
    assert_eq!((na[24], na[25]), (2, 1));
    assert_eq!(&na[26..32], &MAC);
    // RFC 4443 §2.3: the checksum makes the one's-complement sum all ones.
    assert_ne!(be16(na, 2), 0);
    assert_eq!(icmpv6_sum(src, all_nodes, na), 0xffff);
    // A wrong source address would not verify: the checksum covers the pseudo-header.
    let other: Ipv6Addr = "fe80::1".parse().unwrap();
    assert_ne!(icmpv6_sum(other, all_nodes, na), 0xffff);
}
