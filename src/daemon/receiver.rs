//! One receiver per VRRP socket: reads packets, decodes them with [`crate::proto`],
//! counts and drops bad ones, and hands good adverts to the driver of their VRID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::net::{Received, VrrpSocket};
use crate::proto::{ipv4::parse_ipv4, vrrp, Advert, DropReason};
use crate::vrrp::{RecvDrop, RecvFilter};

use super::driver::Input;
use super::metrics::Metrics;
use super::ratelimit::LogLimiter;

/// Which driver takes adverts of which VRID on this socket, and the stateless receive
/// checks (RFC 5798 §7.1) its router would apply, so that a packet it would drop never
/// takes a slot in its queue.
pub(super) type Dispatch = Arc<RwLock<HashMap<u8, Route>>>;

/// Where the adverts of one VRID go.
#[derive(Clone)]
pub(super) struct Route {
    /// The driver's advert queue.
    pub(super) tx: mpsc::Sender<Input>,
    /// The router's stateless checks.
    pub(super) filter: Arc<RecvFilter>,
}

/// How often drop counts gathered by a receiver reach the metrics: counting each
/// packet of a flood in the shared registry would cost more than dropping it.
const DROP_FLUSH: Duration = Duration::from_millis(50);

/// Drops seen by one receiver since the last flush, by reason.
struct DropCounts {
    pending: HashMap<&'static str, u64>,
    metrics: Metrics,
    interface: String,
    limiter: LogLimiter,
}

impl DropCounts {
    fn drop(&mut self, reason: DropReason, from: Option<IpAddr>) {
        let reason = reason.label();
        *self.pending.entry(reason).or_insert(0) += 1;
        if let Some(n) = self.limiter.hit(reason, Instant::now()) {
            let interface = &self.interface;
            let from = from.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
            tracing::warn!(
                interface = %interface,
                reason,
                "{interface}: dropped packet from {from}: {reason} ({n} since the last such line)"
            );
        }
    }

    fn flush(&mut self) {
        for (reason, n) in self.pending.drain() {
            self.metrics.adverts.dropped_n(&self.interface, reason, n);
        }
    }
}

/// Reads `socket` until the task is aborted. A panic while handling a packet is caught
/// and logged, and the receiver goes on with the next one.
pub(super) async fn run(
    socket: Arc<VrrpSocket>,
    interface: String,
    dispatch: Dispatch,
    metrics: Metrics,
) {
    let mut drops = DropCounts {
        pending: HashMap::new(),
        metrics,
        interface,
        limiter: LogLimiter::new(Duration::from_secs(10)),
    };
    loop {
        let pass = std::panic::AssertUnwindSafe(receive(&socket, &dispatch, &mut drops));
        match futures::FutureExt::catch_unwind(pass).await {
            Ok(()) => return,
            Err(p) => {
                tracing::error!(
                    "{}: receiver panicked ({}); going on with the next packet",
                    drops.interface,
                    super::driver::panic_message(&p)
                );
                drops.drop(DropReason::ReceiverPanic, None);
            }
        }
    }
}

async fn receive(socket: &VrrpSocket, dispatch: &Dispatch, drops: &mut DropCounts) {
    let mut buf = vec![0u8; 65536];
    // The flush timer runs only while drops wait to be counted: an idle receiver sleeps
    // until a packet comes.
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        if flush_at.is_none() && !drops.pending.is_empty() {
            flush_at = Some(tokio::time::Instant::now() + DROP_FLUSH);
        }
        let got = tokio::select! {
            got = socket.recv(&mut buf) => got,
            _ = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                drops.flush();
                flush_at = None;
                continue;
            }
        };
        let got = match got {
            Ok(r) => r,
            Err(e) => {
                if drops.limiter.hit("recv_error", Instant::now()).is_some() {
                    tracing::warn!("{}: receive error: {e}", drops.interface);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (src, dst, ttl, payload): (IpAddr, IpAddr, u8, &[u8]) = match got {
            Received::V4 { len } => {
                let Some(bytes) = buf.get(..len) else {
                    continue;
                };
                match parse_ipv4(bytes) {
                    Ok((h, payload)) => {
                        if h.protocol != vrrp::IP_PROTOCOL {
                            continue;
                        }
                        (h.src.into(), h.dst.into(), h.ttl, payload)
                    }
                    Err(e) => {
                        drops.drop(e.reason(), None);
                        continue;
                    }
                }
            }
            Received::V6 {
                len,
                src,
                dst,
                hop_limit,
            } => {
                let Some(bytes) = buf.get(..len) else {
                    continue;
                };
                (src.into(), dst.into(), hop_limit, bytes)
            }
        };
        // RFC 5798 §7.1: TTL / hop limit 255, checked first: it is the cheapest check
        // and the one every virtual router on the socket shares.
        if ttl != 255 {
            drops.drop(RecvDrop::TtlNot255 { ttl }.reason(), Some(src));
            continue;
        }
        let advert = match Advert::parse(payload, src, dst) {
            Ok((a, _form)) => a,
            Err(e) => {
                drops.drop(e.reason(), Some(src));
                continue;
            }
        };
        let target = dispatch
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&advert.vrid)
            .cloned();
        match target {
            None => drops.drop(DropReason::OtherVrid, Some(src)),
            Some(route) => {
                if let Err(e) = route.filter.check(src, ttl, &advert) {
                    drops.drop(e.reason(), Some(src));
                    continue;
                }
                if route
                    .tx
                    .try_send(Input::Advert {
                        from: src,
                        ttl,
                        advert,
                    })
                    .is_err()
                {
                    drops.drop(DropReason::QueueFull, Some(src));
                }
            }
        }
    }
}
