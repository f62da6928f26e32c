//! `vipd import-keepalived` proven in network namespaces: one keepalived.conf, used on
//! both load balancers (its `@lb1` / `@lb2` lines give lb1 priority 150 and lb2 100),
//! elects a master with keepalived; the same file converted (`--host lb1`, `--host lb2`)
//! elects the same host with the same VIPs with vipd; and mixed pairs (converted vipd on
//! one host, keepalived on the other, the rolling-migration state) fail over both ways.
//!
//! keepalived runs with `-i HOST` (its config id selects the `@HOST` lines; in a namespace
//! the host name is the machine's).
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test import_interop -- --nocapture`

mod harness;

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::prelude::*;
use harness::vipd::{vipd_socket, vipd_state};
use harness::{netns_test, wait_until, Agent, AgentKind, Proc, Topology, TopologyOpts};
use nix::sys::signal::Signal;

const VIPS: [&str; 2] = ["192.0.2.100", "192.0.2.101"];

const KEEPALIVED_CONF: &str = "\
! One file for both load balancers.
global_defs {
    router_id pair
}

vrrp_instance VI_web {
    state BACKUP
    interface eth0
    virtual_router_id 51
@lb1    priority 150
@lb2    priority 100
    advert_int 0.1
    version 3
    virtual_ipaddress {
        192.0.2.100/24 dev eth0
        192.0.2.101/24 dev eth0
    }
}
";

fn vips() -> Vec<IpAddr> {
    VIPS.iter().map(|v| v.parse().expect("constant")).collect()
}

/// Waits until `host` alone holds every VIP.
fn wait_sole_holder(topo: &Topology, host: &str, timeout: Duration, what: &str) -> Duration {
    let t0 = Instant::now();
    let ok = wait_until(timeout, ms(20), || {
        vips().iter().all(|v| topo.vip_holders(*v) == [host])
    });
    assert!(
        ok,
        "{what}: expected {host} alone to hold {VIPS:?} within {timeout:?}; holders {:?}\n{}",
        vips()
            .iter()
            .map(|v| topo.vip_holders(*v))
            .collect::<Vec<_>>(),
        topo.snapshot()
    );
    t0.elapsed()
}

/// keepalived on `host` with config id `host`, foreground, VRRP only.
fn start_keepalived(topo: &Topology, host: &str, conf: &std::path::Path) -> Proc {
    let bin = harness::which("keepalived").expect("keepalived installed");
    let pid = topo.path(&format!("{host}-ka.pid"));
    let vpid = topo.path(&format!("{host}-ka-vrrp.pid"));
    let _ = std::fs::remove_file(&pid);
    let _ = std::fs::remove_file(&vpid);
    let argv = [
        bin.to_string_lossy().into_owned(),
        "-n".into(),
        "-P".into(),
        "-l".into(),
        "-D".into(),
        "-G".into(),
        "-i".into(),
        host.into(),
        "-f".into(),
        conf.to_string_lossy().into_owned(),
        "-p".into(),
        pid.to_string_lossy().into_owned(),
        "-r".into(),
        vpid.to_string_lossy().into_owned(),
    ];
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    topo.spawn(host, &argv, &format!("{host}-keepalived.log"))
}

/// Graceful stop of a keepalived (SIGTERM: a master hands over).
fn stop_keepalived(p: &Proc) {
    p.signal(Signal::SIGTERM).expect("keepalived running");
    assert!(
        p.wait_timeout(secs(15)).is_some(),
        "keepalived on {} did not stop\n{}",
        p.host(),
        p.log()
    );
}

/// The keepalived file converted for `host` with `vipd import-keepalived`, plus the
/// harness's control socket and state dir.
fn converted(topo: &Topology, host: &str, conf: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .arg("import-keepalived")
        .arg(conf)
        .args(["--host", host])
        .output()
        .expect("run vipd import-keepalived");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "conversion incomplete:\n{stderr}"
    );
    format!(
        "control-socket = \"{}\"\nstate-dir = \"{}\"\n{}",
        vipd_socket(topo, host).display(),
        topo.path(&format!("{host}-state")).display(),
        String::from_utf8_lossy(&out.stdout)
    )
}

fn start_vipd(topo: &Topology, host: &str, conf: &str) -> Agent {
    let a = topo.start_agent(host, AgentKind::vipd(), conf);
    let up = wait_until(secs(15), ms(50), || {
        vipd_state(topo, host, "VI_web").is_some()
    });
    assert!(up, "vipd on {host} never answered\n{}", a.log());
    a
}

#[test]
fn converted_pair_elects_like_keepalived_and_mixed_pairs_fail_over_both_ways() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let kconf = topo.path("pair-keepalived.conf");
    std::fs::write(&kconf, KEEPALIVED_CONF).expect("write keepalived.conf");
    let none_hold = |topo: &Topology| {
        wait_until(secs(10), ms(50), || {
            vips().iter().all(|v| topo.vip_holders(*v).is_empty())
        })
    };

    // 1. keepalived on both hosts, same file: lb1 (150) is master.
    let k1 = start_keepalived(&topo, "lb1", &kconf);
    let k2 = start_keepalived(&topo, "lb2", &kconf);
    wait_sole_holder(&topo, "lb1", secs(20), "keepalived pair");
    std::thread::sleep(secs(2));
    wait_sole_holder(&topo, "lb1", secs(5), "keepalived pair, 2 s later");
    eprintln!("keepalived pair: lb1 is master");
    stop_keepalived(&k2);
    stop_keepalived(&k1);
    assert!(none_hold(&topo), "VIPs left after keepalived stopped");

    // 2. The converted file on both hosts: the same master, the same VIPs.
    let c1 = converted(&topo, "lb1", &kconf);
    let c2 = converted(&topo, "lb2", &kconf);
    let v1 = start_vipd(&topo, "lb1", &c1);
    let v2 = start_vipd(&topo, "lb2", &c2);
    wait_sole_holder(&topo, "lb1", secs(15), "converted vipd pair");
    assert!(wait_until(secs(10), ms(50), || {
        vipd_state(&topo, "lb1", "VI_web").as_deref() == Some("master")
            && vipd_state(&topo, "lb2", "VI_web").as_deref() == Some("backup")
    }));
    std::thread::sleep(secs(1));
    wait_sole_holder(&topo, "lb1", secs(5), "converted vipd pair, 1 s later");
    v2.stop(secs(15));
    v1.stop(secs(15));
    assert!(none_hold(&topo), "VIPs left after vipd stopped");

    // 3. Mixed: converted vipd on lb1, keepalived on lb2.
    let mut v1 = start_vipd(&topo, "lb1", &c1);
    let k2 = start_keepalived(&topo, "lb2", &kconf);
    wait_sole_holder(&topo, "lb1", secs(15), "mixed: vipd master");
    std::thread::sleep(secs(1));
    wait_sole_holder(
        &topo,
        "lb1",
        secs(5),
        "mixed: vipd master, keepalived backup",
    );
    // vipd -> keepalived: the vipd master stops (hands over).
    v1.stop(secs(15));
    let t = wait_sole_holder(
        &topo,
        "lb2",
        secs(15),
        "mixed: keepalived takes over from vipd",
    );
    eprintln!("vipd master stopped -> keepalived on lb2 alone holds the VIPs after {t:?}");
    // keepalived -> vipd: vipd comes back with the higher priority and preempts.
    v1.restart(&topo);
    let t = wait_sole_holder(&topo, "lb1", secs(15), "mixed: vipd preempts keepalived");
    eprintln!("vipd restarted -> lb1 alone holds the VIPs again after {t:?}");
    stop_keepalived(&k2);
    v1.stop(secs(15));
    assert!(none_hold(&topo), "VIPs left after the mixed pair stopped");

    // 4. Mixed the other way round: keepalived on lb1 (master), converted vipd on lb2.
    let k1 = start_keepalived(&topo, "lb1", &kconf);
    wait_sole_holder(&topo, "lb1", secs(15), "mixed 2: keepalived master");
    let _v2 = start_vipd(&topo, "lb2", &c2);
    std::thread::sleep(secs(1));
    wait_sole_holder(
        &topo,
        "lb1",
        secs(5),
        "mixed 2: keepalived master, vipd backup",
    );
    assert!(wait_until(secs(10), ms(50), || vipd_state(
        &topo, "lb2", "VI_web"
    )
    .as_deref()
        == Some("backup")));
    // keepalived -> vipd: the keepalived master stops.
    stop_keepalived(&k1);
    let t = wait_sole_holder(
        &topo,
        "lb2",
        secs(15),
        "mixed 2: vipd takes over from keepalived",
    );
    eprintln!("keepalived master stopped -> vipd on lb2 alone holds the VIPs after {t:?}");
    assert!(wait_until(secs(5), ms(50), || vipd_state(
        &topo, "lb2", "VI_web"
    )
    .as_deref()
        == Some("master")));
}
