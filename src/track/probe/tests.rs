use super::*;

#[test]
fn url_parse_plain() {
    let u = HttpUrl::parse("http://127.0.0.1:8080/health?x=1#frag").expect("valid");
    assert_eq!(u.host, "127.0.0.1");
    assert_eq!(u.port, 8080);
    assert_eq!(u.path, "/health?x=1");
    assert_eq!(u.host_header, "127.0.0.1:8080");
}

#[test]
fn url_parse_defaults() {
    let u = HttpUrl::parse("HTTP://example.test").expect("valid");
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("example.test", 80, "/")
    );
    let u = HttpUrl::parse("http://example.test?q").expect("valid");
    assert_eq!(u.path, "/?q");
}

#[test]
fn url_parse_ipv6() {
    let u = HttpUrl::parse("http://[2001:db8::1]:81/h").expect("valid");
    assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 81));
    assert_eq!(u.host_header, "[2001:db8::1]:81");
    let u = HttpUrl::parse("http://[::1]/").expect("valid");
    assert_eq!(u.port, 80);
}

#[test]
fn url_parse_rejects() {
    type Is = fn(&UrlError) -> bool;
    let cases: &[(&str, Is)] = &[
        ("https://192.0.2.1/", |e| matches!(e, UrlError::Scheme(_))),
        ("ftp://x/", |e| matches!(e, UrlError::Scheme(_))),
        ("http:/", |e| matches!(e, UrlError::Scheme(_))),
        ("http://", |e| matches!(e, UrlError::NoHost(_))),
        ("http://:80/", |e| matches!(e, UrlError::NoHost(_))),
        ("http://u:p@h/", |e| matches!(e, UrlError::UserInfo(_))),
        ("http://h:0/", |e| matches!(e, UrlError::Port(_))),
        ("http://h:99999/", |e| matches!(e, UrlError::Port(_))),
        ("http://h:+80/", |e| matches!(e, UrlError::Port(_))),
        ("http://h:/", |e| matches!(e, UrlError::Port(_))),
        ("http://[::1/", |e| matches!(e, UrlError::Ipv6(_))),
        ("http://[zz]/", |e| matches!(e, UrlError::Ipv6(_))),
        ("http://[::1]x/", |e| matches!(e, UrlError::Ipv6(_))),
        ("http://h/a b", |e| matches!(e, UrlError::Characters(_))),
        ("http://h/a\r\nX: y", |e| {
            matches!(e, UrlError::Characters(_))
        }),
    ];
    for (url, ok) in cases {
        match HttpUrl::parse(url) {
            Err(e) => assert!(ok(&e), "{url}: {e:?}"),
            Ok(u) => panic!("{url} accepted as {u:?}"),
        }
    }
}

#[test]
fn status_line_parsing() {
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK").ok(), Some(200));
    assert_eq!(parse_status_line(b"HTTP/1.0 503").ok(), Some(503));
    assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
    assert!(parse_status_line(b"HTTP/1.1 20 OK").is_err());
    assert!(parse_status_line(b"HTTP/1.1 2000 OK").is_err());
    assert!(parse_status_line(b"HTTP/1.1 +20 OK").is_err());
    assert!(parse_status_line(b"\xff\xfe").is_err());
    assert!(parse_status_line(b"").is_err());
}

#[test]
fn status_ranges() {
    assert!(status_accepted(204, &[]));
    assert!(!status_accepted(301, &[]));
    assert!(status_accepted(301, &[(200, 299), (301, 302)]));
    assert!(!status_accepted(303, &[(200, 299), (301, 302)]));
}

#[test]
fn interface_names_are_validated_before_touching_sysfs() {
    for bad in ["", "..", ".", "a/b", "../../etc", "0123456789abcdef"] {
        assert!(
            matches!(interface(bad), Err(ProbeError::BadInterfaceName(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn value_file_text() {
    assert_eq!(parse_value("0\n"), Some(0));
    assert_eq!(parse_value("  42 \n"), Some(42));
    assert_eq!(parse_value("-3"), Some(-3));
    assert_eq!(parse_value("+7"), Some(7));
    for bad in [
        "",
        " \n",
        "abc",
        "4 2",
        "1.5",
        "0x10",
        "-",
        "12abc",
        "99999999999999999999",
    ] {
        assert_eq!(parse_value(bad), None, "{bad:?}");
    }
}

#[test]
fn value_file_read() {
    let dir = std::env::temp_dir().join(format!("vipd-valuefile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("v");
    std::fs::write(&f, "5\n").expect("write");
    assert_eq!(read_value_file(&f).expect("reads"), 5);
    std::fs::write(&f, "down\n").expect("write");
    assert!(matches!(
        read_value_file(&f),
        Err(ProbeError::NotANumber { .. })
    ));
    assert!(matches!(
        read_value_file(&dir.join("missing")),
        Err(ProbeError::FileRead { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
