//! Self-test of the namespace harness, with keepalived as the agent.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test harness_selftest -- --nocapture`
//! (root needed; without root the namespace tests skip unless VIPD_REQUIRE_NETNS=1).

mod harness;

use std::net::IpAddr;
use std::time::Duration;

use harness::prelude::*;
use harness::{
    keepalived_conf, keepalived_config_complaints, mono_now, netns_test, wait_until, Agent,
    AgentKind, KeepalivedInstance, Probe, ProbeReport, Record, Topology, TopologyOpts,
};

fn rec(seq: u64, sent_ms: u64, reply_ms: Option<u64>, name: &str) -> Record {
    Record {
        seq,
        sent: ms(sent_ms),
        reply: reply_ms.map(ms),
        name: reply_ms.map(|_| name.to_string()),
    }
}

// ---- analysis (no root needed) -------------------------------------------------------------

#[test]
fn probe_report_finds_outages_and_responder_changes() {
    // 0..3 answered by lb1, 4..7 lost, 8..9 answered by lb2, 10 lost at the end.
    let mut r = Vec::new();
    for s in 0..4 {
        r.push(rec(s, s * 10, Some(s * 10 + 1), "lb1"));
    }
    for s in 4..8 {
        r.push(rec(s, s * 10, None, ""));
    }
    for s in 8..10 {
        r.push(rec(s, s * 10, Some(s * 10 + 2), "lb2"));
    }
    r.push(rec(10, 100, None, ""));
    let rep = ProbeReport::from_records(r);
    assert_eq!((rep.sent, rep.lost), (11, 5));
    assert_eq!(rep.outages.len(), 2, "{}", rep.summary());
    let o = &rep.outages[0];
    assert_eq!((o.start, o.end, o.duration), (ms(31), ms(82), ms(51)));
    assert_eq!(o.before.as_deref(), Some("lb1"));
    assert_eq!(o.after.as_deref(), Some("lb2"));
    assert_eq!(o.lost, 4);
    let tail = &rep.outages[1];
    assert_eq!(
        tail.after, None,
        "an outage lasting to the end has no `after`"
    );
    assert_eq!(rep.longest_outage(), Some(o));
    assert_eq!(
        rep.answered_by_over_time,
        vec![(ms(1), "lb1".to_string()), (ms(82), "lb2".to_string())]
    );
    assert_eq!(rep.responders(), vec!["lb1", "lb2"]);
}

#[test]
fn outage_around_an_event_is_the_longest_gap_it_opens() {
    // Event at 35 ms; one in-flight reply still arrives at 36 ms, then nothing until 90 ms.
    let r = vec![
        rec(0, 0, Some(1), "lb1"),
        rec(1, 10, Some(11), "lb1"),
        rec(2, 20, Some(21), "lb1"),
        rec(3, 30, Some(36), "lb1"),
        rec(4, 40, None, ""),
        rec(5, 50, None, ""),
        rec(6, 60, None, ""),
        rec(7, 70, None, ""),
        rec(8, 80, Some(90), "lb2"),
    ];
    let rep = ProbeReport::from_records(r);
    let o = rep
        .outage_around(ms(35), ms(20))
        .expect("an outage after the event");
    assert_eq!((o.start, o.end), (ms(36), ms(90)));
    assert_eq!(
        (o.before.as_deref(), o.after.as_deref()),
        (Some("lb1"), Some("lb2"))
    );
    assert_eq!(o.lost, 4);
    // Without slack only the gap spanning 35 ms counts, and it lost nothing.
    assert_eq!(rep.outage_around(ms(35), Duration::ZERO), None);
    // An event long after the outage sees nothing.
    assert_eq!(rep.outage_around(ms(95), ms(5)), None);
}

#[test]
fn probe_output_parses_and_rejects_garbage() {
    let text = "{\"seq\":0,\"sent_ns\":1000000,\"reply_ns\":2000000,\"name\":\"lb1\"}\n\
                {\"seq\":1,\"sent_ns\":3000000,\"reply_ns\":null,\"name\":null}\n";
    let rep = ProbeReport::parse_jsonl(text).expect("valid probe output");
    assert_eq!((rep.sent, rep.lost), (2, 1));
    assert_eq!(rep.records[0].reply, Some(ms(2)));
    assert!(ProbeReport::parse_jsonl("{\"seq\":0}\n").is_err());
    assert!(ProbeReport::parse_jsonl("not json\n").is_err());
}

#[test]
fn keepalived_conf_renders_every_option() {
    let peer: IpAddr = "192.0.2.12".parse().expect("literal");
    let src: IpAddr = "192.0.2.11".parse().expect("literal");
    let conf = keepalived_conf(&[KeepalivedInstance::new("web", 51, 150)
        .advert_int(ms(100))
        .vip("192.0.2.100/24")
        .unicast(src, &[peer])
        .nopreempt(true)
        .v3_checksum_as_v2(true)]);
    for want in [
        "vrrp_instance web {",
        "state BACKUP",
        "interface eth0",
        "version 3",
        "virtual_router_id 51",
        "priority 150",
        "advert_int 0.1\n",
        "nopreempt",
        "v3_checksum_as_v2",
        "unicast_src_ip 192.0.2.11",
        "unicast_peer {\n        192.0.2.12\n    }",
        "192.0.2.100/24 dev eth0",
    ] {
        assert!(conf.contains(want), "missing {want:?} in:\n{conf}");
    }
    let v2 = keepalived_conf(&[KeepalivedInstance::new("a", 1, 100)
        .version(2)
        .advert_int(Duration::from_secs(2))]);
    assert!(
        v2.contains("version 2") && v2.contains("advert_int 2\n"),
        "{v2}"
    );
    assert!(!v2.contains("nopreempt") && !v2.contains("unicast"), "{v2}");
    let c = keepalived_conf(&[KeepalivedInstance::new("a", 1, 100).advert_int(ms(1250))]);
    assert!(c.contains("advert_int 1.25\n"), "{c}");
}

#[test]
fn keepalived_complaints_are_found_in_its_log() {
    let log = "(/x.conf: Line 7) number '0.001' outside range [0.010000, 255.000000]\n\
               Registering Kernel netlink reflector\n\
               (/x.conf: Line 8) Unknown keyword 'v3_checksum_as_v2'\n";
    let c = keepalived_config_complaints(log);
    assert_eq!(c.len(), 2, "{c:?}");
}

// ---- namespace tests -----------------------------------------------------------------------

fn ka_pair(topo: &Topology) -> (Agent, Agent) {
    let conf = |prio| {
        keepalived_conf(&[KeepalivedInstance::new("VI_1", 51, prio)
            .advert_int(ms(100))
            .vip(&format!("{VIP}/24"))])
    };
    let lb1 = topo.start_agent("lb1", AgentKind::Keepalived, &conf(150));
    let lb2 = topo.start_agent("lb2", AgentKind::Keepalived, &conf(100));
    (lb1, lb2)
}

fn assert_keepalived_took_config(a: &Agent) {
    assert!(
        a.wait_log("Entering BACKUP STATE", Duration::from_secs(5))
            || a.log().contains("Entering MASTER STATE"),
        "keepalived on {} never entered a VRRP state; log:\n{}",
        a.host(),
        a.log()
    );
    let complaints = keepalived_config_complaints(&a.log());
    assert!(
        complaints.is_empty(),
        "keepalived on {} refused part of its config (advert_int 0.1 must be accepted): {complaints:?}",
        a.host()
    );
}

#[test]
fn topology_builds_addresses_and_tears_down() {
    let _g = netns_test!();
    let (prefix, sleeper_pid);
    {
        let topo = Topology::new(TopologyOpts::default().with_host("rogue").with_second_lan());
        prefix = topo.prefix().to_string();
        for (h, ip4, ip6) in [
            ("lb1", "192.0.2.11", "2001:db8::11"),
            ("lb2", "192.0.2.12", "2001:db8::12"),
            ("client", "192.0.2.50", "2001:db8::50"),
            ("rogue", "192.0.2.66", "2001:db8::66"),
        ] {
            let ip4: IpAddr = ip4.parse().expect("literal");
            let ip6: IpAddr = ip6.parse().expect("literal");
            assert!(
                topo.holds_vip(h, ip4),
                "{h} lacks {ip4}\n{}",
                topo.snapshot()
            );
            assert!(
                topo.holds_vip(h, ip6),
                "{h} lacks {ip6}\n{}",
                topo.snapshot()
            );
        }
        let lan2: IpAddr = "198.51.100.11".parse().expect("literal");
        assert!(topo.holds_vip("lb1", lan2), "{}", topo.snapshot());
        assert!(!topo.holds_vip("client", lan2));
        // nodad: the IPv6 address is not tentative.
        let a = topo.exec_ok("lb1", &["ip", "-6", "addr", "show", "dev", "eth0"]);
        assert!(!a.contains("tentative"), "{a}");
        let s = topo.exec_ok("lb1", &["sysctl", "-n", "net.ipv4.ip_nonlocal_bind"]);
        assert_eq!(s.trim(), "1");
        let s = topo.exec_ok("client", &["sysctl", "-n", "net.ipv4.conf.eth0.arp_accept"]);
        assert_eq!(s.trim(), "0", "the client keeps arp_accept at its default");
        assert_eq!(topo.mac("lb2"), "02:00:00:00:00:12");
        let sleeper = topo.spawn("rogue", &["sleep", "300"], "sleep.log");
        sleeper_pid = sleeper.pid();
        assert!(sleeper.is_running());
    }
    let list = harness::run_cmd(&["ip", "netns", "list"], None, Duration::from_secs(10));
    assert!(
        !list.stdout.contains(&prefix),
        "namespaces of {prefix} survived teardown:\n{}",
        list.stdout
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{sleeper_pid}")).exists(),
        "process {sleeper_pid} survived teardown"
    );
}

#[test]
fn responder_answers_only_while_the_vip_is_local() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let vip: IpAddr = "192.0.2.101".parse().expect("literal");
    // Frames for the VIP go to lb2's MAC whatever happens: a static entry on the client.
    topo.exec_ok(
        "client",
        &[
            "ip",
            "neigh",
            "replace",
            "192.0.2.101",
            "lladdr",
            &topo.mac("lb2"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    let _r = topo.start_responder("lb2", vip);
    std::thread::sleep(ms(200));
    let phase = |what: &str| {
        let p = topo.start_probe_with(harness::ProbeOpts {
            duration: ms(400),
            ..harness::ProbeOpts::new(vip, ms(10))
        });
        let rep = p.wait();
        eprintln!("{what}: {}", rep.summary());
        rep
    };
    let rep = phase("VIP not on lb2");
    assert!(
        rep.sent > 10 && rep.lost == rep.sent,
        "non-local: answered? {}",
        rep.summary()
    );
    topo.exec_ok(
        "lb2",
        &["ip", "addr", "add", "192.0.2.101/24", "dev", "eth0"],
    );
    let rep = phase("VIP on lb2");
    assert!(rep.sent > 10 && rep.lost == 0, "local: {}", rep.summary());
    assert_eq!(rep.responders(), vec!["lb2"]);
    topo.exec_ok(
        "lb2",
        &["ip", "addr", "del", "192.0.2.101/24", "dev", "eth0"],
    );
    let rep = phase("VIP removed again");
    assert!(rep.lost == rep.sent, "removed: {}", rep.summary());
}

/// Waits (at most `timeout`) until the client's neighbour entry for the VIP is `host`'s
/// MAC, lets `settle` pass, then stops the probe and prints its summary: whether the
/// client got there, and the probe's report.
fn client_follows(
    topo: &Topology,
    probe: Probe,
    host: &str,
    timeout: Duration,
    settle: Duration,
) -> (bool, ProbeReport) {
    let reached = wait_until(timeout, ms(10), || {
        topo.neigh("client", vip()) == Some(topo.mac(host))
    });
    std::thread::sleep(settle);
    let rep = probe.finish();
    eprintln!("{}", rep.summary());
    (reached, rep)
}

#[test]
fn keepalived_crash_of_master_client_reaches_backup() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let _responders = topo.start_responders(vip());
    let (lb1, lb2) = ka_pair(&topo);
    topo.expect_sole_holder(vip(), "lb1", Duration::from_secs(10));
    assert_keepalived_took_config(&lb1);
    assert_keepalived_took_config(&lb2);

    let probe = topo.start_probe_resolved(vip(), ms(2), "lb1");
    std::thread::sleep(ms(200));

    let event = mono_now();
    lb1.kill();
    topo.cut_link("lb1");
    let t_kill = mono_now() - event;
    // lb1's crashed agent leaves the VIP configured on its isolated host: only lb2 counts.
    let took = wait_until(Duration::from_secs(10), ms(5), || {
        topo.holds_vip("lb2", vip())
    });
    assert!(
        took,
        "lb2 never took {VIP} after lb1's crash\n{}",
        topo.snapshot()
    );
    let t_vip = mono_now() - event;
    let (moved, rep) = client_follows(&topo, probe, "lb2", Duration::from_secs(10), ms(1000));
    assert!(
        moved,
        "client's neighbour entry for {VIP} never moved to lb2\n{}",
        topo.snapshot()
    );
    let o = rep
        // The crash procedure itself takes time (longer on a loaded machine): the
        // outage starts somewhere between `event` and `event + t_kill`.
        .outage_around(event, t_kill + ms(50))
        .unwrap_or_else(|| panic!("no outage seen around the crash: {}", rep.summary()));
    eprintln!(
        "crash of lb1 (kill took {t_kill:?}, lb2 held the VIP after {t_vip:?}): \
         client-side outage {:.1} ms ({} -> {}, {} lost)",
        o.duration.as_secs_f64() * 1000.0,
        o.before.as_deref().unwrap_or("-"),
        o.after.as_deref().unwrap_or("-"),
        o.lost
    );
    assert_eq!(o.before.as_deref(), Some("lb1"), "{}", rep.summary());
    assert_eq!(o.after.as_deref(), Some("lb2"), "{}", rep.summary());
    // Master_Down_Interval at 100 ms and priority 100 is 3*0.1 + 0.061 s; allow for a busy
    // 2-core machine.
    assert!(
        o.duration < Duration::from_secs(3),
        "outage too long: {}",
        rep.summary()
    );
    assert!(
        rep.replies_from_after("lb2", o.end) > 100,
        "lb2 did not keep answering: {}",
        rep.summary()
    );
    assert_eq!(rep.responders(), vec!["lb1", "lb2"], "{}", rep.summary());
    lb2.stop(Duration::from_secs(5));
}

#[test]
fn keepalived_vrrp_partition_splits_brain_and_heal_restores_one_master() {
    let _g = netns_test!();
    let mut topo = Topology::new(TopologyOpts::default());
    let _responders = topo.start_responders(vip());
    let (lb1, mut lb2) = ka_pair(&topo);
    topo.expect_sole_holder(vip(), "lb1", Duration::from_secs(10));
    let probe = topo.start_probe(vip(), ms(2));
    std::thread::sleep(ms(500));

    topo.partition_vrrp("lb1", "lb2");
    let split = wait_until(Duration::from_secs(5), ms(20), || {
        topo.vip_holders(vip()) == ["lb1", "lb2"]
    });
    assert!(
        split,
        "no split brain under a VRRP partition\n{}",
        topo.snapshot()
    );
    let counters = topo.nft_counters();
    let v4_drops: Vec<u64> = counters
        .lines()
        .filter(|l| l.contains("ip protocol vrrp"))
        .filter_map(|l| {
            l.split("packets ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        v4_drops.len() == 2 && v4_drops.iter().all(|n| *n > 0),
        "partition rules did not drop VRRP in both directions ({v4_drops:?}):\n{counters}"
    );
    std::thread::sleep(ms(500));

    let heal = mono_now();
    topo.heal();
    topo.expect_sole_holder(vip(), "lb1", Duration::from_secs(5));
    // The client may stay pointed at lb2 until its own ARP re-resolution (see DESIGN.md §4):
    // allow that, bounded.
    let (back, rep) = client_follows(&topo, probe, "lb1", Duration::from_secs(15), ms(500));
    assert!(
        back,
        "client never came back to lb1 after heal\n{}",
        topo.snapshot()
    );
    match rep.outage_around(heal, ms(200)) {
        Some(o) => eprintln!(
            "after heal: client-side outage {:.1} ms ({} -> {})",
            o.duration.as_secs_f64() * 1000.0,
            o.before.as_deref().unwrap_or("-"),
            o.after.as_deref().unwrap_or("-")
        ),
        None => eprintln!("after heal: no client-side outage"),
    }
    let last = rep.answered_by_over_time.last().map(|(_, n)| n.as_str());
    assert_eq!(last, Some("lb1"), "{}", rep.summary());

    // Restart after a graceful stop: lb2 comes back as backup; lb1 keeps the VIP.
    let st = lb2.stop(Duration::from_secs(5));
    assert!(
        st.success(),
        "keepalived on lb2 exited with {st} on SIGTERM\n{}",
        lb2.log()
    );
    lb2.restart(&topo);
    assert!(
        lb2.wait_log("Entering BACKUP STATE", Duration::from_secs(5)),
        "{}",
        lb2.log()
    );
    topo.expect_sole_holder(vip(), "lb1", Duration::from_secs(2));
    drop(lb1);
}

#[test]
fn random_loss_drops_about_the_requested_share() {
    let _g = netns_test!();
    let mut topo = Topology::new(TopologyOpts::default());
    let vip: IpAddr = topo.ip4("lb1").into();
    let _r = topo.start_responder("lb1", vip);
    // Resolve ARP before the loss starts.
    let warm = topo.start_probe_with(harness::ProbeOpts {
        duration: ms(200),
        ..harness::ProbeOpts::new(vip, ms(10))
    });
    let w = warm.wait();
    // Requests before the responder is up (it starts in the background) do not count.
    let first = w
        .records
        .iter()
        .position(|r| r.reply.is_some())
        .unwrap_or_else(|| panic!("the responder never answered: {}", w.summary()));
    let lost_after = w.records[first..]
        .iter()
        .filter(|r| r.reply.is_none())
        .count();
    assert_eq!(lost_after, 0, "no loss configured yet: {}", w.summary());
    topo.random_loss(20);
    let p = topo.start_probe_with(harness::ProbeOpts {
        duration: Duration::from_secs(2),
        ..harness::ProbeOpts::new(vip, ms(2))
    });
    let rep = p.wait();
    topo.random_loss(0);
    // Request and reply each cross the switch once: expected round-trip loss 1 - 0.8^2 = 36%.
    let share = rep.lost as f64 / rep.sent.max(1) as f64;
    eprintln!(
        "20% loss per crossing: {:.1}% round trips lost ({})",
        share * 100.0,
        rep.summary()
    );
    assert!(rep.sent > 300, "{}", rep.summary());
    assert!(
        (0.20..0.55).contains(&share),
        "lost share {share:.3} far from 0.36: {}",
        rep.summary()
    );
}

#[test]
fn stale_namespaces_of_dead_runs_are_removed() {
    let _g = netns_test!();
    // A pid that has just ended (reaped): no live process owns it.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let dead = child.id();
    let _ = child.wait();
    let stale = format!("{}{dead}-0-lb1", harness::NS_PREFIX);
    let out = harness::run_cmd(
        &["ip", "netns", "add", &stale],
        None,
        Duration::from_secs(10),
    );
    assert!(out.ok(), "creating {stale}: {}", out.stderr);
    let topo = Topology::new(TopologyOpts::default());
    let list = harness::run_cmd(&["ip", "netns", "list"], None, Duration::from_secs(10));
    if list.stdout.contains(&stale) {
        let _ = harness::run_cmd(
            &["ip", "netns", "del", &stale],
            None,
            Duration::from_secs(10),
        );
        panic!(
            "stale namespace {stale} survived Topology::new:\n{}",
            list.stdout
        );
    }
    // Our own namespaces are not stale.
    assert!(list.stdout.contains(topo.prefix()), "{}", list.stdout);
}
