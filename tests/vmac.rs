//! Virtual MAC mode (RFC 5798 §7.3, `virtual-mac = true`) on the wire, in network
//! namespaces: the client's neighbour entry for the VIP holds the virtual router MAC
//! `00:00:5e:00:01:33` (VRID 51) and keeps it across takeovers; the macvlan's life cycle
//! (created at start, removed at stop, a crashed run's removed at start and by
//! `vipd cleanup`, an operator's link of the same name never touched); interop with
//! keepalived `use_vmac` and FRR `vrrpd`.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test vmac -- --test-threads=1 --nocapture`.
//! Measurements are printed as `measure: ...` lines.
//!
//! The routers get what docs/operations.md tells the operator to set on the parent
//! interface: `arp_ignore = 1`, `arp_announce = 2`.
//!
//! Longer than 600 lines on purpose: one self-contained scenario per virtual-MAC case
//! (neighbour entries across takeovers, the macvlan's life cycle, keepalived and FRR as
//! peers); shared steps are in `tests/harness` (`frr.rs`, `keepalived.rs`, `vipd.rs`).

mod harness;

use std::net::IpAddr;
use std::time::Duration;

use harness::frr::{frr_daemon, start_zebra_for};
use harness::{
    keepalived_conf, mono_now, netns_test, wait_until, Agent, AgentKind, KeepalivedInstance, Probe,
    ProbeReport, Topology, TopologyOpts, VipdConfig, VipdInstance,
};

const INSTANCE: &str = "web";
const VRID: u8 = 51;
/// 00:00:5e:00:01:{VRID}.
const VMAC: &str = "00:00:5e:00:01:33";
const ADV: Duration = Duration::from_millis(100);
const SLACK: Duration = Duration::from_millis(250);
const P1: u8 = 150;
const P2: u8 = 100;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// RFC 5798 §6.1 Master_Down_Interval at [`ADV`], as vipd computes it.
fn mdi(prio: u8) -> Duration {
    harness::timers::mdi(prio, ADV)
}

fn vip() -> IpAddr {
    "192.0.2.100".parse().expect("literal")
}

fn vipd_conf(topo: &Topology, host: &str, prio: u8, virtual_mac: bool) -> String {
    conf_with(topo, host, prio, &["192.0.2.100/24"], virtual_mac)
}

/// The instance every test here runs: 100 ms adverts, five announcements 100 ms apart.
fn conf_with(topo: &Topology, host: &str, prio: u8, vips: &[&str], virtual_mac: bool) -> String {
    let i = VipdInstance::new(INSTANCE, VRID, prio, vips)
        .announce(5, "100ms")
        .line(&format!("virtual-mac = {virtual_mac}"));
    VipdConfig::only(topo, host, i)
}

/// What docs/operations.md asks of the parent interface in virtual MAC mode.
fn parent_sysctls(topo: &Topology, host: &str) {
    topo.exec_ok(
        host,
        &[
            "sysctl",
            "-qw",
            "net.ipv4.conf.eth0.arp_ignore=1",
            "net.ipv4.conf.eth0.arp_announce=2",
        ],
    );
}

/// The name vipd gives the macvlan on `host`'s eth0: `vrrp4-IFINDEX-51`.
fn vmac_name(topo: &Topology, host: &str) -> String {
    let idx = topo.exec_ok(host, &["cat", "/sys/class/net/eth0/ifindex"]);
    format!("vrrp4-{}-{VRID}", idx.trim())
}

/// `ip -d link show NAME` on `host`, or None when there is no such link.
fn link_details(topo: &Topology, host: &str, name: &str) -> Option<String> {
    let out = topo.exec(host, &["ip", "-d", "link", "show", "dev", name]);
    out.ok().then_some(out.stdout)
}

fn wait_sole_holder(topo: &Topology, host: &str, timeout: Duration) {
    let ok = wait_until(timeout, ms(10), || topo.vip_holders(vip()) == [host]);
    assert!(
        ok,
        "expected {host} alone to hold the VIP within {timeout:?}; holders {:?}\n{}",
        topo.vip_holders(vip()),
        topo.snapshot()
    );
}

fn finish(probe: Probe) -> ProbeReport {
    let rep = probe.finish();
    println!("{}", rep.summary());
    rep
}

/// Samples the client's neighbour entry for the VIP for `dur`; returns every MAC seen.
fn neigh_samples(topo: &Topology, dur: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    add_neigh_samples(topo, vip(), dur, &mut seen);
    seen
}

/// Samples the client's neighbour entry for `vip` every 20 ms for `dur`, adding each MAC
/// not yet in `macs`.
fn add_neigh_samples(topo: &Topology, vip: IpAddr, dur: Duration, macs: &mut Vec<String>) {
    let end = std::time::Instant::now() + dur;
    for _ in 0..200 {
        if std::time::Instant::now() >= end {
            break;
        }
        if let Some(m) = topo.neigh("client", vip) {
            if !macs.contains(&m) {
                macs.push(m);
            }
        }
        std::thread::sleep(ms(20));
    }
}

/// A LAN whose load balancers' parent interfaces are set up for virtual MAC mode, with
/// responders on both for the IPv4 VIP.
fn vmac_lan() -> (Topology, [harness::Proc; 2]) {
    let topo = Topology::new(TopologyOpts::default());
    for h in ["lb1", "lb2"] {
        parent_sysctls(&topo, h);
    }
    let responders = topo.start_responders(vip());
    (topo, responders)
}

/// A LAN and the name lb1's macvlan for the instance has.
fn lan_and_vmac_name() -> (Topology, String) {
    let topo = Topology::new(TopologyOpts::default());
    let name = vmac_name(&topo, "lb1");
    (topo, name)
}

/// Waits (10 s at most) until vipd on lb1 reports `state`.
fn lb1_becomes(topo: &Topology, state: &str) -> bool {
    wait_until(Duration::from_secs(10), ms(20), || {
        vipd_state(topo, "lb1").as_deref() == Some(state)
    })
}

/// vipd on `host` at `prio`, in virtual MAC mode or not.
fn start_vipd(topo: &Topology, host: &str, prio: u8, virtual_mac: bool) -> Agent {
    topo.start_agent(
        host,
        AgentKind::vipd(),
        &vipd_conf(topo, host, prio, virtual_mac),
    )
}

/// vipd on lb1 at P1, once it alone holds the VIP.
fn lb1_sole_master(topo: &Topology, virtual_mac: bool) -> Agent {
    let a = start_vipd(topo, "lb1", P1, virtual_mac);
    wait_sole_holder(topo, "lb1", Duration::from_secs(10));
    a
}

/// A probe from the client once its neighbour entry for the VIP is the virtual MAC (5 s
/// at most), 300 ms under way.
fn probe_on_vmac(topo: &Topology) -> Probe {
    let probe = topo.start_probe(vip(), ms(2));
    assert!(
        wait_until(Duration::from_secs(5), ms(20), || {
            topo.neigh("client", vip()).as_deref() == Some(VMAC)
        }),
        "{}",
        topo.snapshot()
    );
    std::thread::sleep(ms(300));
    probe
}

/// For 200 ms the client's neighbour entry for the VIP is the virtual MAC and nothing else.
#[track_caller]
fn assert_client_on_vmac(topo: &Topology) {
    assert_eq!(neigh_samples(topo, ms(200)), [VMAC]);
}

/// SIGKILL lb1 and cut its link; lb2 must hold `vip` within 10 s. Returns when lb1 died.
fn kill_lb1_until_lb2_holds(topo: &Topology, lb1: &Agent, lb2: &Agent, vip: IpAddr) -> Duration {
    let death = mono_now();
    lb1.kill();
    topo.cut_link("lb1");
    let took = wait_until(Duration::from_secs(10), ms(5), || {
        topo.holds_vip("lb2", vip)
    });
    assert!(
        took,
        "lb2 never took the VIP\nlb2:\n{}\n{}",
        lb2.log(),
        topo.snapshot()
    );
    death
}

/// Asserts that `a`'s macvlan `name` on `host` is gone after its graceful stop.
#[track_caller]
fn assert_macvlan_gone(topo: &Topology, host: &str, name: &str, a: &Agent) {
    assert!(
        link_details(topo, host, name).is_none(),
        "{name} still there after a graceful stop\n{}",
        a.log()
    );
}

/// The client's outage around the master's `death` (there must be one) and around its
/// graceful `stop` (zero if none).
fn death_and_stop_outages(
    rep: &ProbeReport,
    death: Duration,
    stop: Duration,
) -> (Duration, Duration) {
    let o_death = rep
        .outage_around(death, ms(50))
        .unwrap_or_else(|| panic!("no outage around the master's death: {}", rep.summary()));
    let o_stop = rep.outage_around(stop, ms(50));
    (
        o_death.duration,
        o_stop.map(|o| o.duration).unwrap_or_default(),
    )
}

/// The outage on master death is detection (lb2's Master_Down_Interval after lb1's last
/// advert) and nothing else; on a graceful stop, lb2's Skew_Time (61 ms) plus scheduling.
#[track_caller]
fn assert_outage_bounds(death: Duration, stop: Duration) {
    let bound = mdi(P2) + ADV + SLACK;
    assert!(
        death < bound,
        "outage on master death {death:?} >= MDI + one interval + slack {bound:?}"
    );
    assert!(
        stop < ADV + SLACK,
        "outage on graceful stop {stop:?} >= {:?}",
        ADV + SLACK
    );
}

/// One pair run: lb1 (150) master, lb2 (100) backup, probe every 2 ms; then master death
/// (SIGKILL + cut link), lb1 back (preempts), graceful stop of lb1. Returns the client's
/// outages (death, stop) and every MAC the client's neighbour entry held.
struct PairRun {
    /// Requests lost while the backup started.
    backup_start_lost: usize,
    death: Duration,
    stop: Duration,
    macs: Vec<String>,
}

fn pair_run(virtual_mac: bool) -> PairRun {
    let (topo, _responders) = vmac_lan();
    let mut lb1 = start_vipd(&topo, "lb1", P1, virtual_mac);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    let probe = topo.start_probe(vip(), ms(2));
    let want = if virtual_mac {
        VMAC.to_owned()
    } else {
        topo.mac("lb1")
    };
    let resolved = wait_until(Duration::from_secs(5), ms(20), || {
        topo.neigh("client", vip()) == Some(want.clone())
    });
    assert!(
        resolved,
        "the client never resolved the VIP to {want}\n{}",
        topo.snapshot()
    );
    let mut macs = neigh_samples(&topo, ms(300));

    // The backup starts while the client talks to the master: its macvlan comes up with
    // the same MAC and must send nothing from it (no IPv6 DAD or MLD), or the switch would
    // move the MAC to the backup's port.
    let backup_start = mono_now();
    let lb2 = start_vipd(&topo, "lb2", P2, virtual_mac);
    assert!(
        lb2.wait_log("INIT -> BACKUP", Duration::from_secs(10)),
        "{}",
        lb2.log()
    );
    // IPv6 DAD on a new link waits up to 1 s (router solicitation delay) before sending.
    std::thread::sleep(ms(2500));
    let backup_end = mono_now();

    // Master death.
    let death = kill_lb1_until_lb2_holds(&topo, &lb1, &lb2, vip());
    add_neigh_samples(&topo, vip(), ms(1000), &mut macs);

    // lb1 back: its crashed run's macvlan is removed at start, then it preempts.
    topo.restore_link("lb1");
    lb1.restart(&topo);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    if virtual_mac {
        assert!(
            lb1.wait_log("removing virtual MAC link", Duration::from_secs(5)),
            "lb1 did not remove its crashed run's macvlan at start:\n{}",
            lb1.log()
        );
    }
    add_neigh_samples(&topo, vip(), ms(1000), &mut macs);

    // Graceful stop.
    let stop = mono_now();
    let st = lb1.stop(Duration::from_secs(10));
    assert!(st.success(), "lb1 exit {st:?}\n{}", lb1.log());
    wait_sole_holder(&topo, "lb2", Duration::from_secs(5));
    add_neigh_samples(&topo, vip(), ms(1000), &mut macs);
    if virtual_mac {
        assert_macvlan_gone(&topo, "lb1", &vmac_name(&topo, "lb1"), &lb1);
    }
    lb2.assert_running();
    let rep = finish(probe);
    let (death, stop) = death_and_stop_outages(&rep, death, stop);
    let backup_start_lost = rep
        .records
        .iter()
        .filter(|r| r.sent >= backup_start && r.sent < backup_end && r.reply.is_none())
        .count();
    PairRun {
        backup_start_lost,
        death,
        stop,
        macs,
    }
}

// ---- takeover keeps the client's neighbour entry --------------------------------------

#[test]
fn takeover_keeps_the_clients_neighbour_entry_on_the_virtual_mac() {
    let _g = netns_test!();
    let with = pair_run(true);
    let without = pair_run(false);
    println!(
        "measure: requests lost while the backup started: {} with virtual-mac, {} without",
        with.backup_start_lost, without.backup_start_lost
    );
    assert_eq!(
        with.backup_start_lost, 0,
        "the backup's start took the virtual MAC away from the master"
    );
    println!(
        "measure: virtual-mac: master death outage {:.0} ms, graceful stop {:.0} ms; neighbour MACs {:?}",
        msf(with.death),
        msf(with.stop),
        with.macs
    );
    println!(
        "measure: without virtual-mac: master death outage {:.0} ms, graceful stop {:.0} ms; neighbour MACs {:?}",
        msf(without.death),
        msf(without.stop),
        without.macs
    );
    // The client never learns another MAC for the VIP: no ARP update is needed.
    assert_eq!(
        with.macs,
        [VMAC],
        "client neighbour entries seen: {:?}",
        with.macs
    );
    assert_outage_bounds(with.death, with.stop);
    // Without virtual MAC the client had to relearn the MAC (the comparison is real).
    assert!(
        without.macs.len() >= 2,
        "without virtual-mac the client saw {:?}",
        without.macs
    );
}

// ---- IPv6 ------------------------------------------------------------------------------

/// 00:00:5e:00:02:{VRID}.
const VMAC6: &str = "00:00:5e:00:02:33";

fn vip6() -> IpAddr {
    "2001:db8::100".parse().expect("literal")
}

fn vipd_conf6(topo: &Topology, host: &str, prio: u8) -> String {
    conf_with(
        topo,
        host,
        prio,
        &["fe80::100/64", "2001:db8::100/64"],
        true,
    )
}

/// `vrrp6-IFINDEX-51` on `host`'s eth0.
fn vmac6_name(topo: &Topology, host: &str) -> String {
    let idx = topo.exec_ok(host, &["cat", "/sys/class/net/eth0/ifindex"]);
    format!("vrrp6-{}-{VRID}", idx.trim())
}

/// The IPv6 addresses on `host`'s link `name` (empty when there is none or no link).
fn v6_addrs(topo: &Topology, host: &str, name: &str) -> Vec<IpAddr> {
    let out = topo.exec(host, &["ip", "-6", "-o", "addr", "show", "dev", name]);
    out.stdout
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().skip_while(|t| *t != "inet6");
            it.next()?;
            it.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// IPv6 pair in virtual MAC mode: the master's VIPs (the link-local VIP first) sit on
/// `vrrp6-IFINDEX-51` with `00:00:5e:00:02:33`, the backup's macvlan carries no address;
/// on master death (SIGKILL) the backup answers and the client's neighbour entry never
/// leaves the virtual MAC; a graceful stop loses nothing and removes the macvlan.
#[test]
fn ipv6_pair_keeps_the_clients_neighbour_entry_on_the_virtual_mac() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let responders = topo.start_responders(vip6());
    // The harness allows non-local binds for its responders (bound by now); vipd must
    // not need them (its send socket is bound to eth0's link-local but sends through
    // the macvlan).
    for r in &responders {
        let up = wait_until(Duration::from_secs(10), ms(20), || {
            r.log().contains("listening on")
        });
        assert!(up, "responder did not start: {}", r.log());
    }
    for h in ["lb1", "lb2"] {
        topo.exec_ok(h, &["sysctl", "-qw", "net.ipv6.ip_nonlocal_bind=0"]);
    }
    let mut lb1 = topo.start_agent("lb1", AgentKind::vipd(), &vipd_conf6(&topo, "lb1", P1));
    let lb2 = topo.start_agent("lb2", AgentKind::vipd(), &vipd_conf6(&topo, "lb2", P2));
    let ok = wait_until(Duration::from_secs(10), ms(10), || {
        topo.vip_holders(vip6()) == ["lb1"]
    });
    assert!(
        ok,
        "lb1 never held the VIP alone: {:?}\nlb1:\n{}\nlb2:\n{}\n{}",
        topo.vip_holders(vip6()),
        lb1.log(),
        lb2.log(),
        topo.snapshot()
    );
    assert!(
        lb2.wait_log("INIT -> BACKUP", Duration::from_secs(10)),
        "{}",
        lb2.log()
    );
    let (n1, n2) = (vmac6_name(&topo, "lb1"), vmac6_name(&topo, "lb2"));
    let details = link_details(&topo, "lb1", &n1).unwrap_or_else(|| panic!("no {n1} on lb1"));
    assert!(details.contains(VMAC6), "{details}");
    // The master's VIPs, the link-local one included, are on the macvlan.
    let a1 = v6_addrs(&topo, "lb1", &n1);
    let ll: IpAddr = "fe80::100".parse().expect("literal");
    assert!(
        a1.contains(&vip6()) && a1.contains(&ll),
        "{n1} on lb1 has {a1:?}\n{}",
        topo.snapshot()
    );
    // The backup's macvlan exists and carries no address (nothing answers for the VIPs).
    assert!(link_details(&topo, "lb2", &n2).is_some(), "no {n2} on lb2");
    assert_eq!(v6_addrs(&topo, "lb2", &n2), Vec::<IpAddr>::new());

    let probe = topo.start_probe(vip6(), ms(2));
    let resolved = wait_until(Duration::from_secs(5), ms(20), || {
        topo.neigh("client", vip6()).as_deref() == Some(VMAC6)
    });
    assert!(
        resolved,
        "the client never resolved the VIP to {VMAC6}\n{}",
        topo.snapshot()
    );
    let mut macs = Vec::new();
    add_neigh_samples(&topo, vip6(), ms(300), &mut macs);
    // lb2 still a backup after a few adverts from the macvlan.
    assert_eq!(topo.vip_holders(vip6()), ["lb1"], "{}", lb2.log());

    // Master death.
    let death = kill_lb1_until_lb2_holds(&topo, &lb1, &lb2, vip6());
    add_neigh_samples(&topo, vip6(), ms(1000), &mut macs);
    let a2 = v6_addrs(&topo, "lb2", &n2);
    assert!(
        a2.contains(&vip6()) && a2.contains(&ll),
        "{n2} on lb2 has {a2:?}"
    );

    // What lb2 sends from the virtual MAC while lb1 comes back and preempts.
    let pcap = topo.path("lb2-vmac6-out.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let dump = topo
        .start_tcpdump("lb2", &["-Q", "out", "-w", &pcap_s, "ether", "src", VMAC6])
        .unwrap_or_else(|e| panic!("{e}"));

    // lb1 back: its crashed run's macvlan is removed at start, then it preempts.
    topo.restore_link("lb1");
    lb1.restart(&topo);
    let back = wait_until(Duration::from_secs(10), ms(10), || {
        topo.vip_holders(vip6()) == ["lb1"]
    });
    assert!(back, "lb1 did not preempt\nlb1:\n{}", lb1.log());
    let t_back = mono_now();
    assert!(
        lb1.wait_log("removing virtual MAC link", Duration::from_secs(5)),
        "lb1 did not remove its crashed run's macvlan at start:\n{}",
        lb1.log()
    );
    // lb2, backup again, has taken every address off its macvlan.
    let clean = wait_until(Duration::from_secs(2), ms(10), || {
        v6_addrs(&topo, "lb2", &n2).is_empty()
    });
    assert!(clean, "{n2} on lb2 kept {:?}", v6_addrs(&topo, "lb2", &n2));
    add_neigh_samples(&topo, vip6(), ms(1000), &mut macs);
    let _ = dump.signal(nix::sys::signal::Signal::SIGINT);
    let _ = dump.wait_timeout(Duration::from_secs(10));
    // A new backup leaves the solicited-node groups of its VIPs in silence: an MLD
    // report from the virtual MAC would move the MAC to its switch port.
    let leaves = harness::vipd::tshark_fields(
        &pcap,
        "icmpv6.mldr.mar.record_type == 3 || icmpv6.type == 132",
        &["frame.time_relative", "icmpv6.mldr.mar.multicast_address"],
        &[],
    );
    assert!(
        leaves.is_empty(),
        "lb2, now backup, sent MLD leaves from {VMAC6}: {leaves:?}"
    );

    // Graceful stop.
    let stop = mono_now();
    let st = lb1.stop(Duration::from_secs(10));
    assert!(st.success(), "lb1 exit {st:?}\n{}", lb1.log());
    let ok = wait_until(Duration::from_secs(5), ms(10), || {
        topo.vip_holders(vip6()) == ["lb2"]
    });
    assert!(
        ok,
        "lb2 did not take over on lb1's stop\n{}",
        topo.snapshot()
    );
    add_neigh_samples(&topo, vip6(), ms(1000), &mut macs);
    assert_macvlan_gone(&topo, "lb1", &n1, &lb1);
    lb2.assert_running();
    let rep = finish(probe);
    let (o_death, o_stop) = death_and_stop_outages(&rep, death, stop);
    println!(
        "measure: IPv6 virtual-mac: master death outage {:.0} ms, graceful stop {:.0} ms; neighbour MACs {macs:?}",
        msf(o_death),
        msf(o_stop)
    );
    assert_eq!(macs, [VMAC6], "client neighbour entries seen: {macs:?}");
    // Once lb1 is back, nothing (no frame from the virtual MAC on lb2's port) black-holes
    // the client.
    let settled = t_back + ms(300);
    let lost_after_failback = rep
        .records
        .iter()
        .filter(|r| r.sent >= settled && r.sent < stop && r.reply.is_none())
        .count();
    assert_eq!(
        lost_after_failback,
        0,
        "the client lost requests after lb1 was back: {}",
        rep.summary()
    );
    assert!(
        rep.replies_from_after("lb2", death) > 0 && rep.replies_from_after("lb2", stop) > 0,
        "lb2 never answered: {}",
        rep.summary()
    );
    assert_outage_bounds(o_death, o_stop);
}

// ---- partition heal ------------------------------------------------------------------

#[test]
fn partition_heal_never_black_holes_the_client() {
    let _g = netns_test!();
    let mut topo = Topology::new(TopologyOpts::default());
    for h in ["lb1", "lb2"] {
        parent_sysctls(&topo, h);
    }
    let _responders = topo.start_responders(vip());
    let lb1 = start_vipd(&topo, "lb1", P1, true);
    let lb2 = start_vipd(&topo, "lb2", P2, true);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    let probe = topo.start_probe(vip(), ms(2));
    assert!(wait_until(Duration::from_secs(5), ms(20), || {
        topo.neigh("client", vip()).as_deref() == Some(VMAC)
    }));
    let mut heals = Vec::new();
    for round in 0..3 {
        topo.partition_vrrp("lb1", "lb2");
        let both = wait_until(Duration::from_secs(5), ms(10), || {
            topo.vip_holders(vip()).len() == 2
        });
        assert!(
            both,
            "round {round}: lb2 never became master in the partition\n{}",
            topo.snapshot()
        );
        // Long enough for the switch to move the virtual MAC to lb2's port (its adverts).
        std::thread::sleep(ms(500));
        let heal = mono_now();
        topo.heal();
        wait_sole_holder(&topo, "lb1", Duration::from_secs(5));
        std::thread::sleep(ms(700));
        heals.push(heal);
    }
    let rep = finish(probe);
    let mut worst = Duration::ZERO;
    for (i, h) in heals.iter().enumerate() {
        let o = rep
            .outage_around(*h, ms(500))
            .map(|o| o.duration)
            .unwrap_or_default();
        println!(
            "measure: partition heal {i}: client outage {:.0} ms",
            msf(o)
        );
        worst = worst.max(o);
    }
    // After a heal the loser steps down and removes the VIP; the client's frames follow
    // the virtual MAC to whichever port last sent from it, which is the winner's within
    // one advert interval (and its re-announcement).
    assert!(
        worst < ADV + SLACK,
        "a partition heal black-holed the client for {worst:?}: {}",
        rep.summary()
    );
    assert_client_on_vmac(&topo);
    lb1.assert_running();
    lb2.assert_running();
}

// ---- the macvlan's life cycle ------------------------------------------------------------

#[test]
fn macvlan_lifecycle_created_removed_and_never_the_operators() {
    let _g = netns_test!();
    let (topo, name) = lan_and_vmac_name();
    let conf = vipd_conf(&topo, "lb1", P1, true);

    // 1. The operator's macvlan of that name (no vipd alias): vipd refuses and leaves it.
    topo.exec_ok(
        "lb1",
        &[
            "ip", "link", "add", &name, "link", "eth0", "address", VMAC, "type", "macvlan", "mode",
            "bridge",
        ],
    );
    let a = topo.start_agent("lb1", AgentKind::vipd(), &conf);
    assert!(
        a.wait_log("is not vipd's virtual MAC link", Duration::from_secs(10)),
        "no refusal logged:\n{}",
        a.log()
    );
    let st = a.stop(Duration::from_secs(10));
    assert!(st.success(), "{st:?}\n{}", a.log());
    assert!(
        link_details(&topo, "lb1", &name).is_some(),
        "vipd removed the operator's {name}:\n{}",
        a.log()
    );
    assert!(!topo.holds_vip("lb1", vip()));
    topo.exec_ok("lb1", &["ip", "link", "del", &name]);

    // 2. vipd's own: bridge mode, alias, the virtual MAC, the VIP on it as master; the
    //    parent's missing sysctls are warned about.
    let cap = topo.start_capture("client", "eth0", "vmac-lifecycle");
    let mut a = topo.start_agent("lb1", AgentKind::vipd(), &conf);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    std::thread::sleep(ms(600));
    let pcap = cap.stop();
    // RFC 5798 §7.3 / §8.1.2: adverts and gratuitous ARPs come from the virtual MAC, and
    // the ARP sender hardware address is the virtual MAC.
    let adverts = harness::vipd::tshark_fields(&pcap, "vrrp", &["eth.src"], &[]);
    assert!(adverts.len() >= 3, "too few adverts captured: {adverts:?}");
    assert!(
        adverts.iter().all(|f| f[0] == VMAC),
        "adverts not sent from {VMAC}: {adverts:?}"
    );
    let garps = harness::vipd::tshark_fields(
        &pcap,
        "arp.src.proto_ipv4 == 192.0.2.100",
        &["eth.src", "arp.src.hw_mac"],
        &[],
    );
    assert!(!garps.is_empty(), "no gratuitous ARP captured");
    assert!(
        garps.iter().all(|f| f[0] == VMAC && f[1] == VMAC),
        "announcements not from {VMAC}: {garps:?}"
    );
    // Nothing else (no IPv6 DAD, MLD or router solicitation) from the shared MAC.
    let other = harness::vipd::tshark_fields(
        &pcap,
        &format!("eth.src == {VMAC} && !vrrp && !arp"),
        &["frame.protocols"],
        &[],
    );
    assert!(other.is_empty(), "other frames from {VMAC}: {other:?}");
    println!(
        "capture: {} adverts and {} gratuitous ARPs, all from {VMAC}",
        adverts.len(),
        garps.len()
    );
    let d = link_details(&topo, "lb1", &name).unwrap_or_else(|| panic!("no {name}:\n{}", a.log()));
    println!("{d}");
    assert!(d.contains("macvlan mode bridge"), "{d}");
    assert!(d.contains(VMAC), "{d}");
    assert!(d.contains("alias vipd virtual MAC"), "{d}");
    let on_vmac = topo
        .addresses("lb1")
        .iter()
        .any(|(dev, a)| dev.starts_with(&name) && *a == vip());
    assert!(on_vmac, "the VIP is not on {name}\n{}", topo.snapshot());
    // No IPv6 link-local on the macvlan (addr_gen_mode none): nothing sent from the MAC.
    assert!(
        !topo
            .addresses("lb1")
            .iter()
            .any(|(dev, a)| dev.starts_with(&name) && a.is_ipv6()),
        "{}",
        topo.snapshot()
    );
    assert!(
        a.log().contains("arp_ignore = 1") && a.log().contains("arp_announce = 2"),
        "no warning about the parent's sysctls:\n{}",
        a.log()
    );

    // 2b. Someone deletes the link under the master: vipd rebuilds the instance, and the
    //     link and the VIP on it come back.
    topo.exec_ok("lb1", &["ip", "link", "del", &name]);
    let back = wait_until(Duration::from_secs(10), ms(20), || {
        topo.addresses("lb1")
            .iter()
            .any(|(dev, a)| dev.starts_with(&name) && *a == vip())
    });
    assert!(
        back,
        "{name} and the VIP on it did not come back after the link was deleted:\n{}\n{}",
        a.log(),
        topo.snapshot()
    );
    assert!(
        a.log().contains("was deleted: rebuilding the instance"),
        "{}",
        a.log()
    );

    // 3. Crash, then `vipd cleanup`: the link goes with the VIP.
    a.kill();
    assert!(link_details(&topo, "lb1", &name).is_some());
    let vipd = harness::crate_bin("vipd", "VIPD_BIN", option_env!("CARGO_BIN_EXE_vipd"));
    let out = topo.exec("lb1", &[&vipd.to_string_lossy(), "cleanup"]);
    assert!(out.ok(), "vipd cleanup: {}{}", out.stdout, out.stderr);
    assert!(
        link_details(&topo, "lb1", &name).is_none(),
        "vipd cleanup left {name}: {}{}",
        out.stdout,
        out.stderr
    );

    // 4. Crash, then a start with a configuration without virtual MAC: removed at start.
    a.restart(&topo);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    a.kill();
    assert!(link_details(&topo, "lb1", &name).is_some());
    let plain = start_vipd(&topo, "lb1", P1, false);
    assert!(
        plain.wait_log("removing virtual MAC link", Duration::from_secs(10)),
        "{}",
        plain.log()
    );
    assert!(
        link_details(&topo, "lb1", &name).is_none(),
        "{}",
        plain.log()
    );
    // Running (signal handlers installed) once "running" follows the removal.
    assert!(wait_until(Duration::from_secs(10), ms(20), || {
        let log = plain.log();
        log.rfind("running 1 instance") > log.rfind("removing virtual MAC link")
    }));
    let st = plain.stop(Duration::from_secs(10));
    assert!(st.success(), "{st:?}\n{}", plain.log());
}

// ---- keepalived use_vmac -------------------------------------------------------------------

fn keepalived_vmac_conf(prio: u8) -> String {
    keepalived_conf(&[KeepalivedInstance::new(INSTANCE, VRID, prio)
        .advert_int(ADV)
        .version(3)
        .vip("192.0.2.100/24")
        .line("use_vmac")])
}

#[test]
fn keepalived_use_vmac_interop_both_ways() {
    if harness::which("keepalived").is_none() {
        panic!("keepalived is not installed (integration/setup.sh installs it)");
    }
    let _g = netns_test!();
    let (topo, _responders) = vmac_lan();
    // vipd (150) on lb1, keepalived (100) with use_vmac on lb2.
    let mut lb1 = start_vipd(&topo, "lb1", P1, true);
    let mut lb2 = topo.start_agent("lb2", AgentKind::Keepalived, &keepalived_vmac_conf(P2));
    wait_sole_holder(&topo, "lb1", Duration::from_secs(15));
    // Stable: keepalived hears vipd's adverts from the shared MAC and stays backup.
    for _ in 0..20 {
        assert_eq!(topo.vip_holders(vip()), ["lb1"], "{}", topo.snapshot());
        std::thread::sleep(ms(50));
    }
    let probe = probe_on_vmac(&topo);

    // vipd -> keepalived: graceful stop.
    // vipd stops, comes back and preempts keepalived, then dies: keepalived takes over.
    let (t_stop, t_death) = stop_return_and_die(&topo, &mut lb1, "lb2");
    topo.restore_link("lb1");
    lb1.restart(&topo);
    wait_sole_holder(&topo, "lb1", Duration::from_secs(10));
    std::thread::sleep(ms(500));
    // keepalived as master: vipd stopped, keepalived holds; then keepalived stops
    // gracefully and vipd (restarted as the lower priority) takes over.
    assert!(lb1.stop(Duration::from_secs(10)).success());
    wait_sole_holder(&topo, "lb2", Duration::from_secs(5));
    let low = start_vipd(&topo, "lb1", 50, true);
    std::thread::sleep(ms(1500));
    assert_eq!(
        topo.vip_holders(vip()),
        ["lb2"],
        "vipd (50) must stay backup to keepalived (100)"
    );
    // keepalived stops, comes back at 100 and preempts vipd at 50, then dies.
    let (t_k_stop, t_k_death) = stop_return_and_die(&topo, &mut lb2, "lb1");
    let rep = finish(probe);
    assert_handover_outages(
        "keepalived use_vmac interop",
        &rep,
        &[
            ("vipd stop -> keepalived", t_stop),
            ("vipd death -> keepalived", t_death),
            ("keepalived stop -> vipd", t_k_stop),
            ("keepalived death -> vipd", t_k_death),
        ],
    );
    assert_client_on_vmac(&topo);
    low.assert_running();
}

/// The master `a` hands over to the host `other` twice: a graceful stop (then `a` comes
/// back and preempts), and a death (SIGKILL, its link cut; `other` must hold the VIP within
/// 10 s). Returns when the stop and the death began.
fn stop_return_and_die(topo: &Topology, a: &mut Agent, other: &str) -> (Duration, Duration) {
    let host = a.host().to_string();
    let t_stop = mono_now();
    assert!(a.stop(Duration::from_secs(10)).success());
    wait_sole_holder(topo, other, Duration::from_secs(5));
    std::thread::sleep(ms(500));
    a.restart(topo);
    wait_sole_holder(topo, &host, Duration::from_secs(10));
    std::thread::sleep(ms(500));
    let t_death = mono_now();
    a.kill();
    topo.cut_link(&host);
    assert!(wait_until(Duration::from_secs(10), ms(5), || topo
        .holds_vip(other, vip())));
    std::thread::sleep(ms(700));
    (t_stop, t_death)
}

/// Prints the client's outage around each handover of an interop run (`events`: what
/// happened, when) and asserts each is under 3 s.
fn assert_handover_outages(peer: &str, rep: &ProbeReport, events: &[(&str, Duration)]) {
    for (what, t) in events {
        let o = rep
            .outage_around(*t, ms(500))
            .map(|o| o.duration)
            .unwrap_or_default();
        println!("measure: {peer}, {what}: client outage {:.0} ms", msf(o));
        assert!(
            o < Duration::from_secs(3),
            "{what}: outage {o:?}: {}",
            rep.summary()
        );
    }
}

// ---- FRR vrrpd ---------------------------------------------------------------------------

/// zebra + vrrpd on one host (`-u frr -g frr`, sockets in a run directory owned by
/// user frr, vty TCP port off), with the macvlan FRR needs created beforehand as its
/// documentation says (bridge mode, the virtual MAC, the VIP on it, up).
struct FrrVrrp {
    dir: std::path::PathBuf,
    _zebra: harness::Proc,
    vrrpd: harness::Proc,
}

fn start_frr_vrrp(topo: &Topology, host: &str, prio: u8) -> FrrVrrp {
    let name = vmac_name(topo, host);
    for argv in [
        vec![
            "ip", "link", "add", &name, "link", "eth0", "type", "macvlan", "mode", "bridge",
        ],
        vec!["ip", "link", "set", "dev", &name, "addrgenmode", "random"],
        vec!["ip", "link", "set", "dev", &name, "address", VMAC],
        vec!["ip", "addr", "add", "192.0.2.100/24", "dev", &name],
        vec!["ip", "link", "set", "dev", &name, "up"],
    ] {
        topo.exec_ok(host, &argv);
    }
    let (dir, zebra) = start_zebra_for(
        topo,
        host,
        "vrrpd",
        &format!(
            "hostname vrrpd\ninterface eth0\n vrrp {VRID} version 3\n vrrp {VRID} priority {prio}\n vrrp {VRID} advertisement-interval 100\n vrrp {VRID} ip 192.0.2.100\n!\n"
        ),
    );
    let vrrpd = frr_daemon(topo, host, &dir, "vrrpd");
    FrrVrrp {
        dir,
        _zebra: zebra,
        vrrpd,
    }
}

impl FrrVrrp {
    /// FRR's IPv4 state of VRID 51 ("Master", "Backup", "Initialize"), from vtysh.
    fn state(&self, topo: &Topology, host: &str) -> Option<String> {
        let d = self.dir.to_string_lossy().into_owned();
        let out = topo.exec(
            host,
            &[
                "vtysh",
                "--vty_socket",
                &d,
                "-c",
                &format!("show vrrp {VRID} json"),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        let first = v.as_array()?.first()?.clone();
        first["v4"]["status"].as_str().map(str::to_owned)
    }

    fn show(&self, topo: &Topology, host: &str) -> String {
        let d = self.dir.to_string_lossy().into_owned();
        topo.exec(
            host,
            &[
                "vtysh",
                "--vty_socket",
                &d,
                "-c",
                &format!("show vrrp {VRID}"),
            ],
        )
        .stdout
    }

    fn restart_vrrpd(&mut self, topo: &Topology, host: &str) {
        self.vrrpd = frr_daemon(topo, host, &self.dir, "vrrpd");
    }
}

fn vipd_state(topo: &Topology, host: &str) -> Option<String> {
    harness::vipd::vipd_state(topo, host, INSTANCE)
}

#[test]
fn frr_vrrpd_interop_both_ways() {
    if harness::which("vtysh").is_none() || !std::path::Path::new("/usr/lib/frr/vrrpd").exists() {
        panic!("FRR (vrrpd, vtysh) is not installed (integration/setup.sh installs frr)");
    }
    let _g = netns_test!();
    let (topo, _responders) = vmac_lan();
    // vipd (150) on lb1, FRR (100) on lb2: vipd wins the election.
    let mut lb1 = start_vipd(&topo, "lb1", P1, true);
    let mut frr = start_frr_vrrp(&topo, "lb2", P2);
    let elected = wait_until(Duration::from_secs(20), ms(50), || {
        vipd_state(&topo, "lb1").as_deref() == Some("master")
            && frr.state(&topo, "lb2").as_deref() == Some("Backup")
    });
    assert!(
        elected,
        "election: vipd {:?}, FRR:\n{}\nvipd:\n{}\nvrrpd:\n{}",
        vipd_state(&topo, "lb1"),
        frr.show(&topo, "lb2"),
        lb1.log(),
        frr.vrrpd.log()
    );
    for _ in 0..10 {
        assert_eq!(
            frr.state(&topo, "lb2").as_deref(),
            Some("Backup"),
            "{}",
            frr.show(&topo, "lb2")
        );
        std::thread::sleep(ms(100));
    }
    let probe = probe_on_vmac(&topo);
    let frr_master = |topo: &Topology, frr: &FrrVrrp| {
        wait_until(Duration::from_secs(10), ms(20), || {
            frr.state(topo, "lb2").as_deref() == Some("Master")
        })
    };

    // vipd graceful stop -> FRR.
    let t_stop = mono_now();
    assert!(lb1.stop(Duration::from_secs(10)).success());
    assert!(
        frr_master(&topo, &frr),
        "FRR did not take over after vipd's stop:\n{}",
        frr.show(&topo, "lb2")
    );
    std::thread::sleep(ms(500));
    // vipd back (preempts), then dies: FRR takes over.
    lb1.restart(&topo);
    assert!(
        wait_until(Duration::from_secs(10), ms(20), || {
            vipd_state(&topo, "lb1").as_deref() == Some("master")
                && frr.state(&topo, "lb2").as_deref() == Some("Backup")
        }),
        "vipd did not preempt FRR:\n{}\n{}",
        frr.show(&topo, "lb2"),
        lb1.log()
    );
    std::thread::sleep(ms(500));
    let t_death = mono_now();
    lb1.kill();
    topo.cut_link("lb1");
    assert!(
        frr_master(&topo, &frr),
        "FRR did not take over after vipd's death:\n{}",
        frr.show(&topo, "lb2")
    );
    std::thread::sleep(ms(700));

    // The other way round: vipd (50) backup to FRR (100).
    topo.restore_link("lb1");
    let low = start_vipd(&topo, "lb1", 50, true);
    assert!(lb1_becomes(&topo, "backup"));
    std::thread::sleep(ms(1000));
    assert_eq!(
        vipd_state(&topo, "lb1").as_deref(),
        Some("backup"),
        "{}",
        low.log()
    );
    assert_eq!(frr.state(&topo, "lb2").as_deref(), Some("Master"));
    // FRR graceful stop (SIGTERM to vrrpd) -> vipd.
    let t_f_stop = mono_now();
    let _ = frr.vrrpd.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(frr.vrrpd.wait_timeout(Duration::from_secs(10)).is_some());
    assert!(
        lb1_becomes(&topo, "master"),
        "vipd did not take over after FRR's stop:\n{}",
        low.log()
    );
    std::thread::sleep(ms(700));
    // FRR back (preempts vipd at 50), then its host dies.
    frr.restart_vrrpd(&topo, "lb2");
    assert!(
        frr_master(&topo, &frr),
        "FRR did not come back as master:\n{}",
        frr.show(&topo, "lb2")
    );
    assert!(lb1_becomes(&topo, "backup"));
    std::thread::sleep(ms(700));
    let t_f_death = mono_now();
    let _ = frr.vrrpd.signal(nix::sys::signal::Signal::SIGKILL);
    topo.cut_link("lb2");
    assert!(
        lb1_becomes(&topo, "master"),
        "vipd did not take over after FRR's death:\n{}",
        low.log()
    );
    std::thread::sleep(ms(700));
    let rep = finish(probe);
    assert_handover_outages(
        "FRR vrrpd interop",
        &rep,
        &[
            ("vipd stop -> FRR", t_stop),
            ("vipd death -> FRR", t_death),
            ("FRR stop -> vipd", t_f_stop),
            ("FRR death -> vipd", t_f_death),
        ],
    );
    low.assert_running();
    assert_client_on_vmac(&topo);
}

// ---- reload pre-flight -------------------------------------------------------------------

/// A reload that turns `virtual-mac` on while an operator's link holds the macvlan's name
/// cannot start the new settings: the running master is kept, with its VIP, and the
/// reload says why.
#[test]
fn reload_to_virtual_mac_blocked_by_an_operators_link_keeps_the_running_master() {
    let _g = netns_test!();
    let (topo, name) = lan_and_vmac_name();
    let a = lb1_sole_master(&topo, false);
    topo.exec_ok(
        "lb1",
        &[
            "ip", "link", "add", &name, "link", "eth0", "address", VMAC, "type", "macvlan", "mode",
            "bridge",
        ],
    );
    std::fs::write(a.conf_path(), vipd_conf(&topo, "lb1", P1, true)).expect("write config");
    let out = harness::vipd::vipctl(&topo, "lb1", &["reload"]);
    assert!(
        !out.ok() && out.stderr.contains(&name),
        "the reload did not fail naming {name}: {}{}\n{}",
        out.stdout,
        out.stderr,
        a.log()
    );
    assert!(
        a.log_count("settings changed: rebuilding the instance") == 0,
        "the running instance was stopped:\n{}",
        a.log()
    );
    assert!(
        topo.holds_vip("lb1", vip()),
        "lb1 lost the VIP:\n{}",
        a.log()
    );
    assert!(link_details(&topo, "lb1", &name).is_some());
    a.assert_running();
    topo.exec_ok("lb1", &["ip", "link", "del", &name]);
}

/// A VIP deleted from the macvlan under a master is added again, and the log line names
/// the macvlan it was on, not the parent interface.
#[test]
fn vip_deleted_from_the_macvlan_is_added_again_naming_the_macvlan() {
    let _g = netns_test!();
    let (topo, name) = lan_and_vmac_name();
    let a = lb1_sole_master(&topo, true);
    let vip_on_macvlan = ["192.0.2.100/24", "dev", &name];
    topo.exec_ok(
        "lb1",
        &[&["ip", "addr", "del"][..], &vip_on_macvlan].concat(),
    );
    assert!(
        a.wait_log(
            &format!("disappeared from {name} while MASTER"),
            Duration::from_secs(5)
        ),
        "no log line naming {name}:\n{}",
        a.log()
    );
    wait_sole_holder(&topo, "lb1", Duration::from_secs(5));
}
