//! vipctl, the real binary, against a control server with a fake daemon.

mod control_fake;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use control_fake::{event, Running, TempDir};
use tokio::runtime::Runtime;
use vipd::control::message::{Request, Status};
use vipd::control::server::ServerOptions;

/// A server on its own runtime, so the test thread can block on the vipctl process.
struct Ctl {
    srv: Running,
    _rt: Runtime,
}

impl Ctl {
    /// What `vipctl ARGS` printed on stdout.
    fn out(&self, args: &[&str]) -> String {
        stdout(&vipctl(&self.srv.path, args))
    }
}

fn start(group: Option<&str>) -> Ctl {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let srv = rt.block_on(Running::start(ServerOptions::default(), group, 16));
    Ctl { srv, _rt: rt }
}

fn command(socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vipctl"));
    c.arg("-s").arg(socket).args(args).stdin(Stdio::null());
    c
}

fn vipctl(socket: &Path, args: &[&str]) -> Output {
    command(socket, args).output().expect("run vipctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure with exactly one `vipctl: ...` line on stderr; returns the reason.
fn one_line_failure(o: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.ends_with('\n'));
    err.trim_end()
        .strip_prefix("vipctl: ")
        .unwrap_or_else(|| panic!("no 'vipctl: ' prefix: {err:?}"))
        .to_string()
}

#[test]
fn status_json_prints_exactly_one_instances_object() {
    let ctl = start(None);
    let o = vipctl(&ctl.srv.path, &["status", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v.as_object().expect("object").keys().collect::<Vec<_>>(),
        vec!["instances"]
    );
    let status: Status = serde_json::from_value(v.clone()).expect("status");
    assert_eq!(status.instances, control_fake::table());
    assert_eq!(v["instances"][0]["override"], serde_json::Value::Null);
    assert_eq!(v["instances"][1]["state"], "backup");
}

#[test]
fn status_table_shows_what_an_operator_needs() {
    let ctl = start(None);
    let o = vipctl(&ctl.srv.path, &["status"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("INSTANCE"), "{out}");
    for h in [
        "STATE", "PRIO", "OVERRIDE", "MAINT", "VIPS", "MASTER", "IN STATE",
    ] {
        assert!(lines[0].contains(h), "header lacks {h}: {out}");
    }
    let web = lines
        .iter()
        .find(|l| l.starts_with("web "))
        .expect("web row");
    for cell in ["MASTER", "150/150", "192.0.2.100/24", "192.0.2.10", "4m05s"] {
        assert!(web.contains(cell), "web row lacks {cell}: {web}");
    }
    let api = lines
        .iter()
        .find(|l| l.starts_with("api "))
        .expect("api row");
    assert!(api.contains("198.51.100.7/24,198.51.100.8/24"), "{api}");
    for line in [
        "last transition: BACKUP -> MASTER",
        "(no advert from 192.0.2.11 for 3.35 s)",
        "track nginx: healthy, weight -50, 12 ms",
    ] {
        assert!(out.contains(line), "{line:?} missing: {out}");
    }
}

#[test]
fn status_shows_the_arbiter() {
    let ctl = start(None);
    let out = ctl.out(&["status"]);
    assert!(
        out.contains("  arbiter: key /vipd/web, holder (fencing token 42), etcd reachable\n"),
        "{out}"
    );
    // An instance without the arbiter has no such line, and `"arbiter": null` in JSON.
    assert_eq!(out.matches("arbiter:").count(), 1, "{out}");
    let json: serde_json::Value = serde_json::from_str(&ctl.out(&["status", "--json"])).unwrap();
    let inst = json["instances"].as_array().unwrap();
    let web = inst.iter().find(|i| i["name"] == "web").unwrap();
    assert_eq!(web["arbiter"]["holder"], true);
    assert_eq!(web["arbiter"]["reachable"], true);
    assert_eq!(web["arbiter"]["fencing_token"], 42);
    let api = inst.iter().find(|i| i["name"] == "api").unwrap();
    assert!(api["arbiter"].is_null(), "{api}");
    // A master-elect shows as such in the table.
    {
        let mut t = ctl.srv.state.table.lock().unwrap();
        let web = t.iter_mut().find(|i| i.name == "web").unwrap();
        let a = web.arbiter.as_mut().unwrap();
        a.holder = false;
        a.fencing_token = None;
        a.master_elect = true;
        a.other_holder = Some("lb2 192.0.2.12 pid 7".into());
    }
    let out = ctl.out(&["status"]);
    let web = out.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(web.contains("MASTER-ELECT"), "{out}");
    assert!(
        out.contains("not holder, etcd reachable, held by lb2 192.0.2.12 pid 7"),
        "{out}"
    );
}

#[test]
fn priority_set_and_clear() {
    let ctl = start(None);
    let o = vipctl(&ctl.srv.path, &["priority", "set", "web", "200"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "priority of web set to 200\n");
    let web = ctl.srv.state.instance("web").expect("web");
    assert_eq!((web.priority_override, web.priority), (Some(200), 200));
    let o = vipctl(&ctl.srv.path, &["status"]);
    assert!(stdout(&o).contains("200/150"), "{}", stdout(&o));

    let o = vipctl(&ctl.srv.path, &["priority", "clear", "web"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        ctl.srv
            .state
            .instance("web")
            .and_then(|i| i.priority_override),
        None
    );
}

#[test]
fn priority_out_of_range_is_rejected_before_contacting_the_daemon() {
    let ctl = start(None);
    for bad in ["0", "255", "256", "-1", "abc", "1.5"] {
        let o = vipctl(&ctl.srv.path, &["priority", "set", "web", bad]);
        let why = one_line_failure(&o, 2);
        assert!(
            why.contains("priority must be a whole number from 1 to 254"),
            "{bad}: {why}"
        );
        assert!(why.contains(bad), "{bad}: {why}");
    }
    assert!(
        ctl.srv.state.seen().is_empty(),
        "{:?}",
        ctl.srv.state.seen()
    );
    // Also without any daemon at all.
    let dir = TempDir::new("norun-range");
    let o = vipctl(
        &dir.path().join("absent.sock"),
        &["priority", "set", "web", "255"],
    );
    assert!(one_line_failure(&o, 2).contains("1 to 254"));
}

#[test]
fn unknown_instance_is_one_line_listing_known_ones() {
    let ctl = start(None);
    let o = vipctl(&ctl.srv.path, &["maintenance", "on", "db"]);
    assert_eq!(
        one_line_failure(&o, 1),
        "unknown instance \"db\" (known: web, api)"
    );
}

#[test]
fn maintenance_and_reload() {
    let ctl = start(None);
    let o = vipctl(&ctl.srv.path, &["maintenance", "on", "api"]);
    assert!(o.status.success(), "{o:?}");
    assert!(ctl.srv.state.instance("api").expect("api").maintenance);
    let o = vipctl(&ctl.srv.path, &["maintenance", "off", "api"]);
    assert!(o.status.success(), "{o:?}");
    assert!(!ctl.srv.state.instance("api").expect("api").maintenance);
    let o = vipctl(&ctl.srv.path, &["reload"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "configuration reloaded\n");
    assert_eq!(
        ctl.srv.state.seen(),
        vec![
            Request::Maintenance {
                instance: "api".into(),
                on: true
            },
            Request::Maintenance {
                instance: "api".into(),
                on: false
            },
            Request::Reload,
        ]
    );
}

#[test]
fn not_running_when_the_socket_is_absent_or_stale() {
    let dir = TempDir::new("norun");
    let path = dir.path().join("vipd.sock");
    let not_running = |args: &[&str], why: &str| {
        let o = vipctl(&path, args);
        let want = format!("vipd is not running ({why} {})", path.display());
        assert_eq!(one_line_failure(&o, 1), want);
    };
    not_running(&["status"], "no control socket at");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    not_running(&["reload"], "nothing answers on");
}

#[test]
fn usage_errors_are_one_line() {
    let dir = TempDir::new("usage");
    let sock = dir.path().join("s");
    for args in [
        &["frobnicate"][..],
        &[][..],
        &["maintenance", "sideways", "web"][..],
        &["priority", "set", "web"][..],
    ] {
        let o = vipctl(&sock, args);
        one_line_failure(&o, 2);
    }
    let o = vipctl(&sock, &["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("status"));
}

/// Reads the child's stdout lines on a thread so waits can be bounded.
fn line_reader(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_subscriber(ctl: &Ctl) {
    for _ in 0..500 {
        if ctl.srv.events.receiver_count() > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("vipctl events never subscribed");
}

/// Starts `vipctl ARGS` (an events command) with its stdout read line by line, and waits
/// until it has subscribed.
fn follow(
    ctl: &Ctl,
    args: &[&str],
    stderr: Stdio,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = command(&ctl.srv.path, args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    let lines = line_reader(&mut child);
    wait_for_subscriber(ctl);
    (child, lines)
}

#[test]
fn events_follow_state_changes() {
    let ctl = start(None);
    let (mut child, lines) = follow(&ctl, &["events"], Stdio::piped());
    ctl.srv.events.send(event(1)).expect("subscriber");
    ctl.srv.events.send(event(2)).expect("subscriber");
    let first = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("an event line");
    assert_eq!(
        first,
        "2023-11-14T22:13:20.001Z web: BACKUP -> MASTER (test event 1)"
    );
    let second = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("an event line");
    assert!(second.ends_with("(test event 2)"), "{second}");
    // Still following.
    assert!(child.try_wait().expect("try_wait").is_none());
    // The daemon goes away: vipctl says so on one line and fails.
    ctl.srv.server.abort();
    let mut status = None;
    for _ in 0..500 {
        status = child.try_wait().expect("try_wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("vipctl events did not notice the daemon leaving");
    };
    assert_eq!(status.code(), Some(1));
    let out = child.wait_with_output().expect("output");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vipctl: vipd closed the event stream\n"
    );
}

#[test]
fn events_json_prints_raw_lines() {
    let ctl = start(None);
    let (mut child, lines) = follow(&ctl, &["events", "--json"], Stdio::null());
    ctl.srv.events.send(event(7)).expect("subscriber");
    let got = lines.recv_timeout(Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&got.expect("a line")).expect("json");
    assert_eq!(v["event"]["reason"], "test event 7");
    assert_eq!(v["event"]["instance"], "web");
}

// --- permissions: a non-root peer ---------------------------------------------------

const NOBODY: u32 = 65534;

fn as_root_or_skip(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        true
    } else {
        println!("skipped {test}: needs root to run vipctl as another user");
        false
    }
}

fn nogroup() -> Option<u32> {
    nix::unistd::Group::from_name("nogroup")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// The binary and the socket's directory must be reachable by nobody.
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .all(|p| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        })
}

fn as_user(socket: &Path, uid: u32, gid: u32, args: &[&str]) -> Output {
    command(socket, args)
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run vipctl")
}

/// [`start`] for the `test` that runs vipctl as another user: `None` (skip, said why)
/// when we are not root, or vipctl or the temp dir is not reachable by nobody.
fn start_for_others(test: &str, group: Option<&str>) -> Option<Ctl> {
    if !as_root_or_skip(test) {
        return None;
    }
    let ctl = start(group);
    fix_run_dir(&ctl);
    if !reachable_by_others(Path::new(env!("CARGO_BIN_EXE_vipctl")))
        || !reachable_by_others(&ctl.srv.path)
    {
        println!("skipped: vipctl or the temp dir is not reachable by nobody");
        return None;
    }
    Some(ctl)
}

fn fix_run_dir(ctl: &Ctl) {
    // The server created <tmp>/run itself with mode 0755; make sure of it.
    let run = ctl.srv.path.parent().expect("parent");
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_non_root_peer_outside_the_group_is_refused_by_the_server() {
    let Some(ctl) = start_for_others(
        "a_non_root_peer_outside_the_group_is_refused_by_the_server",
        None,
    ) else {
        return;
    };
    // Open the file itself, so only the SO_PEERCRED check stands in the way.
    std::fs::set_permissions(&ctl.srv.path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = as_user(&ctl.srv.path, NOBODY, NOBODY, &["status"]);
    let why = one_line_failure(&o, 1);
    assert!(why.starts_with("permission denied: uid 65534"), "{why}");
    assert!(
        ctl.srv.state.seen().is_empty(),
        "a refused peer reached the daemon"
    );
}

#[test]
fn a_non_root_peer_is_kept_out_by_the_socket_mode() {
    let Some(ctl) = start_for_others("a_non_root_peer_is_kept_out_by_the_socket_mode", None) else {
        return;
    };
    let o = as_user(
        &ctl.srv.path,
        NOBODY,
        NOBODY,
        &["priority", "set", "web", "10"],
    );
    assert_eq!(
        one_line_failure(&o, 1),
        format!(
            "permission denied on {} (need root or group set by control-group in vipd.toml)",
            ctl.srv.path.display()
        )
    );
    assert!(ctl.srv.state.seen().is_empty());
}

#[test]
fn a_member_of_the_control_group_is_admitted() {
    let Some(gid) = nogroup() else {
        println!("skipped: no group 'nogroup' on this machine");
        return;
    };
    let Some(ctl) = start_for_others("a_member_of_the_control_group_is_admitted", Some("nogroup"))
    else {
        return;
    };
    let o = as_user(&ctl.srv.path, NOBODY, gid, &["status", "--json"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("{\"instances\":["));

    // Same user, other primary group, no supplementary groups: the file mode lets it
    // connect only if opened up, and then the credential check refuses it.
    std::fs::set_permissions(&ctl.srv.path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = as_user(&ctl.srv.path, NOBODY, 1, &["status"]);
    let why = one_line_failure(&o, 1);
    assert_eq!(
        why,
        "permission denied: uid 65534 is neither root nor in group nogroup"
    );
    // And with the file mode as bind left it, the group name shows in the client's message.
    std::fs::set_permissions(&ctl.srv.path, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    let o = as_user(&ctl.srv.path, NOBODY, 1, &["status"]);
    assert!(one_line_failure(&o, 1).ends_with("(need root or group nogroup)"));
}
