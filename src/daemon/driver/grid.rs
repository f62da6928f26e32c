//! One timer per advert interval for the masters on the advert grid
//! (`Router::set_advert_grid`): every master of that interval waits for the same
//! instants, `epoch + k * interval`, so one periodic timerfd ([`DeadlineTimer`]) serves
//! them all. It is armed once, when the first master needs it, costs one `read` per
//! instant whoever many masters wait, and goes (its descriptor closed) when the last
//! master stops using it.
//!
//! Why not tokio's timers: see [`crate::net::DeadlineTimer`] (a deadline a few intervals
//! ahead cost an extra wake-up of the process every 64 ms).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::net::{DeadlineTimer, NetError};

/// The shared clocks of every driver, by interval.
pub struct GridClocks {
    epoch: Instant,
    clocks: Mutex<HashMap<Duration, Weak<DeadlineTimer>>>,
}

impl GridClocks {
    /// Clocks for the grid that starts at `epoch` (the drivers' `advert_epoch`).
    pub fn new(epoch: Instant) -> Self {
        GridClocks {
            epoch,
            clocks: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `at` is an instant of the grid of `period`.
    pub(super) fn on_grid(&self, at: Instant, period: Duration) -> bool {
        !period.is_zero()
            && at
                .checked_duration_since(self.epoch)
                .is_some_and(|d| d.as_nanos() % period.as_nanos() == 0)
    }

    /// The clock that expires at every instant of the grid of `period` (started if
    /// nobody holds it). Must be called inside the runtime.
    pub(super) fn clock(&self, period: Duration) -> Result<Arc<DeadlineTimer>, NetError> {
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clocks.get(&period).and_then(Weak::upgrade) {
            return Ok(c);
        }
        clocks.retain(|_, c| c.strong_count() > 0);
        let mut timer = DeadlineTimer::new()?;
        // The first instant of the grid from now on; then every period.
        let now = Instant::now();
        let n = now.saturating_duration_since(self.epoch).as_nanos() / period.as_nanos() + 1;
        let first = self.epoch + period * u32::try_from(n).unwrap_or(u32::MAX);
        timer
            .set(Some(first), Some(period))
            .map_err(|source| NetError::Timer { source })?;
        let timer = Arc::new(timer);
        clocks.insert(period, Arc::downgrade(&timer));
        Ok(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn masters_of_one_interval_share_one_clock_that_expires_on_the_grid() {
        let epoch = Instant::now();
        let grid = GridClocks::new(epoch);
        let period = Duration::from_millis(5);
        let a = grid.clock(period).unwrap();
        let b = grid.clock(period).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = grid.clock(Duration::from_millis(7)).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        // Both wait for the same instants, one after the other, and see each of them.
        let first = epoch + period * 2;
        for k in 0..5u32 {
            let at = first + period * k;
            assert!(grid.on_grid(at, period));
            let both = futures::future::join(a.wait_until(at), b.wait_until(at));
            tokio::time::timeout(Duration::from_secs(5), both)
                .await
                .expect("a grid instant was not seen");
            assert!(Instant::now() >= at);
        }
        assert!(!grid.on_grid(first + Duration::from_millis(1), period));
        // Nobody holds it any more: the next request starts a new one.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let again = grid.clock(period).unwrap();
        assert!(Arc::strong_count(&again) == 1);
    }
}
