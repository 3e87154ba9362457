//! The background work of `database.layout = "traffic_ops"`.
//!
//! - **Waking long-polls.** Traffic Ops' own writes to its `async_status` announce nothing (no
//!   trigger, no NOTIFY, and none may be added), so every `traffic_ops.poll_interval` the jobs
//!   someone waits on — only those, in one query on the primary key — are re-read, and the
//!   waiters of each job that changed since the last read (or is new to the poll) are woken.
//!   The memory held is one copy of each waited-on job, so it is bounded by `jobs.max_waiters`.
//! - **Failing stuck jobs.** With `traffic_ops.fail_stuck_after` set, every
//!   `jobs.reaper_interval` the jobs still `PENDING` that long after their `start_time` are
//!   failed, saying they were abandoned and since when. Traffic Ops never deletes its jobs and
//!   neither does asyncstatus in this layout: there is no retention purge.

use std::collections::HashMap;

use actix_web::web;
use asyncstatus_persistence::{Change, TrafficOpsJob};

use crate::state::AppState;

/// The most stuck jobs failed in one statement.
pub const STUCK_BATCH: i64 = 500;

/// Re-reads the waited-on jobs every `traffic_ops.poll_interval` and wakes their waiters when
/// they changed. Runs until the process ends.
pub async fn poll_waited(state: web::Data<AppState>) {
    let period = state.settings.traffic_ops.poll_interval;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<i64, TrafficOpsJob> = HashMap::new();
    // Failures in a row: the first is a warning, the rest wait for the recovery's line.
    let mut failing = 0_u64;
    loop {
        ticker.tick().await;
        let ids = state.waiters.waited_ids();
        if ids.is_empty() {
            seen.clear();
            continue;
        }
        let read = ids.clone();
        let jobs = match state
            .db
            .run(move |store| store.traffic_ops_jobs(&read))
            .await
        {
            Ok(jobs) => {
                if failing > 0 {
                    tracing::info!(
                        failed = failing,
                        "re-reading waited-on Traffic Ops jobs works again"
                    );
                    failing = 0;
                }
                jobs
            }
            Err(e) => {
                if failing == 0 {
                    tracing::warn!(error = %e, "re-reading waited-on Traffic Ops jobs failed; retrying every traffic_ops.poll_interval");
                } else {
                    tracing::debug!(error = %e, "re-reading waited-on Traffic Ops jobs failed again");
                }
                failing += 1;
                continue;
            }
        };
        for id in changed(&mut seen, &ids, jobs) {
            state.waiters.wake(Change::Job(id));
        }
    }
}

/// The ids among `ids` whose job differs from the copy in `seen` (or has none there, or is
/// gone); `seen` then holds the jobs just read, and nothing else.
fn changed(
    seen: &mut HashMap<i64, TrafficOpsJob>,
    ids: &[i64],
    jobs: Vec<TrafficOpsJob>,
) -> Vec<i64> {
    // The jobs read are among `ids` (the query asks for those only).
    let fresh: HashMap<i64, TrafficOpsJob> = jobs.into_iter().map(|j| (j.id, j)).collect();
    let woken = ids
        .iter()
        .copied()
        .filter(|id| match (seen.get(id), fresh.get(id)) {
            (Some(old), Some(new)) => old != new,
            (None, None) => false,
            _ => true,
        })
        .collect();
    *seen = fresh;
    woken
}

/// Fails the Traffic Ops jobs stuck in `PENDING` past `traffic_ops.fail_stuck_after`, every
/// `jobs.reaper_interval` (the first sweep at once). Does nothing when it is 0.
pub async fn fail_stuck(state: web::Data<AppState>) {
    let after = state.settings.traffic_ops.fail_stuck_after;
    if after.is_zero() {
        return;
    }
    let Ok(after_chrono) = chrono::Duration::from_std(after) else {
        tracing::warn!(
            ?after,
            "traffic_ops.fail_stuck_after is too long; never failing stuck jobs"
        );
        return;
    };
    let mut ticker = tokio::time::interval(state.settings.jobs.reaper_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor = 0_i64;
    loop {
        ticker.tick().await;
        match sweep_stuck(&state, cursor, after_chrono).await {
            Ok((next, failed)) => {
                cursor = next;
                if failed > 0 {
                    tracing::info!(
                        failed,
                        "failed stuck Traffic Ops jobs (traffic_ops.fail_stuck_after)"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "failing stuck Traffic Ops jobs failed; retrying next interval")
            }
        }
    }
}

/// One sweep from `cursor`: fails the stuck jobs in batches and wakes their waiters; the
/// cursor for the next sweep and how many jobs were failed.
pub async fn sweep_stuck(
    state: &AppState,
    cursor: i64,
    after: chrono::Duration,
) -> Result<(i64, usize), crate::http::error::ApiError> {
    let cutoff = chrono::Utc::now() - after;
    let mut failed = 0;
    let mut from = cursor;
    loop {
        let batch = state
            .db
            .run(move |store| store.fail_stuck_traffic_ops_jobs(from, cutoff, STUCK_BATCH))
            .await?;
        failed += batch.len();
        // The next batch starts past this one's: each row is read once per sweep.
        from = batch.iter().map(|j| j.id + 1).max().unwrap_or(from);
        for job in &batch {
            tracing::info!(
                id = job.id,
                message = job.message.as_deref().unwrap_or(""),
                "failed a stuck Traffic Ops job"
            );
            state.waiters.wake(Change::Job(job.id));
        }
        if (batch.len() as i64) < STUCK_BATCH {
            break;
        }
    }
    let next = state
        .db
        .run(move |store| store.traffic_ops_sweep_cursor(cursor))
        .await?;
    Ok((next, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn job(id: i64, status: &str) -> TrafficOpsJob {
        TrafficOpsJob {
            id,
            status: status.into(),
            message: None,
            start_time: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            end_time: None,
            start_offset: 0,
            end_offset: None,
        }
    }

    #[test]
    fn only_new_changed_and_vanished_jobs_are_woken_and_only_waited_ones_are_kept() {
        let mut seen = HashMap::new();
        // First sight: woken (it may have changed since its waiter read it).
        assert_eq!(
            changed(
                &mut seen,
                &[1, 2],
                vec![job(1, "PENDING"), job(2, "PENDING")]
            ),
            [1, 2]
        );
        // Nothing changed: nobody woken.
        assert!(changed(
            &mut seen,
            &[1, 2],
            vec![job(1, "PENDING"), job(2, "PENDING")]
        )
        .is_empty());
        // 2 finished, 1 vanished, 3 never existed.
        assert_eq!(
            changed(&mut seen, &[1, 2, 3], vec![job(2, "SUCCEEDED")]),
            [1, 2]
        );
        // 2 no longer waited on: forgotten.
        assert_eq!(changed(&mut seen, &[1], vec![]), Vec::<i64>::new());
        assert!(seen.is_empty());
    }
}
