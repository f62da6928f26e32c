//! Connection limits of the two listening sockets, on loopback inside this process: the
//! metrics endpoint (idle clients, clients that never read) and the control socket
//! (event followers, idle clients). Each test counts this process's open descriptors, so
//! they run one at a time.

mod control_fake;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use control_fake::Running;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vipd::control::message::Response;
use vipd::control::server::ServerOptions;
use vipd::daemon::metrics::{http, Metrics, ServeOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits (bounded) until `f` holds; returns whether it did.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sends a scrape request and never reads, with a tiny receive buffer so
/// that the server's write of a large body blocks.
fn non_reading_client(addr: SocketAddr) -> socket2::Socket {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    s.connect(&addr.into()).expect("connect");
    let mut w: &socket2::Socket = &s;
    w.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send request");
    s
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the response");
    String::from_utf8_lossy(&out).into_owned()
}

/// Connections waiting in the accept queue of the IPv4 listener on `port` (the
/// listening socket's rx_queue in /proc/net/tcp).
fn accept_queue(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, rem_address, st (0A = LISTEN), tx_queue:rx_queue
            (f.len() > 4 && f[1].ends_with(&want) && f[3] == "0A").then(|| f[4].to_string())
        })
        .filter_map(|q| usize::from_str_radix(q.split(':').nth(1)?, 16).ok())
        .sum()
}

/// Descriptors the server holds for `open` client connections of this process, once it
/// has accepted every one of them (bounded wait) and settled.
fn held_by_server(port: u16, base: usize, open: usize, max: usize) -> usize {
    let drained = eventually(Duration::from_secs(20), || accept_queue(port) == 0);
    assert!(drained, "the server stopped accepting connections");
    // Aborted connections close at their next poll: give them a moment (well below the
    // 5 s read timeout, which must not be what frees them).
    eventually(Duration::from_secs(1), || {
        fds().saturating_sub(base + open) <= max + 1
    });
    fds().saturating_sub(base + open)
}

fn bind(rt: &tokio::runtime::Runtime) -> (tokio::net::TcpListener, SocketAddr) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// With `clients` hostile clients (`what`) connected, the server holds at most `max` + 1
/// descriptors for them and a scrape still answers within 10 s: the descriptors it holds,
/// the scrape and how long it took.
fn limited_and_scrapable(
    addr: SocketAddr,
    base: usize,
    clients: usize,
    max: usize,
    what: &str,
) -> (usize, String, Duration) {
    let held = held_by_server(addr.port(), base, clients, max);
    assert!(
        held <= max + 1,
        "the server holds {held} descriptors for {clients} {what} (limit {max})"
    );
    let start = Instant::now();
    let response = scrape(addr);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "scrape took {took:?}");
    (held, response, took)
}

#[test]
fn metrics_idle_and_non_reading_clients_cannot_pin_the_endpoint() {
    let _g = serial();
    let rt = runtime();
    let max = 8;
    // Long timeouts: the connection limit alone must keep the endpoint usable.
    let patient = ServeOptions {
        max_connections: max,
        read_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
    };

    // 1. Clients that connect and never send a request.
    let m = Metrics::new();
    m.instance.set_state("web", "master");
    let (listener, addr) = bind(&rt);
    let server = rt.spawn(m.serve_with(listener, patient.clone()));
    let base = fds();
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let (held, response, took) = limited_and_scrapable(addr, base, idle.len(), max, "idle clients");
    assert!(
        response.starts_with("HTTP/1.1 200 OK")
            && response.contains(r#"vipd_instance_state{instance="web",state="master"} 1"#),
        "scrape: {response}"
    );
    eprintln!(
        "metrics: {} idle clients, server held {held} descriptors, a scrape took {took:?}",
        idle.len()
    );
    server.abort();
    drop(idle);

    // 2. Clients that send a request and never read a body larger than any socket
    // buffer (tcp_wmem allows 4 MiB): the server's write blocks.
    let body = "x".repeat(8 << 20);
    let render = move || body.clone();
    let (listener, addr) = bind(&rt);
    let server = rt.spawn(http::serve(listener, render.clone(), patient));
    let base = fds();
    let stuck: Vec<_> = (0..20).map(|_| non_reading_client(addr)).collect();
    let (held, response, took) =
        limited_and_scrapable(addr, base, stuck.len(), max, "clients that never read");
    assert!(
        response.starts_with("HTTP/1.1 200 OK") && response.len() > 8 << 20,
        "scrape: {} bytes",
        response.len()
    );
    eprintln!(
        "metrics: {} clients that never read, server held {held} descriptors, an 8 MiB scrape took {took:?}",
        stuck.len()
    );
    server.abort();
    drop(stuck);

    // 3. The write deadline: clients that never read are dropped once it passes, even
    // below the connection limit.
    let (listener, addr) = bind(&rt);
    let opts = ServeOptions {
        max_connections: 64,
        read_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_millis(500),
    };
    let server = rt.spawn(http::serve(listener, render, opts));
    let base = fds();
    let stuck: Vec<_> = (0..10).map(|_| non_reading_client(addr)).collect();
    let released = eventually(Duration::from_secs(10), || {
        accept_queue(addr.port()) == 0 && fds().saturating_sub(base + stuck.len()) == 0
    });
    assert!(
        released,
        "after the write deadline the server still holds {} descriptors for clients that never read",
        fds().saturating_sub(base + stuck.len())
    );
    server.abort();
}

async fn first_line(stream: &mut BufReader<UnixStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    line
}

/// Connects to the control socket at `path`, sends `request` and reads the first line of
/// the answer; the connection stays open with the returned reader.
async fn ask(path: &std::path::Path, request: &[u8]) -> (BufReader<UnixStream>, String) {
    let mut s = BufReader::new(UnixStream::connect(path).await.expect("connect"));
    // A refusal may close the socket before the request is written.
    let _ = s.get_mut().write_all(request).await;
    let line = first_line(&mut s).await;
    (s, line)
}

#[test]
fn event_followers_and_idle_clients_cannot_take_the_command_slots() {
    let _g = serial();
    let rt = runtime();
    rt.block_on(async {
        let opts = ServerOptions {
            max_connections: 4,
            max_followers: 4,
            // Long: the limits alone must keep commands working.
            read_timeout: Duration::from_secs(60),
            ..ServerOptions::default()
        };
        let srv = Running::start(opts, None, 16).await;
        let base = fds();
        let mut followers = Vec::new();
        let (mut following, mut refused) = (0, 0);
        for _ in 0..12 {
            let (s, line) = ask(&srv.path, b"{\"version\":1,\"command\":\"events\"}\n").await;
            match Response::parse_line(line.as_bytes()) {
                Ok(Response::Ok { .. }) => following += 1,
                Ok(Response::Error { message }) => {
                    assert!(message.contains("too many event followers"), "{message}");
                    refused += 1;
                }
                other => panic!("events: {other:?} from {line:?}"),
            }
            followers.push(s);
        }
        assert_eq!((following, refused), (4, 8));
        let idle: Vec<UnixStream> = {
            let mut v = Vec::new();
            for _ in 0..12 {
                v.push(UnixStream::connect(&srv.path).await.expect("connect"));
            }
            v
        };
        let open = followers.len() + idle.len();
        let start = Instant::now();
        for round in 0..3 {
            let (_, line) = ask(&srv.path, b"{\"version\":1,\"command\":\"status\"}\n").await;
            assert!(
                matches!(Response::parse_line(line.as_bytes()), Ok(Response::Status(_))),
                "status {round} with 4 followers and 12 idle clients: {line}"
            );
        }
        let took = start.elapsed();
        // The followers still follow.
        srv.events.send(control_fake::event(1)).expect("an event");
        let mut got = 0;
        for f in followers.iter_mut() {
            let mut line = String::new();
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(500), f.read_line(&mut line)).await
            {
                if n > 0 && line.contains("event") {
                    got += 1;
                }
            }
        }
        assert_eq!(got, 4, "every admitted follower gets the event");
        let limit = 4 + 4 + 1;
        let bounded = tokio::task::spawn_blocking(move || {
            eventually(Duration::from_secs(10), || {
                fds().saturating_sub(base + open) <= limit
            })
        })
        .await
        .expect("join");
        let held = fds().saturating_sub(base + open);
        eprintln!("control: {open} clients, server held {held} descriptors, 3 status commands took {took:?}");
        assert!(bounded, "the server holds {held} descriptors (limit {limit})");
        assert!(took < Duration::from_secs(10), "{took:?}");
    });
}
