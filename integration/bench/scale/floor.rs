//! The kernel floor of a takeover: how long this kernel takes to add the scenario's VIPs
//! when nothing but one pipelined netlink stream asks for them (no agent, no announcement,
//! no address listener). It is what no agent can beat on this machine, printed beside
//! vipd and keepalived.
//!
//! ```text
//!   a thread enters the namespace (setns), opens a NETLINK_ROUTE socket there, and sends
//!   RTM_NEWADDR for every VIP, CHUNK requests per send (each with NLM_F_ACK, as vipd's
//!   address pipeline sends them); time = first send -> last ack
//! ```
//!
//! Not `ip -batch`: that waits for each answer before it sends the next request.

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Requests per `send` (vipd's address pipeline sends as many).
const CHUNK: usize = 128;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDR: usize = 16;
/// Attribute types `IFA_ADDRESS`, `IFA_LOCAL`, `IFA_PROTO` (linux/if_addr.h).
const IFA_ATTRS: [u16; 3] = [1, 2, 11];
/// vipd's address mark (`proto 86`), so the requests are the same as vipd's.
const PROTO_VIPD: u8 = 86;

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

/// One `RTM_NEWADDR` of `addr/32` on `ifindex`, as vipd sends it.
fn new_addr(buf: &mut Vec<u8>, seq: u32, ifindex: u32, addr: Ipv4Addr) {
    let at = buf.len();
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_EXCL | libc::NLM_F_CREATE) as u16;
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in below
    buf.extend_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    buf.extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    let [address, local, proto] = IFA_ATTRS;
    attr(buf, local, &addr.octets());
    attr(buf, address, &addr.octets());
    attr(buf, proto, &[PROTO_VIPD]);
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Errors among the acks in `data`; returns (acks, first error).
fn read_acks(data: &[u8]) -> (usize, Option<i32>) {
    let (mut off, mut acks, mut err) = (0, 0, None);
    while off + NLMSG_HDR <= data.len() {
        let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes(data[off + 4..off + 6].try_into().unwrap_or_default());
        if len < NLMSG_HDR || off + len > data.len() {
            break;
        }
        if i32::from(kind) == libc::NLMSG_ERROR && len >= NLMSG_HDR + 4 {
            let code = i32::from_ne_bytes(
                data[off + NLMSG_HDR..off + NLMSG_HDR + 4]
                    .try_into()
                    .unwrap_or_default(),
            );
            acks += 1;
            if code != 0 && err.is_none() {
                err = Some(-code);
            }
        }
        off += (len + 3) & !3;
    }
    (acks, err)
}

/// Adds every address of `addrs` as `/32` to `ifname` inside namespace `ns`, pipelined, and
/// returns the time from the first send to the last ack. The addresses stay (the
/// namespace is deleted afterwards).
pub(crate) fn add_all(ns: &str, ifname: &str, addrs: &[Ipv4Addr]) -> Result<Duration, String> {
    let ns_path = format!("/run/netns/{ns}");
    let ifname = ifname.to_owned();
    let addrs = addrs.to_vec();
    std::thread::spawn(move || -> Result<Duration, String> {
        let nsf = std::fs::File::open(&ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
        // SAFETY: a valid namespace fd; only this thread changes namespace, and it ends
        // after the measurement.
        if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())
            .map_err(|e| format!("interface {ifname}: {e}"))?;
        let sock = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW.cloexec(),
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )
        .map_err(|e| format!("netlink socket: {e}"))?;
        // Room for the acks of a chunk (the kernel may grant less: a chunk fits anyway).
        let _ = sock.set_recv_buffer_size(1 << 20);
        // A missing ack fails the measurement instead of hanging it.
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        for (c, part) in addrs.chunks(CHUNK).enumerate() {
            let mut buf = Vec::with_capacity(part.len() * 64);
            for (i, a) in part.iter().enumerate() {
                new_addr(&mut buf, (c * CHUNK + i + 1) as u32, ifindex, *a);
            }
            msgs.push(buf);
        }
        let mut rbuf = vec![0u8; 1 << 20];
        let started = Instant::now();
        for (buf, part) in msgs.iter().zip(addrs.chunks(CHUNK)) {
            // The kernel handles every request of the buffer inside this send.
            let n = sock.send(buf).map_err(|e| format!("send: {e}"))?;
            if n != buf.len() {
                return Err(format!("sent {n} of {} bytes", buf.len()));
            }
            let mut got = 0;
            while got < part.len() {
                let n = (&sock).read(&mut rbuf).map_err(|e| format!("recv: {e}"))?;
                let (acks, err) = read_acks(&rbuf[..n]);
                if let Some(e) = err {
                    return Err(format!(
                        "the kernel refused an address: {}",
                        std::io::Error::from_raw_os_error(e)
                    ));
                }
                got += acks;
            }
        }
        Ok(started.elapsed())
    })
    .join()
    .map_err(|_| "the floor thread panicked".to_owned())?
}
