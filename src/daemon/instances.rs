//! Starting, stopping and restarting instances: the kernel checks before a start,
//! the shared sockets, and the events (link, address, crash) that restart one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{self, Instance};
use crate::net::{AddressChange, FrameSender, LinkEvent, NetError, VrrpSocket};
use crate::vrrp::RecvFilter;

use super::driver::{self, DriverContext, Input};
use super::receiver::{self, Dispatch};
use super::{DaemonError, SocketEntry, Supervisor};

impl Supervisor {
    pub(super) async fn start_instance(&mut self, inst: Instance) -> Result<(), DaemonError> {
        // An instance handing over on the same interface and VRID (a rename or a
        // remove-and-add in one reload) must finish first: two drivers for one virtual
        // router would remove each other's VIPs. The caller retries.
        if let Some(busy) = self.stopping.values().find(|o| {
            o.interface == inst.interface && o.vrid == inst.vrid && o.family == inst.family
        }) {
            return Err(DaemonError::Startup(format!(
                "{}: VRID {} on {} is still handing over as {}",
                inst.name, inst.vrid, inst.interface, busy.name
            )));
        }
        // A new driver starts without a group's fault or penalty: send them again.
        self.group_sent.remove(&inst.name);
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
            self.sockets.insert(
                key.clone(),
                SocketEntry {
                    socket,
                    dispatch,
                    receiver,
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
            return Err(DaemonError::Startup("socket table corrupted".into()));
        };
        // Virtual MAC mode (RFC 5798 §7.3): VIPs, adverts and announcements go through
        // the instance's macvlan; adverts are still received on the parent (above).
        let (ifindex, mac, socket, frames) = if inst.virtual_mac {
            let spec = super::vmac_spec(&inst, link.index);
            let problems = crate::net::parent_arp_problems(&inst.interface);
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
            (vmac.index, vmac.mac, socket, frames)
        } else {
            (link.index, link.mac, entry.socket.clone(), frames)
        };
        let saved = self.store.get(&inst.name);
        let ctx = DriverContext {
            netlink: self.netlink.clone(),
            socket,
            frames,
            ifindex,
            mac,
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
        let handle = driver::spawn(inst, ctx, self.crashed_tx.clone());
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
        self.drivers.insert(name, handle);
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
                .ok_or_else(|| {
                    DaemonError::Startup(format!(
                        "{}: interface {} has no {} address to send adverts from; add one or set source-address",
                        inst.name,
                        inst.interface,
                        if v6 { "IPv6 link-local" } else { "IPv4" }
                    ))
                }),
        }
    }

    /// Asks the driver of `name` to hand over and stop; the supervisor hears about it
    /// on `released_rx` once the router is released.
    pub(super) fn stop_instance(&mut self, name: &str) {
        let Some(handle) = self.drivers.remove(name) else {
            return;
        };
        self.stopping
            .insert(name.to_string(), handle.instance.clone());
        let tx = handle.tx.clone();
        let ctl = handle.ctl.clone();
        let released = self.released_tx.clone();
        let name = name.to_string();
        let sockets: Vec<Dispatch> = self.sockets.values().map(|s| s.dispatch.clone()).collect();
        let vrid = handle.instance.vrid;
        let vmac = self
            .vmacs
            .remove(&name)
            .and_then(|_| self.ifindex.get(&handle.instance.interface))
            .map(|parent| {
                (
                    super::vmac_spec(&handle.instance, *parent),
                    self.netlink.clone(),
                )
            });
        tokio::spawn(async move {
            let _ = ctl.send(Input::Shutdown);
            let _ = handle.task.await;
            if let Some((spec, nl)) = vmac {
                super::remove_vmac(&nl, &spec).await;
            }
            for d in sockets {
                let mut d = d.write().unwrap_or_else(|e| e.into_inner());
                if d.get(&vrid).is_some_and(|r| r.tx.same_channel(&tx)) {
                    d.remove(&vrid);
                }
            }
            let _ = released.send(name);
        });
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
        let drivers = &self.drivers;
        let stopping = &self.stopping;
        self.frames.retain(|ifname, _| {
            drivers.values().any(|d| d.instance.interface == *ifname)
                || stopping.values().any(|i| i.interface == *ifname)
        });
    }

    /// A reload changed an instance that has no running driver: it is waiting to be
    /// rebuilt (pending) or for its interface (waiting); the new settings take its place.
    pub(super) fn replace_not_running(&mut self, inst: &Instance) {
        if let Some(p) = self.pending.get_mut(&inst.name) {
            *p = inst.clone();
        } else {
            self.waiting.insert(inst.name.clone(), inst.clone());
        }
    }

    /// Starts a rebuilt instance (after a reload or a re-created interface). If its
    /// interface or source address is not there (yet), it waits and is retried every
    /// second rather than being lost.
    pub(super) async fn restart_instance(&mut self, inst: Instance, first: bool) {
        let name = inst.name.clone();
        if let Err(e) = self.start_instance(inst.clone()).await {
            let why = e.to_string();
            if first || self.not_started.get(&name) != Some(&why) {
                tracing::warn!("{name}: cannot start yet: {why}; retrying every second");
            }
            self.not_started.insert(name.clone(), why);
            self.waiting.insert(name, inst);
        } else {
            if !first {
                tracing::info!("{name}: started");
            }
            self.not_started.remove(&name);
        }
    }

    /// Checks that `inst` can start here and now (interface, addresses, source address,
    /// socket), without stopping or starting anything.
    pub(super) async fn preflight(&mut self, inst: &Instance) -> Result<(), DaemonError> {
        let link = self.netlink.link(&inst.interface).await?;
        self.check_vip_addresses(inst, link.index).await?;
        let source = self.source_address(inst, link.index).await?;
        if !self.sockets.contains_key(&(inst.interface.clone(), source)) {
            drop(open_socket(&inst.interface, link.index, source).await?);
        }
        Ok(())
    }

    pub(super) async fn handle_link(&mut self, ev: LinkEvent) {
        if ev.removed {
            let gone: Vec<String> = self
                .vmacs
                .iter()
                .filter(|(_, i)| **i == ev.index)
                .map(|(n, _)| n.clone())
                .collect();
            for n in gone {
                tracing::warn!(
                    "{n}: its virtual MAC link {} was deleted: rebuilding the instance",
                    ev.name
                );
                self.vmacs.remove(&n);
                if let Some(inst) = self.drivers.get(&n).map(|d| d.instance.clone()) {
                    self.stop_instance(&n);
                    self.pending.insert(n, inst);
                }
            }
        }
        let known = self.ifindex.get(&ev.name).copied();
        if !ev.removed && known.is_some_and(|i| i != ev.index) {
            // The interface was deleted and created again: its sockets are dead.
            self.ifindex.insert(ev.name.clone(), ev.index);
            tracing::warn!(
                "{}: interface re-created (index {} -> {}): rebuilding its instances",
                ev.name,
                known.unwrap_or(0),
                ev.index
            );
            let names: Vec<String> = self
                .drivers
                .values()
                .filter(|d| d.instance.interface == ev.name)
                .map(|d| d.instance.name.clone())
                .collect();
            self.sockets.retain(|(ifname, _), s| {
                if *ifname == ev.name {
                    s.receiver.abort();
                    false
                } else {
                    true
                }
            });
            self.frames.remove(&ev.name);
            for n in names {
                if let Some(inst) = self.drivers.get(&n).map(|d| d.instance.clone()) {
                    self.stop_instance(&n);
                    self.pending.insert(n, inst);
                }
            }
            return;
        }
        let up = ev.up && !ev.removed;
        for d in self.drivers.values() {
            if d.instance.interface == ev.name {
                let _ = d.ctl.send(Input::Link { up });
            }
        }
    }

    /// A driver panicked (and removed its VIPs): forget it, and start the instance again
    /// from the waiting list (at the next tick, so a driver that panics at once does not
    /// spin). The other instances are not touched.
    pub(super) fn handle_crash(&mut self, crash: driver::Crash) {
        let Some(handle) = self.drivers.remove(&crash.instance) else {
            return;
        };
        self.vmacs.remove(&crash.instance);
        for s in self.sockets.values() {
            let mut d = s.dispatch.write().unwrap_or_else(|e| e.into_inner());
            if d.get(&handle.instance.vrid)
                .is_some_and(|r| r.tx.same_channel(&handle.tx))
            {
                d.remove(&handle.instance.vrid);
            }
        }
        let n = self.restarts.entry(crash.instance.clone()).or_insert(0);
        *n += 1;
        self.metrics.repairs.instance_restarted(&crash.instance);
        tracing::error!(
            "{}: restarting the instance after a panic ({}); restart {n}",
            crash.instance,
            crash.message
        );
        self.members.remove(&crash.instance);
        self.not_started.insert(
            crash.instance.clone(),
            format!("restarting after a panic: {}", crash.message),
        );
        self.waiting.insert(crash.instance, handle.instance);
    }

    /// An address was removed: the drivers on that interface check their VIPs (a master
    /// puts back one that was deleted under it). Lost events: every driver checks.
    pub(super) fn handle_address(&mut self, change: AddressChange) {
        let (ifindex, addr) = match change {
            AddressChange::Event(ev) if ev.removed => (Some(ev.ifindex), Some(ev.addr)),
            AddressChange::Event(_) => return,
            AddressChange::Overrun => (None, None),
        };
        for d in self.drivers.values() {
            let on_it = match ifindex {
                Some(i) => match self.vmacs.get(&d.instance.name) {
                    Some(v) => *v == i,
                    None => self.ifindex.get(&d.instance.interface) == Some(&i),
                },
                None => true,
            };
            if !on_it {
                continue;
            }
            let input = match addr {
                Some(a) => Input::AddressRemoved(a),
                None => Input::CheckVips,
            };
            let _ = d.ctl.send(input);
        }
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
