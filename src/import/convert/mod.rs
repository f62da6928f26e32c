//! keepalived tree -> vipd model, with a note for every keyword not carried over.
//!
//! Equivalences worth knowing (each is also a note or documented in docs/keepalived.md):
//! - keepalived's defaults differ from vipd's: VRRP version 2, `advert_int` 1 s, check
//!   `rise`/`fall` 1, script weight 0. The converter always writes them out.
//! - A positive weight (`+W` while healthy) becomes vipd's penalty form: the base priority
//!   rises by the sum of the positive weights and the check subtracts `W` while failing,
//!   which gives the same effective priority in every state (up to the 254 cap).
//! - `killall -0 NAME` / `pidof NAME` scripts become `process` checks, `</dev/tcp/IP/PORT`
//!   scripts `tcp` checks; scripts with shell syntax run through `/bin/sh -c`; a program
//!   without a path runs through `/usr/bin/env` (keepalived looks it up in `PATH`).
//!
//! One file per keepalived section: this one walks the top level ([`convert`]) and
//! converts `global_defs`, `vrrp_sync_group` and notify hooks, then writes the TOML
//! ([`render`]); `instance.rs` converts `vrrp_instance`; `checks.rs` the check
//! definitions (`vrrp_script`, `track_process`, `track_file`); `values.rs` the values
//! they share (durations, integer arguments, script words and kinds).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::syntax::{Loc, Node, Parsed};
use super::{Note, Severity};

mod checks;
mod instance;
mod values;

use checks::*;
use values::*;

/// One `key = value` of the output, the value already in TOML.
pub(super) type Kv = (String, String);

/// A converted instance.
#[derive(Debug, Clone)]
pub(super) struct OutInstance {
    /// The keepalived name (for sync groups and notes).
    pub(super) kname: String,
    /// Where its block starts.
    pub(super) at: Loc,
    pub(super) keys: Vec<Kv>,
    pub(super) tracks: Vec<Vec<Kv>>,
    pub(super) notify: Vec<Kv>,
}

impl OutInstance {
    /// The value written for its vipd `name` key (a TOML string), "" if none.
    fn name(&self) -> String {
        self.keys
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// A converted sync group.
#[derive(Debug, Clone)]
pub(super) struct OutGroup {
    pub(super) at: Loc,
    pub(super) name: String,
    /// keepalived instance names.
    pub(super) members: Vec<(String, Loc)>,
    pub(super) notify: Vec<Kv>,
}

/// Everything converted.
#[derive(Debug, Clone, Default)]
pub(super) struct Out {
    pub(super) globals: Vec<Kv>,
    pub(super) instances: Vec<OutInstance>,
    pub(super) groups: Vec<OutGroup>,
}

/// A TOML string.
pub(super) fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn qlist(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| q(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A definition of a vrrp_script / track_process / track_file.
#[derive(Debug, Clone)]
struct CheckDef {
    node: Node,
    /// Default weight (keepalived).
    weight: i64,
    /// `weight W reverse`.
    reverse: bool,
    /// vipd keys without weight.
    keys: Vec<Kv>,
    /// file checks multiply the weight by the value (no bonus form possible).
    is_file: bool,
    used: bool,
}

impl CheckDef {
    fn new(node: &Node, weight: i64, reverse: bool, keys: Vec<Kv>, is_file: bool) -> Self {
        CheckDef {
            node: node.clone(),
            weight,
            reverse,
            keys,
            is_file,
            used: false,
        }
    }
}

/// Announcement defaults from global_defs (`vrrp_garp_*`).
#[derive(Debug, Clone, Default)]
struct Garp {
    count: Option<String>,
    spacing: Option<String>,
    refresh: Option<String>,
}

struct Cx<'a> {
    notes: &'a mut Vec<Note>,
    scripts: HashMap<String, CheckDef>,
    processes: HashMap<String, CheckDef>,
    files: HashMap<String, CheckDef>,
    version: Option<i64>,
    garp: Garp,
    checksum_as_v2: bool,
}

/// vipd's instance name rule: letters, digits, `-`, `_`, `.`; at most 64.
fn vipd_name(k: &str) -> String {
    let mut s: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        s.push_str("instance");
    }
    s
}

pub(super) fn convert(parsed: &Parsed, notes: &mut Vec<Note>) -> Out {
    for (at, pattern) in &parsed.empty_includes {
        notes.push(Note {
            at: at.clone(),
            keyword: "include".into(),
            severity: Severity::Attention,
            message: format!(
                "include {pattern:?} matched no file (keepalived ignores it too): check the path"
            ),
        });
    }
    let mut cx = Cx {
        notes,
        scripts: HashMap::new(),
        processes: HashMap::new(),
        files: HashMap::new(),
        version: None,
        garp: Garp::default(),
        checksum_as_v2: false,
    };
    let mut out = Out::default();
    // Definitions and global_defs first: instances may come before them in the file.
    for n in &parsed.nodes {
        match n.key.as_str() {
            "global_defs" => cx.global_defs(n, &mut out),
            "vrrp_script" => {
                if let Some((name, d)) = cx.script_def(n) {
                    cx.scripts.insert(name, d);
                }
            }
            "vrrp_track_process" | "track_process" => {
                if let Some((name, d)) = cx.process_def(n) {
                    cx.processes.insert(name, d);
                }
            }
            "vrrp_track_file" | "track_file" => {
                if let Some((name, d)) = cx.file_def(n) {
                    cx.files.insert(name, d);
                }
            }
            _ => {}
        }
    }
    let mut seen_names: HashSet<String> = HashSet::new();
    for n in &parsed.nodes {
        match n.key.as_str() {
            "global_defs" | "vrrp_script" | "vrrp_track_process" | "track_process"
            | "vrrp_track_file" | "track_file" => {}
            "vrrp_instance" => {
                if let Some(i) = cx.instance(n) {
                    let vname = i.name();
                    if !seen_names.insert(vname.clone()) {
                        cx.notes.push(Note::attention(
                            n,
                            format!("a second instance named {vname}: not converted (names must be unique)"),
                        ));
                    } else {
                        out.instances.push(i);
                    }
                }
            }
            "vrrp_sync_group" => {
                if let Some(g) = cx.sync_group(n) {
                    out.groups.push(g);
                }
            }
            other => cx.top_level_other(n, other),
        }
    }
    for (kind, defs) in [
        ("vrrp_script", &cx.scripts),
        ("vrrp_track_process", &cx.processes),
        ("track_file", &cx.files),
    ] {
        let mut unused: Vec<&CheckDef> = defs.values().filter(|d| !d.used).collect();
        unused.sort_by_key(|d| (d.node.at.file.clone(), d.node.at.line));
        for d in unused {
            cx.notes.push(Note::info(
                &d.node,
                format!(
                    "{kind} {} is not used by any vrrp_instance: not carried over",
                    d.node.args.join(" ")
                ),
            ));
        }
    }
    out
}

impl Cx<'_> {
    /// `v`; when it is absent, a note that the `block` at `n` is not converted for want
    /// of `what`.
    fn needs<T>(&mut self, v: Option<T>, n: &Node, block: &str, what: &str) -> Option<T> {
        if v.is_none() {
            self.notes.push(Note::attention(
                n,
                format!("{block} has no {what}: not converted"),
            ));
        }
        v
    }

    /// The name of the `block` at `n` (its first argument); without one, a note that it
    /// is not converted.
    fn name_of(&mut self, n: &Node, block: &str) -> Option<String> {
        let name = n.args.first().cloned();
        if name.is_none() {
            self.notes.push(Note::attention(
                n,
                format!("{block} without a name: not converted"),
            ));
        }
        name
    }

    fn top_level_other(&mut self, n: &Node, key: &str) {
        let msg = match key {
            "virtual_server" | "virtual_server_group" => "LVS load balancing is not vipd's job (vipd only moves virtual IPs): keep keepalived's checker for it (keepalived --check, without VRRP), or manage IPVS with ipvsadm/ldirectord".to_string(),
            "static_ipaddress" | "static_routes" | "static_rules" => "static addresses, routes and rules belong in the system's network configuration (ifupdown, systemd-networkd, netplan): move them there".to_string(),
            "net_namespace" | "net_namespace_ipvs" | "namespace_with_ipsets" => "run vipd inside the namespace instead (ip netns exec NAME vipd, or NetworkNamespacePath= in the systemd unit)".to_string(),
            "garp_group" => "vipd has no GARP groups: tune announce-count, announce-spacing and announce-refresh per instance".to_string(),
            "linkbeat_interfaces" => "vipd follows link state through netlink: nothing to carry over".to_string(),
            k if k.starts_with('$') => "keepalived parameter substitution ($NAME) is not supported by the importer: expand the parameters by hand and convert again".to_string(),
            _ => format!("unknown or unsupported top-level keyword {key:?}: not carried over"),
        };
        let sev = if key == "linkbeat_interfaces" {
            Severity::Info
        } else {
            Severity::Attention
        };
        self.notes.push(Note::new(n, sev, msg));
    }

    fn global_defs(&mut self, g: &Node, out: &mut Out) {
        for n in g.children() {
            let k = n.key.as_str();
            match k {
                "vrrp_startup_delay" => {
                    if let Some((d, _)) = secs_arg(n, self.notes) {
                        out.globals.push(("startup-delay".into(), q(&d)));
                    }
                }
                "vrrp_version" => self.version = int_arg(n, self.notes, 2, 3),
                "vrrp_garp_master_repeat" => {
                    self.garp.count = int_arg(n, self.notes, 0, 100).map(|v| v.to_string())
                }
                "vrrp_garp_interval" | "vrrp_gna_interval" => {
                    if let Some((d, v)) = secs_arg(n, self.notes) {
                        if v <= 10.0 {
                            self.garp.spacing = Some(q(&d));
                        }
                    }
                }
                "vrrp_garp_master_refresh" => {
                    if let Some((d, v)) = secs_arg(n, self.notes) {
                        if v >= 1.0 {
                            self.garp.refresh = Some(q(&d));
                        }
                    }
                }
                "vrrp_v3_checksum_as_v2" | "v3_checksum_as_v2" => self.checksum_as_v2 = true,
                "vrrp_garp_master_delay" | "vrrp_garp_master_refresh_repeat" | "vrrp_garp_lower_prio_delay" | "vrrp_garp_lower_prio_repeat" | "vrrp_min_garp" => {
                    self.notes.push(Note::info(n, garp_text(k)));
                }
                "router_id" | "notification_email" | "notification_email_from" | "smtp_server" | "smtp_connect_timeout" | "smtp_helo_name" | "smtp_alert" | "smtp_alert_vrrp" | "smtp_alert_checker" | "enable_traps" | "enable_snmp_vrrp" | "enable_snmp_checker" | "enable_snmp_rfc" | "enable_snmp_rfcv2" | "enable_snmp_rfcv3" | "enable_snmp_keepalived" | "snmp_socket" | "enable_dbus" | "dynamic_interfaces" | "process_names" | "vrrp_process_name" | "checker_process_name" | "bfd_process_name" | "vrrp_notify_fifo" | "notify_fifo" | "vrrp_notify_fifo_script" | "notify_fifo_script" => {
                    self.notes.push(Note::info(n, "keepalived process setting or alerting (mail, SNMP, D-Bus, FIFO) with no effect on VRRP: vipd reports through its log, `vipctl status`/`events` and /metrics instead".to_string()));
                }
                "enable_script_security" | "script_user" => {
                    self.notes.push(Note::info(n, "vipd runs checks and hooks without a shell, as its own user, with its capabilities dropped (keep-capabilities = true to keep them): nothing to carry over".to_string()));
                }
                "vrrp_strict" => self.notes.push(Note::info(n, "vipd always follows RFC 5798 on the wire (no authentication, TTL 255, VRRPv3 by default); it does not add firewall rules: nothing to carry over".to_string())),
                "vrrp_check_unicast_src" => self.notes.push(Note::info(n, "vipd always drops unicast adverts from addresses that are not in unicast-peers".to_string())),
                "vrrp_skip_check_adv_addr" => self.notes.push(Note::info(n, "vipd accepts an advert whose address list differs from its own and logs the mismatch (RFC 5798 §7.1)".to_string())),
                "vrrp_iptables" | "vrrp_ipsets" | "nftables" | "nftables_priority" | "nftables_ifindex" | "nftables_counters" => self.notes.push(Note::info(n, "vipd manages no firewall rules: if you relied on keepalived's, write them in nftables (see /usr/share/doc/vipd/examples/nftables-vrrp.nft)".to_string())),
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => self.notes.push(Note::attention(n, "vipd always uses the RFC 5798 groups 224.0.0.18 / ff02::12 (or unicast-peers): peers on another group will not hear it".to_string())),
                k if k.starts_with("vrrp_") || k.starts_with("checker_") || k.starts_with("lvs_") || k.starts_with("max_auto_priority") || k.starts_with("vrrp_no_swap") => {
                    self.notes.push(Note::info(n, "keepalived process tuning (priorities, memory, timers of keepalived itself): no vipd equivalent needed".to_string()));
                }
                _ => self.notes.push(Note::attention(n, format!("global_defs {k}: no vipd equivalent known: not carried over"))),
            }
        }
    }

    fn notify_hook(&mut self, c: &Node, out: &mut Vec<Kv>, instance: bool) {
        let key = match c.key.as_str() {
            "notify_master" => "master",
            "notify_backup" => "backup",
            "notify_fault" => "fault",
            "notify_stop" => "stop",
            _ => "any",
        };
        if key == "stop" && !instance {
            self.notes.push(Note::attention(
                c,
                "a sync group has no stop hook in vipd: put notify_stop on each member instance"
                    .to_string(),
            ));
            return;
        }
        let Some(script) = c.args.first() else {
            self.notes.push(Note::attention(
                c,
                "no script given: not carried over".to_string(),
            ));
            return;
        };
        if c.args.len() > 1 {
            self.notes.push(Note::info(
                c,
                format!(
                    "user/group {:?} dropped: vipd runs hooks as its own user",
                    c.args[1..].join(" ")
                ),
            ));
        }
        let (cmd, note) = command_of(script);
        if let Some(why) = note {
            self.notes.push(Note::info(c, format!("{script:?}: {why}")));
        }
        if key == "any" {
            self.notes.push(Note::attention(c, "keepalived calls this script with TYPE NAME STATE PRIORITY; vipd's any hook gets INSTANCE STATE REASON (states in lower case: master, backup, fault, init): adapt the script".to_string()));
        }
        out.push((key.to_string(), qlist(&cmd)));
    }

    fn sync_group(&mut self, n: &Node) -> Option<OutGroup> {
        let kname = self.name_of(n, "vrrp_sync_group")?;
        let mut members = Vec::new();
        let mut notify = Vec::new();
        for c in n.children() {
            match c.key.as_str() {
                "group" => {
                    for m in c.children() {
                        members.push((m.key.clone(), m.at.clone()));
                        for a in &m.args {
                            members.push((a.clone(), m.at.clone()));
                        }
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    self.notify_hook(c, &mut notify, false)
                }
                "global_tracking" | "sync_group_tracking_weight" => self.notes.push(Note::info(c, "vipd applies the largest member penalty to every member of a sync group, and a member's fault to all: nothing to carry over".to_string())),
                "smtp_alert" => self.notes.push(Note::info(c, "no mail alerts in vipd: use notify hooks".to_string())),
                k => self.notes.push(Note::attention(c, format!("vrrp_sync_group {k}: no vipd equivalent (track on the member instances instead): not carried over"))),
            }
        }
        Some(OutGroup {
            at: n.at.clone(),
            name: vipd_name(&kname),
            members,
            notify,
        })
    }
}

/// The note for keepalived's GARP timing keywords (global or per instance).
fn garp_text(_keyword: &str) -> String {
    "vipd sends announce-count gratuitous ARPs / NAs announce-spacing apart on becoming master (and re-announces after a split brain heals), with no second delayed burst: not carried over; tune announce-count / announce-spacing / announce-refresh if needed".to_string()
}

/// The TOML text of `out`.
pub(super) fn render(out: &Out, header: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        s.push_str("# ");
        s.push_str(h);
        s.push('\n');
    }
    for (k, v) in &out.globals {
        s.push_str(&format!("{k} = {v}\n"));
    }
    let names: BTreeMap<&str, String> = out
        .instances
        .iter()
        .map(|i| (i.kname.as_str(), i.name()))
        .collect();
    for i in &out.instances {
        s.push_str(&format!(
            "\n# vrrp_instance {} ({})\n[[instance]]\n",
            i.kname, i.at
        ));
        for (k, v) in &i.keys {
            s.push_str(&format!("{k} = {v}\n"));
        }
        if !i.notify.is_empty() {
            s.push_str("\n[instance.notify]\n");
            for (k, v) in &i.notify {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
        for t in &i.tracks {
            s.push_str("\n[[instance.track]]\n");
            for (k, v) in t {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
    }
    for g in &out.groups {
        let members: Vec<String> = g
            .members
            .iter()
            .filter_map(|(m, _)| names.get(m.as_str()).cloned())
            .collect();
        s.push_str(&format!(
            "\n# vrrp_sync_group {} ({})\n[[sync-group]]\nname = {}\ninstances = [{}]\n",
            g.name,
            g.at,
            q(&g.name),
            members.join(", ")
        ));
        if !g.notify.is_empty() {
            s.push_str("\n[sync-group.notify]\n");
            for (k, v) in &g.notify {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests;
