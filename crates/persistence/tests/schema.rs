//! The schema the code was written against (`schema.rs`) and the one the migrations create
//! agree, on each backend: every column `schema.rs` names exists and no table has more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{Backend, PoolOptions, Store};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

fn store(db: &TestDatabase) -> Store {
    let store = Store::open(
        db.url(),
        &PoolOptions {
            size: 2,
            checkout_timeout: std::time::Duration::from_secs(5),
        },
    )
    .unwrap();
    store.run_migrations().unwrap();
    store
}

/// (table, the number of columns schema.rs gives it)
const TABLES: [(&str, i64); 8] = [
    ("async_status", 18),
    ("role", 5),
    ("role_capability", 3),
    ("tm_user", 6),
    ("revoked_session", 2),
    ("signing_secret", 3),
    ("job_count", 3),
    ("job_count_delta", 2),
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn columns_in_database(db: &TestDatabase, table: &str) -> i64 {
    let url = db.url_string();
    match db.url().backend() {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let mut conn = SqliteConnection::establish(path).unwrap();
            diesel::sql_query("SELECT count(*) AS n FROM pragma_table_info(?)")
                .bind::<Text, _>(table)
                .get_result::<Count>(&mut conn)
                .unwrap()
                .n
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&url).unwrap();
            diesel::sql_query(
                "SELECT count(*) AS n FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
            )
            .bind::<Text, _>(table)
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n
        }
    }
}

fn schema_and_migrations_agree(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let store = store(&db);
    assert!(store.pending_migrations().unwrap().is_empty());
    assert_eq!(store.known_migrations().unwrap(), 1 + extra_migrations());
    // Every query the repository makes names its columns through schema.rs; these read each
    // table through all of them.
    assert_eq!(store.list_jobs(&Default::default()).unwrap().1, 0);
    assert_eq!(store.list_roles().unwrap().len(), 4);
    assert!(store.find_user("nobody").unwrap().is_none());
    assert!(!store.is_session_revoked("nothing").unwrap());
    let secret = store.signing_secret_or_insert("first").unwrap();
    assert_eq!(store.signing_secret_or_insert("second").unwrap(), secret);
    for (table, columns) in TABLES {
        assert_eq!(
            columns_in_database(&db, table),
            columns,
            "{table} on {backend:?}"
        );
    }
}

/// Migrations after the first (update when adding one).
fn extra_migrations() -> usize {
    21
}

#[test]
fn schema_and_migrations_agree_on_sqlite() {
    schema_and_migrations_agree(Backend::Sqlite);
}

#[test]
fn schema_and_migrations_agree_on_postgres() {
    schema_and_migrations_agree(Backend::Postgres);
}

fn timestamps_round_trip_to_the_microsecond(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let store = store(&db);
    let t = chrono::DateTime::parse_from_rfc3339("2021-02-18T17:13:56.352261Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let job = store.create_job(Some("t"), t).unwrap();
    let read = store.get_job(job.id).unwrap().unwrap();
    assert_eq!(read.start_time, t, "{backend:?}");
    assert_eq!(read.last_updated, t, "{backend:?}");
}

#[test]
fn timestamps_round_trip_to_the_microsecond_on_sqlite() {
    timestamps_round_trip_to_the_microsecond(Backend::Sqlite);
}

#[test]
fn timestamps_round_trip_to_the_microsecond_on_postgres() {
    timestamps_round_trip_to_the_microsecond(Backend::Postgres);
}

#[test]
fn opening_a_missing_postgres_database_names_the_problem() {
    let Some(admin) = asyncstatus_persistence::testing::postgres_admin_url() else {
        return;
    };
    let url = asyncstatus_persistence::testing::with_database(&admin, "no_such_database_here");
    let err = Store::open(
        &asyncstatus_persistence::DatabaseUrl::parse(&url).unwrap(),
        &PoolOptions {
            size: 1,
            checkout_timeout: std::time::Duration::from_secs(2),
        },
    )
    .err()
    .expect("opening fails")
    .to_string();
    assert!(
        err.contains("no_such_database_here") && err.contains("does not exist"),
        "{err}"
    );
}
