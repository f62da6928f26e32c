//! VRRP advertisements: VRRPv3 (RFC 5798 §5) for IPv4 and IPv6, VRRPv2 (RFC 3768 §5).

use std::net::IpAddr;

/// A duration in centiseconds, the unit of the VRRPv3 Max Advertise Interval field.
///
/// VRRPv2 carries whole seconds; they are stored here as `seconds * 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Centis(pub u16);

impl Centis {
    /// As a `std::time::Duration`.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.0) * 10)
    }
}

/// The protocol version of an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768 (IPv4 only, interval in whole seconds).
    V2,
    /// VRRPv3, RFC 5798.
    V3,
}

/// A decoded VRRP advertisement (the plain representation of the wire packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual Router Identifier, 1..=255.
    pub vrid: u8,
    /// Sender's priority: 0 = master is leaving, 255 = address owner.
    pub priority: u8,
    /// Advertisement interval (v3: Max Advertise Interval; v2: Adver Int * 100).
    pub interval: Centis,
    /// The virtual addresses, all of one family. For IPv6 the first is link-local.
    pub addrs: Vec<IpAddr>,
}
