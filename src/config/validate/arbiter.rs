//! Validation of `[arbiter]` and of the instances' `arbiter` / `arbiter-key`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::super::arbiter::{Arbiter, ArbiterTls, OnLoss};
use super::super::defaults;
use super::super::raw::{RawArbiter, RawInstance, S};
use super::keys::host_port;
use super::{join, Cx};

/// Longest lease TTL accepted (etcd's own maximum is larger; an hour is already far
/// beyond any useful failover time).
const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// What an instance asks of the arbiter: `(arbiter, arbiter-key)`.
pub(super) type InstanceArbiter = (bool, Option<String>);

impl Cx<'_> {
    pub(super) fn arbiter(&mut self, raw: &S<RawArbiter>) -> Option<Arbiter> {
        let p = "arbiter";
        let table = raw.span();
        let r = raw.get_ref();
        let before = self.errors.len();
        let mut any_https = false;
        let mut any_http = false;
        let endpoints = match &r.etcd_endpoints {
            None => {
                self.missing(
                    &table,
                    p,
                    "etcd-endpoints",
                    "the etcd members, like etcd-endpoints = [\"http://192.0.2.31:2379\"]",
                );
                Vec::new()
            }
            Some(list) if list.get_ref().is_empty() => {
                self.err(
                    list.span(),
                    join(p, "etcd-endpoints"),
                    "etcd-endpoints must list at least one URL, like [\"http://192.0.2.31:2379\"]"
                        .to_owned(),
                );
                Vec::new()
            }
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for v in list.get_ref() {
                    let https = self.checked(v, p, "etcd-endpoints", |s| match check_endpoint(s) {
                        Ok(_) if out.contains(s) => {
                            Err(format!("etcd-endpoints: {s:?} is listed twice"))
                        }
                        Ok(https) => Ok(https),
                        Err(why) => Err(format!("etcd-endpoints: {s:?} {why}")),
                    });
                    if let Some(https) = https {
                        any_https |= https;
                        any_http |= !https;
                        out.push(v.get_ref().clone());
                    }
                }
                out
            }
        };
        let lease_ttl = match &r.lease_ttl {
            None => Some(defaults::LEASE_TTL),
            Some(v) => self.duration(v, p, "lease-ttl").and_then(|d| {
                self.checked(v, p, "lease-ttl", |s| {
                    // etcd leases are whole seconds.
                    if d < Duration::from_secs(1) || d > MAX_LEASE_TTL || d.subsec_nanos() != 0 {
                        Err(format!("lease-ttl must be whole seconds, 1s..=1h (etcd leases are whole seconds), got {s:?}"))
                    } else {
                        Ok(d)
                    }
                })
            }),
        };
        let key_prefix = match &r.key_prefix {
            None => Some(defaults::KEY_PREFIX.to_owned()),
            Some(v) => self.checked(v, p, "key-prefix", |s| match check_key(s) {
                Ok(()) if s.ends_with('/') => Err(format!(
                    "key-prefix must not end with '/' (the key is <key-prefix>/<instance name>), got {s:?}"
                )),
                Ok(()) => Ok(s.clone()),
                Err(why) => Err(format!("key-prefix {why}, got {s:?}")),
            }),
        };
        let on_loss = match &r.on_loss {
            None => Some(defaults::ON_LOSS),
            Some(v) => self.checked(v, p, "on-loss", |s| match s.as_str() {
                "release" => Ok(OnLoss::Release),
                "hold" => Ok(OnLoss::Hold),
                other => Err(format!(
                    "on-loss must be \"release\" or \"hold\", got {other:?}"
                )),
            }),
        };
        let path = |cx: &mut Self, v: &Option<S<String>>, key: &str| -> Option<PathBuf> {
            v.as_ref()
                .and_then(|v| cx.abs_path(v, &join(p, key)).or(Some(PathBuf::new())))
        };
        let ca = path(self, &r.tls_ca, "tls-ca");
        let cert = path(self, &r.tls_cert, "tls-cert");
        let key = path(self, &r.tls_key, "tls-key");
        let tls = match (&r.tls_cert, &r.tls_key) {
            (Some(c), None) => {
                self.err(
                    c.span(),
                    join(p, "tls-cert"),
                    "tls-cert needs tls-key (the client certificate's private key)".to_owned(),
                );
                None
            }
            (None, Some(k)) => {
                self.err(
                    k.span(),
                    join(p, "tls-key"),
                    "tls-key needs tls-cert (the client certificate)".to_owned(),
                );
                None
            }
            _ => match (ca, &r.tls_ca) {
                (Some(ca), _) => Some(ArbiterTls {
                    ca,
                    client: cert.zip(key),
                }),
                (None, _) => {
                    if let Some(c) = &r.tls_cert {
                        self.err(
                            c.span(),
                            join(p, "tls-cert"),
                            "tls-cert needs tls-ca (the CA that signed the etcd servers' certificates)"
                                .to_owned(),
                        );
                    }
                    None
                }
            },
        };
        if let Some(list) = &r.etcd_endpoints {
            if tls.is_some() && any_http {
                self.err(
                    list.span(),
                    join(p, "etcd-endpoints"),
                    "etcd-endpoints: with tls-ca set, every endpoint must be https://".to_owned(),
                );
            } else if tls.is_none() && any_https && r.tls_ca.is_none() {
                self.err(
                    list.span(),
                    join(p, "etcd-endpoints"),
                    "etcd-endpoints: https:// endpoints need tls-ca (the CA that signed the etcd servers' certificates)".to_owned(),
                );
            }
        }
        let auth = match (&r.username, &r.password_file) {
            (None, None) => None,
            (Some(u), Some(f)) => {
                let name = u.get_ref();
                if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    self.err(
                        u.span(),
                        join(p, "username"),
                        format!("username must be a non-empty etcd user name without spaces, got {name:?}"),
                    );
                }
                self.abs_path(f, &join(p, "password-file"))
                    .map(|f| (name.clone(), f))
            }
            (Some(u), None) => {
                self.err(
                    u.span(),
                    join(p, "username"),
                    "username needs password-file (a file holding the etcd user's password)"
                        .to_owned(),
                );
                None
            }
            (None, Some(f)) => {
                self.err(
                    f.span(),
                    join(p, "password-file"),
                    "password-file needs username".to_owned(),
                );
                None
            }
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Arbiter {
            etcd_endpoints: endpoints,
            lease_ttl: lease_ttl?,
            key_prefix: key_prefix?,
            on_loss: on_loss?,
            tls,
            auth,
        })
    }

    /// `arbiter` / `arbiter-key` of every instance: needs an `[arbiter]` section, and no
    /// two instances may share a key. `names` are the instance names (None if invalid).
    pub(super) fn instance_arbiters(
        &mut self,
        raw: &[S<RawInstance>],
        names: &[Option<String>],
        section: Option<&Arbiter>,
        section_present: bool,
    ) -> Vec<InstanceArbiter> {
        let mut out = Vec::new();
        let mut keys: HashMap<String, usize> = HashMap::new();
        for (i, inst) in raw.iter().enumerate() {
            let p = format!("instance[{i}]");
            let r = inst.get_ref();
            let on = r.arbiter.as_ref().is_some_and(|v| *v.get_ref());
            if let (Some(v), true, false) = (&r.arbiter, on, section_present) {
                self.err(
                    v.span(),
                    join(&p, "arbiter"),
                    "arbiter = true needs an [arbiter] section with etcd-endpoints".to_owned(),
                );
            }
            if r.address_owner.as_ref().is_some_and(|v| *v.get_ref()) && on {
                if let Some(v) = &r.arbiter {
                    self.err(
                        v.span(),
                        join(&p, "arbiter"),
                        "an address owner cannot use the arbiter: its VIPs are its own addresses"
                            .to_owned(),
                    );
                }
            }
            let mut key = None;
            if let Some(k) = &r.arbiter_key {
                if !on {
                    self.err(
                        k.span(),
                        join(&p, "arbiter-key"),
                        "arbiter-key has no effect without arbiter = true".to_owned(),
                    );
                } else if let Err(why) = check_key(k.get_ref()) {
                    self.err(
                        k.span(),
                        join(&p, "arbiter-key"),
                        format!("arbiter-key {why}, got {:?}", k.get_ref()),
                    );
                } else {
                    key = Some(k.get_ref().clone());
                }
            }
            if on {
                if let (Some(a), Some(Some(name))) = (section, names.get(i)) {
                    let full = a.key_for(name, key.as_deref());
                    let span = match (&r.arbiter_key, &r.arbiter) {
                        (Some(k), _) => k.span(),
                        (None, Some(a)) => a.span(),
                        (None, None) => inst.span(),
                    };
                    if let Some(line) = keys.get(&full) {
                        self.err(
                            span,
                            join(&p, "arbiter-key"),
                            format!(
                                "etcd key {full:?} is already used by the instance at line {line}: each instance needs its own key"
                            ),
                        );
                    } else {
                        keys.insert(full, self.line_of(&inst.span()));
                    }
                }
            }
            out.push((on, key));
        }
        out
    }
}

/// `http://HOST:PORT` or `https://HOST:PORT` (HOST a name, IPv4 or [IPv6]; no path).
/// Returns whether it is https.
fn check_endpoint(url: &str) -> Result<bool, &'static str> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err("must start with http:// or https://");
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("must be only scheme://HOST:PORT (no path, query or user)");
    }
    match host_port(rest, "needs a host name or address")? {
        None => Err("needs a port, like :2379"),
        Some(_) => Ok(https),
    }
}

/// An etcd key we write: starts with '/', printable, no spaces, at most 256 bytes.
fn check_key(key: &str) -> Result<(), &'static str> {
    if !key.starts_with('/') {
        return Err("must start with '/'");
    }
    if key.len() > 256 {
        return Err("must be at most 256 bytes");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    if key.contains("//") {
        return Err("must not contain an empty path segment (\"//\")");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(check_endpoint("http://192.0.2.31:2379"), Ok(false));
        assert_eq!(check_endpoint("https://etcd1.example:2379/"), Ok(true));
        assert_eq!(check_endpoint("http://[2001:db8::31]:2379"), Ok(false));
        for bad in [
            "192.0.2.31:2379",
            "http://192.0.2.31",
            "http://192.0.2.31:0",
            "http://192.0.2.31:2379/v3",
            "http://:2379",
            "unix:///run/etcd.sock",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(check_key("/vipd").is_ok());
        assert!(check_key("/vipd/web").is_ok());
        for bad in ["vipd", "/a b", "/a//b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
