//! Helpers shared by the configuration tests (`config`, `config_arbiter`,
//! `config_migrate`): a minimal instance and parsing that must succeed.
#![allow(dead_code, unused_macros, unused_imports)]

use vipd::config::{self, Config};
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
