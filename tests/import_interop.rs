//! `vipd import-keepalived` proven in network namespaces: one keepalived.conf, used on
//! both load balancers, elects a master with keepalived; the same file converted elects the
//! same host with the same VIPs with vipd; and a mixed pair (converted vipd on one host,
//! keepalived on the other, the rolling-migration state) fails over both ways.
//!
//! Both hosts have priority 100: the election is decided by RFC 5798's tie-break (the
//! higher primary address wins), which both implementations must agree on.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test import_interop -- --nocapture`

mod harness;

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::vipd::{vipd_socket, vipd_state};
use harness::{require_netns, wait_until, Agent, AgentKind, Topology, TopologyOpts};

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
    priority 100
    advert_int 0.1
    version 3
    virtual_ipaddress {
        192.0.2.100/24 dev eth0
        192.0.2.101/24 dev eth0
    }
}
";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

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

/// Whoever holds every VIP alone, once one does (bounded).
fn wait_some_master(topo: &Topology, timeout: Duration) -> String {
    let mut who = None;
    wait_until(timeout, ms(20), || {
        let holders = topo.vip_holders(vips()[0]);
        if holders.len() == 1 && vips().iter().all(|v| topo.vip_holders(*v) == holders) {
            who = holders.into_iter().next();
            true
        } else {
            false
        }
    });
    who.unwrap_or_else(|| panic!("no single master within {timeout:?}\n{}", topo.snapshot()))
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
fn converted_pair_elects_like_keepalived_and_a_mixed_pair_fails_over_both_ways() {
    if !require_netns("converted_pair_elects_like_keepalived_and_a_mixed_pair_fails_over_both_ways")
    {
        return;
    }
    let topo = Topology::new(TopologyOpts::default());
    let kconf = topo.path("pair-keepalived.conf");
    std::fs::write(&kconf, KEEPALIVED_CONF).expect("write keepalived.conf");

    // 1. keepalived on both hosts, same file.
    let k1 = topo.start_agent("lb1", AgentKind::Keepalived, KEEPALIVED_CONF);
    let k2 = topo.start_agent("lb2", AgentKind::Keepalived, KEEPALIVED_CONF);
    let winner = wait_some_master(&topo, secs(20));
    // Let a start-up tie settle, then read it again: it must be stable.
    std::thread::sleep(secs(2));
    let winner_now = wait_some_master(&topo, secs(10));
    assert_eq!(winner, winner_now, "keepalived's master moved");
    let loser = if winner == "lb1" { "lb2" } else { "lb1" };
    eprintln!("keepalived pair: {winner} is master (priority tie, higher address)");
    assert_eq!(
        winner, "lb2",
        "equal priorities: the higher address (lb2) wins"
    );
    // Stop the backup first so that nothing moves while stopping.
    let (kw, kl) = if winner == "lb1" { (k1, k2) } else { (k2, k1) };
    kl.stop(secs(15));
    kw.stop(secs(15));
    assert!(wait_until(secs(10), ms(50), || vips()
        .iter()
        .all(|v| topo.vip_holders(*v).is_empty())));

    // 2. The converted file on both hosts: the same master, the same VIPs.
    let conf_w = converted(&topo, &winner, &kconf);
    let conf_l = converted(&topo, loser, &kconf);
    let vw = start_vipd(&topo, &winner, &conf_w);
    let vl = start_vipd(&topo, loser, &conf_l);
    wait_sole_holder(&topo, &winner, secs(15), "converted vipd pair");
    std::thread::sleep(secs(1));
    wait_sole_holder(
        &topo,
        &winner,
        secs(5),
        "converted vipd pair, a second later",
    );
    assert!(wait_until(secs(10), ms(50), || {
        vipd_state(&topo, &winner, "VI_web").as_deref() == Some("master")
            && vipd_state(&topo, loser, "VI_web").as_deref() == Some("backup")
    }));
    vl.stop(secs(15));
    vw.stop(secs(15));

    // 3. Mixed: converted vipd on the winner, keepalived on the other host.
    let mut v = start_vipd(&topo, &winner, &conf_w);
    wait_sole_holder(&topo, &winner, secs(15), "mixed: vipd alone");
    let k = topo.start_agent(loser, AgentKind::Keepalived, KEEPALIVED_CONF);
    std::thread::sleep(secs(2));
    wait_sole_holder(
        &topo,
        &winner,
        secs(5),
        "mixed: vipd master, keepalived backup",
    );

    // vipd -> keepalived: the vipd master stops (hands over).
    v.stop(secs(15));
    let t = wait_sole_holder(
        &topo,
        loser,
        secs(15),
        "mixed: keepalived takes over from vipd",
    );
    eprintln!("vipd stopped -> keepalived on {loser} alone holds the VIPs after {t:?}");

    // vipd comes back as backup (equal priority: no preemption), then keepalived stops.
    v.restart(&topo);
    assert!(
        wait_until(secs(15), ms(50), || vipd_state(&topo, &winner, "VI_web")
            .as_deref()
            == Some("backup")),
        "restarted vipd not backup behind keepalived: {:?}\n{}",
        vipd_state(&topo, &winner, "VI_web"),
        v.log()
    );
    wait_sole_holder(&topo, loser, secs(5), "mixed: keepalived stays master");
    k.stop(secs(15));
    let t = wait_sole_holder(
        &topo,
        &winner,
        secs(15),
        "mixed: vipd takes over from keepalived",
    );
    eprintln!("keepalived stopped -> vipd on {winner} alone holds the VIPs after {t:?}");
    assert!(wait_until(secs(5), ms(50), || vipd_state(
        &topo, &winner, "VI_web"
    )
    .as_deref()
        == Some("master")));
}
