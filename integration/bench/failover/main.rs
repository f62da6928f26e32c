//! The failover scenario runner: vipd against keepalived 2.2.7, same topology, same
//! priorities, same intervals, measured from the client's side (a UDP probe every 2 ms to
//! the VIP). Not a micro-benchmark: it builds namespaces, starts real agents, breaks things
//! and prints medians with min and max over the runs, beside keepalived.
//!
//! Run it with `sudo integration/bench/run.sh [--quick] [--runs N] [--idle-secs S] ...`
//! (which builds and runs the example `failover-scenarios` with ARGS);
//! `integration/bench/README.md` explains the scenarios and how to read the table. Needs
//! root (network namespaces).
//!
//! ```text
//!   main.rs       command line, the plan, the loop over (interval, agent) cells
//!   setup.rs      agent configurations and start-up
//!   cell.rs       one (agent, interval) cell: a LAN and the scenarios, once per run
//!   measure.rs    one measured event under a probe
//!   report.rs     RFC bounds, statistics, the outage table, --records for plot.py
//!   resources.rs  RSS / idle CPU;  scale.rs  100 instances, 1,000 VIPs
//! ```
//!
//!
//! ```text
//!   per (agent, interval): one topology (sw + lb1 + lb2 + client), lb1 priority 150,
//!   lb2 priority 100, preempt on, VIP 192.0.2.100/24, responders on lb1 and lb2
//!   per run:  death -> failback -> graceful (+ unmeasured return) -> partition heal
//!             -> maintenance (+ unmeasured off)
//!   each measured scenario: fresh probe, 300 ms baseline, event, wait for the end state,
//!   300 ms tail, outage = ProbeReport::outage_around(event, slack)
//! ```

#[path = "../../../tests/harness/mod.rs"]
#[allow(unreachable_pub, missing_docs)]
mod harness;

mod cell;
mod measure;
mod report;
mod resources;
mod scale;
mod setup;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use harness::{
    keepalived_conf, mono_now, wait_until, Agent, AgentKind, KeepalivedInstance, Topology,
    TopologyOpts, VipdConfig, VipdInstance,
};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const PRIO_LB1: u8 = 150;
const PRIO_LB2: u8 = 100;
const PROBE_EVERY: Duration = Duration::from_millis(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The vipctl binary (`$VIPCTL_BIN`, else next to this example's directory).
fn vipctl_bin() -> String {
    harness::crate_bin("vipctl", "VIPCTL_BIN", None)
        .to_string_lossy()
        .into_owned()
}

fn fms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

use cell::*;
use measure::*;
use report::*;
use resources::*;
use scale::*;
use setup::*;

/// Failover benchmark, vipd vs keepalived (run as root via integration/bench/run.sh).
#[derive(Parser, Debug)]
#[command(name = "failover")]
struct Args {
    /// Runs per (scenario, interval, agent).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Smoke run: 1 run, intervals 100ms and 10ms, 5 s idle windows, a smaller scale test
    /// (explicit --runs / --intervals / --idle-secs still win).
    #[arg(long)]
    quick: bool,
    /// Length of the idle window for the CPU figures, seconds.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Advert intervals, comma-separated (1s, 100ms, 10ms).
    #[arg(long, value_delimiter = ',')]
    intervals: Option<Vec<String>>,
    /// Scenarios, comma-separated: death, graceful, failback, partition, maintenance.
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Agents, comma-separated: vipd, keepalived, vipd-bfd10, vipd-bfd3 (vipd with unicast
    /// peers and `[instance.bfd]` at 10 ms x 3 / 3 ms x 3).
    #[arg(long, value_delimiter = ',', default_value = "vipd,keepalived")]
    agents: Vec<String>,
    /// Skip the one-instance RSS/CPU figures.
    #[arg(long)]
    no_resources: bool,
    /// Skip the 100-instance / 1,000-VIP figures.
    #[arg(long)]
    no_scale: bool,
    /// Write what the client saw in every measured event (JSON lines) and the outage
    /// table (summary.json) to this directory, for integration/bench/plot.py.
    #[arg(long)]
    records: Option<PathBuf>,
    /// Passed by `cargo bench` to bench binaries (this runner was one); still accepted.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Death,
    Graceful,
    Failback,
    Partition,
    Maintenance,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Death,
        Scenario::Graceful,
        Scenario::Failback,
        Scenario::Partition,
        Scenario::Maintenance,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Death => "master death",
            Scenario::Graceful => "graceful stop",
            Scenario::Failback => "failback",
            Scenario::Partition => "partition heal",
            Scenario::Maintenance => "maintenance",
        }
    }

    /// The scenario's command-line name (file names of `--records`).
    fn slug(self) -> &'static str {
        match self {
            Scenario::Death => "death",
            Scenario::Graceful => "graceful",
            Scenario::Failback => "failback",
            Scenario::Partition => "partition",
            Scenario::Maintenance => "maintenance",
        }
    }

    fn parse(s: &str) -> Option<Scenario> {
        match s.trim() {
            "death" => Some(Scenario::Death),
            "graceful" => Some(Scenario::Graceful),
            "failback" => Some(Scenario::Failback),
            "partition" => Some(Scenario::Partition),
            "maintenance" => Some(Scenario::Maintenance),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ag {
    Vipd,
    /// vipd with unicast peers and `[instance.bfd]` at 10 ms x 3.
    VipdBfd10,
    /// vipd with unicast peers and `[instance.bfd]` at 3 ms x 3.
    VipdBfd3,
    Keepalived,
    /// vipd with `virtual-mac = true` (RFC 5798 §7.3).
    VipdVmac,
    /// keepalived with `use_vmac`.
    KeepalivedVmac,
}

impl Ag {
    fn name(self) -> &'static str {
        match self {
            Ag::Vipd => "vipd",
            Ag::VipdBfd10 => "vipd-bfd10",
            Ag::VipdBfd3 => "vipd-bfd3",
            Ag::Keepalived => "keepalived",
            Ag::VipdVmac => "vipd-vmac",
            Ag::KeepalivedVmac => "keepalived-vmac",
        }
    }

    /// Virtual MAC mode: the client's neighbour entry holds the virtual router MAC.
    fn vmac(self) -> bool {
        matches!(self, Ag::VipdVmac | Ag::KeepalivedVmac)
    }

    /// keepalived, with or without `use_vmac`.
    fn keepalived(self) -> bool {
        matches!(self, Ag::Keepalived | Ag::KeepalivedVmac)
    }

    /// The keepalived agent to compare with (the ratio column).
    fn reference(self) -> Ag {
        if self.vmac() {
            Ag::KeepalivedVmac
        } else {
            Ag::Keepalived
        }
    }

    /// The BFD interval of a BFD agent.
    fn bfd(self) -> Option<Duration> {
        match self {
            Ag::VipdBfd10 => Some(ms(10)),
            Ag::VipdBfd3 => Some(ms(3)),
            Ag::Vipd | Ag::Keepalived | Ag::VipdVmac | Ag::KeepalivedVmac => None,
        }
    }

    fn kind(self) -> AgentKind {
        match self {
            Ag::Vipd | Ag::VipdBfd10 | Ag::VipdBfd3 | Ag::VipdVmac => AgentKind::vipd(),
            Ag::Keepalived | Ag::KeepalivedVmac => AgentKind::Keepalived,
        }
    }
}

fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix("ms") {
        n.parse().ok().map(Duration::from_millis)
    } else if let Some(n) = s.strip_suffix('s') {
        n.parse::<f64>().ok().map(Duration::from_secs_f64)
    } else {
        None
    }
}

fn interval_label(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

struct Plan {
    runs: usize,
    idle: Duration,
    intervals: Vec<Duration>,
    scenarios: Vec<Scenario>,
    agents: Vec<Ag>,
    resources: bool,
    scale: bool,
    scale_instances: (usize, usize),
}

fn plan(a: &Args) -> Result<Plan, String> {
    let intervals = match &a.intervals {
        Some(v) => v
            .iter()
            .map(|s| parse_interval(s).ok_or(format!("bad interval {s:?}")))
            .collect::<Result<Vec<_>, _>>()?,
        None if a.quick => vec![ms(100), ms(10)],
        None => vec![ms(1000), ms(100), ms(10)],
    };
    for iv in &intervals {
        if iv.as_millis() < 10 || iv.as_millis() % 10 != 0 {
            return Err(format!("interval {iv:?}: must be a multiple of 10 ms"));
        }
    }
    let scenarios = match &a.scenarios {
        Some(v) => v
            .iter()
            .map(|s| Scenario::parse(s).ok_or(format!("unknown scenario {s:?}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Scenario::ALL.to_vec(),
    };
    let agents = a
        .agents
        .iter()
        .map(|s| match s.trim() {
            "vipd" => Ok(Ag::Vipd),
            "vipd-bfd10" => Ok(Ag::VipdBfd10),
            "vipd-bfd3" => Ok(Ag::VipdBfd3),
            "keepalived" => Ok(Ag::Keepalived),
            "vipd-vmac" => Ok(Ag::VipdVmac),
            "keepalived-vmac" => Ok(Ag::KeepalivedVmac),
            o => Err(format!("unknown agent {o:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let runs = if a.quick && a.runs == 5 { 1 } else { a.runs };
    let idle = Duration::from_secs(a.idle_secs.unwrap_or(if a.quick { 5 } else { 60 }));
    Ok(Plan {
        runs: runs.max(1),
        idle,
        intervals,
        scenarios,
        agents,
        resources: !a.no_resources,
        scale: !a.no_scale,
        scale_instances: (70, 30),
    })
}

fn main() {
    let args = Args::parse();
    let plan = plan(&args).unwrap_or_else(|e| harness::bench::usage_error("failover", &e));
    let header = format!(
        "failover benchmark: runs {}, intervals {:?}, scenarios {:?}, agents {:?}, idle window {:?}",
        plan.runs,
        plan.intervals.iter().map(|d| interval_label(*d)).collect::<Vec<_>>(),
        plan.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        plan.agents.iter().map(|a| a.name()).collect::<Vec<_>>(),
        plan.idle
    );
    let Some(started) = harness::bench::start("failover", &header) else {
        return;
    };
    let mut res: Results = BTreeMap::new();
    let mut failures = Vec::new();
    for iv in &plan.intervals {
        for ag in &plan.agents {
            println!("\n## {} at {}", ag.name(), interval_label(*iv));
            if let Err(e) = harness::bench::guarded(|| run_cell(&plan, *ag, *iv, &mut res)) {
                println!("  FAILED: {e}");
                failures.push(format!(
                    "{} at {}: {}",
                    ag.name(),
                    interval_label(*iv),
                    e.lines().next().unwrap_or("")
                ));
            }
        }
    }
    print_table(&plan, &res, &failures);
    if let Some(dir) = &args.records {
        match write_records(dir, &res) {
            Ok(n) => println!(
                "\nrecords: {n} probe traces and summary.json in {}",
                dir.display()
            ),
            Err(e) => println!("\nrecords: cannot write to {}: {e}", dir.display()),
        }
    }
    if plan.resources {
        println!(
            "\n== resources, one instance (RSS from VmRSS; CPU = utime+stime over a {:?} idle window; keepalived = parent + VRRP child) ==",
            plan.idle
        );
        resources(&plan);
    }
    if plan.scale && plan.agents.contains(&Ag::Vipd) {
        println!("\n== scale ==");
        if let Err(e) = harness::bench::guarded(|| scale(&plan)) {
            println!("  FAILED: {e}");
        }
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
}
