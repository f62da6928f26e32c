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

    /// A value within `range` (after the syntax check of durations).
    pub(super) fn in_range<T: Bounded>(
        &mut self,
        v: &S<T::Raw>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<T>,
    ) -> Option<T> {
        let x = T::read(self, v, prefix, key)?;
        if !range.contains(&x) {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must be {}..={}, got {}",
                    range.start().show(),
                    range.end().show(),
                    T::show_raw(v.get_ref())
                ),
            );
            return None;
        }
        Some(x)
    }

    /// An optional key: `default` when absent, else checked against `range`. `None`
    /// when an error was reported.
    pub(super) fn bounded_or<T: Bounded>(
        &mut self,
        v: Option<&S<T::Raw>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<T>,
        default: T,
    ) -> Option<T> {
        self.opt_bounded(v, prefix, key, range)
            .map(|n| n.unwrap_or(default))
    }

    /// An optional key without a default: `Some(None)` when absent.
    pub(super) fn opt_bounded<T: Bounded>(
        &mut self,
        v: Option<&S<T::Raw>>,
        prefix: &str,
        key: &str,
        range: RangeInclusive<T>,
    ) -> Option<Option<T>> {
        match v {
            None => Some(None),
            Some(v) => self.in_range(v, prefix, key, range).map(Some),
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

/// A value checked against an inclusive range, written in the file as `Raw`: integers
/// (`rise = 3`) and durations (`interval = "1s"`).
pub(super) trait Bounded: Copy + PartialOrd {
    /// The TOML value.
    type Raw;
    /// The value written; `None` when an error was reported.
    fn read(cx: &mut Cx<'_>, v: &S<Self::Raw>, prefix: &str, key: &str) -> Option<Self>;
    /// A bound as messages show it.
    fn show(self) -> String;
    /// The value written as messages show it.
    fn show_raw(raw: &Self::Raw) -> String;
}

impl Bounded for i64 {
    type Raw = i64;
    fn read(_: &mut Cx<'_>, v: &S<i64>, _: &str, _: &str) -> Option<i64> {
        Some(*v.get_ref())
    }
    fn show(self) -> String {
        self.to_string()
    }
    fn show_raw(raw: &i64) -> String {
        raw.to_string()
    }
}

impl Bounded for Duration {
    type Raw = String;
    fn read(cx: &mut Cx<'_>, v: &S<String>, prefix: &str, key: &str) -> Option<Duration> {
        cx.duration(v, prefix, key)
    }
    fn show(self) -> String {
        format_duration(self)
    }
    fn show_raw(raw: &String) -> String {
        format!("{raw:?}")
    }
}

/// The port of a URL's `HOST[:PORT]` (HOST a name, an IPv4 address or `[IPv6]`), if
/// it has one, once both are checked; `bad_host` says what is wrong with a missing or
/// malformed host.
pub(super) fn host_port(
    authority: &str,
    bad_host: &'static str,
) -> Result<Option<u16>, &'static str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in the host");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has an invalid IPv6 address in [ ]");
        }
        match after {
            "" => ("v6", None),
            a => match a.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return Err("has text after the ] of the host"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad_host);
    }
    port.map(|port| match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("has an invalid port (1..=65535)"),
    })
    .transpose()
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
