//! keepalived configuration text, for interop tests and benchmarks.

use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

/// One `vrrp_instance` block: the keepalived keywords of the same names (`advert_int`: v3
/// in 10 ms steps, v2 whole seconds; VIPs with their prefix length; no unicast peers means
/// multicast), then `extra` lines verbatim inside the block. `v3_checksum_as_v2` (the
/// RFC 9568 checksum form) is unknown to keepalived 2.2.7, which logs "Unknown keyword" and
/// keeps the pseudo-header.
#[derive(Debug, Clone)]
pub struct KeepalivedInstance {
    name: String,
    interface: String,
    version: u8,
    vrid: u8,
    priority: u8,
    advert_int: Duration,
    vips: Vec<String>,
    unicast_src: Option<IpAddr>,
    unicast_peers: Vec<IpAddr>,
    nopreempt: bool,
    v3_checksum_as_v2: bool,
    initial_master: bool,
    extra: Vec<String>,
}

impl KeepalivedInstance {
    /// VRRPv3 on eth0, 1 s interval, no VIPs, multicast, preempting, initial state BACKUP.
    pub fn new(name: &str, vrid: u8, priority: u8) -> KeepalivedInstance {
        KeepalivedInstance {
            name: name.to_string(),
            interface: "eth0".into(),
            version: 3,
            vrid,
            priority,
            advert_int: Duration::from_secs(1),
            vips: Vec::new(),
            unicast_src: None,
            unicast_peers: Vec::new(),
            nopreempt: false,
            v3_checksum_as_v2: false,
            initial_master: false,
            extra: Vec::new(),
        }
    }

    setters! {
        /// Sets the interval.
        advert_int: Duration,
        /// Sets the version.
        version: u8,
        /// Sets the interface.
        interface: &str,
        /// Sets `nopreempt`.
        nopreempt: bool,
        /// Sets `v3_checksum_as_v2`.
        v3_checksum_as_v2: bool,
    }

    /// Adds a VIP (with prefix length).
    pub fn vip(mut self, v: &str) -> Self {
        self.vips.push(v.to_string());
        self
    }

    /// Unicast mode: our source and the peers.
    pub fn unicast(mut self, src: IpAddr, peers: &[IpAddr]) -> Self {
        self.unicast_src = Some(src);
        self.unicast_peers = peers.to_vec();
        self
    }

    /// Adds a verbatim line.
    pub fn line(mut self, l: &str) -> Self {
        self.extra.push(l.to_string());
        self
    }
}

/// Formats an interval as keepalived's `advert_int` (seconds, up to 2 decimals).
fn secs(d: Duration) -> String {
    let cs = d.as_millis().div_ceil(10);
    if cs % 100 == 0 {
        format!("{}", cs / 100)
    } else {
        format!("{}.{:02}", cs / 100, cs % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

/// A complete keepalived.conf: a `global_defs` (no SMTP, no scripts, GARP settings left at
/// keepalived's defaults) followed by one `vrrp_instance` per entry.
pub fn keepalived_conf(instances: &[KeepalivedInstance]) -> String {
    let mut s = String::new();
    s.push_str("global_defs {\n    router_id vipd_harness\n}\n\n");
    for i in instances {
        let _ = writeln!(s, "vrrp_instance {} {{", i.name);
        let _ = writeln!(
            s,
            "    state {}",
            if i.initial_master { "MASTER" } else { "BACKUP" }
        );
        let _ = writeln!(s, "    interface {}", i.interface);
        let _ = writeln!(s, "    version {}", i.version);
        let _ = writeln!(s, "    virtual_router_id {}", i.vrid);
        let _ = writeln!(s, "    priority {}", i.priority);
        let _ = writeln!(s, "    advert_int {}", secs(i.advert_int));
        if i.nopreempt {
            s.push_str("    nopreempt\n");
        }
        if i.v3_checksum_as_v2 {
            s.push_str("    v3_checksum_as_v2\n");
        }
        if let Some(src) = i.unicast_src {
            let _ = writeln!(s, "    unicast_src_ip {src}");
        }
        if !i.unicast_peers.is_empty() {
            s.push_str("    unicast_peer {\n");
            for p in &i.unicast_peers {
                let _ = writeln!(s, "        {p}");
            }
            s.push_str("    }\n");
        }
        if !i.vips.is_empty() {
            s.push_str("    virtual_ipaddress {\n");
            for v in &i.vips {
                let _ = writeln!(s, "        {v} dev {}", i.interface);
            }
            s.push_str("    }\n");
        }
        for l in &i.extra {
            let _ = writeln!(s, "    {l}");
        }
        s.push_str("}\n\n");
    }
    s
}

/// Lines of a keepalived log that say a configuration item was refused or replaced
/// (`keepalived -t` exits 0 even then, so tests read the messages).
pub fn keepalived_config_complaints(log: &str) -> Vec<String> {
    const MARKERS: [&str; 8] = [
        "unknown keyword",
        "not valid",
        "invalid",
        "outside range",
        "out of range",
        "ignoring",
        "using default",
        "config error",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            MARKERS.iter().any(|m| l.contains(m))
        })
        .map(String::from)
        .collect()
}
