//! The command line: options, commands and their help, and what each command does.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use asyncstatus_client::{
    job_id_of, Client, Credentials, Error, JobStatus, ListFilter, WaitOutcome,
};
use clap::{Parser, Subcommand, ValueEnum};

use crate::exit;
use crate::output::print_jobs;

const ABOUT: &str = "Wait for an asyncstatus (or Traffic Ops) job, or run any command as one";

const LONG_ABOUT: &str = "\
Wait for an asyncstatus (or Traffic Ops) job, or run any command as one.

The service is named by --url or ASYNCSTATUS_URL (its base URL, like https://to.example.net).
Credentials come from the environment, never from options (they would show in `ps`):
ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD (logs in), or ASYNCSTATUS_TOKEN (the access_token
cookie of an earlier login, as `asyncstatus login` prints it, sent as a Bearer token; used when
ASYNCSTATUS_PASSWORD is not set).

Exit status: 0 success (wait: the job SUCCEEDED), 1 the job FAILED, 2 a usage error, a refused
TLS certificate or a 4xx answer, 3 the service stayed unreachable through the retries (or answered 5xx), 124 the
timeout passed; run exits with its command's status.";

const EXAMPLES: &str = "\
Examples:
  export ASYNCSTATUS_URL=https://status.example.net ASYNCSTATUS_USER=builder
  export ASYNCSTATUS_PASSWORD=…
  asyncstatus run --message 'nightly backup' -- /usr/local/bin/backup --all
  asyncstatus wait /api/4.0/async_status/42 --timeout 30m
  asyncstatus list --status PENDING";

#[derive(Debug, Parser)]
#[command(name = "asyncstatus", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// The service's base URL, like https://to.example.net (without /api/…)
    #[arg(long, env = "ASYNCSTATUS_URL", global = true, value_name = "URL")]
    url: Option<String>,

    /// The API version of the paths (/api/VERSION/…)
    #[arg(
        long,
        env = "ASYNCSTATUS_API_VERSION",
        default_value = "4.0",
        global = true,
        value_name = "VERSION"
    )]
    api_version: String,

    /// Trust the PEM certificate(s) in FILE besides the system's roots
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// Accept any TLS certificate (self-signed test services only)
    #[arg(long, global = true)]
    insecure: bool,

    /// Print jobs as JSON (an object, or an array for list) instead of a table
    #[arg(long, global = true)]
    json: bool,

    /// How long a request is retried while the service is unreachable or answers 502/503/504
    #[arg(long, global = true, default_value = "30s", value_parser = duration, value_name = "DURATION")]
    retry_for: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Wait for a job to finish; exit 0 if it SUCCEEDED, 1 if it FAILED, 124 on timeout
    #[command(
        long_about = "Wait for a job to finish, and print it.\n\n\
            Asks the service to hold the answer until the job finishes (Prefer: wait); a service \
            that does not (Traffic Ops, or jobs.max_wait = 0s) is polled as its Retry-After says, \
            every 5 s without one. Exit status: 0 if the job SUCCEEDED, 1 if it FAILED, 124 when \
            the timeout passes first, 2 for a bad id or a 4xx answer (no such job, no \
            permission), 3 when the service stays unreachable.",
        after_help = "Example:\n  asyncstatus wait /api/4.0/async_status/42 --timeout 30m && deploy-next-step"
    )]
    Wait {
        /// The job: its id (42), its Location (/api/4.0/async_status/42), or a URL ending so
        #[arg(value_name = "ID|LOCATION", value_parser = job_id)]
        job: i64,
        /// Give up after this long (exit 124)
        #[arg(long, default_value = "1h", value_parser = positive_duration, value_name = "DURATION")]
        timeout: Duration,
    },

    /// Run COMMAND as a job: create it, heartbeat while it runs, finish it with its outcome
    #[command(
        long_about = "Run COMMAND as a job.\n\n\
            Creates a job (printing its Location on standard error), runs COMMAND with standard \
            input, output and error passed through, and every --heartbeat sends the command's \
            last output line as the job's message. Then finishes the job: SUCCEEDED on exit 0, \
            FAILED with `exit N: <last lines, at most 4 KiB>` otherwise, or `killed by signal S`. \
            SIGINT and SIGTERM sent to asyncstatus are passed on to COMMAND; with --timeout, \
            COMMAND gets SIGTERM when it passes (SIGKILL 10 s later) and the exit status is 124.\n\n\
            The exit status is COMMAND's (128+S when killed by signal S). If the service is \
            unreachable while COMMAND runs, COMMAND keeps running: heartbeats are tried again at \
            the next interval, and the final update is retried for --finish-retry-for; one that \
            cannot be delivered is reported on standard error and the exit status is non-zero \
            (3 if COMMAND succeeded). If the job cannot be created, COMMAND is not run.",
        after_help = "Examples:\n  \
            asyncstatus run --message 'nightly backup' -- /usr/local/bin/backup --all\n  \
            # crontab: 15 2 * * *  . /etc/asyncstatus.env; asyncstatus run --heartbeat 1m -- /usr/local/bin/backup"
    )]
    Run {
        /// The job's first message (default: `running COMMAND ARGS…`)
        #[arg(long, value_name = "M")]
        message: Option<String>,
        /// How often the last output line is sent as the job's message
        #[arg(long, default_value = "30s", value_parser = heartbeat_duration, value_name = "DURATION")]
        heartbeat: Duration,
        /// Stop COMMAND (SIGTERM, then SIGKILL after 10 s) when it runs longer; exit 124
        #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// How long the final update is retried while the service is unreachable
        #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
        finish_retry_for: Duration,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },

    /// Print one job
    #[command(after_help = "Example:\n  asyncstatus get 42 --json | jq -r .status")]
    Get {
        /// The job: its id or its Location
        #[arg(value_name = "ID|LOCATION", value_parser = job_id)]
        job: i64,
    },

    /// List jobs, oldest first
    #[command(after_help = "Example:\n  asyncstatus list --status PENDING --limit 20")]
    List {
        /// Only jobs of this status: PENDING, SUCCEEDED or FAILED
        #[arg(long, value_parser = status, value_name = "S")]
        status: Option<JobStatus>,
        /// At most N jobs (the service caps this at its jobs.max_page)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        limit: Option<u32>,
    },

    /// Create a PENDING job; prints it (its Location on standard error)
    #[command(
        after_help = "Example:\n  id=$(asyncstatus create 'Refreshing DNS' --json | jq .id)\n  \
            … work …\n  asyncstatus finish \"$id\" succeeded 'DNS refreshed'"
    )]
    Create {
        /// The job's message
        message: Option<String>,
    },

    /// Finish a job as SUCCEEDED or FAILED (409, exit 2, if it already finished)
    #[command(
        after_help = "Example:\n  asyncstatus finish 42 failed 'server edge-7 did not answer'"
    )]
    Finish {
        /// The job: its id or its Location
        #[arg(value_name = "ID|LOCATION", value_parser = job_id)]
        job: i64,
        /// How it ended
        outcome: Outcome,
        /// The job's final message (default: the stored one is kept)
        message: Option<String>,
    },

    /// Log in with ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD and print the token
    #[command(
        long_about = "Log in with ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD and print the session's \
            token on standard output, for ASYNCSTATUS_TOKEN: later commands then skip the login \
            (the token lives the service's auth.token_ttl, 6 h by default).",
        after_help = "Example:\n  export ASYNCSTATUS_TOKEN=$(asyncstatus login) && unset ASYNCSTATUS_PASSWORD"
    )]
    Login,

    /// Revoke the session of ASYNCSTATUS_TOKEN: the token (and every one refreshed from it) stops working
    #[command(after_help = "Example:\n  asyncstatus logout && unset ASYNCSTATUS_TOKEN")]
    Logout,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Outcome {
    Succeeded,
    Failed,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 30s, 5m or 1h ({e})"))
}

fn job_id(text: &str) -> Result<i64, String> {
    job_id_of(text)
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

fn heartbeat_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d < Duration::from_millis(100) => Err("must be at least 100ms".into()),
        d => Ok(d),
    }
}

fn status(text: &str) -> Result<JobStatus, String> {
    text.to_ascii_uppercase()
        .parse()
        .map_err(|e: asyncstatus_domain::UnknownStatus| e.to_string())
}

/// Prints `error` and gives its exit status.
fn fail(error: &Error) -> u8 {
    eprintln!("asyncstatus: error: {error}");
    exit::of(error)
}

fn usage(message: &str) -> u8 {
    eprintln!("asyncstatus: error: {message}");
    exit::USAGE
}

fn credentials() -> Result<Credentials, String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (
        var("ASYNCSTATUS_TOKEN"),
        var("ASYNCSTATUS_USER"),
        var("ASYNCSTATUS_PASSWORD"),
    ) {
        (_, Some(user), Some(password)) => Ok(Credentials::Password { user, password }),
        (Some(token), _, None) => Ok(Credentials::Token(token)),
        (None, Some(_), None) => {
            Err("ASYNCSTATUS_USER is set but ASYNCSTATUS_PASSWORD is not".into())
        }
        (_, None, Some(_)) => Err("ASYNCSTATUS_PASSWORD is set but ASYNCSTATUS_USER is not".into()),
        (None, None, None) => Err(
            "no credentials: set ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD, or ASYNCSTATUS_TOKEN"
                .into(),
        ),
    }
}

fn client(cli: &Cli) -> Result<Client, u8> {
    let Some(url) = cli.url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Err(usage(
            "no service URL: give --url URL or set ASYNCSTATUS_URL (like https://to.example.net)",
        ));
    };
    let credentials = credentials().map_err(|e| usage(&e))?;
    let mut builder = Client::builder(url)
        .api_version(cli.api_version.clone())
        .credentials(credentials)
        .insecure(cli.insecure)
        .retry_for(cli.retry_for)
        .on_retry(|error, pause| {
            eprintln!(
                "asyncstatus: {error} (retrying in {})",
                humantime::format_duration(pause)
            );
        });
    if let Some(path) = &cli.ca_cert {
        builder = builder.ca_cert(path);
    }
    builder.build().map_err(|e| fail(&e))
}

/// Runs the command line; the exit status.
pub fn execute(cli: Cli) -> u8 {
    let client = match client(&cli) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let json = cli.json;
    match cli.command {
        Command::Wait { job: id, timeout } => match client.wait(id, timeout) {
            Ok(WaitOutcome::Finished(job)) => {
                print_jobs(std::slice::from_ref(&job), json, true);
                match job.status {
                    JobStatus::Succeeded => 0,
                    _ => exit::FAILED,
                }
            }
            Ok(WaitOutcome::TimedOut(job)) => {
                print_jobs(std::slice::from_ref(&job), json, true);
                eprintln!(
                    "asyncstatus: timed out after {} waiting for job {id} (still {})",
                    humantime::format_duration(timeout),
                    job.status
                );
                exit::TIMEOUT
            }
            Err(e) => fail(&e),
        },
        Command::Get { job: id } => match client.get(id) {
            Ok(job) => {
                print_jobs(&[job], json, true);
                0
            }
            Err(e) => fail(&e),
        },
        Command::List { status, limit } => match client.list(&ListFilter { status, limit }) {
            Ok(jobs) => {
                print_jobs(&jobs, json, false);
                0
            }
            Err(e) => fail(&e),
        },
        Command::Create { message } => match client.create(message.as_deref()) {
            Ok(created) => {
                eprintln!(
                    "asyncstatus: job {} created: {}",
                    created.job.id, created.location
                );
                print_jobs(&[created.job], json, true);
                0
            }
            Err(e) => fail(&e),
        },
        Command::Finish {
            job: id,
            outcome,
            message,
        } => {
            let status = match outcome {
                Outcome::Succeeded => JobStatus::Succeeded,
                Outcome::Failed => JobStatus::Failed,
            };
            match client.update(id, status, message.as_deref()) {
                Ok(job) => {
                    print_jobs(&[job], json, true);
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Login => {
            if !matches!(credentials(), Ok(Credentials::Password { .. })) {
                return usage("login needs ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD");
            }
            match client.token() {
                Ok(Some(token)) => {
                    println!("{token}");
                    0
                }
                Ok(None) => usage("no credentials to log in with"),
                Err(e) => fail(&e),
            }
        }
        Command::Logout => {
            if !matches!(credentials(), Ok(Credentials::Token(_))) {
                return usage("logout revokes the session of ASYNCSTATUS_TOKEN, which is not set");
            }
            match client.logout() {
                Ok(()) => {
                    eprintln!("asyncstatus: logged out: the token no longer works");
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Run {
            message,
            heartbeat,
            timeout,
            finish_retry_for,
            command,
        } => crate::run::run(
            &client,
            crate::run::RunOptions {
                message,
                heartbeat,
                timeout,
                finish_retry_for,
                command,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        for command in Cli::command().get_subcommands() {
            let help = command.get_after_help().map(|h| h.to_string());
            assert!(
                help.is_some_and(|h| h.contains("asyncstatus ")),
                "{} has no example",
                command.get_name()
            );
        }
    }
}
