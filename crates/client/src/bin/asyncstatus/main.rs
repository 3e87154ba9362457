//! `asyncstatus`: wait for a job, run a command as a job, and read, create and finish jobs, on
//! asyncstatus or Traffic Ops. Exit statuses: see [`exit`].

mod cli;
mod output;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ExitCode::from(cli::execute(cli))
}

/// The exit statuses every command shares (`run` exits with its command's).
pub mod exit {
    /// `wait`: the job `FAILED`.
    pub const FAILED: u8 = 1;
    /// A usage error, bad configuration, a refused TLS certificate, or a 4xx answer (not
    /// found, refused, bad input).
    pub const USAGE: u8 = 2;
    /// The service stayed unreachable (or answered 5xx, or nonsense) through the retries.
    pub const UNREACHABLE: u8 = 3;
    /// `wait`/`run`: the timeout passed (as `timeout(1)` exits).
    pub const TIMEOUT: u8 = 124;
    /// `run`: the job's cancellation was requested, and the command was stopped.
    pub const CANCELLED: u8 = 125;

    /// The exit status an error ends a command with.
    pub fn of(error: &asyncstatus_client::Error) -> u8 {
        use asyncstatus_client::Error;
        match error {
            Error::Config(_) | Error::Tls { .. } => USAGE,
            Error::Api { status, .. } if (400..500).contains(status) => USAGE,
            _ => UNREACHABLE,
        }
    }
}
