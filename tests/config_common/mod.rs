//! Helpers shared by the configuration tests (`config`, `config_arbiter`,
//! `config_migrate`): a minimal instance and parsing that must succeed.
#![allow(dead_code, unused_macros, unused_imports)]

use std::path::{Path, PathBuf};

use vipd::config::{self, Config, Diagnostic};
use vipd::track::CheckSpec;

/// One minimal valid `[[instance]]` table (the text starts with a newline), as a literal
/// so that a test can `concat!` keys to it.
macro_rules! base_instance {
    () => {
        "\n[[instance]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.0.2.100/24\"]\n"
    };
}
pub(crate) use base_instance;

/// [`base_instance!`] as a constant.
pub const BASE: &str = base_instance!();

/// Parses `text` (as `inline.toml`), panicking with the diagnostics when it is rejected.
#[track_caller]
pub fn ok(text: &str) -> Config {
    match config::parse(text, "inline.toml") {
        Ok(c) => c,
        Err(e) => panic!("rejected:\n{e}"),
    }
}

/// The check that [`BASE`] with one `[[instance.track]]` table of these `keys` (TOML lines)
/// parses to.
#[track_caller]
pub fn track(keys: &str) -> CheckSpec {
    ok(&format!("{BASE}[[instance.track]]\n{keys}")).instances[0].tracks[0].clone()
}

/// A file under `tests/fixtures/config`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Loads a bad fixture and returns its diagnostics (panics if it loads).
pub fn errors(name: &str) -> Vec<Diagnostic> {
    match config::load(&fixture(name)) {
        Ok(c) => panic!("{name} was accepted: {c:?}"),
        Err(e) => {
            assert!(!e.0.is_empty());
            for d in &e.0 {
                assert!(d.origin.ends_with(name), "origin {:?}", d.origin);
            }
            e.0
        }
    }
}

/// One `# expect LINE:COL: FRAGMENT` line of a bad fixture: where the diagnostic points,
/// its key path when written (`# expect LINE:COL at KEY.PATH: ...`), and the fragments its
/// message must contain (` ... ` separates several).
pub struct Expected {
    pub line: usize,
    pub col: usize,
    pub key_path: Option<String>,
    pub fragments: Vec<String>,
}

/// The `# expect` lines of the fixture `name`, in order.
pub fn expected(name: &str) -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture(name)).expect("read fixture");
    let want: Vec<Expected> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect "))
        .map(|l| {
            let (place, fragment) = l.split_once(": ").expect("# expect LINE:COL: FRAGMENT");
            let (pos, key_path) = match place.split_once(" at ") {
                Some((pos, path)) => (pos, Some(path.to_string())),
                None => (place, None),
            };
            let (line, col) = pos.split_once(':').expect("LINE:COL");
            Expected {
                line: line.parse().expect("line"),
                col: col.parse().expect("col"),
                key_path,
                fragments: fragment.split(" ... ").map(String::from).collect(),
            }
        })
        .collect();
    assert!(!want.is_empty(), "{name} has no `# expect` line");
    want
}

/// Asserts that the bad fixture `name` gives exactly the diagnostics its `# expect` lines
/// list, in order, each one line starting `FILE:LINE:COL: `.
#[track_caller]
pub fn expect(name: &str) -> Vec<Diagnostic> {
    let got = errors(name);
    let want = expected(name);
    let shown: Vec<String> = got.iter().map(|d| d.to_string()).collect();
    assert_eq!(got.len(), want.len(), "{name}: got {shown:#?}");
    for (d, w) in got.iter().zip(&want) {
        assert_eq!((d.line, d.col), (w.line, w.col), "{name}: position of {d}");
        for frag in &w.fragments {
            assert!(
                d.message.contains(frag.as_str()),
                "{name}: {:?} lacks {frag:?}",
                d.message
            );
        }
        if let Some(path) = &w.key_path {
            assert_eq!(&d.key_path, path, "{name}: key path of {d}");
        }
        let text = d.to_string();
        let prefix = format!("{}:{}:{}: ", d.origin, w.line, w.col);
        assert!(text.starts_with(&prefix), "{text}");
        assert!(!text.contains('\n'));
    }
    got
}
