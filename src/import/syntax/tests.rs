use super::*;

fn mem(files: &[(&str, &str)]) -> MemFiles {
    MemFiles(
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect(),
    )
}

fn parse_one(text: &str) -> Vec<Node> {
    parse(&mem(&[("/k.conf", text)]), Path::new("/k.conf"), "lb1")
        .expect("parses")
        .nodes
}

#[test]
fn blocks_nest_with_braces_on_the_same_or_the_next_line() {
    let n = parse_one("vrrp_instance VI_1 {\n state MASTER\n virtual_ipaddress\n {\n  192.0.2.1/24 dev eth0\n }\n}\n");
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].key.as_str(), n[0].args.clone()),
        ("vrrp_instance", vec!["VI_1".to_string()])
    );
    let kids = n[0].children();
    assert_eq!(kids[0].key, "state");
    assert_eq!(kids[0].at.line, 2);
    assert_eq!(kids[1].key, "virtual_ipaddress");
    let vips = kids[1].children();
    assert_eq!(vips[0].key, "192.0.2.1/24");
    assert_eq!(vips[0].args, vec!["dev", "eth0"]);
    assert_eq!(vips[0].at.line, 5);
}

#[test]
fn one_line_blocks_and_attached_braces() {
    let n = parse_one("track_script { chk_a chk_b }\ngroup{\nVI_1\n}");
    assert_eq!(n[0].children()[0].key, "chk_a");
    assert_eq!(n[0].children()[0].args, vec!["chk_b"]);
    assert_eq!(n[1].key, "group");
    assert_eq!(n[1].children()[0].key, "VI_1");
}

#[test]
fn comments_and_quotes() {
    let n = parse_one("! header\n# other\nscript \"/bin/check a#b\" # trailing\nauth_pass ab#c ! x\nnotify \"/x y\"\n");
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].args, vec!["/bin/check a#b"]);
    assert_eq!(n[1].args, vec!["ab#c"]);
    assert_eq!(n[2].args, vec!["/x y"]);
}

#[test]
fn continuation_lines() {
    let n = parse_one("script \\\n  \"/bin/x\"\nnext 1\n");
    assert_eq!(n[0].args, vec!["/bin/x"]);
    assert_eq!(n[0].at.line, 1);
    assert_eq!(n[1].at.line, 3);
}

#[test]
fn host_conditions() {
    let text = "@lb1 priority 150\n@lb2 priority 100\n@^lb1 weight 1\n@^lb2 weight 2\nplain 1\n";
    let n = parse(&mem(&[("/k.conf", text)]), Path::new("/k.conf"), "lb1")
        .expect("parses")
        .nodes;
    let got: Vec<(String, Vec<String>)> =
        n.iter().map(|n| (n.key.clone(), n.args.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("priority".to_string(), vec!["150".to_string()]),
            ("weight".to_string(), vec!["2".to_string()]),
            ("plain".to_string(), vec!["1".to_string()]),
        ]
    );
    let n = parse(&mem(&[("/k.conf", text)]), Path::new("/k.conf"), "lb2")
        .expect("parses")
        .nodes;
    assert_eq!(n[0].args, vec!["100"]);
    assert_eq!(n[1].args, vec!["1"]);
}

#[test]
fn includes_are_relative_globbed_sorted_and_located() {
    let files = mem(&[
        (
            "/etc/k/keepalived.conf",
            "global_defs {\n}\ninclude conf.d/*.conf\ninclude missing/*.conf\nlast 1\n",
        ),
        ("/etc/k/conf.d/b.conf", "vrrp_instance B {\n}\n"),
        ("/etc/k/conf.d/a.conf", "\nvrrp_instance A {\n}\n"),
        ("/etc/k/conf.d/c.txt", "ignored 1\n"),
    ]);
    let p = parse(&files, Path::new("/etc/k/keepalived.conf"), "h").expect("parses");
    let keys: Vec<String> = p
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.key, n.args.join(" ")))
        .collect();
    assert_eq!(
        keys,
        vec![
            "global_defs ",
            "vrrp_instance A",
            "vrrp_instance B",
            "last 1"
        ]
    );
    assert_eq!(p.nodes[1].at.to_string(), "/etc/k/conf.d/a.conf:2");
    assert_eq!(p.empty_includes.len(), 1);
    assert_eq!(
        p.empty_includes[0].0.to_string(),
        "/etc/k/keepalived.conf:4"
    );
}

#[test]
fn an_include_loop_is_an_error_not_a_hang() {
    let files = mem(&[("/a.conf", "include a.conf\n")]);
    let e = parse(&files, Path::new("/a.conf"), "h").expect_err("loop");
    assert!(e.message.contains("nested more than"), "{e}");
}

#[test]
fn unbalanced_braces_and_quotes_are_located() {
    let files = mem(&[("/a.conf", "a {\n b 1\n")]);
    let e = parse(&files, Path::new("/a.conf"), "h").expect_err("unclosed");
    assert_eq!(e.to_string(), "/a.conf:1: this '{' is never closed");
    let files = mem(&[("/a.conf", "a 1\n}\n")]);
    let e = parse(&files, Path::new("/a.conf"), "h").expect_err("stray");
    assert_eq!(e.to_string(), "/a.conf:2: '}' without a matching '{'");
    let files = mem(&[("/a.conf", "\n\nscript \"/x\n")]);
    let e = parse(&files, Path::new("/a.conf"), "h").expect_err("quote");
    assert_eq!(e.to_string(), "/a.conf:3: unclosed double quote");
    let files = mem(&[("/a.conf", "{\n}\n")]);
    assert!(parse(&files, Path::new("/a.conf"), "h").is_err());
    let e = parse(&mem(&[]), Path::new("/none.conf"), "h").expect_err("missing");
    assert!(e.message.starts_with("cannot read /none.conf"), "{e}");
}

#[test]
fn glob_patterns() {
    assert!(glob_match("*.conf", "a.conf"));
    assert!(!glob_match("*.conf", "a.conf.bak"));
    assert!(glob_match("a?c", "abc"));
    assert!(glob_match("[a-c]x", "bx"));
    assert!(!glob_match("[!a-c]x", "bx"));
    assert!(glob_match("*", ""));
    assert!(glob_match("/etc/*/x*", "/etc/k/x1"));
    assert!(!glob_match("a*b*c", "aXbY"));
    assert!(glob_match("a*b*c", "aXbYc"));
}
