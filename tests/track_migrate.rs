//! `process` and `file` checks against real processes and files (no root needed):
//! a `sleep` with a unique argument comes and goes, a file's value changes; the check
//! tasks report the flips and values the driver turns into priority or Fault.

mod harness;

use std::time::Duration;

use tokio::sync::mpsc;
use vipd::track::{
    penalty_with_values, probe, probe_value, spawn_checks, ArgsMatch, CheckKind, CheckSpec,
    ProbeError, ProcessMatch, TrackEvent,
};

use harness::Sleeper;

fn spec(kind: CheckKind, weight: u8) -> CheckSpec {
    CheckSpec {
        name: "t".into(),
        kind,
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        rise: 1,
        fall: 1,
        weight,
    }
}

/// A marker no other process on the machine carries.
fn marker(what: &str) -> String {
    format!("vipd-test-{what}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

fn sh_with(how: ArgsMatch, args: &[&str]) -> ProcessMatch {
    ProcessMatch {
        name: "sh".into(),
        args: Some(args.iter().map(|s| s.to_string()).collect()),
        args_match: how,
        min_count: 1,
        max_count: None,
    }
}

async fn next(rx: &mut mpsc::Receiver<TrackEvent>) -> TrackEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("channel open")
}

/// Waits for an event with `changed` set (bounded).
async fn next_change(rx: &mut mpsc::Receiver<TrackEvent>) -> TrackEvent {
    for _ in 0..400 {
        let e = next(rx).await;
        if e.changed {
            return e;
        }
    }
    panic!("no change in 400 events");
}

#[tokio::test]
async fn process_probe_counts_matching_processes_by_name_and_arguments() {
    let m = marker("probe");
    let exact = sh_with(ArgsMatch::Exact, &["-c", "sleep 300; :", &m]);
    let kind = CheckKind::Process(exact.clone());
    let r = probe(&kind, Duration::from_secs(2)).await;
    assert!(
        matches!(r, Err(ProbeError::ProcessCount { count: 0, .. })),
        "{r:?}"
    );
    let a = Sleeper::start(&m);
    let b = Sleeper::start(&m);
    // Up to 2 s for both shells to exec.
    let mut ok = false;
    for _ in 0..40 {
        if probe(&kind, Duration::from_secs(2)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "two sh processes with marker {m} not found");
    // max-count 1: two is too many.
    let at_most_one = CheckKind::Process(ProcessMatch {
        max_count: Some(1),
        ..exact.clone()
    });
    let r = probe(&at_most_one, Duration::from_secs(2)).await;
    assert!(
        matches!(r, Err(ProbeError::ProcessCount { count: 2, .. })),
        "{r:?}"
    );
    let e = r.expect_err("error").to_string();
    assert!(
        e.contains("2 process(es) named \"sh\" running, want 1..=1"),
        "{e}"
    );
    // Partial and initial argument matches.
    let partial = CheckKind::Process(sh_with(ArgsMatch::Partial, &["-c", "sleep 300; :"]));
    assert!(probe(&partial, Duration::from_secs(2)).await.is_ok());
    let prefix = &m[..m.len() - 3];
    let initial = CheckKind::Process(sh_with(ArgsMatch::Initial, &["-c", "sleep 300; :", prefix]));
    assert!(probe(&initial, Duration::from_secs(2)).await.is_ok());
    let exact_prefix =
        CheckKind::Process(sh_with(ArgsMatch::Exact, &["-c", "sleep 300; :", prefix]));
    assert!(probe(&exact_prefix, Duration::from_secs(2)).await.is_err());
    drop(a);
    drop(b);
    let r = probe(&kind, Duration::from_secs(2)).await;
    assert!(r.is_err(), "killed processes still counted: {r:?}");
}

#[tokio::test]
async fn process_check_task_flips_when_the_process_goes_and_comes_back() {
    let m = marker("task");
    let kind = CheckKind::Process(sh_with(ArgsMatch::Partial, &["-c", "sleep 300; :", &m]));
    let specs = [spec(kind, 0)];
    let first = Sleeper::start(&m);
    let (tx, mut rx) = mpsc::channel(64);
    let _set = spawn_checks("web", &specs, tx);
    let e = next_change(&mut rx).await;
    assert!(e.healthy, "{e:?}");
    assert_eq!(
        penalty_with_values(&specs, &[e.healthy], &[e.value]).1,
        None
    );
    drop(first);
    let e = next_change(&mut rx).await;
    assert!(!e.healthy, "{e:?}");
    assert!(
        e.error.as_deref().unwrap_or("").contains("0 process(es)"),
        "{e:?}"
    );
    // Weight 0: the instance would be in Fault.
    assert!(penalty_with_values(&specs, &[e.healthy], &[e.value])
        .1
        .is_some());
    let _again = Sleeper::start(&m);
    let e = next_change(&mut rx).await;
    assert!(e.healthy, "{e:?}");
}

#[tokio::test]
async fn file_check_reports_values_and_faults_on_garbage() {
    let dir = std::env::temp_dir().join(marker("file"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("weight");
    std::fs::write(&path, "0\n").expect("write");
    let kind = CheckKind::File { path: path.clone() };
    assert_eq!(
        probe_value(&kind, Duration::from_secs(1)).await.expect("0"),
        0
    );
    let specs = [spec(kind, 10)];
    let (tx, mut rx) = mpsc::channel(64);
    let _set = spawn_checks("web", &specs, tx);
    // The value read (first the 0 written above, then 3) weighs 10 per unit.
    for (write, value, penalty) in [(None, 0, 0), (Some("3\n"), 3, 30)] {
        if let Some(text) = write {
            std::fs::write(&path, text).expect("write");
        }
        let e = next_change(&mut rx).await;
        assert!(e.healthy && e.value == value, "{e:?}");
        assert_eq!(
            penalty_with_values(&specs, &[e.healthy], &[e.value]),
            (penalty, None)
        );
    }

    std::fs::write(&path, "maintenance\n").expect("write");
    let e = next_change(&mut rx).await;
    assert!(!e.healthy && e.value == 0, "{e:?}");
    assert!(
        e.error
            .as_deref()
            .unwrap_or("")
            .contains("does not hold an integer"),
        "{e:?}"
    );
    let (_, fault) = penalty_with_values(&specs, &[e.healthy], &[e.value]);
    assert_eq!(fault.as_deref(), Some("track check 't' is unhealthy"));

    std::fs::remove_file(&path).expect("rm");
    // Still unhealthy (unreadable now): no flip, but the error says why.
    let mut e = next(&mut rx).await;
    for _ in 0..100 {
        if e.error.as_deref().unwrap_or("").contains("cannot read") {
            break;
        }
        e = next(&mut rx).await;
    }
    assert!(
        e.error.as_deref().unwrap_or("").contains("cannot read"),
        "{e:?}"
    );

    std::fs::write(&path, "1").expect("write");
    let e = next_change(&mut rx).await;
    assert!(e.healthy && e.value == 1, "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
