//! THE way to the database from the API: the store, the permits bounding concurrent database
//! work to the pool size, `server.request_timeout`, and the coalesced job reads.

use std::sync::Arc;
use std::time::Duration;

use asyncstatus_domain::AsyncStatus;
use asyncstatus_persistence::Store;
use tokio::sync::Semaphore;

use crate::http::error::ApiError;
use crate::reads::JobReads;

/// A cheap handle (clones share everything).
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    slots: Arc<Semaphore>,
    request_timeout: Duration,
    reads: Arc<JobReads>,
    traffic_ops_reads: Arc<JobReads<asyncstatus_persistence::TrafficOpsJob>>,
}

impl Db {
    /// At most `slots` pieces of work at a time (the pool size).
    pub fn new(store: Store, slots: usize, request_timeout: Duration) -> Self {
        Db {
            inner: Arc::new(Inner {
                store,
                slots: Arc::new(Semaphore::new(slots)),
                request_timeout,
                reads: Arc::default(),
                traffic_ops_reads: Arc::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Permits not taken now (for the tests of abandoned work).
    pub fn available_permits(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Runs `work` on the blocking thread pool, at most `database.pool_size` at a time (the
    /// others wait as futures, holding no thread), so threads do not pile up on the pool's
    /// lock. The pool's checkout timeout bounds the wait for a connection, and
    /// `server.request_timeout` the whole (waiting for a permit included): 503 past either.
    /// Long-poll waits happen outside and do not count. The permit moves into the blocking
    /// work and is released when that ends, also when the request was dropped meanwhile (its
    /// client hung up, or the timeout passed), so abandoned requests cannot pile up work.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let run = async move {
            let permit = inner
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ApiError::internal(format!("database slots closed: {e}")))?;
            blocking(move || {
                let _permit = permit;
                work(&inner.store)
            })
            .await
        };
        tokio::time::timeout(self.inner.request_timeout, run)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("database work passed server.request_timeout");
                Err(ApiError::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the request took longer than the server allows (server.request_timeout); try again",
                ))
            })
    }

    /// The job `id`, read together with the other reads waiting now (see [`crate::reads`]).
    pub async fn job(&self, id: i64) -> Result<Option<AsyncStatus>, ApiError> {
        let db = self.clone();
        self.inner
            .reads
            .job(id, move |ids| {
                let db = db.clone();
                async move { db.run(move |store| store.get_jobs(&ids)).await }
            })
            .await
    }
}

impl Db {
    /// The Traffic Ops job `id` (`database.layout = "traffic_ops"`), read together with the
    /// other reads waiting now, as [`Db::job`].
    pub async fn traffic_ops_job(
        &self,
        id: i64,
    ) -> Result<Option<asyncstatus_persistence::TrafficOpsJob>, ApiError> {
        let db = self.clone();
        self.inner
            .traffic_ops_reads
            .job(id, move |ids| {
                let db = db.clone();
                async move { db.run(move |store| store.traffic_ops_jobs(&ids)).await }
            })
            .await
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
