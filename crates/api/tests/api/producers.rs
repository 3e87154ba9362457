//! Producers: create, heartbeat, finish, delete; the race to finish; the reaper and retention;
//! permissions for each write.

use std::time::Duration;

use asyncstatus_domain::{JobStatus, JobUpdate};
use asyncstatus_persistence::testing::all_batches;
use asyncstatus_persistence::{now_micros, Backend};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_alert, assert_alert_contains, bearer_get, get_json, TestApp};
use crate::jobs::is_traffic_ops_timestamp;

async fn get(app: &TestApp, id: i64) -> reqwest::Response {
    app.get(app.job_url(id)).await
}

async fn delete(app: &TestApp, id: i64) -> reqwest::Response {
    app.client.delete(app.job_url(id)).send().await.unwrap()
}

async fn creating_a_job_answers_202_with_its_location(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    for version in ["4.0", "5.0"] {
        let r = app
            .post_json(
                format!("{}/api/{version}/async_status", app.address),
                &json!({"message": "renewing certificates"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(
            r.headers()["retry-after"],
            "5",
            "pending answers carry the poll hint"
        );
        let body: Value = r.json().await.unwrap();
        let id = body["response"]["id"].as_i64().unwrap();
        assert_eq!(location, format!("/api/{version}/async_status/{id}"));
        assert_eq!(body["alerts"][0]["level"], "success");
        assert!(body["alerts"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&location));
        assert_eq!(body["response"]["status"], "PENDING");
        assert_eq!(body["response"]["message"], "renewing certificates");
        assert!(body["response"]["end_time"].is_null());
        assert!(is_traffic_ops_timestamp(
            body["response"]["start_time"].as_str().unwrap()
        ));
        let polled: Value = get_json(&app.client, format!("{}{location}", app.address)).await;
        assert_eq!(
            polled["response"], body["response"],
            "the poller sees the same job"
        );
    }
    let r = app.post(app.api("/async_status")).await;
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "an empty body is a job without a message"
    );
    let body: Value = r.json().await.unwrap();
    assert!(body["response"]["message"].is_null());
}

async fn bad_job_bodies_are_400_naming_the_field(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "job").await else {
        return;
    };
    let post = |body: String| app.client.post(app.api("/async_status")).body(body).send();
    for (body, says) in [
        (r#"{"message": 5}"#.to_owned(), "'message' must be a string"),
        (
            r#"{"message": ["a"]}"#.to_owned(),
            "'message' must be a string",
        ),
        (json!({"message": "a\u{0}b"}).to_string(), "'message'"),
        (
            json!({"message": "m".repeat(64 * 1024 + 1)}).to_string(),
            "'message'",
        ),
        ("{".to_owned(), "not valid JSON"),
        ("[]".to_owned(), "JSON object"),
    ] {
        assert_alert_contains(
            post(body.clone()).await.unwrap(),
            StatusCode::BAD_REQUEST,
            says,
        )
        .await;
    }
    for (body, says) in [
        (json!({}), "'status' is required"),
        (json!({"message": "x"}), "'status' is required"),
        (json!({"status": "DONE"}), "'status'"),
        (json!({"status": "succeeded"}), "'status'"),
        (json!({"status": 1}), "'status' must be a string"),
        (
            json!({"status": "PENDING", "message": false}),
            "'message' must be a string",
        ),
    ] {
        assert_alert_contains(app.put_job(id, body).await, StatusCode::BAD_REQUEST, says).await;
    }
    let r = app
        .client
        .put(app.job_url(id))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_alert_contains(r, StatusCode::BAD_REQUEST, "not valid JSON").await;
    let body: Value = get(&app, id).await.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING", "nothing changed");
    assert_eq!(body["response"]["message"], "job");
}

async fn a_producer_heartbeats_then_finishes_and_the_job_never_changes_again(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "started").await else {
        return;
    };

    let heartbeat = json!({"status": "PENDING", "message": "50% done"});
    let r = app.put_job(id, heartbeat).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING");
    assert_eq!(body["response"]["message"], "50% done");
    assert!(body["response"]["end_time"].is_null());

    let r = app.put_job(id, json!({"status": "PENDING"})).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["response"]["message"], "50% done",
        "no message keeps the message"
    );

    let finish = json!({"status": "SUCCEEDED", "message": "renewed"});
    let r = app.put_job(id, finish).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("retry-after").is_none(),
        "finished: nothing to wait for"
    );
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["response"]["status"], "SUCCEEDED");
    let end = done["response"]["end_time"].as_str().unwrap().to_owned();
    assert!(is_traffic_ops_timestamp(&end));

    for body in [
        json!({"status": "FAILED"}),
        json!({"status": "PENDING", "message": "again"}),
        json!({"status": "SUCCEEDED"}),
    ] {
        assert_alert(
            app.put_job(id, body).await,
            StatusCode::CONFLICT,
            "async status is already SUCCEEDED and can no longer be changed",
        )
        .await;
    }
    let polled: Value = get(&app, id).await.json().await.unwrap();
    assert_eq!(
        polled["response"], done["response"],
        "the finished job is as it was"
    );

    assert_alert(
        app.put_job(999_999, json!({"status": "FAILED"})).await,
        StatusCode::NOT_FOUND,
        "async status not found",
    )
    .await;
    let r = app
        .put_json(app.api("/async_status/x"), &json!({"status": "FAILED"}))
        .await;
    assert_alert(
        r,
        StatusCode::BAD_REQUEST,
        "getting integer parameters: parameter 'id' not an integer",
    )
    .await;
}

async fn sixteen_racing_finishers_have_exactly_one_winner(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.database.pool_size = 8).await else {
        return;
    };
    app.login_admin().await;
    for round in 0..5 {
        let id = app.create_job("race").await;
        let racers = (0..16).map(|i| {
            let (client, url) = (app.client.clone(), app.job_url(id));
            let status = if i % 2 == 0 { "SUCCEEDED" } else { "FAILED" };
            actix_web::rt::spawn(async move {
                let r = client
                    .put(url)
                    .json(&json!({"status": status, "message": format!("racer {i}")}))
                    .send()
                    .await
                    .unwrap();
                (r.status(), status, i)
            })
        });
        let mut results = Vec::new();
        for racer in racers.collect::<Vec<_>>() {
            results.push(racer.await.unwrap());
        }
        let winners: Vec<_> = results.iter().filter(|r| r.0 == StatusCode::OK).collect();
        let losers = results
            .iter()
            .filter(|r| r.0 == StatusCode::CONFLICT)
            .count();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(losers, 15, "round {round}: {results:?}");
        let (_, status, i) = winners[0];
        let body: Value = get(&app, id).await.json().await.unwrap();
        assert_eq!(body["response"]["status"], *status);
        assert_eq!(body["response"]["message"], format!("racer {i}"));
    }
}

async fn deleting_a_job_removes_it(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "to delete").await else {
        return;
    };
    let r = delete(&app, id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["alerts"][0]["level"], "success");
    assert_alert(
        get(&app, id).await,
        StatusCode::NOT_FOUND,
        "async status not found",
    )
    .await;
    let r = delete(&app, id).await;
    assert_alert(r, StatusCode::NOT_FOUND, "async status not found").await;
}

async fn each_write_needs_its_permission(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.with_store(|s| {
        s.add_role("readers", "", now_micros())?;
        s.grant_permission("readers", "ASYNC-STATUS:READ", now_micros())
    })
    .await
    .unwrap();
    app.add_user("reader", "reader-password", "readers").await;
    let job = app
        .with_store(|s| s.create_job(Some("x"), now_micros()))
        .await
        .unwrap();
    let token = app.token("reader", "reader-password").await;
    let http = reqwest::Client::new();
    let url = app.api(&format!("/async_status/{}", job.id));
    assert_eq!(
        bearer_get(&http, &url, &token).await.status(),
        StatusCode::OK
    );
    let create = http
        .post(app.api("/async_status"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_alert(
        create,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:CREATE",
    )
    .await;
    let update = http
        .put(&url)
        .bearer_auth(&token)
        .json(&json!({"status": "FAILED"}))
        .send()
        .await
        .unwrap();
    assert_alert(
        update,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:UPDATE",
    )
    .await;
    let delete = http.delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_alert(
        delete,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:DELETE",
    )
    .await;
    let body: Value = bearer_get(&http, &url, &token).await.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING", "nothing changed");
}

/// Jobs stored with an old `last_updated` (a producer that went quiet an hour ago).
async fn old_job(app: &TestApp, age: Duration, finish: Option<JobStatus>) -> i64 {
    app.with_store(move |s| {
        let then = now_micros() - chrono::Duration::from_std(age).unwrap();
        let job = s.create_job(Some("working"), then)?;
        if let Some(status) = finish {
            s.update_job(
                job.id,
                &JobUpdate {
                    status,
                    message: None,
                    progress: None,
                },
                then,
            )?;
        }
        Ok::<_, asyncstatus_persistence::StoreError>(job.id)
    })
    .await
    .unwrap()
}

async fn the_reaper_fails_stale_jobs_and_purges_old_finished_ones(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.stale_after = Duration::from_secs(15 * 60);
        s.jobs.retention = Duration::from_secs(30 * 86400);
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    let days = |n: u64| Duration::from_secs(n * 86400);
    let stale = old_job(&app, Duration::from_secs(3600), None).await;
    let heartbeated = old_job(&app, Duration::from_secs(3600), None).await;
    let fresh = app.create_job("fresh").await;
    let ancient_done = old_job(&app, days(31), Some(JobStatus::Succeeded)).await;
    let ancient_failed = old_job(&app, days(31), Some(JobStatus::Failed)).await;
    let recent_done = old_job(&app, days(29), Some(JobStatus::Succeeded)).await;
    let r = app
        .put_job(
            heartbeated,
            json!({"status": "PENDING", "message": "still here"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let before: Value = get(&app, stale).await.json().await.unwrap();
    let stale_since = app
        .with_store(move |s| s.get_job(stale))
        .await
        .unwrap()
        .unwrap()
        .last_updated;

    let state = asyncstatus_api_state(&app);
    let sweep = asyncstatus_api::reaper::sweep(&state).await.unwrap();
    assert_eq!((sweep.abandoned, sweep.purged), (1, 2));

    let after: Value = get(&app, stale).await.json().await.unwrap();
    assert_eq!(after["response"]["status"], "FAILED");
    let message = after["response"]["message"].as_str().unwrap();
    assert!(message.starts_with("Abandoned"), "{message}");
    let since = stale_since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert!(message.contains(&since), "{message} names {since}");
    assert_eq!(
        after["response"]["start_time"],
        before["response"]["start_time"]
    );
    assert!(after["response"]["end_time"].is_string());
    for id in [heartbeated, fresh] {
        let body: Value = get(&app, id).await.json().await.unwrap();
        assert_eq!(body["response"]["status"], "PENDING", "job {id}");
    }
    for id in [ancient_done, ancient_failed] {
        assert_eq!(
            get(&app, id).await.status(),
            StatusCode::NOT_FOUND,
            "purged {id}"
        );
    }
    assert_eq!(get(&app, recent_done).await.status(), StatusCode::OK);

    let again = asyncstatus_api::reaper::sweep(&state).await.unwrap();
    assert_eq!(
        (again.abandoned, again.purged),
        (0, 0),
        "a second sweep finds nothing"
    );
}

async fn zero_retention_keeps_finished_jobs(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.jobs.retention = Duration::ZERO).await
    else {
        return;
    };
    app.login_admin().await;
    let ancient = old_job(
        &app,
        Duration::from_secs(400 * 86400),
        Some(JobStatus::Failed),
    )
    .await;
    let sweep = asyncstatus_api::reaper::sweep(&asyncstatus_api_state(&app))
        .await
        .unwrap();
    assert_eq!(sweep.purged, 0);
    assert_eq!(get(&app, ancient).await.status(), StatusCode::OK);
}

async fn replicas_reaping_at_once_finish_each_job_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(old_job(&app, Duration::from_secs(3600), None).await);
    }
    let sweepers = (0..4).map(|_| {
        let store = app.store.clone();
        std::thread::spawn(move || {
            let now = now_micros();
            let cutoff = now - chrono::Duration::minutes(15);
            all_batches(|| store.fail_stale_batch(cutoff, now)).unwrap()
        })
    });
    let finished: usize = sweepers
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    assert_eq!(
        finished, 40,
        "every stale job finished exactly once across the sweepers"
    );
    app.login_admin().await;
    for id in ids {
        let body: Value = get(&app, id).await.json().await.unwrap();
        assert_eq!(body["response"]["status"], "FAILED");
    }
}

fn asyncstatus_api_state(app: &TestApp) -> actix_web::web::Data<asyncstatus_api::state::AppState> {
    app.state.clone()
}

crate::both_backends!(
    creating_a_job_answers_202_with_its_location,
    bad_job_bodies_are_400_naming_the_field,
    a_producer_heartbeats_then_finishes_and_the_job_never_changes_again,
    sixteen_racing_finishers_have_exactly_one_winner,
    deleting_a_job_removes_it,
    each_write_needs_its_permission,
    the_reaper_fails_stale_jobs_and_purges_old_finished_ones,
    zero_retention_keeps_finished_jobs,
    replicas_reaping_at_once_finish_each_job_once,
);
