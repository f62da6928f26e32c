//! vipctl: the operator's command for vipd.
//!
//! Exit status: 0 on success, 1 when vipd refused or could not be reached, 2 for a usage
//! error. Every failure prints exactly one line, `vipctl: <reason>`, on stderr.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use vipd::control::client::{self, DEFAULT_SOCKET, DEFAULT_TIMEOUT};
use vipd::control::message::{
    Event, InstanceStatus, Request, Response, Status, MAX_OPERATOR_PRIORITY, MIN_OPERATOR_PRIORITY,
};

/// Operate vipd: status, priority overrides, maintenance, reload, events.
#[derive(Debug, Parser)]
#[command(name = "vipctl", version)]
struct Cli {
    /// Control socket of vipd.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show every instance: state, priority, VIPs, master, tracks.
    Status {
        /// Print one JSON object {"instances":[...]} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Override or restore an instance's priority.
    #[command(subcommand)]
    Priority(PriorityCmd),
    /// Drain an instance (hand over gracefully and stay backup) or undrain it.
    Maintenance {
        /// `on` to drain, `off` to undrain.
        #[arg(value_enum)]
        mode: OnOff,
        /// Instance name.
        instance: String,
    },
    /// Reload the configuration file.
    Reload,
    /// Follow state changes until interrupted.
    Events {
        /// Print the raw JSON event lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PriorityCmd {
    /// Set a priority override (1..254).
    Set {
        /// Instance name.
        instance: String,
        /// The new priority, 1..254.
        #[arg(value_parser = parse_priority, allow_negative_numbers = true)]
        value: u8,
    },
    /// Remove the override: back to the configured priority.
    Clear {
        /// Instance name.
        instance: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn parse_priority(s: &str) -> Result<u8, String> {
    let range = format!(
        "priority must be a whole number from {MIN_OPERATOR_PRIORITY} to {MAX_OPERATOR_PRIORITY}"
    );
    match s.trim().parse::<i64>() {
        Ok(v) => match u8::try_from(v) {
            Ok(v) if (MIN_OPERATOR_PRIORITY..=MAX_OPERATOR_PRIORITY).contains(&v) => Ok(v),
            _ => Err(format!("{range} (0 and 255 are reserved)")),
        },
        Err(_) => Err(range),
    }
}

/// One failure line (without the `vipctl: ` prefix).
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("vipctl: {first} (see 'vipctl --help')");
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("vipctl: {}", message.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let request = match &cli.command {
        Command::Status { .. } => Request::Status,
        Command::Priority(PriorityCmd::Set { instance, value }) => Request::PrioritySet {
            instance: instance.clone(),
            value: *value,
        },
        Command::Priority(PriorityCmd::Clear { instance }) => Request::PriorityClear {
            instance: instance.clone(),
        },
        Command::Maintenance { mode, instance } => Request::Maintenance {
            instance: instance.clone(),
            on: matches!(mode, OnOff::On),
        },
        Command::Reload => Request::Reload,
        Command::Events { json } => return events(cli, *json),
    };
    let response = client::call(&cli.socket, &request)?;
    let mut out = io::stdout().lock();
    let written = match (response, &cli.command) {
        (Response::Error { message }, _) => return Err(Failure(message)),
        (Response::Status(status), Command::Status { json: true }) => {
            writeln!(out, "{}", serde_json::to_string(&status)?)
        }
        (Response::Status(status), Command::Status { json: false }) => {
            out.write_all(render_status(&status, now_unix_ms()).as_bytes())
        }
        (Response::Ok { message }, cmd) if !matches!(cmd, Command::Status { .. }) => {
            writeln!(out, "{message}")
        }
        (other, _) => {
            return Err(Failure(format!(
                "unexpected answer from vipd to {}: {}",
                request.command(),
                other.to_line()
            )))
        }
    };
    finish_output(written.and_then(|()| out.flush()))
}

/// A closed stdout (`vipctl status | head -1`) is not an error worth a message.
fn finish_output(r: io::Result<()>) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure(format!("cannot write output: {e}"))),
    }
}

fn events(cli: &Cli, json: bool) -> Result<(), Failure> {
    let stream = client::follow_events(&cli.socket, DEFAULT_TIMEOUT)?;
    let mut out = io::stdout().lock();
    for item in stream {
        let line = match item? {
            Response::Event(e) if json => Response::Event(e).to_line(),
            Response::Event(e) => render_event(&e),
            Response::Lagged { missed } if json => Response::Lagged { missed }.to_line(),
            Response::Lagged { missed } => {
                format!("(missed {missed} events: output was read too slowly)")
            }
            Response::Error { message } => return Err(Failure(message)),
            other => {
                return Err(Failure(format!(
                    "unexpected answer from vipd on the event stream: {}",
                    other.to_line()
                )))
            }
        };
        let r = writeln!(out, "{line}").and_then(|()| out.flush());
        if let Err(e) = r {
            return finish_output(Err(e));
        }
    }
    Err(Failure("vipd closed the event stream".into()))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn render_event(e: &Event) -> String {
    format!(
        "{} {}: {} -> {} ({})",
        format_utc(e.at_unix_ms),
        e.instance,
        e.from.to_uppercase(),
        e.to.to_uppercase(),
        e.reason
    )
}

/// `2024-05-01T12:34:56.789Z` from Unix milliseconds (proleptic Gregorian, UTC).
fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `3.2s`, `4m05s`, `2h03m`, `3d04h`.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600)
    }
}

fn in_state(i: &InstanceStatus, now_ms: u64) -> String {
    let ms = i
        .in_state_ms
        .or_else(|| i.since_unix_ms.map(|since| now_ms.saturating_sub(since)));
    ms.map(|ms| format_duration(Duration::from_millis(ms)))
        .unwrap_or_else(|| "-".into())
}

fn render_status(status: &Status, now_ms: u64) -> String {
    if status.instances.is_empty() {
        return "no instances configured\n".into();
    }
    let header = [
        "INSTANCE",
        "STATE",
        "PRIO EFF/BASE",
        "OVERRIDE",
        "MAINT",
        "VIPS",
        "MASTER",
        "IN STATE",
    ];
    let rows: Vec<[String; 8]> = status
        .instances
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                match &i.arbiter {
                    Some(a) if a.master_elect => "MASTER-ELECT".to_owned(),
                    _ => i.state.to_uppercase(),
                },
                format!("{}/{}", i.priority, i.base_priority),
                i.priority_override
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                if i.maintenance { "on" } else { "off" }.into(),
                if i.vips.is_empty() {
                    "-".into()
                } else {
                    i.vips.join(",")
                },
                i.master.clone().unwrap_or_else(|| "-".into()),
                in_state(i, now_ms),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (n, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.map(String::from));
    for (i, row) in status.instances.iter().zip(&rows) {
        out.push_str(&line(row));
        if let Some(fault) = &i.fault {
            out.push_str(&format!("  fault: {fault}\n"));
        }
        if let Some(t) = &i.last_transition {
            let ago = format_duration(Duration::from_millis(now_ms.saturating_sub(t.at_unix_ms)));
            out.push_str(&format!(
                "  last transition: {} -> {} {ago} ago ({})\n",
                t.from.to_uppercase(),
                t.to.to_uppercase(),
                t.reason
            ));
        }
        for t in &i.tracks {
            let mut s = format!(
                "  track {}: {}",
                t.name,
                if t.healthy { "healthy" } else { "FAILING" }
            );
            if t.weight != 0 {
                s.push_str(&format!(", weight {:+}", t.weight));
            } else {
                s.push_str(", faults instance");
            }
            if let Some(ms) = t.last_latency_ms {
                s.push_str(&format!(", {ms} ms"));
            }
            if let Some(d) = &t.detail {
                s.push_str(&format!(" ({d})"));
            }
            out.push_str(&s);
            out.push('\n');
        }
        if let Some(g) = &i.sync_group {
            out.push_str(&format!("  sync group: {g}\n"));
        }
        for b in &i.bfd {
            let detect = b
                .detect_ms
                .map_or_else(|| "-".to_owned(), |d| format!("{d} ms"));
            out.push_str(&format!(
                "  bfd {}: {}, detect {detect}\n",
                b.peer,
                b.state.to_uppercase()
            ));
        }
        if let Some(a) = &i.arbiter {
            let mut s = format!(
                "  arbiter: key {}, {}, etcd {}",
                a.key,
                match a.fencing_token {
                    Some(t) if a.holder => format!("holder (fencing token {t})"),
                    _ => "not holder".to_owned(),
                },
                if a.reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                }
            );
            if let Some(o) = &a.other_holder {
                s.push_str(&format!(", held by {o}"));
            }
            if let Some(d) = &a.detail {
                if !a.holder {
                    s.push_str(&format!(" ({d})"));
                }
            }
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_utc(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn priority_parsing() {
        assert_eq!(parse_priority("1"), Ok(1));
        assert_eq!(parse_priority("254"), Ok(254));
        for bad in ["0", "255", "-3", "1000", "abc", ""] {
            assert!(parse_priority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(3200)), "3.2s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h03m");
    }
}
