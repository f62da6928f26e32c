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

/// Declares the tables as written in TOML, each field `pub(super)`: every key kebab-case;
/// an unknown key an error (serde names the allowed ones); every key optional (a missing
/// one is reported by validation, with the others) and kept with its location. A key
/// written `key: T` is `Option<S<T>>`, `key: [T]` an array `Option<SList<T>>`, and
/// `key: {T}` an array of tables (`[[key]]`) `Vec<S<T>>`, empty when absent.
macro_rules! raw_tables {
    ($(
        $name:ident {
            $( $(#[$attr:meta])* $field:ident: $kind:tt, )*
        }
    )*) => {$(
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
        pub(super) struct $name {
            $( $(#[$attr])* pub(super) $field: raw_tables!(@key $kind), )*
        }
    )*};
    (@key [$t:ty]) => { Option<SList<$t>> };
    (@key {$t:ty}) => { Vec<S<$t>> };
    (@key $t:ty) => { Option<S<$t>> };
}

raw_tables! {
    RawConfig {
        control_socket: String,
        control_group: String,
        metrics_listen: String,
        state_dir: String,
        startup_delay: String,
        #[serde(default, rename = "instance")]
        instances: {RawInstance},
        #[serde(default, rename = "sync-group")]
        sync_groups: {RawSyncGroup},
        arbiter: RawArbiter,
    }

    RawArbiter {
        etcd_endpoints: [String],
        lease_ttl: String,
        key_prefix: String,
        on_loss: String,
        tls_ca: String,
        tls_cert: String,
        tls_key: String,
        username: String,
        password_file: String,
    }

    RawInstance {
        name: String,
        interface: String,
        vrid: i64,
        priority: i64,
        address_owner: bool,
        advert_interval: String,
        version: i64,
        preempt: bool,
        preempt_delay: String,
        vips: [String],
        unicast_peers: [String],
        source_address: String,
        checksum_pseudo_header: bool,
        announce_count: i64,
        announce_spacing: String,
        announce_refresh: String,
        notify: RawNotify,
        arbiter: bool,
        arbiter_key: String,
        virtual_mac: bool,
        #[serde(default, rename = "track")]
        tracks: {RawTrack},
        bfd: RawBfd,
    }

    RawBfd {
        peers: [String],
        interval: String,
        multiplier: i64,
    }

    RawNotify {
        master: [String],
        backup: [String],
        fault: [String],
        any: [String],
        stop: [String],
        timeout: String,
        keep_capabilities: bool,
    }

    RawTrack {
        kind: String,
        name: String,
        url: String,
        expect_status: [StatusItem],
        address: String,
        command: [String],
        keep_capabilities: bool,
        interface: String,
        process: String,
        args: [String],
        args_match: String,
        min_count: i64,
        max_count: i64,
        path: String,
        interval: String,
        timeout: String,
        rise: i64,
        fall: i64,
        weight: i64,
        peer: String,
        multiplier: i64,
    }

    RawSyncGroup {
        name: String,
        instances: [String],
        notify: RawNotify,
    }
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
