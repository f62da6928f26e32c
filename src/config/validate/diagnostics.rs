//! Diagnostics: positions, the error list, and TOML/serde errors turned into
//! `FILE:LINE:COL: message` with the key path.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::super::raw::S;
use super::super::Diagnostic;
use super::{join, Cx};

impl Cx<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn pos(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    pub(super) fn err(&mut self, span: Range<usize>, path: String, message: String) {
        let (line, col) = self.pos(span.start);
        self.errors.push(Diagnostic {
            origin: self.origin.to_owned(),
            line,
            col,
            key_path: path,
            message,
        });
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        self.pos(span.start).0
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let span = e.span();
        let (line, col) = span.as_ref().map_or((1, 1), |s| self.pos(s.start));
        let key_path = span
            .as_ref()
            .and_then(|s| key_path_at(self.text, s.start))
            .unwrap_or_default();
        let mut message = tidy_serde_message(e.message());
        let last = key_path.rsplit('.').next().unwrap_or("");
        let last = last.split('[').next().unwrap_or("");
        if message.contains("expected an array")
            && matches!(last, "instance" | "sync-group" | "track")
        {
            message.push_str(&format!(" (write each entry as [[{}]])", {
                if last == "track" {
                    "instance.track"
                } else {
                    last
                }
            }));
        }
        Diagnostic {
            origin: self.origin.to_owned(),
            line,
            col,
            key_path,
            message,
        }
    }

    pub(super) fn missing(&mut self, table: &Range<usize>, prefix: &str, key: &str, what: &str) {
        // Point at the start of the table (its header line for [[...]] tables).
        self.err(
            table.clone(),
            join(prefix, key),
            format!("missing key `{key}`: {what}"),
        );
    }

    /// The value of a required key; reported missing (at `table`, saying `what`) when
    /// absent.
    pub(super) fn required<'r, T>(
        &mut self,
        v: &'r Option<S<T>>,
        table: &Range<usize>,
        prefix: &str,
        key: &str,
        what: &str,
    ) -> Option<&'r S<T>> {
        if v.is_none() {
            self.missing(table, prefix, key, what);
        }
        v.as_ref()
    }

    /// For what must be unique (names, virtual routers, VIPs): the first of each `key`
    /// is remembered with `value`; a later one is reported `at` its place and key path,
    /// with `message(first value)`.
    pub(super) fn unique<K: Hash + Eq, V>(
        &mut self,
        firsts: &mut HashMap<K, V>,
        key: K,
        value: V,
        at: (Range<usize>, String),
        message: impl FnOnce(&Self, &V) -> String,
    ) {
        if let Some(first) = firsts.get(&key) {
            let message = message(self, first);
            self.err(at.0, at.1, message);
        } else {
            firsts.insert(key, value);
        }
    }

    /// What `check` makes of the value of `prefix.key`; its error message is reported
    /// at the value.
    pub(super) fn checked<T, U>(
        &mut self,
        v: &S<T>,
        prefix: &str,
        key: &str,
        check: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        match check(v.get_ref()) {
            Ok(x) => Some(x),
            Err(message) => {
                self.err(v.span(), join(prefix, key), message);
                None
            }
        }
    }
}

/// Turns serde's wording into TOML's (tables, arrays, integers, keys).
pub(super) fn tidy_serde_message(msg: &str) -> String {
    let mut m = msg.trim().replace('\n', "; ");
    for (from, to) in [
        ("expected i64", "expected an integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: table"),
        ("invalid type: floating point", "invalid type: float"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        let rest = rest
            .replacen(", expected one of ", "; allowed keys here: ", 1)
            .replacen(", expected ", "; the only allowed key here is ", 1)
            .replacen(", there are no fields", "; no keys are allowed here", 1);
        m = format!("unknown key {rest}");
    }
    m
}

/// The dotted key path (`instance[0].vrid`) of the value or key at a byte offset.
pub(super) fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    find_in_table(doc.get_ref(), offset, "")
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn find_in_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (k, v) in table.iter() {
        let path = join(prefix, k.get_ref());
        if contains(&k.span(), offset) {
            return Some(path);
        }
        if let Some(found) = find_in_value(v.get_ref(), offset, &path) {
            return Some(found);
        }
        if contains(&v.span(), offset) {
            return Some(path);
        }
    }
    None
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
            let p = format!("{path}[{i}]");
            find_in_value(item.get_ref(), offset, &p)
                .or_else(|| contains(&item.span(), offset).then_some(p))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let cx = Cx {
            text: "a\nxé = 1\n",
            origin: "f",
            errors: vec![],
        };
        assert_eq!(cx.pos(0), (1, 1));
        assert_eq!(cx.pos(2), (2, 1));
        // "é" is two bytes; the '=' after "xé " is the 4th character.
        assert_eq!(cx.pos(6), (2, 4));
        assert_eq!(cx.pos(10_000), (3, 1));
    }
}
