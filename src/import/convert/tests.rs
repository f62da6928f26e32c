use super::*;

#[test]
fn words_split_like_a_shell() {
    assert_eq!(
        split_words("/bin/x 'a b' \"c d\" e\\ f").expect("splits"),
        vec!["/bin/x", "a b", "c d", "e f"]
    );
    assert_eq!(split_words("a 'b").map(|_| ()), None);
    assert_eq!(split_words("").expect("empty"), Vec::<String>::new());
}

#[test]
fn scripts_map_to_the_cheapest_kind() {
    assert!(matches!(script_kind("killall -0 haproxy"), ScriptKind::Process(p) if p == "haproxy"));
    assert!(matches!(script_kind("/usr/bin/pidof nginx"), ScriptKind::Process(p) if p == "nginx"));
    assert!(matches!(script_kind("pgrep -x sshd"), ScriptKind::Process(p) if p == "sshd"));
    assert!(
        matches!(script_kind("</dev/tcp/127.0.0.1/80"), ScriptKind::Tcp(a) if a == "127.0.0.1:80")
    );
    assert!(
        matches!(script_kind("bash -c '</dev/tcp/::1/443'"), ScriptKind::Tcp(a) if a == "[::1]:443")
    );
    match script_kind("/usr/local/bin/check web") {
        ScriptKind::Exec(c, None) => assert_eq!(c, vec!["/usr/local/bin/check", "web"]),
        _ => panic!("exec"),
    }
    match script_kind("nc -z 127.0.0.1 80") {
        ScriptKind::Exec(c, Some(_)) => {
            assert_eq!(c, vec!["/usr/bin/env", "nc", "-z", "127.0.0.1", "80"])
        }
        _ => panic!("env"),
    }
    match script_kind("curl -sf http://x/ || exit 1") {
        ScriptKind::Exec(c, Some(_)) => {
            assert_eq!(c[..2], ["/bin/sh".to_string(), "-c".to_string()])
        }
        _ => panic!("sh"),
    }
}

#[test]
fn durations() {
    assert_eq!(secs_to_duration("1").map(|d| d.0), Some("1s".into()));
    assert_eq!(secs_to_duration("0.5").map(|d| d.0), Some("500ms".into()));
    assert_eq!(secs_to_duration("-1"), None);
    assert_eq!(secs_to_duration("x"), None);
}

#[test]
fn names() {
    assert_eq!(vipd_name("VI_1"), "VI_1");
    assert_eq!(vipd_name("web vip#1"), "web-vip-1");
    assert_eq!(vipd_name(""), "instance");
}

#[test]
fn toml_strings_are_escaped() {
    assert_eq!(q("a\"b\\c"), "'a\"b\\c'");
    assert_eq!(q("plain"), "\"plain\"");
}
