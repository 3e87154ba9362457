//! Store guarantees that need no HTTP: private SQLite files, coalesced reads of any size, a
//! bounded wait for another process's migration lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{now_micros, Backend, DatabaseUrl, PoolOptions, Store};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

fn open(url: &DatabaseUrl) -> Store {
    Store::open(
        url,
        &PoolOptions {
            size: 2,
            checkout_timeout: Duration::from_secs(5),
        },
    )
    .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_sqlite_database_its_wal_and_its_folders_are_private_to_their_owner() {
    let root = std::env::temp_dir().join(format!("asyncstatus-private-{}", std::process::id()));
    let file = root.join("nested/data/asyncstatus.db");
    let store = open(&DatabaseUrl::Sqlite(file.clone()));
    store.run_migrations().unwrap();
    store
        .create_job(Some("a write makes the -wal"), now_micros())
        .unwrap();
    let wal = file.with_file_name("asyncstatus.db-wal");
    let shm = file.with_file_name("asyncstatus.db-shm");
    let modes = [
        (root.join("nested"), mode(&root.join("nested"))),
        (root.join("nested/data"), mode(&root.join("nested/data"))),
        (file.clone(), mode(&file)),
        (wal.clone(), mode(&wal)),
        (shm.clone(), mode(&shm)),
    ];
    drop(store);
    std::fs::remove_dir_all(&root).unwrap();
    for (path, got) in &modes[..2] {
        assert_eq!(*got, 0o700, "{}", path.display());
    }
    for (path, got) in &modes[2..] {
        assert_eq!(*got, 0o600, "{}", path.display());
    }
}

/// 40 000 ids is past SQLite's limit of 32 766 bound variables in one statement: the batch is
/// split, and every job that exists is found.
fn a_read_of_40000_ids_is_split_and_finds_every_job(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let store = open(db.url());
    store.run_migrations().unwrap();
    let mut made: Vec<i64> = (0..3)
        .map(|i| {
            store
                .create_job(Some(&format!("job {i}")), now_micros())
                .unwrap()
                .id
        })
        .collect();
    let ids: Vec<i64> = (1..=40_000).collect();
    let mut found: Vec<i64> = store.get_jobs(&ids).unwrap().iter().map(|j| j.id).collect();
    found.sort_unstable();
    made.sort_unstable();
    assert_eq!(found, made);
}

#[test]
fn sqlite_a_read_of_40000_ids_is_split_and_finds_every_job() {
    a_read_of_40000_ids_is_split_and_finds_every_job(Backend::Sqlite);
}

#[test]
fn postgres_a_read_of_40000_ids_is_split_and_finds_every_job() {
    a_read_of_40000_ids_is_split_and_finds_every_job(Backend::Postgres);
}

/// Another session holding the migration lock stops start-up after the configured wait,
/// with a message that names the lock, instead of hanging it.
#[test]
fn postgres_a_held_migration_lock_stops_migrating_within_its_timeout() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let mut holder = PgConnection::establish(&db.url_string()).unwrap();
    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({})",
            asyncstatus_persistence::MIGRATION_LOCK_ID
        ))
        .unwrap();
    let store = open(db.url());
    let started = Instant::now();
    let err = store
        .run_migrations_waiting(Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert!(err.contains("migration lock"), "{err}");
    assert!(err.contains("7271401"), "{err}");
    assert!(
        store.pending_migrations().unwrap().len() > 1,
        "nothing migrated"
    );
    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock({})",
            asyncstatus_persistence::MIGRATION_LOCK_ID
        ))
        .unwrap();
    store
        .run_migrations_waiting(Duration::from_millis(500))
        .unwrap();
    assert!(store.pending_migrations().unwrap().is_empty());
}
