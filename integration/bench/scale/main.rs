//! Scale benchmark (issue 14): many virtual routers with many VIPs on one interface, vipd
//! beside keepalived in the same run, measured on the wire and from `/proc`.
//!
//! Run it with `integration/bench/scale.sh [--runs N] [--idle-secs S] [--scenarios ...]`
//! (which builds the release binaries and runs the example `scale-scenarios` with
//! `VIPD_BIN` set). Needs root (network namespaces).
//!
//! ```text
//!   per run, per scenario, per agent: a fresh topology (sw + lb1 + lb2 + client),
//!   lb1 priority 150, lb2 priority 100, N instances on eth0, VIPs 198.18.K.J/32
//!   (RFC 2544 benchmarking range, inside the namespaces only)
//!   1. wait until lb1 holds every VIP and lb2 none, settle 6 s
//!   2. idle window: utime+stime (/proc/PID/stat) and voluntary context switches of every
//!      thread (/proc/PID/task/*/status) of master and backup; RSS (VmRSS) at its end
//!   3. takeover scenarios: capture on the client (tcpdump -w), SIGTERM lb1 (graceful stop:
//!      priority-0 adverts), after 1 s (no observer runs during the takeover) wait until
//!      lb2 holds every VIP and lb1 none
//!   4. from the capture: decision(K) = lb1's priority-0 advert for VRID K + Skew_Time of
//!      priority 100 (RFC 5798 §6.4.2: a backup that hears priority 0 takes over after
//!      Skew_Time); each VIP's first gratuitous ARP from lb2's MAC
//! ```
//!
//! Figures per takeover: "all" = last VIP's first announcement - first decision;
//! "first of last" = the latest of every instance's first announcement - first decision;
//! "per instance" = max over instances of (its last VIP's first announcement - its decision).
//! Both agents are measured the same way (the capture), so the ratio compares like with like.
//!
//! The "agent" `floor` (in the default list) runs no agent: in a fresh topology it adds
//! every VIP of the scenario to lb2's eth0 with one pipelined netlink stream
//! (`floor.rs`) and reports how long the kernel took: what no agent can beat here.

mod floor;
mod report;

#[path = "../../../tests/harness/mod.rs"]
#[allow(unreachable_pub, missing_docs)]
mod harness;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clap::Parser;
use harness::tcpdump::{read_pcap, TakeoverOnWire};
use harness::{
    keepalived_conf, tail, wait_until, Agent, AgentKind, KeepalivedInstance, Topology, VipdConfig,
    VipdInstance,
};
use report::{print_table, Results};

/// What `--scenarios` takes, and `--agents`.
const SCENARIO_SYNTAX: &str = "want ROUTERSxVIPS[@INTERVALms], e.g. 75x10 or 1x1@10ms";
const AGENTS: &str = "vipd, keepalived, vipd-base";

const PRIO_MASTER: u8 = 150;
const PRIO_BACKUP: u8 = 100;

/// Scale benchmark, vipd vs keepalived (run as root via integration/bench/scale.sh).
#[derive(Parser, Debug)]
#[command(name = "scale")]
struct Args {
    /// Runs per (scenario, agent).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Length of the idle window, seconds.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Scenarios, comma-separated: 75x10, 255x8, 1x1@10ms (routers x VIPs[@interval]).
    #[arg(long, value_delimiter = ',', default_value = "75x10,255x8,1x1@10ms")]
    scenarios: Vec<String>,
    /// Agents, comma-separated: vipd, keepalived, vipd-base (vipd from $VIPD_BASE_BIN,
    /// e.g. the previous main, to measure a change in the same run), floor (no agent: the
    /// kernel's own time to add every VIP, pipelined; takeover scenarios only).
    #[arg(long, value_delimiter = ',', default_value = "vipd,keepalived,floor")]
    agents: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Scenario {
    routers: usize,
    vips: usize,
    interval_ms: u64,
}

impl Scenario {
    fn parse(s: &str) -> Option<Scenario> {
        let (rv, iv) = match s.trim().split_once('@') {
            Some((rv, iv)) => (rv, iv.strip_suffix("ms")?.parse().ok()?),
            None => (s.trim(), 100),
        };
        let (r, v) = rv.split_once('x')?;
        let sc = Scenario {
            routers: r.parse().ok()?,
            vips: v.parse().ok()?,
            interval_ms: iv,
        };
        let ok = (1..=255).contains(&sc.routers)
            && (1..=254).contains(&sc.vips)
            && (10..=40_950).contains(&sc.interval_ms)
            && sc.interval_ms % 10 == 0;
        ok.then_some(sc)
    }

    fn label(&self) -> String {
        format!(
            "{} routers x {} VIPs at {} ms",
            self.routers, self.vips, self.interval_ms
        )
    }

    /// A takeover is measured when there are enough VIPs to make it interesting.
    fn takeover(&self) -> bool {
        self.routers * self.vips > 1
    }

    /// VIPs of instance `k` (1-based = its VRID): 198.18.k.1 .. 198.18.k.vips.
    fn vips_of(&self, k: usize) -> Vec<Ipv4Addr> {
        (1..=self.vips)
            .map(|j| Ipv4Addr::new(198, 18, k as u8, j as u8))
            .collect()
    }

    fn total(&self) -> usize {
        self.routers * self.vips
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ag {
    Vipd,
    VipdBase,
    Keepalived,
    Floor,
}

impl Ag {
    fn parse(s: &str) -> Option<Ag> {
        match s.trim() {
            "vipd" => Some(Ag::Vipd),
            "vipd-base" => Some(Ag::VipdBase),
            "keepalived" => Some(Ag::Keepalived),
            "floor" => Some(Ag::Floor),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ag::Vipd => "vipd",
            Ag::VipdBase => "vipd-base",
            Ag::Keepalived => "keepalived",
            Ag::Floor => "kernel floor",
        }
    }

    fn kind(self) -> AgentKind {
        match self {
            Ag::Vipd => AgentKind::vipd(),
            Ag::VipdBase => AgentKind::Vipd {
                bin: std::env::var("VIPD_BASE_BIN")
                    .expect("agent vipd-base needs VIPD_BASE_BIN")
                    .into(),
            },
            Ag::Keepalived | Ag::Floor => AgentKind::Keepalived,
        }
    }
}

// ---- configurations ------------------------------------------------------------------------

fn vipd_conf(topo: &Topology, host: &str, prio: u8, sc: &Scenario) -> String {
    let mut c = VipdConfig::new(topo, host).without_metrics();
    for k in 1..=sc.routers {
        let vips: Vec<String> = sc.vips_of(k).iter().map(|v| format!("{v}/32")).collect();
        let vips: Vec<&str> = vips.iter().map(String::as_str).collect();
        let vrid = u8::try_from(k).expect("VRIDs are 1..=255");
        c = c.instance(
            VipdInstance::new(&format!("r{k:03}"), vrid, prio, &vips)
                .interval(&format!("{}ms", sc.interval_ms)),
        );
    }
    c.render()
}

fn keepalived_cfg(prio: u8, sc: &Scenario) -> String {
    let insts: Vec<KeepalivedInstance> = (1..=sc.routers)
        .map(|k| {
            let mut i = KeepalivedInstance::new(&format!("r{k:03}"), k as u8, prio)
                .advert_int(Duration::from_millis(sc.interval_ms));
            for v in sc.vips_of(k) {
                i = i.vip(&format!("{v}/32"));
            }
            i
        })
        .collect();
    keepalived_conf(&insts)
}

fn start(topo: &Topology, ag: Ag, host: &str, prio: u8, sc: &Scenario) -> Agent {
    let conf = match ag {
        Ag::Vipd | Ag::VipdBase => vipd_conf(topo, host, prio, sc),
        Ag::Keepalived | Ag::Floor => keepalived_cfg(prio, sc),
    };
    topo.start_agent(host, ag.kind(), &conf)
}

/// Addresses in 198.18.0.0/15 on `host`.
fn bench_vips(topo: &Topology, host: &str) -> usize {
    topo.addresses(host)
        .iter()
        .filter(|(_, a)| matches!(a, IpAddr::V4(a) if a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18))
        .count()
}

// ---- /proc --------------------------------------------------------------------------------

/// utime+stime (ticks, all threads), voluntary context switches summed over every thread,
/// VmRSS (KiB) of one process.
fn proc_sample(pid: u32) -> Option<(u64, u64, u64)> {
    let (ticks, rss) = harness::proc_usage(pid)?;
    let mut csw = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        csw += s
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some((ticks, csw, rss))
}

fn family_sample(fam: &[u32]) -> (u64, u64, u64) {
    fam.iter()
        .filter_map(|p| proc_sample(*p))
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

#[derive(Debug, Clone, Copy, Default)]
struct Idle {
    /// % of one core.
    cpu_pct: f64,
    /// Voluntary context switches per second, all threads.
    wakeups: f64,
    rss_mib: f64,
}

fn idle(fams: &[Vec<u32>], window: Duration) -> Vec<Idle> {
    let t0: Vec<_> = fams.iter().map(|f| family_sample(f)).collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let secs = start.elapsed().as_secs_f64();
    fams.iter()
        .zip(t0)
        .map(|(f, a)| {
            let b = family_sample(f);
            Idle {
                cpu_pct: b.0.saturating_sub(a.0) as f64 / harness::clk_tck() / secs * 100.0,
                wakeups: b.1.saturating_sub(a.1) as f64 / secs,
                rss_mib: b.2 as f64 / 1024.0,
            }
        })
        .collect()
}

// ---- the capture ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Takeover {
    /// First decision -> every VIP's first announcement (ms).
    all_ms: f64,
    /// First decision -> the latest instance's first announcement (ms).
    first_of_last_ms: f64,
    /// Max over instances of (its last VIP's first announcement - its own decision) (ms).
    per_instance_ms: f64,
    /// Spread of the decisions (ms).
    spread_ms: f64,
    /// Announcements per VIP seen in the capture window (min over VIPs).
    min_announced: usize,
}

/// Parses `tcpdump -e -tt -n -r` text: lb1's priority-0 adverts and lb2's gratuitous ARPs.
fn analyse(text: &str, sc: &Scenario, old_ip: &str, new_mac: &str) -> Result<Takeover, String> {
    let TakeoverOnWire { zeros, garps } = TakeoverOnWire::parse(text, old_ip, new_mac);
    let prio0: BTreeMap<usize, f64> = zeros.iter().map(|(k, t)| (*k, t[0])).collect();
    let skew =
        harness::timers::skew(PRIO_BACKUP, Duration::from_millis(sc.interval_ms)).as_secs_f64();
    let mut first_decision = f64::INFINITY;
    let mut last_decision = f64::NEG_INFINITY;
    let mut all_done = f64::NEG_INFINITY;
    let mut latest_first = f64::NEG_INFINITY;
    let mut per_instance = f64::NEG_INFINITY;
    let mut min_announced = usize::MAX;
    for k in 1..=sc.routers {
        let Some(p0) = prio0.get(&k) else {
            return Err(format!(
                "no priority-0 advert from {old_ip} for VRID {k} in the capture ({} seen)",
                prio0.len()
            ));
        };
        let decision = p0 + skew;
        first_decision = first_decision.min(decision);
        last_decision = last_decision.max(decision);
        let mut firsts = Vec::new();
        for v in sc.vips_of(k) {
            // Only announcements after the old master stopped count (lb2 sent none before).
            let Some(t) = garps
                .get(&v)
                .and_then(|ts| ts.iter().copied().find(|t| *t >= *p0))
            else {
                let arps: Vec<&str> = text.lines().filter(|l| l.contains("ARP")).take(5).collect();
                return Err(format!(
                    "no gratuitous ARP for {v} from lb2 ({new_mac}) in the capture; ARP lines:\n{}",
                    arps.join("\n")
                ));
            };
            min_announced = min_announced.min(garps[&v].iter().filter(|t| **t >= *p0).count());
            firsts.push(t);
        }
        let first = firsts.iter().copied().fold(f64::INFINITY, f64::min);
        let last = firsts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        all_done = all_done.max(last);
        latest_first = latest_first.max(first);
        per_instance = per_instance.max(last - decision);
    }
    Ok(Takeover {
        all_ms: (all_done - first_decision) * 1000.0,
        first_of_last_ms: (latest_first - first_decision) * 1000.0,
        per_instance_ms: per_instance * 1000.0,
        spread_ms: (last_decision - first_decision) * 1000.0,
        min_announced,
    })
}

// ---- one run -------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Sample {
    master: Idle,
    backup: Idle,
    takeover: Option<Takeover>,
    /// Agent `floor`: the kernel's time to add every VIP (ms); nothing else is measured.
    floor_ms: Option<f64>,
}

/// Agent `floor`: a fresh topology, no agent; every VIP added to lb2's eth0 at once.
fn run_floor(sc: &Scenario) -> Result<Sample, String> {
    let topo = Topology::new(harness::TopologyOpts::default());
    let all: Vec<Ipv4Addr> = (1..=sc.routers).flat_map(|k| sc.vips_of(k)).collect();
    let took = floor::add_all(&topo.ns("lb2"), "eth0", &all)?;
    let held = bench_vips(&topo, "lb2");
    if held != all.len() {
        return Err(format!("lb2 holds {held} of {} after the adds", all.len()));
    }
    Ok(Sample {
        floor_ms: Some(took.as_secs_f64() * 1000.0),
        ..Sample::default()
    })
}

fn run_once(sc: &Scenario, ag: Ag, idle_window: Duration) -> Result<Sample, String> {
    if ag == Ag::Floor {
        return run_floor(sc);
    }
    let topo = Topology::new(harness::TopologyOpts::default());
    let lb1 = start(&topo, ag, "lb1", PRIO_MASTER, sc);
    // lb1 first: it is master before lb2 starts, so lb2 never holds a VIP.
    let want = sc.total();
    if !wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        bench_vips(&topo, "lb1") == want
    }) {
        return Err(format!(
            "lb1 never held all {want} VIPs ({} held)\n{}",
            bench_vips(&topo, "lb1"),
            tail(&lb1.log(), 20)
        ));
    }
    let lb2 = start(&topo, ag, "lb2", PRIO_BACKUP, sc);
    // Settle: lb2 has heard lb1, keepalived's second GARP batch (5 s) is over.
    std::thread::sleep(Duration::from_secs(6));
    if bench_vips(&topo, "lb2") != 0 || bench_vips(&topo, "lb1") != want {
        return Err(format!(
            "not settled: lb1 holds {}, lb2 holds {}\nlb2:\n{}",
            bench_vips(&topo, "lb1"),
            bench_vips(&topo, "lb2"),
            tail(&lb2.log(), 20)
        ));
    }
    let fams = vec![
        harness::process_family(lb1.proc().pid()),
        harness::process_family(lb2.proc().pid()),
    ];
    let u = idle(&fams, idle_window);
    let mut sample = Sample {
        master: u[0],
        backup: u[1],
        ..Sample::default()
    };
    if !sc.takeover() {
        return Ok(sample);
    }
    let pcap = topo.path("takeover.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let cap = topo.start_tcpdump(
        "client",
        &["-B", "65536", "-w", &pcap_s, "arp or ip proto 112"],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    lb1.proc()
        .signal(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| format!("SIGTERM lb1: {e}"))?;
    // Not a poll during the takeover: each one is an `ip addr` process listing thousands
    // of addresses in each namespace (measured: a fifth of both cores during a 255 x 8
    // takeover, which neither the floor nor a real pair pays). The capture times it.
    std::thread::sleep(Duration::from_millis(1000));
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        bench_vips(&topo, "lb2") == want && bench_vips(&topo, "lb1") == 0
    });
    // Room for the first round of every VIP (and a few more) to reach the capture.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = cap.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = cap.wait_timeout(Duration::from_secs(5));
    if !ok {
        return Err(format!(
            "after lb1's stop: lb2 holds {} of {want}, lb1 {}\nlb2:\n{}",
            bench_vips(&topo, "lb2"),
            bench_vips(&topo, "lb1"),
            tail(&lb2.log(), 20)
        ));
    }
    let t = analyse(
        &read_pcap(&pcap),
        sc,
        &topo.ip4("lb1").to_string(),
        &topo.mac("lb2"),
    )
    .map_err(|e| format!("{e}\ncapture: {}", cap.log()))?;
    sample.takeover = Some(t);
    Ok(sample)
}

fn main() {
    let args = Args::parse();
    let bad = |what: &str, word: &str, want: &str| -> ! {
        harness::bench::usage_error("scale", &format!("{what} {word:?} ({want})"))
    };
    let scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s).unwrap_or_else(|| bad("bad scenario", s, SCENARIO_SYNTAX)))
        .collect();
    let agents: Vec<Ag> = args
        .agents
        .iter()
        .map(|a| Ag::parse(a).unwrap_or_else(|| bad("unknown agent", a, AGENTS)))
        .collect();
    let header = format!(
        "scale benchmark: runs {}, idle window {} s, scenarios {:?}, agents {:?}",
        args.runs,
        args.idle_secs,
        scenarios.iter().map(|s| s.label()).collect::<Vec<_>>(),
        agents.iter().map(|a| a.name()).collect::<Vec<_>>()
    );
    let Some(started) = harness::bench::start("scale", &header) else {
        return;
    };
    let mut res: Results = BTreeMap::new();
    let window = Duration::from_secs(args.idle_secs);
    // Runs outermost and agents innermost: every agent sees the same machine load.
    for run in 1..=args.runs {
        for sc in &scenarios {
            for ag in &agents {
                if *ag == Ag::Floor && !sc.takeover() {
                    continue;
                }
                match harness::bench::guarded(|| run_once(sc, *ag, window)) {
                    Ok(s) if s.floor_ms.is_some() => {
                        println!(
                            "run {run} {:<32} {:<11} every VIP added in {:.1} ms (one pipelined netlink stream, no agent)",
                            sc.label(),
                            ag.name(),
                            s.floor_ms.unwrap_or_default()
                        );
                        res.entry((*sc, *ag)).or_default().push(s);
                    }
                    Ok(s) => {
                        let t = s
                            .takeover
                            .map(|t| {
                                format!(
                                    "  all {:.1} ms, first-of-last {:.1} ms, per-instance {:.1} ms, spread {:.1} ms, announced >= {}x",
                                    t.all_ms, t.first_of_last_ms, t.per_instance_ms, t.spread_ms, t.min_announced
                                )
                            })
                            .unwrap_or_default();
                        println!(
                            "run {run} {:<32} {:<11} idle CPU {:.2}/{:.2} %, wake-ups {:.0}/{:.0} /s, RSS {:.2}/{:.2} MiB (master/backup){t}",
                            sc.label(),
                            ag.name(),
                            s.master.cpu_pct,
                            s.backup.cpu_pct,
                            s.master.wakeups,
                            s.backup.wakeups,
                            s.master.rss_mib,
                            s.backup.rss_mib
                        );
                        res.entry((*sc, *ag)).or_default().push(s);
                    }
                    Err(e) => println!("run {run} {} {} FAILED: {e}", sc.label(), ag.name()),
                }
            }
        }
    }
    print_table(&agents, &scenarios, &res);
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
}
