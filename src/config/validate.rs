//! From the raw, located TOML values to the checked domain types, collecting every
//! problem with its place.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use toml::de::{DeTable, DeValue};

use super::duration::{format_duration, parse_duration};
use super::raw::{RawConfig, RawInstance, RawNotify, RawSyncGroup, RawTrack, SList, StatusItem, S};
use super::{
    Announce, Config, ConfigErrors, Diagnostic, Family, Instance, SyncGroup,
    DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR,
};
use crate::proto::{Centis, Version};
use crate::track::{ArgsMatch, CheckKind, CheckSpec, NotifySpec, ProcessMatch};

/// Largest number of VIPs: Count IPvX Addrs is 8 bits (RFC 5798 §5.2.6), and an IPv6
/// advert must fit a 1500-byte MTU (40 + 8 + 16 * 90 = 1488).
const MAX_VIPS_V4: usize = 255;

#[path = "validate_bfd.rs"]
mod bfd;
const MAX_VIPS_V6: usize = 90;

mod arbiter;

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
    /// 1-based line and column (in characters) of a byte offset.
    fn pos(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn err(&mut self, span: Range<usize>, path: String, message: String) {
        let (line, col) = self.pos(span.start);
        self.errors.push(Diagnostic {
            origin: self.origin.to_owned(),
            line,
            col,
            key_path: path,
            message,
        });
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.pos(span.start).0
    }

    fn toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let span = e.span();
        let (line, col) = span.as_ref().map_or((1, 1), |s| self.pos(s.start));
        let key_path = span
            .as_ref()
            .and_then(|s| key_path_at(self.text, s.start))
            .unwrap_or_default();
        let mut message = tidy_serde_message(e.message());
        let last = key_path.rsplit('.').next().unwrap_or("");
        let last = last.split('[').next().unwrap_or("");
        if message.contains("expected an array")
            && matches!(last, "instance" | "sync-group" | "track")
        {
            message.push_str(&format!(" (write each entry as [[{}]])", {
                if last == "track" {
                    "instance.track"
                } else {
                    last
                }
            }));
        }
        Diagnostic {
            origin: self.origin.to_owned(),
            line,
            col,
            key_path,
            message,
        }
    }

    fn missing(&mut self, table: &Range<usize>, prefix: &str, key: &str, what: &str) {
        // Point at the start of the table (its header line for [[...]] tables).
        self.err(
            table.clone(),
            join(prefix, key),
            format!("missing key `{key}`: {what}"),
        );
    }

    fn duration(&mut self, v: &S<String>, prefix: &str, key: &str) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(v.span(), join(prefix, key), format!("{key}: {e}"));
                None
            }
        }
    }

    /// A duration within `lo..=hi` (after the syntax check).
    fn duration_in(
        &mut self,
        v: &S<String>,
        prefix: &str,
        key: &str,
        lo: Duration,
        hi: Duration,
    ) -> Option<Duration> {
        let d = self.duration(v, prefix, key)?;
        if d < lo || d > hi {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must be {}..={}, got {:?}",
                    format_duration(lo),
                    format_duration(hi),
                    v.get_ref()
                ),
            );
            return None;
        }
        Some(d)
    }

    fn int_in(&mut self, v: &S<i64>, prefix: &str, key: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.err(
                v.span(),
                join(prefix, key),
                format!("{key} must be {lo}..={hi}, got {n}"),
            );
            return None;
        }
        Some(n)
    }

    /// An absolute path (control-socket, state-dir).
    fn abs_path(&mut self, v: &S<String>, key: &str) -> Option<PathBuf> {
        let s = v.get_ref();
        if !s.starts_with('/') || s.contains('\0') {
            self.err(
                v.span(),
                key.to_owned(),
                format!("{key} must be an absolute path, got {s:?}"),
            );
            return None;
        }
        Some(PathBuf::from(s))
    }

    /// Program and arguments with an absolute program path (run without a shell).
    fn command(&mut self, v: &SList<String>, prefix: &str, key: &str) -> Option<Vec<String>> {
        let list = v.get_ref();
        let Some(program) = list.first() else {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must list a program and its arguments, like [\"/usr/local/bin/prog\", \"arg\"], got an empty array"
                ),
            );
            return None;
        };
        let p = program.get_ref();
        if !p.starts_with('/') || p.contains('\0') {
            self.err(
                program.span(),
                join(prefix, key),
                format!(
                    "{key}: the program must be an absolute path (it runs without a shell and without PATH), got {p:?}"
                ),
            );
            return None;
        }
        if let Some(bad) = list.iter().find(|a| a.get_ref().contains('\0')) {
            self.err(
                bad.span(),
                join(prefix, key),
                format!("{key}: arguments cannot contain NUL characters"),
            );
            return None;
        }
        Some(list.iter().map(|a| a.get_ref().clone()).collect())
    }

    fn ifname(&mut self, v: &S<String>, prefix: &str, key: &str) -> Option<String> {
        let s = v.get_ref();
        // Linux dev_valid_name(): 1..IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or space.
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && !s
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if !ok {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must be a Linux interface name (1 to 15 bytes, no '/', ':' or spaces), got {s:?}"
                ),
            );
            return None;
        }
        Some(s.clone())
    }

    fn config(&mut self, raw: &RawConfig) -> Option<Config> {
        let control_socket = match &raw.control_socket {
            Some(v) => self.abs_path(v, "control-socket"),
            None => Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        };
        let state_dir = match &raw.state_dir {
            Some(v) => self.abs_path(v, "state-dir"),
            None => Some(PathBuf::from(DEFAULT_STATE_DIR)),
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

        let startup_delay = match &raw.startup_delay {
            None => Some(Duration::ZERO),
            Some(v) => self.duration_in(
                v,
                "",
                "startup-delay",
                Duration::ZERO,
                Duration::from_secs(3600),
            ),
        };

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
            control_socket: control_socket?,
            control_group: control_group?,
            metrics_listen: metrics_listen?,
            state_dir: state_dir?,
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
                if let Some(first) = names.get(name.as_str()) {
                    let line = self.line_of(first);
                    self.err(
                        span.clone(),
                        join(&s.path, "name"),
                        format!(
                            "instance name {name:?} is already used by the instance at line {line}: names must be unique"
                        ),
                    );
                } else {
                    names.insert(name, span);
                }
            }
        }
        // Unique (interface, vrid, family): each is one virtual router on the link.
        let mut routers: HashMap<(&str, u8, Family), &Seen> = HashMap::new();
        for s in seen {
            let (Some(ifname), Some(vrid), Some(family)) = (&s.interface, s.vrid, s.family) else {
                continue;
            };
            if let Some(first) = routers.get(&(ifname.as_str(), vrid, family)) {
                let line = self.line_of(&first.table);
                let other = first.name.as_ref().map_or("", |(n, _)| n.as_str());
                self.err(
                    s.vrid_span.clone(),
                    join(&s.path, "vrid"),
                    format!(
                        "vrid {vrid} on {ifname} ({family}) is already used by instance {other:?} at line {line}: each (interface, vrid, family) can be configured once"
                    ),
                );
            } else {
                routers.insert((ifname, vrid, family), s);
            }
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
                if let Some((first, first_span)) = vips.get(&(*addr, scope)) {
                    let line = self.line_of(first_span);
                    let other = first.name.as_ref().map_or("", |(n, _)| n.as_str());
                    self.err(
                        span.clone(),
                        join(&s.path, "vips"),
                        format!(
                            "VIP {addr} is already in instance {other:?} (line {line}): a VIP belongs to one instance"
                        ),
                    );
                } else {
                    vips.insert((*addr, scope), (s, span));
                }
            }
        }
    }

    fn sync_groups(&mut self, raw: &[S<RawSyncGroup>], seen: &[Seen]) -> Option<Vec<SyncGroup>> {
        let known: HashSet<&str> = seen
            .iter()
            .filter_map(|s| s.name.as_ref().map(|(n, _)| n.as_str()))
            .collect();
        let mut groups = Vec::new();
        let mut ok = true;
        let mut group_names: HashMap<String, usize> = HashMap::new();
        let mut member_of: HashMap<String, (String, usize)> = HashMap::new();
        for (i, g) in raw.iter().enumerate() {
            let p = format!("sync-group[{i}]");
            let before = self.errors.len();
            let r = g.get_ref();
            let name = match &r.name {
                None => {
                    self.missing(&g.span(), &p, "name", "a sync group needs a unique name");
                    None
                }
                Some(v) => {
                    let n = self.object_name(v, &p);
                    if let Some(n) = &n {
                        if let Some(line) = group_names.get(n) {
                            self.err(
                                v.span(),
                                join(&p, "name"),
                                format!(
                                    "sync-group name {n:?} is already used at line {line}: names must be unique"
                                ),
                            );
                        } else {
                            group_names.insert(n.clone(), self.line_of(&v.span()));
                        }
                    }
                    n
                }
            };
            let gname = name.clone().unwrap_or_default();
            let mut members = Vec::new();
            match &r.instances {
                None => self.missing(
                    &g.span(),
                    &p,
                    "instances",
                    "a sync group lists the names of its instances",
                ),
                Some(list) if list.get_ref().is_empty() => self.err(
                    list.span(),
                    join(&p, "instances"),
                    "instances must list at least one instance name".to_owned(),
                ),
                Some(list) => {
                    for m in list.get_ref() {
                        let n = m.get_ref();
                        if !known.contains(n.as_str()) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!(
                                    "sync-group member {n:?} is not an instance name (instances: {})",
                                    sorted_list(&known)
                                ),
                            );
                        } else if members.contains(n) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!("instance {n:?} is listed twice in this sync group"),
                            );
                        } else if let Some((other, line)) = member_of.get(n) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!(
                                    "instance {n:?} is already in sync group {other:?} (line {line}): an instance can be in at most one sync group"
                                ),
                            );
                        } else {
                            member_of.insert(n.clone(), (gname.clone(), self.line_of(&m.span())));
                            members.push(n.clone());
                        }
                    }
                }
            }
            let notify = self.notify(r.notify.as_ref(), &join(&p, "notify"), false);
            if self.errors.len() > before {
                ok = false;
                continue;
            }
            if let (Some(name), Some(notify)) = (name, notify) {
                groups.push(SyncGroup {
                    name,
                    instances: members,
                    notify,
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(groups)
    }

    /// Names of instances and sync groups.
    fn object_name(&mut self, v: &S<String>, prefix: &str) -> Option<String> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.chars().count() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                v.span(),
                join(prefix, "name"),
                format!("name must be 1 to 64 letters, digits, '-', '_' or '.', got {s:?}"),
            );
            return None;
        }
        Some(s.clone())
    }

    /// `instance`: the hooks of an instance (which may have a `stop` hook), not a group.
    fn notify(
        &mut self,
        raw: Option<&S<RawNotify>>,
        p: &str,
        instance: bool,
    ) -> Option<NotifySpec> {
        let mut spec = NotifySpec {
            timeout: Duration::from_secs(10),
            ..NotifySpec::default()
        };
        let Some(raw) = raw else {
            return Some(spec);
        };
        let r = raw.get_ref();
        let mut ok = true;
        for (key, src, dst) in [
            ("master", &r.master, &mut spec.master),
            ("backup", &r.backup, &mut spec.backup),
            ("fault", &r.fault, &mut spec.fault),
            ("any", &r.any, &mut spec.any),
            ("stop", &r.stop, &mut spec.stop),
        ] {
            if let Some(v) = src {
                match self.command(v, p, key) {
                    Some(c) => *dst = Some(c),
                    None => ok = false,
                }
            }
        }
        if let (Some(v), false) = (&r.stop, instance) {
            self.err(
                v.span(),
                join(p, "stop"),
                "a sync group has no stop hook (its members stop one by one): put stop in each [instance.notify]".to_owned(),
            );
            ok = false;
        }
        if let Some(t) = &r.timeout {
            match self.duration_in(
                t,
                p,
                "timeout",
                Duration::from_millis(1),
                Duration::from_secs(3600),
            ) {
                Some(d) => spec.timeout = d,
                None => ok = false,
            }
        }
        spec.keep_capabilities = r.keep_capabilities.as_ref().is_some_and(|k| *k.get_ref());
        ok.then_some(spec)
    }

    fn instance(&mut self, idx: usize, raw: &S<RawInstance>) -> (Option<Instance>, Seen) {
        let p = format!("instance[{idx}]");
        let table = raw.span();
        let r = raw.get_ref();
        let before = self.errors.len();
        let mut seen = Seen {
            name: None,
            interface: None,
            vrid: None,
            family: None,
            vips: Vec::new(),
            table: table.clone(),
            vrid_span: r.vrid.as_ref().map_or(table.clone(), |v| v.span()),
            path: p.clone(),
        };

        let name = match &r.name {
            None => {
                self.missing(
                    &table,
                    &p,
                    "name",
                    "each instance needs a unique name, like name = \"web\"",
                );
                None
            }
            Some(v) => {
                let n = self.object_name(v, &p);
                if let Some(n) = &n {
                    seen.name = Some((n.clone(), v.span()));
                }
                n
            }
        };
        let interface = match &r.interface {
            None => {
                self.missing(
                    &table,
                    &p,
                    "interface",
                    "the interface the virtual router runs on, like interface = \"eth0\"",
                );
                None
            }
            Some(v) => self.ifname(v, &p, "interface"),
        };
        seen.interface = interface.clone();
        let vrid = match &r.vrid {
            None => {
                self.missing(
                    &table,
                    &p,
                    "vrid",
                    "the Virtual Router ID 1..=255, the same on all routers of the group",
                );
                None
            }
            // RFC 5798 §5.2.3: VRID is 1..=255.
            Some(v) => self
                .int_in(v, &p, "vrid", 1, 255)
                .and_then(|n| u8::try_from(n).ok()),
        };
        seen.vrid = vrid;

        let address_owner = r.address_owner.as_ref().is_some_and(|v| *v.get_ref());
        // RFC 5798 §6.1: priority 255 is reserved for the address owner, 1..=254 for backups.
        let priority = match &r.priority {
            None => Some(if address_owner { 255 } else { 100 }),
            Some(v) => {
                let n = *v.get_ref();
                if address_owner {
                    if n == 255 {
                        Some(255u8)
                    } else {
                        self.err(
                            v.span(),
                            join(&p, "priority"),
                            format!(
                                "priority must be 255 with address-owner = true (or leave priority out), got {n}"
                            ),
                        );
                        None
                    }
                } else if n == 255 {
                    self.err(
                        v.span(),
                        join(&p, "priority"),
                        "priority 255 is only for the address owner: set address-owner = true (the VIPs must then be the interface's own addresses) or use 1..=254".to_owned(),
                    );
                    None
                } else if (1..=254).contains(&n) {
                    u8::try_from(n).ok()
                } else {
                    self.err(
                        v.span(),
                        join(&p, "priority"),
                        format!(
                            "priority must be 1..=254 (255 only with address-owner = true), got {n}"
                        ),
                    );
                    None
                }
            }
        };

        let version = match &r.version {
            None => Some(Version::V3),
            Some(v) => match *v.get_ref() {
                2 => Some(Version::V2),
                3 => Some(Version::V3),
                n => {
                    self.err(
                        v.span(),
                        join(&p, "version"),
                        format!("version must be 2 or 3, got {n}"),
                    );
                    None
                }
            },
        };

        // VIPs and the family.
        let vips = self.vips(r, &table, &p, vrid, &mut seen);
        let family = seen.family;

        // RFC 3768 (VRRPv2) is IPv4 only.
        if let (Some(Version::V2), Some(Family::V6), Some(v)) = (version, family, &r.version) {
            self.err(
                v.span(),
                join(&p, "version"),
                "version 2 (RFC 3768) is IPv4 only, but the vips are IPv6: use version = 3"
                    .to_owned(),
            );
        }

        let advert_interval = self.advert_interval(r, &p, version);

        let preempt = match &r.preempt {
            None => true,
            Some(v) => {
                if address_owner && !*v.get_ref() {
                    // RFC 5798 §6.1 Preempt_Mode: the owner (priority 255) always preempts.
                    self.err(
                        v.span(),
                        join(&p, "preempt"),
                        "preempt = false cannot apply to an address owner: it always preempts (RFC 5798 §6.1); remove the key".to_owned(),
                    );
                }
                *v.get_ref()
            }
        };
        let preempt_delay = match &r.preempt_delay {
            None => Some(Duration::ZERO),
            Some(v) => {
                let d = self.duration_in(
                    v,
                    &p,
                    "preempt-delay",
                    Duration::ZERO,
                    Duration::from_secs(3600),
                );
                if d.is_some() && !preempt {
                    self.err(
                        v.span(),
                        join(&p, "preempt-delay"),
                        "preempt-delay has no effect with preempt = false: remove one of them"
                            .to_owned(),
                    );
                }
                d
            }
        };

        let vip_addrs: Vec<IpAddr> = vips.iter().map(|n| n.addr()).collect();
        let unicast_peers = self.peers(r, &p, family, &vip_addrs);
        let source_address = self.source_address(r, &p, family, &vip_addrs, address_owner);

        // keepalived's v3_checksum_as_v2 / FRR's checksum-with-ipv4-pseudoheader: only the
        // VRRPv3-over-IPv4 send form is a choice (RFC 5798 §5.2.8, RFC 9568).
        let checksum_pseudo_header = match (&r.checksum_pseudo_header, version, family) {
            (Some(v), Some(Version::V3), Some(Family::V4)) => *v.get_ref(),
            (Some(v), Some(ver), Some(fam)) => {
                let why = if ver == Version::V2 {
                    "VRRPv2 never uses a pseudo-header"
                } else if fam == Family::V6 {
                    "IPv6 always uses one"
                } else {
                    ""
                };
                self.err(
                    v.span(),
                    join(&p, "checksum-pseudo-header"),
                    format!("checksum-pseudo-header applies only to version 3 over IPv4 ({why}): remove the key"),
                );
                false
            }
            (Some(v), _, _) => *v.get_ref(),
            (None, Some(Version::V2), _) => false,
            (None, _, _) => true,
        };

        let announce = self.announce(r, &p);
        let notify = self.notify(r.notify.as_ref(), &join(&p, "notify"), true);
        let bfd = self.bfd(r, &p, family, &vip_addrs, unicast_peers.as_deref());

        let mut tracks = Vec::new();
        let mut track_names: HashMap<String, usize> = HashMap::new();
        for (i, t) in r.tracks.iter().enumerate() {
            let tp = format!("{p}.track[{i}]");
            if address_owner {
                // RFC 5798 §6.1: the owner's priority is 255 and is not changed by tracking.
                self.err(
                    t.span(),
                    tp.clone(),
                    "an address owner cannot be tracked: its priority stays 255; remove the track or address-owner".to_owned(),
                );
                continue;
            }
            if let Some(spec) = self.track(t, &tp) {
                if let Some(line) = track_names.get(&spec.name) {
                    let span = t.get_ref().name.as_ref().map_or(t.span(), |n| n.span());
                    self.err(
                        span,
                        join(&tp, "name"),
                        format!(
                            "track name {:?} is already used in this instance at line {line}: give each track a unique name",
                            spec.name
                        ),
                    );
                } else {
                    track_names.insert(spec.name.clone(), self.line_of(&t.span()));
                    tracks.push(spec);
                }
            }
        }

        if self.errors.len() > before {
            return (None, seen);
        }
        let built = (|| {
            Some(Instance {
                name: name?,
                interface: interface?,
                vrid: vrid?,
                priority: priority?,
                address_owner,
                advert_interval: advert_interval?,
                version: version?,
                preempt,
                preempt_delay: preempt_delay?,
                family: family?,
                vips,
                unicast_peers: unicast_peers?,
                source_address: source_address?,
                checksum_pseudo_header,
                announce: announce?,
                tracks,
                notify: notify?,
                // Filled in by `config` (needs the [arbiter] section).
                arbiter: false,
                arbiter_key: None,
                bfd: bfd?,
            })
        })();
        (built, seen)
    }

    fn vips(
        &mut self,
        r: &RawInstance,
        table: &Range<usize>,
        p: &str,
        vrid: Option<u8>,
        seen: &mut Seen,
    ) -> Vec<IpNet> {
        let key = join(p, "vips");
        let Some(list) = &r.vips else {
            self.missing(
                table,
                p,
                "vips",
                "an instance needs at least one virtual address, like vips = [\"192.0.2.100/24\"]",
            );
            return Vec::new();
        };
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                key,
                "vips must list at least one address, like [\"192.0.2.100/24\"]".to_owned(),
            );
            return Vec::new();
        }
        let mut out: Vec<IpNet> = Vec::new();
        let mut family: Option<(Family, IpNet)> = None;
        let mut link_local_seen = false;
        for (i, v) in list.get_ref().iter().enumerate() {
            let s = v.get_ref();
            let net = match IpNet::from_str(s) {
                Ok(n) => n,
                Err(_) => match IpAddr::from_str(s) {
                    Ok(a) => IpNet::from(a),
                    Err(_) => {
                        self.err(
                            v.span(),
                            key.clone(),
                            format!(
                                "vips: {s:?} is not an address or address/prefix like \"192.0.2.100/24\" or \"2001:db8::100/64\""
                            ),
                        );
                        continue;
                    }
                },
            };
            let addr = net.addr();
            if let Some(why) = unusable_address(&addr) {
                self.err(
                    v.span(),
                    key.clone(),
                    format!("vips: {addr} cannot be a virtual address ({why})"),
                );
                continue;
            }
            let fam = Family::of(&addr);
            match &family {
                None => family = Some((fam, net)),
                Some((f, first)) if *f != fam => {
                    self.err(
                        v.span(),
                        key.clone(),
                        format!(
                            "vips: {net} is {fam} but {first} is {f}: all VIPs of an instance are one address family (use a second instance for the other)"
                        ),
                    );
                    continue;
                }
                Some(_) => {}
            }
            if out.iter().any(|n| n.addr() == addr) {
                self.err(
                    v.span(),
                    key.clone(),
                    format!("vips: {addr} is listed twice"),
                );
                continue;
            }
            if is_v6_link_local(&addr) {
                // RFC 5798 §5.2.9: the first IPv6 address is the link-local one (only one).
                if link_local_seen {
                    self.err(v.span(), key.clone(), format!("vips: {net} is a second link-local address; an instance has one link-local VIP"));
                    continue;
                }
                if i != 0 {
                    self.err(
                        v.span(),
                        key.clone(),
                        format!("vips: the link-local VIP {net} must be first (RFC 5798 §5.2.9), or leave it out to use the derived one"),
                    );
                    continue;
                }
                link_local_seen = true;
            }
            seen.vips.push((addr, v.span()));
            out.push(net);
        }
        seen.family = family.as_ref().map(|(f, _)| *f);
        if seen.family == Some(Family::V6) && !link_local_seen {
            if let Some(vrid) = vrid {
                // RFC 5798 §5.2.9 needs a link-local first address; derive it from the
                // virtual MAC 00-00-5E-00-02-{VRID} (RFC 5798 §7.3) as EUI-64.
                let ll = Ipv6Addr::new(
                    0xfe80,
                    0,
                    0,
                    0,
                    0x0200,
                    0x5eff,
                    0xfe00,
                    0x0200 | u16::from(vrid),
                );
                if let Ok(net) = IpNet::new(IpAddr::V6(ll), 64) {
                    out.insert(0, net);
                }
            }
        }
        let max = match seen.family {
            Some(Family::V6) => MAX_VIPS_V6,
            _ => MAX_VIPS_V4,
        };
        if out.len() > max {
            self.err(
                list.span(),
                key,
                format!(
                    "vips: {} addresses, at most {max} fit one advert (IPv6 counts the link-local VIP)",
                    out.len()
                ),
            );
        }
        out
    }

    fn advert_interval(
        &mut self,
        r: &RawInstance,
        p: &str,
        version: Option<Version>,
    ) -> Option<Centis> {
        let (d, v) = match &r.advert_interval {
            None => (Duration::from_secs(1), None),
            Some(v) => (self.duration(v, p, "advert-interval")?, Some(v)),
        };
        let span = v.map_or(0..0, |v| v.span());
        let got = v.map_or_else(|| "\"1s\"".to_owned(), |v| format!("{:?}", v.get_ref()));
        match version? {
            Version::V3 => {
                // RFC 5798 §5.2.7: 12-bit Max Adver Int in centiseconds.
                let ms = d.as_nanos() / 1_000_000;
                if d.as_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&ms) {
                    self.err(
                        span,
                        join(p, "advert-interval"),
                        format!("advert-interval must be 10ms..=40.95s in steps of 10ms for version 3, got {got}"),
                    );
                    return None;
                }
                u16::try_from(ms / 10).ok().map(Centis)
            }
            Version::V2 => {
                // RFC 3768 §5.3.7: Adver Int is 8 bits of whole seconds.
                let secs = d.as_secs();
                if d.subsec_nanos() != 0 || !(1..=255).contains(&secs) {
                    self.err(
                        span,
                        join(p, "advert-interval"),
                        format!("advert-interval must be whole seconds 1s..=255s for version 2, got {got}"),
                    );
                    return None;
                }
                u16::try_from(secs * 100).ok().map(Centis)
            }
        }
    }

    fn peers(
        &mut self,
        r: &RawInstance,
        p: &str,
        family: Option<Family>,
        vips: &[IpAddr],
    ) -> Option<Vec<IpAddr>> {
        let Some(list) = &r.unicast_peers else {
            return Some(Vec::new());
        };
        let key = join(p, "unicast-peers");
        let mut out = Vec::new();
        let mut ok = true;
        for v in list.get_ref() {
            let s = v.get_ref();
            let Ok(addr) = IpAddr::from_str(s) else {
                self.err(
                    v.span(),
                    key.clone(),
                    format!("unicast-peers: {s:?} is not an IP address (no prefix, no port)"),
                );
                ok = false;
                continue;
            };
            let problem = if let Some(why) = unusable_address(&addr) {
                Some(format!("{addr} cannot be a peer ({why})"))
            } else if family.is_some_and(|f| f != Family::of(&addr)) {
                Some(format!(
                    "{addr} is {} but the vips are {}: peers must be of the VIPs' family",
                    Family::of(&addr),
                    family.map_or(Family::V4, |f| f)
                ))
            } else if out.contains(&addr) {
                Some(format!("{addr} is listed twice"))
            } else if vips.contains(&addr) {
                Some(format!("{addr} is one of this instance's VIPs; peers are the other routers' own addresses"))
            } else {
                None
            };
            if let Some(m) = problem {
                self.err(v.span(), key.clone(), format!("unicast-peers: {m}"));
                ok = false;
                continue;
            }
            out.push(addr);
        }
        ok.then_some(out)
    }

    fn source_address(
        &mut self,
        r: &RawInstance,
        p: &str,
        family: Option<Family>,
        vips: &[IpAddr],
        owner: bool,
    ) -> Option<Option<IpAddr>> {
        let Some(v) = &r.source_address else {
            return Some(None);
        };
        let key = join(p, "source-address");
        let s = v.get_ref();
        let Ok(addr) = IpAddr::from_str(s) else {
            self.err(
                v.span(),
                key,
                format!("source-address: {s:?} is not an IP address (no prefix)"),
            );
            return None;
        };
        let multicast = r
            .unicast_peers
            .as_ref()
            .is_none_or(|l| l.get_ref().is_empty());
        let problem = if let Some(why) = unusable_address(&addr) {
            Some(format!("{addr} cannot be a source address ({why})"))
        } else if family.is_some_and(|f| f != Family::of(&addr)) {
            Some(format!(
                "{addr} is {} but the vips are {}: the source must be of the VIPs' family",
                Family::of(&addr),
                family.map_or(Family::V4, |f| f)
            ))
        } else if !owner && vips.contains(&addr) {
            Some(format!(
                "{addr} is a VIP; the source must be an address the router keeps as backup"
            ))
        } else if multicast && matches!(addr, IpAddr::V6(_)) && !is_v6_link_local(&addr) {
            // RFC 5798 §5.1.2.1: the IPv6 source is the interface's link-local address.
            Some(format!(
                "{addr} is not link-local: multicast IPv6 adverts are sent from the interface's link-local address (RFC 5798 §5.1.2.1)"
            ))
        } else {
            None
        };
        if let Some(m) = problem {
            self.err(v.span(), key, format!("source-address: {m}"));
            return None;
        }
        Some(Some(addr))
    }

    fn announce(&mut self, r: &RawInstance, p: &str) -> Option<Announce> {
        let mut a = Announce::default();
        let mut ok = true;
        if let Some(v) = &r.announce_count {
            match self.int_in(v, p, "announce-count", 0, 100) {
                Some(n) => a.count = u32::try_from(n).unwrap_or(0),
                None => ok = false,
            }
        }
        if let Some(v) = &r.announce_spacing {
            match self.duration_in(
                v,
                p,
                "announce-spacing",
                Duration::ZERO,
                Duration::from_secs(10),
            ) {
                Some(d) => a.spacing = d,
                None => ok = false,
            }
        }
        if let Some(v) = &r.announce_refresh {
            match self.duration_in(
                v,
                p,
                "announce-refresh",
                Duration::from_secs(1),
                Duration::from_secs(86_400),
            ) {
                Some(d) => a.refresh = Some(d),
                None => ok = false,
            }
        }
        ok.then_some(a)
    }

    fn track(&mut self, raw: &S<RawTrack>, p: &str) -> Option<CheckSpec> {
        let t = raw.get_ref();
        let table = raw.span();
        let before = self.errors.len();
        const KINDS: &str =
            "\"http\", \"tcp\", \"exec\", \"interface\", \"process\", \"file\" or \"bfd\"";
        let kind_name = match &t.kind {
            None => {
                self.missing(&table, p, "kind", &format!("a track needs kind = {KINDS}"));
                None
            }
            Some(k) => match k.get_ref().as_str() {
                "http" | "tcp" | "exec" | "interface" | "process" | "file" | "bfd" => {
                    Some(k.get_ref().as_str())
                }
                other => {
                    self.err(
                        k.span(),
                        join(p, "kind"),
                        format!("kind must be {KINDS}, got {other:?}"),
                    );
                    None
                }
            },
        };

        // Keys that belong to one kind only.
        let specific: [(&str, &str, Option<Range<usize>>); 14] = [
            ("peer", "bfd", t.peer.as_ref().map(|v| v.span())),
            ("multiplier", "bfd", t.multiplier.as_ref().map(|v| v.span())),
            ("url", "http", t.url.as_ref().map(|v| v.span())),
            (
                "expect-status",
                "http",
                t.expect_status.as_ref().map(|v| v.span()),
            ),
            ("address", "tcp", t.address.as_ref().map(|v| v.span())),
            ("command", "exec", t.command.as_ref().map(|v| v.span())),
            (
                "keep-capabilities",
                "exec",
                t.keep_capabilities.as_ref().map(|v| v.span()),
            ),
            (
                "interface",
                "interface",
                t.interface.as_ref().map(|v| v.span()),
            ),
            ("process", "process", t.process.as_ref().map(|v| v.span())),
            ("args", "process", t.args.as_ref().map(|v| v.span())),
            (
                "args-match",
                "process",
                t.args_match.as_ref().map(|v| v.span()),
            ),
            (
                "min-count",
                "process",
                t.min_count.as_ref().map(|v| v.span()),
            ),
            (
                "max-count",
                "process",
                t.max_count.as_ref().map(|v| v.span()),
            ),
            ("path", "file", t.path.as_ref().map(|v| v.span())),
        ];
        if let Some(kind) = kind_name {
            let takes = match kind {
                "http" => "url and expect-status",
                "tcp" => "address",
                "exec" => "command and keep-capabilities",
                "process" => "process, args, args-match, min-count and max-count",
                "file" => "path",
                "bfd" => "peer and multiplier; interval is the BFD interval",
                _ => "interface",
            };
            for (key, owner, span) in &specific {
                if let Some(span) = span {
                    if *owner != kind {
                        self.err(
                            span.clone(),
                            join(p, key),
                            format!("{key} does not apply to kind = {kind:?} ({kind} takes {takes}); it belongs to kind = {owner:?}"),
                        );
                    }
                }
            }
        }

        let kind = match kind_name {
            Some("http") => self.track_http(t, &table, p),
            Some("tcp") => match &t.address {
                None => {
                    self.missing(
                        &table,
                        p,
                        "address",
                        "a tcp track connects to address = \"IP:PORT\"",
                    );
                    None
                }
                Some(v) => match SocketAddr::from_str(v.get_ref()) {
                    Ok(a) if a.port() != 0 && !a.ip().is_unspecified() => {
                        Some(CheckKind::Tcp { address: a })
                    }
                    _ => {
                        self.err(
                            v.span(),
                            join(p, "address"),
                            format!(
                                "address must be an IP address and a non-zero port like \"192.0.2.10:80\" or \"[2001:db8::10]:80\", got {:?}",
                                v.get_ref()
                            ),
                        );
                        None
                    }
                },
            },
            Some("exec") => match &t.command {
                None => {
                    self.missing(
                        &table,
                        p,
                        "command",
                        "an exec track runs command = [\"/absolute/program\", \"args\"...]",
                    );
                    None
                }
                Some(v) => self.command(v, p, "command").map(|mut c| {
                    let program = PathBuf::from(c.remove(0));
                    CheckKind::Exec {
                        program,
                        args: c,
                        keep_capabilities: t
                            .keep_capabilities
                            .as_ref()
                            .is_some_and(|k| *k.get_ref()),
                    }
                }),
            },
            Some("process") => self.track_process(t, &table, p),
            Some("bfd") => self.track_bfd(t, &table, p),
            Some("file") => match &t.path {
                None => {
                    self.missing(
                        &table,
                        p,
                        "path",
                        "a file track reads an integer from path = \"/absolute/file\"",
                    );
                    None
                }
                Some(v) => self
                    .abs_path(v, &join(p, "path"))
                    .map(|path| CheckKind::File { path }),
            },
            Some(_) => match &t.interface {
                None => {
                    self.missing(
                        &table,
                        p,
                        "interface",
                        "an interface track watches interface = \"NAME\"",
                    );
                    None
                }
                Some(v) => self
                    .ifname(v, p, "interface")
                    .map(|name| CheckKind::Interface { name }),
            },
            None => None,
        };

        let is_bfd = kind_name == Some("bfd");
        let interval = match &t.interval {
            None if is_bfd => Some(bfd::DEFAULT_INTERVAL),
            Some(v) if is_bfd => {
                self.duration_in(v, p, "interval", bfd::MIN_INTERVAL, bfd::MAX_INTERVAL)
            }
            None => Some(Duration::from_secs(2)),
            Some(v) => self.duration_in(
                v,
                p,
                "interval",
                Duration::from_millis(10),
                Duration::from_secs(86_400),
            ),
        };
        let timeout = match &t.timeout {
            None => Some(Duration::from_secs(1)),
            Some(v) => self.duration_in(
                v,
                p,
                "timeout",
                Duration::from_millis(1),
                Duration::from_secs(86_400),
            ),
        };
        if let (Some(i), Some(to), false) = (interval, timeout, is_bfd) {
            if to >= i {
                // Point at whichever the operator wrote (timeout if both or neither).
                let (span, key) = match (&t.timeout, &t.interval) {
                    (Some(v), _) => (v.span(), "timeout"),
                    (None, Some(v)) => (v.span(), "interval"),
                    (None, None) => (table.clone(), "timeout"),
                };
                self.err(
                    span,
                    join(p, key),
                    format!(
                        "timeout ({}) must be shorter than interval ({}), so a probe ends before the next one starts",
                        format_duration(to),
                        format_duration(i)
                    ),
                );
            }
        }
        // A file's value is taken as written (keepalived reads it on every change).
        let default_rise_fall = if kind_name == Some("file") { 1 } else { 2 };
        let rise = match &t.rise {
            None => Some(default_rise_fall),
            Some(v) => self.int_in(v, p, "rise", 1, 1000),
        };
        let fall = match &t.fall {
            None => Some(default_rise_fall),
            Some(v) => self.int_in(v, p, "fall", 1, 1000),
        };
        let weight = match &t.weight {
            None => Some(10),
            Some(v) => self.int_in(v, p, "weight", 0, 254),
        };
        let name = match &t.name {
            Some(v) => {
                let s = v.get_ref();
                if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
                    self.err(
                        v.span(),
                        join(p, "name"),
                        format!("name must be 1 to 128 printable characters, got {s:?}"),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            None => kind.as_ref().map(default_track_name),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(CheckSpec {
            name: name?,
            kind: kind?,
            interval: interval?,
            timeout: timeout?,
            rise: u32::try_from(rise?).ok()?,
            fall: u32::try_from(fall?).ok()?,
            weight: u8::try_from(weight?).ok()?,
        })
    }

    fn track_process(&mut self, t: &RawTrack, table: &Range<usize>, p: &str) -> Option<CheckKind> {
        let name = match &t.process {
            None => {
                self.missing(
                    table,
                    p,
                    "process",
                    "a process track counts processes named process = \"haproxy\"",
                );
                None
            }
            Some(v) => {
                let n = v.get_ref();
                if n.is_empty() || n.len() > 4096 || n.contains('\0') {
                    self.err(
                        v.span(),
                        join(p, "process"),
                        format!("process must be an executable name like \"haproxy\" or a path like \"/usr/sbin/haproxy\", got {n:?}"),
                    );
                    None
                } else {
                    Some(n.clone())
                }
            }
        };
        let args = match &t.args {
            None => Some(None),
            Some(list) => {
                if let Some(bad) = list.get_ref().iter().find(|a| a.get_ref().contains('\0')) {
                    self.err(
                        bad.span(),
                        join(p, "args"),
                        "args cannot contain NUL characters".to_owned(),
                    );
                    None
                } else {
                    Some(Some(
                        list.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
                    ))
                }
            }
        };
        let args_match = match &t.args_match {
            None => Some(ArgsMatch::Exact),
            Some(v) => {
                if t.args.is_none() {
                    self.err(
                        v.span(),
                        join(p, "args-match"),
                        "args-match compares args: give args too (args = [] for a process with no arguments)".to_owned(),
                    );
                }
                match v.get_ref().as_str() {
                    "exact" => Some(ArgsMatch::Exact),
                    "partial" => Some(ArgsMatch::Partial),
                    "initial" => Some(ArgsMatch::Initial),
                    other => {
                        self.err(
                            v.span(),
                            join(p, "args-match"),
                            format!("args-match must be \"exact\", \"partial\" (the first arguments are these) or \"initial\" (and the last may be longer), got {other:?}"),
                        );
                        None
                    }
                }
            }
        };
        let min_count = match &t.min_count {
            None => Some(1),
            Some(v) => self.int_in(v, p, "min-count", 0, 1_000_000),
        };
        let max_count = match &t.max_count {
            None => Some(None),
            Some(v) => self.int_in(v, p, "max-count", 0, 1_000_000).map(Some),
        };
        if let (Some(lo), Some(Some(hi)), Some(v)) = (min_count, max_count, &t.max_count) {
            if hi < lo {
                self.err(
                    v.span(),
                    join(p, "max-count"),
                    format!("max-count ({hi}) must not be below min-count ({lo})"),
                );
                return None;
            }
        }
        Some(CheckKind::Process(ProcessMatch {
            name: name?,
            args: args?,
            args_match: args_match?,
            min_count: u32::try_from(min_count?).ok()?,
            max_count: match max_count? {
                None => None,
                Some(n) => Some(u32::try_from(n).ok()?),
            },
        }))
    }

    fn track_http(&mut self, t: &RawTrack, table: &Range<usize>, p: &str) -> Option<CheckKind> {
        let url = match &t.url {
            None => {
                self.missing(
                    table,
                    p,
                    "url",
                    "an http track fetches url = \"http://HOST[:PORT]/PATH\"",
                );
                None
            }
            Some(v) => match check_http_url(v.get_ref()) {
                Ok(()) => Some(v.get_ref().clone()),
                Err(why) => {
                    self.err(
                        v.span(),
                        join(p, "url"),
                        format!("url {:?}: {why}", v.get_ref()),
                    );
                    None
                }
            },
        };
        let expect_status = match &t.expect_status {
            None => Some(vec![(200, 299)]),
            Some(list) if list.get_ref().is_empty() => {
                self.err(list.span(), join(p, "expect-status"), "expect-status must list at least one status or range, like [200] or [\"200-299\"]".to_owned());
                None
            }
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in list.get_ref() {
                    match status_range(item.get_ref()) {
                        Some(r) => out.push(r),
                        None => {
                            let shown = match item.get_ref() {
                                StatusItem::Int(n) => n.to_string(),
                                StatusItem::Text(s) => format!("{s:?}"),
                            };
                            self.err(
                                item.span(),
                                join(p, "expect-status"),
                                format!("expect-status entries are status codes 100..=599 or ranges like \"200-299\", got {shown}"),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
        };
        Some(CheckKind::Http {
            url: url?,
            expect_status: expect_status?,
        })
    }
}

fn default_track_name(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Http { url, .. } => format!("http {url}"),
        CheckKind::Tcp { address } => format!("tcp {address}"),
        CheckKind::Exec { program, .. } => format!("exec {}", program.display()),
        CheckKind::Interface { name } => format!("interface {name}"),
        CheckKind::Process(m) => format!("process {}", m.name),
        CheckKind::File { path } => format!("file {}", path.display()),
        CheckKind::Bfd { peer, .. } => format!("bfd {peer}"),
    }
}

fn status_range(item: &StatusItem) -> Option<(u16, u16)> {
    let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
    match item {
        StatusItem::Int(n) => code(*n).map(|c| (c, c)),
        StatusItem::Text(s) => {
            let num = |t: &str| {
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                t.parse::<i64>().ok().and_then(code)
            };
            match s.split_once('-') {
                None => num(s).map(|c| (c, c)),
                Some((a, b)) => {
                    let (lo, hi) = (num(a)?, num(b)?);
                    (lo <= hi).then_some((lo, hi))
                }
            }
        }
    }
}

/// http://HOST[:PORT][/PATH]; HOST a name, an IPv4 address or [IPv6].
fn check_http_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must start with http:// (https is not supported)");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not contain user information (user@)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in the host");
        };
        if Ipv6Addr::from_str(addr).is_err() {
            return Err("has an invalid IPv6 address in [ ]");
        }
        match after {
            "" => ("v6", None),
            a => match a.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return Err("has text after the ] of the host"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err("needs a host name or address after http://");
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err("has an invalid port (1..=65535)");
        }
    }
    Ok(())
}

fn is_v6_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// Why an address can be neither a VIP nor a peer, if it cannot.
fn unusable_address(addr: &IpAddr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("unspecified address")
    } else if addr.is_loopback() {
        Some("loopback address")
    } else if addr.is_multicast() {
        Some("multicast address")
    } else if matches!(addr, IpAddr::V4(a) if a.is_broadcast()) {
        Some("broadcast address")
    } else {
        None
    }
}

fn sorted_list(set: &HashSet<&str>) -> String {
    let mut v: Vec<&str> = set.iter().copied().collect();
    v.sort_unstable();
    if v.is_empty() {
        "none defined".to_owned()
    } else {
        v.join(", ")
    }
}

/// Turns serde's wording into TOML's (tables, arrays, integers, keys).
fn tidy_serde_message(msg: &str) -> String {
    let mut m = msg.trim().replace('\n', "; ");
    for (from, to) in [
        ("expected i64", "expected an integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: table"),
        ("invalid type: floating point", "invalid type: float"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        let rest = rest
            .replacen(", expected one of ", "; allowed keys here: ", 1)
            .replacen(", expected ", "; the only allowed key here is ", 1)
            .replacen(", there are no fields", "; no keys are allowed here", 1);
        m = format!("unknown key {rest}");
    }
    m
}

/// The dotted key path (`instance[0].vrid`) of the value or key at a byte offset.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    find_in_table(doc.get_ref(), offset, "")
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn find_in_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (k, v) in table.iter() {
        let path = join(prefix, k.get_ref());
        if contains(&k.span(), offset) {
            return Some(path);
        }
        if let Some(found) = find_in_value(v.get_ref(), offset, &path) {
            return Some(found);
        }
        if contains(&v.span(), offset) {
            return Some(path);
        }
    }
    None
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
            let p = format!("{path}[{i}]");
            find_in_value(item.get_ref(), offset, &p)
                .or_else(|| contains(&item.span(), offset).then_some(p))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(status_range(&StatusItem::Int(200)), Some((200, 200)));
        assert_eq!(
            status_range(&StatusItem::Text("200-299".into())),
            Some((200, 299))
        );
        assert_eq!(
            status_range(&StatusItem::Text("204".into())),
            Some((204, 204))
        );
        assert_eq!(status_range(&StatusItem::Text("299-200".into())), None);
        assert_eq!(status_range(&StatusItem::Text("2xx".into())), None);
        assert_eq!(status_range(&StatusItem::Text("-200".into())), None);
        assert_eq!(status_range(&StatusItem::Int(600)), None);
        assert_eq!(status_range(&StatusItem::Int(-1)), None);
    }

    #[test]
    fn http_urls() {
        assert!(check_http_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_http_url("http://[2001:db8::1]:80/").is_ok());
        assert!(check_http_url("http://lb.example/").is_ok());
        assert!(check_http_url("http://192.0.2.1").is_ok());
        assert!(check_http_url("https://192.0.2.1/").is_err());
        assert!(check_http_url("http:///x").is_err());
        assert!(check_http_url("http://192.0.2.1:0/").is_err());
        assert!(check_http_url("http://192.0.2.1:99999/").is_err());
        assert!(check_http_url("http://u@192.0.2.1/").is_err());
        assert!(check_http_url("http://[2001:db8::1/").is_err());
    }

    #[test]
    fn positions_count_characters() {
        let cx = Cx {
            text: "a\nxé = 1\n",
            origin: "f",
            errors: vec![],
        };
        assert_eq!(cx.pos(0), (1, 1));
        assert_eq!(cx.pos(2), (2, 1));
        // "é" is two bytes; the '=' after "xé " is the 4th character.
        assert_eq!(cx.pos(6), (2, 4));
        assert_eq!(cx.pos(10_000), (3, 1));
    }
}
