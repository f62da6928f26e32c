//! RFC 5798 §6.1 / RFC 3768 §6.1 timer arithmetic, in integer microseconds.

use std::time::Duration;

use crate::proto::{Centis, Version};

const US_PER_CENTI: u64 = 10_000;

/// Skew_Time for a router of `priority` watching a master that advertises
/// `master_adver_interval`, rounded down to the microsecond.
///
/// v3 (RFC 5798 §6.1): `((256 - Priority) * Master_Adver_Interval) / 256`.
/// v2 (RFC 3768 §6.1): `(256 - Priority) / 256` seconds.
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Centis) -> Duration {
    let weight = 256 - u64::from(priority);
    let us = match version {
        // RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256
        Version::V3 => weight * u64::from(master_adver_interval.0) * US_PER_CENTI / 256,
        // RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds
        Version::V2 => weight * 1_000_000 / 256,
    };
    Duration::from_micros(us)
}

/// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time (RFC 5798 §6.1).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Centis,
) -> Duration {
    // RFC 5798 §6.1 / RFC 3768 §6.1: Master_Down_Interval = 3 * interval + Skew_Time
    master_adver_interval.as_duration() * 3 + skew_time(version, priority, master_adver_interval)
}
