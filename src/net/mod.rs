//! net: the only place that touches the kernel: raw sockets, netlink, packet sockets.
//!
//! This module does I/O only. It never decodes VRRP and never decides anything: the
//! daemon reads bytes with [`VrrpSocket::recv`], hands them to `proto` / `vrrp`, and
//! carries the router's actions back here ([`VrrpSocket::send`],
//! [`Netlink::add_address`], [`FrameSender::send`]).
//!
//! | piece | kernel interface |
//! | --- | --- |
//! | [`VrrpSocket`] | raw IP sockets, protocol 112, one for receiving and one for sending |
//! | [`Netlink`] | rtnetlink requests: link lookup, address dump / add / delete (vipd's own addresses carry the `IFA_PROTO` mark [`ADDRESS_PROTO`]) |
//! | [`LinkWatcher`] | rtnetlink multicast group `RTNLGRP_LINK` (kernel events, not polling) |
//! | [`BfdRxSocket`], [`BfdTxSocket`] | UDP sockets of single-hop BFD (port 3784, TTL 255, bound to one interface) |
//! | [`VmacSpec`], [`Netlink::ensure_vmac`] | rtnetlink link requests: the macvlan of virtual MAC mode (vipd's carry the alias [`VMAC_ALIAS_PREFIX`]) |
//! | [`FrameSender`] | an `AF_PACKET` socket bound to one interface (gratuitous ARP, unsolicited NA) |
//! | [`DeadlineTimer`] | a `CLOCK_MONOTONIC` timerfd in the tokio reactor (a driver's deadlines) |

use std::io;
use std::net::IpAddr;

mod addr_pipe;
mod bfd_socket;
mod macvlan;
mod netlink;
mod packet;
mod sys;
mod timer;
mod vrrp_socket;

pub use bfd_socket::{wait_readable, BfdRxSocket, BfdTxSocket};
pub use macvlan::{
    fmt_mac, is_virtual_mac, parent_arp_problems, virtual_mac, vmac_name, OwnedVmac, VmacSpec,
    VMAC_ALIAS_PREFIX,
};
pub use netlink::{
    AddressChange, AddressEvent, AddressWatcher, LinkEvent, LinkInfo, LinkWatcher, Netlink,
    OwnedAddress, ADDRESS_PROTO,
};
pub use packet::FrameSender;
pub use sys::{RecvBatch, RecvMeta};
pub use timer::DeadlineTimer;
pub use vrrp_socket::{Received, VrrpSocket};

/// Errors of the kernel-facing layer. The messages are meant for operators: they name
/// the interface, address or netlink operation involved and, for permission problems,
/// the capability that is missing.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The named interface does not exist (in this network namespace).
    #[error("no such interface {0}")]
    NoSuchInterface(String),
    /// Opening a raw or packet socket (or binding it to a device) was refused.
    #[error("opening {what} needs CAP_NET_RAW (run as root or grant it)")]
    NeedsCapNetRaw {
        /// What was being opened, e.g. "a raw socket".
        what: &'static str,
    },
    /// A netlink request that changes the system was refused.
    #[error("netlink {op}: permission denied; this needs CAP_NET_ADMIN (run as root or grant it)")]
    NeedsCapNetAdmin {
        /// The operation, e.g. "add address 192.0.2.100/24 to interface index 3".
        op: String,
    },
    /// The source address for sending adverts is not (yet) usable on this host.
    #[error(
        "cannot send from {addr} on {ifname}: the address is not assigned to this host \
         (or, for IPv6, is still tentative)"
    )]
    SourceNotAvailable {
        /// The interface.
        ifname: String,
        /// The address that could not be bound.
        addr: IpAddr,
    },
    /// Any other socket set-up failure, with the step that failed.
    #[error("{op} on {ifname}: {source}")]
    Socket {
        /// The step that failed, e.g. "joining 224.0.0.18".
        op: &'static str,
        /// The interface.
        ifname: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// The operation, e.g. "get link eth0".
        op: String,
        /// The error the kernel (or the netlink library) reported.
        #[source]
        source: io::Error,
    },
    /// An address equal to a VIP is on the interface but vipd did not add it (it lacks
    /// vipd's address protocol mark): it is the operator's, and vipd never removes it.
    #[error(
        "{addr} is already on interface index {ifindex} and was not added by vipd \
         (no `proto {proto}` mark): it is the operator's own address; remove it or drop \
         it from the instance's vips"
    )]
    AddressNotOurs {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: ipnet::IpNet,
        /// vipd's mark, for the message.
        proto: u8,
    },
    /// A link with the name vipd wants for a virtual MAC exists and is not vipd's (or
    /// not for this instance): vipd neither uses nor removes it.
    #[error(
        "link {name} exists and is not vipd's virtual MAC link for this instance ({why}); \
         vipd never removes a link it did not create: delete or rename it, or drop \
         virtual-mac from the instance"
    )]
    LinkNotOurs {
        /// The link's name.
        name: String,
        /// Why it is not vipd's.
        why: String,
    },
    /// A timer (timerfd) could not be created or registered with the runtime.
    #[error("cannot create a timer (timerfd): {source}")]
    Timer {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The call has to be made from inside a tokio runtime (it spawns or registers I/O).
    #[error("{what} must be called from inside a tokio runtime")]
    NoRuntime {
        /// The function called.
        what: &'static str,
    },
}

/// Wraps a socket set-up step's error with the step's name (`op`, on `ifname`); a
/// permission error becomes the capability message for opening `what` ("a raw socket").
fn socket_step<'a>(
    what: &'static str,
    op: &'static str,
    ifname: &'a str,
) -> impl FnOnce(io::Error) -> NetError + 'a {
    move |source| match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::NeedsCapNetRaw { what },
        Some(libc::ENODEV) => NetError::NoSuchInterface(ifname.to_owned()),
        _ => NetError::Socket {
            op,
            ifname: ifname.to_owned(),
            source,
        },
    }
}

/// A non-blocking socket bound to `ifname` (`SO_BINDTODEVICE`); errors name the step,
/// and a refused one the capability to open `what` ("a raw socket").
fn device_socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: socket2::Protocol,
    ifname: &str,
    what: &'static str,
) -> Result<socket2::Socket, NetError> {
    let s = socket2::Socket::new(domain, ty, Some(protocol)).map_err(socket_step(
        what,
        "opening the socket",
        ifname,
    ))?;
    s.set_nonblocking(true)
        .map_err(socket_step(what, "setting O_NONBLOCK", ifname))?;
    s.bind_device(Some(ifname.as_bytes())).map_err(socket_step(
        what,
        "binding the socket to the device (SO_BINDTODEVICE)",
        ifname,
    ))?;
    Ok(s)
}

/// Fails with [`NetError::NoRuntime`] when not called from inside a tokio runtime.
fn require_runtime(what: &'static str) -> Result<(), NetError> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| NetError::NoRuntime { what })
}
