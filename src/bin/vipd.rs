//! vipd: the virtual-IP failover daemon. Thin: flags, logging, then `daemon::run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Virtual-IP failover agent (VRRPv3, RFC 5798).
#[derive(Parser, Debug)]
#[command(name = "vipd", version, about)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, default_value = "/etc/vipd/vipd.toml")]
    config: PathBuf,
    /// Validate the configuration, print a summary and exit; nothing is applied.
    #[arg(long)]
    check: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert a keepalived configuration: vipd TOML on stdout, a report on stderr of
    /// every keyword not carried over. Exit 0 complete, 1 needs attention, 2 failed.
    ImportKeepalived {
        /// keepalived configuration file (its includes are read too).
        file: PathBuf,
        /// Host name that `@HOST` / `@^HOST` lines are matched against (keepalived's
        /// config id); default this host's short name.
        #[arg(long)]
        host: Option<String>,
    },
    /// Remove every address vipd added in this network namespace (marked `proto 86`),
    /// and no other; refused while vipd runs. The systemd unit runs it after vipd
    /// stopped (ExecStopPost), so a killed vipd leaves no VIP behind.
    Cleanup,
}

fn import_keepalived(file: &std::path::Path, host: Option<String>) -> ExitCode {
    let host = host.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
            .unwrap_or_default()
    });
    match vipd::import::import(&vipd::import::RealFiles, file, &host) {
        Ok(done) => {
            print!("{}", done.toml);
            for n in &done.notes {
                eprintln!("{n}");
            }
            eprintln!("{}", vipd::import::summary(&done));
            if done.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn cleanup() -> ExitCode {
    match vipd::daemon::cleanup() {
        Ok(removed) => {
            if removed.is_empty() {
                println!("no address of vipd's left");
            }
            for r in removed {
                println!("removed {r}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::ImportKeepalived { file, host }) => return import_keepalived(&file, host),
        Some(Command::Cleanup) => return cleanup(),
        None => {}
    }
    if cli.check {
        let (ok, report) = vipd::config::check_report(&cli.config);
        if ok {
            print!("{report}");
            return ExitCode::SUCCESS;
        }
        eprint!("{report}");
        return ExitCode::from(2);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    match vipd::daemon::run(&cli.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(vipd::daemon::DaemonError::Config(errs)) => {
            for d in &errs.0 {
                eprintln!("error: {d}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
