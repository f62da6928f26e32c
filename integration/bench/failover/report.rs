//! RFC bounds, statistics, the outage table and the `--records` files for plot.py.

#[allow(unused_imports)]
use super::*;

/// Skew_Time (RFC 5798 §6.1), from the daemon's own arithmetic.
pub fn rfc_skew(iv: Duration, prio: u8) -> Duration {
    harness::timers::skew(prio, iv)
}

/// Master_Down_Interval (RFC 5798 §6.1), from the daemon's own arithmetic.
pub fn rfc_master_down(iv: Duration, prio: u8) -> Duration {
    harness::timers::mdi(prio, iv)
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    harness::bench::median_min_max(v).map_or(f64::NAN, |(m, ..)| m)
}

pub fn goal(s: Scenario, iv: Duration) -> &'static str {
    match (s, iv.as_millis()) {
        (Scenario::Death, 10) => "median < 60 ms",
        (Scenario::Graceful, _) => "< 5 ms",
        _ => "",
    }
}

pub fn print_table(plan: &Plan, res: &Results, failures: &[String]) {
    println!("\n== client-side outage (probe every 2 ms; outage = longest gap without a reply around the event) ==");
    println!(
        "{:<15} {:>8} {:<11} {:>3} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}  goal",
        "scenario",
        "interval",
        "agent",
        "n",
        "median",
        "min",
        "max",
        "lost med",
        "ratio",
        "RFC bound"
    );
    for s in Scenario::ALL {
        if !plan.scenarios.contains(&s) {
            continue;
        }
        for iv in &plan.intervals {
            let med_of = |ag: Ag| {
                res.get(&(s, *iv, ag))
                    .map(|v| median(&v.iter().map(|x| fms(x.outage)).collect::<Vec<_>>()))
            };
            for ag in &plan.agents {
                let Some(v) = res.get(&(s, *iv, *ag)) else {
                    println!(
                        "{:<15} {:>8} {:<11} {:>3} {:>9}",
                        s.name(),
                        interval_label(*iv),
                        ag.name(),
                        0,
                        "failed"
                    );
                    continue;
                };
                let o: Vec<f64> = v.iter().map(|x| fms(x.outage)).collect();
                let lost: Vec<f64> = v.iter().map(|x| x.lost as f64).collect();
                let min = o.iter().copied().fold(f64::INFINITY, f64::min);
                let max = o.iter().copied().fold(0.0, f64::max);
                let vipd_like = !ag.keepalived();
                let ratio = match (vipd_like, med_of(*ag), med_of(ag.reference())) {
                    (true, Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
                    (true, Some(a), Some(_)) if a > 0.0 => "inf".into(),
                    (true, Some(_), Some(_)) => "0/0".into(),
                    _ => String::new(),
                };
                let bound = match s {
                    Scenario::Death => format!("{:.1} ms", fms(rfc_master_down(*iv, PRIO_LB2))),
                    Scenario::Graceful => format!("{:.1} ms", fms(rfc_skew(*iv, PRIO_LB2))),
                    _ => "-".into(),
                };
                let g = match ag {
                    Ag::Vipd => goal(s, *iv),
                    Ag::VipdBfd10 if s == Scenario::Death => "BFD 10ms x3: median < 40 ms",
                    Ag::VipdBfd3 if s == Scenario::Death => "BFD 3ms x3: median < 20 ms",
                    _ => "",
                };
                let bfd_goal = match ag {
                    Ag::VipdBfd10 => Some(40.0),
                    Ag::VipdBfd3 => Some(20.0),
                    _ => None,
                };
                let verdict = match (g, s) {
                    ("", _) => String::new(),
                    (g, Scenario::Death) if bfd_goal.is_some() => format!(
                        "{g}: {}",
                        if bfd_goal.is_some_and(|b| median(&o) < b) {
                            "met"
                        } else {
                            "NOT met"
                        }
                    ),
                    (g, Scenario::Death) => {
                        format!("{g}: {}", if median(&o) < 60.0 { "met" } else { "NOT met" })
                    }
                    (g, _) => format!("{g}: {}", if median(&o) < 5.0 { "met" } else { "NOT met" }),
                };
                println!(
                    "{:<15} {:>8} {:<11} {:>3} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>7} {:>11}  {}",
                    s.name(),
                    interval_label(*iv),
                    ag.name(),
                    v.len(),
                    median(&o),
                    min,
                    max,
                    median(&lost),
                    ratio,
                    bound,
                    verdict
                );
            }
        }
    }
    println!("(times in ms; ratio = vipd median / keepalived median (vipd-vmac: / keepalived-vmac); RFC bound: Master_Down_Interval = 3 x interval + (256-100)/256 x interval for master death, Skew_Time for graceful stop)");
    println!("maintenance, keepalived: no drain command; the nearest equivalent used is a track_file with weight -100 set to 1 (priority 150 -> 50, no reload)");
    if !failures.is_empty() {
        println!("\nFAILED cells:");
        for f in failures {
            println!("  {f}");
        }
    }
}

/// Writes every sample's probe trace as `SCENARIO-INTERVAL-AGENT-runN.jsonl` and the
/// outage table as `summary.json` into `dir`; returns the number of traces.
pub fn write_records(dir: &std::path::Path, res: &Results) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    let mut summary = Vec::new();
    for ((s, iv, ag), samples) in res {
        for (k, x) in samples.iter().enumerate() {
            let head = serde_json::json!({
                "scenario": s.slug(),
                "scenario_name": s.name(),
                "interval": interval_label(*iv),
                "agent": ag.name(),
                "run": k + 1,
                "outage_len_ms": fms(x.outage),
                "lost": x.lost,
                "note": x.note,
            });
            if let Some(t) = &x.trace {
                let name = format!(
                    "{}-{}-{}-run{}.jsonl",
                    s.slug(),
                    interval_label(*iv),
                    ag.name(),
                    k + 1
                );
                std::fs::write(dir.join(name), t.to_jsonl(&head))?;
                n += 1;
            }
            summary.push(head);
        }
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Array(summary))
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), text + "\n")?;
    Ok(n)
}
