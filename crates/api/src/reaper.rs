//! The background sweep: fail jobs left `PENDING` too long, delete finished jobs past
//! retention, forget expired session revocations. Every step is a conditional statement in the
//! database, so several replicas may sweep at once; nothing is held in memory, so jobs of a
//! killed process are caught by whichever replica sweeps next.

use std::time::Duration;

use actix_web::web;
use asyncstatus_persistence::now_micros;

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

/// One sweep.
pub async fn sweep(state: &web::Data<AppState>) -> Result<Sweep, ApiError> {
    let (stale_after, retention) = (
        state.settings.jobs.stale_after,
        state.settings.jobs.retention,
    );
    state
        .db
        .run(move |store| {
            let now = now_micros();
            let abandoned = store.fail_stale_jobs(before(now, stale_after), now)?;
            let purged = if retention.is_zero() {
                0
            } else {
                store.purge_finished_jobs(before(now, retention))?
            };
            store.purge_expired_revocations(now)?;
            Ok::<_, asyncstatus_persistence::StoreError>(Sweep { abandoned, purged })
        })
        .await
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
