//! The instance lifecycle, in one place: one [`Slot`] per configured instance name and
//! one `JoinSet` of driver tasks.
//!
//! ```text
//!            launch ok                     stop(then: None)
//!   (none) -----------> Running(driver) --------------------> Stopping { driver, then }
//!     |  launch fails     |  ^   crash                          |  driver task ends
//!     v                   |  |   (task ends with a panic)       |  (router released)
//!   Waiting { inst, why } <--+                                  v
//!     |  tick / a driver ended: launch again        then = Some(inst): launch(inst)
//!     +-----------------------------------------------------   then = None: slot gone
//! ```
//!
//! A name has at most one driver task: a rebuild (reload, re-created interface) waits
//! in `Stopping { then }` until the old driver ended, and an instance whose VRID is
//! still handing over under another name (a rename) waits in `Waiting`. Shutdown ends
//! when the `JoinSet` drains.

use std::collections::HashMap;

use tokio::task::{Id, JoinError, JoinSet};

use crate::config::Instance;
use crate::net::{AddressChange, LinkEvent, VmacSpec};

use super::driver::{DriverHandle, Ended, Input};
use super::Supervisor;

/// Where an instance is in its lifecycle.
pub(super) enum Slot {
    /// Its driver runs.
    Running(DriverHandle),
    /// Its driver hands over and stops; `then` starts once it has ended (a rebuild).
    Stopping {
        /// The driver handing over.
        driver: DriverHandle,
        /// The settings to start with once it ended.
        then: Option<Box<Instance>>,
        /// Its virtual MAC link, removed once it ended.
        vmac: Option<VmacSpec>,
    },
    /// It could not start (yet): retried every second and whenever a driver ends.
    Waiting {
        /// Its settings.
        inst: Instance,
        /// Why it is not running (shown in status); `None`: not tried yet.
        why: Option<String>,
    },
}

/// Every instance's [`Slot`] by name, and the driver tasks.
#[derive(Default)]
pub(super) struct Instances {
    slots: HashMap<String, Slot>,
    /// The driver tasks of the `Running` and `Stopping` slots.
    pub(super) tasks: JoinSet<Ended>,
}

impl Instances {
    /// The running driver of `name`.
    pub(super) fn running(&self, name: &str) -> Option<&DriverHandle> {
        match self.slots.get(name) {
            Some(Slot::Running(d)) => Some(d),
            _ => None,
        }
    }

    fn running_mut(&mut self, name: &str) -> Option<&mut DriverHandle> {
        match self.slots.get_mut(name) {
            Some(Slot::Running(d)) => Some(d),
            _ => None,
        }
    }

    /// The running drivers.
    pub(super) fn drivers(&self) -> impl Iterator<Item = &DriverHandle> {
        self.slots.values().filter_map(|s| match s {
            Slot::Running(d) => Some(d),
            _ => None,
        })
    }

    /// The names of the running instances.
    pub(super) fn running_names(&self) -> impl Iterator<Item = &str> {
        self.drivers().map(|d| d.instance.name.as_str())
    }

    /// The instances that wait to start, with the reason.
    pub(super) fn waiting(&self) -> impl Iterator<Item = (&Instance, Option<&str>)> {
        self.slots.values().filter_map(|s| match s {
            Slot::Waiting { inst, why } => Some((inst, why.as_deref())),
            _ => None,
        })
    }

    /// The instance still handing over on `inst`'s interface, VRID and family, if any:
    /// two drivers for one virtual router would remove each other's VIPs.
    pub(super) fn handing_over(&self, inst: &Instance) -> Option<&str> {
        self.slots.values().find_map(|s| match s {
            Slot::Stopping { driver, .. } => {
                let o = &driver.instance;
                (o.interface == inst.interface && o.vrid == inst.vrid && o.family == inst.family)
                    .then_some(o.name.as_str())
            }
            _ => None,
        })
    }

    /// Whether a running or stopping driver uses interface `ifname`.
    pub(super) fn uses_interface(&self, ifname: &str) -> bool {
        self.slots.values().any(|s| match s {
            Slot::Running(d) | Slot::Stopping { driver: d, .. } => d.instance.interface == ifname,
            Slot::Waiting { .. } => false,
        })
    }

    /// The settings of the instances still handing over.
    pub(super) fn stopping(&self) -> impl Iterator<Item = &Instance> {
        self.slots.values().filter_map(|s| match s {
            Slot::Stopping { driver, .. } => Some(&driver.instance),
            _ => None,
        })
    }

    /// `name`'s driver started.
    pub(super) fn started(&mut self, name: String, driver: DriverHandle) {
        self.slots.insert(name, Slot::Running(driver));
    }

    /// `inst` could not start: it waits (and is retried).
    pub(super) fn wait(&mut self, inst: Instance, why: Option<String>) {
        self.slots
            .insert(inst.name.clone(), Slot::Waiting { inst, why });
    }

    /// Takes every waiting instance out of its slot (to launch it again).
    pub(super) fn take_waiting(&mut self) -> Vec<(Instance, Option<String>)> {
        let names: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Waiting { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|n| match self.slots.remove(&n) {
                Some(Slot::Waiting { inst, why }) => Some((inst, why)),
                _ => None,
            })
            .collect()
    }

    /// If `inst`'s name is still handing over, it starts once that ended; otherwise it
    /// is given back.
    pub(super) fn after_stop(&mut self, inst: Instance) -> Option<Instance> {
        match self.slots.get_mut(&inst.name) {
            Some(Slot::Stopping { then, .. }) => {
                *then = Some(Box::new(inst));
                None
            }
            _ => Some(inst),
        }
    }

    /// Stops `name`: a running driver hands over (and `then` starts after it; `vmac`, its
    /// virtual MAC link, is removed after it), a stopping one starts `then` instead of
    /// what it would have, a waiting one is replaced by `then` or dropped.
    pub(super) fn stop(&mut self, name: &str, then: Option<Instance>, vmac: Option<VmacSpec>) {
        let Some(slot) = self.slots.remove(name) else {
            return;
        };
        let slot = match slot {
            Slot::Running(driver) => {
                let _ = driver.ctl.send(Input::Shutdown);
                Slot::Stopping {
                    driver,
                    then: then.map(Box::new),
                    vmac,
                }
            }
            Slot::Stopping { driver, vmac, .. } => Slot::Stopping {
                driver,
                then: then.map(Box::new),
                vmac,
            },
            Slot::Waiting { why, .. } => match then {
                Some(inst) => Slot::Waiting { inst, why },
                None => return,
            },
        };
        self.slots.insert(name.to_string(), slot);
    }

    /// New settings for an instance that is not running: it starts with them (once its
    /// old driver ended, or at the next retry).
    pub(super) fn replace_not_running(&mut self, inst: Instance) {
        match self.slots.get_mut(&inst.name) {
            Some(Slot::Stopping { then, .. }) => *then = Some(Box::new(inst)),
            Some(Slot::Waiting { inst: old, .. }) => *old = inst,
            Some(Slot::Running(_)) => {}
            None => self.wait(inst, None),
        }
    }

    /// A priority-only change of a running instance: `f` sends it; the slot keeps the
    /// new settings.
    pub(super) fn retune(&mut self, inst: &Instance) -> bool {
        match self.running_mut(&inst.name) {
            Some(d) => {
                let _ = d.ctl.send(Input::BasePriority(inst.priority));
                d.instance = inst.clone();
                true
            }
            None => false,
        }
    }

    /// Every instance name.
    pub(super) fn names(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    /// The next driver task that ended.
    pub(super) async fn next_ended(&mut self) -> Option<(Id, Result<Ended, JoinError>)> {
        match self.tasks.join_next_with_id().await? {
            Ok((id, ended)) => Some((id, Ok(ended))),
            Err(e) => Some((e.id(), Err(e))),
        }
    }

    /// Whether any driver task is left.
    pub(super) fn has_tasks(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Takes the slot whose driver task is `id` (it ended).
    pub(super) fn take_task(&mut self, id: Id) -> Option<(String, Slot)> {
        let name = self.slots.iter().find_map(|(n, s)| match s {
            Slot::Running(d) | Slot::Stopping { driver: d, .. } if d.task == id => Some(n.clone()),
            _ => None,
        })?;
        self.slots.remove(&name).map(|s| (name, s))
    }
}

impl Supervisor {
    /// Stops `name` (see [`Instances::stop`]); a running instance's virtual MAC link is
    /// removed once its driver ended.
    pub(super) fn stop_instance(&mut self, name: &str, then: Option<Instance>) {
        let vmac = self
            .instances
            .running(name)
            .map(|d| d.instance.clone())
            .and_then(|inst| self.take_vmac(&inst));
        self.instances.stop(name, then, vmac);
    }

    /// The virtual MAC link `inst` runs on, if it has one, forgotten here: the caller
    /// removes it once the driver no longer uses it.
    fn take_vmac(&mut self, inst: &Instance) -> Option<VmacSpec> {
        self.vmacs.remove(&inst.name)?;
        let parent = self.ifindex.get(&inst.interface)?;
        Some(super::vmac_spec(inst, *parent))
    }

    /// Shutdown: every running driver hands over, nothing starts afterwards, nothing
    /// waits any more.
    pub(super) fn stop_all(&mut self) {
        for n in self.instances.names() {
            self.stop_instance(&n, None);
        }
    }

    /// Starts `inst`, or lets it wait: after the old driver of the same name (a rebuild)
    /// or, when it cannot start yet (its interface or source address is missing, its
    /// VRID still handing over), in `Waiting`, retried every second rather than lost.
    /// `first`: the first try (a failure is always logged; later ones when the reason
    /// changes).
    pub(super) async fn launch(&mut self, inst: Instance, first: bool, before: Option<String>) {
        let Some(inst) = self.instances.after_stop(inst) else {
            return;
        };
        let name = inst.name.clone();
        match self.start_instance(inst.clone()).await {
            Err(e) => {
                let why = e.to_string();
                if first || before.as_ref() != Some(&why) {
                    tracing::warn!("{name}: cannot start yet: {why}; retrying every second");
                }
                self.instances.wait(inst, Some(why));
            }
            Ok(()) => {
                if !first {
                    tracing::info!("{name}: started");
                }
            }
        }
    }

    /// Tries every waiting instance again.
    pub(super) async fn retry_waiting(&mut self) {
        for (inst, why) in self.instances.take_waiting() {
            self.launch(inst, false, why).await;
        }
    }

    /// A driver task ended: a stopping one has released its router (its successor
    /// starts, and the instances waiting for its VRID); a running one panicked (and
    /// removed its VIPs): the instance waits and starts again at the next tick, so a
    /// driver that panics at once does not spin. The other instances are not touched.
    pub(super) async fn handle_ended(&mut self, id: Id, ended: Result<Ended, JoinError>) {
        let Some((name, slot)) = self.instances.take_task(id) else {
            return;
        };
        match slot {
            Slot::Stopping { driver, then, vmac } => {
                if let Some(spec) = vmac {
                    super::remove_vmac(&self.netlink, &spec).await;
                }
                self.unroute(&driver);
                if let Some(inst) = then {
                    self.launch(*inst, true, None).await;
                }
                self.retry_waiting().await;
                self.close_unused_sockets();
            }
            Slot::Running(driver) => {
                // The restart creates the link again: none is left behind should a
                // reload remove the instance or its virtual MAC in the meantime.
                if let Some(spec) = self.take_vmac(&driver.instance) {
                    super::remove_vmac(&self.netlink, &spec).await;
                }
                self.unroute(&driver);
                let message = match ended {
                    Ok(Ended { crash: Some(m), .. }) => m,
                    Ok(Ended { crash: None, .. }) => "the driver ended by itself".to_string(),
                    Err(e) => format!("the driver task failed: {e}"),
                };
                let n = self.restarts.entry(name.clone()).or_insert(0);
                *n += 1;
                self.metrics.repairs.instance_restarted(&name);
                tracing::error!(
                    "{name}: restarting the instance after a panic ({message}); restart {n}"
                );
                self.groups.forget_member(&name);
                self.instances.wait(
                    driver.instance,
                    Some(format!("restarting after a panic: {message}")),
                );
            }
            Slot::Waiting { inst, why } => self.instances.wait(inst, why),
        }
    }

    /// Removes `driver`'s routes from the receivers (unless a successor took them).
    fn unroute(&self, driver: &DriverHandle) {
        let vrid = driver.instance.vrid;
        for s in self.sockets.values() {
            let mut d = s.dispatch.write().unwrap_or_else(|e| e.into_inner());
            if d.get(&vrid).is_some_and(|r| r.tx.same_channel(&driver.tx)) {
                d.remove(&vrid);
            }
        }
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
                if let Some(inst) = self.instances.running(&n).map(|d| d.instance.clone()) {
                    self.stop_instance(&n, Some(inst));
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
            let rebuild: Vec<Instance> = self
                .instances
                .drivers()
                .filter(|d| d.instance.interface == ev.name)
                .map(|d| d.instance.clone())
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
            for inst in rebuild {
                self.stop_instance(&inst.name.clone(), Some(inst));
            }
            return;
        }
        let up = ev.up && !ev.removed;
        for d in self.instances.drivers() {
            if d.instance.interface == ev.name {
                let _ = d.ctl.send(Input::Link { up });
            }
        }
    }

    /// An address was removed: the drivers on that interface check their VIPs (a master
    /// puts back one that was deleted under it). Lost events: every driver checks.
    pub(super) fn handle_address(&mut self, change: AddressChange) {
        let (ifindex, addr) = match change {
            AddressChange::Event(ev) if ev.removed => (Some(ev.ifindex), Some(ev.addr)),
            AddressChange::Event(_) => return,
            AddressChange::Overrun => (None, None),
        };
        for d in self.instances.drivers() {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;

    fn instance(name: &str, vrid: u8) -> Instance {
        let text = format!(
            "[[instance]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = 100\nvips = [\"192.0.2.{vrid}/24\"]\n"
        );
        crate::config::parse(&text, "test.toml")
            .expect("valid")
            .instances
            .remove(0)
    }

    /// A stand-in driver: ends (released) when it hears `Input::Shutdown`.
    fn fake_driver(instances: &mut Instances, inst: Instance) {
        let (tx, _rx) = mpsc::channel(1);
        let (ctl, mut ctl_rx) = mpsc::unbounded_channel();
        let task = instances.tasks.spawn(async move {
            while let Some(input) = ctl_rx.recv().await {
                if matches!(input, Input::Shutdown) {
                    break;
                }
            }
            Ended { crash: None }
        });
        let handle = DriverHandle {
            tx,
            ctl,
            task: task.id(),
            instance: inst.clone(),
            alive: Arc::new(AtomicU64::new(0)),
        };
        instances.started(inst.name, handle);
    }

    #[tokio::test]
    async fn a_rebuild_starts_only_after_the_old_driver_ended() {
        let mut all = Instances::default();
        fake_driver(&mut all, instance("web", 51));
        assert!(all.running("web").is_some());
        let mut new = instance("web", 51);
        new.priority = 120;
        all.stop("web", Some(new), None);
        assert!(all.running("web").is_none());
        assert_eq!(all.stopping().count(), 1);
        // The same VRID is busy until the old driver ended.
        assert_eq!(all.handing_over(&instance("www", 51)), Some("web"));
        assert_eq!(all.handing_over(&instance("www", 52)), None);
        let (id, ended) = all.next_ended().await.expect("a task");
        assert_eq!(ended.expect("no panic").crash, None);
        match all.take_task(id) {
            Some((
                name,
                Slot::Stopping {
                    then: Some(then), ..
                },
            )) => {
                assert_eq!(name, "web");
                assert_eq!(then.priority, 120);
            }
            _ => panic!("expected web stopping with new settings"),
        }
        assert!(!all.has_tasks());
        assert_eq!(all.handing_over(&instance("www", 51)), None);
    }

    #[tokio::test]
    async fn a_name_still_handing_over_gets_its_new_settings_after_it() {
        let mut all = Instances::default();
        fake_driver(&mut all, instance("web", 51));
        all.stop("web", None, None);
        // Re-added in a later reload before the old driver ended: it waits for it.
        assert!(all.after_stop(instance("web", 51)).is_none());
        // A name that is not stopping is given back to be started now.
        assert!(all.after_stop(instance("db", 52)).is_some());
        let (id, _) = all.next_ended().await.expect("a task");
        assert!(matches!(
            all.take_task(id),
            Some((_, Slot::Stopping { then: Some(_), .. }))
        ));
    }

    #[tokio::test]
    async fn stop_all_drains_the_set_and_drops_what_waits() {
        let mut all = Instances::default();
        fake_driver(&mut all, instance("web", 51));
        fake_driver(&mut all, instance("db", 52));
        all.wait(instance("api", 53), Some("no interface".into()));
        all.stop("db", Some(instance("db", 52)), None);
        // What Supervisor::stop_all does.
        for n in all.names() {
            all.stop(&n, None, None);
        }
        assert_eq!(all.waiting().count(), 0);
        let mut ended = Vec::new();
        while let Some((id, _)) = all.next_ended().await {
            match all.take_task(id) {
                Some((name, Slot::Stopping { then: None, .. })) => ended.push(name),
                _ => panic!("every driver stops, nothing starts after it"),
            }
        }
        ended.sort();
        assert_eq!(ended, vec!["db", "web"]);
        assert!(all.stopping().next().is_none());
    }

    #[tokio::test]
    async fn waiting_instances_take_new_settings_and_are_taken_once() {
        let mut all = Instances::default();
        all.wait(instance("web", 51), Some("no interface".into()));
        let mut new = instance("web", 51);
        new.priority = 120;
        all.replace_not_running(new);
        assert_eq!(
            all.waiting()
                .map(|(i, why)| (i.priority, why))
                .collect::<Vec<_>>(),
            vec![(120, Some("no interface"))]
        );
        let taken = all.take_waiting();
        assert_eq!(taken.len(), 1);
        assert!(all.take_waiting().is_empty());
        // Removed while waiting: gone.
        all.wait(instance("db", 52), None);
        all.stop("db", None, None);
        assert_eq!(all.waiting().count(), 0);
    }
}
