//! Why bytes are not an advert ([`DecodeError`], one variant per receive check) and why
//! an advert cannot be written ([`EncodeError`]).

use super::{Centis, ChecksumForm, DropReason, Family, Version};

/// Why received bytes are not an acceptable VRRP advert.
///
/// The VRRP variants map one-to-one onto the receive checks of RFC 5798 §7.1 (and RFC 3768
/// §7.1) that can be made from the bytes and the IP addresses alone; the `Ipv4*` variants
/// are the IPv4 header in front of them ([`crate::proto::ipv4::parse_ipv4`]). Each has a
/// stable metric label ([`DecodeError::label`]).
///
/// Not a variant, by decision:
/// - v3 `rsvd` bits set: RFC 5798 §5.2.7 says they "MUST be set to zero on transmission
///   and ignored on reception", so they are ignored (readable with
///   [`VrrpPacket::reserved`](super::VrrpPacket::reserved)).
/// - IPv6 first address not link-local: RFC 5798 §5.2.9 is a sender rule, not a §7.1
///   receive check, and keepalived 2.2.7 sends its configured global VIP first (see the
///   captured fixture); rejecting would break interoperation.
/// - VRID not configured, interval mismatch, TTL / hop limit: need local state (or, for
///   the IPv6 hop limit, a control message), checked by the receive filter
///   ([`crate::vrrp::RecvFilter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// RFC 5798 §7.1: shorter than the fixed header (8 bytes; 16 for VRRPv2 with its
    /// authentication trailer).
    #[error("VRRP packet too short: {len} bytes, the fixed part needs {need}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the fixed part needs.
        need: usize,
    },
    /// RFC 5798 §7.1: the version is neither 3 nor (RFC 3768) 2.
    #[error("VRRP version {0} (expected 2 or 3)")]
    BadVersion(u8),
    /// RFC 5798 §5.2.2: "A packet with unknown type MUST be discarded."
    #[error("VRRP type {0} (only 1, ADVERTISEMENT, is defined)")]
    BadType(u8),
    /// RFC 5798 §7.1: the packet does not contain the `Count IPvX Addr` addresses it
    /// announces (and for VRRPv2 the authentication data after them).
    #[error("VRRP packet announces {count} addresses ({need} bytes) but has only {len} bytes")]
    AddressCountMismatch {
        /// The Count IPvX Addr field.
        count: u8,
        /// Length implied by the count.
        need: usize,
        /// Bytes received.
        len: usize,
    },
    /// RFC 5798 §7.1: the checksum verifies in no acceptable form.
    #[error("VRRP checksum does not verify")]
    BadChecksum,
    /// RFC 5798 §5.2.7 / RFC 3768 §5.3.7: an advertisement interval of 0 cannot drive
    /// the Master_Down timer.
    #[error("VRRP advertisement interval is 0")]
    IntervalZero,
    /// RFC 3768 §5.3.6 and §7.1: only Auth Type 0 (no authentication) is supported, and a
    /// packet whose Auth Type differs from the local one MUST be discarded.
    #[error("VRRPv2 authentication type {0} (only 0, no authentication, is supported)")]
    UnsupportedAuthType(u8),
    /// The IP source and destination are of different families, or a VRRPv2 packet came
    /// over IPv6 (RFC 3768 is IPv4-only).
    #[error("address family mismatch between IP header and VRRP version")]
    FamilyMismatch,
    /// RFC 5798 §5.2.5: `Count IPvX Addr` "minimum value is 1" (VRRPv3).
    #[error("VRRPv3 advert carries no address")]
    NoAddresses,
    /// The packet is a CARP advert (ucarp): first byte 0x21 like VRRPv2, but 36 bytes and
    /// an address count that does not fit that length.
    #[error("CARP advertisement, not VRRP")]
    Carp,
    /// IPv4 header shorter than 20 bytes.
    #[error("IPv4 header truncated: {len} bytes")]
    Ipv4TooShort {
        /// Bytes received.
        len: usize,
    },
    /// IPv4 header Version field is not 4.
    #[error("IP version {0} in an IPv4 header")]
    Ipv4BadVersion(u8),
    /// IPv4 IHL below 5 or beyond the received bytes.
    #[error("IPv4 header length {header_len} invalid for {len} bytes")]
    Ipv4BadHeaderLength {
        /// IHL * 4.
        header_len: usize,
        /// Bytes received.
        len: usize,
    },
    /// IPv4 Total Length below the header length or beyond the received bytes.
    #[error("IPv4 total length {total_len} invalid (header {header_len}, received {len})")]
    Ipv4BadTotalLength {
        /// The Total Length field.
        total_len: usize,
        /// IHL * 4.
        header_len: usize,
        /// Bytes received.
        len: usize,
    },
}

impl DecodeError {
    /// The receive-drop reason this error counts as (one reason per variant).
    pub fn reason(&self) -> DropReason {
        match self {
            DecodeError::TooShort { .. } => DropReason::TooShort,
            DecodeError::BadVersion(_) => DropReason::BadVersion,
            DecodeError::BadType(_) => DropReason::BadType,
            DecodeError::AddressCountMismatch { .. } => DropReason::AddressCountMismatch,
            DecodeError::BadChecksum => DropReason::BadChecksum,
            DecodeError::IntervalZero => DropReason::IntervalZero,
            DecodeError::UnsupportedAuthType(_) => DropReason::AuthType,
            DecodeError::FamilyMismatch => DropReason::FamilyMismatch,
            DecodeError::NoAddresses => DropReason::NoAddresses,
            DecodeError::Carp => DropReason::Carp,
            DecodeError::Ipv4TooShort { .. } => DropReason::Ipv4TooShort,
            DecodeError::Ipv4BadVersion(_) => DropReason::Ipv4BadVersion,
            DecodeError::Ipv4BadHeaderLength { .. } => DropReason::Ipv4BadHeaderLength,
            DecodeError::Ipv4BadTotalLength { .. } => DropReason::Ipv4BadTotalLength,
        }
    }

    /// The metric label (`reason="..."`): that of [`DecodeError::reason`].
    pub fn label(&self) -> &'static str {
        self.reason().label()
    }
}

/// Why an [`Advert`](super::Advert) cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The output buffer is shorter than [`Advert::buffer_len`](super::Advert::buffer_len).
    #[error("buffer of {have} bytes, advert needs {need}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// Source, destination and addresses are not all of one family, or VRRPv2 over IPv6.
    #[error("addresses of mixed families, or VRRPv2 over IPv6")]
    FamilyMismatch,
    /// More than 255 addresses (Count IPvX Addr is 8 bits).
    #[error("{0} addresses, at most 255 fit")]
    TooManyAddresses(usize),
    /// RFC 5798 §5.2.5: a VRRPv3 advert carries at least one address.
    #[error("VRRPv3 advert without addresses")]
    NoAddresses,
    /// RFC 3768 §5.3.7: a VRRPv2 Adver Int is whole seconds, 1..=255.
    #[error("VRRPv2 interval {0:?} is not a whole number of seconds in 1..=255")]
    V2Interval(Centis),
    /// RFC 5798 §5.2.7: a VRRPv3 Max Adver Int is 1..=4095 centiseconds.
    #[error("VRRPv3 interval {0:?} outside 1..=4095 centiseconds")]
    V3Interval(Centis),
    /// The checksum form is not the one the version and family prescribe (VRRPv2: without
    /// pseudo-header; VRRPv3 over IPv6: with).
    #[error("checksum form {form:?} not allowed for {version:?} over {family:?}")]
    ChecksumFormNotAllowed {
        /// Requested form.
        form: ChecksumForm,
        /// Advert version.
        version: Version,
        /// Address family.
        family: Family,
    },
}
