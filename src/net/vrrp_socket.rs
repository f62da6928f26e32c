//! Raw VRRP sockets (IP protocol 112), integrated with tokio through `AsyncFd`.
//!
//! Two sockets per instance: a receive socket that is *not* bound to any unicast
//! address (bound, it would stop seeing 224.0.0.18), and a send socket bound to the
//! router's own primary / link-local address, so that the kernel never picks a VIP as
//! the source of an advert.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::{require_runtime, sys, NetError, RecvBatch};
use crate::proto::vrrp::{self, IPV4_GROUP, IPV6_GROUP, IP_PROTOCOL};

/// TTL / hop limit of every VRRP packet sent (RFC 5798 §5.1.1.3, §5.1.2.3).
const VRRP_TTL: u32 = vrrp::TTL as u32;
/// DSCP CS6 ("internetwork control"), as keepalived marks its adverts.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

/// What [`VrrpSocket::recv`] put into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// IPv4: `buf[..len]` is the whole IP packet, header included (its length is IHL*4:
    /// the caller parses it, and reads source, destination and TTL from it).
    V4 {
        /// Bytes in the buffer.
        len: usize,
    },
    /// IPv6: `buf[..len]` is the VRRP payload only; the kernel strips the IPv6 header,
    /// so its fields come from the socket address and control messages.
    V6 {
        /// Bytes in the buffer.
        len: usize,
        /// Source address of the packet.
        src: Ipv6Addr,
        /// Destination address of the packet (from `IPV6_PKTINFO`).
        dst: Ipv6Addr,
        /// Hop limit the packet arrived with (from `IPV6_HOPLIMIT`).
        hop_limit: u8,
    },
}

/// A pair of raw VRRP sockets (receive and send) on one interface and address family.
#[derive(Debug)]
pub struct VrrpSocket {
    /// `None` for a send-only socket ([`VrrpSocket::open_sender`]).
    rx: Option<AsyncFd<Socket>>,
    /// Not registered with the reactor: every send made the kernel report the socket
    /// writable again, one more wake-up of the runtime per advert. A full send queue is
    /// waited out with a short sleep instead ([`SEND_RETRY`]).
    tx: Socket,
    ifindex: u32,
    v6: bool,
}

/// Wraps a set-up step's error with the step's name, turning permission errors into the
/// capability message.
fn step<'a>(op: &'static str, ifname: &'a str) -> impl FnOnce(io::Error) -> NetError + 'a {
    super::socket_step("a raw socket", op, ifname)
}

/// Registers a socket with the current tokio reactor.
fn register(sock: Socket, ifname: &str) -> Result<AsyncFd<Socket>, NetError> {
    // SAFETY: `Socket` owns its descriptor and `as_raw_fd` always returns that same
    // descriptor, which stays open until the `Socket` (and so the `AsyncFd`) is dropped.
    unsafe { AsyncFd::register(sock) }.map_err(|e| NetError::Socket {
        op: "registering the socket with the tokio reactor",
        ifname: ifname.to_owned(),
        source: e.into(),
    })
}

impl VrrpSocket {
    /// Opens separate receive and send sockets on `ifindex` / `ifname`, for the address
    /// family of `source`.
    ///
    /// Both sockets: `SO_BINDTODEVICE`, multicast loop off, TTL / hop limit 255 for
    /// multicast and unicast, TOS / traffic class 0xc0. The receive socket joins
    /// 224.0.0.18 / ff02::12 on the interface, has `IP(V6)_MULTICAST_ALL` off, and is not
    /// bound to any address. IPv4: the send socket is bound to `source` and sends
    /// multicast out of `ifindex` (`IP_MULTICAST_IF`). IPv6: the receive socket asks for
    /// `IPV6_RECVHOPLIMIT` and `IPV6_RECVPKTINFO`; the send socket is bound to `source`
    /// (with scope id `ifindex` when link-local). `IPV6_CHECKSUM` is deliberately not set:
    /// the daemon computes and verifies the checksum itself, so bad ones can be counted.
    /// The send socket drops all input (a BPF filter), so its queue never fills.
    ///
    /// Must be called from inside a tokio runtime.
    pub fn open(ifname: &str, ifindex: u32, source: IpAddr) -> Result<Self, NetError> {
        require_runtime("VrrpSocket::open")?;
        let rx = open_rx(ifname, ifindex, source.is_ipv6())?;
        let tx = open_tx(ifname, ifindex, source, false)?;
        Ok(VrrpSocket {
            rx: Some(register(rx, ifname)?),
            tx,
            ifindex,
            v6: source.is_ipv6(),
        })
    }

    /// Opens only the send socket, on `ifindex` / `ifname` (set up as in
    /// [`VrrpSocket::open`]): virtual MAC mode sends adverts from the instance's macvlan
    /// while it receives on the parent interface. IPv4: the source must be an address of
    /// this host (on any interface). IPv6: the source is the parent's link-local address,
    /// which is not on `ifname` (the macvlan carries no address as backup), so the socket
    /// is bound with `IPV6_FREEBIND`; the kernel sends from it through `ifname` all the
    /// same, with the macvlan's (virtual) MAC.
    ///
    /// Must be called from inside a tokio runtime.
    pub fn open_sender(ifname: &str, ifindex: u32, source: IpAddr) -> Result<Self, NetError> {
        require_runtime("VrrpSocket::open_sender")?;
        let tx = open_tx(ifname, ifindex, source, true)?;
        Ok(VrrpSocket {
            rx: None,
            tx,
            ifindex,
            v6: source.is_ipv6(),
        })
    }

    /// Receives one datagram into `buf`.
    ///
    /// IPv4: the whole IP packet, header included (see [`Received::V4`]). IPv6: only the
    /// payload, with source, destination and hop limit returned (see [`Received::V6`]).
    /// A datagram larger than `buf` is consumed and reported as an `InvalidData` error
    /// (use a buffer of at least the interface MTU).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let Some(rx) = &self.rx else {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this VRRP socket only sends",
                ));
            };
            let mut guard = rx.readable().await?;
            let result = if self.v6 {
                guard.try_io(|s| recv_v6(s.get_ref(), buf))
            } else {
                guard.try_io(|s| recv_v4(s.get_ref(), buf))
            };
            match result {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads what is queued (up to the batch's capacity) with one `recvmmsg`, waiting
    /// until something is. Returns how many datagrams `batch` holds now (at least one).
    ///
    /// IPv4: each datagram is the whole IP packet, header included (as
    /// [`Received::V4`]). IPv6: only the payload; the source is the datagram's `from`,
    /// the destination and hop limit come from `IPV6_PKTINFO` / `IPV6_HOPLIMIT` (its
    /// `dst` and `ttl`). A batch that is not full means the kernel found the queue empty,
    /// so no further read is needed to learn it (one system call per wake-up).
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let Some(rx) = &self.rx else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this VRRP socket only sends",
            ));
        };
        loop {
            let mut guard = rx.readable().await?;
            let got = batch.recv(guard.get_inner().as_fd())?;
            if got < batch.capacity() {
                // Empty now; a datagram queued after the read raises a new edge.
                guard.clear_ready();
            }
            if got > 0 {
                return Ok(got);
            }
        }
    }

    /// Whether this is an IPv6 socket.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Sends `payload` (VRRP bytes, checksum already computed by the caller) to `dst`,
    /// a multicast group or a unicast peer. The kernel adds the IP header.
    pub async fn send(&self, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let addr = self.destination(dst)?;
        let mut waited = 0;
        loop {
            match self.tx.send_to(payload, &addr) {
                Ok(n) => return sent_whole(n, payload.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && waited < SEND_RETRIES => {
                    // The send queue is full (a burst on a slow link): the kernel frees
                    // it as packets leave.
                    waited += 1;
                    tokio::time::sleep(SEND_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl VrrpSocket {
    /// Sends several adverts, each `(destination, VRRP bytes)` as in
    /// [`VrrpSocket::send`], with as few `sendmmsg` calls as the kernel allows. Never
    /// waits. Returns how many went out, in order; when that is fewer than all, the
    /// error says why the next did not (`WouldBlock`: the send queue is full; try the
    /// rest again shortly).
    pub fn send_batch(&self, msgs: &[(IpAddr, &[u8])]) -> (usize, Option<io::Error>) {
        if let [(dst, payload)] = msgs {
            // One advert (a lone master's): one `sendto`, no lists to build.
            let sent = self.destination(*dst).and_then(|a| {
                self.tx
                    .send_to_with_flags(payload, &a, libc::MSG_DONTWAIT)
                    .and_then(|n| sent_whole(n, payload.len()))
            });
            return match sent {
                Ok(()) => (1, None),
                Err(e) => (0, Some(e)),
            };
        }
        let mut addrs = Vec::with_capacity(msgs.len());
        for (dst, _) in msgs {
            match self.destination(*dst) {
                Ok(a) => addrs.push(a),
                // Sent up to the first bad destination; the caller skips it.
                Err(e) => return self.send_batch_to(&msgs[..addrs.len()], &addrs, Some(e)),
            }
        }
        self.send_batch_to(msgs, &addrs, None)
    }

    fn send_batch_to(
        &self,
        msgs: &[(IpAddr, &[u8])],
        addrs: &[SockAddr],
        after: Option<io::Error>,
    ) -> (usize, Option<io::Error>) {
        let parts: Vec<(&[u8], Option<&SockAddr>)> = msgs
            .iter()
            .zip(addrs)
            .map(|((_, bytes), a)| (*bytes, Some(a)))
            .collect();
        match sys::send_batch(&self.tx, &parts) {
            (n, None) => (n, after),
            (n, e) => (n, e),
        }
    }

    /// The socket address of `dst` (a multicast group or a unicast peer) for this
    /// socket's family; link-local and link-scope destinations get the interface.
    fn destination(&self, dst: IpAddr) -> io::Result<SockAddr> {
        match (dst, self.v6) {
            (IpAddr::V4(a), false) => Ok(SocketAddr::V4(SocketAddrV4::new(a, 0)).into()),
            (IpAddr::V6(a), true) => {
                let scope = if needs_scope(&a) { self.ifindex } else { 0 };
                Ok(SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope)).into())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("destination {dst} is not of this socket's address family"),
            )),
        }
    }
}

/// `Ok` when a send took all `len` bytes (`n`), else the short write as an error.
fn sent_whole(n: usize, len: usize) -> io::Result<()> {
    if n == len {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {n} of {len} bytes"),
        ))
    }
}

/// Link-local unicast (fe80::/10) or multicast of interface- or link-local scope.
fn needs_scope(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    (s[0] & 0xffc0) == 0xfe80 || (a.is_multicast() && matches!(s[0] & 0x000f, 1 | 2))
}

/// How long a send waits when the send queue is full, and how many times.
const SEND_RETRY: std::time::Duration = std::time::Duration::from_millis(1);
const SEND_RETRIES: u32 = 20;

/// Receive buffer of the VRRP receive sockets: about 4,000 queued adverts.
const RECEIVE_BUFFER: usize = 4 << 20;

fn raw_socket(domain: Domain, ifname: &str) -> Result<Socket, NetError> {
    let protocol = Protocol::from(i32::from(IP_PROTOCOL));
    super::device_socket(domain, Type::RAW, protocol, ifname, "a raw socket")
}

/// The socket calls that differ by address family. The receive and send sockets of
/// both families are set up by the same steps ([`open_rx`], [`open_tx`]); this table
/// says which call each step is for IPv4 and for IPv6.
struct FamilyOptions {
    domain: Domain,
    /// The step that joins the group, as error messages name it.
    joining: &'static str,
    /// `IP_MULTICAST_ALL` / `IPV6_MULTICAST_ALL`.
    multicast_all: fn(&Socket, bool) -> io::Result<()>,
    multicast_loop: fn(&Socket, bool) -> io::Result<()>,
    /// The receive socket's control messages beyond the packet (IPv6: the hop limit and
    /// the destination, which the IPv4 header carries).
    recv_extras: fn(&Socket) -> io::Result<()>,
    /// Joins the VRRP group on the interface with this index.
    join: fn(&Socket, u32) -> io::Result<()>,
    /// Binding to an address that is not on the interface.
    freebind: fn(&Socket, bool) -> io::Result<()>,
    /// TTL / hop limit of multicast, then of unicast.
    multicast_hops: fn(&Socket, u32) -> io::Result<()>,
    unicast_hops: fn(&Socket, u32) -> io::Result<()>,
    /// TOS / traffic class.
    class: fn(&Socket, u32) -> io::Result<()>,
    /// The interface (by index) that multicast leaves by.
    multicast_if: fn(&Socket, u32) -> io::Result<()>,
}

const V4_OPTIONS: FamilyOptions = FamilyOptions {
    domain: Domain::IPV4,
    joining: "joining 224.0.0.18",
    multicast_all: Socket::set_multicast_all_v4,
    multicast_loop: Socket::set_multicast_loop_v4,
    recv_extras: |_| Ok(()),
    join: |s, ifindex| s.join_multicast_v4_n(&IPV4_GROUP, &InterfaceIndexOrAddress::Index(ifindex)),
    freebind: Socket::set_freebind_v4,
    multicast_hops: Socket::set_multicast_ttl_v4,
    unicast_hops: Socket::set_ttl_v4,
    class: Socket::set_tos_v4,
    multicast_if: sys::set_multicast_if_v4_index,
};

const V6_OPTIONS: FamilyOptions = FamilyOptions {
    domain: Domain::IPV6,
    joining: "joining ff02::12",
    multicast_all: Socket::set_multicast_all_v6,
    multicast_loop: Socket::set_multicast_loop_v6,
    recv_extras: |s| {
        s.set_recv_hoplimit_v6(true)?;
        sys::set_recv_pktinfo_v6(s)
    },
    join: |s, ifindex| s.join_multicast_v6(&IPV6_GROUP, ifindex),
    freebind: Socket::set_freebind_v6,
    multicast_hops: Socket::set_multicast_hops_v6,
    unicast_hops: Socket::set_unicast_hops_v6,
    class: Socket::set_tclass_v6,
    multicast_if: Socket::set_multicast_if_v6,
};

impl FamilyOptions {
    fn of(v6: bool) -> &'static FamilyOptions {
        if v6 {
            &V6_OPTIONS
        } else {
            &V4_OPTIONS
        }
    }
}

/// The receive socket: multicast-all and loop off, the group joined on `ifindex`, not
/// bound to any address.
fn open_rx(ifname: &str, ifindex: u32, v6: bool) -> Result<Socket, NetError> {
    let f = FamilyOptions::of(v6);
    let s = raw_socket(f.domain, ifname)?;
    (f.multicast_all)(&s, false).map_err(step("turning multicast-all off", ifname))?;
    (f.multicast_loop)(&s, false).map_err(step("turning multicast loop off", ifname))?;
    (f.recv_extras)(&s).map_err(step(
        "asking for IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO",
        ifname,
    ))?;
    sys::grow_receive_buffer(&s, RECEIVE_BUFFER)
        .map_err(step("enlarging the receive buffer", ifname))?;
    (f.join)(&s, ifindex).map_err(step(f.joining, ifname))?;
    Ok(s)
}

/// The send socket: input dropped, loop off, TTL / hop limit 255, class 0xc0, bound to
/// `source` (IPv6 link-local: with scope `ifindex`). `freebind`: bind to `source`
/// although it is not an address of `ifname` (virtual MAC mode,
/// [`VrrpSocket::open_sender`]).
fn open_tx(ifname: &str, ifindex: u32, source: IpAddr, freebind: bool) -> Result<Socket, NetError> {
    let f = FamilyOptions::of(source.is_ipv6());
    let s = raw_socket(f.domain, ifname)?;
    if freebind {
        (f.freebind)(&s, true).map_err(step("setting IP(V6)_FREEBIND", ifname))?;
    }
    sys::drop_all_input(&s).map_err(step("attaching the drop-all input filter", ifname))?;
    (f.multicast_loop)(&s, false).map_err(step("turning multicast loop off", ifname))?;
    (f.multicast_hops)(&s, VRRP_TTL)
        .map_err(step("setting the multicast TTL / hop limit to 255", ifname))?;
    (f.unicast_hops)(&s, VRRP_TTL).map_err(step("setting the TTL / hop limit to 255", ifname))?;
    (f.class)(&s, TOS_INTERNETWORK_CONTROL)
        .map_err(step("setting the TOS / traffic class", ifname))?;
    (f.multicast_if)(&s, ifindex).map_err(step("setting the multicast interface", ifname))?;
    let addr = match source {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
        IpAddr::V6(a) => {
            let scope = if needs_scope(&a) { ifindex } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
        }
    };
    bind_source(&s, ifname, addr)?;
    Ok(s)
}

fn bind_source(s: &Socket, ifname: &str, addr: SocketAddr) -> Result<(), NetError> {
    s.bind(&addr.into()).map_err(|e| match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => NetError::SourceNotAvailable {
            ifname: ifname.to_owned(),
            addr: addr.ip(),
        },
        _ => step("binding the send socket to the source address", ifname)(e),
    })
}

fn truncated(real: usize, cap: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("datagram of {real} bytes truncated to the {cap}-byte buffer"),
    )
}

fn recv_v4(s: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    // MSG_TRUNC: the return value is the datagram's real length, so truncation shows.
    let n = nix::sys::socket::recv(s.as_raw_fd(), buf, MsgFlags::MSG_TRUNC)?;
    if n > buf.len() {
        return Err(truncated(n, buf.len()));
    }
    Ok(Received::V4 { len: n })
}

/// Control-message buffer, aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

fn recv_v6(s: &Socket, buf: &mut [u8]) -> io::Result<Received> {
    let cap = buf.len();
    let mut cmsg = CmsgBuf([0; 128]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0),
        MsgFlags::empty(),
    )?;
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(truncated(msg.bytes, cap));
    }
    let src = msg.address.map(|a| a.ip()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without source address",
        )
    })?;
    let mut dst = None;
    let mut hop_limit = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            _ => {}
        }
    }
    match (dst, hop_limit) {
        (Some(dst), Some(hop_limit)) => Ok(Received::V6 {
            len: msg.bytes,
            src,
            dst,
            hop_limit,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "IPv6 datagram without IPV6_PKTINFO / IPV6_HOPLIMIT control message",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_rfc5798_addresses() {
        assert_eq!(IPV4_GROUP.to_string(), "224.0.0.18");
        assert_eq!(IPV6_GROUP.to_string(), "ff02::12");
    }

    #[test]
    fn scope_is_needed_for_link_local_and_link_scope_multicast_only() {
        assert!(needs_scope(&"fe80::1".parse().unwrap()));
        assert!(needs_scope(&IPV6_GROUP));
        assert!(!needs_scope(&"2001:db8::1".parse().unwrap()));
        assert!(!needs_scope(&"ff05::12".parse().unwrap()));
    }
}
