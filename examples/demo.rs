//! The vipd demo: two load balancers share a virtual IP; a client keeps talking to it while
//! the master crashes, comes back, and is later stopped for maintenance.
//!
//! Run it with `integration/demo.sh`, from a root shell or as a user with sudo (it builds this
//! example and vipd, then runs this as root). Everything happens inside network namespaces this program creates and deletes again,
//! also on Ctrl-C; only documentation addresses are used.
//!
//! ```text
//!                 switch (bridge)
//!        lb1 /         | lb2          \ client
//!   192.0.2.11      192.0.2.12        192.0.2.50  -- probes 192.0.2.100:7000 every 2 ms
//!   vipd prio 150   vipd prio 100
//!          VIP 192.0.2.100 on whichever is master
//! ```

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use harness::{
    mono_now, wait_until, Agent, AgentKind, Probe, ProbeReport, Topology, VipdConfig, VipdInstance,
};

const VIP: &str = "192.0.2.100";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn vip() -> IpAddr {
    VIP.parse().expect("constant VIP parses")
}

fn conf(topo: &Topology, host: &str, prio: u8) -> String {
    let web = VipdInstance::new("web", 51, prio, &[&format!("{VIP}/24")])
        .line("preempt = true")
        .announce(5, "100ms");
    VipdConfig::only(topo, host, web)
}

struct Demo {
    topo: Topology,
    step: u32,
    vipctl: String,
    /// Log lines already shown, per host: (agent start count, lines shown of that run).
    shown: std::cell::RefCell<std::collections::HashMap<String, (u32, usize)>>,
}

impl Demo {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n=== Step {}: {title}", self.step);
    }

    fn say(&self, text: &str) {
        for l in text.lines() {
            println!("    {l}");
        }
    }

    /// `vipctl status` on `host`, or the state-change lines of its log when the control
    /// socket does not answer.
    fn show_status(&self, agent: &Agent) {
        let host = agent.host();
        let sock = self.topo.path(&format!("{host}.sock"));
        let out = self.topo.exec(
            host,
            &[&self.vipctl, "-s", &sock.to_string_lossy(), "status"],
        );
        if out.ok() {
            self.say(&format!("$ vipctl status   (on {host})"));
            self.say(out.stdout.trim_end());
            // The status shows the latest transition: do not repeat the log lines later.
            let _ = self.new_transitions(agent);
        } else {
            self.say(&format!(
                "(vipctl status on {host} failed: {}; its log instead)",
                out.stderr.trim()
            ));
            self.show_transitions(agent);
        }
    }

    /// The state-change lines of `agent`'s log not shown before.
    fn show_transitions(&self, agent: &Agent) {
        let new = self.new_transitions(agent);
        if new.is_empty() {
            self.say(&format!("{} log: (no new state change)", agent.host()));
        }
        for l in new {
            self.say(&l);
        }
    }

    /// The state-change lines of `agent`'s log not returned before.
    fn new_transitions(&self, agent: &Agent) -> Vec<String> {
        let lines: Vec<String> = agent
            .log()
            .lines()
            .filter(|l| l.contains("web: ") && (l.contains(" -> ") || l.contains("earlier run")))
            .map(|l| format!("{} log: {}", agent.host(), strip_ts(l)))
            .collect();
        let mut shown = self.shown.borrow_mut();
        let seen = shown
            .entry(agent.host().to_string())
            .or_insert((agent.starts(), 0));
        if seen.0 != agent.starts() {
            *seen = (agent.starts(), 0);
        }
        let new = lines.get(seen.1..).unwrap_or_default().to_vec();
        seen.1 = lines.len();
        new
    }

    fn holders(&self) -> String {
        let h = self.topo.vip_holders(vip());
        if h.is_empty() {
            "nobody".into()
        } else {
            h.join(" and ")
        }
    }

    fn client_mac(&self) -> String {
        match self.topo.neigh("client", vip()) {
            Some(m) => format!(
                "{m} ({})",
                self.topo.host_by_mac(&m).unwrap_or_else(|| "?".into())
            ),
            None => "none".into(),
        }
    }

    fn probe(&self) -> Probe {
        self.topo.start_probe(vip(), ms(2))
    }

    /// What the client saw; the outage is the longest reply gap that opened within `slack`
    /// after `event`.
    fn report(&self, rep: &ProbeReport, event: Duration, slack: Duration, what: &str) {
        self.say(&format!(
            "client: {} requests sent, {} lost; answered by {}",
            rep.sent,
            rep.lost,
            rep.responders().join(" then ")
        ));
        match rep.outage_around(event, slack) {
            Some(o) => self.say(&format!(
                "client-side outage during {what}: {:.0} ms ({} requests lost, {} -> {})",
                msf(o.duration),
                o.lost,
                o.before.as_deref().unwrap_or("-"),
                o.after.as_deref().unwrap_or("-")
            )),
            None => self.say(&format!("client-side outage during {what}: none")),
        }
    }
}

/// Drops the timestamp tracing puts in front of a log line and the fields after it.
fn strip_ts(line: &str) -> &str {
    let line = match line.find(" INFO ").or_else(|| line.find(" WARN ")) {
        Some(i) => line[i + 1..].trim(),
        None => line.trim(),
    };
    match line.find(" instance=") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn main() -> ExitCode {
    if !harness::require_netns("demo") {
        eprintln!(
            "demo: needs root: run integration/demo.sh from a root shell or as a user with sudo"
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = harness::cleanup_on_sigint() {
        eprintln!("demo: {e}");
        return ExitCode::FAILURE;
    }
    let vipctl = harness::crate_bin("vipctl", "VIPCTL_BIN", None)
        .to_string_lossy()
        .into_owned();
    println!("vipd demo: two load balancers, one virtual IP ({VIP}), one client.");
    println!("Press Ctrl-C at any time: the namespaces are removed.");
    let mut d = Demo {
        topo: Topology::new(harness::TopologyOpts::default()),
        step: 0,
        vipctl,
        shown: Default::default(),
    };
    let ok = run(&mut d);
    d.step("clean up");
    d.say(&format!(
        "stopping every process and deleting the namespaces {}*",
        d.topo.prefix()
    ));
    drop(d);
    println!("done.");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(d: &mut Demo) -> bool {
    d.step("build a LAN out of network namespaces");
    d.say(&format!(
        "switch {}sw with lb1 (192.0.2.11, MAC {}), lb2 (192.0.2.12, MAC {}) and client (192.0.2.50)",
        d.topo.prefix(),
        d.topo.mac("lb1"),
        d.topo.mac("lb2")
    ));
    d.say("each balancer runs a tiny UDP service on the VIP; it answers only while its host holds the VIP");
    let _r1 = d.topo.start_responder("lb1", vip());
    let _r2 = d.topo.start_responder("lb2", vip());

    d.step("start vipd on lb1 (priority 150) and lb2 (priority 100), 100 ms adverts");
    let t0 = mono_now();
    let mut lb1 = d
        .topo
        .start_agent("lb1", AgentKind::vipd(), &conf(&d.topo, "lb1", 150));
    let lb2 = d
        .topo
        .start_agent("lb2", AgentKind::vipd(), &conf(&d.topo, "lb2", 100));
    let elected = wait_until(Duration::from_secs(10), ms(10), || {
        d.topo.vip_holders(vip()) == ["lb1"]
    });
    if !elected {
        d.say(&format!(
            "lb1 did not become master within 10 s (VIP held by {}); logs:\n{}\n{}",
            d.holders(),
            lb1.log(),
            lb2.log()
        ));
        return false;
    }
    d.say(&format!(
        "after {:.0} ms lb1 is master and holds the VIP (both start as backup; the higher priority's timer fires first)",
        msf(mono_now() - t0)
    ));
    std::thread::sleep(ms(300));
    d.show_status(&lb1);
    d.show_status(&lb2);

    d.step("the client starts talking to the VIP (one request every 2 ms)");
    let probe = d.probe();
    wait_until(Duration::from_secs(5), ms(20), || {
        d.topo.neigh("client", vip()) == Some(d.topo.mac("lb1"))
    });
    std::thread::sleep(ms(500));
    d.say(&format!(
        "client's neighbour entry for {VIP}: {}",
        d.client_mac()
    ));

    d.step("lb1 crashes: vipd is killed (SIGKILL) and its cable pulled");
    let event = mono_now();
    lb1.kill();
    d.topo.cut_link("lb1");
    let took = wait_until(Duration::from_secs(10), ms(5), || {
        d.topo.holds_vip("lb2", vip())
    });
    let t_vip = mono_now() - event;
    wait_until(Duration::from_secs(5), ms(10), || {
        d.topo.neigh("client", vip()) == Some(d.topo.mac("lb2"))
    });
    std::thread::sleep(ms(1000));
    let rep = probe.finish();
    if !took {
        d.say("lb2 never took the VIP over; its log:");
        d.say(&lb2.log());
        return false;
    }
    d.say(&format!(
        "lb2 stopped hearing lb1's adverts and took the VIP {:.0} ms after the crash",
        msf(t_vip)
    ));
    d.say("(Master_Down_Interval = 3 x 100 ms + skew 61 ms = 361 ms after lb1's last advert)");
    d.show_transitions(&lb2);
    d.say(&format!(
        "lb2 announced itself (gratuitous ARP): client's entry for {VIP} is now {}",
        d.client_mac()
    ));
    d.report(&rep, event, ms(50), "the crash");

    d.step("lb1 is repaired: cable back in, vipd started again");
    let probe = d.probe();
    std::thread::sleep(ms(300));
    let event = mono_now();
    d.topo.restore_link("lb1");
    lb1.restart(&d.topo);
    let back = wait_until(Duration::from_secs(10), ms(10), || {
        d.topo.vip_holders(vip()) == ["lb1"]
    });
    let t_back = mono_now() - event;
    std::thread::sleep(ms(800));
    let rep = probe.finish();
    if !back {
        d.say(&format!(
            "lb1 did not take the VIP back (held by {})",
            d.holders()
        ));
        d.show_transitions(&lb1);
        return false;
    }
    d.say("the restarted vipd first removes the VIP the crashed run left behind, waits as backup,");
    d.say(&format!(
        "then preempts lb2 (priority 150 > 100): lb1 alone holds the VIP {:.0} ms after the restart",
        msf(t_back)
    ));
    d.show_transitions(&lb1);
    d.show_transitions(&lb2);
    d.say(&format!("client's entry for {VIP}: {}", d.client_mac()));
    d.report(&rep, event, Duration::from_secs(2), "the failback");

    d.step("maintenance on lb1: a graceful stop (SIGTERM)");
    let probe = d.probe();
    std::thread::sleep(ms(300));
    let event = mono_now();
    let st = lb1.stop(Duration::from_secs(5));
    let t_exit = mono_now() - event;
    let handed = wait_until(Duration::from_secs(5), ms(10), || {
        d.topo.vip_holders(vip()) == ["lb2"]
    });
    std::thread::sleep(ms(500));
    let rep = probe.finish();
    d.say("lb1 sends a priority-0 advert and keeps the VIP until it hears lb2 as master;");
    d.say("lb2 waits only Skew_Time (61 ms) instead of the full Master_Down_Interval");
    d.say(&format!(
        "vipd on lb1 exited after {:.0} ms with {st}; VIP now held by {}",
        msf(t_exit),
        d.holders()
    ));
    if let Some(t) = rep
        .records
        .iter()
        .filter(|r| r.name.as_deref() == Some("lb2"))
        .filter_map(|r| r.reply)
        .find(|t| *t >= event)
    {
        d.say(&format!(
            "the client's first reply from lb2 came {:.0} ms after the SIGTERM",
            msf(t - event)
        ));
    }
    d.show_transitions(&lb2);
    d.report(&rep, event, Duration::from_secs(1), "the handover");
    if !handed || !st.success() {
        return false;
    }

    d.step("summary");
    d.say("crash: the backup takes over after Master_Down_Interval and announces itself;");
    d.say("repair: the higher priority comes back and preempts;");
    d.say("maintenance: make-before-break handover after Skew_Time, the client barely notices.");
    true
}
