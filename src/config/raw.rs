//! The TOML schema as written: every value keeps its location, every key is optional
//! here (missing required keys are reported by validation, all at once), and unknown
//! keys are rejected by serde.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A value with its byte range in the source.
pub(super) type S<T> = Spanned<T>;
/// A spanned array of spanned values.
pub(super) type SList<T> = Spanned<Vec<Spanned<T>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawConfig {
    pub(super) control_socket: Option<S<String>>,
    pub(super) control_group: Option<S<String>>,
    pub(super) metrics_listen: Option<S<String>>,
    pub(super) state_dir: Option<S<String>>,
    pub(super) startup_delay: Option<S<String>>,
    #[serde(default, rename = "instance")]
    pub(super) instances: Vec<S<RawInstance>>,
    #[serde(default, rename = "sync-group")]
    pub(super) sync_groups: Vec<S<RawSyncGroup>>,
    pub(super) arbiter: Option<S<RawArbiter>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawArbiter {
    pub(super) etcd_endpoints: Option<SList<String>>,
    pub(super) lease_ttl: Option<S<String>>,
    pub(super) key_prefix: Option<S<String>>,
    pub(super) on_loss: Option<S<String>>,
    pub(super) tls_ca: Option<S<String>>,
    pub(super) tls_cert: Option<S<String>>,
    pub(super) tls_key: Option<S<String>>,
    pub(super) username: Option<S<String>>,
    pub(super) password_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawInstance {
    pub(super) name: Option<S<String>>,
    pub(super) interface: Option<S<String>>,
    pub(super) vrid: Option<S<i64>>,
    pub(super) priority: Option<S<i64>>,
    pub(super) address_owner: Option<S<bool>>,
    pub(super) advert_interval: Option<S<String>>,
    pub(super) version: Option<S<i64>>,
    pub(super) preempt: Option<S<bool>>,
    pub(super) preempt_delay: Option<S<String>>,
    pub(super) vips: Option<SList<String>>,
    pub(super) unicast_peers: Option<SList<String>>,
    pub(super) source_address: Option<S<String>>,
    pub(super) checksum_pseudo_header: Option<S<bool>>,
    pub(super) announce_count: Option<S<i64>>,
    pub(super) announce_spacing: Option<S<String>>,
    pub(super) announce_refresh: Option<S<String>>,
    pub(super) notify: Option<S<RawNotify>>,
    pub(super) arbiter: Option<S<bool>>,
    pub(super) arbiter_key: Option<S<String>>,
    pub(super) virtual_mac: Option<S<bool>>,
    #[serde(default, rename = "track")]
    pub(super) tracks: Vec<S<RawTrack>>,
    pub(super) bfd: Option<S<RawBfd>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawBfd {
    pub(super) peers: Option<SList<String>>,
    pub(super) interval: Option<S<String>>,
    pub(super) multiplier: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawNotify {
    pub(super) master: Option<SList<String>>,
    pub(super) backup: Option<SList<String>>,
    pub(super) fault: Option<SList<String>>,
    pub(super) any: Option<SList<String>>,
    pub(super) stop: Option<SList<String>>,
    pub(super) timeout: Option<S<String>>,
    pub(super) keep_capabilities: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawTrack {
    pub(super) kind: Option<S<String>>,
    pub(super) name: Option<S<String>>,
    pub(super) url: Option<S<String>>,
    pub(super) expect_status: Option<SList<StatusItem>>,
    pub(super) address: Option<S<String>>,
    pub(super) command: Option<SList<String>>,
    pub(super) keep_capabilities: Option<S<bool>>,
    pub(super) interface: Option<S<String>>,
    pub(super) process: Option<S<String>>,
    pub(super) args: Option<SList<String>>,
    pub(super) args_match: Option<S<String>>,
    pub(super) min_count: Option<S<i64>>,
    pub(super) max_count: Option<S<i64>>,
    pub(super) path: Option<S<String>>,
    pub(super) interval: Option<S<String>>,
    pub(super) timeout: Option<S<String>>,
    pub(super) rise: Option<S<i64>>,
    pub(super) fall: Option<S<i64>>,
    pub(super) weight: Option<S<i64>>,
    pub(super) peer: Option<S<String>>,
    pub(super) multiplier: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(super) struct RawSyncGroup {
    pub(super) name: Option<S<String>>,
    pub(super) instances: Option<SList<String>>,
    pub(super) notify: Option<S<RawNotify>>,
}

/// One entry of `expect-status`: `200` or `"200-299"` (or `"204"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StatusItem {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for StatusItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StatusItem;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code like 200 or a range like \"200-299\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusItem, E> {
                Ok(StatusItem::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusItem, E> {
                Ok(StatusItem::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusItem, E> {
                Ok(StatusItem::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
