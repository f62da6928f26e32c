//! Shared timer wake-ups for masters: drivers waiting for the same instant (the advert
//! grid, `Router::set_advert_grid`) share one tokio timer.
//!
//! Every tokio timer registered after the runtime processed its timers, and earlier than
//! any timer still in its wheel, writes to the runtime's wake-up eventfd (tokio's
//! `reregister`), and the runtime's next wait returns at once. With one timer per
//! master, each of N masters did so on every advert; with one shared timer per instant,
//! and the instant one period later already in the wheel when the current one fires
//! ([`GridWait`]), it does not happen at all while the masters advertise on the grid.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Context;
use std::time::{Duration, Instant};

use futures::future::{FutureExt, Shared};
use tokio::time::Sleep;

/// One shared sleep per instant.
pub(super) type SharedSleep = Shared<Pin<Box<Sleep>>>;

/// What one master waits for: the shared sleep until its deadline, and the one a
/// period later, already registered in the timer wheel (armed).
pub(super) struct GridWait {
    at: Instant,
    sleep: SharedSleep,
    next_at: Instant,
    next: SharedSleep,
}

impl GridWait {
    /// The sleep until the deadline, to await.
    pub(super) fn sleep(&self) -> SharedSleep {
        self.sleep.clone()
    }
}

/// The shared sleeps of every driver, by deadline.
#[derive(Default)]
pub struct GridTimers {
    sleeps: Mutex<HashMap<Instant, SharedSleep>>,
}

impl GridTimers {
    /// A sleep until `deadline`, shared with every other caller that asked for the same
    /// instant. Must be called inside the runtime.
    pub(super) fn sleep_until(&self, deadline: Instant) -> SharedSleep {
        let mut sleeps = self.sleeps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sleeps.get(&deadline) {
            return s.clone();
        }
        // Sleeps nobody waits for any more (the map's own copy is the last one): dropped,
        // so their timers leave the wheel.
        sleeps.retain(|_, s| s.strong_count().is_some_and(|n| n > 1));
        let s = Box::pin(tokio::time::sleep_until(deadline.into())).shared();
        sleeps.insert(deadline, s.clone());
        s
    }

    /// What a master with adverts every `period` waits for until `deadline`, following
    /// on from what it waited for before (`prev`): the armed sleep of the previous wait
    /// becomes the current one, and the instant one period later is armed.
    pub(super) fn wait(
        &self,
        prev: Option<GridWait>,
        deadline: Instant,
        period: Duration,
    ) -> GridWait {
        let sleep = match prev {
            Some(p) if p.at == deadline => return p,
            Some(p) if p.next_at == deadline => p.next,
            _ => self.sleep_until(deadline),
        };
        let next_at = deadline + period;
        let next = self.sleep_until(next_at);
        // Registered now, while the current deadline is still ahead: tokio then knows
        // of a timer earlier than any registered after the current one fires.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let _ = next.clone().poll_unpin(&mut cx);
        GridWait {
            at: deadline,
            sleep,
            next_at,
            next,
        }
    }

    /// How many instants have a sleep (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sleeps.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_of_one_instant_share_one_timer_and_all_wake() {
        let timers = GridTimers::default();
        let at = Instant::now() + Duration::from_millis(10);
        let waiters: Vec<SharedSleep> = (0..75).map(|_| timers.sleep_until(at)).collect();
        assert_eq!(timers.len(), 1);
        let other = timers.sleep_until(at + Duration::from_millis(10));
        assert_eq!(timers.len(), 2);
        futures::future::join_all(waiters).await;
        assert!(Instant::now() >= at);
        drop(other);
        // Nobody waits for either instant any more: the next request drops both.
        let _next = timers.sleep_until(at + Duration::from_millis(30));
        assert_eq!(timers.len(), 1);
    }

    #[tokio::test]
    async fn a_master_on_the_grid_has_its_next_instant_armed_and_moves_on_to_it() {
        let timers = GridTimers::default();
        let period = Duration::from_millis(10);
        let first = Instant::now() + period;
        let w = timers.wait(None, first, period);
        assert_eq!((w.at, w.next_at), (first, first + period));
        // Armed: its timer is in the wheel before anyone awaits it.
        assert_eq!(w.next.strong_count(), Some(2));
        w.sleep().await;
        let w = timers.wait(Some(w), first, period);
        assert_eq!(w.at, first);
        let second = w.next.clone();
        let w = timers.wait(Some(w), first + period, period);
        assert_eq!((w.at, w.next_at), (first + period, first + 2 * period));
        assert!(w.sleep.ptr_eq(&second));
        w.sleep().await;
        assert!(Instant::now() >= first + period);
    }
}
