//! The arbiter scenario runner: split brain with and without the etcd lease arbiter,
//! beside keepalived, and host-death takeover with the arbiter at TTL 1 s and 2 s.
//!
//! Run it with `sudo integration/bench/arbiter.sh [--runs N]` (which builds and runs the
//! example `arbiter-scenarios` with ARGS). Needs root (network namespaces).
//!
//! ```text
//!   topology: sw + lb1 (150) + lb2 (100) + client + etcd1..3 (192.0.2.31..33),
//!   100 ms adverts, VIP 192.0.2.100/24, responders on lb1 and lb2, a UDP probe every 2 ms,
//!   `ip -ts monitor address` on lb1 and lb2 (who holds the VIP, to the microsecond)
//!   partition: VRRP (protocol 112) cut between lb1 and lb2 for 3 s, then healed;
//!     measured: ms with two holders, requests lost (vipd+arbiter, vipd, keepalived)
//!   death: lb1's switch port cut, then vipd SIGKILLed; measured: client-side outage
//!     until lb2 answers (arbiter at TTL 1 s and 2 s)
//! ```

#[path = "../../../tests/harness/mod.rs"]
#[allow(unreachable_pub, missing_docs)]
mod harness;

use std::net::IpAddr;
use std::time::Duration;

use harness::etcd::{etcd_topology_opts, seconds_of_day_now, EtcdCluster, VipWatch};
use harness::{
    keepalived_conf, mono_now, wait_until, Agent, AgentKind, KeepalivedInstance, Topology,
    VipdConfig, VipdInstance,
};

const VIP: &str = "192.0.2.100";
const PARTITION: Duration = Duration::from_secs(3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn vip() -> IpAddr {
    VIP.parse().expect("literal")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ag {
    VipdArbiter,
    Vipd,
    Keepalived,
}

impl Ag {
    fn name(self) -> &'static str {
        match self {
            Ag::VipdArbiter => "vipd + arbiter",
            Ag::Vipd => "vipd",
            Ag::Keepalived => "keepalived",
        }
    }
}

fn vipd_conf(
    topo: &Topology,
    etcd: Option<&EtcdCluster>,
    host: &str,
    prio: u8,
    ttl: u64,
) -> String {
    let _ = std::fs::create_dir_all(topo.path(&format!("{host}-state")));
    let web = VipdInstance::new("web", 51, prio, &[&format!("{VIP}/24")])
        .line("preempt = true")
        .line(&format!("arbiter = {}", etcd.is_some()));
    let mut c = VipdConfig::new(topo, host).without_metrics().instance(web);
    if let Some(e) = etcd {
        c = c.table(&format!(
            "[arbiter]\netcd-endpoints = {}\nlease-ttl = \"{ttl}s\"",
            e.endpoints_toml()
        ));
    }
    c.render()
}

fn start(
    topo: &Topology,
    etcd: Option<&EtcdCluster>,
    ag: Ag,
    host: &str,
    prio: u8,
    ttl: u64,
) -> Agent {
    match ag {
        Ag::Keepalived => {
            let conf = keepalived_conf(&[KeepalivedInstance::new("web", 51, prio)
                .advert_int(ms(100))
                .vip(&format!("{VIP}/24"))]);
            topo.start_agent(host, AgentKind::Keepalived, &conf)
        }
        _ => topo.start_agent(
            host,
            AgentKind::vipd(),
            &vipd_conf(topo, etcd, host, prio, ttl),
        ),
    }
}

struct Pair {
    topo: Topology,
    etcd: Option<EtcdCluster>,
    watch: VipWatch,
    lb1: Agent,
    _lb2: Agent,
    ag: Ag,
    ttl: u64,
}

fn pair(ag: Ag, ttl: u64) -> Result<Pair, String> {
    let topo = Topology::new(etcd_topology_opts());
    let etcd = (ag == Ag::VipdArbiter).then(|| EtcdCluster::start(&topo));
    let watch = VipWatch::start(&topo, &["lb1", "lb2"], vip());
    let _ = topo.start_responder("lb1", vip());
    let _ = topo.start_responder("lb2", vip());
    let lb1 = start(&topo, etcd.as_ref(), ag, "lb1", 150, ttl);
    if !wait_until(Duration::from_secs(15), ms(20), || {
        topo.vip_holders(vip()) == ["lb1"]
    }) {
        return Err(format!(
            "{}: lb1 never held the VIP\n{}",
            ag.name(),
            lb1.log()
        ));
    }
    let lb2 = start(&topo, etcd.as_ref(), ag, "lb2", 100, ttl);
    std::thread::sleep(Duration::from_secs(2));
    if topo.vip_holders(vip()) != ["lb1"] {
        return Err(format!(
            "{}: lb1 not the sole holder after lb2 started",
            ag.name()
        ));
    }
    Ok(Pair {
        topo,
        etcd,
        watch,
        lb1,
        _lb2: lb2,
        ag,
        ttl,
    })
}

impl Pair {
    fn settle_on_lb1(&self) -> Result<(), String> {
        let ok = wait_until(Duration::from_secs(15), ms(20), || {
            self.topo.vip_holders(vip()) == ["lb1"]
                && self.topo.neigh("client", vip()) == Some(self.topo.mac("lb1"))
        });
        ok.then_some(()).ok_or_else(|| {
            format!(
                "{}: not settled on lb1: holders {:?}",
                self.ag.name(),
                self.topo.vip_holders(vip())
            )
        })
    }

    /// One partition: (ms with two holders, requests lost).
    fn partition(&mut self) -> Result<(f64, usize), String> {
        // The probe first: the client's neighbour entry for the VIP comes from it.
        let probe = self.topo.start_probe(vip(), ms(2));
        self.settle_on_lb1()?;
        std::thread::sleep(ms(300));
        let from = seconds_of_day_now();
        self.topo.partition_vrrp("lb1", "lb2");
        std::thread::sleep(PARTITION);
        self.topo.heal();
        self.settle_on_lb1()?;
        std::thread::sleep(ms(500));
        let to = seconds_of_day_now();
        let rep = probe.finish();
        let lost = rep
            .records
            .iter()
            .skip_while(|r| r.reply.is_none())
            .filter(|r| r.reply.is_none())
            .count();
        let (_, list) = self.watch.overlap_ms();
        let two: f64 = list
            .iter()
            .map(|(a, b)| ((b.min(to) - a.max(from)).max(0.0)) * 1000.0)
            .fold(0.0, |acc, x| acc + x);
        Ok((two, lost))
    }

    /// One host death: client-side outage in ms.
    fn death(&mut self) -> Result<f64, String> {
        let probe = self.topo.start_probe(vip(), ms(2));
        self.settle_on_lb1()?;
        std::thread::sleep(ms(300));
        let event = mono_now();
        self.topo.cut_link("lb1");
        self.lb1.kill();
        let ok = wait_until(Duration::from_secs(15), ms(20), || {
            self.topo.neigh("client", vip()) == Some(self.topo.mac("lb2"))
                && self.topo.vip_holders(vip()).contains(&"lb2".to_string())
        });
        std::thread::sleep(ms(300));
        let rep = probe.finish();
        if !ok {
            return Err(format!("{}: lb2 never took over", self.ag.name()));
        }
        let out = rep
            .outage_around(event, Duration::from_secs(1))
            .map_or(0.0, |o| o.duration.as_secs_f64() * 1000.0);
        // lb1 back (it preempts through the key) for the next run.
        self.topo.restore_link("lb1");
        self.lb1.restart(&self.topo);
        let _ = &self.etcd;
        Ok(out)
    }
}

fn stats(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    format!("{med:.1} / {:.1} / {:.1}", s[0], s[s.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut runs = 5usize;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(5);
                i += 1;
            }
            "--quick" => runs = 1,
            "--bench" => {}
            other => eprintln!("arbiter bench: ignoring argument {other:?}"),
        }
        i += 1;
    }
    let header = format!(
        "arbiter benchmark: {runs} runs each; partition of protocol 112 for {} s; 100 ms adverts",
        PARTITION.as_secs()
    );
    if harness::bench::start("arbiter", &header).is_none() {
        return;
    }
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for ag in [Ag::VipdArbiter, Ag::Vipd, Ag::Keepalived] {
        let (mut two, mut lost) = (Vec::new(), Vec::new());
        match pair(ag, 1) {
            Ok(mut p) => {
                for r in 0..runs {
                    match p.partition() {
                        Ok((t, l)) => {
                            println!(
                                "  partition {} run {r}: two holders {t:.1} ms, {l} lost",
                                ag.name()
                            );
                            two.push(t);
                            lost.push(l as f64);
                        }
                        Err(e) => failures.push(e),
                    }
                }
            }
            Err(e) => failures.push(e),
        }
        rows.push(format!(
            "partition {:<15} | two holders ms {:<24} | lost requests {}",
            ag.name(),
            stats(&two),
            stats(&lost)
        ));
    }
    for ttl in [1u64, 2] {
        let mut out = Vec::new();
        match pair(Ag::VipdArbiter, ttl) {
            Ok(mut p) => {
                let granted = p.ttl;
                for r in 0..runs {
                    match p.death() {
                        Ok(o) => {
                            println!("  death, arbiter TTL {granted} s, run {r}: outage {o:.0} ms");
                            out.push(o);
                        }
                        Err(e) => failures.push(e),
                    }
                }
            }
            Err(e) => failures.push(e),
        }
        rows.push(format!(
            "death, vipd + arbiter TTL {ttl} s | client outage ms {}",
            stats(&out)
        ));
    }
    println!("\nresults (median / min / max over {runs} runs):");
    for r in &rows {
        println!("  {r}");
    }
    for f in &failures {
        println!("FAILED: {f}");
    }
}
