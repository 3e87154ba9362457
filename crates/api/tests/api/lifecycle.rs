//! The job lifecycle (issue 14) over HTTP: kind, labels, owner, deadlines and heartbeat
//! timeouts, single-flight keys, progress, cancel, and the list filters.

use std::time::Duration;

use asyncstatus_persistence::Backend;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_alert_contains, cookie_client, parked, TestApp};

/// POSTs a create body as the app's client; the status and the JSON answer.
async fn create(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let r = app.post_json(app.api("/async_status"), &body).await;
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn job(app: &TestApp, id: i64) -> Value {
    let body: Value = app.get(app.job_url(id)).await.json().await.unwrap();
    body["response"].clone()
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A client logged in as a new user of `role`.
async fn user_client(app: &TestApp, name: &str, role: &str) -> reqwest::Client {
    let password = format!("{name}-password");
    app.add_user(name, &password, role).await;
    let client = cookie_client();
    let r = app.login_with(&client, name, &password).await;
    assert_eq!(r.status(), StatusCode::OK, "login of {name}");
    client
}

async fn cancel(
    client: &reqwest::Client,
    app: &TestApp,
    id: i64,
    body: Value,
) -> reqwest::Response {
    client
        .post(app.api(&format!("/async_status/{id}/cancel")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits, by the clock, until `t` has passed.
async fn until_past(t: DateTime<Utc>) {
    let left = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(20)).await;
    assert!(Utc::now() > t);
}

async fn a_job_carries_its_kind_labels_owner_and_limits(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let before = Utc::now();
    let (status, body) = create(
        &app,
        json!({
            "message": "renewing",
            "kind": "acme.renew",
            "labels": {"cdn": "cdn1", "xmlId": "demo1"},
            "timeout": "1h",
            "heartbeat_timeout": 90,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["response"]["id"].as_i64().unwrap();
    let got = job(&app, id).await;
    assert_eq!(got, body["response"], "GET shows what POST answered");
    assert_eq!(got["kind"], "acme.renew");
    assert_eq!(got["labels"], json!({"cdn": "cdn1", "xmlId": "demo1"}));
    assert_eq!(got["created_by"], "admin", "from the token, not the body");
    assert_eq!(got["heartbeat_timeout"], 90);
    assert_eq!(got["cancel_requested"], false);
    assert!(got["cancel_reason"].is_null() && got["cancel_requested_by"].is_null());
    assert!(got["progress"].is_null());
    let deadline = time(&got["deadline"]);
    let start = time(&got["start_time"]);
    assert_eq!(deadline - start, chrono::TimeDelta::hours(1));
    assert!(start >= before - chrono::TimeDelta::seconds(1));
    assert_eq!(got["last_updated"], got["start_time"]);
    // A body's created_by is not the owner; a duration string with a fraction rounds up.
    let (_, body) = create(
        &app,
        json!({"created_by": "someone-else", "heartbeat_timeout": "1500ms", "timeout": 30}),
    )
    .await;
    assert_eq!(body["response"]["created_by"], "admin");
    assert_eq!(body["response"]["heartbeat_timeout"], 2);
    assert!(body["response"]["kind"].is_null());
    assert_eq!(body["response"]["labels"], json!({}));
}

async fn bad_lifecycle_input_is_400_naming_the_field(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "target").await else {
        return;
    };
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"kind": "ACME"}), "'kind'"),
        (json!({"kind": ""}), "'kind'"),
        (json!({"kind": 7}), "'kind' must be a string"),
        (
            json!({"labels": many}),
            "'labels': a job has at most 16 labels",
        ),
        (json!({"labels": {"a:b": "x"}}), "'labels': a label key"),
        (
            json!({"labels": {"a": "x".repeat(257)}}),
            "'labels': a label value",
        ),
        (json!({"labels": {"a": 1}}), "'labels.a' must be a string"),
        (json!({"labels": ["a"]}), "'labels' must be an object"),
        (json!({"key": ""}), "'key'"),
        (json!({"key": "k".repeat(201)}), "'key'"),
        (
            json!({"timeout": "8d"}),
            "'timeout' must be at least 1s and at most 7days (jobs.max_timeout)",
        ),
        (json!({"timeout": 0}), "'timeout' must be at least 1s"),
        (json!({"timeout": -5}), "'timeout'"),
        (
            json!({"timeout": "soon"}),
            "'timeout' must be a number of seconds or a duration",
        ),
        (
            json!({"timeout": true}),
            "'timeout' must be a number of seconds or a duration",
        ),
        (
            json!({"heartbeat_timeout": 0.5}),
            "'heartbeat_timeout' must be at least 1s",
        ),
        (
            json!({"heartbeat_timeout": "1h"}),
            "at most 15m (jobs.stale_after, as jobs.max_heartbeat_timeout is not set)",
        ),
    ];
    for (body, part) in cases {
        let r = app.post_json(app.api("/async_status"), &body).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, part).await;
    }
    let r = app
        .client
        .post(app.api("/async_status"))
        .header("Idempotency-Key", "one")
        .json(&json!({"key": "two"}))
        .send()
        .await
        .unwrap();
    assert_alert_contains(r, StatusCode::BAD_REQUEST, "Idempotency-Key header differ").await;
    for body in [
        json!({"status": "PENDING", "progress": {"done": 4, "total": 3}}),
        json!({"status": "PENDING", "progress": {"done": 0, "total": 0}}),
        json!({"status": "PENDING", "progress": {"done": -1, "total": 3}}),
    ] {
        let r = app.put_job(id, body).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, "'progress': progress must be").await;
    }
    let r = app
        .put_job(id, json!({"status": "PENDING", "progress": 3}))
        .await;
    assert_alert_contains(r, StatusCode::BAD_REQUEST, "'progress'").await;
    for (query, name) in [
        ("kind=BAD", "'kind'"),
        ("label=nocolon", "'label'"),
        ("label=bad%20key:v", "'label'"),
        ("newerThan=yesterday", "'newerThan'"),
        ("olderThan=2021-02-30T00:00:00Z", "'olderThan'"),
        (
            "orderby=message",
            "'orderby' must be one of id, start_time, end_time, last_updated",
        ),
        ("kind=a&kind=b", "'kind' must be given at most once"),
    ] {
        let r = app.get(app.api(&format!("/async_status?{query}"))).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, name).await;
    }
    let labels = (0..17)
        .map(|i| format!("label=k{i}:v"))
        .collect::<Vec<_>>()
        .join("&");
    let r = app.get(app.api(&format!("/async_status?{labels}"))).await;
    assert_alert_contains(r, StatusCode::BAD_REQUEST, "'label'").await;
    for (body, text) in [
        (json!({"reason": 5}), "'reason' must be a string"),
        (json!({"force": "yes"}), "'force' must be true or false"),
        (
            json!({"reason": "x".repeat(4097)}),
            "'reason': reason must be at most 4096 bytes",
        ),
    ] {
        let r = cancel(&app.client, &app, id, body).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, text).await;
    }
    assert_eq!(job(&app, id).await["status"], "PENDING", "nothing changed");
}

/// 16 POSTs with one key at once, through two replicas, five times: one job each round, the
/// others answer it.
async fn sixteen_racing_posts_with_one_key_create_one_job(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let replica = app.replica(|_| {}).await;
    let mut seen = Vec::new();
    for round in 0..5 {
        let key = format!("renew cdn1 round {round}");
        let posts = (0..16).map(|i| {
            let client = app.client.clone();
            // Half go to each replica; half say it with the body, half with the header.
            let url = if i % 4 < 2 { &app } else { &replica }.api("/async_status");
            let request = if i % 2 == 0 {
                client
                    .post(url)
                    .json(&json!({"key": key, "message": format!("poster {i}")}))
            } else {
                client
                    .post(url)
                    .header("Idempotency-Key", key.as_str())
                    .json(&json!({}))
            };
            async move {
                let r = request.send().await.unwrap();
                let status = r.status();
                let location = r
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned());
                let body: Value = r.json().await.unwrap();
                assert!(location.is_some(), "{status} {body}");
                let location = location.unwrap_or_default();
                (status, location, body)
            }
        });
        let answers = futures_util::future::join_all(posts).await;
        let created: Vec<_> = answers
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::ACCEPTED)
            .collect();
        assert_eq!(created.len(), 1, "round {round}: exactly one job created");
        let id = created[0].2["response"]["id"].as_i64().unwrap();
        for (status, location, body) in &answers {
            assert!(
                *status == StatusCode::ACCEPTED || *status == StatusCode::OK,
                "{status}"
            );
            assert_eq!(body["response"]["id"], id, "every answer is the one job");
            assert_eq!(location, &format!("/api/4.0/async_status/{id}"));
            if *status == StatusCode::OK {
                assert_eq!(body["alerts"][0]["level"], "info");
                let text = body["alerts"][0]["text"].as_str().unwrap();
                assert!(text.contains("already runs"), "{text}");
            }
        }
        let (_, total) = app
            .with_store(|s| s.list_jobs(&Default::default()))
            .await
            .unwrap();
        seen.push(id);
        assert_eq!(total, seen.len() as i64, "no job besides the round's");
        // Finished, the key starts a new job.
        let r = app.put_job(id, json!({"status": "SUCCEEDED"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let (status, body) = create(&app, json!({"key": key})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let again = body["response"]["id"].as_i64().unwrap();
        assert_ne!(again, id);
        seen.push(again);
        let r = app.put_job(again, json!({"status": "FAILED"})).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

async fn a_cancel_is_seen_by_the_producer_and_wakes_long_polls(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "working").await else {
        return;
    };
    let ops = user_client(&app, "ops", "operations").await;
    let viewer = user_client(&app, "viewer", "read-only").await;
    let r = cancel(&viewer, &app, id, json!({})).await;
    assert_alert_contains(r, StatusCode::FORBIDDEN, "ASYNC-STATUS:CANCEL").await;

    // A long poll on the job is woken by the request, though the job is still PENDING.
    let url = app.job_url(id);
    let poll = app.client.get(&url).header("Prefer", "wait=30").send();
    let poll = tokio::spawn(poll);
    parked(&app, 1).await;
    let started = std::time::Instant::now();
    let r = cancel(&ops, &app, id, json!({"reason": "wrong cdn"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["alerts"][0]["text"],
        format!("Cancel of async job {id} requested.")
    );
    assert_eq!(body["response"]["status"], "PENDING");
    assert_eq!(body["response"]["cancel_requested"], true);
    assert_eq!(body["response"]["cancel_reason"], "wrong cdn");
    assert_eq!(body["response"]["cancel_requested_by"], "ops");
    let woken: Value = poll.await.unwrap().unwrap().json().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not timed out"
    );
    assert_eq!(woken["response"]["cancel_requested"], true);
    assert_eq!(woken["response"]["status"], "PENDING");

    // Asked again by someone else: the first request stands.
    let r = cancel(&app.client, &app, id, json!({"reason": "other"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["cancel_reason"], "wrong cdn");
    assert_eq!(body["response"]["cancel_requested_by"], "ops");

    // The producer's next heartbeat shows it; it finishes the job as it sees fit.
    let r = app
        .put_job(id, json!({"status": "PENDING", "message": "still here"}))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["cancel_requested"], true);
    let r = app
        .put_job(
            id,
            json!({"status": "FAILED", "message": "cancelled as asked"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = cancel(&ops, &app, id, json!({})).await;
    assert_alert_contains(
        r,
        StatusCode::CONFLICT,
        "already FAILED and can no longer be cancelled",
    )
    .await;
    let r = cancel(&ops, &app, 999_999, json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn a_forced_cancel_finishes_the_job_and_wakes_a_long_poll(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "working").await else {
        return;
    };
    let poll = tokio::spawn(
        app.client
            .get(app.job_url(id))
            .header("Prefer", "wait=30")
            .send(),
    );
    parked(&app, 1).await;
    // An empty body is a request without reason; force needs a body.
    let r = app
        .client
        .post(app.api(&format!("/async_status/{id}/cancel")))
        .json(&json!({"reason": "stuck", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["alerts"][0]["text"],
        format!("Async job {id} cancelled: finished as FAILED.")
    );
    let woken: Value = poll.await.unwrap().unwrap().json().await.unwrap();
    for answer in [&body["response"], &woken["response"]] {
        assert_eq!(answer["status"], "FAILED");
        assert_eq!(answer["message"], "cancelled by admin: stuck");
        assert!(!answer["end_time"].is_null());
        assert_eq!(answer["cancel_requested"], true);
        assert_eq!(answer["cancel_requested_by"], "admin");
    }
    let r = app.put_job(id, json!({"status": "SUCCEEDED"})).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the producer cannot undo it"
    );
    // Without a body at all.
    let other = app.create_job("other").await;
    let r = app
        .post(app.api(&format!("/async_status/{other}/cancel")))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["cancel_requested"], true);
    assert!(body["response"]["cancel_reason"].is_null());
}

async fn a_deadline_reaps_a_job_that_keeps_heartbeating(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let (_, body) = create(&app, json!({"timeout": 1, "message": "short"})).await;
    let id = body["response"]["id"].as_i64().unwrap();
    let (_, body) = create(&app, json!({"timeout": "1h"})).await;
    let later = body["response"]["id"].as_i64().unwrap();
    let deadline = time(&body["response"]["deadline"]) - chrono::TimeDelta::hours(1)
        + chrono::TimeDelta::seconds(1);
    until_past(deadline).await;
    // A heartbeat after the deadline does not save it.
    let r = app
        .put_job(id, json!({"status": "PENDING", "message": "alive"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let swept = asyncstatus_api::reaper::sweep(&app.state).await.unwrap();
    assert_eq!(swept.abandoned, 1);
    let reaped = job(&app, id).await;
    assert_eq!(reaped["status"], "FAILED");
    let message = reaped["message"].as_str().unwrap();
    assert!(
        message.starts_with("Deadline passed: the job had to finish by "),
        "{message}"
    );
    let due = job(&app, id).await["deadline"].as_str().unwrap().to_owned();
    assert!(message.contains(&due), "{message} names {due}");
    assert_eq!(
        job(&app, later).await["status"],
        "PENDING",
        "its deadline is an hour away"
    );
}

async fn a_heartbeat_timeout_replaces_stale_after_for_its_job(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.stale_after = Duration::from_secs(2);
        s.jobs.max_heartbeat_timeout = Some(Duration::from_secs(3600));
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    let r = app
        .post_json(
            app.api("/async_status"),
            &json!({"heartbeat_timeout": "2h"}),
        )
        .await;
    assert_alert_contains(
        r,
        StatusCode::BAD_REQUEST,
        "at most 1h (jobs.max_heartbeat_timeout)",
    )
    .await;
    let (_, body) = create(&app, json!({"heartbeat_timeout": 1})).await;
    let quick = body["response"]["id"].as_i64().unwrap();
    let (_, body) = create(&app, json!({"heartbeat_timeout": "1h"})).await;
    let patient = body["response"]["id"].as_i64().unwrap();
    let (_, body) = create(&app, json!({"heartbeat_timeout": 1})).await;
    let asked = body["response"]["id"].as_i64().unwrap();
    let default = app.create_job("default").await;
    // A heartbeat restarts the job's own clock.
    let r = app.put_job(quick, json!({"status": "PENDING"})).await;
    let beat = time(&r.json::<Value>().await.unwrap()["response"]["last_updated"]);
    until_past(beat + chrono::TimeDelta::seconds(1)).await;
    // So does a cancel request, a change of the job like a heartbeat.
    let r = app
        .post(app.api(&format!("/async_status/{asked}/cancel")))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    asyncstatus_api::reaper::sweep(&app.state).await.unwrap();
    assert_eq!(
        job(&app, asked).await["status"],
        "PENDING",
        "its clock restarted at the cancel request"
    );
    let reaped = job(&app, quick).await;
    assert_eq!(reaped["status"], "FAILED", "1 s without an update");
    assert!(reaped["message"]
        .as_str()
        .unwrap()
        .starts_with("Abandoned: no update since "));
    assert_eq!(
        job(&app, default).await["status"],
        "PENDING",
        "stale_after is 2 s"
    );
    let created = time(&job(&app, default).await["last_updated"]);
    until_past(created + chrono::TimeDelta::seconds(2)).await;
    asyncstatus_api::reaper::sweep(&app.state).await.unwrap();
    assert_eq!(
        job(&app, default).await["status"],
        "FAILED",
        "stale_after passed"
    );
    assert_eq!(
        job(&app, patient).await["status"],
        "PENDING",
        "its own timeout is longer than stale_after"
    );
}

async fn progress_is_kept_and_never_goes_back(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "steps").await else {
        return;
    };
    let r = app
        .put_job(
            id,
            json!({"status": "PENDING", "progress": {"done": 1, "total": 3}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .put_job(id, json!({"status": "PENDING", "message": "more"}))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["response"]["progress"],
        json!({"done": 1, "total": 3}),
        "omitted keeps it"
    );
    let r = app
        .put_job(
            id,
            json!({"status": "PENDING", "progress": {"done": 0, "total": 3}}),
        )
        .await;
    assert_alert_contains(
        r,
        StatusCode::BAD_REQUEST,
        "'progress': done 0 is below the job's progress 1/3",
    )
    .await;
    let r = app
        .put_job(
            id,
            json!({"status": "SUCCEEDED", "progress": {"done": 5, "total": 5}}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    assert_eq!(body["response"]["progress"], json!({"done": 5, "total": 5}));
    assert_eq!(
        job(&app, id).await["progress"],
        json!({"done": 5, "total": 5})
    );
}

async fn the_list_filters_by_kind_owner_labels_and_start_time(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let ops = user_client(&app, "ops", "operations").await;
    let mut ids = Vec::new();
    for (client, body) in [
        (
            &app.client,
            json!({"kind": "acme", "labels": {"cdn": "cdn1", "xmlId": "demo1"}}),
        ),
        (
            &app.client,
            json!({"kind": "acme", "labels": {"cdn": "cdn2"}}),
        ),
        (&ops, json!({"kind": "dnssec", "labels": {"cdn": "cdn1"}})),
        (&ops, json!({})),
    ] {
        let r = client
            .post(app.api("/async_status"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        ids.push(
            r.json::<Value>().await.unwrap()["response"]["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let list = |query: &str| {
        let url = app.api(&format!("/async_status?{query}"));
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            let got: Vec<i64> = body["response"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap())
                .collect();
            (got, body["summary"]["count"].as_i64().unwrap())
        }
    };
    assert_eq!(list("kind=acme").await, (vec![ids[0], ids[1]], 2));
    assert_eq!(list("created_by=ops").await, (vec![ids[2], ids[3]], 2));
    assert_eq!(list("label=cdn:cdn1").await, (vec![ids[0], ids[2]], 2));
    assert_eq!(
        list("label=cdn:cdn1&label=xmlId:demo1").await,
        (vec![ids[0]], 1)
    );
    assert_eq!(list("label=cdn:cdn1&kind=dnssec").await, (vec![ids[2]], 1));
    assert_eq!(list("label=cdn:cdn3").await, (vec![], 0));
    assert_eq!(
        list("label=cdn:cdn1&label=cdn:cdn2").await,
        (vec![], 0),
        "one key, two values: no job has both"
    );
    assert_eq!(
        list("kind=acme&sortOrder=desc&orderby=start_time").await,
        (vec![ids[1], ids[0]], 2)
    );
    let second = job(&app, ids[1]).await["start_time"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = urlencode(&second);
    assert_eq!(
        list(&format!("newerThan={second}")).await.0,
        vec![ids[2], ids[3]]
    );
    assert_eq!(list(&format!("olderThan={second}")).await.0, vec![ids[0]]);
    assert_eq!(
        list(&format!("olderThan={second}&newerThan={second}")).await,
        (vec![], 0)
    );
    // last_updated: a heartbeat moves a job to the end.
    let r = app.put_job(ids[0], json!({"status": "PENDING"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        list("orderby=last_updated").await.0,
        vec![ids[1], ids[2], ids[3], ids[0]]
    );
    assert_eq!(
        list("orderby=last_updated&sortOrder=desc").await.0,
        vec![ids[0], ids[3], ids[2], ids[1]]
    );
    // A cursor goes on with the filters given again.
    let r = app.get(app.api("/async_status?kind=acme&limit=1")).await;
    let body: Value = r.json().await.unwrap();
    let next = body["summary"]["next"].as_str().unwrap();
    assert_eq!(
        list(&format!("kind=acme&limit=1&cursor={next}")).await,
        (vec![ids[1]], 2)
    );
    let r = app
        .get(app.api("/async_status?orderby=last_updated&limit=2"))
        .await;
    let body: Value = r.json().await.unwrap();
    let next = body["summary"]["next"].as_str().unwrap();
    assert_eq!(
        list(&format!("cursor={next}")).await.0,
        vec![ids[3], ids[0]]
    );
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

crate::both_backends!(
    a_job_carries_its_kind_labels_owner_and_limits,
    bad_lifecycle_input_is_400_naming_the_field,
    sixteen_racing_posts_with_one_key_create_one_job,
    a_cancel_is_seen_by_the_producer_and_wakes_long_polls,
    a_forced_cancel_finishes_the_job_and_wakes_a_long_poll,
    a_deadline_reaps_a_job_that_keeps_heartbeating,
    a_heartbeat_timeout_replaces_stale_after_for_its_job,
    progress_is_kept_and_never_goes_back,
    the_list_filters_by_kind_owner_labels_and_start_time,
);
