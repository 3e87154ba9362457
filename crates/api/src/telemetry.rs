//! Logging with tracing: text or JSON lines on stderr, level from `RUST_LOG` (default `info`).
//!
//! Lines go through tracing-appender's non-blocking writer: a request hands its line to a
//! channel, and one worker thread writes them to a buffered stderr, flushing each time it has
//! drained the channel (one `write` for many lines under load). A request never waits on
//! stderr unless 128 000 lines are already waiting (stderr is stuck): then it waits rather than
//! lose lines (not lossy). What is queued is written at exit (the guard).

use std::io::{BufWriter, IsTerminal, Write};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Writes the queued lines when dropped: keep it until exit.
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// The non-blocking writer over `out`, and its guard.
fn non_blocking(out: impl Write + Send + 'static) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("asyncstatus-log")
        .finish(out)
}

/// Installs the global subscriber; `None` if one was installed already.
pub fn init(format: LogFormat) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = non_blocking(BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.ok()?;
    Some(LogGuard { _worker: guard })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_by_the_time_the_guard_is_dropped() {
        let out = Shared::default();
        let (writer, guard) = non_blocking(BufWriter::new(out.clone()));
        for i in 0..10_000 {
            writeln!(writer.make_writer(), "line {i}").unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 10_000);
        assert_eq!(text.lines().last(), Some("line 9999"));
    }
}
