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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::syntax::{Loc, Node, Parsed};
use super::{Note, Severity};

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

/// keepalived seconds (`"1"`, `"0.5"`) to a vipd duration string.
fn secs_to_duration(s: &str) -> Option<(String, f64)> {
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = (v * 1000.0).round();
    if ms > 86_400_000.0 {
        return None;
    }
    let ms = ms as u64;
    let text = if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    };
    Some((text, v))
}

fn fmt_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Splits a keepalived script string into words: whitespace separated, `'...'` and
/// `"..."` quoting and `\` escapes as in a shell. `None` for an unbalanced quote.
pub(super) fn split_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next()?),
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '\\' => {
                have = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Some(out)
}

/// Characters that make a script shell syntax rather than a program and arguments.
fn has_shell_syntax(s: &str) -> bool {
    s.contains(['<', '>', '|', '&', ';', '$', '`', '(', ')', '*', '?', '~'])
}

/// A command line for vipd (absolute program), and a note if it had to be wrapped.
fn command_of(script: &str) -> (Vec<String>, Option<String>) {
    if has_shell_syntax(script) {
        return (
            vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            Some("it uses shell syntax, so it runs as /bin/sh -c '...' (vipd runs programs without a shell)".into()),
        );
    }
    match split_words(script) {
        Some(words) if !words.is_empty() => {
            if words[0].starts_with('/') {
                (words, None)
            } else {
                let mut v = vec!["/usr/bin/env".to_string()];
                let prog = words[0].clone();
                v.extend(words);
                (
                    v,
                    Some(format!("{prog} has no path, so it runs through /usr/bin/env, which looks it up in vipd's PATH (vipd needs absolute programs); better write its full path")),
                )
            }
        }
        _ => (
            vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            Some("it could not be split into words, so it runs as /bin/sh -c '...'".into()),
        ),
    }
}

/// What a keepalived script probes, when vipd has a cheaper kind for it.
enum ScriptKind {
    Process(String),
    Tcp(String),
    Exec(Vec<String>, Option<String>),
}

fn script_kind(script: &str) -> ScriptKind {
    let t = script.trim();
    // `</dev/tcp/HOST/PORT`, bare or wrapped in `bash -c '...'`.
    let inner = split_words(t)
        .and_then(|w| match w.as_slice() {
            [sh, c, body] if (sh.ends_with("bash") || sh.ends_with("sh")) && c == "-c" => {
                Some(body.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| t.to_string());
    if let Some(rest) = inner.trim().strip_prefix("</dev/tcp/") {
        if let Some((host, port)) = rest.trim().split_once('/') {
            if let (Ok(ip), Ok(port)) = (host.parse::<IpAddr>(), port.parse::<u16>()) {
                if port != 0 {
                    let addr = match ip {
                        IpAddr::V4(v4) => format!("{v4}:{port}"),
                        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                    };
                    return ScriptKind::Tcp(addr);
                }
            }
        }
    }
    if !has_shell_syntax(t) {
        if let Some(w) = split_words(t) {
            let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
            match w.as_slice() {
                [k, zero, name] if base(k) == "killall" && zero == "-0" => {
                    return ScriptKind::Process(name.clone())
                }
                [k, name] if base(k) == "pidof" && !name.starts_with('-') => {
                    return ScriptKind::Process(name.clone())
                }
                [k, x, name] if base(k) == "pgrep" && x == "-x" => {
                    return ScriptKind::Process(name.clone())
                }
                _ => {}
            }
        }
    }
    let (cmd, note) = command_of(t);
    ScriptKind::Exec(cmd, note)
}

/// Integer argument, or a note.
fn int_arg(n: &Node, notes: &mut Vec<Note>, lo: i64, hi: i64) -> Option<i64> {
    match n.args.first().and_then(|a| a.parse::<i64>().ok()) {
        Some(v) if (lo..=hi).contains(&v) => Some(v),
        _ => {
            notes.push(Note::attention(
                n,
                format!(
                    "expects a number {lo}..={hi}, got {:?}: not carried over",
                    n.args.join(" ")
                ),
            ));
            None
        }
    }
}

fn secs_arg(n: &Node, notes: &mut Vec<Note>) -> Option<(String, f64)> {
    let r = n.args.first().and_then(|a| secs_to_duration(a));
    if r.is_none() {
        notes.push(Note::attention(
            n,
            format!(
                "expects seconds, got {:?}: not carried over",
                n.args.join(" ")
            ),
        ));
    }
    r
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

    fn script_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut script = None;
        let mut interval_ms = 1000u64;
        let mut timeout_ms: Option<u64> = None;
        let mut weight = 0i64;
        let mut reverse = false;
        let mut rise = 1i64;
        let mut fall = 1i64;
        for c in n.children() {
            match c.key.as_str() {
                "script" => script = Some(c.args.join(" ")),
                "interval" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        interval_ms = ((v * 1000.0).round() as u64).max(10);
                    }
                }
                "timeout" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        timeout_ms = Some(((v * 1000.0).round() as u64).max(1));
                    }
                }
                "weight" => {
                    if let Some(w) = int_arg(c, self.notes, -254, 254) {
                        weight = w;
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "rise" => rise = int_arg(c, self.notes, 1, 1000).unwrap_or(rise),
                "fall" => fall = int_arg(c, self.notes, 1, 1000).unwrap_or(fall),
                "user" => self.notes.push(Note::info(c, "vipd runs checks as its own user (capabilities dropped): not carried over".to_string())),
                "init_fail" => self.notes.push(Note::info(c, "vipd always starts a check as failing until it passes rise times (init_fail behaviour)".to_string())),
                k => self.notes.push(Note::attention(c, format!("vrrp_script {k}: no vipd equivalent: not carried over"))),
            }
        }
        let script = self.needs(script, n, &format!("vrrp_script {name}"), "script")?;
        let timeout = match timeout_ms {
            Some(t) if t < interval_ms => t,
            Some(t) => {
                let clamped = interval_ms.saturating_sub(10).max(1);
                self.notes.push(Note::info(n, format!("timeout {} is not shorter than interval {} (vipd needs it shorter): timeout {} written", fmt_ms(t), fmt_ms(interval_ms), fmt_ms(clamped))));
                clamped
            }
            None => interval_ms.saturating_sub(10).max(1),
        };
        let mut keys: Vec<Kv> = vec![("name".into(), q(&name))];
        match script_kind(&script) {
            ScriptKind::Process(p) => {
                self.notes.push(Note::info(n, format!("script {script:?} becomes a process check for {p:?} (no program run every interval)")));
                keys.push(("kind".into(), q("process")));
                keys.push(("process".into(), q(&p)));
            }
            ScriptKind::Tcp(a) => {
                self.notes.push(Note::info(
                    n,
                    format!("script {script:?} becomes a tcp check of {a}"),
                ));
                keys.push(("kind".into(), q("tcp")));
                keys.push(("address".into(), q(&a)));
            }
            ScriptKind::Exec(cmd, note) => {
                if let Some(why) = note {
                    self.notes
                        .push(Note::info(n, format!("script {script:?}: {why}")));
                }
                keys.push(("kind".into(), q("exec")));
                keys.push(("command".into(), qlist(&cmd)));
            }
        }
        keys.push(("interval".into(), q(&fmt_ms(interval_ms))));
        keys.push(("timeout".into(), q(&fmt_ms(timeout))));
        keys.push(("rise".into(), rise.to_string()));
        keys.push(("fall".into(), fall.to_string()));
        Some((name, CheckDef::new(n, weight, reverse, keys, false)))
    }

    fn process_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut words: Option<Vec<String>> = None;
        let mut param_match: Option<&str> = None;
        let mut weight = 1i64;
        let mut reverse = false;
        let mut quorum = 1i64;
        let mut quorum_max: Option<i64> = None;
        let (mut fork_delay, mut term_delay) = (0f64, 0f64);
        for c in n.children() {
            match c.key.as_str() {
                "process" => words = Some(c.args.clone()),
                "param_match" => {
                    param_match = match c.args.first().map(String::as_str) {
                        Some("initial") => Some("initial"),
                        Some("partial") => Some("partial"),
                        _ => Some("exact"),
                    }
                }
                "weight" => {
                    if let Some(w) = int_arg(c, self.notes, -254, 254) {
                        weight = w;
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "quorum" => quorum = int_arg(c, self.notes, 0, 1_000_000).unwrap_or(quorum),
                "quorum_max" => quorum_max = int_arg(c, self.notes, 0, 1_000_000),
                "delay" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        fork_delay = v;
                        term_delay = v;
                    }
                }
                "fork_delay" => fork_delay = secs_arg(c, self.notes).map_or(fork_delay, |x| x.1),
                "terminate_delay" => term_delay = secs_arg(c, self.notes).map_or(term_delay, |x| x.1),
                "full_command" => self.notes.push(Note::info(c, "vipd matches argv[0] and the arguments when args are given: nothing to carry over".to_string())),
                k => self.notes.push(Note::attention(c, format!("vrrp_track_process {k}: no vipd equivalent: not carried over"))),
            }
        }
        let words = self.needs(
            words.filter(|w| !w.is_empty()),
            n,
            &format!("vrrp_track_process {name}"),
            "process",
        )?;
        // keepalived reacts to process events; vipd polls every 500 ms: the delays become
        // rise/fall counts of that interval.
        let steps = |d: f64| 1 + (d / 0.5).ceil().max(0.0) as i64;
        let mut keys: Vec<Kv> = vec![
            ("name".into(), q(&name)),
            ("kind".into(), q("process")),
            ("process".into(), q(&words[0])),
        ];
        if words.len() > 1 || param_match.is_some() {
            keys.push(("args".into(), qlist(&words[1..])));
            keys.push(("args-match".into(), q(param_match.unwrap_or("exact"))));
        }
        keys.push(("min-count".into(), quorum.to_string()));
        if let Some(m) = quorum_max {
            if m < quorum {
                self.notes.push(Note::attention(n, format!("quorum_max {m} is below quorum {quorum}: this check can never pass; max-count not carried over")));
            } else {
                keys.push(("max-count".into(), m.to_string()));
            }
        }
        keys.push(("interval".into(), q("500ms")));
        keys.push(("timeout".into(), q("400ms")));
        keys.push(("rise".into(), steps(fork_delay).min(1000).to_string()));
        keys.push(("fall".into(), steps(term_delay).min(1000).to_string()));
        Some((name, CheckDef::new(n, weight, reverse, keys, false)))
    }

    fn file_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut path = None;
        let mut weight = 1i64;
        let mut reverse = false;
        for c in n.children() {
            match c.key.as_str() {
                "file" => path = c.args.first().cloned(),
                "weight" => {
                    match c.args.first().and_then(|a| a.parse::<i64>().ok()) {
                        Some(w) => weight = w,
                        None => self.notes.push(Note::attention(c, "weight is not a number: weight 1 assumed".to_string())),
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "init_file" => self.notes.push(Note::attention(c, "vipd does not create or initialise the file: create it (for example with 0) before vipd starts, or the instance stays in Fault (a missing file is a fault)".to_string())),
                k => self.notes.push(Note::attention(c, format!("track_file {k}: no vipd equivalent: not carried over"))),
            }
        }
        let path = self.needs(
            path.filter(|p| p.starts_with('/')),
            n,
            &format!("track_file {name}"),
            "absolute file path",
        )?;
        let keys: Vec<Kv> = vec![
            ("name".into(), q(&name)),
            ("kind".into(), q("file")),
            ("path".into(), q(&path)),
            ("interval".into(), q("1s")),
            ("timeout".into(), q("500ms")),
        ];
        Some((name, CheckDef::new(n, weight, reverse, keys, true)))
    }

    fn instance(&mut self, n: &Node) -> Option<OutInstance> {
        let kname = self.name_of(n, "vrrp_instance")?;
        let name = vipd_name(&kname);
        if name != kname {
            self.notes.push(Note::info(n, format!("instance {kname:?} is named {name:?} (vipd names are letters, digits, '-', '_', '.')")));
        }
        let mut interface = None;
        let mut vrid = None;
        let mut priority: i64 = 100;
        let mut advert: Option<(f64, &Node)> = None;
        let mut version = self.version;
        let mut nopreempt = false;
        let mut use_vmac: Option<Node> = None;
        let mut preempt_delay: Option<(String, &Node)> = None;
        let mut vips: Vec<(String, IpAddr)> = Vec::new();
        let mut peers: Vec<String> = Vec::new();
        let mut src: Option<String> = None;
        let mut mcast_src: Option<String> = None;
        let mut garp = self.garp.clone();
        let mut checksum_as_v2 = self.checksum_as_v2;
        // (vipd keys, keepalived effective weight, is_file, reverse, node)
        let mut checks: Vec<(Vec<Kv>, i64, bool, bool, Node)> = Vec::new();
        let mut notify: Vec<Kv> = Vec::new();
        for c in n.children() {
            let k = c.key.as_str();
            match k {
                "interface" => interface = c.args.first().cloned(),
                "virtual_router_id" => vrid = int_arg(c, self.notes, 1, 255),
                "priority" => priority = int_arg(c, self.notes, 1, 255).unwrap_or(priority),
                "advert_int" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        advert = Some((v, c));
                    }
                }
                "version" => version = int_arg(c, self.notes, 2, 3).or(version),
                "nopreempt" => nopreempt = true,
                "preempt" => {}
                "preempt_delay" => {
                    if let Some((d, _)) = secs_arg(c, self.notes) {
                        preempt_delay = Some((d, c));
                    }
                }
                "state" => {
                    let s = c.args.first().map(String::as_str).unwrap_or("");
                    self.notes.push(Note::info(c, format!("state {s}: vipd has no initial state; it elects by priority (highest wins, equal priority: highest address), as keepalived does once running")));
                }
                "virtual_ipaddress" => self.vips(c, &mut vips, interface.as_deref()),
                "virtual_ipaddress_excluded" => self.notes.push(Note::attention(c, "addresses not advertised: vipd advertises every VIP it manages; add them to vips (they will be in the adverts, peers must list them too) or to a second instance".to_string())),
                "virtual_routes" | "virtual_rules" => self.notes.push(Note::attention(c, "vipd adds no routes or rules: add them from notify master/backup hooks, or keep them static".to_string())),
                "unicast_src_ip" => src = c.args.first().cloned(),
                "mcast_src_ip" => mcast_src = c.args.first().cloned(),
                "unicast_peer" => {
                    for p in c.children() {
                        if p.key.parse::<IpAddr>().is_ok() {
                            peers.push(p.key.clone());
                            if !p.args.is_empty() {
                                self.notes.push(Note::info(p, format!("peer options {:?} dropped (vipd sends and expects TTL 255)", p.args.join(" "))));
                            }
                        } else {
                            self.notes.push(Note::attention(p, format!("unicast peer {:?} is not an IP address: not carried over", p.key)));
                        }
                    }
                }
                "track_interface" => {
                    for t in c.children() {
                        let w = weight_of(t, 0, self.notes);
                        checks.push((
                            vec![
                                ("name".into(), q(&format!("interface {}", t.key))),
                                ("kind".into(), q("interface")),
                                ("interface".into(), q(&t.key)),
                                ("interval".into(), q("1s")),
                                ("timeout".into(), q("500ms")),
                                ("rise".into(), "1".into()),
                                ("fall".into(), "1".into()),
                            ],
                            w.0,
                            false,
                            w.1,
                            t.clone(),
                        ));
                    }
                }
                "track_script" | "track_process" | "track_file" => {
                    for t in c.children() {
                        let defs = match k {
                            "track_script" => &mut self.scripts,
                            "track_process" => &mut self.processes,
                            _ => &mut self.files,
                        };
                        match defs.get_mut(&t.key) {
                            Some(d) => {
                                d.used = true;
                                let (dw, drev) = (d.weight, d.reverse);
                                let (keys, is_file) = (d.keys.clone(), d.is_file);
                                let w = if t.args.is_empty() {
                                    (dw, drev)
                                } else {
                                    weight_of(t, dw, self.notes)
                                };
                                checks.push((keys, w.0, is_file, w.1, t.clone()));
                            }
                            None => self.notes.push(Note::attention(t, format!("{k} {} is not defined (or could not be converted): not carried over", t.key))),
                        }
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    self.notify_hook(c, &mut notify, true);
                }
                "use_vmac" => use_vmac = Some(c.clone()),
                "vmac_xmit_base" => self.notes.push(Note::info(c, "vmac_xmit_base: vipd always receives adverts on the parent interface and sends them from the virtual MAC link (RFC 5798 §7.3); nothing to carry over".to_string())),
                "garp_master_repeat" => garp.count = int_arg(c, self.notes, 0, 100).map(|v| v.to_string()),
                "garp_interval" | "gna_interval" => {
                    if let Some((d, v)) = secs_arg(c, self.notes) {
                        if v <= 10.0 {
                            garp.spacing = Some(q(&d));
                        }
                    }
                }
                "garp_master_refresh" => {
                    if let Some((d, v)) = secs_arg(c, self.notes) {
                        garp.refresh = (v >= 1.0).then(|| q(&d));
                    }
                }
                "garp_master_delay" | "garp_master_refresh_repeat" | "garp_lower_prio_delay" | "garp_lower_prio_repeat" => self.notes.push(Note::info(c, garp_text(k))),
                "authentication" => self.notes.push(Note::attention(c, "authentication was dropped by RFC 5798 (VRRPv3 has none, and v2's password is sent in clear): restrict who may send VRRP with nftables (example in /usr/share/doc/vipd/examples/nftables-vrrp.nft) or use the [arbiter]".to_string())),
                "v3_checksum_as_v2" => checksum_as_v2 = true,
                "dont_track_primary" => self.notes.push(Note::attention(c, "vipd always goes to Fault when the instance's interface goes down: there is no way to ignore it".to_string())),
                "accept" => self.notes.push(Note::info(c, "vipd's VIPs are ordinary addresses of the host: it always accepts packets for them".to_string())),
                "no_accept" => self.notes.push(Note::attention(c, "vipd always accepts packets for its VIPs (they are ordinary addresses): drop unwanted traffic with nftables".to_string())),
                "strict_mode" | "native_ipv6" | "skip_check_adv_addr" | "check_unicast_src" | "smtp_alert" | "debug" | "linkbeat_use_polling" | "kernel_rx_buf_size" => self.notes.push(Note::info(c, format!("vipd's behaviour already covers {k}, or it has no effect on the protocol"))),
                "lvs_sync_daemon_interface" => self.notes.push(Note::attention(c, "LVS connection sync is not vipd's job: run ipvsadm --start-daemon from notify hooks".to_string())),
                "track_bfd" => self.notes.push(Note::attention(c, "keepalived's BFD tracking is not converted: see [instance.bfd] in docs/configuration.md".to_string())),
                _ => self.notes.push(Note::attention(c, format!("vrrp_instance keyword {k:?} has no vipd equivalent known to the importer: not carried over"))),
            }
        }
        let interface = self.needs(interface, n, &format!("vrrp_instance {kname}"), "interface")?;
        let vrid = self.needs(
            vrid,
            n,
            &format!("vrrp_instance {kname}"),
            "virtual_router_id",
        )?;
        if vips.is_empty() {
            self.notes.push(Note::attention(
                n,
                format!("vrrp_instance {kname} has no usable virtual_ipaddress: not converted"),
            ));
            return None;
        }
        // One address family per vipd instance (keepalived, too, advertises one).
        let v6 = vips[0].1.is_ipv6();
        let (keep, other): (Vec<_>, Vec<_>) =
            vips.into_iter().partition(|(_, a)| a.is_ipv6() == v6);
        if !other.is_empty() {
            let list: Vec<String> = other.iter().map(|(s, _)| s.clone()).collect();
            self.notes.push(Note::attention(n, format!("{} mixes address families: {} not carried over (vipd runs one family per instance; make a second instance with another VRID for them)", kname, list.join(", "))));
        }
        let version = if v6 {
            if version == Some(2) {
                self.notes.push(Note::info(
                    n,
                    "VRRPv2 is IPv4 only: version 3 written".to_string(),
                ));
            }
            3
        } else {
            version.unwrap_or(2)
        };
        let mut keys: Vec<Kv> = vec![
            ("name".into(), q(&name)),
            ("interface".into(), q(&interface)),
            ("vrid".into(), vrid.to_string()),
        ];
        let owner = priority == 255;
        // Positive weights: raise the base priority by their sum, subtract while failing.
        let bonus: i64 = if owner {
            0
        } else {
            checks.iter().filter(|c| c.1 > 0 && !c.2).map(|c| c.1).sum()
        };
        if owner {
            keys.push(("address-owner".into(), "true".into()));
            self.notes.push(Note::info(n, "priority 255: the address owner; vipd checks at start that the VIPs are the interface's own addresses and never removes them".to_string()));
        } else {
            let mut p = priority + bonus;
            if p > 254 {
                self.notes.push(Note::attention(n, format!("priority {priority} plus positive track weights {bonus} is above 254: 254 written, so this host may win where keepalived's capped priority tied")));
                p = 254;
            }
            if bonus > 0 {
                self.notes.push(Note::info(n, format!("priority {priority} with positive track weights (+{bonus} while healthy) becomes priority {p}, each such check subtracting its weight while failing: the same effective priority in every state")));
            }
            keys.push(("priority".into(), p.to_string()));
        }
        let advert_txt = match (advert, version) {
            (None, _) => "1s".to_string(),
            (Some((v, c)), 2) => {
                let s = v.round().clamp(1.0, 255.0) as u64;
                if (s as f64 - v).abs() > 1e-9 {
                    self.notes.push(Note::attention(
                        c,
                        format!("VRRPv2 intervals are whole seconds: {s}s written"),
                    ));
                }
                format!("{s}s")
            }
            (Some((v, c)), _) => {
                let cs = (v * 100.0).round().clamp(1.0, 4095.0) as u64;
                if ((cs as f64) / 100.0 - v).abs() > 1e-9 {
                    self.notes.push(Note::info(
                        c,
                        format!(
                            "VRRPv3 intervals are centiseconds, 10 ms to 40.95 s: {} written",
                            fmt_ms(cs * 10)
                        ),
                    ));
                }
                fmt_ms(cs * 10)
            }
        };
        keys.push(("advert-interval".into(), q(&advert_txt)));
        keys.push(("version".into(), version.to_string()));
        if nopreempt {
            if owner {
                self.notes.push(Note::info(n, "nopreempt is ignored for the address owner (it always preempts, RFC 5798 §6.1)".to_string()));
            } else {
                keys.push(("preempt".into(), "false".into()));
            }
        }
        if let Some((d, c)) = preempt_delay {
            if nopreempt {
                self.notes.push(Note::info(
                    c,
                    "preempt_delay has no effect with nopreempt: not carried over".to_string(),
                ));
            } else if d != "0s" {
                keys.push(("preempt-delay".into(), q(&d)));
            }
        }
        let vip_list: Vec<String> = keep.iter().map(|(s, _)| s.clone()).collect();
        keys.push(("vips".into(), qlist(&vip_list)));
        if let Some(c) = use_vmac {
            if owner {
                self.notes.push(Note::attention(&c, "use_vmac on an address owner: its VIPs are the interface's own addresses and cannot move to a virtual MAC link; not carried over".to_string()));
            } else {
                keys.push(("virtual-mac".into(), "true".into()));
                if let Some(ifname) = c.args.first() {
                    self.notes.push(Note::info(&c, format!("use_vmac {ifname}: vipd names its virtual MAC link vrrp{}-IFINDEX-VRID (the interface's index), not {ifname}", if v6 { 6 } else { 4 })));
                }
            }
        }
        if !peers.is_empty() {
            keys.push(("unicast-peers".into(), qlist(&peers)));
        }
        match src.or(mcast_src) {
            Some(s) if s.parse::<IpAddr>().is_ok() => keys.push(("source-address".into(), q(&s))),
            Some(s) => self.notes.push(Note::attention(
                n,
                format!("source address {s:?} is not an IP address: not carried over"),
            )),
            None => {}
        }
        if checksum_as_v2 {
            if version == 3 && !v6 {
                keys.push(("checksum-pseudo-header".into(), "false".into()));
            } else {
                self.notes.push(Note::info(
                    n,
                    "v3_checksum_as_v2 applies only to VRRPv3 over IPv4: not carried over"
                        .to_string(),
                ));
            }
        }
        if let Some(c) = garp.count {
            keys.push(("announce-count".into(), c));
        }
        if let Some(s) = garp.spacing {
            keys.push(("announce-spacing".into(), s));
        }
        if let Some(r) = garp.refresh {
            keys.push(("announce-refresh".into(), r));
        }
        let mut tracks = Vec::new();
        if owner && !checks.is_empty() {
            self.notes.push(Note::attention(n, "an address owner (priority 255) cannot be moved by tracking in vipd (RFC 5798 §6.1): its track_* entries are not carried over".to_string()));
        } else {
            let mut names: HashSet<String> = HashSet::new();
            for (mut tkeys, w, is_file, reverse, t) in checks {
                if reverse {
                    self.notes.push(Note::attention(&t, "weight ... reverse is not supported by vipd: the check is converted without reverse (healthy means healthy)".to_string()));
                }
                let vw = if is_file {
                    if w > 0 {
                        self.notes.push(Note::attention(&t, format!("track_file weight {w}: keepalived adds weight x value to the priority; vipd subtracts it (weight {w} written): make the file's tooling write higher values for worse, or negate its values")));
                    }
                    w.unsigned_abs()
                } else {
                    w.unsigned_abs()
                };
                let vw = if vw > 254 {
                    self.notes.push(Note::attention(
                        &t,
                        format!("weight {w} is beyond vipd's 0..=254: 254 written"),
                    ));
                    254
                } else {
                    vw
                };
                // Unique check names within the instance.
                let base = tkeys
                    .iter()
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut nm = base.clone();
                let mut i = 2;
                while !names.insert(nm.clone()) {
                    nm = q(&format!("{}-{i}", base.trim_matches('"')));
                    i += 1;
                }
                for kv in tkeys.iter_mut() {
                    if kv.0 == "name" {
                        kv.1 = nm.clone();
                    }
                }
                tkeys.push(("weight".into(), vw.to_string()));
                tracks.push(tkeys);
            }
        }
        Some(OutInstance {
            kname,
            at: n.at.clone(),
            keys,
            tracks,
            notify,
        })
    }

    fn vips(&mut self, c: &Node, out: &mut Vec<(String, IpAddr)>, interface: Option<&str>) {
        for v in c.children() {
            let (addr, len) = match v.key.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (v.key.as_str(), None),
            };
            let Ok(ip) = addr.parse::<IpAddr>() else {
                let why = if addr.contains('-') {
                    "address ranges are not supported by the importer: list each address"
                } else {
                    "not an IP address"
                };
                self.notes.push(Note::attention(
                    v,
                    format!("virtual address {:?}: {why}: not carried over", v.key),
                ));
                continue;
            };
            let max = if ip.is_ipv6() { 128 } else { 32 };
            let len = match len.map(|l| l.parse::<u8>()) {
                None => max,
                Some(Ok(l)) if l <= max => l,
                Some(_) => {
                    self.notes.push(Note::attention(
                        v,
                        format!(
                            "virtual address {:?}: bad prefix length: not carried over",
                            v.key
                        ),
                    ));
                    continue;
                }
            };
            let mut i = 0;
            while i < v.args.len() {
                let opt = v.args[i].as_str();
                let val = v.args.get(i + 1).map(String::as_str).unwrap_or("");
                match opt {
                    "dev" => {
                        if Some(val) != interface {
                            self.notes.push(Note::attention(v, format!("{} is on dev {val}: vipd puts every VIP on the instance's interface; make a separate instance on {val} if it must live there", v.key)));
                        }
                        i += 2;
                    }
                    "brd" | "broadcast" | "scope" | "label" | "preferred_lft" | "valid_lft" => {
                        self.notes.push(Note::info(v, format!("address option {opt} {val} dropped (vipd adds VIPs with the prefix only)")));
                        i += 2;
                    }
                    _ => {
                        self.notes
                            .push(Note::info(v, format!("address option {opt} dropped")));
                        i += 1;
                    }
                }
            }
            if out.iter().any(|(_, a)| *a == ip) {
                self.notes
                    .push(Note::info(v, format!("{ip} is listed twice: written once")));
                continue;
            }
            out.push((format!("{ip}/{len}"), ip));
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

/// keepalived weight of a `NAME [weight W [reverse]]` line.
fn weight_of(t: &Node, default: i64, notes: &mut Vec<Note>) -> (i64, bool) {
    match t.args.iter().position(|a| a == "weight") {
        None => {
            if !t.args.is_empty() {
                notes.push(Note::attention(
                    t,
                    format!("options {:?} not understood: ignored", t.args.join(" ")),
                ));
            }
            (default, false)
        }
        Some(i) => {
            let reverse = t.args.iter().any(|a| a == "reverse");
            match t.args.get(i + 1).and_then(|w| w.parse::<i64>().ok()) {
                Some(w) => (w, reverse),
                None => {
                    notes.push(Note::attention(
                        t,
                        "weight is not a number: the default weight kept".to_string(),
                    ));
                    (default, reverse)
                }
            }
        }
    }
}

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
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words("/bin/x 'a b' \"c d\" e\\ f").expect("splits"),
            vec!["/bin/x", "a b", "c d", "e f"]
        );
        assert_eq!(split_words("a 'b").map(|_| ()), None);
        assert_eq!(split_words("").expect("empty"), Vec::<String>::new());
    }

    #[test]
    fn scripts_map_to_the_cheapest_kind() {
        assert!(
            matches!(script_kind("killall -0 haproxy"), ScriptKind::Process(p) if p == "haproxy")
        );
        assert!(
            matches!(script_kind("/usr/bin/pidof nginx"), ScriptKind::Process(p) if p == "nginx")
        );
        assert!(matches!(script_kind("pgrep -x sshd"), ScriptKind::Process(p) if p == "sshd"));
        assert!(
            matches!(script_kind("</dev/tcp/127.0.0.1/80"), ScriptKind::Tcp(a) if a == "127.0.0.1:80")
        );
        assert!(
            matches!(script_kind("bash -c '</dev/tcp/::1/443'"), ScriptKind::Tcp(a) if a == "[::1]:443")
        );
        match script_kind("/usr/local/bin/check web") {
            ScriptKind::Exec(c, None) => assert_eq!(c, vec!["/usr/local/bin/check", "web"]),
            _ => panic!("exec"),
        }
        match script_kind("nc -z 127.0.0.1 80") {
            ScriptKind::Exec(c, Some(_)) => {
                assert_eq!(c, vec!["/usr/bin/env", "nc", "-z", "127.0.0.1", "80"])
            }
            _ => panic!("env"),
        }
        match script_kind("curl -sf http://x/ || exit 1") {
            ScriptKind::Exec(c, Some(_)) => {
                assert_eq!(c[..2], ["/bin/sh".to_string(), "-c".to_string()])
            }
            _ => panic!("sh"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(secs_to_duration("1").map(|d| d.0), Some("1s".into()));
        assert_eq!(secs_to_duration("0.5").map(|d| d.0), Some("500ms".into()));
        assert_eq!(secs_to_duration("-1"), None);
        assert_eq!(secs_to_duration("x"), None);
    }

    #[test]
    fn names() {
        assert_eq!(vipd_name("VI_1"), "VI_1");
        assert_eq!(vipd_name("web vip#1"), "web-vip-1");
        assert_eq!(vipd_name(""), "instance");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(q("a\"b\\c"), "'a\"b\\c'");
        assert_eq!(q("plain"), "\"plain\"");
    }
}
