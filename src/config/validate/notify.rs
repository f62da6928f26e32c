//! `[instance.notify]` and `[sync-group.notify]`: hook commands and their timeout.

use std::time::Duration;

use super::super::defaults;
use super::super::raw::{RawNotify, SList, S};
use super::{join, Cx};
use crate::track::NotifySpec;

impl Cx<'_> {
    /// Program and arguments with an absolute program path (run without a shell).
    pub(super) fn command(
        &mut self,
        v: &SList<String>,
        prefix: &str,
        key: &str,
    ) -> Option<Vec<String>> {
        let list = v.get_ref();
        let Some(program) = list.first() else {
            self.err(
                v.span(),
                join(prefix, key),
                format!(
                    "{key} must list a program and its arguments, like [\"/usr/local/bin/prog\", \"arg\"], got an empty array"
                ),
            );
            return None;
        };
        let p = program.get_ref();
        if !p.starts_with('/') || p.contains('\0') {
            self.err(
                program.span(),
                join(prefix, key),
                format!(
                    "{key}: the program must be an absolute path (it runs without a shell and without PATH), got {p:?}"
                ),
            );
            return None;
        }
        if let Some(bad) = list.iter().find(|a| a.get_ref().contains('\0')) {
            self.err(
                bad.span(),
                join(prefix, key),
                format!("{key}: arguments cannot contain NUL characters"),
            );
            return None;
        }
        Some(list.iter().map(|a| a.get_ref().clone()).collect())
    }

    /// `instance`: the hooks of an instance (which may have a `stop` hook), not a group.
    pub(super) fn notify(
        &mut self,
        raw: Option<&S<RawNotify>>,
        p: &str,
        instance: bool,
    ) -> Option<NotifySpec> {
        let mut spec = NotifySpec {
            timeout: defaults::NOTIFY_TIMEOUT,
            ..NotifySpec::default()
        };
        let Some(raw) = raw else {
            return Some(spec);
        };
        let r = raw.get_ref();
        let mut ok = true;
        for (key, src, dst) in [
            ("master", &r.master, &mut spec.master),
            ("backup", &r.backup, &mut spec.backup),
            ("fault", &r.fault, &mut spec.fault),
            ("any", &r.any, &mut spec.any),
            ("stop", &r.stop, &mut spec.stop),
        ] {
            if let Some(v) = src {
                match self.command(v, p, key) {
                    Some(c) => *dst = Some(c),
                    None => ok = false,
                }
            }
        }
        if let (Some(v), false) = (&r.stop, instance) {
            self.err(
                v.span(),
                join(p, "stop"),
                "a sync group has no stop hook (its members stop one by one): put stop in each [instance.notify]".to_owned(),
            );
            ok = false;
        }
        match self.bounded_or(
            r.timeout.as_ref(),
            p,
            "timeout",
            Duration::from_millis(1)..=Duration::from_secs(3600),
            defaults::NOTIFY_TIMEOUT,
        ) {
            Some(d) => spec.timeout = d,
            None => ok = false,
        }
        spec.keep_capabilities = r
            .keep_capabilities
            .as_ref()
            .map_or(defaults::KEEP_CAPABILITIES, |k| *k.get_ref());
        ok.then_some(spec)
    }
}
