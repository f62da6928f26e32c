use super::*;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;

#[test]
fn recv_batch_reads_the_queue_and_says_it_is_empty_in_one_call() {
    let (a, b) = UnixDatagram::pair().unwrap();
    for d in [&b"one"[..], b"two", b"three"] {
        a.send(d).unwrap();
    }
    let mut batch = RecvBatch::new(2, 16);
    // A full batch: there may be more.
    assert_eq!(batch.recv(b.as_fd()).unwrap(), 2);
    let got: Vec<&[u8]> = batch.iter().map(|(d, _)| d).collect();
    assert_eq!(got, [&b"one"[..], b"two"]);
    // Fewer than the batch holds: the queue is empty after them.
    assert_eq!(batch.recv(b.as_fd()).unwrap(), 1);
    assert_eq!(batch.get(0).map(|(d, _)| d), Some(&b"three"[..]));
    assert_eq!(batch.get(1), None);
    // Nothing queued: 0 at once, no waiting, no error.
    assert_eq!(batch.recv(b.as_fd()).unwrap(), 0);
    assert!(batch.is_empty());
}

#[test]
fn recv_batch_reports_a_datagram_larger_than_its_slot_with_its_real_length() {
    let (a, b) = UnixDatagram::pair().unwrap();
    a.send(&[7u8; 40]).unwrap();
    a.send(b"fits").unwrap();
    let mut batch = RecvBatch::new(4, 8);
    assert_eq!(batch.recv(b.as_fd()).unwrap(), 2);
    let (bytes, meta) = batch.get(0).unwrap();
    assert!(meta.truncated);
    assert_eq!(meta.len, 40);
    assert_eq!(bytes, &[7u8; 8]);
    let (bytes, meta) = batch.get(1).unwrap();
    assert!(!meta.truncated);
    assert_eq!(bytes, b"fits");
    // A Unix socket has no IP source, TTL, destination or timestamp.
    assert_eq!(
        (meta.from, meta.ttl, meta.dst, meta.stamp),
        (None, None, None, None)
    );
}

fn udp_with_cmsgs(v6: bool) -> socket2::Socket {
    use socket2::{Domain, Protocol, Type};
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = socket2::Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    let on: libc::c_int = 1;
    if v6 {
        setsockopt(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on).unwrap();
        setsockopt(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on).unwrap();
    } else {
        setsockopt(&s, libc::IPPROTO_IP, libc::IP_RECVTTL, &on).unwrap();
        setsockopt(&s, libc::IPPROTO_IP, libc::IP_PKTINFO, &on).unwrap();
    }
    setsockopt(&s, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on).unwrap();
    s
}

#[test]
fn recv_batch_carries_source_ttl_destination_and_kernel_timestamp_of_each_datagram() {
    in_private_netns("recv_batch_cmsgs", "", || {
        for (v6, lo) in [(false, "127.0.0.1"), (true, "::1")] {
            let ip: IpAddr = lo.parse().unwrap();
            let rx = udp_with_cmsgs(v6);
            rx.bind(&SocketAddr::new(ip, 0).into()).unwrap();
            let to = rx.local_addr().unwrap();
            let tx = udp_with_cmsgs(v6);
            tx.bind(&SocketAddr::new(ip, 0).into()).unwrap();
            let from = tx.local_addr().unwrap().as_socket().unwrap();
            if v6 {
                tx.set_unicast_hops_v6(255).unwrap();
            } else {
                tx.set_ttl_v4(255).unwrap();
            }
            let before = SystemTime::now();
            tx.send_to(b"first", &to).unwrap();
            if v6 {
                tx.set_unicast_hops_v6(7).unwrap();
            } else {
                tx.set_ttl_v4(7).unwrap();
            }
            tx.send_to(b"second", &to).unwrap();
            // Delivery over `lo` may be left to ksoftirqd: wait for both (5 s at most).
            let mut batch = RecvBatch::new(8, 64);
            let mut got: Vec<(Vec<u8>, RecvMeta)> = Vec::new();
            let mut fds = [libc::pollfd {
                fd: rx.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for _ in 0..50 {
                if got.len() >= 2 {
                    break;
                }
                ppoll(&mut fds, Some(Duration::from_millis(100))).unwrap();
                batch.recv(rx.as_fd()).unwrap();
                got.extend(batch.iter().map(|(d, m)| (d.to_vec(), *m)));
            }
            assert_eq!(got.len(), 2, "{lo}");
            // The kernel stamps a datagram when it queues it on the socket: after
            // `send_to` returned when delivery was left to ksoftirqd, but always
            // before we read it.
            let after = SystemTime::now();
            assert_eq!(got[0].0, b"first");
            assert_eq!(got[1].0, b"second");
            for (k, ttl) in [(0, 255), (1, 7)] {
                let m = got[k].1;
                assert_eq!(m.from, Some(from), "{lo}");
                assert_eq!(m.ttl, Some(ttl), "{lo}");
                assert_eq!(m.dst, Some(ip), "{lo}");
                let stamp = m.stamp.expect("a kernel receive timestamp");
                assert!(stamp >= before && stamp <= after, "{lo}: {stamp:?}");
            }
            assert_eq!(batch.recv(rx.as_fd()).unwrap(), 0);
        }
    });
}

#[test]
fn ppoll_takes_a_nanosecond_timeout_and_reports_ready_descriptors() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let mut fds = [libc::pollfd {
        fd: b.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let t = std::time::Instant::now();
    assert_eq!(
        ppoll(&mut fds, Some(Duration::from_micros(1500))).unwrap(),
        0
    );
    assert!(t.elapsed() >= Duration::from_micros(1500));
    a.send(b"x").unwrap();
    assert_eq!(ppoll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
    assert_ne!(fds[0].revents & libc::POLLIN, 0);
}
