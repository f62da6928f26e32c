//! The driver's event loop: inputs in, router calls, actions out.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::vrrp::{Condition, State};

use super::test_hooks::test_fault_injection;
use super::{sleep_until, Driver, Input, ADVERT_BATCH, HOOK_WAIT_ON_STOP};

/// Re-arms per second of the drivers on one socket below which each driver's own
/// deadlines go to its timerfd (`net::DeadlineTimer`). One `timerfd_settime` costs about
/// 1.5 µs; a deadline on tokio's wheel costs none, but the wheel wakes the process at
/// every 64 ms block with a deadline in it, 15.6 times a second (about 25 µs each),
/// however many timers wait: the timerfd is cheaper up to some 270 re-arms a second
/// (1 router at 10 ms: 100; 75 routers at 100 ms: 750).
const OWN_TIMERFD_REARMS: u64 = 250;

impl Driver {
    pub(super) async fn run(
        &mut self,
        mut ctl: mpsc::UnboundedReceiver<Input>,
        mut adverts: mpsc::Receiver<Input>,
    ) {
        self.ctx.metrics.ensure_instance(&self.inst.name);
        let now = Instant::now();
        if let Some(p) = self.priority_override {
            self.router.set_override(now, Some(p));
        }
        if self.maintenance {
            self.router.set_maintenance(now, true);
        }
        // Checks start unhealthy until they rise (track::health): start at the reduced
        // priority rather than preempting on checks that have not run yet.
        // The link first: with the link down and a check failing, the fault says link.
        self.router
            .set_condition(now, Condition::Link(self.link_fault()));
        let (penalty, fault) = self.track_penalty();
        self.router
            .set_condition(now, Condition::Checks { penalty, fault });
        if let Some(a) = &self.arb {
            // Until the first lease is granted.
            self.router
                .set_condition(now, Condition::NoLease(a.no_lease));
        }
        self.report_group();
        self.start_bfd();
        // startup-delay: stay in Init (no adverts, no VIPs) until it has passed.
        let mut start_at = self.ctx.start_at.filter(|t| *t > now);
        match start_at {
            Some(t) => tracing::info!(
                "waiting {:.1} s (startup-delay) before taking part",
                t.duration_since(now).as_secs_f64()
            ),
            // Held in Fault if the link is down at start: startup runs when it clears.
            None => self.router.start(now),
        }
        self.execute().await;
        if self.arbiter_reconcile().await {
            self.execute().await;
        }
        self.publish();
        let mut track_open = self.checks.is_some();
        let mut ctl_open = true;
        let mut adverts_open = true;
        loop {
            if self.released {
                break;
            }
            let arb_deadline = self.arbiter_timeout();
            let deadline = [self.router.poll_timeout(), start_at, arb_deadline]
                .into_iter()
                .flatten()
                .min();
            // A master's own deadline is (nearly always) an instant of the advert grid,
            // which the other masters of its interval wait for too: one periodic timer
            // (`grid.rs`) serves them all. Any other deadline is the driver's own timer's.
            let period = self.inst.advert_interval.as_duration();
            let on_grid = deadline.is_some_and(|d| {
                self.router.state() == State::Master
                    && Some(d) == self.router.poll_timeout()
                    && self.ctx.grid.on_grid(d, period)
            });
            if !on_grid {
                self.grid_clock = None;
            } else if self.grid_clock.is_none() {
                match self.ctx.grid.clock(period) {
                    Ok(c) => self.grid_clock = Some(c),
                    Err(e) => self.timer_trouble(&e),
                }
            }
            let own = if self.grid_clock.is_some() {
                None
            } else {
                deadline
            };
            // The driver's own deadlines (a backup's Master_Down_Timer moves with every
            // advert): on its timerfd while that costs less than tokio's wheel, else on a
            // tokio sleep (see `OWN_TIMERFD_REARMS`).
            let on_fd = self.own_timerfd();
            if let Err(e) = self.ctx.timer.set(own.filter(|_| on_fd), None) {
                self.timer_trouble(&e);
            }
            let (clock, timer) = (self.grid_clock.as_ref(), &self.ctx.timer);
            let sleep = async move {
                match (clock, deadline) {
                    (Some(c), Some(d)) => c.wait_until(d).await,
                    _ if on_fd => timer.wait().await,
                    _ => sleep_until(own).await,
                }
            };
            let arb_changed = async {
                match self.arb.as_mut() {
                    Some(a) => a.handle.changed().await,
                    None => std::future::pending().await,
                }
            };
            let retry = sleep_until(self.vip_retry_at);
            // In this order: timers that are due, the supervisor, BFD, checks, then
            // adverts. However many packets wait, an advert or a takeover that is due
            // goes first.
            tokio::select! {
                biased;
                _ = sleep => {
                    let now = Instant::now();
                    if start_at.is_some_and(|t| t <= now) {
                        start_at = None;
                        tracing::info!("startup-delay over: starting");
                        self.router.start(now);
                    }
                    let was_master = self.router.state() == State::Master;
                    self.router.handle_timeout(now);
                    // The Adver_Timer of a master (not a takeover): batched.
                    self.periodic = was_master && self.router.state() == State::Master;
                }
                _ = retry => {
                    // The VIP that could not be added gets another chance.
                    self.vip_retry_at = None;
                    self.router.set_condition(Instant::now(), Condition::VipAdd(None));
                    self.report_group();
                }
                input = ctl.recv(), if ctl_open => {
                    match input {
                        Some(Input::Ping(_)) if test_fault_injection(&self.inst.name, true) => {
                            std::future::pending::<()>().await;
                        }
                        Some(input) => self.handle_input(input),
                        // The supervisor is gone: release as on shutdown.
                        None => {
                            ctl_open = false;
                            self.router.shutdown(Instant::now());
                        }
                    }
                }
                Some(ev) = crate::daemon::bfd::next_event(&mut self.bfd_rx) => {
                    self.handle_bfd(ev);
                }
                Some(ev) = crate::daemon::bfd::next_event(&mut self.bfd_track_rx) => {
                    self.handle_bfd_track(ev);
                }
                ev = self.track_rx.recv(), if track_open => {
                    match ev {
                        Some(ev) => self.handle_track(ev),
                        None => track_open = false,
                    }
                }
                input = adverts.recv(), if adverts_open => {
                    match input {
                        Some(input) => {
                            self.handle_input(input);
                            // Take what else is queued (bounded) before executing and
                            // publishing once: under a flood, status and metrics are
                            // rebuilt once per batch, not once per packet.
                            for _ in 0..ADVERT_BATCH {
                                match adverts.try_recv() {
                                    Ok(more) => self.handle_input(more),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => adverts_open = false,
                    }
                }
                _ = arb_changed => {}
            }
            self.execute().await;
            self.periodic = false;
            if self.check_vips {
                self.check_vips = false;
                self.restore_vips().await;
                self.execute().await;
            }
            if self.arb.is_some() && self.arbiter_reconcile().await {
                // The arbiter changed our priority: the router may act on it.
                self.execute().await;
                self.arbiter_reconcile().await;
            }
            self.publish();
        }
        self.stop_announcing();
        self.arbiter_stop().await;
        self.checks = None;
        // keepalived notify_stop: after the handover and the hooks of the last transition.
        self.notifier
            .notify(&self.inst.name, "stop", "instance stopped");
        // Let the hooks of the last transitions run before the runtime goes away.
        let _ = tokio::time::timeout(
            self.inst.notify.timeout.min(HOOK_WAIT_ON_STOP),
            self.notifier.idle(),
        )
        .await;
        self.ctx
            .board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.inst.name);
        // A driver of the same name starts only after this one ended (the supervisor's
        // `Slot::Stopping { then }`), so nothing of a successor is removed here.
        let checks: Vec<String> = self.inst.tracks.iter().map(|t| t.name.clone()).collect();
        self.ctx.metrics.forget_instance(&self.inst.name, &checks);
    }

    /// Whether the driver's own deadlines go to its timerfd: while the drivers of its
    /// socket re-arm theirs fewer than [`OWN_TIMERFD_REARMS`] times a second (each
    /// backup re-arms on every advert it hears).
    fn own_timerfd(&self) -> bool {
        let drivers = self.ctx.batch.as_ref().map_or(1, |b| b.members());
        let interval_ms = u64::from(self.inst.advert_interval.0).max(1) * 10;
        drivers.saturating_mul(1000 / interval_ms) <= OWN_TIMERFD_REARMS
    }

    /// A timer could not be set up or armed (never expected): logged, rate-limited; the
    /// wait falls back to a runtime sleep.
    fn timer_trouble(&mut self, e: &dyn std::fmt::Display) {
        if self.log_limiter.hit("timer", Instant::now()).is_some() {
            tracing::warn!("cannot arm a timer ({e}): waiting on a runtime sleep");
        }
    }

    pub(super) fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Advert { from, ttl, advert } => {
                let mismatches = self.router.address_list_mismatches();
                match self.router.handle_advert(now, from, ttl, &advert) {
                    Ok(()) => {
                        self.counters.received.inc();
                        if self.router.address_list_mismatches() > mismatches
                            && self.log_limiter.hit("address_list_mismatch", now).is_some()
                        {
                            // RFC 5798 §7.1: a mismatch is logged, not dropped (a rolling
                            // reload that adds a VIP would otherwise make two masters).
                            tracing::warn!(
                                "advert from {from} lists {:?}, we list {:?}: check that both routers configure the same VIPs",
                                advert.addrs,
                                self.inst.vips.iter().map(|v| v.addr()).collect::<Vec<_>>()
                            );
                        }
                        if advert.priority > 0 {
                            self.last_advert_at = Some(now);
                        }
                    }
                    Err(drop) => self.dropped(drop.reason(), from),
                }
            }
            Input::Link { up } => {
                self.link_up = up;
                self.router
                    .set_condition(now, Condition::Link(self.link_fault()));
                self.report_group();
            }
            Input::BasePriority(p) => self.router.set_base_priority(now, p),
            Input::Override(p) => {
                self.priority_override = p;
                self.router.set_override(now, p);
            }
            Input::Maintenance(on) => {
                let _ = test_fault_injection(&self.inst.name, false);
                self.maintenance = on;
                self.router.set_maintenance(now, on);
            }
            Input::GroupFault(f) => {
                self.router.set_condition(now, Condition::GroupFault(f));
                self.report_group();
            }
            Input::GroupPenalty(p) => {
                self.router.set_condition(now, Condition::GroupPenalty(p));
            }
            Input::AddressRemoved(addr) => {
                if self.vips_should_be_on()
                    && self.inst.vips.iter().any(|v| v.addr() == addr.addr())
                {
                    self.check_vips = true;
                }
            }
            Input::CheckVips => self.check_vips = self.vips_should_be_on(),
            Input::Ping(n) => self.alive.store(n, Ordering::Relaxed),
            Input::Shutdown => self.router.shutdown(now),
        }
    }
}
