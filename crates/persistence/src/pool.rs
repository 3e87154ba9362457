//! Opening the database: the URL, the r2d2 pool of either backend, and the one macro through
//! which every repository function gets a connection.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::StoreError;

/// Runs `$body` with `$conn` bound to `&mut` the concrete connection of the store's backend.
/// The body is compiled once per backend, so any diesel query works on both. A body that
/// fails with `Unavailable` marks its connection broken so the pool replaces it.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {{
        match &*$store.pools {
            $crate::pool::Pools::Postgres(pool) => {
                let mut pooled = $store.counters.checkout(pool)?;
                let result = {
                    let $conn = &mut pooled.conn;
                    $body
                };
                if let Err(e) = &result {
                    pooled.broken |= $crate::StoreError::breaks_connection(e);
                }
                result
            }
            $crate::pool::Pools::Sqlite(pool) => {
                let mut pooled = $store.counters.checkout(pool)?;
                let result = {
                    let $conn = &mut pooled.conn;
                    $body
                };
                if let Err(e) = &result {
                    pooled.broken |= $crate::StoreError::breaks_connection(e);
                }
                result
            }
        }
    }};
}
pub(crate) use with_conn;

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A parsed `database.url`: `sqlite://PATH` (relative or, with a third slash, absolute) or
/// `postgres://…` / `postgresql://…`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses a URL; the error says which schemes are understood.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Setup(
                    "database.url 'sqlite://' needs a file path, e.g. sqlite://data/asyncstatus.db"
                        .into(),
                ));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(StoreError::Setup(format!(
                "database.url must start with sqlite:// or postgres:// (got '{}')",
                redact(url)
            )))
        }
    }

    /// The backend this URL names.
    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Shows a URL without its password.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub size: u32,
    pub checkout_timeout: Duration,
}

/// A pooled connection and whether it broke.
pub(crate) struct Conn<C> {
    pub(crate) conn: C,
    pub(crate) broken: bool,
}

/// An r2d2 manager that picks nothing by guesswork: the backend is chosen from the URL scheme
/// before we get here, so a refused connection or a missing database reaches the user as is.
pub(crate) struct Manager<C> {
    target: String,
    init: &'static str,
    _conn: PhantomData<fn() -> C>,
}

/// r2d2 needs `std::error::Error` on the manager's error type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

impl<C: Connection + SimpleConnection + Send + 'static> r2d2::ManageConnection for Manager<C> {
    type Connection = Conn<C>;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn<C>, ConnectError> {
        let mut conn = C::establish(&self.target).map_err(|e| ConnectError(e.to_string()))?;
        conn.batch_execute(self.init)
            .map_err(|e| ConnectError(format!("preparing the connection: {e}")))?;
        Ok(Conn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn<C>) -> Result<(), ConnectError> {
        conn.conn
            .batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut Conn<C>) -> bool {
        conn.broken || std::thread::panicking()
    }
}

const PG_INIT: &str = "SET TIME ZONE 'UTC'";
/// `busy_timeout` first, so that what follows waits for a lock another process holds (a new
/// file's switch to WAL may still be refused at once; the pool then connects again).
/// [`SQLITE_BUSY_MS`] is the same timeout.
const SQLITE_INIT: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
/// The busy timeout of [`SQLITE_INIT`], in milliseconds.
pub(crate) const SQLITE_BUSY_MS: u32 = 5000;

pub(crate) enum Pools {
    Postgres(r2d2::Pool<Manager<PgConnection>>),
    Sqlite(r2d2::Pool<Manager<SqliteConnection>>),
}

/// The database: a pool of connections to one backend and the repository functions on it.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pools: std::sync::Arc<Pools>,
    pub(crate) counters: std::sync::Arc<Counters>,
    pub(crate) subscribers: std::sync::Arc<crate::changes::Subscribers>,
    url: DatabaseUrl,
}

/// Connections open and idle, and how checkouts went, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// The most connections the pool opens.
    pub size: u32,
    /// Connections open now.
    pub connections: u32,
    /// Open connections not checked out now.
    pub idle: u32,
    /// Checkouts that had to wait for a connection (more than a millisecond).
    pub waits: u64,
    /// Checkouts that gave up after the checkout timeout.
    pub timeouts: u64,
}

/// Checkout statistics.
#[derive(Default)]
pub(crate) struct Counters {
    waits: std::sync::atomic::AtomicU64,
    timeouts: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// A connection from `pool`, counting waits and timeouts.
    pub(crate) fn checkout<M: r2d2::ManageConnection>(
        &self,
        pool: &r2d2::Pool<M>,
    ) -> Result<r2d2::PooledConnection<M>, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        let result = pool.get();
        if started.elapsed() > Duration::from_millis(1) {
            self.waits.fetch_add(1, Relaxed);
        }
        result.map_err(|e| {
            self.timeouts.fetch_add(1, Relaxed);
            checkout_failed(e)
        })
    }
}

impl Store {
    /// Opens the pool. For SQLite the file and its folder are created. One connection is made
    /// at once so that a wrong URL, a refused connection or a missing database is reported now.
    pub fn open(url: &DatabaseUrl, options: &PoolOptions) -> Result<Store, StoreError> {
        let size = options.size.max(1);
        fn builder<M: r2d2::ManageConnection>(
            size: u32,
            options: &PoolOptions,
        ) -> r2d2::Builder<M> {
            r2d2::Pool::builder()
                .max_size(size)
                .min_idle(Some(1))
                .connection_timeout(options.checkout_timeout)
                .test_on_check_out(false)
                .error_handler(Box::new(r2d2::LoggingErrorHandler))
        }
        let fail = |e: r2d2::Error| StoreError::Setup(format!("cannot connect to {url}: {e}"));
        let pools = match url {
            DatabaseUrl::Sqlite(path) => {
                let target = path.to_str().ok_or_else(|| {
                    StoreError::Setup(format!("SQLite path {} is not UTF-8", path.display()))
                })?;
                if target != ":memory:" {
                    create_private(path)?;
                }
                let manager = Manager {
                    target: target.to_owned(),
                    init: SQLITE_INIT,
                    _conn: PhantomData,
                };
                Pools::Sqlite(builder(size, options).build(manager).map_err(fail)?)
            }
            DatabaseUrl::Postgres(target) => {
                let manager = Manager {
                    target: target.clone(),
                    init: PG_INIT,
                    _conn: PhantomData,
                };
                Pools::Postgres(builder(size, options).build(manager).map_err(fail)?)
            }
        };
        Ok(Store {
            pools: std::sync::Arc::new(pools),
            counters: Default::default(),
            subscribers: Default::default(),
            url: url.clone(),
        })
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
        let (state, size) = match &*self.pools {
            Pools::Postgres(p) => (p.state(), p.max_size()),
            Pools::Sqlite(p) => (p.state(), p.max_size()),
        };
        use std::sync::atomic::Ordering::Relaxed;
        PoolState {
            size,
            connections: state.connections,
            idle: state.idle_connections,
            waits: self.counters.waits.load(Relaxed),
            timeouts: self.counters.timeouts.load(Relaxed),
        }
    }

    /// Runs a read, again on another connection each time the connection it got turns out
    /// to be lost (after a database restart every idle connection is), at most once per
    /// connection the pool holds. Only for reads: a write's outcome on a lost connection is
    /// unknown.
    pub(crate) fn read<T>(
        &self,
        read: impl Fn() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut result = read();
        if matches!(result, Err(StoreError::ConnectionLost(_))) {
            for _ in 0..self.pool_state().size {
                result = read();
                if !matches!(result, Err(StoreError::ConnectionLost(_))) {
                    break;
                }
            }
        }
        result
    }
}

/// Creates the SQLite file (and its missing folders) readable by this user only: it holds
/// password hashes. Folders the service creates are `0700`, a new database file `0600`;
/// SQLite gives its `-wal` and `-shm` files the database file's mode. An existing file
/// keeps the mode its owner chose (a warning says when others can read it).
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                StoreError::Setup(format!("cannot create folder {}: {e}", dir.display()))
            })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        file = %path.display(),
                        mode = format!("{mode:o}"),
                        "the SQLite database (which holds password hashes) is readable by \
                         other users; chmod 600 it"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Setup(format!(
            "cannot create the SQLite database {}: {e}",
            path.display()
        ))),
    }
}

/// Turns a pool checkout failure into `Unavailable` with the cause r2d2 reports.
pub(crate) fn checkout_failed(e: r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("no connection available: {e}"))
}

/// A transaction for a write: on SQLite `BEGIN IMMEDIATE`, so concurrent writers queue on the
/// write lock instead of failing with "database is locked"; a plain transaction on PostgreSQL.
pub(crate) trait WriteTransaction: Connection {
    fn write_transaction<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>;
}

/// A read-only transaction whose statements all see one snapshot: `REPEATABLE READ` on
/// PostgreSQL (whose default gives each statement its own), a deferred transaction on SQLite
/// (in WAL mode its first read fixes the snapshot).
pub(crate) trait SnapshotRead: Connection {
    fn snapshot_read<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>;
}

impl SnapshotRead for PgConnection {
    fn snapshot_read<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>,
    {
        self.build_transaction()
            .repeatable_read()
            .read_only()
            .run(f)
    }
}

impl SnapshotRead for SqliteConnection {
    fn snapshot_read<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>,
    {
        self.transaction(f)
    }
}

impl WriteTransaction for PgConnection {
    fn write_transaction<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>,
    {
        self.transaction(f)
    }
}

impl WriteTransaction for SqliteConnection {
    fn write_transaction<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Self) -> Result<T, StoreError>,
    {
        self.immediate_transaction(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/a.db").ok(),
            Some(DatabaseUrl::Sqlite("data/a.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/a.db").ok(),
            Some(DatabaseUrl::Sqlite("/var/lib/a.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db")
                .map(|u| u.backend())
                .ok(),
            Some(Backend::Postgres)
        );
        for bad in ["", "sqlite://", "mysql://x", "data/a.db"] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/as").ok();
        let shown = url.map(|u| format!("{u} {u:?}")).unwrap_or_default();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/as"), "{shown}");
    }
}
