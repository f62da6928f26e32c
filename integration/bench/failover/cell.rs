//! One (agent, interval) cell: a topology with lb1 and lb2, then every selected scenario
//! once per run: death, failback, graceful stop, partition heal, maintenance.

#[allow(unused_imports)]
use super::*;

pub type Results = BTreeMap<(Scenario, Duration, Ag), Vec<Sample>>;

pub struct Cell<'a> {
    pub topo: Topology,
    pub ag: Ag,
    pub iv: Duration,
    pub lb1: Agent,
    pub _lb2: Agent,
    pub plan: &'a Plan,
    /// The run in progress, from 0.
    pub run: usize,
}

impl Cell<'_> {
    pub fn wants(&self, s: Scenario) -> bool {
        self.plan.scenarios.contains(&s)
    }

    /// How long after the probe's baseline the master dies, in this run. The client's
    /// outage depends on where the death falls within the master's advert interval
    /// (from Master_Down_Interval − interval to Master_Down_Interval); left alone, the
    /// bench's own rhythm picks a similar phase every run, a different one for each agent.
    /// Runs step through the interval evenly instead (run k of n: k/n of an interval),
    /// so every agent is measured over the whole interval.
    pub fn death_phase(&self) -> Duration {
        let n = u32::try_from(self.plan.runs.max(1)).unwrap_or(u32::MAX);
        let k = u32::try_from(self.run).unwrap_or(0) % n;
        self.iv * k / n
    }

    pub fn mdi(&self) -> Duration {
        rfc_master_down(self.iv, PRIO_LB2)
    }

    /// A run: death -> failback -> graceful -> partition -> maintenance (selected ones).
    pub fn run_once(&mut self, out: &mut Results) -> Result<(), String> {
        let (ag, iv) = (self.ag, self.iv);
        let mut record = |s: Scenario, r: Sample| {
            println!(
                "    {:<15} {:>7.1} ms  lost {:>5}  ({})",
                s.name(),
                fms(r.outage),
                r.lost,
                r.note
            );
            out.entry((s, iv, ag)).or_default().push(r);
        };
        let long = self.mdi() + Duration::from_secs(15);

        if self.wants(Scenario::Death) || self.wants(Scenario::Failback) {
            settle_on_lb1(&self.topo, iv)?;
            if ag.bfd().is_some() {
                wait_bfd_up(&self.topo, "lb2")?;
            }
            let (topo, lb1) = (&self.topo, &self.lb1);
            let s = measure(
                topo,
                ms(1000),
                long,
                self.death_phase(),
                || {
                    // The host dies: off the LAN first (nothing it sends or answers arrives
                    // any more), then its agent is killed. Cutting first makes the event
                    // instantaneous for both agents (keepalived's crash procedure takes
                    // longer than one SIGKILL, and a crashed agent's VIP keeps answering).
                    topo.cut_link("lb1");
                    lb1.kill();
                    Ok(())
                },
                || client_on(topo, "lb2"),
            )?;
            if self.wants(Scenario::Death) {
                record(Scenario::Death, s);
            }
            // lb1 returns as after a reboot: its crashed agent's VIP is gone, the link comes
            // back, the agent starts and (preempt) takes the VIP back.
            std::thread::sleep((iv * 2).max(ms(300)));
            let _ = self.topo.exec(
                "lb1",
                &["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"],
            );
            let slack = self.mdi() + Duration::from_secs(5);
            let (topo, lb1) = (&self.topo, &mut self.lb1);
            let s = measure(
                topo,
                slack,
                long,
                Duration::ZERO,
                || {
                    topo.restore_link("lb1");
                    lb1.restart(topo);
                    Ok(())
                },
                || topo.vip_holders(vip()) == ["lb1"] && client_on(topo, "lb1"),
            )?;
            if self.wants(Scenario::Failback) {
                record(Scenario::Failback, s);
            }
        }

        if self.wants(Scenario::Graceful) {
            settle_on_lb1(&self.topo, iv)?;
            let (topo, lb1) = (&self.topo, &self.lb1);
            let s = measure(
                topo,
                ms(1000),
                long,
                Duration::ZERO,
                || {
                    let st = lb1.stop(Duration::from_secs(10));
                    if st.success() {
                        Ok(())
                    } else {
                        Err(format!("{} exited with {st} on SIGTERM", lb1.describe()))
                    }
                },
                || client_on(topo, "lb2") && !topo.holds_vip("lb1", vip()),
            )?;
            record(Scenario::Graceful, s);
            self.lb1.restart(&self.topo);
        }

        if self.wants(Scenario::Partition) {
            settle_on_lb1(&self.topo, iv)?;
            self.topo.partition_vrrp("lb1", "lb2");
            let split = wait_until(long, ms(50), || {
                self.topo.vip_holders(vip()) == ["lb1", "lb2"]
            });
            if !split {
                self.topo.heal();
                return Err(format!(
                    "no split brain under the VRRP partition (holders {:?})",
                    self.topo.vip_holders(vip())
                ));
            }
            // Both masters; let the announcements of the new one go out.
            std::thread::sleep((iv * 3).max(ms(500)));
            let on = who_client_uses(&self.topo);
            let topo = &mut self.topo;
            let probe = topo.start_probe(vip(), PROBE_EVERY);
            std::thread::sleep(ms(300));
            let event = mono_now();
            topo.heal();
            let t0 = Instant::now();
            let ok = wait_until(Duration::from_secs(90), ms(50), || {
                topo.vip_holders(vip()) == ["lb1"] && client_on(topo, "lb1")
            });
            let took = t0.elapsed();
            std::thread::sleep(ms(300));
            let rep = probe.finish();
            if !ok {
                return Err(format!(
                    "after heal the client never came back to lb1 within 90 s; {}",
                    rep.summary()
                ));
            }
            let found = rep.outage_around(event, iv * 2 + ms(500));
            let (outage, lost) = found
                .as_ref()
                .map(|o| (o.duration, o.lost))
                .unwrap_or((Duration::ZERO, 0));
            let trace = Some(Trace::new(rep, event, found.as_ref()));
            record(
                Scenario::Partition,
                Sample {
                    outage,
                    lost,
                    note: format!(
                        "client on {on} during the split, end state after {:.0} ms",
                        fms(took)
                    ),
                    trace,
                },
            );
        }

        if self.wants(Scenario::Maintenance) {
            settle_on_lb1(&self.topo, iv)?;
            let (topo, lb1, ag) = (&self.topo, &self.lb1, self.ag);
            let s = measure(
                topo,
                self.mdi() + ms(1000),
                long,
                Duration::ZERO,
                || maintenance(topo, lb1, ag, true),
                || client_on(topo, "lb2") && !topo.holds_vip("lb1", vip()),
            )?;
            record(Scenario::Maintenance, s);
            maintenance(&self.topo, &self.lb1, self.ag, false)?;
        }
        Ok(())
    }
}

pub fn maintenance(topo: &Topology, lb1: &Agent, ag: Ag, on: bool) -> Result<(), String> {
    match ag {
        Ag::Vipd | Ag::VipdBfd10 | Ag::VipdBfd3 | Ag::VipdVmac => {
            let sock = harness::vipd_socket(topo, "lb1");
            let sock = sock.to_string_lossy();
            let vipctl = vipctl_bin();
            let out = harness::run_cmd(
                &[
                    &vipctl,
                    "-s",
                    &sock,
                    "maintenance",
                    if on { "on" } else { "off" },
                    "web",
                ],
                None,
                Duration::from_secs(10),
            );
            if out.ok() {
                Ok(())
            } else {
                Err(format!(
                    "vipctl maintenance: {:?}: {}{}\nvipd log:\n{}",
                    out.status,
                    out.stdout,
                    out.stderr,
                    lb1.log()
                ))
            }
        }
        Ag::Keepalived | Ag::KeepalivedVmac => {
            std::fs::write(maint_file(topo, "lb1"), if on { "1\n" } else { "0\n" })
                .map_err(|e| format!("writing the track file: {e}"))
        }
    }
}

pub fn run_cell(plan: &Plan, ag: Ag, iv: Duration, out: &mut Results) -> Result<(), String> {
    let topo = Topology::new(TopologyOpts::default());
    let _r1 = topo.start_responder("lb1", vip());
    let _r2 = topo.start_responder("lb2", vip());
    if ag.vmac() {
        // What docs/operations.md asks of the parent in virtual MAC mode (keepalived sets
        // the same itself).
        for h in ["lb1", "lb2"] {
            topo.exec_ok(
                h,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.conf.eth0.arp_ignore=1",
                    "net.ipv4.conf.eth0.arp_announce=2",
                ],
            );
        }
    }
    let lb1 = start(&topo, ag, "lb1", PRIO_LB1, iv);
    let lb2 = start(&topo, ag, "lb2", PRIO_LB2, iv);
    // Resolve the VIP on the client once: later waits read its neighbour entry.
    let warm = topo.start_probe_with(harness::ProbeOpts {
        duration: ms(1500),
        ..harness::ProbeOpts::new(vip(), ms(10))
    });
    let ok = wait_until(Duration::from_secs(15), ms(50), || {
        topo.vip_holders(vip()) == ["lb1"]
    });
    let _ = warm.wait();
    if !ok {
        return Err(format!(
            "lb1 never became the sole master; holders {:?}\nlb1 log:\n{}\nlb2 log:\n{}",
            topo.vip_holders(vip()),
            lb1.log(),
            lb2.log()
        ));
    }
    if ag.keepalived() {
        let c = harness::keepalived_config_complaints(&lb1.log());
        if !c.is_empty() {
            return Err(format!("keepalived refused part of its config: {c:?}"));
        }
    }
    let mut cell = Cell {
        topo,
        ag,
        iv,
        lb1,
        _lb2: lb2,
        plan,
        run: 0,
    };
    for run in 0..plan.runs {
        println!("  run {}/{}", run + 1, plan.runs);
        cell.run = run;
        if let Err(e) = cell.run_once(out) {
            let logs = format!(
                "lb1 log (tail):\n{}\nlb2 log (tail):\n{}",
                tail(&cell.lb1.log(), 30),
                tail(&cell._lb2.log(), 30)
            );
            return Err(format!("run {}: {e}\n{logs}", run + 1));
        }
    }
    Ok(())
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
