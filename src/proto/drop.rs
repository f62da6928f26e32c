//! Why a received VRRP packet was not handed to a router: the one list of receive-drop
//! reasons, and their metric labels (`vipd_adverts_dropped_total{reason=...}`).
//!
//! Three places drop a packet, and each maps its own error one-to-one onto a
//! [`DropReason`]: the codec ([`DecodeError::reason`]: the RFC 5798 §7.1 checks that
//! the bytes and IP addresses decide), the receive filter
//! ([`crate::vrrp::RecvDrop::reason`]: the §7.1 checks that need the configuration),
//! and the receiver ([`DropReason::OtherVrid`] with no router for the VRID,
//! [`DropReason::QueueFull`]). The labels are a contract: dashboards, the alerts in
//! `packaging/monitoring` and the tests use them. Add, never rename.
//!
//! [`DecodeError::reason`]: super::vrrp::DecodeError::reason

/// One reason a received advert was dropped. [`DropReason::label`] is its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    // ---- the codec: the bytes (RFC 5798 §5, §7.1; RFC 3768 §5, §7.1) ----
    /// Shorter than the fixed header.
    TooShort,
    /// Version neither 2 nor 3.
    BadVersion,
    /// Type other than ADVERTISEMENT.
    BadType,
    /// Fewer bytes than `Count IPvX Addr` announces.
    AddressCountMismatch,
    /// The checksum verifies in no acceptable form.
    BadChecksum,
    /// An advertisement interval of 0.
    IntervalZero,
    /// VRRPv2 authentication other than none.
    AuthType,
    /// IP source, destination and VRRP version disagree on the family (the codec), or
    /// the source is of the other family than the router (the filter).
    FamilyMismatch,
    /// A VRRPv3 advert without addresses.
    NoAddresses,
    /// A CARP advert (ucarp), not VRRP.
    Carp,
    /// IPv4 header shorter than 20 bytes.
    Ipv4TooShort,
    /// IPv4 Version field not 4.
    Ipv4BadVersion,
    /// IPv4 IHL invalid.
    Ipv4BadHeaderLength,
    /// IPv4 Total Length invalid.
    Ipv4BadTotalLength,
    // ---- the receive filter: the configuration (RFC 5798 §7.1) ----
    /// TTL / hop limit not 255.
    TtlNot255,
    /// A VRID no router on this interface runs.
    OtherVrid,
    /// Another VRRP version than the router's.
    VersionMismatch,
    /// VRRPv2: another advert interval than ours (RFC 3768 §7.1).
    IntervalMismatch,
    /// Our own advert, looped back.
    FromSelf,
    /// Unicast mode: not from a configured peer.
    UnknownPeer,
    // ---- the receiver ----
    /// The router's input queue was full.
    QueueFull,
    /// The receiver panicked on this packet (a bug): the packet is lost, the receiver
    /// goes on.
    ReceiverPanic,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 22] = [
        DropReason::TooShort,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::AddressCountMismatch,
        DropReason::BadChecksum,
        DropReason::IntervalZero,
        DropReason::AuthType,
        DropReason::FamilyMismatch,
        DropReason::NoAddresses,
        DropReason::Carp,
        DropReason::Ipv4TooShort,
        DropReason::Ipv4BadVersion,
        DropReason::Ipv4BadHeaderLength,
        DropReason::Ipv4BadTotalLength,
        DropReason::TtlNot255,
        DropReason::OtherVrid,
        DropReason::VersionMismatch,
        DropReason::IntervalMismatch,
        DropReason::FromSelf,
        DropReason::UnknownPeer,
        DropReason::QueueFull,
        DropReason::ReceiverPanic,
    ];

    /// The stable snake_case metric label (`reason="..."`).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::AddressCountMismatch => "address_count_mismatch",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::IntervalZero => "interval_zero",
            DropReason::AuthType => "auth_type",
            DropReason::FamilyMismatch => "family_mismatch",
            DropReason::NoAddresses => "no_addresses",
            DropReason::Carp => "carp",
            DropReason::Ipv4TooShort => "ipv4_too_short",
            DropReason::Ipv4BadVersion => "ipv4_bad_version",
            DropReason::Ipv4BadHeaderLength => "ipv4_bad_header_length",
            DropReason::Ipv4BadTotalLength => "ipv4_bad_total_length",
            DropReason::TtlNot255 => "ttl_not_255",
            DropReason::OtherVrid => "other_vrid",
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::FromSelf => "from_self",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::QueueFull => "queue_full",
            DropReason::ReceiverPanic => "receiver_panic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case_and_all_is_complete() {
        let mut labels: Vec<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
        for l in &labels {
            assert!(
                l.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                "{l}"
            );
        }
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::ALL.len());
        let mut sorted = DropReason::ALL;
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            DropReason::ALL,
            "ALL is in declaration order, once each"
        );
    }

    /// docs/operations.md lists every label of `vipd_adverts_dropped_total`.
    #[test]
    fn operations_doc_lists_every_label() {
        let doc = include_str!("../../docs/operations.md");
        let row = doc
            .lines()
            .find(|l| l.contains("`adverts_dropped_total`"))
            .expect("the adverts_dropped_total row");
        for r in DropReason::ALL {
            let l = r.label();
            let listed = row.contains(&format!("`{l}`"))
                || (l.starts_with("ipv4_") && row.contains("`ipv4_*`"));
            assert!(listed, "docs/operations.md does not list {l}");
        }
    }
}
