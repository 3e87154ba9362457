//! A database of the previous release (its migrations, up to 2026-12-01-000003) holding jobs
//! migrates to this release with every job intact and the new counters right, on each backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use asyncstatus_domain::{JobStatus, ListQuery};
use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{now_micros, Backend};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
/// The migrations the previous release shipped.
const PREVIOUS_RELEASE: usize = 3;

/// The previous release's jobs: (status, message, start, end).
const JOBS: [(&str, Option<&str>, &str, Option<&str>); 4] = [
    (
        "PENDING",
        Some("renewing"),
        "2026-11-30T10:00:00.000001Z",
        None,
    ),
    (
        "SUCCEEDED",
        Some("done"),
        "2026-11-30T09:00:00.250000Z",
        Some("2026-11-30T09:05:00Z"),
    ),
    (
        "FAILED",
        None,
        "2026-11-30T08:00:00Z",
        Some("2026-11-30T08:01:00.999999Z"),
    ),
    (
        "SUCCEEDED",
        Some("also done"),
        "2026-11-29T07:00:00Z",
        Some("2026-11-29T07:30:00Z"),
    ),
];

fn insert_sql() -> String {
    let quoted = |v: Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
    let rows: Vec<String> = JOBS
        .iter()
        .enumerate()
        .map(|(i, (status, message, start, end))| {
            format!(
                "({}, '{status}', {}, '{start}', {}, '{}')",
                i + 1,
                quoted(*message),
                quoted(*end),
                end.unwrap_or(start)
            )
        })
        .collect();
    format!(
        "INSERT INTO async_status (id, status, message, start_time, end_time, last_updated) \
         VALUES {};",
        rows.join(", ")
    )
}

fn previous_release_with_jobs(db: &TestDatabase) {
    let url = db.url_string();
    match db.url().backend() {
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&url).unwrap();
            for _ in 0..PREVIOUS_RELEASE {
                conn.run_next_migration(POSTGRES).unwrap();
            }
            conn.batch_execute(&insert_sql()).unwrap();
            conn.batch_execute("SELECT setval(pg_get_serial_sequence('async_status', 'id'), 4)")
                .unwrap();
        }
        Backend::Sqlite => {
            let path = std::path::Path::new(url.trim_start_matches("sqlite://"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            for _ in 0..PREVIOUS_RELEASE {
                conn.run_next_migration(SQLITE).unwrap();
            }
            conn.batch_execute(&insert_sql()).unwrap();
        }
    }
}

fn a_previous_release_migrates_forward_with_its_jobs(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    previous_release_with_jobs(&db);
    let store = db.open_store();
    let applied = store.run_migrations().unwrap();
    assert_eq!(
        applied.len(),
        store.known_migrations().unwrap() - PREVIOUS_RELEASE
    );
    assert!(store.pending_migrations().unwrap().is_empty());
    for (i, (status, message, start, end)) in JOBS.iter().enumerate() {
        let job = store.get_job(i as i64 + 1).unwrap().unwrap();
        assert_eq!(job.status.as_str(), *status);
        assert_eq!(job.message.as_deref(), *message);
        assert_eq!(
            job.start_time,
            start.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
        );
        assert_eq!(job.end_time, end.map(|e| e.parse().unwrap()));
        // The lifecycle's columns read with their defaults.
        assert_eq!(
            (job.kind, job.labels.len(), job.created_by, job.progress),
            (None, 0, None, None)
        );
        assert_eq!((job.deadline, job.heartbeat_timeout), (None, None));
        assert!(!job.cancel_requested && job.cancel_reason.is_none());
    }
    let counts = vec![
        (JobStatus::Pending, 1),
        (JobStatus::Succeeded, 2),
        (JobStatus::Failed, 1),
    ];
    assert_eq!(store.count_jobs_by_status().unwrap(), counts);
    let (jobs, total) = store.list_jobs(&ListQuery::default()).unwrap();
    assert_eq!((jobs.len(), total), (4, 4));
    // Writes after the migration keep counting from the backfilled figures.
    let created = store.create_job(Some("after"), now_micros()).unwrap();
    assert_eq!(created.id, 5);
    assert_eq!(
        store.count_jobs_by_status().unwrap()[0],
        (JobStatus::Pending, 2)
    );
}

#[test]
fn sqlite_a_previous_release_migrates_forward_with_its_jobs() {
    a_previous_release_migrates_forward_with_its_jobs(Backend::Sqlite);
}

#[test]
fn postgres_a_previous_release_migrates_forward_with_its_jobs() {
    a_previous_release_migrates_forward_with_its_jobs(Backend::Postgres);
}
