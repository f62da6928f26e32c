//! Control-socket requests: status, reload, operator overrides and maintenance.

use crate::control::message::{InstanceStatus, Request, Response, Status};
use crate::control::overrides::Change;
use crate::vrrp::State;

use super::driver::Input;
use super::Supervisor;

impl Supervisor {
    pub(super) async fn handle_request(&mut self, req: Request) -> Response {
        match req {
            Request::Status => {
                let mut instances: Vec<_> = {
                    let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
                    let now = std::time::Instant::now();
                    board.values().map(|e| e.snapshot(now)).collect()
                };
                // Instances that could not start yet are shown too, with the reason.
                for (inst, why) in self.instances.waiting() {
                    if instances.iter().any(|i| i.name == inst.name) {
                        continue;
                    }
                    instances.push(InstanceStatus {
                        name: inst.name.clone(),
                        vrid: inst.vrid,
                        interface: inst.interface.clone(),
                        state: State::Init.to_string(),
                        priority: inst.priority,
                        base_priority: inst.priority,
                        vips: inst.vips.iter().map(|v| v.to_string()).collect(),
                        fault: Some(format!(
                            "not started: {}",
                            why.unwrap_or("waiting for its previous driver")
                        )),
                        ..InstanceStatus::default()
                    });
                }
                instances.sort_by(|a, b| a.name.cmp(&b.name));
                for i in &mut instances {
                    i.restarts = self.restarts.get(&i.name).copied().unwrap_or(0);
                }
                // Group membership can change on reload without a rebuild.
                for i in &mut instances {
                    i.sync_group = self.groups.group_of(&i.name).map(|g| g.name.clone());
                }
                Response::Status(Status { instances })
            }
            Request::Reload => match self.reload().await {
                Ok(m) => Response::Ok { message: m },
                Err(m) => Response::Error { message: m },
            },
            Request::PrioritySet { instance, value } => {
                self.operator(&instance, OperatorChange::Priority(Some(value)))
                    .await
            }
            Request::PriorityClear { instance } => {
                self.operator(&instance, OperatorChange::Priority(None))
                    .await
            }
            Request::Maintenance { instance, on } => {
                self.operator(&instance, OperatorChange::Maintenance(on))
                    .await
            }
            Request::Events => Response::Error {
                message: "events are served by the control server".into(),
            },
        }
    }

    pub(super) async fn operator(&mut self, instance: &str, change: OperatorChange) -> Response {
        if self.instances.running(instance).is_none() {
            let mut known: Vec<&str> = self.instances.running_names().collect();
            known.sort_unstable();
            return Response::Error {
                message: format!(
                    "unknown instance {instance:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            };
        }
        // Maintenance and priority overrides apply to a whole sync group: moving one member
        // alone would split the group across hosts, which is what a sync group exists to
        // prevent.
        let targets: Vec<String> = match self.groups.group_of(instance) {
            Some(g) => g.instances.clone(),
            None => vec![instance.to_string()],
        };
        let names = targets.join(", ");
        let msg = match change {
            OperatorChange::Priority(Some(v)) => {
                format!("{names}: priority override {v} set (saved in the state directory)")
            }
            OperatorChange::Priority(None) => format!("{names}: priority override cleared"),
            OperatorChange::Maintenance(true) => {
                format!("{names}: maintenance on: handing over if master, then staying backup")
            }
            OperatorChange::Maintenance(false) => format!("{names}: maintenance off"),
        };
        // Saved before anything is applied, in one atomic write for the whole group: a
        // failed write applies nothing, and a crash cannot leave half a group changed.
        let stored = match change {
            OperatorChange::Priority(p) => Change::Priority(p),
            OperatorChange::Maintenance(on) => Change::Maintenance(on),
        };
        let changes: Vec<(&str, Change)> = targets.iter().map(|t| (t.as_str(), stored)).collect();
        if let Err(e) = self.store.apply(&changes) {
            return Response::Error {
                message: format!(
                    "cannot save the change under {}: {e}; not applied",
                    self.config.process.state_dir.display()
                ),
            };
        }
        tracing::info!("operator: {msg}");
        for t in &targets {
            let input = match change {
                OperatorChange::Priority(p) => Input::Override(p),
                OperatorChange::Maintenance(on) => Input::Maintenance(on),
            };
            let sent = match self.instances.running(t) {
                Some(d) => d.ctl.send(input).is_ok(),
                None => false,
            };
            if !sent {
                return Response::Error {
                    message: format!("{t}: instance is stopping"),
                };
            }
        }
        Response::Ok { message: msg }
    }
}

#[derive(Clone, Copy)]
pub(super) enum OperatorChange {
    Priority(Option<u8>),
    Maintenance(bool),
}
