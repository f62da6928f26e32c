//! SIGHUP / `vipctl reload`: [`plan`] compares the running and the new configuration
//! (a pure function, unit-tested below); [`Supervisor::reload`] carries the plan out.
//!
//! ```text
//!   config::load(path) --error--> logged, old configuration kept
//!        | ok
//!        v
//!   plan(old, new): per instance Keep | Retune | Rebuild | Add | Remove,
//!                   restart-only keys, sync groups changed
//!        |
//!        v
//!   Remove  -> Instances::stop (hand over, then gone)
//!   Retune  -> Input::BasePriority to the running driver (no transition of its own)
//!   Rebuild -> preflight; ok: stop, then start the new settings once the old driver
//!              ended; failed: the running instance keeps its old settings
//!   Add     -> launch (or wait, retried every second)
//!   then the sync groups are reconfigured and members told their group's inputs
//! ```

use crate::config::{Config, Instance};

use super::Supervisor;

/// What a reload does to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// Unchanged: keeps its state (a master stays master).
    Keep,
    /// Only the base priority changed: no rebuild, no transition of its own.
    Retune {
        /// The new base priority.
        priority: u8,
    },
    /// Anything else changed (or the `[arbiter]` section it uses): handed over and
    /// started again with the new settings.
    Rebuild,
    /// New in the configuration.
    Add,
    /// Gone from the configuration: handed over and stopped.
    Remove,
}

/// A reload's plan: what happens to each instance, and which global keys changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Removed instances first (old order), then the new configuration's instances
    /// in order.
    pub(super) instances: Vec<(String, Change)>,
    /// Changed keys that take effect only at the next restart.
    pub(super) restart_only: Vec<&'static str>,
    /// The `[[sync-group]]` sections changed.
    pub(super) sync_groups_changed: bool,
    /// The `[arbiter]` section changed.
    pub(super) arbiter_changed: bool,
}

/// Compares the running configuration `old` with `new`.
pub(super) fn plan(old: &Config, new: &Config) -> Plan {
    let restart_only = old.process.changed_keys(&new.process);
    let arbiter_changed = old.arbiter != new.arbiter;
    let mut instances: Vec<(String, Change)> = old
        .instances
        .iter()
        .filter(|o| !new.instances.iter().any(|i| i.name == o.name))
        .map(|o| (o.name.clone(), Change::Remove))
        .collect();
    for inst in &new.instances {
        let change = match old.instances.iter().find(|o| o.name == inst.name) {
            None => Change::Add,
            Some(_) if inst.arbiter && arbiter_changed => Change::Rebuild,
            Some(o) if o == inst => Change::Keep,
            Some(o)
                if Instance {
                    priority: inst.priority,
                    ..o.clone()
                } == *inst =>
            {
                Change::Retune {
                    priority: inst.priority,
                }
            }
            Some(_) => Change::Rebuild,
        };
        instances.push((inst.name.clone(), change));
    }
    Plan {
        instances,
        restart_only,
        sync_groups_changed: old.sync_groups != new.sync_groups,
        arbiter_changed,
    }
}

impl Supervisor {
    pub(super) async fn reload(&mut self) -> Result<String, String> {
        let mut new = match crate::config::load(&self.path) {
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
        let plan = plan(&self.config, &new);
        if !plan.restart_only.is_empty() {
            tracing::warn!("reload: control-socket, control-group, metrics-listen and state-dir changes take effect at the next restart");
        }
        let mut failed: Vec<String> = Vec::new();
        let mut kept_old: Vec<String> = Vec::new();
        let (mut kept, mut changed, mut added, mut removed) = (0, 0, 0, 0);
        // Removals first, so that the sync groups below no longer count them.
        for (name, _) in plan.instances.iter().filter(|(_, c)| *c == Change::Remove) {
            tracing::info!("{name}: removed from the configuration: handing over");
            self.stop_instance(name, None);
            removed += 1;
        }
        // Instances started below (added ones at once, rebuilt ones when their old
        // driver ends) read the arbiter section and the start-up delay from the running
        // config: install the new ones first, or an instance added together with its
        // `[arbiter]` section would start without the arbiter.
        self.config.arbiter = new.arbiter.clone();
        self.config.startup_delay = new.startup_delay;
        let names: Vec<&str> = new.instances.iter().map(|i| i.name.as_str()).collect();
        self.groups.reconfigure(new.sync_groups.clone(), &names);
        for (name, change) in &plan.instances {
            let Some(inst) = new.instances.iter().find(|i| &i.name == name) else {
                continue;
            };
            match change {
                Change::Remove => {}
                Change::Keep => kept += 1,
                Change::Retune { .. } => {
                    if !self.instances.retune(inst) {
                        self.instances.replace_not_running(inst.clone());
                    }
                    changed += 1;
                }
                Change::Rebuild => {
                    if self.instances.running(name).is_some() {
                        // Pre-flight before anything stops: a change that cannot start
                        // leaves the running instance as it is.
                        if let Err(e) = self.preflight(inst).await {
                            tracing::error!(
                                "{name}: reload: the new settings cannot start ({e}); the running instance is kept"
                            );
                            failed.push(format!("{name}: {e} (running instance kept)"));
                            kept_old.push(name.clone());
                            continue;
                        }
                        tracing::info!("{name}: settings changed: rebuilding the instance");
                        self.stop_instance(name, Some(inst.clone()));
                    } else {
                        self.instances.replace_not_running(inst.clone());
                    }
                    changed += 1;
                }
                Change::Add => {
                    if let Err(e) = self.preflight(inst).await {
                        failed.push(format!("{name}: {e} (not started; retried every second)"));
                    }
                    self.launch(inst.clone(), true, None).await;
                    added += 1;
                }
            }
        }
        // What runs is what the configuration says, except where the new settings
        // could not start: those keep their old ones.
        for name in &kept_old {
            if let (Some(slot), Some(o)) = (
                new.instances.iter_mut().find(|i| &i.name == name),
                self.config.instances.iter().find(|i| &i.name == name),
            ) {
                *slot = o.clone();
            }
        }
        // Keys that take effect only at the next restart keep their running values.
        new.process = self.config.process.clone();
        self.config = new;
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[instance]]
name = "web"
interface = "eth0"
vrid = 51
priority = 150
vips = ["192.0.2.100/24"]

[[instance]]
name = "db"
interface = "eth0"
vrid = 52
priority = 100
vips = ["192.0.2.101/24"]
"#;

    fn config(text: &str) -> Config {
        crate::config::parse(text, "test.toml").expect("valid")
    }

    /// Plans `old` -> `new` and checks each instance's change.
    fn planned(old: &str, new: &str, expected: &[(&str, Change)]) -> Plan {
        let p = plan(&config(old), &config(new));
        let got: Vec<(&str, Change)> = p
            .instances
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .collect();
        assert_eq!(got, expected);
        p
    }

    const KEEP_BOTH: &[(&str, Change)] = &[("web", Change::Keep), ("db", Change::Keep)];

    #[test]
    fn the_same_configuration_keeps_everything() {
        let p = planned(BASE, BASE, KEEP_BOTH);
        assert!(p.restart_only.is_empty());
        assert!(!p.sync_groups_changed && !p.arbiter_changed);
    }

    #[test]
    fn a_priority_change_alone_retunes_without_a_rebuild() {
        let new = BASE.replace("priority = 150", "priority = 120");
        planned(
            BASE,
            &new,
            &[
                ("web", Change::Retune { priority: 120 }),
                ("db", Change::Keep),
            ],
        );
    }

    #[test]
    fn any_other_change_rebuilds_and_priority_with_it_too() {
        let new = BASE
            .replace("priority = 150", "priority = 120")
            .replace("192.0.2.100/24", "192.0.2.110/24");
        planned(
            BASE,
            &new,
            &[("web", Change::Rebuild), ("db", Change::Keep)],
        );
    }

    #[test]
    fn removed_instances_come_first_then_the_new_order() {
        let new = BASE.replace("name = \"web\"", "name = \"www\"");
        planned(
            BASE,
            &new,
            &[
                ("web", Change::Remove),
                ("www", Change::Add),
                ("db", Change::Keep),
            ],
        );
    }

    #[test]
    fn restart_only_keys_are_listed() {
        let new = format!(
            "control-socket = \"/tmp/other.sock\"\nmetrics-listen = \"127.0.0.1:9999\"\nstate-dir = \"/tmp/state\"\n{BASE}"
        );
        let p = planned(BASE, &new, KEEP_BOTH);
        assert_eq!(
            p.restart_only,
            vec!["control-socket", "metrics-listen", "state-dir"]
        );
    }

    #[test]
    fn a_sync_group_change_is_seen_and_rebuilds_nothing() {
        let new = format!("{BASE}\n[[sync-group]]\nname = \"g\"\ninstances = [\"web\", \"db\"]\n");
        assert!(planned(BASE, &new, KEEP_BOTH).sync_groups_changed);
    }

    #[test]
    fn an_arbiter_change_rebuilds_only_the_instances_that_use_it() {
        let arb = |ttl: &str| {
            format!(
                "[arbiter]\netcd-endpoints = [\"http://192.0.2.1:2379\"]\nlease-ttl = \"{ttl}\"\n{}",
                BASE.replacen("priority = 150", "priority = 150\narbiter = true", 1)
            )
        };
        let p = planned(
            &arb("2s"),
            &arb("3s"),
            &[("web", Change::Rebuild), ("db", Change::Keep)],
        );
        assert!(p.arbiter_changed);
    }
}
