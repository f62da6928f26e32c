//! Conversion tests: one small keepalived config per keyword, the TOML it becomes and
//! the notes it leaves.

use std::path::{Path, PathBuf};

use super::*;
use Severity::{Attention, Info};

fn conv(text: &str) -> Import {
    let files = MemFiles(
        [(
            PathBuf::from("/etc/keepalived/keepalived.conf"),
            text.to_string(),
        )]
        .into(),
    );
    import(&files, Path::new("/etc/keepalived/keepalived.conf"), "lb1").expect("converts")
}

/// The conversion of one `vrrp_instance A` on eth0 with VRID 7: `lines` (each ` key
/// ...\n`, from line 4 on), then `vip` as its only virtual address.
fn conv_one(lines: &str, vip: &str) -> Import {
    conv(&format!(
        "vrrp_instance A {{\n interface eth0\n virtual_router_id 7\n{lines} virtual_ipaddress {{\n {vip}\n }}\n}}\n"
    ))
}

/// The parsed vipd config of a conversion (it must pass validation).
fn cfg(i: &Import) -> crate::config::Config {
    crate::config::parse(&i.toml, "converted.toml").unwrap_or_else(|e| panic!("{e}\n{}", i.toml))
}

fn has_note(i: &Import, line: usize, keyword: &str, sev: Severity, frag: &str) {
    assert!(
        i.notes.iter().any(|n| n.at.line == line
            && n.keyword == keyword
            && n.severity == sev
            && n.message.contains(frag)),
        "no {sev:?} note for {keyword} at line {line} containing {frag:?}:\n{}",
        i.notes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const PAIR: &str = r#"
global_defs {
    router_id lb1
    vrrp_startup_delay 5
    vrrp_garp_master_repeat 3
}
vrrp_script chk_haproxy {
    script "killall -0 haproxy"
    interval 2
    weight -30
    fall 3
    rise 2
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    version 3
    virtual_ipaddress {
        192.0.2.100/24 dev eth0
        192.0.2.101
    }
    track_script {
        chk_haproxy
    }
}
"#;

#[test]
fn a_typical_pair_member_converts_completely() {
    let i = conv(PAIR);
    assert!(i.complete(), "{:#?}", i.notes);
    let c = cfg(&i);
    assert_eq!(c.startup_delay, std::time::Duration::from_secs(5));
    let inst = &c.instances[0];
    assert_eq!(
        (
            inst.name.as_str(),
            inst.interface.as_str(),
            inst.vrid,
            inst.priority
        ),
        ("VI_1", "eth0", 51, 150)
    );
    assert_eq!(inst.advert_interval, crate::proto::Centis(10));
    assert_eq!(inst.version, crate::proto::Version::V3);
    let vips: Vec<String> = inst.vips.iter().map(|v| v.to_string()).collect();
    assert_eq!(vips, vec!["192.0.2.100/24", "192.0.2.101/32"]);
    assert_eq!(inst.announce.count, 3);
    let t = &inst.tracks[0];
    assert_eq!(t.name, "chk_haproxy");
    assert!(matches!(&t.kind, crate::track::CheckKind::Process(m) if m.name == "haproxy"));
    assert_eq!((t.weight, t.rise, t.fall), (30, 2, 3));
    assert_eq!(t.interval, std::time::Duration::from_secs(2));
    has_note(&i, 3, "router_id", Info, "no effect on VRRP");
    has_note(&i, 15, "state", Info, "elects by priority");
    assert_eq!(i.instances, 1);
}

#[test]
fn keepalived_defaults_are_written_out() {
    let i = conv("vrrp_instance A {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n");
    assert!(i.complete(), "{:#?}", i.notes);
    let inst = &cfg(&i).instances[0];
    // keepalived: VRRPv2, 1 s, priority 100.
    assert_eq!(inst.version, crate::proto::Version::V2);
    assert_eq!(inst.advert_interval, crate::proto::Centis(100));
    assert_eq!(inst.priority, 100);
    assert!(inst.preempt);
    assert!(
        i.toml.contains("advert-interval = \"1s\"\nversion = 2\n"),
        "{}",
        i.toml
    );
}

#[test]
fn preemption_peers_source_and_checksum() {
    let i = conv(
        "global_defs {\n vrrp_version 3\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n priority 90\n nopreempt\n preempt_delay 10\n unicast_src_ip 192.0.2.11\n unicast_peer {\n  192.0.2.12\n  192.0.2.13 min_ttl 255\n }\n v3_checksum_as_v2\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 8\n preempt_delay 2.5\n virtual_ipaddress {\n 192.0.2.6/24\n }\n}\n",
    );
    let c = cfg(&i);
    let a = &c.instances[0];
    assert!(!a.preempt);
    assert_eq!(a.version, crate::proto::Version::V3);
    assert_eq!(a.source_address, Some("192.0.2.11".parse().unwrap()));
    assert_eq!(a.unicast_peers.len(), 2);
    assert!(!a.checksum_pseudo_header);
    has_note(&i, 9, "preempt_delay", Info, "no effect with nopreempt");
    has_note(&i, 13, "192.0.2.13", Info, "TTL 255");
    let b = &c.instances[1];
    assert_eq!(b.preempt_delay, std::time::Duration::from_millis(2500));
}

#[test]
fn positive_weights_become_a_higher_base_with_penalties() {
    // keepalived: 100 + 2 (eth1 up) + 5 (script ok) = 107 healthy; each failure subtracts.
    let i = conv(
        "vrrp_script chk {\n script \"/usr/local/bin/chk web\"\n weight 5\n timeout 3\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n priority 100\n track_interface {\n  eth1 weight 2\n  eth2 weight -3\n  eth3\n }\n track_script {\n  chk\n  chk weight -20\n }\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n",
    );
    let inst = &cfg(&i).instances[0];
    assert_eq!(inst.priority, 107);
    let w: Vec<(String, u8)> = inst
        .tracks
        .iter()
        .map(|t| (t.name.clone(), t.weight))
        .collect();
    assert_eq!(
        w,
        vec![
            ("interface eth1".to_string(), 2),
            ("interface eth2".to_string(), 3),
            ("interface eth3".to_string(), 0),
            ("chk".to_string(), 5),
            ("chk-2".to_string(), 20),
        ]
    );
    assert!(
        matches!(&inst.tracks[3].kind, crate::track::CheckKind::Exec { program, args, .. } if program.to_str() == Some("/usr/local/bin/chk") && args == &["web".to_string()])
    );
    // keepalived's default timeout 3 s is not shorter than its 1 s interval.
    assert_eq!(
        inst.tracks[3].timeout,
        std::time::Duration::from_millis(990)
    );
    has_note(&i, 1, "vrrp_script", Info, "timeout 3s is not shorter");
    has_note(&i, 6, "vrrp_instance", Info, "becomes priority 107");
}

#[test]
fn track_process_and_track_file() {
    let i = conv(
        "vrrp_track_process haproxy {\n process /usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg\n param_match partial\n quorum 2\n quorum_max 4\n delay 1\n weight -10\n}\ntrack_file weightfile {\n file \"/run/lb/weight\"\n weight -5\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n priority 100\n track_process {\n  haproxy\n }\n track_file {\n  weightfile\n }\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.notes);
    let inst = &cfg(&i).instances[0];
    match &inst.tracks[0].kind {
        crate::track::CheckKind::Process(m) => {
            assert_eq!(m.name, "/usr/sbin/haproxy");
            assert_eq!(
                m.args.as_deref(),
                Some(&["-f".to_string(), "/etc/haproxy/haproxy.cfg".to_string()][..])
            );
            assert_eq!(m.args_match, crate::track::ArgsMatch::Partial);
            assert_eq!((m.min_count, m.max_count), (2, Some(4)));
        }
        k => panic!("{k:?}"),
    }
    // delay 1 s at a 500 ms poll: 3 probes.
    assert_eq!(
        (
            inst.tracks[0].rise,
            inst.tracks[0].fall,
            inst.tracks[0].weight
        ),
        (3, 3, 10)
    );
    assert!(
        matches!(&inst.tracks[1].kind, crate::track::CheckKind::File { path } if path.to_str() == Some("/run/lb/weight"))
    );
    assert_eq!(inst.tracks[1].weight, 5);
}

#[test]
fn positive_file_weight_and_reverse_need_attention() {
    let i = conv(
        "track_file f {\n file /run/w\n weight 3 reverse\n init_file 0\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n track_file {\n  f\n }\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n",
    );
    assert!(!i.complete());
    has_note(&i, 4, "init_file", Attention, "does not create");
    has_note(&i, 10, "f", Attention, "reverse is not supported");
    has_note(&i, 10, "f", Attention, "keepalived adds weight x value");
    cfg(&i);
}

#[test]
fn notify_hooks() {
    let i = conv_one(" notify_master \"/etc/keepalived/master.sh up\"\n notify_backup /etc/keepalived/backup.sh\n notify_fault \"logger fault\"\n notify_stop /etc/keepalived/stop.sh root\n notify /etc/keepalived/any.sh\n", "192.0.2.5/24");
    let n = &cfg(&i).instances[0].notify;
    assert_eq!(
        n.master,
        Some(vec!["/etc/keepalived/master.sh".into(), "up".into()])
    );
    assert_eq!(n.backup, Some(vec!["/etc/keepalived/backup.sh".into()]));
    assert_eq!(
        n.fault,
        Some(vec!["/usr/bin/env".into(), "logger".into(), "fault".into()])
    );
    assert_eq!(n.stop, Some(vec!["/etc/keepalived/stop.sh".into()]));
    assert_eq!(n.any, Some(vec!["/etc/keepalived/any.sh".into()]));
    has_note(&i, 6, "notify_fault", Info, "/usr/bin/env");
    has_note(&i, 7, "notify_stop", Info, "user/group");
    has_note(&i, 8, "notify", Attention, "INSTANCE STATE REASON");
}

#[test]
fn sync_groups() {
    let i = conv(
        "vrrp_sync_group G1 {\n group {\n  A\n  B\n  MISSING\n }\n notify_master \"/usr/local/bin/g master\"\n notify_stop /x\n global_tracking\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\nvrrp_instance B {\n interface eth1\n virtual_router_id 8\n virtual_ipaddress {\n 198.51.100.5/24\n }\n}\n",
    );
    let c = cfg(&i);
    assert_eq!(c.sync_groups[0].name, "G1");
    assert_eq!(c.sync_groups[0].instances, vec!["A", "B"]);
    assert_eq!(
        c.sync_groups[0].notify.master,
        Some(vec!["/usr/local/bin/g".into(), "master".into()])
    );
    has_note(&i, 5, "MISSING", Attention, "not a converted vrrp_instance");
    has_note(&i, 8, "notify_stop", Attention, "no stop hook");
    has_note(&i, 9, "global_tracking", Info, "largest member penalty");
}

#[test]
fn garp_settings() {
    let i = conv_one(" garp_master_repeat 2\n garp_interval 0.1\n garp_master_refresh 60\n garp_master_delay 5\n garp_master_refresh_repeat 2\n", "192.0.2.5/24");
    let a = &cfg(&i).instances[0].announce;
    assert_eq!(a.count, 2);
    assert_eq!(a.spacing, std::time::Duration::from_millis(100));
    assert_eq!(a.refresh, Some(std::time::Duration::from_secs(60)));
    has_note(&i, 7, "garp_master_delay", Info, "no second delayed burst");
    has_note(&i, 8, "garp_master_refresh_repeat", Info, "announce-count");
}

#[test]
fn what_is_not_vipds_job_is_reported_with_its_place() {
    let i = conv(
        "virtual_server 192.0.2.10 80 {\n delay_loop 6\n real_server 192.0.2.20 80 {\n }\n}\nstatic_routes {\n 10.0.0.0/8 via 192.0.2.1\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 7\n authentication {\n  auth_type PASS\n  auth_pass secret\n }\n use_vmac\n virtual_routes {\n }\n frobnicate 1\n virtual_ipaddress {\n 192.0.2.5/24 dev eth9\n 192.0.2.1-10\n 2001:db8::1/64\n }\n virtual_ipaddress_excluded {\n 192.0.2.9\n }\n}\n",
    );
    assert!(!i.complete());
    has_note(&i, 1, "virtual_server", Attention, "not vipd's job");
    has_note(&i, 6, "static_routes", Attention, "network configuration");
    has_note(&i, 12, "authentication", Attention, "RFC 5798");
    has_note(&i, 12, "authentication", Attention, "nftables");
    has_note(&i, 17, "virtual_routes", Attention, "notify");
    has_note(&i, 19, "frobnicate", Attention, "no vipd equivalent");
    has_note(&i, 21, "192.0.2.5/24", Attention, "dev eth9");
    has_note(&i, 22, "192.0.2.1-10", Attention, "ranges");
    has_note(&i, 9, "vrrp_instance", Attention, "mixes address families");
    has_note(
        &i,
        25,
        "virtual_ipaddress_excluded",
        Attention,
        "not advertised",
    );
    // The nested real_server block is reported once, with its virtual_server.
    assert!(!i.notes.iter().any(|n| n.keyword == "real_server"));
    assert_eq!(cfg(&i).instances.len(), 1);
}

#[test]
fn incomplete_instances_are_left_out_with_a_reason() {
    let i = conv(
        "vrrp_instance NOIF {\n virtual_router_id 1\n virtual_ipaddress {\n 192.0.2.1\n }\n}\nvrrp_instance NOVRID {\n interface eth0\n virtual_ipaddress {\n 192.0.2.2\n }\n}\nvrrp_instance NOVIP {\n interface eth0\n virtual_router_id 3\n}\nvrrp_instance DUP1 {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 192.0.2.4\n }\n}\nvrrp_instance DUP2 {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 192.0.2.5\n }\n}\n",
    );
    has_note(&i, 1, "vrrp_instance", Attention, "no interface");
    has_note(&i, 7, "vrrp_instance", Attention, "no virtual_router_id");
    has_note(
        &i,
        13,
        "vrrp_instance",
        Attention,
        "no usable virtual_ipaddress",
    );
    has_note(&i, 24, "vrrp_instance", Attention, "vipd rejects it");
    assert_eq!((i.instances, i.instances_found), (1, 5));
    assert_eq!(cfg(&i).instances[0].name, "DUP1");
}

#[test]
fn ipv6_instances_are_v3_and_owner_is_kept() {
    let i = conv(
        "vrrp_instance V6 {\n interface eth0\n virtual_router_id 7\n version 2\n virtual_ipaddress {\n 2001:db8::100/64\n }\n}\nvrrp_instance OWN {\n interface eth0\n virtual_router_id 8\n priority 255\n virtual_ipaddress {\n 192.0.2.11/24\n }\n}\n",
    );
    let c = cfg(&i);
    assert_eq!(c.instances[0].version, crate::proto::Version::V3);
    assert_eq!(c.instances[0].family, crate::config::Family::V6);
    assert!(c.instances[1].address_owner);
    has_note(&i, 1, "vrrp_instance", Info, "IPv4 only");
}

#[test]
fn host_conditions_pick_this_hosts_lines() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n@lb1 priority 150\n@lb2 priority 100\n virtual_ipaddress {\n 192.0.2.5/24\n }\n}\n";
    let files = MemFiles([(PathBuf::from("/k.conf"), text.to_string())].into());
    let p =
        |h: &str| cfg(&import(&files, Path::new("/k.conf"), h).expect("ok")).instances[0].priority;
    assert_eq!((p("lb1"), p("lb2"), p("other")), (150, 100, 100));
}

#[test]
fn syntax_errors_fail_with_their_place() {
    let files = MemFiles([(PathBuf::from("/k.conf"), "vrrp_instance A {\n".to_string())].into());
    let e = import(&files, Path::new("/k.conf"), "h").expect_err("fails");
    assert_eq!(e.to_string(), "/k.conf:1: this '{' is never closed");
}

#[test]
fn summary_line() {
    let i = conv(PAIR);
    assert!(
        summary(&i).contains("converted 1 of 1 vrrp_instance(s); 0 keyword(s) need attention"),
        "{}",
        summary(&i)
    );
}

#[test]
fn use_vmac_becomes_virtual_mac_and_what_cannot_move_is_reported() {
    let i = conv_one(" use_vmac vrrp.7\n vmac_xmit_base\n", "192.0.2.5/24");
    assert!(i.complete(), "{:#?}", i.notes);
    assert!(cfg(&i).instances[0].virtual_mac);
    has_note(&i, 4, "use_vmac", Info, "vrrp4-IFINDEX-VRID");
    has_note(&i, 5, "vmac_xmit_base", Info, "parent interface");
    // Without use_vmac: no virtual MAC.
    let i = conv_one("", "192.0.2.5/24");
    assert!(!cfg(&i).instances[0].virtual_mac);
    // IPv6 converts too (link vrrp6-...); the address owner keeps the interface's MAC,
    // and says so.
    let i = conv_one(" use_vmac vrrp.7\n", "2001:db8::5/64");
    assert!(i.complete(), "{:#?}", i.notes);
    assert!(cfg(&i).instances[0].virtual_mac);
    has_note(&i, 4, "use_vmac", Info, "vrrp6-IFINDEX-VRID");
    let i = conv_one(" priority 255\n use_vmac\n", "192.0.2.5/24");
    assert!(!cfg(&i).instances[0].virtual_mac);
    has_note(&i, 5, "use_vmac", Attention, "address owner");
}
