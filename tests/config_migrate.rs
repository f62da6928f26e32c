//! Configuration of what keepalived users rely on: `process` and `file` tracks, the
//! `stop` notify hook and `startup-delay`. Each key parsed, defaulted, and each mistake
//! reported at its LINE:COL.

mod config_common;

use std::path::PathBuf;
use std::time::Duration;

use vipd::config;
use vipd::track::{ArgsMatch, CheckKind, ProcessMatch};

use config_common::{ok, track, BASE};

/// The diagnostics of a bad text, as `LINE:COL: message` strings.
fn bad(text: &str) -> Vec<String> {
    match config::parse(text, "inline.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect()
        }
    }
}

/// [`bad`] for [`BASE`] with one `[[instance.track]]` table of these `keys`.
fn bad_track(keys: &str) -> Vec<String> {
    bad(&format!("{BASE}[[instance.track]]\n{keys}"))
}

/// Asserts that the first diagnostic of [`bad_track`] starts with `start` (its place).
#[track_caller]
fn first_starts(keys: &str, start: &str) {
    let e = bad_track(keys);
    assert!(e[0].starts_with(start), "{e:?}");
}

/// Asserts that the first diagnostic of [`bad_track`] contains `fragment`.
#[track_caller]
fn first_contains(keys: &str, fragment: &str) {
    let e = bad_track(keys);
    assert!(e[0].contains(fragment), "{e:?}");
}

#[test]
fn process_track_defaults() {
    let t = track("kind = \"process\"\nprocess = \"haproxy\"\n");
    assert_eq!(t.name, "process haproxy");
    assert_eq!(
        t.kind,
        CheckKind::Process(ProcessMatch {
            name: "haproxy".into(),
            args: None,
            args_match: ArgsMatch::Exact,
            min_count: 1,
            max_count: None,
        })
    );
    assert_eq!((t.rise, t.fall, t.weight), (2, 2, 10));
}

#[test]
fn process_track_every_key() {
    let t = track(
        "kind = \"process\"\nprocess = \"/usr/sbin/nginx\"\n\
         args = [\"-c\", \"/etc/nginx/a\"]\nargs-match = \"initial\"\nmin-count = 2\n\
         max-count = 4\ninterval = \"500ms\"\ntimeout = \"400ms\"\nweight = 0\n",
    );
    assert_eq!(
        t.kind,
        CheckKind::Process(ProcessMatch {
            name: "/usr/sbin/nginx".into(),
            args: Some(vec!["-c".into(), "/etc/nginx/a".into()]),
            args_match: ArgsMatch::Initial,
            min_count: 2,
            max_count: Some(4),
        })
    );
    assert_eq!(t.interval, Duration::from_millis(500));
    assert_eq!(t.weight, 0);
    for (word, want) in [("exact", ArgsMatch::Exact), ("partial", ArgsMatch::Partial)] {
        let c = ok(&format!(
            "{BASE}[[instance.track]]\nkind = \"process\"\nprocess = \"x\"\nargs = []\n\
             args-match = \"{word}\"\n"
        ));
        match &c.instances[0].tracks[0].kind {
            CheckKind::Process(m) => assert_eq!(m.args_match, want),
            k => panic!("{k:?}"),
        }
    }
    // max-count 0: healthy only when nothing runs.
    ok(&format!(
        "{BASE}[[instance.track]]\nkind = \"process\"\nprocess = \"x\"\nmin-count = 0\nmax-count = 0\n"
    ));
}

#[test]
fn process_track_mistakes() {
    let e = bad_track("kind = \"process\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("7:1: missing key `process`"), "{e:?}");

    let e = bad_track("kind = \"process\"\nprocess = \"x\"\nargs-match = \"fuzzy\"\n");
    assert!(
        e.iter().any(|m| m.starts_with("10:14: args-match must be")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("give args too")), "{e:?}");

    let e = bad_track("kind = \"process\"\nprocess = \"x\"\nmin-count = 3\nmax-count = 2\n");
    assert_eq!(
        e,
        vec!["11:13: max-count (2) must not be below min-count (3)"]
    );

    first_starts(
        "kind = \"process\"\nprocess = \"\"\n",
        "9:11: process must be an executable name",
    );

    // Process keys on another kind.
    first_starts(
        "kind = \"tcp\"\naddress = \"127.0.0.1:80\"\nprocess = \"x\"\n",
        "10:11: process does not apply to kind = \"tcp\"",
    );
}

#[test]
fn file_track() {
    let t = track("kind = \"file\"\npath = \"/run/lb/weight\"\nweight = 5\n");
    assert_eq!(
        t.kind,
        CheckKind::File {
            path: PathBuf::from("/run/lb/weight")
        }
    );
    assert_eq!(t.name, "file /run/lb/weight");
    // A file's value is taken as written: rise and fall default to 1.
    assert_eq!((t.rise, t.fall, t.weight), (1, 1, 5));

    first_starts("kind = \"file\"\n", "7:1: missing key `path`");
    first_contains(
        "kind = \"file\"\npath = \"relative/w\"\n",
        "must be an absolute path",
    );
    first_contains(
        "kind = \"exec\"\ncommand = [\"/bin/true\"]\npath = \"/x\"\n",
        "path does not apply to kind = \"exec\"",
    );
}

#[test]
fn unknown_kind_lists_the_new_kinds() {
    let e = bad_track("kind = \"pid\"\n");
    assert!(
        e[0].contains("\"process\"") && e[0].contains("\"file\""),
        "{e:?}"
    );
}

#[test]
fn stop_hook() {
    let c = ok(&format!(
        "{BASE}[instance.notify]\nstop = [\"/usr/local/bin/stopped\", \"web\"]\n"
    ));
    assert_eq!(
        c.instances[0].notify.stop,
        Some(vec![
            "/usr/local/bin/stopped".to_string(),
            "web".to_string()
        ])
    );
    let e = bad(&format!("{BASE}[instance.notify]\nstop = [\"stopped\"]\n"));
    assert!(
        e[0].starts_with("8:9: stop: the program must be an absolute path"),
        "{e:?}"
    );
    // A sync group has no stop hook.
    let e = bad(&format!(
        "{BASE}[[sync-group]]\nname = \"g\"\ninstances = [\"web\"]\n[sync-group.notify]\nstop = [\"/bin/true\"]\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("11:8: a sync group has no stop hook"),
        "{e:?}"
    );
}

#[test]
fn startup_delay() {
    assert_eq!(ok(BASE).startup_delay, Duration::ZERO);
    assert_eq!(
        ok(&format!("startup-delay = \"5.5s\"\n{BASE}")).startup_delay,
        Duration::from_millis(5500)
    );
    let e = bad(&format!("startup-delay = \"2h\"\n{BASE}"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("1:17: startup-delay must be 0s..=3600s"),
        "{e:?}"
    );
    let e = bad(&format!("startup-delay = \"soon\"\n{BASE}"));
    assert!(e[0].starts_with("1:17: startup-delay:"), "{e:?}");
}
