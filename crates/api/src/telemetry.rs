//! Logging with tracing: text or JSON lines on stderr, level from `RUST_LOG` (default `info`).
//!
//! Lines are appended to one shared buffer and written to stderr in batches: when the buffer
//! passes 64 KiB, every 100 ms by a flusher thread, and at exit (the guard). A request never
//! waits on a `write` to stderr, and no thread is woken per line. The price: on a crash
//! (SIGKILL) up to 100 ms of lines are lost.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

const FLUSH_AT: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    stopped: AtomicBool,
}

impl Shared {
    /// Writes what is pending to stderr (outside the lock).
    fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !batch.is_empty() {
            let _ = std::io::stderr().lock().write_all(&batch);
        }
    }
}

/// The `MakeWriter` of the subscriber: every writer appends to the shared buffer.
#[derive(Clone)]
struct Batched(Arc<Shared>);

impl Write for Batched {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = self.0.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend_from_slice(line);
            pending.len() >= FLUSH_AT
        };
        if full {
            self.0.flush();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Batched;

    fn make_writer(&'a self) -> Batched {
        self.clone()
    }
}

/// Writes the pending lines when dropped and stops the flusher: keep it until exit.
pub struct LogGuard(Arc<Shared>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
        self.0.flush();
    }
}

/// Installs the global subscriber; `None` if one was installed already.
pub fn init(format: LogFormat) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let shared = Arc::new(Shared::default());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Batched(shared.clone()));
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.ok()?;
    let flusher = shared.clone();
    let started = std::thread::Builder::new()
        .name("asyncstatus-log".into())
        .spawn(move || {
            while !flusher.stopped.load(Ordering::Relaxed) {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush();
            }
        });
    if let Err(e) = started {
        // Lines are still written when the buffer fills and at exit.
        let _ = writeln!(std::io::stderr(), "log flusher thread not started: {e}");
    }
    Some(LogGuard(shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_until_flushed() {
        let shared = Arc::new(Shared::default());
        let mut writer = Batched(shared.clone());
        writer.write_all(b"one line\n").unwrap();
        assert_eq!(shared.pending.lock().unwrap().as_slice(), b"one line\n");
        shared.flush();
        assert!(shared.pending.lock().unwrap().is_empty());
        writer.write_all(&vec![b'x'; FLUSH_AT]).unwrap();
        assert!(
            shared.pending.lock().unwrap().is_empty(),
            "a full buffer is written at once"
        );
    }
}
