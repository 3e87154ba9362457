//! `database.layout = "traffic_ops"` at the store: asyncstatus' migrations stay in their own
//! schema, Traffic Ops' tables are found (or named when missing), and its jobs and users read
//! as Traffic Ops stores them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{Layout, PoolOptions, Store, TrafficOpsJob, OWN_SCHEMA};

fn schemas_of(db: &TestDatabase, table: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Schema {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_schema: String,
    }
    let mut pg = db.pg_connection();
    diesel::sql_query(
        "SELECT table_schema::text AS table_schema FROM information_schema.tables \
         WHERE table_name = $1 ORDER BY 1",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .load::<Schema>(&mut pg)
    .unwrap()
    .into_iter()
    .map(|s| s.table_schema)
    .collect()
}

#[test]
fn postgres_migrations_on_a_traffic_ops_database_change_only_their_own_schema() {
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    let before = db.schema_dump("public");
    let store = db.open_traffic_ops_store();
    assert!(!store.pending_migrations().unwrap().is_empty());
    let applied = store.run_migrations().unwrap();
    assert_eq!(applied.len(), store.known_migrations().unwrap());
    assert!(store.pending_migrations().unwrap().is_empty());
    // Again, from another pool: nothing left to do, nothing made twice.
    let again = db.open_traffic_ops_store();
    assert!(again.run_migrations().unwrap().is_empty());
    assert_eq!(db.schema_dump("public"), before);
    assert_eq!(
        schemas_of(&db, "__diesel_schema_migrations"),
        [OWN_SCHEMA],
        "the bookkeeping table is in asyncstatus' schema only"
    );
    assert_eq!(schemas_of(&db, "revoked_cookie"), [OWN_SCHEMA]);
    // The pooled connection that migrated reads Traffic Ops' tables again, not its own.
    assert!(store.missing_traffic_ops_tables().unwrap().is_empty());
    assert_eq!(store.traffic_ops_job(1).unwrap(), None);
}

#[test]
fn postgres_the_traffic_ops_tables_missing_are_named_in_order() {
    let Some(plain) = TestDatabase::postgres() else {
        return;
    };
    let store = plain.open_traffic_ops_store();
    assert_eq!(
        store.missing_traffic_ops_tables().unwrap(),
        ["async_status", "tm_user", "role", "role_capability"]
    );
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    db.execute_sql("DROP TABLE role_capability");
    assert_eq!(
        db.open_traffic_ops_store()
            .missing_traffic_ops_tables()
            .unwrap(),
        ["role_capability"]
    );
}

#[test]
fn postgres_jobs_read_as_traffic_ops_writes_them() {
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    let store = db.open_traffic_ops_store();
    let started = db.insert_traffic_ops_job("DNSSEC refresh started");
    let other = db.insert_traffic_ops_job("ACME async job has started.");
    let job = store.traffic_ops_job(started).unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.message.as_deref(), job.end_time),
        ("PENDING", Some("DNSSEC refresh started"), None)
    );
    assert!(!job.is_final());
    db.update_traffic_ops_job(
        started,
        "SUCCEEDED",
        "DNSSEC refresh completed successfully (3 keys were updated)",
    );
    let done = store.traffic_ops_job(started).unwrap().unwrap();
    assert!(done.is_final());
    let end = done.end_time.expect("a finished job has its end_time");
    assert!(end >= done.start_time);
    assert_eq!(store.traffic_ops_job(other + 1000).unwrap(), None);
    let mut both: Vec<TrafficOpsJob> = store
        .traffic_ops_jobs(&[other, started, other + 1000])
        .unwrap();
    both.sort_by_key(|j| j.id);
    assert_eq!(
        both.iter().map(|j| j.id).collect::<Vec<_>>(),
        [started, other]
    );
    assert!(store.traffic_ops_jobs(&[]).unwrap().is_empty());
}

#[test]
fn postgres_users_read_with_their_role_level_and_permissions() {
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    db.add_traffic_ops_user("ops", "operations", Some("SCRYPT:16384:8:1:c2FsdA==:a2V5"));
    db.add_traffic_ops_user("o'brien", "admin", None);
    db.add_traffic_ops_user("orphan", "portal", None);
    db.execute_sql("DELETE FROM role WHERE name = 'portal'");
    let store = db.open_traffic_ops_store();
    store.run_migrations().unwrap();
    let ops = store.traffic_ops_user("ops").unwrap().unwrap();
    assert_eq!(
        (
            ops.role.as_str(),
            ops.priv_level,
            ops.local_passwd.as_deref()
        ),
        ("operations", 20, Some("SCRYPT:16384:8:1:c2FsdA==:a2V5"))
    );
    assert_eq!(
        ops.permissions,
        ["ASYNC-STATUS:READ", "CDN:READ", "DELIVERY-SERVICE:READ"]
    );
    let admin = store.traffic_ops_user("o'brien").unwrap().unwrap();
    assert_eq!((admin.role.as_str(), admin.priv_level), ("admin", 30));
    assert_eq!(admin.permissions, ["ALL"]);
    assert_eq!(admin.local_passwd, None);
    // The role removed: ON DELETE SET NULL leaves a user without one, whom Traffic Ops does
    // not find.
    assert_eq!(store.traffic_ops_user("orphan").unwrap(), None);
    assert_eq!(store.traffic_ops_user("nobody").unwrap(), None);
}

#[test]
fn the_traffic_ops_layout_refuses_sqlite() {
    let db = TestDatabase::sqlite();
    let err = Store::open_layout(
        db.url(),
        &PoolOptions {
            size: 1,
            checkout_timeout: std::time::Duration::from_secs(1),
        },
        Layout::TrafficOps,
    )
    .err()
    .expect("SQLite is refused");
    assert!(
        err.to_string().contains("needs PostgreSQL"),
        "unexpected error: {err}"
    );
}
