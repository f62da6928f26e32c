//! The shipped monitoring files (packaging/monitoring, installed under /usr/share/vipd/):
//! the alert rules pass `promtool check rules` and their promtool unit tests, every alert
//! has a unit test, the dashboard's queries are valid PromQL over metrics vipd exports.
//! Needs Debian's `prometheus` package for promtool (a skip without it, a failure under
//! CI). The namespace test with a real Prometheus is `operate::prometheus_*`.

mod monitoring_common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use monitoring_common::{dashboard, dashboard_queries, monitoring_dir, promtool, rules_file};
use vipd::daemon::metrics::Metrics;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `- alert: NAME` lines of the rules file.
fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(rules_file()).expect("rules file");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn alert_rules_pass_promtool_check_rules() {
    let Some(p) = promtool("alert_rules_pass_promtool_check_rules") else {
        return;
    };
    let (ok, out) = run(Command::new(p).arg("check").arg("rules").arg(rules_file()));
    assert!(ok, "promtool check rules:\n{out}");
    let n = alert_names().len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let Some(p) = promtool("alert_rules_pass_their_promtool_unit_tests") else {
        return;
    };
    let (ok, out) = run(Command::new(p).current_dir(monitoring_dir()).args([
        "test",
        "rules",
        "vipd-alerts.test.yml",
    ]));
    assert!(ok, "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Each alert the issue asks for exists, and each alert is the subject of a promtool
/// unit test that expects it to fire.
#[test]
fn every_alert_has_a_unit_test_that_fires_it() {
    let names = alert_names();
    for want in [
        "VipdSplitBrain",
        "VipdNoMaster",
        "VipdFlapping",
        "VipdMaintenanceLeftOn",
        "VipdPriorityOverrideLeftOn",
        "VipdAdvertsDropped",
        "VipdMetricsTargetDown",
        "VipdBfdSessionDown",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "no alert {want}: {names:?}"
        );
    }
    let tests =
        std::fs::read_to_string(monitoring_dir().join("vipd-alerts.test.yml")).expect("test file");
    // An `alertname: X` followed (before the next alertname) by a non-empty exp_alerts.
    let mut fired = BTreeSet::new();
    let mut current: Option<String> = None;
    for l in tests.lines() {
        let l = l.trim();
        if let Some(n) = l.strip_prefix("alertname:") {
            current = Some(n.trim().to_string());
        } else if l.starts_with("- exp_labels:") {
            if let Some(c) = &current {
                fired.insert(c.clone());
            }
        }
    }
    for n in &names {
        assert!(
            fired.contains(n),
            "alert {n} has no unit test that expects it to fire"
        );
    }
}

/// Every dashboard query (and every alert expression) is valid PromQL: checked by
/// promtool as recording rules.
#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(p) = promtool("dashboard_queries_are_valid_promql") else {
        return;
    };
    let queries = dashboard_queries("1m", "1h");
    assert!(queries.len() >= 10, "{queries:?}");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(e).expect("string");
        yaml.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = std::env::temp_dir().join(format!("vipd-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("dashboard-rules.yml");
    std::fs::write(&file, &yaml).expect("write");
    let (ok, out) = run(Command::new(p).arg("check").arg("rules").arg(&file));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "dashboard queries are not valid PromQL:\n{out}\n{yaml}");
}

/// The dashboard has the panels the issue lists, each with a description, on the
/// datasource variable.
#[test]
fn dashboard_has_the_panels_operators_need() {
    let d = dashboard();
    assert_eq!(d["uid"], "vipd-overview");
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
    let all: String = dashboard_queries("1m", "1h")
        .into_iter()
        .map(|(_, e)| e)
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "vipd_instance_state",
        "vipd_instance_info",
        "vipd_transitions_total{to=\"master\"}",
        "vipd_takeover_detect_seconds_bucket",
        "vipd_takeover_announce_seconds_bucket",
        "vipd_adverts_dropped_total",
        "vipd_instance_priority_override",
        "vipd_instance_maintenance",
        "up{job=\"vipd\"}",
        "vipd_bfd_session_state",
    ] {
        assert!(all.contains(needle), "no dashboard query uses {needle}");
    }
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "panel {} has no description",
            p["title"]
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {}",
            p["title"]
        );
    }
}

/// Every `vipd_*` metric the rules and the dashboard name is one vipd exports (a typo
/// would make an alert that never fires).
#[test]
fn rules_and_dashboard_use_only_metrics_vipd_exports() {
    let m = Metrics::new();
    m.instance.set_state("web", "master");
    m.instance.set_priority("web", 150);
    m.instance.transition("web", "backup", "master");
    m.instance.master_changed("web");
    let adverts = m.adverts.counters("web");
    adverts.sent.inc();
    adverts.received.inc();
    m.adverts.dropped("eth0", "ttl_not_255");
    m.takeover.detect("web", Duration::from_millis(300));
    m.takeover.announce("web", Duration::from_millis(1));
    m.checks
        .record("web", "http", true, Duration::from_millis(2));
    m.instance.set_operator("web", Some(200), true);
    m.instance
        .set_state_since("web", std::time::SystemTime::now());
    m.instance
        .set_identity("web", "eth0", 51, "ipv4", "192.0.2.100/24");
    m.bfd
        .set_state("eth0", "192.0.2.12", vipd::bfd::SessionState::Up);
    let exposed: BTreeSet<String> = m
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let mut text = std::fs::read_to_string(rules_file()).expect("rules");
    for (_, e) in dashboard_queries("1m", "1h") {
        text.push('\n');
        text.push_str(&e);
    }
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("vipd_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        used.insert(name);
    }
    // "vipd_" also starts words in prose (file names); keep metric-shaped names only.
    used.retain(|n| n != "vipd_" && !n.starts_with("vipd_alerts"));
    assert!(used.len() >= 10, "{used:?}");
    for n in &used {
        assert!(
            exposed.contains(n),
            "{n} is used but vipd exports no such series: {exposed:?}"
        );
    }
}
