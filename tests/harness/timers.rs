//! RFC 5798 §6.1 timers for test bounds, taken from the daemon's own arithmetic in
//! `vipd::vrrp` (the code under test), so a test never carries a second copy of the formula.

use std::time::Duration;

use ::vipd::proto::{Centis, Version};

/// `interval` as VRRPv3 centiseconds (rounded down; test intervals are 10 ms multiples).
fn centis(interval: Duration) -> Centis {
    Centis(u16::try_from(interval.as_millis() / 10).unwrap_or(u16::MAX))
}

/// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 (VRRPv3).
pub fn skew(priority: u8, interval: Duration) -> Duration {
    ::vipd::vrrp::skew_time(Version::V3, priority, centis(interval))
}

/// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time (VRRPv3).
pub fn mdi(priority: u8, interval: Duration) -> Duration {
    ::vipd::vrrp::master_down_interval(Version::V3, priority, centis(interval))
}

/// Skew_Time of a VRRPv2 router (RFC 3768 §6.1: `(256 - Priority) / 256` seconds).
pub fn skew_v2(priority: u8) -> Duration {
    ::vipd::vrrp::skew_time(Version::V2, priority, Centis(100))
}

/// Master_Down_Interval of a VRRPv2 router advertising every `interval` (whole seconds).
pub fn mdi_v2(priority: u8, interval: Duration) -> Duration {
    ::vipd::vrrp::master_down_interval(Version::V2, priority, centis(interval))
}
