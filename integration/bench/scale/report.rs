//! The results table: per scenario, each figure's median (min..max) over the runs for
//! every agent, and the ratio vipd / keepalived.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::harness::bench::median_min_max;
use super::{Ag, Sample, Scenario, Takeover};

fn cell(v: &[f64], unit: &str) -> String {
    match median_min_max(v) {
        Some((m, lo, hi)) => format!("{m:>8.2} {unit} ({lo:.2}..{hi:.2})"),
        None => format!("{:>8} {unit}", "-"),
    }
}

fn ratio(ours: &[f64], theirs: &[f64]) -> String {
    match (median_min_max(ours), median_min_max(theirs)) {
        (Some((a, ..)), Some((b, ..))) if b > 0.0 => format!("x{:.2}", a / b),
        _ => "-".to_string(),
    }
}

pub(super) type Results = BTreeMap<(Scenario, Ag), Vec<Sample>>;

/// The takeover figures (milliseconds), then the idle ones with their unit.
type TakeoverFigure = (&'static str, fn(&Takeover) -> f64);
type IdleFigure = (&'static str, &'static str, fn(&Sample) -> f64);

const TAKEOVER_FIGURES: [TakeoverFigure; 4] = [
    ("decision -> all VIPs added+announced", |t| t.all_ms),
    ("decision -> first VIP of last instance", |t| {
        t.first_of_last_ms
    }),
    ("per instance: own decision -> its last VIP", |t| {
        t.per_instance_ms
    }),
    ("spread of decisions (old master's stop)", |t| t.spread_ms),
];

const IDLE_FIGURES: [IdleFigure; 6] = [
    ("idle CPU master", "%", |s| s.master.cpu_pct),
    ("idle CPU backup", "%", |s| s.backup.cpu_pct),
    ("wake-ups/s master", "/s", |s| s.master.wakeups),
    ("wake-ups/s backup", "/s", |s| s.backup.wakeups),
    ("RSS master", "MiB", |s| s.master.rss_mib),
    ("RSS backup", "MiB", |s| s.backup.rss_mib),
];

fn figures(samples: &[Sample]) -> Vec<(&'static str, &'static str, Vec<f64>)> {
    let takeover = TAKEOVER_FIGURES.iter().map(|(label, f)| {
        let v = samples.iter().filter_map(|s| s.takeover.as_ref().map(f));
        (*label, "ms", v.collect())
    });
    // The floor's samples have no idle figures.
    let measured = || samples.iter().filter(|s| s.floor_ms.is_none());
    let idle = IDLE_FIGURES
        .iter()
        .map(|(label, unit, f)| (*label, *unit, measured().map(f).collect()));
    let floor = (
        "kernel floor: every VIP added (no agent)",
        "ms",
        samples.iter().filter_map(|s| s.floor_ms).collect(),
    );
    takeover.chain(idle).chain([floor]).collect()
}

pub(super) fn print_table(args_agents: &[Ag], scenarios: &[Scenario], res: &Results) {
    println!("\n== results: median (min..max) over the runs; ratio = vipd / keepalived ==");
    for sc in scenarios {
        println!("\n### {}", sc.label());
        let mut head = format!("{:<44}", "");
        for ag in args_agents {
            let _ = write!(head, " {:<28}", ag.name());
        }
        head.push_str(" ratio");
        println!("{head}");
        let empty = Vec::new();
        let per: Vec<Vec<(&str, &str, Vec<f64>)>> = args_agents
            .iter()
            .map(|ag| figures(res.get(&(*sc, *ag)).unwrap_or(&empty)))
            .collect();
        let k_idx = args_agents.iter().position(|a| *a == Ag::Keepalived);
        let v_idx = args_agents.iter().position(|a| *a == Ag::Vipd);
        for (row, (name, unit, _)) in per[0].iter().enumerate() {
            if per.iter().all(|p| p[row].2.is_empty()) {
                continue;
            }
            let mut line = format!("{name:<44}");
            for p in &per {
                let _ = write!(line, " {:<28}", cell(&p[row].2, unit));
            }
            if let (Some(k), Some(v)) = (k_idx, v_idx) {
                let _ = write!(line, " {}", ratio(&per[v][row].2, &per[k][row].2));
            }
            println!("{line}");
        }
        if let Some(v) = v_idx {
            let f = &per[v];
            let med = |row: usize| median_min_max(&f[row].2).map(|s| s.0);
            let mut goals = Vec::new();
            let k = k_idx.map(|k| &per[k]);
            let kmed = |row: usize| k.and_then(|k| median_min_max(&k[row].2)).map(|s| s.0);
            // The kernel's own time for the same adds, when the floor was measured.
            let floor = args_agents
                .iter()
                .position(|a| *a == Ag::Floor)
                .and_then(|i| median_min_max(&per[i][10].2))
                .map(|s| format!(" (kernel floor {:.2} ms)", s.0))
                .unwrap_or_default();
            let mark = |ok: Option<bool>| match ok {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            };
            if sc.routers == 75 && sc.vips == 10 {
                goals.push(format!(
                    "all 750 within 20 ms: {}{floor}",
                    mark(med(0).map(|m| m < 20.0))
                ));
                goals.push(format!(
                    "idle master < 1 %: {}",
                    mark(med(4).map(|m| m < 1.0))
                ));
                goals.push(format!(
                    "idle backup < 0.5 %: {}",
                    mark(med(5).map(|m| m < 0.5))
                ));
            }
            if sc.routers == 255 && sc.vips == 8 {
                goals.push(format!(
                    "all 2,040 within 50 ms: {}{floor}",
                    mark(med(0).map(|m| m < 50.0))
                ));
            }
            if sc.routers == 1 {
                goals.push(format!(
                    "CPU below keepalived, master: {}, backup: {}",
                    mark(med(4).zip(kmed(4)).map(|(a, b)| a < b)),
                    mark(med(5).zip(kmed(5)).map(|(a, b)| a < b))
                ));
                goals.push(format!(
                    "RSS one instance < 8 MiB: {}",
                    mark(med(8).map(|m| m < 8.0))
                ));
            }
            if !goals.is_empty() {
                println!("goals (vipd medians): {}", goals.join("; "));
            }
        }
    }
    // Memory per instance and per VIP (vipd): RSS(master) = base + I * routers + V * vips,
    // from the one-instance scenario and the two large ones.
    for ag in args_agents {
        let rss = |r: usize, v: usize| -> Option<f64> {
            let sc = scenarios.iter().find(|s| s.routers == r && s.vips == v)?;
            let s = res.get(&(*sc, *ag))?;
            median_min_max(&s.iter().map(|x| x.master.rss_mib).collect::<Vec<_>>()).map(|s| s.0)
        };
        if let (Some(r1), Some(ra), Some(rb)) = (rss(1, 1), rss(75, 10), rss(255, 8)) {
            // (ra - r1) = 74 I + 749 V ; (rb - r1) = 254 I + 2039 V
            let (a1, b1, c1) = (74.0, 749.0, ra - r1);
            let (a2, b2, c2) = (254.0, 2039.0, rb - r1);
            let det = a1 * b2 - a2 * b1;
            let i = (c1 * b2 - c2 * b1) / det;
            let v = (a1 * c2 - a2 * c1) / det;
            println!(
                "\n{} memory (master, medians): one instance {:.2} MiB; per instance {:.1} KiB, per VIP {:.2} KiB (solved from 1x1, 75x10, 255x8)",
                ag.name(),
                r1,
                i * 1024.0,
                v * 1024.0
            );
        }
    }
}
