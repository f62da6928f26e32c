//! The control server against a fake daemon, over real Unix sockets in a temp dir.

mod control_fake;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use control_fake::{event, Running, TempDir};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use vipd::control::client::{self, ClientError};
use vipd::control::message::{Request, Response};
use vipd::control::server::{ControlError, ControlListener, ServerOptions};

const BOUND: Duration = Duration::from_secs(5);

/// Sends raw bytes, returns the first response line (bounded in time).
async fn raw(path: &Path, bytes: &[u8]) -> String {
    let stream = UnixStream::connect(path).await.expect("connect");
    let (rd, mut wr) = stream.into_split();
    // The server may answer and close before reading everything (oversized lines).
    let _ = wr.write_all(bytes).await;
    let mut line = String::new();
    tokio::time::timeout(BOUND, BufReader::new(rd).read_line(&mut line))
        .await
        .expect("server answered in time")
        .expect("read");
    line
}

fn error_of(line: &str) -> String {
    match Response::parse_line(line.as_bytes()) {
        Ok(Response::Error { message }) => message,
        other => panic!("expected an error response, got {other:?} from {line:?}"),
    }
}

/// Sends raw bytes; the error message of the response (panics if it is not an error).
async fn error_reply(path: &Path, bytes: &[u8]) -> String {
    error_of(&raw(path, bytes).await)
}

/// Reads one line within [`BOUND`].
async fn line_in_time<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> String {
    let mut line = String::new();
    tokio::time::timeout(BOUND, reader.read_line(&mut line))
        .await
        .expect("a line in time")
        .expect("read");
    line
}

/// Asserts that the server closes the connection (end of file within [`BOUND`]).
async fn expect_closed<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) {
    let mut rest = Vec::new();
    let n = tokio::time::timeout(BOUND, reader.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0);
}

/// A server on the defaults as `set` changes them.
async fn server_with(set: impl FnOnce(&mut ServerOptions)) -> Running {
    let mut opts = ServerOptions::default();
    set(&mut opts);
    Running::start(opts, None, 16).await
}

async fn status_works(path: &Path) {
    let line = raw(path, b"{\"version\":1,\"command\":\"status\"}\n").await;
    assert!(
        matches!(Response::parse_line(line.as_bytes()), Ok(Response::Status(s)) if s.instances.len() == 2),
        "status after a bad request: {line}"
    );
}

#[tokio::test]
async fn status_json_uses_exactly_the_design_field_names() {
    let srv = Running::start(ServerOptions::default(), None, 16).await;
    let line = raw(&srv.path, b"{\"version\":1,\"command\":\"status\"}\n").await;
    let v: Value = serde_json::from_str(&line).expect("json");
    let status = v.get("status").expect("status key");
    let obj = status.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["instances"]);
    let web = &status["instances"][0];
    for key in [
        "name",
        "vrid",
        "interface",
        "state",
        "priority",
        "base_priority",
        "override",
        "maintenance",
        "vips",
        "master",
    ] {
        assert!(web.get(key).is_some(), "missing {key} in {web}");
    }
    assert!(web.get("priority_override").is_none());
    assert_eq!(web["name"], "web");
    assert_eq!(web["vrid"], 51);
    assert_eq!(web["interface"], "eth0");
    assert_eq!(web["state"], "master");
    assert_eq!(web["priority"], 150);
    assert_eq!(web["base_priority"], 150);
    assert_eq!(web["override"], Value::Null);
    assert_eq!(web["maintenance"], false);
    assert_eq!(web["vips"], serde_json::json!(["192.0.2.100/24"]));
    assert_eq!(web["master"], "192.0.2.10");
    assert_eq!(status["instances"][1]["master"], Value::Null);
    assert_eq!(web["tracks"][0]["name"], "nginx");
}

#[tokio::test]
async fn priority_out_of_range_is_refused_before_the_daemon() {
    let srv = Running::start(ServerOptions::default(), None, 16).await;
    for (value, want) in [
        ("0", "priority 0 out of range"),
        ("255", "priority 255 out of range"),
        ("300", "bad priority-set request"),
        ("-1", "bad priority-set request"),
        ("\"high\"", "bad priority-set request"),
    ] {
        let line = format!(
            "{{\"version\":1,\"command\":\"priority-set\",\"instance\":\"web\",\"value\":{value}}}\n"
        );
        let msg = error_of(&raw(&srv.path, line.as_bytes()).await);
        assert!(msg.contains(want), "{value}: {msg}");
    }
    assert!(
        srv.state.seen().is_empty(),
        "handler saw {:?}",
        srv.state.seen()
    );
    let ok = raw(
        &srv.path,
        b"{\"version\":1,\"command\":\"priority-set\",\"instance\":\"web\",\"value\":254}\n",
    )
    .await;
    assert_eq!(ok.trim(), r#"{"ok":"priority of web set to 254"}"#);
    assert_eq!(
        srv.state.instance("web").and_then(|i| i.priority_override),
        Some(254)
    );
}

#[tokio::test]
async fn unknown_instance_error_lists_known_instances() {
    let srv = Running::start(ServerOptions::default(), None, 16).await;
    let msg = error_reply(
        &srv.path,
        b"{\"version\":1,\"command\":\"maintenance\",\"instance\":\"db\",\"on\":true}\n",
    )
    .await;
    assert_eq!(msg, "unknown instance \"db\" (known: web, api)");
}

#[tokio::test]
async fn bad_requests_get_an_error_and_the_server_keeps_serving() {
    let srv = server_with(|o| o.max_request_len = 1024).await;
    let mut oversized = vec![b'x'; 4096];
    oversized.push(b'\n');
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"{\"version\":1,\"command\":\"explode\"}\n".to_vec(),
            "unknown command \"explode\"",
        ),
        (b"this is not json\n".to_vec(), "malformed JSON"),
        (
            b"{\"version\":2,\"command\":\"status\"}\n".to_vec(),
            "unsupported protocol version 2",
        ),
        (b"{\"command\":\"status\"}\n".to_vec(), "no \"version\""),
        (b"\xff\xfe\n".to_vec(), "malformed JSON"),
        (oversized, "request too long (limit 1024 bytes)"),
    ];
    for (bytes, want) in cases {
        let msg = error_reply(&srv.path, &bytes).await;
        assert!(msg.contains(want), "{want}: got {msg}");
        status_works(&srv.path).await;
    }
    assert!(!srv.server.is_finished());
    // Only the status requests reached the daemon.
    assert!(srv.state.seen().iter().all(|r| *r == Request::Status));
}

#[tokio::test]
async fn a_silent_client_is_timed_out() {
    let srv = server_with(|o| o.read_timeout = Duration::from_millis(200)).await;
    let started = Instant::now();
    let stream = UnixStream::connect(&srv.path).await.expect("connect");
    let mut reader = BufReader::new(stream);
    let line = line_in_time(&mut reader).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert!(error_of(&line).contains("no request received within 0.2 s"));
    // And the connection is closed afterwards.
    expect_closed(&mut reader).await;
    status_works(&srv.path).await;
}

#[tokio::test]
async fn a_daemon_that_does_not_answer_gives_an_error() {
    let srv = server_with(|o| o.handler_timeout = Duration::from_millis(200)).await;
    let msg = error_reply(
        &srv.path,
        b"{\"version\":1,\"command\":\"priority-clear\",\"instance\":\"hang\"}\n",
    )
    .await;
    assert!(
        msg.contains("did not answer the priority-clear request"),
        "{msg}"
    );
    let msg = error_reply(
        &srv.path,
        b"{\"version\":1,\"command\":\"priority-clear\",\"instance\":\"drop\"}\n",
    )
    .await;
    assert_eq!(msg, "vipd dropped the priority-clear request");
    status_works(&srv.path).await;
}

#[tokio::test]
async fn a_stopped_daemon_gives_an_error() {
    let srv = Running::start(ServerOptions::default(), None, 16).await;
    srv.handler.abort();
    // Wait (bounded) for the handler's receiver to be gone.
    for _ in 0..100 {
        if srv.handler.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let msg = error_reply(&srv.path, b"{\"version\":1,\"command\":\"reload\"}\n").await;
    assert_eq!(msg, "vipd is shutting down");
}

/// Connects to the server at `path` and asks it for the event stream; the halves of the
/// connection (the answer not read yet).
async fn follow_events(
    path: &Path,
) -> (
    tokio::net::unix::OwnedReadHalf,
    tokio::net::unix::OwnedWriteHalf,
) {
    let stream = UnixStream::connect(path).await.expect("connect");
    let (rd, mut wr) = stream.into_split();
    wr.write_all(b"{\"version\":1,\"command\":\"events\"}\n")
        .await
        .expect("write");
    (rd, wr)
}

async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>) -> String {
    tokio::time::timeout(BOUND, lines.next_line())
        .await
        .expect("line in time")
        .expect("read")
        .expect("a line")
}

#[tokio::test]
async fn events_stream_until_the_client_leaves() {
    let srv = Running::start(ServerOptions::default(), None, 16).await;
    let (rd, wr) = follow_events(&srv.path).await;
    let mut lines = BufReader::new(rd).lines();
    assert_eq!(next(&mut lines).await, r#"{"ok":"following events"}"#);
    assert_eq!(srv.events.receiver_count(), 1);
    for n in 0..3 {
        srv.events.send(event(n)).expect("a subscriber");
    }
    for n in 0..3 {
        let line = next(&mut lines).await;
        assert_eq!(
            Response::parse_line(line.as_bytes()).expect("parse"),
            Response::Event(event(n))
        );
    }
    assert!(
        srv.state.seen().is_empty(),
        "events must not reach the daemon"
    );
    drop(wr);
    drop(lines);
    let mut gone = false;
    for _ in 0..200 {
        if srv.events.receiver_count() == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        gone,
        "the server still follows events for a client that left"
    );
    status_works(&srv.path).await;
}

#[tokio::test]
async fn a_slow_event_reader_is_told_how_many_it_missed() {
    // current_thread runtime: the server task cannot run while this test sends.
    let srv = Running::start(ServerOptions::default(), None, 4).await;
    let (rd, _wr) = follow_events(&srv.path).await;
    let mut lines = BufReader::new(rd).lines();
    let first = tokio::time::timeout(BOUND, lines.next_line())
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(first.as_deref(), Some(r#"{"ok":"following events"}"#));
    for n in 0..10 {
        srv.events.send(event(n)).expect("a subscriber");
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let line = tokio::time::timeout(BOUND, lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("line");
        got.push(Response::parse_line(line.as_bytes()).expect("parse"));
    }
    assert_eq!(got[0], Response::Lagged { missed: 6 });
    assert_eq!(
        got[1..],
        (6..10)
            .map(|n| Response::Event(event(n)))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn events_end_when_the_server_stops() {
    let srv = Running::start(ServerOptions::default(), None, 4).await;
    let (rd, _wr) = follow_events(&srv.path).await;
    let mut reader = BufReader::new(rd);
    line_in_time(&mut reader).await;
    // Aborting the server ends its connection tasks too (the daemon is going away).
    srv.server.abort();
    expect_closed(&mut reader).await;
}

#[tokio::test]
async fn aborting_the_server_removes_the_socket_file() {
    let srv = Running::start(ServerOptions::default(), None, 4).await;
    assert!(srv.path.exists());
    srv.server.abort();
    let mut removed = false;
    for _ in 0..200 {
        if !srv.path.exists() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(removed, "socket file left behind");
}

#[test]
fn bind_creates_the_directory_and_sets_mode_0660() {
    let dir = TempDir::new("bind");
    let path = dir.path().join("a/b/vipd.sock");
    let listener = ControlListener::bind(&path, None).expect("bind");
    let meta = std::fs::symlink_metadata(&path).expect("stat");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    drop(listener);
    assert!(!path.exists(), "drop removes the socket file");
}

#[test]
fn bind_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    let dir = TempDir::new("stale");
    let path = dir.path().join("vipd.sock");
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let live = ControlListener::bind(&path, None).expect("stale socket replaced");
    match ControlListener::bind(&path, None) {
        Err(ControlError::InUse(p)) => assert_eq!(p, path),
        other => panic!("second bind: {other:?}"),
    }
    assert!(path.exists(), "the live socket is left alone");
    drop(live);
    std::fs::write(&path, b"precious").expect("write");
    assert!(matches!(
        ControlListener::bind(&path, None),
        Err(ControlError::NotASocket(_))
    ));
    assert_eq!(std::fs::read(&path).expect("read"), b"precious");
}

#[test]
fn bind_with_an_unknown_group_fails() {
    let dir = TempDir::new("grp");
    let err = ControlListener::bind(&dir.path().join("s"), Some("no-such-group-vipd-test"))
        .expect_err("unknown group");
    assert!(err.to_string().contains("no-such-group-vipd-test"), "{err}");
}

#[test]
fn bind_sets_the_group_when_root() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipped: chgrp to another group needs root");
        return;
    }
    let dir = TempDir::new("chgrp");
    let path = dir.path().join("vipd.sock");
    let _l = ControlListener::bind(&path, Some("nogroup")).expect("bind");
    let gid = nix::unistd::Group::from_name("nogroup")
        .expect("lookup")
        .expect("nogroup exists")
        .gid;
    assert_eq!(std::fs::metadata(&path).expect("stat").gid(), gid.as_raw());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_client_talks_to_the_server() {
    let srv = Running::start(ServerOptions::default(), None, 4).await;
    let path = srv.path.clone();
    let got = tokio::task::spawn_blocking(move || {
        (
            client::call(&path, &Request::Status),
            client::call(
                &path,
                &Request::PrioritySet {
                    instance: "api".into(),
                    value: 7,
                },
            ),
        )
    })
    .await
    .expect("join");
    match got.0 {
        Ok(Response::Status(s)) => assert_eq!(s.instances, control_fake::table()),
        other => panic!("{other:?}"),
    }
    assert_eq!(got.1.ok(), Some(Response::ok("priority of api set to 7")));
}

#[test]
fn client_errors_are_one_line_and_say_why() {
    let dir = TempDir::new("cli");
    let missing = dir.path().join("nope.sock");
    let err = client::call(&missing, &Request::Status).expect_err("no socket");
    assert_eq!(
        err.to_string(),
        format!(
            "vipd is not running (no control socket at {})",
            missing.display()
        )
    );
    // A listener that never accepts: the client times out.
    let path = dir.path().join("mute.sock");
    let _mute = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let started = Instant::now();
    let err = client::call_with_timeout(&path, &Request::Status, Duration::from_millis(300))
        .expect_err("timeout");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < BOUND);
    assert!(
        err.to_string().starts_with("vipd did not answer within"),
        "{err}"
    );
}
