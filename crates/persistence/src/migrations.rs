//! Embedded migrations, one set per backend (`migrations/postgres`, `migrations/sqlite`), and
//! one for a Traffic Ops database (`migrations/traffic_ops`), applied in asyncstatus' own schema
//! with their bookkeeping table there too.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::pool::DbConn;
use crate::{Layout, Store, StoreError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const TRAFFIC_OPS: EmbeddedMigrations = embed_migrations!("../../migrations/traffic_ops");

/// The PostgreSQL schema of asyncstatus' own tables in a Traffic Ops database.
pub const OWN_SCHEMA: &str = "asyncstatus";

/// How long start-up waits for another process's migration by default
/// (`database.migration_lock_timeout`).
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The PostgreSQL advisory lock that serialises the migrations of replicas starting at once.
pub const MIGRATION_LOCK_ID: i64 = 7271401;

/// Per-backend migration details.
trait Migrate: MigrationHarness<Self::Backend> + SimpleConnection + Sized {
    type Backend: diesel::backend::Backend;
    /// Applies the pending migrations of `source` while holding the backend's migration
    /// lock, waiting for it at most `lock_wait`.
    fn migrate_locked(
        &mut self,
        source: EmbeddedMigrations,
        lock_wait: Duration,
    ) -> Result<Vec<String>, StoreError>;
}

fn setup_failed(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Setup(format!("migrating the database: {e}"))
}

fn apply<C: Migrate>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<String>, StoreError> {
    conn.run_pending_migrations(source)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| setup_failed(&e))
}

impl Migrate for PgConnection {
    type Backend = diesel::pg::Pg;

    fn migrate_locked(
        &mut self,
        source: EmbeddedMigrations,
        lock_wait: Duration,
    ) -> Result<Vec<String>, StoreError> {
        with_migration_lock(self, lock_wait, |pg| apply(pg, source))
    }
}

/// Runs `work` holding the PostgreSQL session advisory lock of migrations, waited for under
/// `lock_timeout` so that a replica stuck mid-migration (or anything else holding the lock)
/// stops start-up with a message instead of hanging it.
fn with_migration_lock<T>(
    pg: &mut PgConnection,
    lock_wait: Duration,
    work: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let millis = lock_wait.as_millis().clamp(1, i32::MAX as u128);
    pg.batch_execute(&format!("SET lock_timeout = {millis}"))
        .map_err(|e| setup_failed(&e))?;
    let locked = pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"));
    let reset = pg.batch_execute("SET lock_timeout = 0");
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
    let result = work(pg);
    pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
        .map_err(|e| setup_failed(&e))?;
    result
}

impl Migrate for SqliteConnection {
    type Backend = diesel::sqlite::Sqlite;

    /// The whole run in one `BEGIN IMMEDIATE` transaction: another process migrating the
    /// same file waits for the write lock (at most `lock_wait`), then finds the migrations
    /// applied, instead of failing on "table already exists".
    fn migrate_locked(
        &mut self,
        source: EmbeddedMigrations,
        lock_wait: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let millis = lock_wait.as_millis().clamp(1, i32::MAX as u128);
        self.batch_execute(&format!("PRAGMA busy_timeout = {millis}"))
            .map_err(|e| setup_failed(&e))?;
        let result = self
            .immediate_transaction(|conn| apply(conn, source))
            .map_err(|e| {
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

fn pending<C: Migrate>(
    conn: &mut C,
    source: EmbeddedMigrations,
) -> Result<Vec<String>, StoreError> {
    conn.pending_migrations(source)
        .map(|list| list.iter().map(|m| m.name().to_string()).collect())
        .map_err(|e| StoreError::Unavailable(format!("checking migrations: {e}")))
}

fn known<C: Migrate>(source: EmbeddedMigrations) -> Result<usize, StoreError> {
    MigrationSource::<C::Backend>::migrations(&source)
        .map(|list| list.len())
        .map_err(|e| StoreError::Setup(format!("reading embedded migrations: {e}")))
}

/// Runs `work` with asyncstatus' own schema first in the search path (created first when
/// `create`), so that diesel's bookkeeping table `__diesel_schema_migrations` is found and
/// made there; the connection's search path is reset afterwards, whatever `work` did.
fn in_own_schema<T>(
    pg: &mut PgConnection,
    create: bool,
    work: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if create {
        pg.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {OWN_SCHEMA}"))
            .map_err(|e| setup_failed(&e))?;
    }
    pg.batch_execute(&format!("SET search_path TO {OWN_SCHEMA}"))
        .map_err(|e| setup_failed(&e))?;
    let result = work(pg);
    // A connection left on asyncstatus' schema must not go back to the pool: lost, it is
    // replaced.
    let reset = pg.batch_execute("RESET search_path").map_err(|e| {
        StoreError::ConnectionLost(format!("resetting the search path after migrating: {e}"))
    });
    let value = result?;
    reset?;
    Ok(value)
}

/// Whether asyncstatus' own schema exists yet (before the first migration it does not, and
/// diesel could not make its bookkeeping table to ask).
fn own_schema_exists(pg: &mut PgConnection) -> Result<bool, StoreError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS found")
        .bind::<diesel::sql_types::Text, _>(OWN_SCHEMA)
        .get_result::<Found>(pg)
        .map(|f| f.found)
        .map_err(|e| StoreError::Unavailable(format!("checking migrations: {e}")))
}

/// The names of every migration of `source`.
fn all(source: EmbeddedMigrations) -> Result<Vec<String>, StoreError> {
    MigrationSource::<diesel::pg::Pg>::migrations(&source)
        .map(|list| list.iter().map(|m| m.name().to_string()).collect())
        .map_err(|e| StoreError::Setup(format!("reading embedded migrations: {e}")))
}

impl Store {
    /// Applies every pending migration; returns the versions applied. Waits for another
    /// process's migration at most [`MIGRATION_LOCK_TIMEOUT`].
    pub fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.run_migrations_waiting(MIGRATION_LOCK_TIMEOUT)
    }

    /// [`Store::run_migrations`], waiting at most `lock_wait` for the migration lock. On a
    /// Traffic Ops database only asyncstatus' own schema is created and changed.
    pub fn run_migrations_waiting(&self, lock_wait: Duration) -> Result<Vec<String>, StoreError> {
        let layout = self.layout();
        self.with_conn(|conn| match (conn, layout) {
            (DbConn::Postgres(pg), Layout::Asyncstatus) => pg.migrate_locked(POSTGRES, lock_wait),
            // The schema is made under the lock, so that replicas starting at once do not
            // race to create it.
            (DbConn::Postgres(pg), Layout::TrafficOps) => {
                with_migration_lock(pg, lock_wait, |pg| {
                    in_own_schema(pg, true, |pg| apply(pg, TRAFFIC_OPS))
                })
            }
            (DbConn::Sqlite(sqlite), _) => sqlite.migrate_locked(SQLITE, lock_wait),
        })
    }

    /// The names of migrations not yet applied (empty when the schema is current).
    pub fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let layout = self.layout();
        self.with_conn(|conn| match (conn, layout) {
            (DbConn::Postgres(pg), Layout::Asyncstatus) => pending(pg, POSTGRES),
            (DbConn::Postgres(pg), Layout::TrafficOps) => {
                if own_schema_exists(pg)? {
                    in_own_schema(pg, false, |pg| pending(pg, TRAFFIC_OPS))
                } else {
                    all(TRAFFIC_OPS)
                }
            }
            (DbConn::Sqlite(sqlite), _) => pending(sqlite, SQLITE),
        })
    }

    /// How many migrations this build carries for the store's backend and layout.
    pub fn known_migrations(&self) -> Result<usize, StoreError> {
        match (self.backend(), self.layout()) {
            (crate::Backend::Postgres, Layout::Asyncstatus) => known::<PgConnection>(POSTGRES),
            (crate::Backend::Postgres, Layout::TrafficOps) => known::<PgConnection>(TRAFFIC_OPS),
            (crate::Backend::Sqlite, _) => known::<SqliteConnection>(SQLITE),
        }
    }
}
