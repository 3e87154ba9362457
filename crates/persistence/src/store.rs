//! The [`Store`]: the pool, its checkout statistics and the change feed, and the two ways a
//! repository function gets a connection ([`Store::with_conn`], [`Store::read`]).

use std::sync::Arc;

use crate::changes::{ChangeFeed, ChangeListener};
use crate::pool::{self, Counters, DbConn, Pool};
use crate::{Backend, Change, DatabaseUrl, PoolOptions, PoolState, StoreError};

/// Whose tables the store works on (`database.layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// asyncstatus' own tables and migrations (`migrations/postgres`, `migrations/sqlite`).
    #[default]
    Asyncstatus,
    /// A Traffic Ops database (PostgreSQL only): its tables are read and written, never
    /// altered; asyncstatus' own state is in the schema `asyncstatus`, made by
    /// `migrations/traffic_ops`.
    TrafficOps,
}

/// The database: a pool of connections to one backend and the repository functions on it.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    counters: Arc<Counters>,
    changes: Arc<ChangeFeed>,
    url: DatabaseUrl,
    layout: Layout,
}

impl Store {
    /// Opens the pool. For SQLite the file and its folder are created. One connection is made
    /// at once so that a wrong URL, a refused connection or a missing database is reported now.
    pub fn open(url: &DatabaseUrl, options: &PoolOptions) -> Result<Store, StoreError> {
        Store::open_layout(url, options, Layout::Asyncstatus)
    }

    /// [`Store::open`] on the tables of `layout`; [`Layout::TrafficOps`] needs PostgreSQL.
    pub fn open_layout(
        url: &DatabaseUrl,
        options: &PoolOptions,
        layout: Layout,
    ) -> Result<Store, StoreError> {
        if layout == Layout::TrafficOps && url.backend() != Backend::Postgres {
            return Err(StoreError::Setup(
                "database.layout = \"traffic_ops\" needs PostgreSQL (Traffic Ops' database); \
                 database.url is a SQLite file"
                    .into(),
            ));
        }
        Ok(Store {
            pool: pool::open(url, options, layout)?,
            counters: Default::default(),
            changes: Default::default(),
            url: url.clone(),
            layout,
        })
    }

    /// Whose tables this store works on.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The backend of this store.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The URL, for messages (Display hides any password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Connections in the pool now.
    pub fn pool_state(&self) -> PoolState {
        self.counters.state(&self.pool)
    }

    /// Calls `callback` for every change to a job: the store's own at once, and on PostgreSQL
    /// every replica's through LISTEN/NOTIFY. Keep the callback short (it runs on the thread
    /// that made the change or on the listener thread). The returned handle stops the
    /// listener when dropped.
    pub fn on_job_change(
        &self,
        callback: impl Fn(Change) + Send + Sync + 'static,
    ) -> Result<ChangeListener, StoreError> {
        let listen_on = match &self.url {
            DatabaseUrl::Postgres(url) => Some(url.as_str()),
            DatabaseUrl::Sqlite(_) => None,
        };
        self.changes.subscribe(callback, listen_on)
    }

    /// Announces a change made through this store.
    pub(crate) fn announce(&self, change: Change) {
        self.changes.announce(change);
    }

    /// Runs `work` on a pooled connection. A failure that leaves the connection unusable
    /// (`Unavailable`, `ConnectionLost`) marks it broken so the pool replaces it.
    pub(crate) fn with_conn<T>(
        &self,
        work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.counters.checkout(&self.pool)?;
        let result = work(&mut pooled.conn);
        if let Err(e) = &result {
            pooled.broken |= e.breaks_connection();
        }
        result
    }

    /// [`Store::with_conn`] in a write transaction (see [`DbConn::write_transaction`]).
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| conn.write_transaction(work))
    }

    /// Runs a read, again on another connection each time the connection it got turns out
    /// to be lost (after a database restart every idle connection is), at most once per
    /// connection the pool holds. Only for reads: a write's outcome on a lost connection is
    /// unknown.
    pub(crate) fn read<T>(
        &self,
        read: impl Fn(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut result = self.with_conn(&read);
        if matches!(result, Err(StoreError::ConnectionLost(_))) {
            for _ in 0..self.pool.max_size() {
                result = self.with_conn(&read);
                if !matches!(result, Err(StoreError::ConnectionLost(_))) {
                    break;
                }
            }
        }
        result
    }
}
