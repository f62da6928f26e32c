//! The `[arbiter]` section: an etcd cluster that decides which host may hold the VIPs
//! (see `src/arbiter` and docs/architecture.md, "The arbiter").

use std::path::PathBuf;
use std::time::Duration;

/// What a holder does when it cannot renew its lease (`on-loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLoss {
    /// Drop the VIPs before the lease can expire at the server (default: never two
    /// holders).
    Release,
    /// Keep the VIPs while VRRP says master (gives up the guarantee while etcd is
    /// unreachable).
    Hold,
}

impl OnLoss {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnLoss::Release => "release",
            OnLoss::Hold => "hold",
        }
    }
}

/// TLS to etcd (`tls-ca`, `tls-cert`, `tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbiterTls {
    /// CA certificate (PEM) that signed the etcd servers' certificates.
    pub ca: PathBuf,
    /// Client certificate and its key (PEM), when etcd asks for client certificates.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A validated `[arbiter]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arbiter {
    /// `etcd-endpoints`: `http://HOST:PORT` or `https://HOST:PORT` (at least one).
    pub etcd_endpoints: Vec<String>,
    /// `lease-ttl`: whole seconds, >= 1 s (default 2 s). etcd may grant a longer TTL
    /// (its minimum); the daemon uses the granted one.
    pub lease_ttl: Duration,
    /// `key-prefix` (default `/vipd`): an instance's key is `<key-prefix>/<name>`.
    pub key_prefix: String,
    /// `on-loss` (default `release`).
    pub on_loss: OnLoss,
    /// TLS settings; required for `https://` endpoints.
    pub tls: Option<ArbiterTls>,
    /// etcd user name and the file holding its password (`username`, `password-file`).
    pub auth: Option<(String, PathBuf)>,
}

/// Default `key-prefix`.
pub const DEFAULT_KEY_PREFIX: &str = super::defaults::KEY_PREFIX;
/// Default `lease-ttl`.
pub const DEFAULT_LEASE_TTL: Duration = super::defaults::LEASE_TTL;

impl Arbiter {
    /// The etcd key of an instance: `arbiter-key` if given, else `<key-prefix>/<name>`.
    pub fn key_for(&self, instance: &str, arbiter_key: Option<&str>) -> String {
        match arbiter_key {
            Some(k) => k.to_owned(),
            None => format!("{}/{}", self.key_prefix, instance),
        }
    }
}
