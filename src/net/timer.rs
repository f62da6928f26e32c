//! A deadline timer of its own for each driver: a timerfd in the tokio reactor.
//!
//! Why not a tokio sleep: tokio keeps its timers in a hierarchical wheel of 64 one-
//! millisecond slots per level, and a deadline in the next 64 ms block sits on the
//! second level until that block begins, when the runtime wakes once only to move it
//! down. A router's deadline is always a few intervals ahead (a master's next advert, a
//! backup's Master_Down_Timer), so at 10 ms adverts that was one extra wake-up of the
//! process every 64 ms (15.6 a second, beside 100 for the adverts). A timerfd wakes
//! the process exactly at its deadline and never in between.
//!
//! Costs per deadline: a master on the advert grid (`Router::set_advert_grid`) waits for
//! instants one interval apart, so its timer is armed once as a periodic one and then
//! needs no system call at all; any other deadline costs one `timerfd_settime(2)` when it
//! changes. Each expiry is read (`read(2)` of its count), which is what restarts a
//! periodic timerfd (`every_expiry_of_a_periodic_timer_wakes_the_waiter`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use super::{require_runtime, sys, NetError};

/// How the timer is armed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Armed {
    /// First expiry.
    at: Instant,
    /// Then every `period`.
    period: Option<Duration>,
}

/// A deadline timer (see the module documentation). [`DeadlineTimer::set`] says when,
/// [`DeadlineTimer::wait`] waits for it.
#[derive(Debug)]
pub struct DeadlineTimer {
    fd: AsyncFd<OwnedFd>,
    /// The deadline [`DeadlineTimer::wait`] waits for.
    deadline: Option<Instant>,
    /// What the kernel was last told (`None`: disarmed).
    armed: Option<Armed>,
    /// The kernel refused the last arming (it never should): `wait` uses a tokio sleep.
    fallback: bool,
}

impl DeadlineTimer {
    /// A disarmed timer. Must be called from inside a tokio runtime.
    pub fn new() -> Result<Self, NetError> {
        require_runtime("DeadlineTimer::new")?;
        let err = |source| NetError::Timer { source };
        let fd = sys::timerfd().map_err(err)?;
        // SAFETY: `OwnedFd` owns its descriptor and `as_raw_fd` always returns that same
        // descriptor, which stays open until the `OwnedFd` (and so the `AsyncFd`) is
        // dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| err(e.into()))?;
        Ok(DeadlineTimer {
            fd,
            deadline: None,
            armed: None,
            fallback: false,
        })
    }

    /// The deadline to wait for (`None`: none). `period`: the deadlines that follow
    /// will be `deadline + k * period` (a master on the advert grid), so the timer is
    /// armed to expire at each of them and setting the next one costs nothing. Returns
    /// the kernel's error when it refused (the timer then falls back to a tokio sleep
    /// until the next call).
    pub fn set(&mut self, deadline: Option<Instant>, period: Option<Duration>) -> io::Result<()> {
        self.deadline = deadline;
        let want = deadline.map(|at| Armed { at, period });
        let keep = match (self.armed, want) {
            (None, None) => true,
            // A one-shot that has expired expires no more.
            (Some(a), None) => a.period.is_none() && a.at <= Instant::now(),
            (Some(a), Some(w)) => a == w || on_the_same_grid(a, w),
            (None, Some(_)) => false,
        };
        if keep && !self.fallback {
            return Ok(());
        }
        let abs = match want {
            Some(w) => Some(monotonic(w.at)?),
            None => None,
        };
        match sys::timerfd_set(self.fd.as_fd(), abs, period.filter(|_| want.is_some())) {
            Ok(()) => {
                self.armed = want;
                self.fallback = false;
                Ok(())
            }
            Err(e) => {
                self.armed = None;
                self.fallback = true;
                Err(e)
            }
        }
    }

    /// Waits until the deadline last [`set`](DeadlineTimer::set) (forever when none).
    /// Returns at once, after giving the runtime its turn now and then (tokio's
    /// cooperative budget), when it has passed.
    pub async fn wait(&self) {
        match self.deadline {
            Some(at) => self.wait_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Waits until `at`, which must be one of the expiries the timer is armed for (a
    /// periodic timer shared by several waiters: each waits for an expiry of its own).
    pub async fn wait_until(&self, at: Instant) {
        loop {
            if Instant::now() >= at {
                tokio::task::coop::consume_budget().await;
                return;
            }
            if self.fallback {
                return tokio::time::sleep_until(at.into()).await;
            }
            let Ok(mut ready) = self.fd.readable().await else {
                return tokio::time::sleep_until(at.into()).await;
            };
            // An expiry (this one, or an earlier one of a periodic timer): read it,
            // which restarts a periodic timer, and look at the clock again. The kernel
            // raises a new edge at the next expiry, so the readiness can go.
            match sys::timerfd_read(self.fd.as_fd()) {
                Ok(_) => ready.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(_) => return tokio::time::sleep_until(at.into()).await,
            }
        }
    }
}

/// Whether `want` is one of the expiries `armed` already has: the same period, at a
/// whole number of periods after its first.
fn on_the_same_grid(armed: Armed, want: Armed) -> bool {
    match (armed.period, want.period) {
        (Some(p), Some(q)) if p == q && !p.is_zero() => want
            .at
            .checked_duration_since(armed.at)
            .is_some_and(|d| d.as_nanos() % p.as_nanos() == 0),
        _ => false,
    }
}

/// `at` on `CLOCK_MONOTONIC`, never earlier than the instant itself: the clock is read
/// once, right after an `Instant` (which is that clock), and every instant is placed
/// relative to that pair.
fn monotonic(at: Instant) -> io::Result<Duration> {
    static ORIGIN: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (i0, m0) = match ORIGIN.get() {
        Some(o) => *o,
        None => {
            let i0 = Instant::now();
            *ORIGIN.get_or_init(|| (i0, sys::monotonic_now().unwrap_or_default()))
        }
    };
    if m0.is_zero() {
        return Err(io::Error::other("CLOCK_MONOTONIC could not be read"));
    }
    let abs = match at.checked_duration_since(i0) {
        Some(ahead) => m0 + ahead,
        None => m0.saturating_sub(i0 - at),
    };
    // Zero would disarm the timer; the clock's origin is long past anyway.
    Ok(abs.max(Duration::from_nanos(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn wakes_at_its_deadline_not_before() {
        rt().block_on(async {
            let mut t = DeadlineTimer::new().unwrap();
            for ms in [5, 1, 12] {
                let at = Instant::now() + Duration::from_millis(ms);
                t.set(Some(at), None).unwrap();
                t.wait().await;
                let late = Instant::now().duration_since(at);
                assert!(late < Duration::from_millis(500), "{late:?} late");
            }
            // A deadline already past returns at once.
            t.set(Some(Instant::now() - Duration::from_millis(3)), None)
                .unwrap();
            tokio::time::timeout(Duration::from_secs(5), t.wait())
                .await
                .unwrap();
        });
    }

    #[test]
    fn every_expiry_of_a_periodic_timer_wakes_the_waiter() {
        rt().block_on(async {
            let mut t = DeadlineTimer::new().unwrap();
            let period = Duration::from_millis(4);
            let first = Instant::now() + period;
            for k in 0..10u32 {
                let at = first + period * k;
                t.set(Some(at), Some(period)).unwrap();
                if k > 0 {
                    // On the grid armed at the first: nothing was asked of the kernel.
                    assert_eq!(
                        t.armed,
                        Some(Armed {
                            at: first,
                            period: Some(period)
                        })
                    );
                }
                tokio::time::timeout(Duration::from_secs(5), t.wait())
                    .await
                    .expect("an expiry of the periodic timer was not seen");
                assert!(Instant::now() >= at);
            }
        });
    }

    #[test]
    fn a_deadline_off_the_grid_or_of_another_period_rearms() {
        let at = Instant::now();
        let p = Duration::from_millis(10);
        let armed = Armed {
            at,
            period: Some(p),
        };
        let want = |ms: u64, period: Option<Duration>| Armed {
            at: at + Duration::from_millis(ms),
            period,
        };
        assert!(on_the_same_grid(armed, want(30, Some(p))));
        assert!(!on_the_same_grid(armed, want(35, Some(p))));
        assert!(!on_the_same_grid(armed, want(30, None)));
        assert!(!on_the_same_grid(
            armed,
            want(40, Some(Duration::from_millis(20)))
        ));
        assert!(!on_the_same_grid(
            armed,
            Armed {
                at: at - p,
                period: Some(p)
            }
        ));
    }

    #[test]
    fn clearing_the_deadline_keeps_the_waiter_waiting() {
        rt().block_on(async {
            let mut t = DeadlineTimer::new().unwrap();
            let p = Duration::from_millis(2);
            t.set(Some(Instant::now() + p), Some(p)).unwrap();
            t.set(None, None).unwrap();
            assert_eq!(t.armed, None);
            let waited = tokio::time::timeout(Duration::from_millis(30), t.wait()).await;
            assert!(waited.is_err(), "a timer without a deadline fired");
        });
    }
}
