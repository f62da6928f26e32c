//! What keepalived configs rely on, proven in network namespaces against real vipd
//! processes on the harness's LAN (lb1 priority 150, lb2 priority 100, 100 ms adverts):
//! `process` and `file` tracks move the VIP, the `stop` hook runs after the handover, and
//! `startup-delay` keeps a starting host out of the election.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test migrate_tracks -- --nocapture --test-threads=1`

mod harness;

use std::time::Instant;

use harness::prelude::*;
use harness::vipd::{instance_field, text_contains, vipd_conf, vipd_state};
use harness::{netns_test, wait_until, Agent, AgentKind, Sleeper, Topology, TopologyOpts};

fn start(topo: &Topology, host: &str, conf: &str) -> Agent {
    let a = topo.start_agent(host, AgentKind::vipd(), conf);
    let up = wait_until(secs(15), ms(50), || vipd_state(topo, host, "web").is_some());
    assert!(up, "vipd on {host} never answered\n{}", a.log());
    a
}

fn wait_field(topo: &Topology, host: &str, field: &str, want: serde_json::Value, what: &str) {
    let ok = wait_until(secs(15), ms(50), || {
        instance_field(topo, host, "web", field).as_ref() == Some(&want)
    });
    assert!(
        ok,
        "{what}: {host} web.{field} never became {want}: {:?}",
        instance_field(topo, host, "web", field)
    );
}

/// lb1 tracks a process (weight 0: gone = Fault) and a file (weight 10 x value). The
/// process dies: lb2 takes over; it comes back: lb1 preempts. The file says 6: lb1 drops
/// to 150 - 60 = 90 < 100 and lb2 takes over; it says 0 again: lb1 returns; it says
/// "drain": lb1 goes to Fault.
#[test]
fn process_and_file_tracks_move_the_vip() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let marker = format!("vipd-migrate-{}-{}", std::process::id(), topo.prefix());
    let weight_file = topo.path("lb1-weight");
    std::fs::write(&weight_file, "0\n").expect("write weight file");
    let service = Sleeper::start(&marker);

    let lb1 = web(150).line(&format!(
        "[[instance.track]]\nkind = \"process\"\nname = \"svc\"\nprocess = \"sh\"\n\
         args = [\"-c\", \"sleep 300; :\", \"{marker}\"]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
         rise = 1\nfall = 1\nweight = 0\n\
         [[instance.track]]\nkind = \"file\"\nname = \"weight\"\npath = \"{}\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nweight = 10\n",
        weight_file.display()
    ));
    let _a1 = start(&topo, "lb1", &vipd_conf(&topo, "lb1", &[lb1]));
    let _a2 = start(&topo, "lb2", &vipd_conf(&topo, "lb2", &[web(100)]));
    // start
    topo.expect_sole_holder(vip(), "lb1", secs(15));
    wait_field(&topo, "lb1", "priority", 150.into(), "start");

    // The process dies: Fault, lb2 takes over.
    drop(service);
    // process gone
    let t = topo.expect_sole_holder(vip(), "lb2", secs(15));
    eprintln!("process killed -> lb2 sole holder after {t:?}");
    wait_field(&topo, "lb1", "state", "fault".into(), "process gone");
    let fault = instance_field(&topo, "lb1", "web", "fault");
    assert!(text_contains(&fault, "'svc'"), "{fault:?}");

    // It comes back: lb1 preempts.
    let _service = Sleeper::start(&marker);
    // process back
    let t = topo.expect_sole_holder(vip(), "lb1", secs(15));
    eprintln!("process back -> lb1 sole holder after {t:?}");

    // The file says 6: priority 90.
    std::fs::write(&weight_file, "6\n").expect("write");
    // file says 6
    topo.expect_sole_holder(vip(), "lb2", secs(15));
    wait_field(&topo, "lb1", "priority", 90.into(), "file says 6");
    wait_field(&topo, "lb1", "state", "backup".into(), "file says 6");
    let tracks = instance_field(&topo, "lb1", "web", "tracks").expect("tracks");
    assert_eq!(tracks[1]["detail"], "value 6", "{tracks}");

    // Back to 0: lb1 returns.
    std::fs::write(&weight_file, "0\n").expect("write");
    // file says 0
    topo.expect_sole_holder(vip(), "lb1", secs(15));
    wait_field(&topo, "lb1", "priority", 150.into(), "file says 0");

    // Not a number: Fault.
    std::fs::write(&weight_file, "drain\n").expect("write");
    // file says drain
    topo.expect_sole_holder(vip(), "lb2", secs(15));
    wait_field(&topo, "lb1", "state", "fault".into(), "file says drain");
}

/// lb1 has `startup-delay = "3s"`: started first, it stays in Init (no VIP, no adverts)
/// while lb2 becomes master, and preempts only after the delay. On SIGTERM it hands
/// over, then runs its stop hook, after the hooks of its last transition.
#[test]
fn startup_delay_holds_a_host_back_and_the_stop_hook_runs_last() {
    let _g = netns_test!();
    let topo = Topology::new(TopologyOpts::default());
    let hooks = topo.path("lb1-hooks");
    let q = |s: String| format!("\"{s}\"");
    let sh = |script: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", {}]",
            q(format!("echo {script} >> {}", hooks.display()))
        )
    };
    let lb1 = web(150).line(&format!(
        "[instance.notify]\nmaster = {}\nstop = {}\nany = [\"/bin/sh\", \"-c\", {}]\n",
        sh("master-hook"),
        sh("\\\"stop-hook $VIPD_STATE\\\""),
        q(format!("echo any $1 >> {}", hooks.display())),
    ));
    let conf1 = format!(
        "startup-delay = \"3s\"\n{}",
        vipd_conf(&topo, "lb1", &[lb1])
    );
    let t0 = Instant::now();
    let a1 = start(&topo, "lb1", &conf1);
    let _a2 = start(&topo, "lb2", &vipd_conf(&topo, "lb2", &[web(100)]));
    // lb2 alone while lb1 waits
    topo.expect_sole_holder(vip(), "lb2", secs(10));
    // Still inside lb1's delay (lb2 needs ~0.4 s to take over): lb1 stays out.
    if t0.elapsed() < ms(2500) {
        assert_eq!(vipd_state(&topo, "lb1", "web").as_deref(), Some("init"));
        assert!(!topo.holds_vip("lb1", vip()));
    }
    // lb1 after its startup delay
    topo.expect_sole_holder(vip(), "lb1", secs(15));
    let took = t0.elapsed();
    eprintln!("lb1 master {took:?} after its start (startup-delay 3 s)");
    assert!(took >= secs(3), "lb1 took part before its delay: {took:?}");
    assert!(
        a1.log().contains("startup-delay"),
        "no startup-delay log line:\n{}",
        a1.log()
    );

    a1.stop(secs(15));
    // lb1 stopped
    topo.expect_sole_holder(vip(), "lb2", secs(10));
    let ok = wait_until(secs(10), ms(50), || {
        std::fs::read_to_string(&hooks)
            .unwrap_or_default()
            .contains("stop-hook")
    });
    let lines: Vec<String> = std::fs::read_to_string(&hooks)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    assert!(ok, "stop hook never ran: {lines:?}\n{}", a1.log());
    assert_eq!(
        lines.last().map(String::as_str),
        Some("stop-hook stop"),
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("stop-hook")).count(),
        1,
        "{lines:?}"
    );
    assert!(lines.contains(&"master-hook".to_string()), "{lines:?}");
    // `any` saw the shutdown transition, but not the stop.
    assert!(lines.iter().any(|l| l == "any init"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "any stop"), "{lines:?}");
}
