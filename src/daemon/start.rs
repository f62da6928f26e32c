//! The kernel side of starting an instance: checks (interface, addresses, source
//! address), the shared VRRP and packet sockets, and the driver's context.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{self, Instance};
use crate::net::{DeadlineTimer, FrameSender, NetError, VrrpSocket};
use crate::vrrp::RecvFilter;

use super::driver::{self, DriverContext, VipLink};
use super::receiver::{self, Dispatch};
use super::{DaemonError, SocketEntry, Supervisor};

impl Supervisor {
    /// Starts the driver of `inst`, opening the sockets it needs; errors say why it
    /// cannot start (the caller retries or fails, see [`DaemonError::is_permanent`]).
    pub(super) async fn start_instance(&mut self, inst: Instance) -> Result<(), DaemonError> {
        // An instance handing over on the same interface and VRID (a rename or a
        // remove-and-add in one reload) must finish first: two drivers for one virtual
        // router would remove each other's VIPs. The caller retries.
        if let Some(by) = self.instances.handing_over(&inst) {
            return Err(DaemonError::HandingOver {
                instance: inst.name.clone(),
                vrid: inst.vrid,
                interface: inst.interface.clone(),
                by: by.to_string(),
            });
        }
        // A new driver starts without a group's fault or penalty: send them again.
        self.groups.driver_started(&inst.name);
        // The driver's timer first: nothing is set up for an instance that cannot have one.
        let timer = DeadlineTimer::new()?;
        let link = self.netlink.link(&inst.interface).await?;
        self.check_vip_addresses(&inst, link.index).await?;
        warn_promote_secondaries(&inst);
        self.ifindex.insert(inst.interface.clone(), link.index);
        let source = self.source_address(&inst, link.index).await?;
        let key = (inst.interface.clone(), source);
        if !self.sockets.contains_key(&key) {
            let socket = Arc::new(open_socket(&inst.interface, link.index, source).await?);
            let dispatch: Dispatch = Arc::new(RwLock::new(HashMap::new()));
            let receiver = tokio::spawn(receiver::run(
                socket.clone(),
                inst.interface.clone(),
                dispatch.clone(),
                self.metrics.clone(),
            ));
            let batch = driver::AdvertBatch::new(socket.clone());
            let sender = tokio::spawn(batch.clone().run());
            self.sockets.insert(
                key.clone(),
                SocketEntry {
                    socket,
                    dispatch,
                    receiver,
                    batch,
                    sender,
                },
            );
        }
        let frames = match self.frames.get(&inst.interface) {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(FrameSender::open(link.index)?);
                self.frames.insert(inst.interface.clone(), f.clone());
                f
            }
        };
        let Some(entry) = self.sockets.get(&key) else {
            unreachable!("the socket of {key:?} was inserted above");
        };
        // Virtual MAC mode (RFC 5798 §7.3): VIPs, adverts and announcements go through
        // the instance's macvlan; adverts are still received on the parent (above).
        let (vip_link, socket, batch, frames) = if inst.virtual_mac {
            let spec = super::vmac_spec(&inst, link.index);
            // ARP concerns IPv4 only: IPv6 neighbour discovery answers only for the
            // addresses of the interface a solicitation arrives on.
            let problems = if inst.family == config::Family::V4 {
                crate::net::parent_arp_problems(&inst.interface)
            } else {
                Vec::new()
            };
            if !problems.is_empty() {
                tracing::warn!(
                    "{}: virtual-mac: {} would answer ARP for the VIPs (or announce them) with its own MAC; put these lines in /etc/sysctl.d/ (docs/operations.md): {}",
                    inst.name,
                    inst.interface,
                    problems.join("; ")
                );
            }
            let vmac = self.netlink.ensure_vmac(&spec).await?;
            let socket = Arc::new(VrrpSocket::open_sender(&vmac.name, vmac.index, source)?);
            let frames = Arc::new(FrameSender::open(vmac.index)?);
            self.vmacs.insert(inst.name.clone(), vmac.index);
            let vip_link = VipLink {
                index: vmac.index,
                name: vmac.name,
                mac: vmac.mac,
                follows_master: inst.family == config::Family::V6,
            };
            (vip_link, socket, None, frames)
        } else {
            let vip_link = VipLink {
                index: link.index,
                name: inst.interface.clone(),
                mac: link.mac,
                follows_master: false,
            };
            let (socket, batch) = (entry.socket.clone(), Some(entry.batch.member()));
            (vip_link, socket, batch, frames)
        };
        let saved = self.store.get(&inst.name);
        let ctx = DriverContext {
            netlink: self.netlink.clone(),
            socket,
            frames,
            link: vip_link,
            source,
            link_up: link.up,
            metrics: self.metrics.clone(),
            board: self.board.clone(),
            events: self.events.clone(),
            reports: self.group_tx.clone(),
            priority_override: saved.priority,
            maintenance: saved.maintenance,
            start_at: Some(self.started_at + self.config.startup_delay),
            arbiter: if inst.arbiter {
                self.config.arbiter.clone()
            } else {
                None
            },
            advert_epoch: self.started_at,
            timer,
            grid: self.grid.clone(),
            batch,
        };
        if saved.priority.is_some() || saved.maintenance {
            tracing::info!(
                "{}: restored operator state: priority override {:?}, maintenance {}",
                inst.name,
                saved.priority,
                saved.maintenance
            );
        }
        let vrid = inst.vrid;
        let name = inst.name.clone();
        let filter = Arc::new(RecvFilter::new(&driver::router_config(&inst, source)));
        let handle = driver::spawn(inst, ctx, &mut self.instances.tasks);
        // A new driver counts as having answered the pings sent before it existed.
        handle
            .alive
            .store(self.ping, std::sync::atomic::Ordering::Relaxed);
        entry
            .dispatch
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                vrid,
                receiver::Route {
                    tx: handle.tx.clone(),
                    filter,
                },
            );
        self.instances.started(name, handle);
        Ok(())
    }

    /// An address owner's VIPs must be the interface's own addresses; anyone else's
    /// VIPs must not be addresses vipd did not add (the operator's own).
    pub(super) async fn check_vip_addresses(
        &self,
        inst: &Instance,
        ifindex: u32,
    ) -> Result<(), DaemonError> {
        let present = self.netlink.addresses(ifindex).await?;
        if inst.address_owner {
            // An address owner's VIPs are the interface's own addresses (RFC 5798 §1):
            // vipd neither adds nor removes them, and they must be there.
            if let Some(vip) = inst
                .vips
                .iter()
                .find(|v| !present.iter().any(|a| a.addr() == v.addr()))
            {
                return Err(DaemonError::OwnerWithoutAddress(format!(
                    "{}: address-owner = true but {} is not an address of {}; an owner's VIPs must be the interface's own addresses",
                    inst.name,
                    vip.addr(),
                    inst.interface
                )));
            }
            return Ok(());
        }
        // An address equal to a VIP that vipd did not add is the operator's: vipd would
        // remove it when it leaves Master. Refuse the instance until it is gone.
        for vip in inst
            .vips
            .iter()
            .filter(|v| present.iter().any(|a| a.addr() == v.addr()))
        {
            if self.netlink.address_owner(ifindex, vip.addr()).await? == Some(false) {
                return Err(DaemonError::Net(NetError::AddressNotOurs {
                    ifindex,
                    addr: *vip,
                    proto: crate::net::ADDRESS_PROTO,
                }));
            }
        }
        Ok(())
    }

    /// The address `inst` sends adverts from.
    pub(super) async fn source_address(
        &self,
        inst: &Instance,
        ifindex: u32,
    ) -> Result<IpAddr, DaemonError> {
        let v6 = matches!(inst.family, config::Family::V6);
        match inst.source_address {
            Some(a) => Ok(a),
            None => self
                .netlink
                .primary_address(ifindex, v6)
                .await?
                .ok_or_else(|| DaemonError::NoSourceAddress {
                    instance: inst.name.clone(),
                    interface: inst.interface.clone(),
                    family: if v6 { "IPv6 link-local" } else { "IPv4" },
                }),
        }
    }

    /// Checks that `inst` can start here and now (interface, addresses, source address,
    /// socket, its virtual MAC link), without stopping or starting anything.
    pub(super) async fn preflight(&mut self, inst: &Instance) -> Result<(), DaemonError> {
        let link = self.netlink.link(&inst.interface).await?;
        self.check_vip_addresses(inst, link.index).await?;
        let source = self.source_address(inst, link.index).await?;
        if !self.sockets.contains_key(&(inst.interface.clone(), source)) {
            drop(open_socket(&inst.interface, link.index, source).await?);
        }
        if inst.virtual_mac {
            self.netlink
                .vmac_present(&super::vmac_spec(inst, link.index))
                .await?;
        }
        Ok(())
    }

    /// Closes the VRRP sockets (leaving their multicast groups) and packet sockets that
    /// no instance uses any more, after the last instance on them was removed.
    pub(super) fn close_unused_sockets(&mut self) {
        self.sockets.retain(|(ifname, source), s| {
            let used = !s
                .dispatch
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if !used {
                tracing::info!("{ifname}: no instance left on {source}: closing its VRRP socket");
                s.receiver.abort();
            }
            used
        });
        let instances = &self.instances;
        self.frames
            .retain(|ifname, _| instances.uses_interface(ifname));
    }
}

/// Opens the VRRP sockets, waiting out IPv6 duplicate address detection: right after
/// boot or link-up the link-local source is tentative for a second or two.
pub(super) async fn open_socket(
    ifname: &str,
    ifindex: u32,
    source: IpAddr,
) -> Result<VrrpSocket, NetError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match VrrpSocket::open(ifname, ifindex, source) {
            Err(NetError::SourceNotAvailable { .. })
                if source.is_ipv6() && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// IPv4 VIPs in the subnet of the interface's primary address are secondaries: with
/// `promote_secondaries` off (the kernel default), deleting the primary deletes them too.
/// vipd puts them back (address events), but a moment without the VIP is avoidable:
/// say so. vipd does not write sysctls itself (the unit forbids it).
pub(super) fn warn_promote_secondaries(inst: &Instance) {
    if inst.family != config::Family::V4 {
        return;
    }
    let path = format!(
        "/proc/sys/net/ipv4/conf/{}/promote_secondaries",
        inst.interface
    );
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0") {
        tracing::warn!(
            "{}: net.ipv4.conf.{}.promote_secondaries is 0: deleting the interface's primary address would delete the VIPs in its subnet with it (vipd adds them back); set it to 1 (docs/operations.md)",
            inst.name,
            inst.interface
        );
    }
}
