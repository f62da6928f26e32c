//! Configuration: every validation rule with a bad file, its LINE:COL and its message;
//! defaults; the shipped example configs.

mod config_common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vipd::config::{self, Announce, Diagnostic, Family};
use vipd::proto::{Centis, Version};
use vipd::track::{CheckKind, NotifySpec};

use config_common::{ok, track, BASE};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Loads a bad fixture and returns its diagnostics (panics if it loads).
fn errors(name: &str) -> Vec<Diagnostic> {
    match config::load(&fixture(name)) {
        Ok(c) => panic!("{name} was accepted: {c:?}"),
        Err(e) => {
            assert!(!e.0.is_empty());
            for d in &e.0 {
                assert!(d.origin.ends_with(name), "origin {:?}", d.origin);
            }
            e.0
        }
    }
}

/// Asserts that exactly these (line, col, message fragment) diagnostics were reported.
#[track_caller]
fn expect(name: &str, want: &[(usize, usize, &str)]) -> Vec<Diagnostic> {
    let got = errors(name);
    let shown: Vec<String> = got.iter().map(|d| d.to_string()).collect();
    assert_eq!(got.len(), want.len(), "{name}: got {shown:#?}");
    for (d, (line, col, frag)) in got.iter().zip(want) {
        assert_eq!((d.line, d.col), (*line, *col), "{name}: position of {d}");
        assert!(
            d.message.contains(frag),
            "{name}: {:?} lacks {frag:?}",
            d.message
        );
        let text = d.to_string();
        let prefix = format!("{}:{}:{}: ", d.origin, line, col);
        assert!(text.starts_with(&prefix), "{text}");
        assert!(!text.contains('\n'));
    }
    got
}

// ---- defaults and shapes ------------------------------------------------------------

#[test]
fn zero_instances_is_valid_with_defaults() {
    let c = ok("");
    assert_eq!(c.control_socket, PathBuf::from("/run/vipd/vipd.sock"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/vipd"));
    assert_eq!(c.control_group, None);
    assert_eq!(c.metrics_listen, None);
    assert!(c.instances.is_empty());
    assert!(c.sync_groups.is_empty());
    assert!(c.summary().is_empty());
}

#[test]
fn top_level_keys() {
    let c = ok(r#"
control-socket = "/tmp/x.sock"
control-group = "vipd-ops"
metrics-listen = "[::1]:9638"
state-dir = "/srv/vipd"
"#);
    assert_eq!(c.control_socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(c.control_group.as_deref(), Some("vipd-ops"));
    assert_eq!(
        c.metrics_listen,
        Some("[::1]:9638".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(c.state_dir, PathBuf::from("/srv/vipd"));
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
    let c = ok(r#"
[[instance]]
name = "web"
interface = "eth0"
vrid = 51
priority = 150
advert-interval = "100ms"
preempt = true
preempt-delay = "30s"
vips = ["192.0.2.100/24", "192.0.2.101"]
unicast-peers = ["192.0.2.12", "192.0.2.13"]
source-address = "192.0.2.11"
checksum-pseudo-header = false
announce-count = 3
announce-spacing = "1s"
announce-refresh = "1m"

[instance.notify]
master = ["/usr/local/bin/notify", "master"]
any = ["/usr/local/bin/log-state"]
timeout = "5s"

[[instance.track]]
kind = "http"
url = "http://127.0.0.1:8080/health"
expect-status = [200, "300-399"]
interval = "1s"
timeout = "500ms"
rise = 3
fall = 4
weight = 0
"#);
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
    let c = ok(&format!(
        r#"{BASE}
[[instance.track]]
kind = "http"
url = "http://192.0.2.10/"

[[instance.track]]
kind = "tcp"
name = "haproxy"
address = "192.0.2.10:443"

[[instance.track]]
kind = "exec"
command = ["/usr/lib/vipd/check", "-q"]

[[instance.track]]
kind = "interface"
interface = "eth1"
"#
    ));
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
    let c = ok(r#"
[[instance]]
name = "old"
interface = "eth0"
vrid = 9
version = 2
advert-interval = "3s"
vips = ["192.0.2.9/24"]
"#);
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
    let c = ok(r#"
[[instance]]
name = "web6"
interface = "eth0"
vrid = 51
vips = ["2001:db8::100/64"]
"#);
    let i = &c.instances[0];
    assert_eq!(i.family, Family::V6);
    // EUI-64 of the virtual MAC 00-00-5E-00-02-33 (VRID 51).
    assert_eq!(i.vips[0].to_string(), "fe80::200:5eff:fe00:233/64");
    assert_eq!(i.vips[1].to_string(), "2001:db8::100/64");
    assert!(i.checksum_pseudo_header, "IPv6 always has a pseudo-header");
}

#[test]
fn rfc5798_5_2_9_ipv6_explicit_link_local_first_is_kept() {
    let c = ok(r#"
[[instance]]
name = "web6"
interface = "eth0"
vrid = 51
vips = ["fe80::51/64", "2001:db8::100/64"]
"#);
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
    let c = ok(r#"
[[instance]]
name = "web"
interface = "eth0"
vrid = 51
vips = ["192.0.2.100/24"]

[[instance]]
name = "db"
interface = "eth1"
vrid = 52
vips = ["198.51.100.100/24"]

[[sync-group]]
name = "lb"
instances = ["web", "db"]

[sync-group.notify]
master = ["/usr/local/bin/lb-master"]
"#);
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

#[test]
fn rfc5798_5_2_3_vrid_zero_rejected() {
    let d = expect("vrid_zero.toml", &[(4, 8, "vrid must be 1..=255, got 0")]);
    assert_eq!(d[0].key_path, "instance[0].vrid");
}

/// A test per bad fixture: exactly these `(line, col, message fragment)` diagnostics, in
/// order (see [`expect`]).
macro_rules! rejects {
    ($($(#[$doc:meta])* $name:ident: $file:literal => [$($want:expr),+ $(,)?];)+) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                expect($file, &[$($want),+]);
            }
        )+
    };
}

rejects! {
    rfc5798_5_2_3_vrid_256_rejected: "vrid_too_big.toml" => [
        (4, 8, "vrid must be 1..=255, got 256"),
    ];
    rfc5798_5_2_4_priority_255_needs_address_owner: "priority_255_not_owner.toml" => [
        (5, 12, "priority 255 is only for the address owner: set address-owner = true"),
    ];
    rfc5798_5_2_4_priority_zero_rejected: "priority_zero.toml" => [
        (5, 12, "priority must be 1..=254 (255 only with address-owner = true), got 0"),
    ];
    rfc5798_6_1_address_owner_needs_priority_255: "owner_priority_200.toml" => [
        (6, 12, "priority must be 255 with address-owner = true"),
    ];
    rfc5798_5_2_7_v3_interval_10ms_steps_up_to_40_95s: "advert_interval_v3.toml" => [
        (5, 19, "10ms..=40.95s in steps of 10ms for version 3, got \"15ms\""),
        (12, 19, "got \"41s\""),
        (19, 19, "got \"0s\""),
    ];
    rfc3768_5_3_7_v2_interval_whole_seconds_1_to_255: "advert_interval_v2.toml" => [
        (6, 19, "whole seconds 1s..=255s for version 2, got \"1.5s\""),
        (14, 19, "got \"256s\""),
    ];
    rfc3768_version_2_is_ipv4_only: "version_2_ipv6.toml" => [
        (5, 11, "version 2 (RFC 3768) is IPv4 only"),
    ];
    version_must_be_2_or_3: "version_4.toml" => [(5, 11, "version must be 2 or 3, got 4")];
    at_least_one_vip: "vips_empty.toml" => [(5, 8, "vips must list at least one address")];
    one_address_family_per_instance: "mixed_family.toml" => [
        (5, 27, "2001:db8::100/64 is IPv6 but 192.0.2.100/24 is IPv4: all VIPs of an instance are one address family"),
    ];
    a_vip_belongs_to_one_instance: "duplicate_vip.toml" => [
        (11, 9, "VIP 192.0.2.100 is already in instance \"web\" (line 5)"),
    ];
    unicast_peers_same_family_no_duplicates: "peers_bad.toml" => [
        (6, 32, "2001:db8::11 is IPv6 but the vips are IPv4"),
        (6, 48, "192.0.2.11 is listed twice"),
        (6, 62, "192.0.2.100 is one of this instance's VIPs"),
        (6, 77, "\"nope\" is not an IP address"),
    ];
    source_address_same_family: "source_family.toml" => [
        (6, 18, "2001:db8::10 is IPv6 but the vips are IPv4"),
    ];
    rfc5798_5_2_9_link_local_vip_must_be_first: "ipv6_link_local_not_first.toml" => [
        (5, 29, "the link-local VIP fe80::1/64 must be first"),
    ];
    rfc5798_5_1_2_1_ipv6_multicast_source_is_link_local: "ipv6_source_global_multicast.toml" => [
        (6, 18, "2001:db8::10 is not link-local"),
    ];
    track_timeout_below_interval_and_rise_fall_at_least_one: "track_timing.toml" => [
        (11, 11, "timeout (1s) must be shorter than interval (1s)"),
        (12, 8, "rise must be 1..=1000, got 0"),
        (13, 8, "fall must be 1..=1000, got 0"),
        // Default timeout (1s) against a written interval: points at the interval.
        (18, 12, "timeout (1s) must be shorter than interval (500ms)"),
    ];
    track_keys_belong_to_their_kind: "track_wrong_kind_keys.toml" => [
        (10, 7, "url does not apply to kind = \"tcp\" (tcp takes address)"),
        (13, 8, "kind must be \"http\", \"tcp\", \"exec\", \"interface\""),
    ];
    sync_group_members_exist_and_belong_to_one_group: "sync_group_bad.toml" => [
        (15, 21, "sync-group member \"db\" is not an instance name (instances: api, web)"),
        (19, 21, "instance \"web\" is already in sync group \"g1\""),
    ];
    metrics_listen_is_a_socket_address: "metrics_listen_bad.toml" => [
        (1, 18, "metrics-listen must be an IP address and port"),
    ];
    syntax_error_first_one_reported: "syntax_error.toml" => [(2, 12, "invalid basic string")];
    duration_syntax_explained: "bad_duration.toml" => [
        (5, 17, "preempt-delay: invalid duration \"5 s\": expected a number and a unit (ms, s, m or h)"),
    ];
    checksum_form_only_for_v3_ipv4: "checksum_v2.toml" => [
        (6, 26, "checksum-pseudo-header applies only to version 3 over IPv4"),
    ];
    every_validation_error_reported_at_once: "many_errors.toml" => [
        (1, 18, "metrics-listen"),
        (2, 13, "state-dir must be an absolute path"),
        (7, 8, "vrid must be 1..=255, got 0"),
        (8, 12, "priority must be 1..=254"),
        (9, 19, "advert-interval"),
        (14, 13, "interface must be a Linux interface name"),
        (16, 9, "\"198.51.100.300/24\" is not an address"),
    ];
}

#[test]
fn missing_required_keys_all_reported_at_the_table() {
    let d = expect(
        "missing_keys.toml",
        &[
            (3, 1, "missing key `interface`"),
            (3, 1, "missing key `vrid`"),
            (3, 1, "missing key `vips`"),
        ],
    );
    assert_eq!(d[1].key_path, "instance[0].vrid");
}

#[test]
fn instance_names_unique() {
    let d = expect(
        "duplicate_names.toml",
        &[(
            8,
            8,
            "instance name \"web\" is already used by the instance at line 2",
        )],
    );
    assert_eq!(d[0].key_path, "instance[1].name");
}

#[test]
fn interface_vrid_family_unique() {
    let d = expect(
        "duplicate_router.toml",
        &[(
            10,
            8,
            "vrid 51 on eth0 (IPv4) is already used by instance \"web\" at line 1",
        )],
    );
    assert_eq!(d[0].key_path, "instance[1].vrid");
}

#[test]
fn keep_capabilities_is_an_opt_in_of_exec_checks_and_notify_tables() {
    let c = ok(&format!(
        r#"{BASE}
[instance.notify]
master = ["/usr/local/bin/m"]
keep-capabilities = true

[[instance.track]]
kind = "exec"
command = ["/usr/lib/vipd/check"]
keep-capabilities = true

[[instance.track]]
kind = "exec"
command = ["/usr/lib/vipd/check2"]

[[instance]]
name = "db"
interface = "eth1"
vrid = 52
vips = ["198.51.100.100/24"]

[[sync-group]]
name = "lb"
instances = ["web", "db"]

[sync-group.notify]
master = ["/usr/local/bin/lb-master"]
keep-capabilities = true
"#
    ));
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
fn exec_and_notify_programs_absolute() {
    let d = expect(
        "relative_programs.toml",
        &[
            (8, 11, "master: the program must be an absolute path"),
            (12, 12, "command: the program must be an absolute path"),
        ],
    );
    assert_eq!(d[0].key_path, "instance[0].notify.master");
    assert_eq!(d[1].key_path, "instance[0].track[0].command");
}

#[test]
fn unknown_top_level_key_named_with_allowed_keys() {
    let d = expect(
        "unknown_key_top.toml",
        &[(2, 1, "unknown key `metrics_listen`; allowed keys here: `control-socket`, `control-group`, `metrics-listen`")],
    );
    assert_eq!(d[0].key_path, "metrics_listen");
}

#[test]
fn unknown_instance_key_named_with_location() {
    let d = expect(
        "unknown_key_instance.toml",
        &[(6, 1, "unknown key `advert_int`")],
    );
    assert!(d[0].message.contains("`advert-interval`"));
    assert_eq!(d[0].key_path, "instance[0].advert_int");
}

#[test]
fn wrong_type_names_expected_type() {
    let d = expect(
        "wrong_type.toml",
        &[(4, 8, "invalid type: string \"51\", expected an integer")],
    );
    assert_eq!(d[0].key_path, "instance[0].vrid");
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
fn address_owner_cannot_be_tracked_or_non_preempting() {
    let e = config::parse(
        r#"
[[instance]]
name = "o"
interface = "eth0"
vrid = 1
address-owner = true
preempt = false
vips = ["192.0.2.1/24"]

[[instance.track]]
kind = "interface"
interface = "eth1"
"#,
        "o.toml",
    )
    .unwrap_err();
    let got: Vec<(usize, usize)> = e.0.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(got, [(7, 11), (10, 1)], "{e}");
    assert!(e.0[0].message.contains("always preempts (RFC 5798 §6.1)"));
    assert!(e.0[1]
        .message
        .contains("an address owner cannot be tracked"));
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
    let e = bfd_err("[instance.bfd]\n");
    assert!(
        e.contains("missing key `peers`") && e.contains("multicast"),
        "{e}"
    );
    let e = bfd_err("[instance.bfd]\npeers = [\"192.0.2.12\"]\ninterval = \"0.5ms\"\n");
    assert!(
        e.contains("inline.toml:9:") && e.contains("interval must be"),
        "{e}"
    );
    let e = bfd_err("[instance.bfd]\npeers = [\"192.0.2.12\"]\nmultiplier = 0\n");
    assert!(e.contains("multiplier must be 1..=255"), "{e}");
    let e = bfd_err("[instance.bfd]\npeers = [\"2001:db8::1\"]\n");
    assert!(e.contains("address family"), "{e}");
    let e = bfd_err("[instance.bfd]\npeers = [\"192.0.2.100\"]\n");
    assert!(e.contains("VIPs"), "{e}");
    let e = bfd_err("[instance.bfd]\npeers = [\"192.0.2.12\", \"192.0.2.12\"]\n");
    assert!(e.contains("twice"), "{e}");
    let e = bfd_err("[instance.bfd]\npeers = [\"nope\"]\n");
    assert!(e.contains("not an IP address"), "{e}");
    let e = bfd_err("[instance.bfd]\npeers = [\"192.0.2.12\"]\ncolour = 1\n");
    assert!(e.contains("colour"), "{e}");
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
