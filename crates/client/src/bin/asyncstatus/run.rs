//! `asyncstatus run -- COMMAND`: a command as a monitored job.
//!
//! Threads, each bounded: two copy the command's standard output and error through to ours,
//! keeping the last 4 KiB (the heartbeat's last line, the failure message) and the last
//! `progress: N/M` line; one heartbeats, and reads in each answer whether the job's
//! cancellation was requested; one passes SIGINT/SIGTERM on to the command; one enforces
//! `--timeout`. The main thread waits for the command, then finishes the job.
//!
//! Stopping: `--timeout` and a requested cancel both send SIGTERM, then SIGKILL after
//! `--grace`; the first of them to fire owns the stop and names it in the job's message.
//!
//! Signals: a signal the terminal sent (Ctrl-C: the kernel, to the whole foreground process
//! group) already reached the command, so only signals another process sent to asyncstatus
//! (`kill`, systemd, a CI runner) are passed on — the command does not get Ctrl-C twice.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::collections::BTreeMap;

use asyncstatus_client::{Client, Error, Job, JobStatus, JobUpdate, NewJob, Progress};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

use crate::exit;

/// The most of the command's output kept for the job's message.
const TAIL_BYTES: usize = 4096;
/// The longest heartbeat message (one line).
const LINE_BYTES: usize = 1024;
/// The longest output line looked at for `progress: N/M`.
const PROGRESS_LINE_BYTES: usize = 128;
/// The job's deadline on the service is `--timeout` + `--grace` + this: late enough that
/// `run`'s own report of the timeout wins, but set, so a job whose `run` died is failed.
const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// How long the output is still copied after the command exits (a background child of the
/// command may hold the pipes open for ever).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

pub struct RunOptions {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub key: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub heartbeat: Duration,
    pub timeout: Option<Duration>,
    /// Between a SIGTERM (timeout, cancel) and the SIGKILL.
    pub grace: Duration,
    pub finish_retry_for: Duration,
    pub command: Vec<OsString>,
}

/// The latest progress the command printed; it never goes backwards.
#[derive(Default)]
struct ProgressSeen {
    latest: Option<Progress>,
}

impl ProgressSeen {
    fn offer(&mut self, progress: Progress) {
        match self.latest {
            Some(latest) if progress.done < latest.done => {}
            _ => self.latest = Some(progress),
        }
    }
}

/// The progress of one output line of the form `progress: N/M` (`PROGRESS: 3/10` too).
fn progress_of(line: &[u8]) -> Option<Progress> {
    let line = std::str::from_utf8(line).ok()?.trim();
    let (head, rest) = line.split_at_checked("progress:".len())?;
    if !head.eq_ignore_ascii_case("progress:") {
        return None;
    }
    rest.parse().ok()
}

/// Finds `progress: N/M` lines in a stream that arrives in chunks.
#[derive(Default)]
struct ProgressScanner {
    line: Vec<u8>,
    /// The current line is longer than [`PROGRESS_LINE_BYTES`]: not a progress line.
    long: bool,
}

impl ProgressScanner {
    fn feed(&mut self, chunk: &[u8], seen: &Mutex<ProgressSeen>) {
        for &byte in chunk {
            if byte == b'\n' || byte == b'\r' {
                if !self.long {
                    if let Some(progress) = progress_of(&self.line) {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .offer(progress);
                    }
                }
                self.line.clear();
                self.long = false;
            } else if self.line.len() < PROGRESS_LINE_BYTES {
                self.line.push(byte);
            } else {
                self.long = true;
            }
        }
    }

    /// The last line, without a newline at its end.
    fn end(&mut self, seen: &Mutex<ProgressSeen>) {
        self.feed(b"\n", seen);
    }
}

/// Why the command was stopped by `run` itself.
#[derive(Debug, Clone)]
enum Stop {
    /// `--timeout` passed.
    Timeout,
    /// Someone asked to cancel the job; `forced`: the service already finished it.
    Cancel {
        by: Option<String>,
        reason: Option<String>,
        forced: bool,
    },
}

impl Stop {
    /// `cancelled by USER: REASON` (as the service words a forced cancel).
    fn cancel_head(by: Option<&str>, reason: Option<&str>) -> String {
        let mut head = "cancelled".to_owned();
        if let Some(by) = by {
            head.push_str(" by ");
            head.push_str(by);
        }
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            head.push_str(": ");
            head.push_str(reason);
        }
        head
    }
}

/// The command's process, and who stops it (once).
#[derive(Clone)]
struct Stopper {
    pid: Pid,
    grace: Duration,
    stop: Arc<Mutex<Option<Stop>>>,
    exited: Arc<AtomicBool>,
}

impl Stopper {
    /// Stops the command for `why` — SIGTERM now, SIGKILL after the grace period — unless it
    /// exited or was already being stopped. True when this call stopped it.
    fn stop(&self, why: Stop, announce: &str) -> bool {
        {
            let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
            if stop.is_some() || self.exited.load(Ordering::SeqCst) {
                return false;
            }
            *stop = Some(why);
        }
        eprintln!("asyncstatus: {announce}: sending SIGTERM to the command");
        let _ = kill(self.pid, Signal::SIGTERM);
        let this = self.clone();
        std::thread::spawn(move || {
            let step = Duration::from_millis(20);
            let mut waited = Duration::ZERO;
            while waited < this.grace {
                if this.exited.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(step);
                waited += step;
            }
            if !this.exited.load(Ordering::SeqCst) {
                eprintln!(
                    "asyncstatus: the command is still running {} after SIGTERM: sending SIGKILL",
                    humantime::format_duration(this.grace)
                );
                let _ = kill(this.pid, Signal::SIGKILL);
            }
        });
        true
    }

    /// True once the command is being stopped (or has exited).
    fn stopping(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
            || self
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// Stops the command when `job` (a heartbeat's answer) says its cancel was requested;
    /// true when it did.
    fn stop_if_cancelled(&self, id: i64, job: &Job) -> bool {
        // A forced cancel sets cancel_requested too.
        let forced = job.status.is_final();
        if !job.cancel_requested {
            return false;
        }
        let head = Stop::cancel_head(
            job.cancel_requested_by.as_deref(),
            job.cancel_reason.as_deref(),
        );
        let announce = if forced {
            format!(
                "job {id} was {head} (finished by the service as {})",
                job.status
            )
        } else {
            format!("job {id}: {head}")
        };
        self.stop(
            Stop::Cancel {
                by: job.cancel_requested_by.clone(),
                reason: job.cancel_reason.clone(),
                forced,
            },
            &announce,
        )
    }
}

/// The last bytes of the command's output (both streams, as they arrived).
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > TAIL_BYTES {
            let excess = self.bytes.len() - TAIL_BYTES;
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }

    /// The last line with text in it (a `\r`-redrawn progress line counts as lines).
    fn last_line(&self) -> Option<String> {
        let text = clean(&self.bytes);
        let line = text
            .split(['\n', '\r'])
            .map(str::trim)
            .rfind(|l| !l.is_empty())?;
        Some(cut_front(line, LINE_BYTES, false))
    }

    /// The last whole lines, at most [`TAIL_BYTES`].
    fn last_lines(&self) -> String {
        let text = clean(&self.bytes);
        let text = match (self.cut, text.split_once('\n')) {
            (true, Some((_, rest))) => rest,
            _ => &text,
        };
        cut_front(text.trim(), TAIL_BYTES, true)
    }
}

/// The output as text a job message may hold (UTF-8, no NUL).
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', " ")
}

/// The end of `text` in at most `max` bytes, at a character (or, `lines`, a line) boundary.
fn cut_front(text: &str, max: usize, lines: bool) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let end = &text[start..];
    match end.split_once('\n') {
        Some((_, rest)) if lines && !rest.is_empty() => rest.to_owned(),
        _ => end.to_owned(),
    }
}

/// Copies `from` to `to` (our stdout or stderr), feeding `tail` and `progress`; says when
/// done.
fn tee(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    tail: Arc<Mutex<Tail>>,
    progress: Arc<Mutex<ProgressSeen>>,
    done: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut writable = true;
        let mut scanner = ProgressScanner::default();
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // A closed stdout of ours must not stop the command: keep draining.
                    if writable {
                        writable = to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok();
                    }
                    tail.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(&buf[..n]);
                    scanner.feed(&buf[..n], &progress);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        scanner.end(&progress);
        let _ = done.send(());
    });
}

fn signal_name(number: i32) -> String {
    match Signal::try_from(number) {
        Ok(signal) => format!("{number} ({})", signal.as_str()),
        Err(_) => number.to_string(),
    }
}

fn describe(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the command as a job; the exit status.
pub fn run(client: &Client, options: RunOptions) -> u8 {
    let Some(program) = options.command.first() else {
        eprintln!("asyncstatus: error: no command to run");
        return exit::USAGE;
    };
    let first_message = options.message.clone().unwrap_or_else(|| {
        cut_front(
            &format!("running {}", describe(&options.command)),
            LINE_BYTES,
            false,
        )
    });
    let new = NewJob {
        message: Some(first_message),
        kind: options.kind.clone(),
        labels: options.labels.clone(),
        key: options.key.clone(),
        timeout: options
            .timeout
            .map(|limit| limit + options.grace + DEADLINE_MARGIN),
        heartbeat_timeout: None,
    };
    let created = match client.create(new) {
        Ok(created) => created,
        Err(e) => {
            eprintln!("asyncstatus: error: creating the job (the command was not run): {e}");
            return exit::of(&e);
        }
    };
    let id = created.job.id;
    if created.existing {
        eprintln!(
            "asyncstatus: error: job {id} of the key {} already runs: {} (the command was not run)",
            options.key.as_deref().unwrap_or_default(),
            created.location
        );
        return exit::USAGE;
    }
    eprintln!("asyncstatus: job {id} created: {}", created.location);
    // From here on SIGINT/SIGTERM are the command's (before, while the job is being created,
    // they stop asyncstatus at once: there is nothing to clean up yet).
    let mut signals = match SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            let message = format!("setting up signal handling: {e}");
            eprintln!("asyncstatus: error: {message}");
            return finish(
                client,
                id,
                Final::new(JobStatus::Failed, message, 1),
                &options,
            );
        }
    };
    let signals_handle = signals.handle();
    // Told to stop just before the command would start: it is not started.
    if let Some(origin) = signals.pending().next() {
        let message = format!(
            "stopped by signal {} before the command started",
            signal_name(origin.signal)
        );
        eprintln!("asyncstatus: {message}");
        let code = u8::try_from(128 + origin.signal).unwrap_or(1);
        return finish(
            client,
            id,
            Final::new(JobStatus::Failed, message, code),
            &options,
        );
    }

    let mut child = match Command::new(program)
        .args(&options.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let message = format!("could not start {}: {e}", program.to_string_lossy());
            eprintln!("asyncstatus: error: {message}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return finish(
                client,
                id,
                Final::new(JobStatus::Failed, message, code),
                &options,
            );
        }
    };
    let pid = i32::try_from(child.id()).map(Pid::from_raw);
    let exited = Arc::new(AtomicBool::new(false));
    let stopper = pid.ok().map(|pid| Stopper {
        pid,
        grace: options.grace,
        stop: Arc::new(Mutex::new(None)),
        exited: exited.clone(),
    });

    let tail = Arc::new(Mutex::new(Tail::default()));
    let progress = Arc::new(Mutex::new(ProgressSeen::default()));
    let (drained_tx, drained) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let (tail, progress) = (tail.clone(), progress.clone());
        tee(out, std::io::stdout(), tail, progress, drained_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        let (tail, progress) = (tail.clone(), progress.clone());
        tee(err, std::io::stderr(), tail, progress, drained_tx.clone());
    }
    drop(drained_tx);

    // Signals from other processes are passed on to the command.
    let forwarder = pid.ok().map(|pid| {
        std::thread::spawn(move || {
            for origin in signals.forever() {
                if matches!(origin.cause, Cause::Kernel) {
                    continue;
                }
                if let Ok(signal) = Signal::try_from(origin.signal) {
                    let _ = kill(pid, signal);
                }
            }
        })
    });

    // Heartbeats: one attempt per interval; failures are reported once per outage. Each
    // answer says whether the job's cancellation was requested.
    let (stop_tx, stop) = mpsc::channel::<()>();
    {
        let (client, tail, progress) = (client.clone(), tail.clone(), progress.clone());
        let (interval, stopper) = (options.heartbeat, stopper.clone());
        std::thread::spawn(move || {
            let mut failing = false;
            // The service refused the progress once (400): it is no longer sent.
            let mut send_progress = true;
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
                let line = tail
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_line();
                let mut update = JobUpdate::new(JobStatus::Pending);
                update.message = line;
                if send_progress {
                    update.progress = progress
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .latest;
                }
                let mut answer = client.update_job_within(id, &update, Duration::ZERO);
                if let (Err(e @ Error::Api { status: 400, .. }), Some(_)) =
                    (&answer, update.progress)
                {
                    eprintln!("asyncstatus: the progress of job {id} was refused; it is no longer sent: {e}");
                    send_progress = false;
                    update.progress = None;
                    answer = client.update_job_within(id, &update, Duration::ZERO);
                }
                match answer {
                    Ok(job) => {
                        if failing {
                            failing = false;
                            eprintln!("asyncstatus: heartbeat of job {id} delivered again");
                        }
                        if let Some(stopper) = &stopper {
                            stopper.stop_if_cancelled(id, &job);
                        }
                    }
                    // Finished by someone else: a forced cancel stops the command too;
                    // anything else is reported once, as an outage is.
                    Err(e @ Error::Api { status: 409, .. }) => {
                        let stopped = stopper.as_ref().is_some_and(|stopper| {
                            stopper.stopping()
                                || client
                                    .get(id)
                                    .is_ok_and(|job| stopper.stop_if_cancelled(id, &job))
                        });
                        if !stopped {
                            eprintln!("asyncstatus: heartbeat of job {id} failed (the command keeps running): {e}");
                        }
                        // The job is final: no heartbeat can change it any more.
                        break;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        eprintln!("asyncstatus: heartbeat of job {id} failed (the command keeps running; trying again every {}): {e}", humantime::format_duration(interval));
                    }
                    Err(_) => {}
                }
            }
        });
    }

    // The timeout: SIGTERM, then SIGKILL after the grace period.
    let (exited_tx, exited_rx) = mpsc::channel::<()>();
    if let (Some(limit), Some(stopper)) = (options.timeout, stopper.clone()) {
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = exited_rx.recv_timeout(limit) {
                stopper.stop(
                    Stop::Timeout,
                    &format!(
                        "the command ran longer than {}",
                        humantime::format_duration(limit)
                    ),
                );
            }
        });
    }

    let status = child.wait();
    exited.store(true, Ordering::SeqCst);
    drop(exited_tx);
    drop(stop_tx);
    signals_handle.close();
    if let Some(forwarder) = forwarder {
        let _ = forwarder.join();
    }
    // Both streams end at the command's exit unless something it started still holds them.
    for _ in 0..2 {
        if drained.recv_timeout(DRAIN_WAIT).is_err() {
            break;
        }
    }

    let tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
    let stopped = stopper.and_then(|s| {
        s.stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    });
    let progress = progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .latest;
    let (job_status, message, code) = match status {
        Err(e) => (
            JobStatus::Failed,
            format!("asyncstatus lost track of the command: {e}"),
            exit::UNREACHABLE,
        ),
        Ok(status) => match (status.code(), status.signal()) {
            (Some(0), _) => (
                JobStatus::Succeeded,
                match tail.last_line() {
                    Some(line) => format!("exit 0: {line}"),
                    None => "exit 0".into(),
                },
                0,
            ),
            (Some(code), _) => (
                JobStatus::Failed,
                with_lines(&format!("exit {code}"), &tail),
                u8::try_from(code).unwrap_or(1),
            ),
            (None, Some(signal)) => (
                JobStatus::Failed,
                with_lines(&format!("killed by signal {}", signal_name(signal)), &tail),
                u8::try_from(128 + signal).unwrap_or(1),
            ),
            (None, None) => (JobStatus::Failed, "ended without a status".into(), 1),
        },
    };
    // A command that run stopped failed, however it exited (it may catch SIGTERM and exit 0).
    let cancelled = matches!(stopped, Some(Stop::Cancel { .. }));
    let (job_status, message, code) = match (stopped, options.timeout) {
        (Some(Stop::Timeout), Some(limit)) => (
            JobStatus::Failed,
            format!(
                "timed out after {}: {message}",
                humantime::format_duration(limit)
            ),
            exit::TIMEOUT,
        ),
        (Some(Stop::Cancel { forced: true, .. }), _) => {
            // The service finished the job already (`cancelled by USER: REASON`).
            eprintln!("asyncstatus: job {id} was cancelled; the command ended: {message}");
            return exit::CANCELLED;
        }
        (Some(Stop::Cancel { by, reason, .. }), _) => (
            JobStatus::Failed,
            format!(
                "{}: {message}",
                Stop::cancel_head(by.as_deref(), reason.as_deref())
            ),
            exit::CANCELLED,
        ),
        _ => (job_status, message, code),
    };
    let mut last = Final::new(job_status, message, code);
    last.progress = progress;
    last.cancelled = cancelled;
    finish(client, id, last, &options)
}

/// The final update of the job, and the exit status that goes with it.
struct Final {
    status: JobStatus,
    message: String,
    progress: Option<Progress>,
    code: u8,
    /// The job's cancellation was requested: someone finishing it meanwhile is no error.
    cancelled: bool,
}

impl Final {
    fn new(status: JobStatus, message: String, code: u8) -> Final {
        Final {
            status,
            message,
            progress: None,
            code,
            cancelled: false,
        }
    }
}

fn with_lines(head: &str, tail: &Tail) -> String {
    match tail.last_lines() {
        lines if lines.is_empty() => head.to_owned(),
        lines => format!("{head}: {lines}"),
    }
}

/// Sends the final update (retried); the exit status: `last.code`, or non-zero when the
/// update could not be delivered.
fn finish(client: &Client, id: i64, last: Final, options: &RunOptions) -> u8 {
    let Final {
        status,
        message,
        progress,
        code,
        cancelled,
    } = last;
    let undelivered = |why: &str| {
        eprintln!("asyncstatus: error: job {id} could not be finished as {status}: {why}");
        if code == 0 {
            exit::UNREACHABLE
        } else {
            code
        }
    };
    let mut update = JobUpdate::new(status).message(message.as_str());
    update.progress = progress;
    let mut answer = client.update_job_within(id, &update, options.finish_retry_for);
    if let (Err(Error::Api { status: 400, .. }), Some(_)) = (&answer, progress) {
        // The progress is refused (an older service, or it went backwards): the outcome
        // matters more.
        update.progress = None;
        answer = client.update_job_within(id, &update, options.finish_retry_for);
    }
    match answer {
        Ok(_) => code,
        // A retried update that did land the first time; or someone else finished it.
        Err(e @ Error::Api { status: 409, .. }) => match client.get(id) {
            Ok(job) if job.status == status && job.message.as_deref() == Some(message.as_str()) => {
                code
            }
            Ok(job) if cancelled && job.status == JobStatus::Failed => {
                eprintln!(
                    "asyncstatus: job {id} was already finished as {}: {}",
                    job.status,
                    job.message.as_deref().unwrap_or("")
                );
                code
            }
            Ok(job) => undelivered(&format!(
                "it was already finished as {}: {}",
                job.status,
                job.message.as_deref().unwrap_or("")
            )),
            Err(_) => undelivered(&e.to_string()),
        },
        Err(e) => undelivered(&format!(
            "{e} (it stays PENDING until the service fails it as abandoned)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_and_the_last_line() {
        let mut tail = Tail::default();
        assert_eq!(tail.last_line(), None);
        tail.push(b"one\ntwo\n\n");
        assert_eq!(tail.last_line().as_deref(), Some("two"));
        tail.push(b"10%\r50%\r");
        assert_eq!(tail.last_line().as_deref(), Some("50%"));
        let mut big = Tail::default();
        for i in 0..2000 {
            big.push(format!("line {i}\n").as_bytes());
        }
        let lines = big.last_lines();
        assert!(lines.len() <= TAIL_BYTES);
        assert!(
            lines.starts_with("line "),
            "a whole first line: {lines:.20}"
        );
        assert!(lines.ends_with("line 1999"));
    }

    #[test]
    fn progress_lines_are_found_across_chunks_and_never_go_backwards() {
        let seen = Mutex::new(ProgressSeen::default());
        let mut scanner = ProgressScanner::default();
        scanner.feed(b"starting\nprogr", &seen);
        assert_eq!(seen.lock().unwrap().latest, None);
        scanner.feed(b"ess: 1/3\n", &seen);
        assert_eq!(
            seen.lock().unwrap().latest,
            Some(Progress { done: 1, total: 3 })
        );
        scanner.feed(b"PROGRESS: 2/3\rnot progress: 3/3\nprogress: 1/3\n", &seen);
        assert_eq!(
            seen.lock().unwrap().latest,
            Some(Progress { done: 2, total: 3 })
        );
        scanner.feed(b"progress: 4/3\nprogress: x/3\n", &seen);
        assert_eq!(
            seen.lock().unwrap().latest,
            Some(Progress { done: 2, total: 3 })
        );
        let long = format!("progress: 3/3{}\n", " ".repeat(PROGRESS_LINE_BYTES));
        scanner.feed(long.as_bytes(), &seen);
        assert_eq!(
            seen.lock().unwrap().latest,
            Some(Progress { done: 2, total: 3 })
        );
        scanner.feed(b"  progress:3/3", &seen);
        scanner.end(&seen);
        assert_eq!(
            seen.lock().unwrap().latest,
            Some(Progress { done: 3, total: 3 })
        );
    }

    #[test]
    fn a_cancel_is_worded_as_the_service_words_a_forced_one() {
        assert_eq!(
            Stop::cancel_head(Some("ops"), Some("wrong cdn")),
            "cancelled by ops: wrong cdn"
        );
        assert_eq!(Stop::cancel_head(Some("ops"), Some("")), "cancelled by ops");
        assert_eq!(Stop::cancel_head(None, None), "cancelled");
    }

    #[test]
    fn output_that_is_not_text_still_makes_a_message() {
        let mut tail = Tail::default();
        tail.push(b"bad \xff\0 bytes\n");
        assert_eq!(tail.last_line().as_deref(), Some("bad \u{fffd}  bytes"));
        let long = "é".repeat(3000);
        let cut = cut_front(&long, TAIL_BYTES, true);
        assert!(cut.len() <= TAIL_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
