//! Pipelined address changes: one thread owns one route netlink socket and turns every
//! address add (or delete) queued by any instance into a stream of requests that go to
//! the kernel in one `send` per chunk, answers read after the chunk.
//!
//! ```text
//!   driver A --Job(urgent: first VIP)--+                   +-- one send: RTM_NEWADDR x n (NLM_F_ACK on the last)
//!   driver B --Job(urgent: first VIP)--+--> [ pipe thread ]-+-- errors by sequence number, then the last ack
//!   driver A --Job(rest of its VIPs)---+    urgent first    +-- oneshot reply per job
//! ```
//!
//! A netlink request to the kernel is handled inside the sending `send` call, so a chunk
//! of many messages costs one system call plus the kernel's own work, and every answer is
//! already queued when `send` returns (see `run_chunk`). Jobs marked urgent (the first VIP of each
//! instance) go before any queued non-urgent job, so no instance's first VIP waits behind
//! another instance's whole list. The thread is a plain OS thread: it never blocks a
//! runtime worker, and instances never compete for a socket.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::sync::{mpsc, oneshot};

use super::netlink::ADDRESS_PROTO;

/// Requests sent in one `send`: their answers (at most one small skb each, when all fail)
/// must fit the socket's receive buffer, which is raised to [`RCVBUF`].
const CHUNK: usize = 128;
/// Receive buffer asked for (the kernel may grant less; [`CHUNK`] fits the default too).
const RCVBUF: usize = 1 << 20;
/// How long the thread waits for an ack the kernel owes before giving up on it.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// What the kernel answered to one request: `Ok` or the errno it returned.
pub(super) type Answer = Result<(), i32>;

/// One address change.
struct Job {
    ifindex: u32,
    addr: IpNet,
    add: bool,
    urgent: bool,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the pipeline thread. Cheap to clone; the thread ends when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub(super) struct AddrPipe {
    tx: mpsc::UnboundedSender<Job>,
}

impl AddrPipe {
    /// Opens the socket and starts the thread.
    pub(super) fn start() -> io::Result<AddrPipe> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Best effort: the chunk size fits the default buffer as well.
        let _ = sock.set_rx_buf_sz(RCVBUF);
        socket2::SockRef::from(&sock).set_read_timeout(Some(ACK_WAIT))?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("vipd-addr".to_owned())
            .spawn(move || run(sock, rx))?;
        Ok(AddrPipe { tx })
    }

    /// Queues changes of `addrs` on `ifindex` (`add`: add, else delete) and waits for the
    /// kernel's answer to each, in the order given. `urgent` jobs go before every queued
    /// non-urgent one.
    pub(super) async fn submit(
        &self,
        ifindex: u32,
        addrs: &[IpNet],
        add: bool,
        urgent: bool,
    ) -> Vec<Answer> {
        let mut waits = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let (reply, rx) = oneshot::channel();
            let job = Job {
                ifindex,
                addr: *addr,
                add,
                urgent,
                reply,
            };
            if self.tx.send(job).is_err() {
                waits.push(None);
            } else {
                waits.push(Some(rx));
            }
        }
        let mut out = Vec::with_capacity(waits.len());
        for w in waits {
            out.push(match w {
                Some(rx) => rx.await.unwrap_or(Err(libc::EPIPE)),
                None => Err(libc::EPIPE),
            });
        }
        out
    }
}

/// The request message for one job (the same attributes as `Netlink::add_address` used
/// to send: IFA_LOCAL/IFA_ADDRESS, IPv4 broadcast, IFA_PROTO 86, IPv6 NODAD); `ack`: ask
/// for an acknowledgement also when it succeeds (the kernel always answers a failure).
fn message(job: &Job, seq: u32, ack: bool) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m: AddressMessage = match job.addr.addr() {
        IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(job.ifindex)
            .address(a, job.addr.prefix_len())
            .build(),
        IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(job.ifindex)
            .address(a, job.addr.prefix_len())
            .build(),
    };
    let inner = if job.add {
        m.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                ADDRESS_PROTO,
            )));
        if job.addr.addr().is_ipv6() {
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        RouteNetlinkMessage::NewAddress(m)
    } else {
        RouteNetlinkMessage::DelAddress(m)
    };
    let mut msg = NetlinkMessage::from(inner);
    msg.header.flags = NLM_F_REQUEST;
    if job.add {
        msg.header.flags |= NLM_F_EXCL | NLM_F_CREATE;
    }
    if ack {
        msg.header.flags |= NLM_F_ACK;
    }
    msg.header.sequence_number = seq;
    msg.finalize();
    msg
}

fn run(sock: Socket, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut urgent: VecDeque<Job> = VecDeque::new();
    let mut normal: VecDeque<Job> = VecDeque::new();
    let mut seq: u32 = 0;
    let mut buf = Vec::with_capacity(CHUNK * 96);
    let mut rbuf = vec![0u8; 64 * 1024];
    while let Some(first) = rx.blocking_recv() {
        let push = |j: Job, u: &mut VecDeque<Job>, n: &mut VecDeque<Job>| {
            if j.urgent {
                u.push_back(j)
            } else {
                n.push_back(j)
            }
        };
        push(first, &mut urgent, &mut normal);
        loop {
            // Whatever else is queued now joins this stream (late deciders' first VIPs
            // jump ahead of the non-urgent rest).
            while let Ok(j) = rx.try_recv() {
                push(j, &mut urgent, &mut normal);
            }
            if urgent.is_empty() && normal.is_empty() {
                break;
            }
            let mut chunk: Vec<(u32, Job)> = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                let Some(j) = urgent.pop_front().or_else(|| normal.pop_front()) else {
                    break;
                };
                seq = seq.wrapping_add(1);
                chunk.push((seq, j));
            }
            run_chunk(&sock, &mut chunk, &mut buf, &mut rbuf);
        }
    }
}

/// Sends every request of `chunk` in one `send` and answers each job.
///
/// Only the chunk's last request asks for an acknowledgement of success: the kernel
/// handles the requests in order inside the `send` and answers every failure with an
/// error message of that request's sequence number, so when the last one's ack arrives,
/// every request that got no error message succeeded. That spares the kernel an ack
/// buffer per address (and this thread a read and a parse of each). A lost answer (the
/// receive buffer overflowed: `ENOBUFS`) or a missing last ack fails what is still open.
fn run_chunk(sock: &Socket, chunk: &mut Vec<(u32, Job)>, buf: &mut Vec<u8>, rbuf: &mut [u8]) {
    buf.clear();
    let last_seq = chunk.last().map(|c| c.0);
    for (seq, job) in chunk.iter() {
        let msg = message(job, *seq, Some(*seq) == last_seq);
        let at = buf.len();
        buf.resize(at + msg.buffer_len(), 0);
        msg.serialize(&mut buf[at..]);
    }
    if let Err(e) = sock.send(buf, 0) {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        for (_, job) in chunk.drain(..) {
            let _ = job.reply.send(Err(errno));
        }
        return;
    }
    let mut pending: Vec<Option<(u32, Job)>> = chunk.drain(..).map(Some).collect();
    let first_seq = pending.first().and_then(|p| p.as_ref()).map(|p| p.0);
    let mut done = pending.is_empty();
    while !done {
        let n = match sock.recv(&mut &mut rbuf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Timed out (an ack the kernel never sent) or the buffer overflowed
                // (ENOBUFS: acks were lost): fail what is still open.
                let errno = match e.raw_os_error() {
                    Some(libc::EAGAIN) => libc::ETIMEDOUT,
                    Some(x) => x,
                    None => libc::EIO,
                };
                for p in pending.iter_mut() {
                    if let Some((_, job)) = p.take() {
                        let _ = job.reply.send(Err(errno));
                    }
                }
                return;
            }
        };
        let mut off = 0;
        while off < n {
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n]) else {
                break;
            };
            let len = msg.header.length as usize;
            let s = msg.header.sequence_number;
            if let (NetlinkPayload::Error(err), Some(first)) = (&msg.payload, first_seq) {
                let idx = s.wrapping_sub(first) as usize;
                if let Some(slot) = pending.get_mut(idx) {
                    if let Some((_, job)) = slot.take() {
                        let answer = match err.code {
                            None => Ok(()),
                            Some(c) => Err(-c.get()),
                        };
                        let _ = job.reply.send(answer);
                    }
                }
                // The last request's answer comes after every other one.
                done |= Some(s) == last_seq;
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
    // No error message: success.
    for p in pending.iter_mut() {
        if let Some((_, job)) = p.take() {
            let _ = job.reply.send(Ok(()));
        }
    }
}
