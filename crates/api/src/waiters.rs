//! Long-poll waiters, by job id. A waiter is an async future parked on a `Notify`: it holds
//! no database connection and no worker thread. The store's change feed (in-process, and on
//! PostgreSQL LISTEN/NOTIFY from every replica) wakes the waiters of the job that changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use asyncstatus_persistence::Change;
use tokio::sync::Notify;

/// The registry of waiters.
#[derive(Default)]
pub struct Waiters {
    by_job: Mutex<HashMap<i64, Arc<Notify>>>,
    count: AtomicUsize,
    stopping: AtomicBool,
}

impl Waiters {
    /// Wakes the waiters a change concerns.
    pub fn wake(&self, change: Change) {
        let map = self.by_job.lock().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Job(id) => {
                if let Some(notify) = map.get(&id) {
                    notify.notify_waiters();
                }
            }
            Change::Resync => map.values().for_each(|n| n.notify_waiters()),
        }
    }

    /// The server is stopping: every waiter answers now with the current state, and new
    /// long-polls answer at once.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake(Change::Resync);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Registers interest in job `id` until the subscription drops.
    pub fn subscribe(self: &Arc<Self>, id: i64) -> Subscription {
        let notify = self
            .by_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone();
        self.count.fetch_add(1, Ordering::Relaxed);
        Subscription {
            waiters: self.clone(),
            id,
            notify,
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Interest in one job's changes.
pub struct Subscription {
    waiters: Arc<Waiters>,
    id: i64,
    notify: Arc<Notify>,
}

impl Subscription {
    /// The notifier; create (and enable) a `notified()` future *before* reading the job, so a
    /// change between the read and the wait is not missed.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.waiters.count.fetch_sub(1, Ordering::Relaxed);
        let mut map = self
            .waiters
            .by_job
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: we are the last waiter of this job.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_counted_and_cleaned_up() {
        let waiters = Arc::new(Waiters::default());
        let a = waiters.subscribe(1);
        let b = waiters.subscribe(1);
        let c = waiters.subscribe(2);
        assert_eq!(waiters.len(), 3);
        drop(a);
        assert_eq!(waiters.by_job.lock().unwrap().len(), 2);
        drop(b);
        drop(c);
        assert!(waiters.is_empty());
        assert!(waiters.by_job.lock().unwrap().is_empty());
    }

    #[actix_web::test]
    async fn a_change_wakes_only_its_jobs_waiters() {
        let waiters = Arc::new(Waiters::default());
        let one = waiters.subscribe(1);
        let two = waiters.subscribe(2);
        let mut woken_one = std::pin::pin!(one.notify().notified());
        woken_one.as_mut().enable();
        let mut woken_two = std::pin::pin!(two.notify().notified());
        woken_two.as_mut().enable();
        waiters.wake(Change::Job(1));
        let quick = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(quick, woken_one).await.is_ok());
        assert!(tokio::time::timeout(quick, woken_two.as_mut())
            .await
            .is_err());
        waiters.wake(Change::Resync);
        assert!(tokio::time::timeout(quick, woken_two).await.is_ok());
    }
}
