//! Readers: the list, long-poll (also across replicas), Retry-After, conditional GET.

use std::time::{Duration, Instant};

use asyncstatus_domain::JobStatus;
use asyncstatus_persistence::testing::set_job_status;
use asyncstatus_persistence::{now_micros, Backend};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_alert, assert_alert_contains, get_json, get_with_header, parked, TestApp,
};

async fn list(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(app.api(&format!("/async_status{query}"))).await
}

async fn ids(app: &TestApp, query: &str) -> (Vec<i64>, i64) {
    let r = list(app, query).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    let body: Value = r.json().await.unwrap();
    let ids = body["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    (ids, body["summary"]["count"].as_i64().unwrap())
}

async fn finish(app: &TestApp, id: i64, status: JobStatus, at: chrono::DateTime<chrono::Utc>) {
    app.with_store(move |s| set_job_status(s, id, status, at))
        .await;
}

async fn the_list_filters_orders_pages_and_counts(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let t0 = now_micros() - chrono::Duration::hours(1);
    let mut jobs = Vec::new();
    for i in 0..6 {
        let at = t0 + chrono::Duration::minutes(i);
        jobs.push(
            app.with_store(move |s| s.create_job(Some("j"), at))
                .await
                .unwrap()
                .id,
        );
    }
    // jobs[0..2] succeed (the later-started one finishing first), jobs[2] fails, the rest pend.
    for (job, status, minutes) in [
        (jobs[1], JobStatus::Succeeded, 10),
        (jobs[0], JobStatus::Succeeded, 20),
        (jobs[2], JobStatus::Failed, 30),
    ] {
        finish(&app, job, status, t0 + chrono::Duration::minutes(minutes)).await;
    }

    assert_eq!(ids(&app, "").await, (jobs.clone(), 6));
    assert_eq!(ids(&app, "?status=PENDING").await, (jobs[3..].to_vec(), 3));
    assert_eq!(
        ids(&app, "?status=SUCCEEDED&orderby=end_time").await,
        (vec![jobs[1], jobs[0]], 2)
    );
    assert_eq!(
        ids(&app, &format!("?id={}", jobs[4])).await,
        (vec![jobs[4]], 1)
    );
    assert_eq!(
        ids(&app, "?orderby=start_time&sortOrder=desc&limit=2").await,
        (vec![jobs[5], jobs[4]], 6)
    );
    assert_eq!(
        ids(&app, "?limit=2&page=2").await,
        (vec![jobs[2], jobs[3]], 6)
    );
    assert_eq!(
        ids(&app, "?limit=4&offset=4").await,
        (vec![jobs[4], jobs[5]], 6)
    );
    assert_eq!(
        ids(&app, "?limit=4&page=3").await,
        (vec![], 6),
        "past the end: empty, count stays"
    );
    let (by_end, _) = ids(&app, "?orderby=end_time").await;
    assert_eq!(
        &by_end[..3],
        &[jobs[1], jobs[0], jobs[2]],
        "finished by end_time, unfinished last"
    );
    let (by_end_desc, _) = ids(&app, "?orderby=end_time&sortOrder=desc").await;
    assert_eq!(&by_end_desc[..3], &[jobs[2], jobs[0], jobs[1]]);
    assert_eq!(
        ids(&app, "?status=FAILED&unknown=1").await,
        (vec![jobs[2]], 1),
        "unknown names are ignored"
    );
    let body: Value = list(&app, "?limit=1").await.json().await.unwrap();
    let job = body["response"][0].as_object().unwrap();
    for key in [
        "id",
        "status",
        "start_time",
        "end_time",
        "message",
        "last_updated",
    ] {
        assert!(job.contains_key(key), "listed jobs have {key}: {job:?}");
    }
    assert_eq!(job.len(), 15, "jobs as GET shows them: {job:?}");
}

async fn bad_list_parameters_are_400_naming_them(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    for (query, name) in [
        ("?status=DONE", "'status'"),
        ("?id=abc", "'id'"),
        ("?orderby=message", "'orderby'"),
        ("?sortOrder=sideways", "'sortOrder'"),
        ("?limit=0", "'limit'"),
        ("?limit=x", "'limit'"),
        ("?offset=2", "'offset'"),
        ("?limit=2&offset=-1", "'offset'"),
        ("?page=2", "'page'"),
        ("?limit=2&page=0", "'page'"),
        ("?limit=2&limit=3", "'limit'"),
        ("?status=%FF", "'status'"),
    ] {
        assert_alert_contains(list(&app, query).await, StatusCode::BAD_REQUEST, name).await;
    }
}

async fn long_poll(app: &TestApp, id: i64, wait: &str) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let r = get_with_header(&app.client, app.job_url(id), "prefer", wait).await;
    (r, started.elapsed())
}

/// A `Prefer: wait=30` poll of job `id` on `app` (which has no other waiter), parked before
/// this returns; it yields the answer and the moment it came.
async fn park_waiter(
    app: &TestApp,
    id: i64,
) -> actix_web::rt::task::JoinHandle<(reqwest::Response, Instant)> {
    let (client, url) = (app.client.clone(), app.job_url(id));
    let waiter = actix_web::rt::spawn(async move {
        let r = get_with_header(&client, url, "prefer", "wait=30").await;
        (r, Instant::now())
    });
    parked(app, 1).await;
    waiter
}

async fn a_waiter_is_released_when_another_client_finishes_the_job(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "long").await else {
        return;
    };
    let waiter = park_waiter(&app, id).await;
    let producer = crate::helpers::cookie_client();
    app.login_with(
        &producer,
        crate::helpers::ADMIN,
        crate::helpers::ADMIN_PASSWORD,
    )
    .await;
    let finished_at = Instant::now();
    let r = producer
        .put(app.job_url(id))
        .json(&json!({"status": "SUCCEEDED", "message": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (r, answered_at) = waiter.await.unwrap();
    let latency = answered_at.duration_since(finished_at);
    assert!(
        latency < Duration::from_millis(250),
        "woke {latency:?} after the finish"
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["preference-applied"], "wait=30");
    assert!(r.headers().get("retry-after").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    assert_eq!(body["response"]["message"], "done");
    parked(&app, 0).await;
}

async fn a_waiter_times_out_with_the_pending_job(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "slow").await else {
        return;
    };
    let (r, took) = long_poll(&app, id, "wait=1").await;
    assert!(
        took >= Duration::from_secs(1),
        "held for the wait: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["preference-applied"], "wait=1");
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(r.headers().get("etag").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING");
}

async fn a_heartbeat_does_not_release_a_waiter_but_the_finish_does(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "beating").await else {
        return;
    };
    let waiter = park_waiter(&app, id).await;
    let beat = app
        .put_job(id, json!({"status": "PENDING", "message": "50%"}))
        .await;
    assert_eq!(beat.status(), StatusCode::OK);
    // The heartbeat woke it; it re-read, saw PENDING and parked again.
    parked(&app, 1).await;
    assert!(!waiter.is_finished());
    let done = app.put_job(id, json!({"status": "FAILED"})).await;
    assert_eq!(done.status(), StatusCode::OK);
    let body: Value = waiter.await.unwrap().0.json().await.unwrap();
    assert_eq!(body["response"]["status"], "FAILED");
    assert_eq!(body["response"]["message"], "50%");
}

async fn finished_jobs_answer_at_once_and_waits_are_capped(backend: Backend) {
    let Some(app) =
        TestApp::spawn_with(backend, |s| s.jobs.max_wait = Duration::from_secs(1)).await
    else {
        return;
    };
    app.login_admin().await;
    let done = app.create_job("quick").await;
    finish(&app, done, JobStatus::Succeeded, now_micros()).await;
    let (r, took) = long_poll(&app, done, "wait=60").await;
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(
        r.headers()["preference-applied"],
        "wait=1",
        "capped by jobs.max_wait"
    );
    let pending = app.create_job("slow").await;
    let (r, took) = long_poll(&app, pending, "respond-async, wait=3600").await;
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(r.headers()["preference-applied"], "wait=1");
    let (r, _) = long_poll(&app, 999_999, "wait=1").await;
    assert_alert(r, StatusCode::NOT_FOUND, "async status not found").await;
}

async fn bad_wait_preferences_are_400(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "x").await else {
        return;
    };
    for prefer in [
        "wait=soon",
        "wait=-1",
        "wait=1.5",
        "wait=",
        "wait=1, wait=2",
    ] {
        let (r, _) = long_poll(&app, id, prefer).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, "Prefer: wait").await;
    }
    let (r, _) = long_poll(&app, id, "respond-async").await;
    assert_eq!(r.status(), StatusCode::OK, "other preferences are ignored");
    assert!(r.headers().get("preference-applied").is_none());
}

/// GETs `url` with the app's client and the (conditional) `headers`.
async fn get_if(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn conditional_gets_answer_304_until_the_job_changes(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "cached").await else {
        return;
    };
    let url = app.job_url(id);
    let r = app.get(&url).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let modified = r.headers()["last-modified"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", "\"other\", *"),
        ("if-modified-since", modified.as_str()),
    ] {
        let r = get_if(&app, &url, &[(name, value)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert_eq!(r.headers()["retry-after"], "5");
        assert!(r.bytes().await.unwrap().is_empty(), "304 has no body");
    }
    let other_tag = ("if-none-match", "W/\"0-0\"");
    for (headers, why) in [
        (vec![other_tag], "another tag"),
        (
            vec![("if-modified-since", "not a date")],
            "an unreadable date is ignored",
        ),
        (
            vec![other_tag, ("if-modified-since", modified.as_str())],
            "If-None-Match decides over If-Modified-Since",
        ),
    ] {
        let r = get_if(&app, &url, &headers).await;
        assert_eq!(r.status(), StatusCode::OK, "{why}");
    }

    let r = app.put_json(&url, &json!({"status": "SUCCEEDED"})).await;
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let r = get_if(&app, &url, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(r.status(), StatusCode::OK, "changed since");
    assert!(r.headers().get("retry-after").is_none());
    let r = get_if(&app, &url, &[("if-none-match", new_etag.as_str())]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
}

async fn the_reaper_releases_waiters_of_jobs_it_abandons(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.stale_after = Duration::from_millis(300);
        s.jobs.reaper_interval = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    let id = app.create_job("will be abandoned").await;
    let (r, took) = long_poll(&app, id, "wait=30").await;
    assert!(took < Duration::from_secs(10), "{took:?}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "FAILED");
    assert!(body["response"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Abandoned"));
}

crate::both_backends!(
    the_list_filters_orders_pages_and_counts,
    bad_list_parameters_are_400_naming_them,
    a_waiter_is_released_when_another_client_finishes_the_job,
    a_waiter_times_out_with_the_pending_job,
    a_heartbeat_does_not_release_a_waiter_but_the_finish_does,
    finished_jobs_answer_at_once_and_waits_are_capped,
    bad_wait_preferences_are_400,
    conditional_gets_answer_304_until_the_job_changes,
    the_reaper_releases_waiters_of_jobs_it_abandons,
);

/// Two service processes on one PostgreSQL: a job created through A is read on B, long-polled
/// on B and finished through A; B's waiter wakes by LISTEN/NOTIFY.
#[actix_web::test]
async fn replicas_on_one_postgres_wake_each_others_waiters() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.replica(|_| {}).await;
    a.login_admin().await;
    b.login_admin().await;
    let id = a.create_job("made on A").await;
    let on_b: Value = get_json(&b.client, b.job_url(id)).await;
    assert_eq!(on_b["response"]["message"], "made on A");
    let waiter = park_waiter(&b, id).await;
    let finished_at = Instant::now();
    let r = a
        .put_job(
            id,
            json!({"status": "SUCCEEDED", "message": "finished on A"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (r, answered_at) = waiter.await.unwrap();
    let latency = answered_at.duration_since(finished_at);
    assert!(
        latency < Duration::from_millis(250),
        "B woke {latency:?} after A's finish"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    assert_eq!(body["response"]["message"], "finished on A");
    assert_eq!(a.state.waiters.len(), 0, "A never held the waiter");
}
