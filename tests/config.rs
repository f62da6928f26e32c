//! Configuration: every validation rule with a bad file, its LINE:COL and its message;
//! defaults; the shipped example configs.

mod config_common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vipd::config::{self, Announce, Family};
use vipd::proto::{Centis, Version};
use vipd::track::{CheckKind, NotifySpec};

use config_common::{expect, fixture, ok, track, BASE};

/// Loads a valid fixture (panics with its diagnostics if it is rejected).
#[track_caller]
fn good(name: &str) -> config::Config {
    config::load(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

// ---- defaults and shapes ------------------------------------------------------------

#[test]
fn zero_instances_is_valid_with_defaults() {
    let c = ok("");
    assert_eq!(
        c.process.control_socket,
        PathBuf::from("/run/vipd/vipd.sock")
    );
    assert_eq!(c.process.state_dir, PathBuf::from("/var/lib/vipd"));
    assert_eq!(c.process.control_group, None);
    assert_eq!(c.process.metrics_listen, None);
    assert!(c.instances.is_empty());
    assert!(c.sync_groups.is_empty());
    assert!(c.summary().is_empty());
}

#[test]
fn top_level_keys() {
    let c = good("top_level_keys.toml");
    assert_eq!(c.process.control_socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(c.process.control_group.as_deref(), Some("vipd-ops"));
    assert_eq!(
        c.process.metrics_listen,
        Some("[::1]:9638".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(c.process.state_dir, PathBuf::from("/srv/vipd"));
}

#[test]
fn instance_defaults() {
    let c = ok(BASE);
    let i = &c.instances[0];
    assert_eq!(i.name, "web");
    assert_eq!(i.interface, "eth0");
    assert_eq!(i.vrid, 51);
    assert_eq!(i.priority, 100);
    assert!(!i.address_owner);
    assert_eq!(i.advert_interval, Centis(100));
    assert_eq!(i.version, Version::V3);
    assert!(i.preempt);
    assert_eq!(i.preempt_delay, Duration::ZERO);
    assert_eq!(
        i.vips,
        vec!["192.0.2.100/24".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(i.family, Family::V4);
    assert!(i.unicast_peers.is_empty());
    assert_eq!(i.source_address, None);
    assert!(i.checksum_pseudo_header);
    assert_eq!(
        i.announce,
        Announce {
            count: 5,
            spacing: Duration::from_millis(200),
            refresh: None
        }
    );
    assert!(i.tracks.is_empty());
    assert_eq!(
        i.notify,
        NotifySpec {
            timeout: Duration::from_secs(10),
            ..NotifySpec::default()
        }
    );
}

#[test]
fn every_instance_key() {
    let c = good("every_instance_key.toml");
    let i = &c.instances[0];
    assert_eq!(i.priority, 150);
    assert_eq!(i.advert_interval, Centis(10));
    assert_eq!(i.preempt_delay, Duration::from_secs(30));
    assert_eq!(
        i.vips[1].to_string(),
        "192.0.2.101/32",
        "a bare address is a host route"
    );
    assert_eq!(i.unicast_peers.len(), 2);
    assert_eq!(
        i.source_address,
        Some("192.0.2.11".parse::<IpAddr>().unwrap())
    );
    assert!(!i.checksum_pseudo_header);
    assert_eq!(
        i.announce,
        Announce {
            count: 3,
            spacing: Duration::from_secs(1),
            refresh: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(
        i.notify.master,
        Some(vec![
            "/usr/local/bin/notify".to_owned(),
            "master".to_owned()
        ])
    );
    assert_eq!(
        i.notify.any,
        Some(vec!["/usr/local/bin/log-state".to_owned()])
    );
    assert_eq!(i.notify.backup, None);
    assert_eq!(i.notify.timeout, Duration::from_secs(5));
    let t = &i.tracks[0];
    assert_eq!(t.name, "http http://127.0.0.1:8080/health");
    assert_eq!(
        t.kind,
        CheckKind::Http {
            url: "http://127.0.0.1:8080/health".to_owned(),
            expect_status: vec![(200, 200), (300, 399)]
        }
    );
    assert_eq!(
        (t.interval, t.timeout),
        (Duration::from_secs(1), Duration::from_millis(500))
    );
    assert_eq!((t.rise, t.fall, t.weight), (3, 4, 0));
}

#[test]
fn track_kinds_and_defaults() {
    let c = good("track_kinds.toml");
    let t = &c.instances[0].tracks;
    assert_eq!(t.len(), 4);
    assert_eq!(
        t[0].kind,
        CheckKind::Http {
            url: "http://192.0.2.10/".into(),
            expect_status: vec![(200, 299)]
        }
    );
    assert_eq!(
        (t[0].interval, t[0].timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!((t[0].rise, t[0].fall, t[0].weight), (2, 2, 10));
    assert_eq!(t[1].name, "haproxy");
    assert_eq!(
        t[1].kind,
        CheckKind::Tcp {
            address: "192.0.2.10:443".parse().unwrap()
        }
    );
    assert_eq!(
        t[2].kind,
        CheckKind::Exec {
            program: "/usr/lib/vipd/check".into(),
            args: vec!["-q".into()],
            keep_capabilities: false,
        }
    );
    assert_eq!(t[2].name, "exec /usr/lib/vipd/check");
    assert_eq!(
        t[3].kind,
        CheckKind::Interface {
            name: "eth1".into()
        }
    );
}

#[test]
fn version_2_stores_seconds_as_centis_and_no_pseudo_header() {
    let c = good("version_2.toml");
    let i = &c.instances[0];
    assert_eq!(i.version, Version::V2);
    assert_eq!(i.advert_interval, Centis(300));
    assert!(!i.checksum_pseudo_header);
}

#[test]
fn rfc5798_5_2_7_advert_interval_bounds_accepted() {
    for (text, centis) in [("10ms", 1), ("40.95s", 4095), ("1.5s", 150), ("20s", 2000)] {
        let c = ok(&BASE.replace(
            "vrid = 51",
            &format!("vrid = 51\nadvert-interval = \"{text}\""),
        ));
        assert_eq!(c.instances[0].advert_interval, Centis(centis), "{text}");
    }
}

#[test]
fn rfc5798_5_2_9_ipv6_link_local_vip_derived_first() {
    let c = good("ipv6_link_local_derived.toml");
    let i = &c.instances[0];
    assert_eq!(i.family, Family::V6);
    // EUI-64 of the virtual MAC 00-00-5E-00-02-33 (VRID 51).
    assert_eq!(i.vips[0].to_string(), "fe80::200:5eff:fe00:233/64");
    assert_eq!(i.vips[1].to_string(), "2001:db8::100/64");
    assert!(i.checksum_pseudo_header, "IPv6 always has a pseudo-header");
}

#[test]
fn rfc5798_5_2_9_ipv6_explicit_link_local_first_is_kept() {
    let c = good("ipv6_link_local_explicit.toml");
    let v: Vec<String> = c.instances[0].vips.iter().map(|n| n.to_string()).collect();
    assert_eq!(v, ["fe80::51/64", "2001:db8::100/64"]);
}

#[test]
fn rfc5798_6_1_address_owner_defaults_to_priority_255() {
    let c = config::load(&fixture("owner_ok.toml")).unwrap();
    assert_eq!(c.instances[0].priority, 255);
    assert!(c.instances[0].address_owner);
}

#[test]
fn same_text_gives_equal_instances_and_a_change_is_seen() {
    let a = ok(BASE);
    let b = ok(BASE);
    assert_eq!(a.instances[0], b.instances[0]);
    let c = ok(&BASE.replace("vrid = 51", "vrid = 51\npriority = 101"));
    assert_ne!(a.instances[0], c.instances[0]);
}

#[test]
fn sync_group_accepted() {
    let c = good("sync_group.toml");
    let g = &c.sync_groups[0];
    assert_eq!(g.name, "lb");
    assert_eq!(g.instances, ["web", "db"]);
    assert_eq!(
        g.notify.master,
        Some(vec!["/usr/local/bin/lb-master".to_owned()])
    );
}

#[test]
fn summary_and_check_report() {
    let c = config::load(&fixture("minimal.toml")).unwrap();
    assert_eq!(
        c.summary(),
        ["web: eth0 vrid 51 IPv4 v3 priority 100 interval 1s preempt multicast vips 192.0.2.100/24 tracks 0"]
    );
    let (good, text) = config::check_report(&fixture("minimal.toml"));
    assert!(good);
    assert!(text.contains("OK: 1 instance(s)"), "{text}");
    assert!(text.contains("web: eth0 vrid 51"), "{text}");

    let (good, text) = config::check_report(&fixture("many_errors.toml"));
    assert!(!good);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert!(
        lines[0].contains("many_errors.toml:1:18: metrics-listen"),
        "{text}"
    );
    assert!(lines[7].ends_with("many_errors.toml: 7 errors"), "{text}");
}

#[test]
fn unreadable_file_is_one_diagnostic_without_position() {
    let e = config::load(Path::new("/nonexistent/vipd.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!((e.0[0].line, e.0[0].col), (0, 0));
    assert!(
        e.0[0]
            .to_string()
            .starts_with("/nonexistent/vipd.toml: cannot read"),
        "{}",
        e
    );
}

// ---- every rule, with its location ---------------------------------------------------

/// A test per bad fixture: exactly the diagnostics its own `# expect` lines list (see
/// [`expect`]).
macro_rules! rejects {
    ($($name:ident: $file:literal;)+) => {
        $(
            #[test]
            fn $name() {
                expect($file);
            }
        )+
    };
}

rejects! {
    rfc5798_5_2_3_vrid_256_rejected: "vrid_too_big.toml";
    rfc5798_5_2_4_priority_255_needs_address_owner: "priority_255_not_owner.toml";
    rfc5798_5_2_4_priority_zero_rejected: "priority_zero.toml";
    rfc5798_6_1_address_owner_needs_priority_255: "owner_priority_200.toml";
    rfc5798_5_2_7_v3_interval_10ms_steps_up_to_40_95s: "advert_interval_v3.toml";
    rfc3768_5_3_7_v2_interval_whole_seconds_1_to_255: "advert_interval_v2.toml";
    rfc3768_version_2_is_ipv4_only: "version_2_ipv6.toml";
    version_must_be_2_or_3: "version_4.toml";
    at_least_one_vip: "vips_empty.toml";
    one_address_family_per_instance: "mixed_family.toml";
    a_vip_belongs_to_one_instance: "duplicate_vip.toml";
    unicast_peers_same_family_no_duplicates: "peers_bad.toml";
    source_address_same_family: "source_family.toml";
    rfc5798_5_2_9_link_local_vip_must_be_first: "ipv6_link_local_not_first.toml";
    rfc5798_5_1_2_1_ipv6_multicast_source_is_link_local: "ipv6_source_global_multicast.toml";
    track_timeout_below_interval_and_rise_fall_at_least_one: "track_timing.toml";
    track_keys_belong_to_their_kind: "track_wrong_kind_keys.toml";
    sync_group_members_exist_and_belong_to_one_group: "sync_group_bad.toml";
    metrics_listen_is_a_socket_address: "metrics_listen_bad.toml";
    syntax_error_first_one_reported: "syntax_error.toml";
    duration_syntax_explained: "bad_duration.toml";
    checksum_form_only_for_v3_ipv4: "checksum_v2.toml";
    every_validation_error_reported_at_once: "many_errors.toml";
    rfc5798_5_2_3_vrid_zero_rejected: "vrid_zero.toml";
    missing_required_keys_all_reported_at_the_table: "missing_keys.toml";
    instance_names_unique: "duplicate_names.toml";
    interface_vrid_family_unique: "duplicate_router.toml";
    exec_and_notify_programs_absolute: "relative_programs.toml";
    unknown_top_level_key_named_with_allowed_keys: "unknown_key_top.toml";
    unknown_instance_key_named_with_location: "unknown_key_instance.toml";
    wrong_type_names_expected_type: "wrong_type.toml";
    address_owner_cannot_be_tracked_or_non_preempting: "owner_tracked_not_preempting.toml";
}

#[test]
fn keep_capabilities_is_an_opt_in_of_exec_checks_and_notify_tables() {
    let c = good("keep_capabilities.toml");
    let web = &c.instances[0];
    assert!(web.notify.keep_capabilities);
    assert!(!c.instances[1].notify.keep_capabilities, "default is off");
    assert!(c.sync_groups[0].notify.keep_capabilities);
    let kept = |i: usize| match &web.tracks[i].kind {
        CheckKind::Exec {
            keep_capabilities, ..
        } => *keep_capabilities,
        other => panic!("{other:?}"),
    };
    assert!(kept(0));
    assert!(!kept(1), "default is off");

    let e = config::parse(
        &format!(
            "{BASE}\n[[instance.track]]\nkind = \"tcp\"\naddress = \"192.0.2.10:80\"\nkeep-capabilities = true\n"
        ),
        "inline.toml",
    )
    .expect_err("keep-capabilities on a tcp check");
    assert!(
        e.to_string()
            .contains("keep-capabilities does not apply to kind = \"tcp\""),
        "{e}"
    );
}

#[test]
fn single_instance_table_hints_at_double_brackets() {
    let e = config::parse("[instance]\nname = \"web\"\n", "x.toml").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(
        e.0[0]
            .message
            .contains("expected an array (write each entry as [[instance]])"),
        "{e}"
    );
}

#[test]
fn diagnostics_display_one_line_each() {
    let e = config::load(&fixture("peers_bad.toml")).unwrap_err();
    assert_eq!(e.to_string().lines().count(), 4);
}

#[test]
fn arbitrary_text_never_panics() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&"[\\[\\]a-z0-9=\"., \n-]{0,80}", |s| {
            let _ = config::parse(&s, "p.toml");
            Ok(())
        })
        .unwrap();
}

// ---- shipped configs -----------------------------------------------------------------

#[test]
fn packaged_default_config_parses_and_claims_nothing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/vipd.toml");
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.instances.is_empty(),
        "the packaged config must claim no address"
    );
}

#[test]
fn documentation_examples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for p in &names {
        let c = config::load(p).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.instances.is_empty(), "{}", p.display());
        // Documentation addresses only.
        for i in &c.instances {
            for v in &i.vips {
                let a = v.addr().to_string();
                assert!(
                    a.starts_with("192.0.2.")
                        || a.starts_with("198.51.100.")
                        || a.starts_with("203.0.113.")
                        || a.starts_with("2001:db8:")
                        || a.starts_with("fe80:"),
                    "{}: {a}",
                    p.display()
                );
            }
        }
    }
}

// ---- [instance.bfd] -----------------------------------------------------------------

#[test]
fn bfd_defaults_to_unicast_peers_10ms_x3() {
    let c = ok(&format!(
        "{BASE}unicast-peers = [\"192.0.2.12\"]\n[instance.bfd]\n"
    ));
    let b = c.instances[0].bfd.as_ref().expect("bfd");
    assert_eq!(
        b.peers,
        vec!["192.0.2.12".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(b.interval, std::time::Duration::from_millis(10));
    assert_eq!(b.multiplier, 3);
    assert!(ok(BASE).instances[0].bfd.is_none());
}

#[test]
fn bfd_every_key() {
    let c = ok(&format!(
        "{BASE}[instance.bfd]\npeers = [\"192.0.2.12\", \"192.0.2.13\"]\ninterval = \"3ms\"\nmultiplier = 5\n"
    ));
    let b = c.instances[0].bfd.as_ref().expect("bfd");
    assert_eq!(b.peers.len(), 2);
    assert_eq!(b.interval, std::time::Duration::from_millis(3));
    assert_eq!(b.multiplier, 5);
}

fn bfd_err(body: &str) -> String {
    match config::parse(&format!("{BASE}{body}"), "inline.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bfd_bad_values_are_rejected_with_their_place() {
    // The [instance.bfd] text after BASE, and what its error must say.
    let cases: [(&str, &[&str]); 8] = [
        ("[instance.bfd]\n", &["missing key `peers`", "multicast"]),
        (
            "[instance.bfd]\npeers = [\"192.0.2.12\"]\ninterval = \"0.5ms\"\n",
            &["inline.toml:9:", "interval must be"],
        ),
        (
            "[instance.bfd]\npeers = [\"192.0.2.12\"]\nmultiplier = 0\n",
            &["multiplier must be 1..=255"],
        ),
        (
            "[instance.bfd]\npeers = [\"2001:db8::1\"]\n",
            &["address family"],
        ),
        ("[instance.bfd]\npeers = [\"192.0.2.100\"]\n", &["VIPs"]),
        (
            "[instance.bfd]\npeers = [\"192.0.2.12\", \"192.0.2.12\"]\n",
            &["twice"],
        ),
        (
            "[instance.bfd]\npeers = [\"nope\"]\n",
            &["not an IP address"],
        ),
        (
            "[instance.bfd]\npeers = [\"192.0.2.12\"]\ncolour = 1\n",
            &["colour"],
        ),
    ];
    for (body, fragments) in cases {
        let e = bfd_err(body);
        for frag in fragments {
            assert!(e.contains(frag), "{frag:?} missing: {e}");
        }
    }
}

#[test]
fn track_bfd_defaults_and_keys() {
    let t = track("kind = \"bfd\"\npeer = \"192.0.2.1\"\nweight = 40\n");
    assert_eq!(t.name, "bfd 192.0.2.1");
    assert_eq!(t.interval, std::time::Duration::from_millis(10));
    assert_eq!(
        t.kind,
        vipd::track::CheckKind::Bfd {
            peer: "192.0.2.1".parse().unwrap(),
            multiplier: 3
        }
    );
    let t = track(
        "kind = \"bfd\"\npeer = \"192.0.2.1\"\ninterval = \"3ms\"\nmultiplier = 5\nweight = 0\n",
    );
    assert_eq!(t.interval, std::time::Duration::from_millis(3));
    assert!(matches!(
        t.kind,
        vipd::track::CheckKind::Bfd { multiplier: 5, .. }
    ));
}

#[test]
fn track_bfd_bad_values() {
    let e = bfd_err("[[instance.track]]\nkind = \"bfd\"\n");
    assert!(e.contains("missing key `peer`"), "{e}");
    let e = bfd_err("[[instance.track]]\nkind = \"bfd\"\npeer = \"224.0.0.5\"\n");
    assert!(e.contains("not a unicast address"), "{e}");
    let e =
        bfd_err("[[instance.track]]\nkind = \"bfd\"\npeer = \"192.0.2.1\"\ninterval = \"0.5ms\"\n");
    assert!(e.contains("interval must be"), "{e}");
    let e = bfd_err(
        "[[instance.track]]\nkind = \"tcp\"\naddress = \"192.0.2.1:80\"\npeer = \"192.0.2.1\"\n",
    );
    assert!(e.contains("peer does not apply to kind = \"tcp\""), "{e}");
    let e = bfd_err("[[instance.track]]\nkind = \"bfd\"\npeer = \"192.0.2.1\"\nmultiplier = 300\n");
    assert!(e.contains("multiplier must be 1..=255"), "{e}");
}

#[test]
fn virtual_mac_defaults_off_and_is_for_both_families_but_not_an_owner() {
    assert!(!ok(BASE).instances[0].virtual_mac);
    assert!(ok(&format!("{BASE}virtual-mac = true\n")).instances[0].virtual_mac);
    let v6 = "[[instance]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"2001:db8::1/64\"]\nvirtual-mac = true\n";
    assert!(ok(v6).instances[0].virtual_mac);
    let owner = format!("{BASE}address-owner = true\nvirtual-mac = true\n");
    let e = config::parse(&owner, "owner.toml").expect_err("owner virtual-mac accepted");
    assert!(e.to_string().contains("address owner"), "{e}");
}
