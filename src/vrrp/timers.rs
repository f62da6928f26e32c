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

/// The advert grid (shared wake-ups, not an RFC timer): the first instant
/// `epoch + k * interval` (k >= 0) that is at least half an interval after `now`.
///
/// Masters that share an epoch and an interval send on common instants, so one wake-up
/// serves them all. Called when an advert goes out: on time (at a grid point, up to half
/// an interval late) the next one is exactly one interval after the previous grid point;
/// off the grid (a takeover, an answer out of turn) the next one is between half an
/// interval and one and a half intervals away, never more.
pub fn next_on_grid(
    epoch: std::time::Instant,
    interval: Duration,
    now: std::time::Instant,
) -> std::time::Instant {
    let earliest = now + interval / 2;
    let Some(elapsed) = earliest.checked_duration_since(epoch) else {
        return epoch;
    };
    let step = interval.as_nanos().max(1);
    let k = elapsed.as_nanos().div_ceil(step);
    // k * step <= elapsed + step: it fits a Duration whenever `earliest` fits an Instant.
    let offset = u64::try_from(k * step).map_or(Duration::MAX, Duration::from_nanos);
    epoch.checked_add(offset).unwrap_or(earliest)
}
