//! Long-poll waiters, by job id. A waiter is an async future parked on a `Notify`: it holds
//! no database connection and no worker thread. The store's change feed (in-process, and on
//! PostgreSQL LISTEN/NOTIFY from every replica) wakes the waiters of the job that changed.
//!
//! Waiters are capped overall and per user (`jobs.max_waiters`, `jobs.max_waiters_per_user`):
//! past a cap [`Waiters::subscribe`] refuses, and the request is answered at once. Event
//! streams count against the same caps through [`Waiters::hold`], a [`Slot`] with no job. A waiter
//! whose client hangs up ends with its connection: the server shuts an HTTP/1 connection down
//! when it reads the client's EOF (`h1_allow_half_closed(false)` in `startup.rs`), which drops
//! the handler's future and with it the [`Subscription`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use asyncstatus_persistence::Change;
use tokio::sync::Notify;

/// The registry of waiters.
pub struct Waiters {
    by_job: Mutex<HashMap<i64, Arc<Notify>>>,
    /// Waiters by user id; the total is counted under the same lock, so the caps are exact.
    by_user: Mutex<HashMap<i64, usize>>,
    count: AtomicUsize,
    stopping: AtomicBool,
    max_total: usize,
    max_per_user: usize,
}

impl Default for Waiters {
    /// No caps (unit tests).
    fn default() -> Self {
        Waiters::with_caps(usize::MAX, usize::MAX)
    }
}

impl Waiters {
    /// A registry holding at most `max_total` waiters, at most `max_per_user` of one user.
    pub fn with_caps(max_total: usize, max_per_user: usize) -> Self {
        Waiters {
            by_job: Mutex::default(),
            by_user: Mutex::default(),
            count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            max_total,
            max_per_user,
        }
    }

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

    /// Registers `user`'s interest in job `id` until the subscription drops; `None` when the
    /// overall or the user's cap is reached.
    pub fn subscribe(self: &Arc<Self>, id: i64, user: i64) -> Option<Subscription> {
        let slot = self.hold(user).ok()?;
        let notify = self
            .by_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone();
        Some(Subscription { id, notify, slot })
    }

    /// Counts one of `user`'s requests against the caps until the slot drops, with no job of
    /// its own (an event stream); which cap refused when one is reached.
    pub fn hold(self: &Arc<Self>, user: i64) -> Result<Slot, CapReached> {
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let mine = by_user.entry(user).or_default();
        let refused = if *mine >= self.max_per_user {
            Some(CapReached::User)
        } else if self.count.load(Ordering::Relaxed) >= self.max_total {
            Some(CapReached::Total)
        } else {
            None
        };
        if let Some(cap) = refused {
            if *mine == 0 {
                by_user.remove(&user);
            }
            return Err(cap);
        }
        *mine += 1;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            waiters: self.clone(),
            user,
        })
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the jobs someone waits on now (at most `max_waiters` of them).
    pub fn waited_ids(&self) -> Vec<i64> {
        let map = self.by_job.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().copied().collect()
    }
}

/// Which cap refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    /// `jobs.max_waiters`.
    Total,
    /// `jobs.max_waiters_per_user`.
    User,
}

/// One request counted against the caps, until it drops.
pub struct Slot {
    waiters: Arc<Waiters>,
    user: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_user = self
            .waiters
            .by_user
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = by_user.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                by_user.remove(&self.user);
            }
        }
        self.waiters.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Interest in one job's changes.
pub struct Subscription {
    id: i64,
    notify: Arc<Notify>,
    // Declared last: released after the job's entry is cleaned up.
    slot: Slot,
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
        let mut map = self
            .slot
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
        let a = waiters.subscribe(1, 7).unwrap();
        let b = waiters.subscribe(1, 7).unwrap();
        let c = waiters.subscribe(2, 8).unwrap();
        assert_eq!(waiters.len(), 3);
        drop(a);
        assert_eq!(waiters.by_job.lock().unwrap().len(), 2);
        drop(b);
        drop(c);
        assert!(waiters.is_empty());
        assert!(waiters.by_job.lock().unwrap().is_empty());
        assert!(waiters.by_user.lock().unwrap().is_empty());
    }

    #[test]
    fn the_caps_refuse_past_their_bound_and_free_up_on_drop() {
        let waiters = Arc::new(Waiters::with_caps(3, 2));
        let a1 = waiters.subscribe(1, 1).unwrap();
        let _a2 = waiters.subscribe(2, 1).unwrap();
        assert!(waiters.subscribe(3, 1).is_none(), "user 1 is at its cap");
        let _b1 = waiters.subscribe(1, 2).unwrap();
        assert!(waiters.subscribe(1, 3).is_none(), "the overall cap");
        assert_eq!(waiters.len(), 3);
        drop(a1);
        assert!(waiters.subscribe(1, 3).is_some(), "room again");
    }

    #[test]
    fn slots_count_against_the_caps_and_say_which_refused() {
        let waiters = Arc::new(Waiters::with_caps(3, 2));
        let a1 = waiters.hold(1).unwrap();
        let _a2 = waiters.subscribe(1, 1).unwrap();
        assert_eq!(waiters.hold(1).err(), Some(CapReached::User));
        let _b1 = waiters.hold(2).unwrap();
        assert_eq!(waiters.hold(3).err(), Some(CapReached::Total));
        drop(a1);
        assert_eq!(waiters.len(), 2);
        assert!(waiters.hold(3).is_ok(), "room again");
        assert!(waiters.by_job.lock().unwrap().contains_key(&1));
    }

    #[actix_web::test]
    async fn a_change_wakes_only_its_jobs_waiters() {
        let waiters = Arc::new(Waiters::default());
        let one = waiters.subscribe(1, 1).unwrap();
        let two = waiters.subscribe(2, 1).unwrap();
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
