//! FRR daemons as test peers (zebra, bfdd, vrrpd from Debian's `frr`): run as user frr,
//! each with its sockets, pid file and config in one run directory per host, the vty TCP
//! port off. The packaged service is never used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{run_cmd, Proc};
use super::topology::Topology;

/// The run directory of the FRR daemons on `host` (created, owned by user frr).
pub fn frr_dir(topo: &Topology, host: &str) -> PathBuf {
    let dir = topo.path(&format!("frr-{host}"));
    std::fs::create_dir_all(&dir).expect("frr dir");
    let out = run_cmd(
        &["chown", "frr:frr", &dir.to_string_lossy()],
        None,
        Duration::from_secs(10),
    );
    assert!(out.ok(), "chown frr: {}", out.stderr);
    dir
}

/// Prepares the run directory of `host` for zebra and `daemon` (their configs:
/// `daemon_conf` for `DAEMON.conf`), hands it to user frr, and starts zebra; returns
/// the directory and zebra once its zserv socket is there.
pub fn start_zebra_for(
    topo: &Topology,
    host: &str,
    daemon: &str,
    daemon_conf: &str,
) -> (PathBuf, Proc) {
    let dir = frr_dir(topo, host);
    std::fs::write(dir.join("zebra.conf"), "hostname zebra\n").expect("zebra.conf");
    std::fs::write(dir.join(format!("{daemon}.conf")), daemon_conf).expect("daemon conf");
    let out = run_cmd(
        &["chown", "-R", "frr:frr", &dir.to_string_lossy()],
        None,
        Duration::from_secs(10),
    );
    assert!(out.ok(), "chown frr: {}", out.stderr);
    let zebra = frr_daemon(topo, host, &dir, "zebra");
    assert!(
        super::wait_until(Duration::from_secs(15), Duration::from_millis(50), || dir
            .join("zserv.api")
            .exists()),
        "zebra did not start: {}",
        zebra.log()
    );
    (dir, zebra)
}

/// Starts `/usr/lib/frr/DAEMON` on `host` with its config `DIR/DAEMON.conf`, its pid file,
/// vty socket and zebra socket in `dir`.
pub fn frr_daemon(topo: &Topology, host: &str, dir: &Path, daemon: &str) -> Proc {
    frr_daemon_with(topo, host, dir, daemon, &[])
}

/// [`frr_daemon`] with more arguments (bfdd's `--bfdctl SOCKET`).
pub fn frr_daemon_with(
    topo: &Topology,
    host: &str,
    dir: &Path,
    daemon: &str,
    extra: &[&str],
) -> Proc {
    let d = dir.to_string_lossy().into_owned();
    let bin = format!("/usr/lib/frr/{daemon}");
    let zserv = format!("{d}/zserv.api");
    let pid = format!("{d}/{daemon}.pid");
    let conf = format!("{d}/{daemon}.conf");
    let mut argv = vec![
        bin.as_str(),
        "-u",
        "frr",
        "-g",
        "frr",
        "--vty_socket",
        &d,
        "-z",
        &zserv,
        "-i",
        &pid,
        "-P",
        "0",
        "-f",
        &conf,
    ];
    argv.extend_from_slice(extra);
    topo.spawn(host, &argv, &format!("{host}-{daemon}.log"))
}
