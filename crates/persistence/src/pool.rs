//! Opening the database: the URL, the one connection type over both backends (diesel's
//! `MultiConnection`) and the r2d2 manager that opens it with each backend's settings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::StoreError;

/// A connection to either backend. Every query is written once against it and runs on
/// both; a `match` reaches the concrete connection only where the SQL differs (the write
/// lock below, the migrations).
#[derive(diesel::MultiConnection)]
pub(crate) enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database engine a [`Store`](crate::Store) talks to.
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
pub(crate) struct Conn {
    pub(crate) conn: DbConn,
    pub(crate) broken: bool,
}

/// An r2d2 manager that picks nothing by guesswork: the backend is chosen from the URL scheme
/// before we get here, so a refused connection or a missing database reaches the user as is.
pub(crate) struct Manager {
    backend: Backend,
    target: String,
    /// Whether PostgreSQL sessions are set to UTC: asyncstatus' own layout, whose times are all
    /// UTC. On a Traffic Ops database the session keeps the server's default zone, in whose
    /// offset Traffic Ops shows its times.
    utc: bool,
}

/// r2d2 needs `std::error::Error` on the manager's error type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn, ConnectError> {
        let (conn, init) = match self.backend {
            Backend::Postgres => (
                PgConnection::establish(&self.target).map(DbConn::Postgres),
                if self.utc {
                    PG_INIT
                } else {
                    PG_INIT_SESSION_ZONE
                },
            ),
            Backend::Sqlite => (
                SqliteConnection::establish(&self.target).map(DbConn::Sqlite),
                SQLITE_INIT,
            ),
        };
        let mut conn = conn.map_err(|e| ConnectError(e.to_string()))?;
        conn.batch_execute(init)
            .map_err(|e| ConnectError(format!("preparing the connection: {e}")))?;
        Ok(Conn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        conn.conn
            .batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || std::thread::panicking()
    }
}

const PG_INIT: &str = "SET TIME ZONE 'UTC'";
/// diesel sets every PostgreSQL session to UTC when it connects; back to the session's own
/// default (the database's, the role's or the server's), as Traffic Ops' sessions have it.
const PG_INIT_SESSION_ZONE: &str = "RESET timezone";
/// `busy_timeout` first, so that what follows waits for a lock another process holds (a new
/// file's switch to WAL may still be refused at once; the pool then connects again).
/// [`SQLITE_BUSY_MS`] is the same timeout.
const SQLITE_INIT: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
/// The busy timeout of [`SQLITE_INIT`], in milliseconds.
pub(crate) const SQLITE_BUSY_MS: u32 = 5000;

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

/// The pool of [`DbConn`]s.
pub(crate) type Pool = r2d2::Pool<Manager>;

/// Checkout statistics: waits and timeouts.
#[derive(Default)]
pub(crate) struct Counters {
    waits: std::sync::atomic::AtomicU64,
    timeouts: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// A connection from `pool`, counting waits and timeouts.
    pub(crate) fn checkout(
        &self,
        pool: &Pool,
    ) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
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

    /// The pool's connections now, with the counts so far.
    pub(crate) fn state(&self, pool: &Pool) -> PoolState {
        use std::sync::atomic::Ordering::Relaxed;
        let state = pool.state();
        PoolState {
            size: pool.max_size(),
            connections: state.connections,
            idle: state.idle_connections,
            waits: self.waits.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }
}

/// Opens the pool. For SQLite the file and its folder are created. One connection is made
/// at once so that a wrong URL, a refused connection or a missing database is reported now.
pub(crate) fn open(
    url: &DatabaseUrl,
    options: &PoolOptions,
    layout: crate::Layout,
) -> Result<Pool, StoreError> {
    let target = match url {
        DatabaseUrl::Sqlite(path) => {
            let target = path.to_str().ok_or_else(|| {
                StoreError::Setup(format!("SQLite path {} is not UTF-8", path.display()))
            })?;
            if target != ":memory:" {
                create_private(path)?;
            }
            target.to_owned()
        }
        DatabaseUrl::Postgres(target) => target.clone(),
    };
    let manager = Manager {
        backend: url.backend(),
        target,
        utc: layout == crate::Layout::Asyncstatus,
    };
    // One connection first, outside the pool and its checkout timeout: a wrong URL, a refused
    // connection or a missing database is reported at once with its cause, and a slow first
    // connect (a new SQLite file's switch to WAL on a busy disk) is waited for, not failed.
    drop(
        r2d2::ManageConnection::connect(&manager)
            .map_err(|e| StoreError::Setup(format!("cannot connect to {url}: {e}")))?,
    );
    Ok(r2d2::Pool::builder()
        .max_size(options.size.max(1))
        .min_idle(Some(1))
        .connection_timeout(options.checkout_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::LoggingErrorHandler))
        .build_unchecked(manager))
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

impl DbConn {
    /// A transaction for a write: on SQLite `BEGIN IMMEDIATE`, so concurrent writers queue on
    /// the write lock instead of failing with "database is locked"; a plain transaction on
    /// PostgreSQL.
    pub(crate) fn write_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            DbConn::Postgres(_) => self.transaction(work),
            DbConn::Sqlite(sqlite) => {
                AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
                self.finish_transaction(work)
            }
        }
    }

    /// A read-only transaction whose statements all see one snapshot: `REPEATABLE READ` on
    /// PostgreSQL (whose default gives each statement its own), a deferred transaction on
    /// SQLite (in WAL mode its first read fixes the snapshot).
    pub(crate) fn snapshot_read<T>(
        &mut self,
        work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            DbConn::Postgres(pg) => {
                AnsiTransactionManager::begin_transaction_sql(
                    pg,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                )?;
                self.finish_transaction(work)
            }
            DbConn::Sqlite(_) => self.transaction(work),
        }
    }

    /// Runs `work` in the transaction just begun, then commits, or rolls back on an error.
    fn finish_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match work(self) {
            Ok(value) => {
                <DbConn as Connection>::TransactionManager::commit_transaction(self)?;
                Ok(value)
            }
            Err(e) => {
                <DbConn as Connection>::TransactionManager::rollback_transaction(self)?;
                Err(e)
            }
        }
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
