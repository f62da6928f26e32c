//! From the raw, located TOML values to the checked domain types, collecting every
//! problem with its place.
//!
//! One module per section: [`instance`], [`track`], [`notify`], [`sync_group`],
//! [`bfd`] and [`arbiter`]; [`keys`] holds the value checks they share and
//! [`diagnostics`] turns positions and serde errors into [`Diagnostic`]s. Defaults live
//! in `config/defaults.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::defaults;
use super::raw::RawConfig;
use super::{Config, ConfigErrors, Diagnostic, Family, Process};
use keys::is_v6_link_local;

mod arbiter;
mod bfd;
mod diagnostics;
mod instance;
mod keys;
mod notify;
mod sync_group;
mod track;

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        text,
        origin,
        errors: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(ConfigErrors(vec![cx.toml_error(&e)])),
    };
    let config = cx.config(&raw);
    if cx.errors.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let mut errors = cx.errors;
    errors.sort_by_key(|d| (d.line, d.col));
    if errors.is_empty() {
        // Not reachable: every `None` above is accompanied by a diagnostic.
        errors.push(Diagnostic {
            origin: origin.to_owned(),
            line: 0,
            col: 0,
            key_path: String::new(),
            message: "invalid configuration".to_owned(),
        });
    }
    Err(ConfigErrors(errors))
}

/// What cross-instance checks need to know about an instance, also when it is invalid.
struct Seen {
    name: Option<(String, Range<usize>)>,
    interface: Option<String>,
    vrid: Option<u8>,
    family: Option<Family>,
    vips: Vec<(IpAddr, Range<usize>)>,
    table: Range<usize>,
    /// Where `vrid` is written (the table when missing).
    vrid_span: Range<usize>,
    /// `instance[N]`.
    path: String,
}

impl Seen {
    /// The instance's name, or "" when it has none.
    fn name_or_empty(&self) -> &str {
        self.name.as_ref().map_or("", |(n, _)| n.as_str())
    }
}

struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
    errors: Vec<Diagnostic>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Cx<'_> {
    fn config(&mut self, raw: &RawConfig) -> Option<Config> {
        let control_socket = match &raw.control_socket {
            Some(v) => self.abs_path(v, "control-socket"),
            None => Some(PathBuf::from(defaults::CONTROL_SOCKET)),
        };
        let state_dir = match &raw.state_dir {
            Some(v) => self.abs_path(v, "state-dir"),
            None => Some(PathBuf::from(defaults::STATE_DIR)),
        };
        let control_group = match &raw.control_group {
            None => Some(None),
            Some(v) => {
                let s = v.get_ref();
                let ok = !s.is_empty()
                    && s.len() <= 32
                    && !s.starts_with('-')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if ok {
                    Some(Some(s.clone()))
                } else {
                    self.err(
                        v.span(),
                        "control-group".to_owned(),
                        format!(
                            "control-group must be a group name (1 to 32 letters, digits, '_', '-' or '.'), got {s:?}"
                        ),
                    );
                    None
                }
            }
        };
        let metrics_listen = match &raw.metrics_listen {
            None => Some(None),
            Some(v) => match SocketAddr::from_str(v.get_ref()) {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    self.err(
                        v.span(),
                        "metrics-listen".to_owned(),
                        format!(
                            "metrics-listen must be an IP address and port like \"127.0.0.1:9638\" or \"[::1]:9638\", got {:?}",
                            v.get_ref()
                        ),
                    );
                    None
                }
            },
        };

        let startup_delay = self.bounded_or(
            raw.startup_delay.as_ref(),
            "",
            "startup-delay",
            Duration::ZERO..=Duration::from_secs(3600),
            defaults::STARTUP_DELAY,
        );

        let mut instances = Vec::new();
        let mut seen = Vec::new();
        let mut all_ok = true;
        for (i, inst) in raw.instances.iter().enumerate() {
            let (built, s) = self.instance(i, inst);
            match built {
                Some(b) => instances.push(b),
                None => all_ok = false,
            }
            seen.push(s);
        }
        self.cross_instance(&seen);
        let sync_groups = self.sync_groups(&raw.sync_groups, &seen);
        let arbiter = raw.arbiter.as_ref().map(|a| self.arbiter(a));
        let names: Vec<Option<String>> = seen
            .iter()
            .map(|s| s.name.clone().map(|(n, _)| n))
            .collect();
        let per_instance = self.instance_arbiters(
            &raw.instances,
            &names,
            arbiter.as_ref().and_then(|a| a.as_ref()),
            raw.arbiter.is_some(),
        );
        if all_ok {
            for (inst, (on, key)) in instances.iter_mut().zip(per_instance) {
                inst.arbiter = on;
                inst.arbiter_key = key;
            }
        }

        Some(Config {
            process: Process {
                control_socket: control_socket?,
                control_group: control_group?,
                metrics_listen: metrics_listen?,
                state_dir: state_dir?,
            },
            startup_delay: startup_delay?,
            instances: if all_ok { instances } else { return None },
            sync_groups: sync_groups?,
            arbiter: match arbiter {
                None => None,
                Some(a) => Some(a?),
            },
        })
    }

    fn cross_instance(&mut self, seen: &[Seen]) {
        // Unique instance names.
        let mut names: HashMap<&str, &Range<usize>> = HashMap::new();
        for s in seen {
            if let Some((name, span)) = &s.name {
                let at = (span.clone(), join(&s.path, "name"));
                self.unique(&mut names, name, span, at, |cx, first| {
                    format!(
                        "instance name {name:?} is already used by the instance at line {}: names must be unique",
                        cx.line_of(first)
                    )
                });
            }
        }
        // Unique (interface, vrid, family): each is one virtual router on the link.
        let mut routers: HashMap<(&str, u8, Family), &Seen> = HashMap::new();
        for s in seen {
            let (Some(ifname), Some(vrid), Some(family)) = (&s.interface, s.vrid, s.family) else {
                continue;
            };
            let at = (s.vrid_span.clone(), join(&s.path, "vrid"));
            self.unique(&mut routers, (ifname, vrid, family), s, at, |cx, first| {
                format!(
                    "vrid {vrid} on {ifname} ({family}) is already used by instance {:?} at line {}: each (interface, vrid, family) can be configured once",
                    first.name_or_empty(),
                    cx.line_of(&first.table)
                )
            });
        }
        // A VIP belongs to one instance (link-local VIPs: one per interface).
        // Key: the address and, for link-local ones, the interface.
        type VipKey<'s> = (IpAddr, Option<&'s str>);
        let mut vips: HashMap<VipKey<'_>, (&Seen, &Range<usize>)> = HashMap::new();
        for s in seen {
            for (addr, span) in &s.vips {
                let scope = if is_v6_link_local(addr) {
                    Some(s.interface.as_deref().unwrap_or(""))
                } else {
                    None
                };
                let at = (span.clone(), join(&s.path, "vips"));
                self.unique(&mut vips, (*addr, scope), (s, span), at, |cx, (first, first_span)| {
                    format!(
                        "VIP {addr} is already in instance {:?} (line {}): a VIP belongs to one instance",
                        first.name_or_empty(),
                        cx.line_of(first_span)
                    )
                });
            }
        }
    }
}
