//! Embedded migrations, one set per backend (`migrations/postgres`, `migrations/sqlite`).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::pool::DbConn;
use crate::{Store, StoreError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How long start-up waits for another process's migration by default
/// (`database.migration_lock_timeout`).
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The PostgreSQL advisory lock that serialises the migrations of replicas starting at once.
pub const MIGRATION_LOCK_ID: i64 = 7271401;

/// Per-backend migration details.
trait Migrate: MigrationHarness<Self::Backend> + SimpleConnection + Sized {
    type Backend: diesel::backend::Backend;
    const SOURCE: EmbeddedMigrations;
    /// Applies the pending migrations while holding the backend's migration lock, waiting
    /// for it at most `lock_wait`.
    fn migrate_locked(&mut self, lock_wait: Duration) -> Result<Vec<String>, StoreError>;
}

fn setup_failed(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Setup(format!("migrating the database: {e}"))
}

fn apply<C: Migrate>(conn: &mut C) -> Result<Vec<String>, StoreError> {
    conn.run_pending_migrations(C::SOURCE)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| setup_failed(&e))
}

impl Migrate for PgConnection {
    type Backend = diesel::pg::Pg;
    const SOURCE: EmbeddedMigrations = POSTGRES;

    /// A session advisory lock, waited for under `lock_timeout` so that a replica stuck
    /// mid-migration (or anything else holding the lock) stops start-up with a message
    /// instead of hanging it.
    fn migrate_locked(&mut self, lock_wait: Duration) -> Result<Vec<String>, StoreError> {
        let millis = lock_wait.as_millis().clamp(1, i32::MAX as u128);
        self.batch_execute(&format!("SET lock_timeout = {millis}"))
            .map_err(|e| setup_failed(&e))?;
        let locked = self.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"));
        let reset = self.batch_execute("SET lock_timeout = 0");
        if let Err(e) = locked {
            return Err(StoreError::Setup(format!(
                "migrating the database: waited {:?} for the migration lock (PostgreSQL advisory \
                 lock {MIGRATION_LOCK_ID}) and another session still holds it: is another \
                 asyncstatus migrating this database? See pg_locks where locktype = 'advisory' \
                 and objid = {MIGRATION_LOCK_ID}; database.migration_lock_timeout sets the wait \
                 ({e})",
                lock_wait
            )));
        }
        reset.map_err(|e| setup_failed(&e))?;
        let result = apply(self);
        self.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
            .map_err(|e| setup_failed(&e))?;
        result
    }
}

impl Migrate for SqliteConnection {
    type Backend = diesel::sqlite::Sqlite;
    const SOURCE: EmbeddedMigrations = SQLITE;

    /// The whole run in one `BEGIN IMMEDIATE` transaction: another process migrating the
    /// same file waits for the write lock (at most `lock_wait`), then finds the migrations
    /// applied, instead of failing on "table already exists".
    fn migrate_locked(&mut self, lock_wait: Duration) -> Result<Vec<String>, StoreError> {
        let millis = lock_wait.as_millis().clamp(1, i32::MAX as u128);
        self.batch_execute(&format!("PRAGMA busy_timeout = {millis}"))
            .map_err(|e| setup_failed(&e))?;
        let result = self.immediate_transaction(apply).map_err(|e| {
            let cause = e.to_string();
            if cause.contains("database is locked") {
                StoreError::Setup(format!(
                    "migrating the database: waited {lock_wait:?} for the SQLite write lock \
                     and another process still holds it; database.migration_lock_timeout \
                     sets the wait ({cause})"
                ))
            } else {
                e
            }
        });
        self.batch_execute(&format!(
            "PRAGMA busy_timeout = {}",
            crate::pool::SQLITE_BUSY_MS
        ))
        .map_err(|e| setup_failed(&e))?;
        result
    }
}

fn pending<C: Migrate>(conn: &mut C) -> Result<Vec<String>, StoreError> {
    conn.pending_migrations(C::SOURCE)
        .map(|list| list.iter().map(|m| m.name().to_string()).collect())
        .map_err(|e| StoreError::Unavailable(format!("checking migrations: {e}")))
}

fn known<C: Migrate>() -> Result<usize, StoreError> {
    MigrationSource::<C::Backend>::migrations(&C::SOURCE)
        .map(|list| list.len())
        .map_err(|e| StoreError::Setup(format!("reading embedded migrations: {e}")))
}

impl Store {
    /// Applies every pending migration; returns the versions applied. Waits for another
    /// process's migration at most [`MIGRATION_LOCK_TIMEOUT`].
    pub fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.run_migrations_waiting(MIGRATION_LOCK_TIMEOUT)
    }

    /// [`Store::run_migrations`], waiting at most `lock_wait` for the migration lock.
    pub fn run_migrations_waiting(&self, lock_wait: Duration) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| match conn {
            DbConn::Postgres(pg) => pg.migrate_locked(lock_wait),
            DbConn::Sqlite(sqlite) => sqlite.migrate_locked(lock_wait),
        })
    }

    /// The names of migrations not yet applied (empty when the schema is current).
    pub fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| match conn {
            DbConn::Postgres(pg) => pending(pg),
            DbConn::Sqlite(sqlite) => pending(sqlite),
        })
    }

    /// How many migrations this build carries for the store's backend.
    pub fn known_migrations(&self) -> Result<usize, StoreError> {
        match self.backend() {
            crate::Backend::Postgres => known::<PgConnection>(),
            crate::Backend::Sqlite => known::<SqliteConnection>(),
        }
    }
}
