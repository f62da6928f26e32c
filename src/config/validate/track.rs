//! `[[instance.track]]`: health checks of every kind, their timing and weight.

use std::net::{Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::super::defaults;
use super::super::duration::format_duration;
use super::super::raw::{RawTrack, StatusItem, S};
use super::{bfd, join, Cx};
use crate::track::{ArgsMatch, CheckKind, CheckSpec, ProcessMatch};

impl Cx<'_> {
    pub(super) fn track(&mut self, raw: &S<RawTrack>, p: &str) -> Option<CheckSpec> {
        let t = raw.get_ref();
        let table = raw.span();
        let before = self.errors.len();
        const KINDS: &str =
            "\"http\", \"tcp\", \"exec\", \"interface\", \"process\", \"file\" or \"bfd\"";
        let kind_name = match &t.kind {
            None => {
                self.missing(&table, p, "kind", &format!("a track needs kind = {KINDS}"));
                None
            }
            Some(k) => match k.get_ref().as_str() {
                "http" | "tcp" | "exec" | "interface" | "process" | "file" | "bfd" => {
                    Some(k.get_ref().as_str())
                }
                other => {
                    self.err(
                        k.span(),
                        join(p, "kind"),
                        format!("kind must be {KINDS}, got {other:?}"),
                    );
                    None
                }
            },
        };

        // Keys that belong to one kind only.
        let specific: [(&str, &str, Option<Range<usize>>); 14] = [
            ("peer", "bfd", t.peer.as_ref().map(|v| v.span())),
            ("multiplier", "bfd", t.multiplier.as_ref().map(|v| v.span())),
            ("url", "http", t.url.as_ref().map(|v| v.span())),
            (
                "expect-status",
                "http",
                t.expect_status.as_ref().map(|v| v.span()),
            ),
            ("address", "tcp", t.address.as_ref().map(|v| v.span())),
            ("command", "exec", t.command.as_ref().map(|v| v.span())),
            (
                "keep-capabilities",
                "exec",
                t.keep_capabilities.as_ref().map(|v| v.span()),
            ),
            (
                "interface",
                "interface",
                t.interface.as_ref().map(|v| v.span()),
            ),
            ("process", "process", t.process.as_ref().map(|v| v.span())),
            ("args", "process", t.args.as_ref().map(|v| v.span())),
            (
                "args-match",
                "process",
                t.args_match.as_ref().map(|v| v.span()),
            ),
            (
                "min-count",
                "process",
                t.min_count.as_ref().map(|v| v.span()),
            ),
            (
                "max-count",
                "process",
                t.max_count.as_ref().map(|v| v.span()),
            ),
            ("path", "file", t.path.as_ref().map(|v| v.span())),
        ];
        if let Some(kind) = kind_name {
            let takes = match kind {
                "http" => "url and expect-status",
                "tcp" => "address",
                "exec" => "command and keep-capabilities",
                "process" => "process, args, args-match, min-count and max-count",
                "file" => "path",
                "bfd" => "peer and multiplier; interval is the BFD interval",
                _ => "interface",
            };
            for (key, owner, span) in &specific {
                if let Some(span) = span {
                    if *owner != kind {
                        self.err(
                            span.clone(),
                            join(p, key),
                            format!("{key} does not apply to kind = {kind:?} ({kind} takes {takes}); it belongs to kind = {owner:?}"),
                        );
                    }
                }
            }
        }

        let kind = match kind_name {
            Some("http") => self.track_http(t, &table, p),
            Some("tcp") => match &t.address {
                None => {
                    self.missing(
                        &table,
                        p,
                        "address",
                        "a tcp track connects to address = \"IP:PORT\"",
                    );
                    None
                }
                Some(v) => match SocketAddr::from_str(v.get_ref()) {
                    Ok(a) if a.port() != 0 && !a.ip().is_unspecified() => {
                        Some(CheckKind::Tcp { address: a })
                    }
                    _ => {
                        self.err(
                            v.span(),
                            join(p, "address"),
                            format!(
                                "address must be an IP address and a non-zero port like \"192.0.2.10:80\" or \"[2001:db8::10]:80\", got {:?}",
                                v.get_ref()
                            ),
                        );
                        None
                    }
                },
            },
            Some("exec") => match &t.command {
                None => {
                    self.missing(
                        &table,
                        p,
                        "command",
                        "an exec track runs command = [\"/absolute/program\", \"args\"...]",
                    );
                    None
                }
                Some(v) => self.command(v, p, "command").map(|mut c| {
                    let program = PathBuf::from(c.remove(0));
                    CheckKind::Exec {
                        program,
                        args: c,
                        keep_capabilities: t
                            .keep_capabilities
                            .as_ref()
                            .map_or(defaults::KEEP_CAPABILITIES, |k| *k.get_ref()),
                    }
                }),
            },
            Some("process") => self.track_process(t, &table, p),
            Some("bfd") => self.track_bfd(t, &table, p),
            Some("file") => match &t.path {
                None => {
                    self.missing(
                        &table,
                        p,
                        "path",
                        "a file track reads an integer from path = \"/absolute/file\"",
                    );
                    None
                }
                Some(v) => self
                    .abs_path(v, &join(p, "path"))
                    .map(|path| CheckKind::File { path }),
            },
            Some(_) => match &t.interface {
                None => {
                    self.missing(
                        &table,
                        p,
                        "interface",
                        "an interface track watches interface = \"NAME\"",
                    );
                    None
                }
                Some(v) => self
                    .ifname(v, p, "interface")
                    .map(|name| CheckKind::Interface { name }),
            },
            None => None,
        };

        let is_bfd = kind_name == Some("bfd");
        let interval = if is_bfd {
            self.duration_or(
                t.interval.as_ref(),
                p,
                "interval",
                bfd::MIN_INTERVAL..=bfd::MAX_INTERVAL,
                defaults::BFD_INTERVAL,
            )
        } else {
            self.duration_or(
                t.interval.as_ref(),
                p,
                "interval",
                Duration::from_millis(10)..=Duration::from_secs(86_400),
                defaults::TRACK_INTERVAL,
            )
        };
        let timeout = self.duration_or(
            t.timeout.as_ref(),
            p,
            "timeout",
            Duration::from_millis(1)..=Duration::from_secs(86_400),
            defaults::TRACK_TIMEOUT,
        );
        if let (Some(i), Some(to), false) = (interval, timeout, is_bfd) {
            if to >= i {
                // Point at whichever the operator wrote (timeout if both or neither).
                let (span, key) = match (&t.timeout, &t.interval) {
                    (Some(v), _) => (v.span(), "timeout"),
                    (None, Some(v)) => (v.span(), "interval"),
                    (None, None) => (table.clone(), "timeout"),
                };
                self.err(
                    span,
                    join(p, key),
                    format!(
                        "timeout ({}) must be shorter than interval ({}), so a probe ends before the next one starts",
                        format_duration(to),
                        format_duration(i)
                    ),
                );
            }
        }
        // A file's value is taken as written (keepalived reads it on every change).
        let default_rise_fall = if kind_name == Some("file") {
            defaults::FILE_RISE_FALL
        } else {
            defaults::TRACK_RISE_FALL
        };
        let rise = self.int_or(t.rise.as_ref(), p, "rise", 1..=1000, default_rise_fall);
        let fall = self.int_or(t.fall.as_ref(), p, "fall", 1..=1000, default_rise_fall);
        let weight = self.int_or(
            t.weight.as_ref(),
            p,
            "weight",
            0..=254,
            defaults::TRACK_WEIGHT,
        );
        let name = match &t.name {
            Some(v) => {
                let s = v.get_ref();
                if s.is_empty() || s.chars().count() > 128 || s.chars().any(char::is_control) {
                    self.err(
                        v.span(),
                        join(p, "name"),
                        format!("name must be 1 to 128 printable characters, got {s:?}"),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            None => kind.as_ref().map(default_track_name),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(CheckSpec {
            name: name?,
            kind: kind?,
            interval: interval?,
            timeout: timeout?,
            rise: u32::try_from(rise?).ok()?,
            fall: u32::try_from(fall?).ok()?,
            weight: u8::try_from(weight?).ok()?,
        })
    }

    pub(super) fn track_process(
        &mut self,
        t: &RawTrack,
        table: &Range<usize>,
        p: &str,
    ) -> Option<CheckKind> {
        let name = match &t.process {
            None => {
                self.missing(
                    table,
                    p,
                    "process",
                    "a process track counts processes named process = \"haproxy\"",
                );
                None
            }
            Some(v) => {
                let n = v.get_ref();
                if n.is_empty() || n.len() > 4096 || n.contains('\0') {
                    self.err(
                        v.span(),
                        join(p, "process"),
                        format!("process must be an executable name like \"haproxy\" or a path like \"/usr/sbin/haproxy\", got {n:?}"),
                    );
                    None
                } else {
                    Some(n.clone())
                }
            }
        };
        let args = match &t.args {
            None => Some(None),
            Some(list) => {
                if let Some(bad) = list.get_ref().iter().find(|a| a.get_ref().contains('\0')) {
                    self.err(
                        bad.span(),
                        join(p, "args"),
                        "args cannot contain NUL characters".to_owned(),
                    );
                    None
                } else {
                    Some(Some(
                        list.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
                    ))
                }
            }
        };
        let args_match = match &t.args_match {
            None => Some(defaults::ARGS_MATCH),
            Some(v) => {
                if t.args.is_none() {
                    self.err(
                        v.span(),
                        join(p, "args-match"),
                        "args-match compares args: give args too (args = [] for a process with no arguments)".to_owned(),
                    );
                }
                match v.get_ref().as_str() {
                    "exact" => Some(ArgsMatch::Exact),
                    "partial" => Some(ArgsMatch::Partial),
                    "initial" => Some(ArgsMatch::Initial),
                    other => {
                        self.err(
                            v.span(),
                            join(p, "args-match"),
                            format!("args-match must be \"exact\", \"partial\" (the first arguments are these) or \"initial\" (and the last may be longer), got {other:?}"),
                        );
                        None
                    }
                }
            }
        };
        let min_count = self.int_or(
            t.min_count.as_ref(),
            p,
            "min-count",
            0..=1_000_000,
            defaults::PROCESS_MIN_COUNT,
        );
        let max_count = self.opt_int(t.max_count.as_ref(), p, "max-count", 0..=1_000_000);
        if let (Some(lo), Some(Some(hi)), Some(v)) = (min_count, max_count, &t.max_count) {
            if hi < lo {
                self.err(
                    v.span(),
                    join(p, "max-count"),
                    format!("max-count ({hi}) must not be below min-count ({lo})"),
                );
                return None;
            }
        }
        Some(CheckKind::Process(ProcessMatch {
            name: name?,
            args: args?,
            args_match: args_match?,
            min_count: u32::try_from(min_count?).ok()?,
            max_count: match max_count? {
                None => None,
                Some(n) => Some(u32::try_from(n).ok()?),
            },
        }))
    }

    pub(super) fn track_http(
        &mut self,
        t: &RawTrack,
        table: &Range<usize>,
        p: &str,
    ) -> Option<CheckKind> {
        let url = match &t.url {
            None => {
                self.missing(
                    table,
                    p,
                    "url",
                    "an http track fetches url = \"http://HOST[:PORT]/PATH\"",
                );
                None
            }
            Some(v) => match check_http_url(v.get_ref()) {
                Ok(()) => Some(v.get_ref().clone()),
                Err(why) => {
                    self.err(
                        v.span(),
                        join(p, "url"),
                        format!("url {:?}: {why}", v.get_ref()),
                    );
                    None
                }
            },
        };
        let expect_status = match &t.expect_status {
            None => Some(vec![defaults::EXPECT_STATUS]),
            Some(list) if list.get_ref().is_empty() => {
                self.err(list.span(), join(p, "expect-status"), "expect-status must list at least one status or range, like [200] or [\"200-299\"]".to_owned());
                None
            }
            Some(list) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in list.get_ref() {
                    match status_range(item.get_ref()) {
                        Some(r) => out.push(r),
                        None => {
                            let shown = match item.get_ref() {
                                StatusItem::Int(n) => n.to_string(),
                                StatusItem::Text(s) => format!("{s:?}"),
                            };
                            self.err(
                                item.span(),
                                join(p, "expect-status"),
                                format!("expect-status entries are status codes 100..=599 or ranges like \"200-299\", got {shown}"),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
        };
        Some(CheckKind::Http {
            url: url?,
            expect_status: expect_status?,
        })
    }
}

fn default_track_name(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Http { url, .. } => format!("http {url}"),
        CheckKind::Tcp { address } => format!("tcp {address}"),
        CheckKind::Exec { program, .. } => format!("exec {}", program.display()),
        CheckKind::Interface { name } => format!("interface {name}"),
        CheckKind::Process(m) => format!("process {}", m.name),
        CheckKind::File { path } => format!("file {}", path.display()),
        CheckKind::Bfd { peer, .. } => format!("bfd {peer}"),
    }
}

fn status_range(item: &StatusItem) -> Option<(u16, u16)> {
    let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
    match item {
        StatusItem::Int(n) => code(*n).map(|c| (c, c)),
        StatusItem::Text(s) => {
            let num = |t: &str| {
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                t.parse::<i64>().ok().and_then(code)
            };
            match s.split_once('-') {
                None => num(s).map(|c| (c, c)),
                Some((a, b)) => {
                    let (lo, hi) = (num(a)?, num(b)?);
                    (lo <= hi).then_some((lo, hi))
                }
            }
        }
    }
}

/// http://HOST[:PORT][/PATH]; HOST a name, an IPv4 address or [IPv6].
fn check_http_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("must start with http:// (https is not supported)");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not contain user information (user@)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in the host");
        };
        if Ipv6Addr::from_str(addr).is_err() {
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
        return Err("needs a host name or address after http://");
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err("has an invalid port (1..=65535)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        assert_eq!(status_range(&StatusItem::Int(200)), Some((200, 200)));
        assert_eq!(
            status_range(&StatusItem::Text("200-299".into())),
            Some((200, 299))
        );
        assert_eq!(
            status_range(&StatusItem::Text("204".into())),
            Some((204, 204))
        );
        assert_eq!(status_range(&StatusItem::Text("299-200".into())), None);
        assert_eq!(status_range(&StatusItem::Text("2xx".into())), None);
        assert_eq!(status_range(&StatusItem::Text("-200".into())), None);
        assert_eq!(status_range(&StatusItem::Int(600)), None);
        assert_eq!(status_range(&StatusItem::Int(-1)), None);
    }

    #[test]
    fn http_urls() {
        assert!(check_http_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_http_url("http://[2001:db8::1]:80/").is_ok());
        assert!(check_http_url("http://lb.example/").is_ok());
        assert!(check_http_url("http://192.0.2.1").is_ok());
        assert!(check_http_url("https://192.0.2.1/").is_err());
        assert!(check_http_url("http:///x").is_err());
        assert!(check_http_url("http://192.0.2.1:0/").is_err());
        assert!(check_http_url("http://192.0.2.1:99999/").is_err());
        assert!(check_http_url("http://u@192.0.2.1/").is_err());
        assert!(check_http_url("http://[2001:db8::1/").is_err());
    }
}
