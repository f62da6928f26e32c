//! Prometheus metrics, exposed on `metrics-listen` at `/metrics`.
//!
//! The exposition is prometheus-client's; the HTTP side is the smallest server that
//! answers `GET /metrics` (anything else gets 404), with a read timeout so that a
//! silent client costs nothing.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Labels = Vec<(&'static str, String)>;

/// Every metric vipd exports. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    state: Family<Labels, Gauge>,
    priority: Family<Labels, Gauge>,
    transitions: Family<Labels, Counter>,
    adverts_sent: Family<Labels, Counter>,
    adverts_received: Family<Labels, Counter>,
    adverts_dropped: Family<Labels, Counter>,
    master_changes: Family<Labels, Counter>,
    takeover_detect: Family<Labels, Gauge<f64, AtomicU64>>,
    takeover_announce: Family<Labels, Gauge<f64, AtomicU64>>,
    check_healthy: Family<Labels, Gauge>,
    check_latency: Family<Labels, Gauge<f64, AtomicU64>>,
}

const STATES: [&str; 4] = ["init", "backup", "master", "fault"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vipd");
        let m = Metrics {
            registry: Arc::new(Mutex::new(Registry::default())),
            state: Family::default(),
            priority: Family::default(),
            transitions: Family::default(),
            adverts_sent: Family::default(),
            adverts_received: Family::default(),
            adverts_dropped: Family::default(),
            master_changes: Family::default(),
            takeover_detect: Family::default(),
            takeover_announce: Family::default(),
            check_healthy: Family::default(),
            check_latency: Family::default(),
        };
        registry.register(
            "instance_state",
            "1 for the state the instance is in, 0 for the others",
            m.state.clone(),
        );
        registry.register(
            "instance_priority",
            "Effective priority now",
            m.priority.clone(),
        );
        registry.register(
            "transitions",
            "State transitions by from and to",
            m.transitions.clone(),
        );
        registry.register("adverts_sent", "Adverts sent", m.adverts_sent.clone());
        registry.register(
            "adverts_received",
            "Valid adverts received for this instance",
            m.adverts_received.clone(),
        );
        registry.register(
            "adverts_dropped",
            "Received packets dropped, by interface and receive check (RFC 5798 section 7.1)",
            m.adverts_dropped.clone(),
        );
        registry.register(
            "master_changes_seen",
            "Times the master address seen on the wire changed",
            m.master_changes.clone(),
        );
        registry.register(
            "last_takeover_detect_seconds",
            "Last takeover: time from the last advert heard to declaring the master down",
            m.takeover_detect.clone(),
        );
        registry.register(
            "last_takeover_announce_seconds",
            "Last takeover: time from the decision to the VIPs added and announced",
            m.takeover_announce.clone(),
        );
        registry.register(
            "check_healthy",
            "1 if the health check is healthy",
            m.check_healthy.clone(),
        );
        registry.register(
            "check_latency_seconds",
            "Duration of the last probe of the health check",
            m.check_latency.clone(),
        );
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        m
    }

    fn inst(instance: &str) -> Labels {
        vec![("instance", instance.to_string())]
    }

    /// Records the state the instance is in now.
    pub fn set_state(&self, instance: &str, state: &str) {
        for s in STATES {
            let mut l = Self::inst(instance);
            l.push(("state", s.to_string()));
            self.state.get_or_create(&l).set(i64::from(s == state));
        }
    }

    /// Records the effective priority.
    pub fn set_priority(&self, instance: &str, priority: u8) {
        self.priority
            .get_or_create(&Self::inst(instance))
            .set(i64::from(priority));
    }

    /// Counts a transition.
    pub fn transition(&self, instance: &str, from: &str, to: &str) {
        let mut l = Self::inst(instance);
        l.push(("from", from.to_string()));
        l.push(("to", to.to_string()));
        self.transitions.get_or_create(&l).inc();
    }

    /// Counts an advert sent.
    pub fn advert_sent(&self, instance: &str) {
        self.adverts_sent.get_or_create(&Self::inst(instance)).inc();
    }

    /// Counts a valid advert received.
    pub fn advert_received(&self, instance: &str) {
        self.adverts_received
            .get_or_create(&Self::inst(instance))
            .inc();
    }

    /// Counts a dropped packet by the receive check that failed.
    pub fn advert_dropped(&self, interface: &str, reason: &str) {
        let l = vec![
            ("interface", interface.to_string()),
            ("reason", reason.to_string()),
        ];
        self.adverts_dropped.get_or_create(&l).inc();
    }

    /// Counts a change of the master address seen.
    pub fn master_changed(&self, instance: &str) {
        self.master_changes
            .get_or_create(&Self::inst(instance))
            .inc();
    }

    /// Records the last takeover's time to detect.
    pub fn takeover_detect(&self, instance: &str, d: Duration) {
        self.takeover_detect
            .get_or_create(&Self::inst(instance))
            .set(d.as_secs_f64());
    }

    /// Records the last takeover's time to announce.
    pub fn takeover_announce(&self, instance: &str, d: Duration) {
        self.takeover_announce
            .get_or_create(&Self::inst(instance))
            .set(d.as_secs_f64());
    }

    /// Records a health check's verdict and latency.
    pub fn check(&self, instance: &str, check: &str, healthy: bool, latency: Duration) {
        let mut l = Self::inst(instance);
        l.push(("check", check.to_string()));
        self.check_healthy.get_or_create(&l).set(i64::from(healthy));
        self.check_latency
            .get_or_create(&l)
            .set(latency.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }

    /// Serves `GET /metrics` on `listener` until the task is aborted.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while n < buf.len() {
                        let got = stream.read(&mut buf[n..]).await?;
                        if got == 0 {
                            break;
                        }
                        n += got;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let mut words = head.split_whitespace();
                let (method, path) = (words.next(), words.next());
                let response = if method == Some("GET")
                    && matches!(path, Some("/metrics") | Some("/metrics/"))
                {
                    let body = metrics.render();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n".to_string()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Binds the metrics listener (a start-up error if the address is taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_with_single_total_suffix() {
        let m = Metrics::new();
        m.transition("web", "backup", "master");
        m.advert_dropped("eth0", "ttl_not_255");
        m.advert_dropped("eth0", "ttl_not_255");
        m.set_state("web", "master");
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
}
