//! Coalesced job reads. `GET async_status/{id}` is the hot path: every poller asks for its job,
//! again and again. Instead of one database round trip (and one thread hop) per request, the
//! requests that arrive while lookups are in flight wait together and go as the next single
//! lookup of all their ids (one prepared `id = ANY($1)` on PostgreSQL). Under light load a
//! lookup holds one id, so nothing waits longer than one lookup; under load the hop and the
//! round trip are shared. [`DRAINS`] lookups may be in flight at once, so one that is slow (its
//! thread or its database backend waiting for the CPU behind a sweep batch) does not hold up
//! every read behind it.
//!
//! Read-your-writes holds: a request waits for a lookup that *starts* after it was queued, so
//! it sees every change acknowledged before it was made.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use asyncstatus_domain::AsyncStatus;
use asyncstatus_persistence::TrafficOpsJob;
use tokio::sync::oneshot;

use crate::http::error::ApiError;

/// A job as one layout reads it: asyncstatus' own, or a row of Traffic Ops' table.
pub trait Job: Clone + 'static {
    fn id(&self) -> i64;
}

impl Job for AsyncStatus {
    fn id(&self) -> i64 {
        self.id
    }
}

impl Job for TrafficOpsJob {
    fn id(&self) -> i64 {
        self.id
    }
}

type Answer<J> = oneshot::Sender<Result<Option<J>, ApiError>>;

/// The queue of job reads waiting for the next lookup.
pub struct JobReads<J = AsyncStatus> {
    queue: Mutex<Vec<(i64, Answer<J>)>>,
    /// Tasks draining the queue now (at most [`DRAINS`]).
    drains: AtomicUsize,
}

impl<J> Default for JobReads<J> {
    fn default() -> Self {
        JobReads {
            queue: Mutex::default(),
            drains: AtomicUsize::new(0),
        }
    }
}

impl<J: Job> JobReads<J> {
    fn take(&self) -> Vec<(i64, Answer<J>)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

impl<J> JobReads<J> {
    /// Takes one of the [`DRAINS`] drain slots; false when all are taken.
    fn claim_drain(&self) -> bool {
        self.drains
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < DRAINS).then_some(n + 1)
            })
            .is_ok()
    }

    fn release_drain(&self) {
        self.drains.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Lookups in flight at once. Two rather than one: with one, every read waited for whatever
/// delayed the single lookup; on PostgreSQL the GET p99 during a sweep went from 2.4x to 1.8x
/// the one without (the sweep of 350 000 jobs beside 200 000, wrk with 32 connections, one run
/// each). The price, in an A/B of two rounds at 10 M jobs: 7-12 % fewer GETs a second without
/// a sweep (smaller batches per lookup). Still to be weighed with more runs.
const DRAINS: usize = 2;

impl<J: Job> JobReads<J> {
    /// The job `id`, read together with the other reads waiting now; `lookup` reads a batch.
    pub async fn job<L, F>(self: &Arc<Self>, id: i64, lookup: L) -> Result<Option<J>, ApiError>
    where
        L: Fn(Vec<i64>) -> F + 'static,
        F: Future<Output = Result<Vec<J>, ApiError>> + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, answer));
        if self.claim_drain() {
            actix_web::rt::spawn(drain(self.clone(), lookup));
        }
        answered
            .await
            .map_err(|_| ApiError::internal("a job read was dropped"))?
    }
}

/// Gives back the drain's slot if the drain task is dropped mid-batch (its worker stopped), so
/// that the next read starts another drain instead of queueing behind one that no longer runs. The
/// reads of the dropped batch get an error at once: their answers' senders are dropped.
struct DrainGuard<'a, J> {
    reads: &'a JobReads<J>,
    armed: bool,
}

impl<J> Drop for DrainGuard<'_, J> {
    fn drop(&mut self) {
        if self.armed {
            self.reads.release_drain();
        }
    }
}

/// Looks up what is queued, batch after batch, until the queue stays empty.
async fn drain<J: Job, L, F>(reads: Arc<JobReads<J>>, lookup: L)
where
    L: Fn(Vec<i64>) -> F,
    F: Future<Output = Result<Vec<J>, ApiError>>,
{
    let reads = &*reads;
    let mut guard = DrainGuard { reads, armed: true };
    loop {
        let batch = reads.take();
        if batch.is_empty() {
            reads.release_drain();
            // A read queued between the take and the release found every slot taken: take it
            // (unless another drain started for it).
            if reads.is_empty() || !reads.claim_drain() {
                guard.armed = false;
                return;
            }
            continue;
        }
        let mut ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let found = lookup(ids).await;
        for (id, answer) in batch {
            let reply = match &found {
                Ok(jobs) => Ok(jobs.iter().find(|j| j.id() == id).cloned()),
                Err(e) => Err(e.clone()),
            };
            // The asker may have gone (client hung up): nothing to do.
            let _ = answer.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_drain_lets_the_next_read_start_another() {
        let reads = JobReads::<AsyncStatus>::default();
        for _ in 0..DRAINS {
            assert!(reads.claim_drain());
        }
        assert!(!reads.claim_drain(), "at most DRAINS drains at once");
        drop(DrainGuard {
            reads: &reads,
            armed: true,
        });
        assert!(
            reads.claim_drain(),
            "the dropped drain's slot is free again"
        );
        drop(DrainGuard {
            reads: &reads,
            armed: false,
        });
        assert!(
            !reads.claim_drain(),
            "a finished drain (disarmed: it gave its slot back itself) leaves the count alone"
        );
    }
}
