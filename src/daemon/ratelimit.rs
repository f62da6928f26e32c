//! Rate limit for WARN lines about dropped packets: a flood of bad packets must not
//! flood the log. Per key, the first drop is logged at once; after that at most one
//! line per `period`, carrying how many drops it stands for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Decides which drop events are worth a log line.
#[derive(Debug)]
pub(super) struct LogLimiter {
    period: Duration,
    keys: HashMap<String, (Instant, u64)>,
}

impl LogLimiter {
    /// One line per key per `period`.
    pub(super) fn new(period: Duration) -> Self {
        Self {
            period,
            keys: HashMap::new(),
        }
    }

    /// Records one event for `key` at `now`. Returns `Some(n)` when a line should be
    /// logged now, `n` being the number of events it covers (1 for the first).
    pub(super) fn hit(&mut self, key: &str, now: Instant) -> Option<u64> {
        match self.keys.get_mut(key) {
            None => {
                self.keys.insert(key.to_string(), (now, 0));
                Some(1)
            }
            Some((last, pending)) => {
                *pending += 1;
                if now.duration_since(*last) >= self.period {
                    let n = *pending;
                    *last = now;
                    *pending = 0;
                    Some(n)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_one_line_per_period() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let mut lines = Vec::new();
        for i in 0..50_000u64 {
            // 50,000 drops over 25 simulated seconds.
            let now = t0 + Duration::from_micros(i * 500);
            if let Some(n) = l.hit("ttl_not_255", now) {
                lines.push(n);
            }
        }
        // The first drop at once, then one line at 10 s and one at 20 s, each
        // covering the 20,000 drops since the previous line.
        assert_eq!(lines, vec![1, 20_000, 20_000]);
        assert_eq!(l.hit("other_vrid", t0), Some(1), "keys are independent");
    }
}
