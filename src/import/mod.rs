//! `vipd import-keepalived`: a keepalived configuration converted to vipd's TOML.
//!
//! ```text
//!   keepalived.conf (+ includes) --syntax::parse--> tree --convert--> vipd keys --render--> TOML
//!                                                                         |
//!                         every keyword not carried over: a Note (FILE:LINE, why, what to do)
//! ```
//!
//! Pure apart from reading the files (through [`syntax::Files`]): [`import`] returns the
//! TOML and the notes; the `vipd` binary prints them and picks the exit status. The TOML
//! is checked with [`crate::config::parse`] before it is returned: an instance that vipd
//! would reject (two instances on one VRID, a VIP that is also a peer, ...) is left out
//! with a note quoting vipd's reason, so the output always passes `vipd --check`.
//!
//! Notes are [`Severity::Info`] (dropped because vipd already behaves that way, or it
//! has no effect on failover: `router_id`, `state`, mail alerts) or
//! [`Severity::Attention`] (the operator must act: LVS, authentication, an unsupported
//! option, an instance left out). Attention notes make the conversion incomplete.

mod convert;
pub mod syntax;

use std::fmt;
use std::path::Path;

pub use syntax::{Files, Loc, MemFiles, Node, RealFiles, SyntaxError};

/// How much a note matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Not carried over, and nothing to do: vipd behaves that way already, or it does
    /// not affect failover.
    Info,
    /// Not carried over (or carried over differently): the operator must act.
    Attention,
}

/// One keyword not carried over as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where the keyword is.
    pub at: Loc,
    /// The keyword.
    pub keyword: String,
    /// How much it matters.
    pub severity: Severity,
    /// What it meant and what to do instead.
    pub message: String,
}

impl Note {
    pub(crate) fn new(n: &Node, severity: Severity, message: String) -> Note {
        Note {
            at: n.at.clone(),
            keyword: n.key.clone(),
            severity,
            message,
        }
    }
    pub(crate) fn info(n: &Node, message: String) -> Note {
        Note::new(n, Severity::Info, message)
    }
    pub(crate) fn attention(n: &Node, message: String) -> Note {
        Note::new(n, Severity::Attention, message)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Info => "note",
            Severity::Attention => "attention",
        };
        write!(f, "{}: {tag}: {}: {}", self.at, self.keyword, self.message)
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// vipd TOML (passes `vipd --check`).
    pub toml: String,
    /// Every keyword not carried over as it was, in file order.
    pub notes: Vec<Note>,
    /// keepalived instances converted.
    pub instances: usize,
    /// keepalived instances found.
    pub instances_found: usize,
}

impl Import {
    /// `true` when no note needs the operator's attention.
    pub fn complete(&self) -> bool {
        self.notes.iter().all(|n| n.severity == Severity::Info)
    }
}

/// Why nothing could be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file (or an include) cannot be read, or its syntax is broken.
    #[error("{0}")]
    Syntax(#[from] SyntaxError),
    /// The output failed vipd's validation outside any instance (a bug in the importer).
    #[error("the converted configuration is invalid: {0}")]
    Invalid(String),
}

/// Converts the keepalived configuration at `path` (includes resolved through `files`)
/// for the host `host` (which `@HOST` / `@^HOST` lines apply).
pub fn import(files: &dyn Files, path: &Path, host: &str) -> Result<Import, ImportError> {
    let parsed = syntax::parse(files, path, host)?;
    let mut notes = Vec::new();
    let mut out = convert::convert(&parsed, &mut notes);
    let instances_found = count_instances(&parsed.nodes);
    let header = vec![
        format!(
            "Converted from {} by vipd import-keepalived (host {host}).",
            path.display()
        ),
        "Check it with `vipd --check -c FILE`; docs/keepalived.md explains each difference."
            .to_string(),
    ];
    // Sync-group members that were not converted.
    for g in &mut out.groups {
        let known: Vec<String> = out.instances.iter().map(|i| i.kname.clone()).collect();
        g.members.retain(|(m, at)| {
            let ok = known.contains(m);
            if !ok {
                notes.push(Note {
                    at: at.clone(),
                    keyword: m.clone(),
                    severity: Severity::Attention,
                    message: format!("sync group {} lists {m}, which is not a converted vrrp_instance: left out of the group", g.name),
                });
            }
            ok
        });
    }
    out.groups.retain(|g| {
        let keep = !g.members.is_empty();
        if !keep {
            notes.push(Note {
                at: g.at.clone(),
                keyword: "vrrp_sync_group".into(),
                severity: Severity::Attention,
                message: format!(
                    "sync group {} has no converted member: not carried over",
                    g.name
                ),
            });
        }
        keep
    });
    // Whatever vipd itself rejects is left out, with vipd's reason.
    let origin = "converted.toml";
    let mut tries = out.instances.len() + out.groups.len() + 2;
    let toml = loop {
        let text = convert::render(&out, &header);
        let errs = match crate::config::parse(&text, origin) {
            Ok(_) => break text,
            Err(e) => e,
        };
        tries -= 1;
        let first = &errs.0[0];
        let index = |prefix: &str| {
            first
                .key_path
                .strip_prefix(prefix)
                .and_then(|r| r.split(']').next())
                .and_then(|n| n.parse::<usize>().ok())
        };
        let rejected = if tries == 0 {
            None
        } else if let Some(i) = index("instance[").filter(|&i| i < out.instances.len()) {
            let gone = out.instances.remove(i);
            for g in &mut out.groups {
                g.members.retain(|(m, _)| *m != gone.kname);
            }
            out.groups.retain(|g| !g.members.is_empty());
            Some(("vrrp_instance", gone.at, gone.kname))
        } else if let Some(i) = index("sync-group[").filter(|&i| i < out.groups.len()) {
            let gone = out.groups.remove(i);
            Some(("vrrp_sync_group", gone.at, gone.name))
        } else {
            None
        };
        let Some((keyword, at, name)) = rejected else {
            return Err(ImportError::Invalid(errs.to_string()));
        };
        notes.push(Note {
            at,
            keyword: keyword.into(),
            severity: Severity::Attention,
            message: format!("{name} not converted: vipd rejects it: {}", first.message),
        });
    };
    notes.sort_by(|a, b| (&a.at.file, a.at.line).cmp(&(&b.at.file, b.at.line)));
    Ok(Import {
        toml,
        notes,
        instances: out.instances.len(),
        instances_found,
    })
}

fn count_instances(nodes: &[Node]) -> usize {
    nodes.iter().filter(|n| n.key == "vrrp_instance").count()
}

/// What `vipd import-keepalived` prints on stderr after the notes: one summary line.
pub fn summary(i: &Import) -> String {
    let attention = i
        .notes
        .iter()
        .filter(|n| n.severity == Severity::Attention)
        .count();
    let info = i.notes.len() - attention;
    format!(
        "converted {} of {} vrrp_instance(s); {attention} keyword(s) need attention, {info} note(s): {}",
        i.instances,
        i.instances_found,
        if attention == 0 {
            "complete"
        } else {
            "needs attention (exit 1)"
        }
    )
}

#[cfg(test)]
mod tests;
