//! keepalived's configuration syntax, read into a tree of [`Node`]s.
//!
//! keepalived's format is line-oriented: a line is a keyword and its arguments; `{`
//! opens a block that belongs to the keyword before it (on the same line or the line
//! before), `}` closes it. Handled here, as keepalived 2.2 does:
//!
//! - `#` and `!` start a comment when they start a word outside double quotes (so a
//!   password `ab#c` stays whole);
//! - `"double quoted strings"` are one word, quotes removed;
//! - a trailing `\` continues the line on the next one;
//! - `@NAME rest` keeps `rest` only when the host (keepalived's config id, by default
//!   the host name) is `NAME`; `@^NAME rest` only when it is not;
//! - `include PATTERN` reads the files the glob pattern matches (relative to the
//!   directory of the file it is in; sorted), recursively, at most [`MAX_DEPTH`] deep.
//!
//! File access goes through the [`Files`] trait, so the parser is pure and testable
//! with an in-memory file set.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Deepest include nesting (keepalived has no limit; a loop would never end).
pub const MAX_DEPTH: usize = 16;

/// Where a keyword is: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The file (as given, or as an include pattern resolved it).
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One keyword with its arguments and, if it has one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword (first word).
    pub key: String,
    /// The other words of the line.
    pub args: Vec<String>,
    /// The block that follows it, if any.
    pub block: Option<Vec<Node>>,
    /// Where the keyword is.
    pub at: Loc,
}

impl Node {
    /// The block's children (empty when there is no block).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Why a file could not be read into a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct SyntaxError {
    /// Where.
    pub at: Loc,
    /// What.
    pub message: String,
}

/// What the parser needs from a file system.
pub trait Files {
    /// The text of a file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Every file whose path matches `pattern` (`*`, `?` and `[...]` in any component),
    /// sorted.
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;
}

/// Files held in memory (tests, and `--check` of fixtures).
#[derive(Debug, Clone, Default)]
pub struct MemFiles(pub BTreeMap<PathBuf, String>);

impl Files for MemFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    }
    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let pat = pattern.to_string_lossy();
        self.0
            .keys()
            .filter(|p| glob_match(&pat, &p.to_string_lossy()))
            .cloned()
            .collect()
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let mut found = vec![PathBuf::new()];
        for comp in pattern.components() {
            let part = comp.as_os_str().to_string_lossy();
            let wild = part.contains(['*', '?', '[']);
            let mut next = Vec::new();
            for base in &found {
                if !wild {
                    next.push(base.join(comp.as_os_str()));
                    continue;
                }
                let dir = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| !n.starts_with('.') && glob_match(&part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            }
            found = next;
            if found.len() > 10_000 {
                break;
            }
        }
        let mut files: Vec<PathBuf> = found.into_iter().filter(|p| p.is_file()).collect();
        files.sort();
        files
    }
}

/// Shell-style match of `name` against `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`).
pub fn glob_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative with one backtrack point for `*` (no exponential blow-up).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `[...]` at the start of `p`: whether `c` is in it and the class's length.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

/// Splits one logical line into words and braces. `Err` for an unclosed quote.
fn tokens(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let flush = |word: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    word.push(q);
                }
                if !closed {
                    return Err("unclosed double quote".into());
                }
                in_word = true;
            }
            '#' | '!' if !in_word => break,
            '{' => {
                flush(&mut word, &mut in_word, &mut out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut word, &mut in_word, &mut out);
                out.push(Tok::Close);
            }
            c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut out),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush(&mut word, &mut in_word, &mut out);
    Ok(out)
}

/// Keyword lines in file order, includes expanded, host conditions applied.
struct Reader<'a> {
    files: &'a dyn Files,
    host: &'a str,
    lines: Vec<(Loc, Vec<Tok>)>,
    /// Includes that matched nothing (reported by the converter).
    pub(crate) empty_includes: Vec<(Loc, String)>,
}

impl Reader<'_> {
    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<&Loc>,
    ) -> Result<(), SyntaxError> {
        let file = path.display().to_string();
        let text = self.files.read(path).map_err(|e| SyntaxError {
            at: from.cloned().unwrap_or(Loc {
                file: file.clone(),
                line: 0,
            }),
            message: format!("cannot read {file}: {e}"),
        })?;
        let mut pending = String::new();
        let mut start = 0;
        for (i, raw) in text.lines().enumerate() {
            let no = i + 1;
            if pending.is_empty() {
                start = no;
            }
            if let Some(cont) = raw.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            pending.push_str(raw);
            let line = std::mem::take(&mut pending);
            let at = Loc {
                file: file.clone(),
                line: start,
            };
            self.line(&line, at, path, depth)?;
        }
        if !pending.is_empty() {
            let at = Loc {
                file: file.clone(),
                line: start,
            };
            self.line(&pending, at, path, depth)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str, at: Loc, path: &Path, depth: usize) -> Result<(), SyntaxError> {
        let mut text = line.trim_start();
        if let Some(cond) = text.strip_prefix('@') {
            let (name, rest) = cond.split_once(char::is_whitespace).unwrap_or((cond, ""));
            let keep = match name.strip_prefix('^') {
                Some(not) => not != self.host,
                None => name == self.host,
            };
            if !keep {
                return Ok(());
            }
            text = rest;
        }
        let toks = tokens(text).map_err(|message| SyntaxError {
            at: at.clone(),
            message,
        })?;
        if let [Tok::Word(kw), Tok::Word(pattern)] = toks.as_slice() {
            if kw == "include" {
                if depth >= MAX_DEPTH {
                    return Err(SyntaxError {
                        at,
                        message: format!("includes nested more than {MAX_DEPTH} deep (a loop?)"),
                    });
                }
                let base = path.parent().unwrap_or(Path::new(""));
                let full = base.join(pattern);
                let matched = self.files.glob(&full);
                if matched.is_empty() {
                    self.empty_includes.push((at.clone(), pattern.clone()));
                }
                for f in matched {
                    self.read_file(&f, depth + 1, Some(&at))?;
                }
                return Ok(());
            }
        }
        if !toks.is_empty() {
            self.lines.push((at, toks));
        }
        Ok(())
    }
}

/// The parsed configuration: its top-level keywords and the includes that matched
/// no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Top-level keywords in order.
    pub nodes: Vec<Node>,
    /// `include` lines whose pattern matched no file.
    pub empty_includes: Vec<(Loc, String)>,
}

/// Reads `path` (and its includes) into a tree. `host` selects `@HOST` lines.
pub fn parse(files: &dyn Files, path: &Path, host: &str) -> Result<Parsed, SyntaxError> {
    let mut r = Reader {
        files,
        host,
        lines: Vec::new(),
        empty_includes: Vec::new(),
    };
    r.read_file(path, 0, None)?;
    let nodes = build(&r.lines)?;
    Ok(Parsed {
        nodes,
        empty_includes: r.empty_includes,
    })
}

/// Lines of tokens to the tree.
fn build(lines: &[(Loc, Vec<Tok>)]) -> Result<Vec<Node>, SyntaxError> {
    // Stack of open blocks; the bottom is the top level.
    let mut stack: Vec<(Vec<Node>, Option<Loc>)> = vec![(Vec::new(), None)];
    for (at, toks) in lines {
        let mut words: Vec<String> = Vec::new();
        let finish = |words: &mut Vec<String>, stack: &mut Vec<(Vec<Node>, Option<Loc>)>| {
            if words.is_empty() {
                return;
            }
            let key = words.remove(0);
            let node = Node {
                key,
                args: std::mem::take(words),
                block: None,
                at: at.clone(),
            };
            if let Some(top) = stack.last_mut() {
                top.0.push(node);
            }
        };
        for t in toks {
            match t {
                Tok::Word(w) => words.push(w.clone()),
                Tok::Open => {
                    finish(&mut words, &mut stack);
                    let owner_ok = stack
                        .last()
                        .and_then(|t| t.0.last())
                        .is_some_and(|n| n.block.is_none());
                    if !owner_ok {
                        return Err(SyntaxError {
                            at: at.clone(),
                            message: "'{' without a keyword before it".into(),
                        });
                    }
                    stack.push((Vec::new(), Some(at.clone())));
                }
                Tok::Close => {
                    finish(&mut words, &mut stack);
                    if stack.len() < 2 {
                        return Err(SyntaxError {
                            at: at.clone(),
                            message: "'}' without a matching '{'".into(),
                        });
                    }
                    let (children, _) = stack.pop().unwrap_or_default();
                    if let Some(owner) = stack.last_mut().and_then(|t| t.0.last_mut()) {
                        owner.block = Some(children);
                    }
                }
            }
        }
        finish(&mut words, &mut stack);
    }
    if stack.len() > 1 {
        let opened = stack.last().and_then(|t| t.1.clone()).unwrap_or(Loc {
            file: String::new(),
            line: 0,
        });
        return Err(SyntaxError {
            at: opened,
            message: "this '{' is never closed".into(),
        });
    }
    Ok(stack.pop().map(|t| t.0).unwrap_or_default())
}

#[cfg(test)]
mod tests;
