//! The persisted operator overrides: round-trip, atomic writes, corrupt files.

mod control_fake;

use control_fake::TempDir;
use vipd::control::overrides::{InstanceOverrides, OverrideError, OverrideStore, OVERRIDES_FILE};

#[test]
fn a_missing_file_or_directory_is_an_empty_store() {
    let dir = TempDir::new("ov-empty");
    let store = OverrideStore::load(dir.path()).expect("load");
    assert_eq!(store.get("web"), InstanceOverrides::default());
    assert_eq!(store.iter().count(), 0);
    let store = OverrideStore::load(&dir.path().join("not/yet")).expect("load");
    assert_eq!(store.iter().count(), 0);
}

#[test]
fn overrides_survive_a_restart() {
    let dir = TempDir::new("ov-rt");
    let state = dir.path().join("state"); // created on first write
    let mut store = OverrideStore::load(&state).expect("load");
    store.set_priority("web", Some(200)).expect("set");
    store.set_maintenance("web", true).expect("set");
    store.set_maintenance("api", true).expect("set");
    store.set_maintenance("api", false).expect("set");
    store.set_priority("db", Some(1)).expect("set");
    store.set_priority("db", None).expect("clear");

    let again = OverrideStore::load(&state).expect("reload");
    assert_eq!(
        again.get("web"),
        InstanceOverrides {
            priority: Some(200),
            maintenance: true
        }
    );
    assert_eq!(again.get("api"), InstanceOverrides::default());
    assert_eq!(again.get("db"), InstanceOverrides::default());
    // Cleared entries are not kept around.
    assert_eq!(
        again.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        vec!["web"]
    );
    // The file is plain, versioned JSON.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join(OVERRIDES_FILE)).expect("read"))
            .expect("json");
    assert_eq!(
        v,
        serde_json::json!({"version":1,"instances":{"web":{"priority":200,"maintenance":true}}})
    );
}

#[test]
fn an_operator_priority_outside_1_to_254_is_refused() {
    let dir = TempDir::new("ov-range");
    let mut store = OverrideStore::load(dir.path()).expect("load");
    for p in [0, 255] {
        assert!(store.set_priority("web", Some(p)).is_err(), "{p}");
    }
    assert!(!dir.path().join(OVERRIDES_FILE).exists());
}

#[test]
fn a_failed_write_changes_nothing() {
    let dir = TempDir::new("ov-atomic");
    let mut store = OverrideStore::load(dir.path()).expect("load");
    store.set_priority("web", Some(120)).expect("set");
    let before = std::fs::read(dir.path().join(OVERRIDES_FILE)).expect("read");
    // Block the temporary file's name with a directory: the write must fail before the
    // rename, leaving the old file and the in-memory state untouched.
    let blocker = dir.path().join(".overrides.json.tmp");
    std::fs::create_dir(&blocker).expect("mkdir");
    std::fs::write(blocker.join("x"), b"keep").expect("write");
    assert!(store.set_maintenance("web", true).is_err());
    assert_eq!(
        store.get("web"),
        InstanceOverrides {
            priority: Some(120),
            maintenance: false
        }
    );
    assert_eq!(
        std::fs::read(dir.path().join(OVERRIDES_FILE)).expect("read"),
        before
    );
    std::fs::remove_dir_all(&blocker).expect("rm");
    store
        .set_maintenance("web", true)
        .expect("set after unblocking");
    assert!(
        OverrideStore::load(dir.path())
            .expect("load")
            .get("web")
            .maintenance
    );
}

#[test]
fn writes_leave_no_temporary_files() {
    let dir = TempDir::new("ov-tmp");
    let mut store = OverrideStore::load(dir.path()).expect("load");
    for p in 1..=20u8 {
        store.set_priority("web", Some(p)).expect("set");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![OVERRIDES_FILE.to_string()]);
    assert_eq!(
        OverrideStore::load(dir.path())
            .expect("load")
            .get("web")
            .priority,
        Some(20)
    );
}

#[test]
fn a_corrupt_file_is_reported_with_its_path() {
    let dir = TempDir::new("ov-corrupt");
    let path = dir.path().join(OVERRIDES_FILE);
    for (content, want) in [
        (
            &b"{\"version\":1,\"instances\":{\"web\":{\"priority\":20"[..],
            "EOF",
        ),
        (b"\x00\x01garbage", "expected value"),
        (b"{\"version\":9,\"instances\":{}}", "unsupported version 9"),
        (
            b"{\"version\":1,\"instances\":{\"web\":{\"priority\":0}}}",
            "priority 0 out of range",
        ),
        (
            b"{\"version\":1,\"instances\":{\"web\":{\"priority\":999}}}",
            "invalid value",
        ),
        (b"{\"version\":1,\"extra\":true}", "unknown field"),
    ] {
        std::fs::write(&path, content).expect("write");
        match OverrideStore::load(dir.path()) {
            Err(e @ OverrideError::Corrupt { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                assert!(msg.contains(want), "{want}: {msg}");
            }
            other => panic!("{content:?}: {other:?}"),
        }
    }
}

// ---- one write per group, O_EXCL | O_NOFOLLOW temporary files, crashes --------------------

use vipd::control::overrides::Change;

#[test]
fn a_group_change_is_saved_all_or_nothing() {
    let dir = TempDir::new("ov-batch");
    let mut store = OverrideStore::load(dir.path()).expect("load");
    let drained = InstanceOverrides {
        priority: None,
        maintenance: true,
    };
    store
        .apply(&[
            ("web", Change::Maintenance(true)),
            ("api", Change::Maintenance(true)),
        ])
        .expect("apply");
    let again = OverrideStore::load(dir.path()).expect("load");
    assert_eq!((again.get("web"), again.get("api")), (drained, drained));

    // One bad member: none of the group's changes is kept, in memory or on disk.
    let before = std::fs::read(dir.path().join(OVERRIDES_FILE)).expect("read");
    let r = store.apply(&[
        ("web", Change::Priority(Some(200))),
        ("api", Change::Priority(Some(0))),
    ]);
    assert!(r.is_err(), "{r:?}");
    assert!(
        r.unwrap_err().to_string().contains("api"),
        "names the member"
    );
    assert_eq!(store.get("web"), drained);
    assert_eq!(
        std::fs::read(dir.path().join(OVERRIDES_FILE)).expect("read"),
        before
    );

    store
        .apply(&[("web", Change::Clear), ("api", Change::Maintenance(false))])
        .expect("apply");
    assert_eq!(
        OverrideStore::load(dir.path())
            .expect("load")
            .iter()
            .count(),
        0
    );
}

#[test]
fn a_symlink_planted_at_the_temporary_path_is_not_followed() {
    let dir = TempDir::new("ov-symlink");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"do not touch\n").expect("victim");
    let mut store = OverrideStore::load(dir.path()).expect("load");
    store.set_priority("web", Some(120)).expect("set");
    std::os::unix::fs::symlink(&victim, dir.path().join(".overrides.json.tmp")).expect("plant");
    store.set_maintenance("web", true).expect("set");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"do not touch\n");
    let file = dir.path().join(OVERRIDES_FILE);
    let meta = std::fs::symlink_metadata(&file).expect("stat");
    assert!(meta.file_type().is_file(), "{file:?} is {meta:?}");
    assert_eq!(
        OverrideStore::load(dir.path()).expect("load").get("web"),
        InstanceOverrides {
            priority: Some(120),
            maintenance: true
        }
    );
    // Nothing left at the temporary path, and the mode is the owner's only.
    assert!(std::fs::symlink_metadata(dir.path().join(".overrides.json.tmp")).is_err());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o077,
        0,
        "{:o}",
        meta.permissions().mode()
    );
}

const CRASH_DIR_ENV: &str = "VIPD_TEST_OVERRIDES_CRASH_DIR";
const CRASH_MEMBERS: usize = 300;

/// Not a test on its own: the child process of
/// `a_crash_mid_write_leaves_the_old_or_the_new_state`, re-executed from this test binary
/// with the environment variable set. It rewrites a 300-member group's priority in a loop
/// until it is killed.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let names: Vec<String> = (0..CRASH_MEMBERS)
        .map(|i| format!("member-{i:03}"))
        .collect();
    let mut store = OverrideStore::load(std::path::Path::new(&dir)).expect("load");
    for p in (1..=254u8).cycle() {
        let changes: Vec<(&str, Change)> = names
            .iter()
            .map(|n| (n.as_str(), Change::Priority(Some(p))))
            .collect();
        store.apply(&changes).expect("apply");
    }
}

// A SIGKILL at a random moment of a group write (many times over) leaves a file that loads
// and holds one whole state of the group: every member at the same priority. The
// temporary file a crash leaves behind does not block the next write.
#[test]
fn a_crash_mid_write_leaves_the_old_or_the_new_state() {
    let dir = TempDir::new("ov-crash");
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1)
        | 1;
    let mut leftovers = 0;
    let mut states = std::collections::BTreeSet::new();
    for round in 0..12 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the writer");
        // xorshift: 20..120 ms, so most kills land inside a write.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        std::thread::sleep(std::time::Duration::from_millis(20 + u64::from(seed % 100)));
        let _ = child.kill();
        let _ = child.wait();
        if dir.path().join(".overrides.json.tmp").exists() {
            leftovers += 1;
        }
        let store = match OverrideStore::load(dir.path()) {
            Ok(s) => s,
            Err(e) => panic!("round {round}: the file does not load after a crash: {e}"),
        };
        let prios: std::collections::BTreeSet<Option<u8>> =
            store.iter().map(|(_, o)| o.priority).collect();
        let members = store.iter().count();
        assert!(
            members == 0 || (members == CRASH_MEMBERS && prios.len() == 1),
            "round {round}: {members} members with priorities {prios:?}: a crash left a mix"
        );
        states.extend(prios);
    }
    eprintln!(
        "12 crashes: {leftovers} left a temporary file behind; states seen: {}",
        states.len()
    );
    assert!(
        !states.is_empty(),
        "the writer never completed a write: nothing was tested"
    );
}
