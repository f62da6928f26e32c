//! One measured event: a fresh probe, a baseline, the event, the end state, and the
//! outage the client saw around it.

#[allow(unused_imports)]
use super::*;

/// One scenario's result: the outage, the requests lost in it, a note (who answered
/// before and after, when the end state came), and what the client saw (for the pictures,
/// `--records DIR`).
#[derive(Debug, Clone)]
pub struct Sample {
    pub outage: Duration,
    pub lost: usize,
    pub note: String,
    pub trace: Option<Trace>,
}

/// One measured event as the client saw it: every request, the event's time and the
/// outage that was counted (all `CLOCK_MONOTONIC`).
#[derive(Debug, Clone)]
pub struct Trace {
    pub event: Duration,
    pub records: Vec<harness::Record>,
    pub outage: Option<(Duration, Duration)>,
}

impl Trace {
    pub fn new(
        rep: harness::ProbeReport,
        event: Duration,
        outage: Option<&harness::Outage>,
    ) -> Trace {
        Trace {
            event,
            records: rep.records,
            outage: outage.map(|o| (o.start, o.end)),
        }
    }

    /// JSON lines: a header, then one line per request; times in ms relative to the event.
    pub fn to_jsonl(&self, head: &serde_json::Value) -> String {
        let rel = |t: Duration| (t.as_secs_f64() - self.event.as_secs_f64()) * 1000.0;
        let mut out = String::new();
        let mut h = head.clone();
        h["outage_ms"] = match self.outage {
            Some((a, b)) => serde_json::json!([rel(a), rel(b)]),
            None => serde_json::Value::Null,
        };
        out.push_str(&h.to_string());
        out.push('\n');
        for r in &self.records {
            let line = serde_json::json!({
                "seq": r.seq,
                "sent_ms": rel(r.sent),
                "reply_ms": r.reply.map(rel),
                "name": r.name,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

pub fn vip() -> IpAddr {
    IpAddr::V4(VIP)
}

/// The virtual router MAC of VRID 51 (RFC 5798 §7.3).
const VMAC: &str = "00:00:5e:00:01:33";

/// Whether the client's neighbour entry for the VIP points at `host` (or, in virtual MAC
/// mode, at the virtual MAC, which follows the master) and `host` holds it.
pub fn client_on(topo: &Topology, host: &str) -> bool {
    let n = topo.neigh("client", vip());
    (n == Some(topo.mac(host)) || n.as_deref() == Some(VMAC)) && topo.holds_vip(host, vip())
}

pub fn who_client_uses(topo: &Topology) -> String {
    topo.neigh("client", vip())
        .and_then(|m| topo.host_by_mac(&m))
        .unwrap_or_else(|| "?".into())
}

/// Waits until lb1 alone holds the VIP and the client uses it (after any unmeasured change).
pub fn settle_on_lb1(topo: &Topology, iv: Duration) -> Result<(), String> {
    let ok = wait_until(Duration::from_secs(60), ms(50), || {
        topo.vip_holders(vip()) == ["lb1"] && client_on(topo, "lb1")
    });
    if !ok {
        return Err(format!(
            "lb1 did not settle as master used by the client (holders {:?}, client on {})",
            topo.vip_holders(vip()),
            who_client_uses(topo)
        ));
    }
    // Let the backup see a few adverts and the announcements finish.
    std::thread::sleep((iv * 3).max(ms(400)));
    Ok(())
}

/// Waits until `host`'s vipd reports its BFD session Up and follows lb1 as master.
pub fn wait_bfd_up(topo: &Topology, host: &str) -> Result<(), String> {
    let sock = harness::vipd_socket(topo, host);
    let sock = sock.to_string_lossy().into_owned();
    let vipctl = vipctl_bin();
    let lb1 = topo.ip4("lb1").to_string();
    let ok = wait_until(Duration::from_secs(20), ms(50), || {
        let out = topo.exec(host, &[&vipctl, "-s", &sock, "status", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
            let i = &v["instances"][0];
            i["bfd"][0]["state"] == "up" && i["master"] == lb1.as_str()
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "BFD on {host} never came Up (or {host} never heard lb1)"
        ))
    }
}

/// Runs `action` under a probe and measures the outage around it. `done` is the end state
/// (polled every 50 ms up to `timeout`); `slack` bounds how late after the event the outage
/// may begin.
pub fn measure(
    topo: &Topology,
    slack: Duration,
    timeout: Duration,
    lead: Duration,
    action: impl FnOnce() -> Result<(), String>,
    mut done: impl FnMut() -> bool,
) -> Result<Sample, String> {
    let probe = topo.start_probe(vip(), PROBE_EVERY);
    std::thread::sleep(ms(300) + lead);
    let event = mono_now();
    let acted = action();
    let t0 = Instant::now();
    let ok = acted.is_ok() && wait_until(timeout, ms(50), &mut done);
    let took = t0.elapsed();
    std::thread::sleep(ms(300));
    let rep = probe.finish();
    acted?;
    if !ok {
        return Err(format!(
            "end state not reached within {timeout:?}; {}",
            rep.summary()
        ));
    }
    let found = rep.outage_around(event, slack);
    let (outage, lost, mut note) = match &found {
        Some(o) => (
            o.duration,
            o.lost,
            format!(
                "{} -> {}",
                o.before.as_deref().unwrap_or("-"),
                o.after.as_deref().unwrap_or("-")
            ),
        ),
        None => (Duration::ZERO, 0, "no loss".to_string()),
    };
    let _ = write!(note, ", end state after {:.0} ms", fms(took));
    let trace = Some(Trace::new(rep, event, found.as_ref()));
    Ok(Sample {
        outage,
        lost,
        note,
        trace,
    })
}
