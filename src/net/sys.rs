//! The few socket calls that neither socket2 nor nix wrap. Every `unsafe` of `net` is here.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use socket2::{SockFilter, Socket};

/// `setsockopt(fd, level, name, &value, sizeof value)` for a plain-old-data `value`.
fn setsockopt<T: Copy>(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to `len` readable bytes of a `Copy` (plain data) value, and
    // the descriptor is owned by `sock`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `IP_MULTICAST_IF` by interface index (`struct ip_mreqn`), rather than by address.
pub(super) fn set_multicast_if_v4_index(sock: &Socket, ifindex: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    };
    setsockopt(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)
}

/// `IPV6_RECVPKTINFO`: deliver the destination address and arrival interface as a cmsg.
pub(super) fn set_recv_pktinfo_v6(sock: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on)
}

/// A larger receive buffer for the VRRP receive socket, so that a burst of junk (a
/// flood for another VRID, say) does not push the master's adverts out of the queue.
/// `SO_RCVBUFFORCE` passes `net.core.rmem_max` with CAP_NET_ADMIN; without it, plain
/// `SO_RCVBUF` (capped by the sysctl) is the fallback.
pub(super) fn grow_receive_buffer(sock: &Socket, bytes: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size)
        .or_else(|_| sock.set_recv_buffer_size(bytes))
}

/// Attaches a classic BPF program that drops every packet: a send-only raw socket would
/// otherwise queue a copy of every VRRP packet that nobody ever reads.
pub(super) fn drop_all_input(sock: &Socket) -> io::Result<()> {
    // BPF_RET | BPF_K with k = 0: accept zero bytes of the packet, i.e. drop it.
    const BPF_RET_K: u16 = 0x06;
    sock.attach_filter(&[SockFilter::new(BPF_RET_K, 0, 0, 0)])
}

/// `bind()` of an `AF_PACKET` socket to one interface (`struct sockaddr_ll`).
/// `protocol` is the Ethernet type in host order (0 = receive nothing).
pub(super) fn bind_packet(sock: &Socket, ifindex: u32, protocol: u16) -> io::Result<()> {
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a fully initialised sockaddr_ll of `len` bytes, and the
    // descriptor is owned by `sock`, which outlives the call.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `ppoll(2)` over plain `pollfd`s that the caller keeps between calls (no allocation
/// per call, unlike building `nix::poll::PollFd`s that borrow their descriptors), with a
/// nanosecond timeout (`None`: wait until a descriptor is ready). `EINTR` is `Ok(0)`.
pub(super) fn ppoll(
    fds: &mut [libc::pollfd],
    timeout: Option<std::time::Duration>,
) -> io::Result<usize> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid, writable slice of `fds.len()` pollfd structs; `tsp` is
    // null or points to `ts`, which outlives the call; the signal mask pointer is null
    // (keep the current mask). A descriptor that was closed only yields POLLNVAL.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    match rc {
        n if n >= 0 => Ok(n as usize),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            }
        }
    }
}
