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
