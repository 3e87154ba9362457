//! What every handler shares, and the one helper that runs blocking work off the async workers.

use std::sync::Arc;

use actix_web::web;
use asyncstatus_auth::Authenticator;
use asyncstatus_persistence::{ChangeListener, Store};
use tokio::sync::Semaphore;

use crate::http::error::ApiError;
use crate::settings::Settings;

/// Shared application state (behind `web::Data`).
pub struct AppState {
    pub store: Store,
    pub auth: Authenticator,
    pub settings: Settings,
    /// Bounds concurrent password derivations (16 MiB and ~50 ms of CPU each), so logins
    /// cannot starve other requests of threads, CPU or memory; and the queue waiting for them.
    pub login_slots: crate::logins::LoginSlots,
    /// Bounds concurrent database work to the pool size (see [`AppState::db`]).
    pub db_slots: Arc<Semaphore>,
    /// Long-poll waiters, woken by the store's change feed.
    pub waiters: Arc<crate::waiters::Waiters>,
    pub metrics: crate::metrics::Metrics,
    /// Job reads waiting to be looked up together (see [`crate::reads`]).
    pub reads: crate::reads::JobReads,
    /// Keeps the change feed's listener running while the application lives.
    pub _listener: ChangeListener,
}

/// THE way to the database from a request (implemented for the handlers' `web::Data`).
pub trait Database {
    /// Runs `work` on the blocking thread pool, at most `database.pool_size` at a time (the
    /// others wait as futures, holding no thread), so threads do not pile up on the pool's
    /// lock. The pool's checkout timeout bounds the wait for a connection, and
    /// `server.request_timeout` the whole (waiting for a slot included): 503 past either.
    /// Long-poll waits happen outside and do not count. The slot moves into the blocking work
    /// and is released when that ends, also when the request was dropped meanwhile (its
    /// client hung up, or the timeout passed), so abandoned requests cannot pile up work.
    fn db<T, E, F>(&self, work: F) -> impl std::future::Future<Output = Result<T, ApiError>>
    where
        F: FnOnce(&AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static;
}

impl Database for web::Data<AppState> {
    async fn db<T, E, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let state = self.clone();
        let run = async move {
            let slot = state
                .db_slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ApiError::internal(format!("database slots closed: {e}")))?;
            let worker = state.clone();
            blocking(move || {
                let _slot = slot;
                work(&worker)
            })
            .await
        };
        tokio::time::timeout(self.settings.server.request_timeout, run)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("database work passed server.request_timeout");
                Err(ApiError::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the request took longer than the server allows (server.request_timeout); try again",
                ))
            })
    }
}

/// Runs blocking work (diesel, scrypt) on the blocking thread pool and maps its error. A
/// panic inside becomes a 500 with the cause logged, never a dead worker.
pub async fn blocking<T, E, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match actix_web::web::block(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::internal(format!("blocking task failed: {e}"))),
    }
}
