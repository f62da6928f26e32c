//! Rise/fall hysteresis of one health check: pure, no I/O, no clock.
//!
//! # Start-up: a check starts *unknown*, and unknown counts as unhealthy
//!
//! A fresh [`Health`] has no verdict. Until it has one, [`Health::is_healthy`]
//! is `false`, so the daemon treats the check as failing from the start: a
//! weight-0 check holds the instance in Fault, a weighted check keeps its weight
//! subtracted. The first verdict is:
//!
//! - *healthy* after `rise` consecutive successes (the same rule as recovering
//!   from unhealthy: a service we have never seen working is not trusted on one
//!   probe);
//! - *unhealthy* on the first failure. `fall` exists to ride out a blip of a
//!   service that was healthy; a check that was never healthy has nothing to
//!   ride out, and since unknown already counts as unhealthy, settling it early
//!   changes no priority, it only makes status say "unhealthy" instead of
//!   "unknown".
//!
//! This is keepalived's `init_fail` behaviour, chosen as the default because the
//! alternative (assume healthy until `fall` failures) lets a node whose backend
//! is down start with full priority, preempt a healthy master, and then drop
//! back `fall * interval` later: a flap on every restart.
//!
//! Interaction with the election: the instance's effective priority starts
//! *reduced* (or the instance starts in Fault) and only rises once its checks
//! have passed `rise` times, so a restarting node never takes over on the
//! strength of checks it has not run yet. When it is alone on the link it still
//! becomes master at the reduced priority (someone has to hold the VIP), and
//! with `preempt = true` it may take over from a lower-priority master once its
//! checks come up, which is the configured intent. The cost is a start-up delay
//! of about `(rise - 1) * interval` before full priority; with weight-0 checks
//! that is also the delay before the instance leaves Fault.

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No verdict yet (counts as unhealthy, see the module docs).
    Unknown,
    /// `rise` consecutive successes seen since the last unhealthy verdict.
    Healthy,
    /// A failure while unknown, or `fall` consecutive failures while healthy.
    Unhealthy,
}

/// Rise/fall state of one check, fed with probe outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    rise: u32,
    fall: u32,
    verdict: Verdict,
    /// Consecutive outcomes that disagree with the verdict (successes while
    /// not healthy, failures while healthy).
    streak: u32,
}

impl Health {
    /// A check that turns healthy after `rise` consecutive successes and
    /// unhealthy after `fall` consecutive failures. Zero is treated as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        Health {
            rise: rise.max(1),
            fall: fall.max(1),
            verdict: Verdict::Unknown,
            streak: 0,
        }
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// `true` only when the verdict is [`Verdict::Healthy`] (unknown counts as
    /// unhealthy).
    pub fn is_healthy(&self) -> bool {
        self.verdict == Verdict::Healthy
    }

    /// Record one probe outcome. Returns `Some(healthy)` when the verdict
    /// changes (including the first verdict after unknown), `None` otherwise.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        let next = match (self.verdict, success) {
            (Verdict::Healthy, true) | (Verdict::Unhealthy, false) => {
                self.streak = 0;
                return None;
            }
            (Verdict::Unknown, false) => Verdict::Unhealthy,
            (Verdict::Unknown | Verdict::Unhealthy, true) => {
                self.streak = self.streak.saturating_add(1);
                if self.streak < self.rise {
                    return None;
                }
                Verdict::Healthy
            }
            (Verdict::Healthy, false) => {
                self.streak = self.streak.saturating_add(1);
                if self.streak < self.fall {
                    return None;
                }
                Verdict::Unhealthy
            }
        };
        self.verdict = next;
        self.streak = 0;
        Some(next == Verdict::Healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut Health, outcomes: &[bool]) -> Vec<Option<bool>> {
        outcomes.iter().map(|&o| h.record(o)).collect()
    }

    #[test]
    fn starts_unknown_and_counts_as_unhealthy() {
        let h = Health::new(3, 2);
        assert_eq!(h.verdict(), Verdict::Unknown);
        assert!(!h.is_healthy());
    }

    #[test]
    fn unknown_turns_healthy_only_after_rise_successes() {
        let mut h = Health::new(3, 2);
        assert_eq!(feed(&mut h, &[true, true]), vec![None, None]);
        assert_eq!(h.verdict(), Verdict::Unknown);
        assert_eq!(h.record(true), Some(true));
        assert!(h.is_healthy());
        assert_eq!(h.record(true), None);
    }

    #[test]
    fn unknown_settles_unhealthy_on_first_failure() {
        let mut h = Health::new(3, 4);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.verdict(), Verdict::Unhealthy);
        assert_eq!(h.record(false), None);
    }

    #[test]
    fn failure_during_initial_rise_restarts_the_count() {
        let mut h = Health::new(3, 2);
        assert_eq!(feed(&mut h, &[true, true]), vec![None, None]);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(feed(&mut h, &[true, true]), vec![None, None]);
        assert_eq!(h.record(true), Some(true));
    }

    #[test]
    fn healthy_turns_unhealthy_after_fall_consecutive_failures() {
        let mut h = Health::new(1, 3);
        assert_eq!(h.record(true), Some(true));
        assert_eq!(feed(&mut h, &[false, false]), vec![None, None]);
        assert!(h.is_healthy());
        assert_eq!(h.record(false), Some(false));
        assert!(!h.is_healthy());
    }

    #[test]
    fn a_success_resets_the_fall_count() {
        let mut h = Health::new(1, 3);
        h.record(true);
        let out = feed(&mut h, &[false, false, true, false, false, true]);
        assert!(out.iter().all(Option::is_none), "{out:?}");
        assert!(h.is_healthy());
        assert_eq!(
            feed(&mut h, &[false, false, false]),
            vec![None, None, Some(false)]
        );
    }

    #[test]
    fn a_failure_resets_the_rise_count() {
        let mut h = Health::new(2, 1);
        assert_eq!(h.record(false), Some(false));
        let out = feed(&mut h, &[true, false, true, false]);
        assert!(out.iter().all(Option::is_none), "{out:?}");
        assert_eq!(feed(&mut h, &[true, true]), vec![None, Some(true)]);
    }

    #[test]
    fn full_cycle_reports_each_flip_once() {
        let mut h = Health::new(2, 2);
        let seq = [true, true, true, false, false, false, true, true, true];
        let flips: Vec<(usize, bool)> = seq
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| h.record(o).map(|v| (i, v)))
            .collect();
        assert_eq!(flips, vec![(1, true), (4, false), (7, true)]);
    }

    #[test]
    fn zero_rise_and_fall_behave_as_one() {
        let mut h = Health::new(0, 0);
        assert_eq!(h.record(true), Some(true));
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.record(true), Some(true));
    }

    #[test]
    fn huge_rise_does_not_overflow() {
        let mut h = Health::new(u32::MAX, 1);
        for _ in 0..1000 {
            assert_eq!(h.record(true), None);
        }
        assert_eq!(h.verdict(), Verdict::Unknown);
    }
}
