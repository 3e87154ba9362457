//! The fan-out behind `GET async_status/events`: every change the store's feed reports (this
//! replica's at once, every replica's through LISTEN/NOTIFY on PostgreSQL) is read from the
//! database once, here, and broadcast to every open stream as a ready SSE frame; each stream
//! filters what it is sent (see `http::events`).
//!
//! What bounds it, with an attacker in mind:
//! - **Database work is per change, not per stream.** The feed's callback only notes the id
//!   in a set; one task reads the noted ids in batches of at most [`READ_BATCH`], one read at
//!   a time and at most one every [`READ_GAP`], so a burst of changes to one job is one read,
//!   many changes per second are a few batched reads, and the hub holds at most one of the
//!   pool's connections however many streams are open. With no stream open nothing is read.
//! - **Memory is bounded.** The set of noted ids holds at most [`MAX_NOTED`]; past it the ids
//!   are dropped and every stream is told it lagged ([`Event::Lagged`]). The broadcast channel
//!   keeps the last [`CHANNEL_CAPACITY`] frames, shared by all streams; a stream that falls
//!   further behind (a slow reader: actix stops polling a body whose socket does not drain)
//!   gets `lagged` and ends, so the client reconnects and lists again. Nothing is buffered
//!   per stream beyond actix's write buffer.
//! - **Duplicates are dropped.** On PostgreSQL this replica's own changes are reported twice
//!   (by the store, then by NOTIFY); a frame identical to the last one sent for that job is
//!   not sent again (remembered for up to [`MAX_REMEMBERED`] jobs).
//!
//! A `job` frame is the job as it was read after the change, exactly as `GET
//! async_status/{id}` shows it in `response`; an id that no longer reads is a `deleted` frame.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use asyncstatus_domain::AsyncStatus;
use asyncstatus_persistence::Change;
use tokio::sync::{broadcast, watch, Notify};

use crate::db::Db;
use crate::http::response::JobJson;

/// Frames kept for streams that are behind; a stream further behind gets `lagged`.
pub const CHANNEL_CAPACITY: usize = 256;
/// The most ids read in one database round trip.
pub const READ_BATCH: usize = 256;
/// The shortest time between two reads (changes meanwhile are coalesced into the next).
pub const READ_GAP: Duration = Duration::from_millis(10);
/// The most changed ids waiting to be read; past it they are dropped as lagged.
pub const MAX_NOTED: usize = 10_000;
/// The jobs whose last frame is remembered to drop duplicates.
pub const MAX_REMEMBERED: usize = 16_384;

/// What a stream is sent.
#[derive(Debug)]
pub enum Event {
    /// A job was created or changed: the job as read, and its `job` frame.
    Job { job: Box<AsyncStatus>, frame: Bytes },
    /// A job was deleted: its id, and its `deleted` frame.
    Deleted { id: i64, frame: Bytes },
    /// Changes were missed (the PostgreSQL listener reconnected, too many changes waited, or
    /// a read failed): every stream ends with `lagged`.
    Lagged,
}

#[derive(Default)]
struct Noted {
    ids: HashSet<i64>,
    lagged: bool,
}

/// The hub: noted changes, the broadcast of frames and the stop signal.
pub struct Events {
    noted: Mutex<Noted>,
    wake: Notify,
    sender: broadcast::Sender<Arc<Event>>,
    stop: watch::Sender<bool>,
    reads: AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            noted: Mutex::default(),
            wake: Notify::new(),
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
            stop: watch::channel(false).0,
            reads: AtomicU64::new(0),
        }
    }
}

impl Events {
    /// Notes a change for the fan-out task (the store's change callback: cheap, no I/O).
    /// Ignored while no stream is open.
    pub fn note(&self, change: Change) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        {
            let mut noted = self.noted.lock().unwrap_or_else(|p| p.into_inner());
            match change {
                Change::Job(id) if noted.ids.len() < MAX_NOTED => {
                    noted.ids.insert(id);
                }
                Change::Job(_) | Change::Resync => {
                    noted.ids.clear();
                    noted.lagged = true;
                }
            }
        }
        self.wake.notify_one();
    }

    /// A new stream's receiver, and the stop signal it ends on.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Event>>, watch::Receiver<bool>) {
        (self.sender.subscribe(), self.stop.subscribe())
    }

    /// The server is stopping: every stream ends now, new ones are refused, the task ends.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Database reads made for the streams so far (each of up to [`READ_BATCH`] jobs).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn take(&self) -> (Vec<i64>, bool) {
        let mut noted = self.noted.lock().unwrap_or_else(|p| p.into_inner());
        let lagged = std::mem::take(&mut noted.lagged);
        let ids = if noted.ids.len() <= READ_BATCH {
            noted.ids.drain().collect()
        } else {
            let some: Vec<i64> = noted.ids.iter().take(READ_BATCH).copied().collect();
            for id in &some {
                noted.ids.remove(id);
            }
            some
        };
        (ids, lagged)
    }

    fn has_noted(&self) -> bool {
        let noted = self.noted.lock().unwrap_or_else(|p| p.into_inner());
        noted.lagged || !noted.ids.is_empty()
    }

    pub(crate) fn send(&self, event: Event) {
        // No receiver: nobody to tell.
        let _ = self.sender.send(Arc::new(event));
    }

    /// The fan-out task: reads what was noted and broadcasts it, until [`stop`](Self::stop).
    pub async fn run(self: Arc<Self>, db: Db) {
        let mut stop = self.stop.subscribe();
        let mut last_sent: HashMap<i64, u64> = HashMap::new();
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            while self.has_noted() {
                let started = tokio::time::Instant::now();
                let (ids, lagged) = self.take();
                if lagged {
                    last_sent.clear();
                    self.send(Event::Lagged);
                }
                if ids.is_empty() || self.sender.receiver_count() == 0 {
                    continue;
                }
                let wanted = ids.clone();
                self.reads.fetch_add(1, Ordering::Relaxed);
                match db.run(move |store| store.get_jobs(&wanted)).await {
                    Ok(jobs) => self.fan_out(&ids, jobs, &mut last_sent),
                    Err(e) => {
                        tracing::warn!(error = %e, "event streams: reading changed jobs failed");
                        last_sent.clear();
                        self.send(Event::Lagged);
                    }
                }
                tokio::time::sleep_until(started + READ_GAP).await;
            }
        }
    }

    fn fan_out(&self, ids: &[i64], jobs: Vec<AsyncStatus>, last_sent: &mut HashMap<i64, u64>) {
        let mut found: HashMap<i64, AsyncStatus> = jobs.into_iter().map(|j| (j.id, j)).collect();
        for &id in ids {
            let event = match found.remove(&id) {
                Some(job) => match job_frame(&job) {
                    Some(frame) => Event::Job {
                        job: Box::new(job),
                        frame,
                    },
                    None => continue,
                },
                None => Event::Deleted {
                    id,
                    frame: deleted_frame(id),
                },
            };
            let frame = match &event {
                Event::Job { frame, .. } | Event::Deleted { frame, .. } => frame,
                Event::Lagged => continue,
            };
            let mut hasher = DefaultHasher::new();
            frame.hash(&mut hasher);
            let digest = hasher.finish();
            if last_sent.get(&id) == Some(&digest) {
                continue;
            }
            if last_sent.len() >= MAX_REMEMBERED {
                last_sent.clear();
            }
            last_sent.insert(id, digest);
            self.send(event);
        }
    }
}

/// `event: job` with the job's JSON as `GET async_status/{id}` shows it.
fn job_frame(job: &AsyncStatus) -> Option<Bytes> {
    let mut frame = b"event: job\ndata: ".to_vec();
    if let Err(e) = serde_json::to_writer(&mut frame, &JobJson::from(job)) {
        tracing::error!(error = %e, job = job.id, "serializing a job for the event streams");
        return None;
    }
    frame.extend_from_slice(b"\n\n");
    Some(Bytes::from(frame))
}

/// `event: deleted` with `{"id": <id>}`.
fn deleted_frame(id: i64) -> Bytes {
    Bytes::from(format!("event: deleted\ndata: {{\"id\":{id}}}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_noted_only_while_a_stream_is_open_and_bounded() {
        let events = Events::default();
        events.note(Change::Job(1));
        assert!(!events.has_noted(), "no stream: nothing noted");
        let (_rx, _stop) = events.subscribe();
        events.note(Change::Job(1));
        events.note(Change::Job(1));
        events.note(Change::Job(2));
        let (mut ids, lagged) = events.take();
        ids.sort_unstable();
        assert_eq!((ids, lagged), (vec![1, 2], false));
        for id in 0..=MAX_NOTED as i64 {
            events.note(Change::Job(id));
        }
        let (ids, lagged) = events.take();
        assert!(lagged, "past MAX_NOTED the streams lag");
        assert!(ids.is_empty());
    }

    #[test]
    fn a_large_backlog_is_read_in_batches() {
        let events = Events::default();
        let (_rx, _stop) = events.subscribe();
        for id in 0..(READ_BATCH as i64 + 5) {
            events.note(Change::Job(id));
        }
        assert_eq!(events.take().0.len(), READ_BATCH);
        assert_eq!(events.take().0.len(), 5);
        assert!(!events.has_noted());
    }

    #[test]
    fn frames_are_server_sent_events() {
        assert_eq!(
            &deleted_frame(7)[..],
            b"event: deleted\ndata: {\"id\":7}\n\n"
        );
    }
}
