//! Periodic adverts of the masters that share one VRRP socket, sent together: the
//! drivers woken by one grid instant queue their adverts, and one task sends them with
//! `sendmmsg` once they all ran (the runtime runs tasks in the order they were woken).
//! Receivers then get a tick's adverts in one burst, and wake once for it.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::daemon::ratelimit::LogLimiter;
use crate::net::VrrpSocket;

/// How long the sender waits when the socket's send queue is full, and how many times
/// for one batch.
const FULL_WAIT: Duration = Duration::from_millis(1);
const FULL_WAITS: u32 = 20;

/// One queued advert.
struct Queued {
    dst: IpAddr,
    bytes: Vec<u8>,
    /// The instance's `adverts_sent` counter.
    sent: Counter,
    instance: Arc<str>,
}

/// The queue of one socket's periodic adverts.
pub struct AdvertBatch {
    socket: Arc<VrrpSocket>,
    queue: Mutex<Vec<Queued>>,
    wake: Notify,
}

impl AdvertBatch {
    /// A queue for `socket`; [`AdvertBatch::run`] sends what is queued.
    pub fn new(socket: Arc<VrrpSocket>) -> Arc<Self> {
        Arc::new(AdvertBatch {
            socket,
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
        })
    }

    /// Queues one advert (VRRP bytes for `dst`) of `instance`, counted on `sent` once it
    /// went out.
    pub(super) fn push(&self, instance: &Arc<str>, dst: IpAddr, bytes: Vec<u8>, sent: &Counter) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Queued {
                dst,
                bytes,
                sent: sent.clone(),
                instance: instance.clone(),
            });
        self.wake.notify_one();
    }

    /// Sends whatever is queued, whenever something is, until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut limiter = LogLimiter::new(Duration::from_secs(10));
        loop {
            self.wake.notified().await;
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            let socket = &self.socket;
            send_all(&batch, &mut limiter, |msgs| socket.send_batch(msgs)).await;
        }
    }
}

/// Sends `batch` in order with `send` (one `sendmmsg` pass: how many went out, and why
/// the next did not): a full send queue is waited out (bounded), an advert the kernel
/// refuses is logged and skipped, every advert sent is counted.
async fn send_all<F>(batch: &[Queued], limiter: &mut LogLimiter, mut send: F)
where
    F: FnMut(&[(IpAddr, &[u8])]) -> (usize, Option<io::Error>),
{
    let mut at = 0;
    let mut waits = 0;
    while let Some(rest) = batch.get(at..).filter(|r| !r.is_empty()) {
        let msgs: Vec<(IpAddr, &[u8])> = rest.iter().map(|q| (q.dst, &q.bytes[..])).collect();
        let (n, err) = send(&msgs);
        for q in rest.iter().take(n) {
            q.sent.inc();
        }
        at += n;
        let Some(e) = err else {
            if n == 0 {
                break;
            }
            continue;
        };
        if e.kind() == io::ErrorKind::WouldBlock && waits < FULL_WAITS {
            waits += 1;
            tokio::time::sleep(FULL_WAIT).await;
            continue;
        }
        if let Some(q) = batch.get(at) {
            if limiter.hit("send_error", Instant::now()).is_some() {
                tracing::warn!("{}: cannot send advert to {}: {e}", q.instance, q.dst);
            }
        }
        // That one is lost (as a failed single send would be); on with the next.
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn queued(n: usize, sent: &Counter) -> Vec<Queued> {
        (0..n)
            .map(|i| Queued {
                dst: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
                bytes: vec![u8::try_from(i).unwrap_or(0)],
                sent: sent.clone(),
                instance: Arc::from("web"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_full_send_queue_is_waited_out_and_every_advert_goes_once_in_order() {
        let sent = Counter::default();
        let batch = queued(5, &sent);
        let mut wire = Vec::new();
        let mut calls = 0;
        send_all(
            &batch,
            &mut LogLimiter::new(Duration::from_secs(1)),
            |msgs| {
                calls += 1;
                // Two fit, then the queue is full once.
                let n = if calls == 2 { 0 } else { msgs.len().min(2) };
                wire.extend(msgs.iter().take(n).map(|(_, b)| b[0]));
                let e = (n < msgs.len()).then(|| io::Error::from(io::ErrorKind::WouldBlock));
                (n, e)
            },
        )
        .await;
        assert_eq!(wire, vec![0, 1, 2, 3, 4]);
        assert_eq!(sent.get(), 5);
    }

    #[tokio::test]
    async fn an_advert_the_kernel_refuses_is_skipped_and_the_rest_still_go() {
        let sent = Counter::default();
        let batch = queued(4, &sent);
        let mut wire = Vec::new();
        send_all(
            &batch,
            &mut LogLimiter::new(Duration::from_secs(1)),
            |msgs| {
                if msgs[0].1[0] == 1 {
                    return (0, Some(io::Error::from(io::ErrorKind::NetworkDown)));
                }
                // Stops before the refused one, as sendmmsg does.
                let n = msgs.iter().take_while(|(_, b)| b[0] != 1).count();
                wire.extend(msgs.iter().take(n).map(|(_, b)| b[0]));
                (n, None)
            },
        )
        .await;
        assert_eq!(wire, vec![0, 2, 3]);
        assert_eq!(sent.get(), 3);
    }

    #[tokio::test]
    async fn a_queue_that_stays_full_gives_up_after_a_bounded_wait() {
        let sent = Counter::default();
        let batch = queued(3, &sent);
        let mut calls = 0;
        send_all(&batch, &mut LogLimiter::new(Duration::from_secs(1)), |_| {
            calls += 1;
            (0, Some(io::Error::from(io::ErrorKind::WouldBlock)))
        })
        .await;
        // Each advert is given up after the waits ran out; nothing counted.
        assert!(calls <= FULL_WAITS as usize + 4, "{calls}");
        assert_eq!(sent.get(), 0);
    }
}
