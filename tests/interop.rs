//! Interoperation with keepalived 2.2.7 (the reference peer), in network namespaces only.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test interop -- --nocapture --test-threads=1`
//! (root needed; without root every test skips unless VIPD_REQUIRE_NETNS=1). Each test builds
//! its own topology (see `integration/README.md`), prints `MEASURE` lines with the figures.
//!
//! Longer than 600 lines on purpose: one self-contained scenario per interoperation case
//! with keepalived (crash and return, equal priority, graceful stop, checksum forms, IPv6); the keepalived
//! and vipd configurations come from `tests/harness` (`keepalived.rs`, `vipd.rs`).

mod harness;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use harness::vipd::{
    craft_spawn, dropped, instance_field, metric_sum, metrics_text, vipd_conf, vipd_state,
    wait_vipd_state, VipdInstance,
};
use harness::{
    keepalived_conf, keepalived_config_complaints, netns_test, wait_until, Agent, AgentKind,
    KeepalivedInstance, Topology, TopologyOpts,
};

const VRID: u8 = 51;
const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
/// The link-local VIP vipd derives for VRID 51 (0x33): EUI-64 of 00-00-5E-00-02-33.
const LL_VIP6: &str = "fe80::200:5eff:fe00:233/64";
const NAME: &str = "web";

fn addr(s: &str) -> IpAddr {
    s.parse().expect("constant address parses")
}

/// How the pair talks.
#[derive(Debug, Clone, Copy)]
struct Mode {
    version: u8,
    unicast: bool,
    v6: bool,
}

impl Mode {
    const V3: Mode = Mode::new(3, false, false);
    const V2: Mode = Mode::new(2, false, false);
    const V3_UNICAST: Mode = Mode::new(3, true, false);
    const V2_UNICAST: Mode = Mode::new(2, true, false);
    const V3_IPV6: Mode = Mode::new(3, false, true);

    const fn new(version: u8, unicast: bool, v6: bool) -> Mode {
        Mode {
            version,
            unicast,
            v6,
        }
    }

    /// v3: 100 ms; v2: whole seconds only, 1 s.
    fn interval(self) -> Duration {
        if self.version == 2 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        }
    }

    fn vip(self) -> IpAddr {
        addr(if self.v6 { VIP6 } else { VIP4 })
    }

    fn vip_cidr(self) -> String {
        if self.v6 {
            format!("{VIP6}/64")
        } else {
            format!("{VIP4}/24")
        }
    }

    /// keepalived's `virtual_ipaddress`: for IPv6 the link-local VIP vipd derives for VRID 51
    /// (RFC 5798 §5.2.9, §7.3: fe80::200:5eff:fe00:233) comes first, written explicitly as
    /// docs/configuration.md says to do with other implementations. keepalived 2.2.7 drops
    /// adverts whose address count differs from its own ("received an unexpected ip number
    /// count"), see `ipv6_keepalived_without_link_local_vip_ignores_vipd`.
    fn ka_vips(self) -> Vec<String> {
        if self.v6 {
            vec![LL_VIP6.to_string(), format!("{VIP6}/64")]
        } else {
            vec![format!("{VIP4}/24")]
        }
    }

    /// RFC 5798 §6.1: Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    fn master_down(self, priority: u8) -> Duration {
        harness::timers::mdi(priority, self.interval())
    }
}

fn host_ip(topo: &Topology, host: &str, v6: bool) -> IpAddr {
    if v6 {
        topo.ip6(host).into()
    } else {
        topo.ip4(host).into()
    }
}

/// The kernel link-local address of `host`'s eth0.
fn link_local(topo: &Topology, host: &str) -> IpAddr {
    topo.addresses(host)
        .into_iter()
        .find(|(dev, a)| {
            dev == "eth0"
                && matches!(a, IpAddr::V6(v) if v.segments()[0] == 0xfe80)
                && a.to_string() != LL_VIP6.trim_end_matches("/64")
        })
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("{host} has no link-local address"))
}

fn other(host: &str) -> &'static str {
    if host == "lb1" {
        "lb2"
    } else {
        "lb1"
    }
}

/// Which agent runs where, and with what priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vipd,
    Keepalived,
}

impl Kind {
    /// The agent on the other side: every scenario pairs vipd with keepalived.
    fn other(self) -> Kind {
        match self {
            Kind::Vipd => Kind::Keepalived,
            Kind::Keepalived => Kind::Vipd,
        }
    }
}

/// Waits (up to 5 s) until both agents agree on the roles: `master` reports master and
/// `backup` backup; panics with both states otherwise.
#[track_caller]
fn expect_roles(test: &str, topo: &Topology, master: (&Agent, Kind), backup: (&Agent, Kind)) {
    let states = || {
        (
            state_of(topo, master.0, master.1),
            state_of(topo, backup.0, backup.1),
        )
    };
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let (m, b) = states();
        m.as_deref() == Some("master") && b.as_deref() == Some("backup")
    });
    assert!(
        ok,
        "{test}: states (master-to-be {}, backup-to-be {}): {:?}",
        master.0.host(),
        backup.0.host(),
        states()
    );
}

fn start(topo: &Topology, host: &str, kind: Kind, prio: u8, mode: Mode) -> Agent {
    let peer = other(host);
    match kind {
        Kind::Vipd => {
            let mut i = VipdInstance::new(NAME, VRID, prio, &[&mode.vip_cidr()])
                .version(mode.version)
                .interval(if mode.version == 2 { "1s" } else { "100ms" });
            if mode.unicast {
                i = i.unicast(&[host_ip(topo, peer, mode.v6)]);
            }
            topo.start_agent(host, AgentKind::vipd(), &vipd_conf(topo, host, &[i]))
        }
        Kind::Keepalived => {
            let mut k = KeepalivedInstance::new(NAME, VRID, prio)
                .version(mode.version)
                .advert_int(mode.interval());
            for v in mode.ka_vips() {
                k = k.vip(&v);
            }
            if mode.unicast {
                k = k.unicast(
                    host_ip(topo, host, mode.v6),
                    &[host_ip(topo, peer, mode.v6)],
                );
            }
            topo.start_agent(host, AgentKind::Keepalived, &keepalived_conf(&[k]))
        }
    }
}

/// keepalived's state as its latest run logged it.
fn ka_state(a: &Agent) -> Option<&'static str> {
    let log = a.log();
    let m = log.rfind("Entering MASTER STATE");
    let b = log.rfind("Entering BACKUP STATE");
    match (m, b) {
        (None, None) => None,
        (Some(_), None) => Some("master"),
        (None, Some(_)) => Some("backup"),
        (Some(m), Some(b)) => Some(if m > b { "master" } else { "backup" }),
    }
}

fn state_of(topo: &Topology, a: &Agent, kind: Kind) -> Option<String> {
    match kind {
        Kind::Vipd => vipd_state(topo, a.host(), NAME),
        Kind::Keepalived => ka_state(a).map(String::from),
    }
}

fn assert_ka_config_clean(a: &Agent) {
    // Let it parse and log its configuration first.
    let _ = a.wait_log("Entering BACKUP STATE", Duration::from_secs(10));
    let c = keepalived_config_complaints(&a.log());
    assert!(c.is_empty(), "keepalived complained: {c:#?}\n{}", a.log());
}

/// vipd heard the keepalived peer: adverts received, none dropped for a bad checksum or as
/// an unknown peer (RFC 5798 §7.1: the pseudo-header form keepalived sends verifies).
fn assert_vipd_heard_peer(topo: &Topology, host: &str) {
    let text = metrics_text(topo, host);
    let rx = metric_sum(&text, "vipd_adverts_received_total", &[("instance", NAME)]);
    let bad = metric_sum(
        &text,
        "vipd_adverts_dropped_total",
        &[("reason", "bad_checksum")],
    );
    let unknown = metric_sum(
        &text,
        "vipd_adverts_dropped_total",
        &[("reason", "unknown_peer")],
    );
    println!(
        "MEASURE vipd on {host}: adverts received {rx}, bad_checksum {bad}, unknown_peer {unknown}"
    );
    assert!(
        rx > 0.0,
        "vipd on {host} counted no advert from keepalived:\n{text}"
    );
    assert_eq!(bad, 0.0, "vipd on {host} dropped bad checksums:\n{text}");
    assert_eq!(
        unknown, 0.0,
        "vipd on {host} dropped adverts from an unknown peer:\n{text}"
    );
}

/// RFC 5798 §6.4.2 / §6.4.3, against keepalived. `high_kind` runs on lb1 with priority 150, the
/// other agent on lb2 with 100. The low one starts first and becomes master; the high one
/// joins and preempts; the high one crashes (SIGKILL + link cut): the low one takes over;
/// the high one returns (link restored, restarted): it takes the VIP back.
fn crash_and_return(test: &str, mode: Mode, high_kind: Kind) {
    let _g = netns_test!(test);
    let topo = Topology::new(TopologyOpts::default());
    let vip = mode.vip();
    let low_kind = high_kind.other();
    let (hi, lo) = ("lb1", "lb2");
    let md_lo = mode.master_down(100);
    let slack = Duration::from_secs(8);

    // The low one alone: master after Master_Down_Interval.
    let low = start(&topo, lo, low_kind, 100, mode);
    if low_kind == Kind::Keepalived {
        assert_ka_config_clean(&low);
    }
    let t = topo.wait_sole_holder(vip, lo, md_lo + slack + Duration::from_secs(5));
    assert!(
        t.is_some(),
        "{test}: the low-priority {low_kind:?} never became master"
    );

    // The high one joins and preempts (RFC 5798 §6.4.2: higher priority than the master's).
    let t0 = Instant::now();
    let mut high = start(&topo, hi, high_kind, 150, mode);
    let t = topo.wait_sole_holder(vip, hi, 3 * md_lo + slack);
    let preempt = t0.elapsed();
    assert!(
        t.is_some(),
        "{test}: {high_kind:?} (150) did not preempt {low_kind:?} (100); holders {:?}",
        topo.vip_holders(vip)
    );
    if high_kind == Kind::Keepalived {
        assert_ka_config_clean(&high);
    }
    // Stable: roles hold over several intervals and both agents agree on them.
    std::thread::sleep(4 * mode.interval() + Duration::from_millis(500));
    assert_eq!(
        topo.vip_holders(vip),
        vec![hi.to_string()],
        "{test}: flapped"
    );
    expect_roles(test, &topo, (&high, high_kind), (&low, low_kind));
    let vipd_host = if high_kind == Kind::Vipd { hi } else { lo };
    assert_vipd_heard_peer(&topo, vipd_host);
    if low_kind == Kind::Vipd {
        let m = instance_field(&topo, lo, NAME, "master");
        // IPv6 adverts come from the link-local address (RFC 5798 §5.1.2.1).
        let want = if mode.v6 {
            link_local(&topo, hi)
        } else {
            host_ip(&topo, hi, false)
        };
        assert_eq!(
            m.as_ref().and_then(|v| v.as_str()),
            Some(want.to_string()).as_deref(),
            "{test}: vipd's `master` field should name keepalived's address"
        );
    }

    // Crash the high one: cut its link, SIGKILL it (its VIP stays configured, unreachable).
    // Timed from the cut: the peer hears nothing from then on.
    let t_crash = Instant::now();
    topo.cut_link(hi);
    high.kill();
    let takeover = topo.wait_holds(lo, vip, md_lo + slack);
    assert!(
        takeover.is_some(),
        "{test}: {low_kind:?} did not take over after the crash of {high_kind:?}"
    );
    let takeover = t_crash.elapsed();
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        state_of(&topo, &low, low_kind).as_deref() == Some("master")
    });
    assert!(ok, "{test}: {low_kind:?} holds the VIP but is not master");

    // The high one returns: link up, restarted; it takes the VIP back.
    topo.restore_link(hi);
    let t_back = Instant::now();
    high.restart(&topo);
    let ok = wait_until(
        3 * md_lo + slack + Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            !topo.holds_vip(lo, vip)
                && topo.holds_vip(hi, vip)
                && state_of(&topo, &high, high_kind).as_deref() == Some("master")
        },
    );
    let takeback = t_back.elapsed();
    assert!(
        ok,
        "{test}: {high_kind:?} did not take the VIP back; holders {:?}, high state {:?}, low state {:?}",
        topo.vip_holders(vip),
        state_of(&topo, &high, high_kind),
        state_of(&topo, &low, low_kind)
    );
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        state_of(&topo, &low, low_kind).as_deref() == Some("backup")
    });
    assert!(ok, "{test}: {low_kind:?} did not return to backup");
    println!(
        "MEASURE {test}: preempt {preempt:?} | crash->takeover by {low_kind:?} {takeover:?} \
         (Master_Down_Interval {md_lo:?}) | restart->takeback by {high_kind:?} {takeback:?}"
    );
}

#[test]
fn rfc5798_6_4_v3_multicast_vipd_150_keepalived_100() {
    crash_and_return(
        "rfc5798_6_4_v3_multicast_vipd_150_keepalived_100",
        Mode::V3,
        Kind::Vipd,
    );
}

#[test]
fn rfc5798_6_4_v3_multicast_keepalived_150_vipd_100() {
    crash_and_return(
        "rfc5798_6_4_v3_multicast_keepalived_150_vipd_100",
        Mode::V3,
        Kind::Keepalived,
    );
}

#[test]
fn rfc3768_6_4_v2_multicast_vipd_150_keepalived_100() {
    crash_and_return(
        "rfc3768_6_4_v2_multicast_vipd_150_keepalived_100",
        Mode::V2,
        Kind::Vipd,
    );
}

#[test]
fn rfc3768_6_4_v2_multicast_keepalived_150_vipd_100() {
    crash_and_return(
        "rfc3768_6_4_v2_multicast_keepalived_150_vipd_100",
        Mode::V2,
        Kind::Keepalived,
    );
}

#[test]
fn rfc5798_6_4_v3_unicast_vipd_150_keepalived_100() {
    crash_and_return(
        "rfc5798_6_4_v3_unicast_vipd_150_keepalived_100",
        Mode::V3_UNICAST,
        Kind::Vipd,
    );
}

#[test]
fn rfc5798_6_4_v3_unicast_keepalived_150_vipd_100() {
    crash_and_return(
        "rfc5798_6_4_v3_unicast_keepalived_150_vipd_100",
        Mode::V3_UNICAST,
        Kind::Keepalived,
    );
}

#[test]
fn rfc3768_6_4_v2_unicast_vipd_150_keepalived_100() {
    crash_and_return(
        "rfc3768_6_4_v2_unicast_vipd_150_keepalived_100",
        Mode::V2_UNICAST,
        Kind::Vipd,
    );
}

#[test]
fn rfc3768_6_4_v2_unicast_keepalived_150_vipd_100() {
    crash_and_return(
        "rfc3768_6_4_v2_unicast_keepalived_150_vipd_100",
        Mode::V2_UNICAST,
        Kind::Keepalived,
    );
}

#[test]
fn rfc5798_6_4_v3_ipv6_vipd_150_keepalived_100() {
    crash_and_return(
        "rfc5798_6_4_v3_ipv6_vipd_150_keepalived_100",
        Mode::V3_IPV6,
        Kind::Vipd,
    );
}

#[test]
fn rfc5798_6_4_v3_ipv6_keepalived_150_vipd_100() {
    crash_and_return(
        "rfc5798_6_4_v3_ipv6_keepalived_150_vipd_100",
        Mode::V3_IPV6,
        Kind::Keepalived,
    );
}

/// RFC 5798 §6.4.3: with equal priorities the higher primary address wins. Both agents start
/// with VRRP partitioned (both become master), then the partition heals: lb2 (192.0.2.12)
/// must end as the only master, whichever agent runs there.
fn equal_priority(test: &str, lb2_kind: Kind) {
    let _g = netns_test!(test);
    let mut topo = Topology::new(TopologyOpts::default());
    let mode = Mode::V3;
    let vip = mode.vip();
    let lb1_kind = lb2_kind.other();
    topo.partition_vrrp("lb1", "lb2");
    let a1 = start(&topo, "lb1", lb1_kind, 100, mode);
    let a2 = start(&topo, "lb2", lb2_kind, 100, mode);
    let both = wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
        topo.holds_vip("lb1", vip) && topo.holds_vip("lb2", vip)
    });
    assert!(
        both,
        "{test}: partitioned, both should be master; holders {:?}",
        topo.vip_holders(vip)
    );
    let t0 = Instant::now();
    topo.heal();
    let t = topo.wait_sole_holder(vip, "lb2", Duration::from_secs(10));
    assert!(
        t.is_some(),
        "{test}: after the heal lb2 (higher address) should be the only holder; holders {:?}",
        topo.vip_holders(vip)
    );
    let resolved = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        topo.vip_holders(vip),
        vec!["lb2".to_string()],
        "{test}: flapped"
    );
    expect_roles(test, &topo, (&a2, lb2_kind), (&a1, lb1_kind));
    println!("MEASURE {test}: heal -> single master lb2 in {resolved:?}");
}

#[test]
fn rfc5798_6_4_3_equal_priority_higher_address_wins_vipd_on_lb2() {
    equal_priority(
        "rfc5798_6_4_3_equal_priority_higher_address_wins_vipd_on_lb2",
        Kind::Vipd,
    );
}

#[test]
fn rfc5798_6_4_3_equal_priority_higher_address_wins_keepalived_on_lb2() {
    equal_priority(
        "rfc5798_6_4_3_equal_priority_higher_address_wins_keepalived_on_lb2",
        Kind::Keepalived,
    );
}

/// RFC 5798 §6.4.3 / §6.4.2: a master that stops sends priority 0; the backup takes over after
/// Skew_Time instead of Master_Down_Interval. Interval 1 s so the two differ by seconds:
/// Skew_Time(100) = 0.61 s, Master_Down_Interval(100) = 3.61 s.
fn graceful_stop(test: &str, master_kind: Kind) {
    let _g = netns_test!(test);
    let topo = Topology::new(TopologyOpts::default());
    let mode = Mode::V3;
    let vip = mode.vip();
    let backup_kind = master_kind.other();
    let start1 = |host: &str, kind: Kind, prio: u8| -> Agent {
        match kind {
            Kind::Vipd => {
                let i = VipdInstance::new(NAME, VRID, prio, &[&mode.vip_cidr()]).interval("1s");
                topo.start_agent(host, AgentKind::vipd(), &vipd_conf(&topo, host, &[i]))
            }
            Kind::Keepalived => {
                let k = KeepalivedInstance::new(NAME, VRID, prio).vip(&mode.vip_cidr());
                topo.start_agent(host, AgentKind::Keepalived, &keepalived_conf(&[k]))
            }
        }
    };
    let m = start1("lb1", master_kind, 150);
    let b = start1("lb2", backup_kind, 100);
    assert!(
        topo.wait_sole_holder(vip, "lb1", Duration::from_secs(20))
            .is_some(),
        "{test}: lb1 never became the only master; holders {:?}",
        topo.vip_holders(vip)
    );
    let ok = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        state_of(&topo, &b, backup_kind).as_deref() == Some("backup")
    });
    assert!(ok, "{test}: lb2 not backup");
    // Let the backup learn the master's interval from a few adverts.
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let st = m.stop(Duration::from_secs(10));
    let exited = t0.elapsed();
    assert!(
        st.success() || master_kind == Kind::Keepalived,
        "{test}: vipd exited with {st:?}"
    );
    let got = topo.wait_holds("lb2", vip, Duration::from_secs(10));
    let takeover = t0.elapsed();
    assert!(
        got.is_some(),
        "{test}: lb2 did not take over after the stop"
    );
    let skew = harness::timers::skew(100, Duration::from_secs(1));
    let md = mode.master_down(100) * 10; // interval 1 s, not 100 ms
    println!(
        "MEASURE {test}: stop->exit {exited:?}, stop->{backup_kind:?} holds VIP {takeover:?} \
         (Skew_Time {skew:?}; Master_Down_Interval would be {md:?})"
    );
    assert!(
        takeover < Duration::from_millis(2500),
        "{test}: takeover took {takeover:?}: priority 0 was not honoured (Master_Down would be {md:?})"
    );
    assert!(
        !topo.holds_vip("lb1", vip),
        "{test}: the stopped master still holds the VIP"
    );
    if backup_kind == Kind::Keepalived {
        assert!(
            b.log().contains("priority 0"),
            "{test}: keepalived did not log the priority-0 advert:\n{}",
            b.log()
        );
    }
    let ok = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        state_of(&topo, &b, backup_kind).as_deref() == Some("master")
    });
    assert!(ok, "{test}: lb2 holds the VIP but is not master");
}

#[test]
fn rfc5798_6_4_3_graceful_stop_vipd_master_keepalived_takes_over_after_skew() {
    graceful_stop(
        "rfc5798_6_4_3_graceful_stop_vipd_master_keepalived_takes_over_after_skew",
        Kind::Vipd,
    );
}

#[test]
fn rfc5798_6_4_3_graceful_stop_keepalived_master_vipd_takes_over_after_skew() {
    graceful_stop(
        "rfc5798_6_4_3_graceful_stop_keepalived_master_vipd_takes_over_after_skew",
        Kind::Keepalived,
    );
}

/// RFC 5798 §5.2.8 / RFC 9568: vipd accepts a VRRPv3/IPv4 advert whose checksum leaves out the
/// pseudo-header (Cisco/Juniper form), crafted by scapy on a rogue host: a priority-200 advert
/// makes the priority-150 master step down (§6.4.3), and it is counted as received.
#[test]
fn rfc9568_vipd_accepts_v3_checksum_without_pseudo_header() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default().with_host("rogue"));
    let vip = addr(VIP4);
    let i = VipdInstance::new(NAME, VRID, 150, &[&format!("{VIP4}/24")]);
    let _a = topo.start_agent("lb1", AgentKind::vipd(), &vipd_conf(&topo, "lb1", &[i]));
    assert!(
        wait_vipd_state(&topo, "lb1", NAME, "master", Duration::from_secs(15)),
        "{test}: vipd never master"
    );
    let rx0 = metric_sum(
        &metrics_text(&topo, "lb1"),
        "vipd_adverts_received_total",
        &[("instance", NAME)],
    );
    let rogue = topo.ip4("rogue").to_string();
    let p = craft_spawn(
        &topo,
        "rogue",
        &[
            "--case", "nopseudo", "--src", &rogue, "--prio", "200", "--count", "40", "--gap", "0.1",
        ],
        "rogue-nopseudo.log",
    );
    let stepped = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        vipd_state(&topo, "lb1", NAME).as_deref() == Some("backup") && !topo.holds_vip("lb1", vip)
    });
    let master = instance_field(&topo, "lb1", NAME, "master");
    assert!(
        stepped,
        "{test}: vipd did not step down for a priority-200 advert without pseudo-header"
    );
    assert_eq!(
        master.as_ref().and_then(|v| v.as_str()),
        Some(rogue.as_str()),
        "{test}: master field"
    );
    assert!(p.wait_timeout(Duration::from_secs(20)).is_some());
    let text = metrics_text(&topo, "lb1");
    let rx = metric_sum(&text, "vipd_adverts_received_total", &[("instance", NAME)]) - rx0;
    let bad = dropped(&topo, "lb1", "bad_checksum");
    println!("MEASURE {test}: received {rx} of 40 RFC 9568-form adverts, bad_checksum {bad}");
    assert!(
        rx >= 35.0,
        "{test}: only {rx} of 40 counted received:\n{text}"
    );
    assert_eq!(bad, 0.0);
    // The rogue fell silent: vipd is master again after Master_Down_Interval.
    assert!(
        wait_vipd_state(&topo, "lb1", NAME, "master", Duration::from_secs(10)),
        "{test}: vipd did not resume master after the rogue stopped"
    );
}

/// A new LAN: vipd with `i` on lb1 until it is master (at most 15 s), then keepalived with `k`
/// (100 ms adverts) on lb2.
fn vipd_master_then_keepalived(i: VipdInstance, k: KeepalivedInstance) -> (Topology, Agent, Agent) {
    let topo = Topology::new(TopologyOpts::default());
    let v = topo.start_agent("lb1", AgentKind::vipd(), &vipd_conf(&topo, "lb1", &[i]));
    assert!(wait_vipd_state(
        &topo,
        "lb1",
        NAME,
        "master",
        Duration::from_secs(15)
    ));
    let k = k.advert_int(Duration::from_millis(100));
    let ka = topo.start_agent("lb2", AgentKind::Keepalived, &keepalived_conf(&[k]));
    (topo, v, ka)
}

/// keepalived 2.2.7 knows no `v3_checksum_as_v2` (it logs an unknown keyword) and verifies
/// VRRPv3/IPv4 checksums only with the pseudo-header: a vipd sending the RFC 9568 form
/// (`checksum-pseudo-header = false`) is NOT heard by it. Expected, and asserted as what 2.2.7
/// does: keepalived logs "Invalid VRRPv3 checksum" and, hearing nothing valid, becomes master
/// too (both hold the VIP). The `v3_checksum_as_v2` interop cannot be tested with 2.2.7.
#[test]
fn keepalived_2_2_7_rejects_vipd_rfc9568_checksum_form() {
    let (_g, test) = netns_test!(@name);
    let vip = addr(VIP4);
    let i = VipdInstance::new(NAME, VRID, 150, &[&format!("{VIP4}/24")]).pseudo_header(false);
    let k = KeepalivedInstance::new(NAME, VRID, 100)
        .vip(&format!("{VIP4}/24"))
        .v3_checksum_as_v2(true);
    let (topo, _v, ka) = vipd_master_then_keepalived(i, k);
    let logged = ka.wait_log("Invalid VRRPv3 checksum", Duration::from_secs(10));
    let unknown_kw = keepalived_config_complaints(&ka.log())
        .iter()
        .any(|l| l.contains("v3_checksum_as_v2"));
    let both = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        topo.holds_vip("lb1", vip) && topo.holds_vip("lb2", vip)
    });
    let n_err = ka.log().matches("Invalid VRRPv3 checksum").count();
    println!(
        "MEASURE {test}: keepalived 2.2.7: unknown keyword v3_checksum_as_v2 logged: {unknown_kw}; \
         'Invalid VRRPv3 checksum' lines: {n_err}; both masters: {both}"
    );
    assert!(
        logged,
        "{test}: keepalived did not log a checksum error:\n{}",
        ka.log()
    );
    assert!(
        unknown_kw,
        "{test}: expected keepalived 2.2.7 to reject the keyword v3_checksum_as_v2:\n{}",
        ka.log()
    );
    assert!(
        both,
        "{test}: expected split brain (keepalived deaf to vipd); holders {:?}",
        topo.vip_holders(vip)
    );
    // vipd still hears keepalived (pseudo-header form) and stays master.
    assert_eq!(vipd_state(&topo, "lb1", NAME).as_deref(), Some("master"));
    assert_vipd_heard_peer(&topo, "lb1");
}

/// What keepalived 2.2.7 does with the brief's plain IPv6 configuration: vipd lists only
/// `2001:db8::100/64` and derives the link-local VIP (its adverts carry 2 addresses),
/// keepalived lists only `2001:db8::100/64` (1 address). keepalived discards every vipd advert
/// ("received an unexpected ip number count 2, expected 1!") and also becomes master: both
/// hold the VIP. vipd accepts keepalived's 1-address advert (RFC 5798 §7.1 does not require
/// the address list to match) and, having the higher priority, stays master. Asserted as the
/// observed behaviour; the remedy is the explicit link-local VIP on keepalived's side.
#[test]
fn ipv6_keepalived_without_link_local_vip_ignores_vipd() {
    let (_g, test) = netns_test!(@name);
    let vip = addr(VIP6);
    let i = VipdInstance::new(NAME, VRID, 150, &[&format!("{VIP6}/64")]);
    let k = KeepalivedInstance::new(NAME, VRID, 100).vip(&format!("{VIP6}/64"));
    let (topo, _v, ka) = vipd_master_then_keepalived(i, k);
    let logged = ka.wait_log(
        "unexpected ip number count 2, expected 1",
        Duration::from_secs(10),
    );
    let both = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        topo.holds_vip("lb1", vip) && topo.holds_vip("lb2", vip)
    });
    println!(
        "MEASURE {test}: keepalived logged the count mismatch: {logged}; both masters: {both}"
    );
    assert!(logged, "{test}: keepalived log:\n{}", ka.log());
    assert!(both, "{test}: holders {:?}", topo.vip_holders(vip));
    assert_eq!(vipd_state(&topo, "lb1", NAME).as_deref(), Some("master"));
    assert_vipd_heard_peer(&topo, "lb1");
}
