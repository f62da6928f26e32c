//! Prometheus metrics, exposed on `metrics-listen` at `/metrics`.
//!
//! The exposition is prometheus-client's; the HTTP side ([`http`]) is the smallest server
//! that answers `GET /metrics` (anything else gets 404), with a bounded number of
//! connections and a deadline on every read and write, so that a silent client, or one
//! that never reads, costs nothing.
//!
//! Layout: [`Metrics`] holds one struct per subject (instance, adverts, takeovers,
//! checks, repairs, BFD sessions, the arbiter), each declared by `subject!` (one line per
//! metric: field, series type, name, help; it writes the struct and its `new`, which
//! registers them in that order) with its recording methods in a plain `impl`. A new
//! subject adds a `subject!` of its own, a field in [`Metrics`] and a line in
//! [`Metrics::new`]; nothing else changes. Names are registered without the
//! `vipd_` prefix (the registry adds it) and counters without `_total` (prometheus-client
//! appends it, and panics in debug builds when the name already ends in it).
//!
//! Every series that names a VRRP instance carries it in the label `instance`. A
//! Prometheus server scraping with the default `honor_labels: false` renames it
//! `exported_instance` and puts the scrape target in `instance`: the shipped alert
//! rules and dashboard (`packaging/monitoring/`) rely on exactly that.
//!
//! Longer than 600 lines on purpose: it is a list of small, independent subject structs
//! (each a metric list and a few recording methods) and their exposition tests,
//! about a third of the file; reading one subject never needs another.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use tokio::net::TcpListener;

pub mod http;
pub use http::ServeOptions;

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Upper bounds of the takeover histograms, in seconds: 1 ms to 10 s in 1-2-5 steps.
pub const TAKEOVER_BUCKETS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

fn takeover_histogram() -> Histogram {
    Histogram::new(TAKEOVER_BUCKETS)
}

/// At most this many VIPs are named in `instance_info`'s `vips` label.
pub const INFO_VIPS: usize = 8;

/// The `vips` label of `instance_info`: the configured VIPs joined by commas, the first
/// [`INFO_VIPS`] of them and `+N` for the rest (an instance may have 255): enough to tell
/// virtual routers apart, and the same on every host with the same configuration.
pub fn vips_label(vips: &[String]) -> String {
    let mut s = vips
        .iter()
        .take(INFO_VIPS)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if vips.len() > INFO_VIPS {
        s.push_str(&format!(",+{}", vips.len() - INFO_VIPS));
    }
    s
}

/// A new metric (a family of series), registered under `name` with `help`.
fn registered<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    let m = M::default();
    r.register(name, help, m.clone());
    m
}

/// Declares a subject: a struct whose fields are metric families (one series per label
/// set), and its `new`, which registers each under its name and help text in the order
/// written (the exposition's order). Each metric is written once, in one line: field,
/// series type, name, help. A subject that also keeps some state of its own names it
/// after the list (`with field: Type;`); it starts at its `Default`. An event counted per
/// instance is one line too, in `counts { method => field; }` after them: `method(instance)`
/// adds one to the instance's series of the counter `field`.
macro_rules! subject {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $field:ident: $series:ty, $metric:literal, $help:literal; )*
        }
        $( $(#[$xdoc:meta])* with $xfield:ident: $xty:ty; )?
        $( counts { $( $(#[$cdoc:meta])* $cfn:ident => $cfield:ident; )* } )?
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            $( $field: Family<Labels, $series>, )*
            $( $(#[$xdoc])* $xfield: $xty, )?
        }

        impl $name {
            /// Creates and registers its metrics.
            fn new(r: &mut Registry) -> Self {
                $name {
                    $( $field: registered(r, $metric, $help), )*
                    $( $xfield: <$xty>::default(), )?
                }
            }

            $($(
                $(#[$cdoc])*
                pub fn $cfn(&self, instance: &str) {
                    self.$cfield.get_or_create(&inst(instance)).inc();
                }
            )*)?
        }
    };
}

fn inst(instance: &str) -> Labels {
    vec![("instance", instance.to_string())]
}

const STATES: [&str; 4] = ["init", "backup", "master", "fault"];

/// Every metric vipd exports. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Per-instance state, identity and operator settings.
    pub instance: InstanceMetrics,
    /// Adverts sent, received and dropped.
    pub adverts: AdvertMetrics,
    /// Takeovers: time to detect and time to announce.
    pub takeover: TakeoverMetrics,
    /// Health checks.
    pub checks: CheckMetrics,
    /// Self-repair: VIPs put back, drivers restarted.
    pub repairs: RepairMetrics,
    /// BFD sessions.
    pub bfd: BfdMetrics,
    /// The etcd arbiter.
    pub arbiter: ArbiterMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric family.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("vipd");
        // Fields are initialised in the order written: the exposition's order.
        Metrics {
            repairs: RepairMetrics::new(&mut r),
            arbiter: ArbiterMetrics::new(&mut r),
            instance: InstanceMetrics::new(&mut r),
            adverts: AdvertMetrics::new(&mut r),
            takeover: TakeoverMetrics::new(&mut r),
            checks: CheckMetrics::new(&mut r),
            bfd: BfdMetrics::new(&mut r),
            registry: Arc::new(Mutex::new(r)),
        }
    }

    /// Creates an instance's counters and histograms at zero (transitions by pair of
    /// states, takeover histograms), once, when its driver starts.
    pub fn ensure_instance(&self, instance: &str) {
        self.instance.ensure(instance);
        self.takeover.ensure(instance);
    }

    /// Removes the series that describe an instance as it is now (state, priority,
    /// identity, operator settings, last takeover, its checks' verdicts), once its driver
    /// has ended (removed by a reload, or renamed): a gone instance must not look like a
    /// backup forever (the no-master alert would fire). Counters and histograms stay:
    /// they count what happened.
    pub fn forget_instance(&self, instance: &str, checks: &[String]) {
        self.instance.forget(instance);
        self.takeover.forget(instance);
        for c in checks {
            self.checks.forget(instance, c);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }

    /// Serves `GET /metrics` on `listener` with the default limits until the task is
    /// aborted.
    pub async fn serve(self, listener: TcpListener) {
        self.serve_with(listener, ServeOptions::default()).await
    }

    /// Serves `GET /metrics` on `listener` with the given limits (see [`http`]) until the
    /// task is aborted.
    pub async fn serve_with(self, listener: TcpListener, opts: ServeOptions) {
        http::serve(listener, move || self.render(), opts).await
    }
}

/// Binds the metrics listener (a start-up error if the address is taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

// ----- arbiter --------------------------------------------------------------

subject! {
    /// The etcd arbiter of instances with `arbiter = true`.
    ArbiterMetrics {
        holder: Gauge, "arbiter_holder", "1 while this host holds the instance's etcd key under a live lease";
        reachable: Gauge, "arbiter_reachable", "1 while the instance's etcd lease is kept alive in time";
        master_elect: Gauge, "arbiter_master_elect", "1 while VRRP says master but the etcd key is not held (advertising, no VIPs)";
        fencing_token: Gauge, "arbiter_fencing_token", "The held key's create revision (fencing token), 0 when not holding";
        lease_losses: Counter, "arbiter_vips_dropped", "Times the VIPs were dropped because the etcd lease could not be renewed or the key was lost";
    }
    counts {
        /// Counts VIPs dropped for the arbiter (lease not renewed, key lost).
        vips_dropped => lease_losses;
    }
}

impl ArbiterMetrics {
    /// Records what the arbiter says now.
    pub fn set(
        &self,
        instance: &str,
        holder: bool,
        reachable: bool,
        master_elect: bool,
        token: Option<i64>,
    ) {
        let l = inst(instance);
        self.holder.get_or_create(&l).set(i64::from(holder));
        self.reachable.get_or_create(&l).set(i64::from(reachable));
        self.master_elect
            .get_or_create(&l)
            .set(i64::from(master_elect));
        self.fencing_token.get_or_create(&l).set(token.unwrap_or(0));
        let _ = self.lease_losses.get_or_create(&l);
    }
}

// ----- instance -------------------------------------------------------------

subject! {
    /// Per-instance state, identity and operator settings.
    InstanceMetrics {
        state: Gauge, "instance_state", "1 for the state the instance is in, 0 for the others";
        state_since: FloatGauge, "instance_state_since_timestamp_seconds", "When the instance entered its current state, Unix time";
        priority: Gauge, "instance_priority", "Effective priority now";
        info: Gauge, "instance_info", "Always 1: the instance's virtual router (vrid, address family, VIPs) and interface";
        priority_override: Gauge, "instance_priority_override", "The operator's priority override (vipctl priority set), 0 when none is set";
        maintenance: Gauge, "instance_maintenance", "1 while the operator has the instance in maintenance (vipctl maintenance on)";
        transitions: Counter, "transitions", "State transitions by from and to";
        master_changes: Counter, "master_changes_seen", "Times the master address seen on the wire changed";
    }
    /// The label set of each instance's `info` series, to replace it when it changes.
    with info_labels: Arc<Mutex<HashMap<String, Labels>>>;
    counts {
        /// Counts a change of the master address seen.
        master_changed => master_changes;
    }
}

impl InstanceMetrics {
    /// Records the state the instance is in now.
    pub fn set_state(&self, instance: &str, state: &str) {
        for s in STATES {
            let mut l = inst(instance);
            l.push(("state", s.to_string()));
            self.state.get_or_create(&l).set(i64::from(s == state));
        }
    }

    /// Records when the instance entered its current state.
    pub fn set_state_since(&self, instance: &str, at: SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.state_since.get_or_create(&inst(instance)).set(secs);
    }

    /// Records the effective priority.
    pub fn set_priority(&self, instance: &str, priority: u8) {
        self.priority
            .get_or_create(&inst(instance))
            .set(i64::from(priority));
    }

    /// Records which virtual router the instance is: `family` is `"ipv4"` or `"ipv6"`,
    /// `vips` the configured addresses joined by commas. Replaces an earlier identity
    /// of the same instance (a reload may change it).
    pub fn set_identity(
        &self,
        instance: &str,
        interface: &str,
        vrid: u8,
        family: &str,
        vips: &str,
    ) {
        let l: Labels = vec![
            ("instance", instance.to_string()),
            ("interface", interface.to_string()),
            ("vrid", vrid.to_string()),
            ("family", family.to_string()),
            ("vips", vips.to_string()),
        ];
        let mut known = self.info_labels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = known.get(instance) {
            if *old == l {
                return;
            }
            self.info.remove(old);
        }
        self.info.get_or_create(&l).set(1);
        known.insert(instance.to_string(), l);
    }

    /// Records the operator's settings: priority override (None = none) and maintenance.
    pub fn set_operator(&self, instance: &str, priority_override: Option<u8>, maintenance: bool) {
        let l = inst(instance);
        self.priority_override
            .get_or_create(&l)
            .set(i64::from(priority_override.unwrap_or(0)));
        self.maintenance
            .get_or_create(&l)
            .set(i64::from(maintenance));
    }

    /// Creates the instance's transition counters at zero for every pair of states, so
    /// that `increase()` sees the first takeover of a host (a counter series that appears
    /// at 1 has no earlier sample to count from).
    pub fn ensure(&self, instance: &str) {
        for from in STATES {
            for to in STATES {
                if from != to {
                    let mut l = inst(instance);
                    l.push(("from", from.to_string()));
                    l.push(("to", to.to_string()));
                    let _ = self.transitions.get_or_create(&l);
                }
            }
        }
    }

    /// Removes the instance's gauges (see [`Metrics::forget_instance`]).
    pub fn forget(&self, instance: &str) {
        let l = inst(instance);
        for s in STATES {
            let mut ls = l.clone();
            ls.push(("state", s.to_string()));
            self.state.remove(&ls);
        }
        self.state_since.remove(&l);
        self.priority.remove(&l);
        self.priority_override.remove(&l);
        self.maintenance.remove(&l);
        let mut known = self.info_labels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = known.remove(instance) {
            self.info.remove(&old);
        }
    }

    /// Counts a transition.
    pub fn transition(&self, instance: &str, from: &str, to: &str) {
        let mut l = inst(instance);
        l.push(("from", from.to_string()));
        l.push(("to", to.to_string()));
        self.transitions.get_or_create(&l).inc();
    }
}

// ----- adverts --------------------------------------------------------------

subject! {
    /// Adverts sent, received and dropped.
    AdvertMetrics {
        sent: Counter, "adverts_sent", "Adverts sent";
        received: Counter, "adverts_received", "Valid adverts received for this instance";
        dropped: Counter, "adverts_dropped", "Received packets dropped, by interface and receive check (RFC 5798 section 7.1)";
    }
}

/// One instance's advert counters ([`AdvertMetrics::counters`]).
#[derive(Clone, Debug)]
pub struct AdvertCounters {
    /// Adverts sent.
    pub sent: Counter,
    /// Valid adverts received.
    pub received: Counter,
}

impl AdvertMetrics {
    /// The sent and received counters of one instance, to keep and count on directly:
    /// the hot path then neither builds labels nor takes the family's lock. Counters are
    /// never removed (see [`Metrics::forget_instance`]), so a kept one stays exported.
    pub fn counters(&self, instance: &str) -> AdvertCounters {
        let l = inst(instance);
        AdvertCounters {
            sent: self.sent.get_or_create(&l).clone(),
            received: self.received.get_or_create(&l).clone(),
        }
    }

    /// Counts a dropped packet by the receive check that failed.
    pub fn dropped(&self, interface: &str, reason: &str) {
        self.dropped_n(interface, reason, 1);
    }

    /// Counts `n` received packets dropped for `reason` (receivers count in batches).
    pub fn dropped_n(&self, interface: &str, reason: &str, n: u64) {
        let l = vec![
            ("interface", interface.to_string()),
            ("reason", reason.to_string()),
        ];
        self.dropped.get_or_create(&l).inc_by(n);
    }
}

// ----- self-repair ----------------------------------------------------------

subject! {
    /// What vipd repaired by itself (issue 12): VIPs deleted under a master, drivers that
    /// panicked.
    RepairMetrics {
        vips_restored: Counter, "vips_restored", "VIPs that disappeared from the interface while master and were added again";
        instance_restarts: Counter, "instance_restarts", "Times the instance's driver ended unexpectedly (a panic) and was restarted";
    }
    counts {
        /// Counts a VIP put back after it disappeared under a master.
        vip_restored => vips_restored;
        /// Counts a restart of the instance after its driver ended unexpectedly.
        instance_restarted => instance_restarts;
    }
}

// ----- takeovers ------------------------------------------------------------

/// Takeovers (Backup -> Master): time to detect and time to announce, as the last
/// value and as histograms over [`TAKEOVER_BUCKETS`].
#[derive(Clone)]
pub struct TakeoverMetrics {
    last_detect: Family<Labels, FloatGauge>,
    last_announce: Family<Labels, FloatGauge>,
    detect: HistogramFamily,
    announce: HistogramFamily,
}

impl TakeoverMetrics {
    /// Creates and registers its metrics.
    fn new(r: &mut Registry) -> Self {
        let histograms = |r: &mut Registry, name: &str, help: &str| {
            let h: HistogramFamily = Family::new_with_constructor(takeover_histogram);
            r.register(name, help, h.clone());
            h
        };
        TakeoverMetrics {
            last_detect: registered(r, "last_takeover_detect_seconds", "Last takeover: time from the last advert heard to declaring the master down"),
            last_announce: registered(r, "last_takeover_announce_seconds", "Last takeover: time from the decision to the VIPs added and announced"),
            detect: histograms(r, "takeover_detect_seconds", "Takeovers: time from the last advert heard (or the failure detector's verdict) to declaring the master down"),
            announce: histograms(r, "takeover_announce_seconds", "Takeovers: time from the decision to every VIP added and announced"),
        }
    }

    /// Creates the instance's histograms at zero, so that they exist (and `increase()`
    /// counts the first takeover) before any takeover happened.
    pub fn ensure(&self, instance: &str) {
        let l = inst(instance);
        let _ = self.detect.get_or_create(&l);
        let _ = self.announce.get_or_create(&l);
    }

    /// Removes the last-value gauges (the histograms stay).
    pub fn forget(&self, instance: &str) {
        let l = inst(instance);
        self.last_detect.remove(&l);
        self.last_announce.remove(&l);
    }

    /// Records a takeover's time to detect.
    pub fn detect(&self, instance: &str, d: Duration) {
        let l = inst(instance);
        self.last_detect.get_or_create(&l).set(d.as_secs_f64());
        self.detect.get_or_create(&l).observe(d.as_secs_f64());
    }

    /// Records a takeover's time to announce.
    pub fn announce(&self, instance: &str, d: Duration) {
        let l = inst(instance);
        self.last_announce.get_or_create(&l).set(d.as_secs_f64());
        self.announce.get_or_create(&l).observe(d.as_secs_f64());
    }
}

// ----- health checks --------------------------------------------------------

subject! {
    /// Health checks: verdict and latency of the last probe.
    CheckMetrics {
        healthy: Gauge, "check_healthy", "1 if the health check is healthy";
        latency: FloatGauge, "check_latency_seconds", "Duration of the last probe of the health check";
    }
}

impl CheckMetrics {
    /// Removes one check's series.
    pub fn forget(&self, instance: &str, check: &str) {
        let mut l = inst(instance);
        l.push(("check", check.to_string()));
        self.healthy.remove(&l);
        self.latency.remove(&l);
    }

    /// Records a health check's verdict and latency.
    pub fn record(&self, instance: &str, check: &str, healthy: bool, latency: Duration) {
        let mut l = inst(instance);
        l.push(("check", check.to_string()));
        self.healthy.get_or_create(&l).set(i64::from(healthy));
        self.latency.get_or_create(&l).set(latency.as_secs_f64());
    }
}

// ----- BFD -------------------------------------------------------------------

subject! {
    /// BFD sessions (RFC 5880): state, transitions, packets, drops by receive check.
    BfdMetrics {
        state: Gauge, "bfd_session_state", "BFD session state: 0 AdminDown, 1 Down, 2 Init, 3 Up (RFC 5880 section 4.1)";
        transitions: Counter, "bfd_transitions", "BFD session state changes";
        sent: Counter, "bfd_packets_sent", "BFD Control packets sent";
        received: Counter, "bfd_packets_received", "BFD Control packets accepted by a session";
        dropped: Counter, "bfd_packets_dropped", "BFD packets dropped, by interface and receive check (RFC 5880 section 6.8.6, RFC 5881)";
    }
}

fn session(interface: &str, peer: &str) -> Labels {
    vec![
        ("interface", interface.to_string()),
        ("peer", peer.to_string()),
    ]
}

impl BfdMetrics {
    /// Records a session's state.
    pub fn set_state(&self, interface: &str, peer: &str, state: crate::bfd::SessionState) {
        self.state
            .get_or_create(&session(interface, peer))
            .set(i64::from(state.bits()));
    }

    /// Forgets a session that ended.
    pub fn remove(&self, interface: &str, peer: &str) {
        self.state.remove(&session(interface, peer));
    }

    /// Counts a state change.
    pub fn transition(&self, interface: &str, peer: &str, from: &str, to: &str) {
        let mut l = session(interface, peer);
        l.push(("from", from.to_string()));
        l.push(("to", to.to_string()));
        self.transitions.get_or_create(&l).inc();
    }

    /// The sent and received counters of `interface`, to keep and increment directly.
    pub fn packet_counters(&self, interface: &str) -> (Counter, Counter) {
        let l = vec![("interface", interface.to_string())];
        (
            self.sent.get_or_create(&l).clone(),
            self.received.get_or_create(&l).clone(),
        )
    }

    /// Counts a dropped packet by the receive check that failed.
    pub fn dropped(&self, interface: &str, reason: &str) {
        let l = vec![
            ("interface", interface.to_string()),
            ("reason", reason.to_string()),
        ];
        self.dropped.get_or_create(&l).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `key` (name and labels exactly as exposed).
    fn sample(text: &str, key: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
    }

    #[test]
    fn bfd_series_are_exposed_by_interface_peer_and_reason() {
        let m = Metrics::new();
        m.bfd
            .set_state("eth0", "192.0.2.12", crate::bfd::SessionState::Up);
        m.bfd.transition("eth0", "192.0.2.12", "init", "up");
        let (sent, received) = m.bfd.packet_counters("eth0");
        sent.inc();
        received.inc();
        m.bfd.dropped("eth0", "ttl_not_255");
        m.bfd.dropped("eth0", "ttl_not_255");
        let text = m.render();
        for (key, v) in [
            (
                r#"vipd_bfd_session_state{interface="eth0",peer="192.0.2.12"}"#,
                3.0,
            ),
            (
                r#"vipd_bfd_transitions_total{interface="eth0",peer="192.0.2.12",from="init",to="up"}"#,
                1.0,
            ),
            (r#"vipd_bfd_packets_sent_total{interface="eth0"}"#, 1.0),
            (r#"vipd_bfd_packets_received_total{interface="eth0"}"#, 1.0),
            (
                r#"vipd_bfd_packets_dropped_total{interface="eth0",reason="ttl_not_255"}"#,
                2.0,
            ),
        ] {
            assert_eq!(sample(&text, key), Some(v), "{key} in\n{text}");
        }
        m.bfd.remove("eth0", "192.0.2.12");
        assert_eq!(
            sample(
                &m.render(),
                r#"vipd_bfd_session_state{interface="eth0",peer="192.0.2.12"}"#
            ),
            None
        );
    }

    #[test]
    fn exposition_has_counters_with_single_total_suffix() {
        let m = Metrics::new();
        m.instance.transition("web", "backup", "master");
        m.adverts.dropped("eth0", "ttl_not_255");
        m.adverts.dropped("eth0", "ttl_not_255");
        m.instance.set_state("web", "master");
        let text = m.render();
        assert!(
            text.contains(r#"vipd_transitions_total{instance="web",from="backup",to="master"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vipd_adverts_dropped_total{interface="eth0",reason="ttl_not_255"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"vipd_instance_state{instance="web",state="master"} 1"#));
        assert!(text.contains(r#"vipd_instance_state{instance="web",state="backup"} 0"#));
        assert!(!text.contains("_total_total"));
    }

    #[test]
    fn takeover_histograms_bucket_from_1ms_to_10s() {
        let m = Metrics::new();
        m.takeover.detect("web", Duration::from_millis(330));
        m.takeover.detect("web", Duration::from_millis(3));
        m.takeover.announce("web", Duration::from_micros(400));
        let text = m.render();
        assert!(
            text.contains("# TYPE vipd_takeover_detect_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("# TYPE vipd_takeover_announce_seconds histogram"));
        let bucket = |name: &str, le: &str| {
            sample(
                &text,
                &format!(r#"vipd_{name}_bucket{{le="{le}",instance="web"}}"#),
            )
        };
        // Cumulative buckets: 3 ms falls in le=0.005, 330 ms in le=0.5.
        assert_eq!(
            bucket("takeover_detect_seconds", "0.001"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(bucket("takeover_detect_seconds", "0.002"), Some(0.0));
        assert_eq!(bucket("takeover_detect_seconds", "0.005"), Some(1.0));
        assert_eq!(bucket("takeover_detect_seconds", "0.2"), Some(1.0));
        assert_eq!(bucket("takeover_detect_seconds", "0.5"), Some(2.0));
        assert_eq!(bucket("takeover_detect_seconds", "10.0"), Some(2.0));
        assert_eq!(bucket("takeover_detect_seconds", "+Inf"), Some(2.0));
        assert_eq!(bucket("takeover_announce_seconds", "0.001"), Some(1.0));
        assert_eq!(
            sample(
                &text,
                r#"vipd_takeover_detect_seconds_count{instance="web"}"#
            ),
            Some(2.0)
        );
        let sum =
            sample(&text, r#"vipd_takeover_detect_seconds_sum{instance="web"}"#).expect("sum");
        assert!((sum - 0.333).abs() < 1e-9, "{sum}");
        // Every configured bound is exposed, and nothing below 1 ms or above 10 s.
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("vipd_takeover_detect_seconds_bucket"))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(les.len(), TAKEOVER_BUCKETS.len() + 1, "{les:?}");
        assert_eq!(les.first(), Some(&"0.001"));
        assert_eq!(les.last(), Some(&"+Inf"));
        // The last-value gauges stay beside the histograms.
        assert_eq!(
            sample(
                &text,
                r#"vipd_last_takeover_detect_seconds{instance="web"}"#
            ),
            Some(0.003)
        );
        assert_eq!(
            sample(
                &text,
                r#"vipd_last_takeover_announce_seconds{instance="web"}"#
            ),
            Some(0.0004)
        );
    }

    #[test]
    fn takeover_histograms_exist_at_zero_before_the_first_takeover() {
        let m = Metrics::new();
        m.takeover.ensure("web");
        let text = m.render();
        for h in ["detect", "announce"] {
            assert_eq!(
                sample(
                    &text,
                    &format!(r#"vipd_takeover_{h}_seconds_count{{instance="web"}}"#)
                ),
                Some(0.0),
                "{text}"
            );
            assert_eq!(
                sample(
                    &text,
                    &format!(r#"vipd_takeover_{h}_seconds_bucket{{le="+Inf",instance="web"}}"#)
                ),
                Some(0.0)
            );
        }
        // The last-value gauges only appear with a takeover.
        assert!(
            !text.contains("vipd_last_takeover_detect_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn a_forgotten_instance_leaves_only_its_counters_and_histograms() {
        let m = Metrics::new();
        for name in ["web", "api"] {
            m.instance.set_state(name, "backup");
            m.instance.set_priority(name, 100);
            m.instance.transition(name, "init", "backup");
            m.instance.set_state_since(name, UNIX_EPOCH);
            m.instance.set_operator(name, Some(120), true);
            m.instance
                .set_identity(name, "eth0", 51, "ipv4", "192.0.2.100/24");
            m.takeover.detect(name, Duration::from_millis(300));
            m.checks
                .record(name, "http", true, Duration::from_millis(1));
        }
        m.forget_instance("web", &["http".to_string()]);
        let text = m.render();
        let web: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#"instance="web""#))
            .collect();
        assert!(
            web.iter().all(|l| l.starts_with("vipd_transitions_total")
                || l.starts_with("vipd_takeover_")),
            "{web:#?}"
        );
        assert!(web.iter().any(|l| l.starts_with("vipd_transitions_total")));
        assert!(web
            .iter()
            .any(|l| l.starts_with("vipd_takeover_detect_seconds_count")));
        // The other instance keeps everything.
        for key in [
            r#"vipd_instance_state{instance="api",state="backup"}"#,
            r#"vipd_instance_priority{instance="api"}"#,
            r#"vipd_instance_maintenance{instance="api"}"#,
            r#"vipd_instance_priority_override{instance="api"}"#,
            r#"vipd_instance_state_since_timestamp_seconds{instance="api"}"#,
            r#"vipd_last_takeover_detect_seconds{instance="api"}"#,
            r#"vipd_check_healthy{instance="api",check="http"}"#,
        ] {
            assert!(sample(&text, key).is_some(), "{key} missing:\n{text}");
        }
        assert!(text.contains(r#"vipd_instance_info{instance="api""#));
    }

    #[test]
    fn transitions_exist_at_zero_for_every_pair_of_states() {
        let m = Metrics::new();
        m.ensure_instance("web");
        m.instance.transition("web", "backup", "master");
        let text = m.render();
        let pairs: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(r#"vipd_transitions_total{instance="web""#))
            .collect();
        assert_eq!(pairs.len(), 12, "{pairs:#?}");
        assert_eq!(
            sample(
                &text,
                r#"vipd_transitions_total{instance="web",from="backup",to="master"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"vipd_transitions_total{instance="web",from="master",to="backup"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"vipd_takeover_detect_seconds_count{instance="web"}"#
            ),
            Some(0.0)
        );
    }

    #[test]
    fn vips_label_names_the_first_eight_and_counts_the_rest() {
        let v: Vec<String> = (1..=10).map(|i| format!("192.0.2.{i}/24")).collect();
        assert_eq!(vips_label(&v[..1]), "192.0.2.1/24");
        assert_eq!(vips_label(&v[..2]), "192.0.2.1/24,192.0.2.2/24");
        let l = vips_label(&v);
        assert!(l.starts_with("192.0.2.1/24,"), "{l}");
        assert!(l.ends_with("192.0.2.8/24,+2"), "{l}");
        assert_eq!(vips_label(&v[..8]).matches(',').count(), 7);
    }

    #[test]
    fn operator_gauges_follow_override_and_maintenance() {
        let m = Metrics::new();
        m.instance.set_operator("web", Some(200), true);
        let text = m.render();
        assert_eq!(
            sample(&text, r#"vipd_instance_priority_override{instance="web"}"#),
            Some(200.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"vipd_instance_maintenance{instance="web"}"#),
            Some(1.0)
        );
        m.instance.set_operator("web", None, false);
        let text = m.render();
        assert_eq!(
            sample(&text, r#"vipd_instance_priority_override{instance="web"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"vipd_instance_maintenance{instance="web"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn state_since_is_unix_seconds() {
        let m = Metrics::new();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        m.instance.set_state_since("web", at);
        let text = m.render();
        assert!(text.contains("# TYPE vipd_instance_state_since_timestamp_seconds gauge"));
        assert_eq!(
            sample(
                &text,
                r#"vipd_instance_state_since_timestamp_seconds{instance="web"}"#
            ),
            Some(1_700_000_000.25),
            "{text}"
        );
    }

    #[test]
    fn info_series_is_replaced_when_the_identity_changes() {
        let m = Metrics::new();
        m.instance
            .set_identity("web", "eth0", 51, "ipv4", "192.0.2.100/24");
        m.instance
            .set_identity("web", "eth0", 51, "ipv4", "192.0.2.100/24");
        let key51 = r#"vipd_instance_info{instance="web",interface="eth0",vrid="51",family="ipv4",vips="192.0.2.100/24"}"#;
        assert_eq!(sample(&m.render(), key51), Some(1.0));
        m.instance
            .set_identity("web", "eth0", 52, "ipv4", "192.0.2.100/24,192.0.2.101/24");
        let text = m.render();
        assert_eq!(sample(&text, key51), None, "{text}");
        assert_eq!(
            sample(
                &text,
                r#"vipd_instance_info{instance="web",interface="eth0",vrid="52",family="ipv4",vips="192.0.2.100/24,192.0.2.101/24"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("vipd_instance_info{"))
                .count(),
            1
        );
    }
}
