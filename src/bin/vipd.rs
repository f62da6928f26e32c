//! vipd: the virtual-IP failover daemon. Thin: flags, logging, then `daemon::run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

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

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Remove every address vipd added in this network namespace (marked `proto 86`),
    /// and no other; refused while vipd runs. The systemd unit runs it after vipd
    /// stopped (ExecStopPost), so a killed vipd leaves no VIP behind.
    Cleanup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Cleanup) = cli.command {
        return match vipd::daemon::cleanup() {
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
        };
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
