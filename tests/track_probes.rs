//! Probes and check tasks against local fixtures (loopback TCP servers in this
//! process, /bin/true and friends, `lo`). No root or namespaces needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use vipd::track::{probe, spawn_checks, CheckKind, CheckSpec, ProbeError, TrackEvent};

/// How the test HTTP server answers.
#[derive(Clone, Copy)]
enum Reply {
    /// Send these bytes (in small pieces) after reading the request, then close.
    Bytes(&'static [u8]),
    /// Accept, read, and never answer.
    Hang,
}

/// A tiny HTTP server on 127.0.0.1; keeps the requests it saw.
async fn server(reply: Reply) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen2);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&req).into_owned());
                match reply {
                    Reply::Bytes(b) => {
                        // Dribble it out to exercise reassembly of the status line.
                        for piece in b.chunks(5) {
                            if sock.write_all(piece).await.is_err() {
                                return;
                            }
                            let _ = sock.flush().await;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Reply::Hang => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

fn http(addr: SocketAddr, path: &str, expect_status: Vec<(u16, u16)>) -> CheckKind {
    CheckKind::Http {
        url: format!("http://{addr}{path}"),
        expect_status,
    }
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn http_200_is_healthy_and_the_request_is_well_formed() {
    let (addr, seen) = server(Reply::Bytes(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ))
    .await;
    probe(&http(addr, "/health?full=1", vec![]), T)
        .await
        .expect("200 is healthy");
    let reqs = seen.lock().expect("lock").clone();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert!(
        req.starts_with("GET /health?full=1 HTTP/1.1\r\n"),
        "{req:?}"
    );
    assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req:?}");
    assert!(req.contains("\r\nConnection: close\r\n"), "{req:?}");
}

#[tokio::test]
async fn http_503_is_unhealthy() {
    let (addr, _) = server(Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")).await;
    let r = probe(&http(addr, "/", vec![]), T).await;
    assert!(matches!(r, Err(ProbeError::Status(503))), "{r:?}");
}

#[tokio::test]
async fn http_expect_status_ranges_are_honoured() {
    let (addr, _) = server(Reply::Bytes(b"HTTP/1.0 503 Service Unavailable\r\n\r\n")).await;
    probe(&http(addr, "/", vec![(200, 299), (503, 503)]), T)
        .await
        .expect("503 accepted");
    let (addr, _) = server(Reply::Bytes(b"HTTP/1.1 204 No Content\r\n\r\n")).await;
    let r = probe(&http(addr, "/", vec![(200, 200)]), T).await;
    assert!(matches!(r, Err(ProbeError::Status(204))), "{r:?}");
}

/// Probes `kind` with a 200 ms timeout: it must fail as a timeout, at 200 ms (not before,
/// and well within a second).
async fn times_out_after_200ms(kind: &CheckKind) {
    let start = Instant::now();
    let r = probe(kind, Duration::from_millis(200)).await;
    let took = start.elapsed();
    assert!(matches!(r, Err(ProbeError::Timeout(_))), "{r:?}");
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn http_hanging_server_fails_at_the_timeout() {
    let (addr, _) = server(Reply::Hang).await;
    times_out_after_200ms(&http(addr, "/", vec![])).await;
}

#[tokio::test]
async fn http_connection_refused_fails() {
    let addr = closed_port().await;
    let r = probe(&http(addr, "/", vec![]), T).await;
    assert!(matches!(r, Err(ProbeError::Connect { .. })), "{r:?}");
}

#[tokio::test]
async fn http_non_http_answer_fails() {
    let (addr, _) = server(Reply::Bytes(b"SSH-2.0-OpenSSH_9.2\r\n")).await;
    let r = probe(&http(addr, "/", vec![]), T).await;
    assert!(matches!(r, Err(ProbeError::BadStatusLine(_))), "{r:?}");
    let (addr, _) = server(Reply::Bytes(b"")).await;
    let r = probe(&http(addr, "/", vec![]), T).await;
    assert!(matches!(r, Err(ProbeError::HttpIo(_))), "{r:?}");
}

#[tokio::test]
async fn https_is_rejected_as_unsupported() {
    let kind = CheckKind::Http {
        url: "https://127.0.0.1:1/".into(),
        expect_status: vec![],
    };
    let r = probe(&kind, T).await;
    assert!(matches!(r, Err(ProbeError::Url(_))), "{r:?}");
}

#[tokio::test]
async fn tcp_connect_succeeds_and_refused_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    probe(&CheckKind::Tcp { address }, T)
        .await
        .expect("connects");
    let address = closed_port().await;
    let r = probe(&CheckKind::Tcp { address }, T).await;
    assert!(matches!(r, Err(ProbeError::Connect { .. })), "{r:?}");
}

fn exec(program: &str, args: &[&str]) -> CheckKind {
    CheckKind::Exec {
        program: PathBuf::from(program),
        args: args.iter().map(|s| s.to_string()).collect(),
        keep_capabilities: false,
    }
}

#[tokio::test]
async fn exec_true_is_healthy_false_is_not() {
    probe(&exec("/bin/true", &[]), T)
        .await
        .expect("/bin/true is healthy");
    let r = probe(&exec("/bin/false", &[]), T).await;
    assert!(matches!(r, Err(ProbeError::Exit { .. })), "{r:?}");
}

#[tokio::test]
async fn exec_passes_arguments_without_a_shell() {
    // No shell: `;` and `exit 1` are plain arguments to /bin/test, which then
    // sees `a = a` followed by junk and fails; with a shell it would succeed.
    probe(&exec("/usr/bin/test", &["a", "=", "a"]), T)
        .await
        .expect("test a = a");
    let r = probe(&exec("/usr/bin/test", &["a", "=", "a;", "true"]), T).await;
    assert!(matches!(r, Err(ProbeError::Exit { .. })), "{r:?}");
}

#[tokio::test]
async fn exec_sleep_is_killed_at_the_timeout_promptly() {
    times_out_after_200ms(&exec("/bin/sleep", &["10"])).await;
}

#[tokio::test]
async fn exec_missing_program_fails() {
    let r = probe(&exec("/nonexistent/vipd-check", &[]), T).await;
    assert!(matches!(r, Err(ProbeError::Spawn { .. })), "{r:?}");
}

#[tokio::test]
async fn interface_lo_is_up_and_a_missing_name_fails() {
    probe(&CheckKind::Interface { name: "lo".into() }, T)
        .await
        .expect("lo is up");
    let r = probe(
        &CheckKind::Interface {
            name: "vipdnone0".into(),
        },
        T,
    )
    .await;
    assert!(matches!(r, Err(ProbeError::NoSuchInterface(_))), "{r:?}");
}

fn spec(name: &str, kind: CheckKind, rise: u32, fall: u32) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        kind,
        interval: Duration::from_millis(30),
        timeout: Duration::from_millis(500),
        rise,
        fall,
        weight: 10,
    }
}

async fn next(rx: &mut mpsc::Receiver<TrackEvent>) -> TrackEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open")
}

#[tokio::test]
async fn runner_reports_every_probe_and_flags_rise_and_fall_flips() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::channel(64);
    let specs = [spec("web-port", CheckKind::Tcp { address }, 2, 2)];
    let set = spawn_checks("web", &specs, tx);
    assert_eq!(set.len(), 1);

    // rise = 2: the first success keeps the verdict unknown (reported unhealthy).
    let e = next(&mut rx).await;
    assert_eq!(
        (e.instance.as_str(), e.check, e.name.as_str()),
        ("web", 0, "web-port")
    );
    assert!(e.probe_ok && !e.healthy && !e.changed, "{e:?}");
    assert!(e.error.is_none());
    let e = next(&mut rx).await;
    assert!(e.probe_ok && e.healthy && e.changed, "{e:?}");
    let e = next(&mut rx).await;
    assert!(e.probe_ok && e.healthy && !e.changed, "{e:?}");

    // Take the port away: fall = 2.
    drop(listener);
    let mut e = next(&mut rx).await;
    while e.probe_ok {
        e = next(&mut rx).await;
    }
    assert!(e.healthy && !e.changed, "first failure rides out: {e:?}");
    assert!(
        e.error.as_deref().unwrap_or("").contains("connect"),
        "{e:?}"
    );
    let e = next(&mut rx).await;
    assert!(!e.probe_ok && !e.healthy && e.changed, "{e:?}");
    assert!(e.latency < Duration::from_millis(500), "{e:?}");
}

#[tokio::test]
async fn runner_checks_run_independently_and_stop_when_the_set_is_dropped() {
    let (tx, mut rx) = mpsc::channel(64);
    let specs = [
        spec("ok", exec("/bin/true", &[]), 1, 1),
        spec("bad", exec("/bin/false", &[]), 1, 1),
        spec("slow", exec("/bin/sleep", &["10"]), 1, 1),
    ];
    let set = spawn_checks("db", &specs, tx);
    let mut flipped = [None, None, None];
    let deadline = Instant::now() + Duration::from_secs(5);
    while flipped.iter().any(Option::is_none) && Instant::now() < deadline {
        let e = next(&mut rx).await;
        if e.changed {
            flipped[e.check] = Some((e.healthy, e.latency));
        }
    }
    let [ok, bad, slow] = flipped;
    assert_eq!(ok.map(|f| f.0), Some(true));
    assert_eq!(bad.map(|f| f.0), Some(false));
    let (healthy, latency) = slow.expect("slow check reported");
    assert!(!healthy);
    assert!(
        latency >= Duration::from_millis(490) && latency < Duration::from_secs(2),
        "{latency:?}"
    );

    drop(set);
    // Tasks aborted: their senders go away and the channel closes.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "events kept coming after the CheckSet was dropped"
    );
}

// The test process is root with every capability: a check program that inherited
// them would see a non-zero CapEff (it did before checks dropped them).
#[tokio::test]
async fn exec_checks_run_without_the_daemons_capabilities_unless_kept() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (capabilities to drop)");
        return;
    }
    let no_caps = "grep -Eq '^CapEff:[[:space:]]*0+$' /proc/self/status && grep -Eq '^CapPrm:[[:space:]]*0+$' /proc/self/status";
    probe(&exec("/bin/sh", &["-c", no_caps]), T)
        .await
        .expect("the check program has no capabilities");
    let kept = CheckKind::Exec {
        program: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), no_caps.into()],
        keep_capabilities: true,
    };
    let r = probe(&kept, T).await;
    assert!(
        matches!(r, Err(ProbeError::Exit { .. })),
        "keep-capabilities = true: the program should see the daemon's: {r:?}"
    );
}
