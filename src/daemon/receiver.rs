//! One receiver per VRRP socket: reads packets, decodes them with [`crate::proto`],
//! counts and drops bad ones, and hands good adverts to the driver of their VRID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::net::{Received, VrrpSocket};
use crate::proto::{ipv4::parse_ipv4, Advert};
use crate::vrrp::RecvFilter;

use super::driver::Input;
use super::metrics::Metrics;
use super::ratelimit::LogLimiter;

/// IP protocol number of VRRP.
const IPPROTO_VRRP: u8 = 112;

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

/// Reads `socket` until the task is aborted.
pub(super) async fn run(
    socket: Arc<VrrpSocket>,
    interface: String,
    dispatch: Dispatch,
    metrics: Metrics,
) {
    let mut buf = vec![0u8; 65536];
    let mut limiter = LogLimiter::new(Duration::from_secs(10));
    let drop = |reason: &str, from: Option<IpAddr>, limiter: &mut LogLimiter| {
        metrics.advert_dropped(&interface, reason);
        if let Some(n) = limiter.hit(reason, Instant::now()) {
            let from = from.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
            tracing::warn!(
                interface = %interface,
                reason,
                "{interface}: dropped packet from {from}: {reason} ({n} since the last such line)"
            );
        }
    };
    loop {
        let got = match socket.recv(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                if limiter.hit("recv_error", Instant::now()).is_some() {
                    tracing::warn!("{interface}: receive error: {e}");
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
                        if h.protocol != IPPROTO_VRRP {
                            continue;
                        }
                        (h.src.into(), h.dst.into(), h.ttl, payload)
                    }
                    Err(e) => {
                        drop(e.label(), None, &mut limiter);
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
        let advert = match Advert::parse(payload, src, dst) {
            Ok((a, _form)) => a,
            Err(e) => {
                drop(e.label(), Some(src), &mut limiter);
                continue;
            }
        };
        let target = dispatch
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&advert.vrid)
            .cloned();
        match target {
            None => drop("other_vrid", Some(src), &mut limiter),
            Some(route) => {
                if let Err(e) = route.filter.check(src, ttl, &advert) {
                    drop(e.label(), Some(src), &mut limiter);
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
                    drop("queue_full", Some(src), &mut limiter);
                }
            }
        }
    }
}
