//! Namespaces, bridge, veths, addresses, sysctls, switch controls, observers and teardown.
//!
//! Longer than 600 lines on purpose: it is one type, [`Topology`], whose parts (creation,
//! switch controls, observers, teardown) share one invariant: everything it creates is named
//! after the run and removed by its `Drop`, also on failure. Waiters are in `wait.rs`,
//! processes in `process.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::process::{read_from, run_cmd, CmdOutput, Proc, Procs};

/// Prefix of every namespace the harness creates: `vipd-<pid>-<counter>-<host>`.
pub const NS_PREFIX: &str = "vipd-";

/// Timeout for one short `ip`/`nft`/`sysctl` command.
const CMD_TIMEOUT: Duration = Duration::from_secs(20);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces of live topologies, for the SIGINT clean-up of demo binaries.
static LIVE: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());

/// Which LAN a host interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lan {
    /// `eth0` on bridge `br0`: 192.0.2.0/24 and 2001:db8::/64. Every host is on it.
    First,
    /// `eth1` on bridge `br1`: 198.51.100.0/24 and 2001:db8:2::/64; only lb1 and lb2, and only
    /// with [`TopologyOpts::second_lan`].
    Second,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct TopologyOpts {
    /// Hosts besides lb1, lb2 and client, e.g. `rogue` (at most 13 characters each).
    pub extra_hosts: Vec<String>,
    /// Add `eth1` on lb1 and lb2, on a second bridge (for sync-group tests).
    pub second_lan: bool,
}

impl TopologyOpts {
    /// Adds an extra host (`rogue` gets .66 / ::66, others .70 upwards).
    pub fn with_host(mut self, name: &str) -> Self {
        self.extra_hosts.push(name.to_string());
        self
    }

    /// Adds the second LAN.
    pub fn with_second_lan(mut self) -> Self {
        self.second_lan = true;
        self
    }
}

/// One host's fixed facts.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name (lb1, lb2, client, rogue...).
    pub name: String,
    /// Full namespace name.
    pub ns: String,
    /// IPv4 address on eth0 (/24).
    pub ip4: Ipv4Addr,
    /// IPv6 address on eth0 (/64, nodad).
    pub ip6: Ipv6Addr,
    /// MAC of eth0 (set by the harness: 02:00:00:00:00:<octet's decimal digits>).
    pub mac: String,
    /// Last octet / interface id of its addresses.
    pub octet: u8,
    /// Addresses on eth1 when on the second LAN.
    pub lan2: Option<(Ipv4Addr, Ipv6Addr)>,
}

/// A LAN of network namespaces around a bridge. Tears everything down on drop, also on panic
/// (and then prints every process log).
pub struct Topology {
    prefix: String,
    sw: String,
    hosts: BTreeMap<String, Host>,
    /// Every namespace created so far (created ones only: teardown deletes exactly these).
    namespaces: Vec<String>,
    run_dir: PathBuf,
    procs: Procs,
    partitions: Vec<(String, String)>,
    /// UDP destination ports dropped between two hosts' switch ports (both directions).
    udp_partitions: Vec<(String, String, u16)>,
    /// Pairs of hosts between which nothing crosses the switch ([`Topology::block`]).
    blocks: Vec<(String, String)>,
    loss_percent: u8,
    second_lan: bool,
}

/// The switch-side veth of `host` on `lan` (unique within `sw`; <= 15 characters).
fn port_name(host: &str, lan: Lan) -> String {
    match lan {
        Lan::First => format!("p-{host}"),
        Lan::Second => format!("q-{host}"),
    }
}

fn octet_for(name: &str, extra_index: usize) -> u8 {
    match name {
        "lb1" => 11,
        "lb2" => 12,
        "client" => 50,
        "rogue" => 66,
        // etcd members of the arbiter tests (harness::etcd).
        "etcd1" => 31,
        "etcd2" => 32,
        "etcd3" => 33,
        _ => 70u8.saturating_add(extra_index as u8),
    }
}

fn ip_ok(argv: &[&str]) -> Result<String, String> {
    let out = run_cmd(argv, None, CMD_TIMEOUT);
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`{}` failed ({:?}): {}",
            argv.join(" "),
            out.status,
            out.stderr.trim()
        ))
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every process in namespace `ns` (a few rounds, in case of forks) and deletes it.
pub(super) fn destroy_ns(ns: &str) {
    for _ in 0..5 {
        let out = run_cmd(&["ip", "netns", "pids", ns], None, CMD_TIMEOUT);
        let pids: Vec<i32> = out
            .stdout
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run_cmd(&["ip", "netns", "del", ns], None, CMD_TIMEOUT);
    if !out.ok() && !out.stderr.contains("No such file") {
        eprintln!(
            "harness: cannot delete namespace {ns}: {}",
            out.stderr.trim()
        );
    }
}

/// Removes namespaces `vipd-<pid>-...` left by runs whose process is gone.
fn remove_stale_namespaces() {
    let me = std::process::id();
    let Ok(list) = ip_ok(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != me && !pid_alive(pid) {
            eprintln!("harness: removing stale namespace {name} (pid {pid} is gone)");
            destroy_ns(name);
        }
    }
}

/// Installs a SIGINT/SIGTERM handler for demo binaries (not for tests): on the signal, every
/// live topology's processes are killed and its namespaces deleted, then the process exits
/// with 130. Call it once, before starting other threads (it blocks the signals in the calling
/// thread, which new threads inherit, and waits for them in a thread of its own).
pub fn cleanup_on_sigint() -> Result<(), String> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| format!("pthread_sigmask: {e}"))?;
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("harness: {sig}: tearing down namespaces");
            let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for nss in live {
                for ns in nss.iter().rev() {
                    destroy_ns(ns);
                }
            }
            std::process::exit(130);
        }
    });
    Ok(())
}

impl Topology {
    /// Builds sw + lb1 + lb2 + client (+ extras, + second LAN). Panics with the failing
    /// command on error; whatever was built is torn down by Drop.
    pub fn new(opts: TopologyOpts) -> Topology {
        remove_stale_namespaces();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{NS_PREFIX}{}-{n}-", std::process::id());
        let run_dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
        let _ = std::fs::remove_dir_all(&run_dir);
        if let Err(e) = std::fs::create_dir_all(&run_dir) {
            panic!("harness: cannot create run dir {}: {e}", run_dir.display());
        }
        let mut names: Vec<String> = vec!["lb1".into(), "lb2".into(), "client".into()];
        for h in &opts.extra_hosts {
            assert!(
                !names.contains(h) && h != "sw",
                "harness: duplicate host name {h:?}"
            );
            assert!(
                !h.is_empty()
                    && h.len() <= 13
                    && h.chars().all(|c| c.is_ascii_alphanumeric()),
                "harness: host name {h:?} must be 1..13 ASCII letters/digits (interface name limit)"
            );
            names.push(h.clone());
        }
        let mut hosts = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let octet = octet_for(name, i.saturating_sub(3));
            // Written in hex with the decimal digits of the octet: lb1 is 2001:db8::11 and
            // 02:00:00:00:00:11, like 192.0.2.11.
            let hex = u16::from_str_radix(&octet.to_string(), 16).unwrap_or(octet as u16);
            let on_lan2 = opts.second_lan && (name == "lb1" || name == "lb2");
            hosts.insert(
                name.clone(),
                Host {
                    name: name.clone(),
                    ns: format!("{prefix}{name}"),
                    ip4: Ipv4Addr::new(192, 0, 2, octet),
                    ip6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, hex),
                    mac: format!("02:00:00:00:00:{:02x}", hex & 0xff),
                    octet,
                    lan2: on_lan2.then(|| {
                        (
                            Ipv4Addr::new(198, 51, 100, octet),
                            Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, hex),
                        )
                    }),
                },
            );
        }
        let mut topo = Topology {
            sw: format!("{prefix}sw"),
            prefix,
            hosts,
            namespaces: Vec::new(),
            run_dir,
            procs: Procs::default(),
            partitions: Vec::new(),
            udp_partitions: Vec::new(),
            blocks: Vec::new(),
            loss_percent: 0,
            second_lan: opts.second_lan,
        };
        if let Err(e) = topo.build() {
            panic!("harness: building topology {}: {e}", topo.prefix);
        }
        topo
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        ip_ok(&["ip", "netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v| !v.iter().any(|n| n.starts_with(&self.prefix)));
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.namespaces.clone());
        ip_ok(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        // Addresses and link-locals usable at once: no DAD on interfaces created from now on.
        self.sysctl(ns, "net.ipv6.conf.all.accept_dad", "0")?;
        self.sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")?;
        Ok(())
    }

    fn sysctl(&self, ns: &str, key: &str, val: &str) -> Result<(), String> {
        ip_ok(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={val}"),
        ])
        .map(|_| ())
    }

    fn build(&mut self) -> Result<(), String> {
        let sw = self.sw.clone();
        self.add_ns(&sw)?;
        let mut bridges = vec!["br0"];
        if self.second_lan {
            bridges.push("br1");
        }
        for br in &bridges {
            // STP off (ports forward at once); multicast snooping off so that IPv6 VRRP
            // (ff02::12) is flooded like 224.0.0.18 whatever MLD reports were seen.
            ip_ok(&[
                "ip",
                "-n",
                &sw,
                "link",
                "add",
                br,
                "type",
                "bridge",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            ])?;
            ip_ok(&["ip", "-n", &sw, "link", "set", br, "up"])?;
        }
        let hosts: Vec<Host> = self.hosts.values().cloned().collect();
        for h in &hosts {
            self.add_ns(&h.ns)?;
            let mut lans = vec![(Lan::First, "eth0", "br0", h.ip4, h.ip6, h.mac.clone())];
            if let Some((v4, v6)) = h.lan2 {
                lans.push((
                    Lan::Second,
                    "eth1",
                    "br1",
                    v4,
                    v6,
                    format!("02:00:00:00:01:{}", &h.mac[15..]),
                ));
            }
            for (lan, ifname, br, v4, v6, mac) in lans {
                let port = port_name(&h.name, lan);
                // Created directly inside sw with the peer inside the host: nothing ever
                // appears in the root namespace, so parallel runs cannot collide.
                ip_ok(&[
                    "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", ifname,
                    "netns", &h.ns,
                ])?;
                ip_ok(&["ip", "-n", &sw, "link", "set", &port, "master", br, "up"])?;
                ip_ok(&["ip", "-n", &h.ns, "link", "set", ifname, "address", &mac])?;
                let v4 = format!("{v4}/24");
                let v6 = format!("{v6}/64");
                ip_ok(&["ip", "-n", &h.ns, "addr", "add", &v4, "dev", ifname])?;
                ip_ok(&[
                    "ip", "-n", &h.ns, "addr", "add", &v6, "dev", ifname, "nodad",
                ])?;
                ip_ok(&["ip", "-n", &h.ns, "link", "set", ifname, "up"])?;
            }
            if h.name != "client" {
                // Responders bind to the VIP whether or not it is local (answering only while
                // it is: the kernel delivers to a non-local address only once it is local).
                self.sysctl(&h.ns, "net.ipv4.ip_nonlocal_bind", "1")?;
                self.sysctl(&h.ns, "net.ipv6.ip_nonlocal_bind", "1")?;
            }
            // The client keeps net.ipv4.conf.*.arp_accept at its default 0, deliberately: a
            // gratuitous ARP then only updates an entry the client already has, which is the
            // case that matters (the client talked to the old master) and the one that
            // punishes a master that fails to re-announce after a split brain.
        }
        Ok(())
    }

    // ---- facts ---------------------------------------------------------------------------

    /// Run-unique prefix of every namespace name (`vipd-<pid>-<n>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The host record. Panics on an unknown host, naming the known ones.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts.get(name).unwrap_or_else(|| {
            panic!(
                "harness: no host {name:?} in this topology (hosts: {:?})",
                self.hosts.keys().collect::<Vec<_>>()
            )
        })
    }

    /// Namespace name of a host (or `sw`).
    pub fn ns(&self, name: &str) -> String {
        if name == "sw" {
            self.sw.clone()
        } else {
            self.host(name).ns.clone()
        }
    }

    /// IPv4 address of a host's eth0.
    pub fn ip4(&self, name: &str) -> Ipv4Addr {
        self.host(name).ip4
    }

    /// IPv6 address of a host's eth0.
    pub fn ip6(&self, name: &str) -> Ipv6Addr {
        self.host(name).ip6
    }

    /// MAC of a host's eth0.
    pub fn mac(&self, name: &str) -> String {
        self.host(name).mac.clone()
    }

    /// Host whose eth0 has this MAC.
    pub fn host_by_mac(&self, mac: &str) -> Option<String> {
        self.hosts
            .values()
            .find(|h| h.mac.eq_ignore_ascii_case(mac))
            .map(|h| h.name.clone())
    }

    /// Per-run directory for configs, pid files and logs (kept when a test fails).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// A path inside the run directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.run_dir.join(file)
    }

    pub(crate) fn procs(&self) -> &Procs {
        &self.procs
    }

    // ---- commands and processes ------------------------------------------------------------

    /// Runs a short command inside a host's namespace (bounded by a 20 s timeout).
    pub fn exec(&self, host: &str, argv: &[&str]) -> CmdOutput {
        let ns = self.ns(host);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(argv);
        run_cmd(&full, None, CMD_TIMEOUT)
    }

    /// Like [`Topology::exec`], panicking with host, command and stderr on failure.
    pub fn exec_ok(&self, host: &str, argv: &[&str]) -> String {
        let out = self.exec(host, argv);
        if !out.ok() {
            panic!(
                "harness: on {host}: `{}` failed ({:?}): {}{}",
                argv.join(" "),
                out.status,
                out.stderr.trim(),
                out.stdout.trim()
            );
        }
        out.stdout
    }

    /// Starts a long-running process on `host`; stdout+stderr go to `log` (a file name in the
    /// run directory, or an absolute path). Tracked: teardown kills it.
    pub fn spawn(&self, host: &str, argv: &[&str], log: &str) -> Proc {
        let ns = self.ns(host);
        let log = self.run_dir.join(log);
        let label = Path::new(argv.first().copied().unwrap_or("?"))
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        self.procs
            .spawn(&ns, host, &label, &argv, &log)
            .unwrap_or_else(|e| panic!("harness: {e}"))
    }

    // ---- switch controls -------------------------------------------------------------------

    /// Sets the switch-side veth of `host` down: the host loses carrier, nothing crosses.
    pub fn cut_link(&self, host: &str) {
        self.set_port(host, Lan::First, false);
    }

    /// Undoes [`Topology::cut_link`].
    pub fn restore_link(&self, host: &str) {
        self.set_port(host, Lan::First, true);
    }

    /// Sets the switch-side veth of `host` on `lan` up or down.
    pub fn set_port(&self, host: &str, lan: Lan, up: bool) {
        self.host(host);
        let port = port_name(host, lan);
        let state = if up { "up" } else { "down" };
        if let Err(e) = ip_ok(&["ip", "-n", &self.sw, "link", "set", &port, state]) {
            panic!("harness: setting {host}'s switch port {port} {state}: {e}");
        }
    }

    /// Drops VRRP (IP protocol 112, v4 and v6) between the switch ports of `a` and `b`, both
    /// directions; everything else still flows. Cumulative until [`Topology::heal`].
    pub fn partition_vrrp(&mut self, a: &str, b: &str) {
        self.host(a);
        self.host(b);
        self.partitions.push((a.to_string(), b.to_string()));
        self.apply_nft();
    }

    /// Drops UDP to destination `port` (IPv4 and IPv6) between the switch ports of `a` and
    /// `b`, both directions (e.g. 3784: BFD only). Cumulative until [`Topology::heal`].
    pub fn partition_udp(&mut self, a: &str, b: &str, port: u16) {
        self.host(a);
        self.host(b);
        self.udp_partitions
            .push((a.to_string(), b.to_string(), port));
        self.apply_nft();
    }

    /// Removes every VRRP and UDP partition (random loss stays as set).
    pub fn heal(&mut self) {
        self.partitions.clear();
        self.udp_partitions.clear();
        self.apply_nft();
    }

    /// Drops all traffic between the switch ports of `a` and `b`, both directions
    /// (e.g. cut a load balancer off from the etcd members but not from its peer).
    /// Cumulative until [`Topology::unblock_all`].
    pub fn block(&mut self, a: &str, b: &str) {
        self.host(a);
        self.host(b);
        self.blocks.push((a.to_string(), b.to_string()));
        self.apply_nft();
    }

    /// Removes every [`Topology::block`].
    pub fn unblock_all(&mut self) {
        self.blocks.clear();
        self.apply_nft();
    }

    /// Drops `percent`% of all frames crossing the switch at random (0 turns it off).
    pub fn random_loss(&mut self, percent: u8) {
        assert!(
            percent <= 100,
            "harness: loss {percent}% is not a percentage"
        );
        self.loss_percent = percent;
        self.apply_nft();
    }

    /// The nftables ruleset the switch should have now (empty table when nothing is set).
    pub fn nft_ruleset(&self) -> String {
        let mut rules = String::new();
        for (a, b) in &self.partitions {
            for (i, o) in [(a, b), (b, a)] {
                let (pi, po) = (port_name(i, Lan::First), port_name(o, Lan::First));
                rules.push_str(&format!(
                    "    iifname \"{pi}\" oifname \"{po}\" ip protocol 112 counter drop\n"
                ));
                rules.push_str(&format!(
                    "    iifname \"{pi}\" oifname \"{po}\" ip6 nexthdr 112 counter drop\n"
                ));
            }
        }
        for (a, b, port) in &self.udp_partitions {
            for (i, o) in [(a, b), (b, a)] {
                let (pi, po) = (port_name(i, Lan::First), port_name(o, Lan::First));
                rules.push_str(&format!(
                    "    iifname \"{pi}\" oifname \"{po}\" udp dport {port} counter drop\n"
                ));
            }
        }
        for (a, b) in &self.blocks {
            for (i, o) in [(a, b), (b, a)] {
                let (pi, po) = (port_name(i, Lan::First), port_name(o, Lan::First));
                rules.push_str(&format!(
                    "    iifname \"{pi}\" oifname \"{po}\" counter drop\n"
                ));
            }
        }
        if self.loss_percent > 0 {
            rules.push_str(&format!(
                "    numgen random mod 100 < {} counter drop\n",
                self.loss_percent
            ));
        }
        // Declaring then deleting the table makes the replace atomic and idempotent.
        format!(
            "table bridge vipd_harness {{}}\ndelete table bridge vipd_harness\n\
             table bridge vipd_harness {{\n  chain harness {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
        )
    }

    fn apply_nft(&self) {
        let ruleset = self.nft_ruleset();
        let out = run_cmd(
            &["ip", "netns", "exec", &self.sw, "nft", "-f", "-"],
            Some(&ruleset),
            CMD_TIMEOUT,
        );
        if !out.ok() {
            panic!(
                "harness: nft on the switch failed ({:?}): {}\nruleset:\n{ruleset}",
                out.status,
                out.stderr.trim()
            );
        }
    }

    /// The switch's current nftables ruleset with counters (for failure messages).
    pub fn nft_counters(&self) -> String {
        run_cmd(
            &["ip", "netns", "exec", &self.sw, "nft", "list", "ruleset"],
            None,
            CMD_TIMEOUT,
        )
        .stdout
    }

    // ---- observers -------------------------------------------------------------------------

    /// Addresses configured on a host (all interfaces), parsed from `ip -o addr show`.
    pub fn addresses(&self, host: &str) -> Vec<(String, IpAddr)> {
        let out = self.exec_ok(host, &["ip", "-o", "addr", "show"]);
        out.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let _idx = it.next()?;
                let dev = it.next()?.to_string();
                let fam = it.next()?;
                if fam != "inet" && fam != "inet6" {
                    return None;
                }
                let addr = it.next()?.split('/').next()?.parse().ok()?;
                Some((dev, addr))
            })
            .collect()
    }

    /// Whether `host` has `vip` configured on any interface now.
    pub fn holds_vip(&self, host: &str, vip: IpAddr) -> bool {
        self.addresses(host).iter().any(|(_, a)| *a == vip)
    }

    /// Hosts (other than the client) that hold `vip` now.
    pub fn vip_holders(&self, vip: IpAddr) -> Vec<String> {
        self.hosts
            .keys()
            .filter(|h| h.as_str() != "client" && self.holds_vip(h, vip))
            .cloned()
            .collect()
    }

    /// The MAC `host`'s neighbour table maps `ip` to, if it has a usable entry.
    pub fn neigh(&self, host: &str, ip: IpAddr) -> Option<String> {
        let out = self.exec(host, &["ip", "neigh", "show", "to", &ip.to_string()]);
        out.stdout.lines().find_map(|l| {
            let toks: Vec<&str> = l.split_whitespace().collect();
            if toks.first().and_then(|t| t.parse::<IpAddr>().ok()) != Some(ip) {
                return None;
            }
            if toks.iter().any(|t| *t == "FAILED" || *t == "INCOMPLETE") {
                return None;
            }
            let i = toks.iter().position(|t| *t == "lladdr")?;
            toks.get(i + 1).map(|m| m.to_ascii_lowercase())
        })
    }

    /// Everything useful for a failure message: addresses, neighbours, nft counters.
    pub fn snapshot(&self) -> String {
        let mut s = String::new();
        for h in self.hosts.keys() {
            let a = self.exec(h, &["ip", "-br", "addr", "show"]);
            let n = self.exec(h, &["ip", "neigh", "show"]);
            s.push_str(&format!(
                "--- {h}: addresses\n{}--- {h}: neighbours\n{}",
                a.stdout, n.stdout
            ));
        }
        s.push_str(&format!("--- sw: nft\n{}", self.nft_counters()));
        s
    }

    /// Prints the tail of every process log (called on failure).
    pub fn print_logs(&self) {
        for (host, label, log) in self.procs.logs() {
            let text = read_from(&log, 0);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(150);
            eprintln!(
                "===== {host}/{label}: {} (last {} of {} lines) =====",
                log.display(),
                lines.len() - from,
                lines.len()
            );
            for l in &lines[from..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            eprintln!(
                "harness: test failed; state of {} before teardown:",
                self.prefix
            );
            eprintln!("{}", self.snapshot());
            self.print_logs();
        }
        self.procs.kill_all();
        for ns in self.namespaces.iter().rev() {
            destroy_ns(ns);
        }
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v| !v.iter().any(|n| n.starts_with(&self.prefix)));
        if failed || std::env::var_os("VIPD_KEEP_LOGS").is_some() {
            eprintln!("harness: logs kept in {}", self.run_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}
