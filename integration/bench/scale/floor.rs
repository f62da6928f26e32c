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

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Requests per `send` (vipd's address pipeline sends as many).
const CHUNK: usize = 128;
const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const RTM_NEWADDR: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_PROTO: u16 = 11;
/// vipd's address mark (`proto 86`), so the requests are the same as vipd's.
const PROTO_VIPD: u8 = 86;

fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

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
    buf.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    buf.extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    attr(buf, IFA_LOCAL, &addr.octets());
    attr(buf, IFA_ADDRESS, &addr.octets());
    attr(buf, IFA_PROTO, &[PROTO_VIPD]);
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
        if kind == NLMSG_ERROR && len >= NLMSG_HDR + 4 {
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
    let ifname = std::ffi::CString::new(ifname).map_err(|e| e.to_string())?;
    let addrs = addrs.to_vec();
    std::thread::spawn(move || -> Result<Duration, String> {
        let nsf = std::fs::File::open(&ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
        // SAFETY: a valid namespace fd; only this thread changes namespace, and it ends
        // after the measurement.
        if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os("setns"));
        }
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        if ifindex == 0 {
            return Err(os("if_nametoindex"));
        }
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os("netlink socket"));
        }
        // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // Room for every ack of a chunk (root may exceed rmem_max).
        let big: libc::c_int = 8 << 20;
        // SAFETY: valid fd and an int option of the size given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&big as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // A missing ack fails the measurement instead of hanging it.
        let wait = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: valid fd and a timeval of the size given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&wait as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let mut msgs: Vec<Vec<u8>> = Vec::new();
        for (c, part) in addrs.chunks(CHUNK).enumerate() {
            let mut buf = Vec::with_capacity(part.len() * (NLMSG_HDR + IFADDRMSG + 24));
            for (i, a) in part.iter().enumerate() {
                new_addr(&mut buf, (c * CHUNK + i + 1) as u32, ifindex, *a);
            }
            msgs.push(buf);
        }
        let mut rbuf = vec![0u8; 1 << 20];
        let started = Instant::now();
        for (buf, part) in msgs.iter().zip(addrs.chunks(CHUNK)) {
            // SAFETY: buf is a valid slice; the kernel handles every request inside send.
            let n = unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
            if n < 0 || n as usize != buf.len() {
                return Err(os("send"));
            }
            let mut got = 0;
            while got < part.len() {
                // SAFETY: rbuf is a valid writable buffer of the size given.
                let n = unsafe {
                    libc::recv(sock.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0)
                };
                if n < 0 {
                    return Err(os("recv"));
                }
                let (acks, err) = read_acks(&rbuf[..n as usize]);
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
