//! Test support (feature `testing`): a fresh, empty database per test, on either backend,
//! removed when dropped.
//!
//! PostgreSQL tests need `ASYNCSTATUS_TEST_DATABASE_URL`, a URL of a cluster where we may
//! create databases (`make test` starts a throwaway one and sets it). Without it they are
//! skipped, unless `ASYNCSTATUS_TEST_REQUIRE_PG=1`, which makes them fail. Every test that needs
//! PostgreSQL has `postgres` in its path, so that `scripts/run-tests` filters them out and the
//! runner reports them as skipped, not passed; one that returns early without the cluster and
//! lacks the word in its name fails, naming the rule.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::{Backend, DatabaseUrl};

/// A producer's update of job `id` to `status` at `at`, with neither message nor progress (a
/// heartbeat when `status` is `PENDING`, else the job's finish); panics when the store refuses.
pub fn set_job_status(
    store: &crate::Store,
    id: i64,
    status: asyncstatus_domain::JobStatus,
    at: chrono::DateTime<chrono::Utc>,
) {
    let update = asyncstatus_domain::JobUpdate {
        status,
        message: None,
        progress: None,
    };
    store
        .update_job(id, &update, at)
        .expect("updating a test job");
}

/// Runs a sweep's `batch` (`Store::fail_stale_batch`, `Store::purge_finished_batch`) until it
/// reports its last, without the rest the service's reaper takes between batches; how many jobs
/// the batches changed.
pub fn all_batches(
    mut batch: impl FnMut() -> Result<crate::SweepBatch, crate::StoreError>,
) -> Result<usize, crate::StoreError> {
    let mut changed = 0;
    loop {
        let done = batch()?;
        changed += done.changed;
        if done.last {
            return Ok(changed);
        }
    }
}

/// Traffic Ops' tables, triggers and seeded roles and permissions (see the file's header).
pub const TRAFFIC_OPS_FIXTURE: &str = include_str!("testing_fixtures/traffic_ops.sql");

/// The variable naming the PostgreSQL cluster tests may use.
pub const PG_URL_VAR: &str = "ASYNCSTATUS_TEST_DATABASE_URL";
/// Set to `1` to make PostgreSQL tests fail instead of skipping when there is no cluster.
pub const REQUIRE_PG_VAR: &str = "ASYNCSTATUS_TEST_REQUIRE_PG";

/// A database that exists for one test.
pub struct TestDatabase {
    url: DatabaseUrl,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDb { admin_url: String, name: String },
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The admin URL of the test cluster, or `None` (with a note on stderr) when PostgreSQL tests
/// are to be skipped. Panics when they are required and no URL is set.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(REQUIRE_PG_VAR).as_deref() == Ok("1") => panic!(
            "{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set: run the tests with `make test`, \
             which starts a throwaway PostgreSQL"
        ),
        _ => {
            // libtest names each test's thread after the test's path.
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("main");
            assert!(
                test == "main" || test.contains("postgres"),
                "{test} needs PostgreSQL but lacks `postgres` in its name: without a cluster \
                 it would pass instead of being reported as skipped (scripts/run-tests skips \
                 the tests named so)"
            );
            eprintln!("SKIPPED (PostgreSQL): {PG_URL_VAR} is not set; `make test` sets it");
            None
        }
    }
}

/// `postgres://u@h:p/olddb?x` with the database replaced by `db`.
pub fn with_database(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{db}{query}")
}

impl TestDatabase {
    /// A fresh database of `backend`, or `None` when PostgreSQL tests are skipped.
    pub fn new(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(TestDatabase::sqlite()),
            Backend::Postgres => TestDatabase::postgres(),
        }
    }

    /// A new SQLite file in its own temporary folder.
    pub fn sqlite() -> TestDatabase {
        let dir = std::env::temp_dir().join(format!("asyncstatus-test-{}", unique_suffix()));
        TestDatabase {
            url: DatabaseUrl::Sqlite(dir.join("asyncstatus.db")),
            cleanup: Cleanup::SqliteDir(dir),
        }
    }

    /// A new database on the test cluster, or `None` when PostgreSQL tests are skipped.
    pub fn postgres() -> Option<TestDatabase> {
        let admin_url = postgres_admin_url()?;
        let name = format!("asyncstatus_test_{}", unique_suffix());
        let mut admin =
            PgConnection::establish(&admin_url).expect("connecting to the test PostgreSQL cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        Some(TestDatabase {
            url: DatabaseUrl::Postgres(with_database(&admin_url, &name)),
            cleanup: Cleanup::PostgresDb { admin_url, name },
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A store on this database with a small pool of its own (each call opens a new pool,
    /// which sees the schema as it is now).
    pub fn open_store(&self) -> crate::Store {
        crate::Store::open(
            &self.url,
            &crate::PoolOptions {
                size: 2,
                checkout_timeout: std::time::Duration::from_secs(5),
            },
        )
        .expect("opening a store on the test database")
    }

    /// [`TestDatabase::open_store`], migrated.
    pub fn migrated_store(&self) -> crate::Store {
        let store = self.open_store();
        store.run_migrations().expect("migrating the test database");
        store
    }

    /// Runs SQL on a connection of its own, outside the store (seeding, dropping an index).
    pub fn execute_sql(&self, sql: &str) {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .expect("connecting to the test database")
                .batch_execute(sql),
            DatabaseUrl::Sqlite(path) => {
                diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .expect("opening the test database")
                    .batch_execute(sql)
            }
        }
        .unwrap_or_else(|e| panic!("running {sql:.200}: {e}"));
    }

    /// A new PostgreSQL database holding Traffic Ops' tables and seeded roles
    /// ([`TRAFFIC_OPS_FIXTURE`]), or `None` when PostgreSQL tests are skipped.
    pub fn traffic_ops() -> Option<TestDatabase> {
        let db = TestDatabase::postgres()?;
        db.execute_sql(TRAFFIC_OPS_FIXTURE);
        Some(db)
    }

    /// A store on this Traffic Ops database in `database.layout = "traffic_ops"`.
    pub fn open_traffic_ops_store(&self) -> crate::Store {
        crate::Store::open_layout(
            &self.url,
            &crate::PoolOptions {
                size: 2,
                checkout_timeout: std::time::Duration::from_secs(5),
            },
            crate::Layout::TrafficOps,
        )
        .expect("opening a Traffic Ops store on the test database")
    }

    /// Sets the default time zone of this database's new sessions (`ALTER DATABASE … SET
    /// timezone`), in which Traffic Ops shows its times.
    pub fn set_session_time_zone(&self, zone: &str) {
        self.execute_sql(&format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone TO %L', \
             current_database(), '{}'); END $$",
            zone.replace('\'', "''")
        ));
    }

    /// Adds a Traffic Ops user of the seeded role `role` (in the root tenant) with the
    /// `local_passwd` hash given, as Traffic Ops' user creation stores it.
    pub fn add_traffic_ops_user(&self, username: &str, role: &str, local_passwd: Option<&str>) {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
        self.execute_sql(&format!(
            "INSERT INTO tm_user (username, role, local_passwd, confirm_local_passwd, tenant_id) \
             SELECT {user}, r.id, {hash}, {hash}, 1 FROM role r WHERE r.name = {role}",
            user = quote(username),
            hash = local_passwd.map_or("NULL".into(), quote),
            role = quote(role),
        ));
    }

    /// Starts a job as Traffic Ops does (`PENDING` with `message`, committed at once); its id.
    pub fn insert_traffic_ops_job(&self, message: &str) -> i64 {
        use diesel::sql_types::{BigInt, Text};
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let mut pg = self.pg_connection();
        diesel::sql_query(
            "INSERT INTO async_status (status, message) VALUES ('PENDING', $1) RETURNING id",
        )
        .bind::<Text, _>(message)
        .get_result::<Id>(&mut pg)
        .expect("inserting a Traffic Ops job")
        .id
    }

    /// Updates a job as Traffic Ops does: status and message, and `end_time = now()` when the
    /// status is final; no state guard.
    pub fn update_traffic_ops_job(&self, id: i64, status: &str, message: &str) {
        use diesel::sql_types::{BigInt, Text};
        let sql = if matches!(status, "SUCCEEDED" | "FAILED") {
            "UPDATE async_status SET status = $1, message = $2, end_time = now() WHERE id = $3"
        } else {
            "UPDATE async_status SET status = $1, message = $2 WHERE id = $3"
        };
        let mut pg = self.pg_connection();
        diesel::sql_query(sql)
            .bind::<Text, _>(status)
            .bind::<Text, _>(message)
            .bind::<BigInt, _>(id)
            .execute(&mut pg)
            .expect("updating a Traffic Ops job");
    }

    /// `pg_dump --schema-only --no-owner` of the schema `schema` of this PostgreSQL database
    /// (the test cluster's pg_dump when `ASYNCSTATUS_TEST_PG_BINDIR` names it), without the
    /// `\restrict` lines whose key changes with every run.
    pub fn schema_dump(&self, schema: &str) -> String {
        let bin = std::env::var("ASYNCSTATUS_TEST_PG_BINDIR")
            .map(|dir| format!("{dir}/pg_dump"))
            .unwrap_or_else(|_| "pg_dump".into());
        let out = std::process::Command::new(bin)
            .args([
                "--schema-only",
                "--no-owner",
                "--schema",
                schema,
                "--dbname",
            ])
            .arg(self.url_string())
            .output()
            .expect("running pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("pg_dump writes UTF-8")
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A connection of its own to this PostgreSQL database.
    pub fn pg_connection(&self) -> PgConnection {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                PgConnection::establish(url).expect("connecting to the test database")
            }
            DatabaseUrl::Sqlite(_) => panic!("a PostgreSQL connection to a SQLite test database"),
        }
    }

    /// The URL as text, for settings and the CLI.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDb { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

impl crate::Store {
    /// Takes one connection out of the pool and keeps it until the returned guard is dropped,
    /// so tests can exhaust a small pool.
    pub fn hold_connection(&self) -> Result<Box<dyn std::any::Any + Send>, crate::StoreError> {
        let guard = self.pool.get().map_err(crate::pool::checkout_failed)?;
        Ok(Box::new(guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/x?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t3"), "postgres://h:1/t3");
    }
}
