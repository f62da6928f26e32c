//! Adverts of the masters that share one VRRP socket, sent together: the drivers woken
//! by one grid instant queue their periodic adverts, and one task sends them with
//! `sendmmsg` once they all ran (the runtime runs tasks in the order they were woken).
//! Receivers then get a tick's adverts in one burst, and wake once for it. So are a
//! release's priority-0 adverts (when the daemon stops, every instance's leaves in one
//! burst). Any other advert (a takeover's, an answer out of turn) is sent at once, after
//! whatever is still queued: one socket's adverts leave in the order they were made. So is every advert of the
//! only driver on a socket ([`AdvertBatch::member`]): it has nobody to wait for, and
//! handing it to the task would cost a second task's turn per advert.

use std::io;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// One `sendmmsg` pass: how many of these went out, and why the next did not.
type SendFn = dyn Fn(&[(IpAddr, &[u8])]) -> (usize, Option<io::Error>) + Send + Sync;

/// The queue of one socket's adverts.
pub struct AdvertBatch {
    send: Box<SendFn>,
    queue: Mutex<Vec<Queued>>,
    wake: Notify,
    limiter: Mutex<LogLimiter>,
    /// Drivers that send on this socket ([`BatchMember`]s alive).
    members: AtomicUsize,
}

/// A driver's use of an [`AdvertBatch`]: counted while it lives.
pub struct BatchMember(Arc<AdvertBatch>);

impl Deref for BatchMember {
    type Target = AdvertBatch;

    fn deref(&self) -> &AdvertBatch {
        &self.0
    }
}

impl Drop for BatchMember {
    fn drop(&mut self) {
        self.0.members.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AdvertBatch {
    /// A queue for `socket`; [`AdvertBatch::run`] sends what is queued.
    pub fn new(socket: Arc<VrrpSocket>) -> Arc<Self> {
        Self::with_sender(Box::new(move |msgs| socket.send_batch(msgs)))
    }

    fn with_sender(send: Box<SendFn>) -> Arc<Self> {
        Arc::new(AdvertBatch {
            send,
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
            limiter: Mutex::new(LogLimiter::new(Duration::from_secs(10))),
            members: AtomicUsize::new(0),
        })
    }

    /// How many drivers send on this socket.
    pub fn members(&self) -> u64 {
        u64::try_from(self.members.load(Ordering::Relaxed)).unwrap_or(u64::MAX)
    }

    /// A driver's handle on the queue, counted as one of its members while it lives.
    pub fn member(self: &Arc<Self>) -> BatchMember {
        self.members.fetch_add(1, Ordering::Relaxed);
        BatchMember(self.clone())
    }

    /// Queues one advert (VRRP bytes for `dst`) of `instance`, counted on `sent` once it
    /// went out. `now`, or the only member: sent before this returns, with everything
    /// queued before it (so that, say, a priority-0 advert never overtakes a periodic one
    /// still queued); else by the task, once the drivers woken with this one ran.
    pub(super) fn push(
        &self,
        instance: &Arc<str>,
        dst: IpAddr,
        bytes: Vec<u8>,
        sent: &Counter,
        now: bool,
    ) {
        let now = now || self.members.load(Ordering::Relaxed) <= 1;
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push(Queued {
            dst,
            bytes,
            sent: sent.clone(),
            instance: instance.clone(),
        });
        // Else (or when the send queue is full) the task sends it.
        if !now || self.flush_locked(&mut queue) {
            drop(queue);
            self.wake.notify_one();
        }
    }

    /// Sends what is queued; returns whether the send queue was full with adverts left.
    fn try_flush(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_locked(&mut queue)
    }

    /// [`AdvertBatch::try_flush`] with the queue's lock held.
    fn flush_locked(&self, queue: &mut Vec<Queued>) -> bool {
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        flush(queue, &mut limiter, &self.send)
    }

    /// Sends whatever is queued, whenever something is, until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            let mut waits = 0;
            while self.try_flush() {
                if waits < FULL_WAITS {
                    waits += 1;
                    tokio::time::sleep(FULL_WAIT).await;
                    continue;
                }
                // Still full after the waits: that one is lost, on with the next.
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !queue.is_empty() {
                    let q = queue.remove(0);
                    let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
                    if limiter.hit("send_full", Instant::now()).is_some() {
                        tracing::warn!(
                            "{}: cannot send advert to {}: send queue full",
                            q.instance,
                            q.dst
                        );
                    }
                }
            }
        }
    }
}

/// Sends what `queue` holds, in order, with `send` (one `sendmmsg` pass: how many went
/// out, and why the next did not), removing what went out or was refused. Returns
/// whether the send queue was full with adverts left.
fn flush<F>(queue: &mut Vec<Queued>, limiter: &mut LogLimiter, mut send: F) -> bool
where
    F: FnMut(&[(IpAddr, &[u8])]) -> (usize, Option<io::Error>),
{
    while !queue.is_empty() {
        let (done, full) = pass(queue, limiter, &mut send);
        queue.drain(..done.min(queue.len()));
        if full || done == 0 {
            return !queue.is_empty();
        }
    }
    false
}

/// One `sendmmsg` pass over `batch` with `send` (how many went out, and why the next did
/// not): counts every advert sent, logs and skips one the kernel refuses. Returns how many
/// are done (sent or skipped) and whether the send queue was full.
fn pass<F>(batch: &[Queued], limiter: &mut LogLimiter, mut send: F) -> (usize, bool)
where
    F: FnMut(&[(IpAddr, &[u8])]) -> (usize, Option<io::Error>),
{
    // A lone advert (the usual case) needs no list of its own.
    let (n, err) = match batch {
        [q] => send(&[(q.dst, &q.bytes[..])]),
        _ => send(
            &batch
                .iter()
                .map(|q| (q.dst, &q.bytes[..]))
                .collect::<Vec<_>>(),
        ),
    };
    for q in batch.iter().take(n) {
        q.sent.inc();
    }
    match err {
        None => (n, false),
        Some(e) if e.kind() == io::ErrorKind::WouldBlock => (n, true),
        Some(e) => {
            if let Some(q) = batch.get(n) {
                if limiter.hit("send_error", Instant::now()).is_some() {
                    tracing::warn!("{}: cannot send advert to {}: {e}", q.instance, q.dst);
                }
            }
            // That one is lost (as a failed single send would be); on with the next.
            (n + 1, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::vrrp::IPV4_GROUP;

    fn queued(n: usize, sent: &Counter) -> Vec<Queued> {
        (0..n)
            .map(|i| Queued {
                dst: IpAddr::V4(IPV4_GROUP),
                bytes: vec![u8::try_from(i).unwrap_or(0)],
                sent: sent.clone(),
                instance: Arc::from("web"),
            })
            .collect()
    }

    fn limiter() -> LogLimiter {
        LogLimiter::new(Duration::from_secs(1))
    }

    /// A fake `sendmmsg` pass: the first `n` of `msgs` go out (their first byte is
    /// recorded on `wire`), and the next one fails with `err`.
    fn kernel(
        wire: &mut Vec<u8>,
        msgs: &[(IpAddr, &[u8])],
        n: usize,
        err: Option<io::ErrorKind>,
    ) -> (usize, Option<io::Error>) {
        wire.extend(msgs.iter().take(n).map(|(_, b)| b[0]));
        (n, err.map(io::Error::from))
    }

    /// A queue in front of a fake kernel (see [`kernel`]).
    struct FakeSocket {
        queue: Vec<Queued>,
        wire: Vec<u8>,
        sent: Counter,
    }

    impl FakeSocket {
        /// Adverts `0..n` queued (one byte each: its number).
        fn with_queued(n: usize) -> Self {
            let sent = Counter::default();
            let queue = queued(n, &sent);
            FakeSocket {
                queue,
                wire: Vec::new(),
                sent,
            }
        }

        /// [`flush`] into a kernel whose pass takes what `take` says: how many, and why
        /// not the next one.
        fn flush<F>(&mut self, take: F) -> bool
        where
            F: Fn(&[(IpAddr, &[u8])]) -> (usize, Option<io::ErrorKind>),
        {
            let wire = &mut self.wire;
            flush(&mut self.queue, &mut limiter(), |msgs| {
                let (n, err) = take(msgs);
                kernel(wire, msgs, n, err)
            })
        }
    }

    #[test]
    fn everything_queued_goes_in_order_and_a_full_send_queue_keeps_the_rest() {
        let mut k = FakeSocket::with_queued(5);
        // Two fit, then the send queue is full.
        assert!(k.flush(|msgs| (msgs.len().min(2), Some(io::ErrorKind::WouldBlock))));
        assert_eq!(k.wire, vec![0, 1]);
        assert_eq!(k.sent.get(), 2);
        // What is left goes next, in order, before anything queued after it.
        k.queue.extend(queued(1, &k.sent).into_iter().map(|mut q| {
            q.bytes = vec![9];
            q
        }));
        let full = k.flush(|msgs| (msgs.len(), None));
        assert!(!full && k.queue.is_empty());
        assert_eq!(k.wire, vec![0, 1, 2, 3, 4, 9]);
        assert_eq!(k.sent.get(), 6);
    }

    /// A batch in front of a fake kernel that takes everything, and what went out.
    fn batch_on_wire() -> (Arc<AdvertBatch>, Arc<Mutex<Vec<u8>>>) {
        let wire = Arc::new(Mutex::new(Vec::new()));
        let w = wire.clone();
        let batch = AdvertBatch::with_sender(Box::new(move |msgs| {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            kernel(&mut w, msgs, msgs.len(), None)
        }));
        (batch, wire)
    }

    #[test]
    fn an_advert_sent_at_once_goes_after_the_periodic_ones_still_queued() {
        let (batch, wire) = batch_on_wire();
        // Two drivers on the socket.
        let (_web, _db) = (batch.member(), batch.member());
        let (name, sent) = (Arc::from("web"), Counter::default());
        let group = IpAddr::V4(IPV4_GROUP);
        // A periodic advert at priority 150 waits for the task; then the instance stops
        // and its priority-0 advert goes at once: both leave, in that order.
        batch.push(&name, group, vec![150], &sent, false);
        assert!(wire.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
        batch.push(&name, group, vec![0], &sent, true);
        assert_eq!(
            *wire.lock().unwrap_or_else(|e| e.into_inner()),
            vec![150, 0]
        );
        assert_eq!(sent.get(), 2);
    }

    #[test]
    fn the_only_driver_on_a_socket_sends_its_periodic_adverts_at_once() {
        let (batch, wire) = batch_on_wire();
        let (name, sent) = (Arc::from("web"), Counter::default());
        let group = IpAddr::V4(IPV4_GROUP);
        let web = batch.member();
        batch.push(&name, group, vec![150], &sent, false);
        assert_eq!(*wire.lock().unwrap_or_else(|e| e.into_inner()), vec![150]);
        assert_eq!(sent.get(), 1);
        // A second driver joins: periodic adverts wait for the task again.
        let db = batch.member();
        batch.push(&name, group, vec![151], &sent, false);
        assert_eq!(*wire.lock().unwrap_or_else(|e| e.into_inner()), vec![150]);
        // It leaves: the one left sends at once, after what is still queued.
        drop(db);
        batch.push(&name, group, vec![152], &sent, false);
        assert_eq!(
            *wire.lock().unwrap_or_else(|e| e.into_inner()),
            vec![150, 151, 152]
        );
        assert_eq!(sent.get(), 3);
        drop(web);
    }

    #[test]
    fn an_advert_the_kernel_refuses_is_skipped_and_the_rest_still_go() {
        let mut k = FakeSocket::with_queued(4);
        // Stops before the refused one and says why, as `sys::send_batch` does.
        let full = k.flush(|msgs| {
            let n = msgs.iter().take_while(|(_, b)| b[0] != 1).count();
            (n, (n < msgs.len()).then_some(io::ErrorKind::NetworkDown))
        });
        assert!(!full && k.queue.is_empty());
        assert_eq!(k.wire, vec![0, 2, 3]);
        assert_eq!(k.sent.get(), 3);
    }
}
