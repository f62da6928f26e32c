//! RFC 5798 §6.1: Skew_Time and Master_Down_Interval (v3 and v2).

use super::*;

#[test]
fn rfc5798_6_1_skew_time_is_computed_in_microseconds_rounded_down() {
    // (256 - 100) * 1 s / 256 = 0.609375 s exactly.
    assert_eq!(skew_time(Version::V3, 100, SEC), us(609_375));
    // (256 - 255) * 1 s / 256 = 3906.25 us -> 3906 us.
    assert_eq!(skew_time(Version::V3, 255, SEC), us(3_906));
    // (256 - 1) * 40.95 s / 256 = 40_790_039.0625 us -> 40_790_039 us.
    assert_eq!(skew_time(Version::V3, 1, Centis(4095)), us(40_790_039));
    // Neighbouring priorities keep distinct skews even at 10 ms (whole centiseconds would not).
    assert_ne!(
        skew_time(Version::V3, 200, Centis(1)),
        skew_time(Version::V3, 201, Centis(1))
    );
}

#[test]
fn rfc5798_6_1_master_down_interval_is_three_intervals_plus_skew() {
    assert_eq!(master_down_interval(Version::V3, 100, SEC), us(3_609_375));
    assert_eq!(
        master_down_interval(Version::V3, 200, Centis(10)),
        ms(300) + us(21_875)
    );
}

#[test]
fn rfc3768_6_1_v2_skew_time_is_seconds_independent_of_interval() {
    // RFC 3768: Skew_Time = (256 - Priority) / 256 seconds.
    assert_eq!(skew_time(Version::V2, 100, Centis(300)), us(609_375));
    assert_eq!(skew_time(Version::V2, 100, SEC), us(609_375));
    assert_eq!(
        master_down_interval(Version::V2, 100, Centis(300)),
        us(9_609_375)
    );
}
