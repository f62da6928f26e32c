//! UDP sockets for single-hop BFD (RFC 5881), non-blocking, for the BFD engine thread.
//!
//! - [`BfdRxSocket`]: bound to port 3784 on one interface (`SO_BINDTODEVICE`,
//!   `SO_REUSEADDR` so that one such socket per interface can coexist), reporting the
//!   TTL / hop limit of every datagram (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`), since
//!   RFC 5881 §5 requires 255, and the time the kernel queued it (`SO_TIMESTAMPNS`), so
//!   that a datagram read a little later still restarts the detection timer from its
//!   arrival. It is read in batches ([`BfdRxSocket::recv_batch`], one `recvmmsg`).
//! - [`BfdTxSocket`]: one per session, bound to a source port in 49152..=65535 (RFC 5881
//!   §4: unique per session) on one interface, sending with TTL / hop limit 255 (RFC 5881
//!   §5) and DSCP CS6. With a source address it is connected to the peer, so a send does
//!   no route lookup (the kernel keeps the route) and no address conversion. It drops all
//!   input, so its queue never fills.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{sys, NetError, RecvBatch};
use crate::proto::bfd::{CONTROL_PORT, SOURCE_PORT_MIN, TTL};

const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;
/// About 40,000 queued 24-byte packets: a flood does not push the peer's packets out.
const RECEIVE_BUFFER: usize = 1 << 20;

fn step<'a>(op: &'static str, ifname: &'a str) -> impl FnOnce(io::Error) -> NetError + 'a {
    super::socket_step("a socket bound to a device", op, ifname)
}

fn udp(v6: bool, ifname: &str) -> Result<Socket, NetError> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let what = "a socket bound to a device";
    let s = super::device_socket(domain, Type::DGRAM, Protocol::UDP, ifname, what)?;
    if v6 {
        s.set_only_v6(true)
            .map_err(step("setting IPV6_V6ONLY", ifname))?;
    }
    Ok(s)
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

    /// Reads what is queued into `batch`, without waiting (see [`RecvBatch::recv`]):
    /// each datagram with its source, TTL / hop limit and kernel receive timestamp. 0:
    /// the queue was empty; fewer than the batch holds: it is empty now.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.recv(self.sock.as_fd())
    }
}

impl AsFd for BfdRxSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// The sending socket of one session.
#[derive(Debug)]
pub struct BfdTxSocket {
    sock: Socket,
    port: u16,
    /// `peer:3784`, with the scope of a link-local peer.
    to: SockAddr,
    /// Connected to `to`: `send` rather than `sendto`.
    connected: bool,
}

impl BfdTxSocket {
    /// Opens the socket of a session to `peer` on `ifname`, bound to `source` (or the
    /// unspecified address, letting the kernel choose per packet, when `None`) and to a
    /// free port in 49152..=65535, tried from `seed` onwards. With a source it is
    /// connected to `peer`:3784 (when the kernel has a route for it now; else it sends
    /// with `sendto`, as without a source).
    pub fn open(
        ifname: &str,
        ifindex: u32,
        source: Option<IpAddr>,
        peer: IpAddr,
        seed: u16,
    ) -> Result<Self, NetError> {
        let v6 = peer.is_ipv6();
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
        let unspecified = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let ip = source.unwrap_or(unspecified);
        let port = bind_source_port(&s, ifname, ifindex, ip, seed)?;
        let to = scoped(peer, CONTROL_PORT, ifindex).into();
        // A source of the kernel's choice stays its choice per packet (an address that
        // goes away is not kept); connect() would fix it once.
        let connected = source.is_some() && s.connect(&to).is_ok();
        Ok(BfdTxSocket {
            sock: s,
            port,
            to,
            connected,
        })
    }

    /// The source port (49152..=65535).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the socket is connected to the peer (it sends without a route lookup).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Sends one Control packet to the peer, port 3784.
    ///
    /// A connected UDP socket reports an ICMP error that came back for an earlier packet
    /// (the peer's port closed: `ECONNREFUSED`; its address unreachable) by failing the
    /// next send, which then sends nothing; the error is consumed by that, so this
    /// packet is sent again once: the peer's state is for the session to learn from its
    /// silence, not a reason to stop talking to it.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let send = || {
            if self.connected {
                self.sock.send(bytes)
            } else {
                self.sock.send_to(bytes, &self.to)
            }
        };
        let n = match send() {
            Err(e) if self.connected && is_reported_icmp_error(&e) => send()?,
            r => r?,
        };
        if n != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", bytes.len()),
            ));
        }
        Ok(())
    }
}

/// The errors with which a connected UDP socket reports an ICMP error received for an
/// earlier datagram.
fn is_reported_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN)
    )
}

/// `ip:port`, with `ifindex` as the scope of a link-local IPv6 address.
fn scoped(ip: IpAddr, port: u16, ifindex: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => {
            let scope = if is_link_local(&a) { ifindex } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope))
        }
    }
}

/// Binds `s` to `ip` and a free port in 49152..=65535, tried from `seed` onwards.
fn bind_source_port(
    s: &Socket,
    ifname: &str,
    ifindex: u32,
    ip: IpAddr,
    seed: u16,
) -> Result<u16, NetError> {
    let span = u32::from(u16::MAX - SOURCE_PORT_MIN) + 1;
    let mut last = None;
    for k in 0..64u32 {
        let offset = u16::try_from((u32::from(seed) + k * 7919) % span).unwrap_or(0);
        let port = SOURCE_PORT_MIN + offset;
        match s.bind(&scoped(ip, port, ifindex).into()) {
            Ok(()) => return Ok(port),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::sys::in_private_netns;

    const PACKET: [u8; 24] = [
        0x20, 0xc0, 3, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn lo_index() -> u32 {
        nix::net::if_::if_nametoindex("lo").expect("lo's index")
    }

    /// Every datagram `rx` holds once one arrived (waiting up to 5 s: delivery over `lo`
    /// may be left to ksoftirqd), as (bytes, source, TTL).
    fn received(rx: &BfdRxSocket) -> Vec<(Vec<u8>, Option<SocketAddr>, Option<u8>)> {
        use std::os::fd::AsRawFd;
        let mut fds = [libc::pollfd {
            fd: rx.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        sys::ppoll(&mut fds, Some(Duration::from_secs(5))).expect("waiting for a datagram");
        let mut batch = RecvBatch::new(8, 64);
        rx.recv_batch(&mut batch)
            .expect("reading the receive socket");
        batch
            .iter()
            .map(|(b, m)| (b.to_vec(), m.from, m.ttl))
            .collect()
    }

    #[test]
    fn rfc5881_4_5_session_socket_is_connected_and_sends_from_its_source_port_with_ttl_255() {
        // IPv4, and IPv6 link-local (connect needs the scope of the interface).
        let setup = "address add fe80::1/64 dev lo nodad";
        in_private_netns("bfd_tx_connected", setup, || {
            // The kernel adds the new address's local route from a work queue: until
            // then a packet to it is not delivered.
            let local = || {
                let out = std::process::Command::new("ip")
                    .args(["-6", "route", "show", "table", "local", "fe80::1"])
                    .output()
                    .expect("running ip");
                !out.stdout.is_empty()
            };
            for _ in 0..100 {
                if local() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            for (src, v6) in [("127.0.0.1", false), ("fe80::1", true)] {
                let src: IpAddr = src.parse().unwrap();
                let rx = BfdRxSocket::open("lo", v6).unwrap();
                let tx = BfdTxSocket::open("lo", lo_index(), Some(src), src, 4242).unwrap();
                assert!(tx.is_connected(), "{src}");
                assert!(tx.port() >= SOURCE_PORT_MIN, "{src}: port {}", tx.port());
                tx.send(&PACKET).unwrap();
                let got = received(&rx);
                let from = scoped(src, tx.port(), lo_index());
                assert_eq!(got, [(PACKET.to_vec(), Some(from), Some(TTL))], "{src}");
            }
        });
    }

    #[test]
    fn connected_session_socket_keeps_sending_after_the_peer_port_was_closed() {
        in_private_netns("bfd_tx_icmp", "", || {
            let lo: IpAddr = "127.0.0.1".parse().unwrap();
            let tx = BfdTxSocket::open("lo", lo_index(), Some(lo), lo, 999).unwrap();
            assert!(tx.is_connected());
            // Nobody on port 3784: the packet comes back as an ICMP port unreachable,
            // which the connected socket holds as an error for the next send.
            tx.send(&PACKET).unwrap();
            let rx = BfdRxSocket::open("lo", false).unwrap();
            // The peer listens again: this packet must reach it.
            tx.send(&PACKET).unwrap();
            assert_eq!(received(&rx).len(), 1);
        });
    }

    #[test]
    fn session_socket_without_a_source_sends_unconnected_from_the_kernel_choice() {
        in_private_netns("bfd_tx_unconnected", "", || {
            let lo: IpAddr = "127.0.0.1".parse().unwrap();
            let rx = BfdRxSocket::open("lo", false).unwrap();
            let tx = BfdTxSocket::open("lo", lo_index(), None, lo, 7).unwrap();
            assert!(!tx.is_connected());
            tx.send(&PACKET).unwrap();
            let got = received(&rx);
            let from = SocketAddr::new(lo, tx.port());
            assert_eq!(got, [(PACKET.to_vec(), Some(from), Some(TTL))]);
        });
    }
}
