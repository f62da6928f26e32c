//! The VRRP checksum (RFC 5798 §5.2.8, RFC 3768 §5.3.8): the 16-bit one's complement
//! of the one's-complement sum of the message, with or without the IP pseudo-header in
//! front ([`ChecksumForm`]; which form VRRPv3 over IPv4 uses is a known disagreement
//! between implementations, docs/architecture.md).

use std::net::IpAddr;

use super::IP_PROTOCOL;

/// Which bytes the VRRP checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// The VRRP message preceded by the IP pseudo-header (RFC 5798 §5.2.8): the only form
    /// for IPv6; keepalived's and FRR's default for VRRPv3 over IPv4.
    WithPseudoHeader,
    /// The VRRP message alone: VRRPv2 (RFC 3768 §5.3.8); VRRPv3 over IPv4 as read by
    /// RFC 9568, Cisco and Juniper (keepalived `v3_checksum_as_v2`).
    WithoutPseudoHeader,
}

/// One's-complement sum (unfolded) of `data` as big-endian 16-bit words.
fn sum_words(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u64 = chunks
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Fold a 64-bit one's-complement sum into 16 bits.
pub(super) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves sum <= 0xffff.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// Unfolded sum of the pseudo-header (if `form` asks for it) and the VRRP message.
pub(super) fn checksum_sum(msg: &[u8], src: IpAddr, dst: IpAddr, form: ChecksumForm) -> u64 {
    let len = msg.len() as u64;
    let pseudo = match (form, src, dst) {
        (ChecksumForm::WithoutPseudoHeader, _, _) => 0,
        // RFC 5798 §5.2.8 -> RFC 768-style IPv4 pseudo-header: src, dst, 0, protocol, length.
        (ChecksumForm::WithPseudoHeader, IpAddr::V4(s), IpAddr::V4(d)) => {
            sum_words(&s.octets()) + sum_words(&d.octets()) + u64::from(IP_PROTOCOL) + len
        }
        // RFC 5798 §5.2.8 -> RFC 8200 §8.1: src, dst, 32-bit length, 3 zero bytes, next header.
        (ChecksumForm::WithPseudoHeader, IpAddr::V6(s), IpAddr::V6(d)) => {
            sum_words(&s.octets())
                + sum_words(&d.octets())
                + (len >> 16)
                + (len & 0xffff)
                + u64::from(IP_PROTOCOL)
        }
        // Mixed families: no pseudo-header exists; callers reject this case first.
        (ChecksumForm::WithPseudoHeader, _, _) => 0,
    };
    pseudo + sum_words(msg)
}

/// Compute the checksum of `msg` (whose checksum field must be zero).
pub(super) fn compute_checksum(msg: &[u8], src: IpAddr, dst: IpAddr, form: ChecksumForm) -> u16 {
    !fold(checksum_sum(msg, src, dst, form))
}
