//! Strict duration strings: a decimal number and a unit, e.g. `"10ms"`, `"1s"`, `"1.5s"`, `"2m"`.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form NUMBER UNIT.
    #[error(
        "invalid duration {0:?}: expected a number and a unit (ms, s, m or h) with no space, \
         like \"100ms\", \"1.5s\" or \"2m\""
    )]
    Syntax(String),
    /// More precise than a nanosecond.
    #[error("invalid duration {0:?}: finer than a nanosecond")]
    TooPrecise(String),
    /// Larger than this program can hold.
    #[error("invalid duration {0:?}: too large")]
    TooLarge(String),
}

/// Parses a duration: digits, optionally `.` and more digits, then one of the units
/// `ms`, `s`, `m` (minutes) or `h`. No sign, no spaces, no compound forms (`"1m30s"`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(syntax)?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(syntax()),
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
        || (number.contains('.') && frac_part.is_empty())
    {
        return Err(syntax());
    }
    if int_part.len() > 20 || frac_part.len() > 20 {
        return Err(DurationError::TooLarge(text.to_owned()));
    }
    let int: u128 = int_part.parse().map_err(|_| syntax())?;
    let frac: u128 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().map_err(|_| syntax())?
    };
    let scale = 10u128.pow(frac_part.len() as u32);
    let frac_nanos_scaled = frac * unit_nanos;
    if frac_nanos_scaled % scale != 0 {
        return Err(DurationError::TooPrecise(text.to_owned()));
    }
    let total = int
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(frac_nanos_scaled / scale))
        .ok_or_else(|| DurationError::TooLarge(text.to_owned()))?;
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::TooLarge(text.to_owned()))?;
    // The remainder is < 1e9 and fits.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Renders a duration in the same notation [`parse_duration`] reads
/// (`"0s"`, `"100ms"`, `"1s"`, `"1.5s"`); sub-millisecond values as `Debug` does.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos % 1_000_000 != 0 {
        return format!("{d:?}");
    }
    let ms = nanos / 1_000_000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_forms() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("40.95s"), Ok(Duration::from_millis(40950)));
        assert_eq!(parse_duration("0.5ms"), Ok(Duration::from_micros(500)));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "s", "1", "1 s", " 1s", "1s ", "-1s", "+1s", "1.s", ".5s", "1..5s", "1sec", "1S",
            "1m30s", "1e3ms", "1,5s", "1us", "ms",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Syntax(_))),
                "{bad:?} was accepted: {:?}",
                parse_duration(bad)
            );
        }
        assert!(matches!(
            parse_duration("0.0000000001s"),
            Err(DurationError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999999999s"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in ["0s", "10ms", "999ms", "1s", "1.5s", "40.95s", "120s"] {
            let d = parse_duration(s).expect("valid");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,30}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn millis_round_trip(ms in 0u64..10_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
