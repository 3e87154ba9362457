//! A page of jobs is bounded: at most `jobs.max_page` jobs and `server.max_response_bytes` of
//! body per answer, a cut list says how to ask for the rest, and memory stays bounded.

use std::time::Duration;

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{now_micros, Backend, PoolOptions, Store};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_alert_contains, bearer_get, login_at, TestApp, ADMIN, ADMIN_PASSWORD};

/// A message of `n` bytes.
fn long_message(n: usize) -> String {
    "m".repeat(n)
}

/// Creates `n` jobs with `message` through the store (quicker than HTTP).
async fn create_jobs(app: &TestApp, n: usize, message: String) {
    app.with_store(move |s| {
        for _ in 0..n {
            s.create_job(Some(&message), now_micros()).unwrap();
        }
    })
    .await;
}

async fn list(app: &TestApp, query: &str) -> (StatusCode, usize, Value) {
    let r = app.get(app.api(&format!("/async_status{query}"))).await;
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    (status, bytes.len(), serde_json::from_slice(&bytes).unwrap())
}

fn ids(body: &Value) -> Vec<i64> {
    body["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

/// The `offset=…&limit=…` an info alert says to ask for next.
fn next_query(body: &Value) -> Option<String> {
    let alerts = body.get("alerts")?.as_array()?;
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["level"], "info", "{body}");
    let text = alerts[0]["text"].as_str()?;
    let at = text.find("offset=")?;
    Some(
        text[at..]
            .trim_end_matches('.')
            .split_whitespace()
            .next()?
            .trim_end_matches('.')
            .to_owned(),
    )
}

async fn a_list_without_limit_holds_at_most_max_page_jobs_and_says_so(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.jobs.max_page = 5).await else {
        return;
    };
    app.login_admin().await;
    create_jobs(&app, 8, "short".into()).await;
    for query in ["", "?limit=-1"] {
        let (status, _, body) = list(&app, query).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&body), [1, 2, 3, 4, 5], "{query}");
        assert_eq!(body["summary"]["count"], 8, "the total stays");
        let text = body["alerts"][0]["text"].as_str().unwrap();
        assert!(text.contains("jobs.max_page"), "{text}");
        assert_eq!(next_query(&body).as_deref(), Some("offset=5&limit=5"));
    }
    let (status, _, body) = list(&app, "?offset=5&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), [6, 7, 8]);
    assert!(body.get("alerts").is_none(), "the end is not a cut: {body}");
    // A full page within the bound is not cut either.
    let (_, _, body) = list(&app, "?limit=5&sortOrder=desc").await;
    assert_eq!(ids(&body), [8, 7, 6, 5, 4]);
    assert!(body.get("alerts").is_none(), "{body}");
}

async fn a_limit_above_max_page_is_400_naming_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let r = app.get(app.api("/async_status?limit=1001")).await;
    assert_alert_contains(r, StatusCode::BAD_REQUEST, "jobs.max_page").await;
    let (status, _, _) = list(&app, "?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "the default jobs.max_page is 1000");
}

async fn a_page_past_max_response_bytes_is_cut_and_the_rest_can_be_asked_for(backend: Backend) {
    const MAX: usize = 1 << 20;
    let Some(app) = TestApp::spawn_with(backend, |s| s.server.max_response_bytes = MAX).await
    else {
        return;
    };
    app.login_admin().await;
    create_jobs(&app, 30, long_message(60 * 1024)).await;
    let mut query = "?limit=30".to_owned();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, bytes, body) = list(&app, &query).await;
        assert_eq!(status, StatusCode::OK);
        assert!(bytes <= MAX, "{bytes} bytes");
        assert_eq!(body["summary"]["count"], 30);
        let page = ids(&body);
        assert!(!page.is_empty());
        seen.extend(page);
        match next_query(&body) {
            Some(next) => query = format!("?{next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (1..=30).collect::<Vec<_>>(),
        "every job once, in order"
    );
    let (_, _, first) = list(&app, "?limit=30").await;
    assert!(ids(&first).len() < 30, "the first page was cut");
}

/// `summary.next` of a list answer.
fn next_cursor(body: &Value) -> Option<String> {
    body["summary"]
        .get("next")
        .map(|n| n.as_str().unwrap().to_owned())
}

async fn cursor_pages_walk_every_job_once_in_order(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    create_jobs(&app, 25, "short".into()).await;
    // Finish two in three, in an order other than their ids'.
    app.with_store(|s| {
        for id in (1..=25).rev().filter(|id| id % 3 != 0) {
            let update = asyncstatus_domain::JobUpdate {
                status: asyncstatus_domain::JobStatus::Failed,
                message: None,
                progress: None,
            };
            s.update_job(id, &update, now_micros()).unwrap();
        }
    })
    .await;
    for filters in [
        "orderby=end_time&sortOrder=desc",
        "orderby=end_time",
        "orderby=start_time&sortOrder=desc",
        "status=FAILED&orderby=id&sortOrder=desc",
    ] {
        let (_, _, all) = list(&app, &format!("?{filters}")).await;
        assert!(
            next_cursor(&all).is_none(),
            "nothing follows the whole list"
        );
        let want = ids(&all);
        let (status, _, first) = list(&app, &format!("?{filters}&limit=4")).await;
        assert_eq!(status, StatusCode::OK);
        let mut seen = ids(&first);
        let mut next = next_cursor(&first);
        while let Some(cursor) = next {
            assert!(
                seen.len() < want.len(),
                "a next after the last job: {filters}"
            );
            let (status, _, page) = list(&app, &format!("?cursor={cursor}&limit=4")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(page["summary"]["count"], all["summary"]["count"]);
            seen.extend(ids(&page));
            next = next_cursor(&page);
        }
        assert_eq!(seen, want, "{filters}");
        // An offset page's next goes on after it, and the query may be repeated with it.
        let (_, _, middle) = list(&app, &format!("?{filters}&limit=5&offset=10")).await;
        let cursor = next_cursor(&middle).unwrap();
        let (status, _, rest) = list(&app, &format!("?{filters}&cursor={cursor}&limit=100")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&rest), want[15..], "{filters}");
    }
}

async fn a_cursor_that_is_bad_or_mixed_with_offset_is_400_naming_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    create_jobs(&app, 3, "short".into()).await;
    let (_, _, first) = list(&app, "?status=PENDING&limit=1").await;
    let cursor = next_cursor(&first).unwrap();
    for (query, text) in [
        (
            "cursor=bm9wZQ".to_owned(),
            "must be the summary.next of an earlier answer",
        ),
        (
            "cursor=%00%ff".to_owned(),
            "must be the summary.next of an earlier answer",
        ),
        (
            format!("cursor={cursor}&offset=1&limit=1"),
            "cannot be combined with 'offset' or 'page'",
        ),
        (
            format!("cursor={cursor}&page=2&limit=1"),
            "cannot be combined with 'offset' or 'page'",
        ),
        (
            format!("cursor={cursor}&status=FAILED"),
            "belongs to another query",
        ),
        (
            format!("cursor={cursor}&orderby=end_time"),
            "belongs to another query",
        ),
        (
            format!("cursor={cursor}&cursor={cursor}"),
            "must be given at most once",
        ),
    ] {
        let r = app.get(app.api(&format!("/async_status?{query}"))).await;
        assert_alert_contains(
            r,
            StatusCode::BAD_REQUEST,
            &format!("query parameter 'cursor' {text}"),
        )
        .await;
    }
}

/// VmHWM (peak resident memory) of a process, in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Six concurrent lists of 1000 jobs of 60 KiB messages (60 MB of messages each) raise the
/// peak memory of the served process by less than 300 MB.
#[actix_web::test]
async fn six_concurrent_lists_of_long_messages_stay_within_300_mb() {
    const JOBS: usize = 1000;
    let Some(db) = TestDatabase::new(Backend::Sqlite) else {
        return;
    };
    let url = db.url_string();
    let seeding = db.url().clone();
    actix_web::rt::task::spawn_blocking(move || {
        let store = Store::open(
            &seeding,
            &PoolOptions {
                size: 1,
                checkout_timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        store.run_migrations().unwrap();
        let message = long_message(60 * 1024);
        for _ in 0..JOBS {
            store.create_job(Some(&message), now_micros()).unwrap();
        }
    })
    .await
    .unwrap();
    let served = actix_web::rt::task::spawn_blocking(move || crate::ops::serve(&url, &[]))
        .await
        .unwrap();
    let base = served.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = login_at(&http, &base, ADMIN, ADMIN_PASSWORD).await;
    let token = crate::helpers::token_of(&r).unwrap();
    // Warm up: one small list, so the baseline includes the pool and caches.
    let r = bearer_get(&http, format!("{base}/async_status?limit=1"), &token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let pid = served.child.id();
    let before = peak_memory(pid);
    let lists: Vec<_> = (0..6)
        .map(|_| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            actix_web::rt::spawn(async move {
                let r = bearer_get(&http, format!("{base}/async_status"), &token).await;
                assert_eq!(r.status(), StatusCode::OK);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["summary"]["count"], JOBS);
                body["response"].as_array().unwrap().len()
            })
        })
        .collect();
    for list in lists {
        let listed = list.await.unwrap();
        assert!(listed > 0);
    }
    let after = peak_memory(pid);
    let grew = after.saturating_sub(before);
    eprintln!(
        "peak memory {} MB before, {} MB after: +{} MB",
        before >> 20,
        after >> 20,
        grew >> 20
    );
    assert!(grew < 300 << 20, "peak memory grew by {} MB", grew >> 20);
    drop(served);
    drop(db);
}

crate::both_backends!(
    a_list_without_limit_holds_at_most_max_page_jobs_and_says_so,
    a_limit_above_max_page_is_400_naming_it,
    a_page_past_max_response_bytes_is_cut_and_the_rest_can_be_asked_for,
    cursor_pages_walk_every_job_once_in_order,
    a_cursor_that_is_bad_or_mixed_with_offset_is_400_naming_it,
);
