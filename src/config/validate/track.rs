//! `[[instance.track]]`: health checks of every kind, their timing and weight.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::super::defaults;
use super::super::duration::format_duration;
use super::super::raw::{RawTrack, StatusItem, S};
use super::keys::host_port;
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

        // Keys that belong to one kind only, by the kind they belong to.
        fn at<T>(v: &Option<S<T>>) -> Option<Range<usize>> {
            v.as_ref().map(|v| v.span())
        }
        let specific = [
            (
                "bfd",
                vec![("peer", at(&t.peer)), ("multiplier", at(&t.multiplier))],
            ),
            (
                "http",
                vec![("url", at(&t.url)), ("expect-status", at(&t.expect_status))],
            ),
            ("tcp", vec![("address", at(&t.address))]),
            (
                "exec",
                vec![
                    ("command", at(&t.command)),
                    ("keep-capabilities", at(&t.keep_capabilities)),
                ],
            ),
            ("interface", vec![("interface", at(&t.interface))]),
            (
                "process",
                vec![
                    ("process", at(&t.process)),
                    ("args", at(&t.args)),
                    ("args-match", at(&t.args_match)),
                    ("min-count", at(&t.min_count)),
                    ("max-count", at(&t.max_count)),
                ],
            ),
            ("file", vec![("path", at(&t.path))]),
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
            for (owner, keys) in &specific {
                for (key, span) in keys {
                    if let (Some(span), true) = (span, *owner != kind) {
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
            Some("http") => self.track_http(raw, p),
            Some("tcp") => self
                .required(&t.address, &table, p, "address", "a tcp track connects to address = \"IP:PORT\"")
                .and_then(|v| {
                    self.checked(v, p, "address", |s| match SocketAddr::from_str(s) {
                        Ok(a) if a.port() != 0 && !a.ip().is_unspecified() => {
                            Ok(CheckKind::Tcp { address: a })
                        }
                        _ => Err(format!(
                            "address must be an IP address and a non-zero port like \"192.0.2.10:80\" or \"[2001:db8::10]:80\", got {s:?}"
                        )),
                    })
                }),
            Some("exec") => self
                .required(&t.command, &table, p, "command", "an exec track runs command = [\"/absolute/program\", \"args\"...]")
                .and_then(|v| self.command(v, p, "command"))
                .map(|mut c| {
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
            Some("process") => self.track_process(raw, p),
            Some("bfd") => self.track_bfd(raw, p),
            Some("file") => self
                .required(&t.path, &table, p, "path", "a file track reads an integer from path = \"/absolute/file\"")
                .and_then(|v| self.abs_path(v, &join(p, "path")))
                .map(|path| CheckKind::File { path }),
            Some(_) => self
                .required(&t.interface, &table, p, "interface", "an interface track watches interface = \"NAME\"")
                .and_then(|v| self.ifname(v, p, "interface"))
                .map(|name| CheckKind::Interface { name }),
            None => None,
        };

        let is_bfd = kind_name == Some("bfd");
        let interval = if is_bfd {
            self.bounded_or(
                t.interval.as_ref(),
                p,
                "interval",
                bfd::MIN_INTERVAL..=bfd::MAX_INTERVAL,
                defaults::BFD_INTERVAL,
            )
        } else {
            self.bounded_or(
                t.interval.as_ref(),
                p,
                "interval",
                Duration::from_millis(10)..=Duration::from_secs(86_400),
                defaults::TRACK_INTERVAL,
            )
        };
        let timeout = self.bounded_or(
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
        let rise = self.bounded_or(t.rise.as_ref(), p, "rise", 1..=1000, default_rise_fall);
        let fall = self.bounded_or(t.fall.as_ref(), p, "fall", 1..=1000, default_rise_fall);
        let weight = self.bounded_or(
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

    pub(super) fn track_process(&mut self, raw: &S<RawTrack>, p: &str) -> Option<CheckKind> {
        let t = raw.get_ref();
        let name = self
            .required(&t.process, &raw.span(), p, "process", "a process track counts processes named process = \"haproxy\"")
            .and_then(|v| {
                self.checked(v, p, "process", |n| {
                    if n.is_empty() || n.len() > 4096 || n.contains('\0') {
                        Err(format!("process must be an executable name like \"haproxy\" or a path like \"/usr/sbin/haproxy\", got {n:?}"))
                    } else {
                        Ok(n.clone())
                    }
                })
            });
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
        let min_count = self.bounded_or(
            t.min_count.as_ref(),
            p,
            "min-count",
            0..=1_000_000,
            defaults::PROCESS_MIN_COUNT,
        );
        let max_count = self.opt_bounded(t.max_count.as_ref(), p, "max-count", 0..=1_000_000);
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

    pub(super) fn track_http(&mut self, raw: &S<RawTrack>, p: &str) -> Option<CheckKind> {
        let t = raw.get_ref();
        let url = self
            .required(
                &t.url,
                &raw.span(),
                p,
                "url",
                "an http track fetches url = \"http://HOST[:PORT]/PATH\"",
            )
            .and_then(|v| {
                self.checked(v, p, "url", |s| {
                    check_http_url(s)
                        .map(|()| s.clone())
                        .map_err(|why| format!("url {s:?}: {why}"))
                })
            });
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
    host_port(authority, "needs a host name or address after http://").map(|_| ())
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
        for good in [
            "http://127.0.0.1:8080/health",
            "http://[2001:db8::1]:80/",
            "http://lb.example/",
            "http://192.0.2.1",
        ] {
            assert!(check_http_url(good).is_ok(), "{good}");
        }
        for bad in [
            "https://192.0.2.1/",
            "http:///x",
            "http://192.0.2.1:0/",
            "http://192.0.2.1:99999/",
            "http://u@192.0.2.1/",
            "http://[2001:db8::1/",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }
}
