//! The command line: options, commands and their help, and what each command does.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use asyncstatus_client::{
    job_id_of, Client, Created, Credentials, Error, JobStatus, ListFilter, NewJob, WaitOutcome,
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
timeout passed; run exits with its command's status (125 when it stopped the command because
the job was cancelled).";

const EXAMPLES: &str = "\
Examples:
  export ASYNCSTATUS_URL=https://status.example.net ASYNCSTATUS_USER=builder
  export ASYNCSTATUS_PASSWORD=…
  asyncstatus run --message 'nightly backup' -- /usr/local/bin/backup --all
  asyncstatus wait /api/4.0/async_status/42 --timeout 30m
  asyncstatus list --status PENDING --kind backup
  asyncstatus cancel 42 --reason 'wrong CDN'";

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
            COMMAND gets SIGTERM when it passes (SIGKILL --grace later) and the exit status is 124; \
            the job's deadline on the service is set to --timeout + --grace + 1m, so that the \
            service fails the job if asyncstatus itself dies.\n\n\
            Output lines of the form `progress: N/M` (like `progress: 3/10`) are sent as the job's \
            progress with the next heartbeat. When a heartbeat's answer shows that someone asked \
            to cancel the job (asyncstatus cancel, POST async_status/ID/cancel), COMMAND gets \
            SIGTERM (SIGKILL --grace later) and the job is finished as FAILED with \
            `cancelled by USER: REASON: <how COMMAND ended>`; the exit status is then 125. A job \
            cancelled with --force is already FAILED: COMMAND is stopped the same way, exit 125.\n\n\
            The exit status is COMMAND's (128+S when killed by signal S). If the service is \
            unreachable while COMMAND runs, COMMAND keeps running: heartbeats are tried again at \
            the next interval, and the final update is retried for --finish-retry-for; one that \
            cannot be delivered is reported on standard error and the exit status is non-zero \
            (3 if COMMAND succeeded). If the job cannot be created, COMMAND is not run.",
        after_help = "Examples:\n  \
            asyncstatus run --message 'nightly backup' -- /usr/local/bin/backup --all\n  \
            asyncstatus run --kind backup --key nightly-backup --label host=db1 --timeout 3h -- backup --all\n  \
            # crontab: 15 2 * * *  . /etc/asyncstatus.env; asyncstatus run --heartbeat 1m -- /usr/local/bin/backup"
    )]
    Run {
        /// The job's first message (default: `running COMMAND ARGS…`)
        #[arg(long, value_name = "M")]
        message: Option<String>,
        /// How often the last output line is sent as the job's message
        #[arg(long, default_value = "30s", value_parser = heartbeat_duration, value_name = "DURATION")]
        heartbeat: Duration,
        /// What sort of job (1–64 of a-z0-9._-)
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Single-flight key: while a PENDING job with this key runs, COMMAND is not run (exit 2)
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// A label of the job, KEY=VALUE (may repeat)
        #[arg(long = "label", value_parser = label, value_name = "KEY=VALUE")]
        labels: Vec<(String, String)>,
        /// Stop COMMAND (SIGTERM, then SIGKILL after --grace) when it runs longer; exit 124
        #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// Between the SIGTERM (on --timeout or a cancel) and the SIGKILL
        #[arg(long, default_value = "10s", value_parser = duration, value_name = "DURATION")]
        grace: Duration,
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
    #[command(
        after_help = "Examples:\n  asyncstatus list --status PENDING --limit 20\n  \
            asyncstatus list --kind acme.renew --label cdn=cdn1 --json | jq -r '.[].id'"
    )]
    List {
        /// Only jobs of this status: PENDING, SUCCEEDED or FAILED
        #[arg(long, value_parser = status, value_name = "S")]
        status: Option<JobStatus>,
        /// Only jobs of this kind
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Only jobs with this label, KEY=VALUE (may repeat: all must match)
        #[arg(long = "label", value_parser = label, value_name = "KEY=VALUE")]
        labels: Vec<(String, String)>,
        /// Only jobs created by this user
        #[arg(long, value_name = "USER")]
        created_by: Option<String>,
        /// At most N jobs (the service caps this at its jobs.max_page)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
        limit: Option<u32>,
    },

    /// Create a PENDING job; prints it (its Location on standard error)
    #[command(
        long_about = "Create a PENDING job and print it (its Location on standard error).\n\n\
            With --key, while a PENDING job with that key exists no job is created: that job \
            is printed instead, standard error says it already runs, and the exit status is \
            still 0 (compare the id, or use `run --key`, which does not run its command then).",
        after_help = "Examples:\n  id=$(asyncstatus create 'Refreshing DNS' --json | jq .id)\n  \
            … work …\n  asyncstatus finish \"$id\" succeeded 'DNS refreshed'\n  \
            asyncstatus create 'Renewing certificates' --kind acme.renew --key acme-cdn1 \\\n      \
            --label cdn=cdn1 --timeout 30m"
    )]
    Create {
        /// The job's message
        message: Option<String>,
        /// What sort of job (1–64 of a-z0-9._-)
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Single-flight key: while a PENDING job with this key exists, that job is answered
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// A label of the job, KEY=VALUE (may repeat)
        #[arg(long = "label", value_parser = label, value_name = "KEY=VALUE")]
        labels: Vec<(String, String)>,
        /// The job's deadline: the service fails it if it is still PENDING after this long
        #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// The service fails the job as abandoned after this long without an update
        #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
        heartbeat_timeout: Option<Duration>,
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

    /// Ask a job's producer to stop it (with --force: fail it at once)
    #[command(
        long_about = "Ask a PENDING job's producer to stop: the job's cancel_requested becomes true, \
            with the reason and your user name, and its producer (like `asyncstatus run`) sees \
            it at its next heartbeat and finishes the job. With --force the service finishes \
            the job as FAILED at once (`cancelled by USER: REASON`). Prints the job. Needs the \
            ASYNC-STATUS:CANCEL permission; a finished job is 409 (exit 2).",
        after_help = "Examples:\n  asyncstatus cancel 42 --reason 'wrong CDN'\n  \
            asyncstatus cancel 42 --reason 'runner is gone' --force"
    )]
    Cancel {
        /// The job: its id or its Location
        #[arg(value_name = "ID|LOCATION", value_parser = job_id)]
        job: i64,
        /// Why (recorded with the request; the producer puts it in the job's message)
        #[arg(long, value_name = "R")]
        reason: Option<String>,
        /// Finish the job as FAILED now instead of asking its producer
        #[arg(long)]
        force: bool,
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

/// `KEY=VALUE` (the key not empty; the value may be, and may hold `=`).
fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not a label like KEY=VALUE")),
    }
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
        Command::List {
            status,
            kind,
            labels,
            created_by,
            limit,
        } => match client.list(&ListFilter {
            status,
            limit,
            kind,
            created_by,
            labels,
        }) {
            Ok(jobs) => {
                print_jobs(&jobs, json, false);
                0
            }
            Err(e) => fail(&e),
        },
        Command::Create {
            message,
            kind,
            key,
            labels,
            timeout,
            heartbeat_timeout,
        } => {
            let new = NewJob {
                message,
                kind,
                labels: labels.into_iter().collect(),
                key,
                timeout,
                heartbeat_timeout,
            };
            match client.create(new) {
                Ok(created) => {
                    report_created(&created);
                    print_jobs(&[created.job], json, true);
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Cancel {
            job: id,
            reason,
            force,
        } => match client.cancel(id, reason.as_deref(), force) {
            Ok(job) => {
                if force {
                    eprintln!("asyncstatus: job {id} cancelled: {}", job.status);
                } else {
                    eprintln!("asyncstatus: cancel of job {id} requested: its producer stops it at its next heartbeat");
                }
                print_jobs(&[job], json, true);
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
            kind,
            key,
            labels,
            timeout,
            grace,
            finish_retry_for,
            command,
        } => crate::run::run(
            &client,
            crate::run::RunOptions {
                message,
                kind,
                key,
                labels: labels.into_iter().collect(),
                heartbeat,
                timeout,
                grace,
                finish_retry_for,
                command,
            },
        ),
    }
}

/// `asyncstatus: job N created: LOCATION`, or that the job of the key already runs.
pub fn report_created(created: &Created) {
    if created.existing {
        eprintln!(
            "asyncstatus: job {} of this key already runs (none created): {}",
            created.job.id, created.location
        );
    } else {
        eprintln!(
            "asyncstatus: job {} created: {}",
            created.job.id, created.location
        );
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
    fn labels_are_key_equals_value() {
        assert_eq!(label("cdn=cdn1"), Ok(("cdn".into(), "cdn1".into())));
        assert_eq!(label("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert_eq!(label("empty="), Ok(("empty".into(), String::new())));
        assert!(label("=v").is_err());
        assert!(label("novalue").is_err());
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
