//! Every documented list query reads its first page through an index, at a size where the
//! planner would rather scan the table than use a useless index: on a seeded table of 150 000
//! jobs (0.1 % pending, 10 % failed), on PostgreSQL after ANALYZE (as autovacuum does) and on
//! SQLite without statistics (the service never runs ANALYZE there), the plan of each filter alone and with each
//! `orderby` x `sortOrder` has no sequential scan of `async_status` and no sort of its rows; and
//! a cursor page from the middle of the table starts where the cursor points: its sort key is a
//! bound of the index range, not a filter over the rows before it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use asyncstatus_domain::{After, JobStatus, ListQuery, OrderBy, SortOrder};
use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{Backend, Overdue};

const JOBS: u32 = 150_000;

/// Every 50th job has a kind (of 4), every 200th labels (of 3 CDNs), and every job a creator
/// (of 100), so each row filter selects a few per cent of the table or less.
const LIFECYCLE_COLUMNS: &str = "kind, created_by, labels";
const LIFECYCLE_VALUES: &str = "CASE WHEN n % 50 = 0 THEN 'kind' || (n / 50 % 4) END, \
     'user' || (n % 100), \
     CASE WHEN n % 200 = 0 THEN '{\"cdn\":\"cdn' || (n / 200 % 3) || '\"}' ELSE '{}' END";

fn seed(db: &TestDatabase) {
    let status = "CASE WHEN n % 1000 = 0 THEN 'PENDING' WHEN n % 10 = 3 THEN 'FAILED' \
                  ELSE 'SUCCEEDED' END";
    match db.url().backend() {
        Backend::Postgres => db.execute_sql(&format!(
            "INSERT INTO async_status (id, status, message, start_time, end_time, last_updated,
                                       {LIFECYCLE_COLUMNS})
                 SELECT n, s, 'job ' || n, t, CASE WHEN s = 'PENDING' THEN NULL ELSE t END, t,
                        {LIFECYCLE_VALUES}
                 FROM (SELECT n, {status} AS s,
                              now() - make_interval(secs => {JOBS} - n) AS t
                       FROM generate_series(1, {JOBS}) AS n) AS x;
                 ANALYZE async_status;"
        )),
        Backend::Sqlite => {
            let t = format!(
                "strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || ({JOBS} - n) || ' seconds') || '000Z'"
            );
            db.execute_sql(&format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {JOBS})
                 INSERT INTO async_status (id, status, message, start_time, end_time, last_updated,
                                           {LIFECYCLE_COLUMNS})
                 SELECT n, {status}, 'job ' || n, {t},
                        CASE WHEN {status} = 'PENDING' THEN NULL ELSE {t} END, {t},
                        {LIFECYCLE_VALUES}
                 FROM g;"
            ));
        }
    }
}

/// The plan's lines that read `async_status` without an index or sort its rows. On SQLite a
/// bare `SCAN async_status` is the walk in rowid (= id) order, fine only for an unfiltered
/// query by id, which stops at its limit (`rowid_walk`).
fn bad_steps(backend: Backend, plan: &[String], rowid_walk: bool) -> Vec<String> {
    plan.iter()
        .filter(|line| match backend {
            Backend::Postgres => {
                let step = line.trim_start().trim_start_matches("->").trim_start();
                step.starts_with("Seq Scan on async_status") || step.starts_with("Sort ")
            }
            Backend::Sqlite => {
                (line.as_str() == "SCAN async_status" && !rowid_walk)
                    || line.contains("TEMP B-TREE")
            }
        })
        .cloned()
        .collect()
}

/// Cursors from the middle of the seeded table for `order_by`: after a finished job, and for
/// `end_time` also after an unfinished one.
fn cursors(store: &asyncstatus_persistence::Store, order_by: OrderBy) -> Vec<After> {
    let finished = store.get_job(i64::from(JOBS / 2 + 3)).unwrap().unwrap();
    let pending = i64::from(JOBS / 2);
    match order_by {
        OrderBy::Id => vec![After {
            time: None,
            id: finished.id,
        }],
        OrderBy::StartTime => vec![After {
            time: Some(finished.start_time),
            id: finished.id,
        }],
        OrderBy::LastUpdated => vec![After {
            time: Some(finished.last_updated),
            id: finished.id,
        }],
        OrderBy::EndTime => vec![
            After {
                time: finished.end_time,
                id: finished.id,
            },
            After {
                time: None,
                id: pending,
            },
        ],
    }
}

/// Whether the plan's first read of `async_status` (the range the cursor points into) is an
/// index range bounded by the cursor's key: PostgreSQL's `Index Cond` compares `id`,
/// `start_time` or `end_time`, and an `end_time` bound comes with the index's leading
/// `(end_time IS NULL)` key pinned (compared, not folded into `end_time IS NOT NULL`): without it the bound is
/// only a filter over the keys read from the index's start (the planner folds
/// `(end_time IS NULL) = false` into `end_time IS NOT NULL`, which pins nothing, and at ten
/// million jobs such a page 50 000 read 7 000 pages); SQLite's `SEARCH` has a range (`>` or
/// `<`) among its index constraints. A second read, the unfinished jobs after the finished
/// ones, starts at the first of them.
fn starts_at_cursor(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Postgres => plan
            .iter()
            .find(|l| l.contains("Index Cond:"))
            .is_some_and(|l| {
                if l.contains("end_time >") || l.contains("end_time <") {
                    l.contains("end_time IS NULL)")
                } else {
                    let bounds = [
                        "id >",
                        "id <",
                        "start_time >",
                        "start_time <",
                        "last_updated >",
                        "last_updated <",
                    ];
                    bounds.into_iter().any(|bound| l.contains(bound))
                }
            }),
        Backend::Sqlite => plan
            .iter()
            .find(|l| l.contains("async_status"))
            .is_some_and(|l| l.starts_with("SEARCH") && (l.contains('>') || l.contains('<'))),
    }
}

const ORDERS: [OrderBy; 4] = [
    OrderBy::Id,
    OrderBy::StartTime,
    OrderBy::EndTime,
    OrderBy::LastUpdated,
];

/// The row filters (kind, created_by, label, newerThan, olderThan), each alone and with each
/// order: their matching jobs are found through an index, never by reading the table (a
/// page in another order than the index's sorts the matches: O(matching jobs), documented).
fn row_filters_read_through_an_index(backend: Backend, store: &asyncstatus_persistence::Store) {
    let recent = store
        .get_job(i64::from(JOBS - 500))
        .unwrap()
        .unwrap()
        .start_time;
    let early = store.get_job(500).unwrap().unwrap().start_time;
    let filters = [
        ListQuery {
            kind: Some("kind1".into()),
            ..ListQuery::default()
        },
        ListQuery {
            created_by: Some("user7".into()),
            ..ListQuery::default()
        },
        ListQuery {
            labels: vec![("cdn".into(), "cdn2".into())],
            ..ListQuery::default()
        },
        ListQuery {
            newer_than: Some(recent),
            ..ListQuery::default()
        },
        ListQuery {
            older_than: Some(early),
            ..ListQuery::default()
        },
    ];
    let mut failures = Vec::new();
    for filter in &filters {
        for order_by in ORDERS {
            for sort_order in [SortOrder::Asc, SortOrder::Desc] {
                let query = ListQuery {
                    order_by,
                    sort_order,
                    limit: Some(20),
                    ..filter.clone()
                };
                let plan = store.explain_list(&query).unwrap();
                let scans = plan.iter().any(|line| match backend {
                    Backend::Postgres => line.contains("Seq Scan on async_status"),
                    Backend::Sqlite => {
                        line == "SCAN async_status"
                            || (line.starts_with("SCAN async_status USING")
                                && !line.contains("labels_idx"))
                    }
                });
                if scans {
                    failures.push(format!("{query:?}: {plan:#?}"));
                }
            }
        }
        // The count is exact.
        let (_, total) = store
            .list_jobs(&ListQuery {
                limit: Some(1),
                ..filter.clone()
            })
            .unwrap();
        let expected = match filter {
            ListQuery { kind: Some(_), .. } => JOBS / 50 / 4,
            ListQuery {
                created_by: Some(_),
                ..
            } => JOBS / 100,
            ListQuery { labels, .. } if !labels.is_empty() => JOBS / 200 / 3,
            ListQuery {
                newer_than: Some(_),
                ..
            } => 500,
            _ => 499,
        };
        assert_eq!(total, i64::from(expected), "{filter:?}");
    }
    assert!(
        failures.is_empty(),
        "row filter plans on {backend:?} that read the table:\n{}",
        failures.join("\n")
    );
}

/// The reaper's three searches (stale, past their own heartbeat timeout, past their deadline)
/// read an index range of the pending jobs, never the table.
fn the_reaper_searches_through_an_index(backend: Backend, store: &asyncstatus_persistence::Store) {
    let now = chrono::Utc::now();
    for (overdue, index) in [
        (
            Overdue::Stale(now - chrono::TimeDelta::minutes(15)),
            "async_status_status_last_updated_id_idx",
        ),
        (Overdue::Heartbeat, "async_status_heartbeat_due_idx"),
        (Overdue::Deadline, "async_status_deadline_idx"),
    ] {
        let plan = store.explain_overdue(overdue, now).unwrap();
        let scans = plan.iter().any(|line| match backend {
            Backend::Postgres => line.contains("Seq Scan on async_status"),
            Backend::Sqlite => line == "SCAN async_status",
        });
        let ranged = plan.iter().any(|line| line.contains(index));
        assert!(
            !scans && ranged,
            "{overdue:?} on {backend:?} through {index}: {plan:#?}"
        );
    }
}

fn every_documented_list_query_uses_an_index(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    db.migrated_store();
    seed(&db);
    // Opened after ANALYZE, so every connection plans with the statistics.
    let store = db.open_store();
    let mut failures = Vec::new();
    let mut checked = 0;
    for status in [
        None,
        Some(JobStatus::Pending),
        Some(JobStatus::Succeeded),
        Some(JobStatus::Failed),
    ] {
        for order_by in ORDERS {
            for sort_order in [SortOrder::Asc, SortOrder::Desc] {
                let query = ListQuery {
                    status,
                    order_by,
                    sort_order,
                    limit: Some(20),
                    ..ListQuery::default()
                };
                let plan = store.explain_list(&query).unwrap();
                assert!(!plan.is_empty());
                let bad = bad_steps(backend, &plan, status.is_none() && order_by == OrderBy::Id);
                if !bad.is_empty() {
                    failures.push(format!("{status:?} {order_by:?} {sort_order:?}: {plan:#?}"));
                }
                checked += 1;
                for after in cursors(&store, order_by) {
                    let query = ListQuery {
                        after: Some(after),
                        ..query.clone()
                    };
                    let plan = store.explain_list(&query).unwrap();
                    let bad = bad_steps(backend, &plan, false);
                    if !bad.is_empty() || !starts_at_cursor(backend, &plan) {
                        failures.push(format!(
                            "{status:?} {order_by:?} {sort_order:?} after {after:?}: {plan:#?}"
                        ));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 32 + 40);
    assert!(
        failures.is_empty(),
        "plans on {backend:?} without an index:\n{}",
        failures.join("\n")
    );
    row_filters_read_through_an_index(backend, &store);
    the_reaper_searches_through_an_index(backend, &store);
    // The check can fail: without the start_time index that order sorts the table.
    let by_start_time = ListQuery {
        order_by: OrderBy::StartTime,
        limit: Some(20),
        ..ListQuery::default()
    };
    db.execute_sql("DROP INDEX async_status_start_time_idx");
    let plan = db.open_store().explain_list(&by_start_time).unwrap();
    assert!(!bad_steps(backend, &plan, false).is_empty(), "{plan:#?}");
    let (_, total) = store
        .list_jobs(&ListQuery {
            limit: Some(1),
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(total, i64::from(JOBS));
}

#[test]
fn sqlite_every_documented_list_query_uses_an_index() {
    every_documented_list_query_uses_an_index(Backend::Sqlite);
}

#[test]
fn postgres_every_documented_list_query_uses_an_index() {
    every_documented_list_query_uses_an_index(Backend::Postgres);
}
