//! Every default of the configuration, in one place. `docs/configuration.md` states each
//! one; the test at the bottom reads the doc's tables and checks that the "Default"
//! column says exactly what these constants are.

use std::time::Duration;

use super::arbiter::OnLoss;
use crate::proto::Version;
use crate::track::ArgsMatch;

// ---- top level ----

/// `control-socket`.
pub const CONTROL_SOCKET: &str = "/run/vipd/vipd.sock";
/// `state-dir`.
pub const STATE_DIR: &str = "/var/lib/vipd";
/// `startup-delay`.
pub const STARTUP_DELAY: Duration = Duration::ZERO;
/// The daemon's configuration file (`-c`).
pub const CONFIG_PATH: &str = "/etc/vipd/vipd.toml";

// ---- [[instance]] ----

/// `priority` of a router that is not the address owner.
pub const PRIORITY: u8 = 100;
/// `priority` of the address owner (RFC 5798 §6.1).
pub const OWNER_PRIORITY: u8 = 255;
/// `address-owner`.
pub const ADDRESS_OWNER: bool = false;
/// `advert-interval`.
pub const ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// `version`.
pub const VERSION: Version = Version::V3;
/// `preempt`.
pub const PREEMPT: bool = true;
/// `preempt-delay`.
pub const PREEMPT_DELAY: Duration = Duration::ZERO;
/// `checksum-pseudo-header` (version 3 over IPv4; keepalived's and FRR's default).
pub const CHECKSUM_PSEUDO_HEADER: bool = true;
/// `announce-count`.
pub const ANNOUNCE_COUNT: u32 = 5;
/// `announce-spacing`.
pub const ANNOUNCE_SPACING: Duration = Duration::from_millis(200);
/// `arbiter` (per instance).
pub const INSTANCE_ARBITER: bool = false;

// ---- [instance.bfd] and kind = "bfd" ----

/// `interval` of `[instance.bfd]` and of a `bfd` track.
pub const BFD_INTERVAL: Duration = Duration::from_millis(10);
/// `multiplier` of `[instance.bfd]` and of a `bfd` track.
pub const BFD_MULTIPLIER: u8 = 3;

// ---- notify ----

/// `timeout` of `[instance.notify]` / `[sync-group.notify]`.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// `keep-capabilities` of hooks and exec tracks.
pub const KEEP_CAPABILITIES: bool = false;

// ---- [[instance.track]] ----

/// `interval` (every kind but `bfd`).
pub const TRACK_INTERVAL: Duration = Duration::from_secs(2);
/// `timeout`.
pub const TRACK_TIMEOUT: Duration = Duration::from_secs(1);
/// `rise` and `fall` (every kind but `file`).
pub const TRACK_RISE_FALL: i64 = 2;
/// `rise` and `fall` of a `file` track (its value is taken as written).
pub const FILE_RISE_FALL: i64 = 1;
/// `weight`.
pub const TRACK_WEIGHT: i64 = 10;
/// `expect-status` of an `http` track.
pub const EXPECT_STATUS: (u16, u16) = (200, 299);
/// `args-match` of a `process` track.
pub const ARGS_MATCH: ArgsMatch = ArgsMatch::Exact;
/// `min-count` of a `process` track.
pub const PROCESS_MIN_COUNT: i64 = 1;

// ---- [arbiter] ----

/// `lease-ttl`.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// `key-prefix`.
pub const KEY_PREFIX: &str = "/vipd";
/// `on-loss`.
pub const ON_LOSS: OnLoss = OnLoss::Release;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::format_duration;

    /// `(section heading, key cells, default cell)` of every table row in the doc.
    /// The key cells are those left of the "Default" column, joined by a space
    /// (`` `http` `url` `` in the per-kind table).
    fn documented() -> HashMap<(String, String), String> {
        let doc = include_str!("../../docs/configuration.md");
        let mut out = HashMap::new();
        let mut section = String::new();
        let mut default_col = None;
        for line in doc.lines() {
            if let Some(h) = line.strip_prefix("## ").or(line.strip_prefix("### ")) {
                section = h.trim().to_owned();
                default_col = None;
                continue;
            }
            if !line.starts_with('|') {
                default_col = None;
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | '|')))
            {
                continue;
            }
            match default_col {
                None => default_col = cells.iter().position(|c| *c == "Default"),
                Some(i) => {
                    let key = cells[..i].join(" ");
                    out.insert((section.clone(), key), cells[i].to_owned());
                }
            }
        }
        out
    }

    fn d(x: Duration) -> String {
        format!("`\"{}\"`", format_duration(x))
    }
    fn s(x: &str) -> String {
        format!("`\"{x}\"`")
    }
    fn b(x: bool) -> String {
        format!("`{x}`")
    }

    #[test]
    fn every_default_is_documented_as_it_is() {
        let doc = documented();
        let top = "Top level";
        let inst = "`[[instance]]`";
        let bfd = "`[instance.bfd]`";
        let notify = "`[instance.notify]` and `[sync-group.notify]`";
        let track = "`[[instance.track]]`";
        let arb = "`[arbiter]`";
        let version = match VERSION {
            Version::V3 => 3,
            Version::V2 => 2,
        };
        let (lo, hi) = EXPECT_STATUS;
        let args_match = match ARGS_MATCH {
            ArgsMatch::Exact => "exact",
            ArgsMatch::Partial => "partial",
            ArgsMatch::Initial => "initial",
        };
        let expected: Vec<(&str, &str, String)> = vec![
            (top, "`control-socket`", s(CONTROL_SOCKET)),
            (top, "`state-dir`", s(STATE_DIR)),
            (top, "`startup-delay`", d(STARTUP_DELAY)),
            (
                inst,
                "`priority`",
                format!("{PRIORITY} ({OWNER_PRIORITY} with `address-owner`)"),
            ),
            (inst, "`address-owner`", b(ADDRESS_OWNER)),
            (inst, "`advert-interval`", d(ADVERT_INTERVAL)),
            (inst, "`version`", version.to_string()),
            (inst, "`preempt`", b(PREEMPT)),
            (inst, "`preempt-delay`", d(PREEMPT_DELAY)),
            (inst, "`checksum-pseudo-header`", b(CHECKSUM_PSEUDO_HEADER)),
            (inst, "`announce-count`", ANNOUNCE_COUNT.to_string()),
            (inst, "`announce-spacing`", d(ANNOUNCE_SPACING)),
            (inst, "`arbiter`", b(INSTANCE_ARBITER)),
            (bfd, "`interval`", d(BFD_INTERVAL)),
            (bfd, "`multiplier`", format!("`{BFD_MULTIPLIER}`")),
            (notify, "`timeout`", d(NOTIFY_TIMEOUT)),
            (notify, "`keep-capabilities`", b(KEEP_CAPABILITIES)),
            (
                track,
                "`interval`",
                format!("{} (`bfd`: {})", d(TRACK_INTERVAL), d(BFD_INTERVAL)),
            ),
            (track, "`timeout`", d(TRACK_TIMEOUT)),
            (
                track,
                "`rise`",
                format!("{TRACK_RISE_FALL} (`file`: {FILE_RISE_FALL})"),
            ),
            (
                track,
                "`fall`",
                format!("{TRACK_RISE_FALL} (`file`: {FILE_RISE_FALL})"),
            ),
            (track, "`weight`", TRACK_WEIGHT.to_string()),
            (
                track,
                "`http` `expect-status`",
                format!("`[\"{lo}-{hi}\"]`"),
            ),
            (track, "`exec` `keep-capabilities`", b(KEEP_CAPABILITIES)),
            (track, "`process` `args-match`", s(args_match)),
            (
                track,
                "`process` `min-count`",
                PROCESS_MIN_COUNT.to_string(),
            ),
            (track, "`bfd` `multiplier`", BFD_MULTIPLIER.to_string()),
            (arb, "`lease-ttl`", d(LEASE_TTL)),
            (arb, "`key-prefix`", s(KEY_PREFIX)),
            (arb, "`on-loss`", s(ON_LOSS.as_str())),
        ];
        let mut wrong = Vec::new();
        for (section, key, want) in &expected {
            match doc.get(&(section.to_string(), key.to_string())) {
                Some(got) if got == want => {}
                Some(got) => {
                    wrong.push(format!("{section} {key}: doc says {got}, code has {want}"))
                }
                None => wrong.push(format!("{section} {key}: no row in docs/configuration.md")),
            }
        }
        assert!(
            wrong.is_empty(),
            "docs/configuration.md disagrees with config/defaults.rs:\n{}",
            wrong.join("\n")
        );
        // The top-level defaults also appear in the key's own text.
        let doc_text = include_str!("../../docs/configuration.md");
        assert!(doc_text.contains(&format!("(default `{CONFIG_PATH}`")));
    }
}
