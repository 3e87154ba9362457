//! The reaper and the retention purge go in bounded batches: each call changes at most a
//! batch, says whether it was the last, and the batches together change every job due, once,
//! leaving the counts exact and the jobs not due alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use asyncstatus_domain::JobStatus;
use asyncstatus_persistence::testing::{set_job_status, TestDatabase};
use asyncstatus_persistence::{purge_batch, reap_batch, Backend, SweepBatch};
use chrono::{DateTime, Duration, Utc};

/// How many jobs each batch changed, calling `batch` until one says it was the last.
fn batches(mut batch: impl FnMut() -> SweepBatch) -> Vec<usize> {
    let mut sizes = Vec::new();
    loop {
        let done = batch();
        sizes.push(done.changed);
        if done.last {
            return sizes;
        }
    }
}

fn sweeps_go_in_bounded_batches(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let store = db.migrated_store();
    let old: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
    let cutoff = old + Duration::days(1);
    let (reap, purge) = (reap_batch(backend) as usize, purge_batch(backend) as usize);
    let stale = reap * 2 + 7;
    let expired = purge * 2 + 3;
    for _ in 0..stale {
        store.create_job(Some("stale"), old).unwrap();
    }
    for _ in 0..expired {
        let job = store.create_job(None, old).unwrap();
        set_job_status(&store, job.id, JobStatus::Succeeded, old);
    }
    // Not due: recent, pending and finished.
    let recent = cutoff + Duration::days(1);
    let pending = store.create_job(Some("alive"), recent).unwrap();
    let kept = store.create_job(None, recent).unwrap();
    set_job_status(&store, kept.id, JobStatus::Succeeded, recent);

    let now = recent + Duration::hours(1);
    let reaped = batches(|| store.fail_stale_batch(cutoff, now).unwrap());
    assert_eq!(reaped, [reap, reap, 7]);
    let purged = batches(|| store.purge_finished_batch(cutoff).unwrap());
    assert_eq!(purged, [purge, purge, 3]);
    // The reaped jobs were failed now, so the purge kept them; the recent ones are untouched.
    assert_eq!(
        store.count_jobs_by_status().unwrap(),
        [
            (JobStatus::Pending, 1),
            (JobStatus::Succeeded, 1),
            (JobStatus::Failed, stale as i64)
        ]
    );
    assert_eq!(
        store.get_job(pending.id).unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert!(store.get_job(kept.id).unwrap().is_some());
    let again = store.fail_stale_batch(cutoff, now).unwrap();
    assert_eq!(
        again,
        SweepBatch {
            changed: 0,
            last: true
        }
    );
}

#[test]
fn sqlite_sweeps_go_in_bounded_batches() {
    sweeps_go_in_bounded_batches(Backend::Sqlite);
}

#[test]
fn postgres_sweeps_go_in_bounded_batches() {
    sweeps_go_in_bounded_batches(Backend::Postgres);
}
