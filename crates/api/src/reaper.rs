//! The background sweep: fail jobs left `PENDING` too long, delete finished jobs past
//! retention, forget expired session revocations. Every step is a conditional statement in the
//! database, so several replicas may sweep at once; nothing is held in memory, so jobs of a
//! killed process are caught by whichever replica sweeps next. Jobs go in bounded batches with
//! a rest between them, so a sweep of a long history never holds a lock for more than a batch
//! nor takes the database from the requests. On PostgreSQL, the job counts' differences are
//! folded every second ([`fold_counts`]).

use std::time::{Duration, Instant};

use actix_web::web;
use asyncstatus_persistence::{now_micros, Overdue, Store, StoreError, SweepBatch};

use crate::http::error::ApiError;
use crate::state::AppState;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub abandoned: usize,
    pub purged: usize,
}

fn before(now: chrono::DateTime<chrono::Utc>, age: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// One sweep: the stale jobs, then the expired ones, then the revocations.
pub async fn sweep(state: &web::Data<AppState>) -> Result<Sweep, ApiError> {
    let abandoned = fail_stale(state).await?;
    let retention = state.settings.jobs.retention;
    let purged = if retention.is_zero() {
        0
    } else {
        let cutoff = before(now_micros(), retention);
        in_batches(state, move |store| store.purge_finished_batch(cutoff)).await?
    };
    state
        .db
        .run(|store| store.purge_expired_revocations(now_micros()))
        .await?;
    Ok(Sweep { abandoned, purged })
}

/// Fails the `PENDING` jobs past their deadline, and those left without an update longer than
/// their `heartbeat_timeout` or else `jobs.stale_after`; how many.
pub async fn fail_stale(state: &web::Data<AppState>) -> Result<usize, ApiError> {
    let now = now_micros();
    let cutoff = before(now, state.settings.jobs.stale_after);
    let mut failed = 0;
    for overdue in [
        Overdue::Deadline,
        Overdue::Heartbeat,
        Overdue::Stale(cutoff),
    ] {
        failed += in_batches(state, move |store| store.fail_overdue_batch(overdue, now)).await?;
    }
    Ok(failed)
}

/// Runs `batch` until it reports its last, each batch its own trip through the database gate
/// (so requests queue behind at most one batch), resting as long as the batch took (at most a
/// second) before the next: a sweep of a million jobs takes at most half of one connection's
/// time while requests are served. Returns how many jobs the batches changed.
async fn in_batches<F>(state: &web::Data<AppState>, batch: F) -> Result<usize, ApiError>
where
    F: Fn(&Store) -> Result<SweepBatch, StoreError> + Clone + Send + 'static,
{
    let mut changed = 0;
    loop {
        let started = Instant::now();
        let work = batch.clone();
        let done = state.db.run(move |store| work(store)).await?;
        changed += done.changed;
        if done.last {
            return Ok(changed);
        }
        tokio::time::sleep(started.elapsed().min(Duration::from_secs(1))).await;
    }
}

/// Sweeps every `jobs.reaper_interval` (the first one an interval from now: start-up sweeps
/// once itself), until the runtime stops.
pub async fn run(state: web::Data<AppState>) {
    let period = state.settings.jobs.reaper_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&state).await {
            Ok(s) if s != Sweep::default() => {
                tracing::info!(abandoned = s.abandoned, purged = s.purged, "reaper sweep")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaper sweep failed; retrying next interval"),
        }
    }
}

/// How often [`fold_counts`] folds: the differences a count reads beside the counters are
/// about this much of the writes.
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// Folds the job counts' differences into the counters every [`FOLD_INTERVAL`]
/// (`Store::fold_job_counts`; PostgreSQL only: SQLite keeps its counters directly), until
/// the runtime stops. The first fold is at once, so differences a bulk import left while no
/// replica ran are folded before they slow the counts.
pub async fn fold_counts(state: web::Data<AppState>) {
    let mut ticker = tokio::time::interval(FOLD_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = state.db.run(|store| store.fold_job_counts()).await {
            tracing::warn!(error = %e, "folding the job counts failed; retrying in a second");
        }
    }
}
