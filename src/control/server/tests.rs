use super::*;

#[test]
fn proc_groups_of_self_match_getgroups() {
    let mine: HashSet<u32> = proc_groups(std::process::id() as i32)
        .expect("own /proc status")
        .into_iter()
        .collect();
    let want: HashSet<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    assert_eq!(mine, want);
}

#[tokio::test]
async fn read_request_enforces_the_limit() {
    let data: &[u8] = b"0123456789\n";
    let mut r = BufReader::new(data);
    assert!(matches!(
        read_request(&mut r, 10).await,
        Err(ReadError::TooLong)
    ));
    let mut r = BufReader::new(data);
    assert_eq!(read_request(&mut r, 11).await.ok(), Some(data.to_vec()));
    let mut r = BufReader::new(&b"abc"[..]);
    assert_eq!(read_request(&mut r, 11).await.ok(), Some(b"abc".to_vec()));
    let mut r = BufReader::new(&b""[..]);
    assert!(matches!(
        read_request(&mut r, 11).await,
        Err(ReadError::Empty)
    ));
}
