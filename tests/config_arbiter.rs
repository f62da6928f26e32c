//! `[arbiter]` and the instances' `arbiter` / `arbiter-key`: defaults, every rule with
//! its LINE:COL, and what `vipd --check` prints.

mod config_common;

use std::path::PathBuf;
use std::time::Duration;

use vipd::config::{self, OnLoss};

use config_common::ok;

/// Asserts exactly these (line, col, message fragment) diagnostics.
#[track_caller]
fn expect(text: &str, want: &[(usize, usize, &str)]) {
    let got = match config::parse(text, "inline.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.0,
    };
    let shown: Vec<String> = got.iter().map(|d| d.to_string()).collect();
    assert_eq!(got.len(), want.len(), "got {shown:#?}");
    for (d, (line, col, frag)) in got.iter().zip(want) {
        assert_eq!((d.line, d.col), (*line, *col), "position of {d}");
        assert!(d.message.contains(frag), "{:?} lacks {frag:?}", d.message);
        assert!(d
            .to_string()
            .starts_with(&format!("inline.toml:{line}:{col}: ")));
    }
}

/// The base instance with `arbiter = true` (line 7).
const INST: &str = concat!(config_common::base_instance!(), "arbiter = true\n");

/// Every fixture `tests/fixtures/config/arbiter/PREFIX*.toml` (there must be `n`) gives
/// exactly the diagnostics its own `# expect` lines list.
fn expect_each(prefix: &str, n: usize) {
    let dir = config_common::fixture("arbiter");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(prefix) && f.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        n,
        "{prefix}*.toml in {}: {names:?}",
        dir.display()
    );
    for name in names {
        config_common::expect(&format!("arbiter/{name}"));
    }
}

#[test]
fn defaults_and_key() {
    let c = ok(&format!(
        "[arbiter]\netcd-endpoints = [\"http://192.0.2.31:2379\", \"http://192.0.2.32:2379\"]\n{INST}"
    ));
    let a = c.arbiter.as_ref().expect("arbiter section");
    assert_eq!(a.etcd_endpoints.len(), 2);
    assert_eq!(a.lease_ttl, Duration::from_secs(2));
    assert_eq!(a.key_prefix, "/vipd");
    assert_eq!(a.on_loss, OnLoss::Release);
    assert!(a.tls.is_none() && a.auth.is_none());
    assert!(c.instances[0].arbiter);
    assert_eq!(
        a.key_for("web", c.instances[0].arbiter_key.as_deref()),
        "/vipd/web"
    );
}

#[test]
fn no_section_means_no_arbiter() {
    let c = ok(&INST.replace("arbiter = true\n", ""));
    assert!(c.arbiter.is_none());
    assert!(!c.instances[0].arbiter);
}

#[test]
fn every_key() {
    let c = ok(&format!(
        r#"[arbiter]
etcd-endpoints = ["https://etcd1.example:2379", "https://[2001:db8::31]:2379"]
lease-ttl = "5s"
key-prefix = "/lb/prod"
on-loss = "hold"
tls-ca = "/etc/vipd/etcd-ca.pem"
tls-cert = "/etc/vipd/client.pem"
tls-key = "/etc/vipd/client-key.pem"
username = "vipd"
password-file = "/etc/vipd/etcd-password"
{INST}arbiter-key = "/custom/web-key"
"#
    ));
    let a = c.arbiter.unwrap();
    assert_eq!(a.lease_ttl, Duration::from_secs(5));
    assert_eq!(a.on_loss, OnLoss::Hold);
    let tls = a.tls.unwrap();
    assert_eq!(tls.ca, PathBuf::from("/etc/vipd/etcd-ca.pem"));
    assert_eq!(
        tls.client,
        Some((
            PathBuf::from("/etc/vipd/client.pem"),
            PathBuf::from("/etc/vipd/client-key.pem")
        ))
    );
    assert_eq!(
        a.auth,
        Some(("vipd".to_owned(), PathBuf::from("/etc/vipd/etcd-password")))
    );
    assert_eq!(
        c.instances[0].arbiter_key.as_deref(),
        Some("/custom/web-key")
    );
}

#[test]
fn arbiter_on_instance_without_section() {
    // `arbiter = true` is line 7, column 11 of INST (which starts with a newline).
    expect(INST, &[(7, 11, "needs an [arbiter] section")]);
}

#[test]
fn bad_urls_located() {
    expect_each("urls_", 3);
}

#[test]
fn ttl_whole_seconds_at_least_one() {
    let base = "[arbiter]\netcd-endpoints = [\"http://192.0.2.31:2379\"]\n";
    for bad in ["500ms", "1500ms", "0s", "2h"] {
        expect(
            &format!("{base}lease-ttl = \"{bad}\"\n"),
            &[(3, 13, "lease-ttl must be whole seconds, 1s..=1h")],
        );
    }
    expect(
        &format!("{base}lease-ttl = \"2\"\n"),
        &[(3, 13, "invalid duration")],
    );
    let c = ok(&format!("{base}lease-ttl = \"1s\"\n"));
    assert_eq!(c.arbiter.unwrap().lease_ttl, Duration::from_secs(1));
}

#[test]
fn other_section_rules() {
    expect_each("section_", 10);
}

#[test]
fn instance_keys() {
    let base = "[arbiter]\netcd-endpoints = [\"http://192.0.2.31:2379\"]\n";
    // arbiter-key without arbiter = true.
    let no_arb = INST.replace("arbiter = true", "arbiter-key = \"/x\"");
    expect(
        &format!("{base}{no_arb}"),
        &[(9, 15, "no effect without arbiter = true")],
    );
    // Two instances on one key.
    let second = INST
        .replace("\"web\"", "\"api\"")
        .replace("vrid = 51", "vrid = 52")
        .replace("192.0.2.100", "192.0.2.101")
        .replace(
            "arbiter = true",
            "arbiter = true\narbiter-key = \"/vipd/web\"",
        );
    expect(
        &format!("{base}{INST}{second}"),
        &[(17, 15, "already used by the instance at line 4")],
    );
}

#[test]
fn check_report_mentions_the_arbiter() {
    let dir = std::env::temp_dir().join(format!("vipd-cfg-arb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vipd.toml");
    std::fs::write(
        &path,
        format!(
            "[arbiter]\netcd-endpoints = [\"http://192.0.2.31:2379\"]\nlease-ttl = \"1s\"\n{INST}"
        ),
    )
    .unwrap();
    let (valid, out) = config::check_report(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(valid, "{out}");
    assert!(
        out.contains("arbiter: etcd http://192.0.2.31:2379 lease-ttl 1s on-loss release"),
        "{out}"
    );
    assert!(out.contains("arbiter web: key /vipd/web"), "{out}");
}
