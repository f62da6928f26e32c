//! Shared by the control tests: a temporary directory, a fake daemon handler answering
//! from a fixed table, and a running control server.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use vipd::control::message::{
    ArbiterStatus, Event, InstanceStatus, Request, Response, Status, TrackStatus, Transition,
};
use vipd::control::server::{serve_with, ControlCall, ControlListener, ServerOptions};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under the system temp dir, removed on drop (also when a test fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "vipd-control-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        // World-traversable, so a test can connect as another user.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixed table the fake daemon starts from.
pub fn table() -> Vec<InstanceStatus> {
    vec![
        InstanceStatus {
            name: "web".into(),
            vrid: 51,
            interface: "eth0".into(),
            state: "master".into(),
            priority: 150,
            base_priority: 150,
            priority_override: None,
            maintenance: false,
            vips: vec!["192.0.2.100/24".into()],
            master: Some("192.0.2.10".into()),
            version: 3,
            advert_interval_ms: 100,
            since_unix_ms: Some(1_700_000_000_000),
            in_state_ms: Some(245_000),
            last_transition: Some(Transition {
                from: "backup".into(),
                to: "master".into(),
                reason: "no advert from 192.0.2.11 for 3.35 s".into(),
                at_unix_ms: 1_700_000_000_000,
            }),
            tracks: vec![TrackStatus {
                name: "nginx".into(),
                healthy: true,
                weight: -50,
                last_latency_ms: Some(12),
                detail: None,
            }],
            sync_group: None,
            fault: None,
            restarts: 0,
            bfd: Vec::new(),
            arbiter: Some(ArbiterStatus {
                holder: true,
                reachable: true,
                fencing_token: Some(42),
                key: "/vipd/web".into(),
                master_elect: false,
                vips_held: true,
                other_holder: None,
                detail: None,
                lease_ttl_ms: Some(2000),
            }),
        },
        InstanceStatus {
            name: "api".into(),
            vrid: 52,
            interface: "eth1".into(),
            state: "backup".into(),
            priority: 100,
            base_priority: 100,
            priority_override: None,
            maintenance: false,
            vips: vec!["198.51.100.7/24".into(), "198.51.100.8/24".into()],
            master: None,
            ..Default::default()
        },
    ]
}

/// What the fake daemon has: its table and every request it was handed.
#[derive(Clone, Default)]
pub struct FakeState {
    pub table: Arc<Mutex<Vec<InstanceStatus>>>,
    pub seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeState {
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub fn instance(&self, name: &str) -> Option<InstanceStatus> {
        self.table
            .lock()
            .ok()
            .and_then(|t| t.iter().find(|i| i.name == name).cloned())
    }
}

/// The fake daemon. Instance "hang" never gets an answer; instance "drop" has its reply
/// channel dropped.
pub async fn fake_handler(mut calls: mpsc::Receiver<ControlCall>, state: FakeState) {
    let mut parked: Vec<oneshot::Sender<Response>> = Vec::new();
    while let Some(ControlCall { request, reply }) = calls.recv().await {
        state.seen.lock().expect("lock").push(request.clone());
        let name = match &request {
            Request::PrioritySet { instance, .. }
            | Request::PriorityClear { instance }
            | Request::Maintenance { instance, .. } => Some(instance.clone()),
            _ => None,
        };
        if name.as_deref() == Some("hang") {
            parked.push(reply);
            continue;
        }
        if name.as_deref() == Some("drop") {
            drop(reply);
            continue;
        }
        let mut table = state.table.lock().expect("lock");
        let known = table
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let response = match request {
            Request::Status => Response::Status(Status {
                instances: table.clone(),
            }),
            Request::Reload => Response::ok("configuration reloaded"),
            Request::Events => Response::error("events must not reach the handler"),
            Request::PrioritySet { instance, value } => {
                match table.iter_mut().find(|i| i.name == instance) {
                    Some(i) => {
                        i.priority_override = Some(value);
                        i.priority = value;
                        Response::ok(format!("priority of {instance} set to {value}"))
                    }
                    None => {
                        Response::error(format!("unknown instance \"{instance}\" (known: {known})"))
                    }
                }
            }
            Request::PriorityClear { instance } => {
                match table.iter_mut().find(|i| i.name == instance) {
                    Some(i) => {
                        i.priority_override = None;
                        i.priority = i.base_priority;
                        Response::ok(format!("priority override of {instance} cleared"))
                    }
                    None => {
                        Response::error(format!("unknown instance \"{instance}\" (known: {known})"))
                    }
                }
            }
            Request::Maintenance { instance, on } => {
                match table.iter_mut().find(|i| i.name == instance) {
                    Some(i) => {
                        i.maintenance = on;
                        Response::ok(format!(
                            "maintenance {} for {instance}",
                            if on { "on" } else { "off" }
                        ))
                    }
                    None => {
                        Response::error(format!("unknown instance \"{instance}\" (known: {known})"))
                    }
                }
            }
        };
        let _ = reply.send(response);
    }
}

/// A control server and fake daemon running on the current tokio runtime.
pub struct Running {
    pub path: PathBuf,
    pub state: FakeState,
    pub events: broadcast::Sender<Event>,
    pub server: JoinHandle<()>,
    pub handler: JoinHandle<()>,
    pub dir: TempDir,
}

impl Running {
    pub async fn start(opts: ServerOptions, group: Option<&str>, event_capacity: usize) -> Self {
        let dir = TempDir::new("srv");
        let path = dir.path().join("run").join("vipd.sock");
        let listener = ControlListener::bind(&path, group).expect("bind control socket");
        let (tx, rx) = mpsc::channel(16);
        let (events, _) = broadcast::channel(event_capacity);
        let state = FakeState {
            table: Arc::new(Mutex::new(table())),
            seen: Arc::default(),
        };
        let handler = tokio::spawn(fake_handler(rx, state.clone()));
        let server = tokio::spawn(serve_with(listener, tx, events.clone(), opts));
        Running {
            path,
            state,
            events,
            server,
            handler,
            dir,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
        self.handler.abort();
    }
}

pub fn event(n: u64) -> Event {
    Event {
        instance: "web".into(),
        from: "backup".into(),
        to: "master".into(),
        reason: format!("test event {n}"),
        at_unix_ms: 1_700_000_000_000 + n,
    }
}
