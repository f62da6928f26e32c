//! keepalived values: words of a script line, durations, integer arguments, and which
//! vipd check a script becomes.

use super::*;

/// keepalived seconds (`"1"`, `"0.5"`) to a vipd duration string.
pub(super) fn secs_to_duration(s: &str) -> Option<(String, f64)> {
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = (v * 1000.0).round();
    if ms > 86_400_000.0 {
        return None;
    }
    let ms = ms as u64;
    let text = if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    };
    Some((text, v))
}

pub(super) fn fmt_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Splits a keepalived script string into words: whitespace separated, `'...'` and
/// `"..."` quoting and `\` escapes as in a shell. `None` for an unbalanced quote.
pub(super) fn split_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next()?),
                        Some(x) => cur.push(x),
                        None => return None,
                    }
                }
            }
            '\\' => {
                have = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Some(out)
}

/// Characters that make a script shell syntax rather than a program and arguments.
pub(super) fn has_shell_syntax(s: &str) -> bool {
    s.contains(['<', '>', '|', '&', ';', '$', '`', '(', ')', '*', '?', '~'])
}

/// A command line for vipd (absolute program), and a note if it had to be wrapped.
pub(super) fn command_of(script: &str) -> (Vec<String>, Option<String>) {
    if has_shell_syntax(script) {
        return (
            vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            Some("it uses shell syntax, so it runs as /bin/sh -c '...' (vipd runs programs without a shell)".into()),
        );
    }
    match split_words(script) {
        Some(words) if !words.is_empty() => {
            if words[0].starts_with('/') {
                (words, None)
            } else {
                let mut v = vec!["/usr/bin/env".to_string()];
                let prog = words[0].clone();
                v.extend(words);
                (
                    v,
                    Some(format!("{prog} has no path, so it runs through /usr/bin/env, which looks it up in vipd's PATH (vipd needs absolute programs); better write its full path")),
                )
            }
        }
        _ => (
            vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            Some("it could not be split into words, so it runs as /bin/sh -c '...'".into()),
        ),
    }
}

/// What a keepalived script probes, when vipd has a cheaper kind for it.
pub(super) enum ScriptKind {
    Process(String),
    Tcp(String),
    Exec(Vec<String>, Option<String>),
}

pub(super) fn script_kind(script: &str) -> ScriptKind {
    let t = script.trim();
    // `</dev/tcp/HOST/PORT`, bare or wrapped in `bash -c '...'`.
    let inner = split_words(t)
        .and_then(|w| match w.as_slice() {
            [sh, c, body] if (sh.ends_with("bash") || sh.ends_with("sh")) && c == "-c" => {
                Some(body.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| t.to_string());
    if let Some(rest) = inner.trim().strip_prefix("</dev/tcp/") {
        if let Some((host, port)) = rest.trim().split_once('/') {
            if let (Ok(ip), Ok(port)) = (host.parse::<IpAddr>(), port.parse::<u16>()) {
                if port != 0 {
                    let addr = match ip {
                        IpAddr::V4(v4) => format!("{v4}:{port}"),
                        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                    };
                    return ScriptKind::Tcp(addr);
                }
            }
        }
    }
    if !has_shell_syntax(t) {
        if let Some(w) = split_words(t) {
            let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
            match w.as_slice() {
                [k, zero, name] if base(k) == "killall" && zero == "-0" => {
                    return ScriptKind::Process(name.clone())
                }
                [k, name] if base(k) == "pidof" && !name.starts_with('-') => {
                    return ScriptKind::Process(name.clone())
                }
                [k, x, name] if base(k) == "pgrep" && x == "-x" => {
                    return ScriptKind::Process(name.clone())
                }
                _ => {}
            }
        }
    }
    let (cmd, note) = command_of(t);
    ScriptKind::Exec(cmd, note)
}

/// Integer argument, or a note.
pub(super) fn int_arg(n: &Node, notes: &mut Vec<Note>, lo: i64, hi: i64) -> Option<i64> {
    match n.args.first().and_then(|a| a.parse::<i64>().ok()) {
        Some(v) if (lo..=hi).contains(&v) => Some(v),
        _ => {
            notes.push(Note::attention(
                n,
                format!(
                    "expects a number {lo}..={hi}, got {:?}: not carried over",
                    n.args.join(" ")
                ),
            ));
            None
        }
    }
}

pub(super) fn secs_arg(n: &Node, notes: &mut Vec<Note>) -> Option<(String, f64)> {
    let r = n.args.first().and_then(|a| secs_to_duration(a));
    if r.is_none() {
        notes.push(Note::attention(
            n,
            format!(
                "expects seconds, got {:?}: not carried over",
                n.args.join(" ")
            ),
        ));
    }
    r
}
