//! SIGHUP / `vipctl reload`: load the new configuration and apply it.

use std::collections::HashMap;

use crate::config::{self, Instance};

use super::driver::Input;
use super::Supervisor;

impl Supervisor {
    pub(super) async fn reload(&mut self) -> Result<String, String> {
        let new = match config::load(&self.path) {
            Ok(c) => c,
            Err(errs) => {
                for d in &errs.0 {
                    tracing::error!("reload rejected, keeping the running configuration: {d}");
                }
                return Err(format!(
                    "reload rejected, running configuration kept: {}",
                    errs.0.first().map(|d| d.to_string()).unwrap_or_default()
                ));
            }
        };
        if new.control_socket != self.config.control_socket
            || new.metrics_listen != self.config.metrics_listen
            || new.state_dir != self.config.state_dir
            || new.control_group != self.config.control_group
        {
            tracing::warn!("reload: control-socket, control-group, metrics-listen and state-dir changes take effect at the next restart");
        }
        let old: HashMap<String, Instance> = self
            .config
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.clone()))
            .collect();
        let mut new = new;
        let mut failed: Vec<String> = Vec::new();
        let mut kept_old: Vec<String> = Vec::new();
        let mut kept = 0;
        let mut changed = 0;
        let mut added = 0;
        let mut removed = 0;
        for name in old.keys() {
            if !new.instances.iter().any(|i| &i.name == name) {
                tracing::info!("{name}: removed from the configuration: handing over");
                self.stop_instance(name);
                self.pending.remove(name);
                self.waiting.remove(name);
                self.not_started.remove(name);
                removed += 1;
            }
        }
        if self.config.sync_groups != new.sync_groups {
            self.group_notifiers.clear();
            self.group_states.clear();
        }
        self.config.sync_groups = new.sync_groups.clone();
        self.members
            .retain(|name, _| new.instances.iter().any(|i| &i.name == name));
        // A changed [arbiter] section rebuilds the instances that use it.
        let arbiter_changed = self.config.arbiter != new.arbiter;
        for inst in &new.instances {
            let rebuild_arbiter = inst.arbiter && arbiter_changed;
            match old.get(&inst.name) {
                Some(o) if o == inst && !rebuild_arbiter => kept += 1,
                Some(o)
                    if !rebuild_arbiter
                        && Instance {
                            priority: inst.priority,
                            ..o.clone()
                        } == *inst =>
                {
                    // Only the priority changed: no rebuild, no transition of its own.
                    if let Some(d) = self.drivers.get_mut(&inst.name) {
                        let _ = d.ctl.send(Input::BasePriority(inst.priority));
                        d.instance = inst.clone();
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                Some(_) => {
                    if self.drivers.contains_key(&inst.name) {
                        // Pre-flight before anything stops: a change that cannot start
                        // leaves the running instance as it is.
                        if let Err(e) = self.preflight(inst).await {
                            tracing::error!(
                                "{}: reload: the new settings cannot start ({e}); the running instance is kept",
                                inst.name
                            );
                            failed.push(format!("{}: {e} (running instance kept)", inst.name));
                            kept_old.push(inst.name.clone());
                            continue;
                        }
                        tracing::info!("{}: settings changed: rebuilding the instance", inst.name);
                        self.stop_instance(&inst.name);
                        self.pending.insert(inst.name.clone(), inst.clone());
                    } else {
                        self.replace_not_running(inst);
                    }
                    changed += 1;
                }
                None => {
                    if let Err(e) = self.preflight(inst).await {
                        failed.push(format!(
                            "{}: {e} (not started; retried every second)",
                            inst.name
                        ));
                    }
                    self.restart_instance(inst.clone(), true).await;
                    added += 1;
                }
            }
        }
        // What runs is what the configuration says, except where the new settings
        // could not start: those keep their old ones.
        for name in &kept_old {
            if let (Some(slot), Some(o)) = (
                new.instances.iter_mut().find(|i| &i.name == name),
                old.get(name),
            ) {
                *slot = o.clone();
            }
        }
        let (cs, cg, ml, sd) = (
            self.config.control_socket.clone(),
            self.config.control_group.clone(),
            self.config.metrics_listen,
            self.config.state_dir.clone(),
        );
        self.config = new;
        self.config.control_socket = cs;
        self.config.control_group = cg;
        self.config.metrics_listen = ml;
        self.config.state_dir = sd;
        // Members that joined or left a group get the group's fault and penalty, or lose them.
        self.send_group_inputs();
        let msg = format!(
            "reloaded: {kept} unchanged, {changed} changed, {added} added, {removed} removed"
        );
        tracing::info!("{msg}");
        if failed.is_empty() {
            Ok(msg)
        } else {
            Err(format!("{msg}; failed: {}", failed.join("; ")))
        }
    }
}
