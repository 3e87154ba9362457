//! Store guarantees that need no HTTP: private SQLite files, coalesced reads of any size, a
//! bounded wait for another process's migration lock, one statement per hot-path lookup,
//! conflicts and unknown roles named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use asyncstatus_persistence::testing::{all_batches, TestDatabase};
use asyncstatus_persistence::{now_micros, Backend, DatabaseUrl, PoolOptions, Store, StoreError};
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

/// A migrated store on a fresh database, or `None` when PostgreSQL tests are skipped.
fn migrated(backend: Backend) -> Option<(TestDatabase, Store)> {
    let db = TestDatabase::new(backend)?;
    let store = db.migrated_store();
    Some((db, store))
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
    let Some((_db, store)) = migrated(backend) else {
        return;
    };
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

thread_local! {
    /// The statements this thread ran, as diesel's instrumentation shows them.
    static STATEMENTS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Connections opened from now on report every statement to [`STATEMENTS`] of the thread
/// that runs it.
fn record_statements() {
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    fn instrument() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let sql = query.to_string();
                STATEMENTS.with(|s| s.borrow_mut().push(sql));
            }
        }))
    }
    diesel::connection::set_default_instrumentation(instrument).unwrap();
}

fn statements_of(work: impl FnOnce()) -> Vec<String> {
    STATEMENTS.with(|s| s.borrow_mut().clear());
    work();
    STATEMENTS.with(|s| s.take())
}

/// The hot path of the readers: a job by id, and a coalesced batch of ids, are one statement
/// each (on PostgreSQL the batch is one `= ANY($1)` with the ids as one array).
fn the_hot_path_is_one_statement_per_lookup(backend: Backend) {
    record_statements();
    let Some((_db, store)) = migrated(backend) else {
        return;
    };
    let a = store.create_job(Some("a"), now_micros()).unwrap().id;
    let b = store.create_job(Some("b"), now_micros()).unwrap().id;
    let one = statements_of(|| assert!(store.get_job(a).unwrap().is_some()));
    assert_eq!(one.len(), 1, "{one:?}");
    let batch = statements_of(|| assert_eq!(store.get_jobs(&[a, b, 99]).unwrap().len(), 2));
    assert_eq!(batch.len(), 1, "{batch:?}");
    if backend == Backend::Postgres {
        assert!(batch[0].contains("= ANY($1)"), "{batch:?}");
    }
}

#[test]
fn sqlite_the_hot_path_is_one_statement_per_lookup() {
    the_hot_path_is_one_statement_per_lookup(Backend::Sqlite);
}

#[test]
fn postgres_the_hot_path_is_one_statement_per_lookup() {
    the_hot_path_is_one_statement_per_lookup(Backend::Postgres);
}

/// Adding, granting and revoking are one statement each; a taken name is a `Conflict` with
/// the name, an unknown role is `NotFound`, and doing it again changes nothing.
fn names_conflict_and_unknown_roles_are_not_found(backend: Backend) {
    let Some((_db, store)) = migrated(backend) else {
        return;
    };
    let now = now_micros();
    let said = |e: StoreError| match e {
        StoreError::Conflict(m) => format!("conflict: {m}"),
        StoreError::NotFound(m) => format!("not found: {m}"),
        other => format!("other: {other}"),
    };
    store.add_role("ops2", "Second operations.", now).unwrap();
    let again = store.add_role("ops2", "again", now).map_err(said);
    assert_eq!(again, Err("conflict: role 'ops2' already exists".into()));
    let unknown = store.add_user("u", "SCRYPT:x", "nope", now).map_err(said);
    assert_eq!(unknown, Err("not found: role 'nope'".into()));
    store.add_user("u", "SCRYPT:x", "ops2", now).unwrap();
    let taken = store.add_user("u", "SCRYPT:y", "ops2", now).map_err(said);
    assert_eq!(taken, Err("conflict: user 'u' already exists".into()));

    assert!(store.grant_permission("ops2", "P:READ", now).unwrap());
    assert!(!store.grant_permission("ops2", "P:READ", now).unwrap());
    let unknown = store.grant_permission("nope", "P:READ", now).map_err(said);
    assert_eq!(unknown, Err("not found: role 'nope'".into()));
    let user = store.find_user("u").unwrap().unwrap();
    assert_eq!(
        (user.role.as_str(), user.password_hash.as_deref()),
        ("ops2", Some("SCRYPT:x"))
    );
    assert_eq!(user.permissions, ["P:READ"]);
    assert!(store.revoke_permission("ops2", "P:READ").unwrap());
    assert!(!store.revoke_permission("ops2", "P:READ").unwrap());
    let unknown = store.revoke_permission("nope", "P:READ").map_err(said);
    assert_eq!(unknown, Err("not found: role 'nope'".into()));

    store.revoke_session("s1", now).unwrap();
    store.revoke_session("s1", now).unwrap();
    assert!(store.is_session_revoked("s1").unwrap());
    assert_eq!(store.signing_secret_or_insert("first").unwrap(), "first");
    assert_eq!(store.signing_secret_or_insert("second").unwrap(), "first");
}

#[test]
fn sqlite_names_conflict_and_unknown_roles_are_not_found() {
    names_conflict_and_unknown_roles_are_not_found(Backend::Sqlite);
}

#[test]
fn postgres_names_conflict_and_unknown_roles_are_not_found() {
    names_conflict_and_unknown_roles_are_not_found(Backend::Postgres);
}

/// The counts of `summary.count` and `/metrics` come from the `job_count` shards the triggers
/// keep: after creates, heartbeats, finishes, a delete, the stale sweep and the purge they
/// equal what counting the table gives.
fn counts_stay_exact_through_every_change(backend: Backend) {
    use asyncstatus_domain::{JobStatus, ListQuery};
    use asyncstatus_persistence::testing::set_job_status;
    let Some((db, store)) = migrated(backend) else {
        return;
    };
    let t0 = now_micros();
    let ids: Vec<i64> = (0..12)
        .map(|i| store.create_job(Some(&format!("job {i}")), t0).unwrap().id)
        .collect();
    let update = |id: i64, status: JobStatus| set_job_status(&store, id, status, now_micros());
    update(ids[0], JobStatus::Pending); // a heartbeat changes no count
    for id in &ids[1..5] {
        update(*id, JobStatus::Succeeded);
    }
    for id in &ids[5..8] {
        update(*id, JobStatus::Failed);
    }
    assert!(store.delete_job(ids[1]).unwrap());
    let counted = |store: &Store| -> Vec<(JobStatus, i64)> {
        let (jobs, total) = store.list_jobs(&ListQuery::default()).unwrap();
        assert_eq!(total, jobs.len() as i64, "summary.count of every job");
        JobStatus::ALL
            .into_iter()
            .map(|s| (s, jobs.iter().filter(|j| j.status == s).count() as i64))
            .collect()
    };
    let want = counted(&store);
    assert_eq!(
        want,
        vec![
            (JobStatus::Pending, 5),
            (JobStatus::Succeeded, 3),
            (JobStatus::Failed, 3)
        ]
    );
    assert_eq!(store.count_jobs_by_status().unwrap(), want);
    // Folding the differences into the counters changes no count.
    let moved = store.fold_job_counts().unwrap();
    match backend {
        Backend::Postgres => assert!(moved > 0, "PostgreSQL's triggers leave differences"),
        Backend::Sqlite => assert_eq!(moved, 0, "SQLite's triggers keep the counters"),
    }
    assert_eq!(store.fold_job_counts().unwrap(), 0, "folded once");
    assert_eq!(store.count_jobs_by_status().unwrap(), want);
    for (s, n) in &want {
        let query = ListQuery {
            status: Some(*s),
            ..ListQuery::default()
        };
        assert_eq!(
            store.list_jobs(&query).unwrap().1,
            *n,
            "summary.count of {s:?}"
        );
    }
    // The sweep fails the five pending jobs, the purge then deletes every finished one.
    let later = now_micros() + chrono::Duration::hours(1);
    assert_eq!(
        all_batches(|| store.fail_stale_batch(later, later)).unwrap(),
        5
    );
    let cutoff = later + chrono::Duration::hours(1);
    assert_eq!(
        all_batches(|| store.purge_finished_batch(cutoff)).unwrap(),
        11
    );
    let want = counted(&store);
    assert!(want.iter().all(|(_, n)| *n == 0), "{want:?}");
    assert_eq!(store.count_jobs_by_status().unwrap(), want);

    // Statements of many rows (an import, the bench's seeding), a transaction rolled back and a
    // savepoint rolled back, all outside the store.
    let rows = |n: u32, status: &str, end: &str| {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n}) \
             INSERT INTO async_status (status, message, start_time, end_time, last_updated) \
             SELECT {status}, 'import', '2026-12-01T00:00:00.000000Z', {end}, \
             '2026-12-01T00:00:01.000000Z' FROM g;"
        )
    };
    let finished = "CASE n % 2 WHEN 0 THEN 'SUCCEEDED' ELSE 'FAILED' END";
    db.execute_sql(&rows(2000, "'PENDING'", "NULL"));
    db.execute_sql(&rows(1001, finished, "'2026-12-01T00:00:01.000000Z'"));
    db.execute_sql(&format!(
        "BEGIN; {} ROLLBACK;",
        rows(50, "'PENDING'", "NULL")
    ));
    db.execute_sql(&format!(
        "BEGIN; {} SAVEPOINT a; {} ROLLBACK TO SAVEPOINT a; COMMIT;",
        rows(3, "'PENDING'", "NULL"),
        rows(40, "'PENDING'", "NULL")
    ));
    db.execute_sql(
        "UPDATE async_status SET status = 'FAILED', end_time = last_updated \
         WHERE status = 'PENDING' AND id % 4 = 0",
    );
    let want = counted(&store);
    assert_eq!(want.iter().map(|(_, n)| n).sum::<i64>(), 3004);
    assert_eq!(store.count_jobs_by_status().unwrap(), want);
    store.fold_job_counts().unwrap();
    assert_eq!(store.count_jobs_by_status().unwrap(), want);
}

/// Counts read while producers write and two folders (two replicas) fold at once: every
/// `summary.count` equals the jobs listed in the same snapshot, and after the last fold the
/// counters alone hold every difference.
fn counts_stay_exact_while_folding(backend: Backend) {
    use asyncstatus_domain::{JobStatus, ListQuery};
    use asyncstatus_persistence::testing::set_job_status;
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some((db, store)) = migrated(backend) else {
        return;
    };
    let second = db.migrated_store();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..60 {
                        let job = store
                            .create_job(Some(&format!("writer {w} job {i}")), now_micros())
                            .unwrap();
                        if i % 3 != 0 {
                            let status = if i % 3 == 1 {
                                JobStatus::Succeeded
                            } else {
                                JobStatus::Failed
                            };
                            set_job_status(store, job.id, status, now_micros());
                        }
                    }
                })
            })
            .collect();
        for folder in [&store, &second] {
            let done = &done;
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    folder.fold_job_counts().unwrap();
                }
            });
        }
        let mut reads = 0;
        while writers.iter().any(|w| !w.is_finished()) || reads < 5 {
            let (jobs, total) = second.list_jobs(&ListQuery::default()).unwrap();
            assert_eq!(total, jobs.len() as i64, "summary.count in one snapshot");
            reads += 1;
        }
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    store.fold_job_counts().unwrap();
    assert_eq!(
        store.count_jobs_by_status().unwrap(),
        vec![
            (JobStatus::Pending, 60),
            (JobStatus::Succeeded, 60),
            (JobStatus::Failed, 60)
        ]
    );
    if backend == Backend::Postgres {
        #[derive(diesel::QueryableByName)]
        struct Left {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        use diesel::RunQueryDsl;
        let left = diesel::sql_query("SELECT count(*) AS n FROM job_count_delta")
            .get_result::<Left>(&mut db.pg_connection())
            .unwrap();
        assert_eq!(left.n, 0, "every difference folded");
    }
}

#[test]
fn sqlite_counts_stay_exact_while_folding() {
    counts_stay_exact_while_folding(Backend::Sqlite);
}

#[test]
fn postgres_counts_stay_exact_while_folding() {
    counts_stay_exact_while_folding(Backend::Postgres);
}

#[test]
fn sqlite_counts_stay_exact_through_every_change() {
    counts_stay_exact_through_every_change(Backend::Sqlite);
}

#[test]
fn postgres_counts_stay_exact_through_every_change() {
    counts_stay_exact_through_every_change(Backend::Postgres);
}

/// The size of `job_count_delta`'s file.
fn delta_bytes(conn: &mut PgConnection) -> i64 {
    use diesel::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "pg_relation_size('job_count_delta')",
    ))
    .get_result(conn)
    .unwrap()
}

/// A fold's vacuum that a long transaction kept from removing the dead differences (its
/// snapshot could still see them) is retried at the next fold, though that one moves nothing:
/// counts do not scan a bulk import's dead differences until autovacuum comes by.
#[test]
fn postgres_dead_differences_a_snapshot_kept_are_vacuumed_at_the_next_fold() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let store = db.migrated_store();
    let mut conn = db.pg_connection();
    // 60 000 differences of nothing (n = 0, so no count changes): about 3 MiB.
    conn.batch_execute(
        "INSERT INTO job_count_delta (status, n) \
         SELECT 'PENDING', 0 FROM generate_series(1, 60000)",
    )
    .unwrap();
    let mut reader = db.pg_connection();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM job_count")
        .unwrap();
    assert_eq!(store.fold_job_counts().unwrap(), 60000);
    let kept = delta_bytes(&mut conn);
    assert!(
        kept > asyncstatus_persistence::DELTA_SETTLED_BYTES,
        "the open snapshot keeps the dead differences: {kept} bytes"
    );
    reader.batch_execute("COMMIT").unwrap();
    assert_eq!(store.fold_job_counts().unwrap(), 0, "nothing left to move");
    let after = delta_bytes(&mut conn);
    assert!(
        after <= asyncstatus_persistence::DELTA_SETTLED_BYTES,
        "the next fold vacuums them: {after} bytes left of {kept}"
    );
}
