//! Pipelined address changes: one thread owns one route netlink socket and turns every
//! address add (or delete) queued by any instance into a stream of requests that go to
//! the kernel in one `send` per chunk, answers read after the chunk.
//!
//! ```text
//!   driver A --Job(urgent: first VIP, its GARP)--+                  +-- one send: RTM_NEWADDR x n (NLM_F_ACK on the last)
//!   driver B --Job(urgent: first VIP, its GARP)--+--> [ pipe thread ]+-- errors by sequence number, then the last ack
//!   driver A --Job(rest of its VIPs, GARPs)------+    urgent first   +-- one sendmmsg: the GARP / NA of every VIP added
//!                                                                    +-- oneshot reply per job
//! ```
//!
//! A netlink request to the kernel is handled inside the sending `send` call, so a chunk
//! of many messages costs one system call plus the kernel's own work, and every answer is
//! already queued when `send` returns (see `run_chunk`). Jobs marked urgent (the first VIP of each
//! instance) go before any queued non-urgent job, so no instance's first VIP waits behind
//! another instance's whole list. An add may carry its announcement frame: it goes out
//! right after the chunk that added the address, before the job is answered, so that
//! every VIP is announced at the kernel's pace, whatever the runtime thread is busy with.
//! The thread is a plain OS thread: it never blocks a runtime worker, and instances never
//! compete for a socket.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
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
use super::FrameSender;

/// Requests sent in one `send`: their answers (at most one small skb each, when all fail)
/// must fit the socket's receive buffer, which is raised to [`RCVBUF`]. The
/// announcements of a chunk wait for its last add, so a chunk is also the granularity at
/// which VIPs become announced (a few milliseconds of kernel work at most).
const CHUNK: usize = 128;
/// Receive buffer asked for (the kernel may grant less; [`CHUNK`] fits the default too).
const RCVBUF: usize = 1 << 20;
/// How long the thread waits for an ack the kernel owes before giving up on it.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// What the kernel answered to one request: `Ok(announced)` (whether the job's
/// announcement frame went out) or the errno it returned.
pub(super) type Answer = Result<bool, i32>;

/// The announcement (gratuitous ARP or unsolicited NA) of each address of a submission,
/// sent on `sender` once that address is added.
pub(super) struct Announce<'a> {
    pub(super) sender: &'a Arc<FrameSender>,
    /// One complete Ethernet frame per address, in the same order.
    pub(super) frames: Vec<Vec<u8>>,
}

/// One address change.
struct Job {
    ifindex: u32,
    addr: IpNet,
    add: bool,
    urgent: bool,
    /// Sent once the address is added.
    announce: Option<(Arc<FrameSender>, Vec<u8>)>,
    reply: oneshot::Sender<Answer>,
}

/// Handle to the pipeline thread. Cheap to clone; the thread ends when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub(super) struct AddrPipe {
    /// Each submission's jobs in one message: one wake-up of the thread per instance.
    tx: mpsc::UnboundedSender<Vec<Job>>,
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
        let (announcer, chunks) = std::sync::mpsc::channel::<Answered>();
        std::thread::Builder::new()
            .name("vipd-announce".to_owned())
            .spawn(move || {
                for mut jobs in chunks {
                    finish(&mut jobs);
                }
            })?;
        std::thread::Builder::new()
            .name("vipd-addr".to_owned())
            .spawn(move || run(sock, rx, announcer))?;
        Ok(AddrPipe { tx })
    }

    /// Queues changes of `addrs` on `ifindex` (`add`: add, else delete) and waits for the
    /// kernel's answer to each, in the order given. With `urgent_first`, the first goes
    /// before every queued non-urgent job. With `announce` (adds only), each address's
    /// frame is sent as soon as the address is added.
    pub(super) async fn submit(
        &self,
        ifindex: u32,
        addrs: &[IpNet],
        add: bool,
        urgent_first: bool,
        announce: Option<Announce<'_>>,
    ) -> Vec<Answer> {
        let mut waits = Vec::with_capacity(addrs.len());
        let mut jobs = Vec::with_capacity(addrs.len());
        let mut frames = announce.map(|a| (a.sender, a.frames.into_iter()));
        for (i, addr) in addrs.iter().enumerate() {
            let (reply, rx) = oneshot::channel();
            let announce = match &mut frames {
                Some((sender, it)) if add => it.next().map(|f| (Arc::clone(sender), f)),
                _ => None,
            };
            jobs.push(Job {
                ifindex,
                addr: *addr,
                add,
                urgent: urgent_first && i == 0,
                announce,
                reply,
            });
            waits.push(rx);
        }
        if jobs.is_empty() || self.tx.send(jobs).is_err() {
            return addrs.iter().map(|_| Err(libc::EPIPE)).collect();
        }
        let mut out = Vec::with_capacity(waits.len());
        for rx in waits {
            out.push(rx.await.unwrap_or(Err(libc::EPIPE)));
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

/// A chunk's jobs with the kernel's answers (`None`: no error message, so success).
type Answered = Vec<(Job, Option<Answer>)>;

fn run(
    sock: Socket,
    mut rx: mpsc::UnboundedReceiver<Vec<Job>>,
    announcer: std::sync::mpsc::Sender<Answered>,
) {
    let mut urgent: VecDeque<Job> = VecDeque::new();
    let mut normal: VecDeque<Job> = VecDeque::new();
    let mut seq: u32 = 0;
    let mut buf = Vec::with_capacity(CHUNK * 96);
    let mut rbuf = vec![0u8; 64 * 1024];
    while let Some(first) = rx.blocking_recv() {
        let push = |js: Vec<Job>, u: &mut VecDeque<Job>, n: &mut VecDeque<Job>| {
            for j in js {
                if j.urgent {
                    u.push_back(j)
                } else {
                    n.push_back(j)
                }
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
            // Urgent jobs go in a chunk of their own: their announcements wait for no
            // other instance's VIPs.
            let queue = if urgent.is_empty() {
                &mut normal
            } else {
                &mut urgent
            };
            let mut chunk: Vec<(u32, Job)> = Vec::with_capacity(CHUNK.min(queue.len()));
            while chunk.len() < CHUNK {
                let Some(j) = queue.pop_front() else {
                    break;
                };
                seq = seq.wrapping_add(1);
                chunk.push((seq, j));
            }
            let mut jobs = run_chunk(&sock, &mut chunk, &mut buf, &mut rbuf);
            // Announcements go out from the other thread while this one adds the next
            // chunk (the kernel's work on both runs on two cores when they are free).
            if jobs.iter().any(|(j, _)| j.announce.is_some()) {
                if let Err(back) = announcer.send(jobs) {
                    jobs = back.0;
                    finish(&mut jobs);
                }
            } else {
                finish(&mut jobs);
            }
        }
    }
}

/// Sends every request of `chunk` in one `send` and returns each job with its answer.
///
/// Only the chunk's last request asks for an acknowledgement of success: the kernel
/// handles the requests in order inside the `send` and answers every failure with an
/// error message of that request's sequence number, so when the last one's ack arrives,
/// every request that got no error message succeeded. That spares the kernel an ack
/// buffer per address (and this thread a read and a parse of each). A lost answer (the
/// receive buffer overflowed: `ENOBUFS`) or a missing last ack fails what is still open.
fn run_chunk(
    sock: &Socket,
    chunk: &mut Vec<(u32, Job)>,
    buf: &mut Vec<u8>,
    rbuf: &mut [u8],
) -> Answered {
    buf.clear();
    let last_seq = chunk.last().map(|c| c.0);
    for (seq, job) in chunk.iter() {
        let msg = message(job, *seq, Some(*seq) == last_seq);
        let at = buf.len();
        buf.resize(at + msg.buffer_len(), 0);
        msg.serialize(&mut buf[at..]);
    }
    let first_seq = chunk.first().map(|c| c.0);
    let mut jobs: Answered = chunk.drain(..).map(|(_, j)| (j, None)).collect();
    if let Err(e) = sock.send(buf, 0) {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        for (_, answer) in jobs.iter_mut() {
            *answer = Some(Err(errno));
        }
    } else if let Some(first) = first_seq {
        read_answers(sock, rbuf, first, last_seq, &mut jobs);
    }
    jobs
}

/// Sends the announcements of the addresses a chunk added, then answers each job.
fn finish(jobs: &mut Answered) {
    announce_added(jobs);
    for (job, answer) in jobs.drain(..) {
        // No error message: success.
        let _ = job.reply.send(answer.unwrap_or(Ok(false)));
    }
}

/// Reads the kernel's answers to the requests `first..=last` into `jobs` (in that
/// order): an error message is that request's answer; the last one's ack ends the read.
/// A read that fails (timed out: an ack the kernel never sent; `ENOBUFS`: answers were
/// lost) fails every request still without an answer.
fn read_answers(
    sock: &Socket,
    rbuf: &mut [u8],
    first: u32,
    last: Option<u32>,
    jobs: &mut [(Job, Option<Answer>)],
) {
    loop {
        let n = match sock.recv(&mut &mut rbuf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let errno = match e.raw_os_error() {
                    Some(libc::EAGAIN) => libc::ETIMEDOUT,
                    Some(x) => x,
                    None => libc::EIO,
                };
                for (_, answer) in jobs.iter_mut().filter(|(_, a)| a.is_none()) {
                    *answer = Some(Err(errno));
                }
                return;
            }
        };
        let mut done = false;
        let mut off = 0;
        while off < n {
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n]) else {
                break;
            };
            let len = msg.header.length as usize;
            let s = msg.header.sequence_number;
            if let NetlinkPayload::Error(err) = &msg.payload {
                let idx = s.wrapping_sub(first) as usize;
                if let Some((_, answer @ None)) = jobs.get_mut(idx) {
                    *answer = Some(match err.code {
                        None => Ok(false),
                        Some(c) => Err(-c.get()),
                    });
                }
                // The last request's answer comes after every other one.
                done |= Some(s) == last;
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
        if done {
            return;
        }
    }
}

/// Sends the announcement of every address added (no error answer) whose job carries
/// one, with one `sendmmsg` pass per packet socket, and marks those that went out.
fn announce_added(jobs: &mut [(Job, Option<Answer>)]) {
    let added = |(job, answer): &(Job, Option<Answer>)| {
        job.add && job.announce.is_some() && matches!(answer, None | Some(Ok(_)))
    };
    let mut todo: Vec<usize> = (0..jobs.len()).filter(|i| added(&jobs[*i])).collect();
    while let Some(&lead) = todo.first() {
        let Some((sender, _)) = jobs[lead].0.announce.as_ref() else {
            break;
        };
        let sender = Arc::clone(sender);
        // This socket's frames, in order; the others wait for their own pass.
        let (mine, rest): (Vec<usize>, Vec<usize>) = todo.iter().partition(|i| {
            jobs[**i]
                .0
                .announce
                .as_ref()
                .is_some_and(|(s, _)| Arc::ptr_eq(s, &sender))
        });
        todo = rest;
        let frames: Vec<&[u8]> = mine
            .iter()
            .filter_map(|i| jobs[*i].0.announce.as_ref().map(|(_, f)| f.as_slice()))
            .collect();
        // A frame that did not go out is the driver's to send (and report).
        let (sent, _) = sender.send_batch(&frames);
        for i in mine.into_iter().take(sent) {
            jobs[i].1 = Some(Ok(true));
        }
    }
}
