//! RSS and idle CPU of one instance, per agent and interval.

#[allow(unused_imports)]
use super::*;

/// (utime + stime) in clock ticks and VmRSS in KiB of one process.
pub(crate) fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

/// `pid` and its direct children (keepalived: parent + VRRP child).
pub(crate) fn family(pid: u32) -> Vec<u32> {
    let mut v = vec![pid];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 1..].to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if ppid == Some(pid) {
                v.push(p);
            }
        }
    }
    v
}

pub(crate) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub(crate) struct Usage {
    pub(crate) procs: usize,
    pub(crate) rss_kib: u64,
    pub(crate) cpu_ms: f64,
}

/// CPU over `idle` and RSS at its end, summed over the agent's process family.
pub(crate) fn idle_usage(pids: &[Vec<u32>], idle: Duration) -> Vec<Usage> {
    let t0: Vec<u64> = pids
        .iter()
        .map(|fam| fam.iter().filter_map(|p| proc_usage(*p)).map(|u| u.0).sum())
        .collect();
    std::thread::sleep(idle);
    pids.iter()
        .zip(t0)
        .map(|(fam, t0)| {
            let u: Vec<(u64, u64)> = fam.iter().filter_map(|p| proc_usage(*p)).collect();
            let ticks: u64 = u.iter().map(|x| x.0).sum();
            Usage {
                procs: u.len(),
                rss_kib: u.iter().map(|x| x.1).sum(),
                cpu_ms: ticks.saturating_sub(t0) as f64 / clk_tck() * 1000.0,
            }
        })
        .collect()
}

pub(crate) fn resources(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for iv in [ms(1000), ms(10)] {
        for ag in &plan.agents {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
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
                let fams = vec![family(lb1.proc().pid()), family(lb2.proc().pid())];
                Ok(idle_usage(&fams, plan.idle))
            }));
            let line = match r {
                Ok(Ok(u)) => {
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
                Ok(Err(e)) => format!("{:<10} {:>6}  FAILED: {e}", ag.name(), interval_label(iv)),
                Err(_) => format!(
                    "{:<10} {:>6}  FAILED (panic, see above)",
                    ag.name(),
                    interval_label(iv)
                ),
            };
            println!("{line}");
            lines.push(line);
        }
    }
    lines
}
