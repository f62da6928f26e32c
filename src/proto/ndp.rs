//! Unsolicited Neighbour Advertisement (RFC 5798 §6.4.1 (3), RFC 4861 §7.2.6): the
//! frame a new IPv6 master sends to all nodes so that neighbours point the VIP at its MAC.

use std::net::Ipv6Addr;

use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::MutableIpv6Packet;

const ETHERNET_LEN: usize = 14;
const IPV6_LEN: usize = 40;
/// ICMPv6 NA: type, code, checksum, flags + reserved, target address.
const NA_LEN: usize = 24;
/// Target Link-Layer Address option for Ethernet: type, length 1 (8 bytes), MAC.
const TLLA_LEN: usize = 8;
/// Length of the frame [`unsolicited_na`] builds.
pub const UNSOLICITED_NA_LEN: usize = ETHERNET_LEN + IPV6_LEN + NA_LEN + TLLA_LEN;

/// The all-nodes multicast address ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet address of ff02::1 (RFC 2464 §7: 33:33 + low 32 bits).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// An Ethernet frame carrying an unsolicited Neighbour Advertisement for `vip`:
/// Ethernet 33:33:00:00:00:01 from `src_mac`; IPv6 from `src` (the link-local address)
/// to ff02::1, hop limit 255; ICMPv6 type 136 code 0, Override set, Router and
/// Solicited clear, target `vip`, Target Link-Layer Address option = `src_mac`.
pub fn unsolicited_na(src_mac: [u8; 6], src: Ipv6Addr, vip: Ipv6Addr) -> Vec<u8> {
    let mut frame = vec![0u8; UNSOLICITED_NA_LEN];
    let (eth_buf, rest) = frame.split_at_mut(ETHERNET_LEN);
    let (ip_buf, icmp_buf) = rest.split_at_mut(IPV6_LEN);
    // Buffers are sized exactly for their headers, so the constructors cannot fail; if
    // they ever did, the frame would stay zeroed rather than panic.
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut *icmp_buf) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(icmpv6::Icmpv6Code(0));
        // RFC 4861 §7.2.6: unsolicited NA sets Override, clears Solicited; not a router.
        na.set_flags(NeighborAdvertFlags::Override);
        na.set_target_addr(vip);
        // RFC 4861 §4.4: include the Target Link-Layer Address option.
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: src_mac.to_vec(),
        }]);
    }
    // RFC 4443 §2.3: checksum over the IPv6 pseudo-header and the ICMPv6 message.
    let sum = Icmpv6Packet::new(&*icmp_buf)
        .map(|p| icmpv6::checksum(&p, &src, &ALL_NODES))
        .unwrap_or(0);
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut *icmp_buf) {
        na.set_checksum(sum);
    }
    if let Some(mut ip) = MutableIpv6Packet::new(ip_buf) {
        ip.set_version(6);
        ip.set_payload_length((NA_LEN + TLLA_LEN) as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        // RFC 4861 §7.1.2: hop limit 255, or receivers discard it.
        ip.set_hop_limit(255);
        ip.set_source(src);
        ip.set_destination(ALL_NODES);
    }
    if let Some(mut eth) = MutableEthernetPacket::new(eth_buf) {
        eth.set_destination(ALL_NODES_MAC.into());
        eth.set_source(src_mac.into());
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    frame
}
