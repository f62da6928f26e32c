//! A `vrrp_instance` block: its keys, VIPs, tracked checks and hooks, and the
//! announcement defaults of `global_defs` applied to it.

use super::*;

impl Cx<'_> {
    pub(super) fn instance(&mut self, n: &Node) -> Option<OutInstance> {
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

    pub(super) fn vips(
        &mut self,
        c: &Node,
        out: &mut Vec<(String, IpAddr)>,
        interface: Option<&str>,
    ) {
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
}
