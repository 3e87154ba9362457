//! `asyncstatus run -- COMMAND`: a command as a monitored job.
//!
//! Threads, each bounded: two copy the command's standard output and error through to ours,
//! keeping the last 4 KiB (the heartbeat's last line, the failure message); one heartbeats;
//! one passes SIGINT/SIGTERM on to the command; one enforces `--timeout`. The main thread
//! waits for the command, then finishes the job.
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

use asyncstatus_client::{Client, Error, JobStatus};
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
/// Between `--timeout`'s SIGTERM and its SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How long the output is still copied after the command exits (a background child of the
/// command may hold the pipes open for ever).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

pub struct RunOptions {
    pub message: Option<String>,
    pub heartbeat: Duration,
    pub timeout: Option<Duration>,
    pub finish_retry_for: Duration,
    pub command: Vec<OsString>,
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

/// Copies `from` to `to` (our stdout or stderr), feeding `tail`; says when done.
fn tee(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    tail: Arc<Mutex<Tail>>,
    done: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut writable = true;
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
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
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
    let created = match client.create(Some(&first_message)) {
        Ok(created) => created,
        Err(e) => {
            eprintln!("asyncstatus: error: creating the job (the command was not run): {e}");
            return exit::of(&e);
        }
    };
    let id = created.job.id;
    eprintln!("asyncstatus: job {id} created: {}", created.location);
    // From here on SIGINT/SIGTERM are the command's (before, while the job is being created,
    // they stop asyncstatus at once: there is nothing to clean up yet).
    let mut signals = match SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            let message = format!("setting up signal handling: {e}");
            eprintln!("asyncstatus: error: {message}");
            return finish(client, id, JobStatus::Failed, &message, &options, 1);
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
        return finish(client, id, JobStatus::Failed, &message, &options, code);
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
            return finish(client, id, JobStatus::Failed, &message, &options, code);
        }
    };
    let pid = i32::try_from(child.id()).map(Pid::from_raw);

    let tail = Arc::new(Mutex::new(Tail::default()));
    let (drained_tx, drained) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        tee(out, std::io::stdout(), tail.clone(), drained_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        tee(err, std::io::stderr(), tail.clone(), drained_tx.clone());
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

    // Heartbeats: one attempt per interval; failures are reported once per outage.
    let (stop_tx, stop) = mpsc::channel::<()>();
    {
        let (client, tail, interval) = (client.clone(), tail.clone(), options.heartbeat);
        std::thread::spawn(move || {
            let mut failing = false;
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
                let line = tail
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .last_line();
                match client.update_within(id, JobStatus::Pending, line.as_deref(), Duration::ZERO)
                {
                    Ok(_) if failing => {
                        failing = false;
                        eprintln!("asyncstatus: heartbeat of job {id} delivered again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        eprintln!("asyncstatus: heartbeat of job {id} failed (the command keeps running; trying again every {}): {e}", humantime::format_duration(interval));
                    }
                    Err(_) => {}
                }
            }
        });
    }

    // The timeout: SIGTERM, then SIGKILL after a grace period.
    let timed_out = Arc::new(AtomicBool::new(false));
    let (exited_tx, exited) = mpsc::channel::<()>();
    if let (Some(limit), Ok(pid)) = (options.timeout, pid) {
        let timed_out = timed_out.clone();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = exited.recv_timeout(limit) {
                timed_out.store(true, Ordering::SeqCst);
                eprintln!(
                    "asyncstatus: the command ran longer than {}: sending SIGTERM",
                    humantime::format_duration(limit)
                );
                let _ = kill(pid, Signal::SIGTERM);
                if let Err(RecvTimeoutError::Timeout) = exited.recv_timeout(KILL_GRACE) {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
        });
    }

    let status = child.wait();
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
    let timed_out = timed_out.load(Ordering::SeqCst);
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
    let (message, code) = match (timed_out, options.timeout) {
        (true, Some(limit)) => (
            format!(
                "timed out after {}: {message}",
                humantime::format_duration(limit)
            ),
            exit::TIMEOUT,
        ),
        _ => (message, code),
    };
    finish(client, id, job_status, &message, &options, code)
}

fn with_lines(head: &str, tail: &Tail) -> String {
    match tail.last_lines() {
        lines if lines.is_empty() => head.to_owned(),
        lines => format!("{head}: {lines}"),
    }
}

/// Sends the final update (retried); the exit status: `code`, or non-zero when the update
/// could not be delivered.
fn finish(
    client: &Client,
    id: i64,
    status: JobStatus,
    message: &str,
    options: &RunOptions,
    code: u8,
) -> u8 {
    let undelivered = |why: &str| {
        eprintln!("asyncstatus: error: job {id} could not be finished as {status}: {why}");
        if code == 0 {
            exit::UNREACHABLE
        } else {
            code
        }
    };
    match client.update_within(id, status, Some(message), options.finish_retry_for) {
        Ok(_) => code,
        // A retried update that did land the first time; or someone else finished it.
        Err(e @ Error::Api { status: 409, .. }) => match client.get(id) {
            Ok(job) if job.status == status && job.message.as_deref() == Some(message) => code,
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
    fn output_that_is_not_text_still_makes_a_message() {
        let mut tail = Tail::default();
        tail.push(b"bad \xff\0 bytes\n");
        assert_eq!(tail.last_line().as_deref(), Some("bad \u{fffd}  bytes"));
        let long = "é".repeat(3000);
        let cut = cut_front(&long, TAIL_BYTES, true);
        assert!(cut.len() <= TAIL_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
