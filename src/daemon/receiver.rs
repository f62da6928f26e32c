//! One receiver per VRRP socket: reads packets, decodes them with [`crate::proto`],
//! counts and drops bad ones, and hands good adverts to the driver of their VRID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::net::{RecvBatch, RecvMeta, VrrpSocket};
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

/// Datagrams read with one `recvmmsg`; a tick's adverts of many masters come in a few.
const BATCH_SLOTS: usize = 32;

/// The largest VRRP packet: IPv6 hands over the payload only (8 bytes + 255 addresses
/// of 16 bytes: 4088), IPv4 the whole packet (60 + 8 + 255 * 4: 1088). Anything larger
/// is not an advert.
fn slot_size(v6: bool) -> usize {
    if v6 {
        4096
    } else {
        2048
    }
}

async fn receive(socket: &VrrpSocket, dispatch: &Dispatch, drops: &mut DropCounts) {
    let mut batch = RecvBatch::new(BATCH_SLOTS, slot_size(socket.is_v6()));
    // The flush timer runs only while drops wait to be counted: an idle receiver sleeps
    // until a packet comes.
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        if flush_at.is_none() && !drops.pending.is_empty() {
            flush_at = Some(tokio::time::Instant::now() + DROP_FLUSH);
        }
        let got = tokio::select! {
            got = socket.recv_batch(&mut batch) => got,
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
        if let Err(e) = got {
            if drops.limiter.hit("recv_error", Instant::now()).is_some() {
                tracing::warn!("{}: receive error: {e}", drops.interface);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // One look at the routes for the whole batch.
        let routes = dispatch.read().unwrap_or_else(|e| e.into_inner());
        for (bytes, meta) in batch.iter() {
            handle(socket.is_v6(), bytes, meta, &routes, drops);
        }
    }
}

/// Decodes, checks and dispatches one datagram of a batch.
fn handle(
    v6: bool,
    bytes: &[u8],
    meta: &RecvMeta,
    routes: &HashMap<u8, Route>,
    drops: &mut DropCounts,
) {
    if meta.truncated {
        if drops.limiter.hit("truncated", Instant::now()).is_some() {
            tracing::warn!(
                "{}: datagram of {} bytes, larger than any advert: ignored",
                drops.interface,
                meta.len
            );
        }
        return;
    }
    let (src, dst, ttl, payload): (IpAddr, IpAddr, u8, &[u8]) = if v6 {
        match (meta.from, meta.dst, meta.ttl) {
            (Some(from), Some(dst), Some(ttl)) => (from.ip(), dst, ttl, bytes),
            _ => {
                if drops.limiter.hit("no_cmsg", Instant::now()).is_some() {
                    tracing::warn!(
                        "{}: IPv6 datagram without source, IPV6_PKTINFO or IPV6_HOPLIMIT: ignored",
                        drops.interface
                    );
                }
                return;
            }
        }
    } else {
        match parse_ipv4(bytes) {
            Ok((h, payload)) => {
                if h.protocol != vrrp::IP_PROTOCOL {
                    return;
                }
                (h.src.into(), h.dst.into(), h.ttl, payload)
            }
            Err(e) => {
                drops.drop(e.reason(), None);
                return;
            }
        }
    };
    // RFC 5798 §7.1: TTL / hop limit 255, checked first: it is the cheapest check
    // and the one every virtual router on the socket shares.
    if ttl != 255 {
        drops.drop(RecvDrop::TtlNot255 { ttl }.reason(), Some(src));
        return;
    }
    let advert = match Advert::parse(payload, src, dst) {
        Ok((a, _form)) => a,
        Err(e) => {
            drops.drop(e.reason(), Some(src));
            return;
        }
    };
    let Some(route) = routes.get(&advert.vrid) else {
        drops.drop(DropReason::OtherVrid, Some(src));
        return;
    };
    if let Err(e) = route.filter.check(src, ttl, &advert) {
        drops.drop(e.reason(), Some(src));
        return;
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
