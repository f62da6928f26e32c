//! The client's view: UDP responders on the load balancers, a probe on the client, and the
//! analysis of what the client saw (outages, who answered when).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process::Proc;
use super::topology::Topology;
use super::vipnet_bin;

/// UDP port the responders listen on.
pub const RESPONDER_PORT: u16 = 7000;

/// One request as the client saw it. Times are `CLOCK_MONOTONIC` (see [`super::mono_now`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (0, 1, ...).
    pub seq: u64,
    /// When it was sent.
    pub sent: Duration,
    /// When its reply arrived (within the reply window), or `None`: lost.
    pub reply: Option<Duration>,
    /// Who answered.
    pub name: Option<String>,
}

/// A time without replies, seen from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The last reply before (or the first request's send time, if none came before).
    pub start: Duration,
    /// The first reply after (or the last request's send time, if none came after).
    pub end: Duration,
    /// `end - start`.
    pub duration: Duration,
    /// Who answered last before (`None`: the outage began with the probe).
    pub before: Option<String>,
    /// Who answered first after (`None`: it lasted until the probe ended).
    pub after: Option<String>,
    /// Requests lost in it.
    pub lost: usize,
}

/// What a probe saw.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// Every request, by sequence number.
    pub records: Vec<Record>,
    /// Requests sent.
    pub sent: usize,
    /// Requests without a reply within the window.
    pub lost: usize,
    /// Every run of consecutive lost requests, in order.
    pub outages: Vec<Outage>,
    /// (time of the first reply from it, responder) each time the answering host changes.
    pub answered_by_over_time: Vec<(Duration, String)>,
}

impl ProbeReport {
    /// Asserts that the client's last replies came from `host`.
    #[track_caller]
    pub fn assert_ends_on(&self, host: &str) {
        assert_eq!(
            self.answered_by_over_time.last().map(|(_, n)| n.as_str()),
            Some(host),
            "the client did not end on {host}: {}",
            self.summary()
        );
    }

    /// Analyses records (sorted by sequence number by the caller or not: they are sorted).
    pub fn from_records(mut records: Vec<Record>) -> ProbeReport {
        records.sort_by_key(|r| r.seq);
        let sent = records.len();
        let lost = records.iter().filter(|r| r.reply.is_none()).count();
        let mut outages = Vec::new();
        let mut i = 0;
        while i < records.len() {
            if records[i].reply.is_some() {
                i += 1;
                continue;
            }
            let first_lost = i;
            while i < records.len() && records[i].reply.is_none() {
                i += 1;
            }
            let prev = first_lost.checked_sub(1).map(|p| &records[p]);
            let next = records.get(i);
            let start = prev
                .and_then(|p| p.reply)
                .unwrap_or(records[first_lost].sent);
            let end = next
                .and_then(|n| n.reply)
                .unwrap_or(records[i - 1].sent)
                .max(start);
            outages.push(Outage {
                start,
                end,
                duration: end - start,
                before: prev.and_then(|p| p.name.clone()),
                after: next.and_then(|n| n.name.clone()),
                lost: i - first_lost,
            });
        }
        let mut by_time: Vec<(Duration, &str)> = records
            .iter()
            .filter_map(|r| Some((r.reply?, r.name.as_deref()?)))
            .collect();
        by_time.sort();
        let mut answered_by_over_time: Vec<(Duration, String)> = Vec::new();
        for (t, name) in by_time {
            if answered_by_over_time.last().map(|(_, n)| n.as_str()) != Some(name) {
                answered_by_over_time.push((t, name.to_string()));
            }
        }
        ProbeReport {
            records,
            sent,
            lost,
            outages,
            answered_by_over_time,
        }
    }

    /// Parses the probe's JSON lines.
    pub fn parse_jsonl(text: &str) -> Result<ProbeReport, String> {
        let mut records = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("probe output line {}: {e}: {line:?}", n + 1))?;
            let field = |k: &str| v.get(k).and_then(|x| x.as_u64());
            let (Some(seq), Some(sent)) = (field("seq"), field("sent_ns")) else {
                return Err(format!(
                    "probe output line {}: missing seq/sent_ns: {line:?}",
                    n + 1
                ));
            };
            records.push(Record {
                seq,
                sent: Duration::from_nanos(sent),
                reply: field("reply_ns").map(Duration::from_nanos),
                name: v.get("name").and_then(|x| x.as_str()).map(String::from),
            });
        }
        Ok(ProbeReport::from_records(records))
    }

    /// Requests lost after the first reply (the ones before it only wait for the client's
    /// first neighbour resolution).
    pub fn lost_after_first_reply(&self) -> usize {
        let Some(first) = self.records.iter().position(|r| r.reply.is_some()) else {
            return self.lost;
        };
        self.records[first..]
            .iter()
            .filter(|r| r.reply.is_none())
            .count()
    }

    /// The longest outage, if any request was lost.
    pub fn longest_outage(&self) -> Option<&Outage> {
        self.outages.iter().max_by_key(|o| o.duration)
    }

    /// The client-side outage around an event at `event` (e.g. a kill): the longest gap
    /// between two consecutive replies that ends after the event and begins no later than
    /// `event + slack` (replies to requests already in flight may still arrive just after the
    /// event). Measured from the last reply before to the first reply after. `None` when no
    /// such gap had a lost request.
    pub fn outage_around(&self, event: Duration, slack: Duration) -> Option<Outage> {
        let mut answered: Vec<&Record> =
            self.records.iter().filter(|r| r.reply.is_some()).collect();
        answered.sort_by_key(|r| r.reply);
        let mut best: Option<Outage> = None;
        let mut consider = |o: Outage| {
            if o.lost > 0 && best.as_ref().is_none_or(|b| o.duration > b.duration) {
                best = Some(o);
            }
        };
        let lost_between = |a: Option<&Record>, b: Option<&Record>| {
            let lo = a.map(|r| r.seq);
            let hi = b.map(|r| r.seq);
            self.records
                .iter()
                .filter(|r| {
                    r.reply.is_none()
                        && lo.is_none_or(|l| r.seq > l)
                        && hi.is_none_or(|h| r.seq < h)
                })
                .count()
        };
        let first_sent = self.records.first().map(|r| r.sent).unwrap_or_default();
        let last_sent = self.records.last().map(|r| r.sent).unwrap_or_default();
        // Gaps: (start of probe .. first reply), between replies, (last reply .. end of probe).
        let mut bounds: Vec<Option<&Record>> = vec![None];
        bounds.extend(answered.iter().map(|r| Some(*r)));
        bounds.push(None);
        for w in bounds.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a.is_none() && b.is_none() && !self.records.is_empty() {
                // Nothing ever answered.
            }
            let start = a.and_then(|r| r.reply).unwrap_or(first_sent);
            let end = b.and_then(|r| r.reply).unwrap_or(last_sent).max(start);
            if end <= event || start > event + slack {
                continue;
            }
            consider(Outage {
                start,
                end,
                duration: end - start,
                before: a.and_then(|r| r.name.clone()),
                after: b.and_then(|r| r.name.clone()),
                lost: lost_between(a, b),
            });
        }
        best
    }

    /// Distinct responders in order of first reply.
    pub fn responders(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for (_, n) in &self.answered_by_over_time {
            if !v.contains(n) {
                v.push(n.clone());
            }
        }
        v
    }

    /// Replies from `name` that arrived after `t`.
    pub fn replies_from_after(&self, name: &str, t: Duration) -> usize {
        self.records
            .iter()
            .filter(|r| r.name.as_deref() == Some(name) && r.reply.is_some_and(|x| x > t))
            .count()
    }

    /// A one-paragraph summary for logs and failure messages (times relative to the first
    /// request).
    pub fn summary(&self) -> String {
        let t0 = self.records.first().map(|r| r.sent).unwrap_or_default();
        let rel = |t: Duration| t.saturating_sub(t0).as_secs_f64() * 1000.0;
        let mut s = format!("probe: {} sent, {} lost", self.sent, self.lost);
        let who: Vec<String> = self
            .answered_by_over_time
            .iter()
            .map(|(t, n)| format!("{n}@{:.1}ms", rel(*t)))
            .collect();
        s.push_str(&format!("; answered by: {}", who.join(" -> ")));
        let mut big: Vec<&Outage> = self.outages.iter().collect();
        big.sort_by_key(|o| std::cmp::Reverse(o.duration));
        for o in big.iter().take(5) {
            s.push_str(&format!(
                "\n  outage {:.1}ms .. {:.1}ms = {:.1} ms ({} lost, {} -> {})",
                rel(o.start),
                rel(o.end),
                o.duration.as_secs_f64() * 1000.0,
                o.lost,
                o.before.as_deref().unwrap_or("-"),
                o.after.as_deref().unwrap_or("-"),
            ));
        }
        s
    }
}

/// Probe parameters.
#[derive(Debug, Clone)]
pub struct ProbeOpts {
    /// Host to probe from.
    pub host: String,
    /// VIP and port.
    pub target: SocketAddr,
    /// Time between requests.
    pub interval: Duration,
    /// Upper bound on the probe's life (it also stops at [`Probe::finish`]).
    pub duration: Duration,
    /// A reply later than this counts as lost.
    pub window: Duration,
}

impl ProbeOpts {
    /// From the client to `vip`:7000 every `interval`, at most 120 s, 200 ms reply window.
    pub fn new(vip: IpAddr, interval: Duration) -> ProbeOpts {
        ProbeOpts {
            host: "client".into(),
            target: SocketAddr::new(vip, RESPONDER_PORT),
            interval,
            duration: Duration::from_secs(120),
            window: Duration::from_millis(200),
        }
    }
}

/// A running probe.
pub struct Probe {
    proc: Proc,
    out: PathBuf,
    opts: ProbeOpts,
}

fn fmt_dur(d: Duration) -> String {
    format!("{}us", d.as_micros().max(1))
}

impl Topology {
    /// Starts a UDP responder on `host` bound to `vip`:7000 answering with the host's name.
    pub fn start_responder(&self, host: &str, vip: IpAddr) -> Proc {
        let bin = vipnet_bin();
        let bind = SocketAddr::new(vip, RESPONDER_PORT).to_string();
        let bin = bin.to_string_lossy().into_owned();
        self.spawn(
            host,
            &[&bin, "respond", "--bind", &bind, "--name", host],
            &format!("{host}-respond-{}.log", vip).replace(':', "_"),
        )
    }

    /// [`Topology::start_responder`] on both load balancers, lb1 and lb2.
    pub fn start_responders(&self, vip: IpAddr) -> [Proc; 2] {
        ["lb1", "lb2"].map(|host| self.start_responder(host, vip))
    }

    /// Starts a probe from the client to `vip`:7000 every `interval`.
    pub fn start_probe(&self, vip: IpAddr, interval: Duration) -> Probe {
        self.start_probe_with(ProbeOpts::new(vip, interval))
    }

    /// Starts a probe from the client to `vip` every `interval` once the client uses `host`
    /// for it: waits (up to 5 s) until the client's neighbour entry for `vip` is `host`'s
    /// MAC, panicking with a snapshot otherwise, then lets a 300 ms baseline pass.
    #[track_caller]
    pub fn start_probe_resolved(&self, vip: IpAddr, interval: Duration, host: &str) -> Probe {
        let probe = self.start_probe(vip, interval);
        let resolved = super::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            self.neigh("client", vip) == Some(self.mac(host))
        });
        assert!(
            resolved,
            "the client never resolved {vip} to {host}'s MAC\n{}",
            self.snapshot()
        );
        std::thread::sleep(Duration::from_millis(300));
        probe
    }

    /// Starts a probe with explicit options.
    pub fn start_probe_with(&self, opts: ProbeOpts) -> Probe {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out = self.path(&format!("probe-{n}.jsonl"));
        let bin = vipnet_bin().to_string_lossy().into_owned();
        let target = opts.target.to_string();
        let (iv, du, wi) = (
            fmt_dur(opts.interval),
            fmt_dur(opts.duration),
            fmt_dur(opts.window),
        );
        let out_s = out.to_string_lossy().into_owned();
        let proc = self.spawn(
            &opts.host,
            &[
                &bin,
                "probe",
                "--target",
                &target,
                "--interval",
                &iv,
                "--duration",
                &du,
                "--window",
                &wi,
                "--out",
                &out_s,
            ],
            &format!("probe-{n}.log"),
        );
        Probe { proc, out, opts }
    }
}

impl Probe {
    /// The probe process.
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Stops the probe now (SIGTERM; it waits one reply window, writes its file) and reads
    /// the report. Panics with the probe's log if it does not finish.
    pub fn finish(self) -> ProbeReport {
        let _ = self.proc.signal(Signal::SIGTERM);
        self.collect()
    }

    /// Waits for the probe's own duration to end, then reads the report.
    pub fn wait(self) -> ProbeReport {
        let _ = self
            .proc
            .wait_timeout(self.opts.duration + self.opts.window);
        self.collect()
    }

    fn collect(self) -> ProbeReport {
        let st = self
            .proc
            .wait_timeout(self.opts.window + Duration::from_secs(10));
        match st {
            Some(st) if st.success() => {}
            other => panic!(
                "harness: probe {} did not finish cleanly ({other:?}); log:\n{}",
                self.proc.describe(),
                self.proc.log()
            ),
        }
        let text = std::fs::read_to_string(&self.out).unwrap_or_else(|e| {
            panic!("harness: reading probe output {}: {e}", self.out.display())
        });
        ProbeReport::parse_jsonl(&text).unwrap_or_else(|e| panic!("harness: {e}"))
    }
}
