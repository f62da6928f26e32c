//! "Operate it", proven in network namespaces: health checks, operator overrides,
//! maintenance, sync groups, notify hooks, `vipctl status`, the control socket's
//! defences, `/metrics` and SIGHUP reloads, each against real vipd processes on the
//! harness's LAN (lb1 priority 150, lb2 priority 100, 100 ms adverts unless said).
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test operate -- --nocapture --test-threads=1`
//! (root needed; without root every test skips unless `VIPD_REQUIRE_NETNS=1`). Each test
//! builds its own topology; they also serialise on a mutex. Bounds are generous (the
//! machine is shared); measured figures are printed.
//!
//! Longer than 600 lines on purpose: one self-contained scenario per operator-facing
//! feature (checks, overrides, maintenance, sync groups, hooks, status, control socket,
//! metrics, reload); they share only the harness (`tests/harness`: topology, vipd
//! configuration builder, waiters) and a few helpers at the top of this file.

mod harness;
mod monitoring_common;
mod notify_common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use harness::prelude::*;
use harness::{
    expect_vipd_state, instance_status, mono_now, netns_test, vipctl, vipctl_ok, vipd_state,
    wait_until, Agent, AgentKind, CmdOutput, Lan, Probe, ProbeOpts, ProbeReport, Topology,
    TopologyOpts, VipdConfig, VipdInstance,
};
use serde_json::Value;

const VIP2: &str = "198.51.100.100";
const PY: &str = "/usr/bin/python3";

fn vip2() -> IpAddr {
    VIP2.parse().expect("constant VIP2 parses")
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

// ---- configuration ---------------------------------------------------------------------------

fn sock(topo: &Topology, host: &str) -> String {
    topo.path(&format!("{host}.sock"))
        .to_string_lossy()
        .into_owned()
}

/// The top of a vipd config for `host` (the harness's [`VipdConfig`]): its own control
/// socket and state directory, then `extra` top-level keys.
fn top(topo: &Topology, host: &str, extra: &str) -> String {
    VipdConfig::new(topo, host)
        .without_metrics()
        .top(extra)
        .render()
}

/// Instance `web` ([`VipdInstance`]): eth0, VRID 51, VIP 192.0.2.100/24, 100 ms adverts;
/// `extra` follows the instance's keys (sub-tables like `[instance.notify]` go there).
fn web(priority: u8, extra: &str) -> String {
    VipdInstance::new("web", 51, priority, &[&format!("{VIP}/24")])
        .line(extra)
        .render()
}

fn start_vipd(topo: &Topology, host: &str, conf: &str) -> Agent {
    let a = topo.start_agent(host, AgentKind::vipd(), conf);
    wait_ready(topo, &a);
    a
}

/// `top` line that turns `/metrics` on.
const METRICS_ON: &str = "metrics-listen = \"127.0.0.1:9638\"";

/// lb1 alone (priority 150) running `web` with `/metrics` on, once it is master.
fn metrics_master(topo: &Topology) -> Agent {
    let lb1 = start_vipd(topo, "lb1", &(top(topo, "lb1", METRICS_ON) + &web(150, "")));
    expect_vipd_state(topo, "lb1", "web", "master", secs(10));
    lb1
}

/// lb1 (priority 150) and lb2 (100) running `web` (`top_extra` at the top of both
/// files), once lb1 alone holds the VIP and lb2 is backup.
fn web_pair(topo: &Topology, top_extra: &str) -> (Agent, Agent) {
    let lb1 = start_vipd(topo, "lb1", &(top(topo, "lb1", top_extra) + &web(150, "")));
    let lb2 = start_vipd(topo, "lb2", &(top(topo, "lb2", top_extra) + &web(100, "")));
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(topo, "lb2", "web", "backup", secs(5));
    (lb1, lb2)
}

/// Waits until vipd answers `status` on its socket.
fn wait_ready(topo: &Topology, a: &Agent) {
    let ok = wait_until(secs(15), ms(50), || {
        vipctl(topo, a.host(), &["status", "--json"]).ok()
    });
    assert!(
        ok,
        "vipd on {} never answered on its control socket\nlog:\n{}",
        a.host(),
        a.log()
    );
}

// ---- vipctl ----------------------------------------------------------------------------------

/// `vipctl status --json` on `host`, parsed.
fn status(topo: &Topology, host: &str) -> Value {
    let text = vipctl_ok(topo, host, &["status", "--json"]);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("status --json on {host} is not JSON ({e}): {text}"))
}

// ---- observation -----------------------------------------------------------------------------

/// Asserts that `host` stays the sole holder of `vip` for `dur`.
fn assert_holds_for(topo: &Topology, host: &str, vip: IpAddr, dur: Duration) {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < dur && n < 10_000 {
        n += 1;
        let h = topo.vip_holders(vip);
        assert!(
            h == [host],
            "{host} should hold {vip} alone, holders after {}: {h:?}\n{}",
            fmt_ms(t0.elapsed()),
            topo.snapshot()
        );
        std::thread::sleep(ms(50));
    }
}

/// State-change log lines of `instance` in a vipd log (`web: BACKUP -> MASTER (...)`).
fn transitions(log: &str, instance: &str) -> Vec<String> {
    let tag = format!("{instance}: ");
    log.lines()
        .filter(|l| {
            l.find(&tag).is_some_and(|i| {
                let rest = &l[i + tag.len()..];
                ["INIT", "BACKUP", "MASTER", "FAULT"]
                    .iter()
                    .any(|s| rest.starts_with(&format!("{s} -> ")))
            })
        })
        .map(String::from)
        .collect()
}

/// A probe from the client to `vip` every `every` (the test starts the responders); waits
/// 600 ms so that ARP is resolved and replies flow before the event.
fn probe_vip(topo: &Topology, vip: IpAddr, every: Duration) -> Probe {
    let p = topo.start_probe_with(ProbeOpts {
        window: ms(200),
        ..ProbeOpts::new(vip, every)
    });
    std::thread::sleep(ms(600));
    p
}

fn print_probe(what: &str, rep: &ProbeReport) {
    eprintln!("{what}: {}", rep.summary());
}

/// [`print_probe`], and the client's outage around `t` (within 2 s), if it had one.
fn print_probe_around(what: &str, rep: &ProbeReport, t: Duration) {
    print_probe(what, rep);
    if let Some(o) = rep.outage_around(t, secs(2)) {
        eprintln!("{what}: outage {} ({} lost)", fmt_ms(o.duration), o.lost);
    }
}

// ---- 1. health check ------------------------------------------------------------------------

/// The master's HTTP backend (python3 http.server on 127.0.0.1:8080 in lb1) stops
/// answering: the check fails, lb1 drops to 150 - 60 = 90 < 100 and lb2 takes over; the
/// backend comes back: lb1 (preempt on) takes the VIP back.
#[test]
fn http_check_failure_moves_the_vip_and_recovery_brings_it_back() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let docroot = topo.run_dir().to_string_lossy().into_owned();
    let backend_argv = [
        PY,
        "-m",
        "http.server",
        "8080",
        "--bind",
        "127.0.0.1",
        "--directory",
        docroot.as_str(),
    ];
    let backend_up = |topo: &Topology| {
        topo.exec(
            "lb1",
            &["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/"],
        )
        .ok()
    };
    let backend = topo.spawn("lb1", &backend_argv, "lb1-backend.log");
    assert!(
        wait_until(secs(15), ms(100), || backend_up(&topo)),
        "backend never answered: {}",
        backend.log()
    );
    let track = "[[instance.track]]\nkind = \"http\"\nname = \"backend\"\n\
                 url = \"http://127.0.0.1:8080/\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
                 rise = 2\nfall = 2\nweight = 60\n";
    let _lb1 = start_vipd(&topo, "lb1", &(top(&topo, "lb1", "") + &web(150, track)));
    let _lb2 = start_vipd(&topo, "lb2", &(top(&topo, "lb2", "") + &web(100, "")));
    let _responders = topo.start_responders(vip());
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    wait_until(secs(5), ms(50), || {
        instance_status(&topo, "lb1", "web").is_some_and(|i| i["priority"] == 150)
    });
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(s["state"], "master", "{s}");
    assert_eq!(s["priority"], 150, "{s}");
    assert_eq!(s["tracks"][0]["healthy"], true, "{s}");
    let probe = probe_vip(&topo, vip(), ms(10));

    // The backend dies.
    let t_kill = mono_now();
    let _ = backend.signal(nix::sys::signal::Signal::SIGKILL);
    let moved = topo.expect_sole_holder(vip(), "lb2", secs(15));
    eprintln!(
        "backend killed -> lb2 sole holder after {} (fall 2 x 200 ms + lb2's master-down)",
        fmt_ms(moved)
    );
    wait_until(secs(5), ms(50), || {
        instance_status(&topo, "lb1", "web")
            .is_some_and(|i| i["priority"] == 90 && i["state"] == "backup")
    });
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(
        (&s["state"], &s["priority"], &s["tracks"][0]["healthy"]),
        (
            &Value::from("backup"),
            &Value::from(90),
            &Value::from(false)
        ),
        "lb1 with a failing check: {s}"
    );
    assert_holds_for(&topo, "lb2", vip(), ms(1000));

    // The backend comes back.
    let t_back = mono_now();
    let backend2 = topo.spawn("lb1", &backend_argv, "lb1-backend.log");
    assert!(
        wait_until(secs(15), ms(50), || backend_up(&topo)),
        "backend never came back: {}",
        backend2.log()
    );
    let back = topo.expect_sole_holder(vip(), "lb1", secs(15));
    eprintln!(
        "backend restarted -> lb1 sole holder after {} (python start-up + rise 2 x 200 ms + master-down)",
        fmt_ms(back)
    );
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(s["priority"], 150, "{s}");
    std::thread::sleep(ms(500));
    let rep = probe.finish();
    print_probe("client", &rep);
    assert!(
        rep.replies_from_after("lb2", t_kill) > 0,
        "the client was never answered by lb2 after the backend died\n{}",
        rep.summary()
    );
    rep.assert_ends_on("lb1");
    if let Some(o) = rep.outage_around(t_kill, secs(3)) {
        eprintln!(
            "client outage after the backend died: {}",
            fmt_ms(o.duration)
        );
    }
    if let Some(o) = rep.outage_around(t_back, secs(5)) {
        eprintln!("client outage on the way back: {}", fmt_ms(o.duration));
    }
}

// ---- 2. priority override -------------------------------------------------------------------

/// `vipctl priority set web 200` on the backup (100 -> 200, above lb1's 150) moves the VIP
/// to lb2; `priority clear web` moves it back.
#[test]
fn priority_override_on_the_backup_moves_the_vip_and_clear_moves_it_back() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let (_lb1, _lb2) = web_pair(&topo, "");

    let out = vipctl_ok(&topo, "lb2", &["priority", "set", "web", "200"]);
    eprintln!("vipctl priority set: {}", out.trim());
    let moved = topo.expect_sole_holder(vip(), "lb2", secs(10));
    eprintln!(
        "priority set 200 on lb2 -> lb2 sole holder after {}",
        fmt_ms(moved)
    );
    let s = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    assert_eq!(
        (
            &s["state"],
            &s["priority"],
            &s["override"],
            &s["base_priority"]
        ),
        (
            &Value::from("master"),
            &Value::from(200),
            &Value::from(200),
            &Value::from(100)
        ),
        "{s}"
    );
    expect_vipd_state(&topo, "lb1", "web", "backup", secs(5));
    assert_holds_for(&topo, "lb2", vip(), ms(800));

    let out = vipctl_ok(&topo, "lb2", &["priority", "clear", "web"]);
    eprintln!("vipctl priority clear: {}", out.trim());
    let back = topo.expect_sole_holder(vip(), "lb1", secs(10));
    eprintln!(
        "priority clear on lb2 -> lb1 sole holder after {}",
        fmt_ms(back)
    );
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    let s = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    assert_eq!(
        (&s["priority"], &s["override"]),
        (&Value::from(100), &Value::Null),
        "{s}"
    );
    // An unknown instance and an out-of-range value are refused with one line.
    let bad = vipctl(&topo, "lb2", &["priority", "set", "nosuch", "200"]);
    assert!(!bad.ok() && bad.stderr.contains("nosuch"), "{bad:?}");
    let bad = vipctl(&topo, "lb2", &["priority", "set", "web", "255"]);
    assert!(!bad.ok() && bad.stderr.lines().count() == 1, "{bad:?}");
}

// ---- 3. maintenance -------------------------------------------------------------------------

/// `vipctl maintenance on web` on the master hands over without a lost request at 2 ms
/// probing (at most 1 allowed); a restarted vipd stays in maintenance (persisted);
/// `maintenance off` brings the VIP back.
///
/// lb1 announces for 4 s after its takeover (100 rounds, 40 ms apart), so the drain
/// starts while its announcement rounds are still pending: they must stop when the
/// handover starts, or one of them pulls the client back to lb1 just before lb1 drops
/// the VIP (CI saw 50 requests lost that way, until lb2's next announcement).
#[test]
fn maintenance_drains_without_loss_survives_restart_and_off_returns_the_vip() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let lb1_conf =
        top(&topo, "lb1", "") + &web(150, "announce-count = 100\nannounce-spacing = \"40ms\"");
    let mut lb1 = start_vipd(&topo, "lb1", &lb1_conf);
    let _lb2 = start_vipd(&topo, "lb2", &(top(&topo, "lb2", "") + &web(100, "")));
    let _responders = topo.start_responders(vip());
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    let probe = probe_vip(&topo, vip(), ms(2));

    let t_on = mono_now();
    let out = vipctl_ok(&topo, "lb1", &["maintenance", "on", "web"]);
    eprintln!("vipctl maintenance on: {}", out.trim());
    let moved = topo.expect_sole_holder(vip(), "lb2", secs(10));
    eprintln!("maintenance on -> lb2 sole holder after {}", fmt_ms(moved));
    std::thread::sleep(ms(800));
    let rep = probe.finish();
    print_probe_around("client during the drain", &rep, t_on);
    eprintln!(
        "requests lost in the drain (2 ms probing): {} of {} sent",
        rep.lost, rep.sent
    );
    assert!(
        rep.lost <= 1,
        "maintenance handover lost {} requests (at most 1 allowed)\n{}",
        rep.lost,
        rep.summary()
    );
    assert_eq!(rep.responders(), ["lb1", "lb2"], "{}", rep.summary());
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(
        (&s["state"], &s["maintenance"]),
        (&Value::from("backup"), &Value::from(true)),
        "{s}"
    );

    // Restart vipd on lb1: the drain persists.
    let st = lb1.stop(secs(10));
    assert!(st.success(), "vipd on lb1 exited with {st}\n{}", lb1.log());
    lb1.restart(&topo);
    wait_ready(&topo, &lb1);
    // Give it several master-down intervals to misbehave.
    assert_holds_for(&topo, "lb2", vip(), ms(1500));
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web after restart");
    assert_eq!(
        (&s["state"], &s["maintenance"]),
        (&Value::from("backup"), &Value::from(true)),
        "after restart lb1 must still be drained: {s}"
    );
    eprintln!(
        "after restart lb1: state {}, maintenance {}, priority {}",
        s["state"], s["maintenance"], s["priority"]
    );

    let probe = probe_vip(&topo, vip(), ms(2));
    let t_off = mono_now();
    vipctl_ok(&topo, "lb1", &["maintenance", "off", "web"]);
    let back = topo.expect_sole_holder(vip(), "lb1", secs(10));
    eprintln!("maintenance off -> lb1 sole holder after {}", fmt_ms(back));
    std::thread::sleep(ms(800));
    let rep = probe.finish();
    let what = "client on undrain (preemption, not make-before-break)";
    print_probe_around(what, &rep, t_off);
    rep.assert_ends_on("lb1");
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(s["maintenance"], false, "{s}");
}

// ---- 4. sync group --------------------------------------------------------------------------

fn sync_conf(topo: &Topology, host: &str, prio: u8) -> String {
    sync_conf_with(topo, host, prio, prio)
}

/// `outside` at `p_out`, `inside` at `p_in`, in group `lb`.
fn sync_conf_with(topo: &Topology, host: &str, p_out: u8, p_in: u8) -> String {
    let mut c = VipdConfig::new(topo, host).without_metrics();
    for (name, ifname, vrid, v, prio) in [
        ("outside", "eth0", 51, VIP, p_out),
        ("inside", "eth1", 52, VIP2, p_in),
    ] {
        c = c
            .instance(VipdInstance::new(name, vrid, prio, &[&format!("{v}/24")]).interface(ifname));
    }
    // The group last: a test cuts it off at its header.
    c.render() + "\n[[sync-group]]\nname = \"lb\"\ninstances = [\"outside\", \"inside\"]\n"
}

/// lb1 (150) and lb2 (100) running group `lb`, lb1 master of both, lb2 backup of both.
fn sync_pair(topo: &Topology) -> (Agent, Agent) {
    let lb1 = start_vipd(topo, "lb1", &sync_conf(topo, "lb1", 150));
    let lb2 = start_vipd(topo, "lb2", &sync_conf(topo, "lb2", 100));
    wait_both(topo, "lb1", "start-up");
    expect_vipd_state(topo, "lb2", "outside", "backup", secs(5));
    expect_vipd_state(topo, "lb2", "inside", "backup", secs(5));
    (lb1, lb2)
}

fn wait_both(topo: &Topology, host: &str, what: &str) -> Duration {
    let t0 = Instant::now();
    let ok = wait_until(secs(10), ms(10), || {
        topo.vip_holders(vip()) == [host] && topo.vip_holders(vip2()) == [host]
    });
    assert!(
        ok,
        "{what}: expected {host} alone to hold both VIPs; {VIP}: {:?}, {VIP2}: {:?}\nlb1: {:?}\nlb2: {:?}\n{}",
        topo.vip_holders(vip()),
        topo.vip_holders(vip2()),
        status(topo, "lb1"),
        status(topo, "lb2"),
        topo.snapshot()
    );
    t0.elapsed()
}

/// Runs `vipctl args` on `host`, checks that the answer names both members of the group,
/// and waits until `to` holds both VIPs; returns how long that took.
fn group_command(topo: &Topology, host: &str, args: &[&str], to: &str) -> Duration {
    let out = vipctl_ok(topo, host, args);
    assert!(out.contains("inside") && out.contains("outside"), "{out}");
    let what = format!("vipctl {} on {host}", args.join(" "));
    let took = wait_both(topo, to, &what);
    eprintln!("{what}: both VIPs on {to} after {}", fmt_ms(took));
    took
}

/// A sync group `lb` of `outside` (eth0) and `inside` (eth1): a link fault of lb1's eth1
/// moves both VIPs to lb2, whether the carrier is lost (switch side port down) or the
/// interface is set down on lb1 itself; both give vipd a link-down event (it needs
/// IFF_UP and IFF_RUNNING). Healing brings both back.
#[test]
fn sync_group_fault_on_one_interface_moves_both_vips() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default().with_second_lan());
    let (lb1, _lb2) = sync_pair(&topo);
    let s = instance_status(&topo, "lb1", "inside").expect("lb1 has inside");
    assert_eq!(s["sync_group"], "lb", "{s}");

    for (how, down, up) in [
        (
            "carrier lost (switch port q-lb1 down)",
            &(|t: &Topology| t.set_port("lb1", Lan::Second, false)) as &dyn Fn(&Topology),
            &(|t: &Topology| t.set_port("lb1", Lan::Second, true)) as &dyn Fn(&Topology),
        ),
        (
            "`ip link set eth1 down` on lb1",
            &(|t: &Topology| {
                t.exec_ok("lb1", &["ip", "link", "set", "eth1", "down"]);
            }) as &dyn Fn(&Topology),
            &(|t: &Topology| {
                t.exec_ok("lb1", &["ip", "link", "set", "eth1", "up"]);
            }) as &dyn Fn(&Topology),
        ),
    ] {
        let log_before = lb1.log().len();
        down(&topo);
        let moved = wait_both(&topo, "lb2", how);
        eprintln!("{how}: both VIPs on lb2 after {}", fmt_ms(moved));
        let inside = instance_status(&topo, "lb1", "inside").expect("lb1 has inside");
        let outside = instance_status(&topo, "lb1", "outside").expect("lb1 has outside");
        assert_eq!(inside["state"], "fault", "{how}: {inside}");
        assert_eq!(outside["state"], "fault", "{how}: {outside}");
        let (fi, fo) = (
            inside["fault"].as_str().unwrap_or_default().to_string(),
            outside["fault"].as_str().unwrap_or_default().to_string(),
        );
        eprintln!("  lb1 inside fault: {fi:?}; outside fault: {fo:?}");
        assert!(fi.contains("link down"), "{how}: {inside}");
        assert!(
            fo.contains("sync group") && fo.contains("inside"),
            "{how}: {outside}"
        );
        let log = lb1.log();
        let new_lines = log.get(log_before..).unwrap_or_default();
        for l in transitions(new_lines, "outside")
            .iter()
            .chain(transitions(new_lines, "inside").iter())
        {
            eprintln!("  lb1: {l}");
        }
        assert_holds_for(&topo, "lb2", vip(), ms(500));
        up(&topo);
        let back = wait_both(&topo, "lb1", &format!("after undoing {how}"));
        eprintln!("{how} undone: both VIPs back on lb1 after {}", fmt_ms(back));
    }
}

/// Operator commands on one member act on the whole group: maintenance drains every
/// member, and a priority override moves every member, so the group never splits
/// across hosts.
#[test]
fn sync_group_maintenance_and_priority_override_move_the_whole_group() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default().with_second_lan());
    let _pair = sync_pair(&topo);

    // Draining one member drains the group: both VIPs move, neither is left behind.
    group_command(&topo, "lb1", &["maintenance", "on", "outside"], "lb2");
    for name in ["outside", "inside"] {
        let s = instance_status(&topo, "lb1", name).expect("lb1 instance");
        assert_eq!(s["maintenance"], true, "{name}: {s}");
        assert_eq!(s["state"], "backup", "{name}: {s}");
    }
    assert_holds_for(&topo, "lb2", vip(), ms(500));

    group_command(&topo, "lb1", &["maintenance", "off", "inside"], "lb1");

    // A priority override on one of lb2's members raises both.
    group_command(&topo, "lb2", &["priority", "set", "inside", "200"], "lb2");
    for name in ["outside", "inside"] {
        let s = instance_status(&topo, "lb2", name).expect("lb2 instance");
        assert_eq!(s["override"], 200, "{name}: {s}");
    }
    group_command(&topo, "lb2", &["priority", "clear", "outside"], "lb1");
}

/// A reload that dissolves the sync group frees its members: with lb1's `inside` in
/// fault (eth1 down) the group holds `outside` in fault too; once the group is gone
/// from lb1's configuration, `outside` (settings unchanged, so not rebuilt) loses the
/// group's fault and takes its VIP back, while `inside` stays in fault.
#[test]
fn sync_group_removed_on_reload_frees_its_members() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default().with_second_lan());
    let (lb1, _lb2) = sync_pair(&topo);

    topo.exec_ok("lb1", &["ip", "link", "set", "eth1", "down"]);
    wait_both(&topo, "lb2", "eth1 down on lb1");
    expect_vipd_state(&topo, "lb1", "outside", "fault", secs(5));

    let conf = sync_conf(&topo, "lb1", 150);
    let without_group = conf
        .split("[[sync-group]]")
        .next()
        .expect("split keeps the head")
        .to_string();
    std::fs::write(lb1.conf_path(), &without_group)
        .unwrap_or_else(|e| panic!("rewriting {}: {e}", lb1.conf_path().display()));
    lb1.reload();
    assert!(
        lb1.wait_log("reloaded: 2 unchanged, 0 changed", secs(10)),
        "no reload line\n{}",
        lb1.log()
    );
    let back = topo.expect_holds("lb1", vip(), secs(10));
    eprintln!(
        "sync group removed: outside back on lb1 after {}",
        fmt_ms(back)
    );
    expect_vipd_state(&topo, "lb1", "outside", "master", secs(5));
    let outside = instance_status(&topo, "lb1", "outside").expect("lb1 has outside");
    assert!(outside["sync_group"].is_null(), "{outside}");
    assert!(outside["fault"].is_null(), "{outside}");
    let inside = instance_status(&topo, "lb1", "inside").expect("lb1 has inside");
    assert_eq!(inside["state"], "fault", "{inside}");
    assert_eq!(topo.vip_holders(vip2()), ["lb2"]);
}

/// Members with mirrored priorities on the two hosts (a misconfiguration) split the group
/// across hosts; vipd cannot know which side is right, so it warns, once.
#[test]
fn sync_group_split_across_hosts_is_reported() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default().with_second_lan());
    let lb1 = start_vipd(&topo, "lb1", &sync_conf_with(&topo, "lb1", 150, 100));
    let _lb2 = start_vipd(&topo, "lb2", &sync_conf_with(&topo, "lb2", 100, 150));
    expect_vipd_state(&topo, "lb1", "outside", "master", secs(10));
    expect_vipd_state(&topo, "lb1", "inside", "backup", secs(10));
    let needle = "sync group lb is split across hosts (outside master, inside backup)";
    assert!(
        lb1.wait_log(needle, secs(10)),
        "no split warning\n{}",
        lb1.log()
    );
    std::thread::sleep(secs(2));
    assert_eq!(lb1.log().matches(needle).count(), 1, "{}", lb1.log());
}

// ---- 5. notify hooks ------------------------------------------------------------------------

fn notify_conf(topo: &Topology, host: &str, prio: u8) -> (String, std::path::PathBuf) {
    let file = topo.path(&format!("{host}-hooks.txt"));
    let f = file.display();
    let hook = |tag: &str| format!("[\"/bin/sh\", \"-c\", 'echo {tag} \"$@\" >> {f}', \"x\"]");
    let extra = format!(
        "[instance.notify]\nmaster = {}\nbackup = {}\nfault = {}\nany = {}\n",
        hook("master"),
        hook("backup"),
        hook("fault"),
        hook("any")
    );
    (top(topo, host, "") + &web(prio, &extra), file)
}

fn hook_lines(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Waits until `file` has the hook lines of `states`, in order: for each state its own hook
/// (no arguments), then `any web STATE REASON`; checks each line (any: up to the reason).
fn expect_hooks(file: &std::path::Path, states: &[&str], what: &str) -> Vec<String> {
    let want: Vec<String> = states
        .iter()
        .flat_map(|s| [s.to_string(), format!("any web {s}")])
        .collect();
    wait_until(secs(10), ms(20), || hook_lines(file).len() >= want.len());
    // Anything late and unexpected shows up too.
    std::thread::sleep(ms(300));
    let got = hook_lines(file);
    eprintln!("{what}: {} hook lines:\n  {}", got.len(), got.join("\n  "));
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: wanted {want:?}, got {got:#?}"
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g == w || (w.starts_with("any ") && g.starts_with(&format!("{w} "))),
            "{what}: line {g:?} should be {w:?} (any: followed by a reason); all: {got:#?}"
        );
    }
    got
}

/// Hooks run in order with the right arguments: the state's own hook (no arguments), then
/// `any` with `INSTANCE STATE REASON`; through start-up, a takeover after a crash and a
/// preemption.
#[test]
fn notify_hooks_run_in_order_with_their_arguments() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let (c1, f1) = notify_conf(&topo, "lb1", 150);
    let (c2, f2) = notify_conf(&topo, "lb2", 100);
    let mut lb1 = start_vipd(&topo, "lb1", &c1);
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    let _lb2 = start_vipd(&topo, "lb2", &c2);
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    expect_hooks(&f1, &["backup", "master"], "lb1 start-up alone");
    expect_hooks(&f2, &["backup"], "lb2 start-up");

    // lb1 crashes: lb2 takes over.
    lb1.kill();
    // A crash leaves the VIP on lb1's interface (nobody removed it); lb2 adds it too.
    let moved = topo.expect_holds("lb2", vip(), secs(10));
    eprintln!("lb1 crashed -> lb2 holds the VIP after {}", fmt_ms(moved));
    expect_vipd_state(&topo, "lb2", "web", "master", secs(5));
    let lines = expect_hooks(&f2, &["backup", "master"], "lb2 after the takeover");
    let reason = lines[3].trim_start_matches("any web master ");
    assert!(
        !reason.trim().is_empty(),
        "the any hook got no reason: {lines:?}"
    );

    // lb1 comes back and preempts: lb2 goes back to backup.
    lb1.restart(&topo);
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    expect_hooks(
        &f2,
        &["backup", "master", "backup"],
        "lb2 after lb1 preempted",
    );
    expect_hooks(
        &f1,
        &["backup", "master", "backup", "master"],
        "lb1 after its restart",
    );
}

/// The `Cap*:` lines a program wrote from its own /proc/self/status, as numbers.
/// The instance's master hook (then `hook_extra`, shell) and two exec checks, `caps` and
/// `kept` (with `keep-capabilities = true`), write the `/proc/self/status` lines that
/// start `^Cap` (`kept`: that match `kept_pattern`) to these files.
fn caps_reporters(
    hook: &std::path::Path,
    hook_extra: &str,
    check: &std::path::Path,
    kept: &std::path::Path,
    kept_pattern: &str,
) -> String {
    let grep = |pattern: &str, file: &std::path::Path| {
        format!("grep {pattern} /proc/self/status > '{}'", file.display())
    };
    format!(
        "[instance.notify]\n\
         master = [\"/bin/sh\", \"-c\", \"{}{hook_extra}\"]\n\
         [[instance.track]]\nkind = \"exec\"\nname = \"caps\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         command = [\"/bin/sh\", \"-c\", \"{}\"]\n\
         [[instance.track]]\nkind = \"exec\"\nname = \"kept\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         keep-capabilities = true\n\
         command = [\"/bin/sh\", \"-c\", \"{}\"]\n",
        grep("^Cap", hook),
        grep("^Cap", check),
        grep(kept_pattern, kept)
    )
}

fn cap_lines(file: &std::path::Path) -> Vec<(String, u64)> {
    notify_common::cap_sets(&hook_lines(file))
}

/// A running vipd (root here, with every capability) starts its notify hooks and exec
/// checks without any capability, except a check with `keep-capabilities = true`; the
/// `sleep` a hook leaves in the background dies when the hook ends (issue 12, item 12).
#[test]
fn hooks_and_checks_of_a_running_vipd_have_no_capabilities_and_leave_nothing_behind() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let hook_caps = topo.path("lb1-hook-caps.txt");
    let bg_pid = topo.path("lb1-hook-bg.pid");
    let check_caps = topo.path("lb1-check-caps.txt");
    let kept_caps = topo.path("lb1-kept-caps.txt");
    let hook_extra = format!("; sleep 1000 & echo $! > '{}'", bg_pid.display());
    let extra = caps_reporters(&hook_caps, &hook_extra, &check_caps, &kept_caps, "^CapEff");
    let lb1 = start_vipd(&topo, "lb1", &(top(&topo, "lb1", "") + &web(150, &extra)));
    expect_vipd_state(&topo, "lb1", "web", "master", secs(15));
    let written = wait_until(secs(10), ms(50), || {
        cap_lines(&hook_caps).len() == 5
            && cap_lines(&check_caps).len() == 5
            && cap_lines(&kept_caps).len() == 1
            && !hook_lines(&bg_pid).is_empty()
    });
    assert!(
        written,
        "hooks and checks did not write their capabilities\n{}",
        lb1.log()
    );
    for (what, file) in [("master hook", &hook_caps), ("exec check", &check_caps)] {
        let caps = cap_lines(file);
        eprintln!("{what}: {caps:?}");
        for (set, value) in &caps {
            assert_eq!(*value, 0, "{what}: {set} is {value:x}: {caps:?}");
        }
    }
    let kept = cap_lines(&kept_caps);
    eprintln!("exec check with keep-capabilities = true: {kept:?}");
    assert!(kept[0].1 != 0, "keep-capabilities = true: {kept:?}");

    let pid: i32 = hook_lines(&bg_pid)[0].trim().parse().expect("a pid");
    let running = || notify_common::pid_running(pid);
    let gone = wait_until(secs(5), ms(20), || !running());
    if !gone {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(
        gone,
        "the master hook's background sleep {pid} outlived the hook"
    );
}

/// As the packaged unit runs it: vipd as an unprivileged user (nobody here) with
/// CAP_NET_ADMIN and CAP_NET_RAW as ambient (and inheritable) capabilities, started with
/// setpriv. Its hook and exec check start with none of them (before the fix they got both,
/// as ambient capabilities); `keep-capabilities = true` passes them on.
#[test]
fn hooks_of_an_unprivileged_vipd_with_ambient_capabilities_get_none() {
    let _g = netns_test!();
    if !std::path::Path::new("/usr/bin/setpriv").exists() {
        panic!("/usr/bin/setpriv (util-linux) is needed");
    }
    let topo = Topology::new(TopologyOpts::default());
    use std::os::unix::fs::PermissionsExt;
    let dir = topo.path("unprivileged");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let hook_caps = dir.join("hook-caps.txt");
    let check_caps = dir.join("check-caps.txt");
    let kept_caps = dir.join("kept-caps.txt");
    let socket = dir.join("vipd.sock");
    let conf = format!(
        "control-socket = \"{}\"\nstate-dir = \"{}\"\n{}",
        socket.display(),
        dir.join("state").display(),
        web(
            150,
            &caps_reporters(&hook_caps, "", &check_caps, &kept_caps, "^Cap")
        )
    );
    let conf_path = dir.join("vipd.toml");
    std::fs::write(&conf_path, conf).expect("write config");
    let bin = env!("CARGO_BIN_EXE_vipd");
    let conf_arg = conf_path.display().to_string();
    let proc_ = topo.spawn(
        "lb1",
        &[
            "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+net_admin,+net_raw",
            "--ambient-caps=+net_admin,+net_raw",
            "--bounding-set=-all,+net_admin,+net_raw",
            bin,
            "-c",
            &conf_arg,
        ],
        "lb1-unprivileged-vipd.log",
    );
    let written = wait_until(secs(20), ms(50), || {
        cap_lines(&hook_caps).len() == 5
            && cap_lines(&check_caps).len() == 5
            && cap_lines(&kept_caps).len() == 5
    });
    assert!(
        written,
        "the unprivileged vipd's hook and checks did not report\n{}",
        proc_.log()
    );
    let net = (1u64 << 12) | (1 << 13);
    for (what, file) in [("master hook", &hook_caps), ("exec check", &check_caps)] {
        let caps = cap_lines(file);
        eprintln!("{what} of an unprivileged vipd: {caps:?}");
        for (set, value) in &caps {
            // The bounding set cannot be emptied without CAP_SETPCAP; it grants nothing
            // to a non-root program (only file capabilities would draw on it).
            if set != "CapBnd" {
                assert_eq!(*value, 0, "{what}: {set} is {value:x}: {caps:?}");
            }
        }
    }
    let kept = cap_lines(&kept_caps);
    eprintln!("keep-capabilities = true: {kept:?}");
    for set in ["CapEff", "CapAmb"] {
        let v = kept.iter().find(|(k, _)| k == set).map(|(_, v)| *v);
        assert_eq!(
            v,
            Some(net),
            "{set} with keep-capabilities = true: {kept:?}"
        );
    }
    let _ = proc_.signal(nix::sys::signal::Signal::SIGTERM);
}

// ---- 6. status and the control socket -------------------------------------------------------

/// `status --json` of `host` agrees with its addresses: state master exactly when it
/// holds the VIP.
fn assert_status_is_real(topo: &Topology, host: &str) -> Value {
    let s =
        instance_status(topo, host, "web").unwrap_or_else(|| panic!("{host}: no status for web"));
    let holds = topo.holds_vip(host, vip());
    assert_eq!(
        s["state"] == "master",
        holds,
        "{host}: status says {} but holds the VIP: {holds}\n{s}",
        s["state"]
    );
    assert_eq!(s["vips"], serde_json::json!([format!("{VIP}/24")]), "{s}");
    assert_eq!(
        (&s["vrid"], &s["interface"]),
        (&Value::from(51), &Value::from("eth0"))
    );
    s
}

/// `vipctl status --json` matches both hosts' addresses before and after a handover; a
/// user without rights is refused (by the socket's mode, and by the daemon's peer
/// credential check when the mode lets it connect); garbage on the socket gets an error
/// line and the daemon keeps running.
#[test]
fn status_matches_reality_and_the_socket_refuses_strangers_and_garbage() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let mut lb1 = start_vipd(&topo, "lb1", &(top(&topo, "lb1", "") + &web(150, "")));
    let _lb2 = start_vipd(&topo, "lb2", &(top(&topo, "lb2", "") + &web(100, "")));
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    let s1 = assert_status_is_real(&topo, "lb1");
    let s2 = assert_status_is_real(&topo, "lb2");
    assert_eq!(
        s1["master"], "192.0.2.11",
        "lb1 sees itself as master: {s1}"
    );
    assert_eq!(s2["master"], "192.0.2.11", "lb2 sees lb1 as master: {s2}");
    assert_eq!(
        (&s1["priority"], &s2["priority"]),
        (&Value::from(150), &Value::from(100))
    );
    // The table form names the instance and its state too.
    let table = vipctl_ok(&topo, "lb2", &["status"]);
    assert!(
        table.contains("web") && table.to_lowercase().contains("backup"),
        "{table}"
    );

    // Graceful stop of lb1: lb2 is master and says so; lb1's vipctl fails with one line.
    lb1.stop(secs(10));
    topo.expect_sole_holder(vip(), "lb2", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "master", secs(5));
    let s2 = assert_status_is_real(&topo, "lb2");
    assert_eq!(s2["master"], "192.0.2.12", "{s2}");
    assert!(!topo.holds_vip("lb1", vip()));
    let down = vipctl(&topo, "lb1", &["status", "--json"]);
    eprintln!(
        "vipctl with vipd stopped: {:?} {}",
        down.status,
        down.stderr.trim()
    );
    assert!(
        !down.ok()
            && down.stderr.trim().lines().count() == 1
            && down.stderr.starts_with("vipctl: "),
        "{down:?}"
    );
    lb1.restart(&topo);
    wait_ready(&topo, &lb1);
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));
    assert_status_is_real(&topo, "lb1");
    assert_status_is_real(&topo, "lb2");

    // A stranger: nobody/nogroup, no supplementary groups; `mode` is the socket's, for
    // the log line.
    let s = sock(&topo, "lb1");
    let as_nobody = |args: &[&str], mode: &str| {
        let mut argv = vec![
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            env!("CARGO_BIN_EXE_vipctl"),
            "-s",
            s.as_str(),
        ];
        argv.extend_from_slice(args);
        let out = topo.exec("lb1", &argv);
        eprintln!(
            "nobody: vipctl {args:?} (socket mode {mode}): {:?} {}",
            out.status,
            out.stderr.trim()
        );
        out
    };
    for args in [&["status", "--json"][..], &["maintenance", "on", "web"][..]] {
        let out = as_nobody(args, "0660");
        assert!(
            !out.ok() && out.stderr.to_lowercase().contains("permission denied"),
            "{out:?}"
        );
    }
    // Let it connect: the daemon's own check must refuse it.
    let chmod = |mode: &str| {
        harness::run_cmd(&["chmod", mode, &s], None, secs(5));
    };
    chmod("0666");
    for args in [
        &["status", "--json"][..],
        &["maintenance", "on", "web"][..],
        &["priority", "set", "web", "1"][..],
    ] {
        let out = as_nobody(args, "0666");
        assert!(
            !out.ok() && out.stderr.contains("permission denied") && out.stderr.contains("65534"),
            "the daemon must refuse uid 65534 itself: {out:?}"
        );
    }
    chmod("0660");
    let s1 = assert_status_is_real(&topo, "lb1");
    assert_eq!(
        (&s1["maintenance"], &s1["override"], &s1["state"]),
        (&Value::from(false), &Value::Null, &Value::from("master")),
        "a refused request changed something: {s1}"
    );

    // Garbage on the socket.
    let script = r#"
import json, os, socket, sys
path = sys.argv[1]
cases = [
    ("random bytes", os.urandom(300).replace(b"\n", b"x") + b"\n"),
    ("invalid utf-8", b"\xff\xfe\xfd\n"),
    ("json, not a request", b'{"nonsense": 1}\n'),
    ("wrong version", b'{"version": 99, "command": "status"}\n'),
    ("unknown command", b'{"version": 1, "command": "rm-rf"}\n'),
    ("no newline, then EOF", b"garbage without newline"),
    ("too long", b"A" * 200000 + b"\n"),
]
out = []
for name, data in cases:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        pass
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError as e:
        # The daemon closes after its error line; with our unread bytes still queued
        # (the too-long case) the close shows up as a reset after the reply.
        err = str(e)
    else:
        err = None
    s.close()
    out.append({"case": name, "reply": buf.decode("utf-8", "replace"), "recv_error": err})
# Connect and leave without a word.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.close()
print(json.dumps(out))
"#;
    let out = topo.exec_ok("lb1", &[PY, "-c", script, &s]);
    let replies: Value = serde_json::from_str(out.trim()).expect("script prints JSON");
    for r in replies.as_array().expect("a list") {
        let reply = r["reply"].as_str().unwrap_or_default();
        eprintln!(
            "garbage {}: {} (recv error: {})",
            r["case"],
            reply.trim(),
            r["recv_error"]
        );
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 1, "{r}: one reply line expected");
        let v: Value = serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("{r}: reply is not JSON: {e}"));
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{r}: an error line expected"
        );
    }
    assert!(
        lb1.proc().is_running(),
        "vipd died of garbage\n{}",
        lb1.log()
    );
    assert_status_is_real(&topo, "lb1");
    assert_holds_for(&topo, "lb1", vip(), ms(300));
}

// ---- 7. metrics -----------------------------------------------------------------------------

fn metrics(topo: &Topology, host: &str) -> String {
    let script = "import urllib.request,sys\n\
                  print(urllib.request.urlopen('http://127.0.0.1:9638/metrics', timeout=10).read().decode())";
    topo.exec_ok(host, &[PY, "-c", script])
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

fn dropped(text: &str, reason: &str) -> f64 {
    sample(
        text,
        &format!("vipd_adverts_dropped_total{{interface=\"eth0\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Sends crafted VRRPv3 adverts from the client with scapy: `n_ttl` for VRID 51 with TTL 1,
/// `n_vrid` for VRID 99 (TTL 255), `n_sum` for VRID 51 with a broken checksum (TTL 255).
/// All at priority 1, so even a mistaken acceptance would not move the VIP.
fn send_bad_adverts(topo: &Topology, n_ttl: u32, n_vrid: u32, n_sum: u32) {
    let script = format!(
        r#"
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, Raw, sendp
from scapy.layers.vrrp import VRRPv3
src, vip = "192.0.2.50", "{VIP}"
def adv(vrid, ttl):
    return IP(src=src, dst="224.0.0.18", ttl=ttl, proto=112) / VRRPv3(vrid=vrid, priority=1, ipcount=1, adv=10, addrlist=[vip])
eth = Ether(src="02:00:00:00:00:50", dst="01:00:5e:00:00:12")
pkts = [eth / adv(51, 1) for _ in range({n_ttl})]
pkts += [eth / adv(99, 255) for _ in range({n_vrid})]
for _ in range({n_sum}):
    p = IP(bytes(adv(51, 255)))
    v = bytearray(bytes(p[VRRPv3]))
    v[6] ^= 0x5a
    pkts.append(eth / IP(src=src, dst="224.0.0.18", ttl=255, proto=112) / Raw(bytes(v)))
sendp(pkts, iface="eth0", verbose=False, inter=0.01)
print(len(pkts))
"#
    );
    let out = topo.exec_ok("client", &[PY, "-c", &script]);
    assert_eq!(
        out.trim(),
        (n_ttl + n_vrid + n_sum).to_string(),
        "scapy sent something else: {out}"
    );
}

/// `/metrics` shows the transitions (backup -> master after a takeover) and counts the
/// dropped adverts this test sends (TTL 1, unknown VRID, bad checksum) by reason.
#[test]
fn metrics_count_transitions_and_the_adverts_the_test_spoiled() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let (lb1, _lb2) = web_pair(&topo, METRICS_ON);
    let to_master = "vipd_transitions_total{instance=\"web\",from=\"backup\",to=\"master\"}";
    let t1 = metrics(&topo, "lb1");
    eprintln!(
        "lb1 at start: backup->master {:?}, state master {:?}, sent {:?}",
        sample(&t1, to_master),
        sample(
            &t1,
            "vipd_instance_state{instance=\"web\",state=\"master\"}"
        ),
        sample(&t1, "vipd_adverts_sent_total{instance=\"web\"}")
    );
    assert_eq!(sample(&t1, to_master), Some(1.0), "{t1}");
    let t2 = metrics(&topo, "lb2");
    assert_eq!(sample(&t2, to_master).unwrap_or(0.0), 0.0, "{t2}");
    assert!(
        sample(&t2, "vipd_adverts_received_total{instance=\"web\"}").unwrap_or(0.0) > 0.0,
        "lb2 counted no adverts from lb1: {t2}"
    );

    // Takeover: lb1 crashes.
    lb1.kill();
    // A crash leaves the VIP on lb1's interface; lb2 adds it too.
    topo.expect_holds("lb2", vip(), secs(10));
    expect_vipd_state(&topo, "lb2", "web", "master", secs(5));
    wait_until(secs(5), ms(50), || {
        sample(&metrics(&topo, "lb2"), to_master).unwrap_or(0.0) >= 1.0
    });
    let t2 = metrics(&topo, "lb2");
    eprintln!(
        "lb2 after takeover: backup->master {:?}, detect {:?} s, announce {:?} s",
        sample(&t2, to_master),
        sample(&t2, "vipd_last_takeover_detect_seconds{instance=\"web\"}"),
        sample(&t2, "vipd_last_takeover_announce_seconds{instance=\"web\"}")
    );
    assert!(sample(&t2, to_master).unwrap_or(0.0) >= 1.0, "{t2}");
    assert_eq!(
        sample(
            &t2,
            "vipd_instance_state{instance=\"web\",state=\"master\"}"
        ),
        Some(1.0),
        "{t2}"
    );
    assert_eq!(
        sample(
            &t2,
            "vipd_instance_state{instance=\"web\",state=\"backup\"}"
        ),
        Some(0.0),
        "{t2}"
    );

    // Spoiled adverts from the client, counted on lb2's eth0 by reason.
    let reasons = [
        ("ttl_not_255", 5.0),
        ("other_vrid", 3.0),
        ("bad_checksum", 4.0),
    ];
    let before: Vec<f64> = reasons.iter().map(|(r, _)| dropped(&t2, r)).collect();
    send_bad_adverts(&topo, 5, 3, 4);
    let want = |text: &str| {
        reasons
            .iter()
            .zip(&before)
            .all(|((r, n), b)| dropped(text, r) - b >= *n)
    };
    wait_until(secs(5), ms(100), || want(&metrics(&topo, "lb2")));
    let t2 = metrics(&topo, "lb2");
    for ((r, n), b) in reasons.iter().zip(&before) {
        let got = dropped(&t2, r) - b;
        eprintln!("lb2 eth0 dropped {r}: +{got} (sent {n})");
        assert_eq!(
            got, *n,
            "vipd_adverts_dropped_total{{interface=\"eth0\",reason=\"{r}\"}} rose by {got}, the test sent {n}:\n{}",
            t2.lines().filter(|l| l.contains("dropped")).collect::<Vec<_>>().join("\n")
        );
    }
    // None of it moved the VIP.
    std::thread::sleep(ms(500));
    assert!(topo.holds_vip("lb2", vip()), "{}", topo.snapshot());
    let s = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    assert_eq!(s["state"], "master", "{s}");
}

/// After a takeover, both takeover gauges are set: time to detect the master's death and
/// time from the decision to the VIPs added and announced.
#[test]
fn metrics_record_the_last_takeover_times() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let (lb1, _lb2) = web_pair(&topo, METRICS_ON);
    lb1.kill();
    topo.expect_holds("lb2", vip(), secs(10));
    expect_vipd_state(&topo, "lb2", "web", "master", secs(5));
    let t2 = metrics(&topo, "lb2");
    let detect = sample(&t2, "vipd_last_takeover_detect_seconds{instance=\"web\"}");
    let announce = sample(&t2, "vipd_last_takeover_announce_seconds{instance=\"web\"}");
    eprintln!("lb2 takeover: detect {detect:?} s, announce {announce:?} s");
    // Master_Down_Interval = 3 x 100 ms + skew (0.06 s at priority 100): at least 0.3 s.
    assert!(
        detect.is_some_and(|d| (0.3..5.0).contains(&d)),
        "vipd_last_takeover_detect_seconds {detect:?}"
    );
    assert!(
        announce.is_some_and(|a| (0.0..2.0).contains(&a)),
        "vipd_last_takeover_announce_seconds is {announce:?} after a takeover:\n{}",
        t2.lines()
            .filter(|l| l.contains("takeover"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The histograms hold the same takeover: one observation each, the detect one in
    // the 0.5 s bucket (0.36 s) and not in the 0.2 s one; sum = the last value.
    let takeover_lines = || {
        t2.lines()
            .filter(|l| l.contains("takeover"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for h in ["detect", "announce"] {
        let count = sample(
            &t2,
            &format!("vipd_takeover_{h}_seconds_count{{instance=\"web\"}}"),
        );
        assert_eq!(count, Some(1.0), "{h} histogram:\n{}", takeover_lines());
    }
    let dsum = sample(&t2, "vipd_takeover_detect_seconds_sum{instance=\"web\"}");
    assert!(
        dsum.zip(detect).is_some_and(|(s, d)| (s - d).abs() < 1e-6),
        "detect sum {dsum:?} vs last {detect:?}"
    );
    let bucket = |le: &str| {
        sample(
            &t2,
            &format!("vipd_takeover_detect_seconds_bucket{{le=\"{le}\",instance=\"web\"}}"),
        )
    };
    let d = detect.unwrap_or(0.0);
    let expect_in = bucket_holding(d);
    assert_eq!(bucket(expect_in), Some(1.0), "{}", takeover_lines());
    assert_eq!(bucket("+Inf"), Some(1.0), "{}", takeover_lines());
    assert_eq!(bucket("0.2"), Some(0.0), "{}", takeover_lines());
    // status --json: in_state_ms is the daemon's, counting since the takeover.
    let s1 = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    std::thread::sleep(ms(300));
    let s2 = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    let (a, b) = (s1["in_state_ms"].as_u64(), s2["in_state_ms"].as_u64());
    eprintln!("lb2 in_state_ms {a:?} then {b:?} 300 ms later");
    assert!(
        a.zip(b).is_some_and(|(a, b)| b >= a + 250 && b < a + 5_000),
        "in_state_ms {a:?} then {b:?}: {s2}"
    );
}

/// The smallest takeover bucket bound that holds `v` seconds (as exposed).
fn bucket_holding(v: f64) -> &'static str {
    const B: [(f64, &str); 13] = [
        (0.001, "0.001"),
        (0.002, "0.002"),
        (0.005, "0.005"),
        (0.01, "0.01"),
        (0.02, "0.02"),
        (0.05, "0.05"),
        (0.1, "0.1"),
        (0.2, "0.2"),
        (0.5, "0.5"),
        (1.0, "1.0"),
        (2.0, "2.0"),
        (5.0, "5.0"),
        (10.0, "10.0"),
    ];
    B.iter()
        .find(|(b, _)| v <= *b)
        .map(|(_, s)| *s)
        .unwrap_or("+Inf")
}

/// The operator's override and maintenance show as gauges, and the state's start time as
/// a timestamp that agrees with `status --json`.
#[test]
fn metrics_show_operator_override_maintenance_and_state_since() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let _lb1 = metrics_master(&topo);
    let ov = "vipd_instance_priority_override{instance=\"web\"}";
    let mt = "vipd_instance_maintenance{instance=\"web\"}";
    let t = metrics(&topo, "lb1");
    assert_eq!(sample(&t, ov), Some(0.0), "{t}");
    assert_eq!(sample(&t, mt), Some(0.0), "{t}");
    let since = sample(
        &t,
        "vipd_instance_state_since_timestamp_seconds{instance=\"web\"}",
    );
    let s = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    let status_since = s["since_unix_ms"].as_u64().map(|v| v as f64 / 1000.0);
    assert!(
        since
            .zip(status_since)
            .is_some_and(|(a, b)| (a - b).abs() < 0.002),
        "metrics say {since:?}, status says {status_since:?}"
    );
    // Within 5 s, the override gauge reads `o` and the maintenance gauge `m`.
    let expect_gauges = |o: f64, m: f64| {
        let ok = wait_until(secs(5), ms(50), || {
            let t = metrics(&topo, "lb1");
            sample(&t, ov) == Some(o) && sample(&t, mt) == Some(m)
        });
        assert!(ok, "{}", metrics(&topo, "lb1"));
    };
    vipctl_ok(&topo, "lb1", &["priority", "set", "web", "120"]);
    vipctl_ok(&topo, "lb1", &["maintenance", "on", "web"]);
    expect_gauges(120.0, 1.0);
    vipctl_ok(&topo, "lb1", &["priority", "clear", "web"]);
    vipctl_ok(&topo, "lb1", &["maintenance", "off", "web"]);
    expect_gauges(0.0, 0.0);
}

/// An instance removed by a reload leaves no state, priority, info or operator series
/// behind (a gone instance would look like a backup forever, and the no-master alert
/// would fire); its counters stay. The instance added in the same reload has its own.
#[test]
fn metrics_forget_an_instance_removed_by_reload() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let lb1 = metrics_master(&topo);
    let t = metrics(&topo, "lb1");
    assert_eq!(
        sample(&t, "vipd_instance_state{instance=\"web\",state=\"master\"}"),
        Some(1.0),
        "{t}"
    );
    let api = VipdInstance::new("api", 52, 150, &[&format!("{VIP2}/24")]).render();
    std::fs::write(lb1.conf_path(), top(&topo, "lb1", METRICS_ON) + &api).expect("rewrite config");
    lb1.reload();
    expect_vipd_state(&topo, "lb1", "api", "master", secs(10));
    let gone = wait_until(secs(10), ms(100), || {
        !metrics(&topo, "lb1")
            .lines()
            .any(|l| l.starts_with("vipd_instance_") && l.contains("instance=\"web\""))
    });
    let t = metrics(&topo, "lb1");
    assert!(
        gone,
        "series of the removed instance web are still exposed:\n{}",
        t.lines()
            .filter(|l| l.contains("instance=\"web\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        sample(
            &t,
            "vipd_transitions_total{instance=\"web\",from=\"backup\",to=\"master\"}"
        )
        .is_some(),
        "web's counters should stay:\n{t}"
    );
    assert_eq!(
        sample(&t, "vipd_instance_state{instance=\"api\",state=\"master\"}"),
        Some(1.0),
        "{t}"
    );
    assert!(
        t.contains("vipd_instance_info{instance=\"api\",interface=\"eth0\",vrid=\"52\""),
        "{t}"
    );
}

/// A real Prometheus (Debian's, started here in the client's namespace with its own
/// config and data directory, 1 s scrape and evaluation) on both vipd of a pair.
struct Prom {
    /// The client's namespace, where it runs.
    ns: String,
    _proc: harness::Proc,
}

impl Prom {
    fn start(topo: &Topology, targets: &[String]) -> Prom {
        let dir = topo.path("prometheus");
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        let rules = monitoring_common::rules_file();
        let conf = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: vipd\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let conf_path = dir.join("prometheus.yml");
        std::fs::write(&conf_path, conf).expect("prometheus.yml");
        let proc = topo.spawn(
            "client",
            &[
                "prometheus",
                &format!("--config.file={}", conf_path.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                "--web.listen-address=127.0.0.1:9090",
                "--storage.tsdb.retention.time=1h",
            ],
            "prometheus.log",
        );
        let p = Prom {
            ns: topo.ns("client"),
            _proc: proc,
        };
        let ready = wait_until(secs(30), ms(200), || {
            p.get("/-/ready").is_some_and(|b| b.contains("Ready"))
        });
        assert!(
            ready,
            "prometheus never became ready:\n{}",
            std::fs::read_to_string(topo.path("prometheus.log")).unwrap_or_default()
        );
        p
    }

    fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:9090{path}");
        let out = self.curl(&["-sf", "--max-time", "5", &url]);
        out.ok().then_some(out.stdout)
    }

    fn curl(&self, args: &[&str]) -> CmdOutput {
        let mut argv = vec!["ip", "netns", "exec", self.ns.as_str(), "curl"];
        argv.extend_from_slice(args);
        harness::run_cmd(&argv, None, secs(20))
    }

    /// An instant query's `data.result` (empty on any error, printed).
    fn query(&self, q: &str) -> Vec<Value> {
        let out = self.curl(&[
            "-s",
            "--max-time",
            "10",
            "http://127.0.0.1:9090/api/v1/query",
            "--data-urlencode",
            &format!("query={q}"),
        ]);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        if v["status"] != "success" {
            eprintln!("query {q:?}: {}{}", out.stdout, out.stderr);
        }
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// `(alertname, state, labels)` of every pending or firing alert.
    fn alerts(&self) -> Vec<(String, String, Value)> {
        let body = self.get("/api/v1/alerts").unwrap_or_default();
        let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }

    fn firing(&self, name: &str) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|(n, s, _)| n == name && s == "firing")
            .map(|(_, _, l)| l)
            .collect()
    }
}

/// The state Prometheus holds for `web` on the target `addr` (the label of the series at 1).
fn prom_state(p: &Prom, addr: &str) -> Option<String> {
    let r = p.query(&format!(
        "vipd_instance_state{{job=\"vipd\",instance=\"{addr}\",exported_instance=\"web\"}} == 1"
    ));
    match r.as_slice() {
        [one] => one["metric"]["state"].as_str().map(str::to_string),
        _ => None,
    }
}

/// With a real Prometheus scraping the pair: `up` is 1 for both, the state series match
/// `vipctl status`, every query of the shipped dashboard returns data, and the shipped
/// split-brain alert fires during a VRRP partition and resolves after it heals.
#[test]
fn prometheus_scrapes_the_pair_dashboard_has_data_and_split_brain_alert_fires() {
    let _g = netns_test!();
    if harness::which("prometheus").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is not installed (integration/setup.sh installs it)"
        );
        eprintln!("SKIP: prometheus not installed");
        return;
    }
    let mut topo = Topology::new(TopologyOpts::default());
    let addr = |h: &str| format!("{}:9638", topo.ip4(h));
    let (a1, a2) = (addr("lb1"), addr("lb2"));
    let listen = |a: &str| format!("metrics-listen = \"{a}\"");
    // Peer BFD between the two (UDP, so it stays up through the VRRP partition): the
    // dashboard's BFD panel has sessions to show.
    let bfd = |peer: &str| {
        format!(
            "[instance.bfd]\npeers = [\"{}\"]\ninterval = \"50ms\"\n",
            topo.ip4(peer)
        )
    };
    let _lb1 = start_vipd(
        &topo,
        "lb1",
        &(top(&topo, "lb1", &listen(&a1)) + &web(150, &bfd("lb2"))),
    );
    let _lb2 = start_vipd(
        &topo,
        "lb2",
        &(top(&topo, "lb2", &listen(&a2)) + &web(100, &bfd("lb1"))),
    );
    topo.expect_sole_holder(vip(), "lb1", secs(10));
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(5));

    let prom = Prom::start(&topo, &[a1.clone(), a2.clone()]);
    let prom_started = unix_now();
    let up_both = || {
        let r = prom.query("up{job=\"vipd\"} == 1");
        r.len() == 2
    };
    assert!(
        wait_until(secs(30), ms(250), up_both),
        "up is not 1 for both targets: {:?}",
        prom.query("up")
    );

    // The state series match vipctl status, on both hosts.
    for (h, a) in [("lb1", &a1), ("lb2", &a2)] {
        let want = vipd_state(&topo, h, "web").expect("status has web");
        let ok = wait_until(secs(15), ms(250), || {
            prom_state(&prom, a).as_deref() == Some(want.as_str())
        });
        assert!(
            ok,
            "{h}: prometheus says {:?}, vipctl status says {want}",
            prom_state(&prom, a)
        );
        eprintln!("{h}: prometheus and vipctl agree: {want}");
    }
    assert!(prom.firing("VipdSplitBrain").is_empty());
    let bfd_up = wait_until(secs(30), ms(250), || {
        prom.query("vipd_bfd_session_state == 3").len() == 2
    });
    assert!(
        bfd_up,
        "BFD sessions not Up in prometheus: {:?}",
        prom.query("vipd_bfd_session_state")
    );

    // Adverts the receive checks drop, so the drops panel has something.
    send_bad_adverts(&topo, 3, 0, 0);

    // Split brain: VRRP blocked between lb1 and lb2 (scrapes still flow).
    let cut = Instant::now();
    topo.partition_vrrp("lb1", "lb2");
    expect_vipd_state(&topo, "lb2", "web", "master", secs(10));
    assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("master"));
    let fired = wait_until(secs(60), ms(500), || {
        !prom.firing("VipdSplitBrain").is_empty()
    });
    assert!(
        fired,
        "VipdSplitBrain never fired; alerts: {:?}",
        prom.alerts()
    );
    // More spoiled adverts: the drops panel shows a rate only once its series exists.
    send_bad_adverts(&topo, 5, 0, 0);
    let labels = prom.firing("VipdSplitBrain");
    eprintln!(
        "VipdSplitBrain firing {} after the cut: {labels:?}",
        fmt_ms(cut.elapsed())
    );
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(labels[0]["vrid"], "51");
    assert_eq!(labels[0]["vips"], format!("{VIP}/24"));

    // Every dashboard query has data now: a takeover (lb2's) and drops happened.
    let queries = monitoring_common::dashboard_queries("30s", "10m");
    let mut empty = Vec::new();
    for (title, q) in &queries {
        let has = wait_until(secs(20), ms(500), || !prom.query(q).is_empty());
        if !has {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    eprintln!("all {} dashboard queries returned data", queries.len());
    for q in [
        "vipd_last_takeover_detect_seconds",
        "histogram_quantile(0.5, sum by (le) (rate(vipd_takeover_detect_seconds_bucket[10m])))",
    ] {
        let r: Vec<String> = prom
            .query(q)
            .iter()
            .map(|x| format!("{} {}", x["metric"]["instance"], x["value"][1]))
            .collect();
        eprintln!("{q}: {r:?}");
    }

    // Heal: lb2 hears lb1 again and steps down; the alert resolves.
    topo.heal();
    expect_vipd_state(&topo, "lb2", "web", "backup", secs(10));
    let resolved = wait_until(secs(60), ms(500), || {
        !prom.alerts().iter().any(|(n, _, _)| n == "VipdSplitBrain")
    });
    assert!(
        resolved,
        "VipdSplitBrain still active after the heal: {:?}",
        prom.alerts()
    );
    let masters = prom.query("sum(vipd_instance_state{state=\"master\"})");
    eprintln!("after heal: masters {masters:?}");
    let ok = wait_until(secs(15), ms(250), || {
        prom_state(&prom, &a1).as_deref() == Some("master")
            && prom_state(&prom, &a2).as_deref() == Some("backup")
    });
    assert!(
        ok,
        "after heal prometheus says lb1 {:?}, lb2 {:?}",
        prom_state(&prom, &a1),
        prom_state(&prom, &a2)
    );
    // The dashboard's panels drawn from this run (integration/render_dashboard.py, run in
    // the client's namespace against this Prometheus); VIPD_DASHBOARD_PNG=FILE keeps it.
    std::thread::sleep(secs(3));
    render_dashboard(&topo, prom_started, unix_now());
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Draws every panel of the shipped dashboard from the test's Prometheus over
/// [start, end]; every panel must have data. Skipped without Debian's python3-matplotlib
/// (a failure under CI, which installs it).
fn render_dashboard(topo: &Topology, start: f64, end: f64) {
    let py = "/usr/bin/python3";
    if !harness::run_cmd(&[py, "-c", "import matplotlib"], None, secs(180)).ok() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3-matplotlib is not installed (integration/setup.sh installs it)"
        );
        eprintln!("SKIP rendering the dashboard: no python3-matplotlib");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("integration/render_dashboard.py");
    let dash = root.join("packaging/monitoring/vipd-dashboard.json");
    let out = topo.path("dashboard.png");
    let (s, e) = (format!("{start:.0}"), format!("{end:.0}"));
    let r = topo.exec(
        "client",
        &[
            py,
            &script.to_string_lossy(),
            "http://127.0.0.1:9090",
            &dash.to_string_lossy(),
            &out.to_string_lossy(),
            "--start",
            &s,
            "--end",
            &e,
            "--title",
            "vipd dashboard, namespace test: lb1 (150) and lb2 (100) with peer BFD, VRRP partitioned, then healed",
        ],
    );
    assert!(
        r.ok(),
        "render_dashboard.py failed: {}{}",
        r.stdout,
        r.stderr
    );
    eprintln!("{}", r.stdout.trim());
    assert!(
        !r.stdout.contains("without data"),
        "dashboard panels without data: {}",
        r.stdout
    );
    assert!(out.is_file(), "no {}", out.display());
    if let Ok(keep) = std::env::var("VIPD_DASHBOARD_PNG") {
        std::fs::copy(&out, &keep).unwrap_or_else(|e| panic!("copy to {keep}: {e}"));
        eprintln!("dashboard picture saved to {keep}");
    }
}

// ---- 8. reload ------------------------------------------------------------------------------

/// SIGHUP with only the master's priority changed (150 -> 120, still above 100): no
/// transition, no lost request; SIGHUP with the instance removed: its VIP is released and
/// lb2 takes over.
#[test]
fn reload_priority_change_keeps_master_and_removal_releases_the_vip() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    // The responders first: they are ready by the time the pair is.
    let _responders = topo.start_responders(vip());
    let (lb1, lb2) = web_pair(&topo, "");
    let tr1 = transitions(&lb1.log(), "web").len();
    let tr2 = transitions(&lb2.log(), "web").len();
    let probe = probe_vip(&topo, vip(), ms(2));

    let write = |conf: &str| {
        std::fs::write(lb1.conf_path(), conf)
            .unwrap_or_else(|e| panic!("rewriting {}: {e}", lb1.conf_path().display()))
    };
    write(&(top(&topo, "lb1", "") + &web(120, "")));
    let t0 = Instant::now();
    lb1.reload();
    assert!(
        lb1.wait_log("reloaded: 0 unchanged, 1 changed", secs(10)),
        "no reload line\n{}",
        lb1.log()
    );
    let ok = wait_until(secs(5), ms(20), || {
        instance_status(&topo, "lb1", "web").is_some_and(|i| i["priority"] == 120)
    });
    assert!(
        ok,
        "lb1 priority never became 120: {:?}",
        instance_status(&topo, "lb1", "web")
    );
    eprintln!(
        "reload 150 -> 120: effective after {}",
        fmt_ms(t0.elapsed())
    );
    // Several of lb2's master-down intervals (3 x 100 ms + skew).
    assert_holds_for(&topo, "lb1", vip(), ms(1500));
    let rep = probe.finish();
    print_probe("client during the priority reload", &rep);
    assert_eq!(
        rep.lost,
        0,
        "a priority-only reload lost requests\n{}",
        rep.summary()
    );
    assert_eq!(rep.responders(), ["lb1"], "{}", rep.summary());
    let new1 = transitions(&lb1.log(), "web");
    let new2 = transitions(&lb2.log(), "web");
    assert_eq!(new1.len(), tr1, "lb1 changed state on reload: {new1:#?}");
    assert_eq!(new2.len(), tr2, "lb2 changed state on reload: {new2:#?}");
    let s2 = instance_status(&topo, "lb2", "web").expect("lb2 has web");
    assert_eq!(s2["state"], "backup", "{s2}");
    // lb2 hears the new priority (it advertises what it uses).
    let s1 = instance_status(&topo, "lb1", "web").expect("lb1 has web");
    assert_eq!(
        (&s1["state"], &s1["base_priority"]),
        (&Value::from("master"), &Value::from(120)),
        "{s1}"
    );

    // Remove the instance: lb1 releases the VIP, lb2 takes over.
    let probe = probe_vip(&topo, vip(), ms(2));
    write(&top(&topo, "lb1", ""));
    let t_rm = mono_now();
    lb1.reload();
    let moved = topo.expect_sole_holder(vip(), "lb2", secs(10));
    eprintln!(
        "reload without web -> lb2 sole holder {} after SIGHUP",
        fmt_ms(moved)
    );
    assert!(
        lb1.wait_log(
            "reloaded: 0 unchanged, 0 changed, 0 added, 1 removed",
            secs(10)
        ),
        "{}",
        lb1.log()
    );
    let ok = wait_until(secs(5), ms(50), || {
        status(&topo, "lb1")["instances"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    assert!(ok, "lb1 still lists instances: {}", status(&topo, "lb1"));
    expect_vipd_state(&topo, "lb2", "web", "master", secs(5));
    std::thread::sleep(ms(800));
    let rep = probe.finish();
    print_probe_around("client during the removal reload", &rep, t_rm);
    rep.assert_ends_on("lb2");
    assert!(lb1.proc().is_running(), "vipd on lb1 exited\n{}", lb1.log());
    assert!(!topo.holds_vip("lb1", vip()), "{}", topo.snapshot());
    // With no instance left, lb1 closes its VRRP socket (and leaves 224.0.0.18): no raw
    // socket for protocol 112 (0x70, the "port" column) stays open in its namespace.
    let vrrp_sockets = || {
        topo.exec_ok("lb1", &["cat", "/proc/net/raw"])
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(":0070"))
            })
            .count()
    };
    let closed = wait_until(secs(5), ms(50), || vrrp_sockets() == 0);
    assert!(
        closed,
        "lb1 still has {} VRRP socket(s)\n{}",
        vrrp_sockets(),
        lb1.log()
    );
}
