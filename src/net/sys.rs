//! The few socket calls that neither socket2 nor nix wrap. Every `unsafe` of `net` is here.
//!
//! Longer than 600 lines on purpose: every `unsafe` of `net` stays in this one file, to be
//! audited in one place (its tests are in `sys/tests.rs`).

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime};

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
        sll_family: libc::c_ushort::try_from(libc::AF_PACKET)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_protocol: protocol.to_be(),
        sll_ifindex: libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
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
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let nfds = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fds` is a valid, writable slice of `nfds` pollfd structs; `tsp` is null or
    // points to `ts`, which outlives the call; the signal mask pointer is null (keep the
    // current mask). A descriptor that was closed only yields POLLNVAL.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), nfds, tsp, std::ptr::null()) };
    match usize::try_from(rc) {
        Ok(n) => Ok(n),
        Err(_) => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            }
        }
    }
}

/// A `CLOCK_MONOTONIC` timerfd (the clock of `std::time::Instant` on Linux),
/// non-blocking and close-on-exec, disarmed.
pub(super) fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments; on success it returns a new
    // descriptor that nothing else owns.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new, valid descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `CLOCK_MONOTONIC` now, as a duration since the clock's origin.
pub(super) fn monotonic_now() -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    ))
}

/// `d` as a `timespec`.
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9: it fits an `i32`, which converts into the field's type on every
        // target (`c_long`, 32 bits on 32-bit targets, or `i64`).
        tv_nsec: i32::try_from(d.subsec_nanos())
            .unwrap_or(999_999_999)
            .into(),
    }
}

/// `timerfd_settime(2)` with `TFD_TIMER_ABSTIME`: the timer expires at `at` (on
/// `CLOCK_MONOTONIC`, as [`monotonic_now`] counts) and then every `period` (`None`:
/// once). `at` of `None` disarms it. The kernel rejects a zero `at` (it would disarm):
/// the caller never passes one (the clock's origin is boot).
pub(super) fn timerfd_set(
    fd: BorrowedFd<'_>,
    at: Option<Duration>,
    period: Option<Duration>,
) -> io::Result<()> {
    let zero = Duration::ZERO;
    let spec = libc::itimerspec {
        it_interval: timespec(period.unwrap_or(zero)),
        it_value: timespec(at.unwrap_or(zero)),
    };
    // SAFETY: `spec` is a valid itimerspec that outlives the call; the old value is not
    // asked for (null); `fd` is a valid borrowed descriptor.
    let rc = unsafe {
        libc::timerfd_settime(
            fd.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME,
            &spec,
            std::ptr::null_mut(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads a timerfd's expiration count (`WouldBlock` when it has not expired since the
/// last read). A periodic timerfd is restarted by this read: without it, it expires
/// once.
pub(super) fn timerfd_read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut count = [0u8; 8];
    // SAFETY: `count` is 8 writable bytes that outlive the call; `fd` is a valid
    // borrowed descriptor.
    let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    if n == 8 {
        Ok(u64::from_ne_bytes(count))
    } else if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::from(io::ErrorKind::UnexpectedEof))
    }
}

/// Control-message space of one datagram, aligned for `struct cmsghdr`: room for a TTL /
/// hop limit (`int`: 24 bytes with its header on 64-bit targets), a destination
/// (`in6_pktinfo`, the larger of the two pktinfos: 40) and a receive timestamp
/// (`timespec`: 32), with room to spare. Anything beyond is cut (`MSG_CTRUNC`) and its
/// field left `None`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgSpace([u8; 128]);

/// One datagram of a [`RecvBatch`], as the kernel described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Its real length: the bytes in its slot, or more than the slot holds when
    /// `truncated`.
    pub len: usize,
    /// It did not fit its slot: the slot holds only its first bytes.
    pub truncated: bool,
    /// Source address (IPv6 with its scope id); `None` for a family other than IPv4 /
    /// IPv6 (a Unix socket, say).
    pub from: Option<SocketAddr>,
    /// TTL / hop limit it arrived with, if the socket asked for it (`IP_RECVTTL`,
    /// `IPV6_RECVHOPLIMIT`).
    pub ttl: Option<u8>,
    /// The destination address of its IP header, if the socket asked for it
    /// (`IP_PKTINFO`, `IPV6_RECVPKTINFO`).
    pub dst: Option<IpAddr>,
    /// When the kernel queued it (wall clock), if the socket asked for it
    /// (`SO_TIMESTAMPNS`).
    pub stamp: Option<SystemTime>,
}

/// Buffers to read up to [`RecvBatch::MAX`] datagrams with one `recvmmsg(2)`: allocated
/// once, reused by every [`RecvBatch::recv`] (a read allocates nothing). Each datagram
/// has a slot of `slot_size` bytes and its own control-message space, so a batch carries
/// every datagram's source, TTL / hop limit, destination and receive timestamp, for
/// the options the socket set.
pub struct RecvBatch {
    slot: usize,
    data: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[CmsgSpace]>,
    meta: Vec<RecvMeta>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.capacity())
            .field("slot_size", &self.slot)
            .field("meta", &self.meta)
            .finish()
    }
}

impl RecvBatch {
    /// The most datagrams one [`RecvBatch::recv`] reads.
    pub const MAX: usize = 64;

    /// Room for `slots` datagrams (1..=[`RecvBatch::MAX`], clamped) of up to `slot_size`
    /// bytes each (at least 1).
    pub fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.clamp(1, Self::MAX);
        let slot = slot_size.max(1);
        // SAFETY: all-zero bytes are a valid `sockaddr_storage` (family AF_UNSPEC).
        let empty: libc::sockaddr_storage = unsafe { mem::zeroed() };
        RecvBatch {
            slot,
            data: vec![0; slots * slot].into_boxed_slice(),
            names: vec![empty; slots].into_boxed_slice(),
            ctrl: vec![CmsgSpace([0; 128]); slots].into_boxed_slice(),
            meta: Vec::with_capacity(slots),
        }
    }

    /// How many datagrams one read takes at most.
    pub fn capacity(&self) -> usize {
        self.names.len()
    }

    /// Reads what is queued on `fd`, without waiting, into the batch (replacing what it
    /// held), with one `recvmmsg(2)` (`MSG_DONTWAIT`). Returns how many datagrams it
    /// read: 0 when the queue was empty; fewer than [`RecvBatch::capacity`] means the
    /// kernel found the queue empty after them (or an error, which the next read
    /// reports), so a caller learns with one call both what was queued and that nothing
    /// more is.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.meta.clear();
        let n = self.capacity();
        let name_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_storage>())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // Only the `n` headers the call uses are written (a lone advert is the usual
        // read: zeroing all of `MAX` cost more than the read's own work in user space).
        let mut iov = [const { MaybeUninit::<libc::iovec>::uninit() }; Self::MAX];
        let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; Self::MAX];
        let slots = iov.iter_mut().zip(self.data.chunks_exact_mut(self.slot));
        let parts = self.names.iter_mut().zip(self.ctrl.iter_mut());
        for ((h, (v, slot)), (name, ctrl)) in hdrs.iter_mut().zip(slots).zip(parts) {
            let v = v.write(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
            // SAFETY: all-zero bytes are a valid `mmsghdr` (null pointers, zero lengths);
            // the fields used are filled in below.
            let h = h.write(unsafe { mem::zeroed() });
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = name_len;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl.0.as_mut_ptr().cast();
            // `size_t` with glibc, `socklen_t` with musl.
            #[allow(clippy::useless_conversion)]
            let ctrl_len = ctrl.0.len().try_into().unwrap_or_default();
            h.msg_hdr.msg_controllen = ctrl_len;
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(1);
        // SAFETY: `hdrs[..n]` were written above (`n` is the number of slots, names and
        // control spaces alike): `mmsghdr`s whose name, iovec, data and control pointers
        // point into `self.names`, `iov`, `self.data` and `self.ctrl`, with the lengths
        // of those buffers; all of them outlive the call, and nothing else uses them
        // during it. The timeout pointer is null (none: MSG_DONTWAIT).
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
                vlen,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        let got = match usize::try_from(rc) {
            Ok(got) => got.min(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
        };
        for (h, name) in hdrs.iter().zip(self.names.iter()).take(got) {
            // SAFETY: the first `n` headers were written before the call, and `got <= n`.
            let h = unsafe { h.assume_init_ref() };
            let len = usize::try_from(h.msg_len).unwrap_or(usize::MAX);
            let mut meta = RecvMeta {
                len,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > self.slot,
                from: socket_addr(name, h.msg_hdr.msg_namelen),
                ttl: None,
                dst: None,
                stamp: None,
            };
            read_cmsgs(&h.msg_hdr, &mut meta);
            self.meta.push(meta);
        }
        Ok(got)
    }

    /// Datagrams of the last read.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether the last read found the queue empty.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The `i`th datagram of the last read: its bytes (only the first
    /// `slot_size` of a truncated one) and what the kernel said about it.
    pub fn get(&self, i: usize) -> Option<(&[u8], &RecvMeta)> {
        let meta = self.meta.get(i)?;
        let start = i * self.slot;
        let bytes = self.data.get(start..start + meta.len.min(self.slot))?;
        Some((bytes, meta))
    }

    /// The datagrams of the last read, in the order they were queued.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &RecvMeta)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// The IPv4 / IPv6 address the kernel wrote into `name` (`len` bytes), if it is one.
fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = usize::try_from(len).ok()?;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a `sockaddr_in` (family AF_INET, `len` bytes) at
            // the start of the storage, which is larger and at least as aligned.
            let a = unsafe {
                std::ptr::read((name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>())
            };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a `sockaddr_in6`.
            let a = unsafe {
                std::ptr::read((name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>())
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The payload of control message `c` as a `T`, if it holds one.
///
/// # Safety
/// `c` points to a complete control message inside a buffer the kernel filled, as
/// `CMSG_FIRSTHDR` / `CMSG_NXTHDR` return them.
unsafe fn cmsg_value<T: Copy>(c: *const libc::cmsghdr) -> Option<T> {
    // SAFETY: `c` is a valid header (the caller's contract); CMSG_LEN(0) is the header
    // with its padding, so `len - CMSG_LEN(0)` bytes of payload follow CMSG_DATA.
    unsafe {
        let header = usize::try_from(libc::CMSG_LEN(0)).ok()?;
        // `size_t` with glibc, `socklen_t` with musl.
        #[allow(clippy::useless_conversion)]
        let payload = usize::try_from((*c).cmsg_len).ok()?.checked_sub(header)?;
        if payload < mem::size_of::<T>() {
            return None;
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<T>()))
    }
}

/// Fills `meta`'s TTL / hop limit, destination and timestamp from the control messages
/// of `hdr` (as `recvmmsg` left it: `msg_controllen` is what the kernel wrote).
fn read_cmsgs(hdr: &libc::msghdr, meta: &mut RecvMeta) {
    // SAFETY: `hdr.msg_control` points to the batch's control space and
    // `hdr.msg_controllen` is the length the kernel filled in; CMSG_FIRSTHDR / CMSG_NXTHDR
    // return null or a header wholly inside it.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !c.is_null() {
        // SAFETY: `c` is a non-null header from CMSG_FIRSTHDR / CMSG_NXTHDR.
        let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
        // Each `cmsg_value` below reads the payload type the kernel documents for that
        // level and type.
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                // SAFETY: `c` is such a header; IP_TTL / IPV6_HOPLIMIT carry an `int`.
                let t = unsafe { cmsg_value::<libc::c_int>(c) };
                meta.ttl = t.and_then(|t| u8::try_from(t).ok());
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                // SAFETY: `c` is such a header; IP_PKTINFO carries an `in_pktinfo`.
                let info = unsafe { cmsg_value::<libc::in_pktinfo>(c) };
                meta.dst =
                    info.map(|i| IpAddr::V4(Ipv4Addr::from(u32::from_be(i.ipi_addr.s_addr))));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                // SAFETY: `c` is such a header; IPV6_PKTINFO carries an `in6_pktinfo`.
                let info = unsafe { cmsg_value::<libc::in6_pktinfo>(c) };
                meta.dst = info.map(|i| IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)));
            }
            (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) => {
                // SAFETY: `c` is such a header; SCM_TIMESTAMPNS carries a `timespec`.
                let ts = unsafe { cmsg_value::<libc::timespec>(c) };
                meta.stamp = ts.and_then(|ts| {
                    let secs = u64::try_from(ts.tv_sec).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec).ok()?;
                    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
                });
            }
            _ => {}
        }
        // SAFETY: `hdr` and `c` as above.
        c = unsafe { libc::CMSG_NXTHDR(hdr, c) };
    }
}

/// Datagrams per `sendmmsg(2)` call of [`send_batch`].
const SEND_BATCH: usize = 64;

/// Sends datagrams with as few `sendmmsg(2)` calls as the kernel allows
/// ([`SEND_BATCH`] per call), never waiting (`MSG_DONTWAIT`). Each is its bytes and
/// its destination (`None`: the socket's own, for a connected or bound packet socket).
/// Returns how many went out, in order; when that is fewer than all, the error says
/// why the next did not (`WouldBlock`: the send queue is full).
pub(super) fn send_batch(
    sock: &Socket,
    msgs: &[(&[u8], Option<&socket2::SockAddr>)],
) -> (usize, Option<io::Error>) {
    let mut sent = 0;
    while sent < msgs.len() {
        let part = &msgs[sent..msgs.len().min(sent + SEND_BATCH)];
        // SAFETY: all-zero bytes are valid `iovec`s and `mmsghdr`s (null pointers, zero
        // lengths); every one used is filled in below.
        let mut iov: [libc::iovec; SEND_BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { mem::zeroed() };
        for ((bytes, _), v) in part.iter().zip(iov.iter_mut()) {
            v.iov_base = bytes.as_ptr() as *mut libc::c_void;
            v.iov_len = bytes.len();
        }
        for (k, ((_, to), h)) in part.iter().zip(hdrs.iter_mut()).enumerate() {
            if let Some(to) = to {
                h.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = to.len();
            }
            h.msg_hdr.msg_iov = iov.as_mut_ptr().wrapping_add(k);
            h.msg_hdr.msg_iovlen = 1;
        }
        let vlen = libc::c_uint::try_from(part.len()).unwrap_or(1);
        // SAFETY: `hdrs[..part.len()]` are initialised `mmsghdr`s whose iovecs point into
        // the caller's byte slices and whose names point to the caller's addresses (with
        // their lengths); all of them outlive the call, which only reads them.
        let rc = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
            )
        };
        let Ok(n) = usize::try_from(rc) else {
            return (sent, Some(io::Error::last_os_error()));
        };
        for (h, (bytes, _)) in hdrs.iter().zip(part).take(n) {
            let len = usize::try_from(h.msg_len).unwrap_or(0);
            if len != bytes.len() {
                let e = format!("sent {len} of {} bytes", bytes.len());
                return (sent, Some(io::Error::new(io::ErrorKind::WriteZero, e)));
            }
            sent += 1;
        }
        if n == 0 {
            return (sent, Some(io::Error::from(io::ErrorKind::WouldBlock)));
        }
    }
    (sent, None)
}

#[cfg(test)]
/// Test support: runs `f` on a new thread moved into a network namespace of its own
/// (`unshare(CLONE_NEWNET)` affects that thread only, and the namespace goes with it),
/// after `ip -batch` of `setup` there (one `ip` command a line, without the `ip`; `lo` is
/// brought up first). `None` when that is not allowed (not root): the caller skips,
/// unless `VIPD_REQUIRE_NETNS=1` makes that a failure.
pub(crate) fn in_private_netns<R: Send + 'static>(
    test: &str,
    setup: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    use std::io::Write as _;
    let test = test.to_owned();
    let script = format!("link set lo up\n{setup}\n");
    let run = std::thread::spawn(move || {
        // SAFETY: plain system call; it moves only this thread into a new namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let why = io::Error::last_os_error();
            if std::env::var("VIPD_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("{test}: cannot make a network namespace ({why}) but VIPD_REQUIRE_NETNS=1");
            }
            eprintln!("SKIP {test}: cannot make a network namespace ({why})");
            return None;
        }
        // A child process starts in its parent thread's namespace.
        let mut child = std::process::Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("running ip");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).expect("writing to ip");
        }
        let status = child.wait().expect("waiting for ip");
        assert!(status.success(), "{test}: ip -batch failed on:\n{script}");
        Some(f())
    });
    match run.join() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}

#[cfg(test)]
mod tests;
