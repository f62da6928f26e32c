//! vipd-specific helpers for namespace tests: configuration text, `vipctl status --json`,
//! the Prometheus endpoint, tshark captures and the hostile-packet script.
//!
//! Added for the interop / conformance / hostile suites; everything here is additive.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::process::Proc;
use super::topology::Topology;
use super::wait_until;

/// Port of the metrics endpoint; every vipd listens on its own namespace's loopback.
pub const METRICS_PORT: u16 = 9638;

/// One `[[instance]]` of a vipd configuration: the keys every instance has (VIPs with their
/// prefix length, the interval as written in TOML), the checksum form only when set, then
/// `extra` lines verbatim (more keys, then sub-tables such as `[instance.bfd]`).
#[derive(Debug, Clone)]
pub struct VipdInstance {
    name: String,
    interface: String,
    vrid: u8,
    priority: u8,
    interval: String,
    version: u8,
    vips: Vec<String>,
    unicast_peers: Vec<IpAddr>,
    checksum_pseudo_header: Option<bool>,
    extra: Vec<String>,
}

impl VipdInstance {
    /// VRRPv3 on eth0, 100 ms, multicast, no explicit checksum form.
    pub fn new(name: &str, vrid: u8, priority: u8, vips: &[&str]) -> VipdInstance {
        VipdInstance {
            name: name.to_string(),
            interface: "eth0".into(),
            vrid,
            priority,
            interval: "100ms".into(),
            version: 3,
            vips: vips.iter().map(|s| s.to_string()).collect(),
            unicast_peers: Vec::new(),
            checksum_pseudo_header: None,
            extra: Vec::new(),
        }
    }

    setters! {
        /// Sets the interface.
        interface: &str,
        /// Sets the interval (`"1s"`, `"100ms"`).
        interval: &str,
        /// Sets the version.
        version: u8,
    }

    /// Sets unicast peers.
    pub fn unicast(mut self, peers: &[IpAddr]) -> Self {
        self.unicast_peers = peers.to_vec();
        self
    }

    /// Sets `checksum-pseudo-header`.
    pub fn pseudo_header(mut self, on: bool) -> Self {
        self.checksum_pseudo_header = Some(on);
        self
    }

    /// Adds a verbatim `key = value` line.
    pub fn line(mut self, l: &str) -> Self {
        self.extra.push(l.to_string());
        self
    }

    /// Sets `announce-count` and `announce-spacing` (`"100ms"`).
    pub fn announce(self, count: u32, spacing: &str) -> Self {
        self.line(&format!("announce-count = {count}"))
            .line(&format!("announce-spacing = \"{spacing}\""))
    }
}

/// Control socket path of the vipd on `host`.
pub fn vipd_socket(topo: &Topology, host: &str) -> PathBuf {
    topo.path(&format!("{host}.sock"))
}

/// The one builder of vipd configurations: the top-level keys of one host (control socket
/// and state directory in the run directory, metrics on the namespace's 127.0.0.1:9638
/// unless turned off, more keys), then whole tables such as `[arbiter]`, then the
/// `[[instance]]` tables.
#[derive(Debug, Clone)]
pub struct VipdConfig {
    socket: PathBuf,
    state_dir: PathBuf,
    metrics: bool,
    top: Vec<String>,
    tables: Vec<String>,
    instances: Vec<VipdInstance>,
}

impl VipdConfig {
    /// The configuration of the vipd on `host`, with no instance yet.
    pub fn new(topo: &Topology, host: &str) -> VipdConfig {
        VipdConfig {
            socket: vipd_socket(topo, host),
            state_dir: topo.path(&format!("{host}-state")),
            metrics: true,
            top: Vec::new(),
            tables: Vec::new(),
            instances: Vec::new(),
        }
    }

    /// Leaves `metrics-listen` out (no metrics endpoint).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = false;
        self
    }

    /// Adds top-level `key = value` line(s), verbatim.
    pub fn top(mut self, lines: &str) -> Self {
        self.top.push(lines.to_string());
        self
    }

    /// Adds a whole table (`[arbiter]` and its keys), verbatim, before the instances.
    pub fn table(mut self, text: &str) -> Self {
        self.tables.push(text.to_string());
        self
    }

    /// Adds an instance.
    pub fn instance(mut self, i: VipdInstance) -> Self {
        self.instances.push(i);
        self
    }

    /// The configuration of `host` with the one instance `i` and no metrics endpoint, as
    /// TOML text.
    pub fn only(topo: &Topology, host: &str, i: VipdInstance) -> String {
        VipdConfig::new(topo, host)
            .without_metrics()
            .instance(i)
            .render()
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let q = |s: &str| format!("\"{s}\"");
        let mut s = format!(
            "control-socket = {}\nstate-dir = {}\n",
            q(&self.socket.to_string_lossy()),
            q(&self.state_dir.to_string_lossy()),
        );
        if self.metrics {
            s.push_str(&format!("metrics-listen = \"127.0.0.1:{METRICS_PORT}\"\n"));
        }
        for l in &self.top {
            s.push_str(l.trim_end());
            s.push('\n');
        }
        for t in &self.tables {
            s.push('\n');
            s.push_str(t.trim_end());
            s.push('\n');
        }
        for i in &self.instances {
            i.render_into(&mut s);
        }
        s
    }
}

/// A complete vipd TOML for `host` with `instances` (see [`VipdConfig`]; metrics on).
pub fn vipd_conf(topo: &Topology, host: &str, instances: &[VipdInstance]) -> String {
    let mut c = VipdConfig::new(topo, host);
    c.instances = instances.to_vec();
    c.render()
}

impl VipdInstance {
    /// This instance's `[[instance]]` table, as TOML text (to join with a configuration
    /// built by hand).
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }

    /// Appends this instance's `[[instance]]` table to `s`.
    fn render_into(&self, s: &mut String) {
        let q = |s: &str| format!("\"{s}\"");
        let i = self;
        s.push_str("\n[[instance]]\n");
        s.push_str(&format!("name = {}\n", q(&i.name)));
        s.push_str(&format!("interface = {}\n", q(&i.interface)));
        s.push_str(&format!("vrid = {}\n", i.vrid));
        s.push_str(&format!("priority = {}\n", i.priority));
        s.push_str(&format!("advert-interval = {}\n", q(&i.interval)));
        s.push_str(&format!("version = {}\n", i.version));
        let vips: Vec<String> = i.vips.iter().map(|v| q(v)).collect();
        s.push_str(&format!("vips = [{}]\n", vips.join(", ")));
        let peers: Vec<String> = i.unicast_peers.iter().map(|p| q(&p.to_string())).collect();
        s.push_str(&format!("unicast-peers = [{}]\n", peers.join(", ")));
        if let Some(c) = i.checksum_pseudo_header {
            s.push_str(&format!("checksum-pseudo-header = {c}\n"));
        }
        for l in &i.extra {
            s.push_str(l);
            s.push('\n');
        }
    }
}

/// `vipctl -s SOCK ARGS...` inside `host`'s namespace, against that host's vipd.
pub fn vipctl(topo: &Topology, host: &str, args: &[&str]) -> super::CmdOutput {
    let bin = super::crate_bin("vipctl", "VIPCTL_BIN", option_env!("CARGO_BIN_EXE_vipctl"));
    let bin = bin.to_string_lossy().into_owned();
    let sock = vipd_socket(topo, host).to_string_lossy().into_owned();
    let mut argv = vec![bin.as_str(), "-s", sock.as_str()];
    argv.extend_from_slice(args);
    topo.exec(host, &argv)
}

/// [`vipctl`], panicking with its output when it fails; its stdout.
#[track_caller]
pub fn vipctl_ok(topo: &Topology, host: &str, args: &[&str]) -> String {
    let out = vipctl(topo, host, args);
    assert!(
        out.ok(),
        "vipctl {args:?} on {host} failed ({:?}): {}{}",
        out.status,
        out.stderr,
        out.stdout
    );
    out.stdout
}

/// `vipctl -s SOCK status --json` on `host`, parsed. `None` when vipctl fails (daemon not
/// up yet) or prints something that is not JSON.
pub fn vipd_status(topo: &Topology, host: &str) -> Option<serde_json::Value> {
    let out = vipctl(topo, host, &["status", "--json"]);
    if !out.ok() {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// The state (`"master"`, `"backup"`, ...) of instance `name` on `host`, if vipd answers.
pub fn vipd_state(topo: &Topology, host: &str, name: &str) -> Option<String> {
    instance_field(topo, host, name, "state").and_then(|v| v.as_str().map(String::from))
}

/// The status object of instance `name` from `status --json` on `host`, if vipd answers.
pub fn instance_status(topo: &Topology, host: &str, name: &str) -> Option<serde_json::Value> {
    let st = vipd_status(topo, host)?;
    st.get("instances")?
        .as_array()?
        .iter()
        .find(|i| i.get("name").and_then(|n| n.as_str()) == Some(name))
        .cloned()
}

/// One field of one instance from `status --json`.
pub fn instance_field(
    topo: &Topology,
    host: &str,
    name: &str,
    field: &str,
) -> Option<serde_json::Value> {
    instance_status(topo, host, name)?.get(field).cloned()
}

/// Whether a status field (as [`instance_field`] returns it) is a string containing
/// `fragment`.
pub fn text_contains(field: &Option<serde_json::Value>, fragment: &str) -> bool {
    field
        .as_ref()
        .and_then(|v| v.as_str())
        .is_some_and(|s| s.contains(fragment))
}

/// Waits until vipd on `host` reports `state` for `name`.
pub fn wait_vipd_state(
    topo: &Topology,
    host: &str,
    name: &str,
    state: &str,
    timeout: Duration,
) -> bool {
    wait_until(timeout, Duration::from_millis(50), || {
        vipd_state(topo, host, name).as_deref() == Some(state)
    })
}

/// [`wait_vipd_state`], panicking with the instance's status and a snapshot of the LAN
/// when the time runs out.
#[track_caller]
pub fn expect_vipd_state(topo: &Topology, host: &str, name: &str, state: &str, timeout: Duration) {
    assert!(
        wait_vipd_state(topo, host, name, state, timeout),
        "{host}: instance {name} not {state} within {timeout:?}: {:?}\n{}",
        instance_status(topo, host, name),
        topo.snapshot()
    );
}

/// The text of `http://127.0.0.1:9638/metrics` inside `host`'s namespace (curl, or python3
/// urllib when curl is missing). Empty when unreachable.
pub fn metrics_text(topo: &Topology, host: &str) -> String {
    let url = format!("http://127.0.0.1:{METRICS_PORT}/metrics");
    if super::which("curl").is_some() {
        let out = topo.exec(host, &["curl", "-s", "--max-time", "5", &url]);
        if out.ok() {
            return out.stdout;
        }
    }
    let py = format!(
        "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('{url}',timeout=5).read().decode())"
    );
    topo.exec(host, &["/usr/bin/python3", "-c", &py]).stdout
}

/// Sum of the samples of metric `name` whose labels include every `(key, value)` in
/// `labels` (Prometheus text format). 0 when none matches.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lab) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| lab.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if !ok {
                return None;
            }
            value.trim().parse::<f64>().ok()
        })
        .sum::<f64>()
        + 0.0
}

/// `vipd_adverts_dropped_total{reason=...}` on `host` (summed over interfaces).
pub fn dropped(topo: &Topology, host: &str, reason: &str) -> f64 {
    metric_sum(
        &metrics_text(topo, host),
        "vipd_adverts_dropped_total",
        &[("reason", reason)],
    )
}

/// Every `vipd_adverts_dropped_total` sample on `host`, as `reason -> count`.
pub fn drops_by_reason(topo: &Topology, host: &str) -> std::collections::BTreeMap<String, f64> {
    let mut m = std::collections::BTreeMap::new();
    for l in metrics_text(topo, host).lines() {
        let Some(rest) = l.strip_prefix("vipd_adverts_dropped_total{") else {
            continue;
        };
        let Some((lab, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(reason) = lab
            .split(',')
            .find_map(|kv| kv.strip_prefix("reason=\""))
            .map(|r| r.trim_end_matches('"').to_string())
        else {
            continue;
        };
        *m.entry(reason).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    m
}

/// A running tshark capture on one host's interface.
pub struct Capture {
    proc: Proc,
    /// The pcap file.
    pub file: PathBuf,
}

impl Topology {
    /// Starts `tshark -i IFACE -w FILE` on `host` and waits (bounded) until it captures.
    pub fn start_capture(&self, host: &str, iface: &str, name: &str) -> Capture {
        let file = self.path(&format!("{name}.pcapng"));
        let _ = std::fs::remove_file(&file);
        let f = file.to_string_lossy().into_owned();
        let proc = self.spawn(
            host,
            &["tshark", "-n", "-i", iface, "-w", &f],
            &format!("{name}-tshark.log"),
        );
        let started = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            proc.log().contains("Capturing on")
        });
        assert!(started, "tshark did not start on {host}: {}", proc.log());
        // tshark prints "Capturing on" just before the capture loop starts.
        std::thread::sleep(Duration::from_millis(300));
        Capture { proc, file }
    }
}

impl Capture {
    /// Stops the capture (SIGINT, so the file is complete) and returns its path.
    pub fn stop(self) -> PathBuf {
        let _ = self.proc.signal(nix::sys::signal::Signal::SIGINT);
        if self.proc.wait_timeout(Duration::from_secs(15)).is_none() {
            let _ = self.proc.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = self.proc.wait_timeout(Duration::from_secs(5));
        }
        self.file
    }
}

/// `tshark -r FILE -Y FILTER -T fields -E separator=| -e F...` with extra `-o` preferences;
/// one `Vec<String>` per packet (multi-valued fields stay comma-joined).
pub fn tshark_fields(
    file: &std::path::Path,
    filter: &str,
    fields: &[&str],
    prefs: &[&str],
) -> Vec<Vec<String>> {
    let f = file.to_string_lossy().into_owned();
    let mut argv: Vec<&str> = vec!["tshark", "-n", "-r", &f, "-Y", filter];
    for p in prefs {
        argv.push("-o");
        argv.push(p);
    }
    argv.extend_from_slice(&["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for fl in fields {
        argv.push("-e");
        argv.push(fl);
    }
    let out = super::run_cmd(&argv, None, Duration::from_secs(60));
    assert!(
        out.ok(),
        "`{}` failed: {}",
        argv.join(" "),
        out.stderr.trim()
    );
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(String::from).collect())
        .collect()
}

/// Path of the hostile-packet script (`integration/hostile/vrrp_craft.py`).
pub fn craft_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/hostile/vrrp_craft.py")
}

/// Runs the crafting script on `host` (system python3 with scapy) with `args`; returns
/// its stdout. Panics with stderr on failure. Bounded by the harness's 20 s command
/// timeout per call unless `long` (then up to 120 s).
pub fn craft<S: AsRef<str>>(topo: &Topology, host: &str, args: &[S], long: bool) -> String {
    let script = craft_script();
    let s = script.to_string_lossy().into_owned();
    let ns = topo.ns(host);
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut argv = vec!["ip", "netns", "exec", ns.as_str(), "/usr/bin/python3", &s];
    argv.extend_from_slice(&args);
    let timeout = if long {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(20)
    };
    let t0 = Instant::now();
    let out = super::run_cmd(&argv, None, timeout);
    assert!(
        out.ok(),
        "craft {} failed after {:?} ({:?}): {}\n{}",
        args.join(" "),
        t0.elapsed(),
        out.status,
        out.stderr.trim(),
        out.stdout.trim()
    );
    out.stdout
}

/// The crafting script's arguments for a flood: `case` adverts from `src` for `vrid`,
/// `count` of them `gap` seconds apart, for at most `secs` seconds; then `extra` (such as
/// `--prio 0`).
pub fn flood_args(
    case: &str,
    src: &str,
    vrid: u8,
    count: u32,
    gap: &str,
    secs: u32,
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        format!("--case={case}"),
        format!("--src={src}"),
        format!("--vrid={vrid}"),
        format!("--count={count}"),
        format!("--gap={gap}"),
        format!("--duration={secs}"),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Starts the crafting script as a background process (for adverts sent over seconds).
pub fn craft_spawn<S: AsRef<str>>(topo: &Topology, host: &str, args: &[S], log: &str) -> Proc {
    let script = craft_script();
    let s = script.to_string_lossy().into_owned();
    let mut argv = vec!["/usr/bin/python3", s.as_str()];
    argv.extend(args.iter().map(AsRef::as_ref));
    topo.spawn(host, &argv, log)
}
