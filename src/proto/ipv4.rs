//! The IPv4 header that a raw IPv4 socket delivers in front of the VRRP payload
//! (RFC 791 §3.1).

use std::net::Ipv4Addr;

use super::vrrp::DecodeError;

/// The minimum IPv4 header length (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;

/// The fields of an IPv4 header that VRRP receive processing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// Source address (the sender's primary address, RFC 5798 §5.1.1.1).
    pub src: Ipv4Addr,
    /// Destination address (224.0.0.18 or a unicast peer).
    pub dst: Ipv4Addr,
    /// Time to live: 255 for a valid advert (RFC 5798 §7.1).
    pub ttl: u8,
    /// Protocol: 112 for VRRP.
    pub protocol: u8,
}

/// Split a received IPv4 packet into its header and payload.
///
/// The header length is IHL * 4 (options exist); the payload ends at Total Length, so
/// trailing bytes (padding) are dropped. Rejects a version other than 4, IHL < 5, a
/// header beyond the bytes, and Total Length below the header length or beyond the
/// bytes. The header checksum is not verified (the kernel has done so).
pub fn parse_ipv4(bytes: &[u8]) -> Result<(Ipv4Header, &[u8]), DecodeError> {
    let len = bytes.len();
    let fixed = bytes
        .get(..MIN_HEADER_LEN)
        .ok_or(DecodeError::Ipv4TooShort { len })?;
    // RFC 791 §3.1: Version 4.
    let version = fixed[0] >> 4;
    if version != 4 {
        return Err(DecodeError::Ipv4BadVersion(version));
    }
    // RFC 791 §3.1: IHL in 32-bit words, minimum 5.
    let header_len = usize::from(fixed[0] & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN || header_len > len {
        return Err(DecodeError::Ipv4BadHeaderLength { header_len, len });
    }
    // RFC 791 §3.1: Total Length covers header and data.
    let total_len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    let payload = if total_len < header_len {
        None
    } else {
        bytes.get(header_len..total_len)
    }
    .ok_or(DecodeError::Ipv4BadTotalLength {
        total_len,
        header_len,
        len,
    })?;
    let header = Ipv4Header {
        ttl: fixed[8],
        protocol: fixed[9],
        src: Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]),
        dst: Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]),
    };
    Ok((header, payload))
}
