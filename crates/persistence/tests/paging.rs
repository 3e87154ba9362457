//! Cursor paging: walking a list query page by page with `summary.next`'s cursor gives exactly
//! the jobs of the unpaged query, in its order, each once, for every filter, `orderby` and
//! `sortOrder`, with jobs that share their start and end times, across the finished and
//! unfinished jobs of `orderby=end_time`, and with pages cut short by the byte budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use asyncstatus_domain::{JobStatus, ListParams, ListQuery, OrderBy, SortOrder};
use asyncstatus_persistence::testing::{set_job_status, TestDatabase};
use asyncstatus_persistence::{Backend, Store};
use chrono::{DateTime, Duration, Utc};

/// 40 jobs started three to a second; three in four finished, two or three to a second.
fn seed(store: &Store) {
    let t0: DateTime<Utc> = "2026-01-01T00:00:00.000001Z".parse().unwrap();
    for i in 0..40i64 {
        let job = store
            .create_job(Some(&format!("job {i}")), t0 + Duration::seconds(i / 3))
            .unwrap();
        if i % 4 == 3 {
            continue;
        }
        let status = if i % 2 == 0 {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        };
        // Finished in an order other than their ids'.
        let at = t0 + Duration::seconds(100 + (40 - i) / 3);
        set_job_status(store, job.id, status, at);
    }
}

fn walk(store: &Store, query: &ListQuery, limit: i64, max_bytes: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut page_query = ListQuery {
        limit: Some(limit),
        ..query.clone()
    };
    for _ in 0..100 {
        let page = store.list_jobs_within(&page_query, max_bytes).unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        let Some(last) = page.jobs.last().filter(|_| page.more) else {
            return seen;
        };
        let params = ListParams {
            cursor: Some(page_query.cursor_after(last)),
            limit: Some(limit),
            ..ListParams::default()
        };
        page_query = ListQuery::try_from(params).unwrap();
    }
    panic!("the walk did not end: {seen:?}");
}

fn cursor_pages_walk_the_whole_list(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let store = db.migrated_store();
    seed(&store);
    let mut walks = 0;
    for status in [None, Some(JobStatus::Pending), Some(JobStatus::Failed)] {
        for order_by in [OrderBy::Id, OrderBy::StartTime, OrderBy::EndTime] {
            for sort_order in [SortOrder::Asc, SortOrder::Desc] {
                let query = ListQuery {
                    status,
                    order_by,
                    sort_order,
                    ..ListQuery::default()
                };
                let (all, total) = store.list_jobs(&query).unwrap();
                let want: Vec<i64> = all.iter().map(|j| j.id).collect();
                assert_eq!(want.len() as i64, total);
                assert!(!want.is_empty());
                for limit in [1, 3, 7, 100] {
                    let got = walk(&store, &query, limit, usize::MAX);
                    assert_eq!(got, want, "{query:?} limit {limit}");
                    walks += 1;
                }
                // A budget that holds one job a page: every page is cut, none is lost.
                let got = walk(&store, &query, 5, 1);
                assert_eq!(got, want, "{query:?} cut to one job a page");
            }
        }
    }
    assert_eq!(walks, 3 * 3 * 2 * 4);
    // The last page says nothing follows; a page that is not the last says so.
    let first = |limit| {
        let query = ListQuery {
            limit: Some(limit),
            ..ListQuery::default()
        };
        let page = store.list_jobs_within(&query, usize::MAX).unwrap();
        (page.jobs.len(), page.more)
    };
    assert_eq!(first(40), (40, false));
    assert_eq!(first(39), (39, true));
}

#[test]
fn sqlite_cursor_pages_walk_the_whole_list() {
    cursor_pages_walk_the_whole_list(Backend::Sqlite);
}

#[test]
fn postgres_cursor_pages_walk_the_whole_list() {
    cursor_pages_walk_the_whole_list(Backend::Postgres);
}
