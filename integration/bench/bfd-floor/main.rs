//! The kernel's floor for the idle CPU of one BFD session (`integration/bench/bfd-cpu.sh`):
//! what sending and receiving one 24-byte UDP datagram per tick costs in the bench's own
//! topology (two namespaces, veths, a bridge), with nothing of vipd around it.
//!
//! ```text
//!   every 1/pps s (absolute deadlines, SCHED_FIFO like vipd's engine thread):
//!     sleep (nanosleep, an hrtimer) -> one sendto(peer:3784) -> one non-blocking recvfrom
//! ```
//!
//! One thread, one socket bound to `LOCAL:3784` (TTL 255, as BFD), nothing allocated per
//! tick. Each side reads at most one datagram per tick, as many as the peer sends on
//! average (the bench counts the packets on the switch, which shows that the rate held).
//!
//! `bfd-floor LOCAL PEER PPS` (run inside the namespace of LOCAL; runs until killed).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The BFD control port (RFC 5881 §4): the switch's packet counter matches it.
const PORT: u16 = 3784;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, local, peer, pps] => local
            .parse::<IpAddr>()
            .ok()
            .zip(peer.parse::<IpAddr>().ok())
            .zip(
                pps.parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0 && *p <= 100_000.0),
            ),
        _ => None,
    };
    let Some(((local, peer), pps)) = parsed else {
        eprintln!("usage: bfd-floor LOCAL-IP PEER-IP PACKETS-PER-SECOND");
        std::process::exit(2);
    };
    if let Err(e) = run(local, peer, pps) {
        eprintln!("bfd-floor: {e}");
        std::process::exit(1);
    }
}

fn run(local: IpAddr, peer: IpAddr, pps: f64) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: pid 0 is the calling thread; `param` is initialised and outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        eprintln!(
            "bfd-floor: normal priority ({})",
            std::io::Error::last_os_error()
        );
    }
    let sock = UdpSocket::bind(SocketAddr::new(local, PORT))?;
    sock.set_nonblocking(true)?;
    if local.is_ipv4() {
        sock.set_ttl(255)?;
    }
    let to = SocketAddr::new(peer, PORT);
    let period = Duration::from_secs_f64(1.0 / pps);
    // A BFD Control packet's size (RFC 5880 §4.1, no authentication).
    let mut packet = [0u8; 24];
    packet[0] = 0x20;
    packet[3] = 24;
    let mut buf = [0u8; 64];
    let mut next = Instant::now() + period;
    loop {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += period;
        // Errors (the peer not up yet: ICMP unreachable; nothing queued: EAGAIN) are
        // part of the path being measured, not a reason to stop.
        let _ = sock.send_to(&packet, to);
        let _ = sock.recv_from(&mut buf);
    }
}
