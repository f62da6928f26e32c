//! BFD interop with FRR's bfdd (Debian `frr` 8.4) as the "gateway" of a vipd
//! `kind = "bfd"` track, and tshark decoding vipd's BFD packets.
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test bfd_frr -- --nocapture --test-threads=1`
//! (root and FRR needed; skips otherwise unless VIPD_REQUIRE_NETNS=1).
//!
//! The gateway host `gw` runs its own zebra and bfdd (`-u frr -g frr`, every socket and
//! pid file in a run directory owned by user frr, vty TCP port off), configured with one
//! single-hop peer, lb1, at 10 ms x 3. lb1 runs vipd (priority 150) with
//! `[[instance.track]] kind = "bfd"`, `peer` = gw, `weight = 60`; lb2 (priority 100) is
//! the backup, so the track's verdict shows as lb1's effective priority (150 or 90).

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::frr::{frr_daemon_with, start_zebra_for};
use harness::prelude::*;
use harness::vipd::{tshark_fields, vipd_conf, vipd_status, wait_vipd_state, VipdInstance};
use harness::{netns_test, wait_until, AgentKind, Proc, Topology, TopologyOpts};

const NAME: &str = "web";

/// zebra + bfdd on one host, each with its sockets in `dir`.
struct Frr {
    dir: PathBuf,
    zebra: Proc,
    bfdd: Option<Proc>,
}

fn start_bfdd(topo: &Topology, host: &str, dir: &std::path::Path) -> Proc {
    let ctl = dir.join("bfdd.sock");
    frr_daemon_with(
        topo,
        host,
        dir,
        "bfdd",
        &["--bfdctl", &ctl.to_string_lossy()],
    )
}

fn start_frr(topo: &Topology, host: &str, peer: &str) -> Frr {
    let (dir, zebra) = start_zebra_for(
        topo,
        host,
        "bfdd",
        &format!(
            "hostname bfdd\nbfd\n peer {peer} interface eth0\n  receive-interval 10\n  transmit-interval 10\n  detect-multiplier 3\n !\n!\n"
        ),
    );
    let bfdd = start_bfdd(topo, host, &dir);
    Frr {
        dir,
        zebra,
        bfdd: Some(bfdd),
    }
}

impl Frr {
    fn peers(&self, topo: &Topology, host: &str) -> String {
        let d = self.dir.to_string_lossy().into_owned();
        topo.exec(host, &["vtysh", "--vty_socket", &d, "-c", "show bfd peers"])
            .stdout
    }

    fn status(&self, topo: &Topology, host: &str) -> Option<String> {
        let text = self.peers(topo, host);
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Status: "))
            .map(|s| s.trim().to_string())
    }
}

/// lb1's effective priority and the bfd track's verdict, from `vipctl status --json`.
fn track(topo: &Topology) -> Option<(u64, bool)> {
    let s = vipd_status(topo, "lb1")?;
    let i = &s["instances"][0];
    Some((
        i["priority"].as_u64()?,
        i["tracks"][0]["healthy"].as_bool()?,
    ))
}

/// Waits (30 s at most) until gw's bfdd session is up again and lb1's track healthy at
/// full priority (150); panics saying `when` otherwise.
#[track_caller]
fn expect_recovery(frr: &Frr, topo: &Topology, when: &str) {
    assert!(
        wait_until(Duration::from_secs(30), ms(100), || {
            frr.status(topo, "gw").as_deref() == Some("up") && track(topo) == Some((150, true))
        }),
        "no recovery {when}: {}\n{:?}",
        frr.peers(topo, "gw"),
        vipd_status(topo, "lb1")
    );
}

#[test]
fn frr_bfdd_as_gateway_of_a_bfd_track_up_down_on_kill_and_cut_recovers_tshark_decodes() {
    let _g = netns_test!();
    if harness::which("vtysh").is_none() || !std::path::Path::new("/usr/lib/frr/bfdd").exists() {
        assert!(
            std::env::var("VIPD_REQUIRE_NETNS").ok().as_deref() != Some("1"),
            "FRR (bfdd, vtysh) is not installed"
        );
        return;
    }
    let topo = Topology::new(TopologyOpts::default().with_host("gw"));
    let gw = topo.ip4("gw").to_string();
    let lb1_ip = topo.ip4("lb1").to_string();
    let mut frr = start_frr(&topo, "gw", &lb1_ip);
    let vip = "192.0.2.100/24";
    let i1 = VipdInstance::new(NAME, 51, 150, &[vip])
        .line("[[instance.track]]")
        .line("kind = \"bfd\"")
        .line(&format!("peer = \"{gw}\""))
        .line("interval = \"10ms\"")
        .line("multiplier = 3")
        .line("weight = 60");
    let i2 = VipdInstance::new(NAME, 51, 100, &[vip]);
    let lb1 = topo.start_agent("lb1", AgentKind::vipd(), &vipd_conf(&topo, "lb1", &[i1]));
    let lb2 = topo.start_agent("lb2", AgentKind::vipd(), &vipd_conf(&topo, "lb2", &[i2]));
    let cap = topo.start_capture("lb1", "eth0", "bfd");

    // Up, with both sides' timers.
    let up = wait_until(Duration::from_secs(30), ms(100), || {
        frr.status(&topo, "gw").as_deref() == Some("up") && track(&topo) == Some((150, true))
    });
    assert!(
        up,
        "session never Up: bfdd says\n{}\nvipd: {:?}\n{}\nbfdd log:\n{}",
        frr.peers(&topo, "gw"),
        vipd_status(&topo, "lb1"),
        lb1.log(),
        frr.bfdd.as_ref().map(|p| p.log()).unwrap_or_default()
    );
    let peers = frr.peers(&topo, "gw");
    println!("bfdd:\n{peers}");
    assert!(peers.contains("Detect-multiplier: 3"), "{peers}");
    assert!(peers.contains("Receive interval: 10ms"), "{peers}");
    assert!(peers.contains("Transmission interval: 10ms"), "{peers}");
    assert!(
        wait_vipd_state(&topo, "lb1", NAME, "master", Duration::from_secs(20)),
        "lb1 not master\n{}",
        lb1.log()
    );
    std::thread::sleep(ms(500));
    let file = cap.stop();

    // tshark decodes vipd's packets: version 1, Up, discriminators, 10 ms, TTL 255, and
    // no expert warnings.
    let rows = tshark_fields(
        &file,
        &format!("ip.src == {lb1_ip} && bfd"),
        &[
            "bfd.version",
            "bfd.sta",
            "bfd.my_discriminator",
            "bfd.your_discriminator",
            "bfd.desired_min_tx_interval",
            "bfd.required_min_rx_interval",
            "bfd.detect_time_multiplier",
            "ip.ttl",
            "udp.dstport",
            "udp.srcport",
        ],
        &[],
    );
    assert!(
        rows.len() > 20,
        "{} BFD packets from lb1 captured",
        rows.len()
    );
    let upr: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "0x03").collect();
    assert!(!upr.is_empty(), "no Up packet decoded: {:?}", &rows[..3]);
    for r in &rows {
        assert_eq!(r[0], "1", "version: {r:?}");
        assert_eq!(r[7], "255", "TTL: {r:?}");
        assert_eq!(r[8], "3784", "dst port: {r:?}");
        let sport: u32 = r[9].parse().expect("port");
        assert!((49152..=65535).contains(&sport), "src port: {r:?}");
        assert_ne!(r[2], "0x00000000", "my discriminator: {r:?}");
    }
    let last = upr.last().expect("up");
    assert_ne!(last[3], "0x00000000", "your discriminator: {last:?}");
    assert_eq!(last[4], "10000", "{last:?}");
    assert_eq!(last[5], "10000", "{last:?}");
    assert_eq!(last[6], "3", "{last:?}");
    let warnings = tshark_fields(
        &file,
        &format!("ip.src == {lb1_ip} && bfd && _ws.expert.severity >= warning"),
        &["frame.number"],
        &[],
    );
    assert!(
        warnings.is_empty(),
        "tshark warnings on {} packets",
        warnings.len()
    );

    // bfdd killed: the track fails (priority 150 - 60 = 90); bfdd back: recovers.
    let t = std::time::Instant::now();
    if let Some(p) = frr.bfdd.take() {
        let _ = p.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = p.wait_timeout(Duration::from_secs(5));
    }
    assert!(
        wait_until(Duration::from_secs(5), ms(5), || track(&topo)
            == Some((90, false))),
        "track still healthy after bfdd was killed: {:?}\n{}",
        vipd_status(&topo, "lb1"),
        lb1.log()
    );
    println!(
        "measure: bfdd SIGKILL -> vipd track failing after {:.0} ms (status polling included)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    frr.bfdd = Some(start_bfdd(&topo, "gw", &frr.dir));
    expect_recovery(&frr, &topo, "after bfdd restart");

    // gw's link cut: both sides go Down; restored: both Up again.
    topo.cut_link("gw");
    assert!(
        wait_until(Duration::from_secs(5), ms(10), || track(&topo)
            == Some((90, false))),
        "track healthy with gw cut off: {:?}",
        vipd_status(&topo, "lb1")
    );
    assert!(
        wait_until(Duration::from_secs(5), ms(50), || {
            frr.status(&topo, "gw").as_deref() == Some("down")
        }),
        "bfdd still up with its link cut: {}",
        frr.peers(&topo, "gw")
    );
    topo.restore_link("gw");
    expect_recovery(&frr, &topo, "after the link came back");
    // One log line per state change, with FRR's diagnostic visible.
    let log = lb1.log();
    assert!(
        log.contains("BFD session to ") && log.contains("Up -> Down"),
        "{log}"
    );
    assert!(lb1.proc().is_running() && lb2.proc().is_running());
    drop(frr.zebra);
}
