//! `vipd import-keepalived` as a command: every sample Debian's keepalived package ships
//! parses and each of its vrrp_instance blocks converts or is reported; fixtures for every
//! keyword; the output always passes `vipd --check`; exit status 0 / 1 / 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

fn vipd() -> &'static str {
    env!("CARGO_BIN_EXE_vipd")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keepalived")
        .join(name)
}

fn run_import(file: &Path, host: &str) -> Output {
    Command::new(vipd())
        .arg("import-keepalived")
        .arg(file)
        .args(["--host", host])
        .output()
        .expect("run vipd import-keepalived")
}

/// Writes `toml` to a temp file and runs `vipd --check -c` on it.
fn check(toml: &str, tag: &str) -> (bool, String) {
    let p = std::env::temp_dir().join(format!("vipd-import-{}-{tag}.toml", std::process::id()));
    std::fs::write(&p, toml).expect("write temp toml");
    let out = Command::new(vipd())
        .args(["--check", "-c"])
        .arg(&p)
        .output()
        .expect("run vipd --check");
    let _ = std::fs::remove_file(&p);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_debian_sample_parses_and_each_vrrp_instance_converts_or_is_reported() {
    let Ok(rd) = std::fs::read_dir(SAMPLES) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{SAMPLES} missing: CI installs keepalived");
        }
        eprintln!("SKIP: {SAMPLES} missing (install keepalived)");
        return;
    };
    let mut samples: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived.conf"))
        })
        .collect();
    samples.sort();
    assert!(samples.len() >= 20, "only {} samples", samples.len());
    let mut converted = 0;
    let mut instances = 0;
    for s in &samples {
        let out = run_import(s, "lb1");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let code = out.status.code();
        assert!(
            matches!(code, Some(0) | Some(1)),
            "{}: exit {code:?}\n{stderr}",
            s.display()
        );
        let (ok, report) = check(&stdout, "sample");
        assert!(
            ok,
            "{}: output rejected by --check:\n{report}\n{stdout}",
            s.display()
        );
        // Each vrrp_instance block: in the output, or a note at its line.
        let parsed =
            vipd::import::syntax::parse(&vipd::import::RealFiles, s, "lb1").expect("sample parses");
        for n in parsed.nodes.iter().filter(|n| n.key == "vrrp_instance") {
            instances += 1;
            let name = n.args.first().cloned().unwrap_or_default();
            let in_output = stdout.contains(&format!("# vrrp_instance {name} ("));
            let reported = stderr.contains(&format!(
                "{}:{}: attention: vrrp_instance:",
                s.display(),
                n.at.line
            ));
            assert!(
                in_output || reported,
                "{}: vrrp_instance {name} at line {} neither converted nor reported\n{stderr}",
                s.display(),
                n.at.line
            );
            converted += usize::from(in_output);
        }
        // Every note names its place.
        for line in stderr
            .lines()
            .filter(|l| l.contains(": attention: ") || l.contains(": note: "))
        {
            assert!(
                line.starts_with(&format!("{}:", s.display())),
                "note without FILE:LINE: {line}"
            );
        }
        assert!(
            stderr
                .lines()
                .last()
                .unwrap_or("")
                .starts_with("converted "),
            "{stderr}"
        );
    }
    eprintln!(
        "{} samples, {instances} vrrp_instance blocks, {converted} converted",
        samples.len()
    );
    assert!(converted > 0);
}

#[test]
fn a_config_using_every_carried_keyword_converts_completely() {
    let out = run_import(&fixture("complete.conf"), "lb1");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (ok, report) = check(&stdout, "complete");
    assert!(ok, "{report}\n{stdout}");
    assert!(
        report.contains("OK: 2 instance(s), 1 sync group(s)"),
        "{report}"
    );
    let c = vipd::config::parse(&stdout, "out.toml").expect("valid");
    let web = &c.instances[0];
    // @lb1 priority 150, +10 from the positive weight of chk_http.
    assert_eq!(web.priority, 160);
    assert_eq!(web.tracks.len(), 5);
    assert_eq!(c.instances[1].name, "api"); // from the included conf.d/api.conf
    assert_eq!(c.startup_delay, std::time::Duration::from_secs(10));
    assert_eq!(
        web.notify.stop.as_ref().map(|s| s[1].as_str()),
        Some("stop")
    );
    // Notes carry the place of the keyword, also in included files.
    assert!(
        stderr.contains(&format!(
            "{}:41: note: state:",
            fixture("complete.conf").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("complete"), "{stderr}");

    // The other host's lines.
    let out = run_import(&fixture("complete.conf"), "lb2");
    let c = vipd::config::parse(&text(&out.stdout), "out.toml").expect("valid");
    assert_eq!(
        (c.instances[0].priority, c.instances[1].priority),
        (110, 150)
    );
}

#[test]
fn keywords_without_an_equivalent_need_attention_with_their_place() {
    let f = fixture("attention.conf");
    let out = run_import(&f, "lb1");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (ok, report) = check(&stdout, "attention");
    assert!(ok, "{report}");
    let at = |line: usize, what: &str| {
        let prefix = format!("{}:{line}: attention: {what}:", f.display());
        assert!(
            stderr.lines().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} in\n{stderr}"
        );
    };
    at(3, "vrrp_mcast_group4");
    at(11, "authentication");
    // use_vmac converts (it needs no attention any more).
    assert!(stdout.contains("virtual-mac = true"), "{stdout}");
    at(16, "notify");
    at(22, "virtual_server");
    assert!(stderr.contains("dropped by RFC 5798"), "{stderr}");
    assert!(stderr.contains("not vipd's job"), "{stderr}");
    assert!(
        stderr.contains("vipd has no initial state; it elects by priority"),
        "{stderr}"
    );
    assert!(stderr.contains("needs attention (exit 1)"), "{stderr}");
}

#[test]
fn a_broken_file_fails_with_its_place() {
    let f = fixture("broken.conf");
    let out = run_import(&f, "lb1");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: {}:1: this '{{' is never closed", f.display())
    );
    let out = run_import(Path::new("/nonexistent/keepalived.conf"), "lb1");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/keepalived.conf"));
}

#[test]
fn the_daemon_flags_are_unchanged() {
    // `vipd --check -c FILE` still validates; a bad file still exits 2.
    let (ok, report) = check("[[instance]]\nname = \"x\"\n", "bad");
    assert!(!ok, "{report}");
    let out = Command::new(vipd()).arg("--help").output().expect("help");
    let help = text(&out.stdout);
    assert!(
        help.contains("import-keepalived") && help.contains("--check"),
        "{help}"
    );
}
