//! Shared by the monitoring tests: the shipped alert rules and dashboard, promtool, and
//! the dashboard's queries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shipped files, as in the source tree (installed under /usr/share/vipd/).
pub fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring")
}

/// `vipd-alerts.yml`.
pub fn rules_file() -> PathBuf {
    monitoring_dir().join("vipd-alerts.yml")
}

/// `vipd-dashboard.json`, parsed.
pub fn dashboard() -> serde_json::Value {
    let path = monitoring_dir().join("vipd-dashboard.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel's queries, as `(panel title, expr)`, with Grafana's variables replaced by
/// `rate_interval` (for `$__rate_interval` and `$__interval`) and `range` (for `$__range`).
pub fn dashboard_queries(rate_interval: &str, range: &str) -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = d["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        let title = p["title"].as_str().unwrap_or("?").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                let e = e
                    .replace("$__rate_interval", rate_interval)
                    .replace("$__interval", rate_interval)
                    .replace("$__range", range);
                out.push((title.clone(), e));
            }
        }
    }
    out.sort();
    out
}

/// `promtool`, if installed. Missing is a failure under CI (`CI=true`) or
/// `VIPD_REQUIRE_PROMTOOL=1`, a skip otherwise.
pub fn promtool(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let required = std::env::var("CI").as_deref() == Ok("true")
            || std::env::var("VIPD_REQUIRE_PROMTOOL").as_deref() == Ok("1");
        if required {
            panic!("{test}: promtool not found (Debian package `prometheus`; integration/setup.sh installs it)");
        }
        eprintln!("SKIP {test}: promtool not found (apt-get install prometheus)");
    }
    found
}
