//! Gratuitous ARP (RFC 5798 §6.4.1 (2), RFC 5227 §3): the frame a new IPv4 master
//! broadcasts so that neighbours point the VIP at its MAC.

use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};

/// Ethernet header length.
const ETHERNET_LEN: usize = 14;
/// ARP payload length for Ethernet / IPv4.
const ARP_LEN: usize = 28;
/// Length of the frame [`gratuitous_arp`] builds.
pub const GRATUITOUS_ARP_LEN: usize = ETHERNET_LEN + ARP_LEN;

/// An Ethernet frame carrying a gratuitous ARP request for `vip`: to
/// ff:ff:ff:ff:ff:ff from `src_mac`, operation 1 (request), sender MAC `src_mac`,
/// sender IP = target IP = `vip`, target MAC zero (as keepalived and arping send it).
pub fn gratuitous_arp(src_mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; GRATUITOUS_ARP_LEN];
    let (eth_buf, arp_buf) = frame.split_at_mut(ETHERNET_LEN);
    // Buffers are sized exactly for the headers, so the constructors cannot fail; if they
    // ever did, the frame would stay zeroed rather than panic.
    if let Some(mut arp) = MutableArpPacket::new(arp_buf) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        // RFC 5227 §3: an ARP Announcement is a request with sender IP = target IP.
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(src_mac.into());
        arp.set_sender_proto_addr(vip);
        arp.set_target_hw_addr([0u8; 6].into());
        arp.set_target_proto_addr(vip);
    }
    // Header-only buffer: MutableEthernetPacket needs exactly its 14 bytes.
    if let Some(mut eth) = MutableEthernetPacket::new(eth_buf) {
        eth.set_destination([0xffu8; 6].into());
        eth.set_source(src_mac.into());
        eth.set_ethertype(EtherTypes::Arp);
    }
    frame
}
