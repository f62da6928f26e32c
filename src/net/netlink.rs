//! rtnetlink: interface lookup, address dump / add / delete, and link events.
//!
//! Longer than 600 lines: its last third is unit tests of the message parsing; the
//! pipelined address changes live in [`super::addr_pipe`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr as NlSocketAddr;
use rtnetlink::{Handle, MulticastGroup};

use super::{require_runtime, NetError};

/// The address protocol (`IFA_PROTO`, Linux 6.0+) vipd marks every address it adds
/// with: `ip address show` prints it as `proto 86`. vipd removes only addresses that
/// carry it, so an address the operator added by hand is never touched.
pub const ADDRESS_PROTO: u8 = 86;

/// An address that carries vipd's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddress {
    /// Interface index.
    pub ifindex: u32,
    /// The address with its prefix length.
    pub addr: IpNet,
}

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the NUL).
pub(super) const IFNAME_MAX: usize = 15;

/// The netlink error number of a failed request, if the kernel sent one.
pub(super) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Turns a library error into an `io::Error` that prints as the OS error text.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// Maps a failed request onto [`NetError`], naming the operation.
pub(super) fn nl_error(op: String, e: rtnetlink::Error) -> NetError {
    match errno(&e) {
        Some(libc::EPERM) | Some(libc::EACCES) => NetError::NeedsCapNetAdmin { op },
        _ => NetError::Netlink {
            op,
            source: to_io(e),
        },
    }
}

/// Reads of an address dump before [`Netlink`] gives up on a list that keeps changing
/// (or a kernel that stays busy).
const DUMP_TRIES: usize = 8;

/// Listing-and-delete passes of [`Netlink::del_addresses`].
const DEL_PASSES: usize = 3;

/// Maps an errno the kernel answered onto [`NetError`], naming the operation.
fn errno_error(op: String, errno: i32) -> NetError {
    match errno {
        libc::EPERM | libc::EACCES => NetError::NeedsCapNetAdmin { op },
        _ => NetError::Netlink {
            op,
            source: io::Error::from_raw_os_error(errno),
        },
    }
}

/// `up` as vipd understands it: `IFF_UP && IFF_RUNNING`.
///
/// `IFF_RUNNING` is what the kernel reports when the operational state is UP or
/// UNKNOWN (drivers without carrier reporting, e.g. dummy, stay UNKNOWN), so this is
/// "administratively up, and the operational state is up or unknown". A veth whose peer
/// is down has no carrier, hence is not up.
fn link_is_up(flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running)
}

fn link_name(m: &LinkMessage) -> String {
    m.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// One interface as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address; all zeros when the link has no 6-byte (Ethernet) address.
    pub mac: [u8; 6],
    /// `IFF_UP && IFF_RUNNING`: administratively up and operational state up or unknown.
    pub up: bool,
}

impl LinkInfo {
    pub(super) fn from_message(m: &LinkMessage) -> Self {
        let mac = m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
                _ => None,
            })
            .unwrap_or([0; 6]);
        LinkInfo {
            index: m.header.index,
            name: link_name(m),
            mac,
            up: link_is_up(m.header.flags),
        }
    }
}

/// A connection to rtnetlink. Cheap to clone; the connection task (spawned on the tokio
/// runtime that called [`Netlink::connect`]) ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Netlink {
    pub(super) handle: Handle,
    /// Address dumps one at a time: the kernel answers a second dump on the same socket
    /// while one is in progress with `EBUSY`.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Address adds and deletes, pipelined on a socket of their own (`addr_pipe`).
    pipe: super::addr_pipe::AddrPipe,
}

/// One address of an interface, with what vipd needs of its flags.
struct AddrEntry {
    ifindex: u32,
    net: IpNet,
    flags: AddressFlags,
    /// `IFA_PROTO`, when the kernel reported one.
    proto: Option<u8>,
}

impl AddrEntry {
    fn is_ours(&self) -> bool {
        self.proto == Some(ADDRESS_PROTO)
    }
}

fn addr_entry(m: &AddressMessage) -> Option<AddrEntry> {
    let mut local = None;
    let mut address = None;
    // IFA_FLAGS (32 bits) supersedes the 8-bit header field when present.
    let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
    let mut proto = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            AddressAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links, and the only one IPv6 normally sends.
    let ip = local.or(address)?;
    let net = IpNet::new(ip, m.header.prefix_len).ok()?;
    Some(AddrEntry {
        ifindex: m.header.index,
        net,
        flags,
        proto,
    })
}

impl Netlink {
    /// Opens an rtnetlink socket and spawns its connection task on the current runtime.
    pub async fn connect() -> Result<Self, NetError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(|source| NetError::Netlink {
                op: "opening a route netlink socket".to_owned(),
                source,
            })?;
        tokio::spawn(conn);
        let pipe = super::addr_pipe::AddrPipe::start().map_err(|source| NetError::Netlink {
            op: "opening a route netlink socket for address changes".to_owned(),
            source,
        })?;
        Ok(Netlink {
            handle,
            dumps: Default::default(),
            pipe,
        })
    }

    /// Looks up an interface by name; [`NetError::NoSuchInterface`] when there is none.
    pub async fn link(&self, name: &str) -> Result<LinkInfo, NetError> {
        if name.is_empty() || name.len() > IFNAME_MAX {
            return Err(NetError::NoSuchInterface(name.to_owned()));
        }
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(LinkInfo::from_message(&m)),
            Ok(None) => Err(NetError::NoSuchInterface(name.to_owned())),
            Err(e) if errno(&e) == Some(libc::ENODEV) => {
                Err(NetError::NoSuchInterface(name.to_owned()))
            }
            Err(e) => Err(nl_error(format!("get link {name}"), e)),
        }
    }

    /// Every address message of the namespace, one dump at a time (`ifindex` only names
    /// the interface in an error). A dump the kernel marks as interrupted
    /// (`NLM_F_DUMP_INTR`: the address list changed while it was read, so entries may be
    /// missing) is read again, as is one refused with `EBUSY`; after [`DUMP_TRIES`] it is
    /// an error, never a short list: an address missing from it would look gone.
    async fn dump(&self, ifindex: Option<u32>) -> Result<Vec<AddressMessage>, NetError> {
        let _one = self.dumps.lock().await;
        let what = || match ifindex {
            Some(i) => format!("list addresses of interface index {i}"),
            None => "list addresses".to_owned(),
        };
        for _ in 0..DUMP_TRIES {
            match self.dump_once().await {
                Ok(Some(msgs)) => return Ok(msgs),
                Ok(None) => {}
                Err(e) if errno(&e) == Some(libc::EBUSY) => {}
                Err(e) => return Err(nl_error(what(), e)),
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        Err(NetError::Netlink {
            op: what(),
            source: io::Error::other(format!(
                "the address list changed under every one of {DUMP_TRIES} reads (NLM_F_DUMP_INTR) or the kernel stayed busy"
            )),
        })
    }

    /// One `RTM_GETADDR` dump; `None` when any part of it says it was interrupted.
    async fn dump_once(&self) -> Result<Option<Vec<AddressMessage>>, rtnetlink::Error> {
        let mut req =
            NetlinkMessage::from(RouteNetlinkMessage::GetAddress(AddressMessage::default()));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut parts = self.handle.clone().request(req)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        while let Some(m) = parts.next().await {
            interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
            match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => out.push(a),
                NetlinkPayload::Error(e) => return Err(rtnetlink::Error::NetlinkError(e)),
                _ => {}
            }
        }
        Ok((!interrupted).then_some(out))
    }

    async fn entries(&self, ifindex: u32) -> Result<Vec<AddrEntry>, NetError> {
        let msgs = self.dump(Some(ifindex)).await?;
        // The kernel filters by index only when asked strictly; filter here too.
        Ok(msgs
            .iter()
            .filter_map(addr_entry)
            .filter(|e| e.ifindex == ifindex)
            .collect())
    }

    /// Every address in this network namespace that carries vipd's mark
    /// ([`ADDRESS_PROTO`]): what an earlier run (crashed or killed) may have left.
    pub async fn owned_addresses(&self) -> Result<Vec<OwnedAddress>, NetError> {
        let msgs = self.dump(None).await?;
        Ok(msgs
            .iter()
            .filter_map(addr_entry)
            .filter(AddrEntry::is_ours)
            .map(|e| OwnedAddress {
                ifindex: e.ifindex,
                addr: e.net,
            })
            .collect())
    }

    /// Whether `addr` is on the interface, and if so whether vipd added it:
    /// `None` absent, `Some(true)` ours, `Some(false)` someone else's.
    pub async fn address_owner(
        &self,
        ifindex: u32,
        addr: IpAddr,
    ) -> Result<Option<bool>, NetError> {
        Ok(self
            .entries(ifindex)
            .await?
            .iter()
            .find(|e| e.net.addr() == addr)
            .map(AddrEntry::is_ours))
    }

    /// Every address (IPv4 and IPv6) on the interface, with its prefix length.
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<IpNet>, NetError> {
        Ok(self
            .entries(ifindex)
            .await?
            .into_iter()
            .map(|e| e.net)
            .collect())
    }

    /// The address vipd sends adverts from.
    ///
    /// IPv4: the first address in the kernel's order that is not secondary (call it
    /// before adding VIPs: a VIP outside the primary's subnet is itself primary).
    /// IPv6: the link-local (fe80::/10) address, preferring one that is neither tentative
    /// nor failed DAD. `None` when there is no such address.
    pub async fn primary_address(
        &self,
        ifindex: u32,
        v6: bool,
    ) -> Result<Option<IpAddr>, NetError> {
        let entries = self.entries(ifindex).await?;
        if !v6 {
            return Ok(entries
                .iter()
                .find(|e| e.net.addr().is_ipv4() && !e.flags.contains(AddressFlags::Secondary))
                .map(|e| e.net.addr()));
        }
        let link_local: Vec<&AddrEntry> = entries
            .iter()
            .filter(
                |e| matches!(e.net.addr(), IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80),
            )
            .collect();
        let usable = link_local.iter().find(|e| {
            !e.flags
                .intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
        });
        Ok(usable.or(link_local.first()).map(|e| e.net.addr()))
    }

    /// Adds `addr` to the interface, marked as vipd's ([`ADDRESS_PROTO`]). An address
    /// that is already there is success if it carries the mark (`EEXIST`), and
    /// [`NetError::AddressNotOurs`] if it does not: then it is the operator's, and
    /// vipd must not later remove it as if it were a VIP. IPv6 addresses are added with
    /// `IFA_F_NODAD`, so they are usable at once instead of sitting tentative during
    /// duplicate address detection.
    pub async fn add_address(&self, ifindex: u32, addr: IpNet) -> Result<(), NetError> {
        self.add_addresses(ifindex, &[addr], false)
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Adds every address of `addrs` as [`Netlink::add_address`] does, with the same
    /// rules (vipd's mark, `EEXIST` of a marked address is success, IPv6 without DAD),
    /// and returns one result per address, in order.
    ///
    /// The requests of every caller go to the kernel as one pipelined stream (one `send`
    /// for many requests, acks read after it); with `urgent`, the first address goes
    /// before any queued non-urgent request: when many instances take over at once, each
    /// one's first VIP is usable before anyone's remaining VIPs are added.
    pub async fn add_addresses(
        &self,
        ifindex: u32,
        addrs: &[IpNet],
        urgent: bool,
    ) -> Vec<Result<(), NetError>> {
        let answers = self.pipe.submit(ifindex, addrs, true, urgent, None).await;
        self.added(ifindex, addrs, answers)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()))
            .collect()
    }

    /// Adds every address of `addrs` as [`Netlink::add_addresses`] does (the first one
    /// urgent), and sends each one's announcement frame (`frames`, in the same order) on
    /// `sender` as soon as the kernel has added it, in `sendmmsg` batches: a takeover's
    /// VIPs are announced at the kernel's pace. `Ok(true)`: added and announced;
    /// `Ok(false)`: there (added, or already ours) but not announced (the frame could
    /// not be sent, or the address was already there): the caller announces it.
    pub async fn add_and_announce(
        &self,
        ifindex: u32,
        addrs: &[IpNet],
        sender: &std::sync::Arc<super::FrameSender>,
        frames: Vec<Vec<u8>>,
    ) -> Vec<Result<bool, NetError>> {
        let announce = super::addr_pipe::Announce { sender, frames };
        let answers = self
            .pipe
            .submit(ifindex, addrs, true, true, Some(announce))
            .await;
        self.added(ifindex, addrs, answers).await
    }

    /// The results of adding `addrs` from the kernel's answers: `EEXIST` is success for an
    /// address that carries our mark, [`NetError::AddressNotOurs`] for one that does not.
    async fn added(
        &self,
        ifindex: u32,
        addrs: &[IpNet],
        answers: Vec<super::addr_pipe::Answer>,
    ) -> Vec<Result<bool, NetError>> {
        let mut out = Vec::with_capacity(addrs.len());
        for (addr, answer) in addrs.iter().zip(answers) {
            out.push(match answer {
                Ok(announced) => Ok(announced),
                Err(libc::EEXIST) => match self.address_owner(ifindex, addr.addr()).await {
                    Ok(Some(false)) => Err(NetError::AddressNotOurs {
                        ifindex,
                        addr: *addr,
                        proto: ADDRESS_PROTO,
                    }),
                    Ok(_) => Ok(false),
                    Err(e) => Err(e),
                },
                Err(libc::ENODEV) => {
                    Err(NetError::NoSuchInterface(format!("with index {ifindex}")))
                }
                Err(errno) => Err(errno_error(
                    format!("add address {addr} to interface index {ifindex}"),
                    errno,
                )),
            });
        }
        out
    }

    /// Removes every address of `addrs` that carries vipd's mark, as
    /// [`Netlink::del_address`] does (absent: success; not ours: left alone and reported),
    /// with one address listing per pass and the deletes pipelined.
    ///
    /// A listing taken while other addresses change (other instances releasing theirs)
    /// can miss entries, so the listing is taken again after the deletes, and whatever of
    /// ours is still there is deleted again (at most [`DEL_PASSES`] passes).
    pub async fn del_addresses(&self, ifindex: u32, addrs: &[IpNet]) -> Vec<Result<(), NetError>> {
        let mut out: Vec<Result<(), NetError>> = addrs.iter().map(|_| Ok(())).collect();
        for _ in 0..DEL_PASSES {
            let entries = match self.entries(ifindex).await {
                Ok(e) => e,
                Err(NetError::NoSuchInterface(_)) => return out,
                Err(e) => {
                    let msg = e.to_string();
                    for (slot, a) in out.iter_mut().zip(addrs) {
                        if slot.is_ok() {
                            *slot = Err(NetError::Netlink {
                                op: format!("delete address {a} from interface index {ifindex}"),
                                source: io::Error::other(msg.clone()),
                            });
                        }
                    }
                    return out;
                }
            };
            let mut todo = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                match entries.iter().find(|e| e.net.addr() == a.addr()) {
                    // Gone (also after a failed attempt of an earlier pass).
                    None => out[i] = Ok(()),
                    Some(e) if !e.is_ours() => {
                        out[i] = Err(NetError::AddressNotOurs {
                            ifindex,
                            addr: *a,
                            proto: ADDRESS_PROTO,
                        })
                    }
                    Some(_) => todo.push(i),
                }
            }
            if todo.is_empty() {
                break;
            }
            let nets: Vec<IpNet> = todo.iter().map(|i| addrs[*i]).collect();
            let answers = self.pipe.submit(ifindex, &nets, false, false, None).await;
            for (i, answer) in todo.into_iter().zip(answers) {
                out[i] = match answer {
                    Ok(_) | Err(libc::EADDRNOTAVAIL | libc::ENODEV) => Ok(()),
                    Err(errno) => Err(errno_error(
                        format!("delete address {} from interface index {ifindex}", addrs[i]),
                        errno,
                    )),
                };
            }
        }
        out
    }

    /// Removes `addr` from the interface if vipd added it (it carries the
    /// [`ADDRESS_PROTO`] mark). An address that is not there (or an interface that is
    /// gone, taking its addresses with it) is success; one without the mark is left
    /// alone and reported as [`NetError::AddressNotOurs`].
    ///
    /// Note: removing a primary IPv4 address also removes its secondaries unless
    /// `net.ipv4.conf.*.promote_secondaries` is set.
    pub async fn del_address(&self, ifindex: u32, addr: IpNet) -> Result<(), NetError> {
        match self.address_owner(ifindex, addr.addr()).await {
            Ok(None) => return Ok(()),
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                return Err(NetError::AddressNotOurs {
                    ifindex,
                    addr,
                    proto: ADDRESS_PROTO,
                })
            }
            Err(NetError::NoSuchInterface(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.del_marked_address(ifindex, addr).await
    }

    /// Deletes an address known to carry vipd's mark (as listed by
    /// [`Netlink::owned_addresses`]).
    pub async fn del_marked_address(&self, ifindex: u32, addr: IpNet) -> Result<(), NetError> {
        let msg = match addr.addr() {
            IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(ifindex)
                .address(a, addr.prefix_len())
                .build(),
            IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(ifindex)
                .address(a, addr.prefix_len())
                .build(),
        };
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
            Err(e) => Err(nl_error(
                format!("delete address {addr} from interface index {ifindex}"),
                e,
            )),
        }
    }
}

/// An address that was added or removed, as announced by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressEvent {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub addr: IpNet,
    /// Removed (`RTM_DELADDR`) rather than added.
    pub removed: bool,
}

/// Address removals from `RTNLGRP_IPV4_IFADDR` and `RTNLGRP_IPV6_IFADDR` (no polling):
/// how a master learns that one of its VIPs was deleted under it (by hand, by another
/// tool, or with its primary address when `promote_secondaries` is off).
///
/// Only removals (`RTM_DELADDR`) reach the socket: a filter attached to it
/// ([`deladdr_only`]) makes the kernel drop every other message before it is queued.
/// A takeover of 255 instances x 8 VIPs makes the kernel multicast 2,040 `RTM_NEWADDR`
/// at once; unfiltered, they overflowed the socket's buffer (an overrun makes every
/// master list its addresses) and cost a parse each while the takeover still ran.
///
/// When the socket's buffer overflowed, events were lost: [`AddressWatcher::next`]
/// reports [`AddressChange::Overrun`] so the consumer can check what it holds.
#[derive(Debug)]
pub struct AddressWatcher {
    messages: Unsolicited,
}

/// What [`AddressWatcher::next`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChange {
    /// One address event.
    Event(AddressEvent),
    /// Events were lost (buffer overflow): check every address you care about.
    Overrun,
}

impl AddressWatcher {
    /// Subscribes to address removals. Must be called from inside a tokio runtime.
    pub fn open() -> Result<Self, NetError> {
        require_runtime("AddressWatcher::open")?;
        let (mut conn, _handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(|source| NetError::Netlink {
            op: "subscribe to address events (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR)".to_owned(),
            source,
        })?;
        {
            use rtnetlink::sys::AsyncSocket;
            socket2::SockRef::from(&*conn.socket_mut().socket_mut())
                .attach_filter(&deladdr_only())
                .map_err(|source| NetError::Netlink {
                    op: "filter address events (SO_ATTACH_FILTER)".to_owned(),
                    source,
                })?;
        }
        tokio::spawn(conn);
        Ok(AddressWatcher { messages })
    }

    /// The next address change; `None` when the netlink socket has closed.
    pub async fn next(&mut self) -> Option<AddressChange> {
        loop {
            let (msg, _) = self.messages.next().await?;
            let (m, removed) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => (m, false),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => (m, true),
                NetlinkPayload::Overrun(_) => return Some(AddressChange::Overrun),
                _ => continue,
            };
            if let Some(e) = addr_entry(&m) {
                return Some(AddressChange::Event(AddressEvent {
                    ifindex: e.ifindex,
                    addr: e.net,
                    removed,
                }));
            }
        }
    }
}

/// `RTM_DELADDR` as a classic BPF load sees it: `ldh` reads two bytes in network order,
/// while netlink headers are in host order.
const DELADDR_AS_LOADED: u32 = u16::from_be_bytes(libc::RTM_DELADDR.to_ne_bytes()) as u32;

/// Socket filter (classic BPF) that passes a netlink message only when its type
/// (`nlmsg_type`, bytes 4..6 of the header) is `RTM_DELADDR`. The kernel sends each
/// multicast notification in a buffer of its own, so the first header is the message.
pub(super) fn deladdr_only() -> [socket2::SockFilter; 4] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| socket2::SockFilter::new(code as u16, jt, jf, k);
    [
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 4),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            DELADDR_AS_LOADED,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ]
}

/// A change of one interface, as announced by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// Interface index.
    pub index: u32,
    /// Interface name (empty if the kernel did not include it).
    pub name: String,
    /// Same meaning as [`LinkInfo::up`]; false for a removed link.
    pub up: bool,
    /// The interface was deleted (or moved to another namespace).
    pub removed: bool,
}

impl LinkEvent {
    fn from_message(m: &LinkMessage, removed: bool) -> Self {
        LinkEvent {
            index: m.header.index,
            name: link_name(m),
            up: !removed && link_is_up(m.header.flags),
            removed,
        }
    }
}

type Unsolicited = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, NlSocketAddr)>;

/// Link change events from the kernel's `RTNLGRP_LINK` multicast group (no polling).
///
/// The kernel sends an `RTM_NEWLINK` for many changes (flags, carrier, name, MTU...);
/// every one is reported, so consumers should act on changes of `up` only. When the
/// socket's buffer overflowed and events were lost, the watcher re-reads every link and
/// reports each one's current state (and `removed` for links it had reported before that
/// are gone).
#[derive(Debug)]
pub struct LinkWatcher {
    messages: Unsolicited,
    handle: Handle,
    pending: VecDeque<LinkEvent>,
    known: HashMap<u32, String>,
}

impl LinkWatcher {
    /// Subscribes to link events. Must be called from inside a tokio runtime (the
    /// netlink connection task is spawned on it).
    pub fn open() -> Result<Self, NetError> {
        require_runtime("LinkWatcher::open")?;
        let (conn, handle, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => NetError::NeedsCapNetAdmin {
                    op: "subscribe to link events".to_owned(),
                },
                _ => NetError::Netlink {
                    op: "subscribe to link events (RTNLGRP_LINK)".to_owned(),
                    source,
                },
            })?;
        tokio::spawn(conn);
        Ok(LinkWatcher {
            messages,
            handle,
            pending: VecDeque::new(),
            known: HashMap::new(),
        })
    }

    /// The next link event; `None` when the netlink socket has closed.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.remember(&ev);
                return Some(ev);
            }
            let (msg, _) = self.messages.next().await?;
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                    self.pending.push_back(LinkEvent::from_message(&m, false));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                    self.pending.push_back(LinkEvent::from_message(&m, true));
                }
                NetlinkPayload::Overrun(_) => {
                    tracing::warn!("link event buffer overflowed; re-reading all links");
                    self.resync().await;
                }
                _ => {}
            }
        }
    }

    fn remember(&mut self, ev: &LinkEvent) {
        if ev.removed {
            self.known.remove(&ev.index);
        } else {
            self.known.insert(ev.index, ev.name.clone());
        }
    }

    async fn resync(&mut self) {
        let links: Result<Vec<LinkMessage>, _> =
            self.handle.link().get().execute().try_collect().await;
        let links = match links {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("re-reading links after an overflow failed: {}", to_io(e));
                return;
            }
        };
        let present: std::collections::HashSet<u32> =
            links.iter().map(|m| m.header.index).collect();
        for (index, name) in &self.known {
            if !present.contains(index) {
                self.pending.push_back(LinkEvent {
                    index: *index,
                    name: name.clone(),
                    up: false,
                    removed: true,
                });
            }
        }
        for m in &links {
            self.pending.push_back(LinkEvent::from_message(m, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_needs_both_admin_up_and_running() {
        assert!(link_is_up(
            LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp
        ));
        assert!(!link_is_up(LinkFlags::Up | LinkFlags::LowerUp));
        assert!(!link_is_up(LinkFlags::Running));
    }

    #[test]
    fn address_prefers_ifa_local_and_reads_ifa_flags() {
        let m = address_message(
            24,
            vec![
                AddressAttribute::Address("192.0.2.2".parse().unwrap()),
                AddressAttribute::Local("192.0.2.1".parse().unwrap()),
                AddressAttribute::Flags(AddressFlags::Secondary),
            ],
        );
        let e = addr_entry(&m).unwrap();
        assert_eq!(e.net, "192.0.2.1/24".parse::<IpNet>().unwrap());
        assert!(e.flags.contains(AddressFlags::Secondary));
    }

    /// The address watcher's socket filter, run by the kernel on a datagram socket pair:
    /// a header of type `RTM_DELADDR` passes, `RTM_NEWADDR` and others are dropped.
    #[test]
    fn address_filter_passes_only_deladdr() {
        use std::io::Read;
        let (tx, rx) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::DGRAM, None).unwrap();
        rx.attach_filter(&deladdr_only()).unwrap();
        rx.set_nonblocking(true).unwrap();
        for (kind, passes) in [
            (libc::RTM_NEWADDR, false),
            (libc::RTM_DELADDR, true),
            (libc::RTM_NEWLINK, false),
            (libc::RTM_DELLINK, false),
        ] {
            let mut hdr = [0u8; 16];
            hdr[..4].copy_from_slice(&16u32.to_ne_bytes());
            hdr[4..6].copy_from_slice(&kind.to_ne_bytes());
            tx.send(&hdr).unwrap();
            let mut buf = [0u8; 64];
            let got = (&rx).read(&mut buf);
            match got {
                Ok(n) => assert!(passes && n == 16, "type {kind} passed ({n} bytes)"),
                Err(e) => assert!(
                    !passes && e.kind() == io::ErrorKind::WouldBlock,
                    "type {kind}: {e}"
                ),
            }
        }
    }

    #[test]
    fn address_with_impossible_prefix_is_skipped() {
        let m = address_message(
            33,
            vec![AddressAttribute::Local("192.0.2.1".parse().unwrap())],
        );
        assert!(addr_entry(&m).is_none());
    }

    fn address_message(prefix_len: u8, attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.prefix_len = prefix_len;
        m.attributes = attributes;
        m
    }
}
