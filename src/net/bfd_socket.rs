//! UDP sockets for single-hop BFD (RFC 5881), non-blocking, for the BFD engine thread.
//!
//! - [`BfdRxSocket`]: bound to port 3784 on one interface (`SO_BINDTODEVICE`,
//!   `SO_REUSEADDR` so that one such socket per interface can coexist), reporting the
//!   TTL / hop limit of every datagram (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`), since
//!   RFC 5881 §5 requires 255, and the time the kernel queued it (`SO_TIMESTAMPNS`), so
//!   that a datagram read a little later still restarts the detection timer from its
//!   arrival.
//! - [`BfdTxSocket`]: bound to a source port in 49152..=65535 (RFC 5881 §4) on one
//!   interface, sending with TTL / hop limit 255 (RFC 5881 §5) and DSCP CS6. It drops all
//!   input, so its queue never fills.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{sys, NetError};
use crate::proto::bfd::{CONTROL_PORT, SOURCE_PORT_MIN, TTL};

const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;
/// About 40,000 queued 24-byte packets: a flood does not push the peer's packets out.
const RECEIVE_BUFFER: usize = 1 << 20;

fn step<'a>(op: &'static str, ifname: &'a str) -> impl FnOnce(io::Error) -> NetError + 'a {
    move |source| match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::NeedsCapNetRaw {
            what: "a socket bound to a device",
        },
        Some(libc::ENODEV) => NetError::NoSuchInterface(ifname.to_owned()),
        _ => NetError::Socket {
            op,
            ifname: ifname.to_owned(),
            source,
        },
    }
}

fn udp(v6: bool, ifname: &str) -> Result<Socket, NetError> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(step("opening a UDP socket", ifname))?;
    s.set_nonblocking(true)
        .map_err(step("setting O_NONBLOCK", ifname))?;
    if v6 {
        s.set_only_v6(true)
            .map_err(step("setting IPV6_V6ONLY", ifname))?;
    }
    s.bind_device(Some(ifname.as_bytes())).map_err(step(
        "binding the socket to the device (SO_BINDTODEVICE)",
        ifname,
    ))?;
    Ok(s)
}

/// One datagram received by [`BfdRxSocket::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdDatagram {
    /// Bytes in the buffer.
    pub len: usize,
    /// Source address.
    pub from: IpAddr,
    /// Source port.
    pub port: u16,
    /// TTL / hop limit it arrived with (0 if the kernel gave none).
    pub ttl: u8,
    /// When the kernel queued it (`SO_TIMESTAMPNS`, wall clock), if it said.
    pub stamp: Option<SystemTime>,
}

/// The receiving socket of one interface and address family (port 3784).
#[derive(Debug)]
pub struct BfdRxSocket {
    sock: Socket,
}

impl BfdRxSocket {
    /// Binds `[::]:3784` or `0.0.0.0:3784` on `ifname`.
    pub fn open(ifname: &str, v6: bool) -> Result<Self, NetError> {
        let s = udp(v6, ifname)?;
        s.set_reuse_address(true)
            .map_err(step("setting SO_REUSEADDR", ifname))?;
        if v6 {
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)
                .map_err(|e| step("setting IPV6_RECVHOPLIMIT", ifname)(e.into()))?;
        } else {
            setsockopt(&s, sockopt::Ipv4RecvTtl, &true)
                .map_err(|e| step("setting IP_RECVTTL", ifname)(e.into()))?;
        }
        setsockopt(&s, sockopt::ReceiveTimestampns, &true)
            .map_err(|e| step("setting SO_TIMESTAMPNS", ifname)(e.into()))?;
        sys::grow_receive_buffer(&s, RECEIVE_BUFFER)
            .map_err(step("enlarging the receive buffer", ifname))?;
        let addr = if v6 {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CONTROL_PORT, 0, 0))
        } else {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CONTROL_PORT))
        };
        s.bind(&addr.into())
            .map_err(step("binding UDP port 3784", ifname))?;
        Ok(BfdRxSocket { sock: s })
    }

    /// One datagram, or `None` when none is queued. A datagram larger than `buf` is
    /// reported with its real length (`len > buf.len()`), for the caller to drop.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<BfdDatagram>> {
        #[repr(C, align(8))]
        struct Cmsg([u8; 128]);
        let mut cmsg = Cmsg([0; 128]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<SockaddrStorage>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg.0),
            MsgFlags::MSG_TRUNC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (from, port) = match msg.address {
            Some(a) if a.as_sockaddr_in().is_some() => {
                let v4 = a.as_sockaddr_in().map(|s| (IpAddr::V4(s.ip()), s.port()));
                v4.unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
            }
            Some(a) if a.as_sockaddr_in6().is_some() => {
                let v6 = a.as_sockaddr_in6().map(|s| (IpAddr::V6(s.ip()), s.port()));
                v6.unwrap_or((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "datagram without source address",
                ))
            }
        };
        let mut ttl = 0u8;
        let mut stamp = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                        ttl = u8::try_from(t).unwrap_or(0);
                    }
                    ControlMessageOwned::ScmTimestampns(ts) => {
                        stamp = u64::try_from(ts.tv_sec()).ok().map(|secs| {
                            let nanos = u32::try_from(ts.tv_nsec()).unwrap_or(0);
                            SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(BfdDatagram {
            len: msg.bytes,
            from,
            port,
            ttl,
            stamp,
        }))
    }
}

impl AsFd for BfdRxSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// The sending socket of one interface, address family and source address.
#[derive(Debug)]
pub struct BfdTxSocket {
    sock: Socket,
    port: u16,
    ifindex: u32,
}

impl BfdTxSocket {
    /// Opens a socket on `ifname` bound to `source` (or the unspecified address, letting
    /// the kernel choose, when `None`) and to a free port in 49152..=65535, tried from
    /// `seed` onwards.
    pub fn open(
        ifname: &str,
        ifindex: u32,
        v6: bool,
        source: Option<IpAddr>,
        seed: u16,
    ) -> Result<Self, NetError> {
        let s = udp(v6, ifname)?;
        sys::drop_all_input(&s).map_err(step("attaching the drop-all input filter", ifname))?;
        if v6 {
            s.set_unicast_hops_v6(u32::from(TTL))
                .map_err(step("setting the hop limit to 255", ifname))?;
            s.set_tclass_v6(TOS_INTERNETWORK_CONTROL)
                .map_err(step("setting the traffic class", ifname))?;
        } else {
            s.set_ttl_v4(u32::from(TTL))
                .map_err(step("setting the TTL to 255", ifname))?;
            s.set_tos_v4(TOS_INTERNETWORK_CONTROL)
                .map_err(step("setting the TOS", ifname))?;
        }
        let span = u32::from(u16::MAX - SOURCE_PORT_MIN) + 1;
        let mut last = None;
        for k in 0..64u32 {
            let port = SOURCE_PORT_MIN + ((u32::from(seed) + k * 7919) % span) as u16;
            let ip = source.unwrap_or(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            let addr = match ip {
                IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
                IpAddr::V6(a) => {
                    let scope = if is_link_local(&a) { ifindex } else { 0 };
                    SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope))
                }
            };
            match s.bind(&addr.into()) {
                Ok(()) => {
                    return Ok(BfdTxSocket {
                        sock: s,
                        port,
                        ifindex,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => last = Some(e),
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                    return Err(NetError::SourceNotAvailable {
                        ifname: ifname.to_owned(),
                        addr: ip,
                    })
                }
                Err(e) => return Err(step("binding the BFD source port", ifname)(e)),
            }
        }
        Err(step(
            "finding a free BFD source port in 49152..65535",
            ifname,
        )(last.unwrap_or_else(|| {
            io::Error::from(io::ErrorKind::AddrInUse)
        })))
    }

    /// The source port (49152..=65535).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one Control packet to `dst`:3784.
    pub fn send(&self, dst: IpAddr, bytes: &[u8]) -> io::Result<()> {
        let addr: SockAddr = match dst {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, CONTROL_PORT)).into(),
            IpAddr::V6(a) => {
                let scope = if is_link_local(&a) { self.ifindex } else { 0 };
                SocketAddr::V6(SocketAddrV6::new(a, CONTROL_PORT, 0, scope)).into()
            }
        };
        let n = self.sock.send_to(bytes, &addr)?;
        if n != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", bytes.len()),
            ));
        }
        Ok(())
    }
}

/// Waits until one of `fds` has input or `timeout` passes (`None`: no timeout), with a
/// nanosecond timeout (an hrtimer: a 3 ms session wakes on time). The caller keeps the
/// `pollfd`s between calls, so a wake-up allocates nothing. Returns how many are ready
/// (0 on timeout or a signal).
pub fn wait_readable(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    sys::ppoll(fds, timeout)
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}
