//! Conformance on the wire: what vipd sends, decoded by tshark (an independent dissector).
//!
//! Run: `VIPD_REQUIRE_NETNS=1 cargo test --test conformance -- --nocapture --test-threads=1`
//! (root needed; skips otherwise unless VIPD_REQUIRE_NETNS=1). Each test captures with
//! `tshark -i eth0 -w FILE` on the client (or lb2) of its own topology while a vipd pair runs,
//! then asserts on `tshark -r FILE -T fields` output.

mod harness;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use harness::vipd::{tshark_fields, vipd_conf, wait_vipd_state, VipdInstance};
use harness::{netns_test, Agent, AgentKind, Topology, TopologyOpts};

const VRID: u8 = 51;
const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
/// The VIPs as configured, with their prefix length.
const VIP4_NET: &str = "192.0.2.100/24";
const VIP6_NET: &str = "2001:db8::100/64";
/// The link-local VIP vipd derives for VRID 51 (RFC 5798 §5.2.9, §7.3).
const LL_VIP6: &str = "fe80::200:5eff:fe00:233";
const NAME: &str = "web";

/// tshark's value for `vrrp.checksum.status` / `icmpv6.checksum.status` "Good".
const CHECKSUM_GOOD: &str = "1";

fn start_vipd(topo: &Topology, host: &str, inst: VipdInstance) -> Agent {
    topo.start_agent(host, AgentKind::vipd(), &vipd_conf(topo, host, &[inst]))
}

fn col(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

/// The VRRPv3 fields every advert of lb1 shows the same way over IPv4 and IPv6, as tshark
/// names them; [`assert_lb1_v3_fields`] checks them.
const V3_FIELDS: [&str; 7] = [
    "vrrp.version",
    "vrrp.type",
    "vrrp.virt_rtr_id",
    "vrrp.prio",
    "vrrp.addr_count",
    "vrrp.short_adver_int",
    "vrrp.checksum.status",
];

/// `r` (read with [`V3_FIELDS`] from column `at`) is one of lb1's VRRPv3 adverts with
/// `count` addresses: §5.2.1 version 3, §5.2.2 type 1, §5.2.3 VRID, §5.2.4 priority 150,
/// §5.2.5 the count, §5.2.7 Max Adver Int 10 cs, §5.2.8 a checksum that verifies (with
/// the pseudo-header, tshark's default reading).
fn assert_lb1_v3_fields(test: &str, r: &[String], at: usize, count: &str) {
    let vrid = VRID.to_string();
    let want = ["3", "1", &vrid, "150", count, "10", CHECKSUM_GOOD];
    for (i, (field, want)) in V3_FIELDS.iter().zip(want).enumerate() {
        assert_eq!(col(r, at + i), want, "{test}: {field} in {r:?}");
    }
}

/// Reads the packets of `pcap` that match `filter` with the fields of `want` (tshark
/// names) and asserts that every one shows the wanted values; returns how many there were.
fn expect_every(test: &str, pcap: &Path, filter: &str, want: &[(&str, String)]) -> usize {
    let fields: Vec<&str> = want.iter().map(|(f, _)| *f).collect();
    let rows = tshark_fields(pcap, filter, &fields, &[]);
    for r in &rows {
        for (i, (field, value)) in want.iter().enumerate() {
            assert_eq!(col(r, i), value, "{test}: {field} in {r:?}");
        }
    }
    rows.len()
}

/// Median gap between consecutive timestamps (seconds).
fn median_gap(times: &[f64]) -> f64 {
    let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(|a, b| a.total_cmp(b));
    gaps.get(gaps.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Starts vipd with `inst` on `host` and waits (20 s at most) until the instance is in
/// `state`.
fn start_in_state(
    test: &str,
    topo: &Topology,
    host: &str,
    inst: VipdInstance,
    state: &str,
) -> Agent {
    let agent = start_vipd(topo, host, inst);
    assert!(
        wait_vipd_state(topo, host, NAME, state, Duration::from_secs(20)),
        "{test}: {host} never {state}"
    );
    agent
}

/// A fresh LAN where lb1 (priority 150) and lb2 (100) run the instance of `vip`, set up
/// by `with`, with a capture on the client across lb1 becoming master, then lb2 joining as
/// backup; returns the topology and the pcap after `hold_secs` of steady state. `stop_lb1`
/// stops lb1 gracefully before the capture ends (for the priority-0 advert).
fn capture_pair(
    test: &str,
    vip: &str,
    with: fn(VipdInstance) -> VipdInstance,
    hold_secs: u64,
    stop_lb1: bool,
) -> (Topology, std::path::PathBuf) {
    let inst = |prio| with(VipdInstance::new(NAME, VRID, prio, &[vip]));
    let topo = Topology::new(TopologyOpts::default());
    let cap = topo.start_capture("client", "eth0", test);
    let a1 = start_in_state(test, &topo, "lb1", inst(150), "master");
    let _a2 = start_in_state(test, &topo, "lb2", inst(100), "backup");
    std::thread::sleep(Duration::from_secs(hold_secs));
    if stop_lb1 {
        let st = a1.stop(Duration::from_secs(10));
        assert!(st.success(), "{test}: vipd exited with {st:?}");
        // The backup takes over after Skew_Time; let its adverts and announcements be seen.
        assert!(
            wait_vipd_state(&topo, "lb2", NAME, "master", Duration::from_secs(10)),
            "{test}: lb2 did not take over"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let pcap = cap.stop();
    (topo, pcap)
}

/// RFC 5798 §5.1.1 (IPv4 header), §5.2 (VRRP fields), §6.4.3 (only the master advertises),
/// and gratuitous ARP on becoming master (§6.4.1/§6.4.2).
#[test]
fn rfc5798_5_v3_ipv4_advert_and_gratuitous_arp_on_the_wire() {
    let (_g, test) = netns_test!(@name);
    let (topo, pcap) = capture_pair(test, VIP4_NET, |i| i, 3, false);
    let lb1 = topo.ip4("lb1").to_string();
    let fields = [
        &["ip.src", "ip.dst", "ip.ttl", "eth.src"][..],
        &V3_FIELDS,
        &["vrrp.ip_addr", "frame.time_relative", "ip.dsfield.dscp"],
    ];
    let rows = tshark_fields(&pcap, "vrrp", &fields.concat(), &[]);
    let from_lb1: Vec<&Vec<String>> = rows.iter().filter(|r| col(r, 0) == lb1).collect();
    let from_other: Vec<&Vec<String>> = rows.iter().filter(|r| col(r, 0) != lb1).collect();
    println!(
        "MEASURE {test}: {} VRRP packets from lb1, {} from others",
        from_lb1.len(),
        from_other.len()
    );
    // ~3.5 s at 100 ms: generous lower bound.
    assert!(
        from_lb1.len() >= 15,
        "{test}: too few adverts: {}",
        from_lb1.len()
    );
    // §6.4.2: a backup does not send adverts; lb2 was backup throughout.
    assert!(
        from_other.is_empty(),
        "{test}: VRRP from others: {from_other:?}"
    );
    for r in &from_lb1 {
        // §5.1.1.2: destination 224.0.0.18; §5.1.1.3: TTL 255.
        assert_eq!(col(r, 1), "224.0.0.18", "{test}: {r:?}");
        assert_eq!(col(r, 2), "255", "{test}: {r:?}");
        assert_eq!(col(r, 3), topo.mac("lb1"), "{test}: eth.src {r:?}");
        assert_lb1_v3_fields(test, r, 4, "1");
        // §5.2.9: the VIP.
        assert_eq!(col(r, 11), VIP4, "{test}: {r:?}");
    }
    let times: Vec<f64> = from_lb1
        .iter()
        .filter_map(|r| col(r, 12).parse().ok())
        .collect();
    let gap = median_gap(&times);
    println!(
        "MEASURE {test}: median advert gap {gap:.4} s (configured 0.100), dscp {:?}",
        from_lb1.first().map(|r| col(r, 13).to_string())
    );
    assert!((0.07..0.2).contains(&gap), "{test}: median gap {gap}");

    // Gratuitous ARP: request, sender IP = target IP = VIP, to broadcast, from lb1's MAC.
    let want = [
        ("eth.src", topo.mac("lb1")),
        ("eth.dst", "ff:ff:ff:ff:ff:ff".to_string()),
        ("arp.opcode", "1".to_string()),
        ("arp.src.hw_mac", topo.mac("lb1")),
        ("arp.src.proto_ipv4", VIP4.to_string()),
        ("arp.dst.proto_ipv4", VIP4.to_string()),
    ];
    let filter = format!("arp && arp.src.proto_ipv4 == {VIP4}");
    let n = expect_every(test, &pcap, &filter, &want);
    println!("MEASURE {test}: {n} gratuitous ARPs for the VIP");
    // announce-count defaults to 5; lb1 became master once.
    assert_eq!(n, 5, "{test}: gratuitous ARPs");
}

/// `checksum-pseudo-header = false`: the RFC 9568 form. tshark verifies it only when told to
/// read VRRPv3 checksums as v2 (`vrrp.v3_checksum_as_in_v2:TRUE`), and flags it bad otherwise.
#[test]
fn rfc9568_v3_checksum_without_pseudo_header_on_the_wire() {
    let (_g, test) = netns_test!(@name);
    let (_topo, pcap) = capture_pair(test, VIP4_NET, |i| i.pseudo_header(false), 1, false);
    let fields = ["ip.src", "vrrp.checksum.status"];
    let as_v2 = tshark_fields(&pcap, "vrrp", &fields, &["vrrp.v3_checksum_as_in_v2:TRUE"]);
    let default = tshark_fields(&pcap, "vrrp", &fields, &[]);
    println!(
        "MEASURE {test}: {} adverts; good as v2-style: {}, good with pseudo-header: {}",
        as_v2.len(),
        as_v2.iter().filter(|r| col(r, 1) == CHECKSUM_GOOD).count(),
        default
            .iter()
            .filter(|r| col(r, 1) == CHECKSUM_GOOD)
            .count()
    );
    assert!(as_v2.len() >= 5, "{test}: too few adverts");
    assert!(
        as_v2.iter().all(|r| col(r, 1) == CHECKSUM_GOOD),
        "{test}: {as_v2:?}"
    );
    assert!(
        default.iter().all(|r| col(r, 1) != CHECKSUM_GOOD),
        "{test}: the pseudo-header reading should not verify: {default:?}"
    );
}

/// RFC 3768 (VRRPv2): version 2, Adver Int in seconds, Auth Type 0, checksum over the VRRP
/// message only, TTL 255.
#[test]
fn rfc3768_5_v2_advert_on_the_wire() {
    let (_g, test) = netns_test!(@name);
    let (topo, pcap) = capture_pair(test, VIP4_NET, |i| i.version(2).interval("1s"), 3, false);
    let want = [
        ("ip.src", topo.ip4("lb1").to_string()),
        ("ip.dst", "224.0.0.18".to_string()),
        ("ip.ttl", "255".to_string()),
        ("vrrp.version", "2".to_string()),
        ("vrrp.type", "1".to_string()),
        ("vrrp.virt_rtr_id", VRID.to_string()),
        ("vrrp.prio", "150".to_string()),
        ("vrrp.addr_count", "1".to_string()),
        ("vrrp.adver_int", "1".to_string()),
        ("vrrp.auth_type", "0".to_string()),
        ("vrrp.checksum.status", CHECKSUM_GOOD.to_string()),
        ("vrrp.ip_addr", VIP4.to_string()),
        ("eth.src", topo.mac("lb1")),
    ];
    let n = expect_every(test, &pcap, "vrrp", &want);
    println!("MEASURE {test}: {n} VRRPv2 adverts");
    assert!(n >= 3, "{test}: too few adverts: {n}");
}

/// RFC 5798 §5.1.2 (IPv6 header: link-local source, ff02::12, hop limit 255), §5.2.9 (first
/// address is the link-local VIP), §5.2.8 (checksum with the IPv6 pseudo-header) and the
/// unsolicited Neighbour Advertisements on becoming master (RFC 4861 §7.2.6: Override set,
/// target link-layer address option, hop limit 255, to ff02::1).
#[test]
fn rfc5798_5_v3_ipv6_advert_and_unsolicited_na_on_the_wire() {
    let (_g, test) = netns_test!(@name);
    let (topo, pcap) = capture_pair(test, VIP6_NET, |i| i, 2, false);
    let lb1_ll = topo
        .addresses("lb1")
        .into_iter()
        .find_map(|(dev, a)| match a {
            IpAddr::V6(v)
                if dev == "eth0" && v.segments()[0] == 0xfe80 && v.to_string() != LL_VIP6 =>
            {
                Some(v.to_string())
            }
            _ => None,
        })
        .expect("lb1 has a link-local address");
    let fields = [
        &["ipv6.src", "ipv6.dst", "ipv6.hlim", "eth.src"][..],
        &V3_FIELDS,
        &["vrrp.ipv6_addr"],
    ];
    let rows = tshark_fields(&pcap, "vrrp", &fields.concat(), &[]);
    println!("MEASURE {test}: {} IPv6 adverts", rows.len());
    assert!(rows.len() >= 10, "{test}: too few adverts: {}", rows.len());
    for r in &rows {
        assert_eq!(col(r, 0), lb1_ll, "{test}: source {r:?}");
        assert_eq!(col(r, 1), "ff02::12", "{test}: {r:?}");
        assert_eq!(col(r, 2), "255", "{test}: {r:?}");
        assert_eq!(col(r, 3), topo.mac("lb1"), "{test}: {r:?}");
        assert_lb1_v3_fields(test, r, 4, "2");
        assert_eq!(
            col(r, 11),
            format!("{LL_VIP6},{VIP6}"),
            "{test}: addresses {r:?}"
        );
    }
    let nas = tshark_fields(
        &pcap,
        "icmpv6.type == 136",
        &[
            "eth.src",
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "icmpv6.nd.na.flag.o",
            "icmpv6.nd.na.target_address",
            "icmpv6.opt.type",
            "icmpv6.opt.linkaddr",
            "icmpv6.checksum.status",
            "icmpv6.nd.na.flag.s",
        ],
        &[],
    );
    let from_lb1: Vec<&Vec<String>> = nas
        .iter()
        .filter(|r| col(r, 0) == topo.mac("lb1"))
        .collect();
    let targets: std::collections::BTreeMap<String, usize> =
        from_lb1.iter().fold(Default::default(), |mut m, r| {
            *m.entry(col(r, 5).to_string()).or_default() += 1;
            m
        });
    println!("MEASURE {test}: unsolicited NAs from lb1 per target: {targets:?}");
    // announce-count 5 per VIP, for both the link-local and the global VIP.
    assert_eq!(targets.get(VIP6), Some(&5), "{test}: {nas:?}");
    assert_eq!(targets.get(LL_VIP6), Some(&5), "{test}: {nas:?}");
    for r in &from_lb1 {
        assert_eq!(col(r, 2), "ff02::1", "{test}: {r:?}");
        assert_eq!(col(r, 3), "255", "{test}: {r:?}");
        assert!(
            matches!(col(r, 4), "1" | "True"),
            "{test}: override flag {r:?}"
        );
        assert!(
            matches!(col(r, 9), "0" | "False"),
            "{test}: solicited flag {r:?}"
        );
        assert_eq!(col(r, 6), "2", "{test}: target link-layer option {r:?}");
        assert_eq!(col(r, 7), topo.mac("lb1"), "{test}: {r:?}");
        assert_eq!(col(r, 8), CHECKSUM_GOOD, "{test}: {r:?}");
    }
}

/// RFC 5798 §6.4.3 (Master, Shutdown): a master that stops sends one advert with priority 0,
/// then the backup (after Skew_Time) becomes master and advertises its own priority.
#[test]
fn rfc5798_6_4_3_shutdown_sends_priority_zero_on_the_wire() {
    let (_g, test) = netns_test!(@name);
    let (topo, pcap) = capture_pair(test, VIP4_NET, |i| i.interval("1s"), 2, true);
    let rows = tshark_fields(
        &pcap,
        "vrrp",
        &["frame.time_relative", "ip.src", "vrrp.prio"],
        &[],
    );
    let lb1 = topo.ip4("lb1").to_string();
    let lb2 = topo.ip4("lb2").to_string();
    let zero = rows
        .iter()
        .position(|r| col(r, 1) == lb1 && col(r, 2) == "0");
    let Some(zero) = zero else {
        panic!("{test}: no priority-0 advert from lb1: {rows:?}");
    };
    // Nothing from lb1 after its priority 0; lb2's adverts (priority 100) follow.
    assert!(
        rows[zero + 1..].iter().all(|r| col(r, 1) == lb2),
        "{test}: {rows:?}"
    );
    let first_lb2 = rows[zero + 1..]
        .iter()
        .find(|r| col(r, 1) == lb2)
        .unwrap_or_else(|| panic!("{test}: lb2 never advertised: {rows:?}"));
    assert_eq!(col(first_lb2, 2), "100", "{test}: {rows:?}");
    let t0: f64 = col(&rows[zero], 0).parse().unwrap_or(f64::NAN);
    let t1: f64 = col(first_lb2, 0).parse().unwrap_or(f64::NAN);
    println!(
        "MEASURE {test}: priority 0 -> first advert of the new master {:.3} s (Skew_Time(100) at 1 s = 0.609 s)",
        t1 - t0
    );
    assert!(
        t1 - t0 < 2.0,
        "{test}: takeover after priority 0 took {} s",
        t1 - t0
    );
    // lb1 also sent no priority-0 advert before the stop.
    assert_eq!(
        rows.iter()
            .filter(|r| col(r, 1) == lb1 && col(r, 2) == "0")
            .count(),
        1,
        "{test}: {rows:?}"
    );
}

/// Unicast peers: adverts go to the peer's address (not 224.0.0.18), still with TTL 255.
/// Captured on lb2 (a switch does not flood unicast to the client once it has learnt MACs).
#[test]
fn rfc5798_unicast_adverts_go_to_the_peer_with_ttl_255() {
    let (_g, test) = netns_test!(@name);
    let topo = Topology::new(TopologyOpts::default());
    let vip = VIP4_NET;
    let lb1: IpAddr = topo.ip4("lb1").into();
    let lb2: IpAddr = topo.ip4("lb2").into();
    let cap = topo.start_capture("lb2", "eth0", test);
    let inst = |prio, peer| VipdInstance::new(NAME, VRID, prio, &[vip]).unicast(&[peer]);
    let _a1 = start_in_state(test, &topo, "lb1", inst(150, lb2), "master");
    let _a2 = start_in_state(test, &topo, "lb2", inst(100, lb1), "backup");
    std::thread::sleep(Duration::from_secs(2));
    let pcap = cap.stop();
    // Until vipd runs on lb2 its kernel answers lb1's unicast adverts with ICMP protocol
    // unreachable, which quote the advert: not adverts themselves.
    let icmp = tshark_fields(&pcap, "icmp && vrrp", &["icmp.type", "icmp.code"], &[]);
    println!("MEASURE {test}: ICMP errors quoting an advert (before lb2's vipd ran): {icmp:?}");
    let want = [
        ("ip.src", lb1.to_string()),
        ("ip.dst", lb2.to_string()),
        ("ip.ttl", "255".to_string()),
        ("vrrp.prio", "150".to_string()),
        // The pseudo-header uses the real (unicast) destination (keepalived #642).
        ("vrrp.checksum.status", CHECKSUM_GOOD.to_string()),
    ];
    let n = expect_every(test, &pcap, "vrrp && !icmp", &want);
    println!("MEASURE {test}: {n} unicast adverts seen on lb2");
    assert!(n >= 10, "{test}: {n} unicast adverts");
}
