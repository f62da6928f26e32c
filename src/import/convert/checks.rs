//! The check definitions: `vrrp_script`, `track_process` and `track_file` blocks, and
//! the weight of a `NAME [weight W [reverse]]` reference to one.

use super::*;

impl Cx<'_> {
    pub(super) fn script_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut script = None;
        let mut interval_ms = 1000u64;
        let mut timeout_ms: Option<u64> = None;
        let mut weight = 0i64;
        let mut reverse = false;
        let mut rise = 1i64;
        let mut fall = 1i64;
        for c in n.children() {
            match c.key.as_str() {
                "script" => script = Some(c.args.join(" ")),
                "interval" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        interval_ms = ((v * 1000.0).round() as u64).max(10);
                    }
                }
                "timeout" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        timeout_ms = Some(((v * 1000.0).round() as u64).max(1));
                    }
                }
                "weight" => {
                    if let Some(w) = int_arg(c, self.notes, -254, 254) {
                        weight = w;
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "rise" => rise = int_arg(c, self.notes, 1, 1000).unwrap_or(rise),
                "fall" => fall = int_arg(c, self.notes, 1, 1000).unwrap_or(fall),
                "user" => self.notes.push(Note::info(c, "vipd runs checks as its own user (capabilities dropped): not carried over".to_string())),
                "init_fail" => self.notes.push(Note::info(c, "vipd always starts a check as failing until it passes rise times (init_fail behaviour)".to_string())),
                k => self.notes.push(Note::attention(c, format!("vrrp_script {k}: no vipd equivalent: not carried over"))),
            }
        }
        let script = self.needs(script, n, &format!("vrrp_script {name}"), "script")?;
        let timeout = match timeout_ms {
            Some(t) if t < interval_ms => t,
            Some(t) => {
                let clamped = interval_ms.saturating_sub(10).max(1);
                self.notes.push(Note::info(n, format!("timeout {} is not shorter than interval {} (vipd needs it shorter): timeout {} written", fmt_ms(t), fmt_ms(interval_ms), fmt_ms(clamped))));
                clamped
            }
            None => interval_ms.saturating_sub(10).max(1),
        };
        let mut keys: Vec<Kv> = vec![("name".into(), q(&name))];
        match script_kind(&script) {
            ScriptKind::Process(p) => {
                self.notes.push(Note::info(n, format!("script {script:?} becomes a process check for {p:?} (no program run every interval)")));
                keys.push(("kind".into(), q("process")));
                keys.push(("process".into(), q(&p)));
            }
            ScriptKind::Tcp(a) => {
                self.notes.push(Note::info(
                    n,
                    format!("script {script:?} becomes a tcp check of {a}"),
                ));
                keys.push(("kind".into(), q("tcp")));
                keys.push(("address".into(), q(&a)));
            }
            ScriptKind::Exec(cmd, note) => {
                if let Some(why) = note {
                    self.notes
                        .push(Note::info(n, format!("script {script:?}: {why}")));
                }
                keys.push(("kind".into(), q("exec")));
                keys.push(("command".into(), qlist(&cmd)));
            }
        }
        keys.push(("interval".into(), q(&fmt_ms(interval_ms))));
        keys.push(("timeout".into(), q(&fmt_ms(timeout))));
        keys.push(("rise".into(), rise.to_string()));
        keys.push(("fall".into(), fall.to_string()));
        Some((name, CheckDef::new(n, weight, reverse, keys, false)))
    }

    pub(super) fn process_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut words: Option<Vec<String>> = None;
        let mut param_match: Option<&str> = None;
        let mut weight = 1i64;
        let mut reverse = false;
        let mut quorum = 1i64;
        let mut quorum_max: Option<i64> = None;
        let (mut fork_delay, mut term_delay) = (0f64, 0f64);
        for c in n.children() {
            match c.key.as_str() {
                "process" => words = Some(c.args.clone()),
                "param_match" => {
                    param_match = match c.args.first().map(String::as_str) {
                        Some("initial") => Some("initial"),
                        Some("partial") => Some("partial"),
                        _ => Some("exact"),
                    }
                }
                "weight" => {
                    if let Some(w) = int_arg(c, self.notes, -254, 254) {
                        weight = w;
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "quorum" => quorum = int_arg(c, self.notes, 0, 1_000_000).unwrap_or(quorum),
                "quorum_max" => quorum_max = int_arg(c, self.notes, 0, 1_000_000),
                "delay" => {
                    if let Some((_, v)) = secs_arg(c, self.notes) {
                        fork_delay = v;
                        term_delay = v;
                    }
                }
                "fork_delay" => fork_delay = secs_arg(c, self.notes).map_or(fork_delay, |x| x.1),
                "terminate_delay" => term_delay = secs_arg(c, self.notes).map_or(term_delay, |x| x.1),
                "full_command" => self.notes.push(Note::info(c, "vipd matches argv[0] and the arguments when args are given: nothing to carry over".to_string())),
                k => self.notes.push(Note::attention(c, format!("vrrp_track_process {k}: no vipd equivalent: not carried over"))),
            }
        }
        let words = self.needs(
            words.filter(|w| !w.is_empty()),
            n,
            &format!("vrrp_track_process {name}"),
            "process",
        )?;
        // keepalived reacts to process events; vipd polls every 500 ms: the delays become
        // rise/fall counts of that interval.
        let steps = |d: f64| 1 + (d / 0.5).ceil().max(0.0) as i64;
        let mut keys: Vec<Kv> = vec![
            ("name".into(), q(&name)),
            ("kind".into(), q("process")),
            ("process".into(), q(&words[0])),
        ];
        if words.len() > 1 || param_match.is_some() {
            keys.push(("args".into(), qlist(&words[1..])));
            keys.push(("args-match".into(), q(param_match.unwrap_or("exact"))));
        }
        keys.push(("min-count".into(), quorum.to_string()));
        if let Some(m) = quorum_max {
            if m < quorum {
                self.notes.push(Note::attention(n, format!("quorum_max {m} is below quorum {quorum}: this check can never pass; max-count not carried over")));
            } else {
                keys.push(("max-count".into(), m.to_string()));
            }
        }
        keys.push(("interval".into(), q("500ms")));
        keys.push(("timeout".into(), q("400ms")));
        keys.push(("rise".into(), steps(fork_delay).min(1000).to_string()));
        keys.push(("fall".into(), steps(term_delay).min(1000).to_string()));
        Some((name, CheckDef::new(n, weight, reverse, keys, false)))
    }

    pub(super) fn file_def(&mut self, n: &Node) -> Option<(String, CheckDef)> {
        let name = n.args.first()?.clone();
        let mut path = None;
        let mut weight = 1i64;
        let mut reverse = false;
        for c in n.children() {
            match c.key.as_str() {
                "file" => path = c.args.first().cloned(),
                "weight" => {
                    match c.args.first().and_then(|a| a.parse::<i64>().ok()) {
                        Some(w) => weight = w,
                        None => self.notes.push(Note::attention(c, "weight is not a number: weight 1 assumed".to_string())),
                    }
                    reverse = c.args.iter().any(|a| a == "reverse");
                }
                "init_file" => self.notes.push(Note::attention(c, "vipd does not create or initialise the file: create it (for example with 0) before vipd starts, or the instance stays in Fault (a missing file is a fault)".to_string())),
                k => self.notes.push(Note::attention(c, format!("track_file {k}: no vipd equivalent: not carried over"))),
            }
        }
        let path = self.needs(
            path.filter(|p| p.starts_with('/')),
            n,
            &format!("track_file {name}"),
            "absolute file path",
        )?;
        let keys: Vec<Kv> = vec![
            ("name".into(), q(&name)),
            ("kind".into(), q("file")),
            ("path".into(), q(&path)),
            ("interval".into(), q("1s")),
            ("timeout".into(), q("500ms")),
        ];
        Some((name, CheckDef::new(n, weight, reverse, keys, true)))
    }
}

/// keepalived weight of a `NAME [weight W [reverse]]` line.
pub(super) fn weight_of(t: &Node, default: i64, notes: &mut Vec<Note>) -> (i64, bool) {
    match t.args.iter().position(|a| a == "weight") {
        None => {
            if !t.args.is_empty() {
                notes.push(Note::attention(
                    t,
                    format!("options {:?} not understood: ignored", t.args.join(" ")),
                ));
            }
            (default, false)
        }
        Some(i) => {
            let reverse = t.args.iter().any(|a| a == "reverse");
            match t.args.get(i + 1).and_then(|w| w.parse::<i64>().ok()) {
                Some(w) => (w, reverse),
                None => {
                    notes.push(Note::attention(
                        t,
                        "weight is not a number: the default weight kept".to_string(),
                    ));
                    (default, reverse)
                }
            }
        }
    }
}
