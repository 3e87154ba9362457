//! Change notification for long-polls: "job N changed". One small interface,
//! `Store::on_job_change`, over two mechanisms:
//!
//! - every backend: the store announces the changes it makes itself, at once;
//! - PostgreSQL: a trigger `pg_notify`s every change in its own transaction (whoever makes
//!   it: another replica, the reaper, hand-written SQL), and a listener thread on a dedicated
//!   connection (outside the pool) forwards what arrives. libpq offers no blocking wait
//!   through diesel, so the listener polls every [`LISTEN_POLL`]; that is its latency.
//!
//! A listener that loses its connection reconnects (with back-off) and then reports
//! [`Change::Resync`], since notifications sent meanwhile are lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::StoreError;

/// How often the PostgreSQL listener looks for notifications.
pub const LISTEN_POLL: Duration = Duration::from_millis(10);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The job with this id was created, updated or deleted.
    Job(i64),
    /// Changes may have been missed (the listener reconnected): re-check everything.
    Resync,
}

type Callback = Arc<dyn Fn(Change) + Send + Sync>;

/// The change feed of a store: its subscribers, which hear the store's own changes at once
/// and, on PostgreSQL, every replica's through a listener thread.
#[derive(Default)]
pub(crate) struct ChangeFeed {
    callbacks: Arc<RwLock<Vec<Callback>>>,
}

/// Stops the listener thread when dropped.
pub struct ChangeListener {
    stop: Arc<AtomicBool>,
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ChangeFeed {
    /// Tells every subscriber.
    pub(crate) fn announce(&self, change: Change) {
        announce(&self.callbacks, change);
    }

    /// Adds `callback`; with `listen_on` (a PostgreSQL URL) also starts a listener thread
    /// that forwards the notifications of that database until the handle is dropped.
    pub(crate) fn subscribe(
        &self,
        callback: impl Fn(Change) + Send + Sync + 'static,
        listen_on: Option<&str>,
    ) -> Result<ChangeListener, StoreError> {
        self.callbacks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(url) = listen_on {
            let (url, callbacks, flag) = (url.to_owned(), self.callbacks.clone(), stop.clone());
            // Connect once now so that a listener that cannot work is reported at start-up.
            let conn = listen(&url)?;
            std::thread::Builder::new()
                .name("asyncstatus-listen".into())
                .spawn(move || listen_loop(conn, &url, &callbacks, &flag))
                .map_err(|e| StoreError::Setup(format!("starting the change listener: {e}")))?;
        }
        Ok(ChangeListener { stop })
    }
}

fn announce(callbacks: &RwLock<Vec<Callback>>, change: Change) {
    let callbacks = callbacks.read().unwrap_or_else(|p| p.into_inner());
    for callback in callbacks.iter() {
        callback(change);
    }
}

fn listen(url: &str) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::establish(url)
        .map_err(|e| StoreError::Unavailable(format!("change listener: {e}")))?;
    conn.batch_execute("LISTEN async_status")
        .map_err(|e| StoreError::Unavailable(format!("change listener: {e}")))?;
    Ok(conn)
}

fn listen_loop(
    mut conn: PgConnection,
    url: &str,
    callbacks: &RwLock<Vec<Callback>>,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let mut broken = false;
        // Each call consumes what the socket holds; a closed socket is an error here.
        for notification in conn.notifications_iter() {
            match notification {
                Ok(n) => match n.payload.parse::<i64>() {
                    Ok(id) => announce(callbacks, Change::Job(id)),
                    Err(_) => {
                        tracing::warn!(payload = %n.payload, "unexpected async_status notification")
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "change listener lost its connection");
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(backoff);
                match listen(url) {
                    Ok(fresh) => {
                        conn = fresh;
                        backoff = Duration::from_millis(100);
                        tracing::info!("change listener reconnected");
                        announce(callbacks, Change::Resync);
                        break;
                    }
                    Err(e) => {
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        tracing::debug!(error = %e, "change listener reconnecting");
                    }
                }
            }
        }
        std::thread::sleep(LISTEN_POLL);
    }
}
