//! What every handler shares, and the one helper that runs blocking work off the async workers.

use std::sync::Arc;

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
    /// cannot starve other requests of threads, CPU or memory.
    pub login_slots: Semaphore,
    /// Long-poll waiters, woken by the store's change feed.
    pub waiters: Arc<crate::waiters::Waiters>,
    pub metrics: crate::metrics::Metrics,
    /// Keeps the change feed's listener running while the application lives.
    pub _listener: ChangeListener,
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
