//! Checks of single values shared by every section: integers and durations in a
//! range, absolute paths, interface and object names, usable addresses.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::super::duration::{format_duration, parse_duration};
use super::super::raw::S;
use super::{join, Cx};

impl Cx<'_> {
    pub(super) fn duration(&mut self, v: &S<String>, prefix: &str, key: &str) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(v.span(), join(prefix, key), format!("{key}: {e}"));
                None
            }
        }
    }

    /// A duration within `lo..=hi` (after the syntax check).
    pub(super) fn duration_in(
        &mut self,
        v: &S<String>,
        prefix: &str,
        key: &str,
        lo: Duration,
        hi: Duration,
    ) -> Option<Duration> {
        let d = self.duration(v, prefix, key)?;
        if d < lo || d > hi {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must be {}..={}, got {:?}",
                    format_duration(lo),
                    format_duration(hi),
                    v.get_ref()
                ),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn int_in(
        &mut self,
        v: &S<i64>,
        prefix: &str,
        key: &str,
        lo: i64,
        hi: i64,
    ) -> Option<i64> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.err(
                v.span(),
                join(prefix, key),
                format!("{key} must be {lo}..={hi}, got {n}"),
            );
            return None;
        }
        Some(n)
    }

    /// An optional integer key: `default` when absent, else checked against `range`.
    /// `None` when an error was reported.
    pub(super) fn int_or(
        &mut self,
        v: Option<&S<i64>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Option<i64> {
        self.opt_int(v, prefix, key, range)
            .map(|n| n.unwrap_or(default))
    }

    /// An optional integer key without a default: `Some(None)` when absent.
    pub(super) fn opt_int(
        &mut self,
        v: Option<&S<i64>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Option<Option<i64>> {
        match v {
            None => Some(None),
            Some(v) => self
                .int_in(v, prefix, key, *range.start(), *range.end())
                .map(Some),
        }
    }

    /// An optional duration key: `default` when absent, else checked against `range`.
    pub(super) fn duration_or(
        &mut self,
        v: Option<&S<String>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<Duration>,
        default: Duration,
    ) -> Option<Duration> {
        self.opt_duration(v, prefix, key, range)
            .map(|d| d.unwrap_or(default))
    }

    /// An optional duration key without a default: `Some(None)` when absent.
    pub(super) fn opt_duration(
        &mut self,
        v: Option<&S<String>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<Duration>,
    ) -> Option<Option<Duration>> {
        match v {
            None => Some(None),
            Some(v) => self
                .duration_in(v, prefix, key, *range.start(), *range.end())
                .map(Some),
        }
    }

    /// An absolute path (control-socket, state-dir).
    pub(super) fn abs_path(&mut self, v: &S<String>, key: &str) -> Option<PathBuf> {
        let s = v.get_ref();
        if !s.starts_with('/') || s.contains('\0') {
            self.err(
                v.span(),
                key.to_owned(),
                format!("{key} must be an absolute path, got {s:?}"),
            );
            return None;
        }
        Some(PathBuf::from(s))
    }

    pub(super) fn ifname(&mut self, v: &S<String>, prefix: &str, key: &str) -> Option<String> {
        let s = v.get_ref();
        // Linux dev_valid_name(): 1..IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or space.
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && !s
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if !ok {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must be a Linux interface name (1 to 15 bytes, no '/', ':' or spaces), got {s:?}"
                ),
            );
            return None;
        }
        Some(s.clone())
    }

    /// Names of instances and sync groups.
    pub(super) fn object_name(&mut self, v: &S<String>, prefix: &str) -> Option<String> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.chars().count() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                v.span(),
                join(prefix, "name"),
                format!("name must be 1 to 64 letters, digits, '-', '_' or '.', got {s:?}"),
            );
            return None;
        }
        Some(s.clone())
    }
}

pub(super) fn is_v6_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// Why an address can be neither a VIP nor a peer, if it cannot.
pub(super) fn unusable_address(addr: &IpAddr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("unspecified address")
    } else if addr.is_loopback() {
        Some("loopback address")
    } else if addr.is_multicast() {
        Some("multicast address")
    } else if matches!(addr, IpAddr::V4(a) if a.is_broadcast()) {
        Some("broadcast address")
    } else {
        None
    }
}

pub(super) fn sorted_list(set: &HashSet<&str>) -> String {
    let mut v: Vec<&str> = set.iter().copied().collect();
    v.sort_unstable();
    if v.is_empty() {
        "none defined".to_owned()
    } else {
        v.join(", ")
    }
}
