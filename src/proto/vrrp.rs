//! VRRP advertisements: VRRPv3 (RFC 5798 §5) for IPv4 and IPv6, VRRPv2 (RFC 3768 §5).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::drop::DropReason;

mod checksum;
mod error;

pub use checksum::ChecksumForm;
use checksum::{checksum_sum, compute_checksum, fold};
pub use error::{DecodeError, EncodeError};

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

/// IP protocol number of VRRP (RFC 5798 §5.1.1.4, RFC 3768 §5.2.4).
pub const IP_PROTOCOL: u8 = 112;
/// IPv4 multicast group of VRRP adverts (RFC 5798 §5.1.1.2).
pub const IPV4_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP adverts (RFC 5798 §5.1.2.2).
pub const IPV6_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit of every advert (RFC 5798 §5.1.1.3, §5.1.2.3).
pub const TTL: u8 = 255;

/// Length of the fixed VRRP header (version/type .. checksum).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 Authentication Data trailer (RFC 3768 §5.3.10).
pub const V2_AUTH_DATA_LEN: usize = 8;
/// Length of a CARP advert (ucarp / OpenBSD CARP), which shares protocol 112,
/// group 224.0.0.18 and first byte 0x21 with VRRPv2.
pub const CARP_LEN: usize = 36;
/// VRRP Type ADVERTISEMENT, the only type defined (RFC 5798 §5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Largest v3 Max Advertise Interval: 12 bits of centiseconds (RFC 5798 §5.2.7).
pub const V3_MAX_INTERVAL: Centis = Centis(0x0fff);

impl Version {
    /// The value of the 4-bit Version field.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// An address family: of an advert (its IP header and every address it carries), of
/// an instance (its VIPs), of a peer. The one definition in the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: addresses are 4 bytes.
    V4,
    /// IPv6: addresses are 16 bytes (VRRPv3 only).
    V6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The length of one address of this family on the wire.
    pub fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The family shared by a source and a destination, if they agree.
    pub fn of_pair(src: IpAddr, dst: IpAddr) -> Option<Family> {
        let f = Family::of(src);
        (f == Family::of(dst)).then_some(f)
    }
}

/// A read-only view over the bytes of a VRRP packet (v2 or v3, IPv4 or IPv6).
///
/// [`VrrpPacket::new_checked`] verifies every length once; after it, no accessor can
/// panic. [`VrrpPacket::new_unchecked`] skips the checks, and then the accessors return
/// zero / `None` for bytes that are missing rather than panicking.
#[derive(Debug, Clone)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Wrap a buffer without checking it.
    pub fn new_unchecked(buffer: T, family: Family) -> Self {
        VrrpPacket { buffer, family }
    }

    /// Wrap a buffer, checking (in this order) that it holds the fixed header, a known
    /// version, a version allowed for the family, is not CARP, and holds every address
    /// announced by `Count IPvX Addr` (plus the v2 authentication data). Trailing bytes
    /// beyond that length (Ethernet padding) are allowed and ignored.
    pub fn new_checked(buffer: T, family: Family) -> Result<Self, DecodeError> {
        let packet = Self::new_unchecked(buffer, family);
        packet.check_len()?;
        Ok(packet)
    }

    fn check_len(&self) -> Result<(), DecodeError> {
        let bytes = self.buffer.as_ref();
        let len = bytes.len();
        // RFC 5798 §7.1: the packet must contain the complete VRRP packet, fixed fields first.
        if len < HEADER_LEN {
            return Err(DecodeError::TooShort {
                len,
                need: HEADER_LEN,
            });
        }
        // RFC 5798 §7.1: version 3 (RFC 3768 §7.1: version 2).
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(DecodeError::BadVersion(v)),
        };
        // RFC 3768 §1: VRRPv2 is defined for IPv4 only.
        if version == Version::V2 && self.family == Family::V6 {
            return Err(DecodeError::FamilyMismatch);
        }
        let count = bytes[3];
        let need = packet_len(version, self.family, count);
        // ucarp's CARP: 0x21 like VRRPv2, told apart only by its 36-byte length.
        if version == Version::V2 && len == CARP_LEN && need != CARP_LEN {
            return Err(DecodeError::Carp);
        }
        let fixed = packet_len(version, self.family, 0);
        if len < fixed {
            return Err(DecodeError::TooShort { len, need: fixed });
        }
        // RFC 5798 §7.1: all Count IPvX Addr addresses present (RFC 3768: and auth data).
        if len < need {
            return Err(DecodeError::AddressCountMismatch { count, need, len });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The address family the view was created for.
    pub fn family(&self) -> Family {
        self.family
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    /// The raw 4-bit Version field.
    pub fn version_field(&self) -> u8 {
        self.byte(0) >> 4
    }

    /// The version (V3 for any value but 2; exact after `new_checked`).
    pub fn version(&self) -> Version {
        if self.version_field() == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }

    /// The 4-bit Type field (RFC 5798 §5.2.2).
    pub fn msg_type(&self) -> u8 {
        self.byte(0) & 0x0f
    }

    /// Virtual Rtr ID (RFC 5798 §5.2.3).
    pub fn vrid(&self) -> u8 {
        self.byte(1)
    }

    /// Priority (RFC 5798 §5.2.4).
    pub fn priority(&self) -> u8 {
        self.byte(2)
    }

    /// Count IPvX Addr (RFC 5798 §5.2.5).
    pub fn addr_count(&self) -> u8 {
        self.byte(3)
    }

    /// VRRPv3: the 4 `rsvd` bits (RFC 5798 §5.2.6), ignored on receive. VRRPv2: 0.
    pub fn reserved(&self) -> u8 {
        match self.version() {
            Version::V3 => self.byte(4) >> 4,
            Version::V2 => 0,
        }
    }

    /// VRRPv2: the Auth Type field (RFC 3768 §5.3.6). VRRPv3: `None`.
    pub fn auth_type(&self) -> Option<u8> {
        match self.version() {
            Version::V2 => Some(self.byte(4)),
            Version::V3 => None,
        }
    }

    /// The advertisement interval: v3 Max Adver Int, 12 bits of centiseconds
    /// (RFC 5798 §5.2.7); v2 Adver Int in seconds, times 100 (RFC 3768 §5.3.7).
    pub fn interval(&self) -> Centis {
        match self.version() {
            Version::V3 => Centis(u16::from_be_bytes([self.byte(4) & 0x0f, self.byte(5)])),
            Version::V2 => Centis(u16::from(self.byte(5)) * 100),
        }
    }

    /// The Checksum field (RFC 5798 §5.2.8).
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.byte(6), self.byte(7)])
    }

    /// The length of the VRRP packet implied by version, family and address count
    /// (without any trailing padding).
    pub fn packet_len(&self) -> usize {
        packet_len(self.version(), self.family, self.addr_count())
    }

    /// The `index`th address, if it is within both the count and the buffer.
    pub fn addr(&self, index: usize) -> Option<IpAddr> {
        if index >= usize::from(self.addr_count()) {
            return None;
        }
        let n = self.family.addr_len();
        let start = HEADER_LEN + index * n;
        let raw = self.buffer.as_ref().get(start..start + n)?;
        Some(match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?)),
        })
    }

    /// The addresses, in order (as many as the count announces and the buffer holds).
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (0..usize::from(self.addr_count())).map_while(move |i| self.addr(i))
    }

    /// VRRPv2: the 8 bytes of Authentication Data (RFC 3768 §5.3.10), if present.
    pub fn auth_data(&self) -> Option<&[u8]> {
        if self.version() != Version::V2 {
            return None;
        }
        let start = HEADER_LEN + usize::from(self.addr_count()) * self.family.addr_len();
        self.buffer.as_ref().get(start..start + V2_AUTH_DATA_LEN)
    }

    /// Whether the checksum verifies in `form`, for a packet sent from `src` to `dst`
    /// (the real destination, unicast or multicast). `false` if bytes are missing or
    /// `src` / `dst` are not of the view's family.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr, form: ChecksumForm) -> bool {
        if Family::of_pair(src, dst) != Some(self.family) {
            return false;
        }
        match self.buffer.as_ref().get(..self.packet_len()) {
            Some(msg) => fold(checksum_sum(msg, src, dst, form)) == 0xffff,
            None => false,
        }
    }
}

/// Length of a VRRP packet of `version` carrying `count` addresses of `family`.
fn packet_len(version: Version, family: Family, count: u8) -> usize {
    let trailer = match version {
        Version::V2 => V2_AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + usize::from(count) * family.addr_len() + trailer
}

impl Advert {
    /// Decode a VRRP advert from the IP payload `bytes` (after the IPv4 header / as read
    /// from an IPv6 raw socket), sent from `src` to `dst`. Bytes beyond the length
    /// implied by `Count IPvX Addr` are ignored (Ethernet padding).
    ///
    /// Returns the advert and the checksum form that verified: VRRPv2 only without the
    /// pseudo-header (RFC 3768 §5.3.8), VRRPv3 over IPv6 only with it (RFC 5798 §5.2.8),
    /// VRRPv3 over IPv4 either (tried with it first, as keepalived and FRR send it).
    ///
    /// Checks, in order: families of `src`/`dst`, then [`VrrpPacket::new_checked`]
    /// (length, version, CARP, count), type, checksum, v2 auth type, interval, v3 count.
    pub fn parse(
        bytes: &[u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(Advert, ChecksumForm), DecodeError> {
        let family = Family::of_pair(src, dst).ok_or(DecodeError::FamilyMismatch)?;
        let packet = VrrpPacket::new_checked(bytes, family)?;
        // RFC 5798 §5.2.2: a packet with unknown type MUST be discarded.
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(DecodeError::BadType(packet.msg_type()));
        }
        let version = packet.version();
        // RFC 5798 §7.1: MUST verify the VRRP checksum (forms: see ChecksumForm).
        let candidates: &[ChecksumForm] = match (version, family) {
            (Version::V2, _) => &[ChecksumForm::WithoutPseudoHeader],
            (Version::V3, Family::V6) => &[ChecksumForm::WithPseudoHeader],
            (Version::V3, Family::V4) => &[
                ChecksumForm::WithPseudoHeader,
                ChecksumForm::WithoutPseudoHeader,
            ],
        };
        let form = candidates
            .iter()
            .copied()
            .find(|&f| packet.verify_checksum(src, dst, f))
            .ok_or(DecodeError::BadChecksum)?;
        // RFC 3768 §7.1: discard unless Auth Type matches ours, which is always 0.
        if let Some(auth) = packet.auth_type() {
            if auth != 0 {
                return Err(DecodeError::UnsupportedAuthType(auth));
            }
        }
        // RFC 5798 §5.2.7 / RFC 3768 §5.3.7: an interval of 0 is meaningless.
        let interval = packet.interval();
        if interval.0 == 0 {
            return Err(DecodeError::IntervalZero);
        }
        // RFC 5798 §5.2.5: Count IPvX Addr minimum value is 1.
        if version == Version::V3 && packet.addr_count() == 0 {
            return Err(DecodeError::NoAddresses);
        }
        let advert = Advert {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            interval,
            addrs: packet.addrs().collect(),
        };
        Ok((advert, form))
    }

    /// The number of bytes [`Advert::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let addrs: usize = self.addrs.iter().map(|a| Family::of(*a).addr_len()).sum();
        let trailer = match self.version {
            Version::V2 => V2_AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + addrs + trailer
    }

    /// Encode the advert into `buf` for a packet from `src` to `dst` (the real
    /// destination: the group, or a unicast peer), with the checksum in `form`.
    /// Returns the number of bytes written ([`Advert::buffer_len`]).
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: IpAddr,
        dst: IpAddr,
        form: ChecksumForm,
    ) -> Result<usize, EncodeError> {
        let family = Family::of_pair(src, dst).ok_or(EncodeError::FamilyMismatch)?;
        if self.addrs.iter().any(|a| Family::of(*a) != family) {
            return Err(EncodeError::FamilyMismatch);
        }
        // RFC 3768 §1: VRRPv2 is IPv4 only.
        if self.version == Version::V2 && family == Family::V6 {
            return Err(EncodeError::FamilyMismatch);
        }
        // RFC 5798 §5.2.5: the count is 8 bits, minimum 1 (v3).
        let count = u8::try_from(self.addrs.len())
            .map_err(|_| EncodeError::TooManyAddresses(self.addrs.len()))?;
        if self.version == Version::V3 && count == 0 {
            return Err(EncodeError::NoAddresses);
        }
        let allowed = match (self.version, family) {
            // RFC 3768 §5.3.8: checksum over the VRRP message only.
            (Version::V2, _) => form == ChecksumForm::WithoutPseudoHeader,
            // RFC 5798 §5.2.8: IPv6 always with the pseudo-header.
            (Version::V3, Family::V6) => form == ChecksumForm::WithPseudoHeader,
            (Version::V3, Family::V4) => true,
        };
        if !allowed {
            return Err(EncodeError::ChecksumFormNotAllowed {
                form,
                version: self.version,
                family,
            });
        }
        let (byte4, byte5) = match self.version {
            // RFC 3768 §5.3.6-7: Auth Type 0, Adver Int in whole seconds 1..=255.
            Version::V2 => {
                let secs = self.interval.0 / 100;
                if self.interval.0 % 100 != 0 || !(1..=255).contains(&secs) {
                    return Err(EncodeError::V2Interval(self.interval));
                }
                (
                    0u8,
                    u8::try_from(secs).map_err(|_| EncodeError::V2Interval(self.interval))?,
                )
            }
            // RFC 5798 §5.2.6-7: 4 rsvd bits zero, 12 bits of centiseconds.
            Version::V3 => {
                if self.interval.0 == 0 || self.interval > V3_MAX_INTERVAL {
                    return Err(EncodeError::V3Interval(self.interval));
                }
                let [hi, lo] = self.interval.0.to_be_bytes();
                (hi & 0x0f, lo)
            }
        };
        let len = self.buffer_len();
        let have = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(EncodeError::BufferTooSmall { need: len, have })?;
        out.fill(0);
        out[0] = (self.version.number() << 4) | TYPE_ADVERTISEMENT;
        out[1] = self.vrid;
        out[2] = self.priority;
        out[3] = count;
        out[4] = byte4;
        out[5] = byte5;
        let mut at = HEADER_LEN;
        for addr in &self.addrs {
            match addr {
                IpAddr::V4(a) => out[at..at + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => out[at..at + 16].copy_from_slice(&a.octets()),
            }
            at += family.addr_len();
        }
        // RFC 3768 §5.3.10: Authentication Data zero for Auth Type 0 (already zeroed).
        let sum = compute_checksum(out, src, dst, form);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(len)
    }

    /// [`Advert::emit`] into a new vector of [`Advert::buffer_len`] bytes.
    pub fn to_bytes(
        &self,
        src: IpAddr,
        dst: IpAddr,
        form: ChecksumForm,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut buf = vec![0; self.buffer_len()];
        let n = self.emit(&mut buf, src, dst, form)?;
        buf.truncate(n);
        Ok(buf)
    }
}
