//! tcpdump on a host of the LAN, and the text it prints: what the scale test, the scale
//! bench and the failover bench read from a takeover on the wire.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::process::{run_cmd, Proc};
use super::topology::Topology;
use super::wait_until;

impl Topology {
    /// Starts `tcpdump -n -U -i eth0 ARGS...` on `host` (its output in `{host}-tcpdump.log`)
    /// and waits, bounded (20 s), until it listens. The error says why it did not.
    pub fn start_tcpdump(&self, host: &str, args: &[&str]) -> Result<Proc, String> {
        let mut argv = vec!["tcpdump", "-n", "-U", "-i", "eth0"];
        argv.extend_from_slice(args);
        let cap = self.spawn(host, &argv, &format!("{host}-tcpdump.log"));
        let listening = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            cap.log().contains("listening on")
        });
        if listening {
            Ok(cap)
        } else {
            Err(format!("tcpdump did not start on {host}: {}", cap.log()))
        }
    }
}

/// `tcpdump -e -tt -n -r PCAP`: the capture as text, link-layer addresses and epoch times.
pub fn read_pcap(pcap: &Path) -> String {
    let f = pcap.to_string_lossy();
    run_cmd(
        &["tcpdump", "-e", "-tt", "-n", "-r", &f],
        None,
        Duration::from_secs(60),
    )
    .stdout
}

/// The lines of `tcpdump -tt` text that start with a time stamp, with it (epoch seconds).
pub fn stamped(text: &str) -> impl Iterator<Item = (f64, &str)> {
    text.lines().filter_map(|l| {
        let ts = l.split_whitespace().next()?.parse::<f64>().ok()?;
        Some((ts, l))
    })
}

/// The VRID of a VRRP advert line (`... vrid 51, prio ...`).
pub fn vrid(line: &str) -> Option<usize> {
    line.split("vrid ")
        .nth(1)?
        .split([',', ' '])
        .next()?
        .parse()
        .ok()
}

/// The address of a gratuitous ARP line: `who-has A tell A`, or `who-has A
/// (ff:ff:ff:ff:ff:ff) tell A` (keepalived fills in the target hardware address).
pub fn garp_target(line: &str) -> Option<Ipv4Addr> {
    let r = line.split("who-has ").nth(1)?;
    let mut w = r.split_whitespace().filter(|t| !t.starts_with('('));
    let (Some(a), Some("tell"), Some(b)) = (w.next(), w.next(), w.next()) else {
        return None;
    };
    if a != b.trim_end_matches(',') {
        return None;
    }
    a.parse().ok()
}

/// A takeover as a capture (`read_pcap` text with `-e`) shows it: the old master's
/// priority-0 adverts per VRID, and the new master's gratuitous ARPs per VIP, in time order.
#[derive(Debug, Default)]
pub struct TakeoverOnWire {
    /// VRID -> times of the priority-0 adverts from the old master.
    pub zeros: BTreeMap<usize, Vec<f64>>,
    /// VIP -> times of the gratuitous ARPs from the new master's MAC.
    pub garps: BTreeMap<Ipv4Addr, Vec<f64>>,
}

impl TakeoverOnWire {
    /// Reads `text`: priority-0 VRRP adverts from `old_ip`, gratuitous ARPs from `new_mac`.
    pub fn parse(text: &str, old_ip: &str, new_mac: &str) -> Self {
        let mut w = Self::default();
        let from_old = format!(" {old_ip} > ");
        let from_new = format!("{} > ", new_mac.to_ascii_lowercase());
        for (ts, l) in stamped(text) {
            if l.contains("VRRP") && l.contains(&from_old) && l.contains("prio 0,") {
                if let Some(v) = vrid(l) {
                    w.zeros.entry(v).or_default().push(ts);
                }
            } else if l.to_ascii_lowercase().contains(&from_new) {
                if let Some(ip) = garp_target(l) {
                    w.garps.entry(ip).or_default().push(ts);
                }
            }
        }
        w
    }
}
