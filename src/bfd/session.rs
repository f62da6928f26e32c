//! The [`Session`]: one BFD session's state machine (RFC 5880 §6.2, §6.8).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, ControlPacket, Diag, RecvDrop, SessionConfig, SessionState, SLOW_TX};

/// bfd.RemoteMinRxInterval before anything is heard (RFC 5880 §6.8.1: initialised to 1).
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// One BFD session in Asynchronous mode (RFC 5880 §6.8), sans-IO.
///
/// Inputs take `now`; outputs are pulled with [`Session::poll_action`] and
/// [`Session::poll_timeout`]. See the module documentation for the readings of the RFC
/// that are ours.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    started: bool,
    // RFC 5880 §6.8.1 state variables.
    state: SessionState,
    remote_state: SessionState,
    remote_discr: u32,
    local_diag: Diag,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    /// The Desired Min TX Interval we advertise now (§6.8.3: >= 1 s while not Up).
    adv_tx: Duration,
    /// The interval our own transmissions use; lags `adv_tx` during a Poll Sequence
    /// that increases it (§6.8.3).
    tx_in_use: Duration,
    /// The Required Min RX Interval the detection time uses; lags a reduction of the
    /// configured one during a Poll Sequence (§6.8.3).
    rx_in_use: Duration,
    /// A Poll Sequence is in progress (§6.5).
    polling: bool,
    next_tx: Option<Instant>,
    detect_deadline: Option<Instant>,
    rng: u64,
    transitions: u64,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session in Down; nothing is sent until [`Session::start`].
    pub fn new(cfg: SessionConfig) -> Self {
        let adv_tx = cfg.desired_min_tx.max(SLOW_TX);
        let rng = if cfg.jitter_seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            cfg.jitter_seed
        };
        let rx = cfg.required_min_rx;
        Session {
            cfg,
            started: false,
            state: SessionState::Down,
            remote_state: SessionState::Down,
            remote_discr: 0,
            local_diag: Diag::NONE,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            adv_tx,
            tx_in_use: adv_tx,
            rx_in_use: rx,
            polling: false,
            next_tx: None,
            detect_deadline: None,
            rng,
            transitions: 0,
            actions: VecDeque::new(),
        }
    }

    // ----- inputs -------------------------------------------------------------

    /// Start transmitting: the first packet goes at once, then one a second until Up.
    pub fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        self.next_tx = Some(now);
    }

    /// A packet [`super::select_session`] gave to this session: the rest of the
    /// reception rules of RFC 5880 §6.8.6.
    pub fn handle_packet(&mut self, now: Instant, pkt: &ControlPacket) -> Result<(), RecvDrop> {
        // §6.8.6: A bit set and bfd.AuthType zero: discard. (vipd uses no authentication.)
        if pkt.auth_present {
            return Err(RecvDrop::AuthNotInUse);
        }
        // §6.8.6: "If bfd.SessionState is AdminDown: Discard the packet."
        if self.state == SessionState::AdminDown {
            return Err(RecvDrop::AdminDown);
        }
        // §6.8.6: set bfd.RemoteDiscr, bfd.RemoteState, bfd.RemoteMinRxInterval.
        self.remote_discr = pkt.my_discr;
        self.remote_state = pkt.state;
        let old_remote_rx = self.remote_min_rx;
        self.remote_min_rx = Duration::from_micros(u64::from(pkt.required_min_rx));
        self.remote_desired_tx = Duration::from_micros(u64::from(pkt.desired_min_tx));
        self.remote_detect_mult = pkt.detect_mult;
        // §6.8.6: Final bit and a Poll Sequence in progress: terminate it.
        if pkt.final_bit && self.polling {
            self.polling = false;
            // §6.8.3: the deferred changes take effect now.
            self.tx_in_use = self.adv_tx;
            self.rx_in_use = self.cfg.required_min_rx;
        }
        // §6.8.7: the transmit interval follows bfd.RemoteMinRxInterval; if it shrank,
        // do not wait out the old, longer interval.
        self.reschedule_after_rx_change(now, old_remote_rx);

        // §6.8.6: the state machine (Figure in §6.2).
        if pkt.state == SessionState::AdminDown {
            if self.state != SessionState::Down {
                // §6.8.6: received AdminDown: bfd.LocalDiag = 3, Down.
                self.go_to(now, SessionState::Down, Diag::NEIGHBOR_DOWN);
            }
        } else {
            match (self.state, pkt.state) {
                // §6.8.6: Down + received Down -> Init; Down + received Init -> Up.
                (SessionState::Down, SessionState::Down) => {
                    self.go_to(now, SessionState::Init, Diag::NONE)
                }
                (SessionState::Down, SessionState::Init) => {
                    self.go_to(now, SessionState::Up, Diag::NONE)
                }
                // §6.8.6: Init + received Init or Up -> Up.
                (SessionState::Init, SessionState::Init | SessionState::Up) => {
                    self.go_to(now, SessionState::Up, Diag::NONE)
                }
                // §6.8.6: Up + received Down -> bfd.LocalDiag = 3, Down.
                (SessionState::Up, SessionState::Down) => {
                    self.go_to(now, SessionState::Down, Diag::NEIGHBOR_DOWN)
                }
                _ => {}
            }
        }
        // §6.8.4: the detection timer restarts on every accepted packet.
        self.detect_deadline = Some(now + self.detection_time_now());
        // §6.8.6: Poll bit: send a packet with Final "as soon as practicable, without
        // respect to the transmission timer".
        if pkt.poll {
            let answer = self.packet(false, true);
            self.push(Action::Send(answer));
        }
        Ok(())
    }

    /// Fire the timers due at `now` (call when `now >= poll_timeout()`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_deadline.is_some_and(|t| now >= t) {
            self.detect_deadline = None;
            // §6.8.1: bfd.RemoteDiscr is reset when Detection Time passes in silence.
            self.remote_discr = 0;
            self.remote_state = SessionState::Down;
            if matches!(self.state, SessionState::Init | SessionState::Up) {
                // §6.8.4: detection time expired: bfd.LocalDiag = 1, Down.
                self.go_to(now, SessionState::Down, Diag::DETECTION_TIME_EXPIRED);
            }
        }
        if let Some(due) = self.next_tx {
            if now >= due {
                // §6.8.7: periodic transmission, Poll bit while a Poll Sequence runs.
                let p = self.packet(self.polling, false);
                self.push(Action::Send(p));
                let mut next = due + self.jittered_interval();
                if next <= now {
                    next = now + self.jittered_interval();
                }
                self.next_tx = self.may_transmit().then_some(next);
            }
        }
    }

    /// Hold the session AdminDown (RFC 5880 §6.8.16), e.g. before stopping: the peer
    /// learns it at once and does not take it for a failure.
    pub fn admin_down(&mut self, now: Instant) {
        if self.state == SessionState::AdminDown {
            return;
        }
        self.detect_deadline = None;
        self.go_to(now, SessionState::AdminDown, Diag::ADMIN_DOWN);
        let p = self.packet(false, false);
        self.push(Action::Send(p));
    }

    /// Leave AdminDown: the session restarts in Down (§6.8.16).
    pub fn admin_up(&mut self, now: Instant) {
        if self.state == SessionState::AdminDown {
            self.go_to(now, SessionState::Down, Diag::NONE);
        }
    }

    /// New timers (reload). A change runs a Poll Sequence (§6.8.3); while Up, an
    /// increase of our transmit interval and a reduction of our receive interval wait
    /// for its Final.
    pub fn set_timers(&mut self, now: Instant, tx: Duration, rx: Duration, mult: u8) {
        self.cfg.detect_mult = mult.max(1);
        let up = self.state == SessionState::Up;
        let new_tx = if up { tx } else { tx.max(SLOW_TX) };
        let changed = new_tx != self.adv_tx || rx != self.cfg.required_min_rx;
        if !up || new_tx < self.tx_in_use {
            self.tx_in_use = new_tx;
        }
        if !up || rx > self.rx_in_use {
            self.rx_in_use = rx;
        }
        self.cfg.desired_min_tx = tx;
        self.cfg.required_min_rx = rx;
        self.adv_tx = new_tx;
        if changed {
            self.polling = true;
            if up {
                let p = self.packet(true, false);
                self.push(Action::Send(p));
                self.next_tx = Some(now + self.jittered_interval());
            }
        }
    }

    // ----- outputs ------------------------------------------------------------

    /// The next thing to do, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_tx, self.detect_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- getters ------------------------------------------------------------

    /// bfd.SessionState.
    pub fn state(&self) -> SessionState {
        self.state
    }
    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> SessionState {
        self.remote_state
    }
    /// bfd.LocalDiag.
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }
    /// bfd.LocalDiscr.
    pub fn local_discr(&self) -> u32 {
        self.cfg.local_discr
    }
    /// bfd.RemoteDiscr (0: unknown).
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }
    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    /// Whether a Poll Sequence is in progress.
    pub fn is_polling(&self) -> bool {
        self.polling
    }
    /// State changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The Detection Time (§6.8.4) once the peer has been heard: its Detect Mult times
    /// the larger of our Required Min RX and its last Desired Min TX.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult != 0).then(|| self.detection_time_now())
    }

    /// When the next periodic transmission is due (`None`: none is, §6.8.7: not started,
    /// or the peer's Required Min RX Interval is zero).
    pub fn next_transmit(&self) -> Option<Instant> {
        self.next_tx
    }

    /// The interval between our periodic transmissions before jitter (§6.8.7):
    /// the larger of our interval in use and the peer's Required Min RX.
    pub fn tx_interval(&self) -> Duration {
        self.tx_in_use.max(self.remote_min_rx)
    }

    // ----- internals ----------------------------------------------------------

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn detection_time_now(&self) -> Duration {
        let mult = u32::from(self.remote_detect_mult.max(1));
        self.rx_in_use.max(self.remote_desired_tx) * mult
    }

    /// §6.8.7: "MUST NOT periodically transmit ... if bfd.RemoteMinRxInterval is zero".
    fn may_transmit(&self) -> bool {
        self.started && !self.remote_min_rx.is_zero()
    }

    fn reschedule_after_rx_change(&mut self, now: Instant, old_remote_rx: Duration) {
        if !self.started || old_remote_rx == self.remote_min_rx {
            return;
        }
        if !self.may_transmit() {
            self.next_tx = None;
            return;
        }
        let limit = now + self.tx_interval();
        if self.next_tx.is_none_or(|t| t > limit) {
            self.next_tx = Some(now + self.jittered_interval());
        }
    }

    /// §6.8.7: the interval reduced by a random 0..25% (10..25% with Detect Mult 1).
    fn jittered_interval(&mut self) -> Duration {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        let (lo, span) = if self.cfg.detect_mult == 1 {
            (1000, 1501)
        } else {
            (0, 2501)
        };
        let cut_bp = lo + r % span; // basis points cut off: 0..=2500 (1000..=2500)
        let base = self.tx_interval().as_micros().min(u128::from(u64::MAX)) as u64;
        Duration::from_micros(base - base * cut_bp / 10_000)
    }

    fn go_to(&mut self, now: Instant, to: SessionState, diag: Diag) {
        if self.state == to {
            return;
        }
        let from = self.state;
        self.state = to;
        if diag != Diag::NONE || to == SessionState::Up {
            self.local_diag = diag;
        }
        self.transitions += 1;
        self.push(Action::StateChanged {
            from,
            to,
            diag: self.local_diag,
        });
        // §6.8.3: at least one second while not Up; the configured interval once Up.
        let want = if to == SessionState::Up {
            self.cfg.desired_min_tx
        } else {
            self.cfg.desired_min_tx.max(SLOW_TX)
        };
        if want != self.adv_tx {
            self.adv_tx = want;
            // §6.8.3: a change of bfd.DesiredMinTxInterval starts a Poll Sequence.
            // Coming Up it is a decrease (takes effect at once); leaving Up the session
            // is no longer Up, so the slower interval applies at once too.
            self.tx_in_use = want;
            self.polling = true;
        }
        if to == SessionState::Up && self.started {
            // Tell the peer at once (and start the Poll for the faster interval).
            let p = self.packet(self.polling, false);
            self.push(Action::Send(p));
            self.next_tx = self.may_transmit().then(|| now + self.jittered_interval());
        } else if from == SessionState::Up && self.started {
            // Leaving Up: the next periodic packet (now one a second) says so.
            let limit = now + self.tx_interval();
            if self.next_tx.is_none_or(|t| t > limit) {
                self.next_tx = self.may_transmit().then_some(limit);
            }
        }
    }

    fn packet(&self, poll: bool, final_bit: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_bit,
            cpi: false,
            auth_present: false,
            demand: false,
            detect_mult: self.cfg.detect_mult.max(1),
            my_discr: self.cfg.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx: micros(self.adv_tx),
            required_min_rx: micros(self.cfg.required_min_rx),
            required_min_echo_rx: 0,
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
