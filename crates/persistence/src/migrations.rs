//! Embedded migrations, one set per backend (`migrations/postgres`, `migrations/sqlite`).

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::pool::with_conn;
use crate::{Store, StoreError};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Per-backend migration details.
trait Migrate: MigrationHarness<Self::Backend> + SimpleConnection {
    type Backend: diesel::backend::Backend;
    const SOURCE: EmbeddedMigrations;
    /// Serialises migrations of several replicas starting at once.
    const LOCK: &'static str;
    const UNLOCK: &'static str;
}

impl Migrate for PgConnection {
    type Backend = diesel::pg::Pg;
    const SOURCE: EmbeddedMigrations = POSTGRES;
    const LOCK: &'static str = "SELECT pg_advisory_lock(7271401)";
    const UNLOCK: &'static str = "SELECT pg_advisory_unlock(7271401)";
}

impl Migrate for SqliteConnection {
    type Backend = diesel::sqlite::Sqlite;
    const SOURCE: EmbeddedMigrations = SQLITE;
    // SQLite's own file locking serialises the migration transactions.
    const LOCK: &'static str = "SELECT 1";
    const UNLOCK: &'static str = "SELECT 1";
}

fn migrate<C: Migrate>(conn: &mut C) -> Result<Vec<String>, StoreError> {
    let fail =
        |e: &dyn std::fmt::Display| StoreError::Setup(format!("migrating the database: {e}"));
    conn.batch_execute(C::LOCK).map_err(|e| fail(&e))?;
    let result = conn
        .run_pending_migrations(C::SOURCE)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| fail(&e));
    conn.batch_execute(C::UNLOCK).map_err(|e| fail(&e))?;
    result
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
    /// Applies every pending migration; returns the versions applied.
    pub fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        with_conn!(self, |conn| migrate(conn))
    }

    /// The names of migrations not yet applied (empty when the schema is current).
    pub fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        with_conn!(self, |conn| pending(conn))
    }

    /// How many migrations this build carries for the store's backend.
    pub fn known_migrations(&self) -> Result<usize, StoreError> {
        match self.backend() {
            crate::Backend::Postgres => known::<PgConnection>(),
            crate::Backend::Sqlite => known::<SqliteConnection>(),
        }
    }
}
