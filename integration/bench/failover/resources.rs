//! RSS and idle CPU of one instance, per agent and interval.

#[allow(unused_imports)]
use super::*;

pub struct Usage {
    pub procs: usize,
    pub rss_kib: u64,
    pub cpu_ms: f64,
}

/// CPU over `idle` and RSS at its end, summed over the agent's process family.
pub fn idle_usage(pids: &[Vec<u32>], idle: Duration) -> Vec<Usage> {
    let t0: Vec<u64> = pids
        .iter()
        .map(|fam| {
            fam.iter()
                .filter_map(|p| harness::proc_usage(*p))
                .map(|u| u.0)
                .sum()
        })
        .collect();
    std::thread::sleep(idle);
    pids.iter()
        .zip(t0)
        .map(|(fam, t0)| {
            let u: Vec<(u64, u64)> = fam.iter().filter_map(|p| harness::proc_usage(*p)).collect();
            let ticks: u64 = u.iter().map(|x| x.0).sum();
            Usage {
                procs: u.len(),
                rss_kib: u.iter().map(|x| x.1).sum(),
                cpu_ms: ticks.saturating_sub(t0) as f64 / harness::clk_tck() * 1000.0,
            }
        })
        .collect()
}

pub fn resources(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for iv in [ms(1000), ms(10)] {
        for ag in &plan.agents {
            let r = harness::bench::guarded(|| {
                let topo = Topology::new(TopologyOpts::default());
                let lb1 = start(&topo, *ag, "lb1", PRIO_LB1, iv);
                let lb2 = start(&topo, *ag, "lb2", PRIO_LB2, iv);
                let ok = wait_until(Duration::from_secs(15), ms(50), || {
                    topo.vip_holders(vip()) == ["lb1"]
                });
                if !ok {
                    return Err(format!("lb1 never became master\n{}", lb1.log()));
                }
                std::thread::sleep(Duration::from_secs(2));
                let fams = vec![
                    harness::process_family(lb1.proc().pid()),
                    harness::process_family(lb2.proc().pid()),
                ];
                Ok(idle_usage(&fams, plan.idle))
            });
            let line = match r {
                Ok(u) => {
                    let secs = plan.idle.as_secs_f64();
                    let f = |u: &Usage| {
                        format!(
                            "RSS {:>6.2} MiB ({} proc)  CPU {:>7.0} ms / {:.0} s = {:>5.2} %",
                            u.rss_kib as f64 / 1024.0,
                            u.procs,
                            u.cpu_ms,
                            secs,
                            u.cpu_ms / 10.0 / secs
                        )
                    };
                    let goal = if *ag == Ag::Vipd {
                        let m = u[0].rss_kib.max(u[1].rss_kib) as f64 / 1024.0;
                        format!(
                            "   goal RSS < 8 MiB: {}",
                            if m < 8.0 { "met" } else { "NOT met" }
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "{:<10} {:>6}  master: {}\n{:<10} {:>6}  backup: {}{goal}",
                        ag.name(),
                        interval_label(iv),
                        f(&u[0]),
                        "",
                        "",
                        f(&u[1])
                    )
                }
                Err(e) => format!("{:<10} {:>6}  FAILED: {e}", ag.name(), interval_label(iv)),
            };
            println!("{line}");
            lines.push(line);
        }
    }
    lines
}
