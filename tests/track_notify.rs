//! Notify hooks: order, arguments, environment, failures and timeouts.
//! Hooks are `/bin/sh -c SCRIPT ...` appending to a file in a temp dir.

use std::path::Path;
use std::time::{Duration, Instant};

mod notify_common;
use notify_common::{cap_sets, hooks, pid_running, settle, sh, TempDir};

use vipd::track::{Notifier, NotifySpec};

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn hooks_run_in_order_with_arguments_and_environment() {
    let dir = TempDir::new();
    let f = dir.file();
    let spec = NotifySpec {
        // The master hook is slow: if hooks ran concurrently, `any` would log first.
        master: Some(sh(
            "sleep 0.2; echo \"$0 $@ [$VIPD_STATE]\"",
            &f,
            &["master-hook", "x y"],
        )),
        backup: Some(sh(
            "echo \"$0 [$VIPD_INSTANCE|$VIPD_STATE|$VIPD_REASON]\"",
            &f,
            &["backup-hook"],
        )),
        fault: Some(sh("echo \"$0\"", &f, &["fault-hook"])),
        // sh -c SCRIPT INSTANCE STATE REASON: $0 = INSTANCE, $1 = STATE, $2 = REASON.
        any: Some(sh("echo \"any <$0> <$1> <$2> [$VIPD_REASON]\"", &f, &[])),
        stop: None,
        timeout: Duration::from_secs(5),
        keep_capabilities: false,
    };
    let n = Notifier::new(spec);
    n.notify("web", "master", "no advert from 192.0.2.11 for 3.35 s");
    n.notify("web", "backup", "higher priority 200 from 192.0.2.12");
    n.notify("web", "fault", "track check 'db' is unhealthy");
    n.notify("web", "master", "split brain healed: still master");
    settle(&n).await;
    assert_eq!(
        lines(&f),
        vec![
            "master-hook x y [master]",
            "any <web> <master> <no advert from 192.0.2.11 for 3.35 s> [no advert from 192.0.2.11 for 3.35 s]",
            "backup-hook [web|backup|higher priority 200 from 192.0.2.12]",
            "any <web> <backup> <higher priority 200 from 192.0.2.12> [higher priority 200 from 192.0.2.12]",
            "fault-hook",
            "any <web> <fault> <track check 'db' is unhealthy> [track check 'db' is unhealthy]",
            "master-hook x y [master]",
            "any <web> <master> <split brain healed: still master> [split brain healed: still master]",
        ]
    );
}

#[tokio::test]
async fn notify_never_blocks_the_caller() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(hooks(&f, &[("master", "sleep 0.5; echo m")]));
    let start = Instant::now();
    for _ in 0..3 {
        n.notify("web", "master", "r");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_millis(100), "notify took {took:?}");
    assert!(lines(&f).is_empty(), "hook ran synchronously");
    settle(&n).await;
    assert_eq!(lines(&f), vec!["m", "m", "m"]);
}

#[tokio::test]
async fn a_failing_missing_or_hanging_hook_does_not_stop_the_next() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(NotifySpec {
        // Writes, then fails.
        master: Some(sh("echo master; exit 3", &f, &[])),
        // Cannot start.
        backup: Some(vec!["/nonexistent/vipd-hook".into()]),
        // Hangs past the timeout and is killed before it writes.
        fault: Some(sh("sleep 10; echo fault-late", &f, &[])),
        any: Some(sh("echo \"any $1\"", &f, &[])),
        stop: None,
        timeout: Duration::from_millis(300),
        keep_capabilities: false,
    });
    let start = Instant::now();
    n.notify("db", "master", "a");
    n.notify("db", "backup", "b");
    n.notify("db", "fault", "c");
    settle(&n).await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "hanging hook not killed: {took:?}"
    );
    assert_eq!(
        lines(&f),
        vec!["master", "any master", "any backup", "any fault"]
    );
}

#[tokio::test]
async fn states_without_their_own_hook_run_only_any() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(hooks(
        &f,
        &[("master", "echo master"), ("any", "echo \"any $1\"")],
    ));
    n.notify("db", "backup", "x");
    n.notify("db", "init", "y");
    settle(&n).await;
    assert_eq!(lines(&f), vec!["any backup", "any init"]);
}

#[tokio::test]
async fn queued_hooks_still_run_after_the_notifier_is_dropped() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(hooks(&f, &[("backup", "sleep 0.1; echo backup")]));
    n.notify("web", "backup", "shutdown");
    n.notify("web", "backup", "shutdown");
    drop(n);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&f).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines(&f), vec!["backup", "backup"]);
}

#[tokio::test]
async fn no_hooks_configured_is_idle_at_once() {
    let n = Notifier::new(NotifySpec {
        timeout: Duration::from_secs(1),
        ..NotifySpec::default()
    });
    n.notify("web", "master", "r");
    settle(&n).await;
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_hooks_so_the_latest_state_runs() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(hooks(&f, &[("any", "echo \"$2\"")]));
    // The test runtime is single-threaded: the worker cannot start before we yield.
    let total = vipd::track::QUEUE_CAP + 10;
    for i in 0..total {
        n.notify(
            "web",
            if i % 2 == 0 { "master" } else { "backup" },
            &i.to_string(),
        );
    }
    settle(&n).await;
    let want: Vec<String> = (10..total).map(|i| i.to_string()).collect();
    assert_eq!(lines(&f), want);
}

/// The `Cap*:` sets a hook wrote (from its own /proc/self/status), as numbers.
fn caps_in(file: &Path) -> Vec<(String, u64)> {
    cap_sets(&lines(file))
}

// The test process is root with every capability: a hook that inherited them would
// show them all (it did before hooks dropped them).
#[tokio::test]
async fn hooks_run_without_the_daemons_capabilities_unless_kept() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (capabilities to drop)");
        return;
    }
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(hooks(&f, &[("master", "grep ^Cap /proc/self/status")]));
    n.notify("web", "master", "r");
    settle(&n).await;
    let caps = caps_in(&f);
    assert_eq!(caps.len(), 5, "{:?}", lines(&f));
    for (set, value) in &caps {
        assert_eq!(*value, 0, "{set} of the hook: {caps:?}");
    }

    let dir2 = TempDir::new();
    let kept = dir2.file();
    let mut spec = hooks(&kept, &[("master", "grep ^CapEff /proc/self/status")]);
    spec.keep_capabilities = true;
    let n = Notifier::new(spec);
    n.notify("web", "master", "r");
    settle(&n).await;
    let caps = caps_in(&kept);
    assert!(
        matches!(caps.as_slice(), [(k, v)] if k == "CapEff" && *v != 0),
        "keep-capabilities: {caps:?}"
    );
}

#[tokio::test]
async fn a_hook_leaves_no_background_process_behind() {
    let dir = TempDir::new();
    let f = dir.file();
    let n = Notifier::new(NotifySpec {
        // Backgrounds a long sleep (which also holds the hook's stdout) and exits.
        master: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("sleep 1000 & echo $! > '{}'", f.display()),
        ]),
        timeout: Duration::from_secs(20),
        ..NotifySpec::default()
    });
    n.notify("web", "master", "r");
    settle(&n).await;
    let pid: i32 = lines(&f)
        .first()
        .and_then(|l| l.trim().parse().ok())
        .expect("the hook wrote the pid of its sleep");
    let running = || pid_running(pid);
    let mut alive = running();
    for _ in 0..50 {
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        alive = running();
    }
    if alive {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        !alive,
        "the hook's sleep {pid} is still running after the hook ended"
    );
}

#[tokio::test]
async fn stop_runs_only_the_stop_hook_with_its_environment() {
    let dir = TempDir::new();
    let f = dir.file();
    let mut spec = hooks(&f, &[("backup", "echo backup"), ("any", "echo \"any $1\"")]);
    spec.stop = Some(sh(
        "echo \"$0 [$VIPD_INSTANCE|$VIPD_STATE|$VIPD_REASON]\"",
        &f,
        &["stop-hook"],
    ));
    let n = Notifier::new(spec);
    n.notify("web", "init", "shutdown");
    n.notify("web", "stop", "instance stopped");
    settle(&n).await;
    assert_eq!(
        lines(&f),
        vec!["any init", "stop-hook [web|stop|instance stopped]"]
    );
    // Without a stop hook, stopping runs nothing (not even `any`).
    let g = dir.file().with_file_name("log2");
    let n = Notifier::new(hooks(&g, &[("any", "echo \"any $1\"")]));
    n.notify("web", "stop", "instance stopped");
    settle(&n).await;
    assert!(lines(&g).is_empty(), "{:?}", lines(&g));
}
