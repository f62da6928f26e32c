//! Real-kernel tests of `vipd::net`, in network namespaces this test creates itself
//! (two namespaces joined by a veth pair). They need root; without it they skip, unless
//! `VIPD_REQUIRE_NETNS=1`, which turns a skip into a failure.
//!
//! Run: `cargo test --test net` (as root).

mod harness;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use harness::netns_test;
use harness::pair::{ip, run_in, spawn_in, Pair, IF};
use ipnet::IpNet;
use tokio::time::timeout;
use vipd::net::{
    AddressChange, AddressWatcher, FrameSender, LinkWatcher, NetError, Netlink, Received,
    VrrpSocket,
};
use vipd::proto::vrrp::{IPV4_GROUP, IPV6_GROUP};

const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// VRRPv3-looking bytes (VRID 51, priority 100, one address 192.0.2.100). The kernel does
/// not look inside, so the checksum field is left zero.
const PAYLOAD: [u8; 12] = [0x31, 51, 100, 1, 0, 100, 0, 0, 192, 0, 2, 100];

/// Connects to netlink and looks up `veth0` in the namespace the calling thread is in.
async fn veth() -> (Netlink, vipd::net::LinkInfo) {
    let nl = Netlink::connect().await.expect("netlink");
    let link = nl.link(IF).await.expect("veth0 exists");
    (nl, link)
}

/// A VRRP socket on `veth0` and its source: the v4 primary or the v6 link-local address.
async fn vrrp_socket(v6: bool, side: &str) -> (VrrpSocket, IpAddr) {
    let (nl, link) = veth().await;
    let src = nl
        .primary_address(link.index, v6)
        .await
        .expect("addresses")
        .expect("a source address");
    let sock =
        VrrpSocket::open(IF, link.index, src).unwrap_or_else(|e| panic!("open {side} side: {e}"));
    (sock, src)
}

/// What the receiving side saw: the bytes in the buffer and the `Received` description.
type Got = (Vec<u8>, Received);

/// Opens a VRRP socket in `ns` (source = the v4 primary or the v6 link-local address),
/// reports readiness, and returns the first datagram whose VRRP payload is `PAYLOAD`
/// (None if none arrived within 5 s). `done` is raised when it returns.
fn receiver(
    ns: &str,
    v6: bool,
    done: Arc<AtomicBool>,
) -> (mpsc::Receiver<()>, std::thread::JoinHandle<Option<Got>>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = spawn_in(ns, move || async move {
        let (sock, _) = vrrp_socket(v6, "receive").await;
        ready_tx.send(()).expect("main thread waits");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 2048];
        let got = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, sock.recv(&mut buf)).await {
                Err(_) => break None,
                Ok(Err(e)) => panic!("recv: {e}"),
                Ok(Ok(r)) => {
                    let bytes = match r {
                        Received::V4 { len } => buf[..len].to_vec(),
                        Received::V6 { len, .. } => buf[..len].to_vec(),
                    };
                    let payload = match r {
                        Received::V4 { .. } => {
                            bytes.get(usize::from(bytes[0] & 0x0f) * 4..).unwrap_or(&[])
                        }
                        Received::V6 { .. } => &bytes[..],
                    };
                    if payload == PAYLOAD {
                        break Some((bytes, r));
                    }
                }
            }
        };
        done.store(true, Ordering::SeqCst);
        got
    });
    (ready_rx, h)
}

/// In `ns`, sends `PAYLOAD` to `dst` every 100 ms until `done` (at most 50 times), then
/// reports whether its own socket received anything within 300 ms (it must not: loop off).
fn send_until_done(ns: &str, v6: bool, dst: IpAddr, done: Arc<AtomicBool>) -> (IpAddr, bool) {
    run_in(ns, move || async move {
        let (sock, src) = vrrp_socket(v6, "send").await;
        for _ in 0..50 {
            sock.send(dst, &PAYLOAD).await.expect("send");
            tokio::time::sleep(Duration::from_millis(100)).await;
            if done.load(Ordering::SeqCst) {
                break;
            }
        }
        let mut buf = vec![0u8; 2048];
        let own = timeout(Duration::from_millis(300), sock.recv(&mut buf))
            .await
            .is_ok();
        (src, own)
    })
}

fn exchange(pair: &Pair, v6: bool, dst: impl FnOnce(&Pair) -> IpAddr) -> (IpAddr, bool, Got) {
    let done = Arc::new(AtomicBool::new(false));
    let (ready, h) = receiver(&pair.b, v6, done.clone());
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver ready");
    let (src, own) = send_until_done(&pair.a, v6, dst(pair), done);
    let got = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    (
        src,
        own,
        got.expect("the peer received the advert within 5 s"),
    )
}

/// [`exchange`] to a multicast group; the sender must not receive its own advert (the
/// socket turns multicast loop off).
fn exchange_multicast(pair: &Pair, v6: bool, group: IpAddr) -> (IpAddr, Got) {
    let (src, own, got) = exchange(pair, v6, |_| group);
    assert!(
        !own,
        "the sender received its own multicast advert (loop must be off)"
    );
    (src, got)
}

fn check_v4(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    assert_eq!(bytes[0] >> 4, 4, "IPv4 header delivered with the packet");
    let ihl = usize::from(bytes[0] & 0x0f) * 4;
    assert!(ihl >= 20 && bytes.len() == ihl + PAYLOAD.len());
    // RFC 5798 §5.1.1.3: TTL MUST be 255.
    assert_eq!(bytes[8], 255, "TTL");
    // RFC 5798 §5.1.1.4: protocol 112.
    assert_eq!(bytes[9], 112, "protocol");
    assert_eq!(
        Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
        src,
        "source"
    );
    assert_eq!(
        Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
        dst,
        "destination"
    );
}

#[test]
fn rfc5798_5_1_1_ipv4_multicast_advert_arrives_with_ttl_255_and_is_not_looped_back() {
    let _g = netns_test!();
    let pair = Pair::create();
    let (src, (bytes, r)) = exchange_multicast(&pair, false, IpAddr::V4(IPV4_GROUP));
    assert_eq!(src, IpAddr::V4(A_V4), "IPv4 source is the primary address");
    assert!(matches!(r, Received::V4 { .. }));
    check_v4(&bytes, A_V4, IPV4_GROUP);
}

#[test]
fn rfc5798_5_1_1_ipv4_unicast_advert_reaches_peer_with_ttl_255() {
    let _g = netns_test!();
    let pair = Pair::create();
    let (_, _, (bytes, _)) = exchange(&pair, false, |_| IpAddr::V4(B_V4));
    check_v4(&bytes, A_V4, B_V4);
}

/// How the receiver must describe our IPv6 advert from `src` to `dst`: hop limit 255.
fn v6_advert(src: Ipv6Addr, dst: Ipv6Addr) -> Received {
    Received::V6 {
        len: PAYLOAD.len(),
        src,
        dst,
        hop_limit: 255,
    }
}

fn link_local(ns: &str) -> Ipv6Addr {
    let out = ip(&[
        "-n", ns, "-6", "-o", "addr", "show", "dev", IF, "scope", "link",
    ]);
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .expect("an inet6 address");
    word.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("parse link-local")
}

#[test]
fn rfc5798_5_1_2_ipv6_multicast_advert_arrives_with_hop_limit_255_from_link_local() {
    let _g = netns_test!();
    let pair = Pair::create();
    let a_ll = link_local(&pair.a);
    let (src, (bytes, r)) = exchange_multicast(&pair, true, IpAddr::V6(IPV6_GROUP));
    assert_eq!(
        src,
        IpAddr::V6(a_ll),
        "primary_address(v6) is the link-local address"
    );
    assert_eq!(bytes, PAYLOAD, "IPv6: only the payload is in the buffer");
    // RFC 5798 §5.1.2.1 / §5.1.2.2 / §5.1.2.3: link-local source, ff02::12, hop limit 255.
    assert_eq!(r, v6_advert(a_ll, IPV6_GROUP));
}

#[test]
fn rfc5798_5_1_2_ipv6_unicast_advert_to_link_local_peer() {
    let _g = netns_test!();
    let pair = Pair::create();
    let a_ll = link_local(&pair.a);
    let b_ll = link_local(&pair.b);
    let (_, _, (_, r)) = exchange(&pair, true, move |_| IpAddr::V6(b_ll));
    assert_eq!(r, v6_advert(a_ll, b_ll));
}

#[test]
fn open_errors_name_the_interface_and_the_address() {
    let _g = netns_test!();
    let pair = Pair::create();
    let (missing, foreign) = run_in(&pair.a, || async {
        let (nl, link) = veth().await;
        let missing =
            VrrpSocket::open("nope0", 999, IpAddr::V4(A_V4)).expect_err("no such interface");
        // 198.51.100.9 is not on this host: binding to it must fail clearly.
        let foreign = VrrpSocket::open(IF, link.index, "198.51.100.9".parse().unwrap())
            .expect_err("source not on host");
        let lookup = nl.link("nope0").await.expect_err("no such link");
        assert!(matches!(lookup, NetError::NoSuchInterface(ref n) if n == "nope0"));
        (missing.to_string(), foreign.to_string())
    });
    assert_eq!(missing, "no such interface nope0");
    assert!(
        foreign.contains("198.51.100.9")
            && foreign.contains(IF)
            && foreign.contains("not assigned"),
        "{foreign}"
    );
}

fn mac_of(ns: &str) -> [u8; 6] {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", IF]);
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("link/ether");
    let mut mac = [0u8; 6];
    for (i, part) in word.split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

/// Adds (`add`) or deletes each of `vips` twice, every call a success; then the addresses
/// of the interface.
async fn twice(nl: &Netlink, index: u32, vips: [IpNet; 2], add: bool) -> Vec<IpNet> {
    let what = if add { "add" } else { "delete" };
    for vip in vips {
        for round in ["first", "second"] {
            let r = if add {
                nl.add_address(index, vip).await
            } else {
                nl.del_address(index, vip).await
            };
            r.unwrap_or_else(|e| panic!("{round} {what} of {vip}: {e}"));
        }
    }
    nl.addresses(index).await.expect("addresses")
}

#[test]
fn netlink_link_and_addresses() {
    let _g = netns_test!();
    let pair = Pair::create();
    let mac = mac_of(&pair.a);
    let ns = pair.a.clone();
    run_in(&pair.a, move || async move {
        let (nl, link) = veth().await;
        assert_eq!(link.name, IF);
        assert_eq!(link.mac, mac);
        assert!(link.up, "veth0 is up with its peer up");

        let vip4: IpNet = "192.0.2.100/24".parse().unwrap();
        let vip6: IpNet = "2001:db8::100/64".parse().unwrap();
        // The second add of each meets EEXIST: a success too.
        let addrs = twice(&nl, link.index, [vip4, vip6], true).await;
        assert!(addrs.contains(&vip4) && addrs.contains(&vip6), "{addrs:?}");
        assert!(
            addrs.contains(&"192.0.2.1/24".parse().unwrap()),
            "{addrs:?}"
        );

        // The VIP in the same subnet is secondary: the primary stays the host address.
        assert_eq!(
            nl.primary_address(link.index, false).await.unwrap(),
            Some(IpAddr::V4(A_V4))
        );
        let ll = nl
            .primary_address(link.index, true)
            .await
            .unwrap()
            .expect("link-local");
        assert!(
            matches!(ll, IpAddr::V6(a) if a.segments()[0] == 0xfe80),
            "{ll}"
        );

        // RFC 5798 §8.2 / DESIGN: IPv6 VIPs are added with NODAD, so not tentative even
        // right after adding, while DAD is active on this interface (checked with a
        // control address added without NODAD).
        let show = ip(&["-n", &ns, "-6", "-o", "addr", "show", "dev", IF]);
        let vip_line = show
            .lines()
            .find(|l| l.contains("2001:db8::100/64"))
            .expect("vip6 listed");
        assert!(!vip_line.contains("tentative"), "{vip_line}");
        ip(&["-n", &ns, "addr", "add", "2001:db8::99/64", "dev", IF]);
        let show = ip(&["-n", &ns, "-6", "-o", "addr", "show", "dev", IF]);
        let control = show
            .lines()
            .find(|l| l.contains("2001:db8::99/64"))
            .expect("control listed");
        assert!(
            control.contains("tentative"),
            "control address should be in DAD: {control}"
        );

        // The second delete of each finds it gone: a success too.
        let addrs = twice(&nl, link.index, [vip4, vip6], false).await;
        assert!(
            !addrs.contains(&vip4) && !addrs.contains(&vip6),
            "{addrs:?}"
        );
        assert!(
            addrs.contains(&"192.0.2.1/24".parse().unwrap()),
            "host address kept: {addrs:?}"
        );
    });
}

/// Waits (at most 5 s) for an event about `index` matching `want`.
async fn expect_event(
    w: &mut LinkWatcher,
    what: &str,
    want: impl Fn(&vipd::net::LinkEvent) -> bool,
) {
    let found = timeout(Duration::from_secs(5), async {
        while let Some(ev) = w.next().await {
            if want(&ev) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no link event: {what}");
}

/// Issue 14: a takeover adds thousands of addresses at once. The address watcher hears
/// only removals (the kernel drops the other messages before they are queued), so such
/// a burst neither overruns its socket nor comes before the removal that matters: an
/// address deleted by someone else right after 2,040 adds is the first thing reported.
#[test]
fn address_watcher_reports_a_removal_right_after_a_burst_of_adds() {
    let _g = netns_test!();
    let burst: Vec<IpNet> = (0..2040u32)
        .map(|i| {
            format!("198.18.{}.{}/32", 1 + i / 200, 1 + i % 200)
                .parse()
                .unwrap()
        })
        .collect();
    let pair = Pair::create();
    let ns = pair.a.clone();
    run_in(&pair.a, move || async move {
        let mut w = AddressWatcher::open().expect("watcher");
        let (nl, link) = veth().await;
        // The watcher is not read while the burst goes in: its queue holds what it let in.
        for r in nl.add_addresses(link.index, &burst, false).await {
            r.expect("add");
        }
        let gone = burst[1000];
        ip(&["-n", &ns, "addr", "del", &gone.to_string(), "dev", IF]);
        let first = timeout(Duration::from_secs(5), w.next()).await;
        match first {
            Ok(Some(AddressChange::Event(ev))) => {
                assert!(
                    ev.removed && ev.addr == gone && ev.ifindex == link.index,
                    "first event: {ev:?}, want the removal of {gone}"
                );
            }
            other => panic!("first report: {other:?}, want the removal of {gone}"),
        }
    });
}

/// The address pipeline asks the kernel to acknowledge only the last request of each
/// send; a failure anywhere in it (here an address the operator added, refused with
/// EEXIST, in the middle and at the end) is still that address's answer, and only its.
#[test]
fn pipelined_adds_answer_each_address_even_when_some_fail() {
    let _g = netns_test!();
    let nets = |v: &[&str]| -> Vec<IpNet> { v.iter().map(|a| a.parse().unwrap()).collect() };
    let first = nets(&["198.18.0.1/32", "198.18.0.9/32", "198.18.0.2/32"]);
    let second = nets(&["198.18.0.3/32", "198.18.0.9/32"]);
    let pair = Pair::create();
    ip(&["-n", &pair.a, "addr", "add", "198.18.0.9/32", "dev", IF]);
    run_in(&pair.a, move || async move {
        let (nl, link) = veth().await;
        for list in [first, second] {
            let got = nl.add_addresses(link.index, &list, false).await;
            assert_eq!(got.len(), list.len());
            for (a, r) in list.iter().zip(got) {
                let operators = a.to_string() == "198.18.0.9/32";
                match r {
                    Err(NetError::AddressNotOurs { .. }) if operators => {}
                    Ok(()) if !operators => {}
                    other => panic!("{a}: {other:?}"),
                }
            }
        }
        let held = nl.addresses(link.index).await.expect("addresses");
        for a in ["198.18.0.1/32", "198.18.0.2/32", "198.18.0.3/32"] {
            assert!(held.contains(&a.parse().unwrap()), "{a} missing: {held:?}");
        }
    });
}

/// Issue 14: a takeover's VIPs are announced from the address pipeline, each right after
/// the kernel added it: every address added gets exactly one gratuitous ARP and the
/// answer says so; an address the kernel refused (the operator's, EEXIST) gets none.
#[test]
fn pipelined_adds_announce_each_address_the_kernel_added() {
    let _g = netns_test!();
    let nets = |v: &[&str]| -> Vec<IpNet> { v.iter().map(|a| a.parse().unwrap()).collect() };
    let list = nets(&["198.18.0.1/32", "198.18.0.9/32", "198.18.0.2/32"]);
    let pair = Pair::create();
    let mac = mac_of(&pair.a);
    ip(&["-n", &pair.a, "addr", "add", "198.18.0.9/32", "dev", IF]);
    run_in(&pair.a, move || async move {
        use socket2::{Domain, Protocol, Socket, Type};
        // Sees the frames veth0 sends (not the sender's own socket).
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let cap = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))
            .expect("capture socket");
        cap.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (nl, link) = veth().await;
        let tx = Arc::new(FrameSender::open(link.index).expect("frame sender"));
        let frames = list
            .iter()
            .map(|n| match n.addr() {
                IpAddr::V4(a) => vipd::proto::arp::gratuitous_arp(mac, a),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        let got = nl.add_and_announce(link.index, &list, &tx, frames).await;
        assert!(matches!(got[0], Ok(true)), "{}: {:?}", list[0], got[0]);
        assert!(
            matches!(got[1], Err(NetError::AddressNotOurs { .. })),
            "{}: {:?}",
            list[1],
            got[1]
        );
        assert!(matches!(got[2], Ok(true)), "{}: {:?}", list[2], got[2]);
        // Every gratuitous ARP that left: the target address of each.
        let mut seen: Vec<Ipv4Addr> = Vec::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(n) = std::io::Read::read(&mut &cap, &mut buf) {
                if n >= 42 && buf[6..12] == mac && buf[12..14] == [0x08, 0x06] {
                    seen.push(Ipv4Addr::new(buf[38], buf[39], buf[40], buf[41]));
                }
            }
        }
        seen.sort();
        let want: Vec<Ipv4Addr> = vec![Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)];
        assert_eq!(seen, want, "gratuitous ARPs sent");
    });
}

#[test]
fn link_watcher_reports_down_up_and_removal() {
    let _g = netns_test!();
    let pair = Pair::create();
    let ns = pair.a.clone();
    run_in(&pair.a, move || async move {
        let (nl, link) = veth().await;
        let mut w = LinkWatcher::open().expect("watcher");
        let idx = link.index;

        ip(&["-n", &ns, "link", "set", IF, "down"]);
        expect_event(&mut w, "veth0 down", |e| {
            e.index == idx && e.name == IF && !e.up && !e.removed
        })
        .await;
        assert!(!nl.link(IF).await.unwrap().up);

        ip(&["-n", &ns, "link", "set", IF, "up"]);
        expect_event(&mut w, "veth0 up", |e| e.index == idx && e.up && !e.removed).await;

        ip(&[
            "-n", &ns, "link", "add", "x0", "type", "veth", "peer", "name", "x1",
        ]);
        let x0 = nl.link("x0").await.expect("x0").index;
        ip(&["-n", &ns, "link", "del", "x0"]);
        expect_event(&mut w, "x0 removed", |e| {
            e.index == x0 && e.name == "x0" && e.removed && !e.up
        })
        .await;
    });
}

#[test]
fn frame_sender_puts_a_gratuitous_arp_on_the_wire() {
    let _g = netns_test!();
    let pair = Pair::create();
    let mac = mac_of(&pair.a);
    // A gratuitous ARP request for 192.0.2.100 (sender IP = target IP), built by hand.
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[192, 0, 2, 100]);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&[192, 0, 2, 100]);
    assert_eq!(frame.len(), 42);

    let done = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let want = frame.clone();
    let done_rx = done.clone();
    // The capture in B: an AF_PACKET socket for every protocol.
    let capture = spawn_in(&pair.b, move || async move {
        use socket2::{Domain, Protocol, Socket, Type};
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))
            .expect("capture socket");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        let mut seen = false;
        while Instant::now() < deadline {
            if let Ok(n) = std::io::Read::read(&mut &s, &mut buf) {
                if n >= want.len() && buf[..want.len()] == want[..] {
                    seen = true;
                    break;
                }
            }
        }
        done_rx.store(true, Ordering::SeqCst);
        seen
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("capture ready");
    run_in(&pair.a, move || async move {
        let (_nl, link) = veth().await;
        let tx = FrameSender::open(link.index).expect("frame sender");
        for _ in 0..50 {
            tx.send(&frame).expect("send frame");
            tokio::time::sleep(Duration::from_millis(100)).await;
            if done.load(Ordering::SeqCst) {
                break;
            }
        }
    });
    let seen = capture
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    assert!(
        seen,
        "the capture in the peer namespace did not see the frame"
    );
}
