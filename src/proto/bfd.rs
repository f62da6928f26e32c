//! BFD Control packets (RFC 5880 §4.1), carried in UDP to port 3784 (RFC 5881 §4).
//!
//! [`BfdPacket`] is a checked view over received bytes; [`ControlPacket`] is the plain
//! representation, with [`ControlPacket::parse`], [`ControlPacket::emit`] and
//! [`ControlPacket::buffer_len`]. The decode errors are the receive checks of RFC 5880
//! §6.8.6 that can be made from the bytes alone, in the RFC's order; the checks that need
//! a session (discriminators, authentication in use, the session's own state) and the
//! TTL rule of RFC 5881 §5 are in [`crate::bfd`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

/// UDP destination port of single-hop BFD Control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// Lowest UDP source port a sender may use (RFC 5881 §4).
pub const SOURCE_PORT_MIN: u16 = 49152;
/// TTL / hop limit of every single-hop BFD packet, sent and required (RFC 5881 §5).
pub const TTL: u8 = 255;
/// The protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// Length of a Control packet without the authentication section (RFC 5880 §4.1).
pub const MIN_LEN: usize = 24;
/// Minimum Length with the authentication section present (RFC 5880 §6.8.6).
pub const MIN_LEN_AUTH: usize = 26;

/// A session state as carried in the Sta field (RFC 5880 §4.1, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionState {
    /// 0: held down by an administrator.
    AdminDown,
    /// 1: down, or just created.
    Down,
    /// 2: the remote system is heard, the three-way handshake is under way.
    Init,
    /// 3: up.
    Up,
}

impl SessionState {
    /// The 2-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            SessionState::AdminDown => 0,
            SessionState::Down => 1,
            SessionState::Init => 2,
            SessionState::Up => 3,
        }
    }

    /// From the 2-bit wire value (higher bits ignored).
    pub fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => SessionState::AdminDown,
            1 => SessionState::Down,
            2 => SessionState::Init,
            _ => SessionState::Up,
        }
    }

    /// The lowercase name used in status output, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::AdminDown => "admin_down",
            SessionState::Down => "down",
            SessionState::Init => "init",
            SessionState::Up => "up",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::AdminDown => "AdminDown",
            SessionState::Down => "Down",
            SessionState::Init => "Init",
            SessionState::Up => "Up",
        })
    }
}

/// A diagnostic code (RFC 5880 §4.1): why the sender's session last left Up.
///
/// Values 9..=31 are reserved; they are carried through as received (a receiver ignores
/// the diagnostic, §6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Diag(pub u8);

impl Diag {
    /// 0 No Diagnostic.
    pub const NONE: Diag = Diag(0);
    /// 1 Control Detection Time Expired.
    pub const DETECTION_TIME_EXPIRED: Diag = Diag(1);
    /// 2 Echo Function Failed.
    pub const ECHO_FAILED: Diag = Diag(2);
    /// 3 Neighbor Signaled Session Down.
    pub const NEIGHBOR_DOWN: Diag = Diag(3);
    /// 4 Forwarding Plane Reset.
    pub const FORWARDING_RESET: Diag = Diag(4);
    /// 5 Path Down.
    pub const PATH_DOWN: Diag = Diag(5);
    /// 6 Concatenated Path Down.
    pub const CONCAT_PATH_DOWN: Diag = Diag(6);
    /// 7 Administratively Down.
    pub const ADMIN_DOWN: Diag = Diag(7);
    /// 8 Reverse Concatenated Path Down.
    pub const REVERSE_CONCAT_PATH_DOWN: Diag = Diag(8);

    /// The RFC's name of the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "No Diagnostic",
            1 => "Control Detection Time Expired",
            2 => "Echo Function Failed",
            3 => "Neighbor Signaled Session Down",
            4 => "Forwarding Plane Reset",
            5 => "Path Down",
            6 => "Concatenated Path Down",
            7 => "Administratively Down",
            8 => "Reverse Concatenated Path Down",
            _ => "reserved",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "diag {} ({})", self.0, self.name())
    }
}

/// Why received bytes are not an acceptable BFD Control packet: the byte-level receive
/// checks of RFC 5880 §6.8.6, in its order. Each has a stable metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than 4 bytes: not even the Length field is there.
    #[error("BFD packet truncated: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// §6.8.6: "If the version number is not correct (1), the packet MUST be discarded."
    #[error("BFD version {0} (expected 1)")]
    BadVersion(u8),
    /// §6.8.6: the Length field is below 24 (26 with the A bit).
    #[error("BFD Length field {length} below the minimum {min}")]
    LengthTooSmall {
        /// The Length field.
        length: u8,
        /// 24, or 26 with the A bit set.
        min: usize,
    },
    /// §6.8.6: the Length field is greater than the payload.
    #[error("BFD Length field {length} exceeds the {len} bytes received")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// Bytes received.
        len: usize,
    },
    /// §6.8.6: "If the Detect Mult field is zero, the packet MUST be discarded."
    #[error("BFD Detect Mult is zero")]
    ZeroDetectMult,
    /// §6.8.6: "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
    #[error("BFD Multipoint bit set")]
    Multipoint,
    /// §6.8.6: "If the My Discriminator field is zero, the packet MUST be discarded."
    #[error("BFD My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// §6.8.6: "If the Your Discriminator field is zero and the State field is not Down or
    /// AdminDown, the packet MUST be discarded."
    #[error("BFD Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(SessionState),
}

impl DecodeError {
    /// A stable snake_case label for metrics (`reason="..."`).
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadVersion(_) => "bad_version",
            DecodeError::LengthTooSmall { .. } => "length_too_small",
            DecodeError::LengthExceedsPayload { .. } => "length_exceeds_payload",
            DecodeError::ZeroDetectMult => "zero_detect_mult",
            DecodeError::Multipoint => "multipoint",
            DecodeError::ZeroMyDiscriminator => "zero_my_discriminator",
            DecodeError::ZeroYourDiscriminator(_) => "zero_your_discriminator",
        }
    }
}

/// A read-only view over the bytes of a BFD Control packet.
///
/// [`BfdPacket::new_checked`] verifies the lengths once (§6.8.6: version, Length minimum,
/// Length within the payload); after it no accessor can panic. With
/// [`BfdPacket::new_unchecked`] the accessors return 0 for missing bytes.
#[derive(Debug, Clone)]
pub struct BfdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BfdPacket<T> {
    /// Wrap a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Self {
        BfdPacket { buffer }
    }

    /// Wrap a buffer, checking the version and both Length rules of RFC 5880 §6.8.6.
    /// Bytes beyond the Length field (padding) are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let p = Self::new_unchecked(buffer);
        let bytes = p.buffer.as_ref();
        let len = bytes.len();
        if len < 4 {
            // The version could be read from one byte, but a 1..3 byte datagram is not a
            // BFD packet of any version: call it what it is.
            return Err(DecodeError::Truncated { len });
        }
        // §6.8.6: the version number must be 1.
        if p.version() != VERSION {
            return Err(DecodeError::BadVersion(p.version()));
        }
        // §6.8.6: Length at least 24, or 26 with the A bit.
        let min = if p.auth_present() {
            MIN_LEN_AUTH
        } else {
            MIN_LEN
        };
        let length = p.length();
        if usize::from(length) < min {
            return Err(DecodeError::LengthTooSmall { length, min });
        }
        // §6.8.6: Length no greater than the payload.
        if usize::from(length) > len {
            return Err(DecodeError::LengthExceedsPayload { length, len });
        }
        Ok(p)
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    fn u32_at(&self, i: usize) -> u32 {
        u32::from_be_bytes([
            self.byte(i),
            self.byte(i + 1),
            self.byte(i + 2),
            self.byte(i + 3),
        ])
    }

    /// The Version field (3 bits).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 5
    }
    /// The Diag field (5 bits).
    pub fn diag(&self) -> Diag {
        Diag(self.byte(0) & 0x1f)
    }
    /// The Sta field.
    pub fn state(&self) -> SessionState {
        SessionState::from_bits(self.byte(1) >> 6)
    }
    /// The Detect Mult field.
    pub fn detect_mult(&self) -> u8 {
        self.byte(2)
    }
    /// The Length field.
    pub fn length(&self) -> u8 {
        self.byte(3)
    }
    /// My Discriminator.
    pub fn my_discr(&self) -> u32 {
        self.u32_at(4)
    }
    /// Your Discriminator.
    pub fn your_discr(&self) -> u32 {
        self.u32_at(8)
    }
    /// Desired Min TX Interval, microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        self.u32_at(12)
    }
    /// Required Min RX Interval, microseconds.
    pub fn required_min_rx(&self) -> u32 {
        self.u32_at(16)
    }
    /// Required Min Echo RX Interval, microseconds.
    pub fn required_min_echo_rx(&self) -> u32 {
        self.u32_at(20)
    }
}

/// The flag bits of the second byte (RFC 5880 §4.1, `|P|F|C|A|D|M|`): for each, its
/// mask and the [`BfdPacket`] accessor that reads it.
macro_rules! flag_bits {
    ($($(#[$doc:meta])* $get:ident: $mask:ident = $bit:literal,)*) => {
        $(const $mask: u8 = $bit;)*

        impl<T: AsRef<[u8]>> BfdPacket<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> bool {
                    self.byte(1) & $mask != 0
                }
            )*
        }
    };
}

flag_bits! {
    /// The Poll bit.
    poll: FLAG_P = 0x20,
    /// The Final bit.
    final_bit: FLAG_F = 0x10,
    /// The Control Plane Independent bit.
    cpi: FLAG_C = 0x08,
    /// The Authentication Present bit.
    auth_present: FLAG_A = 0x04,
    /// The Demand bit.
    demand: FLAG_D = 0x02,
    /// The Multipoint bit.
    multipoint: FLAG_M = 0x01,
}

/// A BFD Control packet (the representation; the authentication section is not kept:
/// vipd uses no authentication, and drops packets that carry one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: Diag,
    /// The sender's session state.
    pub state: SessionState,
    /// Poll: the sender asks for a packet with Final (§6.5).
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_bit: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    /// Authentication Present, as received. [`ControlPacket::emit`] always writes it
    /// clear: the authentication section is not kept (vipd never authenticates).
    pub auth_present: bool,
    /// Demand mode.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discr: u32,
    /// Your Discriminator (0: not yet known).
    pub your_discr: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, microseconds (vipd sends 0: no echo).
    pub required_min_echo_rx: u32,
}

impl ControlPacket {
    /// Decode and apply the byte-level receive checks of RFC 5880 §6.8.6 in its order.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let p = BfdPacket::new_checked(bytes)?;
        // §6.8.6: Detect Mult zero: discard.
        if p.detect_mult() == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        // §6.8.6: Multipoint bit set: discard.
        if p.multipoint() {
            return Err(DecodeError::Multipoint);
        }
        // §6.8.6: My Discriminator zero: discard.
        if p.my_discr() == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        // §6.8.6: Your Discriminator zero while the State is not Down or AdminDown: discard.
        if p.your_discr() == 0 && !matches!(p.state(), SessionState::Down | SessionState::AdminDown)
        {
            return Err(DecodeError::ZeroYourDiscriminator(p.state()));
        }
        Ok(ControlPacket {
            diag: p.diag(),
            state: p.state(),
            poll: p.poll(),
            final_bit: p.final_bit(),
            cpi: p.cpi(),
            auth_present: p.auth_present(),
            demand: p.demand(),
            detect_mult: p.detect_mult(),
            my_discr: p.my_discr(),
            your_discr: p.your_discr(),
            desired_min_tx: p.desired_min_tx(),
            required_min_rx: p.required_min_rx(),
            required_min_echo_rx: p.required_min_echo_rx(),
        })
    }

    /// Bytes [`ControlPacket::emit`] writes: always 24 (no authentication section).
    pub fn buffer_len(&self) -> usize {
        MIN_LEN
    }

    /// Write the packet into `buf` (at least [`ControlPacket::buffer_len`] bytes);
    /// returns the bytes written, or `None` if `buf` is too small.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let out = buf.get_mut(..MIN_LEN)?;
        out[0] = (VERSION << 5) | (self.diag.0 & 0x1f);
        let mut flags = self.state.bits() << 6;
        for (on, bit) in [
            (self.poll, FLAG_P),
            (self.final_bit, FLAG_F),
            (self.cpi, FLAG_C),
            (self.demand, FLAG_D),
        ] {
            if on {
                flags |= bit;
            }
        }
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = MIN_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        Some(MIN_LEN)
    }

    /// The encoded packet.
    pub fn to_bytes(&self) -> [u8; MIN_LEN] {
        let mut b = [0u8; MIN_LEN];
        // 24 bytes always fit.
        let _ = self.emit(&mut b);
        b
    }
}
