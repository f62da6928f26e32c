//! The lease-holding core: sans-IO, time passed in.
//!
//! It answers one question for the driver: *may this host hold the VIPs now, and until
//! when?* The rules (docs/architecture.md, "The arbiter"):
//!
//! 1. A right to hold exists only while we hold the instance's key ([`LeaseClock::claimed`])
//!    *and* our lease is alive by our own conservative reckoning.
//! 2. The lease is alive until `sent + TTL - margin(TTL)`, where `sent` is the instant we
//!    *sent* the latest grant or keep-alive request that etcd acknowledged. etcd restarts
//!    the lease's TTL when it *receives* the request, which is no earlier than we sent it,
//!    so the server's expiry is never before our deadline plus the margin.
//! 3. The margin covers clock rate error between this host and the etcd leader
//!    ([`CLOCK_RATE_ERROR`] of the TTL) and the time to remove the VIPs once the deadline
//!    fires ([`REMOVE_MARGIN`]).
//! 4. A keep-alive acknowledged with TTL 0 means the lease is gone: no right at all.
//! 5. A fresh lease (a grant) never carries a key: a key is claimed under the lease it was
//!    created with, and a key from an earlier run or lease is someone else's.
//!
//! Together: at no instant can two hosts hold. Another host can create the key only once
//! the server has deleted it, which happens after our lease expired at the server (or
//! after we deleted it ourselves), and by then our own deadline has passed.

use std::time::{Duration, Instant};

/// Clock rate error allowed between this host's monotonic clock and the etcd leader's,
/// as a fraction of the TTL (2 %: 1 % each side; NTP-disciplined clocks are within
/// 0.05 %, free-running quartz within 0.01 %).
pub const CLOCK_RATE_ERROR: f64 = 0.02;

/// Time allowed between the deadline timer firing and the VIPs being gone (timer
/// resolution, task scheduling, one netlink round trip).
pub const REMOVE_MARGIN: Duration = Duration::from_millis(100);

/// How far before the deadline the right to hold ends: `TTL * CLOCK_RATE_ERROR +
/// REMOVE_MARGIN`, but never more than half the TTL.
pub fn margin(ttl: Duration) -> Duration {
    (ttl.mul_f64(CLOCK_RATE_ERROR) + REMOVE_MARGIN).min(ttl / 2)
}

/// Keep-alives are sent this often (a quarter of the TTL: three may be lost before the
/// right to hold ends).
pub fn keepalive_interval(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(50))
}

/// How long one request (grant, keep-alive, claim) may take before the next endpoint
/// is tried.
pub fn request_timeout(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(100))
}

/// The lease and key bookkeeping of one instance.
#[derive(Debug, Clone, Default)]
pub struct LeaseClock {
    /// TTL of the live lease, as granted (or as last returned by a keep-alive).
    ttl: Option<Duration>,
    /// Send instant of the latest acknowledged grant or keep-alive.
    renewed_sent: Option<Instant>,
    /// Send instant of the latest keep-alive attempt (acknowledged or not).
    last_attempt: Option<Instant>,
    /// The key's create revision while we hold it.
    token: Option<i64>,
}

impl LeaseClock {
    /// No lease, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new lease was granted for a request sent at `sent` (rule 5: it carries no key).
    pub fn granted(&mut self, sent: Instant, ttl: Duration) {
        self.ttl = Some(ttl);
        self.renewed_sent = Some(sent);
        self.last_attempt = Some(sent);
        self.token = None;
    }

    /// A keep-alive is being sent at `now`.
    pub fn keepalive_sent(&mut self, now: Instant) {
        self.last_attempt = Some(now);
    }

    /// The keep-alive sent at `sent` was acknowledged with `ttl` (rule 4: zero = gone).
    /// An acknowledgement of an older request than one already counted changes nothing.
    pub fn renewed(&mut self, sent: Instant, ttl: Duration) {
        if ttl.is_zero() {
            self.expired();
            return;
        }
        if self.ttl.is_none() {
            // The lease was already given up (expired locally): an old answer cannot
            // bring it back, since a key may have been lost meanwhile.
            return;
        }
        if self.renewed_sent.is_none_or(|r| sent >= r) {
            self.renewed_sent = Some(sent);
            self.ttl = Some(ttl);
        }
    }

    /// The lease is gone (TTL 0, revoked, or given up): no right to hold.
    pub fn expired(&mut self) {
        self.ttl = None;
        self.renewed_sent = None;
        self.token = None;
    }

    /// The claim transaction created the key under our lease with create revision
    /// `token`. Accepted only while the lease is alive at `now`; returns whether we hold.
    pub fn claimed(&mut self, now: Instant, token: i64) -> bool {
        if self.lease_alive(now) {
            self.token = Some(token);
            true
        } else {
            false
        }
    }

    /// The key is no longer ours (we deleted it, or it was deleted or replaced).
    pub fn key_lost(&mut self) {
        self.token = None;
    }

    /// Whether a lease exists by our reckoning (it may have expired: see
    /// [`LeaseClock::lease_alive`]).
    pub fn has_lease(&self) -> bool {
        self.ttl.is_some()
    }

    /// The granted TTL of the current lease.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// When the lease's life ends by our conservative reckoning (rules 2 and 3).
    pub fn deadline(&self) -> Option<Instant> {
        let ttl = self.ttl?;
        Some(self.renewed_sent? + ttl - margin(ttl))
    }

    /// Whether the lease is alive at `now`.
    pub fn lease_alive(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now < d)
    }

    /// The fencing token if we may hold the VIPs at `now` (rule 1).
    pub fn holds(&self, now: Instant) -> Option<i64> {
        self.token.filter(|_| self.lease_alive(now))
    }

    /// The token of the key we believe we hold, alive lease or not.
    pub fn token(&self) -> Option<i64> {
        self.token
    }

    /// When the next keep-alive is due: [`keepalive_interval`] after the latest attempt
    /// (an attempt that timed out is followed at once by the caller).
    pub fn next_keepalive(&self) -> Option<Instant> {
        let ttl = self.ttl?;
        let base = match (self.last_attempt, self.renewed_sent) {
            (Some(a), Some(r)) => a.max(r),
            (a, r) => a.or(r)?,
        };
        Some(base + keepalive_interval(ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A clock whose lease (TTL) was granted at `t0`.
    fn granted(t0: Instant) -> LeaseClock {
        let mut l = LeaseClock::new();
        l.granted(t0, TTL);
        l
    }

    /// A clock holding the key with `token` under a lease granted at `t0`.
    fn holding(t0: Instant, token: i64) -> LeaseClock {
        let mut l = granted(t0);
        assert!(l.claimed(t0, token));
        l
    }

    #[test]
    fn margin_covers_rate_error_and_removal() {
        assert_eq!(margin(Duration::from_secs(1)), ms(120));
        assert_eq!(margin(TTL), ms(140));
        assert_eq!(margin(Duration::from_secs(10)), ms(300));
        // Never more than half the TTL.
        assert!(margin(ms(100)) <= ms(50));
    }

    #[test]
    fn no_lease_no_right() {
        let t0 = Instant::now();
        let mut l = LeaseClock::new();
        assert_eq!(l.deadline(), None);
        assert!(!l.lease_alive(t0));
        assert!(!l.claimed(t0, 5), "a claim without a lease is refused");
        assert_eq!(l.holds(t0), None);
        assert_eq!(l.next_keepalive(), None);
    }

    #[test]
    fn rule_1_holding_needs_key_and_live_lease() {
        let t0 = Instant::now();
        let mut l = granted(t0);
        assert!(l.lease_alive(t0 + ms(10)));
        assert_eq!(l.holds(t0 + ms(10)), None, "a lease alone is no right");
        assert!(l.claimed(t0 + ms(10), 42));
        assert_eq!(l.holds(t0 + ms(11)), Some(42));
        l.key_lost();
        assert_eq!(l.holds(t0 + ms(12)), None);
    }

    #[test]
    fn rule_2_deadline_counts_from_the_send_instant_not_the_answer() {
        let t0 = Instant::now();
        let mut l = LeaseClock::new();
        // Grant sent at t0, answered 300 ms later: the deadline still counts from t0.
        l.granted(t0, TTL);
        assert!(l.claimed(t0 + ms(300), 7));
        assert_eq!(l.deadline(), Some(t0 + TTL - margin(TTL)));
        // A keep-alive sent at t0+500ms and answered at t0+1500ms moves it to t0+500ms+TTL-m.
        l.keepalive_sent(t0 + ms(500));
        l.renewed(t0 + ms(500), TTL);
        assert_eq!(l.deadline(), Some(t0 + ms(500) + TTL - margin(TTL)));
        let d = l.deadline().unwrap();
        assert_eq!(l.holds(d - ms(1)), Some(7));
        assert_eq!(
            l.holds(d),
            None,
            "the right ends at the deadline, exclusive"
        );
    }

    #[test]
    fn rule_2_an_older_answer_does_not_move_the_deadline_back() {
        let t0 = Instant::now();
        let mut l = granted(t0);
        l.renewed(t0 + ms(1000), TTL);
        l.renewed(t0 + ms(500), TTL);
        assert_eq!(l.deadline(), Some(t0 + ms(1000) + TTL - margin(TTL)));
    }

    #[test]
    fn rule_2_unanswered_keepalives_do_not_extend() {
        let t0 = Instant::now();
        let mut l = holding(t0, 9);
        for i in 1..10 {
            l.keepalive_sent(t0 + ms(500 * i));
        }
        let d = t0 + TTL - margin(TTL);
        assert_eq!(l.deadline(), Some(d));
        assert_eq!(l.holds(d), None);
    }

    #[test]
    fn rule_3_deadline_is_before_the_server_expiry_by_the_margin() {
        let t0 = Instant::now();
        let mut l = LeaseClock::new();
        l.granted(t0, Duration::from_secs(1));
        // The server counts from receipt (>= t0): expiry >= t0 + 1 s.
        let server_expiry_earliest = t0 + Duration::from_secs(1);
        let d = l.deadline().unwrap();
        assert!(d + REMOVE_MARGIN <= server_expiry_earliest);
        // A local clock 1 % fast or slow measured against the server's: still before.
        let local_elapsed = d - t0;
        assert!(local_elapsed.mul_f64(1.01) + REMOVE_MARGIN <= Duration::from_secs(1));
    }

    #[test]
    fn rule_4_ttl_zero_means_gone() {
        let t0 = Instant::now();
        let mut l = holding(t0, 3);
        l.renewed(t0 + ms(500), Duration::ZERO);
        assert!(!l.has_lease());
        assert_eq!(l.holds(t0 + ms(501)), None);
        // A late answer to an earlier keep-alive does not revive it.
        l.renewed(t0 + ms(400), TTL);
        assert!(!l.has_lease());
        assert_eq!(l.holds(t0 + ms(502)), None);
    }

    #[test]
    fn rule_5_a_new_lease_carries_no_key() {
        let t0 = Instant::now();
        let mut l = holding(t0, 3);
        l.granted(t0 + ms(100), TTL);
        assert_eq!(l.holds(t0 + ms(101)), None);
        assert_eq!(l.token(), None);
    }

    #[test]
    fn a_claim_answered_after_the_deadline_is_refused() {
        let t0 = Instant::now();
        let mut l = granted(t0);
        let d = l.deadline().unwrap();
        assert!(!l.claimed(d, 11));
        assert_eq!(l.token(), None);
    }

    #[test]
    fn keepalives_every_quarter_ttl_after_the_latest_attempt() {
        let t0 = Instant::now();
        let mut l = granted(t0);
        assert_eq!(l.next_keepalive(), Some(t0 + ms(500)));
        l.keepalive_sent(t0 + ms(500));
        assert_eq!(l.next_keepalive(), Some(t0 + ms(1000)));
        l.renewed(t0 + ms(500), TTL);
        assert_eq!(l.next_keepalive(), Some(t0 + ms(1000)));
        // Three keep-alives fit before the deadline (so two may be lost).
        assert!(t0 + 3 * keepalive_interval(TTL) < l.deadline().unwrap());
    }

    // ---- at no instant can two hosts hold --------------------------------------

    use proptest::prelude::*;

    /// One simulated host: its clock rate, its lease clock, what is in flight.
    struct Host {
        /// Local clock = real time * rate (1 +- 1 %).
        rate: f64,
        lease: LeaseClock,
        lease_id: u32,
    }

    /// The etcd server, on real time: leases expire at receipt + TTL.
    #[derive(Default)]
    struct Server {
        /// lease id -> expiry (real µs).
        leases: std::collections::HashMap<u32, u64>,
        /// The key: (lease id, create revision).
        key: Option<(u32, i64)>,
        revision: i64,
    }

    impl Server {
        fn expire(&mut self, now: u64) {
            self.leases.retain(|_, exp| *exp > now);
            if let Some((lease, _)) = self.key {
                if !self.leases.contains_key(&lease) {
                    self.key = None;
                }
            }
        }
    }

    /// An answer on its way to a host: (arrival µs, host, request, local send instant,
    /// result as (lease id, revision, TTL µs)).
    type Answer = (u64, usize, Req, Instant, Option<(u32, i64, u64)>);

    #[derive(Clone, Copy, Debug)]
    enum Req {
        Grant,
        KeepAlive,
        Claim,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Two hosts keep campaigning and renewing over a network with random delays
        /// and losses (and a long cut of one host), with clocks 1 % apart from the
        /// server's: at every millisecond at most one holds.
        #[test]
        fn at_no_instant_can_two_hosts_hold(
            rates in (0.99f64..1.01, 0.99f64..1.01),
            seed in any::<u64>(),
            cut in (0u64..4_000, 0u64..4_000),
            ttl_s in 1u64..3,
        ) {
            let ttl = Duration::from_secs(ttl_s);
            let base = Instant::now();
            let mut rng = seed;
            let mut rand = move |n: u64| {
                rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
                rng % n.max(1)
            };
            let mut hosts = [
                Host { rate: rates.0, lease: LeaseClock::new(), lease_id: 0 },
                Host { rate: rates.1, lease: LeaseClock::new(), lease_id: 0 },
            ];
            let local = |h: &Host, real_us: u64| base + Duration::from_micros((real_us as f64 * h.rate) as u64);
            let mut server = Server::default();
            let mut next_lease = 1u32;
            // (arrival at server µs, host, request, local send instant)
            let mut to_server: Vec<(u64, usize, Req, Instant, u32)> = Vec::new();
            // (arrival at host µs, host, request, local send instant, result)
            let mut to_host: Vec<Answer> = Vec::new();
            let (cut_start, cut_len) = (cut.0 * 1000, cut.1 * 1000 + 500_000);
            let cut_host = (seed % 2) as usize;
            let mut next_try = [0u64; 2];
            for t in (0..10_000_000u64).step_by(1000) {
                server.expire(t);
                // Deliver requests to the server.
                let (due, rest): (Vec<_>, Vec<_>) = to_server.into_iter().partition(|m| m.0 <= t);
                to_server = rest;
                for (_, h, req, sent, lease) in due {
                    let result = match req {
                        Req::Grant => {
                            let id = next_lease; next_lease += 1;
                            server.leases.insert(id, t + ttl.as_micros() as u64);
                            Some((id, 0, ttl.as_micros() as u64))
                        }
                        Req::KeepAlive => match server.leases.get_mut(&lease) {
                            Some(exp) => { *exp = t + ttl.as_micros() as u64; Some((lease, 0, ttl.as_micros() as u64)) }
                            None => Some((lease, 0, 0)),
                        },
                        Req::Claim => {
                            if server.key.is_none() && server.leases.contains_key(&lease) {
                                server.revision += 1;
                                server.key = Some((lease, server.revision));
                                Some((lease, server.revision, 0))
                            } else { None }
                        }
                    };
                    let lost = rand(100) < 10 || (h == cut_host && t >= cut_start && t < cut_start + cut_len);
                    if !lost {
                        to_host.push((t + rand(50_000), h, req, sent, result));
                    }
                }
                // Deliver answers to the hosts.
                let (due, rest): (Vec<_>, Vec<_>) = to_host.into_iter().partition(|m| m.0 <= t);
                to_host = rest;
                for (_, h, req, sent, result) in due {
                    let host = &mut hosts[h];
                    let now = local(host, t);
                    match (req, result) {
                        (Req::Grant, Some((id, _, ttl_us))) => {
                            host.lease.granted(sent, Duration::from_micros(ttl_us));
                            host.lease_id = id;
                        }
                        (Req::KeepAlive, Some((id, _, ttl_us))) if id == host.lease_id => {
                            host.lease.renewed(sent, Duration::from_micros(ttl_us));
                        }
                        (Req::Claim, Some((id, rev, _))) if id == host.lease_id => {
                            host.lease.claimed(now, rev);
                        }
                        _ => {}
                    }
                }
                // Each host acts on its own clock.
                for (h, host) in hosts.iter_mut().enumerate() {
                    let now = local(host, t);
                    let send = |req: Req, host: &mut Host, to_server: &mut Vec<_>, rand: &mut dyn FnMut(u64) -> u64| {
                        let lost = rand(100) < 10 || (h == cut_host && t >= cut_start && t < cut_start + cut_len);
                        if !lost {
                            to_server.push((t + rand(50_000), h, req, now, host.lease_id));
                        }
                    };
                    if !host.lease.lease_alive(now) {
                        host.lease.expired();
                    }
                    if !host.lease.has_lease() {
                        if t >= next_try[h] {
                            next_try[h] = t + 200_000;
                            send(Req::Grant, host, &mut to_server, &mut rand);
                        }
                    } else if host.lease.next_keepalive().is_some_and(|k| now >= k) {
                        host.lease.keepalive_sent(now);
                        send(Req::KeepAlive, host, &mut to_server, &mut rand);
                    } else if host.lease.token().is_none() && t >= next_try[h] {
                        next_try[h] = t + 100_000;
                        send(Req::Claim, host, &mut to_server, &mut rand);
                    }
                }
                let a = hosts[0].lease.holds(local(&hosts[0], t));
                let b = hosts[1].lease.holds(local(&hosts[1], t));
                prop_assert!(a.is_none() || b.is_none(), "both hold at {} ms: {a:?} {b:?}", t / 1000);
            }
        }
    }
}
