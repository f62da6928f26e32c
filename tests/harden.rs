//! Hardening (issue 12), proven in network namespaces: vipd removes only the addresses it
//! added, one vipd at a time, a VIP deleted under a master comes back, floods of packets for
//! the instance's own VRID change nothing, reload and start-up are not all-or-nothing, a
//! second SIGTERM hurries the stop, a panicking driver is restarted alone, and the systemd
//! watchdog is fed only while every driver answers.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test harden -- --test-threads=1` (root).
//!
//! Longer than 600 lines on purpose: one self-contained scenario per hardening rule of
//! issue 12, each on its own topology; what they share (topology, vipd, waiters) is in
//! `tests/harness`.

mod harness;

use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use harness::prelude::*;
use harness::vipd::{
    craft, craft_spawn, flood_args, instance_field, metric_sum, metrics_text, vipd_conf,
    vipd_state, wait_vipd_state, VipdInstance,
};
use harness::{netns_test, vipctl, wait_until, Agent, AgentKind, Topology, TopologyOpts};

const VIP_B: &str = "192.0.2.101";

/// The vipd under test: `$VIPD_BIN` if set (as the harness's agents use), else this build's.
fn vipd_bin() -> String {
    std::env::var("VIPD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vipd").to_string())
}

fn start(topo: &Topology, host: &str, insts: &[VipdInstance]) -> Agent {
    topo.start_agent(host, AgentKind::vipd(), &vipd_conf(topo, host, insts))
}

fn wait_master(topo: &Topology, host: &str, name: &str, a: &Agent) {
    assert!(
        wait_vipd_state(topo, host, name, "master", secs(20)),
        "{host}: {name} never master\n{}",
        a.log()
    );
}

/// `ip -o addr show dev eth0` of `host`, one line per address.
fn addr_lines(topo: &Topology, host: &str) -> Vec<String> {
    topo.exec(host, &["ip", "-o", "addr", "show", "dev", "eth0"])
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

fn has_addr(topo: &Topology, host: &str, addr: &str) -> bool {
    addr_lines(topo, host)
        .iter()
        .any(|l| l.contains(&format!(" {addr}/")))
}

/// lb1 running `web` at priority 150, once it is master.
fn lb1_master(topo: &Topology) -> Agent {
    let lb1 = start(topo, "lb1", &[web(150)]);
    wait_master(topo, "lb1", "web", &lb1);
    lb1
}

/// `ip addr add|del CIDR dev eth0` on lb1, by hand (as an operator would).
fn lb1_addr(topo: &Topology, add_or_del: &str, cidr: &str) {
    topo.exec_ok("lb1", &["ip", "addr", add_or_del, cidr, "dev", "eth0"]);
}

/// Ends a vipd started by hand: `signal`, then a wait for it of at most `within`.
fn end(p: &harness::Proc, signal: nix::sys::signal::Signal, within: Duration) {
    let _ = p.signal(signal);
    let _ = p.wait_timeout(within);
}

/// Item 1: a second vipd started by mistake on the same host exits non-zero with a one-line
/// reason, before it touched anything: the master keeps its VIP and stays master.
#[test]
fn second_vipd_on_the_same_host_exits_and_touches_nothing() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let lb1 = lb1_master(&topo);
    let conf = lb1.conf_path().to_string_lossy().into_owned();
    let bin = vipd_bin();
    // Watch the VIP with millisecond resolution while the second daemon runs.
    let t0 = Instant::now();
    let second = topo.spawn("lb1", &[&bin, "-c", &conf], "lb1-second.log");
    let mut always_there = true;
    let exited = wait_until(secs(10), ms(2), || {
        always_there &= topo.holds_vip("lb1", vip());
        !second.is_running()
    });
    println!(
        "MEASURE {test}: second vipd exited after {:?}: {:?}; log: {}",
        t0.elapsed(),
        second.exit_status(),
        second.log().trim()
    );
    assert!(exited, "{test}: the second vipd is still running");
    let st = second.exit_status().expect("exited");
    assert!(!st.success(), "{test}: the second vipd exited 0");
    assert!(
        second.log().contains("another vipd is already running"),
        "{test}: no reason given:\n{}",
        second.log()
    );
    assert!(
        always_there,
        "{test}: the VIP left lb1 while the second vipd ran"
    );
    assert!(topo.holds_vip("lb1", vip()), "{test}: the VIP is gone");
    assert_eq!(
        vipd_state(&topo, "lb1", "web").as_deref(),
        Some("master"),
        "{test}"
    );
    assert!(lb1.proc().is_running(), "{test}: the first vipd died");
}

/// Item 2: an address equal to a VIP that the operator added by hand (no vipd mark) is never
/// removed: the instance is refused, status says why, and the address survives a stop.
#[test]
fn operators_own_address_equal_to_a_vip_is_never_removed() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    lb1_addr(&topo, "add", &format!("{VIP}/24"));
    let other = VipdInstance::new("other", 52, 150, &[&format!("{VIP_B}/24")]);
    let lb1 = start(&topo, "lb1", &[web(150), other]);
    // The other instance runs; web is refused with the reason.
    wait_master(&topo, "lb1", "other", &lb1);
    let fault = instance_field(&topo, "lb1", "web", "fault")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    println!("MEASURE {test}: web fault: {fault}");
    assert!(
        fault.contains("not added by vipd"),
        "{test}: status does not say why web is refused: {fault:?}"
    );
    assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("init"));
    assert!(lb1.log().contains("was not added by vipd"), "{}", lb1.log());
    let st = lb1.stop(secs(20));
    assert!(st.success(), "{test}: exit {st:?}\n{}", lb1.log());
    assert!(
        has_addr(&topo, "lb1", VIP),
        "{test}: vipd removed the operator's own {VIP}: {:?}",
        addr_lines(&topo, "lb1")
    );
    assert!(
        !has_addr(&topo, "lb1", VIP_B),
        "{test}: vipd left its own VIP"
    );
}

/// Items 2 and 3: after a SIGKILL the VIP stays (marked `proto 86`); `vipd cleanup` removes
/// it and nothing else; a restart with the instance gone from the config removes its
/// leftover VIP too.
#[test]
fn sigkill_leftovers_are_removed_by_cleanup_and_at_restart_and_nothing_else() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    lb1_addr(&topo, "add", "198.51.100.7/24");
    let lb1 = lb1_master(&topo);
    let marked = addr_lines(&topo, "lb1")
        .into_iter()
        .find(|l| l.contains(&format!(" {VIP}/")))
        .unwrap_or_default();
    assert!(!marked.is_empty(), "{test}: VIP not on lb1");
    // cleanup refuses while vipd runs.
    let refused = topo.exec("lb1", &[&vipd_bin(), "cleanup"]);
    assert!(!refused.ok(), "{test}: cleanup ran beside a running vipd");
    assert!(topo.holds_vip("lb1", vip()));
    lb1.kill();
    assert!(
        topo.holds_vip("lb1", vip()),
        "{test}: SIGKILL removed the VIP?"
    );
    let before: Vec<String> = addr_lines(&topo, "lb1");
    let out = topo.exec("lb1", &[&vipd_bin(), "cleanup"]);
    println!("MEASURE {test}: cleanup: {}{}", out.stdout, out.stderr);
    assert!(out.ok(), "{test}: cleanup failed: {}", out.stderr);
    let after = addr_lines(&topo, "lb1");
    assert!(
        !topo.holds_vip("lb1", vip()),
        "{test}: cleanup left the VIP"
    );
    let removed: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(removed.len(), 1, "{test}: cleanup removed {removed:?}");
    for keep in ["192.0.2.11", "198.51.100.7"] {
        assert!(
            has_addr(&topo, "lb1", keep),
            "{test}: cleanup removed {keep}"
        );
    }

    // Restart with `web` removed from the config: its leftover VIP goes at start.
    let mut lb1 = start(&topo, "lb1", &[web(150)]);
    wait_master(&topo, "lb1", "web", &lb1);
    lb1.kill();
    assert!(topo.holds_vip("lb1", vip()));
    let only_b = VipdInstance::new("other", 52, 150, &[&format!("{VIP_B}/24")]);
    std::fs::write(lb1.conf_path(), vipd_conf(&topo, "lb1", &[only_b])).expect("write conf");
    lb1.restart(&topo);
    wait_master(&topo, "lb1", "other", &lb1);
    assert!(
        !topo.holds_vip("lb1", vip()),
        "{test}: the VIP of a removed instance survived the restart"
    );
    assert!(has_addr(&topo, "lb1", "198.51.100.7"));
}

/// Item 4: a VIP deleted under a master (by hand) is added again, with a log line.
#[test]
fn vip_deleted_under_a_master_is_added_again() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let lb1 = lb1_master(&topo);
    let t0 = Instant::now();
    lb1_addr(&topo, "del", &format!("{VIP}/24"));
    let back = wait_until(secs(5), ms(1), || topo.holds_vip("lb1", vip()));
    println!("MEASURE {test}: VIP back after {:?}", t0.elapsed());
    assert!(back, "{test}: the VIP did not come back\n{}", lb1.log());
    assert!(
        lb1.wait_log("disappeared from eth0 while MASTER", secs(2)),
        "{test}: no log line\n{}",
        lb1.log()
    );
    let restored = metric_sum(
        &metrics_text(&topo, "lb1"),
        "vipd_vips_restored_total",
        &[("instance", "web")],
    );
    assert_eq!(restored, 1.0, "{test}: vips_restored counter");
    assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("master"));
}

/// Item 8: start-up is not all-or-nothing (an instance on a missing interface waits, shown
/// in status); a reload whose new settings cannot start keeps the running instance, and
/// `vipctl reload` exits non-zero naming it.
#[test]
fn missing_interface_waits_and_a_reload_that_cannot_start_keeps_the_running_instance() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let ghost = VipdInstance::new("ghost", 52, 150, &[&format!("{VIP_B}/24")]).interface("eth9");
    let lb1 = start(&topo, "lb1", &[web(150), ghost.clone()]);
    wait_master(&topo, "lb1", "web", &lb1);
    let fault = instance_field(&topo, "lb1", "ghost", "fault")
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    assert!(
        fault.contains("no such interface eth9"),
        "{test}: ghost's status: {fault:?}"
    );
    // Reload: web moves to the missing eth9. It must keep running on eth0.
    let moved = web(150).interface("eth9");
    std::fs::write(lb1.conf_path(), vipd_conf(&topo, "lb1", &[moved, ghost])).expect("write");
    let out = vipctl(&topo, "lb1", &["reload"]);
    println!(
        "MEASURE {test}: vipctl reload: {:?} {}{}",
        out.status, out.stdout, out.stderr
    );
    assert!(!out.ok(), "{test}: vipctl reload exited 0");
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("web") && said.contains("eth9"),
        "{test}: the reply does not name the instance and why: {said}"
    );
    std::thread::sleep(ms(500));
    assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("master"));
    assert!(topo.holds_vip("lb1", vip()), "{test}: the VIP left");
    assert_eq!(
        instance_field(&topo, "lb1", "web", "interface").and_then(|v| v.as_str().map(String::from)),
        Some("eth0".into())
    );
}

/// Item 9: a second SIGTERM during a long handover (no backup to hear: the release waits
/// Master_Down_Interval, here about 10 s) stops waiting; the VIP is removed and vipd exits.
#[test]
fn second_sigterm_during_a_long_handover_exits_at_once() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let lb1 = start(&topo, "lb1", &[web(150).interval("3s")]);
    assert!(wait_vipd_state(&topo, "lb1", "web", "master", secs(30)));
    let t0 = Instant::now();
    lb1.proc()
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    std::thread::sleep(ms(500));
    assert!(
        lb1.proc().is_running(),
        "{test}: exited before the second signal"
    );
    let st = lb1.stop(secs(5));
    let took = t0.elapsed();
    println!("MEASURE {test}: exited {took:?} after the first SIGTERM: {st:?}");
    assert!(took < secs(4), "{test}: took {took:?}");
    assert!(
        !topo.holds_vip("lb1", vip()),
        "{test}: the VIP was left behind"
    );
    assert!(lb1.log().contains("second stop signal"), "{}", lb1.log());
}

/// Seconds between flood packets: about 5,000 a second. At the line rate of the crafting
/// script (250,000-480,000 a second here) a debug-build vipd pair and the script share two
/// cores, and the master itself is starved of CPU (it sent 5 adverts in 8 s): that run
/// measures the machine, not vipd (see the closing note of issue 12).
const FLOOD_GAP: &str = "0.0002";

fn adverts_sent(topo: &Topology, host: &str) -> f64 {
    metric_sum(
        &metrics_text(topo, host),
        "vipd_adverts_sent_total",
        &[("instance", "web")],
    )
}

/// Items 5 and 6: a flood from a third host of packets for the instance's own VRID — TTL 254,
/// bad checksum, valid-looking lower priority, priority 0 — for several Master_Down_Intervals
/// moves nothing (the backup never takes over), costs the master at most one extra advert
/// per interval, and does not delay the takeover when the master dies during a flood.
#[test]
fn floods_for_the_own_vrid_move_nothing_and_do_not_delay_a_takeover() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default().with_host("rogue"));
    // 1 s adverts (the common setting): on a 2-core machine whose other core runs the
    // flood generator, a line-rate flood overflows the receive socket now and then, and at
    // 100 ms three lost adverts in a row are only 300 ms of overflow (see the closing note).
    // Unicast peers: a stranger's valid-looking adverts are then dropped by the receiver's
    // stateless checks (unknown_peer) like bad ones. In multicast mode every valid advert
    // from anyone is the protocol's to process (see docs/security.md).
    let (ip1, ip2): (IpAddr, IpAddr) = (topo.ip4("lb1").into(), topo.ip4("lb2").into());
    let lb1 = start(&topo, "lb1", &[web(150).interval("1s").unicast(&[ip2])]);
    assert!(
        wait_vipd_state(&topo, "lb1", "web", "master", secs(20)),
        "{}",
        lb1.log()
    );
    let lb2 = start(&topo, "lb2", &[web(100).interval("1s").unicast(&[ip1])]);
    assert!(wait_vipd_state(&topo, "lb2", "web", "backup", secs(20)));
    let rogue = topo.ip4("rogue").to_string();
    // 8 s each: more than two Master_Down_Intervals of lb2 (3.61 s).
    let cases: [(&str, &[&str]); 5] = [
        ("ttl254", &["--prio", "200"]),
        ("valid", &["--prio", "200", "--ttl", "64"]),
        ("bad_checksum", &["--prio", "200"]),
        ("valid", &["--prio", "50"]),
        ("valid", &["--prio", "0"]),
    ];
    for (case, extra) in cases {
        let sent0 = adverts_sent(&topo, "lb1");
        let args = flood_args(case, &rogue, 51, 1_000_000, FLOOD_GAP, 8, extra);
        let out = craft(&topo, "rogue", &args, true);
        let sent = adverts_sent(&topo, "lb1") - sent0;
        let trans2 = lb2.log().matches("-> MASTER").count();
        println!(
            "MEASURE {test}: {case} {extra:?}: rogue {} | lb1 adverts sent {sent}",
            out.trim()
        );
        assert_eq!(
            trans2,
            0,
            "{test}: {case}: lb2 took over during the flood\n{}",
            lb2.log()
        );
        assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("master"));
        assert_eq!(
            topo.vip_holders(vip()),
            vec!["lb1".to_string()],
            "{test}: {case}"
        );
        // 8 s at 1 s: ~8 by the timer, and at most ~8 answers out of turn.
        assert!(
            sent <= 20.0,
            "{test}: {case}: lb1 sent {sent} adverts in 8 s"
        );
    }
    // The master dies during a TTL-254 flood: lb2 takes over in about its
    // Master_Down_Interval (3.61 s); generous bound for a loaded machine.
    let args = flood_args(
        "ttl254",
        &rogue,
        51,
        1_000_000,
        FLOOD_GAP,
        10,
        &["--prio", "200"],
    );
    let flood = craft_spawn(&topo, "rogue", &args, "rogue-flood.log");
    std::thread::sleep(ms(1000));
    let t0 = Instant::now();
    lb1.kill();
    topo.cut_link("lb1");
    let took = wait_until(secs(8), ms(2), || topo.holds_vip("lb2", vip()));
    let after = t0.elapsed();
    println!("MEASURE {test}: takeover during the flood after {after:?}");
    let _ = flood.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(took, "{test}: lb2 never took over\n{}", lb2.log());
    assert!(after < ms(5000), "{test}: takeover took {after:?}");
}

/// Item 10: a panic in one instance's driver is caught; that instance is restarted (status
/// counts it), the other instance stays master throughout, the daemon keeps running.
#[test]
fn a_panicking_driver_is_restarted_alone() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let other = VipdInstance::new("other", 52, 150, &[&format!("{VIP_B}/24")]);
    let conf = topo.path("lb1-panic.toml");
    std::fs::write(&conf, vipd_conf(&topo, "lb1", &[web(150), other])).expect("write");
    let bin = vipd_bin();
    let c = conf.to_string_lossy().into_owned();
    let p = topo.spawn(
        "lb1",
        &["env", "VIPD_TEST_PANIC_DRIVER=web", &bin, "-c", &c],
        "lb1-panic.log",
    );
    assert!(
        wait_vipd_state(&topo, "lb1", "web", "master", secs(20)),
        "{}",
        p.log()
    );
    assert!(wait_vipd_state(&topo, "lb1", "other", "master", secs(20)));
    let out = vipctl(&topo, "lb1", &["maintenance", "on", "web"]);
    assert!(out.ok(), "{test}: {}", out.stderr);
    let restarted = wait_until(secs(20), ms(50), || {
        // Exactly one: the restored maintenance does not go through the input that
        // panics, so the restarted driver must not panic again.
        instance_field(&topo, "lb1", "web", "restarts").and_then(|v| v.as_u64()) == Some(1)
    });
    assert!(restarted, "{test}: no restart counted\n{}", p.log());
    // Maintenance was saved before the panic: web comes back drained, as backup (and alone
    // on the LAN, master again after Master_Down_Interval at priority 1).
    assert!(
        wait_until(secs(10), ms(50), || {
            matches!(
                vipd_state(&topo, "lb1", "web").as_deref(),
                Some("backup") | Some("master")
            )
        }),
        "{test}: web did not come back\n{}",
        p.log()
    );
    assert!(p.is_running(), "{test}: the daemon died\n{}", p.log());
    let log = p.log();
    assert!(log.contains("driver panicked"), "{log}");
    let other_left = log
        .lines()
        .filter(|l| l.contains("other: MASTER -> "))
        .count();
    assert_eq!(other_left, 0, "{test}: the other instance moved:\n{log}");
    assert!(topo.holds_vip("lb1", VIP_B.parse().expect("ip")));
    end(&p, nix::sys::signal::Signal::SIGTERM, secs(10));
}

/// Item 11: with WATCHDOG_USEC set, vipd sends WATCHDOG=1 to NOTIFY_SOCKET while every
/// driver answers, and stops when one hangs.
#[test]
fn watchdog_is_fed_only_while_every_driver_answers() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let sock_path = topo.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(ms(100))).expect("timeout");
    let conf = topo.path("lb1-wd.toml");
    std::fs::write(&conf, vipd_conf(&topo, "lb1", &[web(150)])).expect("write");
    let bin = vipd_bin();
    let c = conf.to_string_lossy().into_owned();
    let ns_env = format!("NOTIFY_SOCKET={}", sock_path.display());
    let p = topo.spawn(
        "lb1",
        &[
            "env",
            &ns_env,
            "WATCHDOG_USEC=1000000",
            "VIPD_TEST_HANG_DRIVER=web",
            &bin,
            "-c",
            &c,
        ],
        "lb1-wd.log",
    );
    assert!(
        wait_vipd_state(&topo, "lb1", "web", "master", secs(20)),
        "{}",
        p.log()
    );
    let count_for = |d: Duration| {
        let end = Instant::now() + d;
        let mut n = 0;
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            if let Ok(len) = sock.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..len]).contains("WATCHDOG=1") {
                    n += 1;
                }
            }
        }
        n
    };
    let fed = count_for(secs(3));
    // Hang web's driver: the next ping goes unanswered.
    let out = vipctl(&topo, "lb1", &["maintenance", "on", "web"]);
    assert!(out.ok(), "{test}: {}", out.stderr);
    std::thread::sleep(ms(1500));
    let _ = count_for(ms(10));
    let starved = count_for(secs(3));
    println!(
        "MEASURE {test}: WATCHDOG=1 in 3 s: {fed} while healthy, {starved} with a hung driver"
    );
    assert!(
        fed >= 4,
        "{test}: only {fed} WATCHDOG=1 in 3 s\n{}",
        p.log()
    );
    assert_eq!(
        starved,
        0,
        "{test}: fed the watchdog with a hung driver\n{}",
        p.log()
    );
    assert!(p.log().contains("not feeding the watchdog"), "{}", p.log());
    end(&p, nix::sys::signal::Signal::SIGKILL, secs(5));
}

/// Item 4: a VIP that cannot be added (here: the operator put the same address on the
/// interface by hand, without vipd's mark) is a fault of that instance, not a log line while
/// the router believes it holds the VIP; it is retried every second, and once the address
/// is gone the instance takes over with its own.
#[test]
fn a_vip_that_cannot_be_added_is_a_fault_retried_until_it_can() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let lb2 = start(&topo, "lb2", &[web(150)]);
    wait_master(&topo, "lb2", "web", &lb2);
    let lb1 = start(&topo, "lb1", &[web(100)]);
    assert!(wait_vipd_state(&topo, "lb1", "web", "backup", secs(20)));
    // The operator's own copy of the VIP on lb1, then lb2 goes away.
    lb1_addr(&topo, "add", &format!("{VIP}/24"));
    let st = lb2.stop(secs(20));
    assert!(st.success(), "{test}: lb2 exit {st:?}");
    let faulted = wait_until(secs(10), ms(20), || {
        instance_field(&topo, "lb1", "web", "fault")
            .and_then(|v| v.as_str().map(String::from))
            .is_some_and(|f| f.contains("cannot add"))
    });
    assert!(faulted, "{test}: no fault on lb1\n{}", lb1.log());
    assert!(
        lb1.log().contains("cannot add 192.0.2.100/24"),
        "{}",
        lb1.log()
    );
    // The operator's address is still there: vipd did not take it over or remove it.
    assert!(has_addr(&topo, "lb1", VIP));
    // The operator removes it: the next retry adds vipd's own and lb1 becomes master.
    lb1_addr(&topo, "del", &format!("{VIP}/24"));
    assert!(
        wait_vipd_state(&topo, "lb1", "web", "master", secs(15)),
        "{test}: lb1 never master after the address was freed\n{}",
        lb1.log()
    );
    assert!(topo.holds_vip("lb1", vip()));
    let st = lb1.stop(secs(20));
    assert!(st.success());
    assert!(
        !topo.holds_vip("lb1", vip()),
        "{test}: vipd left its own VIP"
    );
}

/// Item 5, multicast mode: a stranger's priority-0 adverts for the instance's VRID (valid
/// otherwise), 20 of them 200 ms apart, must not make the backup take over: only the
/// master it follows can leave. Before the fix the backup became master Skew_Time after one.
#[test]
fn a_strangers_priority_zero_flood_does_not_make_the_backup_take_over() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default().with_host("rogue"));
    // Priorities 254 and 250: the backup's Skew_Time is 23 ms, so one priority 0 it
    // honoured would make it master long before the master's next advert (1 s).
    let lb1 = start(&topo, "lb1", &[web(254).interval("1s")]);
    assert!(
        wait_vipd_state(&topo, "lb1", "web", "master", secs(20)),
        "{}",
        lb1.log()
    );
    let lb2 = start(&topo, "lb2", &[web(250).interval("1s")]);
    assert!(wait_vipd_state(&topo, "lb2", "web", "backup", secs(20)));
    let rogue = topo.ip4("rogue").to_string();
    let args = flood_args(
        "valid",
        &rogue,
        51,
        1_000_000,
        FLOOD_GAP,
        5,
        &["--prio", "0"],
    );
    let out = craft(&topo, "rogue", &args, true);
    println!("MEASURE {test}: rogue {}", out.trim());
    assert_eq!(
        lb2.log().matches("-> MASTER").count(),
        0,
        "{test}: lb2 took over\n{}",
        lb2.log()
    );
    assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("master"));
    assert_eq!(topo.vip_holders(vip()), vec!["lb1".to_string()]);
}
