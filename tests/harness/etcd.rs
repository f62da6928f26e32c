//! A real etcd cluster (Debian's etcd-server 3.4) on the test LAN, for the arbiter tests,
//! and a netlink watcher that records when each host holds a VIP.
//!
//! Members run on extra hosts `etcd1`, `etcd2`, `etcd3` (192.0.2.31..33; build the
//! topology with [`etcd_topology_opts`]) with `--heartbeat-interval 20 --election-timeout
//! 200`, so the cluster is healthy in about 2 s and leader changes take a fraction of a
//! second. Data directories live in the run directory. The members are processes of the
//! topology: its teardown ends them, also on panic; [`EtcdCluster`]'s Drop kills them first.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::process::{run_cmd, Proc};
use super::topology::{Topology, TopologyOpts};
use super::wait_until;

/// The member host names.
pub const MEMBERS: [&str; 3] = ["etcd1", "etcd2", "etcd3"];

/// Topology options with the three etcd hosts added.
pub fn etcd_topology_opts() -> TopologyOpts {
    MEMBERS
        .iter()
        .fold(TopologyOpts::default(), |o, m| o.with_host(m))
}

/// A three-member etcd cluster on the test LAN.
pub struct EtcdCluster {
    procs: Vec<Option<Proc>>,
    ips: Vec<IpAddr>,
    dir: PathBuf,
    token: String,
    tls: Option<EtcdTls>,
    /// `user:password` for etcdctl once auth is enabled.
    root: Option<String>,
}

/// Certificates for a TLS cluster (PEM files in the run directory), made with openssl:
/// a CA, a server certificate for the members' addresses and a client certificate (CN
/// lb-client, which is no etcd user: with auth on, only a password login gets rights).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate and key.
    pub server: (PathBuf, PathBuf),
    /// Client certificate and key.
    pub client: (PathBuf, PathBuf),
}

impl EtcdTls {
    /// Makes the certificates in `dir` (panics with openssl's output on failure).
    pub fn make(dir: &std::path::Path, ips: &[IpAddr]) -> EtcdTls {
        let _ = std::fs::create_dir_all(dir);
        let p = |f: &str| dir.join(f).display().to_string();
        let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth,clientAuth\n",
                san.join(",")
            ),
        )
        .expect("write server.ext");
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
            .expect("write client.ext");
        let run = |argv: &[&str]| {
            let out = run_cmd(argv, None, Duration::from_secs(30));
            assert!(out.ok(), "{argv:?}: {}{}", out.stdout, out.stderr);
        };
        run(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=vipd-test-ca",
        ]);
        for (name, cn) in [("server", "etcd"), ("client", "lb-client")] {
            let (key, csr, pem, ext) = (
                p(&format!("{name}.key")),
                p(&format!("{name}.csr")),
                p(&format!("{name}.pem")),
                p(&format!("{name}.ext")),
            );
            let subj = format!("/CN={cn}");
            run(&[
                "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
                "-subj", &subj,
            ]);
            run(&[
                "openssl",
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        EtcdTls {
            ca: dir.join("ca.pem"),
            server: (dir.join("server.pem"), dir.join("server.key")),
            client: (dir.join("client.pem"), dir.join("client.key")),
        }
    }
}

impl EtcdCluster {
    /// Starts the three members and waits (bounded) until every one reports healthy.
    pub fn start(topo: &Topology) -> EtcdCluster {
        Self::start_with(topo, false)
    }

    /// Like [`EtcdCluster::start`], with TLS on the client URLs (https, client
    /// certificates required; [`EtcdCluster::tls`] has the files).
    pub fn start_tls(topo: &Topology) -> EtcdCluster {
        Self::start_with(topo, true)
    }

    fn start_with(topo: &Topology, tls: bool) -> EtcdCluster {
        let ips: Vec<IpAddr> = MEMBERS.iter().map(|m| topo.ip4(m).into()).collect();
        let tls = tls.then(|| EtcdTls::make(&topo.path("etcd-tls"), &ips));
        let mut c = EtcdCluster {
            procs: vec![None, None, None],
            ips,
            dir: topo.path("etcd"),
            token: topo.prefix().trim_end_matches('-').to_owned(),
            tls,
            root: None,
        };
        for i in 0..MEMBERS.len() {
            c.spawn(topo, i, "new");
        }
        // 200 ms elections take longer on a loaded 2-core machine: be generous.
        c.wait_healthy(topo, Duration::from_secs(60));
        c
    }

    fn spawn(&mut self, topo: &Topology, i: usize, state: &str) {
        let name = MEMBERS[i];
        let ip = self.ips[i];
        let initial: Vec<String> = MEMBERS
            .iter()
            .zip(&self.ips)
            .map(|(m, ip)| format!("{m}=http://{ip}:2380"))
            .collect();
        let data = self.dir.join(name);
        let _ = std::fs::create_dir_all(&self.dir);
        let scheme = self.scheme();
        let mut args: Vec<String> = vec![
            "etcd".into(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen-peer-urls".into(),
            format!("http://{ip}:2380"),
            "--initial-advertise-peer-urls".into(),
            format!("http://{ip}:2380"),
            "--listen-client-urls".into(),
            format!("{scheme}://{ip}:2379"),
            "--advertise-client-urls".into(),
            format!("{scheme}://{ip}:2379"),
            "--initial-cluster".into(),
            initial.join(","),
            "--initial-cluster-state".into(),
            state.into(),
            "--initial-cluster-token".into(),
            self.token.clone(),
            "--heartbeat-interval".into(),
            "20".into(),
            "--election-timeout".into(),
            "200".into(),
            "--logger".into(),
            "zap".into(),
        ];
        if let Some(t) = &self.tls {
            for (flag, path) in [
                ("--cert-file", &t.server.0),
                ("--key-file", &t.server.1),
                ("--trusted-ca-file", &t.ca),
            ] {
                args.push(flag.into());
                args.push(path.display().to_string());
            }
            args.push("--client-cert-auth".into());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.procs[i] = Some(topo.spawn(name, &argv, &format!("{name}.log")));
    }

    /// The client URLs, for `etcd-endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = self.scheme();
        self.ips
            .iter()
            .map(|ip| format!("{scheme}://{ip}:2379"))
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The certificates of a TLS cluster.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    /// Enables etcd authentication: a root user, and `user` with `password` allowed to
    /// read and write under `/vipd/`. etcdctl uses root from then on.
    pub fn enable_auth(&mut self, topo: &Topology, user: &str, password: &str) {
        let root_pw = "root-pw";
        let steps: Vec<Vec<String>> = vec![
            vec!["user".into(), "add".into(), format!("root:{root_pw}")],
            vec!["user".into(), "add".into(), format!("{user}:{password}")],
            vec!["role".into(), "add".into(), "vipd".into()],
            vec![
                "role".into(),
                "grant-permission".into(),
                "vipd".into(),
                "--prefix=true".into(),
                "readwrite".into(),
                "/vipd/".into(),
            ],
            vec![
                "user".into(),
                "grant-role".into(),
                user.into(),
                "vipd".into(),
            ],
            vec!["auth".into(), "enable".into()],
        ];
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            let out = self.etcdctl(topo, None, &args);
            assert!(!out.contains("Error"), "etcdctl {step:?}: {out}");
        }
        self.root = Some(format!("root:{root_pw}"));
    }

    /// `etcd-endpoints = [...]` as TOML.
    pub fn endpoints_toml(&self) -> String {
        let e: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", e.join(", "))
    }

    /// Runs etcdctl on the client host against every member (or `only` one).
    pub fn etcdctl(&self, topo: &Topology, only: Option<usize>, args: &[&str]) -> String {
        let eps = match only {
            Some(i) => format!("{}://{}:2379", self.scheme(), self.ips[i]),
            None => self.endpoints().join(","),
        };
        let ns = topo.host("client").ns.clone();
        let mut extra: Vec<String> = Vec::new();
        if let Some(t) = &self.tls {
            extra.push(format!("--cacert={}", t.ca.display()));
            extra.push(format!("--cert={}", t.client.0.display()));
            extra.push(format!("--key={}", t.client.1.display()));
        }
        if let Some(r) = &self.root {
            extra.push(format!("--user={r}"));
        }
        let mut argv = vec![
            "ip",
            "netns",
            "exec",
            ns.as_str(),
            "etcdctl",
            "--endpoints",
            eps.as_str(),
            "--dial-timeout",
            "1s",
            "--command-timeout",
            "5s",
        ];
        argv.extend(extra.iter().map(String::as_str));
        argv.extend_from_slice(args);
        let out = run_cmd(&argv, None, Duration::from_secs(10));
        format!("{}{}", out.stdout, out.stderr)
    }

    /// Whether member `i` answers `endpoint health` as healthy.
    pub fn healthy(&self, topo: &Topology, i: usize) -> bool {
        self.etcdctl(topo, Some(i), &["endpoint", "health"])
            .contains("is healthy")
    }

    /// Waits until every running member is healthy (panics after `timeout`).
    pub fn wait_healthy(&self, topo: &Topology, timeout: Duration) {
        let ok = wait_until(timeout, Duration::from_millis(200), || {
            (0..MEMBERS.len())
                .filter(|i| self.procs[*i].as_ref().is_some_and(|p| p.is_running()))
                .all(|i| self.healthy(topo, i))
        });
        if !ok {
            let logs: Vec<String> = self
                .procs
                .iter()
                .flatten()
                .map(|p| format!("{}:\n{}", p.describe(), tail(&p.log(), 20)))
                .collect();
            panic!(
                "etcd cluster not healthy within {timeout:?}\n{}",
                logs.join("\n")
            );
        }
    }

    /// The index of the current leader, if one answers.
    pub fn leader(&self, topo: &Topology) -> Option<usize> {
        for i in 0..MEMBERS.len() {
            if !self.procs[i].as_ref().is_some_and(|p| p.is_running()) {
                continue;
            }
            let out = self.etcdctl(topo, Some(i), &["endpoint", "status", "-w", "json"]);
            // [{"Endpoint": ..., "Status": {"header": {"member_id": M, ...}, "leader": L, ...}}]
            let Some(json) = out.find('[').map(|at| &out[at..]) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json.trim()) else {
                continue;
            };
            let st = &v[0]["Status"];
            let (me, leader) = (&st["header"]["member_id"], &st["leader"]);
            if !me.is_null() && me == leader {
                return Some(i);
            }
        }
        None
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.procs[i].take() {
            let _ = p.signal(Signal::SIGKILL);
            let _ = p.wait_timeout(Duration::from_secs(5));
        }
    }

    /// Kills every member.
    pub fn kill_all(&mut self) {
        for i in 0..MEMBERS.len() {
            self.kill(i);
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, topo: &Topology, i: usize) {
        self.kill(i);
        self.spawn(topo, i, "existing");
    }

    /// The value of `key` and its create revision, read through etcdctl.
    pub fn get(&self, topo: &Topology, key: &str) -> Option<(String, i64)> {
        // A few tries: etcdctl can time out on a loaded machine.
        (0..5).find_map(|_| self.get_once(topo, key))
    }

    fn get_once(&self, topo: &Topology, key: &str) -> Option<(String, i64)> {
        let out = self.etcdctl(topo, None, &["get", key, "-w", "fields"]);
        let field = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("\"{name}\" :")))
                .map(|l| l.split_once(" : ").map_or("", |(_, v)| v).trim().to_owned())
        };
        let value = field("Value")?;
        let rev = field("CreateRevision")?.parse().ok()?;
        Some((value.trim_matches('"').to_owned(), rev))
    }

    /// Every member's log tail, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .flatten()
            .map(|p| format!("--- {}\n{}", p.describe(), tail(&p.log(), 15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for p in self.procs.iter().flatten() {
            let _ = p.signal(Signal::SIGKILL);
            let _ = p.wait_timeout(Duration::from_secs(5));
        }
        // The data directories hold preallocated 64 MB WAL files: never keep them (the
        // members' logs stay in the run directory when a test fails).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- who holds the VIP, to the millisecond --------------------------------------------

/// `ip -ts monitor address` on each host, started before the agents: every add and
/// delete of the VIP with a microsecond wall-clock timestamp.
pub struct VipWatch {
    vip: IpAddr,
    monitors: Vec<(String, Proc)>,
    started: Instant,
}

/// One host's holding of the VIP: from, to (seconds of the day, wall clock).
pub type Spans = BTreeMap<String, Vec<(f64, Option<f64>)>>;

impl VipWatch {
    /// Starts a monitor on each of `hosts` and waits until they run.
    pub fn start(topo: &Topology, hosts: &[&str], vip: IpAddr) -> VipWatch {
        let monitors: Vec<(String, Proc)> = hosts
            .iter()
            .map(|h| {
                let p = topo.spawn(
                    h,
                    &["ip", "-ts", "monitor", "address", "dev", "eth0"],
                    &format!("{h}-addrmon.log"),
                );
                (h.to_string(), p)
            })
            .collect();
        // `ip monitor` prints nothing until an event: give it a moment to subscribe.
        std::thread::sleep(Duration::from_millis(300));
        for (h, p) in &monitors {
            assert!(
                p.is_running(),
                "ip monitor on {h} did not start: {}",
                p.log()
            );
        }
        VipWatch {
            vip,
            monitors,
            started: Instant::now(),
        }
    }

    /// Each host's spans of holding the VIP (an open span has no end).
    pub fn spans(&self) -> Spans {
        let needle = match self.vip {
            IpAddr::V4(a) => format!("inet {a}/"),
            IpAddr::V6(a) => format!("inet6 {a}/"),
        };
        let mut out = Spans::new();
        for (h, p) in &self.monitors {
            let mut spans: Vec<(f64, Option<f64>)> = Vec::new();
            for line in p.log().lines() {
                if !line.contains(&needle) {
                    continue;
                }
                let Some(t) = parse_ts(line) else { continue };
                let deleted = line.contains("Deleted");
                match (deleted, spans.last_mut()) {
                    (false, Some((_, None))) => {}
                    (false, _) => spans.push((t, None)),
                    (true, Some(last @ (_, None))) => last.1 = Some(t),
                    (true, _) => {}
                }
            }
            out.insert(h.clone(), spans);
        }
        out
    }

    /// Milliseconds during which two or more hosts held the VIP, and the intervals, up to
    /// `now` (wall clock seconds of the day) for open spans.
    pub fn overlap_ms(&self) -> (f64, Vec<(f64, f64)>) {
        let now = seconds_of_day_now();
        let spans = self.spans();
        let mut edges: Vec<(f64, i32)> = Vec::new();
        for s in spans.values() {
            for (a, b) in s {
                edges.push((*a, 1));
                edges.push((b.unwrap_or(now), -1));
            }
        }
        edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let (mut n, mut since, mut total, mut list) = (0, 0.0, 0.0, Vec::new());
        for (t, d) in edges {
            let before = n;
            n += d;
            if before < 2 && n >= 2 {
                since = t;
            } else if before >= 2 && n < 2 {
                total += (t - since) * 1000.0;
                list.push((since, t));
            }
        }
        (total, list)
    }

    /// A readable dump of the spans (for failure messages).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (h, spans) in self.spans() {
            s.push_str(&format!("{h}:"));
            for (a, b) in spans {
                match b {
                    Some(b) => s.push_str(&format!(" [{a:.3} .. {b:.3}]")),
                    None => s.push_str(&format!(" [{a:.3} ..)")),
                }
            }
            s.push('\n');
        }
        s
    }

    /// How long the watch has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The `[2026-12-03T09:15:01.123456]` prefix of an `ip -ts` line, as seconds of the day.
fn parse_ts(line: &str) -> Option<f64> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    let time = inner.split('T').nth(1)?;
    let mut it = time.split(':');
    let h: f64 = it.next()?.parse().ok()?;
    let m: f64 = it.next()?.parse().ok()?;
    let s: f64 = it.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Wall-clock seconds of the day now (local time as `ip -ts` prints it: the harness runs
/// with TZ unset, i.e. UTC on these machines).
pub fn seconds_of_day_now() -> f64 {
    let out = run_cmd(&["date", "+%H:%M:%S.%N"], None, Duration::from_secs(2));
    let mut it = out.stdout.trim().split(':');
    let h: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let m: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let s: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_ts("[2026-12-03T09:15:01.500000] 2: eth0    inet 192.0.2.100/24"),
            Some(9.0 * 3600.0 + 15.0 * 60.0 + 1.5)
        );
        assert_eq!(parse_ts("Deleted 2: eth0"), None);
    }
}
