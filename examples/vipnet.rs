//! vipnet: the client-side view of a virtual IP, for the namespace harness.
//!
//! Two subcommands, both plain UDP over the kernel's normal stack:
//!
//! * `respond --bind VIP:PORT --name lb1` answers each datagram `seq=N` with `lb1 N`. It binds
//!   to the VIP itself (with `net.ipv4.ip_nonlocal_bind=1` / `net.ipv6.ip_nonlocal_bind=1` the
//!   bind succeeds while the address is elsewhere); the kernel delivers a datagram to the
//!   socket only while the VIP is a local address, so a responder answers exactly while its
//!   host holds the VIP. The harness self-test checks that claim.
//! * `probe --target VIP:PORT --interval 2ms --duration 5s --out FILE` sends `seq=N` every
//!   interval and writes one JSON line per request:
//!   `{"seq":N,"sent_ns":T,"reply_ns":T|null,"name":"lb1"|null}`. Times are
//!   `CLOCK_MONOTONIC` nanoseconds, the clock every network namespace shares, so a test can
//!   place its own events (a kill, a cut link) on the same axis. A reply later than `--window`
//!   after its request counts as lost.
//!
//! Both stop on SIGTERM/SIGINT (the probe still writes its file) and are bounded in time
//! (`--duration`, `--max-duration`) and count (`--count`).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde::Serialize;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Parser)]
#[command(about = "UDP responder and probe for the vipd namespace harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer each datagram with this host's name and the request's sequence number.
    Respond {
        /// Address to bind (the VIP) and port.
        #[arg(long)]
        bind: SocketAddr,
        /// Name put in each reply.
        #[arg(long)]
        name: String,
        /// Exit by itself after this long, whatever happens (a leaked responder ends).
        #[arg(long, value_parser = parse_duration, default_value = "600s")]
        max_duration: Duration,
    },
    /// Send numbered requests and record who answers, when.
    Probe(ProbeArgs),
}

/// Parses `250ms`, `2s`, `1.5s`, `500us`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 2ms, 5s"))?;
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "ns" => 1e-9,
        _ => return Err(format!("bad duration unit in {s:?}: use s, ms, us or ns")),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `CLOCK_MONOTONIC` in nanoseconds (shared by all network namespaces).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn install_signals() -> Result<(), String> {
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }.map_err(|e| format!("sigaction({sig}): {e}"))?;
    }
    Ok(())
}

/// Waits until the socket is readable or `timeout` passes (EINTR just returns).
fn wait_readable(sock: &UdpSocket, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one pollfd we own; a null sigmask leaves the mask unchanged.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

fn respond(bind: SocketAddr, name: &str, max_duration: Duration) -> Result<(), String> {
    let sock = UdpSocket::bind(bind).map_err(|e| {
        format!("bind {bind}: {e} (is net.ipv4/ipv6.ip_nonlocal_bind=1 in this namespace?)")
    })?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("set_nonblocking: {e}"))?;
    eprintln!("vipnet respond: {name} listening on {bind}");
    let deadline = mono_ns().saturating_add(max_duration.as_nanos() as u64);
    let mut buf = [0u8; 512];
    let mut answered: u64 = 0;
    while !STOP.load(Ordering::SeqCst) && mono_ns() < deadline {
        wait_readable(&sock, Duration::from_millis(200));
        // Drain what is queued; bounded by the queue itself (non-blocking).
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let req = String::from_utf8_lossy(&buf[..n]);
            let Some(seq) = req
                .strip_prefix("seq=")
                .and_then(|s| s.trim().parse::<u64>().ok())
            else {
                continue;
            };
            let reply = format!("{name} {seq}");
            // The VIP may have just left this host: a failed send is just a lost reply.
            if sock.send_to(reply.as_bytes(), from).is_ok() {
                answered += 1;
            }
        }
    }
    eprintln!("vipnet respond: {name} stopping after {answered} replies");
    Ok(())
}

#[derive(Serialize)]
struct Record {
    seq: u64,
    sent_ns: u64,
    reply_ns: Option<u64>,
    name: Option<String>,
}

// The probe's options (the variant above carries the help text).
#[derive(Args)]
struct ProbeArgs {
    /// The VIP and port to probe.
    #[arg(long)]
    target: SocketAddr,
    /// Time between requests.
    #[arg(long, value_parser = parse_duration, default_value = "2ms")]
    interval: Duration,
    /// Stop sending after this long.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    duration: Duration,
    /// Stop sending after this many requests.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// A reply later than this after its request counts as lost.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    window: Duration,
    /// Output file (JSON lines).
    #[arg(long)]
    out: std::path::PathBuf,
}

fn probe(a: ProbeArgs) -> Result<(), String> {
    if a.interval.is_zero() {
        return Err("--interval must be > 0".into());
    }
    let local: SocketAddr = if a.target.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|e| format!("{e}"))?
    } else {
        "[::]:0".parse().map_err(|e| format!("{e}"))?
    };
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("set_nonblocking: {e}"))?;
    let interval = a.interval.as_nanos() as u64;
    let window = a.window.as_nanos() as u64;
    let start = mono_ns();
    let send_until = start.saturating_add(a.duration.as_nanos() as u64);
    let max_count = a
        .count
        .min(a.duration.as_nanos() as u64 / interval + 1)
        .min(10_000_000);
    let mut records: Vec<Record> = Vec::with_capacity(max_count as usize);
    let mut next_send = start;
    let mut buf = [0u8; 512];
    let mut send_errors: u64 = 0;
    // Phase 1: send until duration/count/signal; phase 2: wait one window for late replies.
    let mut drain_until: Option<u64> = None;
    loop {
        let now = mono_ns();
        if drain_until.is_none()
            && (STOP.load(Ordering::SeqCst)
                || now >= send_until
                || records.len() as u64 >= max_count)
        {
            drain_until = Some(now.saturating_add(window));
        }
        if let Some(d) = drain_until {
            if now >= d {
                break;
            }
        } else if now >= next_send {
            let seq = records.len() as u64;
            let sent_ns = mono_ns();
            if sock
                .send_to(format!("seq={seq}").as_bytes(), a.target)
                .is_err()
            {
                // e.g. EHOSTUNREACH while ARP fails: the request is simply lost.
                send_errors += 1;
            }
            records.push(Record {
                seq,
                sent_ns,
                reply_ns: None,
                name: None,
            });
            next_send = next_send.saturating_add(interval).max(now);
        }
        let wake = drain_until.unwrap_or(next_send);
        let now = mono_ns();
        if wake > now {
            wait_readable(&sock, Duration::from_nanos(wake - now));
        }
        while let Ok((n, _from)) = sock.recv_from(&mut buf) {
            let t = mono_ns();
            let text = String::from_utf8_lossy(&buf[..n]);
            let mut parts = text.split_whitespace();
            let (Some(name), Some(seq)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(seq) = seq.parse::<usize>() else {
                continue;
            };
            if let Some(r) = records.get_mut(seq) {
                if r.reply_ns.is_none() && t.saturating_sub(r.sent_ns) <= window {
                    r.reply_ns = Some(t);
                    r.name = Some(name.to_string());
                }
            }
        }
    }
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for r in &records {
        let line = serde_json::to_string(r).map_err(|e| format!("encode: {e}"))?;
        writeln!(w, "{line}").map_err(|e| format!("{}: {e}", a.out.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", a.out.display()))?;
    let answered = records.iter().filter(|r| r.reply_ns.is_some()).count();
    eprintln!(
        "vipnet probe: {} sent, {} answered, {} send errors -> {}",
        records.len(),
        answered,
        send_errors,
        a.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = install_signals() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let res = match cli.cmd {
        Cmd::Respond {
            bind,
            name,
            max_duration,
        } => respond(bind, &name, max_duration),
        Cmd::Probe(args) => probe(args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
