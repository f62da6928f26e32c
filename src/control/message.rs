//! The control-socket protocol: versioned, line-delimited JSON.
//!
//! One connection carries one request line and gets one response line back, then the
//! server closes it. The exception is `events`, which is answered with an `ok` line and
//! then one `event` line per state change until the client goes away.
//!
//! # Requests
//!
//! Every request is one JSON object on one line (at most [`MAX_REQUEST_LEN`] bytes, ending
//! in `\n`) with the protocol `version` and a `command`:
//!
//! ```text
//! {"version":1,"command":"status"}
//! {"version":1,"command":"priority-set","instance":"web","value":200}
//! {"version":1,"command":"priority-clear","instance":"web"}
//! {"version":1,"command":"maintenance","instance":"web","on":true}
//! {"version":1,"command":"reload"}
//! {"version":1,"command":"events"}
//! ```
//!
//! A request with another `version`, an unknown `command`, a missing or mistyped field, or
//! that is not JSON at all is answered with an `error` line naming what was wrong.
//! Unknown extra fields are ignored, so a newer client can add optional fields.
//!
//! # Responses
//!
//! Each response is one JSON object with exactly one key:
//!
//! ```text
//! {"status":{"instances":[{"name":"web","vrid":51,"interface":"eth0","state":"master",...}]}}
//! {"ok":"priority of web set to 200"}
//! {"error":"unknown instance \"db\" (known: web, api)"}
//! {"event":{"instance":"web","from":"backup","to":"master","reason":"...","at_unix_ms":1700000000000}}
//! {"lagged":12}
//! ```
//!
//! `lagged` appears only on an `events` stream: the client read too slowly and that many
//! events were dropped for it.
//!
//! The `instances` objects carry the fields of the interface contract (`name`, `vrid`,
//! `interface`, `state`, `priority`, `base_priority`, `override`, `maintenance`, `vips`,
//! `master`) and further optional details; see [`InstanceStatus`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks; requests carrying another one are refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the server accepts, in bytes (newline included).
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// The lowest priority an operator may set (0 is reserved for "master is leaving").
pub const MIN_OPERATOR_PRIORITY: u8 = 1;
/// The highest priority an operator may set (255 is reserved for the address owner).
pub const MAX_OPERATOR_PRIORITY: u8 = 254;

/// The command names, as they appear in the `command` field.
pub const COMMANDS: &[&str] = &[
    "status",
    "priority-set",
    "priority-clear",
    "maintenance",
    "reload",
    "events",
];

/// A request from vipctl (or any other client) to vipd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Report every instance.
    Status,
    /// Override the configured priority of an instance.
    PrioritySet {
        /// Instance name.
        instance: String,
        /// The new priority, 1..=254.
        value: u8,
    },
    /// Drop a priority override: the instance goes back to its configured priority.
    PriorityClear {
        /// Instance name.
        instance: String,
    },
    /// Turn maintenance (drain) on or off for an instance.
    Maintenance {
        /// Instance name.
        instance: String,
        /// `true` to drain: hand over gracefully and stay backup.
        on: bool,
    },
    /// Reload the configuration file.
    Reload,
    /// Follow state changes as they happen.
    Events,
}

impl Request {
    /// The command name of this request as it appears on the wire.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::PrioritySet { .. } => "priority-set",
            Request::PriorityClear { .. } => "priority-clear",
            Request::Maintenance { .. } => "maintenance",
            Request::Reload => "reload",
            Request::Events => "events",
        }
    }

    /// Checks what can be checked without knowing the daemon's instances.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Request::PrioritySet { instance, value } => {
                check_instance(instance)?;
                if !(MIN_OPERATOR_PRIORITY..=MAX_OPERATOR_PRIORITY).contains(value) {
                    return Err(ProtocolError::PriorityOutOfRange(*value));
                }
                Ok(())
            }
            Request::PriorityClear { instance } | Request::Maintenance { instance, .. } => {
                check_instance(instance)
            }
            Request::Status | Request::Reload | Request::Events => Ok(()),
        }
    }

    /// The request as one wire line, without the trailing newline.
    pub fn to_line(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            version: u32,
            #[serde(flatten)]
            request: &'a Request,
        }
        // Serialising plain strings, integers and booleans cannot fail.
        serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            request: self,
        })
        .unwrap_or_default()
    }

    /// Parses one request line (with or without its trailing newline) and validates it.
    pub fn parse_line(line: &[u8]) -> Result<Request, ProtocolError> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| ProtocolError::MalformedJson(e.to_string()))?;
        let Value::Object(map) = &value else {
            return Err(ProtocolError::NotAnObject);
        };
        match map.get("version") {
            None => return Err(ProtocolError::MissingVersion),
            Some(Value::Number(n)) if n.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
            Some(other) => return Err(ProtocolError::WrongVersion(other.to_string())),
        }
        let command = match map.get("command") {
            None => return Err(ProtocolError::MissingCommand),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(ProtocolError::UnknownCommand(other.to_string())),
        };
        if !COMMANDS.contains(&command.as_str()) {
            return Err(ProtocolError::UnknownCommand(format!("{command:?}")));
        }
        let request: Request =
            serde_json::from_value(value).map_err(|e| ProtocolError::BadFields {
                command,
                detail: e.to_string(),
            })?;
        request.validate()?;
        Ok(request)
    }
}

fn check_instance(name: &str) -> Result<(), ProtocolError> {
    if name.is_empty() {
        Err(ProtocolError::EmptyInstance)
    } else {
        Ok(())
    }
}

/// Why a request line was refused before reaching the daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not an object.
    #[error("request is not a JSON object")]
    NotAnObject,
    /// No `version` field.
    #[error("request has no \"version\" (this vipd speaks protocol version {PROTOCOL_VERSION})")]
    MissingVersion,
    /// A `version` other than [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0} (this vipd speaks version {PROTOCOL_VERSION})")]
    WrongVersion(String),
    /// No `command` field.
    #[error("request has no \"command\"")]
    MissingCommand,
    /// A command this server does not know.
    #[error("unknown command {0} (known: status, priority-set, priority-clear, maintenance, reload, events)")]
    UnknownCommand(String),
    /// A known command with missing or mistyped fields.
    #[error("bad {command} request: {detail}")]
    BadFields {
        /// The command name.
        command: String,
        /// What serde found wrong.
        detail: String,
    },
    /// A priority outside 1..=254.
    #[error("priority {0} out of range (1..254; 0 and 255 are reserved)")]
    PriorityOutOfRange(u8),
    /// An empty instance name.
    #[error("instance name is empty")]
    EmptyInstance,
}

/// A response from vipd. See the module docs for the wire form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireResponse", from = "WireResponse")]
pub enum Response {
    /// The answer to `status`.
    Status(Status),
    /// The request was carried out.
    Ok {
        /// What was done, for a person.
        message: String,
    },
    /// The request was refused or failed.
    Error {
        /// Why, for a person: one line.
        message: String,
    },
    /// One state change, on an `events` stream.
    Event(Event),
    /// On an `events` stream: this many events were dropped because the client was slow.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl Response {
    /// An `ok` response.
    pub fn ok(message: impl Into<String>) -> Self {
        Response::Ok {
            message: message.into(),
        }
    }

    /// An `error` response.
    pub fn error(message: impl Into<String>) -> Self {
        Response::Error {
            message: message.into(),
        }
    }

    /// The response as one wire line, without the trailing newline.
    pub fn to_line(&self) -> String {
        // Every field is a string, integer, boolean, list or map with string keys.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"error":"internal error: response not serialisable"}"#.into())
    }

    /// Parses one response line.
    pub fn parse_line(line: &[u8]) -> Result<Response, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum WireResponse {
    Status(Status),
    Ok(String),
    Error(String),
    Event(Event),
    Lagged(u64),
}

impl From<Response> for WireResponse {
    fn from(r: Response) -> Self {
        match r {
            Response::Status(s) => WireResponse::Status(s),
            Response::Ok { message } => WireResponse::Ok(message),
            Response::Error { message } => WireResponse::Error(message),
            Response::Event(e) => WireResponse::Event(e),
            Response::Lagged { missed } => WireResponse::Lagged(missed),
        }
    }
}

impl From<WireResponse> for Response {
    fn from(r: WireResponse) -> Self {
        match r {
            WireResponse::Status(s) => Response::Status(s),
            WireResponse::Ok(message) => Response::Ok { message },
            WireResponse::Error(message) => Response::Error { message },
            WireResponse::Event(e) => Response::Event(e),
            WireResponse::Lagged(missed) => Response::Lagged { missed },
        }
    }
}

/// The answer to `status`; `vipctl status --json` prints exactly this object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// One entry per configured instance, in configuration order.
    pub instances: Vec<InstanceStatus>,
}

/// The state of one instance as vipd sees it now.
///
/// The first ten fields are the interface contract (DESIGN.md §3) and keep their names;
/// the rest are details that may be absent (older daemons) and default when missing
/// (`#[serde(default)]`; an absent `Option` is `None` by serde's own rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Instance name, as in the configuration.
    pub name: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Interface the instance runs on.
    pub interface: String,
    /// `"init"`, `"backup"`, `"master"` or `"fault"`.
    pub state: String,
    /// The effective priority now (configured, override, tracks and maintenance applied).
    pub priority: u8,
    /// The configured priority.
    pub base_priority: u8,
    /// The operator's priority override, if any.
    #[serde(rename = "override")]
    pub priority_override: Option<u8>,
    /// Whether the instance is drained (maintenance on).
    pub maintenance: bool,
    /// The virtual addresses, as configured (`"192.0.2.100/24"`).
    pub vips: Vec<String>,
    /// The current master's address as last seen, or null.
    pub master: Option<String>,
    /// VRRP version, 2 or 3.
    #[serde(default)]
    pub version: u8,
    /// The advertisement interval in use, in milliseconds.
    #[serde(default)]
    pub advert_interval_ms: u32,
    /// When the instance entered its current state, Unix time in milliseconds.
    pub since_unix_ms: Option<u64>,
    /// How long the instance has been in its current state, in milliseconds (monotonic).
    pub in_state_ms: Option<u64>,
    /// The last state change and why it happened.
    pub last_transition: Option<Transition>,
    /// Health checks and their state.
    #[serde(default)]
    pub tracks: Vec<TrackStatus>,
    /// The sync group this instance belongs to, if any.
    pub sync_group: Option<String>,
    /// Why the instance is in fault, if it is.
    pub fault: Option<String>,
    /// How often the instance was restarted after its driver panicked.
    #[serde(default)]
    pub restarts: u32,
    /// Peer BFD sessions (`[instance.bfd]`), one per peer.
    #[serde(default)]
    pub bfd: Vec<BfdPeerStatus>,
    /// The etcd arbiter of the instance; null when it has none (`arbiter = false`).
    pub arbiter: Option<ArbiterStatus>,
}

/// One BFD session of an instance, as `vipctl status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdPeerStatus {
    /// The peer's address.
    pub peer: String,
    /// `"admin_down"`, `"down"`, `"init"` or `"up"`.
    pub state: String,
    /// The detection time in milliseconds (rounded up), once the peer has been heard.
    pub detect_ms: Option<u64>,
}

/// What the etcd arbiter says about an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArbiterStatus {
    /// We hold the instance's key under a live lease (we may hold the VIPs).
    pub holder: bool,
    /// Our etcd lease is alive (etcd answers in time).
    pub reachable: bool,
    /// The key's create revision while we hold it: strictly increasing over holders.
    pub fencing_token: Option<i64>,
    /// The etcd key.
    #[serde(default)]
    pub key: String,
    /// VRRP made us master but we do not hold the key: advertising, no VIPs.
    #[serde(default)]
    pub master_elect: bool,
    /// Whether the VIPs are on this host now.
    #[serde(default)]
    pub vips_held: bool,
    /// Who holds the key, when someone else does (the key's value).
    pub other_holder: Option<String>,
    /// Why we do not hold the key, or the last etcd error.
    pub detail: Option<String>,
    /// The lease TTL etcd granted, in milliseconds.
    pub lease_ttl_ms: Option<u64>,
}

/// A past state change of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Why, for a person (`"no advert from 192.0.2.11 for 3.35 s"`).
    pub reason: String,
    /// When, Unix time in milliseconds.
    pub at_unix_ms: u64,
}

/// One health check of an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackStatus {
    /// Check name.
    pub name: String,
    /// Whether the last result counts as healthy.
    pub healthy: bool,
    /// Priority change applied while unhealthy (negative lowers); 0 = the check faults
    /// the instance instead.
    #[serde(default)]
    pub weight: i32,
    /// How long the last check took, in milliseconds.
    pub last_latency_ms: Option<u64>,
    /// The last failure, for a person.
    pub detail: Option<String>,
}

/// A state change, streamed by `events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Instance name.
    pub instance: String,
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Why, for a person.
    pub reason: String,
    /// When, Unix time in milliseconds.
    pub at_unix_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status with only the contract's fields (an older daemon) parses, every detail
    /// at its default: `#[serde(default)]` fields and, by serde's rule, `Option`s.
    #[test]
    fn older_daemons_status_parses_with_details_defaulted() {
        let line = r#"{"name":"web","vrid":51,"interface":"eth0","state":"master","priority":150,"base_priority":150,"override":null,"maintenance":false,"vips":["192.0.2.100/24"],"master":"192.0.2.11"}"#;
        let s: InstanceStatus = serde_json::from_str(line).expect("parses");
        assert_eq!(s.name, "web");
        assert_eq!(s.master.as_deref(), Some("192.0.2.11"));
        assert_eq!(
            (s.since_unix_ms, s.in_state_ms, s.sync_group, s.fault),
            (None, None, None, None)
        );
        assert!(s.last_transition.is_none() && s.arbiter.is_none());
        assert!(s.tracks.is_empty() && s.bfd.is_empty() && s.restarts == 0);
        let a: ArbiterStatus =
            serde_json::from_str(r#"{"holder":true,"reachable":true}"#).expect("parses");
        assert_eq!(
            (a.fencing_token, a.other_holder, a.detail, a.lease_ttl_ms),
            (None, None, None, None)
        );
    }

    #[test]
    fn request_wire_form_matches_the_docs() {
        let r = Request::PrioritySet {
            instance: "web".into(),
            value: 200,
        };
        assert_eq!(
            r.to_line(),
            r#"{"version":1,"command":"priority-set","instance":"web","value":200}"#
        );
        assert_eq!(
            Request::Status.to_line(),
            r#"{"version":1,"command":"status"}"#
        );
        assert_eq!(
            Request::Maintenance {
                instance: "web".into(),
                on: true
            }
            .to_line(),
            r#"{"version":1,"command":"maintenance","instance":"web","on":true}"#
        );
    }

    #[test]
    fn every_request_round_trips() {
        let all = [
            Request::Status,
            Request::PrioritySet {
                instance: "a".into(),
                value: 1,
            },
            Request::PriorityClear {
                instance: "a".into(),
            },
            Request::Maintenance {
                instance: "a".into(),
                on: false,
            },
            Request::Reload,
            Request::Events,
        ];
        for r in all {
            assert!(COMMANDS.contains(&r.command()));
            assert_eq!(Request::parse_line(r.to_line().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn refusals_name_what_was_wrong() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "malformed JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"command":"status"}"#, "no \"version\""),
            (r#"{"version":2,"command":"status"}"#, "version 2"),
            (r#"{"version":"1","command":"status"}"#, "version \"1\""),
            (r#"{"version":1}"#, "no \"command\""),
            (
                r#"{"version":1,"command":"explode"}"#,
                "unknown command \"explode\"",
            ),
            (
                r#"{"version":1,"command":"priority-set","value":3}"#,
                "bad priority-set request: missing field `instance`",
            ),
            (
                r#"{"version":1,"command":"priority-set","instance":"w","value":300}"#,
                "bad priority-set request",
            ),
            (
                r#"{"version":1,"command":"priority-set","instance":"w","value":0}"#,
                "priority 0 out of range",
            ),
            (
                r#"{"version":1,"command":"priority-set","instance":"w","value":255}"#,
                "priority 255 out of range",
            ),
            (
                r#"{"version":1,"command":"maintenance","instance":"","on":true}"#,
                "instance name is empty",
            ),
        ];
        for (line, want) in cases {
            let err = Request::parse_line(line.as_bytes()).expect_err(line);
            assert!(err.to_string().contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn responses_have_one_key() {
        assert_eq!(Response::ok("done").to_line(), r#"{"ok":"done"}"#);
        assert_eq!(Response::error("no").to_line(), r#"{"error":"no"}"#);
        assert_eq!(Response::Lagged { missed: 3 }.to_line(), r#"{"lagged":3}"#);
        let s = Response::Status(Status::default());
        assert_eq!(s.to_line(), r#"{"status":{"instances":[]}}"#);
        assert_eq!(Response::parse_line(s.to_line().as_bytes()).ok(), Some(s));
    }
}
