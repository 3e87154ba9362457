//! The event stream of `GET async_status/events` (Server-Sent Events): a `job` event with the
//! job's JSON for every create and change, a `deleted` event with the id for every deletion,
//! a `lagged` event before the service ends a stream that fell behind, and comment lines
//! (`: connected`, `: keep-alive`, …). Follow jobs without a gap by opening the stream first,
//! then listing, and applying the events over the list; after the stream ends, do it again.

use std::io::{BufRead, BufReader, Read};

use crate::error::Error;
use crate::job::Job;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job was created or changed: the job as it now is.
    Job(Box<Job>),
    /// The job of this id was deleted.
    Deleted(i64),
    /// The stream fell behind, or changes may have been missed (`missed`: how many, when
    /// known); the service ends the stream after it. Open a new one and list again.
    Lagged { missed: Option<u64> },
}

/// The events of one stream, as they arrive; see [`crate::Client::events`].
///
/// The iterator ends when the service closes the stream (it does so when it shuts down):
/// open a new one to go on, and read the jobs you care about again, since changes made in
/// between are not replayed. An item is an error when a read fails (no data for the read
/// timeout, 30 s: the service sends a comment every 15 s) or an event cannot be read; the
/// stream ends after a read error.
pub struct Events {
    reader: BufReader<Box<dyn Read + Send>>,
    url: String,
    done: bool,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("url", &self.url).finish()
    }
}

/// The longest line read (a job's JSON is at most a few hundred KiB: its message is at most
/// 64 KiB); a longer one is an error rather than memory spent on it.
const MAX_LINE_BYTES: u64 = 1024 * 1024;

impl Events {
    pub(crate) fn new(body: Box<dyn Read + Send>, url: String) -> Events {
        Events {
            reader: BufReader::new(body),
            url,
            done: false,
        }
    }

    fn invalid(&self, detail: String) -> Error {
        Error::InvalidResponse {
            method: "GET",
            url: self.url.clone(),
            detail,
        }
    }

    /// The next line without its end of line; `None` at the end of the stream.
    fn line(&mut self) -> Result<Option<String>, Error> {
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| Error::Unreachable {
                method: "GET",
                url: self.url.clone(),
                detail: format!("reading the event stream: {}", crate::error::chain(&e)),
            })?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.len() as u64 > MAX_LINE_BYTES {
            return Err(self.invalid("an event stream line is longer than 1 MiB".into()));
        }
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.invalid("an event stream line is not UTF-8".into()))
    }

    /// The event of `name` with `data`; `None` for an event type this client does not know.
    fn event(&self, name: &str, data: &str) -> Result<Option<Event>, Error> {
        match name {
            "job" => serde_json::from_str::<Job>(data)
                .map(|job| Some(Event::Job(Box::new(job))))
                .map_err(|e| self.invalid(format!("a job event: {e} in {data:.200}"))),
            "deleted" => {
                // The id alone, or an object with it.
                let value: serde_json::Value = serde_json::from_str(data)
                    .map_err(|e| self.invalid(format!("a deleted event: {e} in {data:.200}")))?;
                value
                    .as_i64()
                    .or_else(|| value.get("id").and_then(serde_json::Value::as_i64))
                    .map(|id| Some(Event::Deleted(id)))
                    .ok_or_else(|| {
                        self.invalid(format!("a deleted event without an id: {data:.200}"))
                    })
            }
            "lagged" => {
                let value: serde_json::Value = serde_json::from_str(data)
                    .map_err(|e| self.invalid(format!("a lagged event: {e} in {data:.200}")))?;
                let missed = value.get("missed").and_then(serde_json::Value::as_u64);
                Ok(Some(Event::Lagged { missed }))
            }
            _ => Ok(None),
        }
    }
}

impl Iterator for Events {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut name = String::new();
        let mut data: Option<String> = None;
        while !self.done {
            let line = match self.line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if line.is_empty() {
                // The end of an event: dispatch it (one without data is none).
                let Some(payload) = data.take() else {
                    name.clear();
                    continue;
                };
                let event_name = if name.is_empty() { "message" } else { &name };
                match self.event(event_name, &payload) {
                    Ok(Some(event)) => return Some(Ok(event)),
                    Ok(None) => {
                        name.clear();
                        continue;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            if line.starts_with(':') {
                continue; // a comment: the keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => name = value.to_owned(),
                "data" => {
                    match &mut data {
                        Some(data) => {
                            data.push('\n');
                            data.push_str(value);
                        }
                        None => data = Some(value.to_owned()),
                    }
                    // An event's data lines are bounded together as one line is.
                    if data
                        .as_ref()
                        .is_some_and(|d| d.len() as u64 > MAX_LINE_BYTES)
                    {
                        self.done = true;
                        return Some(Err(self.invalid(format!(
                            "an event's data is longer than {MAX_LINE_BYTES} bytes"
                        ))));
                    }
                }
                _ => {} // id, retry, and fields of later versions
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &'static str) -> Vec<Result<Event, Error>> {
        Events::new(Box::new(text.as_bytes()), "http://h/events".into()).collect()
    }

    #[test]
    fn jobs_deletions_and_comments_are_read() {
        let read = events(
            ": keep-alive\n\n\
             event: job\r\n\
             data: {\"id\":1,\"status\":\"PENDING\",\"start_time\":\"2026-12-03T10:00:00Z\",\"kind\":\"backup\"}\r\n\
             \r\n\
             event: deleted\ndata: 7\n\n\
             event: deleted\ndata: {\"id\":8}\n\n\
             event: later-kind\ndata: {}\n\n\
             event: lagged\ndata: {\"missed\":12}\n\n\
             event: lagged\ndata: {\"missed\":null}\n\n\
             id: 5\nevent: job\ndata: {\"id\":2,\n\
             data: \"status\":\"FAILED\",\"start_time\":\"2026-12-03T10:00:00Z\"}\n\n\
             event: job\ndata: {\"id\":3,",
        );
        let read: Vec<Event> = read.into_iter().map(Result::unwrap).collect();
        assert_eq!(read.len(), 6, "{read:?}");
        assert!(
            matches!(&read[0], Event::Job(job) if job.id == 1 && job.kind.as_deref() == Some("backup"))
        );
        assert_eq!(read[1], Event::Deleted(7));
        assert_eq!(read[2], Event::Deleted(8));
        assert_eq!(read[3], Event::Lagged { missed: Some(12) });
        assert_eq!(read[4], Event::Lagged { missed: None });
        assert!(matches!(&read[5], Event::Job(job) if job.id == 2 && job.status.is_final()));
    }

    #[test]
    fn an_event_that_is_not_a_job_is_an_error() {
        let read = events("event: job\ndata: {\"id\":\"x\"}\n\n");
        assert!(
            matches!(&read[..], [Err(Error::InvalidResponse { .. })]),
            "{read:?}"
        );
    }
}
