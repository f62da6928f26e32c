//! `[[sync-group]]`: names, members (each instance in at most one group), hooks.

use std::collections::{HashMap, HashSet};

use super::super::raw::{RawSyncGroup, S};
use super::super::SyncGroup;
use super::keys::sorted_list;
use super::{join, Cx, Seen};

impl Cx<'_> {
    pub(super) fn sync_groups(
        &mut self,
        raw: &[S<RawSyncGroup>],
        seen: &[Seen],
    ) -> Option<Vec<SyncGroup>> {
        let known: HashSet<&str> = seen
            .iter()
            .filter_map(|s| s.name.as_ref().map(|(n, _)| n.as_str()))
            .collect();
        let mut groups = Vec::new();
        let mut ok = true;
        let mut group_names: HashMap<String, usize> = HashMap::new();
        let mut member_of: HashMap<String, (String, usize)> = HashMap::new();
        for (i, g) in raw.iter().enumerate() {
            let p = format!("sync-group[{i}]");
            let before = self.errors.len();
            let r = g.get_ref();
            let name = match &r.name {
                None => {
                    self.missing(&g.span(), &p, "name", "a sync group needs a unique name");
                    None
                }
                Some(v) => {
                    let n = self.object_name(v, &p);
                    if let Some(n) = &n {
                        let line = self.line_of(&v.span());
                        let at = (v.span(), join(&p, "name"));
                        self.unique(&mut group_names, n.clone(), line, at, |_, line| {
                            format!(
                                "sync-group name {n:?} is already used at line {line}: names must be unique"
                            )
                        });
                    }
                    n
                }
            };
            let gname = name.clone().unwrap_or_default();
            let mut members = Vec::new();
            match &r.instances {
                None => self.missing(
                    &g.span(),
                    &p,
                    "instances",
                    "a sync group lists the names of its instances",
                ),
                Some(list) if list.get_ref().is_empty() => self.err(
                    list.span(),
                    join(&p, "instances"),
                    "instances must list at least one instance name".to_owned(),
                ),
                Some(list) => {
                    for m in list.get_ref() {
                        let n = m.get_ref();
                        if !known.contains(n.as_str()) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!(
                                    "sync-group member {n:?} is not an instance name (instances: {})",
                                    sorted_list(&known)
                                ),
                            );
                        } else if members.contains(n) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!("instance {n:?} is listed twice in this sync group"),
                            );
                        } else if let Some((other, line)) = member_of.get(n) {
                            self.err(
                                m.span(),
                                join(&p, "instances"),
                                format!(
                                    "instance {n:?} is already in sync group {other:?} (line {line}): an instance can be in at most one sync group"
                                ),
                            );
                        } else {
                            member_of.insert(n.clone(), (gname.clone(), self.line_of(&m.span())));
                            members.push(n.clone());
                        }
                    }
                }
            }
            let notify = self.notify(r.notify.as_ref(), &join(&p, "notify"), false);
            if self.errors.len() > before {
                ok = false;
                continue;
            }
            if let (Some(name), Some(notify)) = (name, notify) {
                groups.push(SyncGroup {
                    name,
                    instances: members,
                    notify,
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(groups)
    }
}
