//! Password-derivation slots and the bounded queue of logins waiting for one.
//!
//! A derivation takes 16 MiB and ~50 ms of CPU, so only a few run at once (`login_slots`,
//! all cores but one). Logins beyond those wait in a queue of at most `auth.login_queue`;
//! past it the answer is 503 with `Retry-After` at once. A waiting login that its client
//! abandons leaves the queue: the server drops the request's future when the client hangs up
//! (see [`crate::waiters`]), and the queue place is a guard released on drop. A slot, once
//! taken, moves into the blocking derivation and is released only when that ends, so
//! hanging up cannot start more derivations than there are slots.
//!
//! Hand-written (a counter and a guard around tokio's `Semaphore`): tokio has no bounded
//! wait queue for a semaphore, and a crate for these few lines is not worth its weight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// The derivation slots and the count of logins waiting for one.
pub struct LoginSlots {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// A place in the queue; given back on drop (also when the waiting future is dropped).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LoginSlots {
    /// `slots` derivations at once; at most `queue` logins waiting for one.
    pub fn new(slots: usize, queue: usize) -> Self {
        LoginSlots {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A slot, at once when one is free, else after waiting in the queue; `Ok(None)` when
    /// the queue is full.
    pub async fn acquire(&self) -> Result<Option<OwnedSemaphorePermit>, AcquireError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Some(permit));
        }
        let entered = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.queue).then_some(n + 1)
            })
            .is_ok();
        if !entered {
            return Ok(None);
        }
        let _queued = Queued(&self.waiting);
        self.slots.clone().acquire_owned().await.map(Some)
    }

    /// Logins waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The slots themselves (tests hold them all to fill the queue).
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_queue_is_bounded_and_a_dropped_waiter_leaves_it() {
        let logins = Arc::new(LoginSlots::new(1, 1));
        let held = logins.acquire().await.unwrap().unwrap();
        let waiter = {
            let logins = logins.clone();
            actix_web::rt::spawn(async move { logins.acquire().await.unwrap().is_some() })
        };
        while logins.waiting() != 1 {
            tokio::task::yield_now().await;
        }
        assert!(
            logins.acquire().await.unwrap().is_none(),
            "the queue is full"
        );
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(logins.waiting(), 0, "an abandoned login leaves the queue");
        drop(held);
        assert!(logins.acquire().await.unwrap().is_some());
    }
}
